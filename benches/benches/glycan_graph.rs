//! Parse and build all-atom graphs for the 40,781 PreGlycanAA pretraining glycans, and for the
//! real glycans of the notation fixture (`crates/glycan-aa/tests/fixtures/notations.json`:
//! WURCS by crabwurcs, GlycoCT by glycowork) in each notation, tiled ten times.
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
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crates/glycan-aa/tests/fixtures/notations.json"
        ))
        .expect("notation fixture"),
    )
    .expect("notation fixture JSON");
    let records = fixture["records"].as_array().expect("records");
    for key in ["wurcs", "glycoct"] {
        let (mut theirs, mut iupac) = (Vec::new(), Vec::new());
        for r in records {
            if let Some(s) = r[key].as_str() {
                theirs.push(s.to_string());
                iupac.push(r["iupac"].as_str().expect("iupac").to_string());
            }
        }
        let tile = |v: &[String]| -> Vec<String> { (0..10).flat_map(|_| v.iter().cloned()).collect() };
        let (theirs, iupac) = (tile(&theirs), tile(&iupac));
        let n = theirs.len();
        g.bench_function(format!("{key}_{n}_parallel"), |b| {
            b.iter(|| theirs.par_iter().filter(|s| glycan_aa::Glycan::parse(s).is_ok()).count())
        });
        g.bench_function(format!("{key}_{n}_same_glycans_as_iupac_parallel"), |b| {
            b.iter(|| iupac.par_iter().filter(|s| glycan_aa::Glycan::parse(s).is_ok()).count())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
