//! GLYCAM condensed sequences, the input of GLYCAM-Web's carbohydrate builder and what glycowork's
//! `glycan_to_glycam` and crabwurcs write: `DManpa1-3[DManpa1-6]DManpb1-4DGlcpNAcb1-OH`.
//!
//! Each residue is `D|L` + a three-letter stem (`KDN` for Kdn) + the ring (`p`, `f`) + the stem's
//! own substituent (`NAc`, `NGc`, `NS`, `N`, `A`, and for Neu `5Ac` / `5Gc`) + optional
//! derivatives in brackets (`[6S]`, `[3Me,5S]`; the older `A` for acetyl, `[9A]`, is read as
//! `Ac`) + the link to the next residue (`b1-4`; `x` is an unknown anomer). Branches are in
//! square brackets exactly where IUPAC-condensed has them. The reducing end is `-OH` (a free
//! reducing end; `-ROH` too), `-OME` (a methyl glycoside, built as the `1Me` — ketoses `2Me` —
//! of the reducing residue, as GLYCAM-Web builds it and glycowork reads it), `-ol` (an alditol)
//! or nothing. Each residue is rewritten into its IUPAC-condensed name (configuration written
//! only where it differs from the name's usual one) and the whole string is then parsed and
//! built like any IUPAC input; anything outside this grammar is refused, never guessed.

/// Stems whose usual configuration is L (`Fuc` means L-Fuc); the others are D.
const L_STEMS: [&str; 13] = ["Fuc", "Rha", "Ara", "Alt", "Ido", "Sor", "Col", "Api", "Pse", "Aci", "Fus", "Pau", "Yer"];

/// The stems' own substituents, longest first.
const SUFFIXES: [&str; 7] = ["5Ac", "5Gc", "NAc", "NGc", "NS", "N", "A"];

/// Anomeric carbon of a stem (2 for ketoses and ulosonic acids), from the core vocabulary.
fn anomeric(stem: &str) -> Option<u8> {
    crate::residue::core_index(stem).map(|k| crate::residue::CORES[k].anomeric)
}

/// A GLYCAM condensed sequence as IUPAC-condensed, or `None` if it is not one.
pub(crate) fn to_iupac(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 16);
    let (mut i, mut depth, mut ended) = (0usize, 0usize, false);
    while i < b.len() {
        match b[i] {
            b'[' if !ended => {
                depth += 1;
                out.push('[');
                i += 1;
            }
            b']' if depth > 0 && !ended => {
                depth -= 1;
                out.push(']');
                i += 1;
            }
            b'D' | b'L' if !ended => {
                let (name, link, next) = residue(s, i)?;
                out.push_str(&name);
                match link {
                    Link::Inner(text) => out.push_str(&text),
                    Link::End => ended = true,
                }
                i = next;
            }
            _ => return None,
        }
    }
    (ended && depth == 0).then_some(out)
}

enum Link {
    /// `(b1-4)` to the next residue.
    Inner(String),
    /// The reducing end (free, methyl glycoside or alditol, already part of the name).
    End,
}

/// The residue at byte `i`: its IUPAC name, its link, and where the next token starts.
fn residue(s: &str, i: usize) -> Option<(String, Link, usize)> {
    let rest = &s[i..];
    let dl = &rest[..1];
    // A deoxy prefix (`L6dTalp`: 6-deoxy-L-talose).
    let deoxy_len = match rest.as_bytes().get(1..3) {
        Some([d, b'd']) if d.is_ascii_digit() => 2,
        _ => 0,
    };
    let deoxy = &rest[1..1 + deoxy_len];
    let rest = &rest[deoxy_len..];
    let i = i + deoxy_len;
    let stem_raw = rest.get(1..4)?;
    let stem = match stem_raw {
        "KDN" => "Kdn",
        "KDO" => "Kdo",
        x if x.as_bytes()[0].is_ascii_uppercase() && x[1..].bytes().all(|c| c.is_ascii_lowercase()) => x,
        _ => return None,
    };
    let ring = match rest.as_bytes().get(4)? {
        b'p' => "",
        b'f' => "f",
        _ => return None,
    };
    let mut j = 5;
    // `5Ac` / `5Gc` belong to Neu only; a derivative list starts with `[`, a link with a
    // lowercase anomer, so neither is taken for a suffix.
    let suffix = SUFFIXES
        .iter()
        .find(|x| rest[j..].starts_with(**x) && (!x.starts_with('5') || stem == "Neu"))
        .copied()
        .unwrap_or("");
    j += suffix.len();
    let mut mods = Vec::new();
    if rest[j..].starts_with('[') && rest.as_bytes().get(j + 1).is_some_and(u8::is_ascii_digit) {
        let close = rest[j..].find(']')? + j;
        // Position + group, comma-separated (the copy-paste clean-up may have dropped the
        // commas already: `[2Ac3Me]`).
        let list = &rest.as_bytes()[j + 1..close];
        let mut k = 0;
        while k < list.len() {
            if list[k] == b',' {
                k += 1;
                continue;
            }
            let digits = list[k..].iter().take_while(|c| c.is_ascii_digit()).count();
            let letters = list[k + digits..].iter().take_while(|c| c.is_ascii_alphabetic()).count();
            if digits == 0 || letters == 0 {
                return None;
            }
            let (pos, what) =
                (&rest[j + 1 + k..j + 1 + k + digits], &rest[j + 1 + k + digits..j + 1 + k + digits + letters]);
            // The older GLYCAM spelling of acetyl.
            mods.push(format!("{pos}{}", if what == "A" { "Ac" } else { what }));
            k += digits + letters;
        }
        j = close + 1;
    }
    let default_l = if deoxy.is_empty() { L_STEMS.contains(&stem) } else { deoxy == "6d" && stem == "Alt" };
    let prefix = match (dl, default_l) {
        ("L", false) => "L-",
        ("D", true) => "D-",
        _ => "",
    };
    let mut name = format!("{prefix}{deoxy}{stem}{ring}{suffix}{}", mods.concat());
    let tail = &rest[j..];
    // End of the string without a reducing-end group: a free reducing end.
    if tail.is_empty() {
        return Some((name, Link::End, i + j));
    }
    if tail == "-ol" {
        name.push_str("-ol");
        return Some((name, Link::End, s.len()));
    }
    // The link: anomer, donor carbon, `-`, then an acceptor position or the reducing end.
    let tb = tail.as_bytes();
    let anomer = match tb[0] {
        b'a' => 'a',
        b'b' => 'b',
        b'x' | b'?' => '?',
        _ => return None,
    };
    let donor_len = tb[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if donor_len == 0 || tb.get(1 + donor_len) != Some(&b'-') {
        return None;
    }
    let donor = &tail[1..1 + donor_len];
    let after = &tail[2 + donor_len..];
    match after {
        "OH" | "ROH" => return Some((name, Link::End, s.len())),
        "OME" => {
            if donor.parse::<u8>().ok()? != anomeric(stem)? {
                return None;
            }
            name.push_str(&format!("{donor}Me"));
            return Some((name, Link::End, s.len()));
        }
        _ => {}
    }
    let acc_len = after.bytes().take_while(|c| c.is_ascii_digit() || *c == b'?').count();
    if acc_len == 0 {
        return None;
    }
    let acceptor = &after[..acc_len];
    let next = i + j + 2 + donor_len + acc_len;
    // A link leads to a residue or a bracket.
    if !matches!(s.as_bytes().get(next), Some(b'D' | b'L' | b'[' | b']')) {
        return None;
    }
    Some((name, Link::Inner(format!("({anomer}{donor}-{acceptor})")), next))
}

#[cfg(test)]
mod tests {
    use super::to_iupac;

    #[test]
    fn glycam_sequences_become_iupac_condensed() {
        let cases = [
            ("DGalpb1-4DGlcpNAcb1-OH", "Gal(b1-4)GlcNAc"),
            (
                "DManpa1-3[DManpa1-6]DManpb1-4DGlcpNAcb1-4DGlcpNAcb1-OH",
                "Man(a1-3)[Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc",
            ),
            ("LFucpa1-2DGalpb1-3DGalpNAc", "Fuc(a1-2)Gal(b1-3)GalNAc"),
            ("DNeup5Ac[9A]a2-6DGalpb1-4DGlcp", "Neu5Ac9Ac(a2-6)Gal(b1-4)Glc"),
            ("DGlcpNAc[6S]b1-3DGalpb1-OME", "GlcNAc6S(b1-3)Gal1Me"),
            ("DNeup5Aca2-OME", "Neu5Ac2Me"),
            ("LAraf[3Me,5S]a1-OH", "Araf3Me5S"),
            ("LRhap[2Ac3Me]b1-OH", "Rha2Ac3Me"),
            ("L6dTalpa1-3DGlcpNAc", "L-6dTal(a1-3)GlcNAc"),
            ("L6dAltpa1-3DGlcpNAc", "6dAlt(a1-3)GlcNAc"),
            ("DAraf[3NMe]a1-OH", "D-Araf3NMe"),
            ("LIdopAa1-4DGlcpNS[6S]a1-OH", "IdoA(a1-4)GlcNS6S"),
            ("LGalpa1-2DGalpb1-OH", "L-Gal(a1-2)Gal"),
            ("KDNa2-3", ""),
            ("DKDNpa2-3DGalpb1-OH", "Kdn(a2-3)Gal"),
            ("DGalpNAcb1-3DGalpNAc-ol", "GalNAc(b1-3)GalNAc-ol"),
            ("DGlcpxa1-4DGlcp", ""),
            ("DGlcpx1-4DGlcp", "Glc(?1-4)Glc"),
        ];
        for (glycam, iupac) in cases {
            let want = (!iupac.is_empty()).then(|| iupac.to_string());
            assert_eq!(to_iupac(glycam), want, "{glycam}");
        }
        // Not GLYCAM: IUPAC itself, a mixture, an unclosed branch, a link to nothing, OMe on a
        // non-anomeric carbon.
        for bad in [
            "Gal(b1-4)GlcNAc",
            "LSorfa2-1[Gal(a1-2a)]LSorf",
            "DManpa1-3[DManpa1-6DManp",
            "DGalpb1-4",
            "DGalpb4-OME",
            "DGalpb1-4DGlcpb1-OH]",
        ] {
            assert_eq!(to_iupac(bad), None, "{bad}");
        }
    }
}
