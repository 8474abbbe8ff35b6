//! Prediction heads shared by the tasks, with the official parameter names.

use aa_graph::dense::{gelu_erf, LayerNorm as Norm};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// Classification head (the official Vabs-Net / Uni-Mol `CLSHead` shape):
/// `Linear → GELU → LayerNorm → Linear` (`dense`, `layer_norm`, `out_proj`).
#[derive(Clone, Debug)]
pub struct ClsHead {
    dense: Linear,
    layer_norm: Norm,
    out_proj: Linear,
}

impl ClsHead {
    /// `dim` → `classes`.
    pub fn new(vb: VarBuilder, dim: usize, classes: usize) -> Result<ClsHead> {
        Ok(ClsHead {
            dense: candle_nn::linear(dim, dim, vb.pp("dense"))?,
            layer_norm: Norm::new(vb.pp("layer_norm"), dim, 1e-5)?,
            out_proj: candle_nn::linear(dim, classes, vb.pp("out_proj"))?,
        })
    }

    /// Logits of rows `[N, dim]`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.out_proj.forward(&self.layer_norm.forward(&gelu_erf(&self.dense.forward(x)?)?, train)?)
    }
}

/// TorchDrug's two-layer `MLP(input, [input, output])` with ReLU (`layers.0`, `layers.1`), the
/// head of GlycanML's property prediction and of PreGlycanAA's type recovery.
#[derive(Clone, Debug)]
pub struct Mlp2 {
    layer0: Linear,
    layer1: Linear,
}

impl Mlp2 {
    /// `input` → `input` → `output`, weights under `vb.pp("layers")`.
    pub fn new(vb: VarBuilder, input: usize, output: usize) -> Result<Mlp2> {
        Ok(Mlp2 {
            layer0: candle_nn::linear(input, input, vb.pp("layers.0"))?,
            layer1: candle_nn::linear(input, output, vb.pp("layers.1"))?,
        })
    }

    /// Outputs of rows `[N, input]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layer1.forward(&self.layer0.forward(x)?.relu()?)
    }

    /// Outputs for pairs: row `k` is `forward(cat([a[ia[k]], b[ib[k]]]))` for `a` `[Na, da]`,
    /// `b` `[Nb, input − da]` and index vectors `ia`, `ib` (u32, equal length), computed without
    /// building the `[pairs, input]` concatenation (the first layer is applied to `a` and `b`
    /// separately, as its weight splits by columns).
    pub fn forward_pairs(&self, a: &Tensor, b: &Tensor, ia: &Tensor, ib: &Tensor) -> Result<Tensor> {
        let w = self.layer0.weight();
        let da = a.dim(1)?;
        let wa = w.narrow(1, 0, da)?;
        let wb = w.narrow(1, da, w.dim(1)? - da)?;
        let mut ha = a.matmul(&wa.t()?)?;
        if let Some(bias) = self.layer0.bias() {
            ha = ha.broadcast_add(bias)?;
        }
        let hb = b.matmul(&wb.t()?)?;
        let h = (ha.index_select(ia, 0)? + hb.index_select(ib, 0)?)?;
        self.layer1.forward(&h.relu()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn pairs_equal_the_concatenation() {
        let dev = Device::Cpu;
        let map = candle_nn::VarMap::new();
        let mlp = Mlp2::new(VarBuilder::from_varmap(&map, DType::F32, &dev), 5, 2).unwrap();
        let a = Tensor::randn(0f32, 1.0, (3, 2), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, (4, 3), &dev).unwrap();
        let (ia, ib) = (vec![0u32, 2, 2, 1], vec![3u32, 0, 1, 1]);
        let t = |v: &[u32]| Tensor::new(v, &dev).unwrap();
        let got = mlp.forward_pairs(&a, &b, &t(&ia), &t(&ib)).unwrap();
        let x = Tensor::cat(&[a.index_select(&t(&ia), 0).unwrap(), b.index_select(&t(&ib), 0).unwrap()], 1).unwrap();
        let want = mlp.forward(&x).unwrap();
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
