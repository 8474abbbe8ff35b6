//! AdamW with parameter groups (PyTorch `torch.optim.AdamW` semantics: decoupled weight decay
//! `θ ← θ − lr·λ·θ`, then the bias-corrected Adam step), updating the variables in place.
//! On CPU f32 each step is two fused passes per tensor (moments, then parameters); elsewhere
//! candle ops.

use std::collections::HashMap;

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Optimiser hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Base learning rate (a schedule may scale it per step).
    pub lr: f64,
    /// First-moment decay.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Second-moment decay.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Added to `√v̂`.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Decoupled weight decay λ (PyTorch's default is 0.01).
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_wd() -> f64 {
    0.01
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// A set of parameters sharing a learning-rate multiplier and weight decay (e.g. the encoder
/// at `lr_ratio` and a task head at 1).
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// Named variables.
    pub vars: Vec<(String, Var)>,
    /// Multiplier on the scheduled learning rate.
    pub lr_scale: f64,
    /// Weight decay for this group (`None`: the optimiser's).
    pub weight_decay: Option<f64>,
}

struct Slot {
    name: String,
    var: Var,
    /// `[2, numel]`: first and second moments.
    moments: Var,
    lr_scale: f64,
    weight_decay: f64,
}

/// AdamW over parameter groups.
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
    fused: bool,
}

impl AdamW {
    /// Creates the optimiser; moments start at zero. Names must be unique across groups.
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> Result<Self> {
        let mut slots = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for g in groups {
            for (name, var) in g.vars {
                if !seen.insert(name.clone()) {
                    candle_core::bail!("parameter {name} appears twice");
                }
                let moments = Var::zeros((2, var.elem_count()), DType::F32, var.device())?;
                slots.push(Slot {
                    name,
                    var,
                    moments,
                    lr_scale: g.lr_scale,
                    weight_decay: g.weight_decay.unwrap_or(config.weight_decay),
                });
            }
        }
        Ok(AdamW { config, slots, step: 0, fused: true })
    }

    /// Uses candle ops instead of the fused CPU passes (what non-CPU devices run); for
    /// checking one against the other.
    pub fn without_fused_kernels(mut self) -> Self {
        self.fused = false;
        self
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// One update with learning rate `lr` (before each group's multiplier). Parameters without
    /// a gradient (not reached by the loss) are left alone, as PyTorch skips `grad is None`.
    pub fn step(&mut self, grads: &candle_core::backprop::GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.config.beta1, self.config.beta2);
        for slot in &self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else { continue };
            let lr = lr * slot.lr_scale;
            let update = ParamUpdate {
                lr: lr as f32,
                decay: (1.0 - lr * slot.weight_decay) as f32,
                bias1: (1.0 - b1.powi(t)) as f32,
                bias2_sqrt: (1.0 - b2.powi(t)).sqrt() as f32,
                eps: self.config.eps as f32,
            };
            let fused =
                self.fused && slot.var.device().is_cpu() && slot.var.dtype() == DType::F32 && g.dtype() == DType::F32;
            if fused {
                let g = g.contiguous()?.flatten_all()?;
                slot.moments.inplace_op2(&g, &MomentUpdate { beta1: b1 as f32, beta2: b2 as f32 })?;
                slot.var.as_tensor().inplace_op2(slot.moments.as_tensor(), &update)?;
            } else {
                self.step_with_ops(slot, g, &update, b1, b2)?;
            }
        }
        Ok(())
    }

    fn step_with_ops(&self, slot: &Slot, g: &Tensor, u: &ParamUpdate, b1: f64, b2: f64) -> Result<()> {
        let shape = slot.var.shape().clone();
        let g = g.to_dtype(DType::F32)?.flatten_all()?;
        let m = ((slot.moments.get(0)? * b1)? + (&g * (1.0 - b1))?)?;
        let v = ((slot.moments.get(1)? * b2)? + (g.sqr()? * (1.0 - b2))?)?;
        let denom = ((v.sqrt()? / u.bias2_sqrt as f64)? + u.eps as f64)?;
        let step = ((m.clone() / u.bias1 as f64)? / denom)?;
        let theta = slot.var.as_tensor().to_dtype(DType::F32)?.flatten_all()?;
        let next = ((theta * u.decay as f64)? - (step * u.lr as f64)?)?;
        slot.var.set(&next.reshape(shape)?.to_dtype(slot.var.dtype())?)?;
        slot.moments.set(&Tensor::stack(&[m, v], 0)?)
    }

    /// Optimiser state for a checkpoint: `"{name}.exp_avg"`, `"{name}.exp_avg_sq"` tensors
    /// and the step count.
    pub fn state(&self) -> Result<(HashMap<String, Tensor>, u64)> {
        let mut out = HashMap::new();
        for s in &self.slots {
            let shape = s.var.shape().clone();
            out.insert(format!("{}.exp_avg", s.name), s.moments.get(0)?.reshape(shape.clone())?.copy()?);
            out.insert(format!("{}.exp_avg_sq", s.name), s.moments.get(1)?.reshape(shape)?.copy()?);
        }
        Ok((out, self.step))
    }

    /// Restores [`AdamW::state`]; every parameter's moments must be present with its shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for s in &self.slots {
            let get = |k: &str| -> Result<Tensor> {
                let key = format!("{}.{k}", s.name);
                let t =
                    state.get(&key).ok_or_else(|| candle_core::Error::Msg(format!("optimiser state lacks {key}")))?;
                if t.shape() != s.var.shape() {
                    candle_core::bail!("optimiser state {key} is {:?}, the parameter {:?}", t.shape(), s.var.shape());
                }
                t.to_dtype(DType::F32)?.to_device(s.var.device())?.flatten_all()
            };
            s.moments.set(&Tensor::stack(&[get("exp_avg")?, get("exp_avg_sq")?], 0)?)?;
        }
        self.step = step;
        Ok(())
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("adamw: {what} must be contiguous f32"),
    }
}

fn f32_slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("adamw: {what} must be contiguous f32"),
    }
}

const CHUNK: usize = 16384;

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²` on the `[2, n]` moments.
struct MomentUpdate {
    beta1: f32,
    beta2: f32,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adamw-moments"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, src: &CpuStorage, src_l: &Layout) -> Result<()> {
        let g = f32_slice(src, src_l, "gradient")?;
        let mv = f32_slice_mut(dst, dst_l, "moments")?;
        let n = g.len();
        if mv.len() != 2 * n {
            candle_core::bail!("adamw: {} moments for {n} gradients", mv.len());
        }
        let (m, v) = mv.split_at_mut(n);
        let (b1, b2) = (self.beta1, self.beta2);
        m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)).zip(g.par_chunks(CHUNK)).for_each(|((m, v), g)| {
            for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
            }
        });
        Ok(())
    }
}

/// `θ ← θ·(1 − lr·λ) − lr · (m / bias1) / (√v / √bias2 + ε)`.
struct ParamUpdate {
    lr: f32,
    decay: f32,
    bias1: f32,
    bias2_sqrt: f32,
    eps: f32,
}

impl InplaceOp2 for ParamUpdate {
    fn name(&self) -> &'static str {
        "adamw-params"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, src: &CpuStorage, src_l: &Layout) -> Result<()> {
        let mv = f32_slice(src, src_l, "moments")?;
        let theta = f32_slice_mut(dst, dst_l, "parameter")?;
        let n = theta.len();
        if mv.len() != 2 * n {
            candle_core::bail!("adamw: {} moments for {n} parameters", mv.len());
        }
        let (m, v) = mv.split_at(n);
        let u = self;
        theta.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK)).zip(v.par_chunks(CHUNK)).for_each(|((t, m), v)| {
            for ((t, &m), &v) in t.iter_mut().zip(m).zip(v) {
                let step = (m / u.bias1) / (v.sqrt() / u.bias2_sqrt + u.eps);
                *t = *t * u.decay - u.lr * step;
            }
        });
        Ok(())
    }
}
