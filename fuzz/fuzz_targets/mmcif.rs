//! mmCIF text: parse, then build the bilevel graph with spatial relations.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(raw) = protein_aa::read::parse_mmcif(text) {
            allatom_fuzz::build_and_check(&raw);
        }
    }
});
