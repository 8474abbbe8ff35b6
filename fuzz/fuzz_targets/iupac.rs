//! IUPAC-condensed glycans: parse and build the all-atom molecule; an error points inside the
//! input, a success is a valid graph.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        match glycan_aa::Glycan::from_iupac(s) {
            Ok(g) => g.molecule.graph.validate().expect("a built glycan is a valid graph"),
            Err(e) => assert!(e.position() <= s.len(), "error position beyond the input"),
        }
    }
});
