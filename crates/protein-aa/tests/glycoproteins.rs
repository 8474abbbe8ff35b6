//! Glycans in real structures: 7DDO (ACE2 with N-glycans, biopython Tests/PDB) and the
//! chitotetraose of biopython's a_structure.pdb (model 2). Each glycan's IUPAC string parses
//! with the glycan front end into the composition of the structure's atoms (plus missing
//! atoms, less the reducing-end oxygen replaced by the protein link).

use std::collections::BTreeMap;
use std::path::PathBuf;

use aa_graph::{UnitKind, UnitLinkKind};
use protein_aa::{read_structure_file, Structure, StructureOptions};

fn file(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures").join(rel);
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

fn check_compositions(s: &Structure) {
    for g in &s.glycans {
        let parsed = glycan_aa::Glycan::from_iupac(&g.iupac).unwrap_or_else(|e| panic!("{}: {e}", g.iupac));
        let mut want = parsed.molecule.graph.heavy_composition();
        if !g.reducing_end_oxygen {
            // The reducing-end O1 left (bonded to the protein, or not modelled in the file).
            *want.get_mut("O").unwrap() -= 1;
        }
        if g.attached_to.is_some() {
            assert!(!g.reducing_end_oxygen, "{}", g.iupac);
        }
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for a in &s.graph.atoms {
            if g.units.contains(&a.unit) {
                *got.entry(a.element.symbol().to_string()).or_default() += 1;
            }
        }
        let total_want: usize = want.values().sum();
        let total_got: usize = got.values().sum::<usize>() + g.missing_atoms;
        assert_eq!(total_got, total_want, "{}: atoms", g.iupac);
        if g.missing_atoms == 0 {
            assert_eq!(got, want, "{}", g.iupac);
        }
    }
}

#[test]
fn ace2_n_glycans_attach_to_the_right_asparagines() {
    let s = read_structure_file(&file("biopython/7DDO.pdb"), &StructureOptions::default()).unwrap();
    s.graph.validate().unwrap();
    let mut found: Vec<(String, String)> =
        s.glycans.iter().map(|g| (g.iupac.clone(), g.attached_to.clone().unwrap_or_default())).collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("GlcNAc(b1-".to_string(), "ASN 343 chain C (atom ND2)".to_string()),
            ("GlcNAc(b1-".to_string(), "ASN 53 chain A (atom ND2)".to_string()),
            ("GlcNAc(b1-".to_string(), "ASN 546 chain A (atom ND2)".to_string()),
            ("GlcNAc(b1-".to_string(), "ASN 90 chain A (atom ND2)".to_string()),
        ]
    );
    check_compositions(&s);
    // The NAG C1–ASN ND2 bond is in the graph, as a covalent unit link.
    let nag = s.glycans[0].units[0] as usize;
    assert_eq!(s.graph.units[nag].kind, UnitKind::Monosaccharide);
    assert!(s.graph.unit_links.iter().any(|l| l.src as usize == nag && matches!(l.kind, UnitLinkKind::Covalent)));
    // Peptide bonds connect the chain; the zinc is a unit of kind other without covalent links.
    let peptides = s.graph.unit_links.iter().filter(|l| matches!(l.kind, UnitLinkKind::Peptide)).count();
    assert!(peptides > 700, "{peptides}");
    let (res, mono, other) = s.units_by_kind();
    assert_eq!((res, mono, other), (791, 4, 1));
}

#[test]
fn a_free_chitotetraose_becomes_one_tree() {
    let opts = StructureOptions { model: Some(2), ..Default::default() };
    let s = read_structure_file(&file("biopython/a_structure.pdb"), &opts).unwrap();
    let g: Vec<&str> = s.glycans.iter().map(|g| g.iupac.as_str()).collect();
    assert!(g.contains(&"GlcNAc(b1-4)GlcNAc(b1-4)GlcNAc(b1-4)GlcNAc"), "{g:?}");
    check_compositions(&s);
    let links: Vec<_> = s
        .graph
        .unit_links
        .iter()
        .filter_map(|l| match &l.kind {
            UnitLinkKind::Glycosidic { donor_position, acceptor_position, .. } => {
                Some((*donor_position, *acceptor_position))
            }
            _ => None,
        })
        .collect();
    assert_eq!(links, vec![(Some(1), Some(4)); 3]);
}

#[test]
fn labels_spatial_relations_and_sequence_offsets() {
    let s = read_structure_file(&file("pdbrust/examples/pdb_files/1UBQ.pdb"), &StructureOptions::default()).unwrap();
    let g = &s.graph;
    g.validate().unwrap();
    assert_eq!(s.residues, 76);
    let first = g.units[0].label.as_ref().unwrap();
    assert_eq!((first.chain.as_str(), first.number), ("A", 1));
    // Atom kNN (k = 30) and unit kNN (k = 15) on CA atoms.
    assert_eq!(g.spatial.len(), 2);
    let atoms_knn = &g.spatial[0].neighbors;
    assert!((0..g.num_atoms()).all(|i| atoms_knn.degree(i) == 30));
    let units_knn = &g.spatial[1].neighbors;
    assert_eq!(units_knn.num_nodes(), g.num_units());
    // Nearest unit of residue 10 is a sequence neighbour (CA–CA ≈ 3.8 Å).
    let nearest = units_knn.neighbors(9)[0] as usize;
    assert_eq!(g.sequence_offset(9, nearest, 256).map(i32::abs), Some(1));
    assert!((units_knn.edge_ids(9)[0] as f32 / 1000.0 - 3.8).abs() < 0.2);
    // Disulfide-free ubiquitin: 75 peptide bonds.
    assert_eq!(g.unit_links.iter().filter(|l| matches!(l.kind, UnitLinkKind::Peptide)).count(), 75);
}

#[test]
fn models_and_missing_atoms() {
    let path = file("pdbrust/examples/pdb_files/multi_model.pdb");
    let s1 = read_structure_file(&path, &StructureOptions::default()).unwrap();
    assert!(s1.warnings.iter().any(|w| w.contains("models in the file")), "{:?}", s1.warnings);
    let err = read_structure_file(&path, &StructureOptions { model: Some(999), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("model 999 not in the file"), "{err}");
    // CA-only trace: every side chain and backbone atom but CA is missing, none invented.
    let s = read_structure_file(&file("mdanalysistests/incomplete.pdb"), &StructureOptions::default()).unwrap();
    assert_eq!(s.graph.num_atoms(), 3);
    assert!(s.missing_atoms > 10);
}

/// Bonds as (chain, residue number, atom name) pairs, sorted, for comparing two graphs.
fn bond_names(s: &Structure) -> Vec<String> {
    let g = &s.graph;
    let name = |a: u32| {
        let at = &g.atoms[a as usize];
        let l = g.units[at.unit as usize].label.as_ref().unwrap();
        format!("{}{}:{}", l.chain, l.number, at.name)
    };
    let mut v: Vec<String> = g
        .bonds
        .iter()
        .map(|b| {
            let (x, y) = (name(b.a), name(b.b));
            if x < y {
                format!("{x}-{y}")
            } else {
                format!("{y}-{x}")
            }
        })
        .collect();
    v.sort();
    v
}

#[test]
fn mmcif_struct_conn_gives_the_same_glycoprotein_as_pdb_link() {
    // 7DDO written as mmCIF by gemmi 0.7.5 (an independent writer), gzip-compressed.
    let cif =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/7DDO_by_gemmi.cif.gz")).unwrap();
    let raw = protein_aa::read::read_structure(&cif).unwrap();
    let nag_links =
        raw.connections.iter().filter(|c| c.kind == "covale" && (c.a.resname == "NAG" || c.b.resname == "NAG")).count();
    assert_eq!(nag_links, 4, "struct_conn rows for the four N-glycans");
    let from_cif = protein_aa::build(&raw, &StructureOptions::default()).unwrap();
    let from_pdb = read_structure_file(&file("biopython/7DDO.pdb"), &StructureOptions::default()).unwrap();
    assert_eq!(bond_names(&from_cif), bond_names(&from_pdb));
    let g = |s: &Structure| {
        let mut v: Vec<(String, Option<String>)> =
            s.glycans.iter().map(|g| (g.iupac.clone(), g.attached_to.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(g(&from_cif), g(&from_pdb));
}

#[test]
fn iupac_order_lists_units_as_the_string_names_them() {
    let opts = StructureOptions { model: Some(2), ..Default::default() };
    let s = read_structure_file(&file("biopython/a_structure.pdb"), &opts).unwrap();
    let t = s.glycans.iter().find(|g| g.units.len() == 4).unwrap();
    let mut sorted = t.iupac_order.clone();
    sorted.sort();
    assert_eq!(sorted, t.units, "a permutation of the tree's units");
    // The reducing end is written last: the one unit that donates no glycosidic bond.
    let donors: Vec<u32> = s
        .graph
        .unit_links
        .iter()
        .filter(|l| matches!(l.kind, UnitLinkKind::Glycosidic { .. }))
        .map(|l| l.src)
        .collect();
    let root = *t.iupac_order.last().unwrap();
    assert!(!donors.contains(&root), "{root} in {donors:?}");
    assert!(t.iupac_order[..3].iter().all(|u| donors.contains(u)));
    // Along a linear chain, each written residue donates to the next one.
    for w in t.iupac_order.windows(2) {
        assert!(s.graph.unit_links.iter().any(|l| l.src == w[0] && l.dst == w[1]), "{} → {}", w[0], w[1]);
    }
    let parsed = glycan_aa::parse_iupac(&t.iupac).unwrap();
    assert_eq!(parsed.residues.len(), t.iupac_order.len());
}
