//! Comparative experiments (`allatom compare`): encoders × tasks × seeds under one training
//! budget, each (encoder, task, seed) an ordinary resumable run directory, and the results as
//! tables (`results.md`), rows (`results.csv`, `results.json`) and plots (`plots/<task>_test`
//! bars of the headline test metric per encoder with ± sd, `plots/<task>_valid` validation
//! curves per encoder, `plots/<task>_<encoder>_pca` maps of graph embeddings coloured by class;
//! SVG and PNG, [`PLOT_SIZE`]).
//!
//! An experiment file (JSON; relative paths are relative to it):
//!
//! ```json
//! { "encoders": [ { "name": "rgcn", "encoder": { "family": "rgcn", "model": { … } } },
//!                 { "name": "preglycanaa", "pretrained": "../runs/preglycanaa_small" } ],
//!   "tasks": [ { "name": "glycan_type",
//!                "run": { "objective": "graph_task", "task": { "dir": "../data/tasks", "name": "glycan_type" },
//!                         "vocab_glycans": "../data/tasks/glycan_type.csv" } },
//!              { "name": "dssp", "run": { "objective": "unit_task", "task": "dssp", "data": { … } } } ],
//!   "seeds": [0, 1, 2],
//!   "train": { "epochs": 20, "batch_size": 32, "optimizer": { "lr": 0.001 }, … } }
//! ```
//!
//! A task's `run` is a task run configuration without `encoder`, `pretrained` and `train`; the
//! encoder entry supplies the first two, the experiment the budget (the seed replaced per run;
//! a task's own `train` may set what suits the task — batch size, learning rate — for every
//! encoder alike). An encoder's `tasks` limits it to some tasks.
//! Pairings an encoder cannot read are listed before anything trains and skipped. A run whose
//! `summary.json` exists is finished and skipped; any other run directory resumes from its
//! latest checkpoint. Each run directory records its configuration ([`CELL_FILE`]); if the
//! experiment now gives another one, the command stops before training anything and names the
//! directory.
//!
//! Progress goes to stderr: on a terminal one bar over the matrix with each run's step bar under
//! it and status lines above; in a log file (no bars) one line per run event and per epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::runs::{pairing_error, run, Overrides, RunConfig};

/// One encoder of an experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentEncoder {
    /// Name in tables and run directories (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// An encoder configuration with its `family`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Value>,
    /// A pretraining run or checkpoint directory whose encoder to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// Run only on these tasks (default: every task); e.g. a molecule-featurised GlycanAA for
    /// the structure tasks beside the official one for the glycan tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<String>>,
    /// Fields added to every task run of this encoder, e.g. `{"readout": {"hsa": {}}}` for a
    /// readout ablation (a field the task's `run` also sets is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<serde_json::Map<String, Value>>,
}

/// One task of an experiment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentTask {
    /// Name in tables and run directories.
    pub name: String,
    /// The task run configuration without `encoder`, `pretrained` and `train`.
    pub run: Value,
    /// Task-level training settings merged over the experiment's `train` (batch size and
    /// learning rate suit a task, not an encoder: every encoder gets the same), one level deep
    /// (`{"optimizer": {"lr": …}}` replaces only the rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<Value>,
}

/// An experiment file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The encoders.
    pub encoders: Vec<ExperimentEncoder>,
    /// The tasks.
    pub tasks: Vec<ExperimentTask>,
    /// Seeds (each also draws the split of structure tasks).
    pub seeds: Vec<u64>,
    /// The one training budget (a `train` section; its `seed` is replaced).
    pub train: Value,
}

/// The file in each run directory that records the run configuration it was made with.
pub const CELL_FILE: &str = "compare_run.json";

/// One (encoder, task, seed) of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Encoder name.
    pub encoder: String,
    /// Task name.
    pub task: String,
    /// Seed.
    pub seed: u64,
    /// The run configuration.
    pub config: RunConfig,
    /// Its run directory.
    pub dir: PathBuf,
}

/// Merges object `patch` into object `base`, one level deep (nested objects are merged key by
/// key, everything else replaced).
fn merge(base: &mut Value, patch: &Value) -> Result<()> {
    let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) else {
        bail!("training settings must be a JSON object");
    };
    for (k, v) in p {
        match (b.get_mut(k), v) {
            (Some(Value::Object(inner)), Value::Object(pv)) => inner.extend(pv.clone()),
            _ => {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || name.starts_with('.')
    {
        bail!("{kind} name {name:?}: use letters, digits, '-', '_' and '.' (it names run directories)");
    }
    Ok(())
}

impl Experiment {
    /// Reads an experiment file; errors name the file and the field.
    pub fn read(path: &Path) -> Result<Experiment> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let e: Experiment = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an experiment (encoders, tasks, seeds, train)", path.display()))?;
        if e.encoders.is_empty() || e.tasks.is_empty() || e.seeds.is_empty() {
            bail!("{}: an experiment needs at least one encoder, one task and one seed", path.display());
        }
        if e.seeds.iter().collect::<std::collections::HashSet<_>>().len() != e.seeds.len() {
            bail!("{}: a seed appears twice", path.display());
        }
        for enc in &e.encoders {
            for t in enc.tasks.iter().flatten() {
                if !e.tasks.iter().any(|x| &x.name == t) {
                    bail!(
                        "{}: encoder {} lists task {t:?}, which the experiment does not have",
                        path.display(),
                        enc.name
                    );
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for n in e.encoders.iter().map(|x| ("encoder", &x.name)).chain(e.tasks.iter().map(|t| ("task", &t.name))) {
            check_name(n.0, n.1)?;
            if !seen.insert((n.0, n.1.clone())) {
                bail!("{}: {} {:?} appears twice", path.display(), n.0, n.1);
            }
        }
        Ok(e)
    }

    /// Every (encoder, task, seed) with its run configuration, seeds outermost (an interrupted
    /// matrix has whole seeds done: every encoder on every task), then tasks, then encoders.
    pub fn cells(&self, out: &Path) -> Result<Vec<Cell>> {
        let mut cells = Vec::new();
        for &seed in &self.seeds {
            for t in &self.tasks {
                for e in self.encoders.iter().filter(|e| e.tasks.as_ref().is_none_or(|only| only.contains(&t.name))) {
                    let Some(obj) = t.run.as_object() else { bail!("task {}: `run` must be an object", t.name) };
                    for k in ["encoder", "pretrained", "train"] {
                        if obj.contains_key(k) {
                            bail!(
                                "task {}: `run` may not hold `{k}` (the encoder entry and the experiment give it)",
                                t.name
                            );
                        }
                    }
                    let mut run = obj.clone();
                    for (k, v) in e.run.iter().flatten() {
                        if ["encoder", "pretrained", "train"].contains(&k.as_str()) || run.contains_key(k) {
                            bail!(
                                "encoder {}: `run` sets `{k}`, which the task {} or the experiment already gives",
                                e.name,
                                t.name
                            );
                        }
                        run.insert(k.clone(), v.clone());
                    }
                    if let Some(enc) = &e.encoder {
                        run.insert("encoder".into(), enc.clone());
                    }
                    if let Some(p) = &e.pretrained {
                        run.insert("pretrained".into(), json!(p));
                    }
                    let mut train = self.train.clone();
                    if let Some(patch) = &t.train {
                        merge(&mut train, patch).with_context(|| format!("task {}: `train`", t.name))?;
                    }
                    train["seed"] = json!(seed);
                    run.insert("train".into(), train);
                    let config: RunConfig = serde_json::from_value(Value::Object(run))
                        .with_context(|| format!("encoder {} × task {}: not a run configuration", e.name, t.name))?;
                    if config.is_pretraining() {
                        bail!(
                            "task {}: a pretraining objective; compare takes graph_task, unit_task and pair_task",
                            t.name
                        );
                    }
                    cells.push(Cell {
                        encoder: e.name.clone(),
                        task: t.name.clone(),
                        seed,
                        config,
                        dir: out.join("runs").join(format!("{}__{}__s{seed}", e.name, t.name)),
                    });
                }
            }
        }
        Ok(cells)
    }
}

/// One finished run, as `results.json` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultRow {
    /// Encoder name.
    pub encoder: String,
    /// Task name.
    pub task: String,
    /// Seed.
    pub seed: u64,
    /// Encoder family.
    pub family: String,
    /// Test metrics (at the best validation epoch).
    pub test: BTreeMap<String, f64>,
    /// The best validation value of the selection metric and its epoch.
    pub best_valid: Option<f64>,
    /// Epoch of `best_valid`.
    pub best_epoch: Option<u64>,
    /// Epochs trained.
    pub epochs: Option<u64>,
    /// Seconds of the call that finished the run.
    pub seconds: Option<f64>,
    /// The run directory.
    pub dir: PathBuf,
    /// Validation metrics per epoch (`(epoch, metrics)`, epochs from 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid_history: Vec<(u64, BTreeMap<String, f64>)>,
    /// Per encoder layer, the fraction of test inputs for which the readout chose its second
    /// option (HSA-Net: the Mamba projector), for readouts that choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout_choices: Option<Vec<f64>>,
}

fn row_of(cell: &Cell, summary: &Value) -> ResultRow {
    let test = summary["test"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v))).collect())
        .unwrap_or_default();
    ResultRow {
        encoder: cell.encoder.clone(),
        task: cell.task.clone(),
        seed: cell.seed,
        family: summary["family"].as_str().unwrap_or_default().to_string(),
        test,
        best_valid: summary["best"][0].as_f64(),
        best_epoch: summary["best"][1].as_u64(),
        epochs: summary["epochs_done"].as_u64(),
        seconds: summary["seconds_this_call"].as_f64(),
        dir: cell.dir.clone(),
        valid_history: summary["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter_map(|r| {
                        let m = r["valid"].as_object()?;
                        let m = m.iter().filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v))).collect();
                        Some((r["epoch"].as_u64()? + 1, m))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        readout_choices: summary["readout_choices"].as_array().map(|v| v.iter().filter_map(Value::as_f64).collect()),
    }
}

/// What [`compare`] did.
#[derive(Clone, Debug, Default)]
pub struct Compared {
    /// Finished runs (this call's and earlier ones).
    pub rows: Vec<ResultRow>,
    /// `(encoder, task, reason)` of the pairings skipped.
    pub skipped: Vec<(String, String, String)>,
    /// Runs that failed: `(encoder, task, seed, error)`.
    pub failed: Vec<(String, String, u64, String)>,
    /// Runs skipped because they had finished before.
    pub reused: usize,
}

/// Runs (or resumes) the experiment in `path`, writing run directories under `out/runs/` and
/// `results.md`, `results.csv`, `results.json` in `out` (rewritten after every run, so an
/// interrupted experiment leaves the tables of what finished). Progress goes to stderr, one line
/// per event.
pub fn compare(path: &Path, out: &Path) -> Result<Compared> {
    let exp = Experiment::read(path)?;
    let cells = exp.cells(out)?;
    // Impossible pairings, once per (encoder, task), before anything trains.
    let mut res = Compared::default();
    let mut refused = std::collections::HashSet::new();
    for c in cells.iter().filter(|c| c.seed == exp.seeds[0]) {
        if let Some(why) = pairing_error(path, &c.config).with_context(|| format!("{} × {}", c.encoder, c.task))? {
            eprintln!("skip {} × {}: {why}", c.encoder, c.task);
            refused.insert((c.encoder.clone(), c.task.clone()));
            res.skipped.push((c.encoder.clone(), c.task.clone(), why));
        }
    }
    // Nothing is written before the experiment has been checked whole.
    std::fs::create_dir_all(out.join("runs")).with_context(|| format!("creating {}", out.display()))?;
    let todo: Vec<&Cell> = cells.iter().filter(|c| !refused.contains(&(c.encoder.clone(), c.task.clone()))).collect();
    let total = todo.len();
    let start = std::time::Instant::now();
    let matrix =
        aa_pretrain::progress::bar(total as u64, "{bar:30} {pos}/{len} runs of the matrix  {msg}  [{elapsed}]");
    let line = aa_pretrain::progress::line;
    // A run directory made with another configuration (the experiment file changed since) is
    // neither reused nor resumed: say which, before anything trains.
    for c in &todo {
        let recorded = c.dir.join(CELL_FILE);
        if let Ok(text) = std::fs::read_to_string(&recorded) {
            let now = serde_json::to_value(&c.config)?;
            if serde_json::from_str::<Value>(&text).ok().as_ref() != Some(&now) {
                bail!(
                    "{}: made with another configuration of {} × {} seed {} than the experiment now gives; \
                     remove that run directory to run it again, or use another --out",
                    c.dir.display(),
                    c.encoder,
                    c.task,
                    c.seed
                );
            }
        }
    }
    for (i, c) in todo.iter().enumerate() {
        matrix.set_position(i as u64);
        matrix.set_message(format!("{} × {} seed {}", c.encoder, c.task, c.seed));
        let label = format!("[{}/{total}] {} × {} seed {}", i + 1, c.encoder, c.task, c.seed);
        let summary_path = c.dir.join("summary.json");
        if let Ok(text) = std::fs::read_to_string(&summary_path) {
            if let Ok(summary) = serde_json::from_str::<Value>(&text) {
                line(&format!("{label}: finished before, kept"));
                res.rows.push(row_of(c, &summary));
                res.reused += 1;
                continue;
            }
        }
        line(&format!(
            "{label}: {} ({:.0} s into the matrix)",
            if c.dir.exists() { "resuming" } else { "running" },
            start.elapsed().as_secs_f64()
        ));
        let t = std::time::Instant::now();
        std::fs::create_dir_all(&c.dir).with_context(|| format!("creating {}", c.dir.display()))?;
        std::fs::write(c.dir.join(CELL_FILE), serde_json::to_vec_pretty(&c.config)?)
            .with_context(|| format!("writing {}", c.dir.join(CELL_FILE).display()))?;
        match run(path, c.config.clone(), &c.dir, &Overrides::default()) {
            Ok(summary) => {
                let row = row_of(c, &summary);
                line(&format!("{label}: done in {:.0} s, test {}", t.elapsed().as_secs_f64(), metrics_line(&row.test)));
                res.rows.push(row);
            }
            Err(e) => {
                line(&format!("{label}: failed: {e:#}"));
                res.failed.push((c.encoder.clone(), c.task.clone(), c.seed, format!("{e:#}")));
            }
        }
        write_results(out, &exp, &res)?;
    }
    matrix.finish_and_clear();
    line(&format!("matrix: {total} runs in {:.0} s", start.elapsed().as_secs_f64()));
    write_results(out, &exp, &res)?;
    let graph_tasks: std::collections::HashSet<&str> =
        cells.iter().filter(|c| matches!(c.config, RunConfig::GraphTask(_))).map(|c| c.task.as_str()).collect();
    write_maps(out, &exp, &res, &graph_tasks)?;
    Ok(res)
}

/// Classes drawn in their own colour on an embedding map; the rest are "other".
const MAP_CLASSES: usize = 9;

/// Per graph task and encoder, `plots/<task>_<encoder>_pca`: the first two principal components
/// of the test glycans' graph embeddings (the readout the head reads) from the first seed's
/// best checkpoint, coloured by class (of the first target; the most frequent classes, the rest
/// as "other").
fn write_maps(
    out: &Path,
    exp: &Experiment,
    res: &Compared,
    graph_tasks: &std::collections::HashSet<&str>,
) -> Result<()> {
    use aa_plot::{Chart, Marks, Series};
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for t in exp.tasks.iter().filter(|t| graph_tasks.contains(t.name.as_str())) {
        for e in &exp.encoders {
            let Some(row) = res.rows.iter().find(|r| r.task == t.name && r.encoder == e.name) else { continue };
            let crate::runs::GraphEmbeddings { rows: emb, labels, classes } =
                crate::runs::graph_embeddings(&row.dir, "test")
                    .with_context(|| format!("embeddings of {} × {}", e.name, t.name))?;
            let xy = aa_plot::pca_2d(&emb);
            if xy.is_empty() {
                continue;
            }
            let mut count = vec![0usize; classes.len().max(1)];
            for &l in &labels {
                if let Some(c) = count.get_mut(l) {
                    *c += 1;
                }
            }
            let mut order: Vec<usize> = (0..count.len()).filter(|&c| count[c] > 0).collect();
            order.sort_by(|a, b| count[*b].cmp(&count[*a]).then(a.cmp(b)));
            let shown: Vec<usize> = order.iter().copied().take(MAP_CLASSES).collect();
            let mut series: Vec<Series> = shown
                .iter()
                .map(|&c| Series {
                    label: classes.get(c).cloned().unwrap_or_else(|| c.to_string()),
                    points: Vec::new(),
                })
                .collect();
            let mut other = Series { label: "other".into(), points: Vec::new() };
            for (&p, &l) in xy.iter().zip(&labels) {
                match shown.iter().position(|&c| c == l) {
                    Some(k) => series[k].points.push(p),
                    None => other.points.push(p),
                }
            }
            if !other.points.is_empty() {
                series.push(other);
            }
            let chart = Chart {
                title: format!("{} × {}: test graph embeddings, seed {}", t.name, e.name, row.seed),
                x_label: "principal component 1".into(),
                y_label: "principal component 2".into(),
                marks: Marks::Points(series),
            };
            files.extend(chart_files(out, &format!("{}_{}_pca", t.name, e.name), &chart)?);
        }
    }
    let refs: Vec<(&Path, &[u8])> = files.iter().map(|(p, b)| (p.as_path(), b.as_slice())).collect();
    if !refs.is_empty() {
        aa_pretrain::checkpoint::write_set(&refs)?;
    }
    Ok(())
}

fn metrics_line(m: &BTreeMap<String, f64>) -> String {
    m.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", ")
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (mean, sd)
}

/// Writes `results.json` (one row per finished run), `results.csv` (the same, one column per
/// metric) and `results.md` (per task: encoders × test metrics, mean ± sd over seeds; skipped
/// pairings and failures listed).
pub fn write_results(out: &Path, exp: &Experiment, res: &Compared) -> Result<()> {
    let metrics: std::collections::BTreeSet<&String> = res.rows.iter().flat_map(|r| r.test.keys()).collect();
    let json = serde_json::to_vec_pretty(&json!({
        "rows": res.rows,
        "skipped": res.skipped.iter().map(|(e, t, w)| json!({"encoder": e, "task": t, "reason": w})).collect::<Vec<_>>(),
        "failed": res.failed.iter().map(|(e, t, s, w)| json!({"encoder": e, "task": t, "seed": s, "error": w})).collect::<Vec<_>>(),
    }))?;
    let mut csv = String::from("encoder,task,seed,family,best_valid,best_epoch,epochs,seconds");
    for m in &metrics {
        csv.push_str(&format!(",test_{m}"));
    }
    csv.push('\n');
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for r in &res.rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{}",
            r.encoder,
            r.task,
            r.seed,
            r.family,
            opt(r.best_valid),
            r.best_epoch.map(|e| e.to_string()).unwrap_or_default(),
            r.epochs.map(|e| e.to_string()).unwrap_or_default(),
            opt(r.seconds)
        ));
        for m in &metrics {
            csv.push_str(&format!(",{}", opt(r.test.get(*m).copied())));
        }
        csv.push('\n');
    }
    let mut md = String::from(
        "# Results\n\nTest metrics at the best validation epoch, mean ± sd over the seeds that finished (n).\n",
    );
    for t in &exp.tasks {
        let rows: Vec<&ResultRow> = res.rows.iter().filter(|r| r.task == t.name).collect();
        let names: Vec<&String> = {
            let set: std::collections::BTreeSet<&String> = rows.iter().flat_map(|r| r.test.keys()).collect();
            set.into_iter().collect()
        };
        md.push_str(&format!("\n## {}\n\n", t.name));
        if rows.is_empty() {
            md.push_str("No finished runs.\n");
            continue;
        }
        md.push_str("| encoder | n |");
        for m in &names {
            md.push_str(&format!(" {m} |"));
        }
        md.push_str("\n| --- | --- |");
        md.push_str(&" --- |".repeat(names.len()));
        md.push('\n');
        for e in &exp.encoders {
            let mine: Vec<&&ResultRow> = rows.iter().filter(|r| r.encoder == e.name).collect();
            if mine.is_empty() {
                continue;
            }
            md.push_str(&format!("| {} | {} |", e.name, mine.len()));
            for m in &names {
                let v: Vec<f64> = mine.iter().filter_map(|r| r.test.get(*m).copied()).collect();
                if v.is_empty() {
                    md.push_str(" |");
                } else {
                    let (mean, sd) = mean_sd(&v);
                    md.push_str(&format!(" {mean:.4} ± {sd:.4} |"));
                }
            }
            md.push('\n');
        }
    }
    let chose: Vec<&ResultRow> = res.rows.iter().filter(|r| r.readout_choices.is_some()).collect();
    if !chose.is_empty() {
        md.push_str("\n## Readout choices\n\nPer encoder layer (first to last), the fraction of test inputs whose gate chose the second projector (HSA-Net: Mamba over attention).\n\n| task | encoder | seed | per layer |\n| --- | --- | --- | --- |\n");
        for r in chose {
            let v: Vec<String> = r.readout_choices.iter().flatten().map(|x| format!("{x:.3}")).collect();
            md.push_str(&format!("| {} | {} | {} | {} |\n", r.task, r.encoder, r.seed, v.join(", ")));
        }
    }
    if !res.skipped.is_empty() {
        md.push_str("\n## Pairings skipped\n\n");
        for (e, t, w) in &res.skipped {
            md.push_str(&format!("- {e} × {t}: {w}\n"));
        }
    }
    if !res.failed.is_empty() {
        md.push_str("\n## Failed runs\n\n");
        for (e, t, s, w) in &res.failed {
            md.push_str(&format!("- {e} × {t} seed {s}: {}\n", w.lines().next().unwrap_or_default()));
        }
    }
    let mut files = vec![
        (out.join("results.json"), json),
        (out.join("results.csv"), csv.into_bytes()),
        (out.join("results.md"), md.into_bytes()),
    ];
    std::fs::create_dir_all(out.join("plots")).with_context(|| format!("creating {}/plots", out.display()))?;
    for (name, chart) in charts(exp, res) {
        files.extend(chart_files(out, &name, &chart)?);
    }
    let refs: Vec<(&Path, &[u8])> = files.iter().map(|(p, b)| (p.as_path(), b.as_slice())).collect();
    Ok(aa_pretrain::checkpoint::write_set(&refs)?)
}

/// `plots/<name>.svg` and `plots/<name>.png` of a chart, at [`PLOT_SIZE`].
fn chart_files(out: &Path, name: &str, chart: &aa_plot::Chart) -> Result<[(PathBuf, Vec<u8>); 2]> {
    let (w, h) = PLOT_SIZE;
    Ok([
        (out.join(format!("plots/{name}.svg")), chart.svg(w, h).into_bytes()),
        (out.join(format!("plots/{name}.png")), chart.png(w, h)?),
    ])
}

/// Size of every plot, pixels.
pub const PLOT_SIZE: (u32, u32) = (640, 360);

/// The metric a task's plots show: AUPRC for binary tasks, else macro-F1, Spearman for the
/// interaction regression, else the first.
fn headline(rows: &[&ResultRow]) -> Option<String> {
    let names: std::collections::BTreeSet<&String> = rows.iter().flat_map(|r| r.test.keys()).collect();
    ["auprc", "macro_f1", "spearman"]
        .iter()
        .find(|m| names.iter().any(|n| n == *m))
        .map(|m| m.to_string())
        .or_else(|| names.iter().next().map(|s| s.to_string()))
}

/// Per task: `<task>_test` (bars: the headline test metric per encoder, mean ± sd over seeds)
/// and `<task>_valid` (lines: the headline validation metric per epoch, mean over seeds).
fn charts(exp: &Experiment, res: &Compared) -> Vec<(String, aa_plot::Chart)> {
    use aa_plot::{Bar, Chart, Marks, Series};
    let mut out = Vec::new();
    for t in &exp.tasks {
        let rows: Vec<&ResultRow> = res.rows.iter().filter(|r| r.task == t.name).collect();
        let Some(metric) = headline(&rows) else { continue };
        let mut bars = Vec::new();
        let mut curves = Vec::new();
        for e in &exp.encoders {
            let mine: Vec<&&ResultRow> = rows.iter().filter(|r| r.encoder == e.name).collect();
            let v: Vec<f64> = mine.iter().filter_map(|r| r.test.get(&metric).copied()).collect();
            if v.is_empty() {
                continue;
            }
            let (mean, sd) = mean_sd(&v);
            bars.push(Bar { label: e.name.clone(), value: mean, error: sd });
            let mut by_epoch: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for r in &mine {
                for (ep, m) in &r.valid_history {
                    if let Some(x) = m.get(&metric) {
                        by_epoch.entry(*ep).or_default().push(*x);
                    }
                }
            }
            let points = by_epoch.into_iter().map(|(ep, xs)| (ep as f64, mean_sd(&xs).0)).collect();
            curves.push(Series { label: e.name.clone(), points });
        }
        let n = exp.seeds.len();
        out.push((
            format!("{}_test", t.name),
            Chart {
                title: format!("{}: test {metric} (mean ± sd over up to {n} seeds)", t.name),
                x_label: "encoder".into(),
                y_label: format!("test {metric}"),
                marks: Marks::Bars(bars),
            },
        ));
        out.push((
            format!("{}_valid", t.name),
            Chart {
                title: format!("{}: validation {metric} per epoch (mean over seeds)", t.name),
                x_label: "epoch".into(),
                y_label: format!("validation {metric}"),
                marks: Marks::Lines(curves),
            },
        ));
    }
    out
}
