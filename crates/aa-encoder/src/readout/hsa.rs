//! HSA-Net (Shao et al., AAAI-26, arXiv 2508.08334) as a readout over every layer of any
//! encoder: a hierarchical adaptive projector (HAP) turns each layer's unit rows into tokens,
//! source-aware fusion (SAF) mixes all layers' tokens with motif tokens through a top-k mixture
//! of experts, and the graph vector is mean ‖ max over the fused tokens.
//!
//! **HAP.** Layer `l`'s unit rows (`EncoderOutput::layers[l].units`, width `w_l`) are
//! normalised and projected to the token width `d` (`LayerNorm → Linear`, `layers.{l}.input`).
//! Two projectors make `T` tokens of them ([`super::projectors`]): cross-attention from `T`
//! learned queries (`layers.{l}.attention`) and a Graph-Mamba block over the serialised units
//! (`layers.{l}.mamba`). The gate (`layers.{l}.gate`, `Linear(d → 2)`) scores the layer from the
//! window's mean projected row; training takes a hard Gumbel-softmax sample
//! (`softmax((logits + g) / τ)`, straight-through: the forward value is the one-hot of the
//! arg-max, the gradient the soft sample's), inference the arg-max of the logits. Both projectors
//! run for every window and the gate's one-hot picks per window, so a window's tokens come from
//! exactly one projector. `projectors: "attention" | "mamba"` keeps one projector and no gate
//! (the paper's ablations).
//!
//! **SAF.** Motif tokens: `M` learned queries attend over the final unit rows
//! (`EncoderOutput::units`, `motif.input`, `motif.attention`) — a motif is a learned soft group
//! of units. All `L·T + M` tokens of a window go through a router (`saf.router`,
//! `Linear(d → E)`, softmax) to their top-`k` of `E` expert MLPs (`saf.experts.{e}`:
//! `Linear(d → 2d) → GELU → Linear(2d → d)`); a token becomes `x + Σ_{e ∈ top-k} c_e · expert_e(x)`.
//! The paper sums the chosen experts' outputs unweighted (`c_e = 1`): then no gradient reaches
//! the router, which is frozen at its initialisation. `weighted: true` (the default here) uses
//! the router's probabilities renormalised over the chosen experts (`c_e = p_e / Σ_top-k p`), so
//! the router learns. The residual `x +` is ours (the paper does not say): it keeps every
//! token's source when an expert is poorly trained.
//!
//! **Output.** [`Hsa::run`] gives the fused tokens `[W, L·T + M, d]` (a soft prompt for a
//! language model), the graph vector `[W, 2d]` (what [`Readout::forward`] returns) and the gate
//! choice of every layer and window (the paper's Fig. 5).

use aa_graph::kernels::scatter_mean;
use aa_graph::linear::Linear;
use aa_graph::moe::routed_experts;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::projectors::{CrossAttention, GraphMamba, InputProjection, LayerRows};
use super::Readout;
use crate::attention::{AttentionMatrix, AttentionNode, AttentionTrack};
use crate::EncoderOutput;

/// Which projectors HAP uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Projectors {
    /// Both, a hard Gumbel gate per layer (the paper's HAP).
    #[default]
    Adaptive,
    /// Cross-attention only.
    Attention,
    /// Graph-Mamba only.
    Mamba,
}

/// An HSA-Net readout configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsaConfig {
    /// Token width `d`.
    #[serde(default = "d_dim")]
    pub dim: usize,
    /// Tokens per layer `T`.
    #[serde(default = "d_tokens")]
    pub tokens: usize,
    /// Attention heads of the cross-attention projectors.
    #[serde(default = "d_heads")]
    pub heads: usize,
    /// Motif tokens `M` (0: none).
    #[serde(default = "d_motifs")]
    pub motifs: usize,
    /// The projectors.
    #[serde(default)]
    pub projectors: Projectors,
    /// Experts `E` of the fusion.
    #[serde(default = "d_experts")]
    pub experts: usize,
    /// Experts per token `k`.
    #[serde(default = "d_top_k")]
    pub top_k: usize,
    /// Weight the chosen experts by the router's renormalised probabilities (else the paper's
    /// unweighted sum, which gives the router no gradient).
    #[serde(default = "d_weighted")]
    pub weighted: bool,
    /// Gumbel-softmax temperature `τ`.
    #[serde(default = "d_tau")]
    pub tau: f64,
    /// State size `N` of the Mamba projectors.
    #[serde(default = "d_state")]
    pub state: usize,
}

fn d_dim() -> usize {
    128
}
fn d_tokens() -> usize {
    8
}
fn d_heads() -> usize {
    4
}
fn d_motifs() -> usize {
    4
}
fn d_experts() -> usize {
    4
}
fn d_top_k() -> usize {
    2
}
fn d_weighted() -> bool {
    true
}
fn d_tau() -> f64 {
    1.0
}
fn d_state() -> usize {
    8
}

impl Default for HsaConfig {
    fn default() -> Self {
        HsaConfig {
            dim: d_dim(),
            tokens: d_tokens(),
            heads: d_heads(),
            motifs: d_motifs(),
            projectors: Projectors::default(),
            experts: d_experts(),
            top_k: d_top_k(),
            weighted: d_weighted(),
            tau: d_tau(),
            state: d_state(),
        }
    }
}

struct HapLayer {
    input: InputProjection,
    attention: Option<CrossAttention>,
    mamba: Option<GraphMamba>,
    gate: Option<Linear>,
}

struct Expert {
    fc1: Linear,
    fc2: Linear,
}

/// What [`Hsa::run`] gives.
#[derive(Clone, Debug)]
pub struct HsaOutput {
    /// Fused tokens `[W, L·T + M, d]`: layer 1's `T` tokens first, the motif tokens last.
    pub tokens: Tensor,
    /// Graph vector `[W, 2d]`: mean ‖ max over the fused tokens.
    pub graph: Tensor,
    /// Per layer, per window: the projector chosen (0 attention, 1 Mamba).
    pub choices: Vec<Vec<u8>>,
    /// Per layer, the cross-attention `[U, T, H]` of the queries over the unit rows (when the
    /// layer ran its attention projector).
    pub attention: Vec<Option<Tensor>>,
}

/// The HSA-Net readout.
pub struct Hsa {
    config: HsaConfig,
    layers: Vec<HapLayer>,
    motif: Option<(InputProjection, CrossAttention)>,
    router: Linear,
    experts: Vec<Expert>,
}

impl Hsa {
    /// An HSA readout for an encoder whose layers are `layer_dims` wide and whose final unit
    /// rows are `unit_dim` wide, its weights under `vb`.
    pub fn new(vb: VarBuilder, layer_dims: &[usize], unit_dim: usize, config: HsaConfig) -> Result<Hsa> {
        let c = &config;
        if layer_dims.is_empty() {
            candle_core::bail!("HSA reads every layer of the encoder, and this encoder reports none");
        }
        if c.dim == 0 || c.tokens == 0 || c.experts == 0 || c.top_k == 0 || c.top_k > c.experts {
            candle_core::bail!(
                "HSA needs a token width, tokens per layer and 1 ≤ top_k ≤ experts (dim {}, tokens {}, top_k {}, experts {})",
                c.dim,
                c.tokens,
                c.top_k,
                c.experts
            );
        }
        if !(c.tau.is_finite() && c.tau > 0.0) {
            candle_core::bail!("HSA: the Gumbel temperature must be positive, got {}", c.tau);
        }
        let layers = layer_dims
            .iter()
            .enumerate()
            .map(|(l, &w)| {
                let vl = vb.pp("layers").pp(l);
                let attention = (c.projectors != Projectors::Mamba)
                    .then(|| CrossAttention::new(vl.pp("attention"), c.dim, c.tokens, c.heads))
                    .transpose()?;
                let mamba = (c.projectors != Projectors::Attention)
                    .then(|| GraphMamba::new(vl.pp("mamba"), c.dim, c.tokens, c.state))
                    .transpose()?;
                let gate =
                    (c.projectors == Projectors::Adaptive).then(|| Linear::new(c.dim, 2, vl.pp("gate"))).transpose()?;
                Ok(HapLayer { input: InputProjection::new(vl.pp("input"), w, c.dim)?, attention, mamba, gate })
            })
            .collect::<Result<Vec<_>>>()?;
        let motif = (c.motifs > 0)
            .then(|| -> Result<_> {
                Ok((
                    InputProjection::new(vb.pp("motif").pp("input"), unit_dim, c.dim)?,
                    CrossAttention::new(vb.pp("motif").pp("attention"), c.dim, c.motifs, c.heads)?,
                ))
            })
            .transpose()?;
        let saf = vb.pp("saf");
        let experts = (0..c.experts)
            .map(|e| {
                let ve = saf.pp("experts").pp(e);
                Ok(Expert {
                    fc1: Linear::new(c.dim, 2 * c.dim, ve.pp("fc1"))?,
                    fc2: Linear::new(2 * c.dim, c.dim, ve.pp("fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Hsa { router: Linear::new(c.dim, c.experts, saf.pp("router"))?, config, layers, motif, experts })
    }

    /// The configuration.
    pub fn config(&self) -> &HsaConfig {
        &self.config
    }

    /// Tokens per window (`L·T + M`).
    pub fn num_tokens(&self) -> usize {
        self.layers.len() * self.config.tokens + if self.motif.is_some() { self.config.motifs } else { 0 }
    }

    /// Runs the readout. `train` samples the gates (hard Gumbel-softmax, straight-through) with
    /// the noise `gumbel` (`[L, W, 2]`; drawn here when `None`); otherwise each gate takes its
    /// arg-max.
    pub fn run(&self, out: &EncoderOutput, train: bool, gumbel: Option<&Tensor>) -> Result<HsaOutput> {
        if out.layers.len() != self.layers.len() {
            candle_core::bail!(
                "HSA was built for {} encoder layers, and this output has {}",
                self.layers.len(),
                out.layers.len()
            );
        }
        let (w, dev) = (out.windows, out.units.device().clone());
        let window = Tensor::from_slice(&out.unit_window, out.unit_window.len(), &dev)?;
        let mut tokens = Vec::with_capacity(self.layers.len() + 1);
        let (mut choices, mut attention) = (Vec::new(), Vec::new());
        for (l, (layer, states)) in self.layers.iter().zip(&out.layers).enumerate() {
            let x = layer.input.forward(&states.units, train)?;
            let rows =
                LayerRows { x: &x, unit_window: &out.unit_window, windows: w, geometry: out.geometry.as_deref() };
            let att = layer.attention.as_ref().map(|a| a.forward(&rows)).transpose()?;
            let mam = layer.mamba.as_ref().map(|m| m.forward(&rows)).transpose()?;
            let (t, chosen) = match (att, mam, &layer.gate) {
                (Some((a, alpha)), Some(m), Some(gate)) => {
                    let logits = gate.forward(&scatter_mean(&x, &window, w)?)?; // [W, 2]
                    let (g, chosen) = self.gate(&logits, train, gumbel.map(|g| g.get(l)).transpose()?)?;
                    let g0 = g.narrow(1, 0, 1)?.unsqueeze(2)?;
                    let g1 = g.narrow(1, 1, 1)?.unsqueeze(2)?;
                    attention.push(Some(alpha));
                    ((a.broadcast_mul(&g0)? + m.broadcast_mul(&g1)?)?, chosen)
                }
                (Some((a, alpha)), None, _) => {
                    attention.push(Some(alpha));
                    (a, vec![0; w])
                }
                (None, Some(m), _) => {
                    attention.push(None);
                    (m, vec![1; w])
                }
                _ => candle_core::bail!("HSA layer {l} has no projector"),
            };
            tokens.push(t);
            choices.push(chosen);
        }
        if let Some((input, attn)) = &self.motif {
            let x = input.forward(&out.units, train)?;
            let rows =
                LayerRows { x: &x, unit_window: &out.unit_window, windows: w, geometry: out.geometry.as_deref() };
            tokens.push(attn.forward(&rows)?.0);
        }
        let tokens = Tensor::cat(&tokens, 1)?; // [W, n, d]
        let fused = self.fuse(&tokens)?;
        let graph = Tensor::cat(&[fused.mean(1)?, fused.max(1)?], D::Minus1)?;
        Ok(HsaOutput { tokens: fused, graph, choices, attention })
    }

    /// Gate weights `[W, 2]` and choices from gate logits.
    fn gate(&self, logits: &Tensor, train: bool, noise: Option<Tensor>) -> Result<(Tensor, Vec<u8>)> {
        let (w, _) = logits.dims2()?;
        let scores = if train {
            let g = match noise {
                Some(g) => g,
                None => {
                    // Gumbel(0, 1) = −ln(−ln U), U ∈ (0, 1).
                    let u = Tensor::rand(1e-10f32, 1.0 - 1e-7, (w, 2), logits.device())?;
                    u.log()?.neg()?.log()?.neg()?
                }
            };
            ((logits + g.to_dtype(logits.dtype())?)? / self.config.tau)?
        } else {
            logits.clone()
        };
        let values = scores.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let chosen: Vec<u8> = values.iter().map(|r| u8::from(r[1] > r[0])).collect();
        let hard: Vec<f32> = chosen.iter().flat_map(|&c| if c == 0 { [1.0, 0.0] } else { [0.0, 1.0] }).collect();
        let hard = Tensor::from_vec(hard, (w, 2), logits.device())?.to_dtype(logits.dtype())?;
        if !train {
            return Ok((hard, chosen));
        }
        let soft = candle_nn::ops::softmax(&scores, D::Minus1)?;
        Ok((((hard - soft.detach())? + soft)?, chosen))
    }

    /// Source-aware fusion of tokens `[W, n, d]`.
    fn fuse(&self, tokens: &Tensor) -> Result<Tensor> {
        let (w, n, d) = tokens.dims3()?;
        let x = tokens.reshape((w * n, d))?;
        let probs = candle_nn::ops::softmax(&self.router.forward(&x)?, D::Minus1)?; // [wn, E]
        let e = self.config.experts;
        let p = probs.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut mask = vec![0f32; w * n * e];
        for (r, row) in p.iter().enumerate() {
            let mut order: Vec<usize> = (0..e).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            for &k in &order[..self.config.top_k] {
                mask[r * e + k] = 1.0;
            }
        }
        let routed: Vec<Vec<u32>> =
            (0..e).map(|k| (0..w * n).filter(|&r| mask[r * e + k] > 0.0).map(|r| r as u32).collect()).collect();
        let mask = Tensor::from_vec(mask, (w * n, e), x.device())?.to_dtype(x.dtype())?;
        let coeff = if self.config.weighted {
            let chosen = (probs * &mask)?;
            chosen.broadcast_div(&chosen.sum_keepdim(1)?)?
        } else {
            mask
        };
        // Each expert runs on the tokens routed to it only (top-k of E: k/E of the work), with
        // the residual, in one kernel.
        let experts: Vec<(&Linear, &Linear)> = self.experts.iter().map(|x| (&x.fc1, &x.fc2)).collect();
        let y = routed_experts(&x, &coeff, &routed, &experts)?;
        y.reshape((w, n, d))
    }
}

impl Readout for Hsa {
    fn dim(&self, _unit_dim: usize) -> usize {
        2 * self.config.dim
    }

    fn forward(&self, out: &EncoderOutput, train: bool) -> Result<Tensor> {
        Ok(self.run(out, train, None)?.graph)
    }

    fn choices(&self, out: &EncoderOutput) -> Result<Option<Vec<Vec<u8>>>> {
        Ok(Some(self.run(out, false, None)?.choices))
    }

    /// Per window, one `hsa` track over its units: for each layer with a cross-attention
    /// projector, the unit-to-unit graph through the query tokens — with `a[i, t]` the
    /// head-averaged weight query `t` gives unit `i` (each query's weights sum to 1 over the
    /// window), row `i` is `Σ_t a[i, t] a[·, t] / Σ_t a[i, t]`: where the tokens that read unit
    /// `i` also read. Layers read different encoder layers, so the track is not chained.
    fn attention(&self, out: &EncoderOutput) -> Result<Option<Vec<AttentionTrack>>> {
        let run = self.run(out, false, None)?;
        let mut tracks = Vec::with_capacity(out.windows);
        for w in 0..out.windows {
            let rows = out.unit_rows(w);
            let n = rows.len();
            let (mut layers, mut labels) = (Vec::new(), Vec::new());
            for (l, alpha) in run.attention.iter().enumerate() {
                let Some(alpha) = alpha else { continue };
                let a = alpha.narrow(0, rows.start, n)?.mean(2)?.to_vec2::<f32>()?; // [n, T]
                let mut m = AttentionMatrix::zeros(n);
                for i in 0..n {
                    let reads: f64 = a[i].iter().map(|&x| f64::from(x)).sum();
                    for j in 0..n {
                        let c: f64 = a[i].iter().zip(&a[j]).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
                        m.values[i * n + j] = if reads > 0.0 { (c / reads) as f32 } else { 0.0 };
                    }
                }
                layers.push(m);
                let gate = match (&self.layers[l].gate, run.choices[l].get(w)) {
                    (Some(_), Some(1)) => " (gate: Mamba, unused)",
                    (Some(_), _) => " (gate: attention)",
                    (None, _) => "",
                };
                labels.push(format!("layer {}{gate}", l + 1));
            }
            let nodes = (0..n as u32).map(AttentionNode::Unit).collect();
            tracks.push(AttentionTrack { name: "hsa".into(), window: w, nodes, layers, labels, chained: false });
        }
        Ok(Some(tracks))
    }
}
