//! Graph readouts: one vector per window from an [`EncoderOutput`]. A readout sees only the
//! output, never the family, so every readout works for every encoder: [`MeanMax`] (mean ‖ max
//! over unit or all rows), [`Gigp`] (group-invariant pooling by orbit, `gigp`) and [`Hsa`]
//! (HSA-Net: every layer projected to tokens and fused, `hsa`).

mod gigp;
mod hsa;
mod projectors;

pub use gigp::{window_orbit_values, Gigp, GigpConfig, Orbit};
pub use hsa::{Hsa, HsaConfig, HsaOutput, Projectors};

use aa_graph::kernels::{scatter_max, scatter_mean};
use candle_core::{Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::EncoderOutput;

/// A graph readout.
pub trait Readout: Send + Sync {
    /// Output width for encoders whose final unit (and atom) rows are `unit_dim` wide.
    fn dim(&self, unit_dim: usize) -> usize;
    /// One row per window `[windows, dim]`.
    fn forward(&self, out: &EncoderOutput, train: bool) -> Result<Tensor>;
    /// The discrete per-layer choices the readout makes for each window at inference (HSA's
    /// projector gates: `[layer][window]`, 0 attention, 1 Mamba); `None` for readouts without
    /// choices.
    fn choices(&self, _out: &EncoderOutput) -> Result<Option<Vec<Vec<u8>>>> {
        Ok(None)
    }
    /// The readout's attention over each window's units at inference, as
    /// [`crate::attention::AttentionTrack`]s (HSA-Net's cross-attention projectors); `None` for
    /// readouts that do not attend.
    fn attention(&self, _out: &EncoderOutput) -> Result<Option<Vec<crate::attention::AttentionTrack>>> {
        Ok(None)
    }
}

/// Per layer, the fraction of `windows` for which `readout` chooses option 1 (HSA: the Mamba
/// projector) at inference, in batches of 256; `None` when the readout makes no choices.
pub fn choice_rates(
    encoder: &dyn crate::Encoder,
    readout: &dyn Readout,
    windows: &[&crate::Window],
) -> Result<Option<Vec<f64>>> {
    let mut counts: Option<Vec<usize>> = None;
    for chunk in windows.chunks(256) {
        let out = encoder.forward(&encoder.featurize(chunk)?, false)?;
        let Some(c) = readout.choices(&out)? else { return Ok(None) };
        let acc = counts.get_or_insert_with(|| vec![0; c.len()]);
        for (a, layer) in acc.iter_mut().zip(&c) {
            *a += layer.iter().filter(|&&x| x == 1).count();
        }
    }
    Ok(counts.map(|c| c.into_iter().map(|k| k as f64 / windows.len().max(1) as f64).collect()))
}

/// Which rows a pooling readout reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolNodes {
    /// Unit rows (GlycanAA's monosaccharide readout).
    #[default]
    Units,
    /// Unit and atom rows (GlycanAA-AN); units only when the output has no atoms.
    All,
}

/// Mean ‖ max pooling (TorchDrug's `MeanReadout` and `MaxReadout`, concatenated as GlycanAA does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanMax {
    /// Rows pooled.
    #[serde(default)]
    pub nodes: PoolNodes,
}

/// A readout chosen in a task configuration: `{"nodes": "units" | "all"}` (mean ‖ max),
/// `{"gigp": {"bins": …, "orbit": "centroid_distance" | "degree", "delta": …, "hidden": …}}` or
/// `{"hsa": {"projectors": "adaptive" | "attention" | "mamba", "dim": …, …}}` ([`HsaConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReadoutConfig {
    /// Group-invariant pooling by orbit (its weights under `readout.`).
    Gigp {
        /// Its configuration.
        gigp: GigpConfig,
    },
    /// HSA-Net over every layer (its weights under `readout.`).
    Hsa {
        /// Its configuration.
        hsa: HsaConfig,
    },
    /// Mean ‖ max.
    MeanMax(MeanMax),
}

impl Readout for MeanMax {
    fn dim(&self, unit_dim: usize) -> usize {
        2 * unit_dim
    }

    fn forward(&self, out: &EncoderOutput, _train: bool) -> Result<Tensor> {
        let dev = out.units.device().clone();
        let index = |v: &[u32], dev: &Device| Tensor::from_slice(v, v.len(), dev);
        let (rows, window) = match (&self.nodes, &out.atoms) {
            (PoolNodes::All, Some(a)) => {
                let aw = out.atom_window().unwrap_or_default();
                let mut w = out.unit_window.clone();
                w.extend(aw);
                (Tensor::cat(&[&out.units, &a.states], 0)?, index(&w, &dev)?)
            }
            _ => (out.units.clone(), index(&out.unit_window, &dev)?),
        };
        let mean = scatter_mean(&rows, &window, out.windows)?;
        let max = scatter_max(&rows, &window, out.windows)?;
        Tensor::cat(&[mean, max], D::Minus1)
    }
}
