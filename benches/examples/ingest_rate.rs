//! Structure ingest rate: two real mmCIF files of 2,030 and 2,954 heavy atoms (4ZHL, 6WQA of the
//! biopython test set: 2,492 on average, AlphaFold-sized), as they are and gzipped, each read
//! from memory into the full graph (template bonds, glycans, atom kNN k = 30, unit kNN k = 15:
//! the default `StructureOptions`), all cores in parallel, as an embedding job's featurisation
//! does. Prints structures/s per repeat and the median.
//!
//!     cargo run --release -p allatom-benches --example ingest_rate [copies=100] [repeats=7]

use std::time::Instant;

use rayon::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FILES: [&str; 2] = ["4ZHL.cif", "6WQA.cif"];

fn main() {
    let copies: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let repeats: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(7);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/fetched/structures/biopython/");
    let plain: Vec<Vec<u8>> =
        FILES.iter().map(|f| std::fs::read(format!("{dir}{f}")).expect("run `cargo xtask fetch-data` first")).collect();
    let gz: Vec<Vec<u8>> = plain
        .iter()
        .map(|b| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, b).unwrap();
            e.finish().unwrap()
        })
        .collect();
    for (what, files) in [("mmCIF", plain), ("mmCIF.gz", gz)] {
        rate(what, &files, copies, repeats);
    }
}

fn rate(what: &str, files: &[Vec<u8>], copies: usize, repeats: usize) {
    let opts = protein_aa::StructureOptions::default();
    let work: Vec<&Vec<u8>> = (0..copies).flat_map(|_| files.iter()).collect();
    let atoms: usize =
        files.iter().map(|b| protein_aa::structure_from_bytes(b, &opts).unwrap().graph.num_atoms()).sum();
    println!(
        "{what}: {} structures a repeat ({} files, {:.0} heavy atoms on average), {} threads",
        work.len(),
        files.len(),
        atoms as f64 / files.len() as f64,
        rayon::current_num_threads()
    );
    let mut rates = Vec::new();
    for r in 0..repeats {
        let t = Instant::now();
        let n: usize =
            work.par_iter().map(|b| protein_aa::structure_from_bytes(b, &opts).unwrap().graph.num_atoms()).sum();
        let s = t.elapsed().as_secs_f64();
        rates.push(work.len() as f64 / s);
        println!("repeat {r}: {:.3} s, {:.0} structures/s ({n} atoms)", s, work.len() as f64 / s);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!("{what}: median {:.0} structures/s", rates[rates.len() / 2]);
}
