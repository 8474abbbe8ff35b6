//! The protein–glycan interaction run (`objective: "pair_task"`): any glycan encoder is trained
//! on GlycanML's interaction regression against proteins embedded once by a frozen protein
//! model (a package: an exported ESM-AA / ESM-2 run, a converted ESM checkpoint, or a hub id).
//! The protein rows are the model's graph readout of each sequence (its first
//! `max_residues` residues), cached under `<task dir>/cache/` by a hash of the model's files and
//! the sequences, so the runs of a comparison embed the proteins once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aa_encoder::tasks::{PairItem, PairTask};
use aa_encoder::{check_pairing, ReadoutConfig, Window};
use aa_graph::UnitKind;
use aa_pretrain::run::{fit, load_best, resolve, write_summary, RunSpec};
use aa_pretrain::trainer::{Selection, TrainConfig};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use glycan_aa::tasks::{load_interaction, Interaction, Split};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::absolute;
use super::tasks::{build, encoder_config, fill_vocab, glycan_traits, one, readout_of, TaskSource};
use crate::embed::{embed, sequence_inputs, Level};
use crate::package::{Model, CONFIG_FILE, WEIGHTS_FILE};
use aa_pretrain::hub::HubOptions;

fn esm_limit() -> usize {
    1022
}

/// A protein–glycan interaction run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairTaskRun {
    /// The task: `{ "dir": …, "name": "interaction" }` (built by `cargo xtask data`).
    pub task: TaskSource,
    /// The frozen protein model: a package directory (relative to the config file) or a hub id.
    pub protein_model: String,
    /// Residues of each sequence the protein model reads (its first ones; ESM-1b's 1,022).
    #[serde(default = "esm_limit")]
    pub max_residues: usize,
    /// The glycan encoder configuration when not starting from `pretrained`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Value>,
    /// A run, checkpoint or package directory whose glycan encoder to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// Glycans whose frequent links make an official-featurisation vocabulary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_glycans: Option<PathBuf>,
    /// Learning-rate multiplier of the glycan encoder (the head uses 1).
    #[serde(default = "one")]
    pub lr_ratio: f64,
    /// The glycan readout (as a graph task's); default: the encoder's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout: Option<ReadoutConfig>,
    /// Training settings.
    pub train: TrainConfig,
}

impl PairTaskRun {
    /// The glycan encoder's configuration source, for pairing checks.
    pub(super) fn encoder_source(&self) -> (&Option<Value>, &Option<PathBuf>, &Option<PathBuf>) {
        (&self.encoder, &self.pretrained, &self.vocab_glycans)
    }
}

/// The protein model's package directory (a local directory, relative to the config, or the hub
/// cache's copy) and whether it came from the hub.
fn protein_package_dir(config_path: &Path, name: &str) -> Result<(PathBuf, bool)> {
    let local = resolve(config_path, Path::new(name));
    if local.is_dir() {
        return Ok((local, false));
    }
    let dir = aa_pretrain::hub::resolve(name, &[CONFIG_FILE, WEIGHTS_FILE], &HubOptions::from_env())
        .with_context(|| format!("protein_model {name:?}: not a directory, and not found on the hub"))?;
    Ok((dir, true))
}

/// Loads the protein model, refusing one that cannot read bare sequences.
fn protein_model(name: &str, dir: &Path, hub: bool) -> Result<Model> {
    let model = if hub { Model::from_pretrained(name, &HubOptions::from_env())? } else { Model::from_dir(dir)? };
    if let Some(why) = model.encoder.requirements().refuses(UnitKind::Residue) {
        bail!("protein_model {name}: the {} encoder {why}", model.encoder.family());
    }
    if model.encoder.requirements().coordinates {
        bail!("protein_model {name}: the {} encoder needs coordinates; sequences have none", model.encoder.family());
    }
    Ok(model)
}

/// Protein rows `[proteins, width]` (zeros, and `false` in the mask, for a sequence the model
/// cannot read), from the cache or computed and cached.
fn protein_rows(
    config_path: &Path,
    cfg: &PairTaskRun,
    task_dir: &Path,
    t: &Interaction,
) -> Result<(Tensor, Vec<bool>)> {
    let (dir, hub) = protein_package_dir(config_path, &cfg.protein_model)?;
    let mut h = Sha256::new();
    for f in [CONFIG_FILE, WEIGHTS_FILE] {
        let p = dir.join(f);
        h.update(std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?);
    }
    h.update(cfg.max_residues.to_le_bytes());
    for p in &t.proteins {
        h.update(p.sequence.as_bytes());
        h.update(b"\n");
    }
    let key = format!("{:x}", h.finalize());
    let cache = task_dir.join("cache").join(format!("interaction_proteins_{}.safetensors", &key[..16]));
    if let Ok(mut m) = candle_core::safetensors::load(&cache, &Device::Cpu) {
        if let (Some(rows), Some(ok)) = (m.remove("rows"), m.remove("readable")) {
            if rows.dim(0)? == t.proteins.len() {
                let ok = ok.to_vec1::<u8>()?.into_iter().map(|b| b == 1).collect();
                return Ok((rows, ok));
            }
        }
    }
    // Not cached: load the model (only now — a cache hit needs its files' hash, not the model).
    let model = protein_model(&cfg.protein_model, &dir, hub)?;
    let records: Vec<(String, String)> = t
        .proteins
        .iter()
        .enumerate()
        .map(|(i, p)| (i.to_string(), p.sequence.chars().take(cfg.max_residues).collect()))
        .collect();
    let inputs = sequence_inputs(&records);
    let readable: Vec<bool> = inputs.iter().map(|i| i.window.is_ok()).collect();
    let ok_inputs: Vec<_> = inputs.into_iter().filter(|i| i.window.is_ok()).collect();
    let started = std::time::Instant::now();
    let e = embed(&model, &ok_inputs, Level::Graph, 8)?;
    if e.embedded != ok_inputs.len() {
        bail!("protein_model {}: {} of {} sequences failed to embed", cfg.protein_model, e.failed, ok_inputs.len());
    }
    let got = e.matrix()?;
    let width = got.dim(1)?;
    let mut rows = vec![0f32; t.proteins.len() * width];
    let flat = got.flatten_all()?.to_vec1::<f32>()?;
    for (k, i) in readable.iter().enumerate().filter(|(_, r)| **r).map(|(i, _)| i).enumerate() {
        rows[i * width..(i + 1) * width].copy_from_slice(&flat[k * width..(k + 1) * width]);
    }
    let rows = Tensor::from_vec(rows, (t.proteins.len(), width), &Device::Cpu)?;
    eprintln!(
        "embedded {} protein sequences with {} ({} s; cached in {})",
        ok_inputs.len(),
        cfg.protein_model,
        started.elapsed().as_secs(),
        cache.display()
    );
    let mask = Tensor::from_vec(readable.iter().map(|&r| r as u8).collect::<Vec<u8>>(), readable.len(), &Device::Cpu)?;
    std::fs::create_dir_all(cache.parent().unwrap_or(task_dir))?;
    let tmp = cache.with_extension("tmp");
    candle_core::safetensors::save(
        &HashMap::from([("rows".to_string(), rows.clone()), ("readable".into(), mask)]),
        &tmp,
    )?;
    std::fs::rename(&tmp, &cache)?;
    Ok((rows, readable))
}

/// Train, valid and test items (a glycan with its pairs of one split), pairs dropped (glycan not
/// built or protein not readable), glycans not built.
fn pair_items(
    t: &Interaction,
    readable: &[bool],
    graphs: &crate::inputs::GlycanGraphs,
) -> ([Vec<PairItem>; 3], usize, usize) {
    let windows: Vec<Option<Window>> =
        t.glycans.par_iter().map(|g| graphs.graph_as_glycanml(g).ok().map(|g| Window::whole(Arc::new(g)))).collect();
    let mut per: [Vec<Vec<(u32, f32)>>; 3] = std::array::from_fn(|_| vec![Vec::new(); t.glycans.len()]);
    let mut dropped = 0;
    for &(p, g, v) in &t.pairs {
        if windows[g as usize].is_none() || !readable[p as usize] {
            dropped += 1;
            continue;
        }
        let k = match t.proteins[p as usize].split {
            Split::Train => 0,
            Split::Valid => 1,
            Split::Test => 2,
        };
        per[k][g as usize].push((p, v));
    }
    let items = per.map(|lists| {
        lists
            .into_iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .filter_map(|(g, pairs)| windows[g].clone().map(|window| PairItem { window, pairs }))
            .collect()
    });
    (items, dropped, windows.iter().filter(|w| w.is_none()).count())
}

/// The interaction task run.
pub(super) fn pair_task(config_path: &Path, cfg: &PairTaskRun, run_dir: &Path) -> Result<Value> {
    if cfg.task.name != "interaction" {
        bail!("pair_task: task {:?} (the one pair task is \"interaction\")", cfg.task.name);
    }
    if cfg.max_residues == 0 {
        bail!("max_residues must be at least 1");
    }
    let (mut encoder, ck) = encoder_config(config_path, &cfg.encoder, &cfg.pretrained)?;
    fill_vocab(&mut encoder, config_path, &cfg.vocab_glycans)?;
    let enc = build(&encoder, cfg.train.seed, ck.as_ref())?;
    check_pairing(enc.encoder.as_ref(), &glycan_traits("interaction")).map_err(anyhow::Error::msg)?;
    let graphs = enc.family.glycan_graphs(&crate::families::split_config(&enc.config)?.1)?;
    let task_dir = resolve(config_path, &cfg.task.dir);
    let t = load_interaction(&task_dir)?;
    let (partners, readable) = protein_rows(config_path, cfg, &task_dir, &t)?;
    let ([train, valid, test], dropped, unbuilt) = pair_items(&t, &readable, &graphs);
    let pairs = |items: &[PairItem]| items.iter().map(|i| i.pairs.len()).sum::<usize>();
    if pairs(&train) < 2 || pairs(&valid) < 2 || pairs(&test) < 2 {
        bail!("interaction: too few pairs left to train and evaluate ({dropped} dropped)");
    }
    let values: Vec<f64> = train.iter().flat_map(|i| i.pairs.iter().map(|&(_, v)| f64::from(v))).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
    eprintln!(
        "interaction on {}: {} / {} / {} pairs over {} / {} / {} glycans (train / valid / test); proteins {} wide; \
         {dropped} pairs dropped ({unbuilt} glycans not built for this encoder, {} proteins unreadable)",
        enc.family.name(),
        pairs(&train),
        pairs(&valid),
        pairs(&test),
        train.len(),
        valid.len(),
        test.len(),
        partners.dim(1)?,
        readable.iter().filter(|r| !**r).count(),
    );
    let train_windows: Vec<&Window> = train.iter().map(|i| &i.window).collect();
    let readout = readout_of(&enc, &cfg.readout, Some(&train_windows))?;
    let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
    let objective = PairTask::new(enc.encoder, readout, vb, partners, (mean, sd))?;
    let metadata = json!({
        "objective": "pair_task", "config": cfg, "encoder": enc.config, "task": "interaction",
        "task_dir": absolute(&task_dir), "scale": [mean, sd],
    });
    let spec = RunSpec {
        run_dir,
        train: &cfg.train,
        vars: enc.store.all(),
        head_prefix: Some("mlp."),
        encoder_lr_scale: cfg.lr_ratio,
        selection: Selection { metric: "spearman".into(), higher_is_better: true },
        metadata,
    };
    let started = std::time::Instant::now();
    let report = fit(spec, &objective, &train, &valid)?;
    load_best(&enc.store.all(), &report)?;
    let test_metrics = aa_pretrain::trainer::Objective::evaluate(&objective, &test)?;
    let extra = json!({
        "task": "interaction", "family": enc.family.name(), "seed": cfg.train.seed, "pretrained": cfg.pretrained,
        "encoder": enc.config, "protein_model": cfg.protein_model, "test": test_metrics,
        "sizes": { "train_pairs": pairs(&train), "valid_pairs": pairs(&valid), "test_pairs": pairs(&test),
                   "dropped_pairs": dropped, "glycans_not_built": unbuilt },
    });
    let summary = write_summary(run_dir, &report, extra, started.elapsed().as_secs_f64(), "glycans")?;
    eprintln!("best valid spearman: {:?}; test: {:?}", report.state.best, summary["test"]);
    Ok(summary)
}
