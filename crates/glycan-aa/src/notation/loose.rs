//! IUPAC as researchers paste it: copy-paste artefacts, IUPAC-extended, and the short forms of
//! glycan arrays and papers, each rewritten into IUPAC-condensed — then parsed and built like
//! any IUPAC input, so a string is read only when its rewrite is a valid glycan, and the
//! rewrite is plain syntax (no guessing of residues or positions beyond the one rule below).
//!
//! - **Artefacts**: surrounding quotes, whitespace, typographic dashes (‐ ‑ ‒ – — −) and arrows
//!   (→ ⟶ ->), Greek anomers (α β) and the words alpha/beta, the anomer before the link's
//!   parenthesis (`Galβ(1→4)GlcNAc`), `NeuAc` / `NeuGc` for `Neu5Ac` /
//!   `Neu5Gc`, `z` for an unknown anomer, modification lists split by a comma
//!   (`Neu9Ac,5Ac` = `Neu5Ac9Ac` = `Neu5,9Ac2`) and positions split by a colon
//!   (`Neu5Ac4:7/8/9Ac2` = `Neu5Ac4,7/8/9Ac2`).
//! - **IUPAC-extended**: the anomer and configuration before each residue and the link
//!   between residues, `β-D-Galp-(1→4)-β-D-GlcpNAc` or `bDGalp(1-4)bDGlcpNAc`, branches in
//!   square brackets; the reducing end's anomer is dropped (a free reducing end).
//! - **Short forms**: anomer and positions glued to the residue, `Galb1-4GlcNAc`,
//!   `Fuca1-2Galb1-3GalNAc`, or with the acceptor only, `Galb4GlcNAc` (the donor is then the
//!   residue's anomeric carbon: 1 for aldoses, 2 for ulosonic acids — the one inferred
//!   position); round-bracket branches (`GlcNAcb1-3(Galb1-4)GlcNAc`); dash-separated links
//!   (`Neu5Ac-α-2,6-Gal-β-1,3-GlcNAc`); a spacer or aglycone at the reducing end (`-Sp`,
//!   `-Sp8`, `b-Sp14`, `-OMe`, `-Ser`, `-Thr`, `-Asn`, `-R`, `-OH`) is reported as the glycan's
//!   aglycone and the glycan ends in an open link (`GlcNAc(b1-`).
//! - **GLYCAM condensed** (`DGalpb1-4DGlcpNAcb1-OH`, GLYCAM-Web's builder input): see the
//!   `glycam` module.

use crate::residue::parse_residue;

use crate::Glycan;

/// The glycan a rewrite builds (checking a rewrite is building it, so it is built once).
fn built(iupac: &str, aglycone: Option<String>) -> Option<Glycan> {
    let mut g = Glycan::from_iupac(iupac).ok()?;
    g.aglycone = aglycone;
    Some(g)
}

/// Aglycones and spacers recognised at the reducing end (after `-` or directly after an
/// anomer), besides `Sp` with an optional number.
const AGLYCONES: [&str; 7] = ["OMe", "Ser", "Thr", "Asn", "OH", "R", "Sp"];

/// The copy-paste clean-up (always applied first).
pub(crate) fn clean(s: &str) -> String {
    let mut t = s.trim();
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”'), ('‘', '’'), ('`', '`'), ('«', '»')] {
        if t.len() >= 2 && t.starts_with(open) && t.ends_with(close) {
            t = t[open.len_utf8()..t.len() - close.len_utf8()].trim();
        }
    }
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '‐' | '‑' | '‒' | '–' | '—' | '−' | '→' | '⟶' | '➝' => out.push('-'),
            'α' => out.push('a'),
            'β' => out.push('b'),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    let mut out = out.replace("->", "-");
    for (word, letter) in [("alpha", "a"), ("Alpha", "a"), ("ALPHA", "a"), ("beta", "b"), ("Beta", "b"), ("BETA", "b")]
    {
        out = out.replace(word, letter);
    }
    // NeuAc / NeuGc (not followed by a position, which would be the strict spelling).
    for (from, to) in [("NeuAc", "Neu5Ac"), ("NeuGc", "Neu5Gc")] {
        out = out.replace(from, to);
    }
    // A comma between a modification and the next position (`Neu9Ac,5Ac`); a colon between
    // the positions of one group's copies, one of them with alternatives (`Neu5Ac4:7/8/9Ac2` =
    // `Neu5Ac4,7/8/9Ac2`: an acetyl at C4 and one at C7, C8 or C9).
    let b: Vec<char> = out.chars().collect();
    let mut merged = String::with_capacity(out.len());
    for (i, &c) in b.iter().enumerate() {
        let inside = i > 0 && i + 1 < b.len() && b[i + 1].is_ascii_digit();
        match c {
            ',' if inside && b[i - 1].is_ascii_alphabetic() => {}
            ':' if inside && b[i - 1].is_ascii_digit() => merged.push(','),
            c => merged.push(c),
        }
    }
    merged
}

/// Reads `s` (already [`clean`]ed) in one of the loose forms into the glycan of its
/// IUPAC-condensed rewrite (`Glycan::iupac`; a short form's spacer in `Glycan::aglycone`);
/// `None` when no form fits.
pub(crate) fn read(s: &str) -> Option<Glycan> {
    for rewrite in [s.replace("(z", "(?"), anomer_outside(s)] {
        if rewrite != s {
            if let Some(g) = built(&rewrite, None) {
                return Some(g);
            }
        }
    }
    if let Some(iupac) = super::glycam::to_iupac(s) {
        // Only GLYCAM reads as GLYCAM (`D`/`L` + stem + ring on every residue): it is that or nothing.
        return built(&iupac, None);
    }
    extended(s).or_else(|| short(&dash_links(s)))
}

/// The anomer written before the link's parenthesis, as papers do (`Galb(1-4)GlcNAc`,
/// `Neu5Acα(2→3)Gal`) → `Gal(b1-4)GlcNAc`. (The residue before must still be a valid name:
/// `Ara(1-3)` would become `Ar(a1-3)` and is refused.)
fn anomer_outside(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let moved = i > 0
            && b[i - 1].is_ascii_alphanumeric()
            && anomer(c as char).is_some()
            && b.get(i + 1) == Some(&b'(')
            && b.get(i + 2).is_some_and(|&d| d.is_ascii_digit() || d == b'?');
        if moved {
            out.push('(');
            out.push(anomer(c as char).unwrap_or('?'));
            i += 2;
            continue;
        }
        out.push(c as char);
        i += 1;
    }
    out
}

/// Whether a residue name parses.
fn residue_ok(name: &str) -> bool {
    !name.is_empty() && parse_residue(name).is_ok()
}

/// The anomer letter of a loose form as IUPAC-condensed writes it.
fn anomer(c: char) -> Option<char> {
    match c {
        'a' | 'b' | '?' => Some(c),
        'z' => Some('?'),
        _ => None,
    }
}

/// A position: one digit or `?`, with alternatives after `/` (`3/6`). (No monosaccharide
/// has a tenth carbon, so a second digit starts the next residue, as in `a1-25-deoxy-Lyx`.)
fn position(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let one = |c: u8| c.is_ascii_digit() || c == b'?';
    if b.is_empty() || !one(b[0]) {
        return None;
    }
    let mut n = 1;
    while n + 1 < b.len() && b[n] == b'/' && one(b[n + 1]) {
        n += 2;
    }
    Some(s.split_at(n))
}

// ---------------------------------------------------------------- IUPAC-extended

/// `β-D-Galp-(1→4)-[α-L-Fucp-(1→3)]-β-D-GlcpNAc` (cleaned) → `D-Galp(b1-4)[L-Fucp(a1-3)]D-GlcpNAc`.
fn extended(s: &str) -> Option<Glycan> {
    let mut out = String::new();
    let mut rest = s;
    let mut links = 0;
    loop {
        rest = rest.trim_start_matches('-');
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix('[') {
            out.push('[');
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix(']') {
            out.push(']');
            rest = r;
            continue;
        }
        // A residue: [anomer][-][D-|L-|D|L]name, up to its link `(d-d)` or the end; without
        // an anomer it is unknown (`?`).
        let b = rest.as_bytes();
        let prefixed = anomer(b[0] as char).is_some()
            && b.get(1).is_some_and(|&c| c == b'-' || c.is_ascii_uppercase() || c.is_ascii_digit());
        let an = if prefixed { anomer(b[0] as char)? } else { '?' };
        let mut body = if prefixed { &rest[1..] } else { rest };
        body = body.strip_prefix('-').unwrap_or(body);
        let end = body.find(['(', '[', ']']).unwrap_or(body.len());
        let mut name = body[..end].trim_end_matches('-').to_string();
        if (name.starts_with('D') || name.starts_with('L'))
            && name[1..].starts_with(|c: char| c.is_ascii_uppercase())
            && !residue_ok(&name)
        {
            name.insert(1, '-');
        }
        if !residue_ok(&name) {
            return None;
        }
        out.push_str(&name);
        rest = &body[end..];
        if let Some(r) = rest.strip_prefix('(') {
            // The link to the parent: (donor-acceptor), no anomer inside.
            let (donor, r) = position(r)?;
            let r = r.strip_prefix('-').or_else(|| r.strip_prefix(','))?;
            let (acceptor, r) = position(r)?;
            // The acceptor's own anomer (`2→1b`: a link between two anomeric carbons).
            let (second, r) = match r.strip_prefix(['a', 'b']) {
                Some(after) if after.starts_with(')') => (&r[..1], after),
                _ => ("", r),
            };
            rest = r.strip_prefix(')')?;
            out.push_str(&format!("({an}{donor}-{acceptor}{second})"));
            links += 1;
        } else {
            // The reducing end: its anomer goes with the free reducing end.
            rest = rest.trim_start_matches('-');
            if !rest.is_empty() && !rest.starts_with(']') {
                return None;
            }
        }
    }
    if links == 0 {
        return None;
    }
    built(&out, None)
}

// ---------------------------------------------------------------- short forms

/// `Neu5Ac-a-2,6-Gal-b-1,3-GlcNAc-b-Sp` → `Neu5Aca2-6Galb1-3GlcNAcb-Sp`: links written as
/// dash-separated anomer and `donor,acceptor`.
fn dash_links(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        // `-x-` with x an anomer, then positions `d,a` / `d-a` and a closing `-` or the end.
        if b[i] == b'-' && i + 2 < b.len() && anomer(b[i + 1] as char).is_some() && b[i + 2] == b'-' {
            let tail = &s[i + 3..];
            if let Some((d, r)) = position(tail) {
                if let Some(r2) = r.strip_prefix(',').or_else(|| r.strip_prefix('-')) {
                    if let Some((a, r3)) = position(r2) {
                        // The acceptor's own anomer (`2,1b`).
                        let (second, r3) = match r3.strip_prefix(['a', 'b']) {
                            Some(after) if after.is_empty() || after.starts_with('-') => (&r3[..1], after),
                            _ => ("", r3),
                        };
                        if r3.is_empty() || r3.starts_with('-') {
                            out.push(b[i + 1] as char);
                            out.push_str(&format!("{d}-{a}{second}"));
                            i = s.len() - r3.len() + usize::from(r3.starts_with('-'));
                            continue;
                        }
                    }
                }
            }
            // `-b-Sp…` at the reducing end: the anomer, then the aglycone.
            if AGLYCONES.iter().any(|a| tail.starts_with(a)) {
                out.push(b[i + 1] as char);
                out.push('-');
                i += 3;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// `-P` / `-SH` … before the acceptor's `-`: the bridge's name and the rest.
fn bridge(s: &str) -> Option<(&str, &str)> {
    let r = s.strip_prefix('-')?;
    let n = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    (n > 0 && r.as_bytes()[0].is_ascii_uppercase() && r[n..].starts_with('-')).then(|| (&r[..n], &r[n..]))
}

/// One residue with its glued link: `(name, anomer, donor, acceptor)` and the rest.
fn glued_link(s: &str) -> Option<(String, char, String, String, &str)> {
    // Candidate split points: an anomer letter followed by a position; the residue before it
    // must parse. The first such split whose link also reads is taken.
    for (i, c) in s.char_indices() {
        if i == 0 || anomer(c).is_none() {
            continue;
        }
        let after = &s[i + 1..];
        if position(after).is_none() {
            continue;
        }
        let name = &s[..i];
        if name.contains(['(', ')', '[', ']']) || !residue_ok(name) {
            continue;
        }
        let (first, r) = position(after)?;
        // A bridge between donor and acceptor (`a1-P-6`: phosphodiester; `b1-SH-4`: thio).
        let (bridge, r) = match bridge(r) {
            Some((b, rest)) => (b, rest),
            None => ("", r),
        };
        let (donor, acceptor, rest) = match r.strip_prefix('-').or_else(|| r.strip_prefix(',')).and_then(position) {
            // The acceptor's own anomer (`a2-1b`, a non-reducing link between two anomeric
            // carbons) when a residue or a bracket follows.
            Some((acc, rest))
                if rest.starts_with(['a', 'b'])
                    && rest[1..].starts_with(|c: char| !c.is_ascii_lowercase() && !c.is_ascii_digit()) =>
            {
                (first.to_string(), format!("{acc}{}", &rest[..1]), &rest[1..])
            }
            Some((acc, rest)) => (first.to_string(), acc.to_string(), rest),
            None if !bridge.is_empty() => return None,
            None => {
                let spec = parse_residue(name).ok()?;
                (spec.anomeric.to_string(), first.to_string(), r)
            }
        };
        let donor = if bridge.is_empty() { donor } else { format!("{donor}-{bridge}") };
        return Some((name.to_string(), anomer(c)?, donor, acceptor, rest));
    }
    None
}

/// `Fuca1-2Galb1-3(Fuca1-4)GlcNAcb-Sp8` → `Fuc(a1-2)Gal(b1-3)[Fuc(a1-4)]GlcNAc(b1-`, aglycone `Sp8`.
fn short(s: &str) -> Option<Glycan> {
    let mut out = String::new();
    let mut rest = s;
    let mut depth = 0usize;
    let mut links = 0;
    loop {
        if let Some(r) = rest.strip_prefix('(').or_else(|| rest.strip_prefix('[')) {
            out.push('[');
            depth += 1;
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix(')').or_else(|| rest.strip_prefix(']')) {
            if depth == 0 {
                return None;
            }
            out.push(']');
            depth -= 1;
            rest = r;
            continue;
        }
        if let Some((name, an, donor, acceptor, r)) = glued_link(rest) {
            out.push_str(&format!("{name}({an}{donor}-{acceptor})"));
            links += 1;
            rest = r;
            continue;
        }
        break;
    }
    if depth != 0 {
        return None;
    }
    // The reducing end: a residue, optionally its anomer, optionally a spacer or aglycone (a
    // lone residue needs the spacer: without it, it is no short form).
    let (root, tail) = split_aglycone(rest)?;
    if links == 0 && tail.is_none() {
        return None;
    }
    let (name, open) = match root.char_indices().last() {
        Some((i, c)) if anomer(c).is_some() && residue_ok(&root[..i]) && !residue_ok(root) => {
            (&root[..i], Some(anomer(c)?))
        }
        _ => (root, None),
    };
    if !residue_ok(name) {
        return None;
    }
    out.push_str(name);
    let aglycone = tail.map(str::to_string);
    if open.is_some() || aglycone.is_some() {
        let spec = parse_residue(name).ok()?;
        out.push_str(&format!("({}{}-", open.unwrap_or('?'), spec.anomeric));
    }
    built(&out, aglycone)
}

/// The reducing-end residue (with its anomer) and the spacer or aglycone after it.
fn split_aglycone(s: &str) -> Option<(&str, Option<&str>)> {
    for (i, _) in s.char_indices().rev() {
        let tail = s[i..].trim_start_matches('-');
        let known = AGLYCONES.iter().any(|a| {
            tail.strip_prefix(a).is_some_and(|n| n.is_empty() || (*a == "Sp" && n.bytes().all(|b| b.is_ascii_digit())))
        });
        if known && i > 0 {
            let head = &s[..i];
            // `-Sp8` or `bSp8`: a dash, or an anomer right before.
            if s[i..].starts_with('-') || head.ends_with(['a', 'b', '?']) {
                return Some((head.trim_end_matches('-'), Some(tail)));
            }
        }
    }
    Some((s, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iupac(s: &str) -> Option<String> {
        let c = clean(s);
        if Glycan::from_iupac(&c).is_ok() {
            return Some(c);
        }
        read(&c).map(|g| g.iupac)
    }

    #[test]
    fn each_loose_form_becomes_its_condensed_string() {
        for (input, want) in [
            ("β-D-Galp-(1→4)-β-D-GlcpNAc", "D-Galp(b1-4)D-GlcpNAc"),
            ("bDGalp(1-4)bDGlcpNAc", "D-Galp(b1-4)D-GlcpNAc"),
            (
                "α-D-Manp-(1→3)-[α-D-Manp-(1→6)]-β-D-Manp-(1→4)-β-D-GlcpNAc",
                "D-Manp(a1-3)[D-Manp(a1-6)]D-Manp(b1-4)D-GlcpNAc",
            ),
            ("Galβ1-4GlcNAc", "Gal(b1-4)GlcNAc"),
            ("Galb4GlcNAc", "Gal(b1-4)GlcNAc"),
            ("Fuca2Galb3GalNAc", "Fuc(a1-2)Gal(b1-3)GalNAc"),
            ("Neu5Aca3Galb4Glc", "Neu5Ac(a2-3)Gal(b1-4)Glc"),
            ("GlcNAcb1-3(Galb1-4)GlcNAc", "GlcNAc(b1-3)[Gal(b1-4)]GlcNAc"),
            ("Neu5Ac-α-2,6-Gal-β-1,3-GlcNAc-β-Sp", "Neu5Ac(a2-6)Gal(b1-3)GlcNAc(b1-"),
            ("Galb1-4GlcNAcb-Sp8", "Gal(b1-4)GlcNAc(b1-"),
            ("Fuca1-2Galb1-3GalNAca-Sp14", "Fuc(a1-2)Gal(b1-3)GalNAc(a1-"),
            ("“Gal(β1‐4)GlcNAc”", "Gal(b1-4)GlcNAc"),
            ("Gal (b1 - 4) GlcNAc", "Gal(b1-4)GlcNAc"),
            ("Gal(beta1-4)GlcNAc", "Gal(b1-4)GlcNAc"),
            ("NeuAc(a2-3)Gal", "Neu5Ac(a2-3)Gal"),
            ("NeuGca2-6Gal", "Neu5Gc(a2-6)Gal"),
            ("Neu9Ac,5Ac(a2-6)Gal", "Neu9Ac5Ac(a2-6)Gal"),
            ("Neu5Ac4:7/8/9Ac2(a2-3)Gal", "Neu5Ac4,7/8/9Ac2(a2-3)Gal"),
            ("Gal(z1-4)Glc", "Gal(?1-4)Glc"),
            ("Galβ(1→4)GlcNAc", "Gal(b1-4)GlcNAc"),
            ("Neu5Acα(2→3)Galβ(1→4)[Fucα(1→3)]GlcNAc", "Neu5Ac(a2-3)Gal(b1-4)[Fuc(a1-3)]GlcNAc"),
            ("Ribb(1-4)Glc", "Rib(b1-4)Glc"),
            // Already condensed (no anomer written): read as it stands, not as `Ar(a1-3)`.
            ("Ara(1-3)Gal", "Ara(1-3)Gal"),
            ("Rha2Mea1-3Glc", "Rha2Me(a1-3)Glc"),
            ("Galb1-3GalNAc-ol", "Gal(b1-3)GalNAc-ol"),
        ] {
            assert_eq!(iupac(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn what_no_form_fits_is_refused() {
        for input in ["Galb9GlcNAc(", "b-D-Galp-(1-4", "Galx1-4Glc", "Fuca2(Gal", "Hello world", "(b1-4)Glc", ""] {
            assert_eq!(iupac(input), None, "{input}");
        }
    }

    #[test]
    fn spacers_are_reported() {
        let l = read(&dash_links(&clean("Galb1-4GlcNAcb-Sp8"))).unwrap();
        assert_eq!(l.aglycone.as_deref(), Some("Sp8"));
        let l = read(&clean("Neu5Ac-α-2,6-Gal-β-1,3-GlcNAc-β-Sp")).unwrap();
        assert_eq!(l.aglycone.as_deref(), Some("Sp"));
    }
}
