//! Vabs-Net (Zhao et al., ICML 2024, `aa_sparse_attn::Vabs`): bilevel sparse attention over
//! atom and unit kNN graphs with local frames and a virtual node, optionally with per-residue
//! features of a frozen ESM model (`lm`, the official `esm_feat_encoder`). Reads any all-atom
//! graph with coordinates (hydrogens are not nodes); the virtual node is featurised but not
//! returned.
//!
//! Two modes, by the configuration's key: `model` — the all-atom variant ([`VabsConfig`]:
//! sugars and ligands as units, larger vocabularies); `official` — the official code's model
//! and featurisation ([`OfficialConfig`], amino-acid residues only; what `allatom convert`
//! writes for an official checkpoint, see [`super::vabs_official`]).

use aa_encoder::attention::{AttentionMatrix, AttentionNode, AttentionTrack};
use aa_encoder::{AtomRows, Encoder, EncoderOutput, Featurized, LayerStates, Requirements, Window};
use aa_sparse_attn::official::{OfficialConfig, OfficialVabs};
use aa_sparse_attn::{Vabs, VabsConfig, VabsInput};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use protein_aa::lm::LmFeatures;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{typed, Family, PackageFiles};
use crate::inputs::GlycanGraphs;

/// A Vabs-Net configuration (package `config.json` without `family` and `info`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VabsFamilyConfig {
    /// The all-atom variant's encoder (exclusive with `official`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<VabsConfig>,
    /// The official-compatible encoder (exclusive with `model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub official: Option<OfficialConfig>,
    /// An ESM model (directory or hub id) whose final hidden states are per-residue input
    /// features; sets `model.lm_dim` (`official.lm_dim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<String>,
}

/// Vabs-Net behind the encoder interface.
pub struct VabsEncoder {
    /// The encoder.
    pub vabs: Vabs,
    /// The frozen language model, when configured.
    pub lm: Option<LmFeatures>,
}

struct VabsBatch {
    input: VabsInput,
    /// Batch unit rows of the window units, in output order.
    unit_rows: Tensor,
    unit_window: Vec<u32>,
    /// Batch atom rows of atoms of window units, and their output unit rows.
    atom_rows: Tensor,
    atom_unit: Vec<u32>,
    graph_atom: Vec<u32>,
    anchors: Tensor,
    lm: Option<Tensor>,
    /// Per window: its first input unit, its own units, all its input units (the virtual one
    /// included).
    unit_span: Vec<(u32, u32, u32)>,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// The frozen language model `name` (a package directory or hub id).
pub(crate) fn load_lm(name: &str) -> Result<LmFeatures> {
    Ok(LmFeatures::new(crate::package::esm_package(name).with_context(|| format!("lm {name}"))?))
}

/// The hidden width of the ESM package `name`, from its `config.json` alone.
fn lm_width(name: &str) -> Result<usize> {
    let dir =
        aa_pretrain::hub::resolve(name, &[crate::package::CONFIG_FILE], &aa_pretrain::hub::HubOptions::from_env())
            .with_context(|| format!("lm {name}"))?;
    let path = dir.join(crate::package::CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("lm {name}: cannot read {}", path.display()))?;
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("lm {name}: {} is not JSON", path.display()))?;
    let (family, part) = super::split_config(&config).with_context(|| format!("lm {name}"))?;
    if family.name() != "esm" {
        bail!("lm {name}: a {} package, not an ESM language model", family.name());
    }
    Ok(typed::<super::esm::EsmFamilyConfig>("esm", &part).with_context(|| format!("lm {name}"))?.model.hidden_size)
}

impl VabsFamilyConfig {
    /// The all-atom variant's config; an error for an official-mode configuration (what only
    /// the all-atom variant does, such as SMPC pretraining, says so).
    pub fn allatom(&self) -> Result<&VabsConfig> {
        match &self.model {
            Some(m) => Ok(m),
            None => bail!(
                "this needs the all-atom Vabs-Net variant (`model`), not the official-compatible mode (`official`)"
            ),
        }
    }

    /// Checks `lm_dim` against the language model's width (read from its configuration) and
    /// fills it in.
    pub fn complete(mut self) -> Result<Self> {
        let lm_dim = match (&mut self.model, &mut self.official) {
            (Some(m), None) => &mut m.lm_dim,
            (None, Some(o)) => &mut o.lm_dim,
            (Some(_), Some(_)) => bail!("a vabs configuration has `model` (all-atom variant) or `official`, not both"),
            (None, None) => bail!("a vabs configuration needs `model` (all-atom variant) or `official`"),
        };
        match &self.lm {
            None => {
                if let Some(d) = *lm_dim {
                    bail!("the encoder takes {d}-wide language-model features: name the model in `lm`");
                }
            }
            Some(name) => {
                let width = lm_width(name)?;
                match *lm_dim {
                    Some(d) if d != width => {
                        bail!("the encoder takes {d}-wide language-model features, {name} gives {width}")
                    }
                    _ => *lm_dim = Some(width),
                }
            }
        }
        Ok(self)
    }
}

impl Encoder for VabsEncoder {
    fn family(&self) -> &str {
        "vabs"
    }

    fn unit_dim(&self) -> usize {
        self.vabs.config().dim
    }

    fn layer_dims(&self) -> Vec<usize> {
        vec![self.vabs.config().dim; self.vabs.config().layers]
    }

    fn requirements(&self) -> Requirements {
        Requirements { coordinates: true, unit_kinds: None }
    }

    fn featurize(&self, windows: &[&Window]) -> candle_core::Result<Featurized> {
        let opts = self.vabs.config().feature_options();
        let mut parts = Vec::with_capacity(windows.len());
        let (mut rows, mut unit_window, mut base) = (Vec::new(), Vec::new(), 0u32);
        let mut unit_span = Vec::with_capacity(windows.len());
        for (wi, w) in windows.iter().enumerate() {
            let g = &*w.graph;
            let pos = g.positions.as_ref().ok_or_else(|| msg("vabs: a window without coordinates"))?;
            let input = VabsInput::build(g, &w.units, &vec![false; w.units.len()], pos, &opts).map_err(msg)?;
            rows.extend((0..w.units.len() as u32).map(|k| base + k));
            unit_window.extend(std::iter::repeat_n(wi as u32, w.units.len()));
            unit_span.push((base, w.units.len() as u32, input.num_units() as u32));
            base += input.num_units() as u32;
            parts.push(input);
        }
        let lm = match &self.lm {
            Some(lm) => {
                // Each window's units are followed by its virtual node (if any).
                let extra: Vec<usize> = parts.iter().map(|p| p.virtual_units.iter().flatten().count()).collect();
                Some(lm.rows(windows, None, &extra)?)
            }
            None => None,
        };
        let input = VabsInput::concat(&parts);
        let mut out_row = vec![u32::MAX; input.num_units()];
        for (k, &r) in rows.iter().enumerate() {
            out_row[r as usize] = k as u32;
        }
        let (mut atom_rows, mut atom_unit, mut graph_atom) = (Vec::new(), Vec::new(), Vec::new());
        for (a, (&u, g)) in input.atom_unit.iter().zip(&input.graph_atom).enumerate() {
            if let (true, Some(g)) = (out_row[u as usize] != u32::MAX, g) {
                atom_rows.push(a as u32);
                atom_unit.push(out_row[u as usize]);
                graph_atom.push(*g);
            }
        }
        let dev = Device::Cpu;
        let anchors: Vec<u32> = rows.iter().map(|&r| input.anchors[r as usize]).collect();
        let batch = VabsBatch {
            unit_rows: Tensor::from_vec(rows.clone(), rows.len(), &dev)?,
            unit_window,
            atom_rows: Tensor::from_vec(atom_rows.clone(), atom_rows.len(), &dev)?,
            atom_unit,
            graph_atom,
            anchors: Tensor::from_vec(anchors, rows.len(), &dev)?,
            input,
            lm,
            unit_span,
        };
        Ok(Featurized::new(batch, windows))
    }

    fn forward(&self, input: &Featurized, train: bool) -> candle_core::Result<EncoderOutput> {
        let b: &VabsBatch = input.get("vabs")?;
        let out = self.vabs.forward(&b.input, b.lm.as_ref(), train)?;
        let layers = out
            .layers
            .iter()
            .map(|x| {
                Ok(LayerStates { units: x.index_select(&b.anchors, 0)?, atoms: Some(x.index_select(&b.atom_rows, 0)?) })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(EncoderOutput {
            layers,
            units: out.units.index_select(&b.unit_rows, 0)?,
            unit_window: b.unit_window.clone(),
            atoms: Some(AtomRows {
                states: out.atoms.index_select(&b.atom_rows, 0)?,
                unit: b.atom_unit.clone(),
                graph_atom: Some(b.graph_atom.clone()),
            }),
            windows: input.windows,
            geometry: Some(input.geometry.clone()),
        })
    }

    /// Per window three tracks, every layer averaged over heads: `atoms`, the atom track's
    /// attention over the window's atoms (the virtual node a special node); `units`, the unit
    /// track's over its units and virtual unit (its product leaves out what the atom track mixes
    /// into the anchors between layers); and `bilevel`, both tracks as one layer acts on the
    /// atoms — the atom track, then the anchors' rows replaced by the unit track's mix of the
    /// anchors' rows (`L · A`): its product is the layer stack's attention graph.
    fn attention(&self, input: &Featurized) -> candle_core::Result<Option<Vec<AttentionTrack>>> {
        use aa_encoder::attention::{from_edges, MAX_NODES};
        let b: &VabsBatch = input.get("vabs")?;
        let inp = &b.input;
        let att = self.vabs.attention(inp, b.lm.as_ref())?;
        let heads = self.vabs.config().heads;
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let (asrc, adst) = (att.atom_edges.src.to_vec1::<u32>()?, att.atom_edges.dst.to_vec1::<u32>()?);
        let (usrc, udst) = (att.unit_edges.src.to_vec1::<u32>()?, att.unit_edges.dst.to_vec1::<u32>()?);
        let weights: Vec<(Vec<f32>, Vec<f32>)> =
            att.layers.iter().map(|l| Ok((flat(&l.atom)?, flat(&l.unit)?))).collect::<candle_core::Result<_>>()?;
        let labels: Vec<String> = (1..=weights.len()).map(|l| format!("layer {l}")).collect();
        let virt = || AttentionNode::Special("virtual".into());
        let mut tracks = Vec::with_capacity(3 * b.unit_span.len());
        for (w, &(start, own, all)) in b.unit_span.iter().enumerate() {
            let in_window = |u: u32| u >= start && u < start + all;
            let atoms: Vec<u32> =
                (0..inp.num_atoms() as u32).filter(|&a| in_window(inp.atom_unit[a as usize])).collect();
            if atoms.len() > MAX_NODES {
                candle_core::bail!(
                    "vabs: {} atoms are more than the {MAX_NODES} an attention graph holds",
                    atoms.len()
                );
            }
            let mut local = vec![u32::MAX; inp.num_atoms()];
            for (i, &a) in atoms.iter().enumerate() {
                local[a as usize] = i as u32;
            }
            let atom_nodes: Vec<AttentionNode> = atoms
                .iter()
                .map(|&a| inp.graph_atom[a as usize].map(AttentionNode::Atom).unwrap_or_else(virt))
                .collect();
            let atom_layers: Vec<AttentionMatrix> =
                weights.iter().map(|(aw, _)| from_edges(atoms.len(), &local, &asrc, &adst, aw, heads)).collect();
            // The unit track reads the anchors' rows and writes them back.
            let anchor: Vec<usize> = (0..all)
                .map(|k| match local.get(inp.anchors[(start + k) as usize] as usize) {
                    Some(&i) if i != u32::MAX => Ok(i as usize),
                    _ => Err(candle_core::Error::Msg(format!("vabs: unit {k} of window {w} has no anchor atom in it"))),
                })
                .collect::<candle_core::Result<_>>()?;
            let mut unit_local = vec![u32::MAX; inp.num_units()];
            for k in 0..all {
                unit_local[(start + k) as usize] = k;
            }
            let unit_layers: Vec<AttentionMatrix> =
                weights.iter().map(|(_, uw)| from_edges(all as usize, &unit_local, &usrc, &udst, uw, heads)).collect();
            let bilevel = atom_layers.iter().zip(&unit_layers).map(|(a, u)| {
                let mut m = a.clone();
                for (k, &row) in anchor.iter().enumerate() {
                    let out = &mut m.values[row * a.n..(row + 1) * a.n];
                    out.iter_mut().for_each(|x| *x = 0.0);
                    for (v, &wv) in u.row(k).iter().enumerate() {
                        if wv != 0.0 {
                            out.iter_mut().zip(a.row(anchor[v])).for_each(|(o, &x)| *o += wv * x);
                        }
                    }
                }
                m
            });
            let track = |name: &str, nodes: Vec<AttentionNode>, layers: Vec<AttentionMatrix>| AttentionTrack {
                name: name.into(),
                window: w,
                nodes,
                layers,
                labels: labels.clone(),
                chained: true,
            };
            tracks.push(track("bilevel", atom_nodes.clone(), bilevel.collect()));
            tracks.push(track("atoms", atom_nodes, atom_layers));
            tracks.push(track(
                "units",
                (0..all).map(|k| if k < own { AttentionNode::Unit(k) } else { virt() }).collect(),
                unit_layers,
            ));
        }
        Ok(Some(tracks))
    }
}

/// The Vabs-Net family.
pub struct VabsFamily;

impl Family for VabsFamily {
    fn name(&self) -> &'static str {
        "vabs"
    }

    fn summary(&self) -> &'static str {
        "Vabs-Net bilevel sparse attention on 3D structures"
    }

    fn complete(&self, config: &Value) -> Result<Value> {
        Ok(serde_json::to_value(typed::<VabsFamilyConfig>(self.name(), config)?.complete()?)?)
    }

    fn load(&self, vb: VarBuilder, config: &Value, _files: &dyn PackageFiles) -> Result<Box<dyn Encoder>> {
        // One completion (the language model's width checked once), one language model loaded.
        let cfg: VabsFamilyConfig = typed::<VabsFamilyConfig>(self.name(), config)?.complete()?;
        let lm = cfg.lm.as_deref().map(load_lm).transpose()?;
        match &cfg.official {
            Some(o) => Ok(Box::new(super::vabs_official::OfficialEncoder { model: OfficialVabs::new(vb, o)?, lm })),
            None => Ok(Box::new(VabsEncoder { vabs: Vabs::new(vb, cfg.allatom()?)?, lm })),
        }
    }

    fn glycan_graphs(&self, _config: &Value) -> Result<GlycanGraphs> {
        Ok(GlycanGraphs::Molecule)
    }
}
