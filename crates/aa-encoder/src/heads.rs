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
}
