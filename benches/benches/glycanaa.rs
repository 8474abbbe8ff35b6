//! GlycanAA (paper configuration: 3 × 128, 89 relations, BatchNorm, GELU, mean+max readout) on
//! batches of 256 real pretraining glycans in the official featurisation:
//! - `embed_256`: featurise + collate + forward (eval) — glycans/s = 256 / time;
//! - `forward_256`: forward only on a prepared batch;
//! - `train_step_256`: forward (train) + linear head + cross-entropy + backward + AdamW step (aa-pretrain's fused AdamW).
//!
//! `cargo bench -p allatom-benches --bench glycanaa`

use aa_pretrain::{AdamW, AdamWConfig, ParamGroup};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_group, criterion_main, Criterion};
use glycan_aa::compat::{featurize, CompatVocab};
use glycan_aa::model::{GlycanAA, GlycanAABatch, GlycanAAConfig};
use rayon::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let all = allatom_benches::pretrain_glycans();
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &all, 84);
    let glycans: Vec<String> = all.iter().filter(|g| featurize(g, &vocab).is_ok()).take(256).cloned().collect();
    let dev = Device::Cpu;
    let cfg = GlycanAAConfig::paper();
    let map = VarMap::new();
    let model = GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &cfg).unwrap();
    // Inference uses plain tensors (as loaded from a file), so no autograd graph is built.
    let plain: std::collections::HashMap<String, Tensor> =
        map.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect();
    let frozen = GlycanAA::new(VarBuilder::from_tensors(plain, DType::F32, &dev), &cfg).unwrap();
    let head =
        candle_nn::linear(cfg.graph_dim(), 10, VarBuilder::from_varmap(&map, DType::F32, &dev).pp("mlp")).unwrap();
    let graphs: Vec<_> = glycans.iter().map(|g| featurize(g, &vocab).unwrap()).collect();
    let batch = GlycanAABatch::from_compat(&graphs, &vocab, &dev).unwrap();
    let nodes = batch.node_type.dims1().unwrap();
    eprintln!("batch: 256 glycans, {nodes} nodes");
    let labels = Tensor::from_vec((0..256u32).map(|i| i % 10).collect::<Vec<_>>(), 256, &dev).unwrap();
    let mut g = c.benchmark_group("glycanaa");
    g.sample_size(10);
    g.bench_function("embed_256", |b| {
        b.iter(|| {
            let graphs: Vec<_> = glycans.par_iter().map(|s| featurize(s, &vocab).unwrap()).collect();
            let batch = GlycanAABatch::from_compat(&graphs, &vocab, &dev).unwrap();
            frozen.forward(&batch, false).unwrap().graph_feature.dims2().unwrap()
        })
    });
    g.bench_function("forward_256", |b| {
        b.iter(|| frozen.forward(&batch, false).unwrap().graph_feature.dims2().unwrap())
    });
    let vars = allatom_benches::trainable_vars(&map);
    let group = ParamGroup { vars, lr_scale: 1.0, weight_decay: None };
    let mut opt = AdamW::new(vec![group], AdamWConfig { lr: 5e-4, weight_decay: 1e-3, ..Default::default() }).unwrap();
    g.bench_function("train_step_256", |b| {
        b.iter(|| {
            use candle_core::Module;
            let out = model.forward(&batch, true).unwrap();
            let logits = head.forward(&out.graph_feature).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
            opt.step(&loss.backward().unwrap(), 5e-4).unwrap();
            loss.to_scalar::<f32>().unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
