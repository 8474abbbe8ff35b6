//! Vabs-Net on real structures: featurisation of 1UBQ (kNN with self loops, virtual node, local
//! frames), rotation invariance of the frame-relative direction features and of the encoder
//! without absolute directions, span masking, SMPC training steps that lower the loss and reach
//! every parameter, DSSP and ligand-contact labels, sugar ring frames on the glycoprotein 7DDO.

use std::sync::Arc;

use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use aa_sparse_attn::features::{MASK_UNIT, VIRTUAL_ATOM};
use aa_sparse_attn::{Vabs, VabsConfig, VabsInput};
use candle_core::{DType, Device};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use protein_aa::esm_pretrain::residue_windows;
use protein_aa::tasks::{dssp_labels, ligand_contact_labels};
use protein_aa::vabs::{span_mask, SpanMasking, VabsSmpc};
use protein_aa::{read_structure_file, StructureOptions};

use super::file;

fn ubiquitin() -> aa_graph::HeteroGraph {
    read_structure_file(&file("pdbrust/examples/pdb_files/1UBQ.pdb"), &StructureOptions::default()).unwrap().graph
}

pub(super) fn tiny() -> VabsConfig {
    VabsConfig {
        layers: 2,
        dim: 16,
        edge_dim: 8,
        heads: 2,
        kernels: 16,
        atom_knn: 8,
        unit_knn: 6,
        ..VabsConfig::small()
    }
}

fn rotated(g: &aa_graph::HeteroGraph) -> aa_graph::HeteroGraph {
    let (c, s) = (0.6f32, 0.8f32);
    let mut r = g.clone();
    for p in r.positions.as_mut().unwrap() {
        *p = [c * p[0] - s * p[1] + 3.0, s * p[0] + c * p[1] - 7.0, p[2] + 1.5];
    }
    r
}

#[test]
fn ubiquitin_featurisation_and_invariance() {
    let g = ubiquitin();
    let opts = tiny().feature_options();
    let f = VabsInput::from_graph(&g, &opts).unwrap();
    let heavy = g.atoms.iter().filter(|a| a.element != aa_graph::Element::H).count();
    assert_eq!(f.num_atoms(), heavy + 1);
    assert_eq!(f.num_units(), g.num_units() + 1);
    assert_eq!(*f.atom_type.last().unwrap(), VIRTUAL_ATOM);
    // k edges per real atom (self + k-1 nearest), plus one from the virtual node each.
    let mut indeg = vec![0usize; f.num_atoms()];
    for &(_, d) in &f.atom_edges {
        indeg[d as usize] += 1;
    }
    assert!(indeg[..heavy].iter().all(|&n| n == opts.atom_knn + 1));
    assert_eq!(indeg[heavy], heavy + 1);
    // Every residue of 1UBQ has N, CA, C: orthonormal frames.
    for q in f.frames[..g.num_units()].iter() {
        let q = q.expect("frame");
        for i in 0..3 {
            for j in 0..3 {
                let d: f32 = (0..3).map(|k| q[i][k] * q[j][k]).sum();
                assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-4);
            }
        }
    }
    // Frame-relative direction features do not change when the structure is rotated; the
    // absolute ones do.
    let fr = VabsInput::from_graph(&rotated(&g), &opts).unwrap();
    assert_eq!(f.atom_edges, fr.atom_edges);
    let dirs = |x: &VabsInput| {
        VabsInput::edge_directions(
            &x.unit_edges,
            |u| x.positions[x.anchors[u as usize] as usize],
            |u| x.frames[u as usize],
        )
    };
    let (a, b) = (dirs(&f), dirs(&fr));
    let (mut local, mut absolute) = (0f32, 0f32);
    for (ra, rb) in a.chunks(180).zip(b.chunks(180)) {
        for k in 0..90 {
            absolute = absolute.max((ra[k] - rb[k]).abs());
        }
        // Angles and low octaves: the 2^9 octave of a unit vector amplifies f32 rounding.
        for k in 90..117 {
            local = local.max((ra[k] - rb[k]).abs());
        }
    }
    assert!(local < 1e-3, "local {local}");
    assert!(absolute > 0.1);
    // Without absolute directions the encoder's outputs are rotation invariant.
    let cfg = VabsConfig { direction_features: false, ..tiny() };
    let vm = VarMap::new();
    let model = Vabs::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &cfg).unwrap();
    let y = model.forward(&f, None, false).unwrap().units;
    let yr = model.forward(&fr, None, false).unwrap().units;
    let d = (y - yr).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-3, "{d}");
}

#[test]
fn span_masks_cover_about_the_ratio_in_spans() {
    let mut rng = Rng::new(1);
    let mut total = 0;
    for _ in 0..200 {
        let m = span_mask(100, 0.3, 6.0, &mut rng);
        let n = m.iter().filter(|&&x| x).count();
        assert!((10..=30).contains(&n), "{n}");
        total += n;
        let runs = m.windows(2).filter(|w| !w[0] && w[1]).count() + m[0] as usize;
        assert!(runs <= 10, "{runs} spans for {n} masked residues");
    }
    assert!(total > 200 * 22, "{total}");
}

#[test]
fn smpc_steps_lower_the_loss_and_reach_every_parameter() {
    let g = Arc::new(ubiquitin());
    let windows = residue_windows(g.clone(), 38);
    assert_eq!(windows.len(), 2);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let model = Vabs::new(vb.clone(), &tiny()).unwrap();
    let obj = VabsSmpc::new(model, vb, SpanMasking::default()).unwrap();
    // Masked residues keep one atom and the mask type.
    let refs: Vec<_> = windows.iter().collect();
    let batch = obj.prepare(&refs, &mut Rng::new(5)).unwrap();
    let before = obj.evaluate(&windows).unwrap();
    let (loss, _) = obj.loss(batch).unwrap();
    let grads = loss.backward().unwrap();
    for (name, v) in vm.data().lock().unwrap().iter() {
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let n = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(n > 0.0, "zero gradient for {name}");
    }
    let mut opt = candle_nn::AdamW::new_lr(vm.all_vars(), 3e-3).unwrap();
    let mut rng = Rng::new(9);
    for _ in 0..12 {
        let b = obj.prepare(&refs, &mut rng).unwrap();
        let (l, _) = obj.loss(b).unwrap();
        opt.backward_step(&l).unwrap();
    }
    let after = obj.evaluate(&windows).unwrap();
    assert!(after["loss"] < before["loss"], "{before:?} -> {after:?}");
}

#[test]
fn masked_residues_keep_only_their_anchor() {
    let g = ubiquitin();
    let units: Vec<u32> = (0..10).collect();
    let mut masked = vec![false; 10];
    masked[3] = true;
    let f = VabsInput::build(&g, &units, &masked, g.positions.as_ref().unwrap(), &tiny().feature_options()).unwrap();
    assert_eq!(f.unit_type[3], MASK_UNIT);
    assert_eq!(f.atom_unit.iter().filter(|&&u| u == 3).count(), 1);
    assert_eq!(f.anchors[3] as usize, f.atom_unit.iter().position(|&u| u == 3).unwrap());
    assert!(f.frames[3].is_none());
}

#[test]
fn dssp_and_ligand_contact_labels() {
    let dir = file("mdanalysistests/dssp");
    let g = read_structure_file(&dir.join("1ahsA.pdb.gz"), &StructureOptions::default()).unwrap().graph;
    let l = dssp_labels(&dir.join("1ahsA.pdb.dssp"), &g).unwrap();
    let strands = l.iter().flatten().filter(|&&c| c == 1).count();
    let helix = l.iter().flatten().filter(|&&c| c == 0).count();
    assert!(strands > 40 && helix >= 4, "{strands} {helix}");
    // A file with a different residue count is refused.
    assert!(dssp_labels(&dir.join("1eteA.pdb.dssp"), &g).is_err());
    // HIV protease with its inhibitor: the binding-site residues (Asp25, Gly27, ...) touch it.
    let s = read_structure_file(&file("pdbrust/examples/pdb_files/1HSG.pdb"), &StructureOptions::default()).unwrap();
    {
        let l = ligand_contact_labels(&s.graph, 4.0, 6).expect("1HSG has a ligand");
        let contacts: Vec<_> = s
            .graph
            .units
            .iter()
            .zip(&l)
            .filter(|(_, l)| **l == Some(1))
            .map(|(u, _)| (u.name.clone(), u.label.as_ref().unwrap().number))
            .collect();
        assert!(contacts.contains(&("ASP".to_string(), 25)), "{contacts:?}");
        assert!(contacts.len() > 10 && contacts.len() < 60, "{}", contacts.len());
    }
    assert!(ligand_contact_labels(&ubiquitin(), 4.0, 6).is_none());
}

#[test]
fn glycoprotein_sugars_get_ring_frames_and_encode() {
    // 7DDO: ACE2 with N-glycans. Every sugar unit gets a frame from its ring oxygen, anomeric
    // carbon and ring carbon neighbour, and the encoder runs on the whole glycoprotein.
    let s = read_structure_file(&file("biopython/7DDO.pdb"), &StructureOptions::default()).unwrap();
    let g = &s.graph;
    let f = VabsInput::from_graph(g, &tiny().feature_options()).unwrap();
    let sugars: Vec<usize> =
        (0..g.num_units()).filter(|&u| g.units[u].kind == aa_graph::UnitKind::Monosaccharide).collect();
    assert!(sugars.len() >= 4, "{} sugars", sugars.len());
    for &u in &sugars {
        let q = f.frames[u].unwrap_or_else(|| panic!("no frame for {} {:?}", g.units[u].name, g.units[u].label));
        let det = q[0][0] * (q[1][1] * q[2][2] - q[1][2] * q[2][1]) - q[0][1] * (q[1][0] * q[2][2] - q[1][2] * q[2][0])
            + q[0][2] * (q[1][0] * q[2][1] - q[1][1] * q[2][0]);
        assert!((det - 1.0).abs() < 1e-3, "{det}");
        assert!(f.unit_type[u] >= 25, "sugar type {}", f.unit_type[u]);
    }
    let vm = VarMap::new();
    let model = Vabs::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &tiny()).unwrap();
    let out = model.forward(&f, None, false).unwrap();
    assert_eq!(out.units.dims(), &[g.num_units() + 1, 16]);
    let finite = out.units.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(finite.is_finite());
}

/// A tiny random ESM-AA written as a model directory and read back (as users load one).
fn tiny_lm() -> protein_aa::lm::LmFeatures {
    let dir = std::env::temp_dir().join(format!("allatom-lm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = aa_codeswitch::EsmConfig::tiny(true);
    let vm = VarMap::new();
    aa_codeswitch::Esm::load(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &cfg).unwrap();
    vm.save(dir.join(aa_codeswitch::WEIGHTS_FILE)).unwrap();
    std::fs::write(dir.join(aa_codeswitch::CONFIG_FILE), serde_json::to_string(&cfg).unwrap()).unwrap();
    std::fs::write(dir.join(aa_codeswitch::TOKENIZER_FILE), aa_codeswitch::Alphabet::esm_aa().tokenizer_json())
        .unwrap();
    let pkg = aa_codeswitch::EsmPackage::from_dir(&dir, &Device::Cpu).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    protein_aa::lm::LmFeatures::new(pkg)
}

#[test]
fn language_model_features_feed_vabs() {
    let g = Arc::new(ubiquitin());
    let windows = residue_windows(g.clone(), 38);
    let lm = tiny_lm();
    let refs: Vec<_> = windows.iter().collect();
    // Rows: each window's residues, then one zero row for its virtual node; masked rows zero,
    // the others the ESM hidden state of the residue's token (BOS first: residue k at k + 1).
    let mut masked = vec![vec![false; 38], vec![false; 38]];
    masked[1][5] = true;
    let rows = lm.rows(&refs, Some(&masked), &[1, 1]).unwrap();
    assert_eq!(rows.dims(), &[78, 32]);
    let norm = |r: usize| rows.get(r).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(norm(38), 0.0);
    assert_eq!(norm(39 + 5), 0.0);
    assert_eq!(norm(77), 0.0);
    assert!(norm(0) > 0.0 && norm(39 + 4) > 0.0);
    let alone = lm.rows(&refs[..1], None, &[0]).unwrap();
    let seq = aa_codeswitch::CodeSwitchSequence::from_units(
        &g,
        &windows[0].units,
        &lm.package.alphabet,
        &aa_codeswitch::Unzip::None,
    )
    .unwrap();
    let batch = aa_codeswitch::CodeSwitchBatch::collate(&[&seq], &lm.package.alphabet, &Device::Cpu).unwrap();
    let h = lm.package.model.forward(&batch, &aa_codeswitch::EsmRequest::default()).unwrap().hidden;
    let direct = h.get(0).unwrap().narrow(0, 1, 38).unwrap();
    let d = (&alone - direct).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-5, "{d}");
    // A cached window masked differently (and with a mask shorter than the window): only the
    // masked row is zero, the rest equal the unmasked rows.
    let mut short = vec![false; 10];
    short[3] = true;
    let again = lm.rows(&refs[..1], Some(&[short]), &[0]).unwrap();
    assert_eq!(again.dims(), &[38, 32]);
    let row_norm = |t: &candle_core::Tensor, r: usize| {
        t.get(r).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
    };
    assert_eq!(row_norm(&again, 3), 0.0);
    let keep = |t: &candle_core::Tensor| t.narrow(0, 4, 34).unwrap();
    let d = (keep(&again) - keep(&alone)).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(d, 0.0);
    // SMPC and a residue task with the features: gradients reach every parameter, including
    // the feature encoder (`esm_feat_encoder`), and training lowers the loss.
    let cfg = VabsConfig { lm_dim: Some(lm.dim()), ..tiny() };
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let mut obj = VabsSmpc::new(Vabs::new(vb.clone(), &cfg).unwrap(), vb, SpanMasking::default()).unwrap();
    obj.lm = Some(lm);
    let (loss, _) = obj.loss(obj.prepare(&refs, &mut Rng::new(2)).unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    assert!(data.keys().any(|k| k.starts_with("esm_feat_encoder.")));
    for (name, v) in data.iter() {
        let n = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(n.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "zero gradient for {name}");
    }
    drop(data);
    // A unit task with the features: crates/allatom/tests/families.rs.
}
