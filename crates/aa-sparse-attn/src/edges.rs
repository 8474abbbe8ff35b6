//! Edge encoders of Vabs-Net (vabs/models/layers.py): the Gaussian distance kernel with a
//! per-pair-type affine map (`GaussianKernel` + `NonLinear`, wrapped as `SE3InvariantKernel`)
//! and a clamped relative sequence-offset embedding.

use aa_graph::dense::gelu_erf;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};

/// Distance features: `K` Gaussians with fixed means `linspace(start, stop, K)` and one width
/// `std_width · (mean₁ − mean₀)`, on `mul·d + bias` where `mul` (absolute value) and `bias` are
/// summed over the edge's two type ids (learnt per type, id 0 = padding), then
/// `Linear(K, K) → GELU → Linear(K, out_dim)`. Parameters: `gaussian.mul.weight`,
/// `gaussian.bias.weight`, `out_proj.layer1.*`, `out_proj.layer2.*` (the official names).
#[derive(Clone, Debug)]
pub struct GaussianEdgeEncoder {
    mean: Tensor,
    std: f64,
    mul: Tensor,
    bias: Tensor,
    layer1: Linear,
    layer2: Linear,
}

impl GaussianEdgeEncoder {
    /// `kernels` Gaussians over `[start, stop]` Å, `num_pair` type ids, `out_dim` outputs.
    pub fn new(
        vb: VarBuilder,
        kernels: usize,
        num_pair: usize,
        out_dim: usize,
        (start, stop, std_width): (f64, f64, f64),
    ) -> Result<GaussianEdgeEncoder> {
        if kernels < 2 || stop <= start {
            candle_core::bail!("gaussian edge encoder: need at least 2 kernels over a non-empty range");
        }
        let step = (stop - start) / (kernels - 1) as f64;
        let mean: Vec<f32> = (0..kernels).map(|i| (start + step * i as f64) as f32).collect();
        let g = vb.pp("gaussian");
        Ok(GaussianEdgeEncoder {
            mean: Tensor::from_vec(mean, (1, kernels), vb.device())?,
            std: std_width * step,
            mul: g.get_with_hints((num_pair, 1), "mul.weight", candle_nn::Init::Const(1.0))?,
            bias: g.get_with_hints((num_pair, 1), "bias.weight", candle_nn::Init::Const(0.0))?,
            layer1: candle_nn::linear(kernels, kernels, vb.pp("out_proj").pp("layer1"))?,
            layer2: candle_nn::linear(kernels, out_dim, vb.pp("out_proj").pp("layer2"))?,
        })
    }

    /// The official module's layout: `K` means over 0–9 Å read from the `gaussian.mean` buffer
    /// of the checkpoint (computed as `torch.linspace(0, 9, K)` in f32 when `vb` has none, as
    /// when training from scratch), and the width the official module fixes at construction,
    /// `mean₁ − mean₀` of its own f32 `linspace` (not of the loaded buffer).
    pub fn official(vb: VarBuilder, kernels: usize, num_pair: usize, out_dim: usize) -> Result<GaussianEdgeEncoder> {
        if kernels < 2 {
            candle_core::bail!("gaussian edge encoder: need at least 2 kernels");
        }
        let step = 9.0f32 / (kernels - 1) as f32;
        let g = vb.pp("gaussian");
        let mean = if g.contains_tensor("mean") {
            g.get(kernels, "mean")?.to_dtype(candle_core::DType::F32)?.reshape((1, kernels))?
        } else {
            // torch.linspace: start + i·step for the first half, stop − (K − 1 − i)·step after.
            let m: Vec<f32> = (0..kernels)
                .map(|i| if i < kernels / 2 { step * i as f32 } else { 9.0 - step * (kernels - 1 - i) as f32 })
                .collect();
            Tensor::from_vec(m, (1, kernels), vb.device())?
        };
        Ok(GaussianEdgeEncoder {
            mean,
            std: f64::from(step),
            mul: g.get_with_hints((num_pair, 1), "mul.weight", candle_nn::Init::Const(1.0))?,
            bias: g.get_with_hints((num_pair, 1), "bias.weight", candle_nn::Init::Const(0.0))?,
            layer1: candle_nn::linear(kernels, kernels, vb.pp("out_proj").pp("layer1"))?,
            layer2: candle_nn::linear(kernels, out_dim, vb.pp("out_proj").pp("layer2"))?,
        })
    }

    /// Features `[E, out_dim]` of distances `[E]` (Å) with type ids `[E, 2]` (u32).
    pub fn forward(&self, distance: &Tensor, pair_types: &Tensor) -> Result<Tensor> {
        let (e, two) = pair_types.dims2()?;
        let ids = pair_types.flatten_all()?;
        let mul = self.mul.embedding(&ids)?.abs()?.reshape((e, two))?.sum_keepdim(D::Minus1)?; // [E, 1]
        let bias = self.bias.embedding(&ids)?.reshape((e, two))?.sum_keepdim(D::Minus1)?;
        let x = (mul * distance.unsqueeze(1)?)?.add(&bias)?;
        let z = (x.broadcast_sub(&self.mean)? / self.std)?;
        // The official normaliser uses π ≈ 3.14159.
        #[allow(clippy::approx_constant)]
        let a = (2.0f64 * 3.14159).sqrt() * self.std;
        let g = ((z.sqr()? * -0.5)?.exp()? / a)?;
        self.layer2.forward(&gelu_erf(&self.layer1.forward(&g)?)?)
    }
}

/// Embedding of the residue-number offset `j − i` of an edge, clamped to `±clamp`, with one
/// extra row for edges without an offset (different chains, non-residue units):
/// `clamp · 2 + 2` rows, parameter `weight`.
#[derive(Clone, Debug)]
pub struct SequenceOffsetEmbedding {
    table: Tensor,
    clamp: i32,
}

impl SequenceOffsetEmbedding {
    /// A table of width `dim` for offsets clamped at `±clamp` (Vabs-Net: 256).
    pub fn new(vb: VarBuilder, clamp: i32, dim: usize) -> Result<SequenceOffsetEmbedding> {
        let rows = 2 * clamp.max(0) as usize + 2;
        let table = vb.get_with_hints((rows, dim), "weight", candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?;
        Ok(SequenceOffsetEmbedding { table, clamp: clamp.max(0) })
    }

    /// Row index of an offset (`None`: the no-offset row).
    pub fn index(&self, offset: Option<i32>) -> u32 {
        match offset {
            Some(o) => (o.clamp(-self.clamp, self.clamp) + self.clamp) as u32,
            None => 2 * self.clamp as u32 + 1,
        }
    }

    /// Embeddings `[E, dim]` of per-edge offsets.
    pub fn forward(&self, offsets: &[Option<i32>]) -> Result<Tensor> {
        let ids: Vec<u32> = offsets.iter().map(|&o| self.index(o)).collect();
        let n = ids.len();
        self.table.embedding(&Tensor::from_vec(ids, n, self.table.device())?)
    }
}
