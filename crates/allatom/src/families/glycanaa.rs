//! GlycanAA (Xu et al., arXiv 2506.01376): hierarchical relational convolutions over atom and
//! monosaccharide nodes (`glycan_aa::model::GlycanAA`, official weight names), and its
//! ablations by configuration — `variant: "flat"` (WP/SP, one convolution per layer over every
//! edge), `readout_type: "all"` (AN, pooling every node).
//!
//! Two featurisations of the shared graph: `official` reads the official-compatible glycan
//! graph (units carry GlycanML's glycoword ids, atoms are each core's free monosaccharide,
//! `glycan_aa::compat`) — what official weights need; `molecule` reads any all-atom graph (true
//! glycan molecules with their modifications, proteins, glycoproteins) in the modality-independent
//! vocabulary of `glycan_aa::model::molecule_compat`, optionally with spatial unit kNN edges.

use aa_encoder::{
    AtomRows, Encoder, EncoderOutput, Featurized, LayerStates, MeanMax, PoolNodes, Readout, Requirements, Window,
};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use glycan_aa::compat::{CompatGraph, CompatVocab};
use glycan_aa::model::{molecule_compat, molecule_vocab, GlycanAA, GlycanAABatch, GlycanAAConfig, ReadoutNodes};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{typed, Family, PackageFiles};
use crate::inputs::GlycanGraphs;

/// Which graph GlycanAA reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Featurisation {
    /// The official-compatible glycan graph (needs `vocab`).
    #[default]
    Official,
    /// Any all-atom graph, true molecules included.
    Molecule,
}

/// A GlycanAA configuration (the package `config.json` without `family` and `info`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlycanAAFamilyConfig {
    /// The encoder (official YAML field names); `num_unit` / `num_relation` 0 are filled from
    /// the featurisation's vocabulary.
    pub model: GlycanAAConfig,
    /// Which graph it reads.
    #[serde(default)]
    pub featurisation: Featurisation,
    /// The official vocabulary (unit and link names in id order), for `official`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<CompatVocab>,
}

impl GlycanAAFamilyConfig {
    /// Fills and checks the model's vocabulary sizes.
    pub fn complete(mut self) -> Result<Self> {
        match (self.featurisation, &self.vocab) {
            (Featurisation::Official, Some(v)) => self.model.sized_for(v)?,
            (Featurisation::Official, None) => {
                bail!("the official featurisation needs `vocab` (unit and link names in id order)")
            }
            (Featurisation::Molecule, _) => {
                let paper = GlycanAAConfig::paper_on_molecules();
                let m = &mut self.model;
                if m.num_unit == 0 {
                    m.num_unit = paper.num_unit;
                }
                if m.num_relation == 0 {
                    m.num_relation = paper.num_relation;
                }
                if (m.num_unit, m.num_relation) != (paper.num_unit, paper.num_relation) {
                    bail!(
                        "model.num_unit/num_relation are {}/{}, the all-atom vocabulary gives {}/{}",
                        m.num_unit,
                        m.num_relation,
                        paper.num_unit,
                        paper.num_relation
                    );
                }
                self.vocab = None;
            }
        }
        if self.featurisation == Featurisation::Official && self.model.unit_knn.is_some() {
            bail!("unit_knn (spatial unit edges) needs the molecule featurisation");
        }
        Ok(self)
    }

    /// The glycan graph a completed configuration reads.
    pub fn glycan_graphs(&self) -> GlycanGraphs {
        match (self.featurisation, &self.vocab) {
            (Featurisation::Official, Some(v)) => GlycanGraphs::Official(v.clone()),
            _ => GlycanGraphs::Molecule,
        }
    }
}

/// GlycanAA behind the encoder interface (also the RGCN baseline's, with `units_only`).
pub struct GlycanAAEncoder {
    model: GlycanAA,
    cfg: GlycanAAFamilyConfig,
    vocab: CompatVocab,
    units_only: bool,
    family: &'static str,
}

/// A collated batch and where its rows belong.
struct GlycanAAInput {
    batch: GlycanAABatch,
    unit_window: Vec<u32>,
    atom_unit: Vec<u32>,
    graph_atom: Vec<u32>,
}

impl GlycanAAEncoder {
    /// Builds the encoder (weights under their official names in `vb`); `units_only` feeds only
    /// unit nodes and unit links (the monosaccharide-level RGCN's input).
    pub fn load(
        vb: VarBuilder,
        cfg: &GlycanAAFamilyConfig,
        units_only: bool,
        family: &'static str,
    ) -> Result<GlycanAAEncoder> {
        let cfg = cfg.clone().complete()?;
        let vocab = match cfg.featurisation {
            Featurisation::Official => {
                cfg.vocab.clone().unwrap_or_else(|| CompatVocab { units: vec![], links: vec![] })
            }
            Featurisation::Molecule => molecule_vocab(),
        };
        Ok(GlycanAAEncoder { model: GlycanAA::new(vb, &cfg.model)?, cfg, vocab, units_only, family })
    }

    /// The underlying model.
    pub fn model(&self) -> &GlycanAA {
        &self.model
    }

    fn compat(&self, g: &aa_graph::HeteroGraph) -> candle_core::Result<CompatGraph> {
        match self.cfg.featurisation {
            Featurisation::Official => CompatGraph::from_hetero(g, &self.vocab).map_err(candle_core::Error::Msg),
            Featurisation::Molecule => Ok(molecule_compat(g, self.cfg.model.unit_knn)),
        }
    }
}

/// Atom indices of a window's atoms in the order `unit_subgraph` lays them out (unit by unit).
pub(crate) fn window_atoms(w: &Window) -> Vec<u32> {
    if w.is_whole() {
        return (0..w.graph.num_atoms() as u32).collect();
    }
    let members = w.graph.unit_members();
    w.units.iter().flat_map(|&u| members.neighbors(u as usize).to_vec()).collect()
}

impl Encoder for GlycanAAEncoder {
    fn family(&self) -> &str {
        self.family
    }

    fn unit_dim(&self) -> usize {
        self.cfg.model.node_dim()
    }

    fn layer_dims(&self) -> Vec<usize> {
        self.cfg.model.hidden_dims.clone()
    }

    fn requirements(&self) -> Requirements {
        // The official featurisation types units by GlycanML's glycoword ids: glycans only.
        let official = self.cfg.featurisation == Featurisation::Official;
        Requirements { coordinates: false, unit_kinds: official.then(|| vec![aa_graph::UnitKind::Monosaccharide]) }
    }

    fn readout(&self) -> Box<dyn Readout> {
        let nodes = match self.cfg.model.readout_type {
            ReadoutNodes::Mono => PoolNodes::Units,
            ReadoutNodes::All => PoolNodes::All,
        };
        Box::new(MeanMax { nodes })
    }

    fn featurize(&self, windows: &[&Window]) -> candle_core::Result<Featurized> {
        let mut graphs = Vec::with_capacity(windows.len());
        let (mut unit_window, mut atom_unit, mut graph_atom) = (Vec::new(), Vec::new(), Vec::new());
        let mut base = 0u32;
        for (wi, w) in windows.iter().enumerate() {
            let compat =
                if w.is_whole() { self.compat(&w.graph)? } else { self.compat(&w.graph.unit_subgraph(&w.units))? };
            unit_window.extend(std::iter::repeat_n(wi as u32, w.units.len()));
            if !self.units_only {
                let atoms = window_atoms(w);
                let slot: std::collections::HashMap<u32, u32> =
                    w.units.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
                for &a in &atoms {
                    atom_unit.push(base + slot[&w.graph.atoms[a as usize].unit]);
                }
                graph_atom.extend(atoms);
            }
            base += w.units.len() as u32;
            graphs.push(compat);
        }
        let refs: Vec<&CompatGraph> = graphs.iter().collect();
        let batch = if self.units_only {
            GlycanAABatch::from_compat_units_only(&refs, &self.vocab, &Device::Cpu)?
        } else {
            GlycanAABatch::from_compat_refs(&refs, &self.vocab, &Device::Cpu)?
        };
        Ok(Featurized::new(GlycanAAInput { batch, unit_window, atom_unit, graph_atom }, windows))
    }

    fn forward(&self, input: &Featurized, train: bool) -> candle_core::Result<EncoderOutput> {
        let inp: &GlycanAAInput = input.get(self.family)?;
        let out = self.model.forward(&inp.batch, train)?;
        let m = inp.batch.edges.num_units;
        let n = inp.batch.node_type.dim(0)?;
        let split = |t: &Tensor| -> candle_core::Result<(Tensor, Option<Tensor>)> {
            let atoms = if self.units_only || n == m { None } else { Some(t.narrow(0, m, n - m)?) };
            Ok((t.narrow(0, 0, m)?, atoms))
        };
        let layers = out
            .hiddens
            .iter()
            .map(|h| split(h).map(|(units, atoms)| LayerStates { units, atoms }))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let (units, atoms) = split(&out.all_node_feature)?;
        Ok(EncoderOutput {
            layers,
            units,
            unit_window: inp.unit_window.clone(),
            atoms: atoms.map(|states| AtomRows {
                states,
                unit: inp.atom_unit.clone(),
                graph_atom: Some(inp.graph_atom.clone()),
            }),
            windows: input.windows,
            geometry: Some(input.geometry.clone()),
        })
    }
}

/// The GlycanAA family.
pub struct GlycanAAFamily;

impl Family for GlycanAAFamily {
    fn name(&self) -> &'static str {
        "glycanaa"
    }

    fn summary(&self) -> &'static str {
        "GlycanAA hierarchical RGConv and its WP/AN ablations"
    }

    fn complete(&self, config: &Value) -> Result<Value> {
        Ok(serde_json::to_value(typed::<GlycanAAFamilyConfig>(self.name(), config)?.complete()?)?)
    }

    fn load(&self, vb: VarBuilder, config: &Value, _files: &dyn PackageFiles) -> Result<Box<dyn Encoder>> {
        let cfg: GlycanAAFamilyConfig = typed(self.name(), config)?;
        Ok(Box::new(GlycanAAEncoder::load(vb, &cfg, false, "glycanaa")?))
    }

    fn glycan_graphs(&self, config: &Value) -> Result<GlycanGraphs> {
        Ok(typed::<GlycanAAFamilyConfig>(self.name(), config)?.complete()?.glycan_graphs())
    }
}
