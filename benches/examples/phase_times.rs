//! Times the phases of structure reading on one file: parse, build without spatial relations,
//! atom kNN. `cargo run --release -p allatom-benches --example phase_times -- FILE`

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let path = std::env::args().nth(1).expect("usage: phase_times FILE");
    let bytes = std::fs::read(&path).unwrap();
    let t = Instant::now();
    let raw = protein_aa::read::read_structure(&bytes).unwrap();
    let t_parse = t.elapsed();
    let opts = protein_aa::StructureOptions {
        atom_knn: None,
        unit_knn: None,
        keep_hydrogens: true,
        keep_waters: true,
        ..Default::default()
    };
    let t = Instant::now();
    let _ = protein_aa::build(&raw, &opts).unwrap();
    let t_first = t.elapsed();
    let t = Instant::now();
    let s = protein_aa::build(&raw, &opts).unwrap();
    let t_build = t.elapsed();
    println!("first build (loads CCD tables) {t_first:?}");
    let pos = s.graph.positions.clone().unwrap();
    let t = Instant::now();
    let k = aa_graph::neighbors::knn(&pos, 30);
    let t_knn = t.elapsed();
    let t = Instant::now();
    let r = aa_graph::neighbors::radius(&pos, 2.7);
    let t_rad = t.elapsed();
    println!(
        "{} atoms: parse {:?}, build {:?}, knn30 {:?} ({} entries), radius2.7 {:?} ({} entries)",
        pos.len(),
        t_parse,
        t_build,
        t_knn,
        k.num_entries(),
        t_rad,
        r.num_entries()
    );
}
