//! Vabs-Net in the CLI: `pretrain` with `"objective": "vabs_smpc"` (span-mask protein chain
//! pretraining) and `finetune` with `"objective": "residue_task"` (per-residue DSSP secondary
//! structure or ligand-contact residues, from scratch or from an SMPC checkpoint).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aa_graph::HeteroGraph;
use aa_pretrain::init::SeededVarMap;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::{Objective, RunDir, Selection, TrainConfig, Trainer};
use aa_pretrain::ParamGroup;
use aa_sparse_attn::{Vabs, VabsConfig};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use protein_aa::esm_pretrain::residue_windows;
use protein_aa::vabs::{dssp_labels, labelled_windows, ligand_contact_labels, ResidueTask, SpanMasking, VabsSmpc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::pretrain::resolve;

fn d_valid() -> f64 {
    0.15
}
fn d_window() -> usize {
    128
}

/// Structures of a Vabs-Net run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VabsData {
    /// Structure files or directories (relative to the config file).
    pub structures: Vec<PathBuf>,
    /// Fraction of structure files held out for validation (random, by the training seed).
    #[serde(default = "d_valid")]
    pub valid_fraction: f64,
    /// Fraction of structure files held out for testing (residue tasks only).
    #[serde(default = "d_valid")]
    pub test_fraction: f64,
    /// Residues per window (residue tasks; SMPC uses `masking.window`).
    #[serde(default = "d_window")]
    pub window: usize,
}

/// An SMPC pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmpcConfig {
    /// Must be "vabs_smpc".
    pub objective: String,
    /// Input structures.
    pub data: VabsData,
    /// The encoder.
    pub model: VabsConfig,
    /// Span masking.
    #[serde(default)]
    pub masking: SpanMasking,
    /// Training settings.
    pub train: TrainConfig,
}

/// A per-residue task run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidueTaskConfig {
    /// Must be "residue_task".
    pub objective: String,
    /// `dssp` (3-state secondary structure from `<file>.dssp` beside each structure) or
    /// `ligand_contact` (residues within 4 Å of a ligand of ≥ 6 heavy atoms; the ligand is not
    /// part of the input).
    pub task: String,
    /// Input structures.
    pub data: VabsData,
    /// An SMPC run directory or checkpoint to start from (its encoder config is used).
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// The encoder when starting from scratch.
    #[serde(default)]
    pub model: Option<VabsConfig>,
    /// Training settings.
    pub train: TrainConfig,
}

/// Reads every structure under `paths` (relative to `config`); unreadable files are reported
/// and skipped.
fn read_structures(config: &Path, paths: &[PathBuf]) -> Result<Vec<(PathBuf, Arc<HeteroGraph>)>> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(crate::structure_files(&resolve(config, p))?);
    }
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let mut out = Vec::new();
    for f in files {
        match protein_aa::read_structure_file(&f, &opts) {
            Ok(s) if s.graph.positions.is_some() => out.push((f, Arc::new(s.graph))),
            Ok(_) => eprintln!("skipped {}: no coordinates", f.display()),
            Err(e) => eprintln!("skipped {e}"),
        }
    }
    Ok(out)
}

/// Splits `items` into train / valid / test by shuffling with `seed`.
fn split<T>(mut items: Vec<T>, seed: u64, valid: f64, test: f64) -> [Vec<T>; 3] {
    Rng::new(seed ^ 0x5EED_5EED).shuffle(&mut items);
    let n = items.len();
    let nv = ((n as f64 * valid).round() as usize).min(n);
    let nt = ((n as f64 * test).round() as usize).min(n - nv);
    let te = items.split_off(n - nt);
    let va = items.split_off(items.len() - nv);
    [items, va, te]
}

/// `allatom pretrain` for a `vabs_smpc` config.
pub fn pretrain(a: crate::PretrainArgs, text: &str) -> Result<ExitCode> {
    let mut cfg: SmpcConfig =
        serde_json::from_str(text).with_context(|| format!("{}: not a Vabs-Net SMPC config", a.config.display()))?;
    if let Some(m) = a.max_steps {
        cfg.train.max_steps = Some(m);
    }
    let structures = read_structures(&a.config, &cfg.data.structures)?;
    let n_files = structures.len();
    let [train, valid, _] = split(structures, cfg.train.seed, cfg.data.valid_fraction, 0.0);
    let windows = |s: Vec<(PathBuf, Arc<HeteroGraph>)>| -> Vec<_> {
        s.into_iter().flat_map(|(_, g)| residue_windows(g, cfg.masking.window)).collect()
    };
    let (train, valid) = (windows(train), windows(valid));
    if train.is_empty() || valid.is_empty() {
        bail!("{}: need residue windows for training and validation", a.config.display());
    }
    eprintln!("{n_files} structure files: {} training and {} validation windows", train.len(), valid.len());
    let store = SeededVarMap::new(cfg.train.seed);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let model = Vabs::new(vb.clone(), &cfg.model)?;
    let objective = VabsSmpc::new(model, vb, cfg.masking.clone())?;
    let group = ParamGroup { vars: store.all(), lr_scale: 1.0, weight_decay: None };
    let selection = Selection { metric: "loss".into(), higher_is_better: false };
    let mut trainer =
        Trainer::new(cfg.train.clone(), vec![group], vec![], selection, RunDir { path: a.run_dir.clone() })?;
    trainer.progress = true;
    trainer.metadata = json!({ "config": cfg, "task": "Vabs-Net SMPC" });
    let t = std::time::Instant::now();
    let report = trainer.fit(&objective, &train, &valid)?;
    let counts = json!({ "train_windows": train.len(), "valid_windows": valid.len(), "structure_files": n_files });
    crate::pretrain::finish_run(&a.run_dir, &report, counts, t.elapsed().as_secs_f64(), "windows")?;
    Ok(ExitCode::SUCCESS)
}

/// `allatom finetune` for a `residue_task` config.
pub fn finetune(a: crate::FinetuneArgs, text: &str) -> Result<ExitCode> {
    let mut cfg: ResidueTaskConfig =
        serde_json::from_str(text).with_context(|| format!("{}: not a residue-task config", a.config.display()))?;
    if cfg.objective != "residue_task" {
        bail!("{}: objective {:?} is not residue_task", a.config.display(), cfg.objective);
    }
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    let device = Device::Cpu;
    let checkpoint = match &cfg.pretrained {
        Some(p) => {
            Some(aa_pretrain::checkpoint::load_dir(&crate::finetune::checkpoint_in(&resolve(&a.config, p))?, &device)?)
        }
        None => None,
    };
    let model_cfg: VabsConfig = match (&checkpoint, &cfg.model) {
        (Some(ck), _) => serde_json::from_value(ck.state["metadata"]["config"]["model"].clone())
            .with_context(|| format!("{}: no Vabs-Net config in the checkpoint", ck.dir.display()))?,
        (None, Some(m)) => m.clone(),
        (None, None) => bail!("{}: give `pretrained` or `model`", a.config.display()),
    };
    let classes = match cfg.task.as_str() {
        "dssp" => 3,
        "ligand_contact" => 2,
        t => bail!("{}: unknown task {t:?} (dssp or ligand_contact)", a.config.display()),
    };
    let mut labelled = Vec::new();
    for (path, g) in read_structures(&a.config, &cfg.data.structures)? {
        let labels = if cfg.task == "dssp" {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let stem = name.strip_suffix(".gz").unwrap_or(&name);
            let dssp = path.with_file_name(format!("{stem}.dssp"));
            if !dssp.is_file() {
                continue;
            }
            match dssp_labels(&dssp, &g) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("skipped {e}");
                    continue;
                }
            }
        } else {
            match ligand_contact_labels(&g, 4.0, 6) {
                Some(l) => l,
                None => continue,
            }
        };
        labelled.push((g, labels));
    }
    let n_files = labelled.len();
    let [train, valid, test] = split(labelled, cfg.train.seed, cfg.data.valid_fraction, cfg.data.test_fraction);
    let windows = |s: Vec<(Arc<HeteroGraph>, Vec<Option<u32>>)>| -> Vec<_> {
        s.into_iter().flat_map(|(g, l)| labelled_windows(g, &l, cfg.data.window)).collect::<Vec<_>>()
    };
    let (train, valid, test) = (windows(train), windows(valid), windows(test));
    let count =
        |w: &[protein_aa::vabs::LabelledWindow]| w.iter().map(|w| w.labels.iter().flatten().count()).sum::<usize>();
    if count(&train) == 0 || count(&valid) == 0 || count(&test) == 0 {
        bail!("{}: {n_files} labelled structures are too few to split", a.config.display());
    }
    eprintln!(
        "{}: {n_files} structures; {} / {} / {} labelled residues (train / valid / test)",
        cfg.task,
        count(&train),
        count(&valid),
        count(&test)
    );
    let store = SeededVarMap::new(cfg.train.seed);
    let vb = store.var_builder(DType::F32, &device);
    let task = ResidueTask::new(Vabs::new(vb.clone(), &model_cfg)?, vb, classes)?;
    let (head, encoder): (Vec<_>, Vec<_>) = store.all().into_iter().partition(|(k, _)| k.starts_with("residue_cls."));
    if let Some(ck) = &checkpoint {
        for (name, var) in &encoder {
            let t = ck.model.get(name).with_context(|| format!("{}: no {name}", ck.dir.display()))?;
            if t.shape() != var.shape() {
                bail!("{}: {name} is {:?}, the model wants {:?}", ck.dir.display(), t.shape(), var.shape());
            }
            var.set(t)?;
        }
    }
    let groups = vec![
        ParamGroup { vars: encoder, lr_scale: 1.0, weight_decay: None },
        ParamGroup { vars: head, lr_scale: 1.0, weight_decay: None },
    ];
    let metric = if classes == 2 { "auprc" } else { "accuracy" };
    let selection = Selection { metric: metric.into(), higher_is_better: true };
    let mut trainer = Trainer::new(cfg.train.clone(), groups, vec![], selection, RunDir { path: a.run_dir.clone() })?;
    trainer.progress = true;
    trainer.metadata = json!({ "config": cfg, "model": model_cfg, "task": cfg.task });
    let t = std::time::Instant::now();
    let report = trainer.fit(&task, &train, &valid)?;
    let best = report.best_checkpoint.clone().context("the run saved no checkpoint")?;
    let ck = aa_pretrain::checkpoint::load_dir(&best, &device)?;
    for (name, var) in store.all() {
        if let Some(t) = ck.model.get(&name) {
            var.set(t)?;
        }
    }
    let test_metrics = task.evaluate(&test)?;
    let counts = json!({
        "task": cfg.task, "pretrained": cfg.pretrained, "seed": cfg.train.seed, "test": test_metrics,
        "residues": { "train": count(&train), "valid": count(&valid), "test": count(&test) },
    });
    crate::pretrain::finish_run(&a.run_dir, &report, counts, t.elapsed().as_secs_f64(), "windows")?;
    println!("{}", serde_json::to_string(&json!({ "task": cfg.task, "test": test_metrics }))?);
    Ok(ExitCode::SUCCESS)
}
