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
//! states; the backward pass recomputes one sequence's states at a time and runs the recurrence
//! in reverse, so memory stays `O(B·L·(D + N))` plus `O(L·N·D)` per thread. The state is kept
//! as `[N, D]` (channels innermost) and the softplus, sigmoid and decay `exp` are libm-free, so
//! every inner loop runs over channels in a copy compiled for the CPU's SIMD level. Sequences
//! are parallel (rayon) and every reduction runs in a fixed order, so results are
//! bit-reproducible. A test checks value and every gradient
//! against the same computation written step by step with candle's differentiable ops.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dense::{contiguous_f32, exp_nonpositive, vec_of};
use crate::kernels::{simd_level, SimdLevel};

/// Channel and state sizes of one scan.
#[derive(Clone, Copy, Debug)]
struct Dims {
    d: usize,
    n: usize,
}

/// Sizes of packed rows `u‖p‖z [R, 3D]`, `A‖D [D, N + 1]`, `B‖C [R, 2N]` whose rows are the
/// sequences of `lens` one after the other.
fn dims(upz: &Layout, ad: &Layout, bc: &Layout, lens: &[usize]) -> Result<Dims> {
    let (r, d3) = upz.shape().dims2()?;
    let (d, n1) = ad.shape().dims2()?;
    let (r2, n2) = bc.shape().dims2()?;
    if n1 < 2 || d3 != 3 * d || n2 != 2 * (n1 - 1) || r2 != r || lens.iter().sum::<usize>() != r {
        candle_core::bail!(
            "selective scan: u‖p‖z {:?}, A‖D {:?}, B‖C {:?} and {} sequences of {} rows do not fit together",
            upz.shape(),
            ad.shape(),
            bc.shape(),
            lens.len(),
            lens.iter().sum::<usize>()
        );
    }
    Ok(Dims { d, n: n1 - 1 })
}

/// `buf` cut into consecutive pieces of `lens[i] · width` values.
fn split_rows<'a>(mut buf: &'a mut [f32], lens: &[usize], width: usize) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(lens.len());
    for &l in lens {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(l * width);
        out.push(head);
        buf = tail;
    }
    out
}

/// Start row of each sequence (and the total at the end).
fn starts(lens: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(lens.len() + 1);
    let mut acc = 0;
    out.push(0);
    for &l in lens {
        acc += l;
        out.push(acc);
    }
    out
}

/// `ln(1 + e)` for `e ∈ [0, 1]` in plain arithmetic (vectorises): `ln(1 + e) = 2·atanh(s)` with
/// `s = e / (2 + e) ≤ 1/3`, the odd series to `s¹³` (relative error < 2·10⁻⁸).
#[inline(always)]
fn ln1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let q = s * s;
    let series = 1.0
        + q * (1.0 / 3.0 + q * (1.0 / 5.0 + q * (1.0 / 7.0 + q * (1.0 / 9.0 + q * (1.0 / 11.0 + q * (1.0 / 13.0))))));
    2.0 * s * series
}

/// `ln(1 + eˣ)` without overflow and without libm calls.
#[inline(always)]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + ln1p_unit(exp_nonpositive(-x.abs()))
}

/// The logistic function `1 / (1 + e⁻ˣ)`, branch-free (a select) and without libm calls.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// `eʸ`: the vectorisable [`exp_nonpositive`] when every `A ≤ 0` (then `y = Δ·A ≤ 0`, Mamba's
/// case — `A = −exp(·)`), libm's `exp` otherwise.
#[inline(always)]
fn decay<const NONPOS: bool>(y: f32) -> f32 {
    if NONPOS {
        exp_nonpositive(y)
    } else {
        y.exp()
    }
}

/// Sum of a slice in 16 interleaved lanes (so the loop vectorises), combined in a fixed order.
#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for ch in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += v;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

/// The parameters shared by every sequence, in the kernels' channel-innermost layout.
struct Params {
    /// `A` transposed, `[N, D]`.
    at: Vec<f32>,
    /// The skip weights `D`, `[D]`.
    skip: Vec<f32>,
}

impl Params {
    fn new(ad: &[f32], s: Dims) -> Params {
        let (d, n) = (s.d, s.n);
        let mut at = vec![0f32; n * d];
        for c in 0..d {
            for k in 0..n {
                at[k * d + c] = ad[c * (n + 1) + k];
            }
        }
        Params { at, skip: (0..d).map(|c| ad[c * (n + 1) + n]).collect() }
    }

    /// Whether every entry of `A` is ≤ 0 (the fast decay applies).
    fn nonpositive(&self) -> bool {
        self.at.iter().all(|&a| a <= 0.0)
    }
}

/// One step of the recurrence for every state and channel, in place: `h ← exp(Δ·A) ⊙ h + Δ·B·u`
/// (`h`, `Aᵀ` as `[N, D]`) and `y += C · h` (`y` `[D]`, the scan's output before skip and gate).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn step<const NONPOS: bool>(
    d: usize,
    at: &[f32],
    dt: &[f32],
    u: &[f32],
    bt: &[f32],
    ct: &[f32],
    h: &mut [f32],
    y: &mut [f32],
) {
    for (k, (hk, ak)) in h.chunks_exact_mut(d).zip(at.chunks_exact(d)).enumerate() {
        let (bk, ck) = (bt[k], ct[k]);
        for ((((hv, &a), &dc), &uc), yc) in hk.iter_mut().zip(ak).zip(dt).zip(u).zip(y.iter_mut()) {
            let v = decay::<NONPOS>(dc * a) * *hv + dc * bk * uc;
            *hv = v;
            *yc += ck * v;
        }
    }
}

/// Forward of one sequence: `y [L, D]` from its `u‖p‖z [L, 3D]` and `B‖C [L, 2N]`; the state
/// `h [N, D]` keeps channels innermost, so every inner loop runs over channels and vectorises.
#[inline(always)]
fn forward_seq<const NONPOS: bool>(s: Dims, q: &Params, upz: &[f32], bc: &[f32], y: &mut [f32]) {
    let (d, n) = (s.d, s.n);
    let mut h = vec![0f32; n * d];
    let mut dt = vec![0f32; d];
    for ((row, bct), yt) in upz.chunks_exact(3 * d).zip(bc.chunks_exact(2 * n)).zip(y.chunks_exact_mut(d)) {
        let (u, pz) = row.split_at(d);
        let (p, z) = pz.split_at(d);
        dt.iter_mut().zip(p).for_each(|(o, &v)| *o = softplus(v));
        let (bt, ct) = bct.split_at(n);
        yt.fill(0.0);
        step::<NONPOS>(d, &q.at, &dt, u, bt, ct, &mut h, yt);
        for ((yc, (&uc, &zc)), &sk) in yt.iter_mut().zip(u.iter().zip(z)).zip(&q.skip) {
            *yc = (*yc + sk * uc) * zc * sigmoid(zc);
        }
    }
}

/// Backward of one sequence: adds the gradients of its `u‖p‖z` and `B‖C` into `gupz`, `gbc`
/// (zeroed, this sequence's rows) and of `Aᵀ ‖ D` into `gas` (`[N·D + D]`, summed over the
/// sequences of a task). The forward states are recomputed and kept for every step
/// (`O(L·N·D)` per sequence in flight), then the recurrence runs in reverse.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_seq<const NONPOS: bool>(
    s: Dims,
    q: &Params,
    upz: &[f32],
    bc: &[f32],
    gy: &[f32],
    gupz: &mut [f32],
    gbc: &mut [f32],
    gas: &mut [f32],
) {
    let (d, n) = (s.d, s.n);
    let l = upz.len() / (3 * d).max(1);
    let nd = n * d;
    // Step sizes, states and the scan's output before skip and gate, for every step.
    let mut dts = vec![0f32; l * d];
    let mut hs = vec![0f32; l * nd];
    let mut ys = vec![0f32; l * d];
    for t in 0..l {
        let row = &upz[t * 3 * d..(t + 1) * 3 * d];
        let (u, p) = (&row[..d], &row[d..2 * d]);
        let dt = &mut dts[t * d..(t + 1) * d];
        dt.iter_mut().zip(p).for_each(|(o, &v)| *o = softplus(v));
        let (bt, ct) = bc[t * 2 * n..(t + 1) * 2 * n].split_at(n);
        // The state of step t starts as step t − 1's (zero at t = 0) and is updated in place.
        let (before, now) = hs.split_at_mut(t * nd);
        let now = &mut now[..nd];
        if t > 0 {
            now.copy_from_slice(&before[(t - 1) * nd..]);
        }
        step::<NONPOS>(d, &q.at, dt, u, bt, ct, now, &mut ys[t * d..(t + 1) * d]);
    }
    let (gat, gskip) = gas.split_at_mut(nd);
    let gskip = &mut gskip[..d];
    let mut gh = vec![0f32; nd];
    let (mut g, mut g_u, mut g_dt) = (vec![0f32; d], vec![0f32; d], vec![0f32; d]);
    let (mut pc, mut pb) = (vec![0f32; d], vec![0f32; d]);
    let zeros = vec![0f32; d];
    // Re-sliced to length `d`, so the channel loops below carry no bounds checks and vectorise.
    let (g, g_u, g_dt, pc, pb) = (&mut g[..d], &mut g_u[..d], &mut g_dt[..d], &mut pc[..d], &mut pb[..d]);
    let skip = &q.skip[..d];
    for t in (0..l).rev() {
        let row = &upz[t * 3 * d..(t + 1) * 3 * d];
        let (u, p, z) = (&row[..d], &row[d..2 * d], &row[2 * d..]);
        let dt = &dts[t * d..(t + 1) * d];
        let gout = &gy[t * d..(t + 1) * d];
        let grow = &mut gupz[t * 3 * d..(t + 1) * 3 * d];
        // Through the gate: to the inner output and to z (SiLU' = σ(z)(1 + z(1 − σ(z)))).
        for c in 0..d {
            let sz = sigmoid(z[c]);
            let inner = ys[t * d + c] + skip[c] * u[c];
            g[c] = gout[c] * z[c] * sz;
            grow[2 * d + c] = gout[c] * inner * sz * (1.0 + z[c] * (1.0 - sz));
            gskip[c] += g[c] * u[c];
            g_u[c] = g[c] * skip[c];
            g_dt[c] = 0.0;
        }
        let (bt, ct) = bc[t * 2 * n..(t + 1) * 2 * n].split_at(n);
        for k in 0..n {
            let ht = &hs[t * nd + k * d..t * nd + (k + 1) * d];
            let hp = if t > 0 { &hs[(t - 1) * nd + k * d..(t - 1) * nd + (k + 1) * d] } else { &zeros[..] };
            let ak = &q.at[k * d..(k + 1) * d];
            let gak = &mut gat[k * d..(k + 1) * d];
            let ghk = &mut gh[k * d..(k + 1) * d];
            let (bk, ck) = (bt[k], ct[k]);
            for c in 0..d {
                let ghv = ghk[c] + g[c] * ck;
                pc[c] = g[c] * ht[c];
                let da = decay::<NONPOS>(dt[c] * ak[c]);
                let dah = da * hp[c];
                g_dt[c] += ghv * (ak[c] * dah + bk * u[c]);
                gak[c] += ghv * dt[c] * dah;
                pb[c] = ghv * dt[c] * u[c];
                g_u[c] += ghv * dt[c] * bk;
                ghk[c] = ghv * da;
            }
            gbc[t * 2 * n + n + k] += lane_sum(pc);
            gbc[t * 2 * n + k] += lane_sum(pb);
        }
        for c in 0..d {
            grow[c] += g_u[c];
            // Δ = softplus(p): dΔ/dp = σ(p).
            grow[d + c] += g_dt[c] * sigmoid(p[c]);
        }
    }
}

/// Runs `$body::<NONPOS>(args)` in the copy compiled for the CPU's SIMD level.
macro_rules! simd_dispatch {
    ($body:ident, $nonpos:expr, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        match simd_level() {
            // SAFETY: the level says the CPU has these features.
            SimdLevel::Avx512 => unsafe {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn run<const P: bool>(s: Dims, q: &Params, a: &[f32], b: &[f32], c: &[f32], d: &mut [f32], e: &mut [f32], f: &mut [f32]) {
                    $body::<P>(s, q, a, b, c, d, e, f)
                }
                if $nonpos { run::<true>($($arg),*) } else { run::<false>($($arg),*) }
            },
            // SAFETY: as above.
            SimdLevel::Avx2 => unsafe {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn run<const P: bool>(s: Dims, q: &Params, a: &[f32], b: &[f32], c: &[f32], d: &mut [f32], e: &mut [f32], f: &mut [f32]) {
                    $body::<P>(s, q, a, b, c, d, e, f)
                }
                if $nonpos { run::<true>($($arg),*) } else { run::<false>($($arg),*) }
            },
            SimdLevel::Base => if $nonpos { $body::<true>($($arg),*) } else { $body::<false>($($arg),*) },
        }
        #[cfg(not(target_arch = "x86_64"))]
        if $nonpos { $body::<true>($($arg),*) } else { $body::<false>($($arg),*) }
    }};
}

/// [`forward_seq`] in the uniform eight-argument shape of [`simd_dispatch`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_body<const NONPOS: bool>(
    s: Dims,
    q: &Params,
    upz: &[f32],
    bc: &[f32],
    _: &[f32],
    y: &mut [f32],
    _: &mut [f32],
    _: &mut [f32],
) {
    forward_seq::<NONPOS>(s, q, upz, bc, y)
}

/// Sequences per parallel task of the backward pass (fixed, so the `A`, `D` gradient sums
/// combine in the same order on every machine).
const BWD_GROUP: usize = 4;

/// Forward: `y [R, D]` from packed `u‖p‖z [R, 3D]`, `A‖D [D, N + 1]`, `B‖C [R, 2N]`, the rows
/// being the sequences of `lens`.
fn forward(upz: &[f32], ad: &[f32], bc: &[f32], s: Dims, lens: &[usize]) -> Vec<f32> {
    let Dims { d, n } = s;
    let q = Params::new(ad, s);
    let nonpos = q.nonpositive();
    let at = starts(lens);
    let mut y = vec![0f32; at[lens.len()] * d];
    split_rows(&mut y, lens, d).into_par_iter().enumerate().for_each(|(i, yb)| {
        let (u, c) = (&upz[at[i] * 3 * d..at[i + 1] * 3 * d], &bc[at[i] * 2 * n..at[i + 1] * 2 * n]);
        simd_dispatch!(forward_body, nonpos, (s, &q, u, c, &[], yb, &mut [], &mut []));
    });
    y
}

/// Backward: gradients of `u‖p‖z`, `A‖D` and `B‖C` from `gy [R, D]`.
fn backward(
    upz: &[f32],
    ad: &[f32],
    bc: &[f32],
    gy: &[f32],
    s: Dims,
    lens: &[usize],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims { d, n } = s;
    let q = Params::new(ad, s);
    let nonpos = q.nonpositive();
    let at = starts(lens);
    let rows = at[lens.len()];
    let mut gupz = vec![0f32; rows * 3 * d];
    let mut gbc = vec![0f32; rows * 2 * n];
    // Tasks of BWD_GROUP consecutive sequences each.
    let group_lens: Vec<usize> = lens.chunks(BWD_GROUP).map(|g| g.iter().sum()).collect();
    let groups: Vec<Vec<f32>> = split_rows(&mut gupz, &group_lens, 3 * d)
        .into_par_iter()
        .zip(split_rows(&mut gbc, &group_lens, 2 * n))
        .enumerate()
        .map(|(i, (gu, gc))| {
            let mut gas = vec![0f32; n * d + d];
            let first = i * BWD_GROUP;
            let members = &lens[first..(first + BWD_GROUP).min(lens.len())];
            let (us, cs) = (split_rows(gu, members, 3 * d), split_rows(gc, members, 2 * n));
            for (j, (ou, oc)) in us.into_iter().zip(cs).enumerate() {
                let b = first + j;
                let (lo, hi) = (at[b], at[b + 1]);
                let (u, c, g) = (&upz[lo * 3 * d..hi * 3 * d], &bc[lo * 2 * n..hi * 2 * n], &gy[lo * d..hi * d]);
                simd_dispatch!(backward_seq, nonpos, (s, &q, u, c, g, ou, oc, &mut gas));
            }
            gas
        })
        .collect();
    let mut gas = vec![0f32; n * d + d];
    for g in groups {
        gas.iter_mut().zip(g).for_each(|(a, b)| *a += b);
    }
    let mut gad = vec![0f32; d * (n + 1)];
    for c in 0..d {
        for k in 0..n {
            gad[c * (n + 1) + k] = gas[k * d + c];
        }
        gad[c * (n + 1) + n] = gas[n * d + c];
    }
    (gupz, gad, gbc)
}

/// The scan over packed rows, the sequences of the given lengths one after the other.
struct Scan(Vec<usize>);

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
        let s = dims(l1, l2, l3, &self.0)?;
        let y = forward(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?, s, &self.0);
        Ok((CpuStorage::F32(y), Shape::from((l1.shape().dims()[0], s.d))))
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
        let s = dims(upz.layout(), ad.layout(), bc.layout(), &self.0)?;
        let rows = upz.dim(0)?;
        if grad.dims2()? != (rows, s.d) {
            candle_core::bail!("selective scan backward: gradient {:?} for u‖p‖z {:?}", grad.shape(), upz.shape());
        }
        let (gupz, gad, gbc) = backward(&vec_of(upz)?, &vec_of(ad)?, &vec_of(bc)?, &vec_of(grad)?, s, &self.0);
        let dev = upz.device();
        Ok((
            Some(Tensor::from_vec(gupz, (rows, 3 * s.d), dev)?),
            Some(Tensor::from_vec(gad, (s.d, s.n + 1), dev)?),
            Some(Tensor::from_vec(gbc, (rows, 2 * s.n), dev)?),
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
    let (nb, l, dim) = u.dims3()?;
    let n = a.dim(1)?;
    let flat = |t: &Tensor, w: usize| t.reshape((nb * l, w));
    let y = selective_scan_packed(
        &flat(u, dim)?,
        &flat(p, dim)?,
        a,
        &flat(b, n)?,
        &flat(c, n)?,
        d,
        &flat(z, dim)?,
        &vec![l; nb],
    )?;
    y.reshape((nb, l, dim))
}

/// The selective scan over packed sequences without padding: `u`, `p`, `z` `[R, D]` and `b`,
/// `c` `[R, N]` hold the sequences of `lens` (summing to `R`) one after the other, each scanned
/// from a zero state; `y` is `[R, D]`. Otherwise as [`selective_scan`].
#[allow(clippy::too_many_arguments)]
pub fn selective_scan_packed(
    u: &Tensor,
    p: &Tensor,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    d: &Tensor,
    z: &Tensor,
    lens: &[usize],
) -> Result<Tensor> {
    let upz = Tensor::cat(&[u, p, z], 1)?.contiguous()?;
    let ad = Tensor::cat(&[a, &d.reshape((d.elem_count(), 1))?], 1)?.contiguous()?;
    let bc = Tensor::cat(&[b, c], 1)?.contiguous()?;
    upz.apply_op3(&ad, &bc, Scan(lens.to_vec()))
}

/// Mamba's causal depthwise convolution with its SiLU, `[B, L, D]` → `[B, L, D]`:
/// `y[b,t,c] = SiLU(bias[c] + Σ_j w[c,j] · x[b, t + j − (K − 1), c])` (steps before 0 are 0),
/// `w` `[D, K]`, `bias` `[D]`; f32 on CPU, differentiable in every input.
pub fn causal_conv_silu(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (b, l, d) = x.dims3()?;
    causal_conv_silu_packed(&x.reshape((b * l, d))?, w, bias, &vec![l; b])?.reshape((b, l, d))
}

/// The causal convolution over packed sequences without padding: `x` `[R, D]` holds the
/// sequences of `lens` (summing to `R`) one after the other, each convolved on its own.
pub fn causal_conv_silu_packed(x: &Tensor, w: &Tensor, bias: &Tensor, lens: &[usize]) -> Result<Tensor> {
    let wb = Tensor::cat(&[w, &bias.reshape((bias.elem_count(), 1))?], 1)?.contiguous()?;
    x.contiguous()?.apply_op2(&wb, Conv(lens.to_vec()))
}

/// The convolution over packed rows, the sequences of the given lengths one after the other.
struct Conv(Vec<usize>);

/// Sizes of a [`Conv`]: rows, channels, width.
fn conv_dims(x: &Layout, wb: &Layout, lens: &[usize]) -> Result<(usize, usize, usize)> {
    let (r, d) = x.shape().dims2()?;
    let (d2, k1) = wb.shape().dims2()?;
    if d2 != d || k1 < 2 || lens.iter().sum::<usize>() != r {
        candle_core::bail!(
            "causal convolution: input {:?}, weights ‖ bias {:?} and {} sequences of {} rows do not fit",
            x.shape(),
            wb.shape(),
            lens.len(),
            lens.iter().sum::<usize>()
        );
    }
    Ok((r, d, k1 - 1))
}

/// `w ‖ bias` `[D, K + 1]` transposed to `[K + 1, D]` (channels innermost).
fn conv_weights_t(wb: &[f32], d: usize, k: usize) -> Vec<f32> {
    let mut wt = vec![0f32; (k + 1) * d];
    for c in 0..d {
        for j in 0..=k {
            wt[j * d + c] = wb[c * (k + 1) + j];
        }
    }
    wt
}

/// Pre-activations of one sequence `xb [L, D]` with the transposed weights `wt [K + 1, D]`;
/// the channel loops are innermost (they vectorise).
fn conv_pre(xb: &[f32], wt: &[f32], l: usize, d: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; l * d];
    for t in 0..l {
        let o = &mut out[t * d..(t + 1) * d];
        o.copy_from_slice(&wt[k * d..(k + 1) * d]);
        for j in 0..k {
            if t + j + 1 >= k {
                let src = &xb[(t + j + 1 - k) * d..(t + j + 2 - k) * d];
                o.iter_mut().zip(src).zip(&wt[j * d..(j + 1) * d]).for_each(|((a, &x), &w)| *a += w * x);
            }
        }
    }
    out
}

impl candle_core::CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "aa-causal-conv-silu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (r, d, k) = conv_dims(l1, l2, &self.0)?;
        let (x, wb) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let wt = conv_weights_t(wb, d, k);
        let at = starts(&self.0);
        let mut y = vec![0f32; r * d];
        split_rows(&mut y, &self.0, d).into_par_iter().enumerate().for_each(|(i, yb)| {
            let pre = conv_pre(&x[at[i] * d..at[i + 1] * d], &wt, self.0[i], d, k);
            yb.iter_mut().zip(pre).for_each(|(o, a)| *o = a * sigmoid(a));
        });
        Ok((CpuStorage::F32(y), Shape::from((r, d))))
    }

    fn bwd(&self, x: &Tensor, wb: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (r, d, k) = conv_dims(x.layout(), wb.layout(), &self.0)?;
        let (xv, wv, gv) = (vec_of(x)?, vec_of(wb)?, vec_of(grad)?);
        let wt = conv_weights_t(&wv, d, k);
        let at = starts(&self.0);
        let per: Vec<(Vec<f32>, Vec<f32>)> = (0..self.0.len())
            .into_par_iter()
            .map(|i| {
                let (lo, l) = (at[i], self.0[i]);
                let xb = &xv[lo * d..(lo + l) * d];
                let pre = conv_pre(xb, &wt, l, d, k);
                let mut gx = vec![0f32; l * d];
                // Weight gradients transposed, [K + 1, D], like `wt`.
                let mut gwt = vec![0f32; (k + 1) * d];
                let mut g = vec![0f32; d];
                for t in 0..l {
                    let (a, gout) = (&pre[t * d..(t + 1) * d], &gv[(lo + t) * d..(lo + t + 1) * d]);
                    for ((gc, &ac), &go) in g.iter_mut().zip(a).zip(gout) {
                        let s = sigmoid(ac);
                        *gc = go * s * (1.0 + ac * (1.0 - s));
                    }
                    gwt[k * d..].iter_mut().zip(&g).for_each(|(o, &v)| *o += v);
                    for j in 0..k {
                        if t + j + 1 >= k {
                            let src = (t + j + 1 - k) * d;
                            let (gwj, wj) = (&mut gwt[j * d..(j + 1) * d], &wt[j * d..(j + 1) * d]);
                            for (((gw, gxv), (&xv, &w)), &gc) in
                                gwj.iter_mut().zip(&mut gx[src..src + d]).zip(xb[src..src + d].iter().zip(wj)).zip(&g)
                            {
                                *gw += gc * xv;
                                *gxv += gc * w;
                            }
                        }
                    }
                }
                let mut gw = vec![0f32; d * (k + 1)];
                for c in 0..d {
                    for j in 0..=k {
                        gw[c * (k + 1) + j] = gwt[j * d + c];
                    }
                }
                (gx, gw)
            })
            .collect();
        let mut gx = Vec::with_capacity(r * d);
        let mut gw = vec![0f32; d * (k + 1)];
        for (x, w) in per {
            gx.extend(x);
            gw.iter_mut().zip(w).for_each(|(a, b)| *a += b);
        }
        let dev = x.device();
        Ok((Some(Tensor::from_vec(gx, (r, d), dev)?), Some(Tensor::from_vec(gw, (d, k + 1), dev)?)))
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
    fn positive_state_entries_take_the_general_decay() {
        // Mixed-sign `A` (a learned state matrix need not stay negative): the libm path.
        let (nb, l, d, n) = (2, 5, 19, 3);
        let u = var((nb, l, d), 21, -1.0, 1.0);
        let p = var((nb, l, d), 22, -2.0, 1.0);
        let a = var((1, d, n), 23, -1.0, 0.5);
        let a = Var::from_tensor(&a.as_tensor().reshape((d, n)).unwrap()).unwrap();
        let b = var((nb, l, n), 24, -1.0, 1.0);
        let c = var((nb, l, n), 25, -1.0, 1.0);
        let dskip = var((1, 1, d), 26, -1.0, 1.0);
        let dskip = Var::from_tensor(&dskip.as_tensor().reshape(d).unwrap()).unwrap();
        let z = var((nb, l, d), 27, -2.0, 2.0);
        let w = var((nb, l, d), 28, -1.0, 1.0).as_tensor().detach();
        assert!(a.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().any(|&x| x > 0.0));
        let ours = selective_scan(&u, &p, &a, &b, &c, &dskip, &z).unwrap();
        let theirs = reference(&u, &p, &a, &b, &c, &dskip, &z).unwrap();
        let diff = (&ours - &theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&u, &p, &a, &b, &c, &dskip, &z] {
            let x = g1.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let y = g2.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() < 1e-4 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn libm_free_softplus_and_sigmoid_match_libm() {
        let (mut worst_sp, mut worst_sg) = (0f64, 0f64);
        for i in -40_000..=40_000 {
            let x = i as f32 * 1e-3;
            let sp = (x as f64).exp().ln_1p();
            let sg = 1.0 / (1.0 + (-(x as f64)).exp());
            worst_sp = worst_sp.max((softplus(x) as f64 - sp).abs() / sp);
            worst_sg = worst_sg.max((sigmoid(x) as f64 - sg).abs() / sg);
        }
        assert!(worst_sp < 1e-6, "softplus relative error {worst_sp}");
        assert!(worst_sg < 1e-6, "sigmoid relative error {worst_sg}");
        assert_eq!(lane_sum(&(1..=37).map(|v| v as f32).collect::<Vec<_>>()), 703.0);
    }

    #[test]
    fn packed_sequences_equal_each_sequence_alone() {
        // Three sequences of lengths 5, 1 and 9 packed into 15 rows, against each scanned (and
        // convolved) on its own as a batch of one, in value and every gradient.
        let (lens, d, n, k) = ([5usize, 1, 9], 6, 3, 4);
        let r: usize = lens.iter().sum();
        let row = |seed, w, lo, hi| {
            let v = var((1, r, w), seed, lo, hi);
            Var::from_tensor(&v.as_tensor().reshape((r, w)).unwrap()).unwrap()
        };
        let (u, p, z) = (row(31, d, -1.0, 1.0), row(32, d, -2.0, 1.0), row(33, d, -2.0, 2.0));
        let (b, c) = (row(34, n, -1.0, 1.0), row(35, n, -1.0, 1.0));
        let a = Var::from_tensor(&var((1, d, n), 36, -2.0, -0.1).as_tensor().reshape((d, n)).unwrap()).unwrap();
        let dskip = Var::from_tensor(&var((1, 1, d), 37, -1.0, 1.0).as_tensor().reshape(d).unwrap()).unwrap();
        let w = Var::from_tensor(&var((1, d, k), 38, -1.0, 1.0).as_tensor().reshape((d, k)).unwrap()).unwrap();
        let bias = Var::from_tensor(&var((1, 1, d), 39, -0.5, 0.5).as_tensor().reshape(d).unwrap()).unwrap();
        let probe = var((1, r, d), 40, -1.0, 1.0).as_tensor().reshape((r, d)).unwrap();
        let packed = {
            let x = causal_conv_silu_packed(&u, &w, &bias, &lens).unwrap();
            selective_scan_packed(&x, &p, &a, &b, &c, &dskip, &z, &lens).unwrap()
        };
        let mut parts = Vec::new();
        let mut lo = 0;
        for &l in &lens {
            let one = |t: &Var| t.narrow(0, lo, l).unwrap().unsqueeze(0).unwrap();
            let x = causal_conv_silu(&one(&u), &w, &bias).unwrap();
            let y = selective_scan(&x, &one(&p), &a, &one(&b), &one(&c), &dskip, &one(&z)).unwrap();
            parts.push(y.squeeze(0).unwrap());
            lo += l;
        }
        let alone = Tensor::cat(&parts, 0).unwrap();
        let diff = (&packed - &alone).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let g1 = (packed * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (alone * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&u, &p, &z, &b, &c, &a, &dskip, &w, &bias] {
            let x = g1.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let y = g2.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-5 * (1.0 + q.abs())), "{x:?} vs {y:?}");
        }
        // Lengths that do not add up to the rows are refused.
        let e = selective_scan_packed(&u, &p, &a, &b, &c, &dskip, &z, &[5, 1]).unwrap_err().to_string();
        assert!(e.contains("2 sequences of 6 rows"), "{e}");
        let e = causal_conv_silu_packed(&u, &w, &bias, &[16]).unwrap_err().to_string();
        assert!(e.contains("1 sequences of 16 rows"), "{e}");
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
