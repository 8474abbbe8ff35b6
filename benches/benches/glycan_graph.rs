//! Parse and build all-atom graphs for the 40,781 PreGlycanAA pretraining glycans.
//!
//! `cargo bench -p allatom-benches --bench glycan_graph`

use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let glycans = allatom_benches::pretrain_glycans();
    let mut g = c.benchmark_group("glycan_graph");
    g.sample_size(10);
    g.bench_function("pretrain_40781_parallel", |b| {
        b.iter(|| glycans.par_iter().filter(|s| glycan_aa::Glycan::from_iupac(s).is_ok()).count())
    });
    g.bench_function("pretrain_40781_one_thread", |b| {
        b.iter(|| glycans.iter().filter(|s| glycan_aa::Glycan::from_iupac(s).is_ok()).count())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
