//! `allatom finetune` on small slices of the rebuilt tasks: trains, selects the best validation
//! epoch, reports test metrics that `allatom eval` reproduces; starts from a PreGlycanAA
//! checkpoint made by `allatom pretrain`; trains the eight taxonomy levels jointly with the
//! monosaccharide-level RGCN; refuses a config without a vocabulary source and a path that is
//! not a checkpoint.

use std::path::Path;
use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const TASKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tasks");

/// `<dir>/tasks/<name>.csv` with every 150th row of the real task (no manifest: no checksum).
fn small_file(dir: &Path, name: &str) {
    let text = std::fs::read_to_string(format!("{TASKS}/{name}.csv")).expect("run `cargo xtask data` first");
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.step_by(150).collect();
    std::fs::create_dir_all(dir.join("tasks")).unwrap();
    std::fs::write(dir.join(format!("tasks/{name}.csv")), format!("{header}\n{}\n", rows.join("\n"))).unwrap();
}

fn small_task(dir: &Path) {
    small_file(dir, "glycan_type");
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
    let scratch = serde_json::json!({"objective": "graph_task", "task": {"dir": "tasks", "name": "glycan_type"},
        "encoder": {"family": "glycanaa", "model": model()},
        "vocab_glycans": "tasks/glycan_type.csv", "train": train});
    let summary = run_ok("finetune", dir.path(), "s", &scratch);
    let acc = summary["test"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc) && summary["test"]["macro_f1"].is_number(), "{summary}");
    assert_eq!(summary["history"].as_array().unwrap().len(), 2);

    // `allatom eval` on the run directory (its best checkpoint) gives the test metrics again.
    let out = allatom().args(["eval", "--checkpoint"]).arg(dir.path().join("s")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["metrics"], summary["test"], "{eval}");
    assert_eq!(eval["glycans"], summary["sizes"]["test"]);
    let valid =
        allatom().args(["eval", "--split", "valid", "--checkpoint"]).arg(dir.path().join("s")).output().unwrap();
    let valid: serde_json::Value = serde_json::from_slice(&valid.stdout).unwrap();
    assert_eq!(valid["metrics"]["accuracy"], summary["best"][0], "{valid} vs {summary}");

    // A tiny PreGlycanAA on the same glycans, then fine-tuning from its checkpoint.
    let pre = serde_json::json!({"objective": "preglycanaa", "data": {"glycans": "tasks/glycan_type.csv", "column": "glycan", "valid_fraction": 0.2},
        "model": model(), "train": {"epochs": 1, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 1}});
    run_ok("pretrain", dir.path(), "p", &pre);
    let latest = std::fs::read_to_string(dir.path().join("p/checkpoints/latest")).unwrap();
    let ft = serde_json::json!({"objective": "graph_task", "task": {"dir": "tasks", "name": "glycan_type"},
        "pretrained": format!("p/checkpoints/{}", latest.trim()), "lr_ratio": 0.1, "train": train});
    let summary = run_ok("finetune", dir.path(), "f", &ft);
    assert!(summary["test"]["accuracy"].is_number());
    assert_eq!(summary["encoder"]["family"], "glycanaa", "the encoder comes from the checkpoint");
    // An encoder and a pretrained run at once: which one? Refused.
    let mut both = ft.clone();
    both["encoder"] = serde_json::json!({"family": "glycanaa", "model": model()});
    std::fs::write(dir.path().join("both.json"), both.to_string()).unwrap();
    let out = allatom()
        .args(["finetune", "--config"])
        .arg(dir.path().join("both.json"))
        .arg("--run-dir")
        .arg(dir.path().join("both"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}

#[test]
fn needs_a_vocabulary_source() {
    let dir = tempfile::tempdir().unwrap();
    small_task(dir.path());
    let cfg = serde_json::json!({"objective": "graph_task", "task": {"dir": "tasks", "name": "glycan_type"},
        "encoder": {"family": "glycanaa", "model": model()}, "train": {"epochs": 1, "batch_size": 8, "optimizer": {"lr": 0.01}}});
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

#[test]
fn rgcn_learns_the_taxonomy_levels_jointly() {
    let dir = tempfile::tempdir().unwrap();
    for level in ["domain", "kingdom", "phylum", "class", "order", "family", "genus", "species"] {
        small_file(dir.path(), &format!("taxonomy_{level}"));
    }
    let rgcn = serde_json::json!({"num_unit": 0, "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16],
        "batch_norm": false, "activation": "relu", "concat_hidden": true, "readout_type": "mono", "variant": "flat"});
    let cfg = serde_json::json!({"objective": "graph_task", "task": {"dir": "tasks", "name": "taxonomy"},
        "encoder": {"family": "rgcn", "model": rgcn},
        "vocab_glycans": "tasks/taxonomy_domain.csv",
        "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.005}, "seed": 2}});
    let summary = run_ok("finetune", dir.path(), "t", &cfg);
    let test = &summary["test"];
    let levels: Vec<f64> = ["domain", "kingdom", "phylum", "class", "order", "family", "genus", "species"]
        .iter()
        .map(|l| test[format!("accuracy/taxonomy_{l}")].as_f64().unwrap_or_else(|| panic!("{test}")))
        .collect();
    let mean = levels.iter().sum::<f64>() / 8.0;
    assert!((test["accuracy"].as_f64().unwrap() - mean).abs() < 1e-12, "{test}");
    // Domain (mostly Eukarya) is far easier than species.
    assert!(levels[0] > 0.5 && levels[0] > levels[7], "{levels:?}");
    let losses: Vec<f64> =
        summary["history"].as_array().unwrap().iter().map(|h| h["train_loss"].as_f64().unwrap()).collect();
    assert!(losses[2] < losses[0], "{losses:?}");
}

#[test]
fn eval_refuses_what_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = allatom().args(["eval", "--checkpoint"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("neither a checkpoint directory"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn any_family_on_a_glycan_task_and_impossible_pairings_refused() {
    let dir = tempfile::tempdir().unwrap();
    small_task(dir.path());
    let train = serde_json::json!({"epochs": 1, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 1});
    let task = serde_json::json!({"dir": "tasks", "name": "glycan_type"});
    // ESM-AA on glycans (atom-only code-switch sequences) and GlycanAA on true molecules.
    let esm = serde_json::json!({"family": "esm", "model": {"vocab_size": 59, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "pair_bias": true, "gaussian_kernels": 16}});
    let molecule = serde_json::json!({"family": "glycanaa", "featurisation": "molecule", "model": model()});
    for (name, encoder) in [("esm", esm), ("glycanaa", molecule)] {
        let mut cfg = serde_json::json!({"objective": "graph_task", "task": task, "encoder": encoder, "train": train});
        if name == "glycanaa" {
            // A readout chosen by the run (every node, GlycanAA-AN style), rebuilt by eval.
            cfg["readout"] = serde_json::json!({"nodes": "all"});
        }
        let summary = run_ok("finetune", dir.path(), name, &cfg);
        assert_eq!(summary["family"], name);
        assert!(summary["test"]["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{summary}");
        let out = allatom().args(["eval", "--checkpoint"]).arg(dir.path().join(name)).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(eval["metrics"], summary["test"], "{name}: {eval}");
    }
    // Vabs-Net needs coordinates; glycans from IUPAC have none: refused before any data is read.
    let vabs = serde_json::json!({"family": "vabs", "model": {"layers": 1, "dim": 16, "edge_dim": 8, "heads": 2, "ffn_multiplier": 1}});
    let cfg = serde_json::json!({"objective": "graph_task", "task": {"dir": "missing", "name": "glycan_type"},
        "encoder": vabs, "train": train});
    std::fs::write(dir.path().join("v.json"), cfg.to_string()).unwrap();
    let out = allatom()
        .args(["finetune", "--config"])
        .arg(dir.path().join("v.json"))
        .arg("--run-dir")
        .arg(dir.path().join("v"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vabs needs 3D coordinates") && !err.contains("missing"), "{err}");
    assert!(!dir.path().join("v").exists());
}

#[test]
fn a_gigp_readout_trains_and_its_fitted_centres_travel_with_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    small_task(dir.path());
    let cfg = serde_json::json!({"objective": "graph_task", "task": {"dir": "tasks", "name": "glycan_type"},
        "encoder": {"family": "glycanaa", "model": model()}, "vocab_glycans": "tasks/glycan_type.csv",
        "readout": {"gigp": {"bins": 4, "orbit": "degree", "hidden": 8}},
        "train": {"epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 1}});
    let summary = run_ok("finetune", dir.path(), "g", &cfg);
    assert!(summary["test"]["accuracy"].is_number(), "{summary}");
    // The checkpoint holds the readout's weights and its centres (fitted on the training
    // glycans' unit degrees: not all zero), and eval rebuilds the same readout.
    let best = std::fs::read_to_string(dir.path().join("g/checkpoints/best")).unwrap();
    let ck = dir.path().join("g/checkpoints").join(best.trim());
    let t = candle_core::safetensors::load(ck.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let centres = t["readout.buffer_orbit_centres"].to_vec1::<f32>().unwrap();
    assert_eq!(centres.len(), 4);
    assert!(centres.iter().any(|&c| c > 0.0) && centres.windows(2).all(|w| w[0] <= w[1]), "{centres:?}");
    assert!(t.contains_key("readout.orbit_mlp.w1") && t.contains_key("readout.orbit_weights"));
    let out = allatom().args(["eval", "--checkpoint"]).arg(dir.path().join("g")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["metrics"], summary["test"], "{eval}");
    // Centroid-distance orbits need coordinates, which IUPAC glycans do not have.
    let mut bad = cfg.clone();
    bad["readout"] = serde_json::json!({"gigp": {"orbit": "centroid_distance"}});
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
    let out = allatom()
        .args(["finetune", "--config"])
        .arg(dir.path().join("bad.json"))
        .arg("--run-dir")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs coordinates"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("bad/summary.json").exists());
}

#[test]
fn an_hsa_readout_trains_records_its_gate_choices_and_evaluates_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    small_task(dir.path());
    let cfg = serde_json::json!({"objective": "graph_task", "task": {"dir": "tasks", "name": "glycan_type"},
        "encoder": {"family": "glycanaa", "model": model()}, "vocab_glycans": "tasks/glycan_type.csv",
        "readout": {"hsa": {"dim": 16, "tokens": 2, "heads": 2, "motifs": 2, "experts": 3, "state": 4}},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 1}});
    let summary = run_ok("finetune", dir.path(), "h", &cfg);
    assert!(summary["test"]["accuracy"].is_number(), "{summary}");
    // One Mamba fraction per encoder layer, each in [0, 1].
    let layers = model()["hidden_dims"].as_array().unwrap().len();
    let rates = summary["readout_choices"].as_array().unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(rates.len(), layers, "{summary}");
    assert!(rates.iter().all(|r| (0.0..=1.0).contains(&r.as_f64().unwrap())), "{rates:?}");
    let best = std::fs::read_to_string(dir.path().join("h/checkpoints/best")).unwrap();
    let ck = dir.path().join("h/checkpoints").join(best.trim());
    let t = candle_core::safetensors::load(ck.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    for k in ["readout.layers.0.gate.weight", "readout.layers.0.mamba.a_shift", "readout.saf.router.weight"] {
        assert!(t.contains_key(k), "{k} missing from the checkpoint");
    }
    let out = allatom().args(["eval", "--checkpoint"]).arg(dir.path().join("h")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["metrics"], summary["test"], "{eval}");
    // The trained HSA readout's attention over a real glycan, from the run directory.
    let report = dir.path().join("hsa_attention.json");
    let out = allatom()
        .args(["attention", "--checkpoint"])
        .arg(dir.path().join("h"))
        .args(["--glycan", "Neu5Ac(a2-3)Gal(b1-4)GlcNAc(b1-2)Man(a1-3)[Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc", "--out"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let t = &r["tracks"][0];
    assert_eq!((t["name"].as_str(), t["nodes"].as_array().map(Vec::len)), (Some("hsa"), Some(8)), "{r}");
    assert_eq!(t["layers"].as_array().unwrap().len(), layers);
    assert_eq!(t["layers"][0]["metrics"]["covalent"]["edges"], 7, "glycosidic links of 8 units");
    assert!(report.with_extension("png").exists());
}
