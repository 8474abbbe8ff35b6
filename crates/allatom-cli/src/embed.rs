//! `allatom export` (a training checkpoint → an encoder package) and `allatom embed` (glycans →
//! graph-, unit- or atom-level embeddings with an encoder package).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use glycan_aa::compat::CompatGraph;
use glycan_aa::encoder::{write_package, GlycanEncoder, PackageConfig, FAMILY};
use rayon::prelude::*;
use serde_json::json;

use crate::finetune::checkpoint_in;

/// `allatom export`: the encoder of a pretraining or fine-tuning checkpoint as a package.
pub fn export(a: crate::ExportArgs) -> Result<ExitCode> {
    let device = Device::Cpu;
    let dir = checkpoint_in(&a.checkpoint)?;
    let ck = aa_pretrain::checkpoint::load_dir(&dir, &device)?;
    if ck.state["metadata"]["task"] == "ESM-AA" {
        return crate::esm::export(&a, ck);
    }
    let meta = &ck.state["metadata"];
    let model = serde_json::from_value(meta["config"]["model"].clone())
        .with_context(|| format!("{}: no model configuration in the checkpoint's metadata", dir.display()))?;
    let vocab = serde_json::from_value(meta["vocab"].clone())
        .with_context(|| format!("{}: no vocabulary in the checkpoint's metadata", dir.display()))?;
    let dtype = match a.dtype.as_str() {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => bail!("--dtype {other}: expected f32, f16 or bf16"),
    };
    // The encoder only: heads live under `mlp.`.
    let tensors: HashMap<String, Tensor> = ck.model.into_iter().filter(|(k, _)| !k.starts_with("mlp.")).collect();
    let params: usize = tensors.values().map(|t| t.elem_count()).sum();
    let history = ck.state["trainer"]["history"].clone();
    let last_valid = history.as_array().and_then(|h| h.last()).map(|r| r["valid"].clone()).unwrap_or(json!(null));
    let info = json!({
        "source_checkpoint": dir.display().to_string(),
        "step": ck.state["trainer"]["step"],
        "epochs": history.as_array().map_or(0, |h| h.len()),
        "valid_metrics": last_valid,
        "training": meta["config"],
        "stored_dtype": a.dtype,
        "parameters": params,
    });
    let config = PackageConfig { family: FAMILY.into(), model, vocab, info };
    let name = a.name.clone().unwrap_or_else(|| {
        a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "glycanaa".into())
    });
    let readme = model_card(&name, &config, &history);
    write_package(&a.out, &config, &tensors, dtype, Some(&readme))?;
    // Read it back: the package must load.
    GlycanEncoder::from_dir(&a.out)?;
    eprintln!("{} ({params} parameters, {}) written to {}", name, a.dtype, a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// A model card: what the package is, how it was trained, its validation metrics per epoch.
fn model_card(name: &str, c: &PackageConfig, history: &serde_json::Value) -> String {
    let mut s = format!(
        "---\nlibrary_name: allatom\ntags: [glycan, glycanaa, all-atom]\n---\n# {name}\n\n\
         A GlycanAA encoder (hierarchical relational message passing over monosaccharide and atom \
         nodes; Xu et al., arXiv 2506.01376) exported by `allatom export`. Widths {:?}, {} node \
         types, {} relations; stored as {}; {} parameters.\n\n\
         Use: `allatom embed --model <this folder or hub id> --glycan \"Gal(b1-4)GlcNAc\" --out e.npy`, or \
         `glycan_aa::encoder::GlycanEncoder::from_dir` in Rust.\n\n## Training\n\n```json\n{}\n```\n\n\
         ## Validation metrics per epoch\n\n| epoch | train loss | metrics |\n| --- | --- | --- |\n",
        c.model.hidden_dims,
        c.model.num_unit,
        c.model.num_relation,
        c.info["stored_dtype"].as_str().unwrap_or("f32"),
        c.info["parameters"],
        serde_json::to_string_pretty(&c.info["training"]).unwrap_or_default(),
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

/// Which rows `embed` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    /// One row per glycan (mean ‖ max over its monosaccharides), `.npy`.
    Graph,
    /// One row per monosaccharide, `.safetensors` with index arrays.
    Unit,
    /// One row per atom node, `.safetensors` with index arrays.
    Atom,
}

/// Name of the encoder built into the binary (`models/preglycanaa-small`).
pub const DEFAULT_MODEL: &str = "preglycanaa-small";

/// Loads the encoder `--model` names: none or `preglycanaa-small` for the built-in default, a
/// package directory, or a hub repository id (`owner/name[@revision]`).
pub fn load_model(model: Option<&str>) -> Result<GlycanEncoder> {
    match model {
        None | Some(DEFAULT_MODEL) => Ok(GlycanEncoder::from_bytes(
            include_bytes!("../../../models/preglycanaa-small/config.json"),
            include_bytes!("../../../models/preglycanaa-small/model.safetensors"),
            "the built-in preglycanaa-small",
        )?),
        Some(name) => Ok(GlycanEncoder::from_pretrained(name, &aa_pretrain::hub::HubOptions::from_env())?),
    }
}

/// One thing to embed: a glycan string, with where it came from.
struct Input {
    /// IUPAC-condensed glycan (empty when `error` is set).
    text: String,
    /// Extra metadata fields (structure file, attachment, residue labels).
    extra: serde_json::Map<String, serde_json::Value>,
    /// Why there is nothing to embed (an unreadable structure file).
    error: Option<String>,
}

impl Input {
    fn glycan(text: String) -> Input {
        Input { text, extra: Default::default(), error: None }
    }
}

/// The glycan trees of every structure file under `path`, with their file, attachment and
/// residue labels (chain, residue name, number) in IUPAC order.
fn structure_inputs(path: &Path) -> Result<Vec<Input>> {
    let files = crate::structure_files(path)?;
    let opts = protein_aa::StructureOptions::default();
    let per_file: Vec<Vec<Input>> = files
        .par_iter()
        .map(|f| match protein_aa::read_structure_file(f, &opts) {
            Err(e) => vec![Input {
                text: String::new(),
                extra: json!({"structure": f}).as_object().cloned().unwrap_or_default(),
                error: Some(e.to_string()),
            }],
            Ok(s) => s
                .glycans
                .iter()
                .map(|g| {
                    let residues: Vec<String> = g
                        .iupac_order
                        .iter()
                        .map(|&u| {
                            let unit = &s.graph.units[u as usize];
                            match &unit.label {
                                Some(l) => format!("{} {} {}{}", l.chain, unit.name, l.number, l.insertion),
                                None => unit.name.clone(),
                            }
                        })
                        .collect();
                    let extra = json!({"structure": f, "attached_to": g.attached_to, "residues": residues});
                    Input { text: g.iupac.clone(), extra: extra.as_object().cloned().unwrap_or_default(), error: None }
                })
                .collect(),
        })
        .collect();
    Ok(per_file.into_iter().flatten().collect())
}

/// `allatom embed`.
pub fn embed(a: crate::EmbedArgs) -> Result<ExitCode> {
    if let Some(m) = a.model.clone() {
        let p = Path::new(&m);
        if p.is_dir() && !p.join(glycan_aa::encoder::CONFIG_FILE).exists() {
            bail!("{m}: not a model package (no config.json); export one with `allatom export` or `allatom convert`");
        }
        if m != DEFAULT_MODEL && crate::esm::is_esm_model(&m)? {
            return crate::esm::embed(a, &m);
        }
    }
    if a.sequence.is_some() || a.fasta.is_some() {
        bail!("--sequence and --fasta need a protein model (--model with an ESM-2/ESM-AA folder or hub id)");
    }
    let inputs: Vec<Input> = match (&a.glycan, &a.glycans, &a.structure) {
        (Some(g), None, None) => vec![Input::glycan(g.clone())],
        (None, Some(p), None) => {
            crate::read_glycan_file(p, a.column.as_deref())?.into_iter().map(Input::glycan).collect()
        }
        (None, None, Some(p)) => structure_inputs(p)?,
        _ => bail!("give one of --glycan STRING, --glycans FILE, --structure FILE|DIR"),
    };
    let encoder = load_model(a.model.as_deref())?;
    let started = std::time::Instant::now();
    let featurised: Vec<Result<CompatGraph, String>> = inputs
        .par_iter()
        .map(|inp| match &inp.error {
            Some(e) => Err(e.clone()),
            None => encoder.featurize(&inp.text).map_err(|e| e.to_string()),
        })
        .collect();
    if a.glycan.is_some() {
        if let Err(e) = &featurised[0] {
            bail!("glycan {:?}: {e}", inputs[0].text);
        }
    }
    let ok: Vec<(usize, &CompatGraph)> =
        featurised.iter().enumerate().filter_map(|(i, f)| f.as_ref().ok().map(|g| (i, g))).collect();
    let bar = indicatif::ProgressBar::new(ok.len() as u64);
    if inputs.len() < 1000 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut rows: Vec<Tensor> = Vec::new();
    let (mut glycan_idx, mut unit_idx, mut atom_idx, mut element) = (vec![], vec![], vec![], vec![]);
    let mut spans: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut next_row = 0usize;
    let units = encoder.config.vocab.units.len() as u32;
    // Batches run in parallel, one per thread, a group at a time (bounded memory); the rows are
    // assembled in input order.
    let batch_size = a.batch_size.max(1);
    let group = batch_size * rayon::current_num_threads().max(1);
    for part in ok.chunks(group) {
        let outs: Vec<candle_core::Result<_>> = part
            .par_chunks(batch_size)
            .map(|chunk| encoder.embed(&chunk.iter().map(|(_, g)| *g).collect::<Vec<_>>()))
            .collect();
        for (chunk, out) in part.chunks(batch_size).zip(outs) {
            let out = out?;
            match a.level {
                Level::Graph => {
                    rows.push(out.graph);
                    for (k, (i, _)) in chunk.iter().enumerate() {
                        spans.insert(*i, (next_row + k, next_row + k + 1));
                    }
                    next_row += chunk.len();
                }
                Level::Unit | Level::Atom => {
                    let mut take = Vec::new();
                    for (k, (i, g)) in chunk.iter().enumerate() {
                        let (lo, nu) = (out.offsets[k], out.num_units[k]);
                        let range = if a.level == Level::Unit { lo..lo + nu } else { lo + nu..out.offsets[k + 1] };
                        spans.insert(*i, (next_row, next_row + range.len()));
                        next_row += range.len();
                        for r in range {
                            take.push(r as u32);
                            glycan_idx.push(*i as u32);
                            let local = r - lo;
                            if a.level == Level::Unit {
                                unit_idx.push(local as u32);
                            } else {
                                let atom = local - nu;
                                atom_idx.push(atom as u32);
                                // The residue whose atom block holds this node (official `cumsum`,
                                // node indices).
                                let owner = g.cumsum.iter().rposition(|&c| c as usize <= local).unwrap_or(0);
                                unit_idx.push(owner.min(nu.saturating_sub(1)) as u32);
                                element.push(g.node_type[local] - units);
                            }
                        }
                    }
                    let len = take.len();
                    rows.push(out.nodes.index_select(&Tensor::from_vec(take, len, &Device::Cpu)?, 0)?);
                }
            }
            bar.inc(chunk.len() as u64);
        }
    }
    bar.finish_and_clear();
    let width = match a.level {
        Level::Graph => encoder.config.model.graph_dim(),
        _ => encoder.config.model.node_dim(),
    };
    let matrix =
        if rows.is_empty() { Tensor::zeros((0, width), DType::F32, &Device::Cpu)? } else { Tensor::cat(&rows, 0)? };
    let seconds = started.elapsed().as_secs_f64();
    // Metadata: one line per input, in input order.
    let mut jsonl = String::new();
    for (i, (input, f)) in inputs.iter().zip(&featurised).enumerate() {
        let mut rec = match (f, spans.get(&i)) {
            (Ok(g), Some(&(lo, hi))) => {
                let names: Vec<&str> = g.node_type[..g.num_units]
                    .iter()
                    .map(|&t| encoder.config.vocab.units.get(t as usize).map_or("?", String::as_str))
                    .collect();
                json!({"index": i, "input": input.text, "rows": [lo, hi], "units": names, "atoms": g.node_type.len() - g.num_units})
            }
            (Err(e), _) => json!({"index": i, "input": input.text, "error": e}),
            (Ok(_), None) => json!({"index": i, "input": input.text, "error": "not embedded"}),
        };
        if let Some(obj) = rec.as_object_mut() {
            obj.extend(input.extra.clone());
        }
        jsonl.push_str(&rec.to_string());
        jsonl.push('\n');
    }
    let file = match a.level {
        Level::Graph => EmbeddingFile::Npy(matrix.clone()),
        _ => {
            let mut t: HashMap<String, Tensor> = HashMap::from([("embeddings".to_string(), matrix.clone())]);
            t.insert("glycan_index".into(), u32_tensor(glycan_idx)?);
            t.insert("unit_index".into(), u32_tensor(unit_idx)?);
            if a.level == Level::Atom {
                t.insert("atom_index".into(), u32_tensor(atom_idx)?);
                t.insert("atomic_number".into(), u32_tensor(element)?);
            }
            EmbeddingFile::Tensors(t)
        }
    };
    let meta_path = write_embedding_outputs(&a.out, file, &jsonl)?;
    let failed = featurised.iter().filter(|f| f.is_err()).count();
    eprintln!(
        "{} of {} glycans embedded ({} rows × {width}) in {seconds:.2} s → {} and {}",
        ok.len(),
        inputs.len(),
        matrix.dim(0)?,
        a.out.display(),
        meta_path.display()
    );
    if failed > 0 {
        eprintln!("{failed} inputs failed (see the \"error\" lines in {})", meta_path.display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `emb.npy` → `emb.jsonl`.
pub fn metadata_path(out: &Path) -> PathBuf {
    out.with_extension("jsonl")
}

/// What `embed` writes: one row per item (`.npy`) or named tensors (`.safetensors`).
pub(crate) enum EmbeddingFile {
    /// A 2-D f32 matrix, written as `.npy`.
    Npy(Tensor),
    /// Embeddings and index arrays, written as `.safetensors`.
    Tensors(HashMap<String, Tensor>),
}

/// An index array as a u32 tensor.
pub(crate) fn u32_tensor(v: Vec<u32>) -> Result<Tensor> {
    let n = v.len();
    Ok(Tensor::from_vec(v, n, &Device::Cpu)?)
}

/// Writes the embedding file and its `.jsonl` metadata, each atomically (complete or absent);
/// returns the metadata path.
pub(crate) fn write_embedding_outputs(out: &Path, file: EmbeddingFile, jsonl: &str) -> Result<PathBuf> {
    let bytes = match file {
        EmbeddingFile::Npy(m) => npy_f32(&m)?,
        EmbeddingFile::Tensors(t) => {
            // candle serialises safetensors only to a file: write a temporary one, read it back.
            let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
            candle_core::safetensors::save(&t, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
            let bytes = std::fs::read(&tmp);
            let _ = std::fs::remove_file(&tmp);
            bytes?
        }
    };
    let meta_path = metadata_path(out);
    aa_pretrain::checkpoint::write_atomic(out, &bytes)?;
    aa_pretrain::checkpoint::write_atomic(&meta_path, jsonl.as_bytes())?;
    Ok(meta_path)
}

/// A 2-D f32 tensor as a NumPy `.npy` file (format 1.0, little-endian, C order).
fn npy_f32(t: &Tensor) -> Result<Vec<u8>> {
    let (n, d) = t.dims2()?;
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.push_str(&" ".repeat(pad % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * n * d);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in t.flatten_all()?.to_vec1::<f32>()? {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}
