//! PreGlycanAA: multi-scale masked-type recovery, as the official `HeteroGlycanAttributeMasking`
//! task. Per glycan, ⌊0.15·monosaccharides⌋ (at least one) monosaccharides are drawn with
//! replacement and masked together with all their atoms, and ⌊0.45·atoms⌋ further atoms are
//! drawn with replacement; masked monosaccharides become the `Unknown` unit, masked atoms the
//! `Null` atom type (`units + 0`). One MLP (384 → 384 → node types, ReLU; `mlp.layers.{0,1}`)
//! reads the concatenated node features and predicts the original types; the loss is the sum
//! of the monosaccharide and atom cross-entropies.
//!
//! The same objective runs on the true-molecule featurisation
//! ([`crate::model::molecule_compat`], [`PreGlycanAA::on_molecules`]): there every atom of the
//! molecule is a node — the substituents' too (sulfate, phosphate, acetyl, …) — so masking a
//! monosaccharide masks its substituent atoms with it, and the drawn atoms include them. The
//! mask tokens are the unknown-core unit slot and atom type `units + 0` ([`MaskTokens`]).

use std::collections::BTreeMap;

use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::compat::{CompatGraph, CompatVocab};
use crate::model::{GlycanAA, GlycanAABatch, GlycanAAConfig};

/// Masking rates (the official configuration: 0.15 and 0.45).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskingConfig {
    /// Fraction of monosaccharides masked (with their atoms), at least one per glycan.
    pub mono_mask_rate: f64,
    /// Fraction of atoms masked on top.
    pub atom_mask_rate: f64,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig { mono_mask_rate: 0.15, atom_mask_rate: 0.45 }
    }
}

/// The node types masked nodes take, and where a unit's atoms are listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskTokens {
    /// Type of a masked monosaccharide.
    pub unit: u32,
    /// Type of a masked atom.
    pub atom: u32,
    /// Relation of the unit → atom membership edges; `None`: the graph's `cumsum` lists each
    /// unit's atoms (the official featurisation).
    pub membership: Option<u32>,
}

impl MaskTokens {
    /// The official featurisation's: the vocabulary's `Unknown` unit and the `Null` atom
    /// (`units + 0`).
    pub fn official(vocab: &CompatVocab) -> Result<MaskTokens> {
        let unit =
            vocab.units.iter().position(|u| u == "Unknown").ok_or_else(|| {
                candle_core::Error::Msg("the vocabulary has no 'Unknown' unit (the mask token)".into())
            })?;
        Ok(MaskTokens { unit: unit as u32, atom: vocab.units.len() as u32, membership: None })
    }

    /// The true-molecule featurisation's: the unknown-core unit slot, atom type `units + 0`
    /// (no element has atomic number 0) and the membership relation.
    pub fn molecule() -> MaskTokens {
        MaskTokens {
            unit: crate::residue::CORES.len() as u32,
            atom: crate::model::molecule_units() as u32,
            membership: Some(crate::model::molecule_relations() as u32 - 1),
        }
    }

    /// Atom node indices of each unit of `g`.
    fn unit_atoms(&self, g: &CompatGraph) -> Result<Vec<Vec<u32>>> {
        let nu = g.num_units;
        match self.membership {
            None if g.cumsum.len() == nu + 1 => Ok((0..nu).map(|u| (g.cumsum[u]..g.cumsum[u + 1]).collect()).collect()),
            None => {
                candle_core::bail!("masking: the graph lists no atoms per unit (not an official-featurisation graph?)")
            }
            Some(r) => {
                let mut out = vec![Vec::new(); nu];
                for &[a, b, rel] in &g.edges {
                    if rel == r && (a as usize) < nu && b as usize >= nu {
                        out[a as usize].push(b);
                    }
                }
                Ok(out)
            }
        }
    }
}

/// One glycan's masking: node indices (within the glycan) and their original types.
#[derive(Clone, Debug, PartialEq)]
pub struct Masked {
    /// The glycan with masked node types.
    pub graph: CompatGraph,
    /// Masked monosaccharide nodes (sorted, unique) and their true unit ids.
    pub monos: Vec<(u32, u32)>,
    /// Masked atom nodes (sorted, unique) and their true types (`units + Z`).
    pub atoms: Vec<(u32, u32)>,
}

/// Draws the official masking for one glycan, with the featurisation's mask tokens.
pub fn mask_glycan(g: &CompatGraph, tokens: &MaskTokens, cfg: &MaskingConfig, rng: &mut Rng) -> Result<Masked> {
    let nu = g.num_units;
    let n_atoms = g.node_type.len() - nu;
    let (unknown, null_atom) = (tokens.unit, tokens.atom);
    let mut mono = std::collections::BTreeSet::new();
    let mut atom = std::collections::BTreeSet::new();
    if cfg.mono_mask_rate > 0.0 && nu > 0 {
        let members = tokens.unit_atoms(g)?;
        let k = ((nu as f64 * cfg.mono_mask_rate) as usize).max(1);
        for _ in 0..k {
            let u = rng.below(nu as u64) as usize;
            mono.insert(u as u32);
            atom.extend(members[u].iter().copied());
        }
    }
    if cfg.atom_mask_rate > 0.0 && n_atoms > 0 {
        let k = (n_atoms as f64 * cfg.atom_mask_rate) as usize;
        for _ in 0..k {
            atom.insert((nu + rng.below(n_atoms as u64) as usize) as u32);
        }
    }
    let mut graph = g.clone();
    let monos = mono.iter().map(|&i| (i, g.node_type[i as usize])).collect();
    let atoms = atom.iter().map(|&i| (i, g.node_type[i as usize])).collect();
    for &i in &mono {
        graph.node_type[i as usize] = unknown;
    }
    for &i in &atom {
        graph.node_type[i as usize] = null_atom;
    }
    Ok(Masked { graph, monos, atoms })
}

/// The PreGlycanAA model: GlycanAA plus the type-recovery MLP.
pub struct PreGlycanAA {
    /// The encoder.
    pub encoder: GlycanAA,
    layer0: Linear,
    layer1: Linear,
    /// Vocabulary of the featurisation.
    pub vocab: CompatVocab,
    /// Its mask tokens.
    pub tokens: MaskTokens,
    /// Masking rates.
    pub masking: MaskingConfig,
    device: Device,
}

/// Masked glycans collated for the model: the batch and, for masked monosaccharides and atoms,
/// their batch rows and true node types.
#[derive(Clone, Debug)]
pub struct MaskedBatch {
    /// The collated masked glycans.
    pub batch: GlycanAABatch,
    /// Batch rows of masked monosaccharides.
    pub mono_rows: Vec<u32>,
    /// Their true types.
    pub mono_t: Vec<u32>,
    /// Batch rows of masked atoms.
    pub atom_rows: Vec<u32>,
    /// Their true types.
    pub atom_t: Vec<u32>,
}

/// Losses and accuracies of one masked batch.
#[derive(Clone, Debug)]
pub struct MaskedOutput {
    /// Sum of both cross-entropies.
    pub loss: Tensor,
    /// Monosaccharide cross-entropy.
    pub mono_loss: f64,
    /// Atom cross-entropy.
    pub atom_loss: f64,
    /// Correct monosaccharide predictions / masked monosaccharides.
    pub mono_correct: (usize, usize),
    /// Correct atom predictions / masked atoms.
    pub atom_correct: (usize, usize),
}

impl PreGlycanAA {
    /// Loads or creates the encoder (official names) and `mlp.layers.{0,1}` under `vb`, on the
    /// official featurisation with `vocab`.
    pub fn new(vb: VarBuilder, config: &GlycanAAConfig, vocab: CompatVocab, masking: MaskingConfig) -> Result<Self> {
        let tokens = MaskTokens::official(&vocab)?;
        Self::build(vb, config, vocab, tokens, masking)
    }

    /// The same on the true-molecule featurisation ([`crate::model::molecule_compat`] graphs;
    /// `config` sized for it, as [`GlycanAAConfig::paper_on_molecules`]).
    pub fn on_molecules(vb: VarBuilder, config: &GlycanAAConfig, masking: MaskingConfig) -> Result<Self> {
        let want = GlycanAAConfig::paper_on_molecules();
        if (config.num_unit, config.num_relation) != (want.num_unit, want.num_relation) {
            candle_core::bail!(
                "PreGlycanAA on molecules: num_unit/num_relation are {}/{}, the all-atom vocabulary gives {}/{}",
                config.num_unit,
                config.num_relation,
                want.num_unit,
                want.num_relation
            );
        }
        Self::build(vb, config, crate::model::molecule_vocab(), MaskTokens::molecule(), masking)
    }

    fn build(
        vb: VarBuilder,
        config: &GlycanAAConfig,
        vocab: CompatVocab,
        tokens: MaskTokens,
        masking: MaskingConfig,
    ) -> Result<Self> {
        let encoder = GlycanAA::new(vb.clone(), config)?;
        let d = config.node_dim();
        let layer0 = candle_nn::linear(d, d, vb.pp("mlp.layers.0"))?;
        let layer1 = candle_nn::linear(d, config.num_unit, vb.pp("mlp.layers.1"))?;
        Ok(PreGlycanAA { encoder, layer0, layer1, vocab, tokens, masking, device: vb.device().clone() })
    }

    /// Forward on already-masked glycans (`train` selects batch statistics).
    pub fn forward_masked(&self, masked: &[Masked], train: bool) -> Result<MaskedOutput> {
        self.forward_batch(&self.collate_masked(masked)?, train)
    }

    /// Collates masked glycans and lists the batch rows and true types of the masked nodes.
    pub fn collate_masked(&self, masked: &[Masked]) -> Result<MaskedBatch> {
        let graphs: Vec<&CompatGraph> = masked.iter().map(|m| &m.graph).collect();
        let batch = GlycanAABatch::from_compat_refs(&graphs, &self.vocab, &self.device)?;
        let order = batch.order.to_vec1::<u32>()?;
        // Batch rows of every masked node, in input order.
        let (mut mono_rows, mut mono_t, mut atom_rows, mut atom_t) = (vec![], vec![], vec![], vec![]);
        let mut offset = 0usize;
        for m in masked {
            for &(i, t) in &m.monos {
                mono_rows.push(order[offset + i as usize]);
                mono_t.push(t);
            }
            for &(i, t) in &m.atoms {
                atom_rows.push(order[offset + i as usize]);
                atom_t.push(t);
            }
            offset += m.graph.node_type.len();
        }
        Ok(MaskedBatch { batch, mono_rows, mono_t, atom_rows, atom_t })
    }

    /// Forward on a collated masked batch.
    pub fn forward_batch(&self, masked: &MaskedBatch, train: bool) -> Result<MaskedOutput> {
        let out = self.encoder.forward(&masked.batch, train)?;
        let head = |rows: &[u32], targets: &[u32]| -> Result<Option<(Tensor, f64, usize, usize)>> {
            if rows.is_empty() {
                return Ok(None);
            }
            let n = rows.len();
            let rows = Tensor::from_slice(rows, n, &self.device)?;
            let feat = out.all_node_feature.index_select(&rows, 0)?;
            let logits = self.layer1.forward(&self.layer0.forward(&feat)?.relu()?)?;
            let targets = Tensor::from_slice(targets, n, &self.device)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
            let pred = logits.argmax(1)?.to_dtype(DType::U32)?;
            let correct = pred.eq(&targets)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as usize;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            Ok(Some((loss, value, correct, n)))
        };
        let mono = head(&masked.mono_rows, &masked.mono_t)?;
        let atom = head(&masked.atom_rows, &masked.atom_t)?;
        let zero = Tensor::zeros((), DType::F32, &self.device)?;
        let loss = match (&mono, &atom) {
            (Some(m), Some(a)) => (&m.0 + &a.0)?,
            (Some(m), None) => m.0.clone(),
            (None, Some(a)) => a.0.clone(),
            (None, None) => zero,
        };
        Ok(MaskedOutput {
            loss,
            mono_loss: mono.as_ref().map_or(0.0, |m| m.1),
            atom_loss: atom.as_ref().map_or(0.0, |a| a.1),
            mono_correct: mono.as_ref().map_or((0, 0), |m| (m.2, m.3)),
            atom_correct: atom.as_ref().map_or((0, 0), |a| (a.2, a.3)),
        })
    }
}

impl Objective for PreGlycanAA {
    type Item = CompatGraph;
    type Batch = MaskedBatch;

    fn prepare(&self, items: &[&CompatGraph], rng: &mut Rng) -> Result<MaskedBatch> {
        let masked =
            items.iter().map(|g| mask_glycan(g, &self.tokens, &self.masking, rng)).collect::<Result<Vec<_>>>()?;
        self.collate_masked(&masked)
    }

    fn loss(&self, batch: MaskedBatch) -> Result<(Tensor, Vec<(String, f64)>)> {
        let out = self.forward_batch(&batch, true)?;
        let acc = |(c, n): (usize, usize)| if n == 0 { 0.0 } else { c as f64 / n as f64 };
        Ok((
            out.loss,
            vec![
                ("mono_loss".into(), out.mono_loss),
                ("atom_loss".into(), out.atom_loss),
                ("mono_accuracy".into(), acc(out.mono_correct)),
                ("atom_accuracy".into(), acc(out.atom_correct)),
            ],
        ))
    }

    /// Recovery accuracies and losses on `items` with a fixed masking (seed 0), in batches of 256.
    fn evaluate(&self, items: &[CompatGraph]) -> Result<BTreeMap<String, f64>> {
        let mut rng = Rng::new(0);
        let (mut mc, mut mn, mut ac, mut an, mut loss, mut batches) = (0, 0, 0, 0, 0.0, 0);
        for chunk in items.chunks(256) {
            let masked = chunk
                .iter()
                .map(|g| mask_glycan(g, &self.tokens, &self.masking, &mut rng))
                .collect::<Result<Vec<_>>>()?;
            let out = self.forward_masked(&masked, false)?;
            mc += out.mono_correct.0;
            mn += out.mono_correct.1;
            ac += out.atom_correct.0;
            an += out.atom_correct.1;
            loss += out.mono_loss + out.atom_loss;
            batches += 1;
        }
        Ok(BTreeMap::from([
            ("mono_accuracy".into(), mc as f64 / mn.max(1) as f64),
            ("atom_accuracy".into(), ac as f64 / an.max(1) as f64),
            ("loss".into(), loss / batches.max(1) as f64),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::featurize;

    #[test]
    fn masking_follows_the_official_rates() {
        let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &[], 84);
        let g = featurize("Neu5Ac(a2-3)Gal(b1-4)GlcNAc(b1-2)Man(a1-3)[Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc", &vocab)
            .unwrap();
        let (nu, na) = (g.num_units, g.node_type.len() - g.num_units);
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let m =
                mask_glycan(&g, &MaskTokens::official(&vocab).unwrap(), &MaskingConfig::default(), &mut rng).unwrap();
            // ⌊0.15·8⌋ = 1 monosaccharide (clamped to ≥ 1), drawn with replacement.
            assert_eq!(m.monos.len(), 1);
            let (u, t) = m.monos[0];
            assert_eq!(t, g.node_type[u as usize]);
            assert_eq!(
                m.graph.node_type[u as usize] as usize,
                vocab.units.iter().position(|x| x == "Unknown").unwrap()
            );
            // All of that residue's atoms are masked, plus up to ⌊0.45·atoms⌋ drawn ones.
            let own: Vec<u32> = (g.cumsum[u as usize]..g.cumsum[u as usize + 1]).collect();
            assert!(own.iter().all(|a| m.atoms.iter().any(|&(i, _)| i == *a)));
            assert!(m.atoms.len() <= own.len() + (na as f64 * 0.45) as usize);
            assert!(m.atoms.len() > own.len(), "drawn atoms on top");
            for &(i, t) in &m.atoms {
                assert!(i as usize >= nu);
                assert_eq!(t, g.node_type[i as usize]);
                assert_eq!(m.graph.node_type[i as usize] as usize, vocab.units.len(), "Null atom token");
            }
        }
    }

    #[test]
    fn molecule_masking_takes_substituent_atoms_with_their_monosaccharide() {
        let g = crate::Glycan::from_iupac("GlcNAc6S(b1-3)Gal").unwrap();
        let c = crate::model::molecule_compat(&g.molecule.graph, None);
        let tokens = MaskTokens::molecule();
        let (nu, n) = (c.num_units, c.node_type.len());
        let members = tokens.unit_atoms(&c).unwrap();
        // Every atom belongs to exactly one unit.
        let mut all: Vec<u32> = members.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (nu as u32..n as u32).collect::<Vec<_>>());
        let sulfur_type = crate::model::molecule_units() as u32 + 16;
        let s_atom = (nu..n).find(|&i| c.node_type[i] == sulfur_type).expect("the sulfate's S") as u32;
        let s_unit = members.iter().position(|m| m.contains(&s_atom)).unwrap() as u32;
        assert_eq!(g.molecule.graph.units[s_unit as usize].name, "GlcNAc6S", "{:?}", g.molecule.graph.units);
        let cfg = MaskingConfig { mono_mask_rate: 0.5, atom_mask_rate: 0.0 };
        let mut rng = Rng::new(1);
        let mut seen = 0;
        for _ in 0..40 {
            let m = mask_glycan(&c, &tokens, &cfg, &mut rng).unwrap();
            assert_eq!(m.monos.len(), 1);
            let (u, t) = m.monos[0];
            assert_eq!(m.graph.node_type[u as usize], tokens.unit);
            assert_eq!(t, c.node_type[u as usize]);
            let own = &members[u as usize];
            assert_eq!(m.atoms.iter().map(|&(i, _)| i).collect::<Vec<_>>(), *own, "exactly the unit's atoms");
            if u == s_unit {
                seen += 1;
                assert!(m.atoms.contains(&(s_atom, sulfur_type)));
                assert_eq!(m.graph.node_type[s_atom as usize], tokens.atom);
            }
        }
        assert!(seen > 0, "the sulfated unit was drawn");
        // An official-featurisation mask on a molecule graph is refused (no atom lists there).
        let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &[], 84);
        let e = mask_glycan(&c, &MaskTokens::official(&vocab).unwrap(), &cfg, &mut rng).unwrap_err().to_string();
        assert!(e.contains("lists no atoms per unit"), "{e}");
    }
}
