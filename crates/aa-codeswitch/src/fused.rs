//! Fused CPU f32 inference kernels of the ESM block.
//!
//! Attention: per (sequence, head) task, the
//! rotary rotation of q and k, `q·kᵀ`, the key-padding mask, the row softmax and `·v` run on
//! a `T × T` scratch block, so no `[B, H, T, T]` tensor is ever materialised and heads never
//! need a transpose copy on the way in. Tasks run in parallel; each product is one
//! single-threaded [`gemm_f32`]. The training path (and ESM-AA's pair bias, which needs the
//! logits of every layer) uses candle ops instead; both give the same numbers (tested).
//!
//! Feed-forward: `fc2(GELU(fc1(h)))` in blocks of rows, each block's `4E`-wide hidden state
//! living in a per-thread scratch buffer (no `[N, 4E]` tensor, which at batch 32 × 256 is a
//! 63 MB allocation the allocator hands back to the OS and page-faults in again every layer).

use aa_graph::dense::{exp_nonpositive, gelu_f32, gemm_f32, storage_f32};
use aa_graph::kernels::{simd_level, SimdLevel};
use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

/// Binds `$name` to the f32 slice of tensor `$t` (made contiguous) for the rest of the scope.
macro_rules! f32_view {
    ($name:ident, $t:expr) => {
        let owner = $t.contiguous()?;
        let (guard, layout) = owner.storage_and_layout();
        let $name = storage_f32(&guard, layout)?;
    };
}

/// Lanes of the explicit accumulators below (one AVX-512 register of f32).
const LANES: usize = 16;

/// Softmax of each `t`-wide row of `s` in place; `mask` (0 or −1e30 per key) is added first.
/// Max and sum run on `LANES`-wide accumulator arrays so the loops vectorise.
#[inline(always)]
fn softmax_rows(s: &mut [f32], t: usize, mask: Option<&[f32]>) {
    for row in s.chunks_exact_mut(t) {
        if let Some(m) = mask {
            row.iter_mut().zip(m).for_each(|(v, &a)| *v += a);
        }
        let mut acc = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                acc[l] = acc[l].max(c[l]);
            }
        }
        let max =
            chunks.remainder().iter().fold(acc.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)), |a, &b| a.max(b));
        let mut sums = [0f32; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                let e = exp_nonpositive(c[l] - max);
                c[l] = e;
                sums[l] += e;
            }
        }
        let mut sum: f32 = sums.iter().sum();
        for v in chunks.into_remainder() {
            *v = exp_nonpositive(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(s: &mut [f32], t: usize, mask: Option<&[f32]>) {
    softmax_rows(s, t, mask)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn softmax_rows_avx512(s: &mut [f32], t: usize, mask: Option<&[f32]>) {
    softmax_rows(s, t, mask)
}

fn softmax_dispatch(level: SimdLevel, s: &mut [f32], t: usize, mask: Option<&[f32]>) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level says the CPU has these features.
        SimdLevel::Avx512 => unsafe { softmax_rows_avx512(s, t, mask) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdLevel::Avx2 => unsafe { softmax_rows_avx2(s, t, mask) },
        _ => softmax_rows(s, t, mask),
    }
}

/// `out = scale · rot(x)` for one head's row (rotate-half rotary: the first half pairs with the
/// second), written with zipped slices so the loop vectorises.
#[inline(always)]
fn rotate_half(out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32], scale: f32) {
    let half = cos.len();
    let (x1, x2) = x.split_at(half);
    let (o1, o2) = out.split_at_mut(half);
    for ((((o1, o2), (&a, &b)), &c), &s) in o1.iter_mut().zip(o2).zip(x1.iter().zip(x2)).zip(cos).zip(sin) {
        let (a, b) = (a * scale, b * scale);
        *o1 = a * c - b * s;
        *o2 = b * c + a * s;
    }
}

/// Whether the fused kernel applies (CPU, f32).
pub(crate) fn applies(q: &Tensor) -> bool {
    q.device().is_cpu() && q.dtype() == DType::F32
}

/// `softmax(rot(q)·rot(k)ᵀ / √D + mask) · v` for `q, k, v` of shape `[B, T, H·D]` (heads
/// side by side, as the projections produce them), rotary tables `cos, sin` `[B, T, D/2]`
/// and `key_ok` (`B·T`, false for padding; `None`: no padding). Returns `[B, T, H·D]`.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: usize,
    key_ok: Option<&[bool]>,
) -> Result<Tensor> {
    let (b, t, e) = q.dims3()?;
    let d = e / heads;
    let half = d / 2;
    f32_view!(qv, q);
    f32_view!(kv, k);
    f32_view!(vv, v);
    f32_view!(cv, cos);
    f32_view!(sv, sin);
    let scale = (d as f32).powf(-0.5);
    let level = simd_level();
    // Padded keys get −1e30 before the softmax: e^(−1e30 − max) underflows to ~1e−38, i.e. 0
    // next to the row's sum of at least 1.
    let mask: Option<Vec<f32>> = key_ok.map(|k| k.iter().map(|&ok| if ok { 0.0 } else { -1e30 }).collect());
    let mut out = vec![0f32; b * heads * t * d];
    out.par_chunks_mut(t * d).enumerate().for_each_init(
        || (vec![0f32; t * d], vec![0f32; t * d], vec![0f32; t * t]),
        |(qr, kr, s), (task, o)| {
            let (bi, h) = (task / heads, task % heads);
            for ti in 0..t {
                let src = bi * t * e + ti * e + h * d;
                let tab = (bi * t + ti) * half;
                let (c, sn) = (&cv[tab..tab + half], &sv[tab..tab + half]);
                rotate_half(&mut qr[ti * d..(ti + 1) * d], &qv[src..src + d], c, sn, scale);
                rotate_half(&mut kr[ti * d..(ti + 1) * d], &kv[src..src + d], c, sn, 1.0);
            }
            gemm_f32(t, t, d, s, t, qr, (d, 1), kr, (1, d), 1, false);
            softmax_dispatch(level, s, t, mask.as_ref().map(|m| &m[bi * t..(bi + 1) * t]));
            let vs = &vv[bi * t * e + h * d..];
            gemm_f32(t, d, t, o, d, s, (t, 1), vs, (e, 1), 1, false);
        },
    );
    Tensor::from_vec(out, (b, heads, t, d), q.device())?.transpose(1, 2)?.reshape((b, t, e))
}

/// `GELU(x + bias)` in place on rows of `bias.len()` columns.
#[inline(always)]
fn bias_gelu(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, &b)| *v = gelu_f32(*v + b));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bias_gelu_avx2(x: &mut [f32], bias: &[f32]) {
    bias_gelu(x, bias)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn bias_gelu_avx512(x: &mut [f32], bias: &[f32]) {
    bias_gelu(x, bias)
}

/// Most rows per feed-forward block (a 256 × 4E scratch per thread).
const FFN_MAX_ROWS: usize = 256;

/// `residual + GELU(h·w1ᵀ + b1)·w2ᵀ + b2` for `h` and `residual` `[N, E]`, `w1` `[F, E]`, `w2`
/// `[E, F]`; returns `[N, E]` (same shape as `h`).
pub(crate) fn feed_forward(
    h: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    w2: &Tensor,
    b2: &Tensor,
    residual: &Tensor,
) -> Result<Tensor> {
    let dims = h.dims().to_vec();
    let e = *dims.last().unwrap_or(&0);
    let n = h.elem_count() / e.max(1);
    let f = w1.dim(0)?;
    f32_view!(hv, h);
    f32_view!(w1v, w1);
    f32_view!(b1v, b1);
    f32_view!(w2v, w2);
    f32_view!(b2v, b2);
    f32_view!(rv, residual);
    if rv.len() != n * e {
        candle_core::bail!("fused feed-forward: residual {:?} for input {:?}", residual.dims(), dims);
    }
    let level = simd_level();
    // One block per thread when that is small enough: every block packs both weight matrices
    // again, so fewer, taller blocks waste less.
    let rows_per_block = n.div_ceil(rayon::current_num_threads().max(1)).clamp(16, FFN_MAX_ROWS);
    let mut out = vec![0f32; n * e];
    out.par_chunks_mut(rows_per_block * e).enumerate().for_each_init(
        || vec![0f32; rows_per_block * f],
        |hidden, (blk, o)| {
            let rows = o.len() / e;
            let hid = &mut hidden[..rows * f];
            gemm_f32(rows, f, e, hid, f, &hv[blk * rows_per_block * e..], (e, 1), w1v, (1, e), 1, false);
            match level {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the level says the CPU has these features.
                SimdLevel::Avx512 => unsafe { bias_gelu_avx512(hid, b1v) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                SimdLevel::Avx2 => unsafe { bias_gelu_avx2(hid, b1v) },
                _ => bias_gelu(hid, b1v),
            }
            let res = &rv[blk * rows_per_block * e..];
            for (row, r) in o.chunks_exact_mut(e).zip(res.chunks_exact(e)) {
                row.iter_mut().zip(r).zip(b2v).for_each(|((o, &r), &b)| *o = r + b);
            }
            gemm_f32(rows, e, f, o, e, hid, (f, 1), w2v, (1, f), 1, true);
        },
    );
    Tensor::from_vec(out, dims, h.device())
}
