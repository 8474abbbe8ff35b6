//! Sparse edge attention equals dense masked attention (the same projections, scores of absent
//! edges set to −∞, softmax over sources) on small random graphs, and gradients reach every
//! parameter and the inputs.

use aa_sparse_attn::{EdgeAttention, EdgeAttentionConfig, Edges};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};

/// A deterministic pseudo-random stream.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random directed edges with a self loop on every node (so every destination has an incoming
/// edge and dense rows are never all −∞), no duplicates.
fn random_graph(n: usize, p: f64, rng: &mut Lcg) -> Vec<(u32, u32)> {
    let mut e = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i == j || rng.next() < p {
                e.push((j as u32, i as u32)); // src j → dst i
            }
        }
    }
    e
}

fn dense_reference(
    layer_vars: &VarMap,
    cfg: &EdgeAttentionConfig,
    x: &Tensor,
    edges: &[(u32, u32)],
    feats: &Tensor,
) -> Tensor {
    let data = layer_vars.data().lock().unwrap();
    let lin = |name: &str, t: &Tensor| {
        let w = data[&format!("{name}.weight")].as_tensor().clone();
        let y = t.matmul(&w.t().unwrap()).unwrap();
        match data.get(&format!("{name}.bias")) {
            Some(b) => y.broadcast_add(b.as_tensor()).unwrap(),
            None => y,
        }
    };
    let n = x.dim(0).unwrap();
    let (h, dh) = (cfg.heads, cfg.head_dim);
    let heads = |t: Tensor| t.reshape((n, h, dh)).unwrap().transpose(0, 1).unwrap().contiguous().unwrap(); // [H, N, dh]
    let (q, k, v) = (heads(lin("linear_q", x)), heads(lin("linear_k", x)), heads(lin("linear_v", x)));
    let mut scores = (q.matmul(&k.t().unwrap()).unwrap() * (dh as f64).powf(-0.5)).unwrap().to_vec3::<f32>().unwrap(); // [H, dst, src]
    let bias = lin("linear_bias", feats).to_vec2::<f32>().unwrap(); // [E, H]
    let mut present = vec![false; n * n];
    for (k, &(s, d)) in edges.iter().enumerate() {
        present[d as usize * n + s as usize] = true;
        for hh in 0..h {
            scores[hh][d as usize][s as usize] += bias[k][hh];
        }
    }
    for hh in 0..h {
        for i in 0..n {
            for j in 0..n {
                if !present[i * n + j] {
                    scores[hh][i][j] = f32::NEG_INFINITY;
                }
            }
        }
    }
    let flat: Vec<f32> = scores.into_iter().flatten().flatten().collect();
    let s = Tensor::from_vec(flat, (h, n, n), &Device::Cpu).unwrap();
    let a = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
    let o = a.matmul(&v).unwrap().transpose(0, 1).unwrap().reshape((n, h * dh)).unwrap();
    let gate = candle_nn::ops::sigmoid(&lin("linear_g", x)).unwrap();
    lin("linear_o", &(gate * o).unwrap())
}

#[test]
fn sparse_equals_dense_masked_attention() {
    let dev = Device::Cpu;
    let mut rng = Lcg(7);
    for (n, p, heads) in [(5usize, 0.3, 1usize), (9, 0.5, 3), (16, 0.2, 4)] {
        let cfg = EdgeAttentionConfig { dim: 12, heads, head_dim: 5, edge_dim: 5, gating: true };
        let varmap = VarMap::new();
        let mut layer = EdgeAttention::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg).unwrap();
        let edges = random_graph(n, p, &mut rng);
        let e = edges.len();
        let x = Tensor::randn(0f32, 1.0, (n, 12), &dev).unwrap();
        let feats = Tensor::randn(0f32, 1.0, (e, 5), &dev).unwrap();
        let g = Edges {
            src: Tensor::from_vec(edges.iter().map(|e| e.0).collect::<Vec<_>>(), e, &dev).unwrap(),
            dst: Tensor::from_vec(edges.iter().map(|e| e.1).collect::<Vec<_>>(), e, &dev).unwrap(),
            nodes: n,
        };
        let sparse = layer.forward(&x, &g, Some(&feats)).unwrap();
        let dense = dense_reference(&varmap, &cfg, &x, &edges, &feats);
        let d =
            (sparse - dense).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "n={n}: max abs diff {d}");
        // Processing the edges in chunks (as on large graphs) changes nothing.
        layer.set_chunk_edges(3);
        let chunked = layer.forward(&x, &g, Some(&feats)).unwrap();
        let d = (chunked - dense_reference(&varmap, &cfg, &x, &edges, &feats))
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "n={n}, chunks of 3 edges: max abs diff {d}");
        // Weights of each destination's incoming edges sum to 1 per head.
        let w = layer.weights(&x, &g, Some(&feats)).unwrap();
        let sums =
            aa_graph::kernels::scatter_sum(&w, &g.dst, n).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
    }
}

#[test]
fn gradients_reach_every_parameter_and_input() {
    let dev = Device::Cpu;
    let cfg = EdgeAttentionConfig { dim: 8, heads: 2, head_dim: 4, edge_dim: 3, gating: true };
    let varmap = VarMap::new();
    let mut layer = EdgeAttention::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg).unwrap();
    layer.set_chunk_edges(2); // gradients also flow through the chunked path
    let edges = random_graph(6, 0.4, &mut Lcg(3));
    let e = edges.len();
    let g = Edges {
        src: Tensor::from_vec(edges.iter().map(|e| e.0).collect::<Vec<_>>(), e, &dev).unwrap(),
        dst: Tensor::from_vec(edges.iter().map(|e| e.1).collect::<Vec<_>>(), e, &dev).unwrap(),
        nodes: 6,
    };
    let x = Var::randn(0f32, 1.0, (6, 8), &dev).unwrap();
    let feats = Var::randn(0f32, 1.0, (e, 3), &dev).unwrap();
    let y = layer.forward(x.as_tensor(), &g, Some(feats.as_tensor())).unwrap();
    let loss = y.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    assert_eq!(vars.len(), 9); // q, k, v (no bias), o, g, edge bias (weight + bias)
    for (name, v) in vars
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain([("x".to_string(), x), ("edge features".to_string(), feats)])
    {
        let gnorm = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"))
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(gnorm.to_scalar::<f32>().unwrap() > 0.0, "{name}");
    }
}
