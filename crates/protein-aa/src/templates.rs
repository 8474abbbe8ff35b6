//! Residue templates from the wwPDB Chemical Component Dictionary: the 20 amino acids and the
//! common sugars (shared with `glycan-aa`), plus every CCD saccharide (1,195 components,
//! embedded compressed, read on first use).

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use glycan_aa::ccd::CcdComponent;

/// The 20 standard amino acids.
pub const AMINO_ACIDS: [&str; 20] = [
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS", "MET", "PHE", "PRO", "SER",
    "THR", "TRP", "TYR", "VAL",
];

/// Residue names treated as water.
pub const WATERS: [&str; 6] = ["HOH", "WAT", "DOD", "H2O", "TIP3", "SOL"];

static SACCHARIDES: OnceLock<HashMap<String, CcdComponent>> = OnceLock::new();
static SACCHARIDE_IDS: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();

/// Ids of every CCD saccharide (a small list, so that waters, ions and ligands never make us
/// load the full saccharide table).
fn saccharide_ids() -> &'static std::collections::HashSet<&'static str> {
    SACCHARIDE_IDS.get_or_init(|| include_str!("../data/saccharide_ids.txt").lines().collect())
}

fn saccharides() -> &'static HashMap<String, CcdComponent> {
    SACCHARIDES.get_or_init(|| {
        let gz: &[u8] = include_bytes!("../data/all_saccharides.json.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz).read_to_string(&mut text).expect("embedded CCD saccharides decompress");
        serde_json::from_str(&text).expect("embedded CCD saccharides are valid JSON")
    })
}

/// The CCD component for a residue name, if embedded (amino acids and saccharides).
pub fn component(resname: &str) -> Option<&'static CcdComponent> {
    glycan_aa::ccd::component(resname)
        .or_else(|| saccharide_ids().contains(resname).then(|| saccharides().get(resname)).flatten())
}

/// True for the 20 standard amino acids.
pub fn is_amino_acid(resname: &str) -> bool {
    AMINO_ACIDS.contains(&resname)
}

/// True when the CCD classifies the component as a saccharide.
pub fn is_saccharide(resname: &str) -> bool {
    saccharide_ids().contains(resname)
}

/// Anomer of a saccharide component from its CCD type (`…, alpha linking`).
pub fn anomer(resname: &str) -> aa_graph::Anomer {
    let t = component(resname).map(|c| c.kind.to_lowercase()).unwrap_or_default();
    if t.contains("alpha") {
        aa_graph::Anomer::Alpha
    } else if t.contains("beta") {
        aa_graph::Anomer::Beta
    } else {
        aa_graph::Anomer::Unknown
    }
}

/// Name of the anomeric carbon of a saccharide component: the ring carbon next to the ring
/// oxygen whose exocyclic oxygen is a leaving atom (C1 for aldoses, C2 for sialic acids).
pub fn anomeric_carbon(resname: &str) -> Option<String> {
    let c = component(resname)?;
    let leaving: std::collections::HashSet<&str> =
        c.atoms.iter().filter(|a| a.leaving && a.element != "H").map(|a| a.name.as_str()).collect();
    let ring: std::collections::HashSet<&str> =
        c.atoms.iter().filter(|a| a.element == "O").map(|a| a.name.as_str()).collect();
    let mut best: Option<String> = None;
    for b in &c.bonds {
        for (x, y) in [(&b.a1, &b.a2), (&b.a2, &b.a1)] {
            if x.starts_with('C') && leaving.contains(y.as_str()) && ring.contains(y.as_str()) {
                // x carries a leaving oxygen; it is anomeric if it is also bonded to another O.
                let other_o = c.bonds.iter().any(|bb| {
                    let o = if bb.a1 == *x {
                        &bb.a2
                    } else if bb.a2 == *x {
                        &bb.a1
                    } else {
                        return false;
                    };
                    o != y && o.starts_with('O') && !leaving.contains(o.as_str())
                });
                if other_o && best.as_ref().is_none_or(|b| x < b) {
                    best = Some(x.clone());
                }
            }
        }
    }
    best
}

/// IUPAC-condensed name of a saccharide component (`NAG` → `GlcNAc`), if known.
pub fn iupac_name(resname: &str) -> Option<&'static str> {
    glycan_aa::ccd::RESIDUE_COMPONENTS
        .iter()
        .find(|(_, a, b)| *a == Some(resname) || *b == Some(resname))
        .map(|(n, _, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sugar_facts() {
        assert!(is_saccharide("NAG"));
        assert!(is_saccharide("FUC"));
        assert!(!is_saccharide("ASN"));
        assert_eq!(anomeric_carbon("NAG").as_deref(), Some("C1"));
        assert_eq!(anomeric_carbon("SIA").as_deref(), Some("C2"));
        assert_eq!(anomer("NAG"), aa_graph::Anomer::Beta);
        assert_eq!(anomer("MAN"), aa_graph::Anomer::Alpha);
        assert_eq!(iupac_name("BMA"), Some("Man"));
        assert!(component("045").is_some(), "full saccharide table loads");
    }
}
