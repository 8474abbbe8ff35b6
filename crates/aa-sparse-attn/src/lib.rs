#![warn(missing_docs)]
//! # aa-sparse-attn
//!
//! Edge-wise multi-head attention, the attention of Vabs-Net (Zhao et al., ICML 2024) on allatom
//! graphs: for every edge `j → i` and head `h`,
//! `s = q_i·k_j / √d + b_h(e_ij)` (a per-head bias from the edge's features), a softmax over the
//! incoming edges of each destination `i` (the workspace's one scatter-softmax kernel,
//! `aa_graph::kernels::scatter_softmax`), and `out_i = Σ_j α_ij · v_j` (`scatter_sum`), an
//! optional sigmoid gate, then the output projection — the semantics and parameter names of the
//! official `Attention` module (vabs/models/layers.py). Every tensor is `[nodes, ·]` or `[edges, ·]`: memory O(edges), never
//! O(nodes²). A node without incoming edges gets a zero message (its output is the output
//! projection's bias).

mod bilevel;
mod edges;
pub mod features;
pub mod official;
mod vabs;

pub use bilevel::{BilevelConfig, BilevelGraph, BilevelLayer, LayerAttention, TrackStates};
pub use edges::{GaussianEdgeEncoder, SequenceOffsetEmbedding};
pub use features::{FeatureError, FeatureOptions, VabsInput};
pub use vabs::{NodeEmbedHead, Vabs, VabsAttention, VabsConfig, VabsOutput, VecEdgeEncoder};

use aa_graph::kernels::{scatter_softmax, scatter_sum};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// Sizes of an [`EdgeAttention`] layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeAttentionConfig {
    /// Node feature width (input and output).
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of each head (Vabs-Net: `dim / heads`).
    pub head_dim: usize,
    /// Edge feature width (0: no edge bias, Vabs-Net's `sequence_only`).
    pub edge_dim: usize,
    /// Sigmoid gate on the heads' output from the node's own features.
    #[serde(default)]
    pub gating: bool,
}

/// Directed edges `src → dst` of a graph with `nodes` nodes, as u32 index tensors.
#[derive(Clone, Debug)]
pub struct Edges {
    /// Source node of each edge (keys and values), u32 `[E]`.
    pub src: Tensor,
    /// Destination node of each edge (query; softmax group), u32 `[E]`.
    pub dst: Tensor,
    /// Number of nodes.
    pub nodes: usize,
}

/// Edge-wise multi-head attention with Vabs-Net's parameters: `linear_q`/`linear_k`/`linear_v`
/// without bias, `linear_bias` (edge features → one bias per head), optional `linear_g` gate,
/// `linear_o` with bias.
#[derive(Clone, Debug)]
pub struct EdgeAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    g: Option<Linear>,
    edge_bias: Option<Linear>,
    cfg: EdgeAttentionConfig,
    chunk_edges: Option<usize>,
}

impl EdgeAttention {
    /// Builds the layer.
    pub fn new(vb: VarBuilder, cfg: &EdgeAttentionConfig) -> Result<EdgeAttention> {
        if cfg.heads == 0 || cfg.head_dim == 0 {
            candle_core::bail!("edge attention: heads and head_dim must be positive");
        }
        let (d, t) = (cfg.dim, cfg.heads * cfg.head_dim);
        Ok(EdgeAttention {
            q: candle_nn::linear_no_bias(d, t, vb.pp("linear_q"))?,
            k: candle_nn::linear_no_bias(d, t, vb.pp("linear_k"))?,
            v: candle_nn::linear_no_bias(d, t, vb.pp("linear_v"))?,
            o: candle_nn::linear(t, d, vb.pp("linear_o"))?,
            g: if cfg.gating { Some(candle_nn::linear(d, t, vb.pp("linear_g"))?) } else { None },
            edge_bias: if cfg.edge_dim > 0 {
                Some(candle_nn::linear(cfg.edge_dim, cfg.heads, vb.pp("linear_bias"))?)
            } else {
                None
            },
            cfg: cfg.clone(),
            chunk_edges: None,
        })
    }

    /// Overrides the number of edges processed per chunk (the default keeps a chunk's gathered
    /// rows near 8 M floats); results do not depend on it.
    pub fn set_chunk_edges(&mut self, edges: usize) {
        self.chunk_edges = Some(edges.max(1));
    }

    /// Edges per chunk so that a chunk's gathered `[chunk, heads · head_dim]` rows hold about
    /// 8 M floats: large graphs (50,000 atoms × 30 neighbours at width 768) never materialise
    /// `[E, width]` tensors. Chunks are plain tensor ops, so gradients flow as before.
    fn chunk(&self, e: usize) -> usize {
        let default = (8 << 20) / (self.cfg.heads * self.cfg.head_dim).max(1);
        self.chunk_edges.unwrap_or(default).min(e.max(1)).max(1)
    }

    /// The attention weights `[E, heads]` (each destination's incoming edges sum to 1 per head).
    pub fn weights(&self, x: &Tensor, edges: &Edges, edge_feat: Option<&Tensor>) -> Result<Tensor> {
        let (h, dh) = (self.cfg.heads, self.cfg.head_dim);
        let e = edges.src.dim(0)?;
        let q = (self.q.forward(x)? * (dh as f64).powf(-0.5))?;
        let k = self.k.forward(x)?;
        let step = self.chunk(e);
        let mut parts = Vec::with_capacity(e.div_ceil(step));
        for start in (0..e).step_by(step) {
            let len = step.min(e - start);
            let qd = q.index_select(&edges.dst.narrow(0, start, len)?, 0)?.reshape((len, h, dh))?;
            let ks = k.index_select(&edges.src.narrow(0, start, len)?, 0)?.reshape((len, h, dh))?;
            parts.push((qd * ks)?.sum(2)?);
        }
        let mut scores = match parts.len() {
            0 => Tensor::zeros((0, h), x.dtype(), x.device())?,
            1 => parts.pop().expect("one chunk"),
            _ => Tensor::cat(&parts, 0)?,
        };
        match (&self.edge_bias, edge_feat) {
            (Some(b), Some(f)) => scores = (scores + b.forward(f)?)?,
            (Some(_), None) => {
                candle_core::bail!("edge attention: the layer has an edge bias but no edge features were given")
            }
            (None, Some(_)) => candle_core::bail!("edge attention: edge features given to a layer with edge_dim 0"),
            (None, None) => {}
        }
        scatter_softmax(&scores, &edges.dst, edges.nodes)
    }

    /// Node outputs `[N, dim]` for node features `x` `[N, dim]` and optional edge features
    /// `[E, edge_dim]`.
    pub fn forward(&self, x: &Tensor, edges: &Edges, edge_feat: Option<&Tensor>) -> Result<Tensor> {
        let (h, dh) = (self.cfg.heads, self.cfg.head_dim);
        let e = edges.src.dim(0)?;
        let alpha = self.weights(x, edges, edge_feat)?; // [E, H]
        let v = self.v.forward(x)?;
        let step = self.chunk(e);
        let mut o: Option<Tensor> = None;
        for start in (0..e).step_by(step) {
            let len = step.min(e - start);
            let vs = v.index_select(&edges.src.narrow(0, start, len)?, 0)?.reshape((len, h, dh))?;
            let a = alpha.narrow(0, start, len)?.unsqueeze(2)?;
            let messages = vs.broadcast_mul(&a)?.reshape((len, h * dh))?;
            let part = scatter_sum(&messages, &edges.dst.narrow(0, start, len)?, edges.nodes)?;
            o = Some(match o {
                Some(acc) => (acc + part)?,
                None => part,
            });
        }
        let mut o = match o {
            Some(o) => o,
            None => Tensor::zeros((edges.nodes, h * dh), x.dtype(), x.device())?,
        };
        if let Some(g) = &self.g {
            o = (candle_nn::ops::sigmoid(&g.forward(x)?)? * o)?;
        }
        self.o.forward(&o)
    }
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
