//! Cost of the graph readouts on a GlycanAA training step (paper configuration 3 × 128, official
//! featurisation, batch of 256 real pretraining glycans), through the encoder interface as the
//! tasks run it: encoder forward (train) → readout → linear head → cross-entropy → backward →
//! AdamW step, for
//! - `train_step_meanmax_256`: mean ‖ max (GlycanAA's own readout);
//! - `train_step_hsa_256`: HSA-Net (HAP with both projectors and the Gumbel gate, SAF with 4
//!   experts, top-2, token width 128 — the encoder's width);
//! - `train_step_hsa64_256`: the same at token width 64 (the configuration of the readout
//!   ablation in models/RESULTS.md);
//! - `train_step_gigp_256`: GIGP by degree orbit.
//! The goal: HSA adds < 25 % to the mean ‖ max step.
//!
//! `cargo bench -p allatom-benches --bench readouts`

use aa_encoder::{Gigp, GigpConfig, Hsa, HsaConfig, MeanMax, Orbit, Readout, Window};
use aa_pretrain::{AdamW, AdamWConfig, ParamGroup};
use candle_core::{DType, Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    // As the `allatom` binary does for training runs: freed memory is reused, not re-faulted.
    allatom_benches::keep_freed_memory();
    let (windows, config) = allatom_benches::official_glycan_windows(256);
    let refs: Vec<&Window> = windows.iter().collect();
    let labels = Tensor::from_vec((0..256u32).map(|i| i % 10).collect::<Vec<_>>(), 256, &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("readouts");
    g.sample_size(10);
    for kind in ["meanmax", "hsa", "hsa64", "gigp"] {
        let enc = allatom::runs::trainable_encoder(&config, 0).unwrap();
        let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
        let readout: Box<dyn Readout> = match kind {
            "meanmax" => Box::new(MeanMax::default()),
            "hsa" | "hsa64" => Box::new(
                Hsa::new(
                    vb.pp("readout"),
                    &enc.encoder.layer_dims(),
                    enc.encoder.unit_dim(),
                    HsaConfig { dim: if kind == "hsa" { 128 } else { 64 }, ..Default::default() },
                )
                .unwrap(),
            ),
            _ => Box::new(
                Gigp::new(
                    vb.pp("readout"),
                    enc.encoder.unit_dim(),
                    GigpConfig { orbit: Orbit::Degree, ..Default::default() },
                )
                .unwrap(),
            ),
        };
        let head = candle_nn::linear(readout.dim(enc.encoder.unit_dim()), 10, vb.pp("mlp")).unwrap();
        let input = enc.encoder.featurize(&refs).unwrap();
        if let Some(gigp) = (kind == "gigp").then(|| {
            Gigp::new(
                vb.pp("readout"),
                enc.encoder.unit_dim(),
                GigpConfig { orbit: Orbit::Degree, ..Default::default() },
            )
            .unwrap()
        }) {
            // The same variables as the boxed readout's (one store): fit the degree-orbit centres.
            let values = aa_encoder::readout::window_orbit_values(&refs, Orbit::Degree).unwrap();
            gigp.set_centres(&Gigp::fit_centres(&values, 8), &enc.store.all()).unwrap();
        }
        let vars =
            enc.store.all().into_iter().filter(|(k, _)| !k.contains("running_") && !k.contains("buffer_")).collect();
        let group = ParamGroup { vars, lr_scale: 1.0, weight_decay: None };
        let mut opt =
            AdamW::new(vec![group], AdamWConfig { lr: 5e-4, weight_decay: 1e-3, ..Default::default() }).unwrap();
        g.bench_function(format!("train_step_{kind}_256"), |b| {
            b.iter(|| {
                let out = enc.encoder.forward(&input, true).unwrap();
                let logits = head.forward(&readout.forward(&out, true).unwrap()).unwrap();
                let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
                opt.step(&loss.backward().unwrap(), 5e-4).unwrap();
                loss.to_scalar::<f32>().unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
