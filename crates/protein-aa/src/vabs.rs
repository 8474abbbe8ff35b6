//! Vabs-Net on protein structures: span-mask protein-chain pretraining (SMPC, Zhao et al.,
//! ICML 2024) as an [`Objective`] of the shared trainer, and the classification head that the
//! per-unit downstream tasks of [`crate::tasks`] share.
//!
//! SMPC, per window of consecutive residues (the official `create_span_mask`): spans with
//! Poisson(`span_lambda`) lengths at uniform starts until `mask_ratio` of the residues are
//! covered (overlaps merge, so slightly fewer may be masked); a masked residue keeps only its
//! anchor atom (CA), its type becomes `<mask>` and its anchor moves by Gaussian noise of
//! `noise_angstrom` per axis. Targets: the residue type (cross-entropy), the clean anchor
//! position (an equivariant head moves every atom along its edge vectors; L1 in Å), and the
//! clean anchor–anchor distances on the unit edges of masked residues (L1 in Å).

use std::collections::BTreeMap;

use aa_graph::dense::gelu_erf;
use aa_graph::kernels::scatter_mean;
use aa_graph::{HeteroGraph, UnitKind};
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use aa_sparse_attn::{Vabs, VabsInput, VabsOutput};
use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::esm_pretrain::ResidueWindow;

/// Residue classes predicted by SMPC: the 20 amino acids and "other".
pub const RESIDUE_CLASSES: usize = 21;

fn d_ratio() -> f64 {
    0.3
}
fn d_lambda() -> f64 {
    6.0
}
fn d_noise() -> f64 {
    0.5
}
fn d_one() -> f64 {
    1.0
}
fn d_window() -> usize {
    64
}

/// SMPC settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanMasking {
    /// Fraction of residues to mask.
    #[serde(default = "d_ratio")]
    pub mask_ratio: f64,
    /// Mean span length (Poisson).
    #[serde(default = "d_lambda")]
    pub span_lambda: f64,
    /// Gaussian noise on masked anchors, Å per axis.
    #[serde(default = "d_noise")]
    pub noise_angstrom: f64,
    /// Weight of the position loss.
    #[serde(default = "d_one")]
    pub position_weight: f64,
    /// Weight of the distance loss.
    #[serde(default = "d_one")]
    pub distance_weight: f64,
    /// Residues per window.
    #[serde(default = "d_window")]
    pub window: usize,
}

impl Default for SpanMasking {
    fn default() -> Self {
        SpanMasking {
            mask_ratio: d_ratio(),
            span_lambda: d_lambda(),
            noise_angstrom: d_noise(),
            position_weight: d_one(),
            distance_weight: d_one(),
            window: d_window(),
        }
    }
}

/// Positions `0..len` covered by spans: Poisson(`lambda`) lengths (capped at what is left of
/// `floor(len · ratio)`), uniform starts, until the total drawn length reaches the target.
pub fn span_mask(len: usize, ratio: f64, lambda: f64, rng: &mut Rng) -> Vec<bool> {
    let target = (len as f64 * ratio) as usize;
    let mut mask = vec![false; len];
    let mut drawn = 0;
    while drawn < target {
        let span = (rng.poisson(lambda) as usize).min(target - drawn);
        let start = if len > span { rng.below((len - span) as u64) as usize } else { 0 };
        for m in &mut mask[start..start + span] {
            *m = true;
        }
        drawn += span;
    }
    mask
}

pub use aa_encoder::heads::ClsHead;

/// Equivariant position head: every atom moves by `Σ_e w_e (x_dst − x_src) / deg` over its
/// incoming atom edges, `w_e = Linear(GELU(Linear(h_dst + h_src) + Linear(e)))`.
#[derive(Clone, Debug)]
pub struct PositionHead {
    node: Linear,
    edge: Linear,
    out: Linear,
}

impl PositionHead {
    /// For node width `dim` and edge width `edge_dim`.
    pub fn new(vb: VarBuilder, dim: usize, edge_dim: usize) -> Result<PositionHead> {
        Ok(PositionHead {
            node: candle_nn::linear(dim, dim, vb.pp("node"))?,
            edge: candle_nn::linear_no_bias(edge_dim, dim, vb.pp("edge"))?,
            out: candle_nn::linear(dim, 1, vb.pp("out"))?,
        })
    }

    /// Predicted positions `[N, 3]` from the encoder output and input positions `[N, 3]`.
    pub fn forward(&self, out: &VabsOutput, positions: &Tensor) -> Result<Tensor> {
        let (src, dst) = (&out.atom_edges.src, &out.atom_edges.dst);
        let h = (out.atoms.index_select(src, 0)? + out.atoms.index_select(dst, 0)?)?;
        let z = (self.node.forward(&h)? + self.edge.forward(&out.atom_edge_features)?)?;
        let w = self.out.forward(&gelu_erf(&z)?)?; // [E, 1]
        let diff = (positions.index_select(dst, 0)? - positions.index_select(src, 0)?)?;
        positions + scatter_mean(&diff.broadcast_mul(&w)?, dst, out.atom_edges.nodes)?
    }
}

/// A prepared SMPC batch.
pub struct SmpcBatch {
    input: VabsInput,
    /// Batch unit rows of masked residues and their true classes.
    masked_units: Tensor,
    classes: Tensor,
    /// Atom rows of the masked anchors and their clean positions `[M, 3]`.
    masked_atoms: Tensor,
    clean: Tensor,
    /// Anchor atom rows of unit-edge ends `(src, dst)` with dst masked, and clean distances.
    pair_src: Tensor,
    pair_dst: Tensor,
    clean_distance: Tensor,
    /// Language-model features of every unit (zero for masked and virtual units).
    lm: Option<Tensor>,
}

/// The SMPC pretraining objective.
pub struct VabsSmpc {
    /// The encoder.
    pub model: Vabs,
    /// Residue-type head (`res_type_cls`).
    pub type_head: ClsHead,
    /// Position head (`atom_pos_head`).
    pub position_head: PositionHead,
    /// Masking settings.
    pub masking: SpanMasking,
    /// Per-residue language-model features (the model's `lm_dim` must be set); zero for masked
    /// residues.
    pub lm: Option<crate::lm::LmFeatures>,
}

/// Residue class of a unit (0–19 amino acids, 20 other).
fn residue_class(g: &HeteroGraph, u: u32) -> u32 {
    let unit = &g.units[u as usize];
    if unit.kind == UnitKind::Residue {
        unit.type_id.min(20)
    } else {
        20
    }
}

impl VabsSmpc {
    /// The objective; heads are built from `vb` under `res_type_cls` and `atom_pos_head`.
    pub fn new(model: Vabs, vb: VarBuilder, masking: SpanMasking) -> Result<VabsSmpc> {
        let (d, e) = (model.config().dim, model.config().edge_dim);
        Ok(VabsSmpc {
            type_head: ClsHead::new(vb.pp("res_type_cls"), d, RESIDUE_CLASSES)?,
            position_head: PositionHead::new(vb.pp("atom_pos_head"), d, e)?,
            model,
            masking,
            lm: None,
        })
    }

    /// One window: its featurised input, the classes of its masked residues, their clean
    /// anchor positions and the mask.
    #[allow(clippy::type_complexity)]
    fn prepare_one(&self, w: &ResidueWindow, rng: &mut Rng) -> Result<(VabsInput, Vec<u32>, Vec<[f32; 3]>, Vec<bool>)> {
        let g = &*w.graph;
        let pos = g.positions.as_ref().ok_or_else(|| candle_core::Error::Msg("window without coordinates".into()))?;
        let m = &self.masking;
        let masked = span_mask(w.units.len(), m.mask_ratio, m.span_lambda, rng);
        let mut noisy = pos.clone();
        let mut clean = Vec::new();
        for (k, &u) in w.units.iter().enumerate() {
            if masked[k] {
                let a = g.units[u as usize].anchor.ok_or_else(|| {
                    candle_core::Error::Msg(format!("residue {} has no anchor atom", g.units[u as usize].name))
                })? as usize;
                clean.push(pos[a]);
                for c in &mut noisy[a] {
                    *c += (rng.normal() * m.noise_angstrom) as f32;
                }
            }
        }
        let input = VabsInput::build(g, &w.units, &masked, &noisy, &self.model.config().feature_options())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let classes = w.units.iter().zip(&masked).filter(|(_, m)| **m).map(|(&u, _)| residue_class(g, u)).collect();
        Ok((input, classes, clean, masked))
    }

    /// Loss terms and the masked-type accuracy of a batch: `(total, ce, position L1,
    /// distance L1, accuracy, position RMSD)`.
    fn terms(&self, b: &SmpcBatch, train: bool) -> Result<(Tensor, Tensor, Tensor, Tensor, f64, f64)> {
        let dev = Device::Cpu;
        let out = self.model.forward(&b.input, b.lm.as_ref(), train)?;
        let logits = self.type_head.forward(&out.units.index_select(&b.masked_units, 0)?, train)?;
        let ce = candle_nn::loss::cross_entropy(&logits, &b.classes)?;
        let acc = {
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            let t = b.classes.to_vec1::<u32>()?;
            pred.iter().zip(&t).filter(|(a, b)| a == b).count() as f64 / t.len().max(1) as f64
        };
        let flat: Vec<f32> = b.input.positions.iter().flatten().copied().collect();
        let positions = Tensor::from_vec(flat, (b.input.num_atoms(), 3), &dev)?;
        let pred = self.position_head.forward(&out, &positions)?;
        let err = (pred.index_select(&b.masked_atoms, 0)? - &b.clean)?;
        let pos_l1 = err.abs()?.mean_all()?;
        let rmsd = err.sqr()?.sum(1)?.mean_all()?.sqrt()?.to_scalar::<f32>()? as f64;
        let d = (pred.index_select(&b.pair_src, 0)? - pred.index_select(&b.pair_dst, 0)?)?;
        let dist = (d.sqr()?.sum(1)? + 1e-8)?.sqrt()?;
        let dist_l1 = (dist - &b.clean_distance)?.abs()?.mean_all()?;
        let total = ((&ce + (&pos_l1 * self.masking.position_weight)?)? + (&dist_l1 * self.masking.distance_weight)?)?;
        Ok((total, ce, pos_l1, dist_l1, acc, rmsd))
    }
}

impl Objective for VabsSmpc {
    type Item = ResidueWindow;
    type Batch = SmpcBatch;

    fn prepare(&self, items: &[&ResidueWindow], rng: &mut Rng) -> Result<SmpcBatch> {
        let dev = Device::Cpu;
        let mut parts = Vec::with_capacity(items.len());
        let (mut classes, mut clean, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        for w in items {
            let (input, c, p, m) = self.prepare_one(w, rng)?;
            parts.push(input);
            classes.extend(c);
            clean.extend(p);
            masks.push(m);
        }
        let lm = match &self.lm {
            Some(lm) => {
                let extra: Vec<usize> = parts.iter().zip(items).map(|(p, w)| p.num_units() - w.units.len()).collect();
                Some(lm.rows(items, Some(&masks), &extra)?)
            }
            None => None,
        };
        let input = VabsInput::concat(&parts);
        let mut masked_units = Vec::new();
        let mut is_masked = vec![false; input.num_units()];
        for (u, &t) in input.unit_type.iter().enumerate() {
            if t == aa_sparse_attn::features::MASK_UNIT {
                masked_units.push(u as u32);
                is_masked[u] = true;
            }
        }
        if masked_units.is_empty() {
            candle_core::bail!("smpc: a batch without masked residues (windows too short for the mask ratio)");
        }
        let masked_atoms: Vec<u32> = masked_units.iter().map(|&u| input.anchors[u as usize]).collect();
        // Clean anchor coordinates of every unit: the noised ones differ only at masked units.
        let mut clean_anchor: Vec<[f32; 3]> = input.anchors.iter().map(|&a| input.positions[a as usize]).collect();
        for (k, &u) in masked_units.iter().enumerate() {
            clean_anchor[u as usize] = clean[k];
        }
        let virt: Vec<bool> = {
            let mut v = vec![false; input.num_units()];
            for u in input.virtual_units.iter().flatten() {
                v[*u as usize] = true;
            }
            v
        };
        let (mut ps, mut pd, mut cd) = (Vec::new(), Vec::new(), Vec::new());
        for &(s, d) in &input.unit_edges {
            if s != d && is_masked[d as usize] && !virt[s as usize] {
                let (a, b) = (clean_anchor[s as usize], clean_anchor[d as usize]);
                ps.push(input.anchors[s as usize]);
                pd.push(input.anchors[d as usize]);
                cd.push(((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt());
            }
        }
        let m = masked_units.len();
        let flat: Vec<f32> = clean.iter().flatten().copied().collect();
        Ok(SmpcBatch {
            masked_units: Tensor::from_vec(masked_units, m, &dev)?,
            classes: Tensor::from_vec(classes, m, &dev)?,
            masked_atoms: Tensor::from_vec(masked_atoms, m, &dev)?,
            clean: Tensor::from_vec(flat, (m, 3), &dev)?,
            pair_src: Tensor::from_vec(ps.clone(), ps.len(), &dev)?,
            pair_dst: Tensor::from_vec(pd, ps.len(), &dev)?,
            clean_distance: Tensor::from_vec(cd, ps.len(), &dev)?,
            input,
            lm,
        })
    }

    fn loss(&self, batch: SmpcBatch) -> Result<(Tensor, Vec<(String, f64)>)> {
        let (total, _, _, _, acc, _) = self.terms(&batch, true)?;
        Ok((total, vec![("type_acc".into(), acc)]))
    }

    fn evaluate(&self, items: &[ResidueWindow]) -> Result<BTreeMap<String, f64>> {
        // Fixed masks so that epochs compare.
        let mut rng = Rng::new(0x5EED);
        let mut sums = [0f64; 6];
        let mut n = 0f64;
        for chunk in items.chunks(8) {
            let refs: Vec<&ResidueWindow> = chunk.iter().collect();
            let b = self.prepare(&refs, &mut rng)?;
            let w = b.masked_units.dim(0)? as f64;
            let (total, ce, pos, dist, acc, rmsd) = self.terms(&b, false)?;
            let s = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
            for (k, v) in [s(&total)?, s(&ce)?, s(&pos)?, s(&dist)?, acc, rmsd * rmsd].iter().enumerate() {
                sums[k] += v * w;
            }
            n += w;
        }
        let n = n.max(1.0);
        Ok(BTreeMap::from([
            ("loss".to_string(), sums[0] / n),
            ("type_ce".to_string(), sums[1] / n),
            ("position_l1".to_string(), sums[2] / n),
            ("distance_l1".to_string(), sums[3] / n),
            ("type_acc".to_string(), sums[4] / n),
            ("position_rmsd".to_string(), (sums[5] / n).sqrt()),
        ]))
    }
}
