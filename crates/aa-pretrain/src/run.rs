//! Run orchestration, once for every objective and family: paths relative to a run
//! configuration, the seeded split, checkpoint resolution, warm starts, the fit with its
//! parameter groups and progress bar, and the run's `summary.json`.

use std::path::{Path, PathBuf};

use candle_core::{Result, Var};

use crate::checkpoint::{Checkpoint, CheckpointDir};
use crate::rng::Rng;
use crate::trainer::{Objective, RunDir, Selection, TrainConfig, TrainReport, Trainer};
use crate::ParamGroup;

/// Named variables.
pub type Named = Vec<(String, Var)>;

fn msg(m: String) -> candle_core::Error {
    candle_core::Error::Msg(m)
}

/// A path from a run configuration, relative to the configuration file.
pub fn resolve(config_path: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// The one seeded split: `items` shuffled with `seed ^ 0x5EED_5EED`, the last `n_test` go to
/// test, the `n_valid` before them to validation, the rest to training (counts are clamped to
/// what there is).
pub fn split_counts<T>(mut items: Vec<T>, seed: u64, n_valid: usize, n_test: usize) -> [Vec<T>; 3] {
    Rng::new(seed ^ 0x5EED_5EED).shuffle(&mut items);
    let n = items.len();
    let nv = n_valid.min(n);
    let nt = n_test.min(n - nv);
    let test = items.split_off(n - nt);
    let valid = items.split_off(items.len() - nv);
    [items, valid, test]
}

/// [`split_counts`] with fractions (rounded) of the items.
pub fn split_fractions<T>(items: Vec<T>, seed: u64, valid: f64, test: f64) -> [Vec<T>; 3] {
    let n = items.len() as f64;
    let (nv, nt) = ((n * valid).round() as usize, (n * test).round() as usize);
    split_counts(items, seed, nv, nt)
}

/// Splits variables into trainable parameters and buffers — BatchNorm's `running_*` statistics
/// and any variable whose last name part starts with `buffer_` (GIGP's fitted orbit centres):
/// saved with a run, not optimised.
pub fn split_buffers(vars: Named) -> (Named, Named) {
    vars.into_iter()
        .partition(|(k, _)| !k.contains("running_") && !k.rsplit('.').next().unwrap_or(k).starts_with("buffer_"))
}

/// A checkpoint directory (holds `state.json`) as given, or a run directory's best checkpoint
/// (its latest when none is marked best).
pub fn checkpoint_in(path: &Path) -> Result<PathBuf> {
    if path.join("state.json").exists() {
        return Ok(path.to_path_buf());
    }
    let root = path.join("checkpoints");
    if root.is_dir() {
        let c = CheckpointDir::new(root, usize::MAX)?;
        if let Some(d) = c.resolve("best")?.or(c.resolve("latest")?) {
            return Ok(d);
        }
    }
    Err(msg(format!(
        "{}: neither a checkpoint directory (no state.json) nor a run directory with checkpoints",
        path.display()
    )))
}

/// Sets every variable of `vars` whose name `take` accepts from `checkpoint`; a missing name or
/// another shape is an error that names both. Returns how many were set.
pub fn warm_start(vars: &[(String, Var)], checkpoint: &Checkpoint, take: impl Fn(&str) -> bool) -> Result<usize> {
    let mut n = 0;
    for (name, var) in vars.iter().filter(|(k, _)| take(k)) {
        let t = checkpoint.model.get(name).ok_or_else(|| {
            msg(format!("{}: no {name} (not a checkpoint of this encoder)", checkpoint.dir.display()))
        })?;
        if t.shape() != var.shape() {
            return Err(msg(format!(
                "{}: {name} is {:?}, the model wants {:?}",
                checkpoint.dir.display(),
                t.shape(),
                var.shape()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
        n += 1;
    }
    Ok(n)
}

/// What a run trains: parameter groups (by name prefix of the head, with their learning-rate
/// scales), the selection metric and what every checkpoint records.
pub struct RunSpec<'a> {
    /// The run directory.
    pub run_dir: &'a Path,
    /// Training settings.
    pub train: &'a TrainConfig,
    /// Every variable of the model (parameters and buffers).
    pub vars: Named,
    /// Variables whose name starts with this prefix form the head group (learning-rate scale
    /// 1); the others the encoder group with `encoder_lr_scale`. `None`: one group.
    pub head_prefix: Option<&'a str>,
    /// Learning-rate multiplier of the encoder group.
    pub encoder_lr_scale: f64,
    /// Which validation metric picks the best checkpoint.
    pub selection: Selection,
    /// Stored in every checkpoint (`metadata`): the run and encoder configuration.
    pub metadata: serde_json::Value,
}

/// Trains `objective` as `spec` says (resuming from the run's latest checkpoint), with a
/// progress bar on stderr.
pub fn fit<O: Objective>(spec: RunSpec, objective: &O, train: &[O::Item], valid: &[O::Item]) -> Result<TrainReport> {
    let (params, buffers) = split_buffers(spec.vars);
    let groups = match spec.head_prefix {
        Some(prefix) => {
            let (head, encoder): (Named, Named) = params.into_iter().partition(|(k, _)| k.starts_with(prefix));
            vec![
                ParamGroup { vars: encoder, lr_scale: spec.encoder_lr_scale, weight_decay: None },
                ParamGroup { vars: head, lr_scale: 1.0, weight_decay: None },
            ]
        }
        None => vec![ParamGroup { vars: params, lr_scale: 1.0, weight_decay: None }],
    };
    let mut trainer =
        Trainer::new(spec.train.clone(), groups, buffers, spec.selection, RunDir { path: spec.run_dir.to_path_buf() })?;
    trainer.progress = true;
    trainer.metadata = spec.metadata;
    trainer.fit(objective, train, valid)
}

/// Sets every variable from the run's best checkpoint (what a test evaluation uses).
pub fn load_best(vars: &[(String, Var)], report: &TrainReport) -> Result<PathBuf> {
    let best = report.best_checkpoint.clone().ok_or_else(|| msg("the run saved no best checkpoint".into()))?;
    let ck = crate::checkpoint::load_dir(&best, &candle_core::Device::Cpu)?;
    warm_start(vars, &ck, |_| true)?;
    Ok(best)
}

/// Writes the run's `summary.json` — `extra` (what was trained on, test metrics) plus the
/// trainer's history — and prints the last epoch on stderr. Returns the summary.
pub fn write_summary(
    run_dir: &Path,
    report: &TrainReport,
    extra: serde_json::Value,
    seconds: f64,
    items: &str,
) -> Result<serde_json::Value> {
    let mut summary = serde_json::json!({
        "epochs_done": report.state.history.len(),
        "steps": report.state.step,
        "seconds_this_call": seconds,
        "history": report.state.history,
        "best": report.state.best,
        "best_checkpoint": report.best_checkpoint,
    });
    if let (Some(s), Some(c)) = (summary.as_object_mut(), extra.as_object()) {
        s.extend(c.clone());
    }
    let text = serde_json::to_string_pretty(&summary).map_err(|e| msg(e.to_string()))?;
    crate::checkpoint::write_atomic(&run_dir.join("summary.json"), text.as_bytes())?;
    if let Some(last) = report.state.history.last() {
        eprintln!(
            "epoch {}: train loss {:.4}, valid {:?}, {:.0} {items}/s",
            last.epoch, last.train_loss, last.valid, last.items_per_second
        );
    }
    eprintln!("{} steps; run directory {}", report.state.step, run_dir.display());
    Ok(summary)
}
