#![warn(missing_docs)]
//! # aa-rgconv
//!
//! Relational graph convolution with the semantics of TorchDrug's `RelationalGraphConv` (as
//! GlycanAA uses it), computed only for the relations present, plus the hierarchical
//! atom → atom-to-unit → unit message-passing block of GlycanAA, for any kind of unit.
//!
//! A layer maps node states `x` (`[N, in]`) to
//! `act(bn(Σ_r mean_{j ∈ N_r(i)} x_j · W_rᵀ + b + x_i · W_selfᵀ + b_self))`: per relation, the
//! mean of the incoming neighbours' states (a relation without neighbours contributes zero),
//! a linear map per relation, a self-loop linear, optional batch norm and activation. The
//! weight keeps TorchDrug's layout — `linear.weight` is `[out, R·in]` — so official checkpoints
//! load unchanged; only the column blocks of the relations present are multiplied.
//!
//! ```
//! use aa_rgconv::{RelationalGraphConv, RelationalEdges, Activation};
//! use candle_core::{Device, DType, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//!
//! let dev = Device::Cpu;
//! let map = VarMap::new();
//! let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
//! let conv = RelationalGraphConv::new(vb, 4, 8, 3, false, Activation::Gelu).unwrap();
//! // Three nodes, edges 0→1 (relation 2) and 2→1 (relation 0).
//! let edges = RelationalEdges::new(3, &[(0, 1, 2), (2, 1, 0)], 3, &dev).unwrap();
//! let x = Tensor::ones((3, 4), DType::F32, &dev).unwrap();
//! let y = conv.forward(&x, &edges, false).unwrap();
//! assert_eq!(y.dims(), &[3, 8]);
//! ```

use std::sync::Mutex;

pub mod fused;

use aa_graph::kernels::{inverse_counts, scatter_sum};
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

/// Activation after a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// No activation.
    None,
    /// ReLU.
    Relu,
    /// GELU with the exact erf form (PyTorch's default `F.gelu`).
    Gelu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::None => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::Gelu => fused::gelu_erf(x),
        }
    }
}

/// Edges of one graph (or batch) grouped by relation. Only nodes that receive at least one
/// edge ("active" destinations) get aggregated rows, so a convolution over a few hundred
/// monosaccharides in a graph of tens of thousands of atoms multiplies a few hundred rows.
#[derive(Clone, Debug)]
pub struct RelationalEdges {
    /// Number of nodes.
    pub num_nodes: usize,
    /// Active destination nodes `[A]`, ascending.
    pub active: Tensor,
    /// Number of active destinations.
    pub num_active: usize,
    /// `(relation, source node indices [E_r], destination positions in `active` [E_r],
    /// inverse in-degree per active destination [A, 1])`.
    pub groups: Vec<(usize, Tensor, Tensor, Tensor)>,
}

impl RelationalEdges {
    /// Groups `(source, destination, relation)` triples. Relations must be `< num_relations`.
    pub fn new(num_nodes: usize, edges: &[(u32, u32, u32)], num_relations: usize, device: &Device) -> Result<Self> {
        let mut by_rel: Vec<(Vec<u32>, Vec<u32>)> = vec![(Vec::new(), Vec::new()); num_relations];
        for &(s, d, r) in edges {
            if r as usize >= num_relations || s as usize >= num_nodes || d as usize >= num_nodes {
                candle_core::bail!("edge ({s}, {d}, {r}) outside {num_nodes} nodes / {num_relations} relations");
            }
            by_rel[r as usize].0.push(s);
            by_rel[r as usize].1.push(d);
        }
        let mut position = vec![u32::MAX; num_nodes];
        let mut active = Vec::new();
        for &(_, d, _) in edges {
            position[d as usize] = 0;
        }
        for (node, p) in position.iter_mut().enumerate() {
            if *p == 0 {
                *p = active.len() as u32;
                active.push(node as u32);
            }
        }
        let num_active = active.len();
        let mut groups = Vec::new();
        for (r, (src, dst)) in by_rel.into_iter().enumerate() {
            if src.is_empty() {
                continue;
            }
            let n = src.len();
            let dst: Vec<u32> = dst.iter().map(|&d| position[d as usize]).collect();
            let src = Tensor::from_vec(src, n, device)?;
            let dst = Tensor::from_vec(dst, n, device)?;
            let inv = inverse_counts(&dst, num_active, DType::F32)?;
            groups.push((r, src, dst, inv));
        }
        Ok(RelationalEdges { num_nodes, active: Tensor::from_vec(active, num_active, device)?, num_active, groups })
    }
}

/// Batch normalisation over nodes (PyTorch `BatchNorm1d`: biased batch variance for
/// normalising, unbiased for the running estimate, momentum 0.1, eps 1e-5).
#[derive(Debug)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Mutex<Tensor>,
    running_var: Mutex<Tensor>,
    momentum: f64,
    eps: f64,
}

impl BatchNorm {
    /// Loads or creates `weight`, `bias`, `running_mean`, `running_var` under `vb`.
    pub fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", Init::Const(0.0))?;
        let running_mean = vb.get_with_hints(dim, "running_mean", Init::Const(0.0))?.detach();
        let running_var = vb.get_with_hints(dim, "running_var", Init::Const(1.0))?.detach();
        Ok(BatchNorm {
            weight,
            bias,
            running_mean: Mutex::new(running_mean),
            running_var: Mutex::new(running_var),
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    /// Normalises `[N, C]`; in training mode with the batch's statistics (and updates the
    /// running ones), otherwise with the running statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let n = x.dim(0)?;
            let (y, mean, var) = if x.device().is_cpu() && x.dtype() == DType::F32 {
                fused::batch_norm_train(x, &self.weight, &self.bias, self.eps)?
            } else {
                candle_core::bail!("batch norm in training mode: CPU f32 only for now");
            };
            // Running estimates: momentum 0.1, unbiased variance (as PyTorch).
            let m = self.momentum;
            let dev = x.device();
            let unbiased: Vec<f32> =
                var.iter().map(|v| (if n > 1 { v * n as f64 / (n as f64 - 1.0) } else { *v }) as f32).collect();
            let mean_t = Tensor::from_vec(mean.iter().map(|&v| v as f32).collect::<Vec<_>>(), mean.len(), dev)?;
            let var_t = Tensor::from_vec(unbiased, var.len(), dev)?;
            let mut rm = self.running_mean.lock().expect("running mean lock");
            *rm = ((&*rm * (1.0 - m))? + (mean_t * m)?)?;
            let mut rv = self.running_var.lock().expect("running var lock");
            *rv = ((&*rv * (1.0 - m))? + (var_t * m)?)?;
            return Ok(y);
        }
        let rm = self.running_mean.lock().expect("running mean lock").clone().unsqueeze(0)?;
        let rv = self.running_var.lock().expect("running var lock").clone().unsqueeze(0)?;
        let xhat = x.broadcast_sub(&rm)?.broadcast_div(&(rv + self.eps)?.sqrt()?)?;
        xhat.broadcast_mul(&self.weight.unsqueeze(0)?)?.broadcast_add(&self.bias.unsqueeze(0)?)
    }

    /// Current running mean and variance.
    pub fn running_stats(&self) -> (Tensor, Tensor) {
        (
            self.running_mean.lock().expect("running mean lock").clone(),
            self.running_var.lock().expect("running var lock").clone(),
        )
    }
}

fn linear_init(vb: &VarBuilder, out: usize, inp: usize) -> Result<(Tensor, Tensor)> {
    // PyTorch nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    let bound = 1.0 / (inp as f64).sqrt();
    let w = vb.get_with_hints((out, inp), "weight", Init::Uniform { lo: -bound, up: bound })?;
    let b = vb.get_with_hints(out, "bias", Init::Uniform { lo: -bound, up: bound })?;
    Ok((w, b))
}

/// TorchDrug's `RelationalGraphConv`, computed over the relations present only.
#[derive(Debug)]
pub struct RelationalGraphConv {
    linear_w: Tensor,
    linear_b: Tensor,
    self_w: Tensor,
    self_b: Tensor,
    batch_norm: Option<BatchNorm>,
    activation: Activation,
    in_dim: usize,
    num_relations: usize,
}

impl RelationalGraphConv {
    /// Loads or creates `linear.{weight,bias}` (`[out, R·in]`), `self_loop.{weight,bias}` and,
    /// with `batch_norm`, `batch_norm.*` under `vb`.
    pub fn new(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        num_relations: usize,
        batch_norm: bool,
        activation: Activation,
    ) -> Result<Self> {
        let (linear_w, linear_b) = linear_init(&vb.pp("linear"), out_dim, num_relations * in_dim)?;
        let (self_w, self_b) = linear_init(&vb.pp("self_loop"), out_dim, in_dim)?;
        let batch_norm = if batch_norm { Some(BatchNorm::new(vb.pp("batch_norm"), out_dim)?) } else { None };
        Ok(RelationalGraphConv { linear_w, linear_b, self_w, self_b, batch_norm, activation, in_dim, num_relations })
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.linear_b.dims1().unwrap_or(0)
    }

    /// One layer on node states `x` (`[N, in]`) over `edges`.
    pub fn forward(&self, x: &Tensor, edges: &RelationalEdges, train: bool) -> Result<Tensor> {
        let a = edges.num_active;
        let mut out = x.matmul(&self.self_w.t()?)?.broadcast_add(&self.self_b)?;
        if !edges.groups.is_empty() {
            // Mean messages of each present relation side by side, times the matching column
            // blocks of the [out, R·in] weight: one matmul for all relations.
            let mut aggs = Vec::with_capacity(edges.groups.len());
            let mut blocks = Vec::with_capacity(edges.groups.len());
            for (r, src, dst, inv) in &edges.groups {
                if *r >= self.num_relations {
                    candle_core::bail!("relation {r} but the layer has {}", self.num_relations);
                }
                let msg = x.index_select(src, 0)?;
                aggs.push(scatter_sum(&msg, dst, a)?.broadcast_mul(inv)?);
                blocks.push(self.linear_w.narrow(1, r * self.in_dim, self.in_dim)?);
            }
            let agg = Tensor::cat(&aggs, D::Minus1)?;
            let w = Tensor::cat(&blocks, D::Minus1)?;
            out = out.index_add(&edges.active, &agg.matmul(&w.t()?)?, 0)?;
        }
        out = out.broadcast_add(&self.linear_b)?;
        if let Some(bn) = &self.batch_norm {
            out = bn.forward(&out, train)?;
        }
        self.activation.apply(&out)
    }
}

/// The hierarchical block of GlycanAA for any unit kind: atom–atom convolution, then
/// atom→unit convolution, then unit–unit convolution; atoms keep the first result, units the
/// last (GlycanAA's layer, without residual).
#[derive(Debug)]
pub struct HierarchicalBlock {
    /// Convolution over atom–atom edges (`atom_layers.i`).
    pub atom: RelationalGraphConv,
    /// Convolution over atom→unit membership edges (`cross_layers.i`).
    pub cross: RelationalGraphConv,
    /// Convolution over unit–unit edges (`mono_layers.i`).
    pub unit: RelationalGraphConv,
}

/// The three edge sets a [`HierarchicalBlock`] reads, plus which nodes are atoms.
#[derive(Clone, Debug)]
pub struct HierarchicalEdges {
    /// Atom–atom edges.
    pub atom: RelationalEdges,
    /// Atom→unit edges.
    pub cross: RelationalEdges,
    /// Unit–unit edges.
    pub unit: RelationalEdges,
    /// `[N, 1]`, 1 for atom nodes and 0 for unit nodes.
    pub atom_mask: Tensor,
}

impl HierarchicalBlock {
    /// One block: returns the new node states (`[N, out]`).
    pub fn forward(&self, x: &Tensor, e: &HierarchicalEdges, train: bool) -> Result<Tensor> {
        let m = &e.atom_mask;
        let unit_mask = (1.0 - m)?;
        let h1 = self.atom.forward(x, &e.atom, train)?;
        let in2 = (h1.broadcast_mul(m)? + x.broadcast_mul(&unit_mask)?)?;
        let h2 = self.cross.forward(&in2, &e.cross, train)?;
        let in3 = h2.broadcast_mul(&unit_mask)?;
        let h3 = self.unit.forward(&in3, &e.unit, train)?;
        h1.broadcast_mul(m)? + h3.broadcast_mul(&unit_mask)?
    }
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
