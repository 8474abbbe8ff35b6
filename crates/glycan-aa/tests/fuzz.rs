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
