//! Fused CPU ops with their own backward, so a layer is a few passes over memory instead of a
//! chain of candle ops (each of which allocates an `[N, D]` tensor and, in backward, a zeroed
//! gradient buffer plus an add): [`relational_linear`] (the linear part of a relational
//! convolution), training-mode batch norm with its activation ([`batch_norm_act_train`]),
//! GELU, the inference affine + activation, [`merge_rows`] and [`overwrite`]. Element-wise loops
//! run in copies compiled for the CPU's SIMD level; parallel sums combine in a fixed order, so
//! results are bit-reproducible. Other devices and dtypes take candle-op paths.

use aa_graph::dense::{contiguous_f32, gelu_f32, gelu_grad_f32, gemm_f32, par_rows, RowKernel, TASK_ELEMS};
pub use aa_graph::dense::{erf_f32, gelu_erf};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// An activation as two inlined scalar functions (value and derivative), so kernels are
/// monomorphised per activation with branch-free inner loops.
trait ActFn: Sync {
    fn f(x: f32) -> f32;
    fn d(x: f32) -> f32;
}

struct Identity;
struct ReluFn;
struct GeluFn;

impl ActFn for Identity {
    #[inline(always)]
    fn f(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn d(_: f32) -> f32 {
        1.0
    }
}

impl ActFn for ReluFn {
    #[inline(always)]
    fn f(x: f32) -> f32 {
        x.max(0.0)
    }
    #[inline(always)]
    fn d(x: f32) -> f32 {
        if x > 0.0 {
            1.0
        } else {
            0.0
        }
    }
}

impl ActFn for GeluFn {
    #[inline(always)]
    fn f(x: f32) -> f32 {
        gelu_f32(x)
    }
    #[inline(always)]
    fn d(x: f32) -> f32 {
        gelu_grad_f32(x)
    }
}

/// Runs `$body` with the type `$A` bound to the [`ActFn`] of `$act`.
macro_rules! with_act {
    ($act:expr, $A:ident => $body:expr) => {
        match $act {
            crate::Activation::None => {
                type $A = Identity;
                $body
            }
            crate::Activation::Relu => {
                type $A = ReluFn;
                $body
            }
            crate::Activation::Gelu => {
                type $A = GeluFn;
                $body
            }
        }
    };
}

/// `out = A(x·scale + shift)` per column.
struct Affine<'a, A> {
    c: usize,
    scale: &'a [f32],
    shift: &'a [f32],
    act: std::marker::PhantomData<A>,
}

impl<A: ActFn> RowKernel for Affine<'_, A> {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], _: &[f32]) -> Vec<f64> {
        for (row, xr) in out.chunks_exact_mut(self.c).zip(x.chunks_exact(self.c)) {
            for (((v, &xv), &a), &b) in row.iter_mut().zip(xr).zip(self.scale).zip(self.shift) {
                *v = A::f(xv * a + b);
            }
        }
        Vec::new()
    }
}

/// `out = a·y + e·x + f` per column.
struct LinearCombination<'a> {
    c: usize,
    a: &'a [f32],
    e: &'a [f32],
    f: &'a [f32],
}

impl RowKernel for LinearCombination<'_> {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], y: &[f32]) -> Vec<f64> {
        let rows = out.chunks_exact_mut(self.c).zip(x.chunks_exact(self.c)).zip(y.chunks_exact(self.c));
        for ((or, xr), yr) in rows {
            for k in 0..self.c {
                or[k] = self.a[k] * yr[k] + self.e[k] * xr[k] + self.f[k];
            }
        }
        Vec::new()
    }
}

/// `out = act(x·scale + shift)` per column of rows `c` wide, in parallel.
fn affine_act_into(out: &mut [f32], x: &[f32], c: usize, scale: &[f32], shift: &[f32], act: crate::Activation) {
    with_act!(act, A => {
        par_rows(out, x, x, c, &Affine::<A> { c, scale, shift, act: std::marker::PhantomData });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn batch_norm_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let xv: Vec<f32> = (0..24).map(|i| ((i * 37) % 11) as f32 / 3.0 - 1.5).collect();
        let x = Var::from_vec(xv.clone(), (6, 4), &dev).unwrap();
        let g = Var::from_vec(vec![1.2f32, 0.7, -0.4, 2.0], 4, &dev).unwrap();
        let b = Var::from_vec(vec![0.1f32, -0.3, 0.0, 0.5], 4, &dev).unwrap();
        let w = Tensor::arange(0f32, 24.0, &dev).unwrap().reshape((6, 4)).unwrap().sin().unwrap();
        let loss = |xt: &Tensor, gt: &Tensor, bt: &Tensor| -> Tensor {
            let (y, _, _) = batch_norm_train(xt, gt, bt, 1e-5).unwrap();
            (y * &w).unwrap().sum_all().unwrap()
        };
        let grads = loss(x.as_tensor(), g.as_tensor(), b.as_tensor()).backward().unwrap();
        for (var, name) in [(&x, "x"), (&g, "gamma"), (&b, "beta")] {
            let an = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for k in 0..base.len() {
                let h = 1e-2f32;
                let shifted = |d: f32| {
                    let mut v = base.clone();
                    v[k] += d;
                    let t = Tensor::from_vec(v, var.as_tensor().shape(), &dev).unwrap();
                    let (xt, gt, bt) = match name {
                        "x" => (t, g.as_tensor().clone(), b.as_tensor().clone()),
                        "gamma" => (x.as_tensor().clone(), t, b.as_tensor().clone()),
                        _ => (x.as_tensor().clone(), g.as_tensor().clone(), t),
                    };
                    loss(&xt, &gt, &bt).to_scalar::<f32>().unwrap()
                };
                let num = (shifted(h) - shifted(-h)) / (2.0 * h);
                assert!((num - an[k]).abs() < 2e-2 * (1.0 + num.abs()), "{name}[{k}]: numeric {num} vs {}", an[k]);
            }
        }
    }
}

/// Adds per-task partial sums in task order: parallel reductions stay bit-reproducible (rayon's
/// `reduce` combines in whatever order threads finish), so a resumed run repeats its losses.
fn add_in_order(mut total: Vec<f64>, part: Vec<f64>) -> Vec<f64> {
    total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
    total
}

/// Column means and biased variances of a contiguous `[N, C]` f32 slice plus `zero_rows`
/// further all-zero rows, in one pass: f64 sums of `x − p` and `(x − p)²` about a per-column
/// pivot `p` (the first row), so `E[(x−p)²] − E[x−p]²` does not cancel badly.
fn column_stats(x: &[f32], n: usize, c: usize, zero_rows: usize) -> (Vec<f64>, Vec<f64>) {
    let total = (n + zero_rows).max(1) as f64;
    let c1 = c.max(1);
    let chunk = c1 * (TASK_ELEMS / c1).max(1);
    let pivot: Vec<f64> = x.get(..c).map(|r| r.iter().map(|&v| v as f64).collect()).unwrap_or_else(|| vec![0.0; c]);
    let sums = x
        .par_chunks(chunk)
        .map(|block| {
            let mut acc = vec![0f64; 2 * c];
            let (s1, s2) = acc.split_at_mut(c);
            for row in block.chunks_exact(c1) {
                for k in 0..c {
                    let d = row[k] as f64 - pivot[k];
                    s1[k] += d;
                    s2[k] += d * d;
                }
            }
            acc
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(vec![0f64; 2 * c], add_in_order);
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for k in 0..c {
        // The zero rows sit at −p from the pivot.
        let (z1, z2) = (-pivot[k] * zero_rows as f64, pivot[k] * pivot[k] * zero_rows as f64);
        let m1 = (sums[k] + z1) / total;
        let m2 = (sums[c + k] + z2) / total;
        mean[k] = pivot[k] + m1;
        var[k] = (m2 - m1 * m1).max(0.0);
    }
    (mean, var)
}

/// Training-mode batch normalisation `γ·(x − μ)/√(σ² + ε) + β` over the rows of `[N, C]`, with
/// the batch statistics (accumulated in f64) computed once and a closed-form backward for x,
/// γ and β.
struct BatchNormTrain {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    activation: crate::Activation,
    /// Rows in the statistics: the input's plus implicit all-zero rows.
    total_rows: usize,
}

impl candle_core::CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "fused-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c) = l1.shape().dims2()?;
        let x = contiguous_f32(s1, l1)?;
        let gamma = contiguous_f32(s2, l2)?;
        let beta = contiguous_f32(s3, l3)?;
        let scale: Vec<f32> = gamma.iter().zip(&self.inv_std).map(|(g, i)| g * i).collect();
        // act((x − μ)·γσ⁻¹ + β) = act(x·a + b) with b = β − μ·a.
        let shift: Vec<f32> = beta.iter().zip(&self.mean).zip(&scale).map(|((b, m), a)| b - m * a).collect();
        let mut y = vec![0f32; x.len()];
        affine_act_into(&mut y, x, c, &scale, &shift, self.activation);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        let n = x.dim(0)?;
        // One pass: the gradient through the activation (input recomputed from x), and the
        // column sums Σ dy and Σ dy·x̂ of it — rows n and n + 1 of the result.
        let op = BatchNormGradSums {
            mean: self.mean.clone(),
            inv_std: self.inv_std.clone(),
            gamma: gamma.to_vec1()?,
            beta: _beta.to_vec1()?,
            activation: self.activation,
        };
        let both = x.apply_op2_no_bwd(&grad, &op)?;
        let grad = both.narrow(0, 0, n)?;
        let (dbeta, dgamma) = (both.get(n)?, both.get(n + 1)?);
        let dx = x.apply_op2_no_bwd(
            &grad,
            &BatchNormGradInput {
                total_rows: self.total_rows,
                mean: self.mean.clone(),
                inv_std: self.inv_std.clone(),
                gamma: gamma.to_vec1()?,
                sum_dy: dbeta.to_vec1()?,
                sum_dy_xhat: dgamma.to_vec1()?,
            },
        )?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// `[N + 2, C]`: `dy · act′(x̂·γ + β)` (the gradient through the activation that follows batch
/// norm) in rows `0..N`, its column sums `Σ dy` in row `N` and `Σ dy·x̂` in row `N + 1`.
struct BatchNormGradSums {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    activation: crate::Activation,
}

/// One chunk of [`BatchNormGradSums`] for activation `A`: writes `dy` rows and returns their
/// column sums (f32 within a chunk of at most TASK_ELEMS / C rows, f64 across chunks).
struct ActGradSums<'a, A> {
    op: &'a BatchNormGradSums,
    c: usize,
    act: std::marker::PhantomData<A>,
}

impl<A: ActFn> RowKernel for ActGradSums<'_, A> {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], g: &[f32]) -> Vec<f64> {
        let (op, c) = (self.op, self.c);
        let (mut s1, mut s2) = (vec![0f32; c], vec![0f32; c]);
        for ((or, xr), gr) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(g.chunks_exact(c)) {
            for k in 0..c {
                let xhat = (xr[k] - op.mean[k]) * op.inv_std[k];
                let dy = gr[k] * A::d(xhat * op.gamma[k] + op.beta[k]);
                or[k] = dy;
                s1[k] += dy;
                s2[k] += dy * xhat;
            }
        }
        s1.iter().chain(&s2).map(|&v| v as f64).collect()
    }
}

impl CustomOp2 for BatchNormGradSums {
    fn name(&self) -> &'static str {
        "fused-batch-norm-grad-sums"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c) = l1.shape().dims2()?;
        let (x, g) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let mut out = vec![0f32; (n + 2) * c];
        if c > 0 {
            let (rows, tail) = out.split_at_mut(n * c);
            let parts = with_act!(self.activation, A => par_rows(rows, x, g, c, &ActGradSums::<A> { op: self, c, act: std::marker::PhantomData }));
            let sums = parts.into_iter().fold(vec![0f64; 2 * c], add_in_order);
            tail.iter_mut().zip(&sums).for_each(|(t, &v)| *t = v as f32);
        }
        Ok((CpuStorage::F32(out), Shape::from((n + 2, c))))
    }
}

/// `dx = γ·σ⁻¹/N · (N·dy − Σdy − x̂·Σdy·x̂)`.
struct BatchNormGradInput {
    total_rows: usize,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    sum_dy: Vec<f32>,
    sum_dy_xhat: Vec<f32>,
}

impl CustomOp2 for BatchNormGradInput {
    fn name(&self) -> &'static str {
        "fused-batch-norm-grad-input"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c) = l1.shape().dims2()?;
        let (x, g) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        // Implicit zero rows carry no gradient, so the sums are the input rows'; only N counts them.
        let nf = self.total_rows.max(1) as f32;
        // dx = a·dy − b − x̂·d per column, with a = γσ⁻¹, b = a·Σdy/N, d = a·Σdy·x̂/N.
        let a: Vec<f32> = self.gamma.iter().zip(&self.inv_std).map(|(g, i)| g * i).collect();
        let b: Vec<f32> = a.iter().zip(&self.sum_dy).map(|(a, s)| a * s / nf).collect();
        let d: Vec<f32> = a.iter().zip(&self.sum_dy_xhat).map(|(a, s)| a * s / nf).collect();
        // With x̂ = (x − μ)σ⁻¹: dx = a·dy + e·x + f, e = −σ⁻¹·d, f = μσ⁻¹·d − b.
        let e: Vec<f32> = self.inv_std.iter().zip(&d).map(|(i, d)| -i * d).collect();
        let f: Vec<f32> =
            self.mean.iter().zip(&self.inv_std).zip(d.iter().zip(&b)).map(|((m, i), (d, b))| m * i * d - b).collect();
        let mut dx = vec![0f32; x.len()];
        par_rows(&mut dx, x, g, c, &LinearCombination { c, a: &a, e: &e, f: &f });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Training-mode batch norm on CPU f32 `[N, C]` (fused, f64 statistics); also returns the batch
/// mean and biased variance (detached) for the running-statistics update.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, Vec<f64>, Vec<f64>)> {
    batch_norm_act_train(x, gamma, beta, eps, crate::Activation::None, 0)
}

/// [`batch_norm_train`] followed by `activation`, as one op (one pass forward, one tensor kept
/// for backward). The statistics also count `zero_rows` implicit all-zero rows, whose outputs
/// are not returned (nodes that take part in batch norm but whose results are discarded).
pub fn batch_norm_act_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    activation: crate::Activation,
    zero_rows: usize,
) -> Result<(Tensor, Vec<f64>, Vec<f64>)> {
    let x = x.contiguous()?;
    let (n, c) = x.dims2()?;
    let (mean, var) = {
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else { candle_core::bail!("batch norm: CPU tensors only") };
        column_stats(contiguous_f32(cpu, layout)?, n, c, zero_rows)
    };
    let op = BatchNormTrain {
        mean: mean.iter().map(|&m| m as f32).collect(),
        inv_std: var.iter().map(|v| (1.0 / (v + eps).sqrt()) as f32).collect(),
        activation,
        total_rows: n + zero_rows,
    };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    Ok((y, mean, var))
}

/// Row groups of a relational product: rows `start..start + len` use the weight block of
/// relation `relation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowGroup {
    /// Relation (column block of the relational weight).
    pub relation: usize,
    /// First row.
    pub start: usize,
    /// Number of rows.
    pub len: usize,
}

/// Rows per gemm call when a group is split for the thread pool.
const CHUNK_ROWS: usize = 512;

/// Threads for one gemm over `rows` rows: all of them for big products, one otherwise (the
/// callers already spread small products over the pool).
fn gemm_threads(rows: usize) -> usize {
    if rows > 8 * CHUNK_ROWS {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// Splits `buf` (rows of width `w`) into the row chunks of `groups`, each at most
/// [`CHUNK_ROWS`] rows: `(relation, first row, chunk)`.
fn chunk_rows<'a>(buf: &'a mut [f32], w: usize, groups: &[RowGroup]) -> Vec<(usize, usize, &'a mut [f32])> {
    let mut out = Vec::new();
    let mut rest = buf;
    let mut row = 0;
    for g in groups {
        let mut left = g.len;
        while left > 0 {
            let take = left.min(CHUNK_ROWS);
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(take * w);
            out.push((g.relation, row, head));
            rest = tail;
            row += take;
            left -= take;
        }
    }
    out
}

/// Checks that `groups` tile `0..rows` in order with relations `< num_relations`.
fn check_groups(groups: &[RowGroup], rows: usize, num_relations: usize) -> Result<()> {
    let mut next = 0;
    for g in groups {
        if g.start != next || g.relation >= num_relations {
            candle_core::bail!("relational product: group {g:?} (expected start {next}, {num_relations} relations)");
        }
        next += g.len;
    }
    if next != rows {
        candle_core::bail!("relational product: groups cover {next} of {rows} rows");
    }
    Ok(())
}

/// Rows of `z` (`din` wide) through their relation's `[dout, din]` block of `w`
/// (`[dout, width]`, TorchDrug's `[out, R·in]` layout).
struct Grouped<'a> {
    groups: &'a [RowGroup],
    din: usize,
    dout: usize,
    width: usize,
    w: &'a [f32],
}

impl Grouped<'_> {
    /// `out[i] = z[i] · W_gᵀ` for every row.
    fn forward(&self, z: &[f32], k: usize) -> Vec<f32> {
        let (din, dout, width) = (self.din, self.dout, self.width);
        let mut out = vec![0f32; k * dout];
        chunk_rows(&mut out, dout, self.groups).into_par_iter().for_each(|(r, row, dst)| {
            let m = dst.len() / dout;
            gemm_f32(m, dout, din, dst, dout, &z[row * din..], (din, 1), &self.w[r * din..], (1, width), 1, false);
        });
        out
    }

    /// Gradients from `g` (`[k, dout]`): `dz = g · W_g` per row and `dW` (`[dout, width]`,
    /// zero outside the relations present).
    fn backward(&self, z: &[f32], g: &[f32], k: usize) -> (Vec<f32>, Vec<f32>) {
        let (din, dout, width) = (self.din, self.dout, self.width);
        let mut dz = vec![0f32; k * din];
        chunk_rows(&mut dz, din, self.groups).into_par_iter().for_each(|(r, row, dst)| {
            let m = dst.len() / din;
            gemm_f32(m, din, dout, dst, din, &g[row * dout..], (dout, 1), &self.w[r * din..], (width, 1), 1, false);
        });
        let blocks: Vec<(usize, Vec<f32>)> = self
            .groups
            .par_iter()
            .filter(|gr| gr.len > 0)
            .map(|gr| {
                let mut buf = vec![0f32; dout * din];
                let (lhs, rhs) = (&g[gr.start * dout..], &z[gr.start * din..]);
                gemm_f32(dout, din, gr.len, &mut buf, din, lhs, (1, dout), rhs, (din, 1), gemm_threads(gr.len), false);
                (gr.relation, buf)
            })
            .collect();
        let mut dw = vec![0f32; dout * width];
        for (r, buf) in blocks {
            for (o, src) in buf.chunks_exact(din).enumerate() {
                let dst = &mut dw[o * width + r * din..o * width + (r + 1) * din];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
        (dz, dw)
    }
}

/// The plans of one relational convolution call (see [`relational_linear`]).
#[derive(Debug)]
pub struct RelationalPlan {
    /// Output row `i < self_rows` has input row `self_start + i` (its self loop).
    pub self_start: usize,
    /// Output rows with a self-loop input (the first ones).
    pub self_rows: usize,
    /// Input rows → mean message of every (destination, relation) pair.
    pub pairs: std::sync::Arc<aa_graph::kernels::GatherPlan>,
    /// Relation of each pair row.
    pub groups: std::sync::Arc<Vec<RowGroup>>,
    /// Pair rows → output rows (sum).
    pub dest: std::sync::Arc<aa_graph::kernels::GatherPlan>,
}

/// The whole linear part of a relational convolution as one op (see [`relational_linear`]);
/// backward recomputes the pair means instead of keeping them.
struct RelationalLinear(std::sync::Arc<RelationalPlan>);

/// `(din, dout, width)` after checking the shapes against the plan.
fn relational_dims(p: &RelationalPlan, x: &Shape, w: &Shape, s: &Shape) -> Result<(usize, usize, usize)> {
    let (n_in, din) = x.dims2()?;
    let (dout, width) = w.dims2()?;
    if din == 0 || width % din != 0 || s.dims() != [dout, din + 1] {
        candle_core::bail!("relational linear: weights {w:?} / {s:?} do not fit input width {din}");
    }
    if n_in != p.pairs.num_sources() || p.self_start + p.self_rows > n_in || p.self_rows > p.dest.num_rows() {
        candle_core::bail!("relational linear: {n_in} input rows do not fit the plan");
    }
    check_groups(&p.groups, p.pairs.num_rows(), width / din)?;
    Ok((din, dout, width))
}

impl candle_core::CustomOp3 for RelationalLinear {
    fn name(&self) -> &'static str {
        "relational-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let (din, dout, width) = relational_dims(p, l1.shape(), l2.shape(), l3.shape())?;
        let (x, w, ws) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?);
        let n_out = p.dest.num_rows();
        // The bias (last column of `self_aug`) in every row, then the self loop read straight
        // from the input rows, then every pair's message.
        let mut y: Vec<f32> = Vec::with_capacity(n_out * dout);
        for _ in 0..n_out {
            y.extend((0..dout).map(|o| ws[o * (din + 1) + din]));
        }
        let self_x = &x[p.self_start * din..];
        let threads = gemm_threads(p.self_rows).max(rayon::current_num_threads());
        gemm_f32(p.self_rows, dout, din, &mut y, dout, self_x, (din, 1), ws, (1, din + 1), threads, true);
        let k = p.pairs.num_rows();
        if k > 0 {
            let mut z = vec![0f32; k * din];
            p.pairs.accumulate_f32(x, din, &mut z)?;
            let per_pair = Grouped { groups: &p.groups, din, dout, width, w }.forward(&z, k);
            drop(z);
            p.dest.accumulate_f32(&per_pair, dout, &mut y)?;
        }
        Ok((CpuStorage::F32(y), Shape::from((n_out, dout))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        self_aug: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let p = &self.0;
        let (x, w, self_aug, grad) = (x.contiguous()?, w.contiguous()?, self_aug.contiguous()?, grad.contiguous()?);
        let (din, dout, width) = relational_dims(p, x.shape(), w.shape(), self_aug.shape())?;
        let (sx, lx) = x.storage_and_layout();
        let (sw, lw) = w.storage_and_layout();
        let (ss, ls) = self_aug.storage_and_layout();
        let (sg, lg) = grad.storage_and_layout();
        fn cpu(s: &candle_core::Storage) -> Result<&CpuStorage> {
            match s {
                candle_core::Storage::Cpu(c) => Ok(c),
                _ => candle_core::bail!("relational linear: CPU tensors only"),
            }
        }
        let xs = contiguous_f32(cpu(&sx)?, lx)?;
        let wv = contiguous_f32(cpu(&sw)?, lw)?;
        let wsv = contiguous_f32(cpu(&ss)?, ls)?;
        let g = contiguous_f32(cpu(&sg)?, lg)?;
        let threads = rayon::current_num_threads();
        // Bias: column sums of the output gradient (f64 partial sums).
        let db = g
            .par_chunks(dout.max(1) * 256)
            .map(|block| {
                let mut acc = vec![0f64; dout];
                for row in block.chunks_exact(dout.max(1)) {
                    acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
                }
                acc
            })
            .collect::<Vec<_>>()
            .into_iter()
            .fold(vec![0f64; dout], add_in_order);
        // Self loop: dW_self = g_selfᵀ · x_self, dx_self = g_self · W_self.
        let (m, s0) = (p.self_rows, p.self_start);
        let mut dws = vec![0f32; dout * din];
        gemm_f32(dout, din, m, &mut dws, din, g, (1, dout), &xs[s0 * din..], (din, 1), gemm_threads(m), false);
        let mut dx = vec![0f32; xs.len()];
        gemm_f32(m, din, dout, &mut dx[s0 * din..], din, g, (dout, 1), wsv, (din + 1, 1), threads, false);
        // Pairs: through the destination sum, the pair means again, the grouped product.
        let mut dw = vec![0f32; dout * width];
        let k = p.pairs.num_rows();
        if k > 0 {
            let mut g_pairs = vec![0f32; k * dout];
            p.dest.transposed().accumulate_f32(g, dout, &mut g_pairs)?;
            let mut z = vec![0f32; k * din];
            p.pairs.accumulate_f32(xs, din, &mut z)?;
            let (dz, dwr) = Grouped { groups: &p.groups, din, dout, width, w: wv }.backward(&z, &g_pairs, k);
            drop((z, g_pairs));
            p.pairs.transposed().accumulate_f32(&dz, din, &mut dx)?;
            dw = dwr;
        }
        let mut dself = Vec::with_capacity(dout * (din + 1));
        for (o, row) in dws.chunks_exact(din).enumerate() {
            dself.extend_from_slice(row);
            dself.push(db[o] as f32);
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, (dout, width), dev)?),
            Some(Tensor::from_vec(dself, (dout, din + 1), dev)?),
        ))
    }
}

/// The linear part of a relational convolution, `[n_out, out]`: output row `i` is
/// `x[self_start + i] · W_selfᵀ` (for `i < self_rows`) `+ Σ_pairs W_r · mean_r + b`, where the
/// pairs are the (destination, relation) means of `plan.pairs`, `W_r` the relation's block of
/// `weight` (`[out, R·in]`), and `self_aug = [W_self | b]` (`[out, in + 1]`). One op with its
/// own backward on CPU f32 (the self loop reads the input rows in place; the pair means are
/// recomputed in backward, not kept); candle ops elsewhere.
pub fn relational_linear(
    x: &Tensor,
    weight: &Tensor,
    self_aug: &Tensor,
    plan: &std::sync::Arc<RelationalPlan>,
) -> Result<Tensor> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    if f32_cpu(x) && f32_cpu(weight) && f32_cpu(self_aug) {
        return x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &self_aug.contiguous()?,
            RelationalLinear(plan.clone()),
        );
    }
    // Candle ops: the same sum, term by term.
    let (din, dout) = (x.dim(1)?, weight.dim(0)?);
    let n_out = plan.dest.num_rows();
    let bias = self_aug.narrow(1, din, 1)?.squeeze(1)?;
    let mut parts = vec![x.narrow(0, plan.self_start, plan.self_rows)?.matmul(&self_aug.narrow(1, 0, din)?.t()?)?];
    if n_out > plan.self_rows {
        parts.push(Tensor::zeros((n_out - plan.self_rows, dout), x.dtype(), x.device())?);
    }
    let self_term = Tensor::cat(&parts, 0)?;
    if plan.pairs.num_rows() == 0 {
        return self_term.broadcast_add(&bias);
    }
    let z = aa_graph::kernels::gather(x, &plan.pairs)?;
    let per_pair = plan
        .groups
        .iter()
        .map(|g| z.narrow(0, g.start, g.len)?.matmul(&weight.narrow(1, g.relation * din, din)?.t()?))
        .collect::<Result<Vec<_>>>()?;
    let pairs_term = aa_graph::kernels::gather_bias(&Tensor::cat(&per_pair, 0)?, &plan.dest, &bias)?;
    self_term + pairs_term
}

struct AffineActivation {
    scale: Vec<f32>,
    shift: Vec<f32>,
    activation: crate::Activation,
}

impl CustomOp1 for AffineActivation {
    fn name(&self) -> &'static str {
        "affine-activation"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c) = l.shape().dims2()?;
        if self.scale.len() != c || self.shift.len() != c {
            candle_core::bail!(
                "affine activation: {} scales / {} shifts for {c} columns",
                self.scale.len(),
                self.shift.len()
            );
        }
        let x = contiguous_f32(s, l)?;
        let mut y = vec![0f32; x.len()];
        let act = self.activation;
        affine_act_into(&mut y, x, c, &self.scale, &self.shift, act);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
}

/// `act(x·scale + shift)` per column of `[N, C]`, for inference (no backward): one pass on
/// CPU f32, candle ops elsewhere.
pub fn affine_activation(x: &Tensor, scale: &Tensor, shift: &Tensor, activation: crate::Activation) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        let op = AffineActivation {
            scale: scale.to_dtype(candle_core::DType::F32)?.to_vec1()?,
            shift: shift.to_dtype(candle_core::DType::F32)?.to_vec1()?,
            activation,
        };
        return x.contiguous()?.apply_op1_no_bwd(&op);
    }
    activation.apply(&x.broadcast_mul(scale)?.broadcast_add(shift)?)
}

/// Rows `0..split` of `a` (at least `split` rows) followed by rows `split..` of `b` (`[N, C]`),
/// with backward: each input's gradient is the output gradient on its own rows, zero elsewhere.
struct MergeRows {
    split: usize,
}

impl CustomOp2 for MergeRows {
    fn name(&self) -> &'static str {
        "merge-rows"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (na, c) = l1.shape().dims2()?;
        let (n, cb) = l2.shape().dims2()?;
        if cb != c || self.split > na || self.split > n {
            candle_core::bail!("merge rows: {:?} and {:?} split at {}", l1.shape(), l2.shape(), self.split);
        }
        let (a, b) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let k = self.split * c;
        let mut out = Vec::with_capacity(n * c);
        out.extend_from_slice(&a[..k]);
        out.extend_from_slice(&b[k..]);
        Ok((CpuStorage::F32(out), l2.shape().clone()))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (na, c) = a.dims2()?;
        let n = b.dim(0)?;
        let zeros_top = Tensor::zeros((self.split, c), grad.dtype(), grad.device())?;
        let zeros_bottom = Tensor::zeros((na - self.split, c), grad.dtype(), grad.device())?;
        let ga = Tensor::cat(&[&grad.narrow(0, 0, self.split)?, &zeros_bottom], 0)?;
        let gb = Tensor::cat(&[&zeros_top, &grad.narrow(0, self.split, n - self.split)?], 0)?;
        Ok((Some(ga), Some(gb)))
    }
}

/// Rows `0..split` of `a` then rows `split..` of `b` (`b` is `[N, C]`, `a` has at least
/// `split` rows): one op (and one pass) in place of narrow + narrow + cat, on CPU f32; candle
/// ops elsewhere.
pub fn merge_rows(a: &Tensor, b: &Tensor, split: usize) -> Result<Tensor> {
    if a.device().is_cpu() && a.dtype() == candle_core::DType::F32 && b.dtype() == candle_core::DType::F32 {
        return a.contiguous()?.apply_op2(&b.contiguous()?, MergeRows { split });
    }
    let n = b.dim(0)?;
    Tensor::cat(&[&a.narrow(0, 0, split)?, &b.narrow(0, split, n - split)?], 0)
}

/// Copies `src` into `dst`'s storage (same element count, contiguous CPU f32), so every tensor
/// sharing that storage — e.g. a `VarMap` variable — sees the values.
struct Overwrite;

impl candle_core::InplaceOp2 for Overwrite {
    fn name(&self) -> &'static str {
        "overwrite"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, src: &CpuStorage, src_l: &Layout) -> Result<()> {
        let s = contiguous_f32(src, src_l)?;
        let (CpuStorage::F32(d), Some((a, b))) = (dst, dst_l.contiguous_offsets()) else {
            candle_core::bail!("overwrite: contiguous f32 destination only")
        };
        if b - a != s.len() {
            candle_core::bail!("overwrite: {} values into {}", s.len(), b - a);
        }
        d[a..b].copy_from_slice(s);
        Ok(())
    }
}

/// Overwrites `dst` in place with `src` on CPU f32 (returns `true`); `false` elsewhere, where
/// the caller replaces the tensor instead.
pub fn overwrite(dst: &Tensor, src: &Tensor) -> Result<bool> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && t.is_contiguous();
    if !(f32_cpu(dst) && src.dtype() == candle_core::DType::F32 && src.device().is_cpu()) {
        return Ok(false);
    }
    dst.inplace_op2(&src.contiguous()?, &Overwrite)?;
    Ok(true)
}
