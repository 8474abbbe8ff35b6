//! WURCS 2.0 (`WURCS=2.0/3,3,2/[a2122h-1b_1-5_2*NCC/3=O][a1122h-1b_1-5][a1122h-1a_1-5]/1-2-3/a4-b1_b3-c1`)
//! read into a glycan tree.
//!
//! Read: unique residues with their skeleton, anomeric position and symbol, ring closure and
//! substituents (MAP strings, matched by structure against the crate's groups: `*NCC/3=O` is
//! N-acetyl because its atoms are); the residue sequence; glycosidic linkages with unknown
//! (`?`) or alternative (`a3|a6`) positions, phosphodiester bridges (`*OPO*/3O/3=O`), and
//! fragments of unknown attachment (`a?|b?}-{c1`, written as IUPAC `{…}` parts). Refused with
//! the position: repeating units (`~n`), compositions without linkages, linkages between more
//! than two residues, probabilities, and residues no IUPAC-condensed name here describes.

use super::mono::{iupac_name, match_group, replacing_atom, Mono, SmallGraph, SubKind, Substituent};
use super::write::{Link, Node, Tree};
use aa_graph::BondOrder;

/// A WURCS error: byte offset in the string and message.
pub(crate) type Err = (usize, String);

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, Err> {
    Err((pos, msg.into()))
}

/// The atom number after a MAP's `/` or `$` at `*i` (1-based, an atom already written), as a
/// 0-based index; `*i` moves past it.
fn atom_number(map: &str, i: &mut usize, base: usize, atoms: usize) -> Result<usize, Err> {
    let b = map.as_bytes();
    let (sym, start) = (b[*i] as char, *i + 1);
    *i += 1;
    while *i < b.len() && b[*i].is_ascii_digit() {
        *i += 1;
    }
    match map[start..*i].parse::<usize>() {
        Ok(n) if n >= 1 && n <= atoms => Ok(n - 1),
        Ok(n) => err(base + start, format!("MAP reference '{sym}{n}' to an atom that does not exist yet")),
        Err(_) => err(base + start - 1, format!("'{sym}' without an atom number in a MAP")),
    }
}

/// A MAP string parsed: atoms (0 for `*`), bonds, and which atoms are `*`.
fn parse_map(map: &str, base: usize) -> Result<(SmallGraph, Vec<usize>), Err> {
    let b = map.as_bytes();
    let mut g = SmallGraph::default();
    let mut stars = Vec::new();
    let mut prev: Option<usize> = None;
    let mut order = BondOrder::Single;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'*' => {
                let a = g.atoms.len();
                g.atoms.push(0);
                stars.push(a);
                if let Some(p) = prev {
                    g.bonds.push((p, a, order));
                }
                order = BondOrder::Single;
                prev = Some(a);
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            b'/' => prev = Some(atom_number(map, &mut i, base, g.atoms.len())?),
            b'=' => {
                order = BondOrder::Double;
                i += 1;
            }
            b'#' => {
                order = BondOrder::Triple;
                i += 1;
            }
            b'^' => i += 2, // stereo descriptor (^R ^S ^X ^E ^Z): no change of constitution
            b'$' => {
                // Ring closure to an earlier atom.
                let to = atom_number(map, &mut i, base, g.atoms.len())?;
                let Some(p) = prev else { return err(base + i, "MAP ring closure before any atom") };
                g.bonds.push((p, to, order));
                order = BondOrder::Single;
            }
            c if c.is_ascii_uppercase() => {
                let mut end = i + 1;
                if end < b.len() && b[end].is_ascii_lowercase() {
                    end += 1;
                }
                let sym = &map[i..end];
                let Some(e) = aa_graph::Element::from_symbol(sym) else {
                    return err(base + i, format!("unknown element '{sym}' in a MAP"));
                };
                let a = g.atoms.len();
                g.atoms.push(e.atomic_number());
                if let Some(p) = prev {
                    g.bonds.push((p, a, order));
                }
                order = BondOrder::Single;
                prev = Some(a);
                i = end;
            }
            _ => return err(base + i, format!("unexpected '{}' in a MAP", c as char)),
        }
    }
    if stars.is_empty() {
        return err(base, "a MAP without an attachment point '*'");
    }
    Ok((g, stars))
}

thread_local! {
    /// MAP strings already classified on this thread (a handful recur in every glycan set;
    /// bounded: cleared when full).
    static CLASSIFIED: std::cell::RefCell<std::collections::HashMap<String, SubKind>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// What a MAP at a residue position is (one star: a substituent; two: a ketal).
fn classify_map(map: &str, base: usize) -> Result<SubKind, Err> {
    if let Some(k) = CLASSIFIED.with(|c| c.borrow().get(map).cloned()) {
        return Ok(k);
    }
    let kind = classify_uncached(map, base)?;
    CLASSIFIED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 1024 {
            c.clear();
        }
        c.insert(map.to_string(), kind.clone());
    });
    Ok(kind)
}

fn classify_uncached(map: &str, base: usize) -> Result<SubKind, Err> {
    let (g, stars) = parse_map(map, base)?;
    let unsupported = || err(base, format!("the substituent MAP '{map}' is not one this reader knows"));
    if stars.len() == 2 {
        // A ketal bridging two hydroxyls of one residue: *O–C(…)–O* with the rest a group.
        let oxy: Vec<usize> = stars.iter().filter_map(|&s| g.neighbours(s).next().map(|(o, _)| o)).collect();
        if oxy.len() != 2 || oxy.iter().any(|&o| g.atoms[o] != 8) {
            return unsupported();
        }
        let centre: Vec<usize> = (0..g.atoms.len())
            .filter(|&a| oxy.iter().all(|&o| g.neighbours(o).any(|(b, _)| b == a)))
            .filter(|&a| !stars.contains(&a))
            .collect();
        let [c] = centre.as_slice() else { return unsupported() };
        let mut keep = vec![true; g.atoms.len()];
        for &a in stars.iter().chain(&oxy) {
            keep[a] = false;
        }
        return match match_group(&g, &keep, *c, true) {
            Some(name) => Ok(SubKind::Ketal(name)),
            None => unsupported(),
        };
    }
    if stars.len() != 1 {
        return unsupported();
    }
    let star = stars[0];
    let nb = |a: usize| -> Vec<usize> { g.neighbours(a).map(|(b, _)| b).collect() };
    let root = match nb(star).as_slice() {
        [r] => *r,
        _ => return unsupported(),
    };
    let rest: Vec<usize> = nb(root).into_iter().filter(|&a| a != star).collect();
    let mut keep = vec![true; g.atoms.len()];
    keep[star] = false;
    keep[root] = false;
    let group = match rest.as_slice() {
        [] => None,
        [r] => match match_group(&g, &keep, *r, false) {
            Some(name) => Some(name),
            None => return unsupported(),
        },
        _ => return unsupported(),
    };
    match (g.atoms[root], group) {
        (8, Some(name)) => Ok(SubKind::OGroup(name)),
        (7, group) => Ok(SubKind::Amino(group)),
        (z, None) => match replacing_atom(z) {
            Some(sym) => Ok(SubKind::Replace(sym)),
            None => unsupported(),
        },
        _ => unsupported(),
    }
}

fn positions(s: &str, base: usize) -> Result<(Vec<u8>, bool), Err> {
    let mut out = Vec::new();
    let alternatives = s.contains('|');
    for part in s.split('|') {
        if part == "?" {
            return Ok((Vec::new(), false));
        }
        match part.parse::<u8>() {
            Ok(p) if p > 0 => out.push(p),
            _ => return err(base, format!("'{part}' is not a carbon position")),
        }
    }
    Ok((out, alternatives))
}

/// One unique residue `[…]`: its monosaccharide and its anomeric symbol.
fn parse_ms(ms: &str, base: usize) -> Result<(Mono, char), Err> {
    let mut parts = ms.split('_');
    let head = parts.next().unwrap_or("");
    let (skeleton, anomer_part) = match head.split_once('-') {
        Some((s, a)) => (s, Some(a)),
        None => (head, None),
    };
    let mut m = Mono { skeleton: skeleton.as_bytes().to_vec(), ..Default::default() };
    let mut anomer = '?';
    if let Some(a) = anomer_part {
        let pos_base = base + skeleton.len() + 1;
        let (digits, sym) = a.split_at(a.len().saturating_sub(1));
        anomer = match sym {
            "a" => 'a',
            "b" => 'b',
            "x" | "u" => '?',
            _ => return err(pos_base, format!("anomeric symbol '{sym}' (a, b or x)")),
        };
        if digits != "?" {
            match digits.parse::<u8>() {
                Ok(p) if p > 0 => m.anomeric = Some(p),
                _ => return err(pos_base, format!("anomeric position '{digits}'")),
            }
        }
    }
    let mut offset = base + head.len() + 1;
    let mut ring_seen = false;
    for part in parts {
        let here = offset;
        offset += part.len() + 1;
        if part.is_empty() {
            return err(here, "an empty modification between '_'");
        }
        match part.split_once('*') {
            None => {
                // The ring closure `1-5` (`?` for unknown).
                let Some((a, b)) = part.split_once('-') else {
                    return err(here, format!("'{part}' is neither a ring closure nor a substituent"));
                };
                if ring_seen {
                    // A second closure is an anhydro bridge (`_3-6`: 3,6-anhydro), both ends
                    // written and apart from the anomeric carbon.
                    let (pa, pb) = (a.parse::<u8>(), b.parse::<u8>());
                    match (pa, pb) {
                        (Ok(pa), Ok(pb)) if pa > 0 && pb > 0 && pa != pb && Some(pa) != m.anomeric => {
                            m.anhydro.push((pa, pb));
                            continue;
                        }
                        _ => return err(here, format!("a second ring closure '{part}' that is no anhydro bridge")),
                    }
                }
                ring_seen = true;
                if a != "?" && m.anomeric.is_some() && a.parse::<u8>().ok() != m.anomeric {
                    return err(here, format!("ring closure '{part}' does not start at the anomeric carbon"));
                }
                m.ring_end = if b == "?" {
                    None
                } else {
                    Some(b.parse::<u8>().map_err(|_| (here, format!("ring closure '{part}'")))?)
                };
            }
            Some((pos, _)) => {
                let map_base = here + pos.len() + 1;
                let kind = classify_map(&part[pos.len()..], map_base - 1)?;
                let sub = if let SubKind::Ketal(_) = kind {
                    let Some((a, b)) = pos.split_once('-') else {
                        return err(here, format!("the bridging substituent '{part}' needs two positions"));
                    };
                    let (pa, _) = positions(a, here)?;
                    let (pb, _) = positions(b, here)?;
                    Substituent { positions: [pa, pb].concat(), alternatives: false, kind }
                } else {
                    if pos.contains('-') {
                        return err(here, format!("'{part}': a bridging position with a one-ended substituent"));
                    }
                    let (p, alternatives) = positions(pos, here)?;
                    Substituent { positions: p, alternatives, kind }
                };
                m.subs.push(sub);
            }
        }
    }
    Ok((m, anomer))
}

/// Residue letter → 0-based index (`a`–`z`, then `A`–`Z`).
fn residue_index(c: u8) -> Option<usize> {
    match c {
        b'a'..=b'z' => Some((c - b'a') as usize),
        b'A'..=b'Z' => Some((c - b'A') as usize + 26),
        _ => None,
    }
}

/// One side of a linkage: residue candidates and their positions.
struct Side {
    residues: Vec<usize>,
    positions: Vec<u8>,
    floating: bool,
}

fn parse_side(s: &str, base: usize) -> Result<Side, Err> {
    let floating = s.starts_with('{') || s.ends_with('}');
    let body = s.trim_start_matches('{').trim_end_matches('}');
    let mut side = Side { residues: Vec::new(), positions: Vec::new(), floating };
    let mut unknown = false;
    for alt in body.split('|') {
        let b = alt.as_bytes();
        let Some(&c) = b.first() else { return err(base, "an empty linkage side") };
        let Some(r) = residue_index(c) else {
            return err(base, format!("'{alt}' does not start with a residue letter"));
        };
        let pos = &alt[1..];
        if !side.residues.contains(&r) {
            side.residues.push(r);
        }
        if pos == "?" {
            unknown = true;
        } else {
            match pos.parse::<u8>() {
                Ok(p) if p > 0 => {
                    if !side.positions.contains(&p) {
                        side.positions.push(p);
                    }
                }
                _ => return err(base, format!("'{alt}': a residue letter and a carbon position, like b1")),
            }
        }
    }
    if unknown {
        side.positions.clear();
    }
    Ok(side)
}

/// Reads a WURCS 2.0 string into a tree.
pub(crate) fn read(s: &str) -> Result<Tree, Err> {
    let Some(rest) = s.strip_prefix("WURCS=") else {
        return err(0, "a WURCS string starts with 'WURCS='");
    };
    let Some(body) = rest.strip_prefix("2.0/") else {
        return err(6, "only WURCS 2.0 is read");
    };
    let mut pos = 10;
    let (counts, after) =
        body.split_once('/').ok_or_else(|| (pos, "the counts section ends without '/'".to_string()))?;
    if counts.ends_with('+') {
        return err(pos, "a composition without linkages ('+'): no structure to build");
    }
    let nums: Vec<usize> = counts
        .split(',')
        .map(|x| x.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| (pos, format!("counts '{counts}' are not three numbers")))?;
    let [n_unique, n_res, n_lin] = nums.as_slice() else {
        return err(pos, format!("counts '{counts}' are not three numbers"));
    };
    pos += counts.len() + 1;
    // Unique residues.
    let mut uniques = Vec::new();
    let mut rest = after;
    while let Some(r) = rest.strip_prefix('[') {
        let close = r.find(']').ok_or_else(|| (pos, "'[' without ']'".to_string()))?;
        let ms = &r[..close];
        let (m, anomer) = parse_ms(ms, pos + 1)?;
        uniques.push((m, anomer, pos + 1, ms));
        pos += close + 2;
        rest = &r[close + 1..];
    }
    if uniques.len() != *n_unique {
        return err(10, format!("the counts say {n_unique} unique residues, and {} are written", uniques.len()));
    }
    let rest = rest.strip_prefix('/').ok_or_else(|| (pos, "expected '/' after the unique residues".to_string()))?;
    pos += 1;
    let (seq, lin) = rest.split_once('/').unwrap_or((rest, ""));
    if seq.contains('<') || seq.contains('>') {
        return err(pos, "residue sequence with repeating or cyclic markers");
    }
    let mut res = Vec::new();
    for (k, idx) in seq.split('-').enumerate() {
        match idx.parse::<usize>() {
            Ok(i) if i >= 1 && i <= uniques.len() => res.push(i - 1),
            _ => {
                return err(pos, format!("residue {} of the sequence, '{idx}', is not a unique-residue number", k + 1))
            }
        }
    }
    if res.len() != *n_res {
        return err(10, format!("the counts say {n_res} residues, and the sequence has {}", res.len()));
    }
    if res.len() > 52 {
        return err(pos, format!("{} residues (residue letters a–z, A–Z: 52 at most are read)", res.len()));
    }
    pos += seq.len() + 1;
    let mut tree = Tree::default();
    for (k, &u) in res.iter().enumerate() {
        let (m, _, at, ms) = &uniques[u];
        let name = iupac_name(m).map_err(|e| (*at, format!("residue {} [{ms}]: {e}", k + 1)))?;
        tree.nodes.push(Node { name, src: *at, parent: None, link: None });
    }
    let anomeric_of = |r: usize| -> Option<u8> {
        let (m, _, _, _) = &uniques[res[r]];
        m.anomeric.or_else(|| m.skeleton.iter().position(|&c| matches!(c, b'a' | b'u' | b'U')).map(|i| (i + 1) as u8))
    };
    let mut n_links = 0;
    if !lin.is_empty() {
        let mut offset = pos;
        for l in lin.split('_') {
            let here = offset;
            offset += l.len() + 1;
            n_links += 1;
            if l.contains('~') {
                return err(here, format!("'{l}' is a repeating unit, which IUPAC-condensed cannot write"));
            }
            if l.contains('%') {
                return err(here, format!("'{l}' gives a linkage probability, which is not read"));
            }
            let (sides, map) = match l.split_once('*') {
                Some((s, m)) => (s, Some(m)),
                None => (l, None),
            };
            let parts: Vec<&str> = sides.split('-').collect();
            let [a, b] = parts.as_slice() else {
                return err(here, format!("'{l}' does not link exactly two residues"));
            };
            let sa = parse_side(a, here)?;
            let sb = parse_side(b, here + a.len() + 1)?;
            if let Some(&r) = sa.residues.iter().chain(&sb.residues).find(|&&r| r >= tree.nodes.len()) {
                return err(
                    here,
                    format!("'{l}' names residue {}, beyond the {} in the sequence", r + 1, tree.nodes.len()),
                );
            }
            let bridge = match map {
                None => None,
                Some(m) => {
                    let (g, stars) = parse_map(&format!("*{m}"), here + sides.len())?;
                    // A phosphodiester: *O–P(=O)(O)–O*.
                    let phospho =
                        stars.len() == 2 && g.atoms.iter().filter(|&&z| z == 15).count() == 1 && g.atoms.len() == 7;
                    if !phospho {
                        return err(
                            here + sides.len(),
                            format!("the linkage bridge '*{m}' is not one this reader knows (phosphate)"),
                        );
                    }
                    Some("P")
                }
            };
            // The floating side lists candidate parents; the other side is the child.
            let (parent, child) = match (sa.floating, sb.floating) {
                (true, false) => (sa, sb),
                (false, true) => (sb, sa),
                (false, false) => {
                    let (ra, rb) = (sa.residues[0], sb.residues[0]);
                    if sa.residues.len() != 1 || sb.residues.len() != 1 {
                        return err(here, format!("'{l}': alternative residues outside a fragment ('}}')"));
                    }
                    let a_anom = sa.positions.len() == 1 && anomeric_of(ra) == Some(sa.positions[0]);
                    let b_anom = sb.positions.len() == 1 && anomeric_of(rb) == Some(sb.positions[0]);
                    match (a_anom, b_anom) {
                        (false, true) => (sa, sb),
                        (true, false) => (sb, sa),
                        (true, true) if rb > ra => (sa, sb),
                        (true, true) => (sb, sa),
                        (false, false) if sb.positions.is_empty() && rb > ra => (sa, sb),
                        (false, false) => {
                            return err(
                                here,
                                format!("'{l}': neither side is an anomeric carbon (not a glycosidic linkage)"),
                            )
                        }
                    }
                }
                (true, true) => return err(here, format!("'{l}': both sides are fragments")),
            };
            let c = child.residues[0];
            if child.residues.len() != 1 {
                return err(here, format!("'{l}': the child side names several residues"));
            }
            if tree.nodes[c].link.is_some() {
                return err(
                    here,
                    format!("residue {} has a second parent in '{l}' (IUPAC-condensed writes trees)", c + 1),
                );
            }
            let anomer = uniques[res[c]].1;
            let link = Link {
                anomer,
                donor: child.positions.first().copied().filter(|_| child.positions.len() == 1),
                acceptor: parent.positions.clone(),
                bridge,
            };
            tree.nodes[c].link = Some(link);
            if parent.floating && parent.residues.len() > 1 {
                tree.nodes[c].link.as_mut().expect("set above").acceptor.clear();
                tree.floating.push(c);
            } else {
                if parent.residues[0] == c {
                    return err(here, format!("'{l}' links a residue to itself"));
                }
                tree.nodes[c].parent = Some(parent.residues[0]);
            }
        }
    }
    if n_links != *n_lin {
        return err(10, format!("the counts say {n_lin} linkages, and {n_links} are written"));
    }
    // The root: residue a (WURCS lists the reducing end first).
    if tree.nodes[0].link.is_some() {
        return err(pos, "residue a, the reducing end, is linked as a child");
    }
    let unattached: Vec<usize> = (1..tree.nodes.len()).filter(|&k| tree.nodes[k].link.is_none()).collect();
    if let Some(&k) = unattached.first() {
        return err(pos, format!("residue {} is linked to nothing (a composition or a disconnected part)", k + 1));
    }
    let (m0, anomer0, _, _) = &uniques[res[0]];
    if let (Some(an), 'a' | 'b') = (m0.anomeric, anomer0) {
        tree.reducing = Some((*anomer0, Some(an)));
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iupac(s: &str) -> String {
        let t = read(s).unwrap();
        t.write(0).unwrap().text
    }

    #[test]
    fn reads_common_wurcs() {
        assert_eq!(
            iupac("WURCS=2.0/3,3,2/[a2122h-1b_1-5_2*NCC/3=O][a2112h-1b_1-5][Aad21122h-2a_2-6_5*NCC/3=O]/1-2-3/a4-b1_b3-c2"),
            "Neu5Ac(a2-3)Gal(b1-4)GlcNAc(b1-"
        );
        assert_eq!(iupac("WURCS=2.0/2,2,1/[u2122h_2*NCC/3=O][a2112h-1b_1-5]/1-2/a3|a4-b1"), "Gal(b1-3/4)GlcNAc");
        assert_eq!(iupac("WURCS=2.0/2,2,1/[u1122h][a1122h-1a_1-5]/1-2/a6-b1*OPO*/3O/3=O"), "Man(a1-P-6)Man");
        assert_eq!(
            iupac("WURCS=2.0/2,2,1/[u2122h_2*NCC/3=O_6*OSO/3=O/3=O][a2112h-1b_1-4_3*OC]/1-2/a4-b1"),
            "Galf3Me(b1-4)GlcNAc6S"
        );
    }

    #[test]
    fn anhydro_bridges_become_the_anhydro_prefix() {
        // Agarobiose's 3,6-anhydro-L-galactose (a second ring closure `_3-6`).
        let w = "WURCS=2.0/2,2,1/[a2112h-1b_1-5][a1221h-1a_1-5_3-6]/1-2/a3-b1";
        let text = iupac(w);
        assert_eq!(text, "3,6-Anhydro-L-Gal(a1-3)Gal(b1-", "{text}");
        let g = crate::Glycan::parse(w).unwrap();
        let want = crate::Glycan::from_iupac("3,6-Anhydro-L-Gal(a1-3)Gal").unwrap();
        assert_eq!(g.molecule.graph.formula(), want.molecule.graph.formula());
        assert_eq!(g.molecule.graph.bonds.len(), want.molecule.graph.bonds.len());
        // A second closure at the anomeric carbon is no bridge.
        assert!(read("WURCS=2.0/1,1,0/[a2112h-1b_1-5_1-4]/1/").is_err());
    }

    #[test]
    fn malformed_wurcs_errors_have_positions() {
        for (s, at) in [
            ("WURCS=2.0/1,1,0/[a2122q-1b_1-5]/1/", 17),
            ("WURCS=2.0/2,2,1/[u2122h][a2122h-1b_1-5]/1-2/a4-b1~n", 44),
            ("WURCS=2.0/1,1,0/[a2122h-1b_1-5_2*NZZ]/1/", 34),
            ("WURCS=3.0/1,1,0/[a2122h-1b_1-5]/1/", 6),
        ] {
            let (p, msg) = read(s).unwrap_err();
            assert_eq!(p, at, "{s}: {msg}");
        }
    }
}
