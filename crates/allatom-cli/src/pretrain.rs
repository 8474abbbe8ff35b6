//! `allatom pretrain`: PreGlycanAA on a glycan file, driven by a JSON run configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aa_pretrain::init::SeededVarMap;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::{Objective, RunDir, Selection, TrainConfig, Trainer};
use aa_pretrain::ParamGroup;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use glycan_aa::compat::{featurize, CompatVocab};
use glycan_aa::model::GlycanAAConfig;
use glycan_aa::pretrain::{MaskingConfig, PreGlycanAA};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Where the glycans come from and how they are split.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Glycan file (CSV or one per line); relative paths are relative to the config file.
    pub glycans: PathBuf,
    /// CSV column (default: "IUPAC Condensed" or "glycan").
    #[serde(default)]
    pub column: Option<String>,
    /// Fraction held out for validation (random, by the training seed).
    #[serde(default = "default_valid")]
    pub valid_fraction: f64,
    /// Use only the first this many glycans (the vocabulary still comes from the whole file).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Links in the vocabulary: the most frequent ones in the file (84 in the official release).
    #[serde(default = "default_links")]
    pub vocab_links: usize,
}

fn default_valid() -> f64 {
    0.05
}

fn default_links() -> usize {
    84
}

/// A pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Input glycans.
    pub data: DataConfig,
    /// The encoder (`num_unit`/`num_relation` 0: sized from the vocabulary).
    pub model: GlycanAAConfig,
    /// Masking rates.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// Training settings.
    pub train: TrainConfig,
}

/// Variables split into trainable parameters and batch-norm running statistics (saved, not
/// optimised).
pub(crate) type Named = Vec<(String, candle_core::Var)>;

/// Splits variables into parameters and running-statistics buffers.
pub(crate) fn split_buffers(vars: Named) -> (Named, Named) {
    vars.into_iter().partition(|(k, _)| !k.contains("running_"))
}

/// A path from a config file, relative to the file.
pub(crate) fn resolve(config_path: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

pub fn run(a: crate::PretrainArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.config).with_context(|| format!("reading {}", a.config.display()))?;
    let objective = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("objective").cloned());
    if let Some(o) = objective {
        return match o.as_str() {
            Some("vabs_smpc") => crate::vabs::pretrain(a, &text),
            _ => crate::esm::pretrain(a, &text),
        };
    }
    let mut cfg: PretrainConfig =
        serde_json::from_str(&text).with_context(|| format!("{}: not a pretraining config", a.config.display()))?;
    if let Some(m) = a.max_steps {
        cfg.train.max_steps = Some(m);
    }
    if !(0.0..1.0).contains(&cfg.data.valid_fraction) {
        bail!("{}: data.valid_fraction must be in [0, 1)", a.config.display());
    }
    let path = resolve(&a.config, &cfg.data.glycans);
    let mut glycans = crate::read_glycan_file(&path, cfg.data.column.as_deref())?;
    // The vocabulary comes from the whole file, so `limit` does not change the model's shape.
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &glycans, cfg.data.vocab_links);
    if let Some(n) = cfg.data.limit {
        glycans.truncate(n);
    }
    // 0 in the config: sized from the vocabulary.
    cfg.model.sized_for(&vocab).with_context(|| a.config.display().to_string())?;
    let started = std::time::Instant::now();
    let featurised: Vec<_> = glycans.par_iter().map(|g| featurize(g, &vocab)).collect();
    let failed = featurised.iter().filter(|r| r.is_err()).count();
    let mut items: Vec<_> = featurised.into_iter().filter_map(|r| r.ok()).collect();
    eprintln!(
        "{} glycans featurised in {:.1} s ({failed} outside the official vocabulary skipped)",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    let mut split = Rng::new(cfg.train.seed ^ 0x5EED_5EED);
    split.shuffle(&mut items);
    let n_valid = (items.len() as f64 * cfg.data.valid_fraction).round() as usize;
    let valid = items.split_off(items.len() - n_valid);
    let train = items;

    let device = Device::Cpu;
    // Initial weights from the training seed (candle's CPU RNG cannot be seeded).
    let store = SeededVarMap::new(cfg.train.seed);
    let model =
        PreGlycanAA::new(store.var_builder(DType::F32, &device), &cfg.model, vocab.clone(), cfg.masking.clone())?;
    let metadata = serde_json::json!({ "config": cfg, "vocab": vocab, "task": "PreGlycanAA" });
    let counts = serde_json::json!({
        "train_glycans": train.len(),
        "valid_glycans": valid.len(),
        "skipped_glycans": failed,
    });
    fit_pretraining(&a, &cfg.train, &store, &model, &train, &valid, metadata, counts, "glycans")
}

/// The pretraining loop every objective shares: every variable of `store` in one group (batch
/// norm running statistics saved, not optimised), the checkpoint of lowest validation loss
/// kept, `metadata` in every checkpoint, and the run's `summary.json` with `counts`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_pretraining<O: Objective>(
    a: &crate::PretrainArgs,
    train_cfg: &TrainConfig,
    store: &SeededVarMap,
    objective: &O,
    train: &[O::Item],
    valid: &[O::Item],
    metadata: serde_json::Value,
    counts: serde_json::Value,
    items: &str,
) -> Result<ExitCode> {
    let (params, buffers) = split_buffers(store.all());
    let group = ParamGroup { vars: params, lr_scale: 1.0, weight_decay: None };
    let selection = Selection { metric: "loss".into(), higher_is_better: false };
    let mut trainer =
        Trainer::new(train_cfg.clone(), vec![group], buffers, selection, RunDir { path: a.run_dir.clone() })?;
    trainer.progress = true;
    trainer.metadata = metadata;
    let t = std::time::Instant::now();
    let report = trainer.fit(objective, train, valid)?;
    finish_run(&a.run_dir, &report, counts, t.elapsed().as_secs_f64(), items)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a finished (or paused) pretraining run's `summary.json` — `counts` (what was trained
/// on) plus the trainer's history — and prints the last epoch.
pub(crate) fn finish_run(
    run_dir: &Path,
    report: &aa_pretrain::trainer::TrainReport,
    counts: serde_json::Value,
    seconds: f64,
    items: &str,
) -> Result<()> {
    let mut summary = serde_json::json!({
        "epochs_done": report.state.history.len(),
        "steps": report.state.step,
        "seconds_this_call": seconds,
        "history": report.state.history,
        "best": report.state.best,
        "best_checkpoint": report.best_checkpoint,
    });
    if let (Some(s), Some(c)) = (summary.as_object_mut(), counts.as_object()) {
        s.extend(c.clone());
    }
    aa_pretrain::checkpoint::write_atomic(
        &run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if let Some(last) = report.state.history.last() {
        eprintln!(
            "epoch {}: train loss {:.4}, valid {:?}, {:.0} {items}/s",
            last.epoch, last.train_loss, last.valid, last.items_per_second
        );
    }
    eprintln!("{} steps; run directory {}", report.state.step, run_dir.display());
    Ok(())
}
