//! Scatter/segment reductions over candle tensors — the one implementation every encoder in
//! the workspace uses (relational convolutions, sparse attention, readouts).
//!
//! Rows of `src` (`[E, D]`) are grouped by `index` (`[E]`, u32, values `< n`) into `n`
//! segments. Sum and mean go through `index_add`; max picks the arg-max row per segment and
//! column and gathers it, so gradients flow to the winning rows; softmax subtracts the
//! (detached) segment max, exponentiates and divides by the segment sum. Every kernel has a
//! backward pass through candle's autograd. Empty segments give 0.

use candle_core::{DType, Result, Tensor};

/// Per-segment sums: `out[s] = Σ_{e: index[e] = s} src[e]`.
pub fn scatter_sum(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let d = src.dim(1)?;
    Tensor::zeros((n, d), src.dtype(), src.device())?.index_add(index, src, 0)
}

/// `1 / count` per segment as an `[n, 1]` tensor (0 for empty segments).
pub fn inverse_counts(index: &Tensor, n: usize, dtype: DType) -> Result<Tensor> {
    let idx = index.to_vec1::<u32>()?;
    let mut counts = vec![0f32; n];
    for &i in &idx {
        if let Some(c) = counts.get_mut(i as usize) {
            *c += 1.0;
        }
    }
    let inv: Vec<f32> = counts.iter().map(|&c| if c > 0.0 { 1.0 / c } else { 0.0 }).collect();
    Tensor::from_vec(inv, (n, 1), index.device())?.to_dtype(dtype)
}

/// Per-segment means (0 for empty segments).
pub fn scatter_mean(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let inv = inverse_counts(index, n, src.dtype())?;
    scatter_sum(src, index, n)?.broadcast_mul(&inv)
}

/// Per-segment, per-column maxima (0 for empty segments); the gradient goes to the row that
/// holds the maximum (the first one on ties).
pub fn scatter_max(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let (e, d) = src.dims2()?;
    let values = src.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let idx = index.to_vec1::<u32>()?;
    // Empty segments point at an extra zero row appended below `src`.
    let mut arg = vec![e as u32; n * d];
    let mut best = vec![f32::NEG_INFINITY; n * d];
    for (row, &s) in idx.iter().enumerate() {
        let s = s as usize;
        if s >= n {
            continue;
        }
        for c in 0..d {
            let v = values[row][c];
            if v > best[s * d + c] || arg[s * d + c] == e as u32 {
                best[s * d + c] = v;
                arg[s * d + c] = row as u32;
            }
        }
    }
    let padded = Tensor::cat(&[src, &Tensor::zeros((1, d), src.dtype(), src.device())?], 0)?;
    let arg = Tensor::from_vec(arg, (n, d), src.device())?;
    padded.gather(&arg, 0)
}

/// Softmax of `src` (`[E, H]`) within each segment, per column.
pub fn scatter_softmax(src: &Tensor, index: &Tensor, n: usize) -> Result<Tensor> {
    let max = scatter_max(&src.detach(), index, n)?;
    let shifted = src.broadcast_sub(&max.index_select(index, 0)?)?;
    let exp = shifted.exp()?;
    let sum = scatter_sum(&exp, index, n)?;
    exp.broadcast_div(&sum.index_select(index, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t2(v: &[f64], r: usize, c: usize) -> Tensor {
        Tensor::from_vec(v.to_vec(), (r, c), &Device::Cpu).unwrap()
    }

    fn idx(v: &[u32]) -> Tensor {
        Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
    }

    #[test]
    fn values_by_hand() {
        let src = t2(&[1., 2., 3., -4., 5., 6., -7., 8.], 4, 2);
        let index = idx(&[0, 2, 0, 2]);
        let s = scatter_sum(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(s, vec![vec![6., 8.], vec![0., 0.], vec![-4., 4.]]);
        let m = scatter_mean(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(m, vec![vec![3., 4.], vec![0., 0.], vec![-2., 2.]]);
        let x = scatter_max(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(x, vec![vec![5., 6.], vec![0., 0.], vec![3., 8.]]);
        let sm = scatter_softmax(&src, &index, 3).unwrap().to_vec2::<f64>().unwrap();
        let e = |a: f64, b: f64| (a).exp() / (a.exp() + b.exp());
        assert!((sm[0][0] - e(1., 5.)).abs() < 1e-12);
        assert!((sm[1][1] - e(-4., 8.)).abs() < 1e-12);
        assert!((sm[0][0] + sm[2][0] - 1.0).abs() < 1e-12);
    }

    /// Gradients of `Σ w ⊙ f(src)` against central finite differences, in f64.
    fn check_grad(f: impl Fn(&Tensor) -> Tensor) {
        let vals: Vec<f64> = (0..15).map(|i| ((i * 7919) % 23) as f64 / 7.0 - 1.3).collect();
        let var = Var::from_tensor(&t2(&vals, 5, 3)).unwrap();
        let out = f(var.as_tensor());
        let (r, c) = out.dims2().unwrap();
        let w: Vec<f64> = (0..r * c).map(|i| 0.3 + (i as f64) * 0.17).collect();
        let wt = t2(&w, r, c);
        let loss = (out * &wt).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let h = 1e-6;
        for k in 0..vals.len() {
            let mut p = vals.clone();
            p[k] += h;
            let mut m = vals.clone();
            m[k] -= h;
            let fp = (f(&t2(&p, 5, 3)) * &wt).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            let fm = (f(&t2(&m, 5, 3)) * &wt).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            let num = (fp - fm) / (2.0 * h);
            assert!((num - g[k]).abs() < 1e-6, "entry {k}: numeric {num} vs autograd {}", g[k]);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let index = idx(&[1, 0, 1, 3, 1]);
        check_grad(|x| scatter_sum(x, &index, 4).unwrap());
        check_grad(|x| scatter_mean(x, &index, 4).unwrap());
        check_grad(|x| scatter_max(x, &index, 4).unwrap());
        check_grad(|x| scatter_softmax(x, &index, 4).unwrap());
    }
}
