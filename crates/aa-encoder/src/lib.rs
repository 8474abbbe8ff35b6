#![warn(missing_docs)]
//! # aa-encoder
//!
//! The one seam between front ends and encoder families. Every family — GlycanAA and its
//! ablations, the monosaccharide-level RGCN, Vabs-Net, ESM-2 / ESM-AA — implements
//! [`Encoder`]: it reads [`Window`]s of the shared all-atom graph (`aa_graph::HeteroGraph`),
//! turns them into its own model input ([`Encoder::featurize`]: official GlycanAA typing or
//! true molecules, bilevel kNN graphs, code-switch sequences) and returns one
//! [`EncoderOutput`]: every layer's unit and atom states, the final unit embeddings and, where
//! the family has atom nodes, the final atom embeddings. A [`Readout`] turns an output into one
//! vector per window ([`readout::MeanMax`], [`readout::Gigp`], [`readout::Hsa`]); [`tasks`] trains any encoder on graph-level
//! and unit-level labels with the shared trainer of `aa-pretrain`.
//!
//! This crate knows no modality and no family: it sits above the layer crates' users and below
//! the tasks, so a task written here runs every family on every modality (TorchDrug's contract:
//! every model returns the same output, so any task wraps any model).

pub mod attention;
pub mod heads;
pub mod readout;
pub mod tasks;

use std::any::Any;
use std::sync::Arc;

use aa_graph::UnitKind;
pub use aa_graph::Window;
use candle_core::{Result, Tensor};
pub use readout::{
    choice_rates, Gigp, GigpConfig, Hsa, HsaConfig, HsaOutput, MeanMax, Orbit, PoolNodes, Projectors, Readout,
    ReadoutConfig,
};

/// A family's model input for some windows, built by [`Encoder::featurize`] (on the trainer's
/// helper thread, one batch ahead) and consumed by [`Encoder::forward`] of the same encoder.
pub struct Featurized {
    inner: Box<dyn Any + Send>,
    /// Number of windows it holds.
    pub windows: usize,
    /// The windows' unit geometry (what the family's output carries for readouts).
    pub geometry: Arc<UnitGeometry>,
}

impl Featurized {
    /// Wraps a family's input built from `windows` (their [`UnitGeometry`] goes with it).
    pub fn new<T: Any + Send>(input: T, windows: &[&Window]) -> Featurized {
        Featurized { inner: Box::new(input), windows: windows.len(), geometry: Arc::new(UnitGeometry::of(windows)) }
    }

    /// The family's input; an error when it was built by another family.
    pub fn get<T: Any>(&self, family: &str) -> Result<&T> {
        self.inner.downcast_ref::<T>().ok_or_else(|| {
            candle_core::Error::Msg(format!("{family}: this input was featurised by another encoder family"))
        })
    }
}

/// One layer's states, rows aligned with [`EncoderOutput::units`] and [`AtomRows`].
#[derive(Clone, Debug)]
pub struct LayerStates {
    /// Unit rows `[U, width]`.
    pub units: Tensor,
    /// Atom rows `[A, width]` (when the family has atom nodes for this input).
    pub atoms: Option<Tensor>,
}

/// Final atom embeddings and where each row belongs.
#[derive(Clone, Debug)]
pub struct AtomRows {
    /// Atom rows `[A, atom_dim]`, window after window.
    pub states: Tensor,
    /// Row in [`EncoderOutput::units`] of each atom's unit.
    pub unit: Vec<u32>,
    /// Atom index in its window's graph (`HeteroGraph::atoms`), when the family keeps it.
    pub graph_atom: Option<Vec<u32>>,
}

/// What every encoder returns.
#[derive(Clone, Debug)]
pub struct EncoderOutput {
    /// Every layer's states, first layer first (the input embedding is not a layer).
    pub layers: Vec<LayerStates>,
    /// Final unit embeddings `[U, unit_dim]`: window after window, each window's units in its
    /// order.
    pub units: Tensor,
    /// Window of each unit row.
    pub unit_window: Vec<u32>,
    /// Final atom embeddings, for families with atom nodes (GlycanAA, Vabs-Net, ESM-AA atom
    /// tokens); `None` otherwise (RGCN, ESM-2).
    pub atoms: Option<AtomRows>,
    /// Number of windows.
    pub windows: usize,
    /// The windows' unit geometry, rows as [`EncoderOutput::units`] (from [`Featurized`]).
    pub geometry: Option<Arc<UnitGeometry>>,
}

impl EncoderOutput {
    /// Window of each atom row (through its unit).
    pub fn atom_window(&self) -> Option<Vec<u32>> {
        self.atoms.as_ref().map(|a| a.unit.iter().map(|&u| self.unit_window[u as usize]).collect())
    }

    /// Unit rows of window `w`.
    pub fn unit_rows(&self, w: usize) -> std::ops::Range<usize> {
        let lo = self.unit_window.partition_point(|&x| (x as usize) < w);
        let hi = self.unit_window.partition_point(|&x| (x as usize) <= w);
        lo..hi
    }
}

/// Per-unit facts of the windows an output was computed from, in the unit rows' order (window
/// after window, each window's units in its order), for readouts that pool by geometry or
/// structure (GIGP) — built by [`Featurized::new`], so every family carries it into its output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnitGeometry {
    /// Each unit's position (its anchor atom's, else its atoms' centroid; the origin for a unit
    /// without atoms), when every window's graph has coordinates.
    pub positions: Option<Vec<[f32; 3]>>,
    /// Each unit's number of unit links to other units of its window.
    pub degree: Vec<u32>,
}

impl UnitGeometry {
    /// The geometry of `windows`.
    pub fn of(windows: &[&Window]) -> UnitGeometry {
        let mut positions = windows.iter().all(|w| w.graph.positions.is_some()).then(Vec::new);
        let mut degree = Vec::new();
        for w in windows {
            let g = &w.graph;
            let mut slot = vec![u32::MAX; g.units.len()];
            for (i, &u) in w.units.iter().enumerate() {
                if let Some(s) = slot.get_mut(u as usize) {
                    *s = i as u32;
                }
            }
            let at = |u: u32| slot.get(u as usize).copied().filter(|&s| s != u32::MAX);
            let mut deg = vec![0u32; w.units.len()];
            for l in &g.unit_links {
                if let (Some(a), Some(b)) = (at(l.src), at(l.dst)) {
                    if a != b {
                        deg[a as usize] += 1;
                        deg[b as usize] += 1;
                    }
                }
            }
            degree.extend(deg);
            if let (Some(out), Some(pos)) = (positions.as_mut(), &g.positions) {
                let mut sum = vec![[0f64; 3]; w.units.len()];
                let mut count = vec![0usize; w.units.len()];
                for (a, p) in g.atoms.iter().zip(pos) {
                    if let Some(s) = at(a.unit) {
                        for c in 0..3 {
                            sum[s as usize][c] += f64::from(p[c]);
                        }
                        count[s as usize] += 1;
                    }
                }
                for (i, &u) in w.units.iter().enumerate() {
                    let anchor = g.units[u as usize].anchor.and_then(|a| pos.get(a as usize).copied());
                    out.push(anchor.unwrap_or_else(|| {
                        let n = count[i].max(1) as f64;
                        [(sum[i][0] / n) as f32, (sum[i][1] / n) as f32, (sum[i][2] / n) as f32]
                    }));
                }
            }
        }
        UnitGeometry { positions, degree }
    }
}

/// What an encoder needs of its input, so that an impossible pairing is refused before any data
/// is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// 3D coordinates (Vabs-Net's kNN graphs and frames).
    pub coordinates: bool,
    /// The unit kinds it can read, `None` for any (ESM-2 has no atom tokens: residues only; the
    /// official GlycanAA featurisation: monosaccharides only).
    pub unit_kinds: Option<Vec<UnitKind>>,
}

impl Requirements {
    /// Why units of `kind` cannot be read, if they cannot.
    pub fn refuses(&self, kind: UnitKind) -> Option<String> {
        let kinds = self.unit_kinds.as_ref()?;
        if kinds.contains(&kind) {
            return None;
        }
        let words: Vec<&str> = kinds.iter().map(|k| kind_words(*k)).collect();
        Some(format!("reads {} only, not {}", words.join(" and "), kind_words(kind)))
    }
}

fn kind_words(k: UnitKind) -> &'static str {
    match k {
        UnitKind::Residue => "amino-acid residues",
        UnitKind::Monosaccharide => "monosaccharides",
        UnitKind::Other => "other units (ligands, ions)",
    }
}

/// What a data set offers, for [`check_pairing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTraits {
    /// The data set, for messages (e.g. `glycan_type`).
    pub name: String,
    /// Whether its graphs have coordinates.
    pub coordinates: bool,
    /// The unit kinds its windows hold.
    pub unit_kinds: Vec<UnitKind>,
}

/// Why `encoder` cannot read `data`, if it cannot.
pub fn check_pairing(encoder: &dyn Encoder, data: &DataTraits) -> std::result::Result<(), String> {
    let needs = encoder.requirements();
    if needs.coordinates && !data.coordinates {
        return Err(format!(
            "{} needs 3D coordinates, and {} has none (its graphs come without a structure)",
            encoder.family(),
            data.name
        ));
    }
    if let Some(why) = data.unit_kinds.iter().find_map(|k| needs.refuses(*k)) {
        return Err(format!("{} {why}, which {} holds", encoder.family(), data.name));
    }
    Ok(())
}

/// The encoder interface. `forward(featurize(windows), train)` gives one [`EncoderOutput`];
/// `train` selects training behaviour (batch statistics, the differentiable kernels).
pub trait Encoder: Send + Sync {
    /// The family name (the `family` field of configs and packages).
    fn family(&self) -> &str;
    /// Width of the final unit embeddings.
    fn unit_dim(&self) -> usize;
    /// Width of each layer's states ([`EncoderOutput::layers`], first layer first): what a
    /// readout over every layer (HSA-Net) is built for.
    fn layer_dims(&self) -> Vec<usize>;
    /// What the encoder needs of its input.
    fn requirements(&self) -> Requirements {
        Requirements::default()
    }
    /// The family's own graph readout (GlycanAA: mean ‖ max over monosaccharides, or over all
    /// nodes for its AN ablation).
    fn readout(&self) -> Box<dyn Readout> {
        Box::new(MeanMax::default())
    }
    /// Builds the model input of `windows` (no randomness, no masking).
    fn featurize(&self, windows: &[&Window]) -> Result<Featurized>;
    /// Encodes featurised windows.
    fn forward(&self, input: &Featurized, train: bool) -> Result<EncoderOutput>;
    /// Every attention layer's head-averaged attention at inference, one
    /// [`attention::AttentionTrack`] per node set and window (Attention Graphs); `None` for
    /// families that pass messages without attention (GlycanAA, RGCN).
    fn attention(&self, _input: &Featurized) -> Result<Option<Vec<attention::AttentionTrack>>> {
        Ok(None)
    }
    /// `forward(featurize(windows))`.
    fn encode(&self, windows: &[&Window], train: bool) -> Result<EncoderOutput> {
        self.forward(&self.featurize(windows)?, train)
    }
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
