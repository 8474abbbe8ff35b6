//! Vabs-Net's bilevel two-track layer (`TransformerEncoderLayer` of vabs/models/layers.py, with
//! its default post-LayerNorm): an atom track — edge attention over atom→atom edges, then a
//! feed-forward block — followed by a unit track on the units' anchor atoms (CA of residues,
//! the anomeric carbon of sugars): edge attention over unit→unit edges and a feed-forward
//! block, written back into the anchors' rows. The tracks interact only through the anchors.
//! Parameter names are the official ones (`aa_attn.*`, `aa_attn_layer_norm`, `aa_ffn.linear_1`,
//! `self_attn.*`, `ffn.*`, `final_layer_norm`, …).

use aa_graph::dense::{gelu_erf, LayerNorm as Norm};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::{EdgeAttention, EdgeAttentionConfig, Edges};

/// Sizes of a [`BilevelLayer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BilevelConfig {
    /// Node width (atoms and units share it).
    pub dim: usize,
    /// Attention heads (head width `dim / heads`).
    pub heads: usize,
    /// Width of atom-edge features.
    pub atom_edge_dim: usize,
    /// Width of unit-edge features.
    pub unit_edge_dim: usize,
    /// Feed-forward width as a multiple of `dim` (Vabs-Net: `ffn_embedding_dim / node_dim`).
    pub ffn_multiplier: usize,
}

/// `Linear(d, n·d) → GELU → Linear(n·d, d)` (Vabs-Net's `Transition`).
#[derive(Clone, Debug)]
struct Transition {
    linear_1: Linear,
    linear_2: Linear,
}

impl Transition {
    fn new(vb: VarBuilder, dim: usize, n: usize) -> Result<Transition> {
        Ok(Transition {
            linear_1: candle_nn::linear(dim, n * dim, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(n * dim, dim, vb.pp("linear_2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&gelu_erf(&self.linear_1.forward(x)?)?)
    }
}

/// One bilevel layer.
#[derive(Clone, Debug)]
pub struct BilevelLayer {
    aa_attn: EdgeAttention,
    aa_attn_layer_norm: Norm,
    aa_ffn: Transition,
    aa_final_layer_norm: Norm,
    self_attn: EdgeAttention,
    self_attn_layer_norm: Norm,
    ffn: Transition,
    final_layer_norm: Norm,
}

/// The graph a [`BilevelLayer`] runs on.
#[derive(Clone, Debug)]
pub struct BilevelGraph<'a> {
    /// Atom→atom edges (e.g. atom kNN plus bonds).
    pub atom_edges: &'a Edges,
    /// Their features `[E_atom, atom_edge_dim]`.
    pub atom_edge_features: &'a Tensor,
    /// Anchor atom of each unit, u32 `[U]` (distinct atoms).
    pub anchors: &'a Tensor,
    /// Unit→unit edges over unit indices (e.g. anchor kNN).
    pub unit_edges: &'a Edges,
    /// Their features `[E_unit, unit_edge_dim]`.
    pub unit_edge_features: &'a Tensor,
}

impl BilevelLayer {
    /// Builds the layer.
    pub fn new(vb: VarBuilder, cfg: &BilevelConfig) -> Result<BilevelLayer> {
        if cfg.heads == 0 || !cfg.dim.is_multiple_of(cfg.heads) {
            candle_core::bail!("bilevel layer: dim {} is not divisible by {} heads", cfg.dim, cfg.heads);
        }
        let att = |edge_dim| EdgeAttentionConfig {
            dim: cfg.dim,
            heads: cfg.heads,
            head_dim: cfg.dim / cfg.heads,
            edge_dim,
            gating: false,
        };
        Ok(BilevelLayer {
            aa_attn: EdgeAttention::new(vb.pp("aa_attn"), &att(cfg.atom_edge_dim))?,
            aa_attn_layer_norm: Norm::new(vb.pp("aa_attn_layer_norm"), cfg.dim, 1e-5)?,
            aa_ffn: Transition::new(vb.pp("aa_ffn"), cfg.dim, cfg.ffn_multiplier)?,
            aa_final_layer_norm: Norm::new(vb.pp("aa_final_layer_norm"), cfg.dim, 1e-5)?,
            self_attn: EdgeAttention::new(vb.pp("self_attn"), &att(cfg.unit_edge_dim))?,
            self_attn_layer_norm: Norm::new(vb.pp("self_attn_layer_norm"), cfg.dim, 1e-5)?,
            ffn: Transition::new(vb.pp("ffn"), cfg.dim, cfg.ffn_multiplier)?,
            final_layer_norm: Norm::new(vb.pp("final_layer_norm"), cfg.dim, 1e-5)?,
        })
    }

    /// Updated atom features `[N_atom, dim]` (anchors carry the unit track's output).
    pub fn forward(&self, atoms: &Tensor, g: &BilevelGraph, train: bool) -> Result<Tensor> {
        Ok(self.forward_tracks(atoms, g, train)?.output)
    }

    /// [`BilevelLayer::forward`] with the two tracks' states kept apart: the atom track's output
    /// (after `aa_final_layer_norm`, before the anchors are overwritten), the unit track's
    /// output (after `final_layer_norm`, one row per anchor) and the layer's output.
    pub fn forward_tracks(&self, atoms: &Tensor, g: &BilevelGraph, train: bool) -> Result<TrackStates> {
        // Atom track (post-LN).
        let h = self.aa_attn.forward(atoms, g.atom_edges, Some(g.atom_edge_features))?;
        let a = self.aa_attn_layer_norm.forward(&(atoms + h)?, train)?;
        let a = self.aa_final_layer_norm.forward(&(&a + self.aa_ffn.forward(&a)?)?, train)?;
        // Unit track on the anchors.
        let x = a.index_select(g.anchors, 0)?;
        let h = self.self_attn.forward(&x, g.unit_edges, Some(g.unit_edge_features))?;
        let x = self.self_attn_layer_norm.forward(&(&x + h)?, train)?;
        let x = self.final_layer_norm.forward(&(&x + self.ffn.forward(&x)?)?, train)?;
        // Write back: anchors' rows become the unit track's output.
        let delta = (&x - a.index_select(g.anchors, 0)?)?;
        let output = a.index_add(g.anchors, &delta, 0)?;
        Ok(TrackStates { atoms: a, units: x, output })
    }

    /// The layer at inference with both tracks' attention weights: the atom track's over
    /// `g.atom_edges` (from the layer's input) and the unit track's over `g.unit_edges` (from
    /// the anchors' rows after the atom track), as the forward pass computes them.
    pub fn attention(&self, atoms: &Tensor, g: &BilevelGraph) -> Result<(TrackStates, LayerAttention)> {
        let atom = self.aa_attn.weights(atoms, g.atom_edges, Some(g.atom_edge_features))?;
        let states = self.forward_tracks(atoms, g, false)?;
        let x = states.atoms.index_select(g.anchors, 0)?;
        let unit = self.self_attn.weights(&x, g.unit_edges, Some(g.unit_edge_features))?;
        Ok((states, LayerAttention { atom, unit }))
    }
}

/// One [`BilevelLayer`]'s attention weights ([`BilevelLayer::attention`]).
#[derive(Clone, Debug)]
pub struct LayerAttention {
    /// The atom track's `[E_atom, heads]`.
    pub atom: Tensor,
    /// The unit track's `[E_unit, heads]`.
    pub unit: Tensor,
}

/// One [`BilevelLayer`]'s states, from [`BilevelLayer::forward_tracks`].
#[derive(Clone, Debug)]
pub struct TrackStates {
    /// The atom track's output `[N_atom, dim]` (before the anchors' rows are overwritten).
    pub atoms: Tensor,
    /// The unit track's output `[U, dim]`, one row per anchor.
    pub units: Tensor,
    /// The layer's output `[N_atom, dim]`: `atoms` with the anchors' rows set to `units`.
    pub output: Tensor,
}
