//! The trainer on a small regression problem whose loss draws from the trainer's RNG
//! (dropout-style masks): an interrupted and resumed run reproduces the uninterrupted one's
//! loss sequence exactly; a non-finite loss stops with the step named and the last good
//! checkpoint intact; a process killed while saving leaves a loadable `latest`; early stopping
//! and the best checkpoint follow the validation metric.

use std::collections::BTreeMap;
use std::path::Path;

use aa_pretrain::checkpoint::CheckpointDir;
use aa_pretrain::rng::Rng;
use aa_pretrain::schedule::{Schedule, ScheduleKind};
use aa_pretrain::trainer::{Objective, RunDir, Selection, TrainConfig, Trainer};
use aa_pretrain::{AdamWConfig, ParamGroup};
use candle_core::{DType, Device, Result, Tensor, Var};

struct Item {
    x: [f32; 4],
    y: f32,
}

fn data(n: usize, seed: u64) -> Vec<Item> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let x = [0; 4].map(|_| r.uniform() as f32 * 2.0 - 1.0);
            let y = 0.7 * x[0] - 1.3 * x[1] + 0.2 * x[3] + 0.5 + (r.uniform() as f32 - 0.5) * 0.1;
            Item { x, y }
        })
        .collect()
}

struct Linear {
    w: Var,
    b: Var,
    /// Return NaN at this step (counting calls).
    nan_at: Option<usize>,
    calls: std::sync::atomic::AtomicUsize,
}

impl Linear {
    fn new(init: f32) -> Self {
        let dev = Device::Cpu;
        Linear {
            w: Var::from_vec(vec![init, -init, 0.3 * init, 0.1], (4, 1), &dev).unwrap(),
            b: Var::from_vec(vec![0f32], 1, &dev).unwrap(),
            nan_at: None,
            calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn predict(&self, items: &[&Item]) -> Result<(Tensor, Tensor)> {
        let x: Vec<f32> = items.iter().flat_map(|i| i.x).collect();
        let x = Tensor::from_vec(x, (items.len(), 4), &Device::Cpu)?;
        let y = Tensor::from_vec(items.iter().map(|i| i.y).collect::<Vec<_>>(), (items.len(), 1), &Device::Cpu)?;
        Ok((x.matmul(self.w.as_tensor())?.broadcast_add(self.b.as_tensor())?, y))
    }

    fn groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup {
            vars: vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())],
            lr_scale: 1.0,
            weight_decay: None,
        }]
    }
}

impl Objective for Linear {
    type Item = Item;
    type Batch = (Tensor, Tensor, Tensor);

    fn prepare(&self, batch: &[&Item], rng: &mut Rng) -> Result<Self::Batch> {
        let x: Vec<f32> = batch.iter().flat_map(|i| i.x).collect();
        let x = Tensor::from_vec(x, (batch.len(), 4), &Device::Cpu)?;
        let y = Tensor::from_vec(batch.iter().map(|i| i.y).collect::<Vec<_>>(), (batch.len(), 1), &Device::Cpu)?;
        // A random per-item weight from the trainer's generator: resuming must restore it.
        let keep: Vec<f32> = batch.iter().map(|_| if rng.uniform() < 0.8 { 1.25 } else { 0.0 }).collect();
        Ok((x, y, Tensor::from_vec(keep, (batch.len(), 1), &Device::Cpu)?))
    }

    fn loss(&self, (x, y, keep): Self::Batch) -> Result<(Tensor, Vec<(String, f64)>)> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pred = x.matmul(self.w.as_tensor())?.broadcast_add(self.b.as_tensor())?;
        let loss = ((pred - y)?.sqr()? * keep)?.mean_all()?;
        if self.nan_at == Some(n) {
            return Ok(((loss * f64::NAN)?, vec![]));
        }
        Ok((loss, vec![("kept".into(), 0.8)]))
    }

    fn evaluate(&self, items: &[Item]) -> Result<BTreeMap<String, f64>> {
        let refs: Vec<&Item> = items.iter().collect();
        let (pred, y) = self.predict(&refs)?;
        let mse = (pred - y)?.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        Ok(BTreeMap::from([("rmse".to_string(), mse.sqrt())]))
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        batch_size: 8,
        optimizer: AdamWConfig { lr: 0.05, weight_decay: 0.01, ..Default::default() },
        schedule: Schedule { kind: ScheduleKind::Cosine, warmup_steps: 3, min_ratio: 0.1 },
        clip_norm: Some(1.0),
        seed: 11,
        patience: None,
        checkpoint_every: Some(1),
        keep_checkpoints: 2,
        max_steps: None,
    }
}

fn selection() -> Selection {
    Selection { metric: "rmse".into(), higher_is_better: false }
}

fn trainer(model: &Linear, cfg: TrainConfig, dir: &Path) -> Trainer {
    Trainer::new(cfg, model.groups(), vec![], selection(), RunDir { path: dir.to_path_buf() }).unwrap()
}

#[test]
fn resumed_run_repeats_the_loss_sequence_exactly() {
    let (train, valid) = (data(60, 1), data(20, 2));
    let full_dir = tempfile::tempdir().unwrap();
    let model = Linear::new(0.2);
    let full = trainer(&model, config(), full_dir.path()).fit(&model, &train, &valid).unwrap();
    assert_eq!(full.state.losses.len(), 4 * 8);
    assert!(full.state.losses.last().unwrap() < &full.state.losses[0], "loss falls: {:?}", full.state.losses);

    // Interrupted after 13 steps (mid-epoch), then resumed by a fresh process-like setup whose
    // model starts from different weights: everything must come from the checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let first = Linear::new(0.2);
    let part = trainer(&first, TrainConfig { max_steps: Some(13), ..config() }, dir.path())
        .fit(&first, &train, &valid)
        .unwrap();
    assert_eq!(part.state.losses.len(), 13);
    // Steps logged after the checkpoint (a kill before the next save) and a line cut short.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join("metrics.jsonl")).unwrap();
        writeln!(f, "{{\"step\": 14, \"epoch\": 1, \"loss\": 1.0, \"lr\": 0.1}}").unwrap();
        write!(f, "{{\"step\": 15, \"ep").unwrap();
    }
    let second = Linear::new(-3.0);
    let rest = trainer(&second, config(), dir.path()).fit(&second, &train, &valid).unwrap();
    assert_eq!(rest.state.losses, full.state.losses, "bit-identical loss sequence after resume");
    assert_eq!(second.w.as_tensor().to_vec2::<f32>().unwrap(), model.w.as_tensor().to_vec2::<f32>().unwrap());
    // Logs and the curve are written.
    let log = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert!(log.lines().count() >= 32 && log.contains("\"epoch_end\""));
    // Every step logged exactly once, in order; every epoch ended once.
    let records: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let steps: Vec<u64> = records.iter().filter_map(|r| r["step"].as_u64()).collect();
    assert_eq!(steps, (1..=32).collect::<Vec<u64>>());
    assert_eq!(records.iter().filter(|r| r.get("epoch_end").is_some()).count(), 4);
    assert!(std::fs::read_to_string(dir.path().join("curve.svg")).unwrap().contains("<polyline"));
    // The best checkpoint is the epoch with the lowest validation RMSE.
    let best_epoch =
        full.state.history.iter().min_by(|a, b| a.valid["rmse"].total_cmp(&b.valid["rmse"])).unwrap().epoch;
    assert_eq!(full.state.best.unwrap().1, best_epoch);
    assert!(full.best_checkpoint.unwrap().exists());
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let (train, valid) = (data(40, 3), data(10, 4));
    let dir = tempfile::tempdir().unwrap();
    let mut model = Linear::new(0.2);
    model.nan_at = Some(6);
    let err = trainer(&model, config(), dir.path()).fit(&model, &train, &valid).unwrap_err().to_string();
    assert!(err.contains("loss is NaN at step 6"), "{err}");
    assert!(err.contains("step-00000006"), "names the last good checkpoint: {err}");
    let ck =
        CheckpointDir::new(dir.path().join("checkpoints"), 2).unwrap().load("latest", &Device::Cpu).unwrap().unwrap();
    let w = ck.model["w"].to_vec2::<f32>().unwrap();
    assert!(w.iter().flatten().all(|v| v.is_finite()));
    assert_eq!(ck.state["trainer"]["step"], 6);
}

#[test]
fn early_stopping_follows_the_validation_metric() {
    let (train, valid) = (data(40, 5), data(10, 6));
    let dir = tempfile::tempdir().unwrap();
    let model = Linear::new(0.2);
    // A learning rate so large the validation error cannot keep improving.
    let cfg = TrainConfig {
        epochs: 30,
        patience: Some(2),
        optimizer: AdamWConfig { lr: 3.0, ..Default::default() },
        schedule: Schedule::default(),
        clip_norm: None,
        ..config()
    };
    let report = trainer(&model, cfg, dir.path()).fit(&model, &train, &valid).unwrap();
    assert!(report.stopped_early, "{:?}", report.state.history.iter().map(|r| r.valid["rmse"]).collect::<Vec<_>>());
    assert!(report.state.history.len() < 30);
    assert_eq!(report.state.bad_epochs, 2);
}

/// Not a test on its own: the child process of `killed_while_saving_leaves_a_loadable_checkpoint`.
#[test]
#[ignore]
fn child_saves_checkpoints_forever() {
    let Some(dir) = std::env::var_os("AA_PRETRAIN_SAVE_DIR") else { return };
    let ck = CheckpointDir::new(Path::new(&dir), 2).unwrap();
    let big = Tensor::ones((2048, 2048), DType::F32, &Device::Cpu).unwrap();
    for step in 0u64.. {
        let v = (big.clone() * step as f64).unwrap();
        let model = std::collections::HashMap::from([("w".to_string(), v)]);
        let state = serde_json::json!({"step": step});
        ck.save(&format!("step-{step:08}"), &model, &Default::default(), &state, &["latest"]).unwrap();
    }
}

#[test]
fn killed_while_saving_leaves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let pointer = dir.path().join("latest");
    for delay_ms in [3u64, 17, 29] {
        let before = std::fs::read_to_string(&pointer).ok();
        let mut child = std::process::Command::new(&exe)
            .args(["--ignored", "--exact", "child_saves_checkpoints_forever", "--nocapture"])
            .env("AA_PRETRAIN_SAVE_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until this child has finished a save (the pointer moved), so it is busy saving
        // the next one when the kill lands a few milliseconds later.
        let started = std::time::Instant::now();
        while std::fs::read_to_string(&pointer).ok() == before {
            assert!(started.elapsed().as_secs() < 60, "the child never saved");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        let ck = CheckpointDir::new(dir.path(), 2).unwrap();
        let c = ck.load("latest", &Device::Cpu).unwrap().expect("a checkpoint survives");
        // Complete and consistent: every value equals the step the state names.
        let step = c.state["step"].as_u64().unwrap() as f32;
        let w = c.model["w"].flatten_all().unwrap();
        let (lo, hi) = (w.min(0).unwrap().to_scalar::<f32>().unwrap(), w.max(0).unwrap().to_scalar::<f32>().unwrap());
        assert_eq!((lo, hi), (step, step));
    }
}
