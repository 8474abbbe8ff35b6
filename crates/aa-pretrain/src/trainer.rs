//! The trainer every encoder family uses: epochs of shuffled mini-batches, AdamW with
//! parameter groups and a schedule, gradient clipping, validation after every epoch with the
//! best checkpoint kept, early stopping, crash-safe checkpoints with everything needed to
//! resume bit-for-bit (weights, optimiser moments, RNG state, position in the epoch), a JSONL
//! metrics log and an SVG training curve. A non-finite loss stops training with the step named
//! and the last good checkpoint untouched.
//!
//! What a model family supplies is an [`Objective`]: how to prepare a batch of items (masking
//! or any other randomness drawn from the given [`Rng`]; done on a helper thread one batch
//! ahead), the loss of a prepared batch, and validation metrics.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointDir;
use crate::optim::{AdamW, AdamWConfig, ParamGroup};
use crate::rng::Rng;
use crate::schedule::Schedule;

/// Training hyper-parameters (the `train` section of a run configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training items.
    pub epochs: usize,
    /// Items per optimiser step.
    pub batch_size: usize,
    /// Optimiser (its `lr` is the base rate the schedule scales).
    pub optimizer: AdamWConfig,
    /// Learning-rate schedule over all steps.
    #[serde(default)]
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub clip_norm: Option<f64>,
    /// Seed of shuffling and of the objective's randomness.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many epochs without a better validation score.
    #[serde(default)]
    pub patience: Option<usize>,
    /// Also checkpoint every this many steps (always at the end of each epoch).
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// Step checkpoints to keep besides `latest` and `best`.
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// Pause after this many optimiser steps in total (a checkpoint is written; calling
    /// [`Trainer::fit`] again with a larger limit continues identically).
    #[serde(default)]
    pub max_steps: Option<u64>,
}

fn default_keep() -> usize {
    2
}

/// A loss and validation metrics for one model family and task.
///
/// A step has two halves: [`Objective::prepare`] turns items into a model-ready batch (masking
/// drawn, graphs collated) and runs on a helper thread while the previous step computes;
/// [`Objective::loss`] runs the model on it.
pub trait Objective: Sync {
    /// One training example (e.g. a featurised glycan and its label).
    type Item: Sync;
    /// A prepared batch.
    type Batch: Send;
    /// Builds the batch of `items`, drawing any randomness (masks) from `rng`. Called for the
    /// batches in order, so a run's random stream does not depend on the threading.
    fn prepare(&self, items: &[&Self::Item], rng: &mut Rng) -> Result<Self::Batch>;
    /// Loss of a prepared batch (a scalar tensor whose backward reaches the parameters) and
    /// named scalars to log (e.g. masked-type accuracy).
    fn loss(&self, batch: Self::Batch) -> Result<(Tensor, Vec<(String, f64)>)>;
    /// Metrics on a whole split (in inference mode).
    fn evaluate(&self, items: &[Self::Item]) -> Result<BTreeMap<String, f64>>;
}

/// Which validation metric picks the best checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Metric name as returned by [`Objective::evaluate`].
    pub metric: String,
    /// Larger is better (accuracy) or smaller (loss, RMSE).
    pub higher_is_better: bool,
}

/// Where a run keeps its files.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// Directory of the run (`checkpoints/`, `metrics.jsonl`, `curve.svg`).
    pub path: PathBuf,
}

/// One epoch's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation metrics.
    pub valid: BTreeMap<String, f64>,
    /// Seconds of training (without validation).
    pub seconds: f64,
    /// Items per second.
    pub items_per_second: f64,
}

/// Everything besides weights and moments a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epoch in progress (or next).
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// Batches of the current epoch already taken.
    pub batch_in_epoch: usize,
    /// Generator of the current epoch's order.
    pub epoch_rng: Rng,
    /// Generator handed to the objective.
    pub rng: Rng,
    /// Losses of the current epoch so far.
    pub epoch_losses: Vec<f64>,
    /// Best validation score and its epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best one.
    pub bad_epochs: usize,
    /// Every finished epoch.
    pub history: Vec<EpochRecord>,
    /// Every step's loss (the resume test compares these).
    pub losses: Vec<f64>,
}

/// What [`Trainer::fit`] returns.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// Final state (history, best score, losses).
    pub state: TrainerState,
    /// Directory of the best checkpoint, if validation ran.
    pub best_checkpoint: Option<PathBuf>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// The trainer.
pub struct Trainer {
    config: TrainConfig,
    vars: Vec<(String, Var)>,
    optimizer: AdamW,
    selection: Selection,
    run: RunDir,
    checkpoints: CheckpointDir,
    /// Extra JSON stored in every checkpoint (the model and task configuration).
    pub metadata: serde_json::Value,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Trainer {
    /// A trainer over parameter groups; all their variables (plus `buffers`, e.g. batch-norm
    /// running statistics, which are saved but not optimised) go into checkpoints by name.
    pub fn new(
        config: TrainConfig,
        groups: Vec<ParamGroup>,
        buffers: Vec<(String, Var)>,
        selection: Selection,
        run: RunDir,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            candle_core::bail!("batch_size must be at least 1");
        }
        let mut vars: Vec<(String, Var)> = groups.iter().flat_map(|g| g.vars.iter().cloned()).collect();
        vars.extend(buffers);
        let optimizer = AdamW::new(groups, config.optimizer.clone())?;
        let checkpoints = CheckpointDir::new(run.path.join("checkpoints"), config.keep_checkpoints)?;
        Ok(Trainer {
            config,
            vars,
            optimizer,
            selection,
            run,
            checkpoints,
            metadata: serde_json::Value::Null,
            progress: false,
        })
    }

    /// The checkpoint directory.
    pub fn checkpoints(&self) -> &CheckpointDir {
        &self.checkpoints
    }

    fn fresh_state(&self) -> TrainerState {
        let mut seed = Rng::new(self.config.seed);
        TrainerState {
            epoch: 0,
            step: 0,
            batch_in_epoch: 0,
            epoch_rng: seed.fork(),
            rng: seed.fork(),
            epoch_losses: Vec::new(),
            best: None,
            bad_epochs: 0,
            history: Vec::new(),
            losses: Vec::new(),
        }
    }

    /// Restores weights, optimiser and trainer state from the `latest` checkpoint, if any.
    fn resume(&mut self) -> Result<Option<TrainerState>> {
        let device = match self.vars.first() {
            Some((_, v)) => v.device().clone(),
            None => return Ok(None),
        };
        let Some(ck) = self.checkpoints.load("latest", &device)? else { return Ok(None) };
        crate::run::warm_start(&self.vars, &ck, |_| true)?;
        let state: TrainerState = serde_json::from_value(ck.state["trainer"].clone())
            .map_err(|e| candle_core::Error::Msg(format!("checkpoint {}: trainer state: {e}", ck.dir.display())))?;
        self.optimizer.load_state(&ck.optimizer, state.step)?;
        Ok(Some(state))
    }

    fn save(&self, state: &TrainerState, pointers: &[&str]) -> Result<PathBuf> {
        let model: HashMap<String, Tensor> =
            self.vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        let (optim, _) = self.optimizer.state()?;
        let json = serde_json::json!({
            "trainer": state,
            "train_config": self.config,
            "selection": self.selection,
            "metadata": self.metadata,
        });
        self.checkpoints.save(&format!("step-{:08}", state.step), &model, &optim, &json, pointers)
    }

    /// Drops the records logged after the checkpoint a run resumes from (steps taken before a
    /// kill, a line cut short by it), so that the resumed run logs every step exactly once.
    fn prune_log(&self, state: &TrainerState) -> Result<()> {
        let path = self.run.path.join("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
        let keep = |line: &str| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => match (v.get("step").and_then(|s| s.as_u64()), v.get("epoch_end")) {
                (Some(step), _) => step <= state.step,
                (None, Some(e)) => e.get("epoch").and_then(|x| x.as_u64()).is_some_and(|x| (x as usize) < state.epoch),
                _ => false,
            },
            Err(_) => false,
        };
        let kept: Vec<&str> = text.lines().filter(|l| keep(l)).collect();
        if kept.len() != text.lines().count() {
            let mut out = kept.join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            crate::checkpoint::write_atomic(&path, out.as_bytes())?;
        }
        Ok(())
    }

    fn log(&self, record: &serde_json::Value) -> Result<()> {
        let path = self.run.path.join("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| candle_core::Error::Msg(format!("opening {}: {e}", path.display())))?;
        writeln!(f, "{record}").map_err(|e| candle_core::Error::Msg(format!("writing {}: {e}", path.display())))
    }

    /// Trains on `train`, validating on `valid` after every epoch; continues from the run's
    /// `latest` checkpoint when there is one.
    pub fn fit<O: Objective>(&mut self, objective: &O, train: &[O::Item], valid: &[O::Item]) -> Result<TrainReport> {
        std::fs::create_dir_all(&self.run.path)
            .map_err(|e| candle_core::Error::Msg(format!("creating {}: {e}", self.run.path.display())))?;
        if train.is_empty() {
            candle_core::bail!("no training items");
        }
        let mut state = match self.resume()? {
            Some(s) => {
                self.prune_log(&s)?;
                s
            }
            None => self.fresh_state(),
        };
        let per_epoch = train.len().div_ceil(self.config.batch_size);
        // The schedule spans the whole configured run; `max_steps` only pauses it (a later
        // call resumes with the same learning rates).
        let total = (per_epoch * self.config.epochs) as u64;
        let stop_at = self.config.max_steps.unwrap_or(u64::MAX).min(total);
        let bar = if self.progress {
            crate::progress::bar(stop_at, "{bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}]")
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_position(state.step);
        let mut stopped_early = false;
        'epochs: while state.epoch < self.config.epochs {
            let mut order: Vec<usize> = (0..train.len()).collect();
            state.epoch_rng.clone().shuffle(&mut order);
            let started = std::time::Instant::now();
            let mut items_done = 0usize;
            let batch_size = self.config.batch_size;
            let first = state.batch_in_epoch;
            let last = per_epoch.min(first.saturating_add(stop_at.saturating_sub(state.step) as usize));
            std::thread::scope(|scope| -> Result<()> {
                // The next batch is prepared while this one trains; the generator state after
                // each batch travels with it, so checkpoints hold the state after the last
                // trained batch, not after the prefetched one.
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(O::Batch, Rng, usize)>>(1);
                let (order, mut rng) = (&order, state.rng.clone());
                scope.spawn(move || {
                    for b in first..last {
                        let idx = &order[b * batch_size..((b + 1) * batch_size).min(order.len())];
                        let items: Vec<&O::Item> = idx.iter().map(|&i| &train[i]).collect();
                        let prepared = objective.prepare(&items, &mut rng).map(|p| (p, rng.clone(), items.len()));
                        let failed = prepared.is_err();
                        if tx.send(prepared).is_err() || failed {
                            break;
                        }
                    }
                });
                for b in first..last {
                    let (batch, rng_after, len) = rx
                        .recv()
                        .map_err(|_| candle_core::Error::Msg("the batch-preparing thread stopped".into()))??;
                    let lr = self.config.optimizer.lr * self.config.schedule.factor(state.step, total);
                    let (loss, extras) = objective.loss(batch)?;
                    let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                    if !value.is_finite() {
                        let last = self.checkpoints.resolve("latest")?;
                        candle_core::bail!(
                            "loss is {value} at step {} (epoch {}, batch {b}); stopped. Last good checkpoint: {}",
                            state.step,
                            state.epoch,
                            last.map(|p| p.display().to_string()).unwrap_or_else(|| "none yet".into())
                        );
                    }
                    let mut grads = loss.backward()?;
                    if let Some(max) = self.config.clip_norm {
                        clip_grad_norm(&mut grads, &self.vars, max)?;
                    }
                    self.optimizer.step(&grads, lr)?;
                    state.rng = rng_after;
                    state.step += 1;
                    state.batch_in_epoch = b + 1;
                    state.losses.push(value);
                    state.epoch_losses.push(value);
                    items_done += len;
                    let mut rec =
                        serde_json::json!({"step": state.step, "epoch": state.epoch, "loss": value, "lr": lr});
                    for (k, v) in &extras {
                        rec[k] = serde_json::json!(v);
                    }
                    self.log(&rec)?;
                    bar.set_position(state.step);
                    let rate = items_done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    bar.set_message(format!("epoch {} loss {value:.4} {rate:.0} items/s", state.epoch));
                    if self.config.checkpoint_every.is_some_and(|k| k > 0 && state.step % k == 0) {
                        self.save(&state, &["latest"])?;
                    }
                }
                Ok(())
            })?;
            if state.batch_in_epoch < per_epoch {
                // Paused by `max_steps`.
                self.save(&state, &["latest"])?;
                break 'epochs;
            }
            let seconds = started.elapsed().as_secs_f64();
            let valid_metrics = if valid.is_empty() { BTreeMap::new() } else { objective.evaluate(valid)? };
            let train_loss = state.epoch_losses.iter().sum::<f64>() / state.epoch_losses.len().max(1) as f64;
            let record = EpochRecord {
                epoch: state.epoch,
                train_loss,
                valid: valid_metrics.clone(),
                seconds,
                items_per_second: items_done as f64 / seconds.max(1e-9),
            };
            self.log(&serde_json::json!({"epoch_end": record}))?;
            if self.progress {
                let metric = &self.selection.metric;
                let shown = valid_metrics.get(metric).map_or(String::new(), |v| format!(", valid {metric} {v:.4}"));
                crate::progress::line(&format!(
                    "  epoch {}/{}: train loss {train_loss:.4}{shown}, {seconds:.0} s",
                    state.epoch + 1,
                    self.config.epochs
                ));
            }
            state.history.push(record);
            let score = valid_metrics.get(&self.selection.metric).copied();
            let improved = match (score, state.best) {
                (Some(s), None) => s.is_finite(),
                (Some(s), Some((b, _))) => {
                    if self.selection.higher_is_better {
                        s > b
                    } else {
                        s < b
                    }
                }
                (None, _) => false,
            };
            if improved {
                state.best = score.map(|s| (s, state.epoch));
                state.bad_epochs = 0;
            } else {
                state.bad_epochs += 1;
            }
            state.epoch += 1;
            state.batch_in_epoch = 0;
            state.epoch_losses.clear();
            state.epoch_rng = state.rng.fork();
            self.save(&state, if improved { &["latest", "best"] } else { &["latest"] })?;
            if self.config.patience.is_some_and(|p| state.bad_epochs >= p) {
                stopped_early = true;
                break;
            }
        }
        bar.finish_and_clear();
        write_curve(&self.run.path.join("curve.svg"), &state, &self.selection.metric)?;
        Ok(TrainReport { best_checkpoint: self.checkpoints.resolve("best")?, state, stopped_early })
    }
}

/// Scales every gradient so their global L2 norm is at most `max_norm` (PyTorch
/// `clip_grad_norm_`, with its 1e-6 guard); returns the norm before clipping.
pub fn clip_grad_norm(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[(String, Var)],
    max_norm: f64,
) -> Result<f64> {
    let mut total = 0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g.to_dtype(candle_core::DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (_, v) in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}

/// The training loss per step and the selection metric per epoch as an SVG line chart.
fn write_curve(path: &Path, state: &TrainerState, metric: &str) -> Result<()> {
    use aa_plot::{Chart, Marks, Series};
    let losses: Vec<(f64, f64)> = state.losses.iter().enumerate().map(|(i, &l)| (i as f64 + 1.0, l)).collect();
    let valid: Vec<(f64, f64)> =
        state.history.iter().filter_map(|r| r.valid.get(metric).map(|&v| (r.epoch as f64 + 1.0, v))).collect();
    let train = Chart {
        title: "training loss per optimiser step".into(),
        x_label: "step".into(),
        y_label: "training loss".into(),
        marks: Marks::Lines(vec![Series { label: "train".into(), points: losses }]),
    };
    let val = Chart {
        title: format!("validation {metric} per epoch"),
        x_label: "epoch".into(),
        y_label: format!("validation {metric}"),
        marks: Marks::Lines(vec![Series { label: "valid".into(), points: valid }]),
    };
    let svg = aa_plot::stack(&[train, val], 640, 300);
    crate::checkpoint::write_atomic(path, svg.as_bytes())
}
