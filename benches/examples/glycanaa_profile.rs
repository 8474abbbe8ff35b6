//! Runs GlycanAA forward passes on 256 pretraining glycans for profiling (`perf record`).
//! `cargo run --release -p allatom-benches --example glycanaa_profile -- [ITERATIONS] [train]`

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use glycan_aa::compat::{featurize, CompatVocab};
use glycan_aa::model::{GlycanAA, GlycanAABatch, GlycanAAConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let iters: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let train = std::env::args().nth(2).as_deref() == Some("train");
    let all = allatom_benches::pretrain_glycans();
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &all, 84);
    let graphs: Vec<_> = all.iter().filter_map(|g| featurize(g, &vocab).ok()).take(256).collect();
    let dev = Device::Cpu;
    let map = VarMap::new();
    let model = GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &GlycanAAConfig::paper()).unwrap();
    let batch = GlycanAABatch::from_compat(&graphs, &vocab, &dev).unwrap();
    for _ in 0..iters {
        let t = std::time::Instant::now();
        let out = model.forward(&batch, train).unwrap();
        if train {
            let _ = out.graph_feature.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        }
        println!("{:?}", t.elapsed());
    }
}
