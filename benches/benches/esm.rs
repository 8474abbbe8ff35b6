//! ESM-2 35M forward (logits, as fair-esm's forward always computes them) at batch 1 × 256
//! and batch 32 × 256 tokens, and the matmul ceiling: one f32 matmul of the FFN's shape
//! (8192 × 480 · 480 × 1920) on the same cores. Compare with `benches/esm_speed.py` (fair-esm
//! in PyTorch, same shapes, same threads), run back to back:
//!
//! `cargo bench -p allatom-benches --bench esm`

use aa_codeswitch::{Esm, EsmConfig, EsmRequest};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    allatom_benches::keep_freed_memory();
    let varmap = VarMap::new();
    let model =
        Esm::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &EsmConfig::esm2_t12_35m()).unwrap();
    let req = EsmRequest { logits: true, ..Default::default() };
    let mut g = c.benchmark_group("esm2_t12_35m_forward");
    g.sample_size(10);
    for b in [1usize, 32] {
        let x = allatom_benches::esm_batch(b);
        g.throughput(Throughput::Elements((b * 256) as u64));
        g.bench_function(format!("batch_{b}x256"), |bench| bench.iter(|| model.forward(&x, &req).unwrap().logits));
    }
    g.finish();
    let mut g = c.benchmark_group("matmul_ceiling");
    g.sample_size(10);
    let a = Tensor::randn(0f32, 1.0, (8192, 480), &Device::Cpu).unwrap();
    let w = Tensor::randn(0f32, 1.0, (480, 1920), &Device::Cpu).unwrap();
    g.throughput(Throughput::Elements(2 * 8192 * 480 * 1920));
    g.bench_function("f32_8192x480x1920", |bench| bench.iter(|| a.matmul(&w).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
