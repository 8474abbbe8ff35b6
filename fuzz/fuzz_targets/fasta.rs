//! FASTA: records, then each sequence's residue graph.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(records) = allatom::inputs::parse_fasta(text, std::path::Path::new("fuzz.fasta")) {
            for (_, seq) in records {
                if let Ok(g) = protein_aa::sequence_graph(&seq) {
                    g.validate().expect("a sequence graph is valid");
                }
            }
        }
    }
});
