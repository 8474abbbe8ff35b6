//! Fused element-wise ops with their own backward, so a training step does not allocate a
//! dozen `[N, D]` temporaries per activation (candle's composite GELU-erf backward does).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `eʸ` for `y ≤ 0` in plain f32 arithmetic (no libm call, so loops over it vectorise):
/// `y = n·ln 2 + r` (ln 2 split Cody–Waite style) with `|r| ≤ ln 2 / 2`, a degree-6 Taylor
/// polynomial for `eʳ` (relative error < 3·10⁻⁷), and `2ⁿ` written into the exponent bits.
/// Below −87 it returns e⁻⁸⁷ (≈ 1.6·10⁻³⁸).
#[inline(always)]
fn exp_nonpositive(y: f32) -> f32 {
    let y = y.max(-87.0);
    // Round y·log₂e to the nearest integer: the argument is negative, so truncation (a plain
    // conversion, unlike `ceil`, vectorises without SSE4.1) of `v − 0.5` rounds it.
    let ni = (y * std::f32::consts::LOG2_E - 0.5) as i32;
    let n = ni as f32;
    // ln 2 split in two (Cody–Waite) so `n·ln 2` is subtracted without rounding loss.
    let r = (y - n * 0.693_145_75) - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
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
fn gelu_f32(v: f32) -> f32 {
    0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// Derivative of the exact GELU, `Φ(x) + x·φ(x)`.
#[inline(always)]
fn gelu_grad_f32(v: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = FRAC_1_SQRT_2PI * exp_nonpositive(-0.5 * v * v);
    cdf + v * pdf
}

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

/// An element-wise kernel over a chunk of whole rows: `out` from inputs `x` and `y` (equally
/// long). Implementations mark `body` `#[inline(always)]`, so [`par_rows`] compiles it into
/// its AVX2 variant.
trait RowKernel: Sync {
    fn body(&self, out: &mut [f32], x: &[f32], y: &[f32]);
}

/// `out = A(x)`.
struct Map<A>(std::marker::PhantomData<A>);

impl<A: ActFn> RowKernel for Map<A> {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], _: &[f32]) {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = A::f(v));
    }
}

/// `out = y · A′(x)`.
struct MapGrad<A>(std::marker::PhantomData<A>);

impl<A: ActFn> RowKernel for MapGrad<A> {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], y: &[f32]) {
        out.iter_mut().zip(x).zip(y).for_each(|((o, &v), &g)| *o = g * A::d(v));
    }
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
    fn body(&self, out: &mut [f32], x: &[f32], _: &[f32]) {
        for (row, xr) in out.chunks_exact_mut(self.c).zip(x.chunks_exact(self.c)) {
            for (((v, &xv), &a), &b) in row.iter_mut().zip(xr).zip(self.scale).zip(self.shift) {
                *v = A::f(xv * a + b);
            }
        }
    }
}

/// `out = y · A′(x·scale + shift)` per column.
struct AffineGrad<'a, A> {
    c: usize,
    scale: &'a [f32],
    shift: &'a [f32],
    act: std::marker::PhantomData<A>,
}

impl<A: ActFn> RowKernel for AffineGrad<'_, A> {
    #[inline(always)]
    fn body(&self, out: &mut [f32], x: &[f32], y: &[f32]) {
        let rows = out.chunks_exact_mut(self.c).zip(x.chunks_exact(self.c)).zip(y.chunks_exact(self.c));
        for ((or, xr), gr) in rows {
            for k in 0..self.c {
                or[k] = gr[k] * A::d(xr[k] * self.scale[k] + self.shift[k]);
            }
        }
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
    fn body(&self, out: &mut [f32], x: &[f32], y: &[f32]) {
        let rows = out.chunks_exact_mut(self.c).zip(x.chunks_exact(self.c)).zip(y.chunks_exact(self.c));
        for ((or, xr), yr) in rows {
            for k in 0..self.c {
                or[k] = self.a[k] * yr[k] + self.e[k] * xr[k] + self.f[k];
            }
        }
    }
}

/// `out = act(x·scale + shift)` per column of rows `c` wide, in parallel.
fn affine_act_into(out: &mut [f32], x: &[f32], c: usize, scale: &[f32], shift: &[f32], act: crate::Activation) {
    with_act!(act, A => par_rows(out, x, x, c, &Affine::<A> { c, scale, shift, act: std::marker::PhantomData }))
}

/// Elements per parallel task of the element-wise kernels (rounded to whole rows).
const TASK_ELEMS: usize = 8192;

/// Runs `kernel` over matching chunks of whole rows (`row` wide) of three equally long slices,
/// in parallel. On x86-64 CPUs with AVX2 and FMA the kernel is compiled for them (runtime
/// detection), so its element loops vectorise 8-wide instead of SSE2's 4.
fn par_rows<K: RowKernel>(out: &mut [f32], a: &[f32], b: &[f32], row: usize, kernel: &K) {
    debug_assert!(out.len() == a.len() && a.len() == b.len());
    let chunk = row.max(1) * (TASK_ELEMS / row.max(1)).max(1);
    #[cfg(target_arch = "x86_64")]
    let wide = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    out.par_chunks_mut(chunk).zip(a.par_chunks(chunk)).zip(b.par_chunks(chunk)).for_each(|((o, x), y)| {
        if wide {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only reached when the CPU reports AVX2 and FMA.
            unsafe {
                body_avx2(kernel, o, x, y)
            }
        } else {
            kernel.body(o, x, y)
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn body_avx2<K: RowKernel>(kernel: &K, o: &mut [f32], x: &[f32], y: &[f32]) {
    kernel.body(o, x, y)
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("fused gelu: f32 only") };
    let Some((a, b)) = l.contiguous_offsets() else { candle_core::bail!("fused gelu: contiguous input only") };
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
        par_rows(&mut y, x, x, 1, &Map::<GeluFn>(std::marker::PhantomData));
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
        par_rows(&mut out, x, g, 1, &MapGrad::<GeluFn>(std::marker::PhantomData));
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

    fn erf64(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }
}

/// Column means and biased variances of a contiguous `[N, C]` f32 slice plus `zero_rows`
/// further all-zero rows, accumulated in f64 (per-task partial sums, then combined).
fn column_stats(x: &[f32], n: usize, c: usize, zero_rows: usize) -> (Vec<f64>, Vec<f64>) {
    let total = (n + zero_rows).max(1) as f64;
    let c1 = c.max(1);
    let chunk = c1 * (TASK_ELEMS / c1).max(1);
    let add = |mut a: Vec<f64>, b: Vec<f64>| {
        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
        a
    };
    let sums = x
        .par_chunks(chunk)
        .map(|block| {
            let mut acc = vec![0f64; c];
            for row in block.chunks_exact(c1) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            }
            acc
        })
        .reduce(|| vec![0f64; c], add);
    let mean: Vec<f64> = sums.iter().map(|s| s / total).collect();
    let sq = x
        .par_chunks(chunk)
        .map(|block| {
            let mut acc = vec![0f64; c];
            for row in block.chunks_exact(c1) {
                for ((a, &v), &m) in acc.iter_mut().zip(row).zip(&mean) {
                    let d = v as f64 - m;
                    *a += d * d;
                }
            }
            acc
        })
        .reduce(|| vec![0f64; c], add);
    let var = sq.iter().zip(&mean).map(|(s, m)| (s + zero_rows as f64 * m * m) / total).collect();
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
        let (x, mut grad) = (x.contiguous()?, grad.contiguous()?);
        if self.activation != crate::Activation::None {
            // Through the activation first: its input is recomputed from x.
            let op = ActivationGrad {
                mean: self.mean.clone(),
                inv_std: self.inv_std.clone(),
                gamma: gamma.to_vec1()?,
                beta: _beta.to_vec1()?,
                activation: self.activation,
            };
            grad = x.apply_op2_no_bwd(&grad, &op)?;
        }
        // Σ dy and Σ dy·x̂ per column (row 0 and row 1).
        let sums =
            x.apply_op2_no_bwd(&grad, &BatchNormGradSums { mean: self.mean.clone(), inv_std: self.inv_std.clone() })?;
        let (dbeta, dgamma) = (sums.get(0)?, sums.get(1)?);
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

/// `dy · act′(x̂·γ + β)`: the gradient through the activation that follows batch norm.
struct ActivationGrad {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    activation: crate::Activation,
}

impl CustomOp2 for ActivationGrad {
    fn name(&self) -> &'static str {
        "fused-batch-norm-activation-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c) = l1.shape().dims2()?;
        let (x, g) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let a: Vec<f32> = self.gamma.iter().zip(&self.inv_std).map(|(g, i)| g * i).collect();
        let b: Vec<f32> = self.beta.iter().zip(&self.mean).zip(&a).map(|((b, m), a)| b - m * a).collect();
        let mut out = vec![0f32; x.len()];
        let (scale, shift) = (&a[..], &b[..]);
        with_act!(self.activation, A => par_rows(&mut out, x, g, c, &AffineGrad::<A> { c, scale, shift, act: std::marker::PhantomData }));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `[2, C]`: column sums of `dy` and of `dy·x̂` (f64 accumulation).
struct BatchNormGradSums {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl CustomOp2 for BatchNormGradSums {
    fn name(&self) -> &'static str {
        "fused-batch-norm-grad-sums"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c) = l1.shape().dims2()?;
        let (x, g) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let c1 = c.max(1);
        let chunk = c1 * (TASK_ELEMS / c1).max(1);
        let sums = x
            .par_chunks(chunk)
            .zip(g.par_chunks(chunk))
            .map(|(xb, gb)| {
                let mut acc = vec![0f64; 2 * c];
                let (sd, sdx) = acc.split_at_mut(c);
                for (xr, gr) in xb.chunks_exact(c1).zip(gb.chunks_exact(c1)) {
                    for k in 0..c {
                        let xhat = (xr[k] - self.mean[k]) * self.inv_std[k];
                        sd[k] += gr[k] as f64;
                        sdx[k] += (gr[k] * xhat) as f64;
                    }
                }
                acc
            })
            .reduce(
                || vec![0f64; 2 * c],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        Ok((CpuStorage::F32(sums.into_iter().map(|v| v as f32).collect()), Shape::from((2, c))))
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

/// Row groups of a [`grouped_linear`] input: rows `start..start + len` use relation `relation`
/// (or the self-loop weight when `relation` is [`SELF_LOOP`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowGroup {
    /// Relation (column block of the relational weight), or [`SELF_LOOP`].
    pub relation: usize,
    /// First row.
    pub start: usize,
    /// Number of rows.
    pub len: usize,
}

/// The `relation` of a [`RowGroup`] whose rows go through the self-loop weight.
pub const SELF_LOOP: usize = usize::MAX;

/// Rows per gemm call when a group is split for the thread pool.
const CHUNK_ROWS: usize = 512;

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` with explicit (row, column) strides, via the `gemm` crate
/// candle itself uses.
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
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
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in dst.chunks_mut(dst_rs).take(m) {
            row[..n].fill(0.0);
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
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
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

/// Checks that `groups` tile `0..rows` in order with relations `< num_relations` (or the self
/// loop).
fn check_groups(groups: &[RowGroup], rows: usize, num_relations: usize) -> Result<()> {
    let mut next = 0;
    for g in groups {
        if g.start != next || (g.relation >= num_relations && g.relation != SELF_LOOP) {
            candle_core::bail!("grouped linear: group {g:?} (expected start {next}, {num_relations} relations)");
        }
        next += g.len;
    }
    if next != rows {
        candle_core::bail!("grouped linear: groups cover {next} of {rows} rows");
    }
    Ok(())
}

/// Where the `[out, in]` matrix of a group lives: `(slice from its first element, row stride)`.
/// The self-loop matrix may be wider than `in` (`self_rs`): a trailing bias column.
fn group_weight<'a>(
    relation: usize,
    rel_w: &'a [f32],
    self_w: &'a [f32],
    din: usize,
    width: usize,
    self_rs: usize,
) -> (&'a [f32], usize) {
    if relation == SELF_LOOP {
        (self_w, self_rs)
    } else {
        (&rel_w[relation * din..], width)
    }
}

/// Shapes and weights of a grouped product: rows of `z` (`din` wide) through their group's
/// `[dout, din]` block of `rel_w` (`[dout, width]`) or of `self_w` (row stride `self_rs`).
struct Grouped<'a> {
    groups: &'a [RowGroup],
    din: usize,
    dout: usize,
    width: usize,
    rel_w: &'a [f32],
    self_w: &'a [f32],
    self_rs: usize,
}

impl Grouped<'_> {
    /// `out[i] = z[i] · W_gᵀ` for every row.
    fn forward(&self, z: &[f32], k: usize) -> Vec<f32> {
        let (din, dout) = (self.din, self.dout);
        let mut out = vec![0f32; k * dout];
        chunk_rows(&mut out, dout, self.groups).into_par_iter().for_each(|(r, row, dst)| {
            let m = dst.len() / dout;
            let (wr, rs) = group_weight(r, self.rel_w, self.self_w, din, self.width, self.self_rs);
            gemm_f32(m, dout, din, dst, dout, &z[row * din..], (din, 1), wr, (1, rs), 1);
        });
        out
    }

    /// Gradients from `g` (`[k, dout]`): `dz = g · W_g` per row, `dW_r` per relation block of a
    /// `[dout, width]` matrix, and the self-loop block `[dout, din]`.
    fn backward(&self, z: &[f32], g: &[f32], k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (din, dout, width) = (self.din, self.dout, self.width);
        let mut dz = vec![0f32; k * din];
        chunk_rows(&mut dz, din, self.groups).into_par_iter().for_each(|(r, row, dst)| {
            let m = dst.len() / din;
            let (wr, rs) = group_weight(r, self.rel_w, self.self_w, din, width, self.self_rs);
            gemm_f32(m, din, dout, dst, din, &g[row * dout..], (dout, 1), wr, (rs, 1), 1);
        });
        let blocks: Vec<(usize, Vec<f32>)> = self
            .groups
            .par_iter()
            .filter(|gr| gr.len > 0)
            .map(|gr| {
                let mut buf = vec![0f32; dout * din];
                let threads = if gr.len > 8 * CHUNK_ROWS { rayon::current_num_threads() } else { 1 };
                let (lhs, rhs) = (&g[gr.start * dout..], &z[gr.start * din..]);
                gemm_f32(dout, din, gr.len, &mut buf, din, lhs, (1, dout), rhs, (din, 1), threads);
                (gr.relation, buf)
            })
            .collect();
        let mut dw = vec![0f32; dout * width];
        let mut dws = vec![0f32; dout * din];
        for (r, buf) in blocks {
            for (o, src) in buf.chunks_exact(din).enumerate() {
                let dst = if r == SELF_LOOP {
                    &mut dws[o * din..(o + 1) * din]
                } else {
                    &mut dw[o * width + r * din..o * width + (r + 1) * din]
                };
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
        (dz, dw, dws)
    }
}

struct GroupedLinear(std::sync::Arc<Vec<RowGroup>>);

impl candle_core::CustomOp3 for GroupedLinear {
    fn name(&self) -> &'static str {
        "grouped-linear"
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
        let (k, din) = l1.shape().dims2()?;
        let (dout, width) = l2.shape().dims2()?;
        if din == 0 || width % din != 0 || l3.shape().dims() != [dout, din] {
            candle_core::bail!(
                "grouped linear: weights {:?} / {:?} do not fit input width {din}",
                l2.shape(),
                l3.shape()
            );
        }
        let (z, w, ws) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?);
        check_groups(&self.0, k, width / din)?;
        let gr = Grouped { groups: &self.0, din, dout, width, rel_w: w, self_w: ws, self_rs: din };
        Ok((CpuStorage::F32(gr.forward(z, k)), Shape::from((k, dout))))
    }

    fn bwd(
        &self,
        z: &Tensor,
        w: &Tensor,
        w_self: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (k, din) = z.dims2()?;
        let (dout, width) = w.dims2()?;
        let zs = z.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let wsv = w_self.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gr = Grouped { groups: &self.0, din, dout, width, rel_w: &wv, self_w: &wsv, self_rs: din };
        let (dz, dw, dws) = gr.backward(&zs, &gs, k);
        let dev = z.device();
        Ok((
            Some(Tensor::from_vec(dz, (k, din), dev)?),
            Some(Tensor::from_vec(dw, (dout, width), dev)?),
            Some(Tensor::from_vec(dws, (dout, din), dev)?),
        ))
    }
}

/// The plans of one relational convolution call (see [`relational_linear`]).
#[derive(Debug)]
pub struct RelationalPlan {
    /// Input rows → self-loop rows and (destination, relation) mean rows.
    pub rows: std::sync::Arc<aa_graph::kernels::GatherPlan>,
    /// Weight group of each row.
    pub groups: std::sync::Arc<Vec<RowGroup>>,
    /// Rows → output rows (sum).
    pub dest: std::sync::Arc<aa_graph::kernels::GatherPlan>,
}

/// The whole linear part of a relational convolution as one op:
/// `y = dest(grouped(rows(x))) + b`, where `self_aug` is `[out, in + 1]` — the self-loop weight
/// with the bias as its last column. Backward recomputes the gathered rows instead of keeping
/// them.
struct RelationalLinear(std::sync::Arc<RelationalPlan>);

impl RelationalLinear {
    fn dims(&self, lx: &Layout, lw: &Layout, ls: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (n_in, din) = lx.shape().dims2()?;
        let (dout, width) = lw.shape().dims2()?;
        if din == 0 || width % din != 0 || ls.shape().dims() != [dout, din + 1] {
            candle_core::bail!(
                "relational linear: weights {:?} / {:?} do not fit input width {din}",
                lw.shape(),
                ls.shape()
            );
        }
        if n_in != self.0.rows.num_sources() {
            candle_core::bail!("relational linear: {n_in} input rows, the plan reads {}", self.0.rows.num_sources());
        }
        check_groups(&self.0.groups, self.0.rows.num_rows(), width / din)?;
        Ok((din, dout, width, self.0.rows.num_rows()))
    }
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
        let (din, dout, width, k) = self.dims(l1, l2, l3)?;
        let (x, w, ws) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?);
        let mut z = vec![0f32; k * din];
        self.0.rows.accumulate_f32(x, din, &mut z)?;
        let gr = Grouped { groups: &self.0.groups, din, dout, width, rel_w: w, self_w: ws, self_rs: din + 1 };
        let per_row = gr.forward(&z, k);
        drop(z);
        let n_out = self.0.dest.num_rows();
        // Start from the bias (last column of `self_aug`), then add each output row's rows.
        let bias: Vec<f32> = (0..dout).map(|o| ws[o * (din + 1) + din]).collect();
        let mut y: Vec<f32> = Vec::with_capacity(n_out * dout);
        for _ in 0..n_out {
            y.extend_from_slice(&bias);
        }
        self.0.dest.accumulate_f32(&per_row, dout, &mut y)?;
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
        let (x, w, self_aug, grad) = (x.contiguous()?, w.contiguous()?, self_aug.contiguous()?, grad.contiguous()?);
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
        let (cx, cw, cs, cg) = (cpu(&sx)?, cpu(&sw)?, cpu(&ss)?, cpu(&sg)?);
        let (din, dout, width, k) = self.dims(lx, lw, ls)?;
        let (xs, wv, wsv, g) =
            (contiguous_f32(cx, lx)?, contiguous_f32(cw, lw)?, contiguous_f32(cs, ls)?, contiguous_f32(cg, lg)?);
        // Through the destination sum, and the bias: column sums of the output gradient.
        let mut g_rows = vec![0f32; k * dout];
        self.0.dest.transposed().accumulate_f32(g, dout, &mut g_rows)?;
        let db = g
            .par_chunks(dout.max(1) * 256)
            .map(|block| {
                let mut acc = vec![0f64; dout];
                for row in block.chunks_exact(dout.max(1)) {
                    acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
                }
                acc
            })
            .reduce(
                || vec![0f64; dout],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        // The gathered rows again, then the grouped product's gradients.
        let mut z = vec![0f32; k * din];
        self.0.rows.accumulate_f32(xs, din, &mut z)?;
        let gr = Grouped { groups: &self.0.groups, din, dout, width, rel_w: wv, self_w: wsv, self_rs: din + 1 };
        let (dz, dw, dws) = gr.backward(&z, &g_rows, k);
        drop((z, g_rows));
        let mut dx = vec![0f32; xs.len()];
        self.0.rows.transposed().accumulate_f32(&dz, din, &mut dx)?;
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

/// The linear part of a relational convolution, `[n_out, out]`: for output row `i`,
/// `Σ_{rows j of i} W_{g(j)} · z_j + b`, where `z = plan.rows(x)` are the self-loop rows and
/// the per-(destination, relation) means, `W_g` the self-loop weight or the relation's block of
/// `weight` (`[out, R·in]`), and `self_aug = [W_self | b]` (`[out, in + 1]`). One op with its
/// own backward on CPU f32 (no `[K, in]` intermediate kept); candle ops elsewhere.
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
    let din = x.dim(1)?;
    let z = aa_graph::kernels::gather(x, &plan.rows)?;
    let per_row = grouped_linear(&z, weight, &self_aug.narrow(1, 0, din)?, &plan.groups)?;
    aa_graph::kernels::gather_bias(&per_row, &plan.dest, &self_aug.narrow(1, din, 1)?.squeeze(1)?)
}

/// Per-relation linear maps over row groups: row `i` of `z` (`[K, in]`) in the group of
/// relation `r` becomes `z[i] · W_rᵀ`, where `W_r` is column block `r` of `weight`
/// (`[out, R·in]`, TorchDrug's `RelationalGraphConv.linear` layout); rows of a
/// [`SELF_LOOP`] group use `self_weight` (`[out, in]`). One gemm per group chunk on CPU f32
/// (backward writes only the blocks present); elsewhere per-group matmuls.
pub fn grouped_linear(
    z: &Tensor,
    weight: &Tensor,
    self_weight: &Tensor,
    groups: &std::sync::Arc<Vec<RowGroup>>,
) -> Result<Tensor> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    if f32_cpu(z) && f32_cpu(weight) && f32_cpu(self_weight) {
        return z.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &self_weight.contiguous()?,
            GroupedLinear(groups.clone()),
        );
    }
    let din = z.dim(1)?;
    check_groups(groups, z.dim(0)?, weight.dim(1)? / din.max(1))?;
    let parts = groups
        .iter()
        .map(|g| {
            let w =
                if g.relation == SELF_LOOP { self_weight.clone() } else { weight.narrow(1, g.relation * din, din)? };
            z.narrow(0, g.start, g.len)?.matmul(&w.t()?)
        })
        .collect::<Result<Vec<_>>>()?;
    if parts.is_empty() {
        return Tensor::zeros((0, weight.dim(0)?), z.dtype(), z.device());
    }
    Tensor::cat(&parts, 0)
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
