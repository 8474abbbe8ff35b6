//! Glycan notations besides IUPAC-condensed: each is read into a tree of named residues,
//! written as an IUPAC-condensed string ([`to_iupac`]) and then parsed and built like any IUPAC
//! input, so every notation gives exactly the molecule its IUPAC-condensed form gives. Errors
//! point into the original string.
//!
//! ```
//! use glycan_aa::{Glycan, notation::Notation};
//! let w = "WURCS=2.0/2,2,1/[a2122h-1b_1-5_2*NCC/3=O][a2112h-1b_1-5]/1-2/a4-b1";
//! let g = Glycan::parse(w).unwrap();
//! assert_eq!(g.iupac, "Gal(b1-4)GlcNAc(b1-");
//! assert_eq!(g.molecule.graph.formula(), Glycan::from_iupac("Gal(b1-4)GlcNAc").unwrap().molecule.graph.formula());
//! assert_eq!(Notation::detect(w), Notation::Wurcs);
//! ```

mod glycam;
mod glycoct;
mod loose;
mod mono;
mod write;
mod wurcs;

use crate::{Glycan, GlycanError};
use serde::{Deserialize, Serialize};

/// A glycan notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notation {
    /// IUPAC-condensed (`Gal(b1-4)GlcNAc`), as glycowork and GlycanML write it — and, when
    /// that does not parse, IUPAC as researchers paste it: copy-paste artefacts, IUPAC-extended
    /// (`β-D-Galp-(1→4)-β-D-GlcpNAc`), the short forms of glycan arrays (`Galb1-4GlcNAcb-Sp8`,
    /// `Fuca2Galb3GalNAc`, round-bracket branches) and GLYCAM condensed
    /// (`DGalpb1-4DGlcpNAcb1-OH`); see the `loose` and `glycam` modules.
    Iupac,
    /// WURCS 2.0 (`WURCS=2.0/…`), as GlyTouCan stores it.
    Wurcs,
    /// GlycoCT condensed (`RES … LIN …`), as GlycomeDB, UniCarbKB and glycowork write it.
    GlycoCt,
}

impl Notation {
    /// The notation a string is written in: `WURCS=` starts WURCS, `RES` (first word) starts
    /// GlycoCT, anything else is read as IUPAC-condensed.
    pub fn detect(s: &str) -> Notation {
        let t = s.trim_start();
        if t.starts_with("WURCS=") {
            Notation::Wurcs
        } else if t.starts_with("RES") && t[3..].starts_with(|c: char| c.is_whitespace() || c == '\\') {
            Notation::GlycoCt
        } else {
            Notation::Iupac
        }
    }

    /// The name as the CLI's `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Notation::Iupac => "iupac",
            Notation::Wurcs => "wurcs",
            Notation::GlycoCt => "glycoct",
        }
    }
}

impl std::str::FromStr for Notation {
    type Err = String;

    fn from_str(s: &str) -> Result<Notation, String> {
        match s.to_ascii_lowercase().as_str() {
            "iupac" | "iupac-condensed" => Ok(Notation::Iupac),
            "wurcs" => Ok(Notation::Wurcs),
            "glycoct" => Ok(Notation::GlycoCt),
            other => Err(format!("unknown glycan notation '{other}' (iupac, wurcs, glycoct)")),
        }
    }
}

/// The written tree and the IUPAC-condensed string it became.
struct Converted {
    tree: write::Tree,
    written: write::Written,
    /// Offset of the notation's positions in the input (leading whitespace before WURCS).
    lead: usize,
}

fn convert(s: &str, notation: Notation) -> Result<Option<Converted>, GlycanError> {
    let read = match notation {
        Notation::Iupac => return Ok(None),
        Notation::Wurcs => wurcs::read(s.trim()),
        Notation::GlycoCt => glycoct::read(s),
    };
    let lead = if notation == Notation::Wurcs { s.len() - s.trim_start().len() } else { 0 };
    let tree = read.map_err(|(position, message)| GlycanError::Parse { position: position + lead, message })?;
    let written = tree.write(0).map_err(|message| GlycanError::Parse { position: lead, message })?;
    Ok(Some(Converted { tree, written, lead }))
}

/// The IUPAC-condensed form of a glycan written in `notation` (IUPAC input is returned as
/// it is).
pub fn to_iupac(s: &str, notation: Notation) -> Result<String, GlycanError> {
    Ok(match convert(s, notation)? {
        Some(c) => c.written.text,
        None => s.to_string(),
    })
}

impl Glycan {
    /// Parses and builds a glycan in any notation the crate reads, detected by
    /// [`Notation::detect`].
    pub fn parse(s: &str) -> Result<Glycan, GlycanError> {
        Glycan::parse_as(s, Notation::detect(s))
    }

    /// Parses and builds a glycan written in `notation`. The glycan's `iupac` is the
    /// IUPAC-condensed form it was built from; errors point into `s`.
    pub fn parse_as(s: &str, notation: Notation) -> Result<Glycan, GlycanError> {
        let Some(c) = convert(s, notation)? else {
            return Glycan::from_iupac(s).or_else(|strict| Glycan::from_loose(s).ok_or(strict));
        };
        Glycan::from_iupac(&c.written.text).map_err(|e| {
            let residue = c.lead + c.tree.source_of(&c.written, e.position());
            let detail = format!("{} (read as IUPAC-condensed '{}')", strip_position(&e), c.written.text);
            match e {
                GlycanError::Parse { .. } => GlycanError::Parse { position: residue, message: detail },
                GlycanError::Chemistry { .. } => GlycanError::Chemistry { position: residue, message: detail },
            }
        })
    }
}

impl Glycan {
    /// A loosely written IUPAC string (`loose` module), when its rewrite builds.
    fn from_loose(s: &str) -> Option<Glycan> {
        // Real glycans in these forms are far shorter; the rewrite tries residue splits.
        if s.len() > 8192 {
            return None;
        }
        let cleaned = loose::clean(s);
        if cleaned != s {
            if let Ok(g) = Glycan::from_iupac(&cleaned) {
                return Some(g);
            }
        }
        loose::read(&cleaned)
    }
}

/// An error's message without its "at character N: " prefix.
fn strip_position(e: &GlycanError) -> String {
    match e {
        GlycanError::Parse { message, .. } | GlycanError::Chemistry { message, .. } => message.clone(),
    }
}
