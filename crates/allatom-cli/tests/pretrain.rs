//! `allatom pretrain`: a small real run (60 pretraining glycans, a small GlycanAA) that pauses
//! after two steps and resumes to the end; and a broken config that fails cleanly.

use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/glycans/glycan_pretrain.csv");

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(CSV).unwrap();
    let glycans: Vec<&str> = text.lines().take(61).collect();
    std::fs::write(dir.join("glycans.csv"), glycans.join("\n")).unwrap();
    let cfg = serde_json::json!({
        "objective": "preglycanaa",
        "data": {"glycans": "glycans.csv", "valid_fraction": 0.2},
        "model": {"num_unit": 0, "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16],
                  "batch_norm": true, "activation": "gelu", "concat_hidden": true, "readout_type": "mono"},
        "train": {"epochs": 2, "batch_size": 16, "optimizer": {"lr": 0.005}, "seed": 3}
    });
    let path = dir.join("run.json");
    std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
    path
}

#[test]
fn pauses_resumes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = dir.path().join("run");
    let first = allatom()
        .args(["pretrain", "--config"])
        .arg(&cfg)
        .arg("--run-dir")
        .arg(&run)
        .args(["--max-steps", "2"])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 2);
    let second = allatom().args(["pretrain", "--config"]).arg(&cfg).arg("--run-dir").arg(&run).output().unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    // 48 training glycans in batches of 16: 3 steps per epoch, 2 epochs.
    assert_eq!(summary["steps"], 6);
    assert_eq!(summary["epochs_done"], 2);
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"step\"")).count(), 6);
    assert!(run.join("curve.svg").exists() && run.join("checkpoints/best").exists());
    // An uninterrupted run gives the same validation numbers and step losses, bit for bit.
    let straight = dir.path().join("straight");
    let out = allatom().args(["pretrain", "--config"]).arg(&cfg).arg("--run-dir").arg(&straight).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("summary.json")).unwrap()).unwrap();
    let valid =
        |s: &serde_json::Value| s["history"].as_array().unwrap().iter().map(|h| h["valid"].clone()).collect::<Vec<_>>();
    assert_eq!(valid(&summary), valid(&other));
    let losses = |p: &std::path::Path| -> Vec<f64> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("loss")?.as_f64())
            .collect()
    };
    assert_eq!(losses(&run), losses(&straight));
}

#[test]
fn a_broken_config_fails_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.json");
    std::fs::write(&cfg, r#"{"data": {"glycans": "x.csv"}, "model": {}, "train": {}}"#).unwrap();
    let out =
        allatom().args(["pretrain", "--config"]).arg(&cfg).arg("--run-dir").arg(dir.path().join("r")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json") && err.contains("not a run configuration"), "{err}");
    assert!(!dir.path().join("r").exists(), "no partial output");
    let missing = allatom()
        .args(["pretrain", "--config", "/nonexistent/run.json", "--run-dir"])
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/run.json"));
}
