//! Dense CPU kernels shared by the layer crates: vectorisable `exp`/`erf`, the exact-erf GELU
//! as one fused pass with its backward, element-wise row kernels run in copies compiled for the
//! CPU's SIMD level ([`par_rows`]), and a strided f32 matrix product ([`gemm_f32`], via the
//! `gemm` crate candle itself uses), and a LayerNorm with a differentiable training path.
//! Parallel sums combine in a fixed order, so results are
//! bit-reproducible.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::{simd_level, SimdLevel};

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `eʸ` for `y ≤ 0` in plain f32 arithmetic (no libm call and no float→int conversion, so
/// loops over it vectorise): `y = n·ln 2 + r` (ln 2 split Cody–Waite style) with
/// `|r| ≤ ln 2 / 2`, a degree-6 Taylor polynomial for `eʳ` (relative error < 3·10⁻⁷), and `2ⁿ`
/// written into the exponent bits. Below −87 it returns e⁻⁸⁷ (≈ 1.6·10⁻³⁸).
#[inline(always)]
pub fn exp_nonpositive(y: f32) -> f32 {
    // 1.5·2²³: adding it rounds `y·log₂e` to the nearest integer, which then sits in the low
    // mantissa bits of the sum (as `n + 2²²` there), so `n` is read off with integer ops.
    const ROUND: f32 = 12_582_912.0;
    let y = y.max(-87.0);
    let shifted = y * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 split in two (Cody–Waite) so `n·ln 2` is subtracted without rounding loss.
    let r = (y - n * 0.693_145_75) - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // bits(shifted) = bits(ROUND) + n for |n| < 2²², and 2ⁿ has exponent field n + 127.
    let ni = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(ni.wrapping_add(127) << 23);
    p * scale
}

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷, under 5·10⁻⁷
/// after f32 rounding): a rational term times `exp(−x²)`. Branch-free and without libm calls,
/// so GELU loops vectorise; a test compares it with candle's `erf_f64`.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp_nonpositive(-a * a);
    y.copysign(x)
}

/// GELU with the exact-erf form, `x·Φ(x)`.
#[inline(always)]
pub fn gelu_f32(v: f32) -> f32 {
    0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// Derivative of the exact GELU, `Φ(x) + x·φ(x)`.
#[inline(always)]
pub fn gelu_grad_f32(v: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = FRAC_1_SQRT_2PI * exp_nonpositive(-0.5 * v * v);
    cdf + v * pdf
}

/// An element-wise kernel over a chunk of whole rows: `out` from inputs `x` and `y` (equally
/// long), optionally returning per-chunk sums (empty otherwise). Implementations mark `body`
/// `#[inline(always)]`, so [`par_rows`] compiles it into its AVX2 / AVX-512 variants.
pub trait RowKernel: Sync {
    /// Writes `out` from `x` and `y`; returns per-chunk sums or nothing.
    fn body(&self, out: &mut [f32], x: &[f32], y: &[f32]) -> Vec<f64>;
}

/// `out = GELU(x)`.
pub(crate) struct GeluMap;

impl RowKernel for GeluMap {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], _: &[f32]) -> Vec<f64> {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = gelu_f32(v));
        Vec::new()
    }
}

/// `out = y · GELU′(x)`.
pub(crate) struct GeluMapGrad;

impl RowKernel for GeluMapGrad {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], y: &[f32]) -> Vec<f64> {
        out.iter_mut().zip(x).zip(y).for_each(|((o, &v), &g)| *o = g * gelu_grad_f32(v));
        Vec::new()
    }
}

/// Elements per parallel task of the element-wise kernels (rounded to whole rows).
pub const TASK_ELEMS: usize = 8192;

/// Runs `kernel` over matching chunks of whole rows (`row` wide) of three equally long slices,
/// in parallel, in a copy compiled for the CPU's [`SimdLevel`] (AVX-512 or AVX2 with FMA where
/// present), so its element loops vectorise 16- or 8-wide instead of SSE2's 4.
pub fn par_rows<K: RowKernel>(out: &mut [f32], a: &[f32], b: &[f32], row: usize, kernel: &K) -> Vec<Vec<f64>> {
    debug_assert!(out.len() == a.len() && a.len() == b.len());
    let chunk = row.max(1) * (TASK_ELEMS / row.max(1)).max(1);
    let level = simd_level();
    // Collected in chunk order, so sums combine the same way on every run.
    out.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk))
        .zip(b.par_chunks(chunk))
        .map(|((o, x), y)| match level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the level says the CPU has these features.
            SimdLevel::Avx512 => unsafe { body_avx512(kernel, o, x, y) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            SimdLevel::Avx2 => unsafe { body_avx2(kernel, o, x, y) },
            _ => kernel.body(o, x, y),
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn body_avx2<K: RowKernel>(kernel: &K, o: &mut [f32], x: &[f32], y: &[f32]) -> Vec<f64> {
    kernel.body(o, x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn body_avx512<K: RowKernel>(kernel: &K, o: &mut [f32], x: &[f32], y: &[f32]) -> Vec<f64> {
    kernel.body(o, x, y)
}

/// A tensor's values as one f32 vector (what the fused kernels' backward passes read).
pub fn vec_of(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// The contiguous f32 slice of a CPU storage (fused kernels take contiguous f32 only).
pub fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("fused CPU kernel: f32 only") };
    let Some((a, b)) = l.contiguous_offsets() else { candle_core::bail!("fused CPU kernel: contiguous input only") };
    Ok(&v[a..b])
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "fused-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l)?;
        let mut y = vec![0f32; x.len()];
        par_rows(&mut y, x, x, 1, &GeluMap);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluErfGrad)?))
    }
}

/// `grad · (Φ(x) + x·φ(x))` in one pass.
struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "fused-gelu-erf-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1)?;
        let g = contiguous_f32(s2, l2)?;
        if x.len() != g.len() {
            candle_core::bail!("fused gelu grad: {} inputs, {} gradients", x.len(), g.len());
        }
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, x, g, 1, &GeluMapGrad);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Exact-erf GELU; on contiguous CPU f32 tensors one fused pass forward and backward,
/// otherwise candle's `gelu_erf`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` with explicit (row, column) strides, via the `gemm`
/// crate candle itself uses; `accumulate` adds onto `dst` instead of overwriting it.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    threads: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // Bounds the strided reads/writes stay within (checked, so the unsafe call is sound).
    assert!(dst.len() >= (m - 1) * dst_rs + n);
    assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every strided access inside the three slices, and `dst`
    // does not alias the inputs (it is a distinct `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Inference `x·wᵀ + b (+ residual)` for a contiguous CPU f32 `x` `[.., K]`, `w` `[N, K]` (the
/// `candle_nn::Linear` layout), `b` `[N]` and `residual` shaped like the output `[.., N]`: the
/// output rows start as `residual + b` and one multi-threaded [`gemm_f32`] accumulates onto
/// them, so the bias and the residual add cost no extra pass over a tensor and no candle
/// element-wise op runs (candle 0.11 hands large element-wise ops to its own thread pool,
/// whose worker then spins beside the matrix products). No autograd: inference only.
pub fn linear_f32(x: &Tensor, w: &Tensor, b: Option<&Tensor>, residual: Option<&Tensor>) -> Result<Tensor> {
    let (n_out, k) = w.dims2()?;
    let mut dims = x.dims().to_vec();
    if dims.last() != Some(&k) {
        candle_core::bail!("linear_f32: input {:?} does not end in the weight's {k} columns", x.dims());
    }
    let rows = x.elem_count() / k.max(1);
    *dims.last_mut().expect("checked above") = n_out;
    let bias: Option<Vec<f32>> = b.map(|b| b.flatten_all()?.to_vec1::<f32>()).transpose()?;
    if bias.as_ref().is_some_and(|b| b.len() != n_out) {
        candle_core::bail!("linear_f32: {:?} biases for {n_out} outputs", b.map(|b| b.dims().to_vec()));
    }
    if residual.is_some_and(|r| r.dims() != dims.as_slice()) {
        candle_core::bail!("linear_f32: residual {:?}, output {:?}", residual.map(|r| r.dims().to_vec()), dims);
    }
    let (x, w, residual) = (x.contiguous()?, w.contiguous()?, residual.map(|r| r.contiguous()).transpose()?);
    let mut out = vec![0f32; rows * n_out];
    with_cpu_f32(&x, |xv| {
        with_cpu_f32(&w, |wv| {
            let fill = |out: &mut [f32], rv: Option<&[f32]>| {
                let rows_per_task = (TASK_ELEMS / n_out.max(1)).max(1);
                out.par_chunks_mut(rows_per_task * n_out).enumerate().for_each(|(c, o)| {
                    let start = c * rows_per_task * n_out;
                    for (i, row) in o.chunks_exact_mut(n_out).enumerate() {
                        let r = rv.map(|rv| &rv[start + i * n_out..start + (i + 1) * n_out]);
                        match (&bias, r) {
                            (Some(b), Some(r)) => row.iter_mut().zip(r).zip(b).for_each(|((o, &r), &b)| *o = r + b),
                            (Some(b), None) => row.copy_from_slice(b),
                            (None, Some(r)) => row.copy_from_slice(r),
                            (None, None) => {}
                        }
                    }
                });
            };
            match &residual {
                Some(r) => with_cpu_f32(r, |rv| {
                    fill(&mut out, Some(rv));
                    Ok(())
                })?,
                None if bias.is_some() => fill(&mut out, None),
                None => {}
            }
            let accumulate = bias.is_some() || residual.is_some();
            let threads = rayon::current_num_threads();
            gemm_f32(rows, n_out, k, &mut out, n_out, xv, (k, 1), wv, (1, k), threads, accumulate);
            Ok(())
        })
    })?;
    Tensor::from_vec(out, dims, x.device())
}

/// The f32 data of a contiguous tensor's storage; an error off the CPU.
pub fn storage_f32<'a>(storage: &'a candle_core::Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        candle_core::Storage::Cpu(s) => contiguous_f32(s, layout),
        _ => candle_core::bail!("fused CPU kernel: CPU tensors only"),
    }
}

/// Calls `f` with the f32 data of a contiguous CPU tensor.
pub fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    f(storage_f32(&storage, layout)?)
}

/// LayerNorm over the last dimension (`weight`, `bias` parameters). candle's fused
/// `ops::layer_norm` (and `candle_nn::LayerNorm` on contiguous input) has no backward, so
/// `forward(x, true)` runs the workspace's differentiable kernel ([`crate::norm::layer_norm`]);
/// `forward(x, false)` uses candle's fused one. Both give the same numbers to f32 rounding.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Loads or creates the parameters (initialised to 1 and 0).
    pub fn new(vb: candle_nn::VarBuilder, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
            eps: eps as f32,
        })
    }

    /// Normalises `x`; `train` selects the differentiable path.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            crate::norm::layer_norm(x, &self.weight, &self.bias, self.eps)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_and_finite_differences() {
        let v: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 9.0).collect();
        let x = Var::from_vec(v.clone(), (8, 8), &Device::Cpu).unwrap();
        let ours = gelu_erf(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        let d = (&ours - &theirs)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{d}");
        let w = Tensor::arange(0f32, 64.0, &Device::Cpu).unwrap().reshape((8, 8)).unwrap();
        let grads = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let f = |t: f64| 0.5 * t * (1.0 + erf64(t / std::f64::consts::SQRT_2));
        for (k, &t) in v.iter().enumerate() {
            let h = 1e-4;
            let num = (f(t as f64 + h) - f(t as f64 - h)) / (2.0 * h) * k as f64;
            assert!((num - g[k] as f64).abs() < 1e-3 * (1.0 + num.abs()), "x={t}: numeric {num} vs {}", g[k]);
        }
    }

    #[test]
    fn fast_exp_within_its_bound() {
        for i in 0..=20000 {
            let y = -(i as f32) / 200.0;
            let (ours, exact) = (exp_nonpositive(y) as f64, (y as f64).exp());
            assert!((ours - exact).abs() <= 3e-7 * exact + 2e-38, "exp({y}): {ours} vs {exact}");
        }
        assert!(exp_nonpositive(-1000.0) < 2e-38);
    }

    #[test]
    fn fast_erf_within_its_bound() {
        for i in -4000..=4000 {
            let x = i as f32 / 500.0;
            let d = (erf_f32(x) as f64 - erf64(x as f64)).abs();
            assert!(d < 5e-7, "erf({x}): {d}");
        }
    }

    #[test]
    fn linear_matches_candle_with_bias_and_residual() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 37, 19), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (23, 19), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 23, &dev).unwrap();
        let r = Tensor::randn(0f32, 1.0, (2, 37, 23), &dev).unwrap();
        let plain = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        let with_b = plain.broadcast_add(&b).unwrap();
        let with_br = (&with_b + &r).unwrap();
        let diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        assert!(diff(&linear_f32(&x, &w, None, None).unwrap(), &plain) < 1e-4);
        assert!(diff(&linear_f32(&x, &w, Some(&b), None).unwrap(), &with_b) < 1e-4);
        assert!(diff(&linear_f32(&x, &w, Some(&b), Some(&r)).unwrap(), &with_br) < 1e-4);
        assert!(diff(&linear_f32(&x, &w, None, Some(&r)).unwrap(), &(&plain + &r).unwrap()) < 1e-4);
        // Non-contiguous input (a transposed view) is made contiguous first.
        let xt = x.transpose(0, 1).unwrap();
        let want = xt.broadcast_matmul(&w.t().unwrap()).unwrap();
        assert!(diff(&linear_f32(&xt, &w, None, None).unwrap(), &want) < 1e-4);
        // Shape errors say what did not fit.
        let e = linear_f32(&x, &w.narrow(1, 0, 18).unwrap(), None, None).unwrap_err().to_string();
        assert!(e.contains("18 columns"), "{e}");
        let e = linear_f32(&x, &w, Some(&b.narrow(0, 0, 5).unwrap()), None).unwrap_err().to_string();
        assert!(e.contains("biases"), "{e}");
        let e = linear_f32(&x, &w, None, Some(&x)).unwrap_err().to_string();
        assert!(e.contains("residual"), "{e}");
    }

    fn erf64(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }
}
