//! Every encoder family on every modality: GlycanAA's hierarchical RGConv trains on protein
//! secondary structure (residues as units, peptide links as unit relations), and Vabs-Net
//! trains on the monosaccharide mobility of lectin-bound glycan crystal structures (glycontact's
//! UniLectin set); B-factors are read from PDB and mmCIF files.

use std::path::PathBuf;
use std::sync::Arc;

use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use aa_sparse_attn::Vabs;
use candle_core::{DType, Device, Var};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use glycan_aa::model::{molecule_relation, molecule_spatial_relation, GlycanAA, GlycanAABatch, GlycanAAConfig};
use protein_aa::tasks::{
    dssp_labels, labelled_windows, sugar_mobility_labels, whole_structure_window, LabelledWindow, ResidueTask,
    UnitEncoder,
};
use protein_aa::{read_structure_file, StructureOptions};

use super::file;

fn glycontact(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/glycontact/unilectin").join(name);
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

fn tiny_glycanaa() -> GlycanAAConfig {
    GlycanAAConfig { input_dim: 16, hidden_dims: vec![16, 16], ..GlycanAAConfig::paper_on_molecules() }
}

/// Every optimised variable gets a non-zero gradient, and `steps` AdamW steps on `items` lower
/// the training loss of the whole set. Not parameters: BatchNorm running statistics. Without
/// gradient by construction: GlycanAA's unit-convolution biases, which training-mode batch
/// norm removes right after them (see glycan-aa's `gradients_reach_every_parameter`).
pub(super) fn check_training<E: UnitEncoder>(
    task: &ResidueTask<E>,
    vm: &VarMap,
    items: &[LabelledWindow],
    steps: usize,
) {
    let refs: Vec<&LabelledWindow> = items.iter().collect();
    let mut rng = Rng::new(3);
    let loss = |rng: &mut Rng| task.loss(task.prepare(&refs, rng).unwrap()).unwrap().0;
    let l0 = loss(&mut rng);
    let grads = l0.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let params: Vec<Var> = data
        .iter()
        .filter(|(name, _)| {
            let bn_removed =
                name.starts_with("mono_layers.") && name.ends_with(".bias") && !name.contains("batch_norm");
            !name.contains("running_") && !bn_removed
        })
        .map(|(name, v)| {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let n = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(n > 0.0, "zero gradient for {name}");
            v.clone()
        })
        .collect();
    drop(data);
    let mut opt = candle_nn::AdamW::new_lr(params, 3e-3).unwrap();
    for _ in 0..steps {
        opt.backward_step(&loss(&mut rng)).unwrap();
    }
    let (before, after) = (l0.to_scalar::<f32>().unwrap(), loss(&mut rng).to_scalar::<f32>().unwrap());
    assert!(after < before, "{before} -> {after}");
}

#[test]
fn glycanaa_trains_on_protein_secondary_structure() {
    let dir = file("mdanalysistests/dssp");
    let g = read_structure_file(&dir.join("1ahsA.pdb.gz"), &StructureOptions::default()).unwrap().graph;
    let labels = dssp_labels(&dir.join("1ahsA.pdb.dssp"), &g).unwrap();
    let windows = labelled_windows(Arc::new(g), &labels, 64);
    assert!(windows.len() >= 2);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let task = ResidueTask::new(GlycanAA::new(vb.clone(), &tiny_glycanaa()).unwrap(), vb, 3).unwrap();
    // One feature row per window residue; the residues' peptide links are a unit relation.
    let refs: Vec<_> = windows.iter().map(|w| &w.window).collect();
    let batch = task.model.featurize(&refs).unwrap();
    let residues: usize = windows.iter().map(|w| w.window.units.len()).sum();
    assert_eq!(task.model.encode(&batch, false).unwrap().dims(), &[residues, 32]);
    let peptide = molecule_relation(&aa_graph::UnitLinkKind::Peptide) as usize;
    assert!(batch.all_edges.relations_present().contains(&peptide));
    assert!(!batch.all_edges.relations_present().contains(&(molecule_spatial_relation() as usize)));
    check_training(&task, &vm, &windows, 15);
    let m = task.evaluate(&windows).unwrap();
    assert!(m["accuracy"] > 0.0 && m["accuracy"] <= 1.0, "{m:?}");
    // With spatial unit edges (GearNet-style kNN on CA atoms): every residue receives messages
    // in one more relation.
    let knn = GlycanAAConfig { unit_knn: Some(8), ..tiny_glycanaa() };
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let task = ResidueTask::new(GlycanAA::new(vb.clone(), &knn).unwrap(), vb, 3).unwrap();
    let batch = task.model.featurize(&refs).unwrap();
    let spatial = molecule_spatial_relation() as usize;
    let sub = windows[0].window.graph.unit_subgraph(&windows[0].window.units);
    let with = GlycanAABatch::from_molecules_with(&[&sub], Some(8), &Device::Cpu).unwrap();
    let without = GlycanAABatch::from_molecules(&[&sub], &Device::Cpu).unwrap();
    assert_eq!(with.all_edges.num_pairs() - without.all_edges.num_pairs(), sub.num_units());
    assert!(batch.all_edges.relations_present().contains(&spatial));
    check_training(&task, &vm, &windows, 15);
}

#[test]
fn vabs_trains_on_lectin_bound_glycans() {
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
    let mut items = vec![whole_structure_window(Arc::new(s.graph.clone()), &labels)];
    let s2 = read_structure_file(&glycontact("0100_01.pdb"), &StructureOptions::default()).unwrap();
    items.push(whole_structure_window(Arc::new(s2.graph.clone()), &sugar_mobility_labels(&s2).unwrap()));
    let cfg = super::vabs::tiny();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let task = ResidueTask::new(Vabs::new(vb.clone(), &cfg).unwrap(), vb, 2).unwrap();
    check_training(&task, &vm, &items, 15);
    let m = task.evaluate(&items).unwrap();
    assert!(m.contains_key("auroc"), "{m:?}");
    // GlycanAA reads the same crystal glycan (its own modality, from a structure file).
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let task = ResidueTask::new(GlycanAA::new(vb.clone(), &tiny_glycanaa()).unwrap(), vb, 2).unwrap();
    check_training(&task, &vm, &items, 15);
}

#[test]
fn b_factors_from_mmcif() {
    let s = read_structure_file(&file("biopython/2XHE.cif"), &StructureOptions::default()).unwrap();
    // `ATOM 1 N N . HIS A 1 1 ? -16.300 -47.169 4.756 1.00 117.90 ...`
    assert!((s.b_factors[0] - 117.90).abs() < 1e-3, "{}", s.b_factors[0]);
}
