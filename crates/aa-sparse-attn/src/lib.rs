#![warn(missing_docs)]
//! # aa-sparse-attn
//!
//! Edge-wise multi-head attention, the attention of Vabs-Net (Zhao et al., ICML 2024) on allatom
//! graphs: for every edge `j → i` and head `h`,
//! `s = q_i·k_j / √d + b_h(e_ij)` (a per-head bias from the edge's features), a softmax over the
//! incoming edges of each destination `i` (the workspace's one scatter-softmax kernel,
//! `aa_graph::kernels::scatter_softmax`), and `out_i = Σ_j α_ij · v_j` (`scatter_sum`), then an
//! output projection. Every tensor is `[nodes, ·]` or `[edges, ·]`: memory O(edges), never
//! O(nodes²). A node without incoming edges gets a zero message (its output is the output
//! projection's bias).

use aa_graph::kernels::{scatter_softmax, scatter_sum};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// Sizes of an [`EdgeAttention`] layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeAttentionConfig {
    /// Node feature width (input and output).
    pub dim: usize,
    /// Attention heads (`dim` must be divisible by it).
    pub heads: usize,
    /// Edge feature width (0: no edge bias).
    pub edge_dim: usize,
}

/// Directed edges `src → dst` of a graph with `nodes` nodes, as u32 index tensors.
#[derive(Clone, Debug)]
pub struct Edges {
    /// Source node of each edge, u32 `[E]`.
    pub src: Tensor,
    /// Destination node of each edge, u32 `[E]` (softmax groups).
    pub dst: Tensor,
    /// Number of nodes.
    pub nodes: usize,
}

/// Edge-wise multi-head attention (q/k/v/out projections with bias, per-head edge bias).
#[derive(Clone, Debug)]
pub struct EdgeAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    edge_bias: Option<Linear>,
    cfg: EdgeAttentionConfig,
}

impl EdgeAttention {
    /// Builds the layer; parameters `q_proj`, `k_proj`, `v_proj`, `out_proj`, `edge_bias`.
    pub fn new(vb: VarBuilder, cfg: &EdgeAttentionConfig) -> Result<EdgeAttention> {
        if cfg.heads == 0 || !cfg.dim.is_multiple_of(cfg.heads) {
            candle_core::bail!("edge attention: dim {} is not divisible by {} heads", cfg.dim, cfg.heads);
        }
        let d = cfg.dim;
        Ok(EdgeAttention {
            q: candle_nn::linear(d, d, vb.pp("q_proj"))?,
            k: candle_nn::linear(d, d, vb.pp("k_proj"))?,
            v: candle_nn::linear(d, d, vb.pp("v_proj"))?,
            out: candle_nn::linear(d, d, vb.pp("out_proj"))?,
            edge_bias: if cfg.edge_dim > 0 {
                Some(candle_nn::linear(cfg.edge_dim, cfg.heads, vb.pp("edge_bias"))?)
            } else {
                None
            },
            cfg: cfg.clone(),
        })
    }

    /// The attention weights `[E, heads]` (each destination's incoming edges sum to 1 per head).
    pub fn weights(&self, x: &Tensor, edges: &Edges, edge_feat: Option<&Tensor>) -> Result<Tensor> {
        let (h, dh) = (self.cfg.heads, self.cfg.dim / self.cfg.heads);
        let e = edges.src.dim(0)?;
        let q = self.q.forward(x)?.index_select(&edges.dst, 0)?.reshape((e, h, dh))?;
        let k = self.k.forward(x)?.index_select(&edges.src, 0)?.reshape((e, h, dh))?;
        let mut scores = ((q * k)?.sum(2)? * (dh as f64).powf(-0.5))?; // [E, H]
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
        let (h, dh) = (self.cfg.heads, self.cfg.dim / self.cfg.heads);
        let e = edges.src.dim(0)?;
        let alpha = self.weights(x, edges, edge_feat)?; // [E, H]
        let v = self.v.forward(x)?.index_select(&edges.src, 0)?.reshape((e, h, dh))?;
        let messages = v.broadcast_mul(&alpha.unsqueeze(2)?)?.reshape((e, h * dh))?;
        self.out.forward(&scatter_sum(&messages, &edges.dst, edges.nodes)?)
    }
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
