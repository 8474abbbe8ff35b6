//! GIGP pools by group-invariant orbits: on a real lectin-bound glycan structure (glycontact's
//! UniLectin files), rotating and translating its coordinates and permuting its units leaves
//! the pooled vector of GlycanAA's output unchanged (1e-5 of its scale). (Vabs-Net is not used
//! here: like the official code it reads absolute-frame directions and unit-order offsets, so
//! rotations and permutations change its input; a translation moves its output by ~5e-5 of its
//! scale through f32 rounding of the shifted coordinates in its high-frequency NeRF features.)

use std::sync::Arc;

use aa_encoder::{Gigp, GigpConfig, Orbit, Readout, Window};
use allatom::runs::trainable_encoder;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use protein_aa::{read_structure_file, StructureOptions};
use serde_json::json;

/// The first glycontact structure whose glycan has at least five monosaccharides.
fn glycan_window() -> Window {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/glycontact/unilectin");
    assert!(dir.exists(), "run `cargo xtask fetch-data` first");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files {
        let s = read_structure_file(&f, &StructureOptions::default()).unwrap();
        if let Some(t) = s.glycans.iter().find(|t| t.iupac_order.len() >= 5) {
            return Window { graph: Arc::new(s.graph.clone()), units: t.iupac_order.clone() };
        }
    }
    panic!("no glycan with five monosaccharides");
}

/// `w` with its coordinates rotated about an oblique axis and translated, and its units in
/// another order.
fn moved(w: &Window) -> Window {
    let mut g = (*w.graph).clone();
    let (a, b, c) = (0.7f64, -1.1f64, 0.4f64);
    let (ca, sa, cb, sb, cc, sc) = (a.cos(), a.sin(), b.cos(), b.sin(), c.cos(), c.sin());
    // R = Rz(c) · Ry(b) · Rx(a)
    let r = [
        [cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa],
        [sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa],
        [-sb, cb * sa, cb * ca],
    ];
    for p in g.positions.as_mut().unwrap() {
        let v = [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])];
        for (i, row) in r.iter().enumerate() {
            let t = [12.5, -40.25, 7.0][i];
            p[i] = (row[0] * v[0] + row[1] * v[1] + row[2] * v[2] + t) as f32;
        }
    }
    let mut units = w.units.clone();
    units.reverse();
    units.rotate_left(2);
    assert_ne!(units, w.units);
    Window { graph: Arc::new(g), units }
}

#[test]
fn pooled_vector_is_unchanged_by_rigid_motion_and_permutation() {
    let w = glycan_window();
    let tiny_glycanaa = json!({ "family": "glycanaa", "featurisation": "molecule", "model": { "num_unit": 0,
        "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16], "batch_norm": true, "activation": "gelu",
        "concat_hidden": true, "readout_type": "mono", "variant": "hierarchical" } });
    {
        let config = tiny_glycanaa;
        let w2 = moved(&w);
        let enc = trainable_encoder(&config, 3).unwrap();
        let (a, b) = (enc.encoder.encode(&[&w], false).unwrap(), enc.encoder.encode(&[&w2], false).unwrap());
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let dim = enc.encoder.unit_dim();
        let gigp =
            Gigp::new(vb, dim, GigpConfig { bins: 3, orbit: Orbit::CentroidDistance, delta: None, hidden: 8 }).unwrap();
        let vars: Vec<_> = map.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in &vars {
            if k.ends_with("w2") || k.ends_with("b2") || k == "orbit_weights" {
                v.set(&Tensor::randn(0.5f32, 0.5, v.shape(), &Device::Cpu).unwrap()).unwrap();
            }
        }
        let values = aa_encoder::readout::window_orbit_values(&[&w], Orbit::CentroidDistance).unwrap();
        gigp.set_centres(&Gigp::fit_centres(&values, 3), &vars).unwrap();
        let (pa, pb) = (gigp.forward(&a, false).unwrap(), gigp.forward(&b, false).unwrap());
        let scale = pa.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let d = (&pa - &pb).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(
            scale > 0.0 && d <= 1e-5 * scale.max(1.0),
            "{}: pooled vectors differ by {d} (scale {scale})",
            config["family"]
        );
        // The orbit values moved with the units, not with the frame.
        let moved_values = aa_encoder::readout::window_orbit_values(&[&w2], Orbit::CentroidDistance).unwrap();
        let (mut x, mut y) = (values.clone(), moved_values);
        x.sort_by(f32::total_cmp);
        y.sort_by(f32::total_cmp);
        assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-4), "{x:?} vs {y:?}");
    }
}
