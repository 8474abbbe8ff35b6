//! The official-compatible Vabs-Net against the official code itself
//! (tests/reference/vabs_official_reference.py runs Heisenburger2020/Vabs-Net @ 11db7ad on CPU
//! with exact shims for unicore and torch_scatter): 1UBQ chain A through the official
//! `PocketDataset` (identity rigid motion), a 2-layer model with every weight randomised, every
//! stage captured by hooks. Model level, from the official tensor inputs: every stage ≤ 1e-4.
//! The featurisation level (from the PDB file) is tested in protein-aa (tests/vabs_official.rs).

use std::collections::HashMap;

use aa_sparse_attn::features::direction_features_f64;
use aa_sparse_attn::official::{OfficialConfig, OfficialInputs, OfficialVabs, DIRECTION_WIDTH};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vabs_official");
    candle_core::safetensors::load(dir.join(name), &Device::Cpu).unwrap()
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

fn pairs(t: &Tensor) -> Vec<[u32; 2]> {
    ints(t).chunks(2).map(|c| [c[0], c[1]]).collect()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// The 180-wide direction rows of every edge, from the official encoded vectors (columns 27, 48,
/// 69 of each half are the raw x, y, z the official pipeline encodes), after checking the
/// encoding against the official rows of the sampled edges (≤ 1e-6).
pub fn direction_rows(f: &HashMap<String, Tensor>, name: &str) -> Vec<f64> {
    let vectors = f64s(&f[&format!("{name}_vectors")]);
    let mut out = Vec::with_capacity(vectors.len() / 6 * DIRECTION_WIDTH);
    for v in vectors.chunks(6) {
        direction_features_f64([v[0], v[1], v[2]], &mut out);
        direction_features_f64([v[3], v[4], v[5]], &mut out);
    }
    let rows = ints(&f[&format!("{name}_sample_rows")]);
    let sample = f64s(&f[&format!("{name}_sample")]);
    let mut worst = 0f64;
    for (k, &e) in rows.iter().enumerate() {
        for c in 0..DIRECTION_WIDTH {
            worst = worst.max((out[e as usize * DIRECTION_WIDTH + c] - sample[k * DIRECTION_WIDTH + c]).abs());
        }
    }
    assert!(worst <= 1e-6, "{name}: direction encoding differs from the official rows by {worst:e}");
    out
}

/// The official tensor inputs of the fixture.
pub fn official_inputs() -> OfficialInputs {
    let f = fixture("features.safetensors");
    let atom_pos = f64s(&f["atom_pos"]).chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    OfficialInputs {
        atom_pos,
        atom_type: ints(&f["atom_type"]),
        residue_type: ints(&f["residue_type"]),
        residue_idx: ints(&f["residue_idx_all"]),
        res_mask: ints(&f["res_mask"]).into_iter().map(|m| m != 0).collect(),
        edge_index: pairs(&f["edge_index"]),
        aa_edge_index: pairs(&f["aa_edge_index"]),
        edge_vec: direction_rows(&f, "edge_vec"),
        edge_aa_vec: direction_rows(&f, "edge_aa_vec"),
        esm_feat: Some(f["esm_feat"].flatten_all().unwrap().to_vec1::<f32>().unwrap()),
    }
}

/// The fixture's small configuration: sizes from its weights, 4 heads (its args).
pub fn fixture_config(weights: &HashMap<String, Tensor>) -> OfficialConfig {
    let cfg = OfficialConfig::from_state_dict(weights, 4).unwrap();
    assert_eq!((cfg.layers, cfg.dim, cfg.edge_dim, cfg.ffn_dim, cfg.kernels), (2, 32, 16, 64, 128));
    assert_eq!((cfg.lm_dim, cfg.pocket_head), (Some(24), true));
    cfg
}

/// The weights, read from the unicore checkpoint (`{"args": Namespace, "model": state_dict, …}`).
pub fn official_weights() -> HashMap<String, Tensor> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vabs_official");
    candle_core::pickle::read_all_with_key(dir.join("checkpoint.pt"), Some("model")).unwrap().into_iter().collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn every_stage_equals_the_official_code() {
    let weights = official_weights();
    let cfg = fixture_config(&weights);
    let model = OfficialVabs::new(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), &cfg).unwrap();
    let out = model.forward(&official_inputs(), false).unwrap();
    let s = fixture("stages.safetensors");
    let mut checks: Vec<(String, &Tensor)> = vec![
        ("embed.nodes".into(), &out.embed_nodes),
        ("embed.rr_edges".into(), &out.embed_rr_edges),
        ("embed.aa_edges".into(), &out.aa_edges),
        ("encoder.nodes".into(), &out.nodes),
        ("encoder.rr_edges".into(), &out.rr_edges),
        ("final".into(), &out.final_nodes),
        ("pocket_logits".into(), out.pocket_logits.as_ref().unwrap()),
    ];
    for (i, l) in out.layers.iter().enumerate() {
        checks.push((format!("layer.{i}.atom"), &l.atoms));
        checks.push((format!("layer.{i}.residue"), &l.units));
        checks.push((format!("layer.{i}.out"), &l.output));
    }
    let mut report = Vec::new();
    for (name, ours) in &checks {
        let d = max_diff(ours, &s[name]);
        report.push(format!("{name}: {d:.1e}"));
        assert!(d <= 1e-4, "{name} differs from the official code by {d:e} ({})", report.join(", "));
    }
    eprintln!("official Vabs-Net stage diffs: {}", report.join(", "));
}

#[test]
fn bad_official_inputs_are_named() {
    let weights = official_weights();
    let cfg = fixture_config(&weights);
    let model = OfficialVabs::new(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), &cfg).unwrap();
    let good = official_inputs();
    let mut x = good.clone();
    x.edge_index[5] = [1000, 0];
    let e = model.forward(&x, false).unwrap_err().to_string();
    assert!(e.contains("edge_index edge 5"), "{e}");
    let mut x = good.clone();
    x.atom_type[3] = 40;
    assert!(model.forward(&x, false).unwrap_err().to_string().contains("atom_type row 3"));
    let mut x = good.clone();
    x.edge_aa_vec.pop();
    assert!(model.forward(&x, false).unwrap_err().to_string().contains("aa_edge_index"));
    let mut x = good;
    x.esm_feat = None;
    assert!(model.forward(&x, false).unwrap_err().to_string().contains("esm_feat"));
}
