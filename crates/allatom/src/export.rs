//! Writing packages: `allatom export` (the encoder of any pretraining or task checkpoint, of
//! any family) and `allatom convert` (a fair-esm ESM-2, official ESM-AA or official Vabs-Net
//! torch checkpoint; the only place a pickle is read).

use std::collections::HashMap;
use std::path::Path;

use aa_codeswitch::{canonical_tensors, Alphabet, EsmConfig};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::families::{package_config, split_config};
use crate::package::{write_package, Model};
use crate::runs::{checkpoint_encoder, trainable_encoder};

/// Storage type from its name (`f32`, `f16`, `bf16`).
pub fn dtype_of(name: &str) -> Result<DType> {
    Ok(match name {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => bail!("--dtype {other}: expected f32, f16 or bf16"),
    })
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The family.
    pub family: &'static str,
    /// Parameter count of the encoder.
    pub parameters: usize,
}

/// Writes the encoder of a checkpoint (a run directory's best, or a checkpoint directory) as a
/// package in `out`, weights stored as `dtype`, with a model card named `name`; the package is
/// read back before returning.
pub fn export(checkpoint: &Path, out: &Path, dtype: DType, name: &str) -> Result<Exported> {
    let dir = aa_pretrain::run::checkpoint_in(checkpoint)?;
    let ck = aa_pretrain::checkpoint::load_dir(&dir, &Device::Cpu)?;
    let enc = trainable_encoder(&checkpoint_encoder(&ck)?, 0)?;
    if enc.family.name() == "esm" && dtype != DType::F32 {
        bail!("ESM packages are written in f32");
    }
    // The encoder's variables only (heads, e.g. `mlp.`, `residue_cls.`, stay behind).
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (k, v) in enc.store.all() {
        let t = ck
            .model
            .get(&k)
            .with_context(|| format!("{}: no {k} for the {} encoder", dir.display(), enc.family.name()))?;
        if t.shape() != v.shape() {
            bail!("{}: {k} is {:?}, the encoder wants {:?}", dir.display(), t.shape(), v.shape());
        }
        tensors.insert(k, t.clone());
    }
    let parameters = tensors.values().filter(|t| t.dtype().is_float()).map(|t| t.elem_count()).sum();
    let (family, part) = split_config(&enc.config)?;
    let history = ck.state["trainer"]["history"].clone();
    let meta = &ck.state["metadata"];
    let mut config = package_config(family, &part);
    config["info"] = json!({
        "source_checkpoint": dir.display().to_string(),
        "objective": meta["objective"],
        "step": ck.state["trainer"]["step"],
        "epochs": history.as_array().map_or(0, |h| h.len()),
        "valid_metrics": history.as_array().and_then(|h| h.last()).map(|r| r["valid"].clone()),
        "training": meta["config"],
        "stored_dtype": format!("{dtype:?}").to_lowercase(),
        "parameters": parameters,
    });
    let mut extra = Vec::new();
    if family.name() == "esm" {
        let vocab = part["model"]["vocab_size"].as_u64().unwrap_or(0);
        let alphabet = if vocab == 59 { Alphabet::esm_aa() } else { Alphabet::esm2() };
        extra.push((aa_codeswitch::TOKENIZER_FILE, alphabet.tokenizer_json().into_bytes()));
    }
    let readme = model_card(name, family.name(), family.summary(), &config, &history);
    write_package(out, &config, &tensors, dtype, Some(&readme), &extra)?;
    Model::from_dir(out).with_context(|| format!("reading back {}", out.display()))?;
    Ok(Exported { family: family.name(), parameters })
}

/// A model card: what the package is, how to use it, how it was trained, its validation
/// metrics per epoch.
fn model_card(name: &str, family: &str, summary: &str, config: &Value, history: &Value) -> String {
    let mut s = format!(
        "---\nlibrary_name: allatom\ntags: [{family}, all-atom]\n---\n# {name}\n\n\
         A `{family}` encoder ({summary}) exported by `allatom export`; {} parameters stored as {}.\n\n\
         Use: `allatom embed --model <this folder or hub id> …`, or `allatom::Model::from_pretrained` in Rust.\n\n\
         ## Configuration\n\n```json\n{}\n```\n\n## Validation metrics per epoch\n\n\
         | epoch | train loss | metrics |\n| --- | --- | --- |\n",
        config["info"]["parameters"],
        config["info"]["stored_dtype"].as_str().unwrap_or("f32"),
        serde_json::to_string_pretty(config).unwrap_or_default(),
    );
    for r in history.as_array().into_iter().flatten() {
        let metrics: Vec<String> = r["valid"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        s.push_str(&format!(
            "| {} | {:.4} | {} |\n",
            r["epoch"].as_u64().unwrap_or(0) + 1,
            r["train_loss"].as_f64().unwrap_or(f64::NAN),
            metrics.join(", ")
        ));
    }
    s
}

/// Attention heads of the released ESM-2 / ESM-AA sizes, by width (the checkpoint's tensors
/// do not carry it).
fn heads_for_width(width: usize) -> Option<usize> {
    match width {
        320 | 480 | 640 | 1280 => Some(20),
        2560 | 5120 => Some(40),
        _ => None,
    }
}

/// The first integer (or boolean) value named `key` anywhere in a torch checkpoint's pickle
/// (`data.pkl`, already through [`crate::torch::check`]): a fairseq `cfg` dictionary entry or
/// an attribute of a unicore `args` Namespace (pickled as a `BUILD` with a dictionary).
fn int_from_pickle(pkl: &[u8], key: &str) -> Option<i64> {
    use candle_core::pickle::{Object, Stack};
    fn find(o: &Object, key: &str) -> Option<i64> {
        match o {
            Object::Dict(kv) => kv.iter().find_map(|(k, v)| match (k, v) {
                (Object::Unicode(k), Object::Int(n)) if k == key => Some(*n as i64),
                (Object::Unicode(k), Object::Long(n)) if k == key => Some(*n),
                (Object::Unicode(k), Object::Bool(b)) if k == key => Some(*b as i64),
                _ => find(v, key),
            }),
            Object::Tuple(v) | Object::List(v) => v.iter().find_map(|o| find(o, key)),
            Object::Reduce { callable, args } | Object::Build { callable, args } => {
                find(callable, key).or_else(|| find(args, key))
            }
            Object::PersistentLoad(o) => find(o, key),
            _ => None,
        }
    }
    let mut stack = Stack::empty();
    stack.read_loop(&mut std::io::Cursor::new(pkl)).ok()?;
    find(&stack.finalize().ok()?, key)
}

/// What a conversion wrote.
#[derive(Clone, Debug)]
pub struct Converted {
    /// `ESM-2` or `ESM-AA`.
    pub kind: &'static str,
    /// The inferred configuration.
    pub config: EsmConfig,
}

/// Converts a fair-esm ESM-2 or official ESM-AA torch checkpoint (`{"cfg", "model"}`) into an
/// ESM package in `out`; `heads` when neither the pickle nor the width tells the head count.
/// Shapes are checked (the model is built once) before anything is written.
pub fn convert_esm(path: &Path, out: &Path, heads: Option<usize>) -> Result<Converted> {
    if !path.is_file() {
        bail!("{}: no such checkpoint file", path.display());
    }
    // Depth, size and format limits first: candle's reader recurses and copies by value.
    let pkl = crate::torch::data_pkl(path)?;
    let raw = candle_core::pickle::read_all_with_key(path, Some("model"))
        .with_context(|| format!("{}: not a torch checkpoint with a \"model\" state dict", path.display()))?;
    let tensors = canonical_tensors(raw);
    let get = |k: &str| {
        tensors.get(k).with_context(|| format!("{}: no tensor {k} (not an ESM-2/ESM-AA checkpoint?)", path.display()))
    };
    let (vocab, width) = get("embed_tokens.weight")?.dims2()?;
    let layers = (0..).take_while(|i| tensors.contains_key(&format!("layers.{i}.fc1.weight"))).count();
    let ffn = get("layers.0.fc1.weight")?.dim(0)?;
    let pair_bias = tensors.contains_key("gbf.means.weight");
    let from_pickle = match int_from_pickle(&pkl, "encoder_attention_heads") {
        Some(n) if n <= 0 || n > 4096 => {
            bail!("{}: the checkpoint's config says encoder_attention_heads = {n}; give --heads", path.display())
        }
        n => n.map(|n| n as usize),
    };
    if heads == Some(0) {
        bail!("--heads must be at least 1");
    }
    let Some(heads) = heads.or(from_pickle).or_else(|| heads_for_width(width)) else {
        bail!("{}: cannot tell the number of attention heads; give --heads", path.display());
    };
    let mut cfg = EsmConfig::esm2_t6_8m();
    cfg.vocab_size = vocab;
    cfg.hidden_size = width;
    cfg.num_hidden_layers = layers;
    cfg.num_attention_heads = heads;
    cfg.intermediate_size = ffn;
    cfg.pair_bias = pair_bias;
    if pair_bias {
        cfg.gaussian_kernels = get("gbf.means.weight")?.dim(1)?;
    }
    let alphabet = match vocab {
        33 => Alphabet::esm2(),
        59 => Alphabet::esm_aa(),
        n => bail!("{}: {n} tokens is neither ESM-2's (33) nor ESM-AA's (59) alphabet", path.display()),
    };
    let f32s: HashMap<String, Tensor> =
        tensors.into_iter().map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?))).collect::<Result<_>>()?;
    aa_codeswitch::Esm::load(candle_nn::VarBuilder::from_tensors(f32s.clone(), DType::F32, &Device::Cpu), &cfg)
        .with_context(|| format!("{}: does not fit the inferred config", path.display()))?;
    let kind = if pair_bias { "ESM-AA" } else { "ESM-2" };
    let readme = format!(
        "# {}\n\n{kind} converted by `allatom convert` from `{}`: {layers} layers, width {width}, {heads} heads, \
         {vocab} tokens{}.\n\nUse: `allatom embed --model <this folder> --sequence MKT... --level unit --out e.safetensors`.\n",
        out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        path.display(),
        if pair_bias { ", Gaussian pair bias" } else { "" }
    );
    let family = crate::families::family("esm")?;
    let config = package_config(family, &json!({ "model": cfg }));
    write_package(
        out,
        &config,
        &f32s,
        DType::F32,
        Some(&readme),
        &[(aa_codeswitch::TOKENIZER_FILE, alphabet.tokenizer_json().into_bytes())],
    )?;
    Ok(Converted { kind, config: cfg })
}

/// What [`convert_vabs`] wrote.
#[derive(Clone, Debug)]
pub struct ConvertedVabs {
    /// The inferred configuration.
    pub config: aa_sparse_attn::official::OfficialConfig,
    /// Tensors of the checkpoint left out (pretraining heads the encoder does not use).
    pub dropped: Vec<String>,
}

/// Whether a torch checkpoint is an official Vabs-Net one (its `model` state dict, or the file
/// itself as a state dict, has the Vabs-Net encoder's keys); the pickle passes
/// [`crate::torch::data_pkl`]'s limits first.
pub fn is_vabs_checkpoint(path: &Path) -> Result<bool> {
    if !path.is_file() {
        bail!("{}: no such checkpoint file", path.display());
    }
    crate::torch::data_pkl(path)?;
    // Names only (no tensor data read): an ESM checkpoint is not loaded twice.
    const KEY: &str = "molecule_encoder.layer_norm.weight";
    Ok([Some("model"), None].into_iter().any(|key| {
        candle_core::pickle::read_pth_tensor_info(path, false, key)
            .is_ok_and(|infos| infos.iter().any(|i| i.name == KEY))
    }))
}

/// The state dict of a unicore checkpoint (`{"args", "model", …}`) or of a plain state dict.
fn vabs_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    const KEY: &str = "molecule_encoder.layer_norm.weight";
    for key in [Some("model"), None] {
        if let Ok(t) = candle_core::pickle::read_all_with_key(path, key) {
            if t.iter().any(|(k, _)| k == KEY) {
                return Ok(t.into_iter().collect());
            }
        }
    }
    bail!("{}: not an official Vabs-Net checkpoint (no {KEY} in its model state dict)", path.display())
}

/// Converts an official Vabs-Net checkpoint (Heisenburger2020/Vabs-Net: a unicore checkpoint
/// `{"args": Namespace, "model": state_dict, …}`, or a bare state dict) into a `family: vabs`
/// package in official mode. Sizes come from the tensors; the head count and kNN sizes from
/// `args` (`encoder_attention_heads`, `knn_res`, `knn_atom2atom`; `heads` overrides, 768-wide
/// models default to the released 48 heads); `args` switching on a variant this port does not
/// implement (pre-LN, pair updates, residue-only, …) is refused. fp16 tensors are widened to
/// f32; the pretraining heads are dropped. The model is built once before anything is written.
pub fn convert_vabs(path: &Path, out: &Path, heads: Option<usize>, lm: Option<&str>) -> Result<ConvertedVabs> {
    use aa_sparse_attn::official::{OfficialConfig, OfficialVabs};
    if !path.is_file() {
        bail!("{}: no such checkpoint file", path.display());
    }
    let pkl = crate::torch::data_pkl(path)?;
    let tensors = vabs_state_dict(path)?;
    let arg = |k: &str| int_from_pickle(&pkl, k);
    for (flag, supported) in [
        ("preln", 0),
        ("use_outer", 0),
        ("use_trimul", 0),
        ("use_pairupdate", 0),
        ("use_triangleattn", 0),
        ("residue_only", 0),
        ("sequence_only", 0),
        ("concat_style", 0),
        ("v_attn", 0),
        ("use_rope", 0),
        ("use_edge_attn", 0),
        ("gb_feat", 0),
        ("use_ss", 0),
        ("ft_esm", 0),
        ("use_vec", 1),
        ("use_absolute", 1),
        ("use_relative", 1),
        ("use_nerf_encoding", 1),
        ("use_virtual_node", 1),
        ("learnable_pos", 1),
    ] {
        if let Some(v) = arg(flag) {
            if v != supported {
                bail!(
                    "{}: the checkpoint was trained with {flag} = {v}; the official-compatible mode implements the \
                     released configuration ({flag} = {supported})",
                    path.display()
                );
            }
        }
    }
    if heads == Some(0) {
        bail!("--heads must be at least 1");
    }
    let width = tensors.get("atom_feature.weight").map(|t| t.dim(1)).transpose()?;
    let heads = match (heads, arg("encoder_attention_heads")) {
        (Some(h), _) => h,
        (None, Some(h)) if h > 0 && h <= 4096 => h as usize,
        (None, Some(h)) => bail!("{}: args say encoder_attention_heads = {h}; give --heads", path.display()),
        (None, None) if width == Some(768) => 48,
        (None, None) => bail!("{}: cannot tell the number of attention heads; give --heads", path.display()),
    };
    let knn = |k: &str| -> Result<usize> {
        match arg(k) {
            None => Ok(30),
            Some(v) if v > 0 => Ok(v as usize),
            Some(v) => bail!("{}: args say {k} = {v}", path.display()),
        }
    };
    let mut config =
        OfficialConfig::from_state_dict(&tensors, heads).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    config.knn_res = knn("knn_res")?;
    config.knn_atom = knn("knn_atom2atom")?;
    let (layers, dim, edge_dim, lm_dim, pocket_head) =
        (config.layers, config.dim, config.edge_dim, config.lm_dim, config.pocket_head);
    // Keep what the encoder reads; refuse tensors of variants this port does not implement.
    const ENCODER: [&str; 14] = [
        "molecule_encoder.",
        "atom_feature.",
        "residue_feature.",
        "rr_se3_invariant_kernel.",
        "aa_se3_invariant_kernel.",
        "rr_edge_encoder.",
        "aa_edge_encoder.",
        "esm_feat_encoder.",
        "rr_positional_edge.",
        "v_positional_edge.",
        "aa_positional_edge.",
        "aa_v_positional_edge.",
        "vec_rr_embed.",
        "vec_aa_embed.",
    ];
    const HEADS: [&str; 5] = ["res_type_cls.", "res_type_cls_halfway.", "atom_pos_head.", "dihedral_cls.", "sas_cls."];
    let (mut kept, mut dropped) = (HashMap::new(), Vec::new());
    for (k, v) in tensors {
        if ENCODER.iter().any(|p| k.starts_with(p)) || (pocket_head && k.starts_with("pocket_cls_all.")) {
            kept.insert(k, v.to_dtype(DType::F32)?);
        } else if HEADS.iter().any(|p| k.starts_with(p)) || k.starts_with("pocket_cls_all.") {
            dropped.push(k);
        } else {
            bail!("{}: tensor {k} belongs to no part of the released Vabs-Net configuration", path.display());
        }
    }
    dropped.sort();
    let vb = candle_nn::VarBuilder::from_tensors(kept.clone(), DType::F32, &Device::Cpu);
    OfficialVabs::new(vb, &config).with_context(|| format!("{}: does not fit the inferred config", path.display()))?;
    let family = crate::families::family("vabs")?;
    let mut part = json!({ "official": config });
    if let Some(lm) = lm {
        part["lm"] = json!(lm);
    }
    let package = package_config(family, &part);
    let readme = format!(
        "# {}\n\nOfficial Vabs-Net (Heisenburger2020/Vabs-Net) converted by `allatom convert` from `{}`: {layers} \
         layers, width {dim}, edge width {edge_dim}, {heads} heads, kNN {} residues / {} atoms{}{}.\n\nThe \
         official-compatible mode reads amino-acid residues only (one chain per window).{}\n",
        out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        path.display(),
        config.knn_res,
        config.knn_atom,
        lm_dim.map(|d| format!(", {d}-wide language-model rows")).unwrap_or_default(),
        if pocket_head { ", binding-site head `pocket_cls_all`" } else { "" },
        match (lm_dim, lm) {
            (Some(d), None) => format!(
                " It takes {d}-wide ESM rows: set `lm` in config.json to an ESM package of that width \
                 (the released model used ESM-2 650M)."
            ),
            _ => String::new(),
        }
    );
    write_package(out, &package, &kept, DType::F32, Some(&readme), &[])?;
    Ok(ConvertedVabs { config, dropped })
}

/// What [`convert_glycanaa`] wrote.
#[derive(Clone, Debug)]
pub struct ConvertedGlycanAA {
    /// The inferred configuration.
    pub config: glycan_aa::model::GlycanAAConfig,
    /// Tensors of the checkpoint left out (the pretraining or task head, `mlp.`).
    pub dropped: Vec<String>,
}

/// The encoder's weight prefixes in the official GlycanAA names.
const GLYCANAA_ENCODER: [&str; 5] = ["embedding.", "atom_layers.", "cross_layers.", "mono_layers.", "hidden_layers."];

/// The GlycanAA state dict of a torch checkpoint: a TorchDrug engine checkpoint
/// (`{"model": task.state_dict(), "optimizer": …}`, keys `model.…` for the encoder), a task
/// state dict (`model.…`, `mlp.…`) or the encoder's own; `None` when it is none of these.
fn glycanaa_state_dict(path: &Path) -> Option<HashMap<String, Tensor>> {
    for key in [Some("model"), None] {
        if let Ok(t) = candle_core::pickle::read_all_with_key(path, key) {
            let strip = |k: &str| k.strip_prefix("model.").unwrap_or(k).to_string();
            let map: HashMap<String, Tensor> = t.into_iter().map(|(k, v)| (strip(&k), v)).collect();
            if map.contains_key("embedding.weight")
                && (map.contains_key("atom_layers.0.linear.weight")
                    || map.contains_key("hidden_layers.0.linear.weight"))
            {
                return Some(map);
            }
        }
    }
    None
}

/// Whether a torch checkpoint holds an official GlycanAA / PreGlycanAA encoder (after
/// [`crate::torch::data_pkl`]'s limits).
pub fn is_glycanaa_checkpoint(path: &Path) -> Result<bool> {
    if !path.is_file() {
        bail!("{}: no such checkpoint file", path.display());
    }
    crate::torch::data_pkl(path)?;
    const KEYS: [&str; 2] = ["atom_layers.0.linear.weight", "hidden_layers.0.linear.weight"];
    Ok([Some("model"), None].into_iter().any(|key| {
        candle_core::pickle::read_pth_tensor_info(path, false, key).is_ok_and(|infos| {
            infos.iter().any(|i| KEYS.iter().any(|k| i.name == *k || i.name.strip_prefix("model.") == Some(*k)))
        })
    }))
}

/// Converts an official GlycanAA / PreGlycanAA checkpoint (kasawa1234/GlycanAA, TorchDrug:
/// the encoder under `model.`, the masking or task head under `mlp.`, dropped) into a
/// `family: glycanaa` package in the official featurisation with `vocab` (GlycanML's glycoword
/// vocabulary: [`glycan_aa::compat::CompatVocab::official`] unless another is given). Widths,
/// layers, relations and batch norm come from the tensors; activation, concatenation and
/// readout are the official configuration's (GELU, concatenated, monosaccharides). The model
/// is built once from the tensors before anything is written.
pub fn convert_glycanaa(
    path: &Path,
    out: &Path,
    vocab: Option<glycan_aa::compat::CompatVocab>,
) -> Result<ConvertedGlycanAA> {
    use glycan_aa::model::{GlycanAA, GlycanAAConfig, Variant};
    if !path.is_file() {
        bail!("{}: no such checkpoint file", path.display());
    }
    crate::torch::data_pkl(path)?;
    let tensors = glycanaa_state_dict(path)
        .with_context(|| format!("{}: not a GlycanAA checkpoint (no embedding and layer-0 weights)", path.display()))?;
    let vocab = vocab.unwrap_or_else(glycan_aa::compat::CompatVocab::official);
    let (mut kept, mut dropped) = (HashMap::new(), Vec::new());
    for (k, v) in tensors {
        if k.ends_with(".num_batches_tracked") {
            // BatchNorm's step counter: nothing the encoder reads.
            continue;
        }
        if GLYCANAA_ENCODER.iter().any(|p| k.starts_with(p)) {
            kept.insert(k, v.to_dtype(DType::F32)?);
        } else if k.starts_with("mlp.") {
            dropped.push(k);
        } else {
            bail!("{}: tensor {k} belongs to no part of a GlycanAA encoder or its head", path.display());
        }
    }
    dropped.sort();
    let dims2 = |k: &str| -> Result<(usize, usize)> {
        let t = kept.get(k).with_context(|| format!("{}: no {k}", path.display()))?;
        t.dims2().with_context(|| format!("{}: {k} is {:?}, not a matrix", path.display(), t.shape()))
    };
    let (num_unit, input_dim) = dims2("embedding.weight")?;
    let (variant, conv) = if kept.contains_key("atom_layers.0.linear.weight") {
        (Variant::Hierarchical, "atom_layers")
    } else {
        (Variant::Flat, "hidden_layers")
    };
    let mut hidden_dims = Vec::new();
    while kept.contains_key(&format!("{conv}.{}.linear.weight", hidden_dims.len())) {
        hidden_dims.push(dims2(&format!("{conv}.{}.linear.weight", hidden_dims.len()))?.0);
    }
    let (_, cols) = dims2(&format!("{conv}.0.linear.weight"))?;
    if input_dim == 0 || !cols.is_multiple_of(input_dim) {
        bail!(
            "{}: {conv}.0.linear.weight has {cols} columns, not a multiple of the {input_dim}-wide embedding",
            path.display()
        );
    }
    let paper = GlycanAAConfig::paper();
    let config = GlycanAAConfig {
        num_unit,
        num_relation: cols / input_dim,
        input_dim,
        hidden_dims,
        batch_norm: kept.contains_key(&format!("{conv}.0.batch_norm.weight")),
        variant,
        ..paper
    };
    if (config.num_unit, config.num_relation) != (vocab.num_node_types(), vocab.num_relations()) {
        bail!(
            "{}: the checkpoint has {} node types and {} relations, the vocabulary {} and {} ({} units, {} links)",
            path.display(),
            config.num_unit,
            config.num_relation,
            vocab.num_node_types(),
            vocab.num_relations(),
            vocab.units.len(),
            vocab.links.len()
        );
    }
    let vb = candle_nn::VarBuilder::from_tensors(kept.clone(), DType::F32, &Device::Cpu);
    GlycanAA::new(vb, &config).with_context(|| format!("{}: does not fit the inferred config", path.display()))?;
    let family = crate::families::family("glycanaa")?;
    let part = json!({ "model": config, "featurisation": "official", "vocab": vocab });
    let package = package_config(family, &part);
    let readme = format!(
        "# {}\n\nOfficial GlycanAA (kasawa1234/GlycanAA, Apache-2.0) converted by `allatom convert` from `{}`: \
         {} blocks of widths {:?}, {} node types, {} relations, official featurisation with GlycanML's glycoword \
         vocabulary (kasawa1234/GlycanAA `module/custom_data/glycoword_vocab.pkl`, Apache License 2.0).{}\n",
        out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        path.display(),
        config.hidden_dims.len(),
        config.hidden_dims,
        config.num_unit,
        config.num_relation,
        if dropped.is_empty() { String::new() } else { format!(" Left out: {} head tensors.", dropped.len()) }
    );
    write_package(out, &package, &kept, DType::F32, Some(&readme), &[])?;
    Model::from_dir(out).with_context(|| format!("reading back {}", out.display()))?;
    Ok(ConvertedGlycanAA { config, dropped })
}
