//! GIGP, group-invariant global pooling (Bujel, Gideoni et al., arXiv 2305.19207): pool by
//! orbit instead of over the whole graph. Each unit has an *orbit value* that the group leaves
//! unchanged — for a structure its distance from the window's centroid (rotations,
//! translations and permutations keep it: the orbits are spherical shells), for a graph
//! without coordinates its number of unit links (a graph-colour class that permutations keep).
//! Orbit bins are fitted on the training set ([`Gigp::fit_centres`]: quantiles of the training
//! units' values); a unit belongs to the bins whose centre is within `delta` of its value (by
//! default `delta` is half the gap to the neighbouring centres, i.e. the nearest centre), a unit
//! in several bins is split equally among them and a unit in none joins the nearest, so every
//! unit carries weight 1 in all. Per window and bin the member rows are summed (`S_k`), each
//! bin has its own small residual MLP `φ_k(S) = S + W2_k · relu(W1_k · S + b1_k) + b2_k`, and
//! the pooled vector is `Σ_k w_k φ_k(S_k) / n` with learnable bin weights `w_k` and `n` the
//! window's units.
//!
//! Initialisation: `W2 = 0`, `b2 = 0`, `w = 1`, so `φ_k` is the identity and the pooled vector
//! is exactly the mean of the unit rows (mean pooling), whatever the bins; training moves away
//! from it. Weight names (under the readout's variable prefix): `orbit_mlp.{w1,b1,w2,b2}`
//! (`[K, d, h]`, `[K, 1, h]`, `[K, h, d]`, `[K, 1, d]`), `orbit_weights` (`[K]`) and the fitted
//! centres `buffer_orbit_centres` (`[K]`, a buffer: saved in checkpoints, never trained).

use aa_graph::kernels::scatter_sum;
use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use super::Readout;
use crate::{EncoderOutput, UnitGeometry};

/// Which group-invariant value puts a unit in an orbit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orbit {
    /// Distance (Å) of the unit's position from its window's centroid (needs coordinates).
    #[default]
    CentroidDistance,
    /// The unit's number of unit links within its window (any graph).
    Degree,
}

/// A GIGP readout configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GigpConfig {
    /// Number of orbit bins.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// The orbit value.
    #[serde(default)]
    pub orbit: Orbit,
    /// Membership radius around each centre (in the orbit value's unit); `None`: the nearest
    /// centre.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f32>,
    /// Hidden width of each bin's MLP.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
}

fn default_bins() -> usize {
    8
}

fn default_hidden() -> usize {
    32
}

impl Default for GigpConfig {
    fn default() -> Self {
        GigpConfig { bins: default_bins(), orbit: Orbit::default(), delta: None, hidden: default_hidden() }
    }
}

/// The GIGP readout over the final unit rows.
pub struct Gigp {
    config: GigpConfig,
    dim: usize,
    centres: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    weights: Tensor,
}

impl Gigp {
    /// A GIGP readout of `dim`-wide unit rows with its weights under `vb` (the centres start at
    /// 0: set them with [`Gigp::set_centres`] from [`Gigp::fit_centres`], or load them with the
    /// other weights).
    pub fn new(vb: VarBuilder, dim: usize, config: GigpConfig) -> Result<Gigp> {
        let (k, h) = (config.bins, config.hidden);
        if k == 0 || h == 0 || dim == 0 {
            candle_core::bail!(
                "GIGP needs at least one bin, a hidden width and unit rows ({k} bins, hidden {h}, {dim} wide)"
            );
        }
        if config.delta.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
            candle_core::bail!("GIGP delta must be a non-negative number, got {:?}", config.delta);
        }
        let mlp = vb.pp("orbit_mlp");
        let w1 = mlp.get_with_hints((k, dim, h), "w1", Init::Randn { mean: 0.0, stdev: (1.0 / dim as f64).sqrt() })?;
        let b1 = mlp.get_with_hints((k, 1, h), "b1", Init::Const(0.0))?;
        let w2 = mlp.get_with_hints((k, h, dim), "w2", Init::Const(0.0))?;
        let b2 = mlp.get_with_hints((k, 1, dim), "b2", Init::Const(0.0))?;
        let weights = vb.get_with_hints(k, "orbit_weights", Init::Const(1.0))?;
        let centres = vb.get_with_hints(k, "buffer_orbit_centres", Init::Const(0.0))?;
        Ok(Gigp { config, dim, centres, w1, b1, w2, b2, weights })
    }

    /// The configuration.
    pub fn config(&self) -> &GigpConfig {
        &self.config
    }

    /// Orbit centres from training orbit values: the `(k + ½) / bins` quantiles (nearest rank)
    /// of the sorted values; `bins` zeros when there are none.
    pub fn fit_centres(values: &[f32], bins: usize) -> Vec<f32> {
        let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return vec![0.0; bins];
        }
        v.sort_by(f32::total_cmp);
        (0..bins)
            .map(|k| {
                let q = (k as f64 + 0.5) / bins as f64;
                v[((q * v.len() as f64) as usize).min(v.len() - 1)]
            })
            .collect()
    }

    /// Sets the centres (a buffer under the store the readout was built from).
    pub fn set_centres(&self, centres: &[f32], vars: &[(String, candle_core::Var)]) -> Result<()> {
        if centres.len() != self.config.bins {
            candle_core::bail!("{} centres for {} GIGP bins", centres.len(), self.config.bins);
        }
        let var = vars
            .iter()
            .find(|(_, v)| v.as_tensor().id() == self.centres.id())
            .ok_or_else(|| candle_core::Error::Msg("the GIGP centres are not in this variable store".into()))?;
        var.1.set(&Tensor::new(centres, self.centres.device())?)
    }

    /// Each unit row's orbit value under `orbit` (`unit_window` gives each row's window).
    pub fn orbit_values(geometry: &UnitGeometry, orbit: Orbit, unit_window: &[u32]) -> Result<Vec<f32>> {
        if geometry.degree.len() != unit_window.len() {
            candle_core::bail!("geometry of {} units for {} unit rows", geometry.degree.len(), unit_window.len());
        }
        match orbit {
            Orbit::Degree => Ok(geometry.degree.iter().map(|&d| d as f32).collect()),
            Orbit::CentroidDistance => {
                let Some(pos) = &geometry.positions else {
                    candle_core::bail!(
                        "GIGP with orbit centroid_distance needs coordinates, and these windows have none (use orbit degree)"
                    );
                };
                let windows = unit_window.iter().map(|&w| w as usize + 1).max().unwrap_or(0);
                let mut sum = vec![[0f64; 3]; windows];
                let mut count = vec![0usize; windows];
                for (p, &w) in pos.iter().zip(unit_window) {
                    for c in 0..3 {
                        sum[w as usize][c] += f64::from(p[c]);
                    }
                    count[w as usize] += 1;
                }
                Ok(pos
                    .iter()
                    .zip(unit_window)
                    .map(|(p, &w)| {
                        let n = count[w as usize] as f64;
                        let d2: f64 = (0..3).map(|c| (f64::from(p[c]) - sum[w as usize][c] / n).powi(2)).sum();
                        d2.sqrt() as f32
                    })
                    .collect())
            }
        }
    }

    /// `(row, bin, weight)` memberships: within `delta` of a centre (split equally), else the
    /// nearest centre (first on ties).
    pub fn memberships(values: &[f32], centres: &[f32], delta: Option<f32>) -> Vec<(u32, u32, f32)> {
        let mut out = Vec::with_capacity(values.len());
        for (i, &v) in values.iter().enumerate() {
            let near: Vec<usize> = match delta {
                Some(d) => (0..centres.len()).filter(|&k| (v - centres[k]).abs() <= d).collect(),
                None => vec![],
            };
            if near.is_empty() {
                let mut best = 0;
                for k in 1..centres.len() {
                    if (v - centres[k]).abs() < (v - centres[best]).abs() {
                        best = k;
                    }
                }
                out.push((i as u32, best as u32, 1.0));
            } else {
                let w = 1.0 / near.len() as f32;
                out.extend(near.into_iter().map(|k| (i as u32, k as u32, w)));
            }
        }
        out
    }

    /// The pooled rows `[windows, dim]` of unit rows `x` (`[U, dim]`) with orbit values `values`.
    pub fn pool(&self, x: &Tensor, values: &[f32], unit_window: &[u32], windows: usize) -> Result<Tensor> {
        let (k, d) = (self.config.bins, self.dim);
        let dev = x.device().clone();
        let centres = self.centres.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let m = Gigp::memberships(values, &centres, self.config.delta);
        let rows: Vec<u32> = m.iter().map(|t| t.0).collect();
        let seg: Vec<u32> = m.iter().map(|t| unit_window[t.0 as usize] * k as u32 + t.1).collect();
        let wts: Vec<f32> = m.iter().map(|t| t.2).collect();
        let n = rows.len();
        let members = x.index_select(&Tensor::from_vec(rows, n, &dev)?, 0)?.broadcast_mul(&Tensor::from_vec(
            wts,
            (n, 1),
            &dev,
        )?)?;
        // [windows · K, d] → [K, windows, d]
        let s = scatter_sum(&members, &Tensor::from_vec(seg, n, &dev)?, windows * k)?
            .reshape((windows, k, d))?
            .transpose(0, 1)?
            .contiguous()?;
        let h = s.matmul(&self.w1)?.broadcast_add(&self.b1)?.relu()?;
        let y = (&s + h.matmul(&self.w2)?.broadcast_add(&self.b2)?)?;
        let pooled = y.broadcast_mul(&self.weights.reshape((k, 1, 1))?)?.sum(0)?;
        let mut count = vec![0f32; windows];
        for &w in unit_window {
            count[w as usize] += 1.0;
        }
        let count: Vec<f32> = count.into_iter().map(|c| c.max(1.0)).collect();
        pooled.broadcast_div(&Tensor::from_vec(count, (windows, 1), &dev)?)
    }
}

impl Readout for Gigp {
    fn dim(&self, _unit_dim: usize) -> usize {
        self.dim
    }

    fn forward(&self, out: &EncoderOutput, _train: bool) -> Result<Tensor> {
        let Some(geometry) = &out.geometry else {
            candle_core::bail!("GIGP needs the windows' unit geometry, and this encoder output has none");
        };
        let values = Gigp::orbit_values(geometry, self.config.orbit, &out.unit_window)?;
        self.pool(&out.units, &values, &out.unit_window, out.windows)
    }
}

/// The orbit values of windows (for fitting centres on a training set).
pub fn window_orbit_values(windows: &[&crate::Window], orbit: Orbit) -> Result<Vec<f32>> {
    let g = UnitGeometry::of(windows);
    let uw: Vec<u32> =
        windows.iter().enumerate().flat_map(|(i, w)| std::iter::repeat_n(i as u32, w.units.len())).collect();
    Gigp::orbit_values(&g, orbit, &uw)
}
