//! Molfiles / SD files: every record read is a valid graph.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mols) = protein_aa::molfile::parse_sdf(text) {
            for g in mols {
                g.validate().expect("a read molecule is a valid graph");
            }
        }
    }
});
