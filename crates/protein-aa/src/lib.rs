#![warn(missing_docs)]
//! # protein-aa
//!
//! Proteins and glycoproteins as all-atom heterogeneous graphs. Reads PDB and mmCIF (plain,
//! gzip, bzip2), keeps one model and one alternate location per atom, builds amino-acid
//! residues, monosaccharides and other groups as units with CCD template bonds, adds peptide
//! bonds, disulfides and the protein–glycan and glycan–glycan bonds of LINK/`_struct_conn`
//! (with a distance fallback), reports each glycan tree as an IUPAC-condensed string, and adds
//! kNN/radius relations over atoms and over unit anchor atoms.
//!
//! We read the files ourselves instead of through `pdbtbx`: pdbtbx 0.12 drops LINK, CONECT and
//! `_struct_conn`, which carry exactly the bonds a glycoprotein graph needs, and one reader that
//! sees every record keeps errors and line numbers in one place.

mod build;
pub mod esm;
pub mod esm_pretrain;
pub mod lm;
pub mod molfile;
pub mod read;
pub mod tasks;
pub mod templates;
pub mod vabs;
pub mod vabs_official;

use std::path::Path;

pub use build::{build, GlycanTree, Structure, StructureOptions};

/// An error reading a structure: what went wrong, and where when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{message}", path.as_ref().map(|p| format!("{p}: ")).unwrap_or_default(), line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct StructureError {
    /// File, when read from one.
    pub path: Option<String>,
    /// 1-based line in the decompressed text, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl StructureError {
    /// An error without a line.
    pub fn new(message: impl Into<String>) -> StructureError {
        StructureError { path: None, line: None, message: message.into() }
    }

    /// An error at a line.
    pub fn at(line: usize, message: impl Into<String>) -> StructureError {
        StructureError { path: None, line: Some(line), message: message.into() }
    }
}

/// Reads and builds a structure from file content.
pub fn structure_from_bytes(bytes: &[u8], opts: &StructureOptions) -> Result<Structure, StructureError> {
    let raw = read::read_structure(bytes)?;
    build(&raw, opts)
}

/// Reads and builds a structure from a file (PDB or mmCIF, optionally gzip/bzip2).
pub fn read_structure_file(path: &Path, opts: &StructureOptions) -> Result<Structure, StructureError> {
    let with_path = |mut e: StructureError| {
        e.path = Some(path.display().to_string());
        e
    };
    let bytes = read_capped(path).map_err(with_path)?;
    structure_from_bytes(&bytes, opts).map_err(with_path)
}

/// A structure file's bytes, refused past the decompressed-size cap
/// ([`read::max_decompressed_bytes`]): a larger file would exceed it as text too, so at most one
/// byte past it is read (bounded even for FIFOs and devices).
pub(crate) fn read_capped(path: &Path) -> Result<Vec<u8>, StructureError> {
    let limit = read::max_decompressed_bytes();
    read::read_file_at_most(path, limit as u64)
        .map_err(|e| StructureError::new(format!("cannot read: {e}")))?
        .ok_or_else(|| {
            StructureError::new(format!(
                "larger than {limit} bytes (the size cap; set ALLATOM_MAX_DECOMPRESSED_BYTES to raise it)"
            ))
        })
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// A protein sequence (one-letter codes, case-insensitive) as a graph of residue units without
/// atoms, one per letter, linked by peptide links: the input of sequence models (ESM) through
/// the encoder interface. Letters outside the 20 standard amino acids become `UNK` residues
/// (`X`; `U`, `O`, `B`, `Z` keep their own codes); anything but ASCII letters is an error naming its position.
pub fn sequence_graph(sequence: &str) -> Result<aa_graph::HeteroGraph, StructureError> {
    let seq = sequence.trim();
    if seq.is_empty() {
        return Err(StructureError::new("empty sequence"));
    }
    let mut g = aa_graph::HeteroGraph::default();
    for (i, c) in seq.chars().enumerate() {
        if !c.is_ascii_alphabetic() {
            return Err(StructureError::new(format!(
                "sequence character {} is {c:?}, not an amino-acid letter",
                i + 1
            )));
        }
        let c = c.to_ascii_uppercase();
        let k = templates::AMINO_ACIDS.iter().position(|name| aa_codeswitch::one_letter(name) == c);
        let rare = ["SEC", "PYL", "ASX", "GLX"].into_iter().find(|n| aa_codeswitch::one_letter(n) == c);
        let name = k.map(|k| templates::AMINO_ACIDS[k]).or(rare).unwrap_or("UNK");
        g.units.push(aa_graph::Unit {
            kind: aa_graph::UnitKind::Residue,
            type_id: k.map_or(20, |k| k as u32),
            name: name.to_string(),
            anchor: None,
            label: Some(aa_graph::ResidueLabel {
                chain: String::new(),
                number: i as i32 + 1,
                insertion: String::new(),
            }),
        });
        if i > 0 {
            g.unit_links.push(aa_graph::UnitLink {
                src: i as u32 - 1,
                dst: i as u32,
                kind: aa_graph::UnitLinkKind::Peptide,
                type_id: 0,
            });
        }
    }
    Ok(g)
}
