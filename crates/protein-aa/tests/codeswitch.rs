//! Code-switch sequences (ESM-AA input) of real structures, and the ESM-AA pretraining
//! objective on them: 1UBQ as a residue sequence equals its known sequence; an unzipped
//! residue contributes its heavy atoms at its residue's position; the ligands of 1HSG become
//! atoms; a few optimiser steps on real windows lower the loss and reach every parameter.

use std::path::PathBuf;
use std::sync::Arc;

use aa_codeswitch::{Alphabet, CodeSwitchSequence, Esm, EsmConfig, Unzip};
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{DType, Device};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use protein_aa::esm_pretrain::{residue_windows, EsmAaMasking, EsmAaPretrain};
use protein_aa::{read_structure_file, StructureOptions};

// Vabs-Net tests live in this binary too (each test binary links candle again: CI time).
#[path = "codeswitch/vabs.rs"]
mod vabs;
#[path = "codeswitch/vabs_official.rs"]
mod vabs_official;
// Encoders on the other modality: GlycanAA on proteins, Vabs-Net on glycan crystal structures.
#[path = "codeswitch/cross.rs"]
mod cross;

fn file(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures").join(rel);
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

const UBIQUITIN: &str = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG";

#[test]
fn ubiquitin_sequence_and_unzipped_methionine() {
    let s = read_structure_file(&file("pdbrust/examples/pdb_files/1UBQ.pdb"), &StructureOptions::default()).unwrap();
    let a = Alphabet::esm_aa();
    let plain = CodeSwitchSequence::from_graph(&s.graph, &a, &Unzip::None).unwrap();
    let text: String = plain.tokens[1..plain.len() - 1].iter().map(|&t| a.token(t).unwrap()).collect();
    assert_eq!(text, UBIQUITIN);
    assert_eq!(plain.positions(), (0..plain.len() as u32).collect::<Vec<_>>());
    assert!(plain.atom_pairs().is_empty());
    let z = CodeSwitchSequence::from_graph(&s.graph, &a, &Unzip::Units(vec![0])).unwrap();
    let atoms: Vec<&str> = z.tokens[2..10].iter().map(|&t| a.token(t).unwrap()).collect();
    assert_eq!(atoms, ["N_a", "C_a", "C_a", "O_a", "C_a", "C_a", "S_a", "C_a"]); // N CA C O CB CG SD CE
    assert_eq!(&z.positions()[..12], &[0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3]);
    assert_eq!(z.atom_pairs().len(), 64);
    let (i, j, d) = z.atom_pairs()[1]; // N–CA bond
    assert_eq!((i, j), (2, 3));
    assert!((d - 1.47).abs() < 0.05, "{d}");
    // A ratio unzips about that fraction, reproducibly.
    let r = Unzip::Ratio { ratio: 0.3, seed: 7 };
    let x = CodeSwitchSequence::from_graph(&s.graph, &a, &r).unwrap();
    assert_eq!(x, CodeSwitchSequence::from_graph(&s.graph, &a, &r).unwrap());
    let unzipped =
        (0..76).filter(|&u| x.unit.iter().zip(&x.atom).any(|(uu, at)| *uu == Some(u) && at.is_some())).count();
    assert!((10..40).contains(&unzipped), "{unzipped}");
    assert!(CodeSwitchSequence::from_graph(&s.graph, &a, &Unzip::Units(vec![500])).is_err());
}

#[test]
fn ligands_become_atoms() {
    // 1HSG: HIV protease with the inhibitor MK1 (45 heavy atoms) as a non-residue unit.
    let s = read_structure_file(&file("pdbrust/examples/pdb_files/1HSG.pdb"), &StructureOptions::default()).unwrap();
    let a = Alphabet::esm_aa();
    let seq = CodeSwitchSequence::from_graph(&s.graph, &a, &Unzip::None).unwrap();
    let ligand_atoms = seq.atom.iter().filter(|x| x.is_some()).count();
    let other: usize = s
        .graph
        .units
        .iter()
        .enumerate()
        .filter(|(_, u)| u.kind != aa_graph::UnitKind::Residue)
        .map(|(i, _)| s.graph.atoms.iter().filter(|at| at.unit as usize == i).count())
        .sum();
    assert_eq!(ligand_atoms, other);
    assert!(ligand_atoms >= 45, "{ligand_atoms}");
    assert_eq!(seq.aa_mask.iter().filter(|&&m| m).count(), 2 + 198);
}

#[test]
fn pretraining_steps_lower_the_loss_on_real_windows() {
    let s = read_structure_file(&file("pdbrust/examples/pdb_files/1UBQ.pdb"), &StructureOptions::default()).unwrap();
    let windows = residue_windows(Arc::new(s.graph), 38);
    assert_eq!(windows.len(), 2);
    let varmap = VarMap::new();
    let model = Esm::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &EsmConfig::tiny(true)).unwrap();
    let masking = EsmAaMasking { unzip_ratio: 0.3, mask_prob: 0.3, ..Default::default() };
    let obj = EsmAaPretrain::new(model, Alphabet::esm_aa(), masking).unwrap();
    let mut opt = candle_nn::AdamW::new_lr(varmap.all_vars(), 3e-3).unwrap();
    let items: Vec<_> = windows.iter().collect();
    let first = obj.evaluate(&windows).unwrap()["loss"];
    for step in 0..40 {
        let mut rng = Rng::new(step);
        let b = obj.prepare(&items, &mut rng).unwrap();
        let (loss, logs) = obj.loss(b).unwrap();
        assert!(logs.iter().any(|(k, v)| k == "distance_l1" && *v > 0.0));
        let grads = loss.backward().unwrap();
        if step == 0 {
            for (name, var) in varmap.data().lock().unwrap().iter() {
                assert!(grads.get(var.as_tensor()).is_some(), "no gradient for {name}");
            }
        }
        opt.step(&grads).unwrap();
    }
    let last = obj.evaluate(&windows).unwrap()["loss"];
    assert!(last < first * 0.8, "loss {first} → {last}");
}
