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
