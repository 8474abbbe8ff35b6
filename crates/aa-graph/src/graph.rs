//! The heterogeneous all-atom graph: atoms grouped into units, with typed edges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::csr::Csr;
use crate::element::Element;
use crate::GraphError;

/// One heavy atom (hydrogens are counted on their heavy atom, not stored as nodes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Atom {
    /// Chemical element.
    pub element: Element,
    /// Formal charge (e.g. +1 for the choline nitrogen of phosphocholine).
    #[serde(default, skip_serializing_if = "is_zero_i8")]
    pub formal_charge: i8,
    /// Aromatic flag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aromatic: bool,
    /// Number of hydrogens bonded to this atom.
    pub implicit_h: u8,
    /// Atom name: the CCD/PDB name where one exists (`C1`, `O5`, `CA`), otherwise a
    /// deterministic name given by the front end.
    pub name: String,
    /// Index of the unit this atom belongs to (atom→unit membership edge).
    pub unit: u32,
}

fn is_zero_i8(x: &i8) -> bool {
    *x == 0
}

/// What kind of unit a group of atoms forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A monosaccharide residue of a glycan.
    Monosaccharide,
    /// An amino-acid residue.
    Residue,
    /// Anything else (ligand, non-standard residue, aglycone).
    Other,
}

/// A unit node: a monosaccharide, an amino-acid residue or another group of atoms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// Kind of unit.
    pub kind: UnitKind,
    /// Type id in the front end's unit vocabulary (e.g. the monosaccharide core).
    pub type_id: u32,
    /// Name as written in the input (`GlcNAc6S`, `ASN`).
    pub name: String,
    /// Anchor atom (anomeric carbon for sugars, CA for residues), if present.
    pub anchor: Option<u32>,
    /// Where the unit comes from in a structure file (chain, residue number, insertion code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<ResidueLabel>,
}

/// Chain, residue number and insertion code of a unit read from a structure file, so that
/// results map back to the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResidueLabel {
    /// Chain identifier (author chain id).
    pub chain: String,
    /// Residue sequence number (author numbering).
    pub number: i32,
    /// Insertion code, empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub insertion: String,
}

/// Level of a spatial relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Between atoms, on atom coordinates.
    Atom,
    /// Between units, on their anchor atoms' coordinates (CA, C1).
    Unit,
}

/// How a spatial relation was built.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SpatialKind {
    /// The k nearest neighbours of every node (excluding itself).
    Knn {
        /// Neighbours per node.
        k: usize,
    },
    /// Every other node within a cutoff.
    Radius {
        /// Cutoff in ångström.
        cutoff_angstrom: f32,
    },
}

/// A spatial neighbour relation stored as CSR rows (row = node, targets = its neighbours,
/// `edges` = neighbour distance in milli-ångström).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpatialRelation {
    /// Atom or unit level.
    pub level: Level,
    /// kNN or radius.
    pub kind: SpatialKind,
    /// Neighbour lists.
    pub neighbors: Csr,
}

/// Covalent bond order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BondOrder {
    /// Single bond.
    Single,
    /// Double bond.
    Double,
    /// Triple bond.
    Triple,
    /// Aromatic bond (counts 1.5 towards valence; only used for input that declares it).
    Aromatic,
}

impl BondOrder {
    /// Index 0..4 (single, double, triple, aromatic), the order TorchDrug uses for bond types.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Valence contribution in half-bonds (single = 2, aromatic = 3).
    pub fn half_valence(self) -> u32 {
        match self {
            BondOrder::Single => 2,
            BondOrder::Double => 4,
            BondOrder::Triple => 6,
            BondOrder::Aromatic => 3,
        }
    }
}

/// A covalent bond between two atoms (undirected).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bond {
    /// First atom.
    pub a: u32,
    /// Second atom.
    pub b: u32,
    /// Bond order.
    pub order: BondOrder,
}

/// Anomeric configuration of a glycosidic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomer {
    /// α.
    Alpha,
    /// β.
    Beta,
    /// Not given (`?`) or not written.
    Unknown,
}

/// The kind of a unit↔unit link.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum UnitLinkKind {
    /// Glycosidic link from a donor monosaccharide (its anomeric carbon) to an acceptor position.
    Glycosidic {
        /// Anomeric configuration of the donor.
        anomer: Anomer,
        /// Donor carbon position (1 for aldoses, 2 for ketoses and sialic acids); `None` if `?`.
        donor_position: Option<u8>,
        /// Acceptor position actually used to build the molecule.
        acceptor_position: Option<u8>,
        /// Bridge between donor and acceptor (`"P"` for a phosphodiester, `"S"` for a thio link),
        /// empty for a plain O-glycosidic link.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        bridge: String,
    },
    /// Peptide bond C(i)–N(i+1).
    Peptide,
    /// Disulfide bridge.
    Disulfide,
    /// Any other covalent unit link (e.g. protein–glycan).
    Covalent,
}

/// A unit↔unit link (directed from `src` to `dst`; for glycans, donor to acceptor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitLink {
    /// Source unit (glycosidic donor).
    pub src: u32,
    /// Destination unit (glycosidic acceptor).
    pub dst: u32,
    /// Kind of link.
    pub kind: UnitLinkKind,
    /// Relation id in the front end's link vocabulary (e.g. one id per glycosidic linkage
    /// type such as `b1-4`), the id relational encoders use.
    #[serde(default)]
    pub type_id: u32,
}

/// A heterogeneous all-atom graph.
///
/// Atom nodes belong to unit nodes (`Atom::unit`); covalent bonds connect atoms; unit links
/// connect units. Neighbour lists per relation are built on demand as [`Csr`] structures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeteroGraph {
    /// Atom nodes.
    pub atoms: Vec<Atom>,
    /// Unit nodes.
    pub units: Vec<Unit>,
    /// Covalent bonds between atoms.
    pub bonds: Vec<Bond>,
    /// Links between units.
    pub unit_links: Vec<UnitLink>,
    /// Optional 3D coordinates in ångström, one per atom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<[f32; 3]>>,
    /// Spatial relations (kNN, radius) over atoms or units.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spatial: Vec<SpatialRelation>,
}

impl HeteroGraph {
    /// Number of atom nodes.
    pub fn num_atoms(&self) -> usize {
        self.atoms.len()
    }

    /// Number of unit nodes.
    pub fn num_units(&self) -> usize {
        self.units.len()
    }

    /// Checks that every index points inside the graph and that positions match the atoms.
    pub fn validate(&self) -> Result<(), GraphError> {
        let na = self.atoms.len() as u32;
        let nu = self.units.len() as u32;
        for (i, a) in self.atoms.iter().enumerate() {
            if a.unit >= nu {
                return Err(GraphError::Index(format!("atom {i} belongs to unit {} of {nu}", a.unit)));
            }
        }
        for (i, u) in self.units.iter().enumerate() {
            if let Some(x) = u.anchor {
                if x >= na {
                    return Err(GraphError::Index(format!("unit {i} anchor {x} of {na} atoms")));
                }
            }
        }
        for (i, b) in self.bonds.iter().enumerate() {
            if b.a >= na || b.b >= na || b.a == b.b {
                return Err(GraphError::Index(format!("bond {i} ({}, {}) with {na} atoms", b.a, b.b)));
            }
        }
        for (i, l) in self.unit_links.iter().enumerate() {
            if l.src >= nu || l.dst >= nu {
                return Err(GraphError::Index(format!("unit link {i} ({}, {}) with {nu} units", l.src, l.dst)));
            }
        }
        if let Some(p) = &self.positions {
            if p.len() != self.atoms.len() {
                return Err(GraphError::Index(format!("{} positions for {na} atoms", p.len())));
            }
        }
        for (i, s) in self.spatial.iter().enumerate() {
            let n = if s.level == Level::Atom { na } else { nu };
            let c = &s.neighbors;
            let ok = c.offsets.len() == n as usize + 1
                && c.offsets.windows(2).all(|w| w[0] <= w[1])
                && c.offsets.last().copied() == Some(c.targets.len() as u32)
                && c.edges.len() == c.targets.len()
                && c.targets.iter().all(|&t| t < n);
            if !ok {
                return Err(GraphError::Index(format!("spatial relation {i} does not fit {n} nodes")));
            }
        }
        Ok(())
    }

    /// Symmetric atom–atom neighbour lists over all covalent bonds; `edge` holds the bond index.
    pub fn bond_csr(&self) -> Csr {
        Csr::from_undirected(self.atoms.len(), self.bonds.iter().map(|b| (b.a, b.b)))
    }

    /// Symmetric atom–atom neighbour lists for bonds of one order.
    pub fn bond_csr_of_order(&self, order: BondOrder) -> Csr {
        let pairs: Vec<(u32, u32, u32)> = self
            .bonds
            .iter()
            .enumerate()
            .filter(|(_, b)| b.order == order)
            .map(|(i, b)| (b.a, b.b, i as u32))
            .collect();
        Csr::from_undirected_with_ids(self.atoms.len(), pairs)
    }

    /// Unit → member atoms (the membership relation); `edge` holds the atom index.
    pub fn unit_members(&self) -> Csr {
        Csr::from_directed(self.units.len(), self.atoms.iter().enumerate().map(|(i, a)| (a.unit, i as u32, i as u32)))
    }

    /// The graph induced by `units` (in that order): their atoms (unit by unit, each unit's
    /// atoms in their original order), the bonds and unit links among them, the positions.
    /// Spatial relations are not carried over (rebuild them on the subgraph). Out-of-range
    /// and repeated unit ids are ignored.
    pub fn unit_subgraph(&self, units: &[u32]) -> HeteroGraph {
        let mut unit_slot = vec![u32::MAX; self.units.len()];
        let mut kept_units = Vec::with_capacity(units.len());
        for &u in units {
            if (u as usize) < self.units.len() && unit_slot[u as usize] == u32::MAX {
                unit_slot[u as usize] = kept_units.len() as u32;
                kept_units.push(u);
            }
        }
        let members = self.unit_members();
        let mut atom_slot = vec![u32::MAX; self.atoms.len()];
        let mut atoms = Vec::new();
        let mut positions = self.positions.as_ref().map(|_| Vec::new());
        for &u in &kept_units {
            for &a in members.neighbors(u as usize) {
                atom_slot[a as usize] = atoms.len() as u32;
                let mut atom = self.atoms[a as usize].clone();
                atom.unit = unit_slot[u as usize];
                atoms.push(atom);
                if let (Some(out), Some(p)) = (positions.as_mut(), self.positions.as_ref()) {
                    out.push(p[a as usize]);
                }
            }
        }
        let new_units = kept_units
            .iter()
            .map(|&u| {
                let mut unit = self.units[u as usize].clone();
                unit.anchor = unit.anchor.map(|a| atom_slot[a as usize]).filter(|&a| a != u32::MAX);
                unit
            })
            .collect();
        let bonds = self
            .bonds
            .iter()
            .filter(|b| atom_slot[b.a as usize] != u32::MAX && atom_slot[b.b as usize] != u32::MAX)
            .map(|b| Bond { a: atom_slot[b.a as usize], b: atom_slot[b.b as usize], order: b.order })
            .collect();
        let unit_links = self
            .unit_links
            .iter()
            .filter(|l| unit_slot[l.src as usize] != u32::MAX && unit_slot[l.dst as usize] != u32::MAX)
            .map(|l| UnitLink { src: unit_slot[l.src as usize], dst: unit_slot[l.dst as usize], ..l.clone() })
            .collect();
        HeteroGraph { atoms, units: new_units, bonds, unit_links, positions, spatial: Vec::new() }
    }

    /// Coordinates of every unit's anchor atom (`None` for units without anchor or when the
    /// graph has no positions).
    pub fn anchor_positions(&self) -> Option<Vec<Option<[f32; 3]>>> {
        let p = self.positions.as_ref()?;
        Some(self.units.iter().map(|u| u.anchor.map(|a| p[a as usize])).collect())
    }

    /// Relative sequence offset `number(j) - number(i)` of two units on the same chain (both
    /// labelled), clamped to ±`clamp`; `None` across chains or for unlabelled units.
    pub fn sequence_offset(&self, i: usize, j: usize, clamp: i32) -> Option<i32> {
        let (a, b) = (self.units[i].label.as_ref()?, self.units[j].label.as_ref()?);
        (a.chain == b.chain).then(|| (b.number - a.number).clamp(-clamp, clamp))
    }

    /// Symmetric unit–unit neighbour lists over all unit links; `edge` holds the link index.
    pub fn unit_link_csr(&self) -> Csr {
        Csr::from_undirected(self.units.len(), self.unit_links.iter().map(|l| (l.src, l.dst)))
    }

    /// Heavy-atom composition: element symbol → count.
    pub fn heavy_composition(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for a in &self.atoms {
            *m.entry(a.element.symbol().to_string()).or_insert(0) += 1;
        }
        m
    }

    /// Total hydrogen count (sum of implicit hydrogens).
    pub fn hydrogen_count(&self) -> usize {
        self.atoms.iter().map(|a| a.implicit_h as usize).sum()
    }

    /// Total formal charge.
    pub fn formal_charge(&self) -> i32 {
        self.atoms.iter().map(|a| a.formal_charge as i32).sum()
    }

    /// Molecular formula in Hill order (C, H, then alphabetical; alphabetical without carbon),
    /// hydrogens included, e.g. `C14H25NO11`.
    pub fn formula(&self) -> String {
        let mut counts = self.heavy_composition();
        let h = self.hydrogen_count();
        if h > 0 {
            counts.insert("H".to_string(), h);
        }
        hill_formula(&counts)
    }

    /// Number of independent rings (cyclomatic number: bonds − atoms + connected components).
    pub fn ring_count(&self) -> usize {
        let n = self.atoms.len();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        fn find(p: &mut [u32], mut x: u32) -> u32 {
            while p[x as usize] != x {
                p[x as usize] = p[p[x as usize] as usize];
                x = p[x as usize];
            }
            x
        }
        let mut components = n;
        for b in &self.bonds {
            let (ra, rb) = (find(&mut parent, b.a), find(&mut parent, b.b));
            if ra != rb {
                parent[ra as usize] = rb;
                components -= 1;
            }
        }
        (self.bonds.len() + components).saturating_sub(n)
    }

    /// Number of connected components of the atom–bond graph.
    pub fn atom_components(&self) -> usize {
        self.atoms.len() + self.ring_count() - self.bonds.len()
    }

    /// JSON serialisation.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("graph serialisation cannot fail")
    }

    /// JSON deserialisation, with validation.
    pub fn from_json(s: &str) -> Result<HeteroGraph, GraphError> {
        let g: HeteroGraph = serde_json::from_str(s).map_err(|e| GraphError::Json(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }
}

/// Formats element counts in Hill order.
pub fn hill_formula(counts: &BTreeMap<String, usize>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let push = |sym: &str, n: usize, out: &mut String| {
        if n == 1 {
            out.push_str(sym);
        } else if n > 1 {
            let _ = write!(out, "{sym}{n}");
        }
    };
    let has_c = counts.get("C").copied().unwrap_or(0) > 0;
    if has_c {
        push("C", counts["C"], &mut out);
        push("H", counts.get("H").copied().unwrap_or(0), &mut out);
    }
    for (sym, &n) in counts {
        if has_c && (sym == "C" || sym == "H") {
            continue;
        }
        push(sym, n, &mut out);
    }
    out
}
