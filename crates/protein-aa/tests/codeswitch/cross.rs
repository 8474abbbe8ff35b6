//! The inputs of every-family-on-every-modality: protein windows in GlycanAA's all-atom
//! vocabulary (residues as units, peptide links as unit relations), the monosaccharide mobility
//! of lectin-bound glycan crystal structures (glycontact's UniLectin set); B-factors read from
//! PDB and mmCIF files. The families train on them in crates/allatom/tests/families.rs.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;
use glycan_aa::model::{molecule_relation, molecule_spatial_relation, GlycanAABatch};
use protein_aa::tasks::{dssp_labels, labelled_windows, sugar_mobility_labels, whole_structure_window};
use protein_aa::{read_structure_file, StructureOptions};

use super::file;

fn glycontact(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/glycontact/unilectin").join(name);
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

#[test]
fn protein_windows_in_the_all_atom_vocabulary() {
    // Residues as units, peptide links as a unit relation; spatial unit edges only on request.
    // (Training every family on these windows: crates/allatom/tests/families.rs.)
    let dir = file("mdanalysistests/dssp");
    let g = read_structure_file(&dir.join("1ahsA.pdb.gz"), &StructureOptions::default()).unwrap().graph;
    let labels = dssp_labels(&dir.join("1ahsA.pdb.dssp"), &g).unwrap();
    let windows = labelled_windows(Arc::new(g), &labels, 64);
    assert!(windows.len() >= 2);
    let sub = windows[0].window.graph.unit_subgraph(&windows[0].window.units);
    let without = GlycanAABatch::from_molecules(&[&sub], &Device::Cpu).unwrap();
    let peptide = molecule_relation(&aa_graph::UnitLinkKind::Peptide) as usize;
    assert!(without.all_edges.relations_present().contains(&peptide));
    let spatial = molecule_spatial_relation() as usize;
    assert!(!without.all_edges.relations_present().contains(&spatial));
    let with = GlycanAABatch::from_molecules_with(&[&sub], Some(8), &Device::Cpu).unwrap();
    assert_eq!(with.all_edges.num_pairs() - without.all_edges.num_pairs(), sub.num_units());
    assert!(with.all_edges.relations_present().contains(&spatial));
}

#[test]
fn mobility_labels_of_lectin_bound_glycans() {
    // A biantennary N-glycan bound to a lectin: 8 of its 9 monosaccharides are resolved.
    let s = read_structure_file(&glycontact("0100_00.pdb"), &StructureOptions::default()).unwrap();
    let g = &s.graph;
    assert_eq!(s.units_by_kind(), (0, 8, 0));
    assert_eq!(s.glycans.len(), 1);
    // B-factors come from the file: the first atom (NAG C1) has 90.92.
    assert_eq!(s.b_factors.len(), g.num_atoms());
    assert!((s.b_factors[0] - 90.92).abs() < 1e-3, "{}", s.b_factors[0]);
    let labels = sugar_mobility_labels(&s).expect("eight sugars with different B-factors");
    let (ones, zeros) =
        (labels.iter().filter(|l| **l == Some(1)).count(), labels.iter().filter(|l| **l == Some(0)).count());
    assert_eq!(ones + zeros, 8);
    assert!(ones > 0 && zeros > 0, "{labels:?}");
    // A single monosaccharide has nothing to compare with.
    let single = read_structure_file(&glycontact("0000_00.pdb"), &StructureOptions::default()).unwrap();
    assert!(sugar_mobility_labels(&single).is_none());
    let w = whole_structure_window(Arc::new(s.graph.clone()), &labels);
    assert_eq!(w.window.units.len(), 8);
}

#[test]
fn b_factors_from_mmcif() {
    let s = read_structure_file(&file("biopython/2XHE.cif"), &StructureOptions::default()).unwrap();
    // `ATOM 1 N N . HIS A 1 1 ? -16.300 -47.169 4.756 1.00 117.90 ...`
    assert!((s.b_factors[0] - 117.90).abs() < 1e-3, "{}", s.b_factors[0]);
}
