//! Embedding with the default model (`models/preglycanaa-small`, GlycanAA 3 × 64 pretrained
//! by `allatom pretrain`): featurise + collate + forward of 256 real pretraining glycans, graph
//! level, as `allatom embed` does per batch — glycans/s = 256 / time.
//!
//! `cargo bench -p allatom-benches --bench embed`

use criterion::{criterion_group, criterion_main, Criterion};
use glycan_aa::encoder::GlycanEncoder;
use rayon::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/preglycanaa-small");
    let enc = GlycanEncoder::from_dir(&dir).unwrap();
    let all = allatom_benches::pretrain_glycans();
    let glycans: Vec<String> = all.iter().filter(|g| enc.featurize(g).is_ok()).take(256).cloned().collect();
    let mut g = c.benchmark_group("embed_default_model");
    g.sample_size(20);
    g.bench_function("featurise_and_embed_256", |b| {
        b.iter(|| {
            let graphs: Vec<_> = glycans.par_iter().map(|s| enc.featurize(s).unwrap()).collect();
            enc.embed(&graphs.iter().collect::<Vec<_>>()).unwrap().graph
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
