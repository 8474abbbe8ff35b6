//! Runs GlycanAA forward passes on 256 pretraining glycans for profiling (`perf record`), and
//! reports the process's peak resident memory. With `largest`, the batch is the 256 largest
//! pretraining glycans (by node count in the official featurisation).
//! `cargo run --release -p allatom-benches --example glycanaa_profile -- [ITERATIONS] [train|eval] [largest]`

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
    let largest = std::env::args().nth(3).as_deref() == Some("largest");
    let graphs: Vec<_> = if largest {
        let mut sizes: Vec<(usize, usize)> = all
            .iter()
            .enumerate()
            .filter_map(|(i, g)| featurize(g, &vocab).ok().map(|f| (f.node_type.len(), i)))
            .collect();
        sizes.sort_by_key(|&(n, i)| (std::cmp::Reverse(n), i));
        sizes.iter().take(256).map(|&(_, i)| featurize(&all[i], &vocab).unwrap()).collect()
    } else {
        all.iter().filter_map(|g| featurize(g, &vocab).ok()).take(256).collect()
    };
    let nodes: usize = graphs.iter().map(|g| g.node_type.len()).sum();
    println!("{} glycans, {nodes} nodes", graphs.len());
    let dev = Device::Cpu;
    let map = VarMap::new();
    let _ = GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &GlycanAAConfig::paper()).unwrap();
    // For inference, weights are plain tensors (as when loaded from a file): no autograd graph
    // keeps the intermediates alive. Training uses the tracked variables.
    let model = if train {
        GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &GlycanAAConfig::paper()).unwrap()
    } else {
        let plain: std::collections::HashMap<String, candle_core::Tensor> =
            map.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect();
        GlycanAA::new(VarBuilder::from_tensors(plain, DType::F32, &dev), &GlycanAAConfig::paper()).unwrap()
    };
    let batch = GlycanAABatch::from_compat(&graphs, &vocab, &dev).unwrap();
    println!("before the forward pass: {}", memory());
    let vars = allatom_benches::trainable_vars(&map);
    let group = aa_pretrain::ParamGroup { vars, lr_scale: 1.0, weight_decay: None };
    let mut opt = aa_pretrain::AdamW::new(vec![group], aa_pretrain::AdamWConfig::default()).unwrap();
    for _ in 0..iters {
        let t = std::time::Instant::now();
        let out = model.forward(&batch, train).unwrap();
        if train {
            let grads = out.graph_feature.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let t_bwd = t.elapsed();
            if std::env::var_os("NO_OPT").is_none() {
                opt.step(&grads, 1e-4).unwrap();
            }
            println!("forward + backward {t_bwd:?}, AdamW step {:?}", t.elapsed() - t_bwd);
        }
        println!("{:?}", t.elapsed());
    }
    println!("after: {}", memory());
}

/// Current and peak resident set size of this process (Linux `/proc/self/status`).
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        status.lines().find(|l| l.starts_with(key)).map(|l| l[key.len()..].trim().to_string()).unwrap_or_default()
    };
    format!("RSS {}, peak RSS {}", get("VmRSS:"), get("VmHWM:"))
}
