//! Malformed input never panics and always reports a position inside the input.

use glycan_aa::Glycan;
use proptest::prelude::*;

const REAL: &[&str] = &[
    "Neu5Ac(a2-3)[GalNAc(b1-4)]GalNAc(a1-",
    "Fuc(a1-2)Gal(b1-3)[Fuc(a1-4)]GlcNAc(b1-3)Gal(b1-4)Glc",
    "{Neu5Ac(a2-?)}Gal(b1-4)GlcNAc(b1-2)Man(a1-3)[Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc",
    "LDManHepOPEtN(a1-3)[Kdo(a2-4)]Kdo(a2-6)GlcN4P(b1-6)GlcN1P",
];

fn check(s: &str) {
    if let Err(e) = Glycan::from_iupac(s) {
        assert!(e.position() <= s.len(), "{s:?}: position {} beyond input", e.position());
        assert!(!e.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_strings(s in "[A-Za-z0-9()\\[\\]{}?,/:\\-]{0,40}") {
        check(&s);
    }

    #[test]
    fn arbitrary_unicode(s in "\\PC{0,30}") {
        check(&s);
    }

    /// The loose forms (`Glycan::parse`): Greek anomers, arrows, quotes, spaces, spacers and
    /// glued short-form links never panic either, and errors stay inside the input.
    #[test]
    fn loose_forms(s in "[A-Za-z0-9()\\[\\]?,/\\-αβ→‐ \"']{0,40}", k in 0usize..4, glue in "(Sp[0-9]?|b[0-9]|a[0-9]-[0-9]|-a-2,6-|-P-)?") {
        for t in [s.clone(), format!("{}{glue}{}", REAL[k], s)] {
            if let Err(e) = Glycan::parse(&t) {
                assert!(e.position() <= t.len(), "{t:?}: position {} beyond input", e.position());
            }
        }
    }

    #[test]
    fn mutated_real_glycans(k in 0usize..4, cut in 0usize..200, len in 0usize..6, ins in "[A-Za-z0-9()\\[\\]{}?\\-]{0,4}") {
        let base = REAL[k];
        let a = cut.min(base.len());
        let b = (a + len).min(base.len());
        let s = format!("{}{}{}", &base[..a], ins, &base[b..]);
        check(&s);
    }
}

#[test]
fn named_malformed_inputs() {
    for (s, needle) in [
        ("", "empty glycan"),
        ("Gal(b1-4", "not closed"),
        ("Gal(b1-4)]Glc", "']'"),
        ("[Gal(b1-4)Glc", "'['"),
        ("Glx(b1-4)Glc", "unknown monosaccharide 'Glx'"),
        ("Gal(x1-4)Glc", "bad link"),
        ("Gal(b1-4)Glc6Q", "unknown modification"),
        ("\u{7f}\u{1}binary", "unexpected character"),
        ("Gal(b1-4)Fuc6Me", "no hydroxyl or amino group at position 6"),
        ("{Fuc(a1-?)}{}Gal", "at character 12: empty floating part"),
    ] {
        let e = Glycan::from_iupac(s).expect_err(s).to_string();
        assert!(e.contains(needle), "{s:?}: {e}");
        assert!(e.starts_with("at character "), "{e}");
    }
}

/// Chains and nestings deeper than the parser's path limit are a positioned error, not a stack
/// overflow; one just under the limit parses and builds on a 2 MiB thread stack (a rayon
/// worker's), so a batch never aborts on one pathological line.
#[test]
fn deep_chains_and_nesting_are_errors_not_aborts() {
    use glycan_aa::iupac::MAX_PATH_MONOSACCHARIDES;
    let long = "Glc(b1-4)".repeat(17_000) + "Glc";
    let e = glycan_aa::Glycan::from_iupac(&long).unwrap_err();
    assert!(e.to_string().contains(&format!("more than {MAX_PATH_MONOSACCHARIDES} monosaccharides")), "{e}");
    assert!(e.position() > 0);
    let nested = "Glc(b1-4)[".repeat(5_000) + "Glc(b1-4)" + &"]Glc".repeat(5_000);
    assert!(glycan_aa::Glycan::from_iupac(&nested).is_err());
    let just_under = "Glc(b1-4)".repeat(MAX_PATH_MONOSACCHARIDES - 1) + "Glc";
    let built = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || glycan_aa::Glycan::from_iupac(&just_under).map(|g| g.molecule.graph.num_units()))
        .unwrap()
        .join()
        .expect("no stack overflow on a 2 MiB stack");
    assert_eq!(built.unwrap(), MAX_PATH_MONOSACCHARIDES);
}

/// 10,000 galactoses in a ternary tree (no path longer than ten): the builder once scanned
/// every bond for each valence check and removal (quadratic: 3.3 s in release; 20,000 units
/// 12.9 s); now it costs each atom's degree. The formula is Gal × n minus n − 1 waters.
#[test]
fn a_wide_ten_thousand_unit_glycan_builds() {
    let n = 10_000;
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for c in 1..n {
        children[(c - 1) / 3].push(c);
    }
    let links = ["b1-4", "b1-3", "a1-6"];
    // A child's text, then its branches in brackets, then the parent.
    fn text(u: usize, link: Option<&str>, children: &[Vec<usize>], links: &[&str]) -> String {
        let mut s = String::new();
        if let Some((&main, rest)) = children[u].split_first() {
            s.push_str(&text(main, Some(links[0]), children, links));
            for (j, &b) in rest.iter().enumerate() {
                s.push('[');
                s.push_str(&text(b, Some(links[j + 1]), children, links));
                s.push(']');
            }
        }
        s.push_str("Gal");
        if let Some(l) = link {
            s.push_str(&format!("({l})"));
        }
        s
    }
    let iupac = text(0, None, &children, &links);
    let g = Glycan::from_iupac(&iupac).unwrap();
    assert_eq!(g.molecule.graph.units.len(), n);
    let (c, o) = (
        g.molecule.graph.atoms.iter().filter(|a| a.element.symbol() == "C").count(),
        g.molecule.graph.atoms.iter().filter(|a| a.element.symbol() == "O").count(),
    );
    assert_eq!((c, o), (6 * n, 6 * n - (n - 1)));
    assert_eq!(g.molecule.graph.bonds.len(), 12 * n);
}

const REAL_WURCS: &[&str] = &[
    "WURCS=2.0/3,3,2/[a2122h-1b_1-5_2*NCC/3=O][a2112h-1b_1-5][Aad21122h-2a_2-6_5*NCC/3=O]/1-2-3/a4-b1_b3-c2",
    "WURCS=2.0/2,2,1/[u1122h][a1122h-1a_1-5]/1-2/a6-b1*OPO*/3O/3=O",
    "WURCS=2.0/2,2,1/[u2122h_2*NCC/3=O_3*OC^RCO/4=O/3C][a2122h-1b_1-5_2*NCC/3=O]/1-2/a3|a4-b1",
];

const REAL_GLYCOCT: &[&str] = &[
    "RES\n1b:x-dglc-HEX-1:5\n2s:n-acetyl\n3b:b-dgal-HEX-1:5\n4b:a-dgro-dgal-NON-2:6|1:a|2:keto|3:d\n5s:n-acetyl\nLIN\n1:1d(2+1)2n\n2:1o(4+1)3d\n3:3o(3+2)4d\n4:4d(5+1)5n",
    "RES 1b:b-dgal-HEX-1:5 2b:a-lgal-HEX-1:5|6:d 3s:sulfate LIN 1:1o(2+1)2d 2:1o(3+1)3n",
];

/// Any notation: no panic, a position inside the input, a message.
fn check_any(s: &str) {
    if let Err(e) = Glycan::parse(s) {
        assert!(e.position() <= s.len(), "{s:?}: position {} beyond input", e.position());
        assert!(!e.to_string().is_empty());
    }
}

fn mutate(base: &str, cut: usize, len: usize, ins: &str) -> String {
    let a = cut.min(base.len());
    let b = (a + len).min(base.len());
    format!("{}{}{}", &base[..a], ins, &base[b..])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_wurcs(s in "[a-zA-Z0-9\\[\\]/,_\\-*=|?{}~%^$.+]{0,60}") {
        check_any(&format!("WURCS=2.0/{s}"));
    }

    #[test]
    fn random_glycoct(s in "[a-z0-9:()+|\\- \n]{0,60}") {
        check_any(&format!("RES\n{s}"));
    }

    #[test]
    fn mutated_real_wurcs(k in 0usize..3, cut in 0usize..120, len in 0usize..6, ins in "[a-zA-Z0-9\\[\\]/,_\\-*=|?]{0,4}") {
        check_any(&mutate(REAL_WURCS[k], cut, len, &ins));
    }

    #[test]
    fn mutated_real_glycoct(k in 0usize..2, cut in 0usize..160, len in 0usize..6, ins in "[a-z0-9:()+|\\- \n]{0,4}") {
        check_any(&mutate(REAL_GLYCOCT[k], cut, len, &ins));
    }
}

#[test]
fn named_malformed_wurcs_and_glycoct() {
    for (s, needle) in [
        ("WURCS=2.0/1,1,0/[a2122h-1b_1-5]/1/", ""),
        (
            "WURCS=2.0/2,2,1/[a2122h-1b_1-5][a2112h-1b_1-5]/1-2/a4-b1~n",
            "at character 52: 'a4-b1~n' is a repeating unit",
        ),
        ("WURCS=2.0/1,1,0/[a2122h-1b_1-5_2*NQQ]/1/", "at character 35: unknown element 'Q'"),
        ("WURCS=2.0/1,1,0/[a2122h-1b_1-5_2*NCCCCCCCS]/1/", "at character 33: the substituent MAP '*NCCCCCCCS'"),
        ("WURCS=2.0/2,3,1/[a2122h-1b_1-5][a2112h-1b_1-5]/1-2/a4-b1", "the counts say 3 residues"),
        ("WURCS=2.0/1,1,0/[a2122h-1b_1-5", "'[' without ']'"),
        ("WURCS=2.0/2,2,1/[a2122h-1b_1-5][a2112h-1b_1-5]/1-2/a4-c1", "residue"),
        ("WURCS=2.0/1,2,0+/[a2122h-1x_1-5]/1-1/", "composition"),
        ("RES\n1b:b-dglc-HEX-1:5\n2s:unobtainium\nLIN\n1:1o(4+1)2n", "at character 23: substituent 'unobtainium'"),
        ("RES\n1b:b-dglc-HEP-1:5", "stereocentres"),
        ("RES\n1b:b-dglc-HEX-1:5\nLIN\n1:1o(4+1)7d", "residue 7, which RES does not list"),
        ("RES\n1b:b-dglc-HEX-1:5\n2b:b-dgal-HEX-1:5\nLIN\n1:1o4+1)2d", "is not id:parent"),
    ] {
        match Glycan::parse(s) {
            Ok(_) if needle.is_empty() => {}
            Ok(g) => panic!("{s:?} read as {}", g.iupac),
            Err(e) => {
                let e = e.to_string();
                assert!(!needle.is_empty() && e.contains(needle), "{s:?}: {e}");
            }
        }
    }
}

#[test]
fn a_huge_glycoct_chain_is_an_error_not_an_abort() {
    let n = 5000;
    let mut s = String::from("RES\n");
    for k in 1..=n {
        s.push_str(&format!("{k}b:b-dglc-HEX-1:5\n"));
    }
    s.push_str("LIN\n");
    for k in 1..n {
        s.push_str(&format!("{k}:{k}o(4+1){}d\n", k + 1));
    }
    let e = Glycan::parse(&s).expect_err("limit").to_string();
    assert!(e.contains("more than 500 monosaccharides"), "{e}");
}
