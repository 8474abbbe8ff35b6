//! GlycoCT condensed read into a glycan tree:
//!
//! ```text
//! RES
//! 1b:b-dglc-HEX-1:5
//! 2s:n-acetyl
//! 3b:b-dgal-HEX-1:5
//! LIN
//! 1:1d(2+1)2n
//! 2:1o(4+1)3d
//! ```
//!
//! Lines may also be separated by spaces (a string pasted into one line). A basetype
//! (`a-dgro-dgal-NON-2:6|1:a|2:keto|3:d`) becomes the same skeleton code WURCS writes (stereo
//! prefixes fill the stereocentres from the carbonyl end, the last prefix first), so both
//! notations share one naming ([`super::mono`]). Substituents are read by name (`n-acetyl`,
//! `sulfate`, `phosphate`, `(r)-pyruvate` bridging two positions, …); a substituent between
//! two residues is read as a phosphodiester bridge when it is a phosphate. Refused with the
//! position: repeating units (`REP`), underdetermined parts (`UND`), unknown substituents,
//! modifications such as double bonds.

use super::mono::{iupac_name, Mono, SubKind, Substituent};
use super::write::{Link, Node, Tree};

type Err = (usize, String);

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, Err> {
    Err((pos, msg.into()))
}

/// Stereo prefix → its centres' pattern in the D series, lowest carbon first.
fn stereo_pattern(code: &str) -> Option<&'static str> {
    Some(match code {
        "gro" => "2",
        "ery" => "22",
        "thr" => "12",
        "ara" => "122",
        "lyx" => "112",
        "rib" => "222",
        "xyl" => "212",
        "all" => "2222",
        "alt" => "1222",
        "glc" => "2122",
        "gul" => "2212",
        "ido" => "1212",
        "gal" => "2112",
        "man" => "1122",
        "tal" => "1112",
        _ => return None,
    })
}

fn superclass(s: &str) -> Option<usize> {
    Some(match s {
        "TRI" => 3,
        "TET" => 4,
        "PEN" => 5,
        "HEX" => 6,
        "HEP" => 7,
        "OCT" => 8,
        "NON" => 9,
        _ => return None,
    })
}

/// A GlycoCT substituent name → what it is and the parent link type it needs (`o` on the
/// oxygen, `d` replacing the hydroxyl).
fn substituent(name: &str) -> Option<(SubKind, char)> {
    use SubKind::*;
    Some(match name {
        "n-acetyl" => (Amino(Some("Ac")), 'd'),
        "n-glycolyl" => (Amino(Some("Gc")), 'd'),
        "n-sulfate" => (Amino(Some("S")), 'd'),
        "n-methyl" => (Amino(Some("Me")), 'd'),
        "n-formyl" => (Amino(Some("Fo")), 'd'),
        "amino" => (Amino(None), 'd'),
        "acetyl" => (OGroup("Ac"), 'o'),
        "glycolyl" => (OGroup("Gc"), 'o'),
        "sulfate" => (OGroup("S"), 'o'),
        "phosphate" => (OGroup("P"), 'o'),
        "pyrophosphate" | "diphosphate" => (OGroup("PP"), 'o'),
        "methyl" => (OGroup("Me"), 'o'),
        "ethyl" => (OGroup("Et"), 'o'),
        "formyl" => (OGroup("Fo"), 'o'),
        "(r)-lactate" | "(s)-lactate" | "(x)-lactate" | "lactate" => (OGroup("Lac"), 'o'),
        "phospho-ethanolamine" => (OGroup("PEtN"), 'o'),
        "diphospho-ethanolamine" => (OGroup("PPEtN"), 'o'),
        "phospho-choline" | "phosphocholine" => (OGroup("PCho"), 'o'),
        "fluoro" => (Replace("F"), 'd'),
        "chloro" => (Replace("Cl"), 'd'),
        "bromo" => (Replace("Br"), 'd'),
        "iodo" => (Replace("I"), 'd'),
        "(r)-pyruvate" | "(s)-pyruvate" | "(x)-pyruvate" | "pyruvate" => (Ketal("Pyr"), 'o'),
        _ => return None,
    })
}

/// A basetype `a-dglc-HEX-1:5|6:d` → its monosaccharide and anomer.
fn basetype(s: &str, base: usize) -> Result<(Mono, char), Err> {
    let mut parts = s.split('|');
    let head = parts.next().unwrap_or("");
    let fields: Vec<&str> = head.split('-').collect();
    if fields.len() < 3 {
        return err(base, format!("basetype '{s}': anomer, configuration, superclass and ring, like b-dglc-HEX-1:5"));
    }
    let anomer = match fields[0] {
        "a" => 'a',
        "b" => 'b',
        "x" | "o" => '?',
        other => return err(base, format!("anomer '{other}' (a, b, x or o)")),
    };
    let ring = fields[fields.len() - 1];
    let class = fields[fields.len() - 2];
    let Some(n) = superclass(class) else {
        return err(base, format!("superclass '{class}' (TRI … NON)"));
    };
    let stereo = &fields[1..fields.len() - 2];
    // Modifications.
    let mut carbonyl = 1u8;
    let mut deoxy = Vec::new();
    let mut acid = Vec::new();
    let mut alditol = false;
    let mut offset = base + head.len() + 1;
    for m in parts {
        let here = offset;
        offset += m.len() + 1;
        let Some((pos, kind)) = m.split_once(':') else {
            return err(here, format!("modification '{m}' is not position:type"));
        };
        let Ok(p) = pos.parse::<u8>() else {
            return err(
                here,
                format!("modification '{m}': position '{pos}' (several or unknown positions are not read)"),
            );
        };
        if p == 0 || p as usize > n {
            return err(here, format!("modification '{m}' outside C1–C{n}"));
        }
        match kind {
            "d" => deoxy.push(p),
            "a" => acid.push(p),
            "keto" => carbonyl = p,
            "aldi" => alditol = true,
            other => return err(here, format!("modification '{other}' (d, a, keto and aldi are read)")),
        }
    }
    if carbonyl > 2 {
        return err(base, format!("a carbonyl at C{carbonyl} (only aldoses and 2-ketoses are read)"));
    }
    // The skeleton: terminal and deoxy carbons first, stereocentres filled from the prefixes.
    let mut sk = vec![b'?'; n];
    for p in 1..=n as u8 {
        let i = (p - 1) as usize;
        let terminal = p == 1 || p as usize == n;
        sk[i] = if p == carbonyl {
            if alditol {
                b'h'
            } else {
                b'a'
            }
        } else if acid.contains(&p) {
            if !terminal {
                return err(base, format!("an acid at inner carbon C{p}"));
            }
            b'A'
        } else if deoxy.contains(&p) {
            if terminal {
                b'm'
            } else {
                b'd'
            }
        } else if terminal {
            b'h'
        } else {
            b'?'
        };
    }
    let centres: Vec<usize> = (0..n).filter(|&i| sk[i] == b'?').collect();
    let mut pattern = Vec::new();
    for code in stereo.iter().rev() {
        let (series, name) = code.split_at(1.min(code.len()));
        let Some(p) = stereo_pattern(name) else {
            return err(base, format!("configuration '{code}'"));
        };
        for c in p.bytes() {
            pattern.push(match series {
                "d" => c,
                "l" => {
                    if c == b'1' {
                        b'2'
                    } else {
                        b'1'
                    }
                }
                _ => b'x',
            });
        }
    }
    if pattern.is_empty() {
        pattern = vec![b'x'; centres.len()];
    }
    if pattern.len() != centres.len() {
        return err(
            base,
            format!(
                "'{s}': the configuration names {} stereocentres, the skeleton has {}",
                pattern.len(),
                centres.len()
            ),
        );
    }
    for (&i, &c) in centres.iter().zip(&pattern) {
        sk[i] = c;
    }
    let mut m = Mono { skeleton: sk, ..Default::default() };
    match ring.split_once(':') {
        Some(("0", "0")) => {
            if !alditol {
                sk_open(&mut m, carbonyl);
            }
        }
        Some(("x", "x")) | Some(("-1", "-1")) => {}
        Some((a, b)) => {
            let (Ok(a), Ok(b)) = (a.parse::<u8>(), b.parse::<u8>()) else {
                return err(base, format!("ring '{ring}'"));
            };
            if a != carbonyl {
                return err(base, format!("ring '{ring}' does not start at the carbonyl carbon C{carbonyl}"));
            }
            m.anomeric = Some(a);
            m.ring_end = Some(b);
        }
        None => return err(base, format!("ring '{ring}' is not start:end")),
    }
    Ok((m, anomer))
}

/// An open-chain carbonyl (`o` in WURCS for an aldehyde, `O` for a ketone).
fn sk_open(m: &mut Mono, carbonyl: u8) {
    m.skeleton[(carbonyl - 1) as usize] = if carbonyl == 1 { b'o' } else { b'O' };
}

enum Res {
    Base { mono: Mono, anomer: char, at: usize },
    Sub { name: String, at: usize },
}

/// `-1` or `3|6` → positions (empty: unknown).
fn lin_positions(s: &str, at: usize) -> Result<Vec<u8>, Err> {
    if s == "-1" {
        return Ok(Vec::new());
    }
    s.split('|').map(|p| p.parse::<u8>().map_err(|_| (at, format!("linkage position '{p}'")))).collect()
}

/// `2:1o(4+1)3d` → (parent, parent type, parent positions, child positions, child, child type).
fn parse_lin(t: &str, at: usize) -> Result<(usize, char, Vec<u8>, Vec<u8>, usize, char), Err> {
    let bad = || (at, format!("linkage '{t}' is not id:parent type(position+position)child type, like 2:1o(4+1)3d"));
    let (_, rest) = t.split_once(':').ok_or_else(bad)?;
    let open = rest.find('(').ok_or_else(bad)?;
    let close = open + rest[open..].find(')').ok_or_else(bad)?;
    let (pid, ptype) = rest[..open].split_at(open.checked_sub(1).ok_or_else(bad)?);
    let inner = &rest[open + 1..close];
    let (pp, cp) = inner.split_once('+').ok_or_else(bad)?;
    let tail = &rest[close + 1..];
    let (cid, ctype) = tail.split_at(tail.len().checked_sub(1).ok_or_else(bad)?);
    let parent = pid.parse::<usize>().map_err(|_| bad())?;
    let child = cid.parse::<usize>().map_err(|_| bad())?;
    let ptype = ptype.chars().next().ok_or_else(bad)?;
    let ctype = ctype.chars().next().ok_or_else(bad)?;
    Ok((parent, ptype, lin_positions(pp, at)?, lin_positions(cp, at)?, child, ctype))
}

/// Reads GlycoCT condensed into a tree.
pub(crate) fn read(s: &str) -> Result<Tree, Err> {
    // Tokens with their offsets (lines or space-separated entries).
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if let Some(st) = start.take() {
                tokens.push((st, &s[st..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        tokens.push((st, &s[st..]));
    }
    let mut section = "";
    let mut residues: std::collections::BTreeMap<usize, Res> = Default::default();
    let mut links = Vec::new();
    for &(at, t) in &tokens {
        match t {
            "RES" | "LIN" => {
                section = t;
                continue;
            }
            "REP" => return err(at, "repeating units (REP), which IUPAC-condensed cannot write"),
            "UND" => return err(at, "underdetermined parts (UND) are not read"),
            "ALT" | "NON" | "ISO" | "AGG" => return err(at, format!("the {t} section is not read")),
            _ => {}
        }
        match section {
            "RES" => {
                let digits = t.bytes().take_while(|c| c.is_ascii_digit()).count();
                let id: usize = t[..digits].parse().map_err(|_| (at, format!("residue '{t}' has no number")))?;
                let body = &t[digits..];
                let res = if let Some(b) = body.strip_prefix("b:") {
                    let (mono, anomer) = basetype(b, at + digits + 2)?;
                    Res::Base { mono, anomer, at }
                } else if let Some(name) = body.strip_prefix("s:") {
                    Res::Sub { name: name.to_string(), at }
                } else {
                    return err(at, format!("residue '{t}' is neither a basetype (b:) nor a substituent (s:)"));
                };
                if residues.insert(id, res).is_some() {
                    return err(at, format!("residue number {id} is used twice"));
                }
            }
            "LIN" => links.push((at, parse_lin(t, at)?)),
            _ => return err(at, format!("'{t}' before the RES section")),
        }
    }
    if residues.is_empty() {
        return err(0, "no residues (a GlycoCT string starts with RES)");
    }
    // Basetypes in order of their numbers become the tree's nodes.
    let mut node_of = std::collections::HashMap::new();
    let mut monos: Vec<(Mono, char, usize)> = Vec::new();
    for (&id, r) in &residues {
        if let Res::Base { mono, anomer, at } = r {
            node_of.insert(id, monos.len());
            monos.push((mono.clone(), *anomer, *at));
        }
    }
    if monos.is_empty() {
        return err(0, "no monosaccharide (only substituents)");
    }
    // The writer recurses along paths; the IUPAC parser refuses longer ones anyway.
    if monos.len() > crate::iupac::MAX_PATH_MONOSACCHARIDES {
        return err(0, format!("more than {} monosaccharides", crate::iupac::MAX_PATH_MONOSACCHARIDES));
    }
    let mut parent_of: Vec<Option<(usize, Link)>> = vec![None; monos.len()];
    // Substituent uses: substituent id → (residue node, parent type, positions, at).
    let mut uses: std::collections::BTreeMap<usize, Vec<(usize, char, Vec<u8>, usize)>> = Default::default();
    // Substituents with a residue child (bridges): substituent id → (child node, child positions).
    let mut bridged_children: std::collections::HashMap<usize, (usize, Vec<u8>, usize)> = Default::default();
    for (at, (p, ptype, pp, cp, c, _ctype)) in &links {
        let (at, p, c) = (*at, *p, *c);
        let pr = residues.get(&p).ok_or_else(|| (at, format!("linkage names residue {p}, which RES does not list")))?;
        let cr = residues.get(&c).ok_or_else(|| (at, format!("linkage names residue {c}, which RES does not list")))?;
        match (pr, cr) {
            (Res::Base { .. }, Res::Base { .. }) => {
                let (pn, cn) = (node_of[&p], node_of[&c]);
                if parent_of[cn].is_some() {
                    return err(at, format!("residue {c} has a second parent (IUPAC-condensed writes trees)"));
                }
                let donor = (cp.len() == 1).then(|| cp[0]);
                parent_of[cn] = Some((pn, Link { anomer: monos[cn].1, donor, acceptor: pp.clone(), bridge: None }));
            }
            (Res::Base { .. }, Res::Sub { .. }) => {
                uses.entry(c).or_default().push((node_of[&p], *ptype, pp.clone(), at))
            }
            (Res::Sub { .. }, Res::Base { .. }) => {
                if bridged_children.insert(p, (node_of[&c], cp.clone(), at)).is_some() {
                    return err(at, format!("substituent {p} links to two residues as their parent"));
                }
            }
            (Res::Sub { .. }, Res::Sub { .. }) => return err(at, "a substituent on a substituent is not read"),
        }
    }
    for (&sid, sites) in &uses {
        let Some(Res::Sub { name, at }) = residues.get(&sid) else { continue };
        if let Some(&(child, ref cp, lat)) = bridged_children.get(&sid) {
            // A residue–substituent–residue bridge: a phosphodiester.
            let [(parent, _, pp, _)] = sites.as_slice() else {
                return err(lat, format!("substituent {sid} bridges more than two residues"));
            };
            if name != "phosphate" {
                return err(*at, format!("'{name}' between two residues (only a phosphate bridge is read)"));
            }
            if parent_of[child].is_some() {
                return err(lat, format!("residue {} has a second parent", child + 1));
            }
            let donor = (cp.len() == 1).then(|| cp[0]);
            parent_of[child] =
                Some((*parent, Link { anomer: monos[child].1, donor, acceptor: pp.clone(), bridge: Some("P") }));
            continue;
        }
        let Some((kind, want)) = substituent(name) else {
            return err(*at, format!("substituent '{name}' is not one this reader knows"));
        };
        if let SubKind::Ketal(_) = kind {
            let positions: Vec<u8> = sites.iter().flat_map(|s| s.2.clone()).collect();
            if sites.iter().any(|s| s.0 != sites[0].0) || positions.len() != 2 {
                return err(*at, format!("'{name}' must bridge two positions of one residue"));
            }
            monos[sites[0].0].0.subs.push(Substituent { positions, alternatives: false, kind });
            continue;
        }
        let [(node, ptype, pp, lat)] = sites.as_slice() else {
            return err(*at, format!("substituent {sid} '{name}' is attached more than once"));
        };
        if *ptype != want && *ptype != 'x' {
            return err(*lat, format!("'{name}' with parent link type '{ptype}' (expected '{want}')"));
        }
        monos[*node].0.subs.push(Substituent { positions: pp.clone(), alternatives: pp.len() > 1, kind });
    }
    if let Some((&sid, &(_, _, at))) = bridged_children.iter().find(|(sid, _)| !uses.contains_key(sid)) {
        return err(at, format!("substituent {sid} is the parent of a residue but attached to none"));
    }
    let mut tree = Tree::default();
    for (k, (m, _, at)) in monos.iter().enumerate() {
        let name = iupac_name(m).map_err(|e| (*at, format!("residue {}: {e}", k + 1)))?;
        let (parent, link) = match parent_of[k].take() {
            Some((p, l)) => (Some(p), Some(l)),
            None => (None, None),
        };
        tree.nodes.push(Node { name, src: *at, parent, link });
    }
    let roots: Vec<usize> = (0..tree.nodes.len()).filter(|&k| tree.nodes[k].parent.is_none()).collect();
    match roots.as_slice() {
        [0] => {}
        [] => return err(monos[0].2, "every residue has a parent: the linkages form a cycle"),
        [r] => return err(monos[*r].2, "the reducing end must be the first residue"),
        _ => return err(monos[roots[1]].2, "a residue linked to nothing (a disconnected part)"),
    }
    let (m0, a0, _) = &monos[0];
    if let (Some(an), 'a' | 'b') = (m0.anomeric, a0) {
        tree.reducing = Some((*a0, Some(an)));
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_glycowork_glycoct() {
        let s = "RES\n1b:x-dglc-HEX-1:5\n2s:n-acetyl\n3b:b-dgal-HEX-1:5\n4b:a-dgro-dgal-NON-2:6|1:a|2:keto|3:d\n5s:n-acetyl\nLIN\n1:1d(2+1)2n\n2:1o(4+1)3d\n3:3o(3+2)4d\n4:4d(5+1)5n";
        assert_eq!(read(s).unwrap().write(0).unwrap().text, "Neu5Ac(a2-3)Gal(b1-4)GlcNAc");
        let one_line = "RES 1b:b-dgal-HEX-1:5 2b:a-lgal-HEX-1:5|6:d 3s:sulfate LIN 1:1o(2+1)2d 2:1o(3+1)3n";
        assert_eq!(read(one_line).unwrap().write(0).unwrap().text, "Fuc(a1-2)Gal3S(b1-");
    }

    #[test]
    fn errors_have_positions() {
        let s = "RES\n1b:b-dglc-HEX-1:5\n2s:unobtainium\nLIN\n1:1o(4+1)2n";
        let (p, msg) = read(s).unwrap_err();
        assert_eq!(&s[p..p + 2], "2s", "{msg}");
        let (p, _) = read("RES\n1b:b-dglc-HEX-1:5\nREP\n").unwrap_err();
        assert_eq!(p, 22);
    }
}
