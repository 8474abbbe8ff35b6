//! Writes the 256-glycan benchmark batch (official featurisation, stand-in vocabulary) as JSON,
//! for the PyTorch comparison script `benches/compare_glycanaa_torch.py`.
//! `cargo run --release -p allatom-benches --example export_glycanaa_batch -- OUT.json`

use glycan_aa::compat::{featurize, CompatVocab};

fn main() {
    let out = std::env::args().nth(1).expect("usage: export_glycanaa_batch OUT.json");
    let all = allatom_benches::pretrain_glycans();
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &all, 84);
    let graphs: Vec<_> = all.iter().filter_map(|g| featurize(g, &vocab).ok()).take(256).collect();
    let json = serde_json::json!({"vocab": vocab, "graphs": graphs});
    std::fs::write(&out, json.to_string()).unwrap();
    println!("{} glycans written to {out}", graphs.len());
}
