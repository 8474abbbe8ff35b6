//! wwPDB Chemical Component Dictionary templates for the common monosaccharides and amino acids
//! (attribution: "wwPDB Chemical Component Dictionary"), embedded from
//! `data/ccd_templates.json` (a copy of `shared/data/ccd/templates_aa20_sugars.json`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// One atom of a CCD component.
#[derive(Clone, Debug, Deserialize)]
pub struct CcdAtom {
    /// Atom name (`C1`, `O5`).
    pub name: String,
    /// Element symbol.
    pub element: String,
    /// Formal charge.
    pub charge: i32,
    /// Leaving atom in polymer linkage (e.g. O1 of a sugar).
    pub leaving: bool,
    /// Aromatic flag.
    #[serde(default)]
    pub aromatic: bool,
    /// Ideal coordinates (Å).
    pub ideal_xyz: Option<[f32; 3]>,
}

/// One bond of a CCD component.
#[derive(Clone, Debug, Deserialize)]
pub struct CcdBond {
    /// First atom name.
    pub a1: String,
    /// Second atom name.
    pub a2: String,
    /// `SING`, `DOUB`, `TRIP`.
    pub order: String,
}

/// A CCD component.
#[derive(Clone, Debug, Deserialize)]
pub struct CcdComponent {
    /// CCD id (`NAG`).
    pub id: String,
    /// Chemical name.
    pub name: String,
    /// CCD type (`D-saccharide, beta linking`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Formula as the CCD writes it.
    pub formula: String,
    /// Atoms, hydrogens included.
    pub atoms: Vec<CcdAtom>,
    /// Bonds.
    pub bonds: Vec<CcdBond>,
}

impl CcdComponent {
    /// Heavy atoms (hydrogens excluded).
    pub fn heavy_atoms(&self) -> impl Iterator<Item = &CcdAtom> {
        self.atoms.iter().filter(|a| a.element != "H")
    }

    /// Number of bonds between heavy atoms.
    pub fn heavy_bond_count(&self) -> usize {
        let heavy: std::collections::HashSet<&str> = self.heavy_atoms().map(|a| a.name.as_str()).collect();
        self.bonds.iter().filter(|b| heavy.contains(b.a1.as_str()) && heavy.contains(b.a2.as_str())).count()
    }
}

static TEMPLATES: OnceLock<HashMap<String, CcdComponent>> = OnceLock::new();

/// All embedded components by id.
pub fn templates() -> &'static HashMap<String, CcdComponent> {
    TEMPLATES.get_or_init(|| {
        serde_json::from_str(include_str!("../data/ccd_templates.json")).expect("embedded CCD templates are valid JSON")
    })
}

/// The component with this id, if embedded.
pub fn component(id: &str) -> Option<&'static CcdComponent> {
    templates().get(id)
}

/// IUPAC-condensed residue names with a CCD component: `(name, α id, β id)`. Names are matched
/// exactly (modifications and D/L prefixes included), since a CCD component is one exact
/// molecule.
pub static RESIDUE_COMPONENTS: &[(&str, Option<&str>, Option<&str>)] = &[
    ("Glc", Some("GLC"), Some("BGC")),
    ("Gal", Some("GLA"), Some("GAL")),
    ("Man", Some("MAN"), Some("BMA")),
    ("Gul", None, Some("GL0")),
    ("Fuc", Some("FUC"), Some("FUL")),
    ("D-Fuc", Some("FCA"), Some("FCB")),
    ("Rha", Some("RAM"), Some("RM4")),
    ("Qui", Some("G6D"), None),
    ("Tyv", Some("TYV"), None),
    ("GlcNAc", Some("NDG"), Some("NAG")),
    ("GalNAc", Some("A2G"), Some("NGA")),
    ("AllNAc", None, Some("NAA")),
    ("GlcN", Some("PA1"), Some("GCS")),
    ("GlcNS6S", Some("SGN"), None),
    ("Mur", None, Some("MUR")),
    ("MurNAc", None, Some("AMU")),
    ("Neu5Ac", Some("SIA"), Some("SLB")),
    ("Neu5Gc", Some("NGC"), Some("NGE")),
    ("Kdn", Some("KDM"), Some("KDN")),
    ("Kdo", Some("KDO"), None),
    ("Xyl", Some("XYS"), Some("XYP")),
    ("Ara", Some("ARA"), Some("ARB")),
    ("Araf", Some("AHR"), None),
    ("Rib", None, Some("RIP")),
    ("Ribf", Some("RIB"), None),
    ("Fruf", Some("Z9N"), Some("FRU")),
    ("GlcA", Some("GCU"), Some("BDP")),
    ("GalA", Some("ADA"), Some("GTR")),
    ("ManA", Some("MAV"), Some("BEM")),
    ("IdoA", Some("IDR"), None),
    ("IdoA2S", Some("IDS"), None),
    ("L-GulA", Some("LGU"), None),
    ("LDManHep", Some("GMH"), None),
];

/// The CCD component of a residue as written (`GlcNAc`) with its anomer, if there is one.
pub fn component_for(residue: &str, anomer: aa_graph::Anomer) -> Option<&'static CcdComponent> {
    let (_, a, b) = RESIDUE_COMPONENTS.iter().find(|(n, _, _)| *n == residue)?;
    let id = match anomer {
        aa_graph::Anomer::Alpha => a.or(*b),
        aa_graph::Anomer::Beta | aa_graph::Anomer::Unknown => b.or(*a),
    }?;
    component(id)
}
