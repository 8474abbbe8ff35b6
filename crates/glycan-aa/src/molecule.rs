//! Building the all-atom molecule of a glycan: one monosaccharide at a time from its core and
//! modifications, then glycosidic bonds by condensation (the donor's anomeric OH leaves, its
//! anomeric carbon bonds to the acceptor's oxygen).
//!
//! Conventions (documented defaults for what the string leaves open):
//! - an unknown or alternative acceptor position (`?`, `3/6`) takes the first listed candidate
//!   that still carries a free hydroxyl, else the lowest-numbered free hydroxyl of the acceptor
//!   that is not its anomeric position; the glycan is flagged;
//! - a floating part `{...}` attaches to the first residue of the main chain in string order (a
//!   non-reducing end) at its lowest free non-anomeric hydroxyl; flagged;
//! - a modification with an unknown position (`OS`, `?Me`) goes to the lowest free hydroxyl;
//! - a pyruvate (`Pyr`) is a 1-carboxyethylidene ketal: two `Pyr` on one residue bridge their
//!   two positions; a lone one bridges its position and the nearest other free hydroxyl;
//! - hydrogens are filled from the lowest allowed valence (S 2/4/6, P 3/5), as SMILES does.

use aa_graph::{Atom, Bond, BondOrder, Element, HeteroGraph, Unit, UnitKind, UnitLink, UnitLinkKind};

use crate::fragment::{parse_fragment, Fragment};
use crate::iupac::{Bridge, LinkSpec, ParsedGlycan};
use crate::residue::{parse_residue, CoreDef, Group, ModKind, Modification, OpenForm, ResidueSpec, Ring};
use crate::GlycanError;

#[derive(Clone, Debug)]
struct BAtom {
    element: Element,
    charge: i8,
    aromatic: bool,
    name: String,
    unit: u32,
    removed: bool,
}

#[derive(Clone, Debug, Default)]
struct ResAtoms {
    /// Carbon atom index per position (index p-1).
    carbon: Vec<u32>,
    /// Exocyclic heteroatom per position (the hydroxyl O, amino N, or acid OH oxygen).
    hetero: Vec<Option<u32>>,
    /// Positions that are carboxylic acids.
    acid: Vec<bool>,
    /// Phosphate-type groups on a position: `(position, P atom, its free OH oxygen)`. A link
    /// named at such a position goes through the phosphate (`Man1P(a1-6)`, `Rib5P-ol(1-5)`).
    phospho: Vec<(u8, u32, u32)>,
    anomeric: u8,
}

struct Builder {
    atoms: Vec<BAtom>,
    /// Every bond ever made, in order; `alive` says which still stand.
    bonds: Vec<(u32, u32, BondOrder)>,
    alive: Vec<bool>,
    /// Bond indices per atom, so valence and removal cost the atom's degree, not the molecule.
    adj: Vec<Vec<u32>>,
}

fn allowed_valences(e: Element, charge: i8) -> &'static [u32] {
    match (e.atomic_number(), charge) {
        (6, _) => &[4],
        (7, 1) => &[4],
        (7, _) => &[3],
        (8, -1) => &[1],
        (8, _) => &[2],
        (15, _) => &[3, 5],
        (16, _) => &[2, 4, 6],
        (9 | 17 | 35 | 53, _) => &[1],
        _ => &[0],
    }
}

impl Builder {
    fn add(&mut self, element: Element, name: String, unit: u32) -> u32 {
        self.atoms.push(BAtom { element, charge: 0, aromatic: false, name, unit, removed: false });
        self.adj.push(Vec::new());
        (self.atoms.len() - 1) as u32
    }
    fn bond(&mut self, a: u32, b: u32, order: BondOrder) {
        let k = self.bonds.len() as u32;
        self.bonds.push((a, b, order));
        self.alive.push(true);
        self.adj[a as usize].push(k);
        self.adj[b as usize].push(k);
    }
    /// The standing bonds, in the order they were made.
    fn live_bonds(&self) -> impl Iterator<Item = &(u32, u32, BondOrder)> {
        self.bonds.iter().zip(&self.alive).filter(|(_, &l)| l).map(|(b, _)| b)
    }
    /// Sets the order of the standing bonds between `a` and `b`.
    fn set_order(&mut self, a: u32, b: u32, order: BondOrder) {
        for &k in &self.adj[a as usize] {
            let bond = &mut self.bonds[k as usize];
            if self.alive[k as usize] && ((bond.0 == a && bond.1 == b) || (bond.0 == b && bond.1 == a)) {
                bond.2 = order;
            }
        }
    }
    /// Sum of bond orders at an atom, in half-bond units.
    fn used_half(&self, a: u32) -> u32 {
        self.adj[a as usize]
            .iter()
            .filter(|&&k| self.alive[k as usize])
            .map(|&k| self.bonds[k as usize].2.half_valence())
            .sum()
    }
    fn free_h(&self, a: u32) -> i32 {
        let at = &self.atoms[a as usize];
        let max = allowed_valences(at.element, at.charge).last().copied().unwrap_or(0);
        (2 * max as i32 - self.used_half(a) as i32) / 2
    }
    fn remove(&mut self, a: u32) {
        self.atoms[a as usize].removed = true;
        for &k in &self.adj[a as usize] {
            self.alive[k as usize] = false;
        }
    }
    /// Adds a fragment; returns the index of its first atom.
    fn add_fragment(&mut self, f: &Fragment, tag: &str, unit: u32) -> u32 {
        let base = self.atoms.len() as u32;
        for (k, a) in f.atoms.iter().enumerate() {
            let i = self.add(a.element, format!("{tag}{}{}", a.element.symbol(), k + 1), unit);
            self.atoms[i as usize].charge = a.charge;
            self.atoms[i as usize].aromatic = a.aromatic;
        }
        for &(a, b, o) in &f.bonds {
            self.bond(base + a as u32, base + b as u32, o);
        }
        base
    }
}

/// A glycan as an all-atom molecule.
#[derive(Clone, Debug)]
pub struct GlycanMolecule {
    /// The heterogeneous graph: heavy atoms, monosaccharide units, bonds, glycosidic links.
    pub graph: HeteroGraph,
    /// Assumptions made where the string leaves something open (sorted, unique).
    pub flags: Vec<String>,
    /// Dangling reducing-end link text (`a1-`), if written.
    pub reducing_end: Option<String>,
}

fn chem_err<T>(position: usize, message: impl Into<String>) -> Result<T, GlycanError> {
    Err(GlycanError::Chemistry { position, message: message.into() })
}

struct Ctx<'a> {
    b: Builder,
    res: Vec<ResAtoms>,
    specs: Vec<ResidueSpec>,
    parsed: &'a ParsedGlycan,
    flags: Vec<String>,
    /// Acceptor residue and position actually used, per donor residue.
    attached: Vec<Option<(usize, u8)>>,
}

/// Builds the molecule of a parsed glycan.
pub fn build(parsed: &ParsedGlycan) -> Result<GlycanMolecule, GlycanError> {
    let mut specs = Vec::with_capacity(parsed.residues.len());
    for r in &parsed.residues {
        let spec = parse_residue(&r.name).map_err(|e| GlycanError::Parse {
            position: r.offset + e.offset,
            message: format!("in '{}': {}", r.name, e.message),
        })?;
        specs.push(spec);
    }
    let mut cx = Ctx {
        b: Builder { atoms: Vec::new(), bonds: Vec::new(), alive: Vec::new(), adj: Vec::new() },
        res: Vec::new(),
        specs,
        parsed,
        flags: Vec::new(),
        attached: vec![None; parsed.residues.len()],
    };
    cx.infer_ring_forms();
    for r in 0..parsed.residues.len() {
        let ra = cx.build_core(r)?;
        cx.res.push(ra);
    }
    let mut deferred: Vec<(usize, Modification)> = Vec::new();
    let mut pyr: Vec<Vec<u8>> = vec![Vec::new(); parsed.residues.len()];
    for r in 0..parsed.residues.len() {
        let mods = cx.specs[r].mods.clone();
        for m in mods {
            if matches!(m.kind, ModKind::Deoxy) && m.positions.len() == 1 {
                continue; // applied while building the core
            }
            if let ModKind::Attach(g) = &m.kind {
                if g.ketal {
                    if m.positions.len() == 1 {
                        pyr[r].push(m.positions[0]);
                    } else {
                        deferred.push((r, m));
                    }
                    continue;
                }
            }
            if m.positions.len() == 1 {
                cx.apply_mod(r, &m, m.positions[0])?;
            } else {
                deferred.push((r, m));
            }
        }
    }
    // Links with a written acceptor position first, then the rest.
    // Residues nearer the root are linked first, so every residue has made its own donor bond
    // before others attach to it; written positions go before unknown ones.
    let depth: Vec<usize> = (0..parsed.residues.len())
        .map(|mut i| {
            let mut d = 0;
            while let Some(p) = parsed.residues[i].parent {
                i = p;
                d += 1;
                if d > parsed.residues.len() {
                    break;
                }
            }
            d
        })
        .collect();
    let mut order: Vec<usize> = (0..parsed.residues.len()).filter(|&i| parsed.residues[i].parent.is_some()).collect();
    order.sort_by_key(|&i| (parsed.residues[i].link.as_ref().map_or(1, |l| (l.acceptor.len() != 1) as u8), depth[i]));
    for i in order {
        let parent = parsed.residues[i].parent.unwrap();
        let link = parsed.residues[i].link.clone().expect("child residues carry a link");
        cx.link(i, parent, &link)?;
    }
    for &f in &parsed.floating_roots {
        let link = parsed.residues[f].link.clone().expect("floating roots carry their link");
        let target = (0..parsed.residues.len())
            .find(|&k| !parsed.residues[k].floating && cx.default_free_position(k, true).is_some());
        let Some(target) = target else {
            return chem_err(parsed.residues[f].offset, "no free hydroxyl left to attach the floating part to");
        };
        cx.flags.push("floating_part_attached_by_default".into());
        let mut l = link.clone();
        l.acceptor.clear();
        cx.link(f, target, &l)?;
    }
    let mut last_amino: Option<(usize, u8)> = None;
    for (r, m) in deferred {
        if let (ModKind::Attach(g), Some((lr, lp))) = (&m.kind, last_amino) {
            // An acyl written after an unplaced N (QuiNAcNBut) goes on that nitrogen.
            if lr == r && !g.ketal {
                cx.apply_mod(r, &m, lp)?;
                continue;
            }
        }
        let pos = m
            .positions
            .iter()
            .copied()
            .find(|&p| cx.free_hydroxyl(r, p))
            .or_else(|| cx.default_free_position(r, false));
        let Some(pos) = pos else {
            return chem_err(
                parsed.residues[r].offset,
                format!("no free hydroxyl in '{}' for a modification", parsed.residues[r].name),
            );
        };
        if let ModKind::Attach(g) = &m.kind {
            if g.ketal {
                pyr[r].push(pos);
                continue;
            }
        }
        cx.apply_mod(r, &m, pos)?;
        last_amino = matches!(m.kind, ModKind::Replace(Element::N)).then_some((r, pos));
    }
    for (r, list) in pyr.into_iter().enumerate() {
        let mut k = 0;
        while k < list.len() {
            let a = list[k];
            let b = if k + 1 < list.len() {
                list[k + 1]
            } else {
                let n = cx.res[r].carbon.len() as i32;
                let near = [2, -2, 1, -1, 3, -3]
                    .iter()
                    .map(|d| a as i32 + d)
                    .find(|&p| p >= 1 && p <= n && cx.free_hydroxyl(r, p as u8));
                match near {
                    Some(p) => p as u8,
                    None => {
                        return chem_err(
                            parsed.residues[r].offset,
                            format!("pyruvate on '{}' has no second hydroxyl to bridge", parsed.residues[r].name),
                        )
                    }
                }
            };
            cx.ketal(r, a, b)?;
            k += 2;
        }
    }
    cx.finish()
}

impl Ctx<'_> {
    fn offset(&self, r: usize) -> usize {
        self.parsed.residues[r].offset
    }
    fn name(&self, r: usize) -> &str {
        &self.parsed.residues[r].name
    }

    /// A residue written without `f`/`p` whose pyranose ring-closing position is named by a
    /// link or a modification (`Ara(a1-5)`, `5-deoxy-Xyl`, `Fru6Cl`) must be a furanose.
    fn infer_ring_forms(&mut self) {
        let n = self.parsed.residues.len();
        let mut demanded: Vec<Vec<u8>> = vec![Vec::new(); n];
        for (i, r) in self.parsed.residues.iter().enumerate() {
            if let (Some(p), Some(l)) = (r.parent, &r.link) {
                if l.acceptor.len() == 1 {
                    demanded[p].push(l.acceptor[0]);
                }
            }
            for m in &self.specs[i].mods {
                if m.positions.len() == 1 {
                    demanded[i].push(m.positions[0]);
                }
            }
        }
        // Positions used by links win over modifications written at the same place: the
        // modification (or an amino group placed at C2 by default) moves to the lowest other
        // free position, flagged. Phosphates stay: the link goes through them.
        let mut linked: Vec<Vec<u8>> = vec![Vec::new(); n];
        for (i, r) in self.parsed.residues.iter().enumerate() {
            if let Some(l) = &r.link {
                linked[i].push(l.donor.unwrap_or(self.specs[i].anomeric));
                if let (Some(p), 1) = (r.parent, l.acceptor.len()) {
                    linked[p].push(l.acceptor[0]);
                }
            }
        }
        for (i, spec) in self.specs.iter_mut().enumerate() {
            let mut moved = false;
            for m in spec.mods.iter_mut() {
                if m.positions.len() != 1 || !linked[i].contains(&m.positions[0]) {
                    continue;
                }
                let movable = match &m.kind {
                    ModKind::Attach(g) => !matches!(g.name, "P" | "PP"),
                    ModKind::Replace(Element::N) => m.assumed,
                    ModKind::Replace(_) => false,
                    _ => false,
                };
                if movable {
                    m.positions.clear();
                    moved = true;
                }
            }
            if moved {
                spec.flags.push("modification_moved_for_link".into());
            }
        }
        for (i, spec) in self.specs.iter_mut().enumerate() {
            let def = spec.core_def();
            if spec.ring_explicit || spec.ring != Ring::Pyranose || spec.anomeric == 0 {
                continue;
            }
            let closure = spec.anomeric + 4;
            if demanded[i].contains(&closure) && spec.anomeric + 3 <= def.carbons {
                spec.ring = Ring::Furanose;
                spec.flags.push("furanose_inferred_from_linkage".into());
            }
        }
    }

    fn build_core(&mut self, r: usize) -> Result<ResAtoms, GlycanError> {
        let spec = self.specs[r].clone();
        let def: &CoreDef = spec.core_def();
        let n = def.carbons;
        let u = r as u32;
        let mut acid: Vec<u8> = def.acid.iter().chain(spec.extra_acid.iter()).copied().collect();
        let mut keto_c2 = spec.carbonyl && spec.anomeric == 2;
        let aldehyde = spec.carbonyl && spec.anomeric == 1;
        if spec.open == OpenForm::Aldonic {
            if acid.contains(&1) {
                keto_c2 = spec.anomeric == 2;
            } else {
                acid.push(1);
            }
        }
        let mut deoxy: Vec<u8> = def.deoxy.to_vec();
        for m in &spec.mods {
            if matches!(m.kind, ModKind::Deoxy) && m.positions.len() == 1 {
                deoxy.push(m.positions[0]);
            }
        }
        // An anhydro bridge through the pyranose ring position (2,5-Anhydro-Man) leaves the
        // residue as an open-chain aldehyde closed by the anhydro ring instead.
        let pyranose_closure = spec.anomeric + 4;
        let mut spec = spec;
        let mut aldehyde = aldehyde;
        if !spec.ring_explicit && spec.anhydro.iter().any(|&(k, c)| k == pyranose_closure || c == pyranose_closure) {
            spec.ring = Ring::Open;
            aldehyde = spec.anomeric == 1 && spec.open == OpenForm::None;
        }
        let closure = match spec.ring {
            Ring::Pyranose => spec.anomeric + 4,
            Ring::Furanose => spec.anomeric + 3,
            Ring::Open | Ring::Carbocycle => 0,
        };
        if matches!(spec.ring, Ring::Pyranose | Ring::Furanose) {
            if spec.anomeric == 0 || closure > n {
                return chem_err(
                    self.offset(r),
                    format!("'{}' cannot form a {:?} ring with {n} carbons", self.name(r), spec.ring),
                );
            }
            if acid.contains(&closure) || deoxy.contains(&closure) {
                return chem_err(
                    self.offset(r),
                    format!("'{}': ring-closing carbon C{closure} has no oxygen", self.name(r)),
                );
            }
        }
        let mut ra = ResAtoms { anomeric: spec.anomeric, ..Default::default() };
        for p in 1..=n {
            let c = self.b.add(Element::C, format!("C{p}"), u);
            if p > 1 {
                self.b.bond(ra.carbon[p as usize - 2], c, BondOrder::Single);
            }
            ra.carbon.push(c);
        }
        for p in 1..=n {
            let c = ra.carbon[p as usize - 1];
            let is_acid = acid.contains(&p) && (p == 1 || p == n);
            ra.acid.push(is_acid);
            if is_acid {
                let o1 = self.b.add(Element::O, format!("O{p}A"), u);
                self.b.bond(c, o1, BondOrder::Double);
                let o2 = self.b.add(Element::O, format!("O{p}B"), u);
                self.b.bond(c, o2, BondOrder::Single);
                ra.hetero.push(Some(o2));
            } else if p == closure || deoxy.contains(&p) {
                ra.hetero.push(None);
            } else if def.amino.contains(&p) {
                let a = self.b.add(Element::N, format!("N{p}"), u);
                self.b.bond(c, a, BondOrder::Single);
                ra.hetero.push(Some(a));
            } else if (keto_c2 && p == 2) || (aldehyde && p == 1) {
                let a = self.b.add(Element::O, format!("O{p}"), u);
                self.b.bond(c, a, BondOrder::Double);
                ra.hetero.push(None);
            } else {
                let a = self.b.add(Element::O, format!("O{p}"), u);
                self.b.bond(c, a, BondOrder::Single);
                ra.hetero.push(Some(a));
            }
        }
        match spec.ring {
            Ring::Pyranose | Ring::Furanose => {
                let o = self.b.add(Element::O, format!("O{closure}"), u);
                self.b.bond(ra.carbon[spec.anomeric as usize - 1], o, BondOrder::Single);
                self.b.bond(ra.carbon[closure as usize - 1], o, BondOrder::Single);
            }
            Ring::Carbocycle => self.b.bond(ra.carbon[0], ra.carbon[n as usize - 1], BondOrder::Single),
            Ring::Open => {}
        }
        for &(keep, carbon) in &spec.anhydro {
            let (Some(o), true) = (ra.hetero.get(keep as usize - 1).copied().flatten(), carbon <= n) else {
                return chem_err(
                    self.offset(r),
                    format!("'{}': anhydro bridge {keep},{carbon} not possible", self.name(r)),
                );
            };
            let Some(gone) = ra.hetero[carbon as usize - 1] else {
                return chem_err(
                    self.offset(r),
                    format!("'{}': anhydro bridge {keep},{carbon} not possible", self.name(r)),
                );
            };
            self.b.remove(gone);
            ra.hetero[carbon as usize - 1] = None;
            ra.hetero[keep as usize - 1] = None;
            self.b.bond(o, ra.carbon[carbon as usize - 1], BondOrder::Single);
        }
        Ok(ra)
    }

    /// True when position `p` of residue `r` carries a heteroatom with a free hydrogen.
    fn free_hydroxyl(&self, r: usize, p: u8) -> bool {
        let ra = &self.res[r];
        match ra.hetero.get(p as usize - 1).copied().flatten() {
            Some(h) => {
                !self.b.atoms[h as usize].removed
                    && self.b.free_h(h) >= 1
                    && self.b.atoms[h as usize].element == Element::O
            }
            None => false,
        }
    }

    /// The lowest free hydroxyl position that is not the anomeric one (unless `allow_anomeric`
    /// is false and nothing else is free, in which case the anomeric one is used).
    fn default_free_position(&self, r: usize, strict: bool) -> Option<u8> {
        let ra = &self.res[r];
        let n = ra.carbon.len() as u8;
        let not_anomeric = (1..=n).find(|&p| p != ra.anomeric && !ra.acid[p as usize - 1] && self.free_hydroxyl(r, p));
        if not_anomeric.is_some() || strict {
            return not_anomeric;
        }
        (1..=n).find(|&p| self.free_hydroxyl(r, p))
    }

    fn hetero_at(&self, r: usize, p: u8) -> Result<u32, GlycanError> {
        let ra = &self.res[r];
        match ra.hetero.get(p as usize - 1).copied().flatten() {
            Some(h) if !self.b.atoms[h as usize].removed => Ok(h),
            _ => chem_err(self.offset(r), format!("'{}' has no hydroxyl or amino group at position {p}", self.name(r))),
        }
    }

    fn apply_mod(&mut self, r: usize, m: &Modification, p: u8) -> Result<(), GlycanError> {
        let u = r as u32;
        let ra_carbon = self.res[r].carbon.clone();
        if p == 0 || p as usize > ra_carbon.len() {
            return chem_err(self.offset(r), format!("'{}' has no position {p}", self.name(r)));
        }
        match &m.kind {
            ModKind::Deoxy => {
                let h = self.hetero_at(r, p)?;
                self.b.remove(h);
                self.res[r].hetero[p as usize - 1] = None;
            }
            ModKind::Replace(el) => {
                let h = self.hetero_at(r, p)?;
                if self.b.free_h(h) < 1 && *el != Element::N {
                    return chem_err(
                        self.offset(r),
                        format!("'{}': position {p} is already substituted", self.name(r)),
                    );
                }
                let at = &mut self.b.atoms[h as usize];
                at.element = *el;
                at.name = format!("{}{p}", el.symbol());
            }
            ModKind::Attach(g)
                if g.name == "S" && self.res[r].hetero.get(p as usize - 1).copied().flatten().is_none() =>
            {
                // Sulfonate on a deoxy carbon (sulfoquinovose, Qui6S): a C–S bond.
                let c = ra_carbon[p as usize - 1];
                if self.b.free_h(c) < 1 {
                    return chem_err(
                        self.offset(r),
                        format!("'{}': C{p} has no hydrogen for a sulfonate", self.name(r)),
                    );
                }
                let first = self.b.add_fragment(&fragment(g.smiles), &format!("S{p}"), u);
                self.b.bond(c, first, BondOrder::Single);
            }
            ModKind::Attach(g) => {
                let h = self.hetero_at(r, p)?;
                if self.b.free_h(h) < 1 {
                    return chem_err(
                        self.offset(r),
                        format!("'{}': position {p} is already substituted", self.name(r)),
                    );
                }
                let is_acid = self.res[r].acid[p as usize - 1];
                if let (true, Some(amide)) = (is_acid, g.amide) {
                    let f = fragment(amide);
                    let first = self.b.add_fragment(&f, &format!("{}{p}", g.name), u);
                    self.b.remove(h);
                    self.b.bond(ra_carbon[p as usize - 1], first, BondOrder::Single);
                    self.res[r].hetero[p as usize - 1] = Some(first);
                } else {
                    let f = fragment(g.smiles);
                    let first = self.b.add_fragment(&f, &format!("{}{p}", g.name), u);
                    self.b.bond(h, first, BondOrder::Single);
                    if matches!(g.name, "P" | "PP") {
                        // The last oxygen of the group is the free P–OH that can condense.
                        let last_o = first + f.atoms.len() as u32 - 1;
                        let last_p = first + f.atoms.iter().rposition(|a| a.element == Element::P).unwrap() as u32;
                        self.res[r].phospho.push((p, last_p, last_o));
                    }
                    if g.name == "Gc" && self.res[r].carbon.len() == 9 && p == 5 {
                        // Neu5Gc numbering: the glycolyl hydroxyl is position 11.
                        self.res[r].hetero.resize(11, None);
                        self.res[r].hetero[10] = Some(first + 3);
                    }
                }
            }
            ModKind::CarbonBranch(g) => {
                let c = ra_carbon[p as usize - 1];
                if self.b.free_h(c) < 1 {
                    return chem_err(
                        self.offset(r),
                        format!("'{}': C{p} has no hydrogen for a C-branch", self.name(r)),
                    );
                }
                let f = fragment(g.smiles);
                let first = self.b.add_fragment(&f, &format!("C{}{p}", g.name), u);
                self.b.bond(c, first, BondOrder::Single);
            }
            ModKind::Keto => {
                let h = self.hetero_at(r, p)?;
                let c = ra_carbon[p as usize - 1];
                if self.b.free_h(h) < 1 || self.b.free_h(c) < 1 {
                    return chem_err(self.offset(r), format!("'{}': position {p} cannot be a ketone", self.name(r)));
                }
                self.b.set_order(c, h, BondOrder::Double);
                self.res[r].hetero[p as usize - 1] = None;
            }
            ModKind::Ene => {
                if p as usize >= ra_carbon.len() {
                    return chem_err(
                        self.offset(r),
                        format!("'{}': no C{p}=C{} double bond possible", self.name(r), p + 1),
                    );
                }
                let (a, b) = (ra_carbon[p as usize - 1], ra_carbon[p as usize]);
                if self.b.free_h(a) < 1 || self.b.free_h(b) < 1 {
                    return chem_err(
                        self.offset(r),
                        format!("'{}': C{p}=C{} needs a hydrogen on each carbon", self.name(r), p + 1),
                    );
                }
                self.b.set_order(a, b, BondOrder::Double);
            }
        }
        Ok(())
    }

    fn ketal(&mut self, r: usize, a: u8, b: u8) -> Result<(), GlycanError> {
        if !self.free_hydroxyl(r, a) || !self.free_hydroxyl(r, b) || a == b {
            return chem_err(
                self.offset(r),
                format!("'{}': pyruvate ketal needs free hydroxyls at {a} and {b}", self.name(r)),
            );
        }
        let (oa, ob) = (self.hetero_at(r, a)?, self.hetero_at(r, b)?);
        let g: &Group = crate::residue::GROUPS.iter().find(|g| g.ketal).unwrap();
        let first = self.b.add_fragment(&fragment(g.smiles), &format!("Pyr{a}"), r as u32);
        self.b.bond(oa, first, BondOrder::Single);
        self.b.bond(ob, first, BondOrder::Single);
        Ok(())
    }

    fn link(&mut self, child: usize, parent: usize, l: &LinkSpec) -> Result<(), GlycanError> {
        let donor_pos = match l.donor {
            Some(d) => d,
            None if self.res[child].anomeric > 0 => self.res[child].anomeric,
            None => return chem_err(l.offset, format!("'{}' has no anomeric carbon to link from", self.name(child))),
        };
        if donor_pos as usize > self.res[child].carbon.len() {
            return chem_err(l.offset, format!("'{}' has no C{donor_pos}", self.name(child)));
        }
        let via_phosphate = |s: &Self, r: usize, p: u8| {
            s.res[r].phospho.iter().find(|x| x.0 == p && !s.b.atoms[x.2 as usize].removed).copied()
        };
        let acc_pos = match l.acceptor.iter().copied().find(|&p| {
            self.free_hydroxyl(parent, p)
                || (l.bridge == Bridge::Nitrogen && self.hetero_at(parent, p).is_ok())
                || via_phosphate(self, parent, p).is_some()
        }) {
            Some(p) => {
                if l.acceptor.len() > 1 {
                    self.flags.push("alternative_link_position".into());
                }
                p
            }
            None if l.acceptor.is_empty() || l.acceptor.len() > 1 => {
                self.flags.push("unknown_link_position".into());
                match self.default_free_position(parent, false) {
                    Some(p) => p,
                    None => {
                        return chem_err(
                            l.offset,
                            format!("no free hydroxyl left on '{}' for link ({})", self.name(parent), l.text),
                        )
                    }
                }
            }
            None => {
                // The written position is taken (by another link or a modification) or has no
                // oxygen: the link goes to the lowest free hydroxyl instead, flagged.
                match self.default_free_position(parent, false) {
                    Some(p) => {
                        self.flags.push("link_position_unavailable".into());
                        p
                    }
                    None => {
                        return chem_err(
                            l.offset,
                            format!(
                                "link ({}): position {} of '{}' has no free hydroxyl",
                                l.text,
                                l.acceptor[0],
                                self.name(parent)
                            ),
                        )
                    }
                }
            }
        };
        let donor_c = self.res[child].carbon[donor_pos as usize - 1];
        let donor_phos = via_phosphate(self, child, donor_pos);
        let acc_phos = if self.free_hydroxyl(parent, acc_pos) { None } else { via_phosphate(self, parent, acc_pos) };
        if donor_phos.is_some() || acc_phos.is_some() {
            // Phosphodiester through an existing phosphate group: one P–OH (or the donor's
            // anomeric OH) condenses with the other side's hydroxyl.
            let (donor_atom, donor_leaving) = match donor_phos {
                Some((_, p_atom, p_oh)) => (p_atom, p_oh),
                None => match self.res[child].hetero[donor_pos as usize - 1] {
                    Some(h) if self.free_hydroxyl(child, donor_pos) => (donor_c, h),
                    _ => {
                        return chem_err(
                            l.offset,
                            format!("link ({}): '{}' has no free hydroxyl at C{donor_pos}", l.text, self.name(child)),
                        )
                    }
                },
            };
            let acc_atom = match acc_phos {
                Some((_, _, p_oh)) if donor_phos.is_none() => p_oh,
                _ => self.hetero_at(parent, acc_pos)?,
            };
            self.b.remove(donor_leaving);
            self.b.bond(donor_atom, acc_atom, BondOrder::Single);
            self.res[child].phospho.retain(|x| x.2 != donor_leaving);
            if let Some((_, _, p_oh)) = acc_phos {
                if donor_phos.is_none() {
                    self.res[parent].phospho.retain(|x| x.2 != p_oh);
                }
            }
            self.attached[child] = Some((parent, acc_pos));
            return Ok(());
        }
        let donor_o = match self.res[child].hetero[donor_pos as usize - 1] {
            Some(h) if !self.b.atoms[h as usize].removed && self.b.free_h(h) >= 1 => h,
            _ => {
                return chem_err(
                    l.offset,
                    format!("link ({}): '{}' has no free hydroxyl at C{donor_pos}", l.text, self.name(child)),
                )
            }
        };
        let acc = self.hetero_at(parent, acc_pos)?;
        match l.bridge {
            Bridge::Oxygen => {
                self.b.remove(donor_o);
                self.b.bond(donor_c, acc, BondOrder::Single);
            }
            Bridge::Phosphate => {
                let p = self.b.add_fragment(&fragment("P(=O)O"), "PL", child as u32);
                self.b.bond(donor_o, p, BondOrder::Single);
                self.b.bond(p, acc, BondOrder::Single);
            }
            Bridge::Sulfur | Bridge::Nitrogen => {
                self.b.remove(donor_o);
                let el = if l.bridge == Bridge::Sulfur { Element::S } else { Element::N };
                let a = &mut self.b.atoms[acc as usize];
                a.element = el;
                a.name = format!("{}{acc_pos}", el.symbol());
                self.b.bond(donor_c, acc, BondOrder::Single);
            }
        }
        self.res[child].hetero[donor_pos as usize - 1] = None;
        self.attached[child] = Some((parent, acc_pos));
        Ok(())
    }

    fn finish(self) -> Result<GlycanMolecule, GlycanError> {
        let Ctx { b, res, specs, parsed, mut flags, attached } = self;
        let mut new_index = vec![u32::MAX; b.atoms.len()];
        let mut atoms = Vec::with_capacity(b.atoms.len());
        let mut half = vec![0u32; b.atoms.len()];
        for &(x, y, o) in b.live_bonds() {
            half[x as usize] += o.half_valence();
            half[y as usize] += o.half_valence();
        }
        for (i, a) in b.atoms.iter().enumerate() {
            if a.removed {
                continue;
            }
            let vals = allowed_valences(a.element, a.charge);
            let Some(&v) = vals.iter().find(|&&v| 2 * v >= half[i]) else {
                return chem_err(
                    parsed.residues[a.unit as usize].offset,
                    format!("too many bonds at atom {} of '{}'", a.name, parsed.residues[a.unit as usize].name),
                );
            };
            new_index[i] = atoms.len() as u32;
            atoms.push(Atom {
                element: a.element,
                formal_charge: a.charge,
                aromatic: a.aromatic,
                implicit_h: ((2 * v - half[i]) / 2) as u8,
                name: a.name.clone(),
                unit: a.unit,
            });
        }
        let bonds = b
            .live_bonds()
            .map(|&(x, y, o)| Bond { a: new_index[x as usize], b: new_index[y as usize], order: o })
            .collect();
        let units = parsed
            .residues
            .iter()
            .enumerate()
            .map(|(r, pr)| {
                let ra = &res[r];
                Unit {
                    kind: UnitKind::Monosaccharide,
                    type_id: specs[r].core as u32,
                    name: pr.name.clone(),
                    anchor: (ra.anomeric > 0).then(|| new_index[ra.carbon[ra.anomeric as usize - 1] as usize]),
                    label: None,
                }
            })
            .collect();
        let unit_links = parsed
            .residues
            .iter()
            .enumerate()
            .filter_map(|(r, pr)| {
                let l = pr.link.as_ref()?;
                let (dst, acc_pos) = attached[r]?;
                Some(UnitLink {
                    src: r as u32,
                    dst: dst as u32,
                    type_id: link_type_id(l.anomer, l.donor, Some(acc_pos)),
                    kind: UnitLinkKind::Glycosidic {
                        anomer: l.anomer,
                        donor_position: l.donor,
                        acceptor_position: Some(acc_pos),
                        bridge: match l.bridge {
                            Bridge::Oxygen => String::new(),
                            Bridge::Phosphate => "P".into(),
                            Bridge::Sulfur => "S".into(),
                            Bridge::Nitrogen => "N".into(),
                        },
                    },
                })
            })
            .collect();
        for s in &specs {
            flags.extend(s.flags.iter().cloned());
        }
        flags.sort();
        flags.dedup();
        let graph = HeteroGraph { atoms, units, bonds, unit_links, positions: None, spatial: Vec::new() };
        Ok(GlycanMolecule { graph, flags, reducing_end: parsed.reducing_end.as_ref().map(|l| l.text.clone()) })
    }
}

/// Number of glycosidic link types in [`link_type_id`]'s vocabulary.
pub const NUM_LINK_TYPES: u32 = 3 * 10 * 12;

/// Dense id of a glycosidic link type: anomer (α, β, unknown) × donor position (1–9, unknown)
/// × acceptor position (1–11, unknown). `b1-4` and `a2-3` get distinct ids; the same written
/// link always gets the same id.
pub fn link_type_id(anomer: aa_graph::Anomer, donor: Option<u8>, acceptor: Option<u8>) -> u32 {
    let a = match anomer {
        aa_graph::Anomer::Alpha => 0,
        aa_graph::Anomer::Beta => 1,
        aa_graph::Anomer::Unknown => 2,
    };
    let d = donor.filter(|&x| (1..=9).contains(&x)).map_or(0, |x| x as u32);
    let c = acceptor.filter(|&x| (1..=11).contains(&x)).map_or(0, |x| x as u32);
    (a * 10 + d) * 12 + c
}

fn fragment(s: &str) -> Fragment {
    // Fragment strings are constants of this crate; the table test parses every one of them.
    parse_fragment(s).unwrap_or_else(|e| panic!("bad built-in fragment: {e}"))
}
