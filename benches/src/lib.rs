//! Shared helpers for the criterion benchmarks: locating and reading the shared data sets.

use std::path::PathBuf;

/// The PreGlycanAA pretraining CSV: `$ALLATOM_DATA/glycans/glycan_pretrain.csv`, else
/// `../shared/data/glycans/glycan_pretrain.csv` relative to the workspace root.
pub fn pretrain_csv() -> PathBuf {
    if let Ok(d) = std::env::var("ALLATOM_DATA") {
        return PathBuf::from(d).join("glycans/glycan_pretrain.csv");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/glycans/glycan_pretrain.csv")
}

/// Reads the `IUPAC Condensed` column of the pretraining CSV.
pub fn pretrain_glycans() -> Vec<String> {
    let path = pretrain_csv();
    let mut rdr = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    rdr.records().map(|r| r.expect("CSV row")[0].trim().to_string()).collect()
}

/// A fetched structure file (`cargo xtask fetch-data`), relative to `data/fetched/structures`.
pub fn structure(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/fetched/structures").join(rel)
}

/// The trainable variables of a `VarMap` (batch-norm running statistics left out), sorted by
/// name: what the benchmarks hand to the optimiser.
pub fn trainable_vars(map: &candle_nn::VarMap) -> Vec<(String, candle_core::Var)> {
    let mut vars: Vec<(String, candle_core::Var)> = map
        .data()
        .lock()
        .expect("variable map lock")
        .iter()
        .filter(|(k, _)| !k.contains("running_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Tells mimalloc to keep freed memory instead of returning it to the OS after 10 ms: large
/// tensors (a 32 × 256-token ESM batch has 16–63 MB activations) are then reused instead of
/// page-faulted in and zeroed again on every layer (measured: ~10 % of the batch-32 forward).
pub fn keep_freed_memory() {
    /// `mi_option_purge_delay` in `mi_option_t` (15 in both mimalloc v2 and v3 headers).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide allocator option; mimalloc allows this at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// The ESM speed input: `b` sequences of 256 tokens (`<cls>`, 254 residues cycling through the
/// 20 amino acids, `<eos>`), the same tokens as `benches/esm_speed.py` builds for fair-esm.
pub fn esm_batch(b: usize) -> aa_codeswitch::CodeSwitchBatch {
    let alphabet = aa_codeswitch::Alphabet::esm2();
    let seqs: Vec<aa_codeswitch::CodeSwitchSequence> = (0..b)
        .map(|k| {
            let mut t = vec![alphabet.cls];
            t.extend((0..254).map(|i| 4 + ((i * 7 + k * 13) % 20) as u32));
            t.push(alphabet.eos);
            aa_codeswitch::CodeSwitchSequence::from_tokens(t)
        })
        .collect();
    aa_codeswitch::CodeSwitchBatch::collate(&seqs.iter().collect::<Vec<_>>(), &alphabet, &candle_core::Device::Cpu)
        .expect("valid batch")
}

/// The first `n` pretraining glycans the official featurisation reads, as whole-glycan windows,
/// and the GlycanAA paper encoder configuration (3 × 128) with their 84-link vocabulary.
pub fn official_glycan_windows(n: usize) -> (Vec<aa_encoder::Window>, serde_json::Value) {
    use glycan_aa::compat::{featurize, CompatVocab};
    let all = pretrain_glycans();
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &all, 84);
    let windows = all
        .iter()
        .filter_map(|g| featurize(g, &vocab).ok())
        .take(n)
        .map(|g| aa_encoder::Window::whole(std::sync::Arc::new(g.to_hetero(&vocab))))
        .collect();
    let config = serde_json::json!({
        "family": "glycanaa", "model": glycan_aa::model::GlycanAAConfig::paper(), "vocab": vocab,
    });
    (windows, config)
}
