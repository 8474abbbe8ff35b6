//! Runs: one tagged configuration type for everything the trainer runs, chosen by its
//! `objective` field, and one function that runs any of them.
//!
//! | `objective` | what | items |
//! | --- | --- | --- |
//! | `preglycanaa` | PreGlycanAA multi-scale masking (`glycan_aa::pretrain`) | glycans |
//! | `esm_aa` | ESM-AA masked tokens + distances (`protein_aa::esm_pretrain`) | residue windows |
//! | `vabs_smpc` | Vabs-Net span-mask pretraining (`protein_aa::vabs`) | residue windows |
//! | `graph_task` | any encoder on a glycan property task (`aa_encoder::tasks::GraphTask`) | glycans |
//! | `unit_task` | any encoder on per-unit labels of structures (`aa_encoder::tasks::UnitTask`) | windows |
//! | `pair_task` | any glycan encoder on protein–glycan interaction (`aa_encoder::tasks::PairTask`) | glycans |
//!
//! Every checkpoint's metadata holds `encoder` — the full encoder configuration with its
//! `family` — so a later run warm-starts, and `allatom export` packages, any of them the same way.
//! Splits, warm starts, the fit and the summary are `aa_pretrain::run`'s.

mod pair;
mod pretrain;
mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aa_encoder::Encoder;
use aa_pretrain::init::SeededVarMap;
use aa_pretrain::trainer::TrainConfig;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use pair::PairTaskRun;
pub use pretrain::{EsmAaRun, GlycanData, PreGlycanAARun, SmpcRun, StructureData};
pub use tasks::{
    eval, graph_embeddings, graph_task_model, labelled_groups, pairing_error, unit_task_kind, GraphEmbeddings,
    GraphTaskModel, GraphTaskRun, TaskSource, UnitTaskRun,
};

use crate::families::{join_config, split_config, Family, NoFiles};

/// A run configuration, by its `objective`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "objective", rename_all = "snake_case")]
pub enum RunConfig {
    /// PreGlycanAA pretraining.
    Preglycanaa(PreGlycanAARun),
    /// ESM-AA pretraining.
    EsmAa(EsmAaRun),
    /// Vabs-Net SMPC pretraining.
    VabsSmpc(SmpcRun),
    /// A graph-level glycan task for any encoder.
    GraphTask(GraphTaskRun),
    /// A per-unit structure task for any encoder.
    #[serde(alias = "residue_task")]
    UnitTask(UnitTaskRun),
    /// Protein–glycan interaction for any glycan encoder against a frozen protein model.
    PairTask(PairTaskRun),
}

/// Command-line overrides of a configuration's training settings.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Training seed.
    pub seed: Option<u64>,
    /// Epochs.
    pub epochs: Option<usize>,
    /// Pause after this many optimiser steps in total.
    pub max_steps: Option<u64>,
}

impl Overrides {
    fn apply(&self, t: &mut TrainConfig) {
        if let Some(s) = self.seed {
            t.seed = s;
        }
        if let Some(e) = self.epochs {
            t.epochs = e;
        }
        if let Some(m) = self.max_steps {
            t.max_steps = Some(m);
        }
    }
}

impl RunConfig {
    /// Reads a configuration file; the error names the file and what is wrong.
    pub fn read(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a run configuration (an \"objective\" of preglycanaa, esm_aa, vabs_smpc, graph_task, unit_task or pair_task and its fields)",
                path.display()
            )
        })
    }

    /// Whether this is a pretraining objective (`allatom pretrain`) rather than a task
    /// (`allatom finetune`).
    pub fn is_pretraining(&self) -> bool {
        matches!(self, RunConfig::Preglycanaa(_) | RunConfig::EsmAa(_) | RunConfig::VabsSmpc(_))
    }

    /// The `objective` name.
    pub fn objective(&self) -> &'static str {
        match self {
            RunConfig::Preglycanaa(_) => "preglycanaa",
            RunConfig::EsmAa(_) => "esm_aa",
            RunConfig::VabsSmpc(_) => "vabs_smpc",
            RunConfig::GraphTask(_) => "graph_task",
            RunConfig::UnitTask(_) => "unit_task",
            RunConfig::PairTask(_) => "pair_task",
        }
    }
}

/// Runs (or resumes) `cfg`, read from `config_path` (relative paths are relative to it), in
/// `run_dir`; returns the run's summary.
pub fn run(config_path: &Path, cfg: RunConfig, run_dir: &Path, overrides: &Overrides) -> Result<Value> {
    let ctx = || config_path.display().to_string();
    match cfg {
        RunConfig::Preglycanaa(mut c) => {
            overrides.apply(&mut c.train);
            pretrain::preglycanaa(config_path, &c, run_dir).with_context(ctx)
        }
        RunConfig::EsmAa(mut c) => {
            overrides.apply(&mut c.train);
            pretrain::esm_aa(config_path, &c, run_dir).with_context(ctx)
        }
        RunConfig::VabsSmpc(mut c) => {
            overrides.apply(&mut c.train);
            pretrain::smpc(config_path, &c, run_dir).with_context(ctx)
        }
        RunConfig::GraphTask(mut c) => {
            overrides.apply(&mut c.train);
            tasks::graph_task(config_path, &c, run_dir).with_context(ctx)
        }
        RunConfig::UnitTask(mut c) => {
            overrides.apply(&mut c.train);
            tasks::unit_task(config_path, &c, run_dir).with_context(ctx)
        }
        RunConfig::PairTask(mut c) => {
            overrides.apply(&mut c.train);
            pair::pair_task(config_path, &c, run_dir).with_context(ctx)
        }
    }
}

/// An encoder built for training: its variables in a seeded store (names as the family's
/// official ones), its completed configuration (with `family`).
pub struct TrainableEncoder {
    /// The variable store (the task's head goes into it too).
    pub store: Arc<SeededVarMap>,
    /// The encoder.
    pub encoder: Box<dyn Encoder>,
    /// The completed configuration, `family` included.
    pub config: Value,
    /// Names of the encoder's variables.
    pub names: Vec<String>,
    /// The family.
    pub family: &'static dyn Family,
}

/// Builds the encoder of `config` with weights drawn from `seed`.
pub fn trainable_encoder(config: &Value, seed: u64) -> Result<TrainableEncoder> {
    let (family, part) = split_config(config)?;
    let part = family.complete(&part)?;
    let store = SeededVarMap::new(seed);
    let encoder = family.load(store.var_builder(DType::F32, &Device::Cpu), &part, &NoFiles)?;
    let names = store.all().into_iter().map(|(k, _)| k).collect();
    Ok(TrainableEncoder { store, encoder, config: join_config(family, &part), names, family })
}

/// The encoder configuration recorded in a checkpoint's metadata.
pub fn checkpoint_encoder(ck: &aa_pretrain::checkpoint::Checkpoint) -> Result<Value> {
    match ck.state["metadata"].get("encoder") {
        Some(e) if e.is_object() => Ok(e.clone()),
        _ => anyhow::bail!("{}: no encoder configuration in the checkpoint's metadata", ck.dir.display()),
    }
}

/// A path field of an encoder configuration (`lm`) made relative to the run configuration, when
/// it names an existing local path.
fn resolve_lm(config_path: &Path, encoder: &mut Value) {
    if let Some(Value::String(lm)) = encoder.get("lm").cloned() {
        let local = aa_pretrain::run::resolve(config_path, Path::new(&lm));
        if local.exists() {
            encoder["lm"] = Value::String(std::path::absolute(&local).unwrap_or(local).display().to_string());
        }
    }
}

/// Loads a checkpoint given in a run configuration: a run directory, a checkpoint directory, or
/// a package directory (`config.json` + `model.safetensors`, as `allatom export` writes; its
/// weights and encoder configuration stand in for a checkpoint's).
fn pretrained_checkpoint(config_path: &Path, p: &Path) -> Result<aa_pretrain::checkpoint::Checkpoint> {
    let path = aa_pretrain::run::resolve(config_path, p);
    let (config, weights) = (path.join(crate::package::CONFIG_FILE), path.join(crate::package::WEIGHTS_FILE));
    if config.is_file() && weights.is_file() && !path.join("checkpoints").exists() {
        let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
        let value: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config.display()))?;
        let (family, part) = split_config(&value).with_context(|| config.display().to_string())?;
        let model = candle_core::safetensors::load(&weights, &Device::Cpu)
            .with_context(|| format!("reading {}", weights.display()))?
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        return Ok(aa_pretrain::checkpoint::Checkpoint {
            dir: path,
            model,
            optimizer: Default::default(),
            state: serde_json::json!({ "metadata": { "encoder": join_config(family, &part) } }),
        });
    }
    let dir = aa_pretrain::run::checkpoint_in(&path)?;
    Ok(aa_pretrain::checkpoint::load_dir(&dir, &Device::Cpu)?)
}

/// An absolute path for metadata (so a later run finds it from anywhere).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
