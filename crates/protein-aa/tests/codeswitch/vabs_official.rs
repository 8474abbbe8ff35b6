//! The official Vabs-Net featurisation from a structure file against the official data pipeline
//! itself (tests/reference/vabs_official_reference.py: 1UBQ chain A through the official
//! `PocketDataset`, identity rigid motion; fixtures in
//! crates/aa-sparse-attn/tests/fixtures/vabs_official): identical node rows and edge lists (in
//! order), direction features ≤ 1e-6 on every edge; and the file through the official weights to
//! the final nodes and binding-site logits ≤ 1e-4.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aa_sparse_attn::features::direction_features_f64;
use aa_sparse_attn::official::{featurize, FeaturizeOptions, LmRows, OfficialConfig, OfficialVabs, DIRECTION_WIDTH};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use protein_aa::vabs_official::read_atom37;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../aa-sparse-attn/tests/fixtures/vabs_official")
}

fn ints(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Worst difference between our direction rows and the official ones: on every edge against the
/// official encoded vectors (columns 27, 48, 69 of each half hold the raw x, y, z, from which
/// every other column follows), and on the sampled edges against the official 180-wide rows.
fn direction_diff(ours: &[f64], f: &HashMap<String, Tensor>, name: &str) -> f64 {
    let vectors = f64s(&f[&format!("{name}_vectors")]);
    assert_eq!(ours.len(), vectors.len() / 6 * DIRECTION_WIDTH, "{name}: edge count");
    let mut worst = 0f64;
    let mut row = Vec::with_capacity(DIRECTION_WIDTH);
    for (e, v) in vectors.chunks(6).enumerate() {
        row.clear();
        direction_features_f64([v[0], v[1], v[2]], &mut row);
        direction_features_f64([v[3], v[4], v[5]], &mut row);
        let o = &ours[e * DIRECTION_WIDTH..(e + 1) * DIRECTION_WIDTH];
        for c in [27, 48, 69, 117, 138, 159] {
            worst = worst.max((o[c] - row[c]).abs());
        }
        worst = worst.max(o.iter().zip(&row).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
    }
    let rows = ints(&f[&format!("{name}_sample_rows")]);
    let sample = f64s(&f[&format!("{name}_sample")]);
    for (k, &e) in rows.iter().enumerate() {
        for c in 0..DIRECTION_WIDTH {
            worst = worst.max((ours[e as usize * DIRECTION_WIDTH + c] - sample[k * DIRECTION_WIDTH + c]).abs());
        }
    }
    worst
}

#[test]
fn featurisation_from_the_pdb_file_equals_the_official_pipeline() {
    let f = candle_core::safetensors::load(fixtures().join("features.safetensors"), &Device::Cpu).unwrap();
    let chain = read_atom37(&super::file("pdbrust/examples/pdb_files/1UBQ.pdb"), Some("A")).unwrap();
    assert_eq!(chain.residues.len(), 76);
    let x = featurize(&chain, &FeaturizeOptions::default()).unwrap();
    assert_eq!(x.atom_type, ints(&f["atom_type"]));
    assert_eq!(x.residue_type, ints(&f["residue_type"]));
    assert_eq!(x.residue_idx, ints(&f["residue_idx_all"]));
    assert_eq!(x.res_mask, ints(&f["res_mask"]).into_iter().map(|m| m != 0).collect::<Vec<_>>());
    let pos = f64s(&f["atom_pos"]);
    let dpos = x.atom_pos.iter().flatten().zip(&pos).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(dpos < 1e-9, "positions differ by {dpos:e}");
    let flat = |e: &[[u32; 2]]| e.iter().flatten().copied().collect::<Vec<_>>();
    assert_eq!(flat(&x.edge_index), ints(&f["edge_index"]), "residue edges (dst, src), in order");
    assert_eq!(flat(&x.aa_edge_index), ints(&f["aa_edge_index"]), "atom edges (dst, src), in order");
    let dr = direction_diff(&x.edge_vec, &f, "edge_vec");
    let da = direction_diff(&x.edge_aa_vec, &f, "edge_aa_vec");
    assert!(dr <= 1e-6 && da <= 1e-6, "direction features differ: residue edges {dr:e}, atom edges {da:e}");
    eprintln!("official featurisation: positions {dpos:.1e}, residue directions {dr:.1e}, atom directions {da:.1e}");
    // End to end: the file, the fixture's language-model rows, the official weights → the
    // official encoder's final nodes and binding-site logits.
    let lm = f["esm_feat"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut chain = chain;
    chain.lm = Some(LmRows { dim: 24, rows: lm[..76 * 24].to_vec(), cls: lm[76 * 24..].to_vec() });
    let x = featurize(&chain, &FeaturizeOptions::default()).unwrap();
    let weights: HashMap<String, Tensor> =
        candle_core::pickle::read_all_with_key(fixtures().join("checkpoint.pt"), Some("model"))
            .unwrap()
            .into_iter()
            .collect();
    let cfg = OfficialConfig::from_state_dict(&weights, 4).unwrap();
    let model = OfficialVabs::new(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), &cfg).unwrap();
    let out = model.forward(&x, false).unwrap();
    let s = candle_core::safetensors::load(fixtures().join("stages.safetensors"), &Device::Cpu).unwrap();
    for (name, ours) in [("final", &out.final_nodes), ("pocket_logits", out.pocket_logits.as_ref().unwrap())] {
        let d = (ours - &s[name])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 1e-4, "{name}: {d:e} from the official code");
    }
}

/// The official pipeline on small real chains with the preprocessing's edge cases (fixtures by
/// `vabs_official_reference.py --features-only`; the `.json` beside each names them): a
/// residue missing its N (its frame uses the CA centroid in its place) and an insertion-code
/// residue merging into the previous number with a name change (1BD2 D); HETATM residues inside
/// the chain dropped, hydrogens skipped (2n0n A); alternate locations, the last record winning
/// (disordered.pdb A); a residue without CA dropped mid-chain and a nonstandard ATOM residue typed
/// unknown (namd_cgenff A). Node rows and edge lists identical, directions ≤ 1e-6.
#[test]
fn official_featurisation_edge_cases_equal_the_official_pipeline() {
    for (stem, file, chain) in [
        ("1BD2_short", "mdanalysistests/mmcif/1BD2_short.pdb.gz", "D"),
        ("2n0n_M1", "biopython/2n0n_M1.pdb", "A"),
        ("disordered", "biopython/disordered.pdb", "A"),
        ("namd_cgenff", "mdanalysistests/namd_cgenff.pdb", "A"),
    ] {
        let f = candle_core::safetensors::load(fixtures().join(format!("{stem}_features.safetensors")), &Device::Cpu)
            .unwrap();
        let x =
            featurize(&read_atom37(&super::file(file), Some(chain)).unwrap(), &FeaturizeOptions::default()).unwrap();
        let flat = |e: &[[u32; 2]]| e.iter().flatten().copied().collect::<Vec<_>>();
        assert_eq!(x.atom_type, ints(&f["atom_type"]), "{stem}: atom types");
        assert_eq!(x.residue_type, ints(&f["residue_type"]), "{stem}: residue types");
        assert_eq!(x.residue_idx, ints(&f["residue_idx_all"]), "{stem}: residue rows");
        assert_eq!(x.res_mask, ints(&f["res_mask"]).into_iter().map(|m| m != 0).collect::<Vec<_>>(), "{stem}");
        assert_eq!(flat(&x.edge_index), ints(&f["edge_index"]), "{stem}: residue edges");
        assert_eq!(flat(&x.aa_edge_index), ints(&f["aa_edge_index"]), "{stem}: atom edges");
        let pos = f64s(&f["atom_pos"]);
        let dpos = x.atom_pos.iter().flatten().zip(&pos).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(dpos < 1e-9, "{stem}: positions differ by {dpos:e}");
        let dr = direction_diff(&x.edge_vec, &f, "edge_vec");
        let da = direction_diff(&x.edge_aa_vec, &f, "edge_aa_vec");
        assert!(dr <= 1e-6 && da <= 1e-6, "{stem}: direction features differ: residue {dr:e}, atom {da:e}");
    }
}

#[test]
fn official_featurisation_refuses_what_the_official_code_cannot_take() {
    let mut chain = read_atom37(&super::file("pdbrust/examples/pdb_files/1UBQ.pdb"), None).unwrap();
    // A chain that is not there names the chains that are.
    let e = read_atom37(&super::file("pdbrust/examples/pdb_files/1UBQ.pdb"), Some("Z")).unwrap_err().to_string();
    assert!(e.contains("chain \"Z\"") && e.contains("chains: A"), "{e}");
    // Residues without CA are dropped (the official first step); fewer than 2 left is an error.
    for r in chain.residues.iter_mut().skip(1) {
        r.mask[1] = false;
    }
    let e = featurize(&chain, &FeaturizeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("at least 2 residues with a CA"), "{e}");
    chain.residues[1].mask[1] = true;
    let x = featurize(&chain, &FeaturizeOptions::default()).unwrap();
    assert_eq!(x.num_residue_rows(), 3);
    // Two residues: k = min(30, n − 1) = 1 — each residue's only kNN edge is its self loop.
    assert_eq!(&x.edge_index[..2], &[[0, 0], [1, 1]]);
    // Language-model rows of the wrong size are refused.
    chain.lm = Some(aa_sparse_attn::official::LmRows { dim: 4, rows: vec![0.0; 3], cls: vec![0.0; 4] });
    assert!(featurize(&chain, &FeaturizeOptions::default()).unwrap_err().to_string().contains("language-model rows"));
}
