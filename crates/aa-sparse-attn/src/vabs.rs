//! The Vabs-Net encoder (`MDProteinModel` + `VabsEncoder` of vabs/models/vabs_net.py and
//! vabs_encoder.py, all-atom mode): atom nodes embedded as `atom_feature(atom type) +
//! residue_feature(unit type)` (+ an optional per-unit language-model feature through
//! `esm_feat_encoder`); atom edges as `aa_edge_encoder(type pair) + aa_se3_invariant_kernel
//! (distance)`, then `vec_aa_embed` on the direction features, then the sequence-offset
//! embedding; unit edges likewise on anchors (`rr_*`); the encoder's input LayerNorms
//! (`molecule_encoder.layer_norm` on nodes, `pair_layer_norm` on unit edges) and a stack of
//! [`BilevelLayer`]s. Parameter names are the official ones.

use aa_graph::dense::{gelu_erf, LayerNorm as Norm};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::features::{VabsInput, ATOM_TYPES, DIRECTION_DIM, UNIT_TYPES};
use crate::{
    BilevelConfig, BilevelGraph, BilevelLayer, Edges, GaussianEdgeEncoder, LayerAttention, SequenceOffsetEmbedding,
};

fn d_kernels() -> usize {
    128
}
fn d_knn() -> usize {
    30
}
fn d_true() -> bool {
    true
}
fn d_clamp() -> i32 {
    256
}

/// Sizes and switches of a [`Vabs`] encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VabsConfig {
    /// Bilevel layers.
    pub layers: usize,
    /// Node width.
    pub dim: usize,
    /// Edge width.
    pub edge_dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width as a multiple of `dim` (official `encoder_ffn_embed_dim / node_dim`: 1).
    pub ffn_multiplier: usize,
    /// Gaussian distance kernels (official 128 over 0–9 Å).
    #[serde(default = "d_kernels")]
    pub kernels: usize,
    /// Atom neighbours per atom, self included.
    #[serde(default = "d_knn")]
    pub atom_knn: usize,
    /// Unit neighbours per unit, self included.
    #[serde(default = "d_knn")]
    pub unit_knn: usize,
    /// Virtual node linked to every atom and unit.
    #[serde(default = "d_true")]
    pub virtual_node: bool,
    /// Direction features of edge vectors (official `use_vec` with absolute + relative frames).
    #[serde(default = "d_true")]
    pub direction_features: bool,
    /// Sequence offsets clamped at ±this.
    #[serde(default = "d_clamp")]
    pub offset_clamp: i32,
    /// Width of per-unit language-model features given as input (`None`: no such input).
    #[serde(default)]
    pub lm_dim: Option<usize>,
}

impl VabsConfig {
    /// The paper's encoder: 12 layers, node width 768, edge width 128, 48 heads.
    pub fn paper() -> VabsConfig {
        VabsConfig { layers: 12, dim: 768, edge_dim: 128, heads: 48, ffn_multiplier: 1, ..VabsConfig::small() }
    }

    /// A CPU-sized encoder: 4 layers, node width 64, edge width 32, 4 heads.
    pub fn small() -> VabsConfig {
        VabsConfig {
            layers: 4,
            dim: 64,
            edge_dim: 32,
            heads: 4,
            ffn_multiplier: 2,
            kernels: d_kernels(),
            atom_knn: d_knn(),
            unit_knn: d_knn(),
            virtual_node: true,
            direction_features: true,
            offset_clamp: d_clamp(),
            lm_dim: None,
        }
    }

    /// The featurisation options this config implies.
    pub fn feature_options(&self) -> crate::FeatureOptions {
        crate::FeatureOptions { atom_knn: self.atom_knn, unit_knn: self.unit_knn, virtual_node: self.virtual_node }
    }
}

/// Vabs-Net's `VecEdgeFeature`: `[edge features, direction features]` →
/// `Linear → LeakyReLU → LayerNorm → Linear → LeakyReLU → LayerNorm → Linear`
/// (parameters `embed.0`, `embed.2`, `embed.3`, `embed.5`, `embed.6`).
#[derive(Clone, Debug)]
pub struct VecEdgeEncoder {
    l0: Linear,
    n2: Norm,
    l3: Linear,
    n5: Norm,
    l6: Linear,
}

impl VecEdgeEncoder {
    /// `input_dim` inputs (edge width + direction width) → `output_dim`.
    pub fn new(vb: VarBuilder, input_dim: usize, output_dim: usize) -> Result<VecEdgeEncoder> {
        let e = vb.pp("embed");
        Ok(VecEdgeEncoder {
            l0: candle_nn::linear(input_dim, output_dim, e.pp("0"))?,
            n2: Norm::new(e.pp("2"), output_dim, 1e-5)?,
            l3: candle_nn::linear(output_dim, output_dim, e.pp("3"))?,
            n5: Norm::new(e.pp("5"), output_dim, 1e-5)?,
            l6: candle_nn::linear(output_dim, output_dim, e.pp("6"))?,
        })
    }

    /// Encodes `cat(base, directions)`.
    pub fn forward(&self, base: &Tensor, directions: &Tensor, train: bool) -> Result<Tensor> {
        let x = Tensor::cat(&[base, directions], 1)?;
        let x = self.n2.forward(&candle_nn::ops::leaky_relu(&self.l0.forward(&x)?, 0.01)?, train)?;
        let x = self.n5.forward(&candle_nn::ops::leaky_relu(&self.l3.forward(&x)?, 0.01)?, train)?;
        self.l6.forward(&x)
    }
}

/// Vabs-Net's `NodeEmbedHead` for language-model features: `Linear → LayerNorm → GELU →
/// Linear` (`linear_in`, `layer_norm`, `linear_out`).
#[derive(Clone, Debug)]
pub struct NodeEmbedHead {
    linear_in: Linear,
    layer_norm: Norm,
    linear_out: Linear,
}

impl NodeEmbedHead {
    /// `input_dim` → `output_dim`.
    pub fn new(vb: VarBuilder, input_dim: usize, output_dim: usize) -> Result<NodeEmbedHead> {
        Ok(NodeEmbedHead {
            linear_in: candle_nn::linear(input_dim, input_dim, vb.pp("linear_in"))?,
            layer_norm: Norm::new(vb.pp("layer_norm"), input_dim, 1e-5)?,
            linear_out: candle_nn::linear(input_dim, output_dim, vb.pp("linear_out"))?,
        })
    }

    /// Embeds `[N, input_dim]` rows.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = gelu_erf(&self.layer_norm.forward(&self.linear_in.forward(x)?, train)?)?;
        self.linear_out.forward(&h)
    }
}

/// Edges per chunk in the edge encoders.
const EDGE_CHUNK: usize = 1 << 16;

/// One edge family's encoders (`aa_*` for atoms, `rr_*` for units).
#[derive(Clone, Debug)]
struct EdgeFamily {
    pair: Embedding,
    kernel: GaussianEdgeEncoder,
    vec: Option<VecEdgeEncoder>,
    offset: SequenceOffsetEmbedding,
    types: usize,
}

/// Geometry of one edge family, computed on CPU.
struct EdgeGeometry {
    edges: Edges,
    pair_ids: Tensor,
    kernel_ids: Tensor,
    distance: Tensor,
    directions: Option<Tensor>,
    offsets: Vec<Option<i32>>,
}

impl EdgeFamily {
    fn new(vb: &VarBuilder, prefix: &str, pair_name: &str, types: usize, cfg: &VabsConfig) -> Result<EdgeFamily> {
        let e = cfg.edge_dim;
        Ok(EdgeFamily {
            pair: candle_nn::embedding(types * types, e, vb.pp(format!("{prefix}_edge_encoder")).pp(pair_name))?,
            kernel: GaussianEdgeEncoder::new(
                vb.pp(format!("{prefix}_se3_invariant_kernel")),
                cfg.kernels,
                512,
                e,
                (0.0, 9.0, 1.0),
            )?,
            vec: if cfg.direction_features {
                Some(VecEdgeEncoder::new(vb.pp(format!("vec_{prefix}_embed")), e + 2 * DIRECTION_DIM, e)?)
            } else {
                None
            },
            offset: SequenceOffsetEmbedding::new(vb.pp(format!("{prefix}_positional_edge")), cfg.offset_clamp, e)?,
            types,
        })
    }

    /// Official order: pair-type embedding + Gaussian kernel, then the direction encoder, then
    /// the sequence-offset embedding.
    ///
    /// Runs over chunks of [`EDGE_CHUNK`] edges: the kernel and direction encoders' `[E, ·]`
    /// intermediates would otherwise dominate memory on large structures.
    fn forward(&self, g: &EdgeGeometry, train: bool) -> Result<Tensor> {
        let n = g.distance.dim(0)?;
        let mut parts = Vec::with_capacity(n.div_ceil(EDGE_CHUNK));
        for start in (0..n).step_by(EDGE_CHUNK) {
            let len = EDGE_CHUNK.min(n - start);
            let pair = self.pair.forward(&g.pair_ids.narrow(0, start, len)?)?;
            let kernel =
                self.kernel.forward(&g.distance.narrow(0, start, len)?, &g.kernel_ids.narrow(0, start, len)?)?;
            let mut e = (pair + kernel)?;
            if let (Some(v), Some(d)) = (&self.vec, &g.directions) {
                e = v.forward(&e, &d.narrow(0, start, len)?, train)?;
            }
            parts.push((e + self.offset.forward(&g.offsets[start..start + len])?)?);
        }
        match parts.len() {
            0 => Tensor::zeros((0, self.pair.hidden_size()), DType::F32, self.pair.embeddings().device()),
            1 => Ok(parts.pop().expect("one chunk")),
            _ => Tensor::cat(&parts, 0),
        }
    }

    /// Edge geometry for `(src, dst)` pairs over nodes with types `ty` and positions `pos`.
    #[allow(clippy::too_many_arguments)]
    fn geometry(
        &self,
        pairs: &[(u32, u32)],
        nodes: usize,
        ty: impl Fn(u32) -> u32,
        pos: impl Fn(u32) -> [f32; 3] + Copy,
        frame: impl Fn(u32) -> Option<[[f32; 3]; 3]>,
        offset: impl Fn(u32, u32) -> Option<i32>,
        dev: &Device,
    ) -> Result<EdgeGeometry> {
        let n = pairs.len();
        let t = self.types as u32;
        let (mut src, mut dst, mut pair_ids, mut kernel_ids, mut dist, mut offsets) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::new(), Vec::new(), Vec::new());
        for &(s, d) in pairs {
            src.push(s);
            dst.push(d);
            // The official pair index is query-major: type(dst) · T + type(src).
            pair_ids.push(ty(d) * t + ty(s));
            kernel_ids.extend_from_slice(&[ty(d) + 1, ty(s) + 1 + 128]);
            let (a, b) = (pos(s), pos(d));
            dist.push(((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt());
            offsets.push(offset(s, d));
        }
        let directions = if self.vec.is_some() {
            let v = VabsInput::edge_directions(pairs, pos, frame);
            Some(Tensor::from_vec(v, (n, 2 * DIRECTION_DIM), dev)?)
        } else {
            None
        };
        Ok(EdgeGeometry {
            edges: Edges { src: Tensor::from_vec(src, n, dev)?, dst: Tensor::from_vec(dst, n, dev)?, nodes },
            pair_ids: Tensor::from_vec(pair_ids, n, dev)?,
            kernel_ids: Tensor::from_vec(kernel_ids, (n, 2), dev)?,
            distance: Tensor::from_vec(dist, n, dev)?,
            directions,
            offsets,
        })
    }
}

/// The encoder's outputs.
#[derive(Clone, Debug)]
pub struct VabsOutput {
    /// Atom features `[N_atoms, dim]` (the virtual node included).
    pub atoms: Tensor,
    /// Unit features `[N_units, dim]`: the anchors' rows.
    pub units: Tensor,
    /// Atom→atom edges and their input features `[E, edge_dim]` (for equivariant heads).
    pub atom_edges: Edges,
    /// See `atom_edges`.
    pub atom_edge_features: Tensor,
    /// Every layer's atom features `[N_atoms, dim]` (the last equals `atoms`); a unit's rows
    /// are its anchor's.
    pub layers: Vec<Tensor>,
}

/// The Vabs-Net encoder.
#[derive(Clone, Debug)]
pub struct Vabs {
    atom_feature: Embedding,
    residue_feature: Embedding,
    lm: Option<NodeEmbedHead>,
    aa: EdgeFamily,
    rr: EdgeFamily,
    layer_norm: Norm,
    pair_layer_norm: Norm,
    layers: Vec<BilevelLayer>,
    cfg: VabsConfig,
}

impl Vabs {
    /// Builds the encoder.
    pub fn new(vb: VarBuilder, cfg: &VabsConfig) -> Result<Vabs> {
        if cfg.layers == 0 || cfg.atom_knn == 0 || cfg.unit_knn == 0 {
            candle_core::bail!("vabs: layers, atom_knn and unit_knn must be positive");
        }
        let enc = vb.pp("molecule_encoder");
        let layer_cfg = BilevelConfig {
            dim: cfg.dim,
            heads: cfg.heads,
            atom_edge_dim: cfg.edge_dim,
            unit_edge_dim: cfg.edge_dim,
            ffn_multiplier: cfg.ffn_multiplier,
        };
        Ok(Vabs {
            atom_feature: candle_nn::embedding(ATOM_TYPES, cfg.dim, vb.pp("atom_feature"))?,
            residue_feature: candle_nn::embedding(UNIT_TYPES, cfg.dim, vb.pp("residue_feature"))?,
            lm: match cfg.lm_dim {
                Some(d) => Some(NodeEmbedHead::new(vb.pp("esm_feat_encoder"), d, cfg.dim)?),
                None => None,
            },
            aa: EdgeFamily::new(&vb, "aa", "residue_aa_pair_encoder", ATOM_TYPES, cfg)?,
            rr: EdgeFamily::new(&vb, "rr", "residue_pair_encoder", UNIT_TYPES, cfg)?,
            layer_norm: Norm::new(enc.pp("layer_norm"), cfg.dim, 1e-5)?,
            pair_layer_norm: Norm::new(enc.pp("pair_layer_norm"), cfg.edge_dim, 1e-5)?,
            layers: (0..cfg.layers)
                .map(|i| BilevelLayer::new(enc.pp("layers").pp(i), &layer_cfg))
                .collect::<Result<_>>()?,
            cfg: cfg.clone(),
        })
    }

    /// The config.
    pub fn config(&self) -> &VabsConfig {
        &self.cfg
    }

    /// Encodes a featurised graph or batch. `lm` holds per-unit language-model features
    /// `[N_units, lm_dim]` when the config has `lm_dim` (zeros for masked and virtual units).
    pub fn forward(&self, input: &VabsInput, lm: Option<&Tensor>, train: bool) -> Result<VabsOutput> {
        let p = self.prepare(input, lm, train)?;
        let g = p.graph();
        let mut x = p.x.clone();
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = layer.forward(&x, &g, train)?;
            layers.push(x.clone());
        }
        let units = x.index_select(&p.anchors, 0)?;
        Ok(VabsOutput { atoms: x, units, atom_edges: p.ag.edges, atom_edge_features: p.atom_edge_features, layers })
    }

    /// Every layer's attention weights at inference: the atom track's over the atom→atom edges
    /// and the unit track's over the unit→unit edges (`[E, heads]` each, every destination's
    /// incoming edges summing to 1 per head).
    pub fn attention(&self, input: &VabsInput, lm: Option<&Tensor>) -> Result<VabsAttention> {
        let p = self.prepare(input, lm, false)?;
        let g = p.graph();
        let mut x = p.x.clone();
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (states, weights) = layer.attention(&x, &g)?;
            x = states.output;
            layers.push(weights);
        }
        Ok(VabsAttention { atom_edges: p.ag.edges, unit_edges: p.ug.edges, layers })
    }

    /// Node embeddings, edge geometry and edge features: everything before the first layer.
    fn prepare(&self, input: &VabsInput, lm: Option<&Tensor>, train: bool) -> Result<Prepared> {
        let dev = self.atom_feature.embeddings().device().clone();
        let (na, nu) = (input.num_atoms(), input.num_units());
        let atom_types = Tensor::from_vec(input.atom_type.clone(), na, &dev)?;
        let atom_units = Tensor::from_vec(input.atom_unit.clone(), na, &dev)?;
        let unit_types = Tensor::from_vec(input.unit_type.clone(), nu, &dev)?;
        let unit_emb = self.residue_feature.forward(&unit_types)?;
        let mut nodes = (self.atom_feature.forward(&atom_types)? + unit_emb.index_select(&atom_units, 0)?)?;
        match (&self.lm, lm) {
            (Some(head), Some(f)) => nodes = (nodes + head.forward(f, train)?.index_select(&atom_units, 0)?)?,
            (Some(_), None) => candle_core::bail!("vabs: the model expects language-model features (lm_dim is set)"),
            (None, Some(_)) => candle_core::bail!("vabs: language-model features given but the config has no lm_dim"),
            (None, None) => {}
        }
        let atom_unit = |a: u32| input.atom_unit[a as usize];
        let ag = self.aa.geometry(
            &input.atom_edges,
            na,
            |a| input.atom_type[a as usize],
            |a| input.positions[a as usize],
            |a| input.frames[atom_unit(a) as usize],
            |s, d| input.unit_offset(atom_unit(s), atom_unit(d)),
            &dev,
        )?;
        let ug = self.rr.geometry(
            &input.unit_edges,
            nu,
            |u| input.unit_type[u as usize],
            |u| input.positions[input.anchors[u as usize] as usize],
            |u| input.frames[u as usize],
            |s, d| input.unit_offset(s, d),
            &dev,
        )?;
        let atom_edge_features = self.aa.forward(&ag, train)?;
        let unit_edge_features = self.pair_layer_norm.forward(&self.rr.forward(&ug, train)?, train)?;
        let anchors = Tensor::from_vec(input.anchors.clone(), nu, &dev)?;
        let x = self.layer_norm.forward(&nodes, train)?;
        Ok(Prepared { x, ag, ug, atom_edge_features, unit_edge_features, anchors })
    }
}

/// What [`Vabs::prepare`] builds.
struct Prepared {
    x: Tensor,
    ag: EdgeGeometry,
    ug: EdgeGeometry,
    atom_edge_features: Tensor,
    unit_edge_features: Tensor,
    anchors: Tensor,
}

impl Prepared {
    fn graph(&self) -> BilevelGraph<'_> {
        BilevelGraph {
            atom_edges: &self.ag.edges,
            atom_edge_features: &self.atom_edge_features,
            anchors: &self.anchors,
            unit_edges: &self.ug.edges,
            unit_edge_features: &self.unit_edge_features,
        }
    }
}

/// Every layer's attention weights ([`Vabs::attention`]).
#[derive(Clone, Debug)]
pub struct VabsAttention {
    /// The atom track's edges (over the input's atoms, the virtual node included).
    pub atom_edges: Edges,
    /// The unit track's edges (over the input's units, the virtual unit included).
    pub unit_edges: Edges,
    /// Per layer, first layer first.
    pub layers: Vec<LayerAttention>,
}
