//! allatom side of the ESM speed comparison, printing the same lines as `benches/esm_speed.py`
//! (fair-esm): ESM-2 35M forward (with logits) at batch 1 × 256 and 32 × 256 tokens, medians of
//! repeated runs, and the f32 matmul of the FFN's shape. Alternate the two scripts a few times
//! on a quiet machine and compare medians from neighbouring runs:
//!
//! `cargo run --release -p allatom-benches --example esm_speed [batch ...]` (default: 1 32; a
//! single batch size, e.g. `1`, is handy under a profiler).

use aa_codeswitch::{Esm, EsmConfig, EsmRequest};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = std::time::Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn main() {
    allatom_benches::keep_freed_memory();
    let varmap = VarMap::new();
    let model =
        Esm::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &EsmConfig::esm2_t12_35m()).unwrap();
    let req = EsmRequest { logits: true, ..Default::default() };
    let threads = rayon::current_num_threads();
    let batches: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let batches = if batches.is_empty() { vec![1, 32] } else { batches };
    for b in batches {
        let reps = if b < 8 { 30 } else { 5 };
        let x = allatom_benches::esm_batch(b);
        let s = median_seconds(reps, || {
            model.forward(&x, &req).unwrap();
        });
        println!(
            "allatom esm2_t12_35M batch {b}x256: median {:.1} ms, {:.0} tokens/s ({threads} threads)",
            s * 1e3,
            (b * 256) as f64 / s
        );
    }
    let a = Tensor::randn(0f32, 1.0, (8192, 480), &Device::Cpu).unwrap();
    let w = Tensor::randn(0f32, 1.0, (480, 1920), &Device::Cpu).unwrap();
    let s = median_seconds(10, || {
        a.matmul(&w).unwrap();
    });
    println!(
        "candle matmul 8192x480x1920: median {:.1} ms, {:.1} GFLOP/s",
        s * 1e3,
        2.0 * 8192.0 * 480.0 * 1920.0 / s / 1e9
    );
}
