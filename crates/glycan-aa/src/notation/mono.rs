//! One monosaccharide described the way WURCS describes it — a carbon skeleton code, one
//! character per carbon, plus substituents at positions — and named in IUPAC-condensed, the
//! crate's own grammar ([`crate::residue`]). GlycoCT basetypes are translated to the same code
//! ([`super::glycoct`]), so both notations share this naming.
//!
//! Skeleton characters (WURCS 2.0): `1`/`2` a stereocentre with its hydroxyl on the left/right
//! of the Fischer projection (`3`/`4` the same for a centre carrying a non-hydroxyl group), `x`
//! an unknown one; `a` the anomeric carbon of a ring form; `u`/`U` an aldehyde/ketone carbonyl
//! whose ring state is unknown; `o`/`O` an open-chain aldehyde/ketone; `d` an inner CH₂
//! (deoxy); `h` a terminal CH₂OH, `m` a terminal CH₃, `A` a terminal COOH.
//!
//! Naming picks the table entry ([`NAMES`]) closest to the skeleton — exact, or mirrored (the
//! other D/L series, written as a `D-`/`L-` prefix), or with extra deoxy positions, a
//! 6-deoxy terminal or a uronic acid written as modifications — and refuses a skeleton no
//! entry explains, rather than guessing: a refused residue is an error, never a wrong molecule.

use aa_graph::{BondOrder, Element};
use std::sync::OnceLock;

use crate::fragment::parse_fragment;
use crate::residue::GROUPS;

/// A substituent of a monosaccharide.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SubKind {
    /// A group on the position's oxygen (`6S`, `3Me`).
    OGroup(&'static str),
    /// An amino group at the position, with a group on its nitrogen or none (`NAc`, `N`).
    Amino(Option<&'static str>),
    /// An atom replacing the hydroxyl (`2F`).
    Replace(&'static str),
    /// A ketal bridging two positions' oxygens (`4,6Pyr`).
    Ketal(&'static str),
}

/// A substituent at positions: one position; alternatives (`3/4`); none known (`?`); or, for
/// [`SubKind::Ketal`], the two bridged positions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Substituent {
    pub positions: Vec<u8>,
    pub alternatives: bool,
    pub kind: SubKind,
}

/// A monosaccharide as a skeleton code and substituents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Mono {
    /// One character per carbon, C1 first.
    pub skeleton: Vec<u8>,
    /// The anomeric carbon of a ring form (from WURCS `-1b`, GlycoCT `1:5`); `None` when the
    /// skeleton says it (`u`, `U`) or there is none (alditol, open chain).
    pub anomeric: Option<u8>,
    /// The ring's closing carbon, when written (`_1-5` → 5); `None`: default or unknown.
    pub ring_end: Option<u8>,
    /// Substituents.
    pub subs: Vec<Substituent>,
    /// Anhydro bridges `(a, b)` (WURCS's second ring closure `_3-6`: one oxygen bridging Ca
    /// and Cb), written as the `a,b-Anhydro-` prefix.
    pub anhydro: Vec<(u8, u8)>,
}

/// The table: a name, its skeleton with `a` at the carbonyl carbon (the configuration the
/// name denotes without a prefix), and amino positions the name implies.
struct Named {
    name: &'static str,
    key: &'static [u8],
    amino: &'static [u8],
}

macro_rules! named {
    ($n:expr, $k:expr) => {
        Named { name: $n, key: $k, amino: &[] }
    };
    ($n:expr, $k:expr, amino $a:expr) => {
        Named { name: $n, key: $k, amino: &$a }
    };
}

/// Names in order of preference (the first of equally close entries wins; names implying
/// amino groups come before the plain name on the same skeleton).
static NAMES: &[Named] = &[
    named!("Glc", b"a2122h"),
    named!("Man", b"a1122h"),
    named!("Gal", b"a2112h"),
    named!("All", b"a2222h"),
    named!("Alt", b"a2111h"),
    named!("Gul", b"a2212h"),
    named!("Ido", b"a2121h"),
    named!("Tal", b"a1112h"),
    named!("Bac", b"a2122m", amino [2, 4]),
    named!("Qui", b"a2122m"),
    named!("Rha", b"a2211m"),
    named!("Fuc", b"a1221m"),
    named!("Abe", b"a2d12m"),
    named!("Tyv", b"a1d22m"),
    named!("Par", b"a2d22m"),
    named!("Col", b"a1d21m"),
    named!("Asc", b"a2d11m"),
    named!("Dig", b"ad222m"),
    named!("Oli", b"ad122m"),
    named!("Boi", b"ad212m"),
    named!("Xyl", b"a212h"),
    named!("Ara", b"a211h"),
    named!("Rib", b"a222h"),
    named!("Lyx", b"a112h"),
    named!("Ery", b"a22h"),
    named!("Thre", b"a12h"),
    named!("Fru", b"ha122h"),
    named!("Psi", b"ha222h"),
    named!("Sor", b"ha121h"),
    named!("Tag", b"ha112h"),
    named!("Xlu", b"ha12h"),
    named!("Rul", b"ha22h"),
    named!("Sed", b"ha1222h"),
    named!("Neu", b"Aad21122h", amino[5]),
    named!("Kdn", b"Aad21122h"),
    named!("Kdo", b"Aad1122h"),
    named!("Ko", b"Aa11122h"),
    named!("Pse", b"Aad22111m", amino [5, 7]),
    named!("Leg", b"Aad21122m", amino [5, 7]),
    named!("Aci", b"Aad21111m", amino [5, 7]),
    named!("4eLeg", b"Aad11122m", amino [5, 7]),
    named!("Dha", b"Aad112A"),
    named!("Hex", b"axxxxh"),
    named!("dHex", b"axxxxm"),
    named!("Pen", b"axxxh"),
    named!("Tet", b"axxh"),
    named!("Hep", b"axxxxxh"),
    named!("Oct", b"axxxxxxh"),
    named!("Non", b"axxxxxxxh"),
];

/// Cost of naming a skeleton by a generic entry (`Hex`) instead of a specific one: any number
/// of modifications on a specific name is preferred.
const GENERIC: u32 = 100;

fn mirror(c: u8) -> u8 {
    match c {
        b'1' => b'2',
        b'2' => b'1',
        b'3' => b'4',
        b'4' => b'3',
        other => other,
    }
}

/// How a skeleton differs from a table entry, when the difference can be written as
/// modifications.
#[derive(Default)]
struct Fit {
    deoxy: Vec<u8>,
    acid: bool,
    cost: u32,
}

fn fit(key: &[u8], entry: &[u8], generic: bool) -> Option<Fit> {
    if key.len() != entry.len() {
        return None;
    }
    let n = key.len();
    let mut f = Fit { cost: if generic { GENERIC } else { 0 }, ..Default::default() };
    for (i, (&k, &e)) in key.iter().zip(entry).enumerate() {
        let pos = (i + 1) as u8;
        let stereo = |c: u8| matches!(c, b'1' | b'2' | b'3' | b'4');
        let same = k == e
            || (stereo(k) && stereo(e) && (k == e || k == e + 2 || k + 2 == e))
            || (e == b'x' && (stereo(k) || k == b'x'));
        if same {
            continue;
        }
        if k == b'd' && (stereo(e) || e == b'x') {
            f.deoxy.push(pos);
        } else if i == n - 1 && k == b'm' && e == b'h' {
            f.deoxy.push(pos);
        } else if i == n - 1 && k == b'A' && e == b'h' {
            f.acid = true;
        } else {
            return None;
        }
        f.cost += 2; // a modification costs more than the mirror series (1)
    }
    Some(f)
}

/// The skeleton read: the key (carbonyl carbon as `a`), its open-chain form.
struct Key {
    key: Vec<u8>,
    /// 1-based carbonyl carbon.
    carbonyl: u8,
    /// `-ol`: no carbonyl at all (C1 is CH₂OH).
    alditol: bool,
    /// `aldehydo-`/`keto-`: an open-chain carbonyl.
    open_carbonyl: bool,
}

fn read_key(m: &Mono) -> Result<Key, String> {
    let s = &m.skeleton;
    if s.len() < 3 || s.len() > 9 {
        return Err(format!("a {}-carbon skeleton (3 to 9 are read)", s.len()));
    }
    for &c in s {
        if !matches!(c, b'1' | b'2' | b'3' | b'4' | b'x' | b'a' | b'u' | b'U' | b'o' | b'O' | b'd' | b'h' | b'm' | b'A')
        {
            return Err(format!(
                "skeleton character '{}' (double bonds, ketones inside the chain and other \
                 rare backbone forms are not read)",
                c as char
            ));
        }
    }
    let carbonyls: Vec<usize> =
        s.iter().enumerate().filter(|(_, &c)| matches!(c, b'a' | b'u' | b'U' | b'o' | b'O')).map(|(i, _)| i).collect();
    let mut key = s.clone();
    let (carbonyl, alditol, open_carbonyl) = match carbonyls.as_slice() {
        [] => {
            if s[0] != b'h' {
                return Err("a skeleton without a carbonyl carbon that is not an alditol".into());
            }
            key[0] = b'a';
            (1, true, false)
        }
        [i] => {
            let open = matches!(s[*i], b'o' | b'O');
            key[*i] = b'a';
            ((*i + 1) as u8, false, open)
        }
        _ => return Err("a skeleton with more than one carbonyl carbon".into()),
    };
    if let Some(an) = m.anomeric {
        if an != carbonyl {
            return Err(format!("anomeric position {an} is not the skeleton's carbonyl carbon C{carbonyl}"));
        }
    }
    if carbonyl > 2 {
        return Err(format!("a carbonyl at C{carbonyl} (only aldoses and 2-ketoses are read)"));
    }
    Ok(Key { key, carbonyl, alditol, open_carbonyl })
}

/// L-glycero-D-manno-heptose and the other aldoheptoses named on a hexose
/// (`LDManHep`): C2–C5 as the hexose, C6 as the first letter.
fn heptose(key: &[u8]) -> Option<String> {
    if key.len() != 7 || key[0] != b'a' || key[6] != b'h' || key[1..6].iter().any(|c| !matches!(c, b'1' | b'2')) {
        return None;
    }
    let hexose: Vec<u8> = [b"a".as_slice(), &key[1..5], b"h"].concat();
    let mirrored: Vec<u8> = hexose.iter().map(|&c| mirror(c)).collect();
    let hex = NAMES[..8].iter().find(|n| n.key == hexose.as_slice() || n.key == mirrored.as_slice())?.name;
    let c5 = if key[4] == b'2' { 'D' } else { 'L' };
    let c6 = if key[5] == b'2' { 'D' } else { 'L' };
    Some(format!("{c6}{c5}{hex}Hep"))
}

/// Names already given on this thread: glycans repeat their residues, and naming searches the
/// table (bounded: cleared when full).
const NAME_CACHE: usize = 4096;

thread_local! {
    static NAMED: std::cell::RefCell<std::collections::HashMap<Mono, Result<String, String>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The IUPAC-condensed name of a monosaccharide, or why it has none here.
pub(crate) fn iupac_name(m: &Mono) -> Result<String, String> {
    if let Some(hit) = NAMED.with(|c| c.borrow().get(m).cloned()) {
        return hit;
    }
    let named = name_uncached(m);
    NAMED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= NAME_CACHE {
            c.clear();
        }
        c.insert(m.clone(), named.clone());
    });
    named
}

fn name_uncached(m: &Mono) -> Result<String, String> {
    let k = read_key(m)?;
    let amino_at: Vec<u8> = m
        .subs
        .iter()
        .filter(|s| matches!(s.kind, SubKind::Amino(_)) && s.positions.len() == 1 && !s.alternatives)
        .map(|s| s.positions[0])
        .collect();
    let n = k.key.len() as u8;
    let mut best: Option<(u32, usize, bool, Fit)> = None;
    let mut core_name = heptose(&k.key);
    if core_name.is_none() {
        let mirrored: Vec<u8> = k.key.iter().map(|&c| mirror(c)).collect();
        for (idx, entry) in NAMES.iter().enumerate() {
            if !entry.amino.iter().all(|p| amino_at.contains(p)) {
                continue;
            }
            let generic = entry.key.contains(&b'x');
            for (mir, key) in [(false, &k.key), (true, &mirrored)] {
                if let Some(f) = fit(key, entry.key, generic) {
                    let cost = f.cost + u32::from(mir);
                    if best.as_ref().is_none_or(|b| cost < b.0) {
                        best = Some((cost, idx, mir, f));
                    }
                }
            }
        }
    }
    let mut name = String::new();
    let mut implied_amino: &[u8] = &[];
    let mut acid = false;
    let mut entry_name = "";
    if let Some(hep) = core_name.take() {
        name.push_str(&hep);
    } else {
        let Some((_, idx, mir, f)) = best else {
            return Err(format!("skeleton {} has no IUPAC-condensed name here", String::from_utf8_lossy(&m.skeleton)));
        };
        let entry = &NAMES[idx];
        entry_name = entry.name;
        implied_amino = entry.amino;
        if mir && !entry.key.contains(&b'x') {
            // The entry's series is the one its name denotes; the mirror is the other.
            name.push_str(if series_is_d(entry.key) { "L-" } else { "D-" });
        }
        if !f.deoxy.is_empty() {
            let pos: Vec<String> = f.deoxy.iter().map(|p| p.to_string()).collect();
            name.push_str(&pos.join(","));
            name.push_str(&"d".repeat(f.deoxy.len()));
        }
        name.push_str(entry.name);
        acid = f.acid;
    }
    // Ring letter, when it differs from the core's default.
    if let Some(end) = m.ring_end {
        let size = end.checked_sub(k.carbonyl).ok_or_else(|| format!("ring closing at C{end}"))?;
        let fur = match size {
            3 => true,
            4 => false,
            _ => return Err(format!("a ring from C{} to C{end} (only furanoses and pyranoses are read)", k.carbonyl)),
        };
        if end > n {
            return Err(format!("a ring closing at C{end} of a {n}-carbon skeleton"));
        }
        let default_fur = crate::residue::parse_residue(&name).map(|s| s.ring == crate::residue::Ring::Furanose);
        if default_fur.ok() != Some(fur) {
            name.push(if fur { 'f' } else { 'p' });
        }
    }
    if acid {
        name.push('A');
    }
    let mut subs: Vec<&Substituent> = m.subs.iter().collect();
    subs.sort_by_key(|s| s.positions.first().copied().unwrap_or(u8::MAX));
    let mut mur = false;
    for s in subs {
        let pos = if s.positions.is_empty() {
            "?".to_string()
        } else {
            let p: Vec<String> = s.positions.iter().map(|p| p.to_string()).collect();
            p.join(if s.alternatives { "/" } else { "," })
        };
        let single = (s.positions.len() == 1 && !s.alternatives).then(|| s.positions[0]);
        for &p in &s.positions {
            if p == 0 || p > n {
                return Err(format!("a substituent at position {p} of a {n}-carbon skeleton"));
            }
        }
        match &s.kind {
            SubKind::Amino(group) => {
                if single.is_some_and(|p| implied_amino.contains(&p)) {
                    if let Some(g) = group {
                        name.push_str(&format!("{pos}{g}"));
                    }
                } else if single == Some(2) && k.carbonyl == 1 {
                    name.push('N');
                    name.push_str(group.unwrap_or(""));
                } else {
                    name.push_str(&format!("{pos}N{}", group.unwrap_or("")));
                }
            }
            SubKind::OGroup(g) => {
                if *g == "Lac" && single == Some(3) && entry_name == "Glc" && name.contains("GlcN") {
                    mur = true;
                    continue;
                }
                name.push_str(&format!("{pos}{g}"));
            }
            SubKind::Replace(atom) => name.push_str(&format!("{pos}{atom}")),
            SubKind::Ketal(g) => name.push_str(&format!("{pos}{g}")),
        }
    }
    if mur {
        // Muramic acid: 3-O-lactyl glucosamine has its own name.
        name = name.replacen("GlcN", "MurN", 1);
    }
    for &(a, b) in m.anhydro.iter().rev() {
        name.insert_str(0, &format!("{},{}-Anhydro-", a.min(b), a.max(b)));
    }
    if k.alditol {
        name.push_str("-ol");
    } else if k.open_carbonyl {
        name.insert_str(0, if k.carbonyl == 1 { "aldehydo-" } else { "keto-" });
    }
    Ok(name)
}

/// Whether a table entry's configuration is the D series (its last stereocentre `2`).
fn series_is_d(key: &[u8]) -> bool {
    key.iter().rev().find(|c| matches!(c, b'1' | b'2')).is_none_or(|&c| c == b'2')
}

/// A small molecular graph: atoms by atomic number, bonds with orders, attachment points.
#[derive(Debug, Default)]
pub(crate) struct SmallGraph {
    pub atoms: Vec<u8>,
    pub bonds: Vec<(usize, usize, BondOrder)>,
}

impl SmallGraph {
    /// The atoms bonded to `a`, with the bond orders.
    pub fn neighbours(&self, a: usize) -> impl Iterator<Item = (usize, BondOrder)> + '_ {
        self.bonds.iter().filter_map(move |&(x, y, o)| {
            if x == a {
                Some((y, o))
            } else if y == a {
                Some((x, o))
            } else {
                None
            }
        })
    }

    /// A rooted signature of the atoms `keep` (Weisfeiler–Lehman refinement of element and
    /// bond order, root marked), equal for isomorphic rooted groups.
    fn signature(&self, keep: &[bool], root: usize) -> Vec<u64> {
        use std::hash::{Hash, Hasher};
        let n = self.atoms.len();
        let mut label: Vec<u64> = (0..n).map(|a| u64::from(self.atoms[a]) * 2 + u64::from(a == root)).collect();
        for _ in 0..4 {
            let next: Vec<u64> = (0..n)
                .map(|a| {
                    let mut nb: Vec<(u64, u8)> =
                        self.neighbours(a).filter(|&(b, _)| keep[b]).map(|(b, o)| (label[b], o as u8)).collect();
                    nb.sort_unstable();
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    (label[a], nb).hash(&mut h);
                    h.finish()
                })
                .collect();
            label = next;
        }
        let mut sig: Vec<u64> = (0..n).filter(|&a| keep[a]).map(|a| label[a]).collect();
        sig.sort_unstable();
        sig
    }
}

/// Rooted signatures of the crate's substituent groups (atom 0 the root), ketals apart.
fn group_signatures() -> &'static [(Vec<u64>, &'static str, bool)] {
    static SIGS: OnceLock<Vec<(Vec<u64>, &'static str, bool)>> = OnceLock::new();
    SIGS.get_or_init(|| {
        let mut out: Vec<(Vec<u64>, &'static str, bool)> = GROUPS
            .iter()
            .map(|g| {
                let f = parse_fragment(g.smiles).expect("group table SMILES parse");
                let graph = SmallGraph {
                    atoms: f.atoms.iter().map(|a| a.element.atomic_number()).collect(),
                    bonds: f.bonds.clone(),
                };
                let keep = vec![true; graph.atoms.len()];
                (graph.signature(&keep, 0), g.name, g.ketal)
            })
            .collect();
        // Shortest name first among groups of the same atoms (`Me` before `DiMe`).
        out.sort_by_key(|(_, name, _)| name.len());
        out
    })
}

/// The group whose atoms are `keep` of `graph`, rooted at `root`.
pub(crate) fn match_group(graph: &SmallGraph, keep: &[bool], root: usize, ketal: bool) -> Option<&'static str> {
    let sig = graph.signature(keep, root);
    group_signatures().iter().find(|(s, _, k)| *k == ketal && *s == sig).map(|(_, name, _)| *name)
}

/// Elements that replace a hydroxyl on their own.
pub(crate) fn replacing_atom(z: u8) -> Option<&'static str> {
    [Element::F, Element::CL, Element::BR, Element::I].into_iter().find(|e| e.atomic_number() == z).map(|e| e.symbol())
}

/// Whether the core table knows a name (used to check the table above against it).
#[cfg(test)]
fn core_known(name: &str) -> bool {
    crate::residue::CORES.iter().any(|c| c.name == name) || crate::residue::parse_residue(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mono(s: &str, subs: Vec<Substituent>) -> Mono {
        Mono { skeleton: s.as_bytes().to_vec(), anomeric: None, ring_end: None, subs, anhydro: vec![] }
    }

    #[test]
    fn every_table_name_parses() {
        for n in NAMES {
            assert!(core_known(n.name), "{}", n.name);
        }
    }

    #[test]
    fn common_skeletons_are_named() {
        let amino = |p: u8, g: Option<&'static str>| Substituent {
            positions: vec![p],
            alternatives: false,
            kind: SubKind::Amino(g),
        };
        let og =
            |p: u8, g: &'static str| Substituent { positions: vec![p], alternatives: false, kind: SubKind::OGroup(g) };
        let cases = [
            (mono("a2122h", vec![]), "Glc"),
            (mono("u2112h", vec![amino(2, Some("Ac"))]), "GalNAc"),
            (mono("a1221m", vec![]), "Fuc"),
            (mono("a2112m", vec![]), "D-Fuc"),
            (mono("a2211m", vec![]), "Rha"),
            (mono("a2222m", vec![]), "6dAll"),
            (mono("ad122h", vec![]), "2dGlc"),
            (mono("a2122A", vec![]), "GlcA"),
            (mono("a2121A", vec![og(2, "S")]), "IdoA2S"),
            (mono("Aad21122h", vec![amino(5, Some("Ac")), og(9, "Ac")]), "Neu5Ac9Ac"),
            (mono("Aad21122h", vec![]), "Kdn"),
            (mono("Aad1122h", vec![]), "Kdo"),
            (mono("a11221h", vec![]), "LDManHep"),
            (mono("ha122h", vec![]), "Fru"),
            (mono("h2122h", vec![amino(2, Some("Ac"))]), "GlcNAc-ol"),
            (mono("a2122h", vec![amino(2, Some("Ac")), og(3, "Lac")]), "MurNAc"),
            (mono("a2122m", vec![amino(2, Some("Ac")), amino(4, Some("Ac"))]), "Bac2Ac4Ac"),
            (mono("axxxxh", vec![]), "Hex"),
        ];
        for (m, want) in cases {
            assert_eq!(iupac_name(&m).unwrap(), want, "{:?}", String::from_utf8_lossy(&m.skeleton));
        }
        let mut furanose = mono("a2112h", vec![]);
        furanose.ring_end = Some(4);
        assert_eq!(iupac_name(&furanose).unwrap(), "Galf");
        for bad in ["a2122e", "aU122h", "a2", "a21O2h"] {
            assert!(iupac_name(&mono(bad, vec![])).is_err(), "{bad}");
        }
    }
}
