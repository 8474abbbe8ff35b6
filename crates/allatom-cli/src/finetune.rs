//! `allatom finetune`: GlycanAA (from scratch or from a PreGlycanAA checkpoint) or the
//! monosaccharide-level RGCN on a rebuilt glycowork task, driven by a JSON run configuration;
//! `allatom eval`: a fine-tuned checkpoint on one split.

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
use glycan_aa::tasks::{load, GlycanTask, Split, Target};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::pretrain::{resolve, split_buffers};

/// Which task.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Directory written by `cargo xtask data` (relative to the config file).
    pub dir: PathBuf,
    /// Task name: `glycan_type`, `taxonomy_<level>`, or `taxonomy` (the eight levels jointly,
    /// one head split among them).
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
    /// A PreGlycanAA checkpoint directory (e.g. `runs/pre/checkpoints/step-00000459`), or a
    /// pretraining run directory (its best checkpoint), whose encoder weights and vocabulary to
    /// start from; none: random initialisation.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Glycans whose most frequent links make the vocabulary when not starting from a
    /// checkpoint (the pretraining set, so all runs share one vocabulary).
    #[serde(default)]
    pub vocab_glycans: Option<PathBuf>,
    /// Feed only monosaccharides and glycosidic links (GlycanML's monosaccharide-level RGCN
    /// baseline: use `"variant": "flat"`); default: the all-atom graph.
    #[serde(default)]
    pub units_only: bool,
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
    if serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("objective").cloned()).is_some() {
        return crate::vabs::finetune(a, &text);
    }
    let mut cfg: FinetuneConfig =
        serde_json::from_str(&text).with_context(|| format!("{}: not a fine-tuning config", a.config.display()))?;
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    let task = load(&resolve(&a.config, &cfg.task.dir), &cfg.task.name)?;
    let device = Device::Cpu;
    let checkpoint = match &cfg.pretrained {
        Some(p) => Some(aa_pretrain::checkpoint::load_dir(&checkpoint_in(&resolve(&a.config, p))?, &device)?),
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
    let ([train, valid, test], skipped) = featurise(&task, &vocab);
    eprintln!(
        "{}: {} train / {} valid / {} test glycans, {} classes ({skipped} outside the vocabulary skipped)",
        task.name,
        train.len(),
        valid.len(),
        test.len(),
        task.targets.iter().map(|t| t.classes.len().to_string()).collect::<Vec<_>>().join("+"),
    );
    let store = SeededVarMap::new(cfg.train.seed);
    let model = PropertyModel::new(
        store.var_builder(DType::F32, &device),
        &cfg.model,
        vocab.clone(),
        task.targets.clone(),
        cfg.units_only,
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
    let metric = selection_metric(&task.targets);
    let selection = Selection { metric: metric.into(), higher_is_better: true };
    let mut trainer =
        Trainer::new(cfg.train.clone(), groups, buffers.clone(), selection, RunDir { path: a.run_dir.clone() })?;
    trainer.progress = true;
    let task_dir = std::path::absolute(resolve(&a.config, &cfg.task.dir))?;
    trainer.metadata = serde_json::json!({
        "config": cfg, "vocab": vocab, "targets": task.targets, "task": task.name, "task_dir": task_dir,
    });
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
        "units_only": cfg.units_only,
        "model": cfg.model,
        "sizes": { "train": train.len(), "valid": valid.len(), "test": test.len(), "skipped": skipped },
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

/// Accuracy when every target is single-label, else macro-F1.
fn selection_metric(targets: &[Target]) -> &'static str {
    if targets.iter().any(|t| t.multi_label) {
        "macro_f1"
    } else {
        "accuracy"
    }
}

/// Featurises every row in parallel: train, valid and test items, and how many glycans fell
/// outside the vocabulary.
fn featurise(task: &GlycanTask, vocab: &CompatVocab) -> ([Vec<Labelled>; 3], usize) {
    let featurised: Vec<Option<(Labelled, Split)>> = task
        .rows
        .par_iter()
        .map(|r| featurize(&r.glycan, vocab).ok().map(|g| (Labelled { graph: g, labels: r.labels.clone() }, r.split)))
        .collect();
    let skipped = featurised.iter().filter(|f| f.is_none()).count();
    let mut out: [Vec<Labelled>; 3] = Default::default();
    for (item, split) in featurised.into_iter().flatten() {
        let k = match split {
            Split::Train => 0,
            Split::Valid => 1,
            Split::Test => 2,
        };
        out[k].push(item);
    }
    (out, skipped)
}

/// A checkpoint directory (holds `state.json`) as given, or a run directory's best checkpoint
/// (its latest when none is marked best).
pub(crate) fn checkpoint_in(path: &std::path::Path) -> Result<PathBuf> {
    if path.join("state.json").exists() {
        return Ok(path.to_path_buf());
    }
    let root = path.join("checkpoints");
    if root.is_dir() {
        let c = aa_pretrain::checkpoint::CheckpointDir::new(root, usize::MAX)?;
        if let Some(d) = c.resolve("best")?.or(c.resolve("latest")?) {
            return Ok(d);
        }
    }
    bail!("{}: neither a checkpoint directory (no state.json) nor a run directory with checkpoints", path.display())
}

/// `allatom eval`: loads a fine-tuned checkpoint (a run directory's best, or a checkpoint
/// directory), rebuilds its model and task, and prints the metrics of one split as JSON.
pub fn eval(a: crate::EvalArgs) -> Result<ExitCode> {
    if !["train", "valid", "test"].contains(&a.split.as_str()) {
        bail!("--split {}: expected train, valid or test", a.split);
    }
    let device = Device::Cpu;
    let dir = checkpoint_in(&a.checkpoint)?;
    let ck = aa_pretrain::checkpoint::load_dir(&dir, &device)?;
    let meta = &ck.state["metadata"];
    let not_finetuned = || format!("{}: not a fine-tuning checkpoint (no {{}} in its metadata)", dir.display());
    let cfg: FinetuneConfig =
        serde_json::from_value(meta["config"].clone()).with_context(|| not_finetuned().replace("{}", "config"))?;
    let vocab: CompatVocab =
        serde_json::from_value(meta["vocab"].clone()).with_context(|| not_finetuned().replace("{}", "vocab"))?;
    let targets: Vec<Target> =
        serde_json::from_value(meta["targets"].clone()).with_context(|| not_finetuned().replace("{}", "targets"))?;
    let task_dir = match (&a.task_dir, meta["task_dir"].as_str()) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => bail!("{}: no task directory recorded; give --task-dir", dir.display()),
    };
    let task = load(&task_dir, &cfg.task.name)?;
    if task.targets != targets {
        bail!(
            "{}: task {} in {} has other classes than the checkpoint was trained on",
            dir.display(),
            cfg.task.name,
            task_dir.display()
        );
    }
    let store = SeededVarMap::new(0);
    let model =
        PropertyModel::new(store.var_builder(DType::F32, &device), &cfg.model, vocab.clone(), targets, cfg.units_only)?;
    for (name, var) in store.all() {
        let t = ck.model.get(&name).with_context(|| format!("{}: no {name}", dir.display()))?;
        if t.shape() != var.shape() {
            bail!("{}: {name} is {:?}, the model wants {:?}", dir.display(), t.shape(), var.shape());
        }
        var.set(t)?;
    }
    let ([train, valid, test], skipped) = featurise(&task, &vocab);
    let items = match a.split.as_str() {
        "train" => train,
        "valid" => valid,
        "test" => test,
        other => bail!("--split {other}: expected train, valid or test"),
    };
    let metrics = model.evaluate(&items)?;
    let out = serde_json::json!({
        "checkpoint": dir, "task": task.name, "split": a.split, "glycans": items.len(), "skipped": skipped,
        "metrics": metrics,
    });
    let text = serde_json::to_string_pretty(&out)? + "\n";
    match &a.out {
        Some(p) => aa_pretrain::checkpoint::write_atomic(p, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// Every example config under models/configs/ reads as the run configuration it is for.
    #[test]
    fn example_configs_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/configs");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let parsed = if value.get("objective").and_then(|o| o.as_str()) == Some("vabs_smpc") {
                serde_json::from_value::<crate::vabs::SmpcConfig>(value).map(|_| ())
            } else if value.get("objective").and_then(|o| o.as_str()) == Some("residue_task") {
                serde_json::from_value::<crate::vabs::ResidueTaskConfig>(value).map(|_| ())
            } else if value.get("task").is_some() {
                serde_json::from_value::<super::FinetuneConfig>(value).map(|_| ())
            } else if value.get("objective").is_some() {
                serde_json::from_value::<crate::esm::EsmPretrainConfig>(value).map(|_| ())
            } else {
                serde_json::from_value::<crate::pretrain::PretrainConfig>(value).map(|_| ())
            };
            assert!(parsed.is_ok(), "{}: {parsed:?}", path.display());
            seen += 1;
        }
        assert!(seen >= 8, "{seen} configs");
    }
}
