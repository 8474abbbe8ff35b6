//! A routed mixture of expert MLPs with a residual, as one CPU kernel per direction:
//!
//! ```text
//! y[r] = x[r] + Σ_{e : r ∈ routes[e]} coeff[r, e] · fc2_e(GELU(fc1_e(x[r])))
//! ```
//!
//! (HSA-Net's source-aware fusion: each token runs only through the experts it was routed to.)
//! Written with tensor ops this is, per expert, a gather of its rows, two linear layers, a GELU,
//! a broadcast product and an `index_add` onto a fresh copy of `y` — and in the backward pass as
//! many zero-filled full-size gradient buffers summed into `x`'s. Here the forward runs the
//! experts one after the other (each GEMM multi-threaded) and keeps each expert's
//! pre-activation and output for the backward, which needs four GEMMs per expert and no
//! recomputation. Sums combine in a fixed order, so results are bit-reproducible. Off the CPU or
//! for other dtypes it falls back to the tensor-op composition.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dense::{contiguous_f32, gelu_erf, par_rows, vec_of, GeluMap, GeluMapGrad};
use crate::linear::{self, Linear};

/// Sizes of the packed experts: width `d`, hidden width `h`, count `e`.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    d: usize,
    h: usize,
    e: usize,
}

impl Sizes {
    /// Floats per expert in the packed parameters `w1 [h, d] ‖ b1 [h] ‖ w2 [d, h] ‖ b2 [d]`.
    fn per(&self) -> usize {
        2 * self.h * self.d + self.h + self.d
    }

    /// Offsets of `(w1, b1, w2, b2)` of expert `k`.
    fn offsets(&self, k: usize) -> (usize, usize, usize, usize) {
        let base = k * self.per();
        let (hd, h) = (self.h * self.d, self.h);
        (base, base + hd, base + hd + h, base + 2 * hd + h)
    }
}

/// Per expert, what the forward pass leaves for the backward: pre-activations `[n, h]`, GELU
/// outputs `[n, h]` and expert outputs `[n, d]` of its rows.
type Saved = Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>;

struct Routed {
    routes: Vec<Vec<u32>>,
    s: Sizes,
    saved: Mutex<Option<Saved>>,
}

/// The rows `idx` of `x [R, d]`, `[n, d]`.
fn gather(x: &[f32], idx: &[u32], d: usize) -> Vec<f32> {
    let mut out = vec![0f32; idx.len() * d];
    out.par_chunks_mut(d.max(1) * 64).zip(idx.par_chunks(64)).for_each(|(o, rows)| {
        for (dst, &r) in o.chunks_exact_mut(d).zip(rows) {
            dst.copy_from_slice(&x[r as usize * d..(r as usize + 1) * d]);
        }
    });
    out
}

/// `GELU(h)` (or `g · GELU′(h)` with `grad`), element-wise in the SIMD copies of [`par_rows`].
fn gelu_rows(h: &[f32], grad: Option<&[f32]>, width: usize) -> Vec<f32> {
    let mut out = vec![0f32; h.len()];
    match grad {
        None => par_rows(&mut out, h, h, width, &GeluMap),
        Some(g) => par_rows(&mut out, h, g, width, &GeluMapGrad),
    };
    out
}

impl Routed {
    fn check(&self, x: &Layout, coeff: &Layout, pack: &Layout) -> Result<usize> {
        let (r, d) = x.shape().dims2()?;
        let s = self.s;
        if d != s.d || coeff.shape().dims2()? != (r, s.e) || pack.shape().elem_count() != s.e * s.per() {
            candle_core::bail!(
                "routed experts: input {:?}, coefficients {:?} and packed parameters {:?} do not fit {} experts {}→{}→{}",
                x.shape(),
                coeff.shape(),
                pack.shape(),
                s.e,
                s.d,
                s.h,
                s.d
            );
        }
        if self.routes.iter().flatten().any(|&i| i as usize >= r) {
            candle_core::bail!("routed experts: a route points past the {r} rows");
        }
        Ok(r)
    }
}

impl CustomOp3 for Routed {
    fn name(&self) -> &'static str {
        "aa-routed-experts"
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
        let r = self.check(l1, l2, l3)?;
        let (x, coeff, pack) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?);
        let Sizes { d, h, e } = self.s;
        let mut y = x.to_vec();
        let mut saved = Vec::with_capacity(e);
        for (k, rows) in self.routes.iter().enumerate() {
            let n = rows.len();
            let (w1, b1, w2, b2) = self.s.offsets(k);
            let xe = gather(x, rows, d);
            let pre = linear::forward(&xe, &pack[w1..b1], Some(&pack[b1..w2]), n, d, h);
            let act = gelu_rows(&pre, None, h);
            let out = linear::forward(&act, &pack[w2..b2], Some(&pack[b2..b2 + d]), n, h, d);
            for (o, &row) in out.chunks_exact(d).zip(rows) {
                let c = coeff[row as usize * e + k];
                y[row as usize * d..(row as usize + 1) * d].iter_mut().zip(o).for_each(|(a, &v)| *a += c * v);
            }
            saved.push((pre, act, out));
        }
        *self.saved.lock().map_err(|_| candle_core::Error::Msg("routed experts: poisoned cache".into()))? = Some(saved);
        Ok((CpuStorage::F32(y), Shape::from((r, d))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        coeff: &Tensor,
        pack: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Sizes { d, h, e } = self.s;
        let r = x.dim(0)?;
        let (xv, cv, pv, gy) = (vec_of(x)?, vec_of(coeff)?, vec_of(pack)?, vec_of(grad)?);
        let guard = self.saved.lock().map_err(|_| candle_core::Error::Msg("routed experts: poisoned cache".into()))?;
        let saved = guard
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("routed experts: backward without its forward".into()))?;
        // The residual passes the gradient straight through.
        let mut gx = gy.clone();
        let mut gc = vec![0f32; r * e];
        let mut gp = vec![0f32; pv.len()];
        for (k, (rows, (pre, act, out))) in self.routes.iter().zip(saved).enumerate() {
            let n = rows.len();
            if n == 0 {
                continue;
            }
            let (w1, b1, w2, b2) = self.s.offsets(k);
            // ∂out[i] = coeff · ∂y[row]; ∂coeff = ∂y[row] · out[i].
            let mut go = vec![0f32; n * d];
            for ((g, o), &row) in go.chunks_exact_mut(d).zip(out.chunks_exact(d)).zip(rows) {
                let row = row as usize;
                let gr = &gy[row * d..(row + 1) * d];
                let c = cv[row * e + k];
                g.iter_mut().zip(gr).for_each(|(a, &v)| *a = c * v);
                gc[row * e + k] = gr.iter().zip(o).map(|(a, b)| a * b).sum();
            }
            let (ga, gw2) = linear::backward(act, &pv[w2..b2], &go, n, h, d);
            let gb2 = linear::column_sums(&go, n, d);
            let gh = gelu_rows(pre, Some(&ga), h);
            let xe = gather(&xv, rows, d);
            let (gxe, gw1) = linear::backward(&xe, &pv[w1..b1], &gh, n, d, h);
            let gb1 = linear::column_sums(&gh, n, h);
            gp[w1..b1].copy_from_slice(&gw1);
            gp[b1..w2].copy_from_slice(&gb1);
            gp[w2..b2].copy_from_slice(&gw2);
            gp[b2..b2 + d].copy_from_slice(&gb2);
            for (g, &row) in gxe.chunks_exact(d).zip(rows) {
                gx[row as usize * d..(row as usize + 1) * d].iter_mut().zip(g).for_each(|(a, &v)| *a += v);
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(gx, (r, d), dev)?),
            Some(Tensor::from_vec(gc, (r, e), dev)?),
            Some(Tensor::from_vec(gp, pack.shape(), dev)?),
        ))
    }
}

/// `y = x + Σ_e coeff[·, e] · fc2_e(GELU(fc1_e(x)))` over the rows `routes[e]` of each expert
/// `e` (the module docs): `x` `[R, d]`, `coeff` `[R, E]`, `experts[e] = (fc1: d → h, fc2: h → d)`
/// with biases; differentiable in `x`, `coeff` and every expert parameter.
pub fn routed_experts(
    x: &Tensor,
    coeff: &Tensor,
    routes: &[Vec<u32>],
    experts: &[(&Linear, &Linear)],
) -> Result<Tensor> {
    let (_, d) = x.dims2()?;
    let Some(&(first, _)) = experts.first() else { candle_core::bail!("routed experts: no experts") };
    let h = first.weight().dim(0)?;
    if routes.len() != experts.len() {
        candle_core::bail!("routed experts: {} routes for {} experts", routes.len(), experts.len());
    }
    for (fc1, fc2) in experts {
        if fc1.bias().is_none() || fc2.bias().is_none() {
            candle_core::bail!("routed experts: the expert layers need biases")
        }
        if fc1.weight().dims2()? != (h, d) || fc2.weight().dims2()? != (d, h) {
            candle_core::bail!(
                "routed experts: expert layers {:?} and {:?} for width {d}, hidden {h}",
                fc1.weight().shape(),
                fc2.weight().shape()
            );
        }
    }
    let params = || experts.iter().flat_map(|(a, b)| [Some(a.weight()), a.bias(), Some(b.weight()), b.bias()]);
    let f32s = params().all(|t| t.is_some_and(|t| t.dtype() == DType::F32));
    if !(x.device().is_cpu() && x.dtype() == DType::F32 && coeff.dtype() == DType::F32 && f32s) {
        return composite(x, coeff, routes, experts);
    }
    let parts = params().flatten().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?;
    let pack = Tensor::cat(&parts, 0)?;
    let op = Routed { routes: routes.to_vec(), s: Sizes { d, h, e: experts.len() }, saved: Mutex::new(None) };
    x.contiguous()?.apply_op3(&coeff.contiguous()?, &pack, op)
}

/// The same computation in tensor ops (any device and dtype).
fn composite(x: &Tensor, coeff: &Tensor, routes: &[Vec<u32>], experts: &[(&Linear, &Linear)]) -> Result<Tensor> {
    let mut y = x.clone();
    for (k, ((fc1, fc2), rows)) in experts.iter().zip(routes).enumerate() {
        if rows.is_empty() {
            continue;
        }
        let idx = Tensor::from_slice(rows, rows.len(), x.device())?;
        let out = fc2.forward(&gelu_erf(&fc1.forward(&x.index_select(&idx, 0)?)?)?)?;
        let c = coeff.index_select(&idx, 0)?.narrow(1, k, 1)?;
        y = y.index_add(&idx, &out.broadcast_mul(&c)?, 0)?;
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var};
    use candle_nn::{VarBuilder, VarMap};

    #[test]
    fn matches_the_tensor_op_composition_in_value_and_gradients() {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let (r, d, h) = (300, 12, 24);
        let layers: Vec<(Linear, Linear)> = (0..3)
            .map(|k| (Linear::new(d, h, vb.pp(k).pp("fc1")).unwrap(), Linear::new(h, d, vb.pp(k).pp("fc2")).unwrap()))
            .collect();
        let experts: Vec<(&Linear, &Linear)> = layers.iter().map(|(a, b)| (a, b)).collect();
        let x = Var::randn(0f32, 1.0, (r, d), &dev).unwrap();
        let coeff = Var::rand(0f32, 1.0, (r, 3), &dev).unwrap();
        // Expert 0 every row, expert 1 the even rows, expert 2 none.
        let routes = vec![(0..r as u32).collect(), (0..r as u32).step_by(2).collect(), vec![]];
        let probe = Tensor::randn(0f32, 1.0, (r, d), &dev).unwrap();
        let ours = routed_experts(&x, &coeff, &routes, &experts).unwrap();
        let theirs = composite(&x, &coeff, &routes, &experts).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let g1 = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in map.data().lock().unwrap().iter() {
            let ours = g1.get(v.as_tensor()).unwrap();
            match g2.get(v.as_tensor()) {
                Some(b) => assert!(max_diff(ours, b) < 1e-4, "{name}: {}", max_diff(ours, b)),
                // The expert without rows: no gradient there, zeros here.
                None => {
                    assert!(name.starts_with("2."), "{name} got no reference gradient");
                    assert_eq!(ours.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
                }
            }
        }
        for v in [&x, &coeff] {
            let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert!(max_diff(a, b) < 1e-4, "{}", max_diff(a, b));
        }
    }

    #[test]
    fn bad_routes_and_shapes_are_refused() {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let (fc1, fc2) = (Linear::new(4, 8, vb.pp("a")).unwrap(), Linear::new(8, 4, vb.pp("b")).unwrap());
        let x = Tensor::zeros((5, 4), DType::F32, &dev).unwrap();
        let c = Tensor::zeros((5, 1), DType::F32, &dev).unwrap();
        let e = routed_experts(&x, &c, &[vec![7]], &[(&fc1, &fc2)]).unwrap_err().to_string();
        assert!(e.contains("past the 5 rows"), "{e}");
        let e = routed_experts(&x, &c, &[vec![], vec![]], &[(&fc1, &fc2)]).unwrap_err().to_string();
        assert!(e.contains("2 routes for 1 experts"), "{e}");
        let e = routed_experts(&x, &c, &[vec![0]], &[(&fc2, &fc1)]).unwrap_err().to_string();
        assert!(e.contains("expert layers"), "{e}");
    }
}
