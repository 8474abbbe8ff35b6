//! `allatom finetune` on a small slice of the rebuilt glycosylation-type task: trains, selects
//! the best validation epoch, reports test metrics; starts from a PreGlycanAA checkpoint made by
//! `allatom pretrain`; refuses a config without a vocabulary source.

use std::path::Path;
use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const TASKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tasks/glycan_type.csv");

/// A task directory with every 150th row of the real task (no manifest: no checksum).
fn small_task(dir: &Path) {
    let text = std::fs::read_to_string(TASKS).expect("run `cargo xtask data` first");
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.step_by(150).collect();
    std::fs::create_dir_all(dir.join("tasks")).unwrap();
    std::fs::write(dir.join("tasks/glycan_type.csv"), format!("{header}\n{}\n", rows.join("\n"))).unwrap();
}

/// Runs `allatom <cmd> --config <dir>/<name>.json --run-dir <dir>/<name>` (config written from
/// `cfg`) and returns its summary.json.
fn run_ok(cmd: &str, dir: &Path, name: &str, cfg: &serde_json::Value) -> serde_json::Value {
    let config = dir.join(format!("{name}.json"));
    std::fs::write(&config, cfg.to_string()).unwrap();
    let out = allatom().args([cmd, "--config"]).arg(&config).arg("--run-dir").arg(dir.join(name)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.join(name).join("summary.json")).unwrap()).unwrap()
}

fn model() -> serde_json::Value {
    serde_json::json!({"num_unit": 0, "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16],
        "batch_norm": true, "activation": "gelu", "concat_hidden": true, "readout_type": "mono"})
}

#[test]
fn trains_from_scratch_and_from_a_pretrained_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    small_task(dir.path());
    let train = serde_json::json!({"epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 1});
    let scratch = serde_json::json!({"task": {"dir": "tasks", "name": "glycan_type"}, "model": model(),
        "vocab_glycans": "tasks/glycan_type.csv", "train": train});
    let summary = run_ok("finetune", dir.path(), "s", &scratch);
    let acc = summary["test"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc) && summary["test"]["macro_f1"].is_number(), "{summary}");
    assert_eq!(summary["history"].as_array().unwrap().len(), 2);

    // A tiny PreGlycanAA on the same glycans, then fine-tuning from its checkpoint.
    let pre = serde_json::json!({"data": {"glycans": "tasks/glycan_type.csv", "column": "glycan", "valid_fraction": 0.2},
        "model": model(), "train": {"epochs": 1, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 1}});
    run_ok("pretrain", dir.path(), "p", &pre);
    let latest = std::fs::read_to_string(dir.path().join("p/checkpoints/latest")).unwrap();
    let ft = serde_json::json!({"task": {"dir": "tasks", "name": "glycan_type"}, "model": model(),
        "pretrained": format!("p/checkpoints/{}", latest.trim()), "lr_ratio": 0.1, "train": train});
    let summary = run_ok("finetune", dir.path(), "f", &ft);
    assert!(summary["test"]["accuracy"].is_number());
}

#[test]
fn needs_a_vocabulary_source() {
    let dir = tempfile::tempdir().unwrap();
    small_task(dir.path());
    let cfg = serde_json::json!({"task": {"dir": "tasks", "name": "glycan_type"}, "model": model(),
        "train": {"epochs": 1, "batch_size": 8, "optimizer": {"lr": 0.01}}});
    std::fs::write(dir.path().join("c.json"), cfg.to_string()).unwrap();
    let out = allatom()
        .args(["finetune", "--config"])
        .arg(dir.path().join("c.json"))
        .arg("--run-dir")
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vocab_glycans"));
}
