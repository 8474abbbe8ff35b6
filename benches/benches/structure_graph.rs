//! Read a structure file and build the full bilevel graph (template bonds, peptide and
//! glycosidic links, atom kNN k = 30, unit kNN k = 15).
//!
//! `cargo bench -p allatom-benches --bench structure_graph` (after `cargo xtask fetch-data`)

use criterion::{criterion_group, criterion_main, Criterion};
use protein_aa::{structure_from_bytes, StructureOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("structure_graph");
    g.sample_size(20);
    // 51,688 heavy atoms: eight copies of 7DDO side by side (chains renamed, shifted 150 Å
    // apart), read with the default options like any other file.
    let ace2 = std::fs::read_to_string(allatom_benches::structure("biopython/7DDO.pdb"))
        .expect("run `cargo xtask fetch-data` first");
    let tiled = tile(&ace2, 8);
    let opts = StructureOptions::default();
    let s = structure_from_bytes(tiled.as_bytes(), &opts).unwrap();
    eprintln!("7ddo_x8: {} atoms, {} units", s.graph.num_atoms(), s.graph.num_units());
    g.bench_function("7ddo_x8_51688_atoms", |b| {
        b.iter(|| structure_from_bytes(tiled.as_bytes(), &opts).unwrap().graph.num_atoms())
    });
    let cases = [
        // 47,681 atoms: adenylate kinase in water with hydrogens (OPLS-AA), all atoms kept.
        ("adk_oplsaa_47681_atoms", "mdanalysistests/adk_oplsaa.pdb", true),
        // ACE2 with N-glycans, heavy atoms (6,461).
        ("7ddo_glycoprotein", "biopython/7DDO.pdb", false),
        // Ubiquitin, heavy atoms (602).
        ("1ubq_small_protein", "pdbrust/examples/pdb_files/1UBQ.pdb", false),
    ];
    for (name, rel, keep_all) in cases {
        let bytes = std::fs::read(allatom_benches::structure(rel)).expect("run `cargo xtask fetch-data` first");
        let opts = StructureOptions { keep_hydrogens: keep_all, keep_waters: keep_all, ..Default::default() };
        let s = structure_from_bytes(&bytes, &opts).unwrap();
        eprintln!("{name}: {} atoms, {} units", s.graph.num_atoms(), s.graph.num_units());
        g.bench_function(name, |b| b.iter(|| structure_from_bytes(&bytes, &opts).unwrap().graph.num_atoms()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// Copies of a PDB file's ATOM/HETATM/LINK records, each shifted 150 Å along x with its chain
/// ids remapped (A→A,B,C…; each copy gets its own letters).
fn tile(pdb: &str, copies: usize) -> String {
    let letters: Vec<char> = ('A'..='Z').chain('a'..='z').collect();
    let mut chains: Vec<char> = Vec::new();
    for l in pdb.lines().filter(|l| l.starts_with("ATOM") || l.starts_with("HETATM")) {
        let c = l.as_bytes().get(21).map(|&b| b as char).unwrap_or(' ');
        if !chains.contains(&c) {
            chains.push(c);
        }
    }
    let map = |copy: usize, c: char| -> char {
        let k = chains.iter().position(|&x| x == c).unwrap_or(0);
        letters[(copy * chains.len() + k) % letters.len()]
    };
    let mut out = String::new();
    for copy in 0..copies {
        for l in pdb.lines() {
            if l.starts_with("ATOM") || l.starts_with("HETATM") {
                let x: f32 = l[30..38].trim().parse().unwrap();
                let c = map(copy, l.as_bytes()[21] as char);
                out.push_str(&format!("{}{}{}{:8.3}{}\n", &l[..21], c, &l[22..30], x + 150.0 * copy as f32, &l[38..]));
            } else if l.starts_with("LINK") && l.len() >= 57 {
                let (c1, c2) = (map(copy, l.as_bytes()[21] as char), map(copy, l.as_bytes()[51] as char));
                out.push_str(&format!("{}{}{}{}{}\n", &l[..21], c1, &l[22..51], c2, &l[52..]));
            }
        }
    }
    out
}
