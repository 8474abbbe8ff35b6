//! `allatom compare` on a tiny real-data experiment: RGCN, PreGlycanAA (the shipped package as
//! `pretrained`) and Vabs-Net × glycosylation type (a
//! 1-in-150 subset of the glycowork task) and DSSP (six mdanalysistests chains), one seed, one
//! epoch. The impossible pairings (Vabs-Net on glycans without coordinates, RGCN on residues)
//! are listed and skipped (PreGlycanAA is limited to the glycan task by its `tasks`; DSSP sets
//! its own batch size); the log, not a terminal, has a line per run event and per epoch; killing the command after its first run and running it again keeps
//! that run and finishes the other; the tables name both; every plot's PNG decodes at the
//! stated size.

use std::path::Path;
use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn experiment(dir: &Path) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(format!("{ROOT}/data/tasks/glycan_type.csv")).expect("run `cargo xtask data` first");
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.step_by(150).collect();
    std::fs::create_dir_all(dir.join("tasks")).unwrap();
    std::fs::write(dir.join("tasks/glycan_type.csv"), format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let dssp = format!("{ROOT}/data/fetched/structures/mdanalysistests/dssp");
    assert!(Path::new(&dssp).exists(), "run `cargo xtask fetch-data` first");
    let files: Vec<String> =
        ["1ahsA", "1bvyF", "1dx5I", "1eteA", "1h4aX", "1i8nA"].iter().map(|f| format!("{dssp}/{f}.pdb.gz")).collect();
    let exp = serde_json::json!({
        "encoders": [
            { "name": "rgcn", "encoder": { "family": "rgcn", "model": { "num_unit": 0, "num_relation": 0, "input_dim": 16,
              "hidden_dims": [16, 16], "batch_norm": false, "activation": "relu", "concat_hidden": true,
              "readout_type": "mono", "variant": "flat" } } },
            { "name": "preglycanaa", "pretrained": format!("{ROOT}/models/preglycanaa-small"), "tasks": ["glycan_type"] },
            { "name": "vabs", "encoder": { "family": "vabs", "model": { "layers": 1, "dim": 16, "edge_dim": 8, "heads": 2,
              "ffn_multiplier": 1, "kernels": 8, "atom_knn": 6, "unit_knn": 6 } } }
        ],
        "tasks": [
            { "name": "glycan_type", "run": { "objective": "graph_task", "task": { "dir": "tasks", "name": "glycan_type" },
              "vocab_glycans": "tasks/glycan_type.csv" } },
            { "name": "dssp", "run": { "objective": "unit_task", "task": "dssp",
              "data": { "structures": files, "valid_fraction": 0.2, "test_fraction": 0.2, "window": 64 } },
              "train": { "batch_size": 4 } }
        ],
        "seeds": [0],
        "train": { "epochs": 1, "batch_size": 16, "optimizer": { "lr": 0.003 } }
    });
    let path = dir.join("experiment.json");
    std::fs::write(&path, exp.to_string()).unwrap();
    path
}

#[test]
fn a_tiny_experiment_runs_resumes_and_tabulates() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let out = dir.path().join("out");
    // First call: killed as soon as its first run has finished.
    let mut child = allatom()
        .args(["compare", "--experiment"])
        .arg(&exp)
        .arg("--out")
        .arg(&out)
        .stderr(std::fs::File::create(dir.path().join("first.log")).unwrap())
        .spawn()
        .unwrap();
    let first = out.join("runs/rgcn__glycan_type__s0/summary.json");
    let t = std::time::Instant::now();
    while !first.exists() && t.elapsed().as_secs() < 600 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert!(first.exists(), "the first run finished: {log}");
    // Second call: keeps the first run, finishes the rest.
    let res = allatom().args(["compare", "--experiment"]).arg(&exp).arg("--out").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{err}");
    assert!(err.contains("rgcn × glycan_type seed 0: finished before, kept"), "{err}");
    assert!(err.contains("skip vabs × glycan_type: vabs needs 3D coordinates"), "{err}");
    assert!(err.contains("skip rgcn × dssp"), "{err}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let rows = results["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{results}");
    // PreGlycanAA is limited to glycan_type: not a skipped pairing, just not in the matrix.
    assert_eq!(results["skipped"].as_array().unwrap().len(), 2);
    assert!(!err.contains("preglycanaa × dssp"), "{err}");
    // The log is not a terminal: no bars, one line per run event and per epoch.
    assert!(log.contains("[1/3] rgcn × glycan_type seed 0: running"), "{log}");
    assert!(log.contains("  epoch 1/1: train loss") && !log.contains('\r'), "{log}");
    // The task's own batch size reached the DSSP runs.
    let run = out.join("runs/vabs__dssp__s0");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let steps =
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().filter(|l| l.contains("\"step\"")).count();
    assert_eq!(summary["steps"].as_u64().unwrap() as usize, steps, "{summary}");
    assert!(steps >= 2, "batch size 4 over the DSSP windows gives several steps, got {steps}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("## glycan_type") && md.contains("## dssp") && md.contains("| rgcn | 1 |"), "{md}");
    assert!(md.contains("| vabs | 1 |") && md.contains("macro_f1"), "{md}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("encoder,task,seed,family,best_valid,best_epoch,epochs,seconds,test_accuracy"), "{csv}");
    // Plots: per task the test bars and the validation curves, SVG and PNG of the stated size.
    for task in ["glycan_type", "dssp"] {
        for kind in ["test", "valid"] {
            let svg = std::fs::read_to_string(out.join(format!("plots/{task}_{kind}.svg"))).unwrap();
            assert!(svg.contains(if kind == "test" { "encoder" } else { "epoch" }), "{task} {kind}");
            let png = std::fs::read(out.join(format!("plots/{task}_{kind}.png"))).unwrap();
            let dec = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
            assert_eq!((dec.info().width, dec.info().height), allatom::compare::PLOT_SIZE, "{task} {kind}");
        }
    }
    let png = std::fs::read(out.join("plots/glycan_type_rgcn_pca.png")).unwrap();
    let dec = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
    assert_eq!((dec.info().width, dec.info().height), allatom::compare::PLOT_SIZE);
    let svg = std::fs::read_to_string(out.join("plots/glycan_type_rgcn_pca.svg")).unwrap();
    assert!(svg.contains("principal component 1") && svg.contains("<circle"), "{svg}");
    // A third call trains nothing.
    let res = allatom().args(["compare", "--experiment"]).arg(&exp).arg("--out").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("3 runs finished (3 from before)"), "{err}");
    // The experiment changed (another budget): its runs are not silently reused.
    let mut changed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&exp).unwrap()).unwrap();
    changed["train"]["epochs"] = serde_json::json!(2);
    std::fs::write(&exp, changed.to_string()).unwrap();
    let res = allatom().args(["compare", "--experiment"]).arg(&exp).arg("--out").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success() && err.contains("made with another configuration"), "{err}");
}

#[test]
fn a_bad_experiment_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.json");
    std::fs::write(&path, r#"{"encoders": [{"name": "../x", "encoder": {}}], "tasks": [{"name": "t", "run": {}}], "seeds": [0], "train": {}}"#)
        .unwrap();
    let res =
        allatom().args(["compare", "--experiment"]).arg(&path).arg("--out").arg(dir.path().join("o")).output().unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("encoder name \"../x\""));
    assert!(!dir.path().join("o").exists());
    // An encoder's `run` fields may add to a task's run, never replace what it sets.
    std::fs::write(
        &path,
        r#"{"encoders": [{"name": "g", "encoder": {"family": "rgcn"}, "run": {"objective": "unit_task"}}],
            "tasks": [{"name": "t", "run": {"objective": "graph_task"}}], "seeds": [0], "train": {}}"#,
    )
    .unwrap();
    let res =
        allatom().args(["compare", "--experiment"]).arg(&path).arg("--out").arg(dir.path().join("o")).output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("encoder g: `run` sets `objective`, which the task t or the experiment already gives"),
        "{err}"
    );
    assert!(!dir.path().join("o").join("runs").exists(), "nothing ran");
}
