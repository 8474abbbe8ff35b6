//! `allatom finetune`: GlycanAA (from scratch or from a PreGlycanAA checkpoint) on a rebuilt
//! glycowork task, driven by a JSON run configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use aa_pretrain::init::SeededVarMap;
use aa_pretrain::trainer::{Objective, RunDir, Selection, TrainConfig, Trainer};
use aa_pretrain::ParamGroup;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use glycan_aa::compat::{featurize, CompatVocab};
use glycan_aa::finetune::{Labelled, PropertyModel};
use glycan_aa::model::GlycanAAConfig;
use glycan_aa::tasks::{load, Split};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::pretrain::{resolve, split_buffers};

/// Which task.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Directory written by `cargo xtask data` (relative to the config file).
    pub dir: PathBuf,
    /// Task name: `glycan_type` or `taxonomy_<level>`.
    pub name: String,
}

/// A fine-tuning run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The task.
    pub task: TaskConfig,
    /// The encoder (`num_unit`/`num_relation` 0: sized from the vocabulary).
    pub model: GlycanAAConfig,
    /// A PreGlycanAA checkpoint directory (e.g. `runs/pre/checkpoints/step-00000459`) whose
    /// encoder weights and vocabulary to start from; none: random initialisation.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Glycans whose most frequent links make the vocabulary when not starting from a
    /// checkpoint (the pretraining set, so all runs share one vocabulary).
    #[serde(default)]
    pub vocab_glycans: Option<PathBuf>,
    /// Learning-rate multiplier of the encoder (the head uses 1).
    #[serde(default = "one")]
    pub lr_ratio: f64,
    /// Training settings.
    pub train: TrainConfig,
}

fn one() -> f64 {
    1.0
}

pub fn run(a: crate::FinetuneArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.config).with_context(|| format!("reading {}", a.config.display()))?;
    let mut cfg: FinetuneConfig =
        serde_json::from_str(&text).with_context(|| format!("{}: not a fine-tuning config", a.config.display()))?;
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    let task = load(&resolve(&a.config, &cfg.task.dir), &cfg.task.name)?;
    let device = Device::Cpu;
    let checkpoint = match &cfg.pretrained {
        Some(p) => Some(aa_pretrain::checkpoint::load_dir(&resolve(&a.config, p), &device)?),
        None => None,
    };
    let vocab: CompatVocab = match (&checkpoint, &cfg.vocab_glycans) {
        (Some(ck), _) => serde_json::from_value(ck.state["metadata"]["vocab"].clone())
            .with_context(|| format!("{}: no vocabulary in the checkpoint", ck.dir.display()))?,
        (None, Some(p)) => {
            let glycans = crate::read_glycan_file(&resolve(&a.config, p), None)?;
            CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &glycans, 84)
        }
        (None, None) => bail!("{}: give `pretrained` or `vocab_glycans`", a.config.display()),
    };
    // 0 in the config: sized from the vocabulary.
    cfg.model.sized_for(&vocab).with_context(|| a.config.display().to_string())?;
    let featurised: Vec<Option<(Labelled, Split)>> = task
        .rows
        .par_iter()
        .map(|r| featurize(&r.glycan, &vocab).ok().map(|g| (Labelled { graph: g, labels: r.labels.clone() }, r.split)))
        .collect();
    let skipped = featurised.iter().filter(|f| f.is_none()).count();
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (item, split) in featurised.into_iter().flatten() {
        match split {
            Split::Train => train.push(item),
            Split::Valid => valid.push(item),
            Split::Test => test.push(item),
        }
    }
    eprintln!(
        "{}: {} train / {} valid / {} test glycans, {} classes ({skipped} outside the vocabulary skipped)",
        task.name,
        train.len(),
        valid.len(),
        test.len(),
        task.classes.len()
    );
    let store = SeededVarMap::new(cfg.train.seed);
    let model = PropertyModel::new(
        store.var_builder(DType::F32, &device),
        &cfg.model,
        vocab.clone(),
        task.classes.len(),
        task.multi_label,
    )?;
    let (params, buffers) = split_buffers(store.all());
    if let Some(ck) = &checkpoint {
        // Encoder weights (and running statistics) by their official names; the head is new.
        for (name, var) in params.iter().chain(&buffers).filter(|(k, _)| !k.starts_with("mlp.")) {
            let t = ck.model.get(name).with_context(|| format!("{}: no {name}", ck.dir.display()))?;
            if t.shape() != var.shape() {
                bail!("{}: {name} is {:?}, the model wants {:?}", ck.dir.display(), t.shape(), var.shape());
            }
            var.set(t)?;
        }
    }
    let (head, encoder): (Vec<_>, Vec<_>) = params.into_iter().partition(|(k, _)| k.starts_with("mlp."));
    let groups = vec![
        ParamGroup { vars: encoder, lr_scale: cfg.lr_ratio, weight_decay: None },
        ParamGroup { vars: head, lr_scale: 1.0, weight_decay: None },
    ];
    let metric = if task.multi_label { "macro_f1" } else { "accuracy" };
    let selection = Selection { metric: metric.into(), higher_is_better: true };
    let mut trainer =
        Trainer::new(cfg.train.clone(), groups, buffers.clone(), selection, RunDir { path: a.run_dir.clone() })?;
    trainer.progress = true;
    trainer.metadata = serde_json::json!({ "config": cfg, "vocab": vocab, "classes": task.classes, "task": task.name });
    let report = trainer.fit(&model, &train, &valid)?;
    // Test with the best validation checkpoint's weights.
    let mut test_metrics = None;
    if let Some(best) = &report.best_checkpoint {
        let ck = aa_pretrain::checkpoint::load_dir(best, &device)?;
        for (name, var) in store.all() {
            if let Some(t) = ck.model.get(&name) {
                var.set(t)?;
            }
        }
        test_metrics = Some(model.evaluate(&test)?);
    }
    let summary = serde_json::json!({
        "task": task.name,
        "seed": cfg.train.seed,
        "pretrained": cfg.pretrained,
        "train": train.len(), "valid": valid.len(), "test": test.len(), "skipped": skipped,
        "history": report.state.history,
        "best": report.state.best,
        "test": test_metrics,
    });
    aa_pretrain::checkpoint::write_atomic(
        &a.run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("best valid {metric}: {:?}; test: {:?}", report.state.best, summary["test"]);
    Ok(ExitCode::SUCCESS)
}
