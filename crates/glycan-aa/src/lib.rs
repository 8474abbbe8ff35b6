#![warn(missing_docs)]
//! # glycan-aa
//!
//! Glycans as all-atom molecules. An IUPAC-condensed string (as glycowork and GlycanML write
//! it) is parsed into a tree of monosaccharides, each monosaccharide is built from its core and
//! modifications, and glycosidic bonds are formed by condensation. The result is an
//! [`aa_graph::HeteroGraph`]: heavy atoms (hydrogens counted on them) grouped into
//! monosaccharide units, covalent bonds, and glycosidic unit links.
//!
//! ```
//! let g = glycan_aa::Glycan::from_iupac("Gal(b1-4)GlcNAc").unwrap();
//! assert_eq!(g.molecule.graph.formula(), "C14H25NO11");
//! assert_eq!(g.molecule.graph.num_units(), 2);
//! ```

pub mod ccd;
pub mod compat;
mod fragment;
pub mod iupac;
pub mod model;
pub mod molecule;
pub mod notation;
pub mod pretrain;
pub mod residue;
pub mod snfg;
pub mod tasks;

pub use iupac::{parse_iupac, ParsedGlycan};
pub use molecule::GlycanMolecule;

/// Errors for glycan input. Positions are 0-based byte offsets into the input string (the
/// input is ASCII once accepted, so they are also character offsets); `Display` prints them
/// 1-based as "at character N".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GlycanError {
    /// The string does not follow the IUPAC-condensed grammar, or a name is unknown.
    #[error("at character {}: {message}", position + 1)]
    Parse {
        /// 0-based offset.
        position: usize,
        /// What was not understood.
        message: String,
    },
    /// The string parses but describes an impossible molecule (link to a missing hydroxyl …).
    #[error("at character {}: {message}", position + 1)]
    Chemistry {
        /// 0-based offset of the residue or link concerned.
        position: usize,
        /// What is impossible.
        message: String,
    },
}

impl GlycanError {
    /// 0-based offset in the input.
    pub fn position(&self) -> usize {
        match self {
            GlycanError::Parse { position, .. } | GlycanError::Chemistry { position, .. } => *position,
        }
    }

    /// A short kind label, used to group failures in reports (`parse`, `chemistry`).
    pub fn kind(&self) -> &'static str {
        match self {
            GlycanError::Parse { .. } => "parse",
            GlycanError::Chemistry { .. } => "chemistry",
        }
    }
}

/// A glycan: the input string, its parsed tree and its all-atom molecule.
#[derive(Clone, Debug)]
pub struct Glycan {
    /// The IUPAC-condensed form it was built from: the input itself, or what a WURCS or
    /// GlycoCT input was read as ([`Glycan::parse`]).
    pub iupac: String,
    /// The parsed tree.
    pub tree: ParsedGlycan,
    /// The all-atom molecule.
    pub molecule: GlycanMolecule,
    /// The spacer or aglycone written at the reducing end of a short-form input (`Sp8` of
    /// `…GlcNAcb-Sp8`); the molecule holds the glycan alone, ending in an open link.
    pub aglycone: Option<String>,
}

impl Glycan {
    /// Parses and builds a glycan from an IUPAC-condensed string.
    pub fn from_iupac(s: &str) -> Result<Glycan, GlycanError> {
        let tree = parse_iupac(s)?;
        let molecule = molecule::build(&tree)?;
        Ok(Glycan { iupac: s.to_string(), tree, molecule, aglycone: None })
    }
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
