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

use std::ops::Range;
use std::sync::{Arc, Mutex};

pub mod fused;

use aa_graph::kernels::GatherPlan;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use fused::{RelationalPlan, RowGroup};

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

/// Edges of one graph (or batch) grouped by relation, prepared for the convolution: every
/// (destination, relation) pair that receives edges becomes one row of mean messages (pairs
/// sorted by relation), each relation's rows go through its own weight block, and the pair
/// rows are summed into their destinations. Nothing is computed for absent relations or for
/// nodes without incoming edges, so a convolution over a few hundred monosaccharides linked
/// by 80 relation types multiplies a few hundred rows, not `N × 80·D`.
#[derive(Debug)]
pub struct RelationalEdges {
    /// Number of nodes.
    pub num_nodes: usize,
    /// Number of relation slots.
    pub num_relations: usize,
    /// `(pair, source)` entries, weight `1 / in-degree of the pair`.
    pair_entries: Vec<(u32, u32, f32)>,
    /// Destination node of each pair.
    pair_dest: Vec<u32>,
    /// Pair rows per relation.
    groups: Vec<RowGroup>,
    /// One more than the largest source node (input rows the convolution needs).
    min_input_rows: usize,
    /// Plans built for an (input height, output rows) combination, reused across calls.
    plans: Mutex<Vec<(PlanKey, Arc<RelationalPlan>)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlanKey {
    input_rows: usize,
    start: usize,
    len: usize,
}

impl Clone for RelationalEdges {
    fn clone(&self) -> Self {
        RelationalEdges {
            num_nodes: self.num_nodes,
            num_relations: self.num_relations,
            pair_entries: self.pair_entries.clone(),
            pair_dest: self.pair_dest.clone(),
            groups: self.groups.clone(),
            min_input_rows: self.min_input_rows,
            plans: Mutex::new(self.plans.lock().map(|p| p.clone()).unwrap_or_default()),
        }
    }
}

impl RelationalEdges {
    /// Groups `(source, destination, relation)` triples. Nodes must be `< num_nodes`,
    /// relations `< num_relations`. The device argument is kept for API stability; plans live
    /// on the host and the kernels run where the node states are.
    pub fn new(num_nodes: usize, edges: &[(u32, u32, u32)], num_relations: usize, _device: &Device) -> Result<Self> {
        for &(s, d, r) in edges {
            if r as usize >= num_relations || s as usize >= num_nodes || d as usize >= num_nodes {
                candle_core::bail!("edge ({s}, {d}, {r}) outside {num_nodes} nodes / {num_relations} relations");
            }
        }
        // Sort by (relation, destination), stable: pairs are runs of equal keys.
        let mut order: Vec<usize> = (0..edges.len()).collect();
        order.sort_by_key(|&i| (edges[i].2, edges[i].1));
        let mut pair_dest = Vec::new();
        let mut groups: Vec<RowGroup> = Vec::new();
        let mut pair_of_edge = vec![0u32; edges.len()];
        let mut counts: Vec<u32> = Vec::new();
        let mut last: Option<(u32, u32)> = None;
        for &i in &order {
            let (_, d, r) = edges[i];
            if last != Some((r, d)) {
                pair_dest.push(d);
                counts.push(0);
                match groups.last_mut() {
                    Some(g) if g.relation == r as usize => g.len += 1,
                    _ => groups.push(RowGroup { relation: r as usize, start: pair_dest.len() - 1, len: 1 }),
                }
                last = Some((r, d));
            }
            let p = pair_dest.len() - 1;
            pair_of_edge[i] = p as u32;
            counts[p] += 1;
        }
        let pair_entries = order
            .iter()
            .map(|&i| {
                let p = pair_of_edge[i];
                (p, edges[i].0, 1.0 / counts[p as usize] as f32)
            })
            .collect();
        let min_input_rows = edges.iter().map(|e| e.0 as usize + 1).max().unwrap_or(0);
        Ok(RelationalEdges {
            num_nodes,
            num_relations,
            pair_entries,
            pair_dest,
            groups,
            min_input_rows,
            plans: Mutex::new(Vec::new()),
        })
    }

    /// Number of (destination, relation) pairs that receive messages.
    pub fn num_pairs(&self) -> usize {
        self.pair_dest.len()
    }

    /// Relations that occur.
    pub fn relations_present(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.relation).collect()
    }

    /// The plan of one convolution call with `input_rows` node states and output rows `rows`
    /// (see [`fused::relational_linear`]): self-loop rows (output rows that have an input row),
    /// the mean message of every (destination, relation) pair, its weight group, and the sum
    /// into each output row. Built once per combination and cached. Fails when a destination
    /// lies outside `rows` or a source beyond `input_rows`.
    pub fn plan_for(&self, input_rows: usize, rows: Range<usize>) -> Result<Arc<RelationalPlan>> {
        let key = PlanKey { input_rows, start: rows.start, len: rows.len() };
        let mut cache = self.plans.lock().map_err(|_| candle_core::Error::Msg("edge plan cache poisoned".into()))?;
        if let Some((_, p)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let PlanKey { input_rows, start, len } = key;
        let self_rows = input_rows.saturating_sub(start).min(len);
        let mut dest: Vec<(u32, u32, f32)> = Vec::with_capacity(self.num_pairs());
        for (p, &d) in self.pair_dest.iter().enumerate() {
            let d = d as usize;
            if d < start || d >= start + len {
                candle_core::bail!("destination node {d} outside the output rows {start}..{}", start + len);
            }
            dest.push(((d - start) as u32, p as u32, 1.0));
        }
        let plan = Arc::new(RelationalPlan {
            self_start: start.min(input_rows),
            self_rows,
            pairs: Arc::new(GatherPlan::new(self.num_pairs(), input_rows, &self.pair_entries)?),
            groups: Arc::new(self.groups.clone()),
            dest: Arc::new(GatherPlan::new(len, self.num_pairs(), &dest)?),
        });
        cache.push((key, plan.clone()));
        Ok(plan)
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
        self.forward_with(x, train, Activation::None)
    }

    /// [`BatchNorm::forward`] followed by `activation` (fused into one op in training mode).
    pub fn forward_with(&self, x: &Tensor, train: bool, activation: Activation) -> Result<Tensor> {
        if !train {
            return activation.apply(&self.forward_eval(x)?);
        }
        self.forward_train(x, activation, 0, None)
    }

    /// Training mode over the rows of `x` plus `zero_rows` implicit all-zero rows (which count
    /// in the statistics but get no output); `offset` (per column) is added to the batch mean
    /// for the running estimate — the value the rows were shifted by.
    pub fn forward_train(
        &self,
        x: &Tensor,
        activation: Activation,
        zero_rows: usize,
        offset: Option<&Tensor>,
    ) -> Result<Tensor> {
        let n = x.dim(0)? + zero_rows;
        let (y, mean, var) = if x.device().is_cpu() && x.dtype() == DType::F32 {
            fused::batch_norm_act_train(x, &self.weight, &self.bias, self.eps, activation, zero_rows)?
        } else {
            candle_core::bail!("batch norm in training mode: CPU f32 only for now");
        };
        // Running estimates: momentum 0.1, unbiased variance (as PyTorch).
        let m = self.momentum;
        let dev = x.device();
        let unbiased: Vec<f32> =
            var.iter().map(|v| (if n > 1 { v * n as f64 / (n as f64 - 1.0) } else { *v }) as f32).collect();
        let mut mean_t = Tensor::from_vec(mean.iter().map(|&v| v as f32).collect::<Vec<_>>(), mean.len(), dev)?;
        if let Some(o) = offset {
            mean_t = (mean_t + o.detach().to_dtype(DType::F32)?)?;
        }
        let var_t = Tensor::from_vec(unbiased, var.len(), dev)?;
        // Updated in place where possible, so a `VarMap` that created the buffers (and any
        // checkpoint written from it) sees the new statistics.
        for (lock, batch) in [(&self.running_mean, mean_t), (&self.running_var, var_t)] {
            let mut running = lock.lock().expect("running statistics lock");
            let next = ((&*running * (1.0 - m))? + (batch * m)?)?;
            if !fused::overwrite(&running, &next)? {
                *running = next;
            }
        }
        Ok(y)
    }

    fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let rm = self.running_mean.lock().expect("running mean lock").clone().unsqueeze(0)?;
        let rv = self.running_var.lock().expect("running var lock").clone().unsqueeze(0)?;
        let xhat = x.broadcast_sub(&rm)?.broadcast_div(&(rv + self.eps)?.sqrt()?)?;
        xhat.broadcast_mul(&self.weight.unsqueeze(0)?)?.broadcast_add(&self.bias.unsqueeze(0)?)
    }

    /// Eval-mode batch norm as `y·scale + shift` per column:
    /// `scale = γ/√(running_var + ε)`, `shift = β − running_mean·scale`.
    pub fn eval_affine(&self) -> Result<(Tensor, Tensor)> {
        let rm = self.running_mean.lock().expect("running mean lock").clone();
        let rv = self.running_var.lock().expect("running var lock").clone();
        let scale = self.weight.detach().div(&(rv + self.eps)?.sqrt()?)?;
        let shift = self.bias.detach().sub(&(rm * &scale)?)?;
        Ok((scale, shift))
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

    /// The batch norm's running mean and variance, if the layer has batch norm.
    pub fn batch_norm_stats(&self) -> Option<(Tensor, Tensor)> {
        self.batch_norm.as_ref().map(|bn| bn.running_stats())
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.linear_b.dims1().unwrap_or(0)
    }

    /// One layer on node states `x` (`[N, in]`) over `edges`: every node's output.
    pub fn forward(&self, x: &Tensor, edges: &RelationalEdges, train: bool) -> Result<Tensor> {
        self.forward_rows(x, edges, 0..x.dim(0)?, train)
    }

    /// Training-mode layer on `rows` when `idle` further nodes (`rows.end..rows.end + idle`)
    /// take part in batch norm with no input and no incoming messages — GlycanAA's unit
    /// convolution, where atoms sit in the batch with zero states. Their pre-normalisation value
    /// is the bias, which training-mode batch norm removes, so they enter the statistics as
    /// implicit zero rows and get no output: equal to [`Self::forward_rows`] over the extended
    /// range, restricted to `rows`. Without batch norm (or in inference) idle rows change
    /// nothing.
    pub fn forward_rows_idle(
        &self,
        x: &Tensor,
        edges: &RelationalEdges,
        rows: Range<usize>,
        idle: usize,
        train: bool,
    ) -> Result<Tensor> {
        let Some(bn) = self.batch_norm.as_ref().filter(|_| train && idle > 0) else {
            return self.forward_rows(x, edges, rows, train);
        };
        if x.dim(0)? > rows.end {
            candle_core::bail!("idle rows start at {} but {} node states are given", rows.end, x.dim(0)?);
        }
        let plan = self.plan(x, edges, &rows)?;
        let bias = (&self.linear_b + &self.self_b)?;
        // Every row is shifted by −bias (a zero, yet differentiable, bias column), so idle rows
        // are exactly zero; the running mean gets the bias back.
        let self_aug = Tensor::cat(&[&self.self_w, &(&bias * 0.0)?.unsqueeze(1)?], 1)?;
        let y = fused::relational_linear(x, &self.linear_w, &self_aug, &plan)?;
        bn.forward_train(&y, self.activation, idle, Some(&bias))
    }

    fn plan(&self, x: &Tensor, edges: &RelationalEdges, rows: &Range<usize>) -> Result<Arc<RelationalPlan>> {
        let (n_in, d_in) = x.dims2()?;
        if d_in != self.in_dim {
            candle_core::bail!("node states are {d_in} wide, the layer expects {}", self.in_dim);
        }
        if edges.num_relations > self.num_relations {
            candle_core::bail!(
                "edges use {} relation slots, the layer has {}",
                edges.num_relations,
                self.num_relations
            );
        }
        if edges.num_pairs() > 0 && n_in < edges.min_input_rows {
            candle_core::bail!("edges read node {} but only {n_in} node states are given", edges.min_input_rows - 1);
        }
        edges.plan_for(n_in, rows.clone())
    }

    /// One layer, output rows `rows` only (node `rows.start + i` is row `i`). Row `j` of `x`
    /// is node `j`; nodes of `rows` beyond `x`'s rows have a zero input (only their bias and
    /// incoming messages count). Every destination of `edges` must lie in `rows`. In
    /// training mode batch norm uses the statistics of exactly these rows.
    pub fn forward_rows(&self, x: &Tensor, edges: &RelationalEdges, rows: Range<usize>, train: bool) -> Result<Tensor> {
        // Self-loop rows and the mean message of every (destination, relation) pair, each
        // through its weight block, then summed per output row.
        let plan = self.plan(x, edges, &rows)?;
        let bias = (&self.linear_b + &self.self_b)?;
        let self_aug = Tensor::cat(&[&self.self_w, &bias.unsqueeze(1)?], 1)?;
        let y = fused::relational_linear(x, &self.linear_w, &self_aug, &plan)?;
        if !train && !y.track_op() {
            // Inference: eval-mode batch norm and activation as one per-column affine map and
            // one pass (the bias is already in y).
            let out_dim = self.out_dim();
            let (scale, shift) = match &self.batch_norm {
                Some(bn) => bn.eval_affine()?,
                None => {
                    (Tensor::ones(out_dim, DType::F32, y.device())?, Tensor::zeros(out_dim, DType::F32, y.device())?)
                }
            };
            return fused::affine_activation(&y, &scale, &shift, self.activation);
        }
        match &self.batch_norm {
            Some(bn) => bn.forward_with(&y, train, self.activation),
            None => self.activation.apply(&y),
        }
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

/// The three edge sets a [`HierarchicalBlock`] reads. Nodes are laid out units first:
/// nodes `0..num_units` are units, `num_units..num_nodes` atoms.
#[derive(Clone, Debug)]
pub struct HierarchicalEdges {
    /// Atom–atom edges.
    pub atom: RelationalEdges,
    /// Atom→unit edges.
    pub cross: RelationalEdges,
    /// Unit–unit edges.
    pub unit: RelationalEdges,
    /// Number of unit nodes (they come first).
    pub num_units: usize,
    /// Number of nodes.
    pub num_nodes: usize,
}

impl HierarchicalEdges {
    /// Groups `(source, destination, relation)` triples of the three kinds; fails when an edge
    /// does not join the node kinds its set is for (units are nodes `< num_units`).
    pub fn new(
        num_nodes: usize,
        num_units: usize,
        atom: &[(u32, u32, u32)],
        cross: &[(u32, u32, u32)],
        unit: &[(u32, u32, u32)],
        num_relations: usize,
        device: &Device,
    ) -> Result<Self> {
        let u = num_units as u32;
        let check = |set: &[(u32, u32, u32)], name: &str, ok: &dyn Fn(u32, u32) -> bool| -> Result<()> {
            match set.iter().find(|&&(s, d, _)| !ok(s, d)) {
                Some(e) => candle_core::bail!("{name} edge {e:?} joins the wrong node kinds ({num_units} units first)"),
                None => Ok(()),
            }
        };
        if num_units > num_nodes {
            candle_core::bail!("{num_units} units but {num_nodes} nodes");
        }
        check(atom, "atom–atom", &|s, d| s >= u && d >= u)?;
        check(cross, "atom→unit", &|s, d| s >= u && d < u)?;
        check(unit, "unit–unit", &|s, d| s < u && d < u)?;
        Ok(HierarchicalEdges {
            atom: RelationalEdges::new(num_nodes, atom, num_relations, device)?,
            cross: RelationalEdges::new(num_nodes, cross, num_relations, device)?,
            unit: RelationalEdges::new(num_nodes, unit, num_relations, device)?,
            num_units,
            num_nodes,
        })
    }
}

impl HierarchicalBlock {
    /// One block: returns the new node states (`[N, out]`, units first).
    ///
    /// Training mode computes every convolution on every node, because batch norm's statistics
    /// run over all nodes (as in the official code). Inference computes only the rows that
    /// are kept — atoms for the atom convolution, units for the other two — which gives the
    /// same numbers with a fraction of the work.
    pub fn forward(&self, x: &Tensor, e: &HierarchicalEdges, train: bool) -> Result<Tensor> {
        let (u, n) = (e.num_units, e.num_nodes);
        if x.dim(0)? != n {
            candle_core::bail!("{} node states for {n} nodes", x.dim(0)?);
        }
        let all = 0..n;
        let h1 = self.atom.forward_rows(x, &e.atom, if train { all.clone() } else { u..n }, train)?;
        if !train {
            // h1 holds the atoms' rows only; h2 and h3 the units'.
            let in2 = Tensor::cat(&[&x.narrow(0, 0, u)?, &h1], 0)?;
            let h2 = self.cross.forward_rows(&in2, &e.cross, 0..u, false)?;
            let h3 = self.unit.forward_rows(&h2, &e.unit, 0..u, false)?;
            return Tensor::cat(&[&h3, &h1], 0);
        }
        // Every convolution on every node; rows are merged by kind without narrow/cat chains.
        let in2 = fused::merge_rows(x, &h1, u)?;
        let h2 = self.cross.forward_rows(&in2, &e.cross, all.clone(), true)?;
        // The unit convolution reads the units' states only; atoms' inputs are zero, and they
        // enter its batch norm as idle rows.
        let h3 = self.unit.forward_rows_idle(&h2.narrow(0, 0, u)?, &e.unit, 0..u, n - u, true)?;
        fused::merge_rows(&h3, &h1, u)
    }
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
