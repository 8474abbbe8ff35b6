//! The selective scan of Mamba (Gu & Dao, S6) as one CPU kernel with its backward pass — the
//! workspace's only recurrence, used by the Graph-Mamba projector of the HSA-Net readout.
//!
//! For every sequence `b` and channel `d` a state `h ∈ ℝᴺ` runs over the steps `t`:
//!
//! ```text
//! h_t = exp(Δ[b,t,d] · A[d,:]) ⊙ h_{t−1} + Δ[b,t,d] · B[b,t,:] · u[b,t,d],   h_{−1} = 0
//! y[b,t,d] = Σ_n C[b,t,n] · h_t[n]
//! ```
//!
//! (the skip term `D·u` and the gating are left to the caller: they are ordinary tensor ops).
//! The forward pass keeps no states; the backward pass recomputes them per `(b, d)` and runs the
//! recurrence in reverse, so memory stays `O(B·L·(D + N))`. Sequences are parallel (rayon) and
//! every reduction runs in a fixed order, so results are bit-reproducible. A test checks value
//! and every gradient against the same recurrence written step by step with candle's
//! differentiable ops.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dense::{contiguous_f32, exp_nonpositive};

/// Sizes of one scan.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    l: usize,
    d: usize,
    n: usize,
}

fn dims(ud: &Layout, a: &Layout, bc: &Layout) -> Result<Dims> {
    let (b, l, d2) = ud.shape().dims3()?;
    let (d, n) = a.shape().dims2()?;
    let (b2, l2, n2) = bc.shape().dims3()?;
    if d2 != 2 * d || n2 != 2 * n || b2 != b || l2 != l {
        candle_core::bail!(
            "selective scan: u‖Δ {:?}, A {:?} and B‖C {:?} do not fit together",
            ud.shape(),
            a.shape(),
            bc.shape()
        );
    }
    Ok(Dims { b, l, d, n })
}

/// `eʸ`, by the vectorisable [`exp_nonpositive`] on Mamba's usual side (`Δ ≥ 0`, `A ≤ 0`).
#[inline(always)]
fn decay(y: f32) -> f32 {
    if y <= 0.0 {
        exp_nonpositive(y)
    } else {
        y.exp()
    }
}

/// Forward: `y [B, L, D]` from packed `u‖Δ [B, L, 2D]`, `A [D, N]`, `B‖C [B, L, 2N]`.
fn forward(ud: &[f32], a: &[f32], bc: &[f32], s: Dims) -> Vec<f32> {
    let Dims { b: _, l, d, n } = s;
    let mut y = vec![0f32; s.b * l * d];
    y.par_chunks_mut(l * d).enumerate().for_each(|(b, yb)| {
        let mut h = vec![0f32; d * n];
        for t in 0..l {
            let row = &ud[(b * l + t) * 2 * d..(b * l + t + 1) * 2 * d];
            let bct = &bc[(b * l + t) * 2 * n..(b * l + t + 1) * 2 * n];
            let (bt, ct) = bct.split_at(n);
            for c in 0..d {
                let (u, dt) = (row[c], row[d + c]);
                let hc = &mut h[c * n..(c + 1) * n];
                let ac = &a[c * n..(c + 1) * n];
                let mut acc = 0f32;
                for k in 0..n {
                    hc[k] = decay(dt * ac[k]) * hc[k] + dt * bt[k] * u;
                    acc += ct[k] * hc[k];
                }
                yb[t * d + c] = acc;
            }
        }
    });
    y
}

/// Backward: gradients of `u‖Δ`, `A` and `B‖C` from `gy [B, L, D]`.
fn backward(ud: &[f32], a: &[f32], bc: &[f32], gy: &[f32], s: Dims) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims { b: nb, l, d, n } = s;
    let per: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..nb)
        .into_par_iter()
        .map(|b| {
            let mut gud = vec![0f32; l * 2 * d];
            let mut gbc = vec![0f32; l * 2 * n];
            let mut ga = vec![0f32; d * n];
            // States of every step for one channel at a time: hs[t·N + k] = h_t[k].
            let mut hs = vec![0f32; l * n];
            let mut gh = vec![0f32; n];
            for c in 0..d {
                let ac = &a[c * n..(c + 1) * n];
                let mut prev = vec![0f32; n];
                for t in 0..l {
                    let (u, dt) = (ud[(b * l + t) * 2 * d + c], ud[(b * l + t) * 2 * d + d + c]);
                    let bt = &bc[(b * l + t) * 2 * n..(b * l + t) * 2 * n + n];
                    for k in 0..n {
                        prev[k] = decay(dt * ac[k]) * prev[k] + dt * bt[k] * u;
                    }
                    hs[t * n..(t + 1) * n].copy_from_slice(&prev);
                }
                gh.iter_mut().for_each(|g| *g = 0.0);
                for t in (0..l).rev() {
                    let (u, dt) = (ud[(b * l + t) * 2 * d + c], ud[(b * l + t) * 2 * d + d + c]);
                    let base = (b * l + t) * 2 * n;
                    let (bt, ct) = (&bc[base..base + n], &bc[base + n..base + 2 * n]);
                    let g = gy[(b * l + t) * d + c];
                    let (mut g_dt, mut g_u) = (0f32, 0f32);
                    for k in 0..n {
                        let h_prev = if t > 0 { hs[(t - 1) * n + k] } else { 0.0 };
                        gh[k] += g * ct[k];
                        gbc[t * 2 * n + n + k] += g * hs[t * n + k];
                        let da = decay(dt * ac[k]);
                        g_dt += gh[k] * (ac[k] * da * h_prev + bt[k] * u);
                        ga[c * n + k] += gh[k] * dt * da * h_prev;
                        gbc[t * 2 * n + k] += gh[k] * dt * u;
                        g_u += gh[k] * dt * bt[k];
                        gh[k] *= da;
                    }
                    gud[t * 2 * d + c] += g_u;
                    gud[t * 2 * d + d + c] += g_dt;
                }
            }
            (gud, gbc, ga)
        })
        .collect();
    let mut gud = Vec::with_capacity(nb * l * 2 * d);
    let mut gbc = Vec::with_capacity(nb * l * 2 * n);
    let mut ga = vec![0f32; d * n];
    for (u, c, a) in per {
        gud.extend(u);
        gbc.extend(c);
        for (x, y) in ga.iter_mut().zip(a) {
            *x += y;
        }
    }
    (gud, ga, gbc)
}

struct Scan;

impl CustomOp3 for Scan {
    fn name(&self) -> &'static str {
        "aa-selective-scan"
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
        let s = dims(l1, l2, l3)?;
        let y = forward(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?, s);
        Ok((CpuStorage::F32(y), Shape::from((s.b, s.l, s.d))))
    }

    fn bwd(
        &self,
        ud: &Tensor,
        a: &Tensor,
        bc: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The gradients are leaves (no double backward): computed on plain vectors.
        let (nb, l, d2) = ud.dims3()?;
        let (d, n) = a.dims2()?;
        let s = Dims { b: nb, l, d, n };
        if d2 != 2 * d || grad.dims3()? != (nb, l, d) {
            candle_core::bail!("selective scan backward: gradient {:?} for u‖Δ {:?}", grad.shape(), ud.shape());
        }
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let (gud, ga, gbc) = backward(&flat(ud)?, &flat(a)?, &flat(bc)?, &flat(grad)?, s);
        let dev = ud.device();
        Ok((
            Some(Tensor::from_vec(gud, (nb, l, 2 * d), dev)?),
            Some(Tensor::from_vec(ga, (d, n), dev)?),
            Some(Tensor::from_vec(gbc, (nb, l, 2 * n), dev)?),
        ))
    }
}

/// `y [B, L, D]` of the selective scan of `u`, `delta` (`[B, L, D]`), `a` (`[D, N]`, the
/// negative state matrix), `b`, `c` (`[B, L, N]`), f32 on CPU, differentiable in every input.
pub fn selective_scan(u: &Tensor, delta: &Tensor, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
    let ud = Tensor::cat(&[u, delta], 2)?.contiguous()?;
    let bc = Tensor::cat(&[b, c], 2)?.contiguous()?;
    ud.apply_op3(&a.contiguous()?, &bc, Scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The recurrence step by step with candle's own differentiable ops.
    fn reference(u: &Tensor, delta: &Tensor, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
        let (nb, l, d) = u.dims3()?;
        let n = a.dim(1)?;
        let mut h = Tensor::zeros((nb, d, n), u.dtype(), u.device())?;
        let mut ys = Vec::with_capacity(l);
        for t in 0..l {
            let dt = delta.narrow(1, t, 1)?.reshape((nb, d, 1))?;
            let da = dt.broadcast_mul(&a.unsqueeze(0)?)?.exp()?;
            let bu = dt.broadcast_mul(&b.narrow(1, t, 1)?)?.broadcast_mul(&u.narrow(1, t, 1)?.reshape((nb, d, 1))?)?;
            h = ((da * &h)? + bu)?;
            ys.push(h.broadcast_mul(&c.narrow(1, t, 1)?)?.sum(2)?);
        }
        Tensor::stack(&ys, 1)
    }

    fn var(shape: (usize, usize, usize), seed: u64, lo: f32, hi: f32) -> Var {
        let n = shape.0 * shape.1 * shape.2;
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((x >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect();
        Var::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn scan_and_gradients_match_the_stepwise_recurrence() {
        let (nb, l, d, n) = (3, 7, 5, 4);
        let u = var((nb, l, d), 1, -1.0, 1.0);
        let delta = var((nb, l, d), 2, 0.05, 1.0);
        let a = var((1, d, n), 3, -2.0, -0.1);
        let a = Var::from_tensor(&a.as_tensor().reshape((d, n)).unwrap()).unwrap();
        let b = var((nb, l, n), 4, -1.0, 1.0);
        let c = var((nb, l, n), 5, -1.0, 1.0);
        let w = var((nb, l, d), 6, -1.0, 1.0).as_tensor().detach();
        let vars = [&u, &delta, &a, &b, &c];
        let ours = selective_scan(&u, &delta, &a, &b, &c).unwrap();
        let theirs = reference(&u, &delta, &a, &b, &c).unwrap();
        let diff = (&ours - &theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let x = g1.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let y = g2.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(y.iter().any(|g| g.abs() > 1e-3), "input {i}: the reference gradient is zero");
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() < 1e-4 * (1.0 + q.abs()), "input {i}: {p} vs {q}");
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let u = Tensor::zeros((2, 3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let a = Tensor::zeros((5, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((2, 3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = selective_scan(&u, &u, &a, &b, &b).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");
    }
}
