//! Per-unit classification tasks on any encoder family: DSSP secondary structure and
//! ligand-contact residues of proteins, crystallographic mobility of the monosaccharides of
//! lectin-bound glycans — each trainable on the Vabs-Net encoder ([`Vabs`]) and on GlycanAA's
//! hierarchical relational convolutions ([`GlycanAA`]), because both read the same all-atom
//! graph ([`UnitEncoder`]).
//!
//! A task item is a [`LabelledWindow`]: some units of a structure (consecutive residues of a
//! chain, or every monosaccharide of a glycan) with one optional label each. The head is the
//! official `CLSHead` shape ([`ClsHead`], weights under `residue_cls`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use aa_graph::{Element, HeteroGraph, UnitKind};
use aa_pretrain::metrics;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use aa_sparse_attn::{Vabs, VabsInput};
use candle_core::{Device, Result, Tensor, D};
use candle_nn::VarBuilder;
use glycan_aa::model::{GlycanAA, GlycanAABatch};

use crate::esm_pretrain::ResidueWindow;
use crate::lm::LmFeatures;
use crate::vabs::ClsHead;
use crate::Structure;

/// An encoder that gives one feature row per unit of a set of windows.
pub trait UnitEncoder: Sync {
    /// Featurised windows, ready for [`UnitEncoder::encode`].
    type Input: Send;
    /// Width of a unit's features.
    fn unit_dim(&self) -> usize;
    /// Featurises windows (no randomness, no masking).
    fn featurize(&self, windows: &[&ResidueWindow]) -> Result<Self::Input>;
    /// Unit features `[Σ window units, unit_dim]`: window after window, each window's units in
    /// its order. `train` selects training behaviour (batch statistics, dropout).
    fn encode(&self, input: &Self::Input, train: bool) -> Result<Tensor>;
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Vabs-Net: every window is featurised with [`VabsInput::build`] (atom and anchor kNN, local
/// frames, a virtual node), the windows are concatenated, and the unit track's outputs of the
/// window units are returned.
impl UnitEncoder for Vabs {
    type Input = (VabsInput, Tensor);

    fn unit_dim(&self) -> usize {
        self.config().dim
    }

    fn featurize(&self, windows: &[&ResidueWindow]) -> Result<(VabsInput, Tensor)> {
        let opts = self.config().feature_options();
        let (mut parts, mut rows, mut base) = (Vec::with_capacity(windows.len()), Vec::new(), 0u32);
        for w in windows {
            let g = &*w.graph;
            let pos = g.positions.as_ref().ok_or_else(|| msg("a window without coordinates"))?;
            let input = VabsInput::build(g, &w.units, &vec![false; w.units.len()], pos, &opts).map_err(msg)?;
            rows.extend((0..w.units.len() as u32).map(|k| base + k));
            base += input.num_units() as u32;
            parts.push(input);
        }
        let n = rows.len();
        Ok((VabsInput::concat(&parts), Tensor::from_vec(rows, n, &Device::Cpu)?))
    }

    fn encode(&self, input: &(VabsInput, Tensor), train: bool) -> Result<Tensor> {
        self.forward(&input.0, None, train)?.units.index_select(&input.1, 0)
    }
}

/// Vabs-Net with per-residue language-model features ([`LmFeatures`]; the config's `lm_dim`
/// must equal the model's width).
pub struct VabsLm {
    /// The encoder.
    pub vabs: Vabs,
    /// The frozen language model.
    pub lm: LmFeatures,
}

impl UnitEncoder for VabsLm {
    type Input = ((VabsInput, Tensor), Tensor);

    fn unit_dim(&self) -> usize {
        self.vabs.config().dim
    }

    fn featurize(&self, windows: &[&ResidueWindow]) -> Result<Self::Input> {
        let (input, rows) = self.vabs.featurize(windows)?;
        // Each window's units are followed by its virtual node (if any).
        let extra: Vec<usize> = input.virtual_units.iter().map(|v| v.is_some() as usize).collect();
        let lm = self.lm.rows(windows, None, &extra)?;
        Ok(((input, rows), lm))
    }

    fn encode(&self, input: &Self::Input, train: bool) -> Result<Tensor> {
        let ((x, rows), lm) = input;
        self.vabs.forward(x, Some(lm), train)?.units.index_select(rows, 0)
    }
}

/// GlycanAA's hierarchical RGConv: every window becomes the subgraph of its units
/// ([`HeteroGraph::unit_subgraph`]: their atoms, bonds and unit links — residues with peptide
/// and disulfide links, monosaccharides with glycosidic links), collated in the
/// modality-independent vocabulary of [`GlycanAABatch::from_molecules_with`]; the unit nodes'
/// features (every block's output, concatenated) are returned. Coordinates are used only when
/// the config asks for spatial unit edges (`unit_knn`).
impl UnitEncoder for GlycanAA {
    type Input = GlycanAABatch;

    fn unit_dim(&self) -> usize {
        self.config().node_dim()
    }

    fn featurize(&self, windows: &[&ResidueWindow]) -> Result<GlycanAABatch> {
        let subgraphs: Vec<HeteroGraph> = windows.iter().map(|w| w.graph.unit_subgraph(&w.units)).collect();
        GlycanAABatch::from_molecules_with(&subgraphs.iter().collect::<Vec<_>>(), self.config().unit_knn, &Device::Cpu)
    }

    fn encode(&self, input: &GlycanAABatch, train: bool) -> Result<Tensor> {
        Ok(self.forward(input, train)?.node_feature)
    }
}

/// A window of units with per-unit labels (`None`: unlabelled).
#[derive(Clone, Debug)]
pub struct LabelledWindow {
    /// The units.
    pub window: ResidueWindow,
    /// One label per unit of the window.
    pub labels: Vec<Option<u32>>,
}

/// A per-unit classification task on an encoder (Vabs-Net by default).
pub struct ResidueTask<E: UnitEncoder = Vabs> {
    /// The encoder.
    pub model: E,
    /// The head (`residue_cls`).
    pub head: ClsHead,
    /// Number of classes.
    pub classes: usize,
}

/// A prepared task batch.
pub struct ResidueBatch<I> {
    input: I,
    rows: Tensor,
    labels: Tensor,
}

impl<E: UnitEncoder> ResidueTask<E> {
    /// The task with a new head under `residue_cls`.
    pub fn new(model: E, vb: VarBuilder, classes: usize) -> Result<ResidueTask<E>> {
        let d = model.unit_dim();
        Ok(ResidueTask { head: ClsHead::new(vb.pp("residue_cls"), d, classes)?, model, classes })
    }

    fn logits(&self, b: &ResidueBatch<E::Input>, train: bool) -> Result<Tensor> {
        let units = self.model.encode(&b.input, train)?;
        self.head.forward(&units.index_select(&b.rows, 0)?, train)
    }

    /// Class probabilities and labels of every labelled unit of `items`.
    pub fn predict(&self, items: &[LabelledWindow]) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
        let mut rng = Rng::new(0);
        let (mut probs, mut labels) = (Vec::new(), Vec::new());
        for chunk in items.chunks(8) {
            let refs: Vec<&LabelledWindow> = chunk.iter().collect();
            let b = self.prepare(&refs, &mut rng)?;
            if b.labels.dim(0)? == 0 {
                continue;
            }
            let p = candle_nn::ops::softmax(&self.logits(&b, false)?, D::Minus1)?;
            probs.extend(p.to_vec2::<f32>()?);
            labels.extend(b.labels.to_vec1::<u32>()?.into_iter().map(|l| l as usize));
        }
        Ok((probs, labels))
    }
}

impl<E: UnitEncoder> Objective for ResidueTask<E> {
    type Item = LabelledWindow;
    type Batch = ResidueBatch<E::Input>;

    fn prepare(&self, items: &[&LabelledWindow], _rng: &mut Rng) -> Result<Self::Batch> {
        let windows: Vec<&ResidueWindow> = items.iter().map(|it| &it.window).collect();
        let (mut rows, mut labels, mut base) = (Vec::new(), Vec::new(), 0u32);
        for it in items {
            if it.labels.len() != it.window.units.len() {
                candle_core::bail!("{} labels for a window of {} units", it.labels.len(), it.window.units.len());
            }
            for (k, l) in it.labels.iter().enumerate() {
                if let Some(l) = l {
                    if *l as usize >= self.classes {
                        candle_core::bail!("label {l} of a {}-class task", self.classes);
                    }
                    rows.push(base + k as u32);
                    labels.push(*l);
                }
            }
            base += it.window.units.len() as u32;
        }
        let n = rows.len();
        let dev = Device::Cpu;
        Ok(ResidueBatch {
            input: self.model.featurize(&windows)?,
            rows: Tensor::from_vec(rows, n, &dev)?,
            labels: Tensor::from_vec(labels, n, &dev)?,
        })
    }

    fn loss(&self, b: Self::Batch) -> Result<(Tensor, Vec<(String, f64)>)> {
        if b.labels.dim(0)? == 0 {
            candle_core::bail!("unit task: a batch without labelled units");
        }
        let logits = self.logits(&b, true)?;
        Ok((candle_nn::loss::cross_entropy(&logits, &b.labels)?, vec![]))
    }

    fn evaluate(&self, items: &[LabelledWindow]) -> Result<BTreeMap<String, f64>> {
        let (probs, labels) = self.predict(items)?;
        let pred = metrics::argmax(&probs);
        let err = |e: metrics::MetricError| candle_core::Error::Msg(e.to_string());
        let mut m = BTreeMap::from([
            ("accuracy".to_string(), metrics::accuracy(&pred, &labels).map_err(err)?),
            ("macro_f1".to_string(), metrics::macro_f1(&pred, &labels).map_err(err)?),
        ]);
        if self.classes == 2 {
            let scores: Vec<f64> = probs.iter().map(|p| p[1] as f64).collect();
            let pos: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
            m.insert("auroc".into(), metrics::auroc(&scores, &pos).map_err(err)?);
            m.insert("auprc".into(), metrics::auprc(&scores, &pos).map_err(err)?);
        }
        Ok(m)
    }
}

/// DSSP 3-state classes: helix (H, G, I → 0), strand (E, B → 1), loop (everything else → 2).
pub fn dssp_class(c: char) -> u32 {
    match c {
        'H' | 'G' | 'I' => 0,
        'E' | 'B' => 1,
        _ => 2,
    }
}

/// Reads an MDAnalysis-style `.dssp` file (`<one char per residue> <file name>`) and pairs it
/// with the amino-acid residues of `graph` in file order: errors when the counts differ.
pub fn dssp_labels(path: &Path, graph: &HeteroGraph) -> std::result::Result<Vec<Option<u32>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let codes = text.split_whitespace().next().ok_or_else(|| format!("{}: empty DSSP file", path.display()))?;
    let residues = graph.units.iter().filter(|u| u.kind == UnitKind::Residue).count();
    let n = codes.chars().count();
    if n != residues {
        return Err(format!("{}: {n} DSSP codes for {residues} amino-acid residues", path.display()));
    }
    let mut codes = codes.chars();
    Ok(graph
        .units
        .iter()
        .map(|u| if u.kind == UnitKind::Residue { codes.next().map(dssp_class) } else { None })
        .collect())
}

/// Ligand-contact labels: 1 for amino-acid residues with a heavy atom within `cutoff` Å of a
/// heavy atom of a ligand (a non-residue, non-sugar unit of at least `min_ligand_atoms` heavy
/// atoms), 0 for other residues, `None` for non-residues. `None` overall when the structure
/// has no such ligand.
pub fn ligand_contact_labels(g: &HeteroGraph, cutoff: f32, min_ligand_atoms: usize) -> Option<Vec<Option<u32>>> {
    let pos = g.positions.as_ref()?;
    let heavy = |i: usize| g.atoms[i].element != Element::H;
    let mut per_unit = vec![0usize; g.num_units()];
    for (i, a) in g.atoms.iter().enumerate() {
        if heavy(i) {
            per_unit[a.unit as usize] += 1;
        }
    }
    let ligand: Vec<[f32; 3]> = (0..g.num_atoms())
        .filter(|&i| {
            let u = g.atoms[i].unit as usize;
            heavy(i) && g.units[u].kind == UnitKind::Other && per_unit[u] >= min_ligand_atoms
        })
        .map(|i| pos[i])
        .collect();
    if ligand.is_empty() {
        return None;
    }
    let c2 = cutoff * cutoff;
    let mut contact = vec![false; g.num_units()];
    for (i, a) in g.atoms.iter().enumerate() {
        let u = a.unit as usize;
        if !heavy(i) || g.units[u].kind != UnitKind::Residue || contact[u] {
            continue;
        }
        let p = pos[i];
        contact[u] = ligand.iter().any(|q| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2) <= c2);
    }
    Some(
        g.units
            .iter()
            .enumerate()
            .map(|(u, unit)| (unit.kind == UnitKind::Residue).then_some(contact[u] as u32))
            .collect(),
    )
}

/// Residue windows of `graph` with labels from `labels` (indexed by unit).
pub fn labelled_windows(graph: Arc<HeteroGraph>, labels: &[Option<u32>], window: usize) -> Vec<LabelledWindow> {
    crate::esm_pretrain::residue_windows(graph, window)
        .into_iter()
        .map(|w| {
            let l = w.units.iter().map(|&u| labels[u as usize]).collect();
            LabelledWindow { window: w, labels: l }
        })
        .collect()
}

/// Relative crystallographic mobility of monosaccharides (e.g. of a lectin-bound glycan): per
/// monosaccharide, the mean B-factor of its heavy atoms; label 1 ("more mobile") when it
/// exceeds the mean over the structure's monosaccharides, else 0; `None` for other units.
/// `None` overall when the structure has fewer than two monosaccharides or their mean
/// B-factors span less than 0.01 Å² (nothing to tell apart).
pub fn sugar_mobility_labels(s: &Structure) -> Option<Vec<Option<u32>>> {
    let g = &s.graph;
    if s.b_factors.len() != g.num_atoms() {
        return None;
    }
    let mut sum = vec![(0f64, 0usize); g.num_units()];
    for (a, atom) in g.atoms.iter().enumerate() {
        if atom.element != Element::H {
            let e = &mut sum[atom.unit as usize];
            e.0 += s.b_factors[a] as f64;
            e.1 += 1;
        }
    }
    let mean: Vec<Option<f64>> = g
        .units
        .iter()
        .zip(&sum)
        .map(|(u, &(b, n))| (u.kind == UnitKind::Monosaccharide && n > 0).then(|| b / n as f64))
        .collect();
    let values: Vec<f64> = mean.iter().flatten().copied().collect();
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if values.len() < 2 || hi - lo < 0.01 {
        return None;
    }
    let avg = values.iter().sum::<f64>() / values.len() as f64;
    Some(mean.iter().map(|m| m.map(|v| (v > avg) as u32)).collect())
}

/// One window holding every unit of a structure (a glycan with its aglycone, a small
/// complex), with labels indexed by unit.
pub fn whole_structure_window(graph: Arc<HeteroGraph>, labels: &[Option<u32>]) -> LabelledWindow {
    let units: Vec<u32> = (0..graph.num_units() as u32).collect();
    let labels = units.iter().map(|&u| labels.get(u as usize).copied().flatten()).collect();
    LabelledWindow { window: ResidueWindow { graph, units }, labels }
}
