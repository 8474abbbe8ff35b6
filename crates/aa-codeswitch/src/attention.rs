//! Fused multi-head self-attention for inference on CPU f32: per (sequence, head) task, the
//! rotary rotation of q and k, `q·kᵀ`, the key-padding mask, the row softmax and `·v` run on
//! a `T × T` scratch block, so no `[B, H, T, T]` tensor is ever materialised and heads never
//! need a transpose copy on the way in. Tasks run in parallel; each product is one
//! single-threaded [`gemm_f32`]. The training path (and ESM-AA's pair bias, which needs the
//! logits of every layer) uses candle ops instead; both give the same numbers (tested).

use aa_graph::dense::{exp_nonpositive, gemm_f32};
use aa_graph::kernels::{simd_level, SimdLevel};
use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

fn cpu_f32(t: &Tensor) -> Result<Vec<f32>> {
    // Inputs are small relative to the T×T work; one copy keeps the borrow rules simple.
    t.contiguous()?.flatten_all()?.to_vec1::<f32>()
}

/// Softmax of each `t`-wide row of `s` in place, skipping masked keys (weight 0).
#[inline(always)]
fn softmax_rows(s: &mut [f32], t: usize, key_ok: &[bool]) {
    for row in s.chunks_exact_mut(t) {
        let mut max = f32::NEG_INFINITY;
        for (v, &ok) in row.iter().zip(key_ok) {
            if ok && *v > max {
                max = *v;
            }
        }
        let mut sum = 0f32;
        for (v, &ok) in row.iter_mut().zip(key_ok) {
            let e = if ok { exp_nonpositive(*v - max) } else { 0.0 };
            *v = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(s: &mut [f32], t: usize, key_ok: &[bool]) {
    softmax_rows(s, t, key_ok)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn softmax_rows_avx512(s: &mut [f32], t: usize, key_ok: &[bool]) {
    softmax_rows(s, t, key_ok)
}

fn softmax_dispatch(level: SimdLevel, s: &mut [f32], t: usize, key_ok: &[bool]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the level says the CPU has these features.
        SimdLevel::Avx512 => unsafe { softmax_rows_avx512(s, t, key_ok) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdLevel::Avx2 => unsafe { softmax_rows_avx2(s, t, key_ok) },
        _ => softmax_rows(s, t, key_ok),
    }
}

/// Whether the fused kernel applies (CPU, f32).
pub(crate) fn applies(q: &Tensor) -> bool {
    q.device().is_cpu() && q.dtype() == DType::F32
}

/// `softmax(rot(q)·rot(k)ᵀ / √D + mask) · v` for `q, k, v` of shape `[B, T, H·D]` (heads
/// side by side, as the projections produce them), rotary tables `cos, sin` `[B, T, D/2]`
/// and `key_ok` (`B·T`, false for padding). Returns `[B, T, H·D]`.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: usize,
    key_ok: &[bool],
) -> Result<Tensor> {
    let (b, t, e) = q.dims3()?;
    let d = e / heads;
    let half = d / 2;
    let (qv, kv, vv) = (cpu_f32(q)?, cpu_f32(k)?, cpu_f32(v)?);
    let (cv, sv) = (cpu_f32(cos)?, cpu_f32(sin)?);
    let scale = (d as f32).powf(-0.5);
    let level = simd_level();
    let mut out = vec![0f32; b * heads * t * d];
    out.par_chunks_mut(t * d).enumerate().for_each_init(
        || (vec![0f32; t * d], vec![0f32; t * d], vec![0f32; t * t]),
        |(qr, kr, s), (task, o)| {
            let (bi, h) = (task / heads, task % heads);
            for ti in 0..t {
                let src = bi * t * e + ti * e + h * d;
                let tab = (bi * t + ti) * half;
                for i in 0..half {
                    let (c, sn) = (cv[tab + i], sv[tab + i]);
                    let (q1, q2) = (qv[src + i], qv[src + i + half]);
                    qr[ti * d + i] = (q1 * scale) * c - (q2 * scale) * sn;
                    qr[ti * d + i + half] = (q2 * scale) * c + (q1 * scale) * sn;
                    let (k1, k2) = (kv[src + i], kv[src + i + half]);
                    kr[ti * d + i] = k1 * c - k2 * sn;
                    kr[ti * d + i + half] = k2 * c + k1 * sn;
                }
            }
            gemm_f32(t, t, d, s, t, qr, (d, 1), kr, (1, d), 1, false);
            softmax_dispatch(level, s, t, &key_ok[bi * t..(bi + 1) * t]);
            let vs = &vv[bi * t * e + h * d..];
            gemm_f32(t, d, t, o, d, s, (t, 1), vs, (e, 1), 1, false);
        },
    );
    Tensor::from_vec(out, (b, heads, t, d), q.device())?.transpose(1, 2)?.reshape((b, t, e))
}
