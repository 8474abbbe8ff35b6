//! A small SMILES subset for substituent fragments (acetyl, sulfate, phosphocholine, …).
//!
//! Supported: organic-subset atoms `B C N O P S F Cl Br I`, aromatic `c n o s`, bracket atoms
//! with a charge (`[N+]`, `[O-]`), branches `( )`, ring closures `1`–`9`, bonds `-` `=` `#`.
//! Hydrogens are never written: they are filled from valences when the molecule is finished.

use aa_graph::{BondOrder, Element};

/// One atom of a fragment.
#[derive(Clone, Debug, PartialEq)]
pub struct FragAtom {
    /// Element.
    pub element: Element,
    /// Formal charge.
    pub charge: i8,
    /// Aromatic flag.
    pub aromatic: bool,
}

/// A parsed fragment: atoms, and bonds between fragment-local indices. Atom 0 is the one that
/// attaches to the molecule.
#[derive(Clone, Debug, PartialEq)]
pub struct Fragment {
    /// Atoms.
    pub atoms: Vec<FragAtom>,
    /// Bonds `(a, b, order)`.
    pub bonds: Vec<(usize, usize, BondOrder)>,
}

/// Parses a fragment SMILES. Only used on the crate's own constant strings; an error here is a
/// bug in a table, reported with the offending string.
pub fn parse_fragment(s: &str) -> Result<Fragment, String> {
    let b = s.as_bytes();
    let mut atoms: Vec<FragAtom> = Vec::new();
    let mut bonds: Vec<(usize, usize, BondOrder)> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut prev: Option<usize> = None;
    let mut pending = BondOrder::Single;
    let mut pending_set = false;
    let mut rings: [Option<(usize, BondOrder)>; 10] = [None; 10];
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        let mut new_atom: Option<FragAtom> = None;
        match c {
            '(' => {
                stack.push(prev.ok_or(format!("branch before any atom in {s:?}"))?);
                i += 1;
                continue;
            }
            ')' => {
                prev = Some(stack.pop().ok_or(format!("unbalanced ')' in {s:?}"))?);
                i += 1;
                continue;
            }
            '-' => {
                pending = BondOrder::Single;
                pending_set = true;
            }
            '=' => {
                pending = BondOrder::Double;
                pending_set = true;
            }
            '#' => {
                pending = BondOrder::Triple;
                pending_set = true;
            }
            '1'..='9' => {
                let k = c as usize - '0' as usize;
                let cur = prev.ok_or(format!("ring bond before any atom in {s:?}"))?;
                match rings[k].take() {
                    Some((other, order)) => {
                        let order = if pending_set { pending } else { order };
                        let arom = atoms[cur].aromatic && atoms[other].aromatic;
                        bonds.push((other, cur, if arom && !pending_set { BondOrder::Aromatic } else { order }));
                    }
                    None => rings[k] = Some((cur, if pending_set { pending } else { BondOrder::Single })),
                }
                pending = BondOrder::Single;
                pending_set = false;
            }
            '[' => {
                let end = s[i..].find(']').ok_or(format!("unclosed '[' in {s:?}"))? + i;
                let inner = &s[i + 1..end];
                let (sym, charge) = if let Some(p) = inner.find(['+', '-']) {
                    let sign: i8 = if inner.as_bytes()[p] == b'+' { 1 } else { -1 };
                    (&inner[..p], sign)
                } else {
                    (inner, 0)
                };
                let element = Element::from_symbol(sym).ok_or(format!("unknown element {sym:?} in {s:?}"))?;
                new_atom = Some(FragAtom { element, charge, aromatic: false });
                i = end;
            }
            _ => {
                let two = if i + 1 < b.len() { &s[i..i + 2] } else { "" };
                let (sym, aromatic, len) = match (c, two) {
                    (_, "Cl") => ("Cl", false, 2),
                    (_, "Br") => ("Br", false, 2),
                    ('c' | 'n' | 'o' | 's', _) => (&s[i..i + 1], true, 1),
                    ('B' | 'C' | 'N' | 'O' | 'P' | 'S' | 'F' | 'I', _) => (&s[i..i + 1], false, 1),
                    _ => return Err(format!("unexpected {c:?} in fragment {s:?}")),
                };
                let element = Element::from_symbol(sym).unwrap();
                new_atom = Some(FragAtom { element, charge: 0, aromatic });
                i += len - 1;
            }
        }
        if let Some(a) = new_atom {
            let idx = atoms.len();
            let arom = a.aromatic;
            atoms.push(a);
            if let Some(p) = prev {
                let order = if !pending_set && arom && atoms[p].aromatic { BondOrder::Aromatic } else { pending };
                bonds.push((p, idx, order));
            }
            prev = Some(idx);
            pending = BondOrder::Single;
            pending_set = false;
        }
        i += 1;
    }
    if !stack.is_empty() || rings.iter().any(|r| r.is_some()) || atoms.is_empty() {
        return Err(format!("incomplete fragment {s:?}"));
    }
    Ok(Fragment { atoms, bonds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_groups() {
        let f = parse_fragment("P(=O)([O-])OCC[N+](C)(C)C").unwrap();
        assert_eq!(f.atoms.len(), 10);
        assert_eq!(f.bonds.len(), 9);
        assert_eq!(f.atoms[2].charge, -1);
        assert_eq!(f.atoms[6].charge, 1);
        let bz = parse_fragment("C(=O)c1ccccc1").unwrap();
        assert_eq!(bz.bonds.len(), 8);
        assert_eq!(bz.bonds.iter().filter(|b| b.2 == BondOrder::Aromatic).count(), 6);
        assert!(parse_fragment("C(").is_err());
        assert!(parse_fragment("Xx").is_err());
    }
}
