//! EdgeAttention against the PyTorch reference (tests/reference/edge_attention_reference.py,
//! written from the official Vabs-Net `Attention` module) on identical weights, on the kNN graph
//! of 1UBQ's CA atoms: outputs and attention weights within 1e-5.

use std::collections::HashMap;

use aa_sparse_attn::{EdgeAttention, EdgeAttentionConfig, Edges};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

#[test]
fn equals_the_pytorch_reference() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/edge_attention.safetensors");
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let weights: HashMap<String, Tensor> =
        t.iter().filter(|(k, _)| k.starts_with("linear_")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let cfg = EdgeAttentionConfig { dim: 32, heads: 4, head_dim: 8, edge_dim: 6, gating: true };
    let layer = EdgeAttention::new(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), &cfg).unwrap();
    let x = &t["input.x"];
    let edges = Edges {
        src: t["input.src"].to_dtype(DType::U32).unwrap(),
        dst: t["input.dst"].to_dtype(DType::U32).unwrap(),
        nodes: x.dim(0).unwrap(),
    };
    let feats = &t["input.edge_features"];
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    };
    let alpha = layer.weights(x, &edges, Some(feats)).unwrap();
    assert!(diff(&alpha, &t["expected.alpha"]) < 1e-5);
    let y = layer.forward(x, &edges, Some(feats)).unwrap();
    let d = diff(&y, &t["expected.output"]);
    assert!(d < 1e-5, "max abs diff {d}");
}

#[test]
fn gaussian_edge_encoder_equals_the_pytorch_reference() {
    // Vabs-Net's GaussianKernel + NonLinear on the same 1UBQ edges (distances of CA pairs, the two
    // residue types as pair type ids).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/edge_attention.safetensors");
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let weights: HashMap<String, Tensor> =
        t.iter().filter_map(|(k, v)| k.strip_prefix("gaussian_encoder.").map(|k| (k.to_string(), v.clone()))).collect();
    let enc = aa_sparse_attn::GaussianEdgeEncoder::new(
        VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
        128,
        24,
        16,
        (0.0, 9.0, 1.0),
    )
    .unwrap();
    let y = enc.forward(&t["input.distance"], &t["input.pair_types"].to_dtype(DType::U32).unwrap()).unwrap();
    let d = (y - &t["expected.gaussian"]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    assert!(d.to_scalar::<f32>().unwrap() < 1e-5, "{d}");
}

#[test]
fn sequence_offsets_clamp() {
    let varmap = candle_nn::VarMap::new();
    let e = aa_sparse_attn::SequenceOffsetEmbedding::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        256,
        4,
    )
    .unwrap();
    assert_eq!((e.index(Some(-1000)), e.index(Some(0)), e.index(Some(256)), e.index(None)), (0, 256, 512, 513));
    assert_eq!(e.forward(&[Some(3), None]).unwrap().dims(), &[2, 4]);
}

#[test]
fn bilevel_layer_equals_the_pytorch_reference() {
    // tests/reference/bilevel_reference.py: the official TransformerEncoderLayer (post-LN) on
    // 1UBQ's 602 heavy atoms (atom kNN 10) with its 76 CA atoms as anchors (CA kNN 8).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bilevel.safetensors");
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let weights: HashMap<String, Tensor> =
        t.iter().filter_map(|(k, v)| k.strip_prefix("layer.").map(|k| (k.to_string(), v.clone()))).collect();
    let cfg =
        aa_sparse_attn::BilevelConfig { dim: 32, heads: 4, atom_edge_dim: 6, unit_edge_dim: 5, ffn_multiplier: 2 };
    let layer =
        aa_sparse_attn::BilevelLayer::new(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), &cfg).unwrap();
    let u32s = |k: &str| t[k].to_dtype(DType::U32).unwrap();
    let atoms = &t["input.atoms"];
    let anchors = u32s("input.anchors");
    let atom_edges = Edges { src: u32s("input.atom_src"), dst: u32s("input.atom_dst"), nodes: atoms.dim(0).unwrap() };
    let unit_edges = Edges { src: u32s("input.unit_src"), dst: u32s("input.unit_dst"), nodes: anchors.dim(0).unwrap() };
    let g = aa_sparse_attn::BilevelGraph {
        atom_edges: &atom_edges,
        atom_edge_features: &t["input.atom_features"],
        anchors: &anchors,
        unit_edges: &unit_edges,
        unit_edge_features: &t["input.unit_features"],
    };
    for train in [false, true] {
        let y = layer.forward(atoms, &g, train).unwrap();
        let d = (y - &t["expected.output"]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5, "train={train}: {d}");
    }
}
