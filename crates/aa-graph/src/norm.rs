//! Differentiable LayerNorm and RMSNorm over the last dimension, each one CPU kernel per
//! direction.
//!
//! Why: candle's fused `ops::layer_norm` / `rms_norm` have no backward, and the differentiable
//! compositions (`layer_norm_slow`, `x / sqrt(mean(x²) + ε) · w`) run six to eight broadcast
//! tensor ops per call forward and as many backward, each a full pass over the rows plus a
//! fresh buffer — on HSA-Net's many small `[rows, d]` tensors that bookkeeping, not arithmetic,
//! was the cost. Here the forward is one pass per row (statistics, then the affine map), and
//! the backward recomputes the row statistics and writes `∂x` in one pass, with the weight and
//! bias gradients as per-block column sums combined in a fixed order (bit-reproducible). Rows
//! are parallel (rayon) and every row loop is written so it vectorises. Off the CPU or for
//! other dtypes both fall back to candle's differentiable ops.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::dense::{contiguous_f32, vec_of};

/// Rows per parallel task (and per partial sum of the parameter gradients).
const BLOCK_ROWS: usize = 128;

/// `(mean, 1 / sqrt(var + ε))` of one row; the mean is 0 for RMSNorm (`center = false`),
/// whose "variance" is then the mean square.
#[inline(always)]
fn stats(x: &[f32], eps: f32, center: bool) -> (f32, f32) {
    let inv = 1.0 / x.len().max(1) as f32;
    let mean = if center { x.iter().sum::<f32>() * inv } else { 0.0 };
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() * inv;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Forward over rows `[R, d]`: `y = (x − mean)·rstd·w (+ b)`.
fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32, center: bool) -> Vec<f32> {
    let d = w.len().max(1);
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(BLOCK_ROWS * d).zip(x.par_chunks(BLOCK_ROWS * d)).for_each(|(ys, xs)| {
        for (yr, xr) in ys.chunks_exact_mut(d).zip(xs.chunks_exact(d)) {
            let (mean, rstd) = stats(xr, eps, center);
            match b {
                Some(b) => {
                    for (((o, &v), &wc), &bc) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                        *o = (v - mean) * rstd * wc + bc;
                    }
                }
                None => {
                    for ((o, &v), &wc) in yr.iter_mut().zip(xr).zip(w) {
                        *o = (v - mean) * rstd * wc;
                    }
                }
            }
        }
    });
    y
}

/// Backward over rows: `(∂x, ∂w, ∂b)` from `g` (`∂b` = column sums of `g`).
fn backward(x: &[f32], w: &[f32], g: &[f32], eps: f32, center: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = w.len().max(1);
    let mut gx = vec![0f32; x.len()];
    let parts: Vec<(Vec<f32>, Vec<f32>)> = gx
        .par_chunks_mut(BLOCK_ROWS * d)
        .zip(x.par_chunks(BLOCK_ROWS * d))
        .zip(g.par_chunks(BLOCK_ROWS * d))
        .map(|((gxs, xs), gs)| {
            let (mut gw, mut gb) = (vec![0f32; d], vec![0f32; d]);
            let mut xhat = vec![0f32; d];
            let inv = 1.0 / d as f32;
            for ((gxr, xr), gr) in gxs.chunks_exact_mut(d).zip(xs.chunks_exact(d)).zip(gs.chunks_exact(d)) {
                let (mean, rstd) = stats(xr, eps, center);
                let (mut s1, mut s2) = (0f32, 0f32);
                for ((((h, &v), &gv), &wc), (gwc, gbc)) in
                    xhat.iter_mut().zip(xr).zip(gr).zip(w).zip(gw.iter_mut().zip(gb.iter_mut()))
                {
                    *h = (v - mean) * rstd;
                    let gh = gv * wc;
                    s1 += gh;
                    s2 += gh * *h;
                    *gwc += gv * *h;
                    *gbc += gv;
                }
                let m1 = if center { s1 * inv } else { 0.0 };
                let m2 = s2 * inv;
                for (((o, &h), &gv), &wc) in gxr.iter_mut().zip(&xhat).zip(gr).zip(w) {
                    *o = rstd * (gv * wc - m1 - h * m2);
                }
            }
            (gw, gb)
        })
        .collect();
    let (mut gw, mut gb) = (vec![0f32; d], vec![0f32; d]);
    for (pw, pb) in parts {
        gw.iter_mut().zip(pw).for_each(|(a, v)| *a += v);
        gb.iter_mut().zip(pb).for_each(|(a, v)| *a += v);
    }
    (gx, gw, gb)
}

/// The rows of `x` fit `w` (and `b`): `d` = the last dimension.
fn check(x: &Layout, w: &Layout, b: Option<&Layout>, what: &str) -> Result<()> {
    let d = x.shape().dims().last().copied().unwrap_or(0);
    let fits = |l: &Layout| l.shape().rank() == 1 && l.shape().elem_count() == d;
    if d == 0 || !fits(w) || b.is_some_and(|b| !fits(b)) {
        candle_core::bail!("{what}: input {:?} and parameters {:?} do not fit", x.shape(), w.shape());
    }
    Ok(())
}

/// LayerNorm (`x`, weight, bias).
struct Ln(f32);
/// RMSNorm (`x`, weight).
struct Rms(f32);

impl CustomOp3 for Ln {
    fn name(&self) -> &'static str {
        "aa-layer-norm"
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
        check(l1, l2, Some(l3), "layer norm")?;
        let (x, w, b) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?);
        Ok((CpuStorage::F32(forward(x, w, Some(b), self.0, true)), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, gb) = backward(&vec_of(x)?, &vec_of(w)?, &vec_of(grad)?, self.0, true);
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(gx, x.shape(), dev)?),
            Some(Tensor::from_vec(gw, w.shape(), dev)?),
            Some(Tensor::from_vec(gb, b.shape(), dev)?),
        ))
    }
}

impl CustomOp2 for Rms {
    fn name(&self) -> &'static str {
        "aa-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        check(l1, l2, None, "RMS norm")?;
        let (x, w) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        Ok((CpuStorage::F32(forward(x, w, None, self.0, false)), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, _) = backward(&vec_of(x)?, &vec_of(w)?, &vec_of(grad)?, self.0, false);
        let dev = x.device();
        Ok((Some(Tensor::from_vec(gx, x.shape(), dev)?), Some(Tensor::from_vec(gw, w.shape(), dev)?)))
    }
}

fn fused(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32
}

/// LayerNorm over the last dimension, `(x − mean) / sqrt(var + ε) · weight + bias` (biased
/// variance, as PyTorch), differentiable in all three inputs.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    if fused(x, weight) && bias.dtype() == DType::F32 {
        x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Ln(eps))
    } else {
        candle_nn::ops::layer_norm_slow(x, weight, bias, eps)
    }
}

/// RMSNorm over the last dimension, `x / sqrt(mean(x²) + ε) · weight`, differentiable in both
/// inputs.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    if fused(x, weight) {
        x.contiguous()?.apply_op2(&weight.contiguous()?, Rms(eps))
    } else {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps as f64)?.sqrt()?)?.broadcast_mul(weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var};

    fn var(shape: &[usize], seed: u64) -> Var {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        Var::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn both_norms_match_candle_ops_in_value_and_gradients() {
        // 300 rows: more than two parallel blocks, the last one partial.
        let (x, w, b) = (var(&[3, 100, 37], 1), var(&[37], 2), var(&[37], 3));
        let gout = var(&[3, 100, 37], 4).as_tensor().detach();
        let ours = layer_norm(&x, &w, &b, 1e-5).unwrap();
        let theirs = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let g1 = (&ours * &gout).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &gout).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            let (p, q) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert!(max_diff(p, q) < 1e-4, "layer norm gradient: {}", max_diff(p, q));
        }
        let ours = rms_norm(&x, &w, 1e-5).unwrap();
        let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let theirs = x.broadcast_div(&(ms + 1e-5).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(&w).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let g1 = (&ours * &gout).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &gout).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w] {
            let (p, q) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert!(max_diff(p, q) < 1e-4, "RMS norm gradient: {}", max_diff(p, q));
        }
        // Non-contiguous input: made contiguous first.
        let xt = x.transpose(0, 1).unwrap();
        let want = candle_nn::ops::layer_norm_slow(&xt, &w, &b, 1e-5).unwrap();
        assert!(max_diff(&layer_norm(&xt, &w, &b, 1e-5).unwrap(), &want) < 1e-5);
    }

    #[test]
    fn repeatable_and_shape_errors_are_clear() {
        let (x, w, b) = (var(&[500, 16], 5), var(&[16], 6), var(&[16], 7));
        let run = || {
            let y = layer_norm(&x, &w, &b, 1e-5).unwrap();
            let g = (&y * &y).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(), run());
        let e = layer_norm(&x, &w.narrow(0, 0, 15).unwrap(), &b, 1e-5).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");
        let e = rms_norm(&x, &b.narrow(0, 0, 3).unwrap(), 1e-5).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");
    }
}
