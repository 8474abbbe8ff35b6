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
