//! Vabs-Net in the CLI: `pretrain` with `"objective": "vabs_smpc"` (span-mask protein chain
//! pretraining) and `finetune` with `"objective": "residue_task"`: per-unit DSSP secondary
//! structure, ligand-contact residues or monosaccharide mobility in lectin-bound glycans, on
//! the Vabs-Net encoder (from scratch or from an SMPC checkpoint) or on GlycanAA's
//! hierarchical RGConv (`"encoder": "glycanaa"`).

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
use glycan_aa::model::{GlycanAA, GlycanAAConfig};
use protein_aa::esm_pretrain::residue_windows;
use protein_aa::lm::LmFeatures;
use protein_aa::tasks::{
    dssp_labels, labelled_windows, ligand_contact_labels, sugar_mobility_labels, whole_structure_window,
    LabelledWindow, ResidueTask, UnitEncoder, VabsLm,
};
use protein_aa::vabs::{SpanMasking, VabsSmpc};
use protein_aa::Structure;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::pretrain::resolve;

fn d_valid() -> f64 {
    0.15
}
fn d_window() -> usize {
    128
}
fn d_encoder() -> String {
    "vabs".into()
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
    /// Optional language model for per-residue features (an ESM model directory, e.g. from
    /// `allatom export` of an ESM-AA run or `allatom convert`, or a hub id); sets `lm_dim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<String>,
    /// Training settings.
    pub train: TrainConfig,
}

/// A per-residue task run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidueTaskConfig {
    /// Must be "residue_task".
    pub objective: String,
    /// `dssp` (3-state secondary structure from `<file>.dssp` beside each structure),
    /// `ligand_contact` (residues within 4 Å of a ligand of ≥ 6 heavy atoms; the ligand is not
    /// part of the input) or `glycan_mobility` (monosaccharides whose mean B-factor exceeds the
    /// structure's monosaccharide mean; one window per structure, structures grouped by the
    /// glycan named in a `REMARK   1 GLYCAN` line so that one glycan stays in one split).
    pub task: String,
    /// `vabs` (Vabs-Net) or `glycanaa` (GlycanAA's hierarchical RGConv on the all-atom graph).
    #[serde(default = "d_encoder")]
    pub encoder: String,
    /// Input structures.
    pub data: VabsData,
    /// A run directory or checkpoint to start from (an SMPC run for `vabs`; its encoder config
    /// is used).
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// The encoder when starting from scratch: a `VabsConfig` or a `GlycanAAConfig`
    /// (`num_unit` / `num_relation` 0 are filled from the all-atom vocabulary).
    #[serde(default)]
    pub model: Option<serde_json::Value>,
    /// Optional language model for per-residue features (Vabs-Net only; an ESM model directory
    /// or hub id, see `SmpcConfig::lm`). Required when the pretrained encoder was trained with
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<String>,
    /// Training settings.
    pub train: TrainConfig,
}

/// Reads every structure under `paths` (relative to `config`); unreadable files and files
/// without coordinates are reported and skipped.
fn read_structures(config: &Path, paths: &[PathBuf]) -> Result<Vec<(PathBuf, Structure)>> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(crate::structure_files(&resolve(config, p))?);
    }
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let mut out = Vec::new();
    for f in files {
        match protein_aa::read_structure_file(&f, &opts) {
            Ok(s) if s.graph.positions.is_some() => out.push((f, s)),
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

/// Loads the language model named by a config (a directory relative to the config file, or a
/// hub id) and sets `model.lm_dim` to its width; errors when the model already has another
/// `lm_dim`, or has one and no language model is named.
fn load_lm(config: &Path, lm: Option<&str>, model: &mut VabsConfig) -> Result<Option<LmFeatures>> {
    let Some(name) = lm else {
        if let Some(d) = model.lm_dim {
            bail!("{}: the encoder takes {d}-wide language-model features: name the model in `lm`", config.display());
        }
        return Ok(None);
    };
    let local = resolve(config, Path::new(name));
    let name = if local.exists() { local.display().to_string() } else { name.to_string() };
    let lm = LmFeatures::new(crate::esm::load(&name).with_context(|| format!("{}: lm {name}", config.display()))?);
    match model.lm_dim {
        Some(d) if d != lm.dim() => {
            bail!("{}: the encoder takes {d}-wide language-model features, {name} gives {}", config.display(), lm.dim())
        }
        _ => model.lm_dim = Some(lm.dim()),
    }
    Ok(Some(lm))
}

/// `allatom pretrain` for a `vabs_smpc` config.
pub fn pretrain(a: crate::PretrainArgs, text: &str) -> Result<ExitCode> {
    let mut cfg: SmpcConfig =
        serde_json::from_str(text).with_context(|| format!("{}: not a Vabs-Net SMPC config", a.config.display()))?;
    if let Some(m) = a.max_steps {
        cfg.train.max_steps = Some(m);
    }
    let structures: Vec<(PathBuf, Arc<HeteroGraph>)> =
        read_structures(&a.config, &cfg.data.structures)?.into_iter().map(|(p, s)| (p, Arc::new(s.graph))).collect();
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
    let lm = load_lm(&a.config, cfg.lm.as_deref(), &mut cfg.model)?;
    let store = SeededVarMap::new(cfg.train.seed);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let model = Vabs::new(vb.clone(), &cfg.model)?;
    let mut objective = VabsSmpc::new(model, vb, cfg.masking.clone())?;
    objective.lm = lm;
    let counts = json!({ "train_windows": train.len(), "valid_windows": valid.len(), "structure_files": n_files });
    let metadata = json!({ "config": cfg, "task": "Vabs-Net SMPC" });
    crate::pretrain::fit_pretraining(&a, &cfg.train, &store, &objective, &train, &valid, metadata, counts, "windows")
}

/// The glycan a structure file names in its `REMARK   1 GLYCAN <iupac>` line (written by
/// `cargo xtask fetch-glycontact`), else the IUPAC strings of the glycans found in it.
fn glycan_key(path: &Path, s: &Structure) -> String {
    use std::io::BufRead;
    // Only the header is read again (compressed files have no readable header: IUPAC then).
    let named = std::fs::File::open(path).ok().and_then(|f| {
        std::io::BufReader::new(f)
            .lines()
            .take(20)
            .map_while(|l| l.ok())
            .find_map(|l| l.strip_prefix("REMARK   1 GLYCAN ").map(|k| k.trim().to_string()))
    });
    named.unwrap_or_else(|| s.glycans.iter().map(|g| g.iupac.as_str()).collect::<Vec<_>>().join(" + "))
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
    let model_value = match (&checkpoint, &cfg.model) {
        (Some(ck), _) => ck.state["metadata"]["config"]["model"].clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => bail!("{}: give `pretrained` or `model`", a.config.display()),
    };
    let encoder = encoder_of(&a.config, &cfg, model_value)?;
    let classes = match cfg.task.as_str() {
        "dssp" => 3,
        "ligand_contact" | "glycan_mobility" => 2,
        t => bail!("{}: unknown task {t:?} (dssp, ligand_contact or glycan_mobility)", a.config.display()),
    };
    // Labelled structures, grouped so that a group stays in one split (one group per file,
    // or per glycan for `glycan_mobility`), in reading order.
    let mut groups: Vec<Vec<LabelledWindow>> = Vec::new();
    let mut group_of: std::collections::HashMap<String, usize> = Default::default();
    for (path, s) in read_structures(&a.config, &cfg.data.structures)? {
        let labels = match cfg.task.as_str() {
            "dssp" => {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let stem = name.strip_suffix(".gz").unwrap_or(&name);
                let dssp = path.with_file_name(format!("{stem}.dssp"));
                if !dssp.is_file() {
                    continue;
                }
                match dssp_labels(&dssp, &s.graph) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("skipped {e}");
                        continue;
                    }
                }
            }
            "ligand_contact" => match ligand_contact_labels(&s.graph, 4.0, 6) {
                Some(l) => l,
                None => continue,
            },
            _ => match sugar_mobility_labels(&s) {
                Some(l) => l,
                None => continue,
            },
        };
        let key = if cfg.task == "glycan_mobility" { glycan_key(&path, &s) } else { path.display().to_string() };
        let g = Arc::new(s.graph);
        let windows = if cfg.task == "glycan_mobility" {
            vec![whole_structure_window(g, &labels)]
        } else {
            labelled_windows(g, &labels, cfg.data.window)
        };
        let k = *group_of.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[k].extend(windows);
    }
    let n_groups = groups.len();
    let [train, valid, test] = split(groups, cfg.train.seed, cfg.data.valid_fraction, cfg.data.test_fraction)
        .map(|s| s.into_iter().flatten().collect::<Vec<_>>());
    let count = |w: &[LabelledWindow]| w.iter().map(|w| w.labels.iter().flatten().count()).sum::<usize>();
    if count(&train) == 0 || count(&valid) == 0 || count(&test) == 0 {
        bail!("{}: {n_groups} labelled structure groups are too few to split", a.config.display());
    }
    eprintln!(
        "{} on {}: {n_groups} structure groups; {} / {} / {} labelled units (train / valid / test)",
        cfg.task,
        cfg.encoder,
        count(&train),
        count(&valid),
        count(&test)
    );
    let store = SeededVarMap::new(cfg.train.seed);
    let vb = store.var_builder(DType::F32, &device);
    let run = TaskRun { a: &a, cfg: &cfg, store: &store, checkpoint: checkpoint.as_ref(), classes };
    let counts = json!({ "train": count(&train), "valid": count(&valid), "test": count(&test) });
    match encoder {
        Encoder::Vabs(m, lm) => {
            let vabs = Vabs::new(vb.clone(), &m)?;
            let model = serde_json::to_value(&m)?;
            match lm {
                Some(lm) => run.fit(
                    ResidueTask::new(VabsLm { vabs, lm: *lm }, vb, classes)?,
                    model,
                    &train,
                    &valid,
                    &test,
                    counts,
                ),
                None => run.fit(ResidueTask::new(vabs, vb, classes)?, model, &train, &valid, &test, counts),
            }
        }
        Encoder::GlycanAA(m) => {
            let task = ResidueTask::new(GlycanAA::new(vb.clone(), &m)?, vb, classes)?;
            run.fit(task, serde_json::to_value(&m)?, &train, &valid, &test, counts)
        }
    }
}

/// The encoder of a residue-task run, its config checked (and the language model loaded)
/// before any data is read.
enum Encoder {
    Vabs(VabsConfig, Option<Box<LmFeatures>>),
    GlycanAA(GlycanAAConfig),
}

fn encoder_of(config: &Path, cfg: &ResidueTaskConfig, model: serde_json::Value) -> Result<Encoder> {
    match cfg.encoder.as_str() {
        "vabs" => {
            let mut m: VabsConfig = serde_json::from_value(model)
                .with_context(|| format!("{}: not a Vabs-Net model config", config.display()))?;
            let lm = load_lm(config, cfg.lm.as_deref(), &mut m)?;
            Ok(Encoder::Vabs(m, lm.map(Box::new)))
        }
        "glycanaa" => {
            if cfg.lm.is_some() {
                bail!("{}: `lm` (language-model features) is for the vabs encoder", config.display());
            }
            let mut m: GlycanAAConfig = serde_json::from_value(model)
                .with_context(|| format!("{}: not a GlycanAA model config", config.display()))?;
            let paper = GlycanAAConfig::paper_on_molecules();
            if m.num_unit == 0 {
                m.num_unit = paper.num_unit;
            }
            if m.num_relation == 0 {
                m.num_relation = paper.num_relation;
            }
            if (m.num_unit, m.num_relation) != (paper.num_unit, paper.num_relation) {
                bail!(
                    "{}: model.num_unit/num_relation are {}/{}, the all-atom vocabulary gives {}/{}",
                    config.display(),
                    m.num_unit,
                    m.num_relation,
                    paper.num_unit,
                    paper.num_relation
                );
            }
            Ok(Encoder::GlycanAA(m))
        }
        e => bail!("{}: unknown encoder {e:?} (vabs or glycanaa)", config.display()),
    }
}

/// What a residue-task run needs besides the task itself.
struct TaskRun<'a> {
    a: &'a crate::FinetuneArgs,
    cfg: &'a ResidueTaskConfig,
    store: &'a SeededVarMap,
    checkpoint: Option<&'a aa_pretrain::checkpoint::Checkpoint>,
    classes: usize,
}

impl TaskRun<'_> {
    /// Loads the pretrained encoder weights, trains (selection on validation AUPRC for two
    /// classes, accuracy otherwise), evaluates the best checkpoint on the test split and writes
    /// the run's summary.
    fn fit<E: UnitEncoder>(
        &self,
        task: ResidueTask<E>,
        model: serde_json::Value,
        train: &[LabelledWindow],
        valid: &[LabelledWindow],
        test: &[LabelledWindow],
        counts: serde_json::Value,
    ) -> Result<ExitCode> {
        let (a, cfg, device) = (self.a, self.cfg, Device::Cpu);
        // BatchNorm running statistics (GlycanAA) are saved with the run but not optimised.
        let (params, buffers) = crate::pretrain::split_buffers(self.store.all());
        let (head, encoder): (Vec<_>, Vec<_>) = params.into_iter().partition(|(k, _)| k.starts_with("residue_cls."));
        if let Some(ck) = self.checkpoint {
            for (name, var) in encoder.iter().chain(&buffers) {
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
        let metric = if self.classes == 2 { "auprc" } else { "accuracy" };
        let selection = Selection { metric: metric.into(), higher_is_better: true };
        let mut trainer =
            Trainer::new(cfg.train.clone(), groups, buffers, selection, RunDir { path: a.run_dir.clone() })?;
        trainer.progress = true;
        trainer.metadata = json!({ "config": cfg, "model": model, "task": cfg.task, "encoder": cfg.encoder });
        let t = std::time::Instant::now();
        let report = trainer.fit(&task, train, valid)?;
        let best = report.best_checkpoint.clone().context("the run saved no checkpoint")?;
        let ck = aa_pretrain::checkpoint::load_dir(&best, &device)?;
        for (name, var) in self.store.all() {
            if let Some(t) = ck.model.get(&name) {
                var.set(t)?;
            }
        }
        let test_metrics = task.evaluate(test)?;
        let summary = json!({
            "task": cfg.task, "encoder": cfg.encoder, "pretrained": cfg.pretrained, "seed": cfg.train.seed,
            "test": test_metrics, "units": counts,
        });
        crate::pretrain::finish_run(&a.run_dir, &report, summary, t.elapsed().as_secs_f64(), "windows")?;
        println!(
            "{}",
            serde_json::to_string(&json!({ "task": cfg.task, "encoder": cfg.encoder, "test": test_metrics }))?
        );
        Ok(ExitCode::SUCCESS)
    }
}
