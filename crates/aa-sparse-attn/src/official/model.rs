//! `MDProteinModel` + `VabsEncoder` of the official code (released binding-site configuration,
//! post-LN, no pair updates) on [`OfficialInputs`].

use aa_graph::dense::LayerNorm as Norm;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::{Deserialize, Serialize};

use super::{
    OfficialInputs, ATOM_TYPES, DIRECTION_WIDTH, OFFSET_CLAMP, PAIR_MULTIPLIER, RESIDUE_TYPES, VIRTUAL_OFFSET_CLAMP,
    VIRTUAL_RESIDUE,
};
use crate::{
    BilevelConfig, BilevelGraph, BilevelLayer, Edges, GaussianEdgeEncoder, NodeEmbedHead, TrackStates, VecEdgeEncoder,
};

fn d_kernels() -> usize {
    128
}
fn d_knn() -> usize {
    30
}

/// Sizes of an [`OfficialVabs`], named after the official arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficialConfig {
    /// Encoder layers (`num_layers`; released 12).
    pub layers: usize,
    /// Node width (`node_dim`; 768).
    pub dim: usize,
    /// Edge width (`edge_dim`; 128).
    pub edge_dim: usize,
    /// Attention heads (`encoder_attention_heads`; 48).
    pub heads: usize,
    /// Feed-forward width (`encoder_ffn_embed_dim`; 768): the FFN hidden width is
    /// `ffn_dim / dim` (integer division, as official) times `dim`.
    pub ffn_dim: usize,
    /// Gaussian distance kernels (`num_3d_bias_kernel`; 128, over 0–9 Å).
    #[serde(default = "d_kernels")]
    pub kernels: usize,
    /// Width of the per-residue language-model rows (`esm_dim` with `use_esm_feat`; 1280 for
    /// ESM-2 650M); `None` when the model takes none.
    #[serde(default)]
    pub lm_dim: Option<usize>,
    /// Residue neighbours of the featurisation (`knn_res`; 30).
    #[serde(default = "d_knn")]
    pub knn_res: usize,
    /// Atom neighbours of the featurisation (`knn_atom2atom`; 30).
    #[serde(default = "d_knn")]
    pub knn_atom: usize,
    /// The binding-site head `pocket_cls_all` (2 classes per atom row) is part of the weights.
    #[serde(default)]
    pub pocket_head: bool,
}

impl OfficialConfig {
    /// The released fine-tuning configuration (`reproduce_finetune.sh`).
    pub fn released() -> OfficialConfig {
        OfficialConfig {
            layers: 12,
            dim: 768,
            edge_dim: 128,
            heads: 48,
            ffn_dim: 768,
            kernels: 128,
            lm_dim: Some(1280),
            knn_res: 30,
            knn_atom: 30,
            pocket_head: true,
        }
    }

    /// The sizes of a state dict with the official keys (layers, widths, kernels, language-model
    /// width, whether `pocket_cls_all` is the per-atom 2-class head), the head count given
    /// (tensors do not carry it) and the released kNN sizes (30 / 30). An error names the
    /// missing or misshapen tensor.
    pub fn from_state_dict(
        tensors: &std::collections::HashMap<String, Tensor>,
        heads: usize,
    ) -> std::result::Result<OfficialConfig, String> {
        let get = |k: &str| tensors.get(k).ok_or_else(|| format!("no tensor {k}"));
        let dim_of = |k: &str, d: usize| -> std::result::Result<usize, String> {
            get(k)?.dim(d).map_err(|e| format!("{k}: {e}"))
        };
        let atom_types = dim_of("atom_feature.weight", 0)?;
        if atom_types != ATOM_TYPES {
            return Err(format!("atom_feature has {atom_types} rows, the official vocabulary {ATOM_TYPES}"));
        }
        let dim = dim_of("atom_feature.weight", 1)?;
        let layers = (0..)
            .take_while(|i| tensors.contains_key(&format!("molecule_encoder.layers.{i}.aa_attn.linear_q.weight")))
            .count();
        let lm_dim = match tensors.contains_key("esm_feat_encoder.linear_in.weight") {
            true => Some(dim_of("esm_feat_encoder.linear_in.weight", 1)?),
            false => None,
        };
        let pocket_head = tensors.contains_key("pocket_cls_all.linear_in.weight")
            && dim_of("pocket_cls_all.linear_in.weight", 1)? == dim
            && dim_of("pocket_cls_all.linear_out.weight", 0)? == 2;
        Ok(OfficialConfig {
            layers,
            dim,
            edge_dim: dim_of("rr_edge_encoder.residue_pair_encoder.weight", 1)?,
            heads,
            ffn_dim: dim_of("molecule_encoder.layers.0.ffn.linear_1.weight", 0)?,
            kernels: dim_of("rr_se3_invariant_kernel.out_proj.layer1.weight", 1)?,
            lm_dim,
            knn_res: d_knn(),
            knn_atom: d_knn(),
            pocket_head,
        })
    }

    /// The featurisation this configuration was trained with.
    pub fn featurize_options(&self) -> super::FeaturizeOptions {
        super::FeaturizeOptions { knn_res: self.knn_res, knn_atom: self.knn_atom }
    }
}

/// Every stage of a forward pass (what a stage-by-stage comparison with the official code needs).
#[derive(Clone, Debug)]
pub struct OfficialOutput {
    /// Node embeddings `[A, dim]` as the encoder receives them (atom + residue type + language
    /// model), before `molecule_encoder.layer_norm`.
    pub embed_nodes: Tensor,
    /// Residue-edge features `[E_r, edge_dim]` before `pair_layer_norm`.
    pub embed_rr_edges: Tensor,
    /// Atom-edge features `[E_a, edge_dim]` (never normalised; fixed across layers).
    pub aa_edges: Tensor,
    /// `molecule_encoder.layer_norm` of the node embeddings.
    pub nodes: Tensor,
    /// `pair_layer_norm` of the residue-edge features (fixed across layers).
    pub rr_edges: Tensor,
    /// Every layer's atom track, residue track and output.
    pub layers: Vec<TrackStates>,
    /// The encoder's output `[A, dim]` (the last layer's output).
    pub final_nodes: Tensor,
    /// Residue-track rows (u32 `[R]`): the atom rows with `res_mask`.
    pub residue_rows: Tensor,
    /// `pocket_cls_all` logits `[A, 2]`, when the model has the head.
    pub pocket_logits: Option<Tensor>,
}

impl OfficialOutput {
    /// Every stage under one name each (the names of the reference fixtures): `embed.nodes`,
    /// `embed.rr_edges`, `embed.aa_edges`, `encoder.nodes`, `encoder.rr_edges`, `layer.{i}.atom`,
    /// `layer.{i}.residue`, `layer.{i}.out`, `final`, and `pocket_logits` when present.
    pub fn stages(&self) -> std::collections::HashMap<String, Tensor> {
        let mut m = std::collections::HashMap::new();
        m.insert("embed.nodes".to_string(), self.embed_nodes.clone());
        m.insert("embed.rr_edges".to_string(), self.embed_rr_edges.clone());
        m.insert("embed.aa_edges".to_string(), self.aa_edges.clone());
        m.insert("encoder.nodes".to_string(), self.nodes.clone());
        m.insert("encoder.rr_edges".to_string(), self.rr_edges.clone());
        for (i, l) in self.layers.iter().enumerate() {
            m.insert(format!("layer.{i}.atom"), l.atoms.clone());
            m.insert(format!("layer.{i}.residue"), l.units.clone());
            m.insert(format!("layer.{i}.out"), l.output.clone());
        }
        m.insert("final".to_string(), self.final_nodes.clone());
        if let Some(p) = &self.pocket_logits {
            m.insert("pocket_logits".to_string(), p.clone());
        }
        m
    }
}

/// One track's edge encoders.
#[derive(Clone, Debug)]
struct Track {
    pair: Embedding,
    kernel: GaussianEdgeEncoder,
    vec: VecEdgeEncoder,
    offsets: Tensor,
    virtual_offsets: Tensor,
}

impl Track {
    fn new(vb: &VarBuilder, prefix: &str, pair_name: &str, virtual_name: &str, cfg: &OfficialConfig) -> Result<Track> {
        let e = cfg.edge_dim;
        let table = |name: &str, clamp: i64| {
            vb.get_with_hints(
                ((2 * clamp + 1) as usize, e),
                &format!("{name}.weight"),
                candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 },
            )
        };
        Ok(Track {
            pair: candle_nn::embedding(
                ATOM_TYPES * ATOM_TYPES,
                e,
                vb.pp(format!("{prefix}_edge_encoder")).pp(pair_name),
            )?,
            kernel: GaussianEdgeEncoder::official(
                vb.pp(format!("{prefix}_se3_invariant_kernel")),
                cfg.kernels,
                512,
                e,
            )?,
            vec: VecEdgeEncoder::new(vb.pp(format!("vec_{prefix}_embed")), e + DIRECTION_WIDTH, e)?,
            offsets: table(&format!("{prefix}_positional_edge"), OFFSET_CLAMP)?,
            virtual_offsets: table(virtual_name, VIRTUAL_OFFSET_CLAMP)?,
        })
    }

    /// Official order: pair embedding + Gaussian kernel → `VecEdgeFeature` → + offsets (the ±1200
    /// table for edges touching the virtual node, ±256 otherwise).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        edges: &[[u32; 2]],
        ty: &[u32],
        pos: &[[f32; 3]],
        seq: &[u32],
        is_virtual: &[bool],
        vec: &[f64],
        dev: &Device,
        train: bool,
    ) -> Result<Tensor> {
        let n = edges.len();
        let (mut pair, mut kid, mut dist) = (Vec::with_capacity(n), Vec::with_capacity(2 * n), Vec::with_capacity(n));
        // Offset rows in the two tables stacked: ±256 rows first, then the ±1200 rows.
        let mut off = Vec::with_capacity(n);
        for &[d, s] in edges {
            let (d, s) = (d as usize, s as usize);
            pair.push(ty[d] * PAIR_MULTIPLIER + ty[s]);
            kid.extend_from_slice(&[ty[d] + 1, ty[s] + 1 + 128]);
            let (a, b) = (pos[d], pos[s]);
            dist.push(((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt());
            let o = seq[d] as i64 - seq[s] as i64;
            off.push(if is_virtual[d] || is_virtual[s] {
                (2 * OFFSET_CLAMP + 1 + o.clamp(-VIRTUAL_OFFSET_CLAMP, VIRTUAL_OFFSET_CLAMP) + VIRTUAL_OFFSET_CLAMP)
                    as u32
            } else {
                (o.clamp(-OFFSET_CLAMP, OFFSET_CLAMP) + OFFSET_CLAMP) as u32
            });
        }
        let t = |v: Vec<u32>| {
            let l = v.len();
            Tensor::from_vec(v, l, dev)
        };
        let base = (self.pair.forward(&t(pair)?)?
            + self.kernel.forward(&Tensor::from_vec(dist, n, dev)?, &Tensor::from_vec(kid, (n, 2), dev)?)?)?;
        let dirs: Vec<f32> = vec.iter().map(|&x| x as f32).collect();
        let x = self.vec.forward(&base, &Tensor::from_vec(dirs, (n, DIRECTION_WIDTH), dev)?, train)?;
        let tables = Tensor::cat(&[&self.offsets, &self.virtual_offsets], 0)?;
        x + tables.embedding(&t(off)?)?
    }
}

/// The official Vabs-Net (`MDProteinModel` with `VabsEncoder`), weights under the official
/// state-dict keys.
#[derive(Clone, Debug)]
pub struct OfficialVabs {
    atom_feature: Embedding,
    residue_feature: Embedding,
    esm: Option<NodeEmbedHead>,
    rr: Track,
    aa: Track,
    layer_norm: Norm,
    pair_layer_norm: Norm,
    layers: Vec<BilevelLayer>,
    pocket: Option<NodeEmbedHead>,
    cfg: OfficialConfig,
}

impl OfficialVabs {
    /// Builds the model from `vb` (a checkpoint's `model` dictionary, or a fresh variable map).
    pub fn new(vb: VarBuilder, cfg: &OfficialConfig) -> Result<OfficialVabs> {
        if cfg.layers == 0 || cfg.heads == 0 || cfg.dim == 0 || !cfg.dim.is_multiple_of(cfg.heads) {
            candle_core::bail!("official vabs: need layers > 0 and a node width divisible by the heads");
        }
        if cfg.ffn_dim < cfg.dim {
            candle_core::bail!("official vabs: ffn_dim {} is below the node width {}", cfg.ffn_dim, cfg.dim);
        }
        let enc = vb.pp("molecule_encoder");
        let layer = BilevelConfig {
            dim: cfg.dim,
            heads: cfg.heads,
            atom_edge_dim: cfg.edge_dim,
            unit_edge_dim: cfg.edge_dim,
            ffn_multiplier: cfg.ffn_dim / cfg.dim,
        };
        Ok(OfficialVabs {
            atom_feature: candle_nn::embedding(ATOM_TYPES, cfg.dim, vb.pp("atom_feature"))?,
            residue_feature: candle_nn::embedding(RESIDUE_TYPES, cfg.dim, vb.pp("residue_feature"))?,
            esm: match cfg.lm_dim {
                Some(d) => Some(NodeEmbedHead::new(vb.pp("esm_feat_encoder"), d, cfg.dim)?),
                None => None,
            },
            rr: Track::new(&vb, "rr", "residue_pair_encoder", "v_positional_edge", cfg)?,
            aa: Track::new(&vb, "aa", "residue_aa_pair_encoder", "aa_v_positional_edge", cfg)?,
            layer_norm: Norm::new(enc.pp("layer_norm"), cfg.dim, 1e-5)?,
            pair_layer_norm: Norm::new(enc.pp("pair_layer_norm"), cfg.edge_dim, 1e-5)?,
            layers: (0..cfg.layers)
                .map(|i| BilevelLayer::new(enc.pp("layers").pp(i), &layer))
                .collect::<Result<_>>()?,
            pocket: if cfg.pocket_head { Some(NodeEmbedHead::new(vb.pp("pocket_cls_all"), cfg.dim, 2)?) } else { None },
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OfficialConfig {
        &self.cfg
    }

    /// The forward pass from the official tensor inputs (checked first: an error names the
    /// offending input). `train` only selects the LayerNorm path with gradients; the official
    /// dropouts (attention 0.1, activation 0.1, DropPath up to 0.1) are not applied.
    pub fn forward(&self, x: &OfficialInputs, train: bool) -> Result<OfficialOutput> {
        x.validate(self.cfg.lm_dim).map_err(|e| candle_core::Error::Msg(format!("official vabs inputs: {e}")))?;
        let dev = self.atom_feature.embeddings().device().clone();
        let a = x.num_atoms();
        let rows: Vec<u32> = (0..a as u32).filter(|&i| x.res_mask[i as usize]).collect();
        let r = rows.len();
        let u32s = |v: &[u32]| Tensor::from_vec(v.to_vec(), v.len(), &dev);
        // Nodes: atom type + residue type (+ language model of the atom's residue row).
        let mut nodes = (self.atom_feature.forward(&u32s(&x.atom_type)?)?
            + self.residue_feature.forward(&u32s(&x.residue_type)?)?)?;
        if let (Some(head), Some(f)) = (&self.esm, &x.esm_feat) {
            let d = f.len() / r;
            let lm = head.forward(&Tensor::from_vec(f.clone(), (r, d), &dev)?, train)?;
            nodes = (nodes + lm.index_select(&u32s(&x.residue_idx)?, 0)?)?;
        }
        // Geometry in the model dtype (f32), as the official forward casts it.
        let pos: Vec<[f32; 3]> = x.atom_pos.iter().map(|p| p.map(|c| c as f32)).collect();
        let res_pos: Vec<[f32; 3]> = rows.iter().map(|&i| pos[i as usize]).collect();
        let res_type: Vec<u32> = rows.iter().map(|&i| x.residue_type[i as usize]).collect();
        let res_virtual: Vec<bool> = res_type.iter().map(|&t| t == VIRTUAL_RESIDUE).collect();
        let atom_virtual: Vec<bool> = x.residue_type.iter().map(|&t| t == VIRTUAL_RESIDUE).collect();
        let res_seq: Vec<u32> = (0..r as u32).collect();
        let embed_rr_edges =
            self.rr.forward(&x.edge_index, &res_type, &res_pos, &res_seq, &res_virtual, &x.edge_vec, &dev, train)?;
        let aa_edges = self.aa.forward(
            &x.aa_edge_index,
            &x.atom_type,
            &pos,
            &x.residue_idx,
            &atom_virtual,
            &x.edge_aa_vec,
            &dev,
            train,
        )?;
        let edges = |list: &[[u32; 2]], nodes: usize| -> Result<Edges> {
            let dst: Vec<u32> = list.iter().map(|e| e[0]).collect();
            let src: Vec<u32> = list.iter().map(|e| e[1]).collect();
            Ok(Edges { src: u32s(&src)?, dst: u32s(&dst)?, nodes })
        };
        let (rr_e, aa_e) = (edges(&x.edge_index, r)?, edges(&x.aa_edge_index, a)?);
        let residue_rows = u32s(&rows)?;
        let nodes_ln = self.layer_norm.forward(&nodes, train)?;
        let rr_edges = self.pair_layer_norm.forward(&embed_rr_edges, train)?;
        let g = BilevelGraph {
            atom_edges: &aa_e,
            atom_edge_features: &aa_edges,
            anchors: &residue_rows,
            unit_edges: &rr_e,
            unit_edge_features: &rr_edges,
        };
        let mut h = nodes_ln.clone();
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let t = layer.forward_tracks(&h, &g, train)?;
            h = t.output.clone();
            layers.push(t);
        }
        let pocket_logits = match &self.pocket {
            Some(p) => Some(p.forward(&h, train)?),
            None => None,
        };
        Ok(OfficialOutput {
            embed_nodes: nodes,
            embed_rr_edges,
            aa_edges,
            nodes: nodes_ln,
            rr_edges,
            layers,
            final_nodes: h,
            residue_rows,
            pocket_logits,
        })
    }
}
