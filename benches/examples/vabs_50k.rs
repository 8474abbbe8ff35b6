//! Vabs-Net forward on a ≥ 50,000-atom structure with k = 30 on CPU: featurisation time,
//! forward time (inference, median of 3) and the process's peak resident memory. The structure is
//! a real file (default the cryo-EM model 6WG6 from Biopython's tests), repeated side by side
//! (100 Å apart) until it has 50,000 heavy atoms when it has fewer. Peak memory is per process, so
//! run one config per call:
//!
//! `cargo run --release -p allatom-benches --example vabs_50k -- small`
//! `cargo run --release -p allatom-benches --example vabs_50k -- paper [structure file]`

use aa_sparse_attn::{Vabs, VabsConfig, VabsInput};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Peak resident set size (VmHWM) in GiB.
fn peak_gib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0)
}

fn main() {
    allatom_benches::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("small");
    let cfg = match which {
        "paper" => VabsConfig::paper(),
        "small" => VabsConfig::small(),
        other => panic!("unknown config {other}: small or paper"),
    };
    let path = args.get(2).cloned().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../data/fetched/structures/biopython/6WG6.cif").to_string()
    });
    let s = protein_aa::read_structure_file(
        std::path::Path::new(&path),
        &protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t = std::time::Instant::now();
    let one = VabsInput::from_graph(&s.graph, &cfg.feature_options()).unwrap();
    let mut parts = vec![one.clone()];
    while parts.iter().map(VabsInput::num_atoms).sum::<usize>() < 50_000 {
        let mut copy = one.clone();
        let shift = 100.0 * parts.len() as f32;
        for p in &mut copy.positions {
            p[0] += shift;
        }
        parts.push(copy);
    }
    let input = VabsInput::concat(&parts);
    let featurise = t.elapsed().as_secs_f64();
    // Initialise, then rebuild from plain tensors as a model loaded from a file is: weights held
    // in trainable `Var`s make candle record every op for backward and keep all intermediates.
    let vm = VarMap::new();
    Vabs::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &cfg).unwrap();
    let weights: std::collections::HashMap<String, candle_core::Tensor> =
        vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect();
    let model = Vabs::new(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), &cfg).unwrap();
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let out = model.forward(&input, None, false).unwrap();
        times.push(t.elapsed().as_secs_f64());
        drop(out);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "vabs {which} ({} layers, dim {}, edge {}, {} heads, k={}): {} atoms ({} × {}), {} atom edges, {} unit edges; \
         featurise + tile {:.2} s, forward median {:.2} s, peak RSS {:.2} GiB ({} threads)",
        cfg.layers,
        cfg.dim,
        cfg.edge_dim,
        cfg.heads,
        cfg.atom_knn,
        input.num_atoms(),
        parts.len(),
        s.graph.num_atoms(),
        input.atom_edges.len(),
        input.unit_edges.len(),
        featurise,
        times[1],
        peak_gib(),
        rayon::current_num_threads()
    );
}
