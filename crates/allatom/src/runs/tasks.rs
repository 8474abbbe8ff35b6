//! The task runs, for any encoder family: a graph-level glycan task (glycosylation type,
//! taxonomy) and a per-unit structure task (DSSP, ligand contacts, monosaccharide mobility).
//! The encoder is built (and an impossible pairing refused) before any data is read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aa_encoder::readout::window_orbit_values;
use aa_encoder::tasks::{GraphItem, GraphTask, LabelledWindow, Target, UnitTask};
use aa_encoder::{check_pairing, choice_rates, DataTraits, Gigp, Hsa, ReadoutConfig, Window};
use aa_graph::UnitKind;
use aa_pretrain::run::{fit, load_best, resolve, split_fractions, warm_start, write_summary, RunSpec};
use aa_pretrain::trainer::{Objective, Selection, TrainConfig};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use glycan_aa::compat::CompatVocab;
use glycan_aa::tasks::{load, GlycanTask, Split};
use protein_aa::tasks::{
    dssp_labels, labelled_windows, ligand_contact_labels, sugar_mobility_labels, whole_structure_window,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    absolute, checkpoint_encoder, pretrained_checkpoint, resolve_lm, trainable_encoder, StructureData, TrainableEncoder,
};
use crate::inputs::{read_glycan_file, read_structures, GlycanGraphs};

pub(super) fn one() -> f64 {
    1.0
}

/// Which glycan task (built by `cargo xtask data`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSource {
    /// Task directory (relative to the config file).
    pub dir: PathBuf,
    /// `glycan_type`, `taxonomy_<level>`, or `taxonomy` (the eight levels jointly).
    pub name: String,
}

/// A graph-level glycan task run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphTaskRun {
    /// The task.
    pub task: TaskSource,
    /// The encoder configuration (`family`, `model`, …) when not starting from `pretrained`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Value>,
    /// A run or checkpoint directory whose encoder (configuration and weights) to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// For an official-featurisation encoder without `vocab`: glycans whose 84 most frequent
    /// links make the vocabulary (the pretraining set, so all runs share one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_glycans: Option<PathBuf>,
    /// Learning-rate multiplier of the encoder (the head uses 1).
    #[serde(default = "one")]
    pub lr_ratio: f64,
    /// The graph readout (`{"nodes": "units" | "all"}`, mean ‖ max, `{"gigp": {…}}` or
    /// `{"hsa": {…}}`, their weights under `readout.`); default: the encoder's own (GlycanAA's `readout_type`; units
    /// for the other families).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout: Option<ReadoutConfig>,
    /// Training settings.
    pub train: TrainConfig,
}

/// The readout a task run uses, built in `enc`'s store (under `readout.`). A GIGP readout's
/// orbit centres are fitted on `train` (the training windows); with `None` they are left for a
/// checkpoint to set.
pub(super) fn readout_of(
    enc: &TrainableEncoder,
    chosen: &Option<ReadoutConfig>,
    train: Option<&[&Window]>,
) -> Result<Box<dyn aa_encoder::Readout>> {
    Ok(match chosen {
        Some(ReadoutConfig::MeanMax(m)) => Box::new(*m),
        Some(ReadoutConfig::Gigp { gigp }) => {
            let vb = enc.store.var_builder(DType::F32, &Device::Cpu).pp("readout");
            let g = Gigp::new(vb, enc.encoder.unit_dim(), gigp.clone())?;
            if let Some(windows) = train {
                let values = window_orbit_values(windows, gigp.orbit)?;
                g.set_centres(&Gigp::fit_centres(&values, gigp.bins), &enc.store.all())?;
            }
            Box::new(g)
        }
        Some(ReadoutConfig::Hsa { hsa }) => {
            let vb = enc.store.var_builder(DType::F32, &Device::Cpu).pp("readout");
            Box::new(Hsa::new(vb, &enc.encoder.layer_dims(), enc.encoder.unit_dim(), hsa.clone())?)
        }
        None => enc.encoder.readout(),
    })
}

/// A per-unit structure task run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitTaskRun {
    /// `dssp` (3-state secondary structure from `<file>.dssp` beside each structure),
    /// `ligand_contact` (residues within 4 Å of a ligand of ≥ 6 heavy atoms; the ligand is not
    /// an input) or `glycan_mobility` (monosaccharides whose mean B-factor exceeds the
    /// structure's monosaccharide mean; one window per structure, grouped by the glycan named in
    /// a `REMARK   1 GLYCAN` line so that one glycan stays in one split).
    pub task: String,
    /// Input structures.
    pub data: StructureData,
    /// The encoder configuration when not starting from `pretrained`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Value>,
    /// A run or checkpoint directory whose encoder to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// A graph readout whose window vector joins every unit row before the head (`{"nodes": …}`,
    /// `{"gigp": {…}}`, `{"hsa": {…}}`, weights under `readout.`); default: unit rows alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout: Option<ReadoutConfig>,
    /// Training settings.
    pub train: TrainConfig,
}

/// The encoder configuration of a task run: the checkpoint's, or the run's own.
pub(super) fn encoder_config(
    config_path: &Path,
    encoder: &Option<Value>,
    pretrained: &Option<PathBuf>,
) -> Result<(Value, Option<aa_pretrain::checkpoint::Checkpoint>)> {
    match (encoder, pretrained) {
        (Some(_), Some(_)) => bail!("give `encoder` or `pretrained` (whose encoder is used), not both"),
        (None, None) => bail!("give `encoder` (a configuration with its `family`) or `pretrained`"),
        (Some(e), None) => {
            let mut e = e.clone();
            resolve_lm(config_path, &mut e);
            Ok((e, None))
        }
        (None, Some(p)) => {
            let ck = pretrained_checkpoint(config_path, p)?;
            Ok((checkpoint_encoder(&ck)?, Some(ck)))
        }
    }
}

/// Builds the encoder and warm-starts it from `ck`.
pub(super) fn build(
    config: &Value,
    seed: u64,
    ck: Option<&aa_pretrain::checkpoint::Checkpoint>,
) -> Result<TrainableEncoder> {
    let enc = trainable_encoder(config, seed)?;
    if let Some(ck) = ck {
        let names: std::collections::HashSet<&str> = enc.names.iter().map(String::as_str).collect();
        warm_start(&enc.store.all(), ck, |k| names.contains(k))?;
    }
    Ok(enc)
}

/// Accuracy when every target is single-label, else macro-F1.
fn selection_metric(targets: &[Target]) -> &'static str {
    if targets.iter().any(|t| t.multi_label) {
        "macro_f1"
    } else {
        "accuracy"
    }
}

/// Fills the official vocabulary of a GlycanAA/RGCN configuration from `vocab_glycans`.
/// Whether an encoder configuration is GlycanAA / RGCN with the official featurisation (which
/// needs a link vocabulary and reads monosaccharides only).
fn official_glycan_featurisation(config: &Value) -> bool {
    let official = config.get("featurisation").and_then(Value::as_str).unwrap_or("official") == "official";
    official && matches!(config.get("family").and_then(Value::as_str), Some("glycanaa" | "rgcn"))
}

pub(super) fn fill_vocab(config: &mut Value, config_path: &Path, vocab_glycans: &Option<PathBuf>) -> Result<()> {
    if !official_glycan_featurisation(config) || config.get("vocab").is_some() {
        return Ok(());
    }
    let Some(p) = vocab_glycans else {
        bail!("the official featurisation needs a vocabulary: give `pretrained` or `vocab_glycans`");
    };
    let glycans = read_glycan_file(&resolve(config_path, p), None)?;
    config["vocab"] =
        serde_json::to_value(CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &glycans, 84))?;
    Ok(())
}

/// What glycan tasks offer an encoder.
pub(super) fn glycan_traits(task: &str) -> DataTraits {
    DataTraits { name: format!("glycan task {task}"), coordinates: false, unit_kinds: vec![UnitKind::Monosaccharide] }
}

/// The windows of every row in parallel: train, valid and test items, and how many glycans
/// could not be built.
fn glycan_items(task: &GlycanTask, graphs: &GlycanGraphs) -> ([Vec<GraphItem>; 3], usize) {
    let built: Vec<Option<(GraphItem, Split)>> = task
        .rows
        .par_iter()
        .map(|r| {
            let w = graphs.graph_as_glycanml(&r.glycan).ok().map(|g| Window::whole(Arc::new(g)));
            w.map(|w| (GraphItem { window: w, labels: r.labels.clone() }, r.split))
        })
        .collect();
    let skipped = built.iter().filter(|f| f.is_none()).count();
    let mut out: [Vec<GraphItem>; 3] = Default::default();
    for (item, split) in built.into_iter().flatten() {
        let k = match split {
            Split::Train => 0,
            Split::Valid => 1,
            Split::Test => 2,
        };
        out[k].push(item);
    }
    (out, skipped)
}

/// A graph-level glycan task.
pub(super) fn graph_task(config_path: &Path, cfg: &GraphTaskRun, run_dir: &Path) -> Result<Value> {
    let (mut encoder, ck) = encoder_config(config_path, &cfg.encoder, &cfg.pretrained)?;
    fill_vocab(&mut encoder, config_path, &cfg.vocab_glycans)?;
    let enc = build(&encoder, cfg.train.seed, ck.as_ref())?;
    check_pairing(enc.encoder.as_ref(), &glycan_traits(&cfg.task.name)).map_err(anyhow::Error::msg)?;
    let graphs = enc.family.glycan_graphs(&crate::families::split_config(&enc.config)?.1)?;
    let task_dir = resolve(config_path, &cfg.task.dir);
    let task = load(&task_dir, &cfg.task.name)?;
    let ([train, valid, test], skipped) = glycan_items(&task, &graphs);
    eprintln!(
        "{} on {}: {} train / {} valid / {} test glycans, {} classes ({skipped} not built for this encoder, skipped)",
        task.name,
        enc.family.name(),
        train.len(),
        valid.len(),
        test.len(),
        task.targets.iter().map(|t| t.classes.len().to_string()).collect::<Vec<_>>().join("+"),
    );
    let train_windows: Vec<&Window> = train.iter().map(|i| &i.window).collect();
    let readout = readout_of(&enc, &cfg.readout, Some(&train_windows))?;
    let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
    let objective = GraphTask::new(enc.encoder, readout, vb, task.targets.clone())?;
    let metric = selection_metric(&task.targets);
    let metadata = json!({
        "objective": "graph_task", "config": cfg, "encoder": enc.config, "targets": task.targets, "task": task.name,
        "task_dir": absolute(&task_dir),
    });
    let spec = RunSpec {
        run_dir,
        train: &cfg.train,
        vars: enc.store.all(),
        head_prefix: Some("mlp."),
        encoder_lr_scale: cfg.lr_ratio,
        selection: Selection { metric: metric.into(), higher_is_better: true },
        metadata,
    };
    let t = std::time::Instant::now();
    let report = fit(spec, &objective, &train, &valid)?;
    load_best(&enc.store.all(), &report)?;
    let test_metrics = objective.evaluate(&test)?;
    let test_windows: Vec<&Window> = test.iter().map(|i| &i.window).collect();
    let choices = choice_rates(objective.encoder.as_ref(), objective.readout.as_ref(), &test_windows)?;
    let extra = json!({
        "task": task.name, "family": enc.family.name(), "seed": cfg.train.seed, "pretrained": cfg.pretrained,
        "encoder": enc.config, "sizes": { "train": train.len(), "valid": valid.len(), "test": test.len(), "skipped": skipped },
        "test": test_metrics, "readout_choices": choices,
    });
    let summary = write_summary(run_dir, &report, extra, t.elapsed().as_secs_f64(), "glycans")?;
    eprintln!("best valid {metric}: {:?}; test: {:?}", report.state.best, summary["test"]);
    Ok(summary)
}

/// The glycan a structure file names in its `REMARK   1 GLYCAN <iupac>` line (written by
/// `cargo xtask fetch-data`), else the IUPAC strings of the glycans found in it.
fn glycan_key(path: &Path, s: &protein_aa::Structure) -> String {
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

/// Number of classes of a unit task and what its data offers an encoder.
pub fn unit_task_kind(task: &str) -> Result<(usize, DataTraits)> {
    let residues =
        |name: &str| DataTraits { name: name.into(), coordinates: true, unit_kinds: vec![UnitKind::Residue] };
    Ok(match task {
        "dssp" => (3, residues("dssp")),
        "ligand_contact" => (2, residues("ligand_contact")),
        "glycan_mobility" => (
            2,
            DataTraits {
                name: "glycan_mobility".into(),
                coordinates: true,
                unit_kinds: vec![UnitKind::Monosaccharide],
            },
        ),
        t => bail!("unknown task {t:?} (dssp, ligand_contact or glycan_mobility)"),
    })
}

/// Labelled windows of the structures under `paths`, grouped so that a group stays in one
/// split (one group per file, or per glycan for `glycan_mobility`), in reading order.
pub fn labelled_groups(task: &str, paths: &[PathBuf], window: usize) -> Result<Vec<Vec<LabelledWindow>>> {
    unit_task_kind(task)?;
    let mut groups: Vec<Vec<LabelledWindow>> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (path, s) in read_structures(paths, true)? {
        let labels = match task {
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
        let key = if task == "glycan_mobility" { glycan_key(&path, &s) } else { path.display().to_string() };
        let g = Arc::new(s.graph);
        let windows = if task == "glycan_mobility" {
            vec![whole_structure_window(g, &labels)]
        } else {
            labelled_windows(g, &labels, window)
        };
        let k = *group_of.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[k].extend(windows);
    }
    Ok(groups)
}

/// A per-unit structure task.
pub(super) fn unit_task(config_path: &Path, cfg: &UnitTaskRun, run_dir: &Path) -> Result<Value> {
    let (classes, traits) = unit_task_kind(&cfg.task)?;
    let (encoder, ck) = encoder_config(config_path, &cfg.encoder, &cfg.pretrained)?;
    let enc = build(&encoder, cfg.train.seed, ck.as_ref())?;
    check_pairing(enc.encoder.as_ref(), &traits).map_err(anyhow::Error::msg)?;
    let groups = labelled_groups(&cfg.task, &cfg.data.paths(config_path), cfg.data.window)?;
    let n_groups = groups.len();
    let [train, valid, test] = split_fractions(groups, cfg.train.seed, cfg.data.valid_fraction, cfg.data.test_fraction)
        .map(|s| s.into_iter().flatten().collect::<Vec<_>>());
    let count = |w: &[LabelledWindow]| w.iter().map(|w| w.labels.iter().flatten().count()).sum::<usize>();
    if count(&train) == 0 || count(&valid) == 0 || count(&test) == 0 {
        bail!("{n_groups} labelled structure groups are too few to split");
    }
    let family = enc.family.name();
    eprintln!(
        "{} on {family}: {n_groups} structure groups; {} / {} / {} labelled units (train / valid / test)",
        cfg.task,
        count(&train),
        count(&valid),
        count(&test)
    );
    let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
    let objective = match &cfg.readout {
        Some(_) => {
            let train_windows: Vec<&Window> = train.iter().map(|w| &w.window).collect();
            let context = readout_of(&enc, &cfg.readout, Some(&train_windows))?;
            UnitTask::with_context(enc.encoder, context, vb, classes)?
        }
        None => UnitTask::new(enc.encoder, vb, classes)?,
    };
    let metric = if classes == 2 { "auprc" } else { "accuracy" };
    let metadata = json!({ "objective": "unit_task", "config": cfg, "encoder": enc.config, "task": cfg.task });
    let spec = RunSpec {
        run_dir,
        train: &cfg.train,
        vars: enc.store.all(),
        head_prefix: Some("residue_cls."),
        encoder_lr_scale: 1.0,
        selection: Selection { metric: metric.into(), higher_is_better: true },
        metadata,
    };
    let t = std::time::Instant::now();
    let report = fit(spec, &objective, &train, &valid)?;
    load_best(&enc.store.all(), &report)?;
    let test_metrics = objective.evaluate(&test)?;
    let choices = match &objective.context {
        Some(r) => {
            let test_windows: Vec<&Window> = test.iter().map(|w| &w.window).collect();
            choice_rates(objective.encoder.as_ref(), r.as_ref(), &test_windows)?
        }
        None => None,
    };
    let extra = json!({
        "task": cfg.task, "family": family, "encoder": enc.config, "pretrained": cfg.pretrained, "seed": cfg.train.seed,
        "test": test_metrics, "units": { "train": count(&train), "valid": count(&valid), "test": count(&test) },
        "readout_choices": choices,
    });
    write_summary(run_dir, &report, extra, t.elapsed().as_secs_f64(), "windows").map_err(Into::into)
}

/// Why the encoder of task run `cfg` cannot read its data, if it cannot — without reading the
/// data (the encoder is built once, from its configuration or its checkpoint). `None` for
/// pretraining objectives.
pub fn pairing_error(config_path: &Path, cfg: &super::RunConfig) -> Result<Option<String>> {
    use super::RunConfig;
    let (encoder, pretrained, traits, vocab) = match cfg {
        RunConfig::GraphTask(c) => (&c.encoder, &c.pretrained, glycan_traits(&c.task.name), &c.vocab_glycans),
        RunConfig::UnitTask(c) => (&c.encoder, &c.pretrained, unit_task_kind(&c.task)?.1, &None),
        RunConfig::PairTask(c) => {
            let (e, p, v) = c.encoder_source();
            (e, p, glycan_traits(&c.task.name), v)
        }
        _ => return Ok(None),
    };
    let (mut config, ck) = encoder_config(config_path, encoder, pretrained)?;
    match cfg {
        RunConfig::GraphTask(_) | RunConfig::PairTask(_) => fill_vocab(&mut config, config_path, vocab)?,
        _ if official_glycan_featurisation(&config) && config.get("vocab").is_none() => {
            let family = config.get("family").and_then(Value::as_str).unwrap_or_default().to_string();
            return Ok(Some(format!(
                "{family} with the official featurisation reads monosaccharides only (set \"featurisation\": \"molecule\" for structures)"
            )));
        }
        _ => {}
    }
    let enc = build(&config, 0, ck.as_ref())?;
    Ok(check_pairing(enc.encoder.as_ref(), &traits).err())
}

/// `allatom eval`: a graph-task checkpoint (a run directory's best, or a checkpoint directory)
/// on one split of its task; `task_dir` overrides the recorded task directory.
pub fn eval(checkpoint: &Path, split: &str, task_dir: Option<&Path>) -> Result<Value> {
    let (dir, task, objective, items, skipped) = load_graph_split(checkpoint, split, task_dir)?;
    let metrics = objective.evaluate(&items)?;
    Ok(json!({
        "checkpoint": dir, "task": task.name, "split": split, "glycans": items.len(), "skipped": skipped, "metrics": metrics,
    }))
}

/// Graph embeddings of one split of a graph-task checkpoint's task.
#[derive(Clone, Debug)]
pub struct GraphEmbeddings {
    /// One row per glycan: the readout the head reads.
    pub rows: Vec<Vec<f32>>,
    /// Each glycan's class in the first target.
    pub labels: Vec<usize>,
    /// The first target's class names.
    pub classes: Vec<String>,
}

/// [`GraphEmbeddings`] of split `split` (`train`, `valid`, `test`) of a graph-task checkpoint
/// (a run directory's best, or a checkpoint directory).
pub fn graph_embeddings(checkpoint: &Path, split: &str) -> Result<GraphEmbeddings> {
    let (_, task, objective, items, _) = load_graph_split(checkpoint, split, None)?;
    let rows = objective.embeddings(&items)?.to_vec2::<f32>()?;
    let labels = items.iter().map(|i| i.labels[0].first().copied().unwrap_or(0)).collect();
    Ok(GraphEmbeddings { rows, labels, classes: task.targets[0].classes.clone() })
}

/// A graph-task checkpoint's model with its weights ([`graph_task_model`]).
pub struct GraphTaskModel {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Its metadata (task, targets, configuration).
    pub metadata: Value,
    /// Encoder, readout and head.
    pub task: GraphTask,
    /// The glycan graphs its encoder reads.
    pub graphs: GlycanGraphs,
}

/// The model of a graph-task checkpoint (a run directory's best, or a checkpoint directory):
/// its encoder, its readout (as configured: mean ‖ max, GIGP, HSA-Net) and its head, weights
/// loaded.
pub fn graph_task_model(checkpoint: &Path) -> Result<GraphTaskModel> {
    let dir = aa_pretrain::run::checkpoint_in(checkpoint)?;
    let ck = aa_pretrain::checkpoint::load_dir(&dir, &Device::Cpu)?;
    let meta = &ck.state["metadata"];
    if meta["objective"].as_str() != Some("graph_task") {
        bail!("{}: not a graph-task checkpoint (its objective is {})", dir.display(), meta["objective"]);
    }
    let targets: Vec<Target> =
        serde_json::from_value(meta["targets"].clone()).with_context(|| format!("{}: no targets", dir.display()))?;
    let enc = trainable_encoder(&checkpoint_encoder(&ck)?, 0)?;
    let graphs = enc.family.glycan_graphs(&crate::families::split_config(&enc.config)?.1)?;
    let chosen: Option<ReadoutConfig> = serde_json::from_value(meta["config"]["readout"].clone())
        .with_context(|| format!("{}: the recorded readout is not a readout configuration", dir.display()))?;
    let readout = readout_of(&enc, &chosen, None)?;
    let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
    let store = enc.store.clone();
    let task = GraphTask::new(enc.encoder, readout, vb, targets)?;
    warm_start(&store.all(), &ck, |_| true)?;
    Ok(GraphTaskModel { metadata: meta.clone(), dir, task, graphs })
}

/// A graph-task checkpoint's task, its model (weights loaded) and the items of one split.
#[allow(clippy::type_complexity)]
fn load_graph_split(
    checkpoint: &Path,
    split: &str,
    task_dir: Option<&Path>,
) -> Result<(PathBuf, GlycanTask, GraphTask, Vec<GraphItem>, usize)> {
    let which = match split {
        "train" => 0,
        "valid" => 1,
        "test" => 2,
        other => bail!("--split {other}: expected train, valid or test"),
    };
    let m = graph_task_model(checkpoint)?;
    let (dir, meta, objective, graphs) = (m.dir, m.metadata, m.task, m.graphs);
    let targets = objective.targets.clone();
    let name = meta["task"].as_str().context("no task name in the checkpoint")?;
    let task_dir = match (task_dir, meta["task_dir"].as_str()) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => bail!("{}: no task directory recorded; give --task-dir", dir.display()),
    };
    let task = load(&task_dir, name)?;
    if task.targets != targets {
        bail!(
            "{}: task {name} in {} has other classes than the checkpoint was trained on",
            dir.display(),
            task_dir.display()
        );
    }
    let (mut items, skipped) = glycan_items(&task, &graphs);
    let items = std::mem::take(&mut items[which]);
    Ok((dir, task, objective, items, skipped))
}
