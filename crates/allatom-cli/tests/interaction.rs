//! `allatom finetune` on the protein–glycan interaction task (`pair_task`) with a real-data
//! subset of `cargo xtask data`'s tables: 10 proteins of each split with their pairs to the
//! 120 glycans measured most often, the protein side a tiny ESM-2 model directory (the
//! aa-codeswitch fixture), the glycan side the RGCN baseline. Checks the split sizes and the
//! metrics, that a second run reads the cached protein rows instead of embedding again, and
//! that a glycan model as the protein side and a malformed pair row are refused with a clear
//! error and no summary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The subset in `<dir>/tasks` (ids renumbered, no manifest); (proteins per split, pairs).
fn subset(dir: &Path) -> (BTreeMap<String, usize>, usize) {
    let read =
        |f: &str| std::fs::read_to_string(format!("{ROOT}/data/tasks/{f}.csv")).expect("run `cargo xtask data` first");
    let mut proteins = csv::Reader::from_reader(read("interaction_proteins").as_bytes().to_vec().as_slice())
        .records()
        .map(|r| r.unwrap())
        .collect::<Vec<_>>();
    proteins.retain(|r| r[2].len() < 600);
    let mut chosen: Vec<csv::StringRecord> = Vec::new();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for r in proteins {
        let n = per.entry(r[3].to_string()).or_default();
        if *n < 10 {
            *n += 1;
            chosen.push(r);
        }
    }
    let new_id: BTreeMap<String, usize> = chosen.iter().enumerate().map(|(i, r)| (r[0].to_string(), i)).collect();
    let pairs_text = read("interaction");
    let mut pairs: Vec<(usize, String, String)> = Vec::new();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in csv::Reader::from_reader(pairs_text.as_bytes()).records() {
        let r = r.unwrap();
        if let Some(&i) = new_id.get(&r[0]) {
            *count.entry(r[1].to_string()).or_default() += 1;
            pairs.push((i, r[1].to_string(), r[2].to_string()));
        }
    }
    let mut by_count: Vec<(&String, &usize)> = count.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let keep: BTreeSet<&String> = by_count.iter().take(120).map(|(g, _)| *g).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["protein", "name", "sequence", "split"]).unwrap();
    for (i, r) in chosen.iter().enumerate() {
        w.write_record([&i.to_string(), &r[1], &r[2], &r[3]]).unwrap();
    }
    std::fs::create_dir_all(dir.join("tasks")).unwrap();
    std::fs::write(dir.join("tasks/interaction_proteins.csv"), w.into_inner().unwrap()).unwrap();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["protein", "glycan", "value"]).unwrap();
    let mut n = 0;
    for (i, g, v) in pairs.iter().filter(|p| keep.contains(&p.1)) {
        w.write_record([&i.to_string(), g, v]).unwrap();
        n += 1;
    }
    std::fs::write(dir.join("tasks/interaction.csv"), w.into_inner().unwrap()).unwrap();
    (per, n)
}

fn config(dir: &Path, protein_model: &Path) -> PathBuf {
    let cfg = serde_json::json!({
        "objective": "pair_task",
        "task": { "dir": "tasks", "name": "interaction" },
        "protein_model": protein_model,
        "max_residues": 200,
        "encoder": { "family": "rgcn", "model": { "num_unit": 0, "num_relation": 0, "input_dim": 16,
            "hidden_dims": [16, 16], "batch_norm": false, "activation": "relu", "concat_hidden": true,
            "readout_type": "mono", "variant": "flat" } },
        "vocab_glycans": format!("{ROOT}/data/tasks/glycan_type.csv"),
        "train": { "epochs": 2, "batch_size": 16, "optimizer": { "lr": 0.003 }, "schedule": { "kind": "cosine" } }
    });
    let p = dir.join(format!("interaction_{}.json", protein_model.file_name().unwrap().to_string_lossy()));
    std::fs::write(&p, cfg.to_string()).unwrap();
    p
}

fn finetune(config: &Path, run: &Path) -> std::process::Output {
    allatom().args(["finetune", "--config"]).arg(config).arg("--run-dir").arg(run).output().unwrap()
}

#[test]
fn interaction_trains_caches_proteins_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (per, pairs) = subset(d);
    assert_eq!(per.values().sum::<usize>(), 30, "{per:?}");
    assert!(pairs > 300, "{pairs} pairs in the subset");
    let esm = Path::new(ROOT).join("crates/aa-codeswitch/tests/fixtures/hf-tiny");
    let cfg = config(d, &esm);
    let out = finetune(&cfg, &d.join("a"));
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("embedded 30 protein sequences"), "{log}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("a/summary.json")).unwrap()).unwrap();
    let sizes = &s["sizes"];
    let n = |k: &str| sizes[k].as_u64().unwrap() as usize;
    assert_eq!(n("train_pairs") + n("valid_pairs") + n("test_pairs") + n("dropped_pairs"), pairs, "{sizes}");
    assert!(n("valid_pairs") > 0 && n("test_pairs") > 0, "{sizes}");
    for m in ["spearman", "pearson"] {
        let v = s["test"][m].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&v), "{m} {v}");
    }
    assert!(s["test"]["rmse"].as_f64().unwrap() > 0.0 && s["test"]["mae"].as_f64().unwrap() > 0.0);
    assert_eq!(std::fs::read_dir(d.join("tasks/cache")).unwrap().count(), 1);
    // A second run reads the cached protein rows.
    let out = finetune(&cfg, &d.join("b"));
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && !log.contains("embedded"), "{log}");

    // A glycan model cannot be the protein side.
    let glycan_model = config(d, &Path::new(ROOT).join("models/preglycanaa-small"));
    let out = finetune(&glycan_model, &d.join("c"));
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && e.contains("protein_model") && e.contains("amino-acid residues"), "{e}");
    assert!(!d.join("c/summary.json").exists());
    // A malformed pair row: the file and line, no summary.
    let p = d.join("tasks/interaction.csv");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("{text}0,Man,high\n")).unwrap();
    let out = finetune(&cfg, &d.join("e"));
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && e.contains("interaction.csv:") && e.contains("\"high\""), "{e}");
    assert!(!d.join("e/summary.json").exists());
}
