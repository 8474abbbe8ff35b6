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

#[test]
fn vabs_direction_features_and_vec_encoder_equal_the_pytorch_reference() {
    // tests/reference/vabs_features_reference.py: 1UBQ CA→CA vectors (i → i+1..i+3), the
    // official backbone frames, nerf direction encodings and VecEdgeFeature on identical weights.
    use aa_sparse_attn::features::{direction_features, local_frame, normalize};
    use aa_sparse_attn::VecEdgeEncoder;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vabs_features.safetensors");
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let bb = t["input.backbone"].to_vec3::<f32>().unwrap();
    let p = |r: &Vec<f32>| [r[0], r[1], r[2]];
    let frames: Vec<[[f32; 3]; 3]> = bb.iter().map(|r| local_frame(p(&r[0]), p(&r[1]), p(&r[2]))).collect();
    let want = t["expected.frames"].to_vec3::<f32>().unwrap();
    for (f, w) in frames.iter().zip(&want) {
        for i in 0..3 {
            for k in 0..3 {
                assert!((f[i][k] - w[i][k]).abs() < 1e-5, "frame {f:?} vs {w:?}");
            }
        }
    }
    let src = t["input.src"].to_vec1::<i64>().unwrap();
    let dst = t["input.dst"].to_vec1::<i64>().unwrap();
    let (mut abs, mut local) = (Vec::new(), Vec::new());
    for (&s, &d) in src.iter().zip(&dst) {
        let (a, b) = (p(&bb[s as usize][1]), p(&bb[d as usize][1]));
        let v = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
        direction_features(v, &mut abs);
        let q = &frames[d as usize];
        let r = [0, 1, 2].map(|i| q[i][0] * v[0] + q[i][1] * v[1] + q[i][2] * v[2]);
        direction_features(normalize(r), &mut local);
    }
    let worst = |got: &[f32], name: &str, cols: std::ops::Range<usize>| {
        let w = t[name].to_vec2::<f32>().unwrap();
        let mut m = 0f32;
        for (row, wr) in got.chunks(90).zip(&w) {
            for k in cols.clone() {
                m = m.max((row[k] - wr[k]).abs());
            }
        }
        m
    };
    // Angles and their octaves: tight. Coordinate octaves go up to sin(512·x), which turns f32
    // rounding of x (Å for absolute vectors) into larger differences: a looser bound there.
    assert!(worst(&abs, "expected.absolute", 0..27) < 1e-5);
    assert!(worst(&local, "expected.local", 0..27) < 1e-5);
    assert!(worst(&abs, "expected.absolute", 27..90) < 2e-3, "{}", worst(&abs, "expected.absolute", 27..90));
    assert!(worst(&local, "expected.local", 27..90) < 2e-3, "{}", worst(&local, "expected.local", 27..90));
    let weights: HashMap<String, Tensor> =
        t.iter().filter(|(k, _)| k.starts_with("embed.")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let enc = VecEdgeEncoder::new(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), 12 + 180, 12).unwrap();
    let e = src.len();
    let dirs = Tensor::cat(
        &[
            Tensor::from_vec(abs, (e, 90), &Device::Cpu).unwrap(),
            Tensor::from_vec(local, (e, 90), &Device::Cpu).unwrap(),
        ],
        1,
    )
    .unwrap();
    for train in [false, true] {
        let y = enc.forward(&t["input.base"], &dirs, train).unwrap();
        let d = (y - &t["expected.output"]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-4, "vec encoder max abs diff {d}");
    }
}
