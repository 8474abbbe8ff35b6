//! Fused element-wise ops with their own backward, so a training step does not allocate a
//! dozen `[N, D]` temporaries per activation (candle's composite GELU-erf backward does).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use candle_core::cpu::erf::erf_f32;
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
        let y: Vec<f32> = x.par_iter().with_min_len(4096).map(|&v| 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2))).collect();
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
    fn matches_candle_and_finite_differences() {
        let v: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 9.0).collect();
        let x = Var::from_vec(v.clone(), (8, 8), &Device::Cpu).unwrap();
        let ours = gelu_erf(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        let d = (&ours - &theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
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
