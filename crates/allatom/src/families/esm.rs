//! ESM-2 and ESM-AA (Lin et al. 2023; Zheng et al., ICML 2024; `aa_codeswitch::Esm`): a
//! transformer over a code-switch sequence of the window — amino-acid residues as residue
//! tokens, units without a residue token (monosaccharides, ligands) and, with `unzip: "all"`,
//! every residue as atom tokens with a Gaussian pair bias over their distances (ESM-AA only).
//! A unit's row is its residue token's state, or the mean of its atom tokens' states when it
//! has none; atom rows are the atom tokens'. ESM-2 has no atom tokens, so it reads residues only.

use std::collections::HashMap;

use aa_codeswitch::{
    canonical_tensors, Alphabet, CodeSwitchBatch, CodeSwitchSequence, Esm, EsmConfig, EsmRequest, Unzip,
};
use aa_encoder::attention::{AttentionMatrix, AttentionNode, AttentionTrack};
use aa_encoder::{AtomRows, Encoder, EncoderOutput, Featurized, LayerStates, Requirements, Window};
use aa_graph::kernels::scatter_mean;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{typed, Family, PackageFiles};
use crate::inputs::GlycanGraphs;

/// Which residues become atom tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EsmUnzip {
    /// None: residue tokens (units without one are always atoms).
    #[default]
    None,
    /// Every residue (ESM-AA).
    All,
}

/// An ESM configuration: `model` holds the Hugging Face ESM fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsmFamilyConfig {
    /// The model (Hugging Face `config.json` field names).
    pub model: EsmConfig,
    /// Which residues are written as atoms.
    #[serde(default)]
    pub unzip: EsmUnzip,
}

/// ESM behind the encoder interface.
pub struct EsmEncoder {
    /// The model.
    pub model: Esm,
    /// Its alphabet.
    pub alphabet: Alphabet,
    unzip: EsmUnzip,
}

struct EsmBatch {
    batch: CodeSwitchBatch,
    /// Flat `b·T + t` of the tokens that make unit rows, and their unit row.
    unit_tokens: Tensor,
    token_unit: Tensor,
    units: usize,
    unit_window: Vec<u32>,
    atom_tokens: Tensor,
    atom_unit: Vec<u32>,
    graph_atom: Vec<u32>,
    /// Each window's tokens as attention-graph nodes.
    token_nodes: Vec<Vec<AttentionNode>>,
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl EsmEncoder {
    /// Builds the model (fair-esm names) with its alphabet.
    pub fn load(vb: VarBuilder, cfg: &EsmFamilyConfig, alphabet: Alphabet) -> Result<EsmEncoder> {
        if alphabet.len() != cfg.model.vocab_size {
            bail!("vocab_size {} but the tokenizer has {} tokens", cfg.model.vocab_size, alphabet.len());
        }
        if cfg.unzip == EsmUnzip::All && !cfg.model.pair_bias {
            bail!("unzip \"all\" needs an ESM-AA model (atom tokens and pair bias); this is ESM-2");
        }
        Ok(EsmEncoder { model: Esm::load(vb, &cfg.model)?, alphabet, unzip: cfg.unzip })
    }
}

impl Encoder for EsmEncoder {
    fn family(&self) -> &str {
        "esm"
    }

    fn unit_dim(&self) -> usize {
        self.model.config().hidden_size
    }

    fn layer_dims(&self) -> Vec<usize> {
        vec![self.model.config().hidden_size; self.model.config().num_hidden_layers]
    }

    fn requirements(&self) -> Requirements {
        // ESM-2's alphabet has no atom tokens: only residues can be written.
        let residues_only = self.alphabet.atom_id("C").is_none();
        Requirements { coordinates: false, unit_kinds: residues_only.then(|| vec![aa_graph::UnitKind::Residue]) }
    }

    fn featurize(&self, windows: &[&Window]) -> candle_core::Result<Featurized> {
        let unzip = match self.unzip {
            EsmUnzip::None => Unzip::None,
            EsmUnzip::All => Unzip::All,
        };
        let seqs: Vec<CodeSwitchSequence> = windows
            .iter()
            .map(|w| CodeSwitchSequence::from_units(&w.graph, &w.units, &self.alphabet, &unzip).map_err(msg))
            .collect::<candle_core::Result<_>>()?;
        let refs: Vec<&CodeSwitchSequence> = seqs.iter().collect();
        let batch = CodeSwitchBatch::collate(&refs, &self.alphabet, &Device::Cpu).map_err(msg)?;
        let t_len = batch.tokens.dim(1)?;
        let (mut unit_tokens, mut token_unit, mut unit_window) = (Vec::new(), Vec::new(), Vec::new());
        let (mut atom_tokens, mut atom_unit, mut graph_atom) = (Vec::new(), Vec::new(), Vec::new());
        let mut base = 0u32;
        let mut token_nodes = Vec::with_capacity(windows.len());
        for (b, (w, s)) in windows.iter().zip(&seqs).enumerate() {
            let slot: HashMap<u32, u32> = w.units.iter().enumerate().map(|(k, &u)| (u, base + k as u32)).collect();
            token_nodes.push(
                (0..s.len())
                    .map(|t| match (s.atom[t], s.unit[t].and_then(|u| slot.get(&u))) {
                        (Some(a), _) => AttentionNode::Atom(a),
                        (None, Some(&row)) => AttentionNode::Unit(row - base),
                        (None, None) => {
                            AttentionNode::Special(self.alphabet.token(s.tokens[t]).unwrap_or("<unk>").to_string())
                        }
                    })
                    .collect(),
            );
            let has_residue_token: std::collections::HashSet<u32> =
                (0..s.len()).filter(|&t| s.aa_mask[t]).filter_map(|t| s.unit[t]).collect();
            for t in 0..s.len() {
                let Some(row) = s.unit[t].and_then(|u| slot.get(&u).copied()) else { continue };
                let flat = (b * t_len + t) as u32;
                let u = s.unit[t].unwrap_or_default();
                if s.aa_mask[t] || !has_residue_token.contains(&u) {
                    unit_tokens.push(flat);
                    token_unit.push(row);
                }
                if let Some(a) = s.atom[t] {
                    atom_tokens.push(flat);
                    atom_unit.push(row);
                    graph_atom.push(a);
                }
            }
            unit_window.extend(std::iter::repeat_n(b as u32, w.units.len()));
            base += w.units.len() as u32;
        }
        let dev = Device::Cpu;
        let v = |x: Vec<u32>| {
            let n = x.len();
            Tensor::from_vec(x, n, &dev)
        };
        let input = EsmBatch {
            batch,
            unit_tokens: v(unit_tokens)?,
            token_unit: v(token_unit)?,
            units: base as usize,
            unit_window,
            atom_tokens: v(atom_tokens)?,
            atom_unit,
            graph_atom,
            token_nodes,
        };
        Ok(Featurized::new(input, windows))
    }

    fn forward(&self, input: &Featurized, train: bool) -> candle_core::Result<EncoderOutput> {
        let b: &EsmBatch = input.get("esm")?;
        let n = self.model.config().num_hidden_layers;
        let req = EsmRequest { repr_layers: (1..=n).collect(), train, ..Default::default() };
        let out = self.model.forward(&b.batch, &req).map_err(msg)?;
        let e = self.model.config().hidden_size;
        let has_atoms = b.atom_tokens.dim(0)? > 0;
        let states = |rep: &Tensor| -> candle_core::Result<LayerStates> {
            let flat = rep.reshape(((), e))?;
            let units = scatter_mean(&flat.index_select(&b.unit_tokens, 0)?, &b.token_unit, b.units)?;
            let atoms = if has_atoms { Some(flat.index_select(&b.atom_tokens, 0)?) } else { None };
            Ok(LayerStates { units, atoms })
        };
        let layers = (1..=n)
            .map(|l| {
                out.representations.get(&l).map(states).unwrap_or_else(|| candle_core::bail!("esm: layer {l} missing"))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let last = if n == 0 { states(&out.hidden)? } else { layers[n - 1].clone() };
        Ok(EncoderOutput {
            layers,
            units: last.units,
            unit_window: b.unit_window.clone(),
            atoms: last.atoms.map(|states| AtomRows {
                states,
                unit: b.atom_unit.clone(),
                graph_atom: Some(b.graph_atom.clone()),
            }),
            windows: input.windows,
            geometry: Some(input.geometry.clone()),
        })
    }

    /// One `tokens` track per window: every layer's attention averaged over heads, over the
    /// window's tokens (`<cls>` and `<eos>` as special nodes), as `output_attentions` gives it.
    fn attention(&self, input: &Featurized) -> candle_core::Result<Option<Vec<AttentionTrack>>> {
        let b: &EsmBatch = input.get("esm")?;
        // Checked before the forward pass: the maps of every layer and head are `T × T`.
        if let Some(n) = b.token_nodes.iter().map(Vec::len).find(|&n| n > aa_encoder::attention::MAX_NODES) {
            candle_core::bail!(
                "esm: {n} tokens are more than the {} an attention graph holds",
                aa_encoder::attention::MAX_NODES
            );
        }
        let req = EsmRequest { attentions: true, ..Default::default() };
        let out = self.model.forward(&b.batch, &req).map_err(msg)?;
        let maps = out.attentions.ok_or_else(|| msg("esm: no attention maps returned"))?.mean(2)?; // [B, L, T, T]
        let (_, layers, _, _) = maps.dims4()?;
        let mut tracks = Vec::with_capacity(b.token_nodes.len());
        for (w, nodes) in b.token_nodes.iter().enumerate() {
            let n = nodes.len();
            let m = maps.get(w)?.narrow(1, 0, n)?.narrow(2, 0, n)?;
            let layers: Vec<AttentionMatrix> = (0..layers)
                .map(|l| Ok(AttentionMatrix { n, values: m.get(l)?.flatten_all()?.to_vec1::<f32>()? }))
                .collect::<candle_core::Result<_>>()?;
            let labels = (1..=layers.len()).map(|l| format!("layer {l}")).collect();
            tracks.push(AttentionTrack {
                name: "tokens".into(),
                window: w,
                nodes: nodes.clone(),
                layers,
                labels,
                chained: true,
            });
        }
        Ok(Some(tracks))
    }
}

/// The alphabet of a package: `tokenizer.json`, else `vocab.txt`, else the built-in ESM-2 /
/// ESM-AA alphabet of the vocabulary size.
fn alphabet_of(cfg: &EsmConfig, files: &dyn PackageFiles) -> Result<Alphabet> {
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|e| anyhow::anyhow!("not UTF-8: {e}"));
    if let Some(t) = files.read(aa_codeswitch::TOKENIZER_FILE) {
        return Ok(Alphabet::from_tokenizer_json(&text(t)?)?);
    }
    if let Some(t) = files.read(aa_codeswitch::VOCAB_FILE) {
        return Ok(Alphabet::from_vocab_txt(&text(t)?)?);
    }
    match cfg.vocab_size {
        59 => Ok(Alphabet::esm_aa()),
        33 => Ok(Alphabet::esm2()),
        n => bail!(
            "no {} or {}, and vocab_size {n} is neither ESM-2's nor ESM-AA's",
            aa_codeswitch::TOKENIZER_FILE,
            aa_codeswitch::VOCAB_FILE
        ),
    }
}

/// The ESM family.
pub struct EsmFamily;

impl Family for EsmFamily {
    fn name(&self) -> &'static str {
        "esm"
    }

    fn summary(&self) -> &'static str {
        "ESM-2 / ESM-AA code-switch transformer"
    }

    fn complete(&self, config: &Value) -> Result<Value> {
        let cfg: EsmFamilyConfig = typed(self.name(), config)?;
        cfg.model.validate()?;
        Ok(serde_json::to_value(cfg)?)
    }

    fn load(&self, vb: VarBuilder, config: &Value, files: &dyn PackageFiles) -> Result<Box<dyn Encoder>> {
        let cfg: EsmFamilyConfig = typed(self.name(), config)?;
        let alphabet = alphabet_of(&cfg.model, files)?;
        Ok(Box::new(EsmEncoder::load(vb, &cfg, alphabet)?))
    }

    fn glycan_graphs(&self, _config: &Value) -> Result<GlycanGraphs> {
        Ok(GlycanGraphs::Molecule)
    }

    fn canonical_tensors(&self, tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
        canonical_tensors(tensors)
    }
}
