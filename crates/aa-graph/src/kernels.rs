//! Scatter/segment reductions over candle tensors — the one implementation every encoder in
//! the workspace uses (relational convolutions, sparse attention, readouts).
//!
//! The core is [`gather`]: a [`GatherPlan`] lists, for every output row, weighted source rows
//! (CSR), and `out[r] = Σ w · src[s]`. Sums, means and relational aggregations are plans; the
//! backward pass is the same kernel on the transposed plan, so both directions are parallel
//! gathers without write conflicts. On CPU (f32, f64) this is one fused pass; on other
//! devices it falls back to candle's `index_select`/`index_add` composite.
//!
//! [`scatter_sum`] and [`scatter_mean`] group rows of `src` (`[E, D]`) by `index` (`[E]`, u32,
//! values `< n`) into `n` segments through a plan; [`scatter_max`] picks the arg-max row per
//! segment and column and gathers it, so gradients flow to the winning rows;
//! [`scatter_softmax`] subtracts the (detached) segment max, exponentiates and divides by the
//! segment sum; [`segment_attention_pool`] is a cross-attention readout's weighted sum of rows
//! into per-segment query tokens. Every kernel has a backward pass. Empty segments give 0.

use std::sync::{Arc, OnceLock};

/// Widest SIMD level the CPU offers, detected once; the CPU kernels of the workspace run a copy
/// of their loops compiled for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    /// Baseline (SSE2 on x86-64).
    Base,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512F (with AVX2 and FMA).
    Avx512,
}

/// The [`SimdLevel`] of this CPU.
pub fn simd_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
            if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
                return SimdLevel::Avx512;
            }
            if avx2 {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Base
    })
}

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Weighted row-gather plan in CSR form: output row `r` is
/// `Σ_{k ∈ offsets[r]..offsets[r+1]} weights[k] · src[sources[k]]`.
#[derive(Debug)]
pub struct GatherPlan {
    num_sources: usize,
    offsets: Vec<u32>,
    sources: Vec<u32>,
    weights: Vec<f32>,
    transposed: OnceLock<Arc<GatherPlan>>,
}

impl GatherPlan {
    /// Builds a plan with `num_rows` output rows over `num_sources` source rows from
    /// `(row, source, weight)` entries; entries of a row keep their input order. Fails on an
    /// index out of range.
    pub fn new(num_rows: usize, num_sources: usize, entries: &[(u32, u32, f32)]) -> Result<Self> {
        let mut offsets = vec![0u32; num_rows + 1];
        for &(r, s, _) in entries {
            if r as usize >= num_rows || s as usize >= num_sources {
                candle_core::bail!("gather plan: entry ({r} ← {s}) outside {num_rows} rows / {num_sources} sources");
            }
            offsets[r as usize + 1] += 1;
        }
        for i in 0..num_rows {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut sources = vec![0u32; entries.len()];
        let mut weights = vec![0f32; entries.len()];
        for &(r, s, w) in entries {
            let k = fill[r as usize] as usize;
            sources[k] = s;
            weights[k] = w;
            fill[r as usize] += 1;
        }
        Ok(GatherPlan { num_sources, offsets, sources, weights, transposed: OnceLock::new() })
    }

    /// Segment sums (`weight = 1`) or means (`weight = 1/count`) of the rows of a `[E, D]`
    /// source grouped by `index` into `n` segments.
    pub fn segments(index: &[u32], n: usize, mean: bool) -> Result<Self> {
        let mut counts = vec![0u32; n];
        for &i in index {
            if let Some(c) = counts.get_mut(i as usize) {
                *c += 1;
            }
        }
        let entries: Vec<(u32, u32, f32)> = index
            .iter()
            .enumerate()
            .map(|(e, &s)| {
                let w = if mean { 1.0 / counts.get(s as usize).copied().unwrap_or(1).max(1) as f32 } else { 1.0 };
                (s, e as u32, w)
            })
            .collect();
        GatherPlan::new(n, index.len(), &entries)
    }

    /// Number of output rows.
    pub fn num_rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of source rows.
    pub fn num_sources(&self) -> usize {
        self.num_sources
    }

    /// Number of entries.
    pub fn num_entries(&self) -> usize {
        self.sources.len()
    }

    /// The plan of the adjoint map (sources become rows), built once on first use.
    pub fn transposed(&self) -> Arc<GatherPlan> {
        self.transposed
            .get_or_init(|| {
                let mut entries = Vec::with_capacity(self.sources.len());
                for r in 0..self.num_rows() {
                    for k in self.offsets[r] as usize..self.offsets[r + 1] as usize {
                        entries.push((self.sources[k], r as u32, self.weights[k]));
                    }
                }
                Arc::new(
                    GatherPlan::new(self.num_sources, self.num_rows(), &entries)
                        .expect("transposing a valid plan stays in range"),
                )
            })
            .clone()
    }

    /// `(indices, weights)` as tensors, for the device fallback.
    fn as_tensors(&self, device: &candle_core::Device) -> Result<(Tensor, Tensor, Tensor)> {
        let n = self.sources.len();
        let mut rows = Vec::with_capacity(n);
        for r in 0..self.num_rows() {
            rows.extend(std::iter::repeat_n(r as u32, (self.offsets[r + 1] - self.offsets[r]) as usize));
        }
        Ok((
            Tensor::from_vec(rows, n, device)?,
            Tensor::from_vec(self.sources.clone(), n, device)?,
            Tensor::from_vec(self.weights.clone(), (n, 1), device)?,
        ))
    }

    /// The CPU kernel on raw f32 rows, for fused ops built on it: `out[r] += Σ w · src[s]`,
    /// rows `d` wide (`src` holds `num_sources`, `out` `num_rows` rows). Fails on a length
    /// mismatch.
    pub fn accumulate_f32(&self, src: &[f32], d: usize, out: &mut [f32]) -> Result<()> {
        if src.len() != self.num_sources * d || out.len() != self.num_rows() * d {
            candle_core::bail!(
                "gather: {} source and {} output values for {}×{d} / {}×{d}",
                src.len(),
                out.len(),
                self.num_sources,
                self.num_rows()
            );
        }
        self.run(src, d, out);
        Ok(())
    }

    /// The CPU kernel: `out[r] (+)= Σ w · src[s]` for `d`-wide rows, in parallel over rows;
    /// each task runs a copy of the loop compiled for the CPU's [`SimdLevel`].
    fn run<T: Elem>(&self, src: &[T], d: usize, out: &mut [T]) {
        let d = d.max(1);
        let rows_per_task = (8192 / d).max(1);
        let level = simd_level();
        out.par_chunks_mut(d * rows_per_task).enumerate().for_each(|(task, rows)| {
            let first = task * rows_per_task;
            match level {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the level says the CPU has these features.
                SimdLevel::Avx512 => unsafe { self.rows_avx512(src, d, first, rows) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                SimdLevel::Avx2 => unsafe { self.rows_avx2(src, d, first, rows) },
                _ => self.rows(src, d, first, rows),
            }
        });
    }

    /// Output rows `first..` (the `rows` slice) of [`GatherPlan::run`].
    #[inline(always)]
    fn rows<T: Elem>(&self, src: &[T], d: usize, first: usize, rows: &mut [T]) {
        for (i, row) in rows.chunks_exact_mut(d).enumerate() {
            let r = first + i;
            for k in self.offsets[r] as usize..self.offsets[r + 1] as usize {
                let s = self.sources[k] as usize;
                let w = T::from_f32(self.weights[k]);
                for (o, &v) in row.iter_mut().zip(&src[s * d..(s + 1) * d]) {
                    *o += w * v;
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2<T: Elem>(&self, src: &[T], d: usize, first: usize, rows: &mut [T]) {
        self.rows(src, d, first, rows)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn rows_avx512<T: Elem>(&self, src: &[T], d: usize, first: usize, rows: &mut [T]) {
        self.rows(src, d, first, rows)
    }
}

/// Float element types the CPU kernel runs on.
trait Elem: Copy + Send + Sync + std::ops::AddAssign + std::ops::Mul<Output = Self> + 'static {
    fn from_f32(v: f32) -> Self;
    fn zero() -> Self;
}

impl Elem for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn zero() -> Self {
        0.0
    }
}

impl Elem for f64 {
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    fn zero() -> Self {
        0.0
    }
}

fn cpu_slice<'a, T: candle_core::WithDType>(s: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("gather: {what} must be contiguous"),
    }
}

/// `base + gather(src)` (base optional) on CPU storage.
fn gather_cpu(
    plan: &GatherPlan,
    base: Option<(&CpuStorage, &Layout)>,
    src: &CpuStorage,
    ls: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let (e, d) = ls.shape().dims2()?;
    if e != plan.num_sources {
        candle_core::bail!("gather: source has {e} rows, the plan {}", plan.num_sources);
    }
    let shape = Shape::from((plan.num_rows(), d));
    fn go<T: Elem + candle_core::WithDType>(
        plan: &GatherPlan,
        base: Option<(&[T], &Layout)>,
        src: &[T],
        ls: &Layout,
        d: usize,
    ) -> Result<Vec<T>> {
        let src = cpu_slice(src, ls, "source")?;
        let mut out = match base {
            Some((b, lb)) => {
                if lb.shape().dims() != [plan.num_rows(), d] {
                    candle_core::bail!("gather: base {:?}, expected [{}, {d}]", lb.shape(), plan.num_rows());
                }
                cpu_slice(b, lb, "base")?.to_vec()
            }
            None => vec![<T as Elem>::zero(); plan.num_rows() * d],
        };
        plan.run(src, d, &mut out);
        Ok(out)
    }
    let out = match (src, base) {
        (CpuStorage::F32(s), None) => CpuStorage::F32(go(plan, None, s, ls, d)?),
        (CpuStorage::F64(s), None) => CpuStorage::F64(go(plan, None, s, ls, d)?),
        (CpuStorage::F32(s), Some((CpuStorage::F32(b), lb))) => CpuStorage::F32(go(plan, Some((b, lb)), s, ls, d)?),
        (CpuStorage::F64(s), Some((CpuStorage::F64(b), lb))) => CpuStorage::F64(go(plan, Some((b, lb)), s, ls, d)?),
        _ => candle_core::bail!("gather: f32 or f64 tensors of one dtype only"),
    };
    Ok((out, shape))
}

struct Gather(Arc<GatherPlan>);

impl CustomOp1 for Gather {
    fn name(&self) -> &'static str {
        "aa-gather"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        gather_cpu(&self.0, None, s, l)
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(gather(grad, &self.0.transposed())?))
    }
}

fn cpu_ok(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// `out[r] = Σ_{(s, w) ∈ plan[r]} w · src[s]` for `src` `[S, D]` → `[R, D]`, with backward.
pub fn gather(src: &Tensor, plan: &Arc<GatherPlan>) -> Result<Tensor> {
    if cpu_ok(src) {
        return src.contiguous()?.apply_op1(Gather(plan.clone()));
    }
    let (rows, sources, weights) = plan.as_tensors(src.device())?;
    let msg = src.index_select(&sources, 0)?.broadcast_mul(&weights.to_dtype(src.dtype())?)?;
    Tensor::zeros((plan.num_rows(), src.dim(1)?), src.dtype(), src.device())?.index_add(&rows, &msg, 0)
}

struct GatherBias(Arc<GatherPlan>);

impl CustomOp2 for GatherBias {
    fn name(&self) -> &'static str {
        "aa-gather-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (mut out, shape) = gather_cpu(&self.0, None, s1, l1)?;
        let d = shape.dims2()?.1;
        fn add<T: Elem + candle_core::WithDType>(out: &mut [T], bias: &[T], d: usize) {
            out.par_chunks_mut(d.max(1)).for_each(|row| row.iter_mut().zip(bias).for_each(|(o, &b)| *o += b));
        }
        match (&mut out, s2) {
            (CpuStorage::F32(o), CpuStorage::F32(b)) => add(o, cpu_slice(b, l2, "bias")?, d),
            (CpuStorage::F64(o), CpuStorage::F64(b)) => add(o, cpu_slice(b, l2, "bias")?, d),
            _ => candle_core::bail!("gather with bias: source and bias must share one float dtype"),
        }
        if l2.shape().elem_count() != d {
            candle_core::bail!("gather with bias: {} biases for {d} columns", l2.shape().elem_count());
        }
        Ok((out, shape))
    }

    fn bwd(
        &self,
        _s: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // The bias gradient is the column sum: a ones-row matmul (candle's row reductions are
        // slow on tall matrices).
        let ones = Tensor::ones((1, grad.dim(0)?), grad.dtype(), grad.device())?;
        let db = ones.matmul(&grad.contiguous()?)?.reshape(bias.shape())?;
        Ok((Some(gather(grad, &self.0.transposed())?), Some(db)))
    }
}

/// `gather(src, plan) + bias` (bias `[D]`, added to every output row) in one op.
pub fn gather_bias(src: &Tensor, plan: &Arc<GatherPlan>, bias: &Tensor) -> Result<Tensor> {
    if cpu_ok(src) && bias.dtype() == src.dtype() && bias.device().is_cpu() {
        return src.contiguous()?.apply_op2(&bias.contiguous()?, GatherBias(plan.clone()));
    }
    gather(src, plan)?.broadcast_add(bias)
}

/// Per-segment sums: `out[s] = Σ_{e: index[e] = s} src[e]`.
pub fn scatter_sum(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let plan = Arc::new(GatherPlan::segments(&index.to_vec1::<u32>()?, n, false)?);
    gather(src, &plan)
}

/// Per-segment means (0 for empty segments).
pub fn scatter_mean(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let plan = Arc::new(GatherPlan::segments(&index.to_vec1::<u32>()?, n, true)?);
    gather(src, &plan)
}

/// Per-segment, per-column maxima (0 for empty segments); the gradient goes to the row that
/// holds the maximum (the first one on ties).
pub fn scatter_max(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (e, d) = src.dims2()?;
    let values = src.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let idx = index.to_vec1::<u32>()?;
    // Empty segments point at an extra zero row appended below `src`.
    let mut arg = vec![e as u32; n * d];
    let mut best = vec![f32::NEG_INFINITY; n * d];
    for (row, &s) in idx.iter().enumerate() {
        let s = s as usize;
        if s >= n {
            continue;
        }
        for c in 0..d {
            let v = values[row][c];
            if v > best[s * d + c] || arg[s * d + c] == e as u32 {
                best[s * d + c] = v;
                arg[s * d + c] = row as u32;
            }
        }
    }
    let padded = Tensor::cat(&[src, &Tensor::zeros((1, d), src.dtype(), src.device())?], 0)?;
    let arg = Tensor::from_vec(arg, (n, d), src.device())?;
    padded.gather(&arg, 0)
}

/// Softmax of `src` (`[E, H]`) within each segment, per column.
pub fn scatter_softmax(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let max = scatter_max(&src.detach(), index, n)?;
    let shifted = src.broadcast_sub(&max.index_select(index, 0)?)?;
    let exp = shifted.exp()?;
    let sum = scatter_sum(&exp, index, n)?;
    exp.broadcast_div(&sum.index_select(index, 0)?)
}

/// Attention pooling of rows into per-segment query tokens, `alpha` `[E, T, H]` (the weight
/// query `t`, head `h` gives row `e`), `v` `[E, H, C]` (row `e`'s values per head) →
/// `[n, T, H, C]` with `out[s, t, h] = Σ_{e: index[e] = s} alpha[e, t, h] · v[e, h]` — the
/// weighted sum of a cross-attention readout without materialising `[E, T, H, C]`. f32 on CPU
/// (other devices: the broadcast composite); differentiable in `alpha` and `v`.
pub fn segment_attention_pool(alpha: &Tensor, v: &Tensor, index: &[u32], n: usize) -> Result<Tensor> {
    let (e, t, h) = alpha.dims3()?;
    let (e2, h2, c) = v.dims3()?;
    if e2 != e || h2 != h || index.len() != e || index.iter().any(|&s| s as usize >= n) {
        candle_core::bail!(
            "attention pool: alpha {:?}, values {:?} and {} segment ids (< {n}) do not fit",
            alpha.shape(),
            v.shape(),
            index.len()
        );
    }
    if !(alpha.device().is_cpu() && alpha.dtype() == DType::F32 && v.dtype() == DType::F32) {
        let idx = Tensor::from_slice(index, e, alpha.device())?;
        let w = alpha.reshape((e, t, h, 1))?.broadcast_mul(&v.reshape((e, 1, h, c))?)?.reshape((e, t * h * c))?;
        return scatter_sum(&w, &idx, n)?.reshape((n, t, h, c));
    }
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (r, &s) in index.iter().enumerate() {
        rows[s as usize].push(r as u32);
    }
    let op = AttentionPool { rows: Arc::new(rows), index: Arc::new(index.to_vec()), t, h, c };
    alpha.contiguous()?.apply_op2(&v.contiguous()?, op)
}

struct AttentionPool {
    rows: Arc<Vec<Vec<u32>>>,
    index: Arc<Vec<u32>>,
    t: usize,
    h: usize,
    c: usize,
}

impl AttentionPool {
    fn pool(&self, alpha: &[f32], v: &[f32]) -> Vec<f32> {
        let (t, h, c) = (self.t, self.h, self.c);
        let mut out = vec![0f32; self.rows.len() * t * h * c];
        out.par_chunks_mut((t * h * c).max(1)).zip(self.rows.par_iter()).for_each(|(o, rows)| {
            for &r in rows {
                let r = r as usize;
                for q in 0..t {
                    for k in 0..h {
                        let a = alpha[(r * t + q) * h + k];
                        let vals = &v[(r * h + k) * c..(r * h + k + 1) * c];
                        let dst = &mut o[(q * h + k) * c..(q * h + k + 1) * c];
                        dst.iter_mut().zip(vals).for_each(|(d, &x)| *d += a * x);
                    }
                }
            }
        });
        out
    }
}

impl CustomOp2 for AttentionPool {
    fn name(&self) -> &'static str {
        "aa-attention-pool"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(a), CpuStorage::F32(v)) = (s1, s2) else {
            candle_core::bail!("attention pool: f32 inputs expected")
        };
        let out = self.pool(cpu_slice(a, l1, "alpha")?, cpu_slice(v, l2, "values")?);
        Ok((CpuStorage::F32(out), Shape::from((self.rows.len(), self.t, self.h, self.c))))
    }

    fn bwd(
        &self,
        alpha: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (t, h, c) = (self.t, self.h, self.c);
        let (a, vv) = (alpha.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?);
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let e = self.index.len();
        // Per row: dα[e, t, h] = ⟨g[s, t, h], v[e, h]⟩ and dv[e, h] = Σ_t α[e, t, h] · g[s, t, h].
        let mut ga = vec![0f32; e * t * h];
        let mut gv = vec![0f32; e * h * c];
        ga.par_chunks_mut((t * h).max(1)).zip(gv.par_chunks_mut((h * c).max(1))).enumerate().for_each(
            |(r, (gar, gvr))| {
                let s = self.index[r] as usize;
                for q in 0..t {
                    for k in 0..h {
                        let gs = &g[((s * t + q) * h + k) * c..((s * t + q) * h + k + 1) * c];
                        let vals = &vv[(r * h + k) * c..(r * h + k + 1) * c];
                        gar[q * h + k] = gs.iter().zip(vals).map(|(x, y)| x * y).sum();
                        let w = a[(r * t + q) * h + k];
                        gvr[k * c..(k + 1) * c].iter_mut().zip(gs).for_each(|(d, &x)| *d += w * x);
                    }
                }
            },
        );
        let dev = alpha.device();
        Ok((Some(Tensor::from_vec(ga, (e, t, h), dev)?), Some(Tensor::from_vec(gv, (e, h, c), dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t2(v: &[f64], r: usize, c: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (r, c), &Device::Cpu).unwrap()
    }

    fn idx(v: &[u32]) -> Tensor {
        Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
    }

    #[test]
    fn values_by_hand() {
        let src = t2(&[1., 2., 3., -4., 5., 6., -7., 8.], 4, 2);
        let index = idx(&[0, 2, 0, 2]);
        let s = scatter_sum(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(s, vec![vec![6., 8.], vec![0., 0.], vec![-4., 4.]]);
        let m = scatter_mean(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(m, vec![vec![3., 4.], vec![0., 0.], vec![-2., 2.]]);
        let x = scatter_max(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(x, vec![vec![5., 6.], vec![0., 0.], vec![3., 8.]]);
        let sm = scatter_softmax(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        let e = |a: f64, b: f64| (a).exp() / (a.exp() + b.exp());
        assert!((sm[0][0] - e(1., 5.)).abs() < 1e-12);
        assert!((sm[1][1] - e(-4., 8.)).abs() < 1e-12);
        assert!((sm[0][0] + sm[2][0] - 1.0).abs() < 1e-12);
    }

    /// Gradients of `Σ w ⊙ f(src)` against central finite differences, in f64.
    fn check_grad(f: impl Fn(&Tensor) -> Tensor) {
        let vals: Vec<f64> = (0..15).map(|i| ((i * 7919) % 23) as f64 / 7.0 - 1.3).collect();
        let var = Var::from_tensor(&t2(&vals, 5, 3)).unwrap();
        let out = f(var.as_tensor());
        let (r, c) = out.dims2().unwrap();
        let w: Vec<f64> = (0..r * c).map(|i| 0.3 + (i as f64) * 0.17).collect();
        let wt = t2(&w, r, c);
        let loss = (out * &wt).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let h = 1e-6;
        for k in 0..vals.len() {
            let mut p = vals.clone();
            p[k] += h;
            let mut m = vals.clone();
            m[k] -= h;
            let fp = (f(&t2(&p, 5, 3)) * &wt).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            let fm = (f(&t2(&m, 5, 3)) * &wt).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            let num = (fp - fm) / (2.0 * h);
            assert!((num - g[k]).abs() < 1e-6, "entry {k}: numeric {num} vs autograd {}", g[k]);
        }
    }

    #[test]
    fn gather_variants_match_composites() {
        // Rows: 0 ← 2·src1 + src3, 1 ← (nothing), 2 ← 0.5·src0.
        let plan = Arc::new(GatherPlan::new(3, 4, &[(0, 1, 2.0), (2, 0, 0.5), (0, 3, 1.0)]).unwrap());
        let src = t2(&[1., 2., 3., 4., 5., 6., 7., 8.], 4, 2);
        let g = gather(&src, &plan).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(g, vec![vec![13., 16.], vec![0., 0.], vec![0.5, 1.]]);
        let bias = Tensor::from_vec(vec![10f64, 20.], 2, &Device::Cpu).unwrap();
        let gb = gather_bias(&src, &plan, &bias).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(gb, vec![vec![23., 36.], vec![10., 20.], vec![10.5, 21.]]);
        // The transposed plan is the adjoint: <gather(x), y> = <x, gatherᵀ(y)>.
        let y = t2(&[0.3, -1., 2., 0.5, -0.7, 1.1], 3, 2);
        let lhs = (gather(&src, &plan).unwrap() * &y).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let rhs =
            (gather(&y, &plan.transposed()).unwrap() * &src).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        assert!((lhs - rhs).abs() < 1e-12);
        assert!(GatherPlan::new(2, 2, &[(2, 0, 1.0)]).is_err(), "row out of range");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let index = idx(&[1, 0, 1, 3, 1]);
        check_grad(|x| scatter_sum(x, &index, 4).unwrap());
        check_grad(|x| scatter_mean(x, &index, 4).unwrap());
        check_grad(|x| scatter_max(x, &index, 4).unwrap());
        check_grad(|x| scatter_softmax(x, &index, 4).unwrap());
        let plan = Arc::new(GatherPlan::new(2, 5, &[(0, 1, 0.5), (1, 4, 2.0), (0, 3, -1.0), (1, 1, 1.0)]).unwrap());
        let bias = Tensor::from_vec(vec![0.1f64, 0.2, 0.3], 3, &Device::Cpu).unwrap();
        check_grad(|x| gather_bias(x, &plan, &bias).unwrap());
    }

    #[test]
    fn attention_pool_matches_the_broadcast_composite_with_gradients() {
        let (e, t, h, c, n) = (7, 3, 2, 4, 3);
        let index = [2u32, 0, 2, 1, 0, 2, 0];
        let val = |k: usize, m: usize| ((k * 7919 + m * 104729) % 97) as f32 / 48.0 - 1.0;
        let alpha = Var::from_vec((0..e * t * h).map(|k| val(k, 1)).collect(), (e, t, h), &Device::Cpu).unwrap();
        let v = Var::from_vec((0..e * h * c).map(|k| val(k, 2)).collect(), (e, h, c), &Device::Cpu).unwrap();
        let w = Tensor::from_vec((0..n * t * h * c).map(|k| val(k, 3)).collect(), (n, t, h, c), &Device::Cpu).unwrap();
        let fused = segment_attention_pool(alpha.as_tensor(), v.as_tensor(), &index, n).unwrap();
        let composite = {
            let prod = alpha.reshape((e, t, h, 1)).unwrap().broadcast_mul(&v.reshape((e, 1, h, c)).unwrap()).unwrap();
            scatter_sum(&prod.reshape((e, t * h * c)).unwrap(), &idx(&index), n).unwrap().reshape((n, t, h, c)).unwrap()
        };
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        assert!(diff(&fused, &composite) < 1e-6);
        let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gc = (composite * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for x in [alpha.as_tensor(), v.as_tensor()] {
            assert!(diff(gf.get(x).unwrap(), gc.get(x).unwrap()) < 1e-5);
        }
        assert!(segment_attention_pool(alpha.as_tensor(), v.as_tensor(), &index, 2).is_err(), "segment 2 of 2");
    }
}
