//! The bilevel layer: the unit track touches only the anchor atoms (non-anchor rows do not
//! depend on unit edges), anchors do, train and inference paths agree, and gradients reach every
//! parameter of both tracks.

use aa_sparse_attn::{BilevelConfig, BilevelGraph, BilevelLayer, Edges};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn edges(pairs: &[(u32, u32)], nodes: usize) -> Edges {
    let dev = Device::Cpu;
    Edges {
        src: Tensor::from_vec(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), pairs.len(), &dev).unwrap(),
        dst: Tensor::from_vec(pairs.iter().map(|p| p.1).collect::<Vec<_>>(), pairs.len(), &dev).unwrap(),
        nodes,
    }
}

/// Three "residues" of four atoms in a chain (atom 4r+1 is residue r's anchor), atoms linked
/// to their chain neighbours and themselves, units to theirs.
fn graph() -> (Edges, Vec<u32>, Edges) {
    let mut a = Vec::new();
    for i in 0..12u32 {
        a.push((i, i));
        if i > 0 {
            a.push((i - 1, i));
            a.push((i, i - 1));
        }
    }
    let u = vec![(0, 0), (1, 1), (2, 2), (0, 1), (1, 0), (1, 2), (2, 1)];
    (edges(&a, 12), vec![1, 5, 9], edges(&u, 3))
}

#[test]
fn unit_track_reaches_only_anchors_and_gradients_reach_everything() {
    let dev = Device::Cpu;
    let cfg = BilevelConfig { dim: 16, heads: 4, atom_edge_dim: 3, unit_edge_dim: 5, ffn_multiplier: 2 };
    let varmap = VarMap::new();
    let layer = BilevelLayer::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg).unwrap();
    let (ae, anchors, ue) = graph();
    let anchors_t = Tensor::new(anchors.as_slice(), &dev).unwrap();
    let atoms = Tensor::randn(0f32, 1.0, (12, 16), &dev).unwrap();
    let af = Tensor::randn(0f32, 1.0, (ae.src.dim(0).unwrap(), 3), &dev).unwrap();
    let uf1 = Tensor::randn(0f32, 1.0, (7, 5), &dev).unwrap();
    let uf2 = Tensor::randn(0f32, 1.0, (7, 5), &dev).unwrap();
    let run = |uf: &Tensor, train: bool| {
        let g = BilevelGraph {
            atom_edges: &ae,
            atom_edge_features: &af,
            anchors: &anchors_t,
            unit_edges: &ue,
            unit_edge_features: uf,
        };
        layer.forward(&atoms, &g, train).unwrap().to_vec2::<f32>().unwrap()
    };
    let (y1, y2, y1t) = (run(&uf1, false), run(&uf2, false), run(&uf1, true));
    for r in 0..12 {
        let d: f32 = y1[r].iter().zip(&y2[r]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        if anchors.contains(&(r as u32)) {
            assert!(d > 1e-4, "anchor {r} ignores the unit track");
        } else {
            assert_eq!(d, 0.0, "atom {r} depends on unit edges");
        }
        let t: f32 = y1[r].iter().zip(&y1t[r]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(t < 1e-5, "row {r}: train vs inference {t}");
    }
    let g = BilevelGraph {
        atom_edges: &ae,
        atom_edge_features: &af,
        anchors: &anchors_t,
        unit_edges: &ue,
        unit_edge_features: &uf1,
    };
    let loss = layer.forward(&atoms, &g, true).unwrap().sin().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    // 2 attentions (q, k, v, o + bias, edge bias + bias), 4 norms, 2 transitions.
    assert_eq!(vars.len(), 2 * 7 + 4 * 2 + 2 * 4);
    for (name, v) in vars.iter() {
        let gn = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(gn.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "{name}");
    }
}
