//! Fused element-wise ops with their own backward, so a training step does not allocate a
//! dozen `[N, D]` temporaries per activation (candle's composite GELU-erf backward does).

use candle_core::cpu::erf::erf_f32;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

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
        let y: Vec<f32> = x
            .par_iter()
            .with_min_len(4096)
            .map(|&v| 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2)))
            .collect();
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
        let out: Vec<f32> = x
            .par_iter()
            .zip(g.par_iter())
            .with_min_len(4096)
            .map(|(&v, &gr)| {
                let cdf = 0.5 * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = FRAC_1_SQRT_2PI * (-0.5 * v * v).exp();
                gr * (cdf + v * pdf)
            })
            .collect();
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

    fn erf64(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }
}

/// Column means and biased variances of a contiguous `[N, C]` f32 slice, accumulated in f64.
fn column_stats(x: &[f32], n: usize, c: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0f64; c];
    for row in x.chunks_exact(c) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    let mut var = vec![0f64; c];
    for row in x.chunks_exact(c) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
            let d = v as f64 - m;
            *s += d * d;
        }
    }
    var.iter_mut().for_each(|s| *s /= n.max(1) as f64);
    (mean, var)
}

/// Training-mode batch normalisation `γ·(x − μ)/√(σ² + ε) + β` over the rows of `[N, C]`, with
/// batch statistics accumulated in f64 and a closed-form backward for x, γ and β.
struct BatchNormTrain {
    eps: f64,
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
        let (n, c) = l1.shape().dims2()?;
        let x = contiguous_f32(s1, l1)?;
        let gamma = contiguous_f32(s2, l2)?;
        let beta = contiguous_f32(s3, l3)?;
        let (mean, var) = column_stats(x, n, c);
        let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let mut y = vec![0f32; n * c];
        y.par_chunks_mut(c).zip(x.par_chunks(c)).with_min_len(64).for_each(|(yr, xr)| {
            for k in 0..c {
                yr[k] = (((xr[k] as f64 - mean[k]) * inv[k]) as f32) * gamma[k] + beta[k];
            }
        });
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
        let (n, c) = x.dims2()?;
        let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let gam = gamma.to_vec1::<f32>()?;
        let (mean, var) = column_stats(&xs, n, c);
        let inv: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        // Σ dy and Σ dy·x̂ per column.
        let mut sum_dy = vec![0f64; c];
        let mut sum_dy_xhat = vec![0f64; c];
        for (xr, gr) in xs.chunks_exact(c).zip(gs.chunks_exact(c)) {
            for k in 0..c {
                let xhat = (xr[k] as f64 - mean[k]) * inv[k];
                sum_dy[k] += gr[k] as f64;
                sum_dy_xhat[k] += gr[k] as f64 * xhat;
            }
        }
        let nf = n.max(1) as f64;
        let mut dx = vec![0f32; n * c];
        dx.par_chunks_mut(c).zip(xs.par_chunks(c)).zip(gs.par_chunks(c)).with_min_len(64).for_each(|((dr, xr), gr)| {
            for k in 0..c {
                let xhat = (xr[k] as f64 - mean[k]) * inv[k];
                dr[k] = (gam[k] as f64 * inv[k] / nf * (nf * gr[k] as f64 - sum_dy[k] - xhat * sum_dy_xhat[k])) as f32;
            }
        });
        let dev = x.device();
        let dx = Tensor::from_vec(dx, (n, c), dev)?;
        let dgamma = Tensor::from_vec(sum_dy_xhat.iter().map(|&v| v as f32).collect::<Vec<_>>(), c, dev)?;
        let dbeta = Tensor::from_vec(sum_dy.iter().map(|&v| v as f32).collect::<Vec<_>>(), c, dev)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Training-mode batch norm on CPU f32 `[N, C]` (fused, f64 statistics); also returns the batch
/// mean and biased variance (detached) for the running-statistics update.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, Vec<f64>, Vec<f64>)> {
    let x = x.contiguous()?;
    let (n, c) = x.dims2()?;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let (mean, var) = column_stats(&xs, n, c);
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, BatchNormTrain { eps })?;
    Ok((y, mean, var))
}
