//! ESM-2 and ESM-AA as in fair-esm and the official ESM-AA code (zhengkangjie/ESM-AA).
//!
//! ESM-2 (Lin et al., Science 2023): token embedding with token dropout, pre-LayerNorm
//! transformer blocks (q/k/v/out projections with bias, rotate-half rotary embeddings with base
//! 10000 on the query and key, exact-erf GELU feed-forward), a final LayerNorm, an LM head tied
//! to the embedding, and the contact head (attention maps of every layer and head, without
//! `<cls>`/`<eos>`, symmetrised, APC-corrected, logistic regression).
//!
//! ESM-AA (Zheng et al., ICML 2024) adds, for code-switch sequences with atoms:
//! rotary positions from `aa_mask` (atoms share their residue's position), and a pair bias:
//! a Gaussian basis of atom-pair distances (128 kernels with learnt means and widths, per
//! edge-type affine) projected 128→128→heads and added to the first layer's attention logits;
//! every later layer receives the previous layer's pre-softmax logits as its bias. Pairs without
//! distances contribute 0 everywhere, so with no atoms the model is exactly ESM-2. The distance
//! head maps the last pair representation to symmetric distances.
//!
//! Parameter names are fair-esm's (`layers.3.self_attn.q_proj.weight`); Hugging Face
//! `EsmForMaskedLM` names are mapped by [`canonical_name`]. The config uses the Hugging Face
//! `config.json` field names, so a hub ESM-2 config loads as it is.
//!
//! Forward has two paths with the same numbers: inference uses candle's fused LayerNorm,
//! softmax and rotary kernels; `train: true` uses differentiable compositions (candle's fused
//! kernels have no backward).

use std::collections::{BTreeMap, HashMap};

use aa_graph::dense::{linear_f32, LayerNorm as Norm};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::sequence::{CodeSwitchBatch, PairInput};
use crate::CodeSwitchError;

fn default_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_mask() -> u32 {
    32
}
fn default_pad() -> u32 {
    1
}
fn default_eos() -> u32 {
    2
}
fn default_rotary() -> String {
    "rotary".into()
}
fn default_kernels() -> usize {
    128
}
fn default_theta() -> f64 {
    10000.0
}

/// Model sizes and token ids, with the field names of a Hugging Face ESM `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EsmConfig {
    /// Alphabet size (33 for ESM-2, 59 for ESM-AA).
    pub vocab_size: usize,
    /// Embedding width.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Feed-forward width (4 × hidden in every released model).
    pub intermediate_size: usize,
    /// LayerNorm epsilon (1e-5 in fair-esm and the released hub configs).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// ESM's token dropout: `<mask>` embeddings zeroed and the rest rescaled.
    #[serde(default = "default_true")]
    pub token_dropout: bool,
    /// Id of `<mask>`.
    #[serde(default = "default_mask")]
    pub mask_token_id: u32,
    /// Id of `<pad>`.
    #[serde(default = "default_pad")]
    pub pad_token_id: u32,
    /// Id of `<eos>`.
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
    /// Must be `"rotary"` (ESM-2); absolute-position ESM-1 models are not supported.
    #[serde(default = "default_rotary")]
    pub position_embedding_type: String,
    /// Must be false (ESM-2 has no LayerNorm before the first block).
    #[serde(default)]
    pub emb_layer_norm_before: bool,
    /// Rotary base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// ESM-AA's Gaussian pair bias (and distance head).
    #[serde(default)]
    pub pair_bias: bool,
    /// Gaussian kernels of the pair bias.
    #[serde(default = "default_kernels")]
    pub gaussian_kernels: usize,
}

impl EsmConfig {
    fn sized(layers: usize, hidden: usize, heads: usize, vocab: usize, pair_bias: bool) -> EsmConfig {
        EsmConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: 4 * hidden,
            layer_norm_eps: 1e-5,
            token_dropout: true,
            mask_token_id: 32,
            pad_token_id: 1,
            eos_token_id: 2,
            position_embedding_type: "rotary".into(),
            emb_layer_norm_before: false,
            rope_theta: 10000.0,
            pair_bias,
            gaussian_kernels: 128,
        }
    }

    /// ESM-2 8M (`esm2_t6_8M_UR50D`): 6 layers, 320 wide, 20 heads.
    pub fn esm2_t6_8m() -> EsmConfig {
        EsmConfig::sized(6, 320, 20, 33, false)
    }

    /// ESM-2 35M (`esm2_t12_35M_UR50D`): 12 layers, 480 wide, 20 heads.
    pub fn esm2_t12_35m() -> EsmConfig {
        EsmConfig::sized(12, 480, 20, 33, false)
    }

    /// ESM-AA at the 8M size (59 tokens, pair bias).
    pub fn esm_aa_t6_8m() -> EsmConfig {
        EsmConfig::sized(6, 320, 20, 59, true)
    }

    /// ESM-AA 35M (the released ESM-AA model's size): 12 layers, 480 wide, 20 heads, 59 tokens.
    pub fn esm_aa_t12_35m() -> EsmConfig {
        EsmConfig::sized(12, 480, 20, 59, true)
    }

    /// A small config for tests and CPU runs.
    pub fn tiny(pair_bias: bool) -> EsmConfig {
        let mut c = EsmConfig::sized(2, 32, 4, if pair_bias { 59 } else { 33 }, pair_bias);
        c.gaussian_kernels = 16;
        c
    }

    /// Checks the combination of sizes and options.
    pub fn validate(&self) -> Result<(), CodeSwitchError> {
        let bad = |m: String| Err(CodeSwitchError::Config(m));
        if self.position_embedding_type != "rotary" {
            return bad(format!(
                "position_embedding_type {:?}: only rotary (ESM-2) models are supported",
                self.position_embedding_type
            ));
        }
        if self.emb_layer_norm_before {
            return bad("emb_layer_norm_before = true (ESM-1b style) is not supported".into());
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by {} heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.hidden_size / self.num_attention_heads).is_multiple_of(2) {
            return bad("the head width must be even for rotary embeddings".into());
        }
        if self.num_hidden_layers == 0 || self.vocab_size == 0 || self.intermediate_size == 0 {
            return bad("layers, vocab_size and intermediate_size must be positive".into());
        }
        for (name, id) in [("mask", self.mask_token_id), ("pad", self.pad_token_id), ("eos", self.eos_token_id)] {
            if id as usize >= self.vocab_size {
                return bad(format!("{name}_token_id {id} is outside the vocabulary ({})", self.vocab_size));
            }
        }
        Ok(())
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The fair-esm name of a checkpoint tensor, from fair-esm, ESM-AA (`encoder.` prefixes) or
/// Hugging Face `EsmForMaskedLM`/`EsmModel` naming; `None` for tensors that are not
/// parameters here (rotary `inv_freq` buffers, the tied `lm_head.weight`/`lm_head.decoder`,
/// fairseq `version` entries).
pub fn canonical_name(name: &str) -> Option<String> {
    if name.ends_with("inv_freq") || name.contains("version") {
        return None;
    }
    // transformers writes LayerNorm parameters as gamma/beta in some versions.
    let renamed = match (name.strip_suffix(".gamma"), name.strip_suffix(".beta")) {
        (Some(stem), _) => format!("{stem}.weight"),
        (_, Some(stem)) => format!("{stem}.bias"),
        _ => name.to_string(),
    };
    let name = renamed.as_str();
    let name = name.strip_prefix("encoder.sentence_encoder.").or_else(|| name.strip_prefix("encoder.")).unwrap_or(name);
    if name == "lm_head.weight" || name == "lm_head.decoder.weight" {
        return None; // tied to the token embedding
    }
    let hf = name.strip_prefix("esm.").unwrap_or(name);
    if let Some(rest) = hf.strip_prefix("encoder.layer.") {
        let (idx, tail) = rest.split_once('.')?;
        let mapped = [
            ("attention.self.query.", "self_attn.q_proj."),
            ("attention.self.key.", "self_attn.k_proj."),
            ("attention.self.value.", "self_attn.v_proj."),
            ("attention.output.dense.", "self_attn.out_proj."),
            ("attention.LayerNorm.", "self_attn_layer_norm."),
            ("intermediate.dense.", "fc1."),
            ("output.dense.", "fc2."),
            ("LayerNorm.", "final_layer_norm."),
        ]
        .iter()
        .find_map(|(from, to)| tail.strip_prefix(from).map(|p| format!("{to}{p}")))?;
        return Some(format!("layers.{idx}.{mapped}"));
    }
    Some(match hf {
        "embeddings.word_embeddings.weight" => "embed_tokens.weight".into(),
        _ => hf.strip_prefix("encoder.").unwrap_or(hf).to_string(),
    })
}

/// Renames a checkpoint's tensors to fair-esm names ([`canonical_name`]), dropping buffers.
pub fn canonical_tensors(tensors: impl IntoIterator<Item = (String, Tensor)>) -> HashMap<String, Tensor> {
    tensors.into_iter().filter_map(|(k, v)| canonical_name(&k).map(|k| (k, v))).collect()
}

fn softmax(x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
    if train {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// Rotary tables for a batch: cos/sin of `position × inv_freq`, `[B, T, D/2]`.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(positions: &Tensor, head_dim: usize, theta: f64) -> candle_core::Result<Rotary> {
        let inv: Vec<f32> =
            (0..head_dim).step_by(2).map(|i| 1.0 / (theta as f32).powf(i as f32 / head_dim as f32)).collect();
        let inv = Tensor::from_vec(inv, (1, 1, head_dim / 2), positions.device())?;
        let freqs = positions.to_dtype(DType::F32)?.unsqueeze(2)?.broadcast_mul(&inv)?;
        Ok(Rotary { cos: freqs.cos()?, sin: freqs.sin()? })
    }

    /// Rotates `[B, H, T, D]` (rotate-half convention).
    fn apply(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train {
            return candle_nn::rotary_emb::rope(&x.contiguous()?, &self.cos, &self.sin);
        }
        let cos = Tensor::cat(&[&self.cos, &self.cos], D::Minus1)?.unsqueeze(1)?;
        let sin = Tensor::cat(&[&self.sin, &self.sin], D::Minus1)?.unsqueeze(1)?;
        let d = x.dim(D::Minus1)?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?
    }
}

#[derive(Clone, Debug)]
struct Block {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    attn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
    final_norm: Norm,
    heads: usize,
}

/// What one block hands on.
struct BlockOut {
    x: Tensor,
    probs: Option<Tensor>,
    pair: Option<Tensor>,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &EsmConfig) -> candle_core::Result<Block> {
        let e = cfg.hidden_size;
        let att = vb.pp("self_attn");
        Ok(Block {
            q_proj: candle_nn::linear(e, e, att.pp("q_proj"))?,
            k_proj: candle_nn::linear(e, e, att.pp("k_proj"))?,
            v_proj: candle_nn::linear(e, e, att.pp("v_proj"))?,
            out_proj: candle_nn::linear(e, e, att.pp("out_proj"))?,
            attn_norm: Norm::new(vb.pp("self_attn_layer_norm"), e, cfg.layer_norm_eps)?,
            fc1: candle_nn::linear(e, cfg.intermediate_size, vb.pp("fc1"))?,
            fc2: candle_nn::linear(cfg.intermediate_size, e, vb.pp("fc2"))?,
            final_norm: Norm::new(vb.pp("final_layer_norm"), e, cfg.layer_norm_eps)?,
            heads: cfg.num_attention_heads,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        key_mask: Option<&Tensor>,
        bias: Option<&Tensor>,
        valid: Option<&Tensor>,
        keep_probs: bool,
        key_ok: Option<&[bool]>,
        train: bool,
    ) -> candle_core::Result<BlockOut> {
        let (b, t, e) = x.dims3()?;
        let d = e / self.heads;
        let h = self.attn_norm.forward(x, train)?;
        if !train && bias.is_none() && valid.is_none() && !keep_probs && crate::fused::applies(x) {
            // Plain ESM-2 inference: the fused kernels (same numbers, no [B, H, T, T] tensors,
            // bias and residual adds folded into the matrix products).
            let lin = |l: &Linear, y: &Tensor, res: Option<&Tensor>| linear_f32(y, l.weight(), l.bias(), res);
            let attn = crate::fused::attention(
                &lin(&self.q_proj, &h, None)?,
                &lin(&self.k_proj, &h, None)?,
                &lin(&self.v_proj, &h, None)?,
                &rotary.cos,
                &rotary.sin,
                self.heads,
                key_ok,
            )?;
            let x = lin(&self.out_proj, &attn, Some(x))?;
            let h = self.final_norm.forward(&x, train)?;
            let (b1, b2) = match (self.fc1.bias(), self.fc2.bias()) {
                (Some(b1), Some(b2)) => (b1, b2),
                _ => candle_core::bail!("ESM feed-forward layers have biases"),
            };
            let x = crate::fused::feed_forward(&h, self.fc1.weight(), b1, self.fc2.weight(), b2, &x)?;
            return Ok(BlockOut { x, probs: None, pair: None });
        }
        let split = |y: Tensor| y.reshape((b, t, self.heads, d))?.transpose(1, 2)?.contiguous();
        let q = split((self.q_proj.forward(&h)? * (d as f64).powf(-0.5))?)?;
        let k = split(self.k_proj.forward(&h)?)?;
        let v = split(self.v_proj.forward(&h)?)?;
        let q = rotary.apply(&q, train)?;
        let k = rotary.apply(&k, train)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = (scores + bias)?;
        }
        let pair = match valid {
            Some(valid) => Some(scores.broadcast_mul(valid)?),
            None => None,
        };
        if let Some(m) = key_mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = softmax(&scores, train)?;
        let attn = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, e))?;
        let x = (x + self.out_proj.forward(&attn)?)?;
        let h = self.final_norm.forward(&x, train)?;
        let h = self.fc2.forward(&aa_graph::dense::gelu_erf(&self.fc1.forward(&h)?)?)?;
        Ok(BlockOut { x: (x + h)?, probs: keep_probs.then_some(probs), pair })
    }
}

/// The pair-bias modules of ESM-AA.
#[derive(Clone, Debug)]
struct PairBias {
    means: Tensor,
    stds: Tensor,
    mul: Tensor,
    bias: Tensor,
    proj1: Linear,
    proj2: Linear,
}

impl PairBias {
    fn load(vb: VarBuilder, cfg: &EsmConfig) -> candle_core::Result<PairBias> {
        let k = cfg.gaussian_kernels;
        let types = cfg.vocab_size * cfg.vocab_size;
        let g = vb.pp("gbf");
        let uniform = candle_nn::Init::Uniform { lo: 0.0, up: 3.0 };
        Ok(PairBias {
            means: g.get_with_hints((1, k), "means.weight", uniform)?,
            stds: g.get_with_hints((1, k), "stds.weight", uniform)?,
            mul: g.get_with_hints((types, 1), "mul.weight", candle_nn::Init::Const(1.0))?,
            bias: g.get_with_hints((types, 1), "bias.weight", candle_nn::Init::Const(0.0))?,
            proj1: candle_nn::linear(k, k, vb.pp("gbf_proj").pp("linear1"))?,
            proj2: candle_nn::linear(k, cfg.num_attention_heads, vb.pp("gbf_proj").pp("linear2"))?,
        })
    }

    /// The first layer's bias, `[B, H, T, T]`, zero outside the given pairs.
    fn forward(&self, pairs: &PairInput, b: usize, t: usize) -> candle_core::Result<Tensor> {
        let mul = self.mul.embedding(&pairs.edge_type)?;
        let add = self.bias.embedding(&pairs.edge_type)?;
        let x = (mul * pairs.distance.unsqueeze(1)?)?.add(&add)?; // [P, 1]
        let mean = self.means.flatten_all()?.unsqueeze(0)?;
        let std = (self.stds.flatten_all()?.abs()? + 1e-5)?.unsqueeze(0)?;
        let z = x.broadcast_sub(&mean)?.broadcast_div(&std)?;
        // The official GaussianLayer uses π ≈ 3.14159 in its normaliser; kept for parity.
        #[allow(clippy::approx_constant)]
        let a = (2.0f64 * 3.14159).sqrt();
        let g = (z.sqr()? * -0.5)?.exp()?.broadcast_div(&(std * a)?)?;
        let heads = self.proj2.forward(&self.proj1.forward(&g)?.gelu_erf()?)?; // [P, H]
        let h = heads.dim(1)?;
        let dense = Tensor::zeros((b * t * t, h), DType::F32, heads.device())?.index_add(&pairs.index, &heads, 0)?;
        dense.reshape((b, t, t, h))?.permute((0, 3, 1, 2))?.contiguous()
    }
}

/// ESM-AA's distance head on the last pair representation.
#[derive(Clone, Debug)]
struct DistanceHead {
    dense: Linear,
    norm: Norm,
    out: Linear,
}

/// The LM head: dense → GELU → LayerNorm → tied projection + bias.
#[derive(Clone, Debug)]
struct LmHead {
    dense: Linear,
    norm: Norm,
    bias: Tensor,
}

/// What a forward pass returns beyond the last hidden state.
#[derive(Clone, Debug, Default)]
pub struct EsmRequest {
    /// Layers whose hidden states to return (0 = embeddings; the last layer's is after the
    /// final LayerNorm, as in fair-esm).
    pub repr_layers: Vec<usize>,
    /// Compute the LM logits.
    pub logits: bool,
    /// Return every layer's attention maps `[B, L, H, T, T]`.
    pub attentions: bool,
    /// Compute contact probabilities (needs the contact head's weights).
    pub contacts: bool,
    /// Differentiable path (training).
    pub train: bool,
}

/// Outputs of a forward pass.
#[derive(Clone, Debug)]
pub struct EsmOutput {
    /// Last hidden state after the final LayerNorm, `[B, T, E]`.
    pub hidden: Tensor,
    /// Requested hidden states by layer.
    pub representations: BTreeMap<usize, Tensor>,
    /// LM logits `[B, T, V]`.
    pub logits: Option<Tensor>,
    /// Attention probabilities `[B, L, H, T, T]` (zero at padding).
    pub attentions: Option<Tensor>,
    /// Contact probabilities `[B, T-2, T-2]`.
    pub contacts: Option<Tensor>,
    /// Last pair representation `[B, T, T, H]` (ESM-AA with atom pairs only).
    pub pair: Option<Tensor>,
}

/// ESM-2 / ESM-AA.
#[derive(Clone, Debug)]
pub struct Esm {
    cfg: EsmConfig,
    embed_tokens: Tensor,
    layers: Vec<Block>,
    final_norm: Norm,
    lm_head: LmHead,
    contact_head: Option<Linear>,
    pair_bias: Option<PairBias>,
    dist_head: Option<DistanceHead>,
}

impl Esm {
    /// Builds the model from named tensors (fair-esm names; see [`canonical_tensors`]). The
    /// contact regression and the distance head are optional; everything else must be present
    /// with the configured shape.
    pub fn load(vb: VarBuilder, cfg: &EsmConfig) -> Result<Esm, CodeSwitchError> {
        cfg.validate()?;
        let e = cfg.hidden_size;
        let embed_tokens = vb.get_with_hints(
            (cfg.vocab_size, e),
            "embed_tokens.weight",
            candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 },
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(vb.pp(format!("layers.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let final_norm = Norm::new(vb.pp("emb_layer_norm_after"), e, cfg.layer_norm_eps)?;
        let lm = vb.pp("lm_head");
        let lm_head = LmHead {
            dense: candle_nn::linear(e, e, lm.pp("dense"))?,
            norm: Norm::new(lm.pp("layer_norm"), e, cfg.layer_norm_eps)?,
            bias: lm.get_with_hints(cfg.vocab_size, "bias", candle_nn::Init::Const(0.0))?,
        };
        let lh = cfg.num_hidden_layers * cfg.num_attention_heads;
        let contact_head = if vb.contains_tensor("contact_head.regression.weight") {
            Some(candle_nn::linear(lh, 1, vb.pp("contact_head").pp("regression"))?)
        } else {
            None
        };
        let (pair_bias, dist_head) = if cfg.pair_bias {
            let h = cfg.num_attention_heads;
            let dist = if vb.contains_tensor("dist_head.dense.weight") || !vb.contains_tensor("gbf.means.weight") {
                let d = vb.pp("dist_head");
                Some(DistanceHead {
                    dense: candle_nn::linear(h, h, d.pp("dense"))?,
                    norm: Norm::new(d.pp("layer_norm"), h, 1e-5)?,
                    out: candle_nn::linear(h, 1, d.pp("out_proj"))?,
                })
            } else {
                None
            };
            (Some(PairBias::load(vb.clone(), cfg)?), dist)
        } else {
            (None, None)
        };
        Ok(Esm { cfg: cfg.clone(), embed_tokens, layers, final_norm, lm_head, contact_head, pair_bias, dist_head })
    }

    /// The configuration.
    pub fn config(&self) -> &EsmConfig {
        &self.cfg
    }

    /// Whether the contact regression weights were loaded.
    pub fn has_contact_head(&self) -> bool {
        self.contact_head.is_some()
    }

    /// Runs the model on a batch.
    pub fn forward(&self, batch: &CodeSwitchBatch, req: &EsmRequest) -> Result<EsmOutput, CodeSwitchError> {
        let tokens = &batch.tokens;
        let (b, t) = tokens.dims2()?;
        if let Ok(max) = tokens.flatten_all()?.max(0)?.to_scalar::<u32>() {
            if max as usize >= self.cfg.vocab_size {
                return Err(CodeSwitchError::Input(format!(
                    "token id {max} is outside the model's vocabulary ({})",
                    self.cfg.vocab_size
                )));
            }
        }
        if batch.pairs.is_some() && self.pair_bias.is_none() {
            return Err(CodeSwitchError::Input("atom pairs were given to a model without a pair bias (ESM-2)".into()));
        }
        let train = req.train;
        let is_pad = tokens.eq(self.cfg.pad_token_id)?.to_dtype(DType::F32)?; // [B, T]
        let mut x = self.embed_tokens.embedding(&tokens.flatten_all()?)?.reshape((b, t, self.cfg.hidden_size))?;
        if self.cfg.token_dropout {
            let is_mask = tokens.eq(self.cfg.mask_token_id)?.to_dtype(DType::F32)?;
            x = x.broadcast_mul(&(1.0 - &is_mask)?.unsqueeze(2)?)?;
            let lengths = (1.0 - &is_pad)?.sum_keepdim(1)?; // [B, 1]
            let observed = is_mask.sum_keepdim(1)?.div(&lengths)?;
            let scale = ((1.0 - &observed)?.recip()? * (1.0 - 0.15 * 0.8))?; // [B, 1]
            x = x.broadcast_mul(&scale.unsqueeze(2)?)?;
        }
        let any_pad = batch.lengths.iter().any(|&l| l < t);
        if any_pad {
            x = x.broadcast_mul(&(1.0 - &is_pad)?.unsqueeze(2)?)?;
        }
        let mut reps = BTreeMap::new();
        if req.repr_layers.contains(&0) {
            reps.insert(0, x.clone());
        }
        let key_mask = if any_pad { Some((&is_pad * -1e30)?.reshape((b, 1, 1, t))?) } else { None };
        let key_ok: Option<Vec<bool>> =
            if any_pad { Some(batch.lengths.iter().flat_map(|&l| (0..t).map(move |i| i < l)).collect()) } else { None };
        let rotary = Rotary::new(&batch.positions, self.cfg.head_dim(), self.cfg.rope_theta)?;
        let (mut bias, valid) = match (&batch.pairs, &self.pair_bias) {
            (Some(p), Some(pb)) => (Some(pb.forward(p, b, t)?), Some(p.valid.clone())),
            _ => (None, None),
        };
        let keep_probs = req.attentions || req.contacts;
        let mut probs = Vec::new();
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            let out = layer.forward(
                &x,
                &rotary,
                key_mask.as_ref(),
                bias.as_ref(),
                valid.as_ref(),
                keep_probs,
                key_ok.as_deref(),
                train,
            )?;
            x = out.x;
            bias = out.pair;
            if let Some(p) = out.probs {
                probs.push(p);
            }
            if i + 1 < n && req.repr_layers.contains(&(i + 1)) {
                reps.insert(i + 1, x.clone());
            }
        }
        let hidden = self.final_norm.forward(&x, train)?;
        if req.repr_layers.contains(&n) {
            reps.insert(n, hidden.clone());
        }
        let logits = if req.logits { Some(self.lm_logits(&hidden, train)?) } else { None };
        let attentions = if keep_probs {
            let mut a = Tensor::stack(&probs, 1)?; // [B, L, H, T, T]
            if any_pad {
                let keep = (1.0 - &is_pad)?;
                let outer = keep.unsqueeze(2)?.broadcast_mul(&keep.unsqueeze(1)?)?; // [B, T, T]
                a = a.broadcast_mul(&outer.reshape((b, 1, 1, t, t))?)?;
            }
            Some(a)
        } else {
            None
        };
        let contacts = match (req.contacts, &attentions) {
            (true, Some(a)) => Some(self.contacts(tokens, a)?),
            _ => None,
        };
        let pair = match bias {
            Some(p) if valid.is_some() => Some(p.permute((0, 2, 3, 1))?.contiguous()?),
            _ => None,
        };
        Ok(EsmOutput {
            hidden,
            representations: reps,
            logits,
            attentions: if req.attentions { attentions } else { None },
            contacts,
            pair,
        })
    }

    /// LM logits of final hidden states `[B, T, E]` → `[B, T, V]`.
    pub fn lm_logits(&self, hidden: &Tensor, train: bool) -> Result<Tensor, CodeSwitchError> {
        if !train && crate::fused::applies(hidden) {
            let h = linear_f32(hidden, self.lm_head.dense.weight(), self.lm_head.dense.bias(), None)?;
            let h = self.lm_head.norm.forward(&aa_graph::dense::gelu_erf(&h)?, false)?;
            return Ok(linear_f32(&h, &self.embed_tokens, Some(&self.lm_head.bias), None)?);
        }
        let h = self.lm_head.dense.forward(hidden)?.gelu_erf()?;
        let h = self.lm_head.norm.forward(&h, train)?;
        Ok(h.broadcast_matmul(&self.embed_tokens.t()?)?.broadcast_add(&self.lm_head.bias)?)
    }

    /// ESM-AA's distance head on a pair representation `[B, T, T, H]` → symmetric `[B, T, T]`.
    pub fn distances(&self, pair: &Tensor, train: bool) -> Result<Tensor, CodeSwitchError> {
        let head =
            self.dist_head.as_ref().ok_or_else(|| CodeSwitchError::Config("this model has no distance head".into()))?;
        let x = head.dense.forward(pair)?.gelu_erf()?;
        let x = head.norm.forward(&x, train)?;
        let x = head.out.forward(&x)?.squeeze(3)?;
        Ok(((&x + x.transpose(1, 2)?)? * 0.5)?)
    }

    fn contacts(&self, tokens: &Tensor, attentions: &Tensor) -> Result<Tensor, CodeSwitchError> {
        let reg = self.contact_head.as_ref().ok_or_else(|| {
            CodeSwitchError::Config(
                "contact prediction needs contact_head.regression weights, which this checkpoint lacks".into(),
            )
        })?;
        let (b, l, h, t, _) = attentions.dims5()?;
        let keep = tokens.ne(self.cfg.eos_token_id)?.to_dtype(DType::F32)?;
        let outer = keep.unsqueeze(2)?.broadcast_mul(&keep.unsqueeze(1)?)?.reshape((b, 1, 1, t, t))?;
        let a = attentions.broadcast_mul(&outer)?;
        let a = a.narrow(3, 1, t - 2)?.narrow(4, 1, t - 2)?.reshape((b, l * h, t - 2, t - 2))?;
        let a = (&a + a.transpose(2, 3)?)?;
        let a1 = a.sum_keepdim(3)?;
        let a2 = a.sum_keepdim(2)?;
        let a12 = a.sum_keepdim(3)?.sum_keepdim(2)?;
        let a = (&a - a1.broadcast_mul(&a2)?.broadcast_div(&a12)?)?;
        let a = a.permute((0, 2, 3, 1))?.contiguous()?;
        Ok(candle_nn::ops::sigmoid(&reg.forward(&a)?.squeeze(3)?)?)
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_every_naming() {
        let c = |n: &str| canonical_name(n);
        assert_eq!(c("esm.encoder.layer.3.attention.self.query.weight").unwrap(), "layers.3.self_attn.q_proj.weight");
        assert_eq!(c("esm.encoder.layer.3.attention.LayerNorm.gamma").unwrap(), "layers.3.self_attn_layer_norm.weight");
        assert_eq!(c("esm.encoder.layer.0.LayerNorm.beta").unwrap(), "layers.0.final_layer_norm.bias");
        assert_eq!(c("esm.encoder.layer.0.output.dense.bias").unwrap(), "layers.0.fc2.bias");
        assert_eq!(c("esm.encoder.emb_layer_norm_after.weight").unwrap(), "emb_layer_norm_after.weight");
        assert_eq!(c("esm.embeddings.word_embeddings.weight").unwrap(), "embed_tokens.weight");
        assert_eq!(c("esm.contact_head.regression.bias").unwrap(), "contact_head.regression.bias");
        assert_eq!(c("encoder.sentence_encoder.layers.1.fc1.weight").unwrap(), "layers.1.fc1.weight");
        assert_eq!(c("encoder.lm_head.dense.weight").unwrap(), "lm_head.dense.weight");
        assert_eq!(c("encoder.sentence_encoder.gbf.means.weight").unwrap(), "gbf.means.weight");
        assert_eq!(c("lm_head.decoder.weight"), None);
        assert_eq!(c("layers.0.self_attn.rot_emb.inv_freq"), None);
        assert_eq!(c("encoder.lm_head.weight"), None);
    }
}
