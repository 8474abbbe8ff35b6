//! The selective scan of Mamba (Gu & Dao, S6) with the element-wise work around it, as one CPU
//! kernel with its backward pass — the workspace's only recurrence, used by the Graph-Mamba
//! projector of the HSA-Net readout.
//!
//! For every sequence `b` and channel `d` a state `h ∈ ℝᴺ` runs over the steps `t`, with the
//! step size `Δ = softplus(p)` from its pre-activation `p`:
//!
//! ```text
//! h_t = exp(Δ[b,t,d] · A[d,:]) ⊙ h_{t−1} + Δ[b,t,d] · B[b,t,:] · u[b,t,d],   h_{−1} = 0
//! y[b,t,d] = (Σ_n C[b,t,n] · h_t[n] + D[d] · u[b,t,d]) · SiLU(z[b,t,d])
//! ```
//!
//! — the softplus, the skip term `D·u` and the gate `SiLU(z)` of a Mamba block folded into the
//! scan (as separate tensor ops they were most of the block's cost). The forward pass keeps no
//! states; the backward pass recomputes them per `(b, d)` and runs the recurrence in reverse, so
//! memory stays `O(B·L·(D + N))`. Sequences are parallel (rayon) and every reduction runs in a
//! fixed order, so results are bit-reproducible. A test checks value and every gradient
//! against the same computation written step by step with candle's differentiable ops.

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

fn dims(upz: &Layout, ad: &Layout, bc: &Layout) -> Result<Dims> {
    let (b, l, d3) = upz.shape().dims3()?;
    let (d, n1) = ad.shape().dims2()?;
    let (b2, l2, n2) = bc.shape().dims3()?;
    if n1 < 2 || d3 != 3 * d || n2 != 2 * (n1 - 1) || b2 != b || l2 != l {
        candle_core::bail!(
            "selective scan: u‖p‖z {:?}, A‖D {:?} and B‖C {:?} do not fit together",
            upz.shape(),
            ad.shape(),
            bc.shape()
        );
    }
    Ok(Dims { b, l, d, n: n1 - 1 })
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

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + eˣ)` without overflow.
#[inline(always)]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// One step's inputs of channel `c`: `(u, Δ, p, z)`.
#[inline(always)]
fn step(upz: &[f32], row: usize, d: usize, c: usize) -> (f32, f32, f32, f32) {
    let r = &upz[row * 3 * d..(row + 1) * 3 * d];
    (r[c], softplus(r[d + c]), r[d + c], r[2 * d + c])
}

/// Forward: `y [B, L, D]` from packed `u‖p‖z [B, L, 3D]`, `A‖D [D, N + 1]`, `B‖C [B, L, 2N]`.
fn forward(upz: &[f32], ad: &[f32], bc: &[f32], s: Dims) -> Vec<f32> {
    let Dims { b: _, l, d, n } = s;
    let mut y = vec![0f32; s.b * l * d];
    y.par_chunks_mut(l * d).enumerate().for_each(|(b, yb)| {
        let mut h = vec![0f32; d * n];
        for t in 0..l {
            let bct = &bc[(b * l + t) * 2 * n..(b * l + t + 1) * 2 * n];
            let (bt, ct) = bct.split_at(n);
            for c in 0..d {
                let (u, dt, _, z) = step(upz, b * l + t, d, c);
                let hc = &mut h[c * n..(c + 1) * n];
                let ac = &ad[c * (n + 1)..c * (n + 1) + n];
                let mut acc = 0f32;
                for k in 0..n {
                    hc[k] = decay(dt * ac[k]) * hc[k] + dt * bt[k] * u;
                    acc += ct[k] * hc[k];
                }
                yb[t * d + c] = (acc + ad[c * (n + 1) + n] * u) * z * sigmoid(z);
            }
        }
    });
    y
}

/// Backward: gradients of `u‖p‖z`, `A‖D` and `B‖C` from `gy [B, L, D]`.
fn backward(upz: &[f32], ad: &[f32], bc: &[f32], gy: &[f32], s: Dims) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims { b: nb, l, d, n } = s;
    let per: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..nb)
        .into_par_iter()
        .map(|b| {
            let mut gupz = vec![0f32; l * 3 * d];
            let mut gbc = vec![0f32; l * 2 * n];
            let mut gad = vec![0f32; d * (n + 1)];
            // States of every step for one channel at a time: hs[t·N + k] = h_t[k]; ys[t] the
            // scan's output before skip and gate.
            let mut hs = vec![0f32; l * n];
            let mut ys = vec![0f32; l];
            let mut gh = vec![0f32; n];
            for c in 0..d {
                let ac = &ad[c * (n + 1)..c * (n + 1) + n];
                let skip = ad[c * (n + 1) + n];
                let mut prev = vec![0f32; n];
                for t in 0..l {
                    let (u, dt, _, _) = step(upz, b * l + t, d, c);
                    let base = (b * l + t) * 2 * n;
                    let (bt, ct) = (&bc[base..base + n], &bc[base + n..base + 2 * n]);
                    let mut acc = 0f32;
                    for k in 0..n {
                        prev[k] = decay(dt * ac[k]) * prev[k] + dt * bt[k] * u;
                        acc += ct[k] * prev[k];
                    }
                    ys[t] = acc;
                    hs[t * n..(t + 1) * n].copy_from_slice(&prev);
                }
                gh.iter_mut().for_each(|g| *g = 0.0);
                for t in (0..l).rev() {
                    let (u, dt, p, z) = step(upz, b * l + t, d, c);
                    let base = (b * l + t) * 2 * n;
                    let (bt, ct) = (&bc[base..base + n], &bc[base + n..base + 2 * n]);
                    let gout = gy[(b * l + t) * d + c];
                    let sz = sigmoid(z);
                    let inner = ys[t] + skip * u;
                    // Through the gate: to the inner output and to z (SiLU' = σ(z)(1 + z(1 − σ(z)))).
                    let g = gout * z * sz;
                    gupz[t * 3 * d + 2 * d + c] = gout * inner * sz * (1.0 + z * (1.0 - sz));
                    gad[c * (n + 1) + n] += g * u;
                    let (mut g_dt, mut g_u) = (0f32, g * skip);
                    for k in 0..n {
                        let h_prev = if t > 0 { hs[(t - 1) * n + k] } else { 0.0 };
                        gh[k] += g * ct[k];
                        gbc[t * 2 * n + n + k] += g * hs[t * n + k];
                        let da = decay(dt * ac[k]);
                        g_dt += gh[k] * (ac[k] * da * h_prev + bt[k] * u);
                        gad[c * (n + 1) + k] += gh[k] * dt * da * h_prev;
                        gbc[t * 2 * n + k] += gh[k] * dt * u;
                        g_u += gh[k] * dt * bt[k];
                        gh[k] *= da;
                    }
                    gupz[t * 3 * d + c] += g_u;
                    // Δ = softplus(p): dΔ/dp = σ(p).
                    gupz[t * 3 * d + d + c] += g_dt * sigmoid(p);
                }
            }
            (gupz, gbc, gad)
        })
        .collect();
    let mut gupz = Vec::with_capacity(nb * l * 3 * d);
    let mut gbc = Vec::with_capacity(nb * l * 2 * n);
    let mut gad = vec![0f32; d * (n + 1)];
    for (u, c, a) in per {
        gupz.extend(u);
        gbc.extend(c);
        for (x, y) in gad.iter_mut().zip(a) {
            *x += y;
        }
    }
    (gupz, gad, gbc)
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
        upz: &Tensor,
        ad: &Tensor,
        bc: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The gradients are leaves (no double backward): computed on plain vectors.
        let (nb, l, d3) = upz.dims3()?;
        let (d, n1) = ad.dims2()?;
        let s = Dims { b: nb, l, d, n: n1 - 1 };
        if d3 != 3 * d || grad.dims3()? != (nb, l, d) {
            candle_core::bail!("selective scan backward: gradient {:?} for u‖p‖z {:?}", grad.shape(), upz.shape());
        }
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let (gupz, gad, gbc) = backward(&flat(upz)?, &flat(ad)?, &flat(bc)?, &flat(grad)?, s);
        let dev = upz.device();
        Ok((
            Some(Tensor::from_vec(gupz, (nb, l, 3 * d), dev)?),
            Some(Tensor::from_vec(gad, (d, n1), dev)?),
            Some(Tensor::from_vec(gbc, (nb, l, 2 * s.n), dev)?),
        ))
    }
}

/// Mamba's inner selective scan `y [B, L, D]` (the module docs): input `u`, step-size
/// pre-activation `p` and gate `z` (`[B, L, D]`), the negative state matrix `a` (`[D, N]`), `b`,
/// `c` (`[B, L, N]`) and the skip weights `d` (`[D]`); f32 on CPU, differentiable in every
/// input.
#[allow(clippy::too_many_arguments)]
pub fn selective_scan(
    u: &Tensor,
    p: &Tensor,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    d: &Tensor,
    z: &Tensor,
) -> Result<Tensor> {
    let upz = Tensor::cat(&[u, p, z], 2)?.contiguous()?;
    let ad = Tensor::cat(&[a, &d.reshape((d.elem_count(), 1))?], 1)?.contiguous()?;
    let bc = Tensor::cat(&[b, c], 2)?.contiguous()?;
    upz.apply_op3(&ad, &bc, Scan)
}

/// Mamba's causal depthwise convolution with its SiLU, `[B, L, D]` → `[B, L, D]`:
/// `y[b,t,c] = SiLU(bias[c] + Σ_j w[c,j] · x[b, t + j − (K − 1), c])` (steps before 0 are 0),
/// `w` `[D, K]`, `bias` `[D]`; f32 on CPU, differentiable in every input.
pub fn causal_conv_silu(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let wb = Tensor::cat(&[w, &bias.reshape((bias.elem_count(), 1))?], 1)?.contiguous()?;
    x.contiguous()?.apply_op2(&wb, Conv)
}

struct Conv;

/// Sizes of a [`Conv`]: batch, length, channels, width.
fn conv_dims(x: &Layout, wb: &Layout) -> Result<(usize, usize, usize, usize)> {
    let (b, l, d) = x.shape().dims3()?;
    let (d2, k1) = wb.shape().dims2()?;
    if d2 != d || k1 < 2 {
        candle_core::bail!("causal convolution: input {:?} and weights ‖ bias {:?} do not fit", x.shape(), wb.shape());
    }
    Ok((b, l, d, k1 - 1))
}

/// Pre-activations of one sequence `xb [L, D]`.
fn conv_pre(xb: &[f32], wb: &[f32], l: usize, d: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; l * d];
    for t in 0..l {
        for c in 0..d {
            let mut acc = wb[c * (k + 1) + k];
            for j in 0..k {
                if t + j + 1 >= k {
                    acc += wb[c * (k + 1) + j] * xb[(t + j + 1 - k) * d + c];
                }
            }
            out[t * d + c] = acc;
        }
    }
    out
}

impl candle_core::CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "aa-causal-conv-silu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, l, d, k) = conv_dims(l1, l2)?;
        let (x, wb) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let mut y = vec![0f32; b * l * d];
        y.par_chunks_mut((l * d).max(1)).enumerate().for_each(|(i, yb)| {
            let pre = conv_pre(&x[i * l * d..(i + 1) * l * d], wb, l, d, k);
            yb.iter_mut().zip(pre).for_each(|(o, a)| *o = a * sigmoid(a));
        });
        Ok((CpuStorage::F32(y), Shape::from((b, l, d))))
    }

    fn bwd(&self, x: &Tensor, wb: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, l, d) = x.dims3()?;
        let k = wb.dim(1)? - 1;
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let (xv, wv, gv) = (flat(x)?, flat(wb)?, flat(grad)?);
        let per: Vec<(Vec<f32>, Vec<f32>)> = (0..b)
            .into_par_iter()
            .map(|i| {
                let xb = &xv[i * l * d..(i + 1) * l * d];
                let pre = conv_pre(xb, &wv, l, d, k);
                let mut gx = vec![0f32; l * d];
                let mut gw = vec![0f32; d * (k + 1)];
                for t in 0..l {
                    for c in 0..d {
                        let a = pre[t * d + c];
                        let s = sigmoid(a);
                        let g = gv[(i * l + t) * d + c] * s * (1.0 + a * (1.0 - s));
                        gw[c * (k + 1) + k] += g;
                        for j in 0..k {
                            if t + j + 1 >= k {
                                let src = (t + j + 1 - k) * d + c;
                                gw[c * (k + 1) + j] += g * xb[src];
                                gx[src] += g * wv[c * (k + 1) + j];
                            }
                        }
                    }
                }
                (gx, gw)
            })
            .collect();
        let mut gx = Vec::with_capacity(b * l * d);
        let mut gw = vec![0f32; d * (k + 1)];
        for (x, w) in per {
            gx.extend(x);
            gw.iter_mut().zip(w).for_each(|(a, b)| *a += b);
        }
        let dev = x.device();
        Ok((Some(Tensor::from_vec(gx, (b, l, d), dev)?), Some(Tensor::from_vec(gw, (d, k + 1), dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The recurrence step by step with candle's own differentiable ops, then skip and gate.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        u: &Tensor,
        p: &Tensor,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        dskip: &Tensor,
        z: &Tensor,
    ) -> Result<Tensor> {
        let delta = (p.exp()? + 1.0)?.log()?;
        let y = scan_steps(u, &delta, a, b, c)?;
        (y + u.broadcast_mul(dskip)?)? * candle_nn_silu(z)?
    }

    fn candle_nn_silu(z: &Tensor) -> Result<Tensor> {
        z * (z.neg()?.exp()? + 1.0)?.recip()?
    }

    fn scan_steps(u: &Tensor, delta: &Tensor, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
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
        let delta = var((nb, l, d), 2, -2.0, 1.5);
        let a = var((1, d, n), 3, -2.0, -0.1);
        let a = Var::from_tensor(&a.as_tensor().reshape((d, n)).unwrap()).unwrap();
        let b = var((nb, l, n), 4, -1.0, 1.0);
        let c = var((nb, l, n), 5, -1.0, 1.0);
        let w = var((nb, l, d), 6, -1.0, 1.0).as_tensor().detach();
        let dskip = var((1, 1, d), 7, -1.0, 1.0);
        let dskip = Var::from_tensor(&dskip.as_tensor().reshape(d).unwrap()).unwrap();
        let z = var((nb, l, d), 8, -2.0, 2.0);
        let vars = [&u, &delta, &a, &b, &c, &dskip, &z];
        let ours = selective_scan(&u, &delta, &a, &b, &c, &dskip, &z).unwrap();
        let theirs = reference(&u, &delta, &a, &b, &c, &dskip, &z).unwrap();
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
        let dskip = Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = selective_scan(&u, &u, &a, &b, &b, &dskip, &u).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");
    }

    #[test]
    fn causal_convolution_and_gradients_match_candle_ops() {
        let (nb, l, d, k) = (2, 6, 3, 4);
        let x = var((nb, l, d), 11, -1.0, 1.0);
        let w = var((1, d, k), 12, -1.0, 1.0);
        let w = Var::from_tensor(&w.as_tensor().reshape((d, k)).unwrap()).unwrap();
        let bias = var((1, 1, d), 13, -0.5, 0.5);
        let bias = Var::from_tensor(&bias.as_tensor().reshape(d).unwrap()).unwrap();
        let g = var((nb, l, d), 14, -1.0, 1.0).as_tensor().detach();
        let ours = causal_conv_silu(&x, &w, &bias).unwrap();
        let theirs = {
            let xp = x.pad_with_zeros(1, k - 1, 0).unwrap();
            let mut acc = bias.reshape((1, 1, d)).unwrap().broadcast_as((nb, l, d)).unwrap().contiguous().unwrap();
            for j in 0..k {
                let wj = w.narrow(1, j, 1).unwrap().reshape((1, 1, d)).unwrap();
                acc = (acc + xp.narrow(1, j, l).unwrap().broadcast_mul(&wj).unwrap()).unwrap();
            }
            candle_nn_silu(&acc).unwrap()
        };
        let diff = (&ours - &theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let g1 = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &g).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &bias] {
            let a = g1.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = g2.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(b.iter().any(|g| g.abs() > 1e-3));
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5 * (1.0 + q.abs())), "{a:?} vs {b:?}");
        }
    }
}
