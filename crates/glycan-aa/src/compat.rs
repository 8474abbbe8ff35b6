//! Compatibility featurisation: the heterogeneous graph exactly as the official GlycanAA code
//! builds it (`HeterogeneousAllAtomGlycan.from_iupac` in kasawa1234/GlycanAA, on GlycanML's
//! `Glycan`), so that official weights can be loaded and give the same numbers.
//!
//! How it differs from the true molecule of [`crate::molecule`]:
//! - every residue is reduced to its *core* (glycowork's `get_core`: `GlcNAc6S` → `GlcNAc`,
//!   `Neu5,9Ac2` → `Neu5Ac`, `D-Fuc` → `Fuc`), so modifications are dropped;
//! - each residue contributes the atoms of its **free** monosaccharide (every hydroxyl kept,
//!   the anomeric OH too) and there are no bonds between residues' atoms;
//! - nodes are one list: the residues first (type = unit id in the official vocabulary), then
//!   the atoms residue by residue (type = number of units + atomic number, e.g. 127 + 6);
//! - edges are `(src, dst, relation)`: residue–residue links both ways with the link's id,
//!   bonds both ways with relation `links + bond type` (single 0, double 1, triple 2,
//!   aromatic 3), and residue↔atom membership both ways with relation `links + 4`;
//! - residues inside `{...}` get no residue–residue edge, and a link missing from the
//!   vocabulary gives no edge (as GlycanML does).
//!
//! The official id order comes from GlycanML's `glycoword_vocab.pkl`, which is not part of this
//! repository: load it with [`CompatVocab::from_json`] after dumping it once with
//! `python -c "import pickle, json; print(json.dumps(pickle.load(open('glycoword_vocab.pkl', 'rb'))))"`.

use aa_graph::{Bond, HeteroGraph, Unit, UnitKind, UnitLink, UnitLinkKind};
use serde::{Deserialize, Serialize};

use crate::{Glycan, GlycanError};

/// The official vocabulary: residue cores and links, each in id order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompatVocab {
    /// Residue cores (`Glc`, `GlcNAc`, `Neu5Ac`, …) in id order (127 in GlycanAA's release).
    pub units: Vec<String>,
    /// Links (`a1-2`, `b1-4`, `1-4`, …) in id order (84 in GlycanAA's release).
    pub links: Vec<String>,
}

/// Errors loading a vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    /// Not JSON of the expected shape.
    #[error("compat vocabulary: {0}")]
    Invalid(String),
}

fn is_link_word(w: &str) -> bool {
    if w.starts_with(['a', 'b', '?']) {
        return true;
    }
    // ^[0-9]+(-[0-9]+)+$
    let parts: Vec<&str> = w.split('-').collect();
    parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

impl CompatVocab {
    /// Splits GlycanML's entity list (the pickle's content, in order) into units and links the
    /// way GlycanML does: a word starting with `a`, `b`, `?` or shaped like `1-4` is a link.
    pub fn from_entities(entities: &[String]) -> CompatVocab {
        let (links, units): (Vec<String>, Vec<String>) = entities.iter().cloned().partition(|w| is_link_word(w));
        CompatVocab { units, links }
    }

    /// Reads `{"units": [...], "links": [...]}`, the pickle's plain entity list, or an object
    /// with that list under `glycowords` (the form of the bundled official vocabulary).
    pub fn from_json(s: &str) -> Result<CompatVocab, VocabError> {
        if let Ok(v) = serde_json::from_str::<CompatVocab>(s) {
            return Ok(v);
        }
        #[derive(Deserialize)]
        struct Words {
            glycowords: Vec<String>,
        }
        if let Ok(w) = serde_json::from_str::<Words>(s) {
            return Ok(CompatVocab::from_entities(&w.glycowords));
        }
        let entities: Vec<String> = serde_json::from_str(s)
            .map_err(|e| VocabError::Invalid(format!("expected {{\"units\", \"links\"}} or a list of words: {e}")))?;
        Ok(CompatVocab::from_entities(&entities))
    }

    /// GlycanML's official glycoword vocabulary — the 211 words of kasawa1234/GlycanAA @ 7ba3899
    /// `module/custom_data/glycoword_vocab.pkl` (Apache License 2.0), bundled as
    /// `data/glycoword_vocab.json` with its provenance — split by the official rule into 127
    /// units and 84 links in official id order: the ids official GlycanAA / PreGlycanAA weights
    /// were trained with.
    pub fn official() -> CompatVocab {
        CompatVocab::from_json(include_str!("../data/glycoword_vocab.json")).expect("the bundled vocabulary parses")
    }

    /// A stand-in vocabulary for tests and benchmarks when the official pickle is not at hand:
    /// the given unit names and the `n_links` most frequent link words of `glycans` (ties by
    /// name). Ids differ from the official ones; shapes (127 units, 84 links) can match.
    pub fn with_frequent_links(units: Vec<String>, glycans: &[String], n_links: usize) -> CompatVocab {
        let mut freq: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for g in glycans {
            if let Ok(t) = crate::parse_iupac(g) {
                for r in &t.residues {
                    if let Some(l) = &r.link {
                        *freq.entry(glycowork_core(&l.text)).or_default() += 1;
                    }
                }
            }
        }
        let mut links: Vec<(String, usize)> = freq.into_iter().collect();
        links.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        CompatVocab { units, links: links.into_iter().take(n_links).map(|x| x.0).collect() }
    }

    /// The 127 unit names of the official residue table (`glycan2smiles` in the official
    /// code), in the order of `data/official_compat_units.csv` — not the official id
    /// order.
    pub fn official_unit_names() -> Vec<String> {
        include_str!("../data/official_compat_units.csv")
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next())
            .map(str::to_string)
            .collect()
    }

    /// Number of relation types: links + 4 bond types + 1 membership (89 for 84 links).
    pub fn num_relations(&self) -> usize {
        self.links.len() + 5
    }

    /// Number of node types: units + atomic numbers up to 82 (210 for 127 units).
    pub fn num_node_types(&self) -> usize {
        self.units.len() + 83
    }
}

/// glycowork's core monosaccharides, in the order `get_core` tries them as substrings.
const GLYCOWORK_CORES: &[&str] = &[
    "dHexNAc",
    "GlcNAc",
    "GalNAc",
    "ManNAc",
    "FucNAc",
    "QuiNAc",
    "RhaNAc",
    "GulNAc",
    "IdoNAc",
    "Ins",
    "MurNAc",
    "6dAltNAc",
    "AcoNAc",
    "HexA",
    "GlcA",
    "AltA",
    "GalA",
    "ManA",
    "Tyv",
    "Yer",
    "Abe",
    "GlcfNAc",
    "GalfNAc",
    "ManfNAc",
    "FucfNAc",
    "IdoA",
    "GulA",
    "LDManHep",
    "DDManHep",
    "DDGlcHep",
    "LyxHep",
    "ManHep",
    "DDAltHep",
    "IdoHep",
    "DLGlcHep",
    "GalHep",
    "ddHex",
    "ddNon",
    "Unknown",
    "Assigned",
    "MurNGc",
    "6dTalNAc",
    "6dGul",
    "AllA",
    "TalA",
    "AllNAc",
    "TalNAc",
    "Kdn",
    "Pen",
    "GlcN",
    "GalN",
    "ManN",
    "FucN",
    "QuiN",
    "RhaN",
    "AraN",
    "IdoN",
    "Glcf",
    "Galf",
    "Manf",
    "Fucf",
    "Araf",
    "Lyxf",
    "Xylf",
    "6dAltf",
    "Ribf",
    "Fruf",
    "Apif",
    "Kdof",
    "Sedf",
    "6dTal",
    "AltNAc",
    "6dAlt",
    "dHex",
    "HexNAc",
    "dNon",
    "4eLeg",
    "GulN",
    "AltN",
    "AllN",
    "TalN",
    "HexN",
    "Glc",
    "Gal",
    "Man",
    "Fuc",
    "Qui",
    "Rha",
    "Ara",
    "Oli",
    "Gul",
    "Lyx",
    "Xyl",
    "Dha",
    "Rib",
    "Kdo",
    "Tal",
    "All",
    "Pse",
    "Leg",
    "Asc",
    "Hex",
    "Fru",
    "Alt",
    "Xluf",
    "Api",
    "Ko",
    "Pau",
    "Fus",
    "Erwiniose",
    "Aco",
    "Bac",
    "Dig",
    "Thre-ol",
    "Ery-ol",
    "Tag",
    "Sor",
    "Psi",
    "Mur",
    "Aci",
    "Sia",
    "Par",
    "Col",
    "Ido",
];

/// Cores for which the official code has no atoms (its SMILES table maps them to "").
const NO_ATOMS: &[&str] =
    &["dHex", "Monosaccharide", "dHexNAc", "Unknown", "ddHex", "ddNon", "Assigned", "dNon", "IdoNGlcf"];

/// glycowork's `get_core`: the first known core contained in the name, else the sialic-acid
/// rules, else `Monosaccharide`; link words are returned unchanged.
pub fn glycowork_core(word: &str) -> String {
    let expanded = expand_position_lists(word);
    if let Some(c) = GLYCOWORK_CORES.iter().find(|c| expanded.contains(*c)) {
        return c.to_string();
    }
    if expanded.contains("Neu") {
        for (m, c) in [("5Ac", "Neu5Ac"), ("5Gc", "Neu5Gc"), ("4Ac", "Neu4Ac")] {
            if expanded.contains(m) {
                return c.into();
            }
        }
        return "Neu".into();
    }
    if is_link_word(&expanded) {
        return expanded;
    }
    "Monosaccharide".into()
}

/// `Neu5,9Ac2` → `Neu5Ac9Ac`, as glycowork spells position lists out.
fn expand_position_lists(w: &str) -> String {
    if !w.contains(',') {
        return w.to_string();
    }
    let b = w.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        // digit(,digit)+ [A-Z][a-z]* digits
        if b[i].is_ascii_digit() && i + 2 < b.len() && b[i + 1] == b',' {
            let mut j = i;
            let mut pos = vec![];
            while j < b.len() && b[j].is_ascii_digit() {
                pos.push(b[j] as char);
                if j + 2 < b.len() && b[j + 1] == b',' && b[j + 2].is_ascii_digit() {
                    j += 2;
                } else {
                    j += 1;
                    break;
                }
            }
            let ns = j;
            if j < b.len() && b[j].is_ascii_uppercase() {
                j += 1;
                while j < b.len() && b[j].is_ascii_lowercase() {
                    j += 1;
                }
                let name = &w[ns..j];
                let k = j;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j > k && pos.len() > 1 {
                    for p in pos {
                        out.push(p);
                        out.push_str(name);
                    }
                    i = j;
                    continue;
                }
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// The official featurisation of one glycan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompatGraph {
    /// Node types: residues first (unit ids), then atoms (`units + Z`).
    pub node_type: Vec<u32>,
    /// Edges `(src, dst, relation)` in the official order.
    pub edges: Vec<[u32; 3]>,
    /// Number of residue nodes.
    pub num_units: usize,
    /// Index of each residue's first atom node; one more entry closes the last residue
    /// (the official `cumsum`).
    pub cumsum: Vec<u32>,
}

impl CompatGraph {
    /// The same graph as a [`HeteroGraph`]: units carry the official unit ids, atoms belong to
    /// their residue, bonds are the residues' own bonds, unit links carry the official link id
    /// as `type_id` (one per link, not doubled).
    pub fn to_hetero(&self, vocab: &CompatVocab) -> HeteroGraph {
        let nu = self.num_units;
        let mut g = HeteroGraph::default();
        for u in 0..nu {
            g.units.push(Unit {
                kind: UnitKind::Monosaccharide,
                type_id: self.node_type[u],
                name: vocab.units.get(self.node_type[u] as usize).cloned().unwrap_or_default(),
                anchor: None,
                label: None,
            });
        }
        let mut owner = vec![0u32; self.node_type.len()];
        for u in 0..nu {
            for a in self.cumsum[u]..self.cumsum[u + 1] {
                owner[a as usize] = u as u32;
            }
        }
        for a in nu..self.node_type.len() {
            let z = self.node_type[a] as usize - vocab.units.len();
            g.atoms.push(aa_graph::Atom {
                element: aa_graph::Element::from_atomic_number(z as u8).unwrap_or(aa_graph::Element::C),
                formal_charge: 0,
                aromatic: false,
                implicit_h: 0,
                name: String::new(),
                unit: owner[a],
            });
        }
        let nl = vocab.links.len() as u32;
        for &[s, d, r] in &self.edges {
            if (s as usize) < nu && (d as usize) < nu && s < d {
                g.unit_links.push(UnitLink { src: s, dst: d, kind: UnitLinkKind::Covalent, type_id: r });
            } else if s as usize >= nu && d as usize >= nu && s < d && r >= nl && r < nl + 4 {
                let order = match r - nl {
                    0 => aa_graph::BondOrder::Single,
                    1 => aa_graph::BondOrder::Double,
                    2 => aa_graph::BondOrder::Triple,
                    _ => aa_graph::BondOrder::Aromatic,
                };
                g.bonds.push(Bond { a: s - nu as u32, b: d - nu as u32, order });
            }
        }
        g
    }
}

impl CompatGraph {
    /// The official featurisation read back from its [`HeteroGraph`] form
    /// ([`CompatGraph::to_hetero`], or any graph whose units carry official unit ids and whose
    /// unit links carry official link ids as `type_id`): units, then atoms (`units + Z`);
    /// unit links, bonds and membership both ways. Errors name the first id outside `vocab`.
    pub fn from_hetero(g: &HeteroGraph, vocab: &CompatVocab) -> Result<CompatGraph, String> {
        let (nu, nv) = (g.units.len() as u32, vocab.units.len() as u32);
        let nl = vocab.links.len() as u32;
        let mut node_type = Vec::with_capacity(g.units.len() + g.atoms.len());
        for (i, u) in g.units.iter().enumerate() {
            if u.kind != UnitKind::Monosaccharide {
                return Err(format!(
                    "unit {i} ({}) is not a monosaccharide: the official GlycanAA featurisation reads glycans only",
                    u.name
                ));
            }
            if u.type_id >= nv {
                return Err(format!(
                    "unit {i} ({}) has type {} outside the {nv}-unit official vocabulary (not an official-featurisation graph?)",
                    u.name, u.type_id
                ));
            }
            node_type.push(u.type_id);
        }
        let mut cumsum = vec![nu; g.units.len() + 1];
        for (i, a) in g.atoms.iter().enumerate() {
            node_type.push(nv + a.element.atomic_number() as u32);
            let u = a.unit as usize;
            if u >= g.units.len() {
                return Err(format!("atom {i} belongs to unit {u} of {nu}"));
            }
            cumsum[u + 1] = cumsum[u + 1].max(nu + i as u32 + 1);
        }
        for u in 0..g.units.len() {
            cumsum[u + 1] = cumsum[u + 1].max(cumsum[u]);
        }
        let mut edges = Vec::with_capacity(2 * (g.unit_links.len() + g.bonds.len() + g.atoms.len()));
        for l in &g.unit_links {
            if l.src >= nu || l.dst >= nu {
                return Err(format!("unit link {}–{} names a unit outside the graph ({nu} units)", l.src, l.dst));
            }
            if l.type_id >= nl {
                return Err(format!(
                    "unit link {}–{} has type {} outside the {nl} official links",
                    l.src, l.dst, l.type_id
                ));
            }
            edges.push([l.src, l.dst, l.type_id]);
            edges.push([l.dst, l.src, l.type_id]);
        }
        // Unit by unit, its bonds then its atoms' membership, as `featurize` orders them, so
        // that the round trip through `to_hetero` gives the official edge list exactly.
        let mut bonds_of: Vec<Vec<&Bond>> = vec![Vec::new(); g.units.len()];
        for b in &g.bonds {
            let u = g.atoms.get(b.a as usize).map(|a| a.unit as usize).filter(|&u| u < g.units.len());
            let Some(u) = u.filter(|_| (b.b as usize) < g.atoms.len()) else {
                return Err(format!("bond {}–{} names an atom outside the graph", b.a, b.b));
            };
            bonds_of[u].push(b);
        }
        let members = g.unit_members();
        for (u, bonds) in bonds_of.iter().enumerate() {
            for b in bonds {
                let r = nl + b.order.index() as u32;
                edges.push([nu + b.a, nu + b.b, r]);
                edges.push([nu + b.b, nu + b.a, r]);
            }
            for &a in members.neighbors(u) {
                edges.push([u as u32, nu + a, nl + 4]);
                edges.push([nu + a, u as u32, nl + 4]);
            }
        }
        Ok(CompatGraph { node_type, edges, num_units: g.units.len(), cumsum })
    }
}

/// Checks every residue name of an IUPAC-condensed glycan with the grammar of the molecule
/// builder (the verdicts of `allatom graph`): the official featurisation alone maps any name it
/// cannot reduce to a core onto GlycanML's catch-all `Monosaccharide` unit (as GlycanML does),
/// which silently embeds garbage such as `AAAA` or `Glcxyz`.
pub fn check_names(iupac: &str) -> Result<(), GlycanError> {
    let tree = crate::parse_iupac(iupac)?;
    for r in &tree.residues {
        crate::residue::parse_residue(&r.name).map_err(|e| GlycanError::Parse {
            position: r.offset + e.offset,
            message: format!("in '{}': {}", r.name, e.message),
        })?;
    }
    Ok(())
}

/// Builds the official featurisation of an IUPAC-condensed glycan.
pub fn featurize(iupac: &str, vocab: &CompatVocab) -> Result<CompatGraph, GlycanError> {
    let tree = crate::parse_iupac(iupac)?;
    let nu = tree.residues.len();
    let mut node_type = Vec::new();
    for r in &tree.residues {
        // A name that is itself a vocabulary word is its own core (get_core is idempotent on
        // its outputs; this also covers words such as IdoNGlcf that newer glycowork releases
        // split differently).
        let core = if vocab.units.iter().any(|u| *u == r.name) { r.name.clone() } else { glycowork_core(&r.name) };
        let Some(id) = vocab.units.iter().position(|u| *u == core) else {
            return Err(GlycanError::Parse {
                position: r.offset,
                message: format!("'{}' (core '{core}') is not in the GlycanAA vocabulary", r.name),
            });
        };
        node_type.push(id as u32);
    }
    let mut edges: Vec<[u32; 3]> = Vec::new();
    // Residue–residue links, in GlycanML's order (by donor/acceptor string positions).
    let mut pairs: Vec<(usize, usize, u32)> = Vec::new();
    for (i, r) in tree.residues.iter().enumerate() {
        let (Some(p), Some(l)) = (r.parent, &r.link) else { continue };
        if r.floating || tree.residues[p].floating {
            continue;
        }
        let core = glycowork_core(&l.text);
        if let Some(id) = vocab.links.iter().position(|x| *x == core) {
            pairs.push((i.min(p), i.max(p), id as u32));
        }
    }
    pairs.sort();
    for (a, b, id) in pairs {
        edges.push([a as u32, b as u32, id]);
        edges.push([b as u32, a as u32, id]);
    }
    let nl = vocab.links.len() as u32;
    let offset = vocab.units.len() as u32;
    let mut cumsum = vec![nu as u32];
    let mut next = nu as u32;
    for (u, r) in tree.residues.iter().enumerate() {
        let core = &vocab.units[node_type[u] as usize];
        if !NO_ATOMS.contains(&core.as_str()) {
            let free = Glycan::from_iupac(core).map_err(|e| GlycanError::Chemistry {
                position: r.offset,
                message: format!("core '{core}' has no atom template: {e}"),
            })?;
            let g = &free.molecule.graph;
            for a in &g.atoms {
                node_type.push(offset + a.element.atomic_number() as u32);
            }
            for b in &g.bonds {
                let rel = nl + b.order.index() as u32;
                edges.push([next + b.a, next + b.b, rel]);
                edges.push([next + b.b, next + b.a, rel]);
            }
            for k in 0..g.atoms.len() as u32 {
                edges.push([u as u32, next + k, nl + 4]);
                edges.push([next + k, u as u32, nl + 4]);
            }
            next += g.atoms.len() as u32;
        }
        cumsum.push(next);
    }
    Ok(CompatGraph { node_type, edges, num_units: nu, cumsum })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_official_vocabulary_has_the_release_shape() {
        let v = CompatVocab::official();
        assert_eq!((v.units.len(), v.links.len()), (127, 84));
        assert_eq!((v.num_node_types(), v.num_relations()), (210, 89));
        // The official id order: the pickle's first words.
        assert_eq!(&v.units[..3], ["dHex", "Gal", "AltN"]);
        assert_eq!(&v.links[..2], ["1-1", "1-2"]);
        // The same unit names as the official residue table, in another order.
        let (mut a, mut b) = (v.units.clone(), CompatVocab::official_unit_names());
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(v.units.iter().any(|u| u == "Unknown"), "the mask token");
    }

    #[test]
    fn cores_like_glycowork() {
        for (w, c) in [
            ("GlcNAc6S", "GlcNAc"),
            ("Neu5,9Ac2", "Neu5Ac"),
            ("Neu5Gc", "Neu5Gc"),
            ("Neu4Ac5Gc", "Neu5Gc"),
            ("D-Fuc", "Fuc"),
            ("Galf3Me", "Galf"),
            ("GalNAc-ol", "GalNAc"),
            ("b1-4", "b1-4"),
            ("1-4", "1-4"),
            ("Zzz", "Monosaccharide"),
        ] {
            assert_eq!(glycowork_core(w), c, "{w}");
        }
        assert_eq!(expand_position_lists("Neu5,9Ac2"), "Neu5Ac9Ac");
    }
}
