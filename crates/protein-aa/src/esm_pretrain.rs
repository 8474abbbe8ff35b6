//! ESM-AA pretraining on protein structures: masked language modelling over residue and atom
//! tokens plus pairwise-distance recovery inside unzipped residues (Zheng et al., ICML 2024),
//! as an [`Objective`] of the shared trainer.
//!
//! Each item is a window of consecutive amino-acid residues of one chain. A batch draws, per
//! window, which residues to unzip (`unzip_ratio`), then masks `mask_prob` of the residue and
//! atom tokens BERT-style (80 % `<mask>`, 10 % a random token of the same scale, 10 % kept).
//! The coordinates the model sees get uniform noise of ±`coord_noise_angstrom` per axis; the
//! distance head must recover the clean distances between atoms of the same unzipped residue
//! (L1). Loss = masked-token cross-entropy + `distance_weight` × distance L1.

use std::collections::BTreeMap;
use std::sync::Arc;

use aa_codeswitch::{Alphabet, CodeSwitchBatch, CodeSwitchSequence, Esm, EsmRequest, Unzip};
use aa_graph::{HeteroGraph, UnitKind};
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

fn d_mask() -> f64 {
    0.15
}
fn d_unzip() -> f64 {
    0.1
}
fn d_noise() -> f32 {
    1.0
}
fn d_weight() -> f64 {
    1.0
}
fn d_window() -> usize {
    64
}

/// Masking and unzipping rates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsmAaMasking {
    /// Fraction of residue and atom tokens to predict.
    #[serde(default = "d_mask")]
    pub mask_prob: f64,
    /// Fraction of residues unzipped into atoms.
    #[serde(default = "d_unzip")]
    pub unzip_ratio: f64,
    /// Uniform coordinate noise per axis (Å).
    #[serde(default = "d_noise")]
    pub coord_noise_angstrom: f32,
    /// Weight of the distance-recovery loss.
    #[serde(default = "d_weight")]
    pub distance_weight: f64,
    /// Residues per window.
    #[serde(default = "d_window")]
    pub window: usize,
}

impl Default for EsmAaMasking {
    fn default() -> Self {
        EsmAaMasking {
            mask_prob: d_mask(),
            unzip_ratio: d_unzip(),
            coord_noise_angstrom: d_noise(),
            distance_weight: d_weight(),
            window: d_window(),
        }
    }
}

/// A window of consecutive residues of one chain of a structure (the workspace's
/// [`aa_graph::Window`]).
pub type ResidueWindow = aa_graph::Window;

/// Splits the amino-acid residues of every chain into windows of at most `window` residues
/// (windows shorter than 8 residues are dropped).
pub fn residue_windows(graph: Arc<HeteroGraph>, window: usize) -> Vec<ResidueWindow> {
    let mut chains: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (i, u) in graph.units.iter().enumerate() {
        if u.kind == UnitKind::Residue {
            let chain = u.label.as_ref().map(|l| l.chain.clone()).unwrap_or_default();
            chains.entry(chain).or_default().push(i as u32);
        }
    }
    let mut out = Vec::new();
    for units in chains.values() {
        for w in units.chunks(window.max(1)) {
            if w.len() >= 8 {
                out.push(ResidueWindow { graph: graph.clone(), units: w.to_vec() });
            }
        }
    }
    out
}

/// One masked window: the corrupted sequence, `(position, true token)` of masked tokens, and
/// `(i, j, clean distance)` of same-residue atom pairs.
type MaskedWindow = (CodeSwitchSequence, Vec<(usize, u32)>, Vec<(usize, usize, f32)>);

/// A prepared batch.
pub struct EsmAaBatch {
    batch: CodeSwitchBatch,
    /// Flat `b*T + i` of masked tokens and their true ids.
    masked: Tensor,
    targets: Tensor,
    masked_is_atom: Vec<bool>,
    /// Flat `b*T*T + i*T + j` of same-residue atom pairs and their clean distances.
    pairs: Option<(Tensor, Tensor)>,
}

/// The ESM-AA pretraining objective.
pub struct EsmAaPretrain {
    /// The model.
    pub model: Esm,
    /// Its alphabet (ESM-AA's 59 tokens).
    pub alphabet: Alphabet,
    /// Rates.
    pub masking: EsmAaMasking,
    device: Device,
}

/// Per-batch numbers.
struct Outcome {
    loss: Tensor,
    ce: f64,
    dist: f64,
    residue: (usize, usize),
    atom: (usize, usize),
}

impl EsmAaPretrain {
    /// The objective for a model with a pair bias and a distance head.
    pub fn new(model: Esm, alphabet: Alphabet, masking: EsmAaMasking) -> Result<EsmAaPretrain> {
        if !model.config().pair_bias {
            candle_core::bail!("ESM-AA pretraining needs a model with pair_bias = true");
        }
        if alphabet.len() != model.config().vocab_size {
            candle_core::bail!("alphabet has {} tokens, model {}", alphabet.len(), model.config().vocab_size);
        }
        let device = model.device().clone();
        Ok(EsmAaPretrain { model, alphabet, masking, device })
    }

    /// Masks one window.
    fn mask(&self, w: &ResidueWindow, rng: &mut Rng) -> Result<MaskedWindow> {
        let m = &self.masking;
        let unzip = Unzip::Ratio { ratio: m.unzip_ratio, seed: rng.next_u64() };
        let mut s = CodeSwitchSequence::from_units(&w.graph, &w.units, &self.alphabet, &unzip)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        // Distance targets: clean distances between atoms of the same residue.
        let mut dist = Vec::new();
        for i in 0..s.len() {
            for j in 0..s.len() {
                if i != j && s.atom[i].is_some() && s.atom[j].is_some() && s.unit[i] == s.unit[j] {
                    if let (Some(a), Some(b)) = (s.coords[i], s.coords[j]) {
                        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
                        dist.push((i, j, d));
                    }
                }
            }
        }
        for c in s.coords.iter_mut().flatten() {
            for x in c.iter_mut() {
                *x += ((rng.uniform() * 2.0 - 1.0) as f32) * m.coord_noise_angstrom;
            }
        }
        let residues: Vec<u32> = "LAGVSERTIDPKQNFYMHWC".chars().map(|c| self.alphabet.residue_id(c)).collect();
        let atoms: Vec<u32> = ["C", "N", "O", "S"].iter().filter_map(|e| self.alphabet.atom_id(e)).collect();
        let mut masked = Vec::new();
        for i in 1..s.len() - 1 {
            if rng.uniform() >= m.mask_prob {
                continue;
            }
            masked.push((i, s.tokens[i]));
            let r = rng.uniform();
            if r < 0.8 {
                s.tokens[i] = self.alphabet.mask;
            } else if r < 0.9 {
                let pool = if s.atom[i].is_some() { &atoms } else { &residues };
                s.tokens[i] = pool[rng.below(pool.len() as u64) as usize];
            }
        }
        Ok((s, masked, dist))
    }

    fn collate(&self, masked: Vec<MaskedWindow>) -> Result<EsmAaBatch> {
        let seqs: Vec<&CodeSwitchSequence> = masked.iter().map(|m| &m.0).collect();
        let batch = CodeSwitchBatch::collate(&seqs, &self.alphabet, &self.device)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let t = batch.tokens.dim(1)?;
        let (mut idx, mut tgt, mut is_atom, mut pidx, mut pd) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (b, (s, m, d)) in masked.iter().enumerate() {
            for &(i, tok) in m {
                idx.push((b * t + i) as u32);
                tgt.push(tok);
                is_atom.push(s.atom[i].is_some());
            }
            for &(i, j, dd) in d {
                pidx.push((b * t * t + i * t + j) as u32);
                pd.push(dd);
            }
        }
        let n = idx.len();
        let pairs = if pidx.is_empty() || batch.pairs.is_none() {
            None
        } else {
            let p = pidx.len();
            Some((Tensor::from_vec(pidx, p, &self.device)?, Tensor::from_vec(pd, p, &self.device)?))
        };
        Ok(EsmAaBatch {
            batch,
            masked: Tensor::from_vec(idx, n, &self.device)?,
            targets: Tensor::from_vec(tgt, n, &self.device)?,
            masked_is_atom: is_atom,
            pairs,
        })
    }

    fn run(&self, b: &EsmAaBatch, train: bool) -> Result<Outcome> {
        let req = EsmRequest { logits: true, train, ..Default::default() };
        let out = self.model.forward(&b.batch, &req).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let logits = out.logits.expect("requested");
        let v = logits.dim(2)?;
        let mut loss = Tensor::zeros((), DType::F32, &self.device)?;
        let (mut ce, mut dist) = (0.0, 0.0);
        let (mut residue, mut atom) = ((0, 0), (0, 0));
        if b.masked.dim(0)? > 0 {
            let picked = logits.reshape(((), v))?.index_select(&b.masked, 0)?;
            let l = candle_nn::loss::cross_entropy(&picked, &b.targets)?;
            ce = l.to_scalar::<f32>()? as f64;
            loss = (loss + l)?;
            let pred = picked.argmax(1)?.to_vec1::<u32>()?;
            let tgt = b.targets.to_vec1::<u32>()?;
            for ((p, t), &a) in pred.iter().zip(&tgt).zip(&b.masked_is_atom) {
                let slot = if a { &mut atom } else { &mut residue };
                slot.0 += (p == t) as usize;
                slot.1 += 1;
            }
        }
        if let (Some((idx, target)), Some(pair)) = (&b.pairs, &out.pair) {
            let d = self.model.distances(pair, train).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let pred = d.flatten_all()?.index_select(idx, 0)?;
            let l1 = (pred - target)?.abs()?.mean_all()?;
            dist = l1.to_scalar::<f32>()? as f64;
            loss = (loss + (l1 * self.masking.distance_weight)?)?;
        }
        Ok(Outcome { loss, ce, dist, residue, atom })
    }
}

fn ratio((c, n): (usize, usize)) -> f64 {
    if n == 0 {
        0.0
    } else {
        c as f64 / n as f64
    }
}

impl Objective for EsmAaPretrain {
    type Item = ResidueWindow;
    type Batch = EsmAaBatch;

    fn prepare(&self, items: &[&ResidueWindow], rng: &mut Rng) -> Result<EsmAaBatch> {
        let masked = items.iter().map(|w| self.mask(w, rng)).collect::<Result<Vec<_>>>()?;
        self.collate(masked)
    }

    fn loss(&self, batch: EsmAaBatch) -> Result<(Tensor, Vec<(String, f64)>)> {
        let o = self.run(&batch, true)?;
        Ok((
            o.loss,
            vec![
                ("mlm_loss".into(), o.ce),
                ("distance_l1".into(), o.dist),
                ("residue_accuracy".into(), ratio(o.residue)),
                ("atom_accuracy".into(), ratio(o.atom)),
            ],
        ))
    }

    /// Losses and recovery accuracies on `items` with a fixed masking (seed 0), 8 per batch.
    fn evaluate(&self, items: &[ResidueWindow]) -> Result<BTreeMap<String, f64>> {
        let mut rng = Rng::new(0);
        let (mut loss, mut ce, mut dist, mut n) = (0.0, 0.0, 0.0, 0usize);
        let (mut residue, mut atom) = ((0, 0), (0, 0));
        for chunk in items.chunks(8) {
            let refs: Vec<&ResidueWindow> = chunk.iter().collect();
            let b = self.prepare(&refs, &mut rng)?;
            let o = self.run(&b, false)?;
            loss += o.loss.to_scalar::<f32>()? as f64;
            ce += o.ce;
            dist += o.dist;
            n += 1;
            residue = (residue.0 + o.residue.0, residue.1 + o.residue.1);
            atom = (atom.0 + o.atom.0, atom.1 + o.atom.1);
        }
        let n = n.max(1) as f64;
        Ok(BTreeMap::from([
            ("loss".to_string(), loss / n),
            ("mlm_loss".to_string(), ce / n),
            ("distance_l1".to_string(), dist / n),
            ("residue_accuracy".to_string(), ratio(residue)),
            ("atom_accuracy".to_string(), ratio(atom)),
        ]))
    }
}
