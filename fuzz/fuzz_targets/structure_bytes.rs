//! Structure files as bytes: format detection, gzip/bzip2 decompression with its cap, text
//! decoding, then the graph.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = protein_aa::read::read_structure(data) {
        allatom_fuzz::build_and_check(&raw);
    }
});
