//! Code-switch sequences: residues, some of them "unzipped" into their atoms, as one token
//! sequence with multi-scale positions and atom-pair geometry.
//!
//! Following ESM-AA, an unzipped residue keeps its residue token and its heavy atoms follow it
//! as atom tokens (`C_a`, `N_a`, …). `aa_mask` is true for residue-level tokens (`<cls>`,
//! residues, `<eos>`); the rotary position of a token is `cumsum(aa_mask) - 1`, so atoms share
//! the position of their residue and a sequence without atoms has the positions of plain ESM-2.
//! Units that are not amino-acid residues (ligands, monosaccharides) are written as atoms only.
//! Atom tokens carry coordinates; every pair of atom tokens with coordinates gets its distance
//! and the edge type `tok_i * V + tok_j` (V = alphabet size), the input of the pair bias.

use aa_graph::{HeteroGraph, UnitKind};
use candle_core::{Device, Tensor};

use crate::{Alphabet, CodeSwitchError};

/// Which residues to unzip into atoms.
#[derive(Clone, Debug, PartialEq)]
pub enum Unzip {
    /// None: a plain residue sequence (ESM-2 input), except non-residue units, which have no
    /// residue token and are always atoms.
    None,
    /// Every residue.
    All,
    /// The residues with these unit indices.
    Units(Vec<u32>),
    /// Each residue independently with this probability, decided by a hash of `(seed, unit)`
    /// so the choice is reproducible and independent of thread scheduling.
    Ratio {
        /// Fraction of residues to unzip, in [0, 1].
        ratio: f64,
        /// Seed of the choice.
        seed: u64,
    },
}

/// One code-switch sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeSwitchSequence {
    /// Token ids, starting with `<cls>` and ending with `<eos>`.
    pub tokens: Vec<u32>,
    /// True for residue-level tokens (`<cls>`, residues, `<eos>`), false for atom tokens.
    pub aa_mask: Vec<bool>,
    /// Graph unit of each token (`None` for `<cls>`/`<eos>` and sequence input).
    pub unit: Vec<Option<u32>>,
    /// Graph atom of each atom token.
    pub atom: Vec<Option<u32>>,
    /// Coordinates of atom tokens (when the graph has positions).
    pub coords: Vec<Option<[f32; 3]>>,
}

/// One-letter code of an amino-acid residue name (`X` for unknown ones).
pub fn one_letter(residue_name: &str) -> char {
    match residue_name.to_ascii_uppercase().as_str() {
        "ALA" => 'A',
        "ARG" => 'R',
        "ASN" => 'N',
        "ASP" => 'D',
        "CYS" => 'C',
        "GLN" => 'Q',
        "GLU" => 'E',
        "GLY" => 'G',
        "HIS" => 'H',
        "ILE" => 'I',
        "LEU" => 'L',
        "LYS" => 'K',
        "MET" | "MSE" => 'M',
        "PHE" => 'F',
        "PRO" => 'P',
        "SER" => 'S',
        "THR" => 'T',
        "TRP" => 'W',
        "TYR" => 'Y',
        "VAL" => 'V',
        "SEC" => 'U',
        "PYL" => 'O',
        "ASX" => 'B',
        "GLX" => 'Z',
        _ => 'X',
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl CodeSwitchSequence {
    /// A residue-only sequence from token ids that already include `<cls>`/`<eos>`.
    pub fn from_tokens(tokens: Vec<u32>) -> CodeSwitchSequence {
        let n = tokens.len();
        CodeSwitchSequence {
            tokens,
            aa_mask: vec![true; n],
            unit: vec![None; n],
            atom: vec![None; n],
            coords: vec![None; n],
        }
    }

    /// Builds the sequence of a graph: residues in unit order, the chosen ones unzipped.
    pub fn from_graph(
        graph: &HeteroGraph,
        alphabet: &Alphabet,
        unzip: &Unzip,
    ) -> Result<CodeSwitchSequence, CodeSwitchError> {
        let all: Vec<u32> = (0..graph.units.len() as u32).collect();
        CodeSwitchSequence::from_units(graph, &all, alphabet, unzip)
    }

    /// Builds the sequence of some units of a graph (e.g. a window of a chain), in the given
    /// order.
    pub fn from_units(
        graph: &HeteroGraph,
        units: &[u32],
        alphabet: &Alphabet,
        unzip: &Unzip,
    ) -> Result<CodeSwitchSequence, CodeSwitchError> {
        if units.is_empty() {
            return Err(CodeSwitchError::Input("no units to write".into()));
        }
        if let Some(u) = units.iter().find(|&&u| u as usize >= graph.units.len()) {
            return Err(CodeSwitchError::Input(format!("unit {u} is out of range ({} units)", graph.units.len())));
        }
        if let Unzip::Ratio { ratio, .. } = unzip {
            if !(0.0..=1.0).contains(ratio) {
                return Err(CodeSwitchError::Input(format!("unzip ratio {ratio} is not in [0, 1]")));
            }
        }
        if let Unzip::Units(list) = unzip {
            if let Some(u) = list.iter().find(|&&u| u as usize >= graph.units.len()) {
                return Err(CodeSwitchError::Input(format!(
                    "unit {u} to unzip is out of range ({} units)",
                    graph.units.len()
                )));
            }
        }
        let members = graph.unit_members();
        let mut s = CodeSwitchSequence::from_tokens(vec![alphabet.cls]);
        for &u in units {
            let (u, unit) = (u as usize, &graph.units[u as usize]);
            let residue = unit.kind == UnitKind::Residue;
            let unzipped = !residue
                || match unzip {
                    Unzip::None => false,
                    Unzip::All => true,
                    Unzip::Units(list) => list.contains(&(u as u32)),
                    Unzip::Ratio { ratio, seed } => {
                        ((mix(seed ^ mix(u as u64)) >> 11) as f64 / (1u64 << 53) as f64) < *ratio
                    }
                };
            if residue {
                s.push(alphabet.residue_id(one_letter(&unit.name)), true, Some(u as u32), None, None);
            }
            if unzipped {
                for &a in members.neighbors(u) {
                    let atom = &graph.atoms[a as usize];
                    let id = alphabet.atom_id(atom.element.symbol()).unwrap_or(alphabet.unk);
                    let xyz = graph.positions.as_ref().map(|p| p[a as usize]);
                    s.push(id, false, Some(u as u32), Some(a), xyz);
                }
            }
        }
        s.push(alphabet.eos, true, None, None, None);
        Ok(s)
    }

    fn push(&mut self, token: u32, aa: bool, unit: Option<u32>, atom: Option<u32>, xyz: Option<[f32; 3]>) {
        self.tokens.push(token);
        self.aa_mask.push(aa);
        self.unit.push(unit);
        self.atom.push(atom);
        self.coords.push(xyz);
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Rotary positions: `cumsum(aa_mask) - 1` (atoms share their residue's position).
    pub fn positions(&self) -> Vec<u32> {
        let mut c = 0u32;
        self.aa_mask
            .iter()
            .map(|&a| {
                c += a as u32;
                c.saturating_sub(1)
            })
            .collect()
    }

    /// Every ordered pair `(i, j, distance Å)` of atom tokens that have coordinates, `i == j`
    /// included (distance 0), as in Uni-Mol's pair input.
    pub fn atom_pairs(&self) -> Vec<(u32, u32, f32)> {
        let with_xyz: Vec<(u32, [f32; 3])> = (0..self.len())
            .filter(|&i| self.atom[i].is_some())
            .filter_map(|i| self.coords[i].map(|x| (i as u32, x)))
            .collect();
        let mut out = Vec::with_capacity(with_xyz.len() * with_xyz.len());
        for &(i, a) in &with_xyz {
            for &(j, b) in &with_xyz {
                let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
                out.push((i, j, d));
            }
        }
        out
    }

    /// The sequence as text (`<cls>MKC_aN_a…<eos>` with spaces between tokens).
    pub fn to_text(&self, alphabet: &Alphabet) -> String {
        self.tokens.iter().map(|&t| alphabet.token(t).unwrap_or("<unk>")).collect::<Vec<_>>().join(" ")
    }
}

/// Atom-pair inputs of a batch, stored sparsely: only pairs with distances exist.
#[derive(Clone, Debug)]
pub struct PairInput {
    /// Flat index `b*T*T + i*T + j` of each pair, u32 `[P]`.
    pub index: Tensor,
    /// Distance in Å, f32 `[P]`.
    pub distance: Tensor,
    /// Edge type `tok_i * V + tok_j`, u32 `[P]`.
    pub edge_type: Tensor,
    /// 1 where a pair exists, 0 elsewhere, f32 `[B, 1, T, T]`.
    pub valid: Tensor,
}

/// A padded batch of code-switch sequences as tensors.
#[derive(Clone, Debug)]
pub struct CodeSwitchBatch {
    /// Token ids, u32 `[B, T]`, padded with `<pad>`.
    pub tokens: Tensor,
    /// Rotary positions, u32 `[B, T]`.
    pub positions: Tensor,
    /// Atom pairs, `None` when no sequence has an atom with coordinates.
    pub pairs: Option<PairInput>,
    /// Length of each sequence.
    pub lengths: Vec<usize>,
}

impl CodeSwitchBatch {
    /// Pads and stacks sequences.
    pub fn collate(
        seqs: &[&CodeSwitchSequence],
        alphabet: &Alphabet,
        device: &Device,
    ) -> Result<CodeSwitchBatch, CodeSwitchError> {
        if seqs.is_empty() {
            return Err(CodeSwitchError::Input("empty batch".into()));
        }
        let b = seqs.len();
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut tokens = vec![alphabet.pad; b * t];
        let mut positions = vec![0u32; b * t];
        let (mut index, mut distance, mut edge_type) = (Vec::new(), Vec::new(), Vec::new());
        let mut valid = vec![0f32; b * t * t];
        let v = alphabet.len() as u32;
        for (k, s) in seqs.iter().enumerate() {
            tokens[k * t..k * t + s.len()].copy_from_slice(&s.tokens);
            positions[k * t..k * t + s.len()].copy_from_slice(&s.positions());
            for (i, j, d) in s.atom_pairs() {
                let flat = (k * t * t) as u32 + i * t as u32 + j;
                index.push(flat);
                distance.push(d);
                edge_type.push(s.tokens[i as usize] * v + s.tokens[j as usize]);
                valid[flat as usize] = 1.0;
            }
        }
        let pairs = if index.is_empty() {
            None
        } else {
            let p = index.len();
            Some(PairInput {
                index: Tensor::from_vec(index, p, device)?,
                distance: Tensor::from_vec(distance, p, device)?,
                edge_type: Tensor::from_vec(edge_type, p, device)?,
                valid: Tensor::from_vec(valid, (b, 1, t, t), device)?,
            })
        };
        Ok(CodeSwitchBatch {
            tokens: Tensor::from_vec(tokens, (b, t), device)?,
            positions: Tensor::from_vec(positions, (b, t), device)?,
            pairs,
            lengths: seqs.iter().map(|s| s.len()).collect(),
        })
    }
}
