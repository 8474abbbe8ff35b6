//! From atom records to the heterogeneous all-atom graph: model and alternate-location
//! selection, residues as units with CCD template bonds, peptide and disulfide bonds,
//! glycosidic and protein–glycan bonds from LINK/struct_conn with a distance fallback, and
//! spatial kNN/radius relations.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use aa_graph::{
    neighbors, Anomer, Atom, Bond, BondOrder, Element, HeteroGraph, Level, ResidueLabel, SpatialKind, SpatialRelation,
    Unit, UnitKind, UnitLink, UnitLinkKind,
};
use serde::Serialize;

use crate::read::{AtomRecord, Label, RawStructure};
use crate::templates::{self, AMINO_ACIDS, WATERS};
use crate::StructureError;

/// What to read and which spatial relations to build.
#[derive(Clone, Debug)]
pub struct StructureOptions {
    /// Model number to read; `None` reads the first model in the file.
    pub model: Option<i32>,
    /// Keep hydrogen atoms (dropped by default).
    pub keep_hydrogens: bool,
    /// Keep water molecules (dropped by default).
    pub keep_waters: bool,
    /// k of the atom-level kNN relation (`None` for none). Default 30, as Vabs-Net's
    /// `knn_atom2atom`.
    pub atom_knn: Option<usize>,
    /// k of the unit-level kNN relation on anchor atoms. Default 15.
    pub unit_knn: Option<usize>,
    /// Optional atom-level radius relation (Å).
    pub atom_radius: Option<f32>,
    /// Optional unit-level radius relation (Å).
    pub unit_radius: Option<f32>,
}

impl Default for StructureOptions {
    fn default() -> Self {
        StructureOptions {
            model: None,
            keep_hydrogens: false,
            keep_waters: false,
            atom_knn: Some(30),
            unit_knn: Some(15),
            atom_radius: None,
            unit_radius: None,
        }
    }
}

/// A glycan tree found in a structure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GlycanTree {
    /// IUPAC-condensed string (with a dangling reducing-end link when attached).
    pub iupac: String,
    /// What the reducing end is bonded to, e.g. `ASN 90 chain A`; `None` for a free glycan.
    pub attached_to: Option<String>,
    /// Unit indices of the glycan's monosaccharides.
    pub units: Vec<u32>,
    /// The same units in the order their names appear in `iupac` (so row `k` of a per-residue
    /// result for the IUPAC string belongs to unit `iupac_order[k]`).
    pub iupac_order: Vec<u32>,
    /// Template heavy atoms missing from these residues in the file.
    pub missing_atoms: usize,
    /// Whether the root's anomeric hydroxyl oxygen (O1, or O2 for ketoses and sialic acids)
    /// is in the file; it is absent when the glycan is attached, and often in free glycans too.
    pub reducing_end_oxygen: bool,
}

/// A structure as an all-atom graph plus what was learned while building it.
#[derive(Clone, Debug)]
pub struct Structure {
    /// The graph (atoms with positions, units labelled with chain/number/insertion code).
    pub graph: HeteroGraph,
    /// Number of chains with at least one kept atom.
    pub chains: usize,
    /// Number of amino-acid residues.
    pub residues: usize,
    /// Glycan trees.
    pub glycans: Vec<GlycanTree>,
    /// Template heavy atoms (non-leaving) missing from the file, over all units.
    pub missing_atoms: usize,
    /// Things worth knowing that did not stop the build.
    pub warnings: Vec<String>,
    /// Isotropic B-factor of every graph atom, in graph atom order (0 where the file gives none).
    pub b_factors: Vec<f32>,
}

impl Structure {
    /// Units per kind: (residues, monosaccharides, other).
    pub fn units_by_kind(&self) -> (usize, usize, usize) {
        let c = |k| self.graph.units.iter().filter(|u| u.kind == k).count();
        (c(UnitKind::Residue), c(UnitKind::Monosaccharide), c(UnitKind::Other))
    }
}

/// Element of an atom whose file gives none: the residue's CCD template when it names the
/// atom; a single-atom ion named after its element (`ZN`/`ZN`, `NA`/`NA`); otherwise the first
/// letter of the name after leading digits (`1HB` → H, `CA` → C), as the PDB convention wants.
fn element_from_name(resname: &str, name: &str) -> Option<Element> {
    if let Some(c) = templates::component(resname) {
        if let Some(a) = c.atoms.iter().find(|a| a.name == name) {
            return Element::from_symbol(&a.element);
        }
    }
    if resname.trim_end_matches(['+', '-']).trim_end_matches(|c: char| c.is_ascii_digit()).eq_ignore_ascii_case(name) {
        if let Some(e) = Element::from_symbol(name) {
            return Some(e);
        }
    }
    let first = name.chars().find(|c| c.is_ascii_alphabetic())?;
    Element::from_symbol(&first.to_string())
}

fn covalent_radius(e: Element) -> f32 {
    match e.atomic_number() {
        1 => 0.31,
        5 => 0.84,
        6 => 0.76,
        7 => 0.71,
        8 => 0.66,
        9 => 0.57,
        14 => 1.11,
        15 => 1.07,
        16 => 1.05,
        17 => 1.02,
        34 => 1.20,
        35 => 1.20,
        53 => 1.39,
        _ => 1.5,
    }
}

fn is_nonmetal(e: Element) -> bool {
    matches!(e.atomic_number(), 1 | 5 | 6 | 7 | 8 | 9 | 14 | 15 | 16 | 17 | 34 | 35 | 53)
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

fn trailing_number(name: &str) -> Option<u8> {
    let d: String =
        name.chars().rev().take_while(|c| c.is_ascii_digit()).collect::<Vec<_>>().into_iter().rev().collect();
    d.parse().ok()
}

struct Residue {
    chain: Label,
    resseq: i32,
    icode: Label,
    resname: Label,
    atoms: Vec<u32>,
}

/// Builds the graph of one model.
pub fn build(raw: &RawStructure, opts: &StructureOptions) -> Result<Structure, StructureError> {
    let mut warnings = raw.warnings.clone();
    let models: Vec<i32> = {
        let mut seen = Vec::new();
        for a in &raw.atoms {
            if !seen.contains(&a.model) {
                seen.push(a.model);
            }
        }
        seen
    };
    let model = match opts.model {
        Some(m) if models.contains(&m) => m,
        Some(m) => return Err(StructureError::new(format!("model {m} not in the file (models: {models:?})"))),
        None => *models.first().ok_or_else(|| StructureError::new("no atoms in the structure"))?,
    };
    if models.len() > 1 && opts.model.is_none() {
        warnings.push(format!("{} models in the file; read model {model}", models.len()));
    }
    // Model, hydrogens, waters, unknown elements.
    let mut unknown_elements = 0;
    let mut elements: Vec<Element> = Vec::new();
    let candidates: Vec<&AtomRecord> = raw
        .atoms
        .iter()
        .filter(|a| a.model == model)
        .filter(|a| opts.keep_waters || !WATERS.contains(&a.resname.as_str()))
        .filter(|a| match a.element.or_else(|| element_from_name(&a.resname, &a.name)) {
            None => {
                unknown_elements += 1;
                false
            }
            Some(e) if opts.keep_hydrogens || e.atomic_number() != 1 => {
                elements.push(e);
                true
            }
            Some(_) => false,
        })
        .collect();
    if unknown_elements > 0 {
        warnings.push(format!("{unknown_elements} atoms without a recognisable element were skipped"));
    }
    // Alternate locations, per residue position: the altloc whose atoms have the highest
    // occupancy (then the first written) is kept together with the atoms that have none, so a
    // residue never mixes conformers (and microheterogeneity keeps one residue type).
    let mut best_alt: HashMap<(&str, i32, &str), (&str, f32)> = HashMap::default();
    for a in &candidates {
        if a.altloc.is_empty() {
            continue;
        }
        let key = (a.chain.as_str(), a.resseq, a.icode.as_str());
        let e = best_alt.entry(key).or_insert((a.altloc.as_str(), a.occupancy));
        if a.occupancy > e.1 {
            *e = (a.altloc.as_str(), a.occupancy);
        }
    }
    let mut altloc_atoms = 0;
    let mut duplicates = 0;
    let mut kept: Vec<(&AtomRecord, Element)> = Vec::with_capacity(candidates.len());
    for (i, a) in candidates.iter().enumerate() {
        if !a.altloc.is_empty()
            && best_alt.get(&(a.chain.as_str(), a.resseq, a.icode.as_str())).map(|b| b.0) != Some(a.altloc.as_str())
        {
            altloc_atoms += 1;
            continue;
        }
        kept.push((*a, elements[i]));
    }
    if altloc_atoms > 0 {
        warnings.push(format!("{altloc_atoms} alternate-location atoms dropped (highest occupancy kept)"));
    }
    if kept.is_empty() {
        return Err(StructureError::new("no atoms left after dropping hydrogens and waters"));
    }
    // Residues are runs of consecutive records with the same chain, number, insertion code and
    // name, so residue numbers that wrap at 9999 in big systems still give distinct residues.
    // A run repeating an earlier residue's key and first atom at the same coordinates is a
    // duplicate record of that residue and joins it; an atom name repeated inside one residue
    // keeps its first record.
    let mut residues: Vec<Residue> = Vec::new();
    let mut by_key: HashMap<(Label, i32, Label, Label), Vec<usize>> = HashMap::default();
    let mut positions: Vec<[f32; 3]> = Vec::with_capacity(kept.len());
    let mut b_factors: Vec<f32> = Vec::with_capacity(kept.len());
    let mut atoms: Vec<Atom> = Vec::with_capacity(kept.len());
    let mut current: Option<(usize, (&str, i32, &str, &str))> = None;
    for &(a, element) in &kept {
        let run_key = (a.chain.as_str(), a.resseq, a.icode.as_str(), a.resname.as_str());
        let r = match current {
            Some((r, k)) if k == run_key => r,
            _ => {
                let key = (a.chain.clone(), a.resseq, a.icode.clone(), a.resname.clone());
                let earlier = by_key.get(&key).and_then(|list| {
                    list.iter().copied().find(|&r0| {
                        residues[r0].atoms.iter().any(|&x| {
                            atoms[x as usize].name == a.name.as_str()
                                && dist(positions[x as usize], a.pos.map(|c| c as f32)) < 1e-3
                        })
                    })
                });
                let r = earlier.unwrap_or_else(|| {
                    residues.push(Residue {
                        chain: a.chain.clone(),
                        resseq: a.resseq,
                        icode: a.icode.clone(),
                        resname: a.resname.clone(),
                        atoms: Vec::new(),
                    });
                    by_key.entry(key).or_default().push(residues.len() - 1);
                    residues.len() - 1
                });
                current = Some((r, run_key));
                r
            }
        };
        if residues[r].atoms.iter().any(|&x| atoms[x as usize].name == a.name.as_str()) {
            duplicates += 1;
            continue;
        }
        residues[r].atoms.push(atoms.len() as u32);
        atoms.push(Atom {
            element,
            formal_charge: 0,
            aromatic: false,
            implicit_h: 0,
            name: a.name.to_string(),
            unit: r as u32,
        });
        positions.push(a.pos.map(|c| c as f32));
        b_factors.push(a.b_factor);
    }
    if duplicates > 0 {
        warnings.push(format!("{duplicates} repeated atom names inside a residue dropped (first record kept)"));
    }
    // Units, template bonds, hydrogens, missing atoms.
    let mut units = Vec::with_capacity(residues.len());
    let mut bonds: Vec<Bond> = Vec::new();
    let mut missing_total = 0;
    let mut missing_per_unit = vec![0usize; residues.len()];
    let mut untemplated: Vec<usize> = Vec::new();
    for (r, res) in residues.iter().enumerate() {
        // Residues have a few dozen atoms at most: a linear scan beats hashing names.
        let lookup_name = |atoms: &[Atom], n: &str| res.atoms.iter().copied().find(|&a| atoms[a as usize].name == n);
        let comp = templates::component(&res.resname);
        let (kind, type_id) = if let Some(k) = AMINO_ACIDS.iter().position(|x| *x == res.resname) {
            (UnitKind::Residue, k as u32)
        } else if templates::is_saccharide(&res.resname) {
            let core = templates::iupac_name(&res.resname)
                .and_then(|n| glycan_aa::residue::parse_residue(n).ok())
                .map_or(glycan_aa::residue::CORES.len() as u32, |s| s.core as u32);
            (UnitKind::Monosaccharide, core)
        } else {
            (UnitKind::Other, 0)
        };
        let anchor = match kind {
            UnitKind::Residue => lookup_name(&atoms, "CA"),
            UnitKind::Monosaccharide => templates::anomeric_carbon(&res.resname).and_then(|n| lookup_name(&atoms, &n)),
            UnitKind::Other => None,
        }
        .or_else(|| res.atoms.first().copied());
        units.push(Unit {
            kind,
            type_id,
            name: res.resname.to_string(),
            anchor,
            label: Some(ResidueLabel {
                chain: res.chain.to_string(),
                number: res.resseq,
                insertion: res.icode.to_string(),
            }),
        });
        match comp {
            Some(c) => {
                let heavy: HashSet<&str> = c.heavy_atoms().map(|a| a.name.as_str()).collect();
                for t in c.heavy_atoms() {
                    if let Some(a) = lookup_name(&atoms, &t.name) {
                        atoms[a as usize].aromatic = t.aromatic;
                        let h = c
                            .bonds
                            .iter()
                            .filter(|b| {
                                (b.a1 == t.name && !heavy.contains(b.a2.as_str()))
                                    || (b.a2 == t.name && !heavy.contains(b.a1.as_str()))
                            })
                            .count();
                        atoms[a as usize].implicit_h = h as u8;
                    } else if !t.leaving {
                        missing_total += 1;
                        missing_per_unit[r] += 1;
                    }
                }
                for b in &c.bonds {
                    if let (Some(x), Some(y)) = (lookup_name(&atoms, &b.a1), lookup_name(&atoms, &b.a2)) {
                        let order = match b.order.as_str() {
                            "DOUB" => BondOrder::Double,
                            "TRIP" => BondOrder::Triple,
                            _ => BondOrder::Single,
                        };
                        bonds.push(Bond { a: x, b: y, order });
                    }
                }
                if res.atoms.iter().any(|&a| {
                    !heavy.contains(atoms[a as usize].name.as_str()) && atoms[a as usize].element.atomic_number() != 1
                }) {
                    untemplated.push(r);
                }
            }
            None => untemplated.push(r),
        }
    }
    // Covalent-radius bonds within residues without a template, and for atoms a template does
    // not name; neighbour lists only for the atoms that need them (those residues' atoms and the
    // anomeric carbons of sugars, for the glycosidic distance fallback).
    let mut queries: Vec<u32> = untemplated.iter().flat_map(|&r| residues[r].atoms.iter().copied()).collect();
    for u in &units {
        if let (UnitKind::Monosaccharide, Some(a)) = (u.kind, u.anchor) {
            queries.push(a);
        }
    }
    queries.sort_unstable();
    queries.dedup();
    let search = neighbors::radius_search(&positions, Some(&queries), 2.7);
    if search.truncated > 0 {
        warnings.push(crowded_warning(search.truncated, "bond perception"));
    }
    let near = search.csr;
    let row_of: HashMap<u32, usize> = queries.iter().enumerate().map(|(k, &a)| (a, k)).collect();
    let near_of = |a: u32| -> (&[u32], &[u32]) {
        match row_of.get(&a) {
            Some(&k) => (near.neighbors(k), near.edge_ids(k)),
            None => (&[], &[]),
        }
    };
    let mut bonded: HashSet<(u32, u32)> = bonds.iter().map(|b| (b.a.min(b.b), b.a.max(b.b))).collect();
    for &r in &untemplated {
        let comp = templates::component(&residues[r].resname);
        let named: HashSet<&str> = comp.map(|c| c.heavy_atoms().map(|a| a.name.as_str()).collect()).unwrap_or_default();
        for &a in &residues[r].atoms {
            let (nb, dists) = near_of(a);
            for (&b, &dmilli) in nb.iter().zip(dists) {
                if atoms[b as usize].unit as usize != r || b <= a {
                    continue;
                }
                let both_named =
                    named.contains(atoms[a as usize].name.as_str()) && named.contains(atoms[b as usize].name.as_str());
                if both_named {
                    continue;
                }
                let d = dmilli as f32 / 1000.0;
                let (ea, eb) = (atoms[a as usize].element, atoms[b as usize].element);
                if d > 0.4 && d <= covalent_radius(ea) + covalent_radius(eb) + 0.45 && bonded.insert((a, b)) {
                    bonds.push(Bond { a, b, order: BondOrder::Single });
                }
            }
        }
    }
    // Inter-residue bonds.
    let mut links: Vec<UnitLink> = Vec::new();
    let mut add_link =
        |bonds: &mut Vec<Bond>, bonded: &mut HashSet<(u32, u32)>, a: u32, b: u32, kind: UnitLinkKind| -> bool {
            if !bonded.insert((a.min(b), a.max(b))) {
                return false;
            }
            bonds.push(Bond { a, b, order: BondOrder::Single });
            links.push(UnitLink { src: atoms[a as usize].unit, dst: atoms[b as usize].unit, kind, type_id: 0 });
            true
        };
    let find = |r: usize, name: &str| residues[r].atoms.iter().copied().find(|&a| atoms[a as usize].name == name);
    // Peptide bonds between consecutive residues of a chain.
    for r in 1..residues.len() {
        if residues[r].chain != residues[r - 1].chain {
            continue;
        }
        if let (Some(c), Some(n)) = (find(r - 1, "C"), find(r, "N")) {
            if dist(positions[c as usize], positions[n as usize]) <= 1.9 {
                add_link(&mut bonds, &mut bonded, c, n, UnitLinkKind::Peptide);
            }
        }
    }
    // Disulfides.
    let sg: Vec<u32> =
        (0..residues.len()).filter(|&r| residues[r].resname == "CYS").filter_map(|r| find(r, "SG")).collect();
    for i in 0..sg.len() {
        for j in i + 1..sg.len() {
            if dist(positions[sg[i] as usize], positions[sg[j] as usize]) <= 2.5 {
                add_link(&mut bonds, &mut bonded, sg[i], sg[j], UnitLinkKind::Disulfide);
            }
        }
    }
    // LINK / struct_conn.
    let lookup: HashMap<(&str, i32, &str, &str), u32> = residues
        .iter()
        .flat_map(|res| res.atoms.iter().map(move |&a| ((res.chain.as_str(), res.resseq, res.icode.as_str(), a), a)))
        .map(|((c, s, i, a), x)| ((c, s, i, atoms[a as usize].name.as_str()), x))
        .collect();
    let mut skipped_links = 0;
    let mut glycosidic_pairs: Vec<(u32, u32)> = Vec::new();
    for conn in &raw.connections {
        if matches!(conn.kind.as_str(), "metalc" | "hydrog" | "saltbr") {
            continue;
        }
        let get = |r: &crate::read::AtomRef| {
            lookup.get(&(r.chain.as_str(), r.resseq, r.icode.as_str(), r.name.as_str())).copied()
        };
        let (Some(a), Some(b)) = (get(&conn.a), get(&conn.b)) else {
            skipped_links += 1;
            continue;
        };
        let (ea, eb) = (atoms[a as usize].element, atoms[b as usize].element);
        if !is_nonmetal(ea) || !is_nonmetal(eb) || dist(positions[a as usize], positions[b as usize]) > 2.6 {
            continue;
        }
        if atoms[a as usize].unit != atoms[b as usize].unit {
            glycosidic_pairs.push((a, b));
        }
    }
    if skipped_links > 0 {
        warnings.push(format!("{skipped_links} LINK/struct_conn records name atoms not in the kept model"));
    }
    // Distance fallback: an anomeric carbon without its leaving oxygen bonds to the nearest
    // O/N/S of another residue within 1.75 Å.
    for (r, u) in units.iter().enumerate() {
        if u.kind != UnitKind::Monosaccharide {
            continue;
        }
        let Some(c1) = templates::anomeric_carbon(&residues[r].resname).and_then(|n| find(r, &n)) else { continue };
        let already = glycosidic_pairs.iter().any(|&(a, b)| a == c1 || b == c1);
        if already {
            continue;
        }
        let (nb, dists) = near_of(c1);
        let cand = nb
            .iter()
            .zip(dists)
            .find(|(&b, &d)| {
                atoms[b as usize].unit as usize != r
                    && d <= 1750
                    && matches!(atoms[b as usize].element.atomic_number(), 7 | 8 | 16)
            })
            .map(|(&b, _)| b);
        if let Some(b) = cand {
            glycosidic_pairs.push((c1, b));
        }
    }
    for (a, b) in glycosidic_pairs {
        let (ua, ub) = (atoms[a as usize].unit as usize, atoms[b as usize].unit as usize);
        let anomeric = |u: usize, at: u32| {
            units[u].kind == UnitKind::Monosaccharide
                && templates::anomeric_carbon(&residues[u].resname).is_some_and(|n| atoms[at as usize].name == n)
        };
        // Orient donor (anomeric carbon side) → acceptor.
        let (d, acc) = if anomeric(ua, a) {
            (a, b)
        } else if anomeric(ub, b) {
            (b, a)
        } else {
            (a, b)
        };
        let (ud, uacc) = (atoms[d as usize].unit as usize, atoms[acc as usize].unit as usize);
        let kind = if units[ud].kind == UnitKind::Monosaccharide
            && units[uacc].kind == UnitKind::Monosaccharide
            && anomeric(ud, d)
        {
            UnitLinkKind::Glycosidic {
                anomer: templates::anomer(&residues[ud].resname),
                donor_position: trailing_number(&atoms[d as usize].name),
                acceptor_position: trailing_number(&atoms[acc as usize].name),
                bridge: String::new(),
            }
        } else {
            UnitLinkKind::Covalent
        };
        add_link(&mut bonds, &mut bonded, d, acc, kind);
    }
    let glycans = glycan_trees(&residues, &units, &atoms, &links, &missing_per_unit, &bonds, &mut warnings);
    for g in &glycans {
        for &u in &g.units {
            if templates::iupac_name(&units[u as usize].name).is_none() {
                warnings.push(format!(
                    "glycan {}: component {} has no IUPAC-condensed name here; its CCD id is written instead",
                    g.iupac, units[u as usize].name
                ));
            }
        }
    }
    let mut graph =
        HeteroGraph { atoms, units, bonds, unit_links: links, positions: Some(positions), spatial: Vec::new() };
    add_spatial(&mut graph, opts, &mut warnings);
    let chains: HashSet<&str> = residues.iter().map(|r| r.chain.as_str()).collect();
    let residue_count = graph.units.iter().filter(|u| u.kind == UnitKind::Residue).count();
    let with_missing = missing_per_unit.iter().filter(|&&m| m > 0).count();
    if with_missing > 0 {
        warnings.push(format!("{with_missing} units miss {missing_total} template heavy atoms"));
    }
    let far = graph.positions.as_ref().unwrap().iter().filter(|p| p.iter().any(|v| v.abs() > 9999.0)).count();
    if far > 0 {
        warnings.push(format!("{far} atoms have coordinates beyond ±9999 Å"));
    }
    Ok(Structure {
        graph,
        chains: chains.len(),
        residues: residue_count,
        glycans,
        missing_atoms: missing_total,
        warnings,
        b_factors,
    })
}

/// The warning for neighbour searches the density caps of [`neighbors`] cut short.
fn crowded_warning(points: usize, what: &str) -> String {
    format!(
        "{points} points sit in space denser than any molecule (more than {} per Å³, e.g. coincident atoms): \
         their {what} neighbour lists were capped",
        neighbors::MAX_DENSITY
    )
}

fn add_spatial(g: &mut HeteroGraph, opts: &StructureOptions, warnings: &mut Vec<String>) {
    let pos = g.positions.clone().unwrap_or_default();
    let anchors: Vec<[f32; 3]> = g.units.iter().map(|u| u.anchor.map_or([0.0; 3], |a| pos[a as usize])).collect();
    for (level, points, knn, radius) in
        [(Level::Atom, &pos, opts.atom_knn, opts.atom_radius), (Level::Unit, &anchors, opts.unit_knn, opts.unit_radius)]
    {
        let name = if level == Level::Atom { "atom" } else { "unit" };
        if let Some(k) = knn {
            let s = neighbors::knn_search(points, k);
            if s.truncated > 0 {
                warnings.push(crowded_warning(s.truncated, &format!("{name} k-NN")));
            }
            g.spatial.push(SpatialRelation { level, kind: SpatialKind::Knn { k }, neighbors: s.csr });
        }
        if let Some(c) = radius {
            let s = neighbors::radius_search(points, None, c);
            if s.truncated > 0 {
                warnings.push(crowded_warning(s.truncated, &format!("{name} radius")));
            }
            g.spatial.push(SpatialRelation {
                level,
                kind: SpatialKind::Radius { cutoff_angstrom: c },
                neighbors: s.csr,
            });
        }
    }
}

fn anomer_letter(a: Anomer) -> char {
    match a {
        Anomer::Alpha => 'a',
        Anomer::Beta => 'b',
        Anomer::Unknown => '?',
    }
}

fn pos_text(p: Option<u8>) -> String {
    p.map_or("?".to_string(), |x| x.to_string())
}

/// Deepest glycan tree written out as IUPAC (deeper branches are cut, with a warning).
const MAX_GLYCAN_DEPTH: usize = 2000;

/// Glycan trees as IUPAC-condensed strings, with their attachment. Sugars on a cycle of
/// glycosidic bonds (cyclodextrins) have no reducing end and are reported in `warnings`.
fn glycan_trees(
    residues: &[Residue],
    units: &[Unit],
    atoms: &[Atom],
    links: &[UnitLink],
    missing: &[usize],
    bonds: &[Bond],
    warnings: &mut Vec<String>,
) -> Vec<GlycanTree> {
    let n = units.len();
    let sugar = |u: usize| units[u].kind == UnitKind::Monosaccharide;
    // parent[u] = (acceptor unit, link text) for sugar donors.
    let mut parent: Vec<Option<(usize, String, Option<u8>)>> = vec![None; n];
    let mut attached: Vec<Option<String>> = vec![None; n];
    for l in links {
        let (s, d) = (l.src as usize, l.dst as usize);
        if let UnitLinkKind::Glycosidic { anomer, donor_position, acceptor_position, .. } = &l.kind {
            if sugar(s) && sugar(d) {
                let text =
                    format!("{}{}-{}", anomer_letter(*anomer), pos_text(*donor_position), pos_text(*acceptor_position));
                parent[s] = Some((d, text, *acceptor_position));
            }
        }
    }
    // A sugar bonded at its anomeric carbon to a non-sugar is attached to it.
    for b in bonds {
        let (ua, ub) = (atoms[b.a as usize].unit as usize, atoms[b.b as usize].unit as usize);
        if ua == ub {
            continue;
        }
        for (s, s_atom, o, o_atom) in [(ua, b.a, ub, b.b), (ub, b.b, ua, b.a)] {
            if sugar(s) && !sugar(o) && units[s].anchor == Some(s_atom) {
                let r = &residues[o];
                attached[s] = Some(format!(
                    "{} {}{} chain {} (atom {})",
                    r.resname, r.resseq, r.icode, r.chain, atoms[o_atom as usize].name
                ));
            }
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for u in 0..n {
        if let Some((p, _, _)) = &parent[u] {
            children[*p].push(u);
        }
    }
    for c in children.iter_mut() {
        c.sort_by_key(|&u| (parent[u].as_ref().and_then(|x| x.2).unwrap_or(99), u));
    }
    fn render(
        u: usize,
        units: &[Unit],
        parent: &[Option<(usize, String, Option<u8>)>],
        children: &[Vec<usize>],
        depth: usize,
        truncated: &mut bool,
        order: &mut Vec<u32>,
    ) -> String {
        let name = templates::iupac_name(&units[u].name).map(str::to_string).unwrap_or_else(|| units[u].name.clone());
        if depth > MAX_GLYCAN_DEPTH {
            *truncated = true;
            order.push(u as u32);
            return name;
        }
        let mut s = String::new();
        let kids = &children[u];
        if let Some((&main, rest)) = kids.split_first() {
            s.push_str(&render(main, units, parent, children, depth + 1, truncated, order));
            s.push_str(&format!("({})", parent[main].as_ref().unwrap().1));
            for &b in rest {
                s.push('[');
                s.push_str(&render(b, units, parent, children, depth + 1, truncated, order));
                s.push_str(&format!("({})", parent[b].as_ref().unwrap().1));
                s.push(']');
            }
        }
        s.push_str(&name);
        order.push(u as u32);
        s
    }
    let mut out = Vec::new();
    for u in 0..n {
        if !sugar(u) || parent[u].is_some() {
            continue;
        }
        let mut members = vec![];
        let mut stack = vec![u];
        while let Some(x) = stack.pop() {
            members.push(x as u32);
            stack.extend(children[x].iter().copied());
        }
        members.sort();
        let mut truncated = false;
        let mut iupac_order = Vec::new();
        let mut iupac = render(u, units, &parent, &children, 0, &mut truncated, &mut iupac_order);
        if truncated {
            warnings
                .push(format!("glycan tree deeper than {MAX_GLYCAN_DEPTH} residues: its IUPAC string is cut there"));
        }
        if attached[u].is_some() {
            let pos = units[u].anchor.and_then(|a| trailing_number(&atoms[a as usize].name));
            iupac.push_str(&format!("({}{}-", anomer_letter(templates::anomer(&units[u].name)), pos_text(pos)));
        }
        let missing_atoms = members.iter().map(|&m| missing[m as usize]).sum();
        let o_name = units[u].anchor.and_then(|a| trailing_number(&atoms[a as usize].name)).map(|p| format!("O{p}"));
        let reducing_end_oxygen =
            o_name.is_some_and(|o| residues[u].atoms.iter().any(|&a| atoms[a as usize].name == o));
        out.push(GlycanTree {
            iupac,
            attached_to: attached[u].clone(),
            units: members,
            iupac_order,
            missing_atoms,
            reducing_end_oxygen,
        });
    }
    let covered: usize = out.iter().map(|g| g.units.len()).sum();
    let sugars = (0..n).filter(|&u| sugar(u)).count();
    if covered < sugars {
        warnings.push(format!(
            "{} monosaccharides lie on a cycle of glycosidic bonds (e.g. a cyclodextrin) and are not written as IUPAC",
            sugars - covered
        ));
    }
    out
}
