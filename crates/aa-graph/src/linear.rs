//! A differentiable affine layer `x·wᵀ + b` as one CPU kernel per direction — the training
//! counterpart of the inference-only [`crate::dense::linear_f32`].
//!
//! Why not `candle_nn::Linear`: on a 3-D input `[B, L, K]` candle broadcasts the weight to
//! `[B, N, K]` and runs `B` small batched products, and the backward pass materialises a
//! `[B, K, N]` weight gradient that a single-threaded strided reduction then sums over `B`; the
//! bias gradient of every input is another such reduction over the rows. Here any input is
//! flattened to rows `[R, K]`, the forward is one multi-threaded GEMM accumulating onto the
//! bias rows, and the backward is two GEMMs (`∂x = g·w`, `∂w = gᵀ·x`) and one parallel column
//! sum (`∂b`) whose partial sums combine in a fixed order, so results are bit-reproducible.
//! Off the CPU or for other dtypes it falls back to candle's own ops.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dense::{contiguous_f32, gemm_f32, vec_of};

/// Rows per task of the bias-gradient column sums.
const SUM_ROWS: usize = 256;

/// `y [R, N] = x [R, K] · wᵀ (+ b)`, `w` `[N, K]`.
pub(crate) fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, r: usize, k: usize, n: usize) -> Vec<f32> {
    let mut y = vec![0f32; r * n];
    if let Some(b) = b {
        y.par_chunks_mut(n.max(1) * SUM_ROWS)
            .for_each(|rows| rows.chunks_exact_mut(n).for_each(|o| o.copy_from_slice(b)));
    }
    let threads = rayon::current_num_threads();
    gemm_f32(r, n, k, &mut y, n, x, (k, 1), w, (1, k), threads, b.is_some());
    y
}

/// Column sums of `g [R, N]` in a fixed order (blocks of [`SUM_ROWS`] rows, then the blocks).
pub(crate) fn column_sums(g: &[f32], r: usize, n: usize) -> Vec<f32> {
    let parts: Vec<Vec<f32>> = g[..r * n]
        .par_chunks(SUM_ROWS * n.max(1))
        .map(|rows| {
            let mut s = vec![0f32; n];
            for row in rows.chunks_exact(n) {
                s.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            s
        })
        .collect();
    let mut s = vec![0f32; n];
    for p in parts {
        s.iter_mut().zip(p).for_each(|(a, v)| *a += v);
    }
    s
}

/// `(∂x [R, K], ∂w [N, K])` from `g [R, N]`.
pub(crate) fn backward(x: &[f32], w: &[f32], g: &[f32], r: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let threads = rayon::current_num_threads();
    let mut gx = vec![0f32; r * k];
    gemm_f32(r, k, n, &mut gx, k, g, (n, 1), w, (k, 1), threads, false);
    let mut gw = vec![0f32; n * k];
    gemm_f32(n, k, r, &mut gw, k, g, (1, n), x, (k, 1), threads, false);
    (gx, gw)
}

fn sizes(x: &Layout, w: &Layout) -> Result<(usize, usize, usize)> {
    let (r, k) = x.shape().dims2()?;
    let (n, k2) = w.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("linear: input {:?} and weight {:?} do not fit", x.shape(), w.shape());
    }
    Ok((r, k, n))
}

/// The kernel with a bias.
struct Affine;
/// The kernel without.
struct Product;

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "aa-linear"
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
        let (r, k, n) = sizes(l1, l2)?;
        if l3.shape().elem_count() != n {
            candle_core::bail!("linear: bias {:?} for {n} outputs", l3.shape());
        }
        let b = contiguous_f32(s3, l3)?;
        let y = forward(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, Some(b), r, k, n);
        Ok((CpuStorage::F32(y), Shape::from((r, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ((r, k), (n, _)) = (x.dims2()?, w.dims2()?);
        let g = vec_of(grad)?;
        let (gx, gw) = backward(&vec_of(x)?, &vec_of(w)?, &g, r, k, n);
        let gb = column_sums(&g, r, n);
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(gx, (r, k), dev)?),
            Some(Tensor::from_vec(gw, (n, k), dev)?),
            Some(Tensor::from_vec(gb, b.shape(), dev)?),
        ))
    }
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "aa-linear-no-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (r, k, n) = sizes(l1, l2)?;
        let y = forward(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, None, r, k, n);
        Ok((CpuStorage::F32(y), Shape::from((r, n))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ((r, k), (n, _)) = (x.dims2()?, w.dims2()?);
        let (gx, gw) = backward(&vec_of(x)?, &vec_of(w)?, &vec_of(grad)?, r, k, n);
        let dev = x.device();
        Ok((Some(Tensor::from_vec(gx, (r, k), dev)?), Some(Tensor::from_vec(gw, (n, k), dev)?)))
    }
}

/// `x·wᵀ + b` for `x` `[.., K]`, `w` `[N, K]` (the `candle_nn::Linear` layout) and `b` `[N]`,
/// differentiable in all three (the module docs); the output is `[.., N]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = w.dims2()?;
    let mut dims = x.dims().to_vec();
    if dims.last() != Some(&k) {
        candle_core::bail!("linear: input {:?} does not end in the weight's {k} columns", x.dims());
    }
    let fused = x.device().is_cpu() && [Some(x), Some(w), b].iter().flatten().all(|t| t.dtype() == DType::F32);
    let rows = x.elem_count() / k.max(1);
    *dims.last_mut().expect("checked above") = n;
    let x2 = x.reshape((rows, k))?;
    let y = if fused {
        let (x2, w) = (x2.contiguous()?, w.contiguous()?);
        match b {
            Some(b) => x2.apply_op3(&w, &b.contiguous()?, Affine),
            None => x2.apply_op2(&w, Product),
        }
    } else {
        let y = x2.matmul(&w.t()?)?;
        match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }?;
    y.reshape(dims)
}

/// An affine layer with `candle_nn::Linear`'s parameters (names `weight`, `bias`, the same
/// initialisation) whose forward is [`linear`].
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `in_dim → out_dim` with a bias, as `candle_nn::linear`.
    pub fn new(in_dim: usize, out_dim: usize, vb: candle_nn::VarBuilder) -> Result<Linear> {
        Ok(Linear::from(candle_nn::linear(in_dim, out_dim, vb)?))
    }

    /// `in_dim → out_dim` without a bias, as `candle_nn::linear_no_bias`.
    pub fn no_bias(in_dim: usize, out_dim: usize, vb: candle_nn::VarBuilder) -> Result<Linear> {
        Ok(Linear::from(candle_nn::linear_no_bias(in_dim, out_dim, vb)?))
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl From<candle_nn::Linear> for Linear {
    fn from(l: candle_nn::Linear) -> Linear {
        Linear { weight: l.weight().clone(), bias: l.bias().cloned() }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.weight, self.bias.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var};

    /// Value and every gradient against candle's composite (`broadcast_matmul` + `broadcast_add`),
    /// for 2-D and 3-D inputs, with and without a bias, on sizes that cross the task blocks.
    #[test]
    fn matches_candle_in_value_and_gradients() {
        let dev = Device::Cpu;
        for (shape, bias) in [(vec![600, 19], true), (vec![3, 211, 19], true), (vec![5, 7, 19], false)] {
            let x = Var::randn(0f32, 1.0, shape.as_slice(), &dev).unwrap();
            let w = Var::randn(0f32, 1.0, (23, 19), &dev).unwrap();
            let b = Var::randn(0f32, 1.0, 23, &dev).unwrap();
            let mut out_shape = shape.clone();
            *out_shape.last_mut().unwrap() = 23;
            let probe = Tensor::randn(0f32, 1.0, out_shape.as_slice(), &dev).unwrap();
            let ours = linear(&x, &w, bias.then_some(b.as_tensor())).unwrap();
            let mut theirs = x.broadcast_matmul(&w.t().unwrap()).unwrap();
            if bias {
                theirs = theirs.broadcast_add(&b).unwrap();
            }
            assert_eq!(ours.dims(), out_shape.as_slice());
            assert!(max_diff(&ours, &theirs) < 1e-4);
            let go = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let gt = (&theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w] {
                assert!(max_diff(go.get(v).unwrap(), gt.get(v).unwrap()) < 1e-3, "{shape:?}");
            }
            match bias {
                true => assert!(max_diff(go.get(&b).unwrap(), gt.get(&b).unwrap()) < 1e-3),
                false => assert!(go.get(&b).is_none()),
            }
        }
    }

    #[test]
    fn same_numbers_twice_and_clear_shape_errors() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (1000, 33), &dev).unwrap();
        let w = Var::randn(0f32, 1.0, (17, 33), &dev).unwrap();
        let b = Var::randn(0f32, 1.0, 17, &dev).unwrap();
        let run = || {
            let g = linear(&x, &w, Some(&b)).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
            g.get(&b).unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(), run());
        let e = linear(&x, &w.narrow(1, 0, 30).unwrap(), None).unwrap_err().to_string();
        assert!(e.contains("30 columns"), "{e}");
        let e = linear(&x, &w, Some(&b.narrow(0, 0, 4).unwrap())).unwrap_err().to_string();
        assert!(e.contains("bias"), "{e}");
    }
}
