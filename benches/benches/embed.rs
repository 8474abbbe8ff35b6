//! Embedding with the default model (`models/preglycanaa-small`, GlycanAA 3 × 64 pretrained
//! by `allatom pretrain`): featurise + collate + forward of 256 real pretraining glycans, graph
//! level, through the encoder interface as `allatom embed` does per batch — glycans/s = 256 / time.
//!
//! `cargo bench -p allatom-benches --bench embed`

use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/preglycanaa-small");
    let model = allatom::Model::from_dir(&dir).unwrap();
    let all = allatom_benches::pretrain_glycans();
    let glycans: Vec<String> = all.iter().filter(|g| model.glycan_window(g).is_ok()).take(256).cloned().collect();
    let mut g = c.benchmark_group("embed_default_model");
    g.sample_size(20);
    g.bench_function("featurise_and_embed_256", |b| {
        b.iter(|| {
            let windows: Vec<_> = glycans.par_iter().map(|s| model.glycan_window(s).unwrap()).collect();
            let out = model.encoder.encode(&windows.iter().collect::<Vec<_>>(), false).unwrap();
            model.encoder.readout().forward(&out, false).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
