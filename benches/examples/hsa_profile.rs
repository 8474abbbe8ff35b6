//! Where an HSA-Net readout step spends its time on 256 real glycans (GlycanAA 3 × 128 output):
//! forward (train) and backward of the whole readout and of each projector alone.
//!
//! `cargo run --release -p allatom-benches --example hsa_profile`

use aa_encoder::{Hsa, HsaConfig, Projectors, Readout, Window};
use candle_core::{DType, Device};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // As the `allatom` binary does for training runs: freed memory is reused, not re-faulted.
    allatom_benches::keep_freed_memory();
    let (windows, config) = allatom_benches::official_glycan_windows(256);
    let refs: Vec<&Window> = windows.iter().collect();
    let enc = allatom::runs::trainable_encoder(&config, 0).unwrap();
    let input = enc.encoder.featurize(&refs).unwrap();
    let out = enc.encoder.forward(&input, false).unwrap();
    let detached = aa_encoder::EncoderOutput {
        layers: out.layers.iter().map(|l| aa_encoder::LayerStates { units: l.units.detach(), atoms: None }).collect(),
        units: out.units.detach(),
        ..out.clone()
    };
    eprintln!("{} unit rows", out.units.dim(0).unwrap());
    let lmax = (0..out.windows).map(|w| out.unit_rows(w).len()).max().unwrap();
    if std::env::var("HSA_CASE").is_err() {
        let dev = Device::Cpu;
        let v = |d: usize| candle_core::Var::rand(0f32, 1.0, (256, lmax, d), &dev).unwrap();
        let (u, dt, b, c, z) = (v(128), v(128), v(8), v(8), v(128));
        let a = candle_core::Tensor::rand(-2f32, -0.5, (128, 8), &dev).unwrap();
        let skip = candle_core::Tensor::ones(128, candle_core::DType::F32, &dev).unwrap();
        for _ in 0..2 {
            let t = Instant::now();
            let y = aa_graph::scan::selective_scan(&u, &dt, &a, &b, &c, &skip, &z).unwrap();
            let f = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let _ = y.sum_all().unwrap().backward().unwrap();
            eprintln!(
                "scan [256, {lmax}, 128], N 8: forward {:.0} ms, backward {:.0} ms",
                f * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    for cfg in [
        HsaConfig { projectors: Projectors::Attention, motifs: 0, experts: 1, top_k: 1, ..Default::default() },
        HsaConfig { projectors: Projectors::Attention, dim: 64, tokens: 4, ..Default::default() },
    ] {
        if std::env::var("HSA_CASE").is_ok() {
            continue;
        }
        let map = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let hsa = Hsa::new(vb, &enc.encoder.layer_dims(), enc.encoder.unit_dim(), cfg.clone()).unwrap();
        let t = Instant::now();
        let y = hsa.forward(&detached, true).unwrap();
        let f = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = y.sum_all().unwrap().backward().unwrap();
        eprintln!("{cfg:?}: forward {:.0} ms, backward {:.0} ms", f * 1e3, t.elapsed().as_secs_f64() * 1e3);
    }
    for (p, dim) in [
        (Projectors::Attention, 128),
        (Projectors::Mamba, 128),
        (Projectors::Adaptive, 128),
        (Projectors::Attention, 64),
        (Projectors::Mamba, 64),
        (Projectors::Adaptive, 64),
    ] {
        // `HSA_CASE=Mamba64` (projectors and width) runs one case only, e.g. under `perf`.
        if std::env::var("HSA_CASE").is_ok_and(|c| c != format!("{p:?}{dim}")) {
            continue;
        }
        // `HSA_EXPERTS`, `HSA_MOTIFS` override the fusion's experts and motif tokens (ablations).
        let env = |k: &str, default: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let (experts, top_k, motifs) = (env("HSA_EXPERTS", 4), 2, env("HSA_MOTIFS", 4));
        let map = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let hsa = Hsa::new(
            vb,
            &enc.encoder.layer_dims(),
            enc.encoder.unit_dim(),
            HsaConfig { projectors: p, dim, experts, top_k: top_k.min(experts), motifs, ..Default::default() },
        )
        .unwrap();
        let repeats = if std::env::var("HSA_CASE").is_ok() { env("HSA_REPEATS", 10) } else { 3 };
        for _ in 0..repeats {
            let t = Instant::now();
            let y = hsa.forward(&detached, true).unwrap();
            let f = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let _ = y.sum_all().unwrap().backward().unwrap();
            let b = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let _ = hsa.forward(&detached, false).unwrap();
            eprintln!(
                "{p:?} d {dim}: forward (train) {:.0} ms, backward {:.0} ms, inference {:.0} ms",
                f * 1e3,
                b * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}
