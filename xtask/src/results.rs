//! `cargo xtask results`: the fine-tuning comparison of models/RESULTS.md — every
//! (model, task, seed) run of `allatom finetune` with the committed configs
//! `models/configs/<model>_<task>.json`, then a Markdown table of test metrics (mean ± sample
//! standard deviation over seeds) and training speed. Runs that finished (their summary.json
//! exists) are not repeated; interrupted ones resume from their checkpoints.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// What to run.
pub struct Plan {
    /// Config prefixes: `rgcn`, `glycanaa`, `preglycanaa`.
    pub models: Vec<String>,
    /// Config suffixes: `glycan_type`, `taxonomy`.
    pub tasks: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
}

const LEVELS: [&str; 8] = ["domain", "kingdom", "phylum", "class", "order", "family", "genus", "species"];

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

fn cell(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "—".into();
    }
    let (m, s) = mean_std(xs);
    format!("{:.1} ± {:.1}", 100.0 * m, 100.0 * s)
}

pub fn run(root: &Path, plan: &Plan) -> Result<()> {
    let st = Command::new("cargo")
        .args(["build", "--release", "-p", "allatom-cli"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !st.success() {
        bail!("building allatom failed");
    }
    let bin = root.join("target/release/allatom");
    let out_dir = root.join("runs/results");
    // summaries[(model, task)] = one summary per seed
    let mut summaries: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for task in &plan.tasks {
        for model in &plan.models {
            let config = root.join(format!("models/configs/{model}_{task}.json"));
            if !config.exists() {
                bail!("{}: no such config", config.display());
            }
            for seed in &plan.seeds {
                let run_dir = out_dir.join(format!("{model}_{task}_s{seed}"));
                let summary = run_dir.join("summary.json");
                if !summary.exists() {
                    println!("== {model} {task} seed {seed} → {}", run_dir.display());
                    let st = Command::new(&bin)
                        .arg("finetune")
                        .arg("--config")
                        .arg(&config)
                        .arg("--run-dir")
                        .arg(&run_dir)
                        .arg("--seed")
                        .arg(seed.to_string())
                        .status()
                        .context("running allatom finetune")?;
                    if !st.success() {
                        bail!("allatom finetune --config {} --seed {seed} failed", config.display());
                    }
                }
                let text =
                    std::fs::read_to_string(&summary).with_context(|| format!("reading {}", summary.display()))?;
                summaries.entry((model.clone(), task.clone())).or_default().push(serde_json::from_str(&text)?);
            }
        }
    }
    let table = render(plan, &summaries);
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("table.md"), &table)?;
    println!("{table}\n(written to {})", out_dir.join("table.md").display());
    Ok(())
}

fn metric(s: &Value, key: &str) -> Option<f64> {
    s["test"][key].as_f64()
}

fn render(plan: &Plan, summaries: &BTreeMap<(String, String), Vec<Value>>) -> String {
    let mut t = String::new();
    let get = |m: &str, task: &str| summaries.get(&(m.to_string(), task.to_string())).cloned().unwrap_or_default();
    if plan.tasks.iter().any(|t| t == "glycan_type") {
        t.push_str("Glycosylation type (test, %, mean ± std over seeds):\n\n");
        t.push_str("| model | accuracy | macro-F1 | epochs | s / epoch | glycans / s |\n| --- | --- | --- | --- | --- | --- |\n");
        for m in &plan.models {
            let s = get(m, "glycan_type");
            let col = |k: &str| cell(&s.iter().filter_map(|x| metric(x, k)).collect::<Vec<_>>());
            t.push_str(&format!("| {m} | {} | {} | {} |\n", col("accuracy"), col("macro_f1"), speed(&s)));
        }
        t.push('\n');
    }
    if plan.tasks.iter().any(|t| t == "taxonomy") {
        t.push_str("Taxonomy, eight levels trained jointly (test accuracy, %, mean ± std over seeds):\n\n| model |");
        for l in LEVELS {
            t.push_str(&format!(" {l} |"));
        }
        t.push_str(" mean | epochs | s / epoch | glycans / s |\n|");
        t.push_str(&" --- |".repeat(LEVELS.len() + 5));
        t.push('\n');
        for m in &plan.models {
            let s = get(m, "taxonomy");
            t.push_str(&format!("| {m} |"));
            for l in LEVELS {
                let xs: Vec<f64> = s.iter().filter_map(|x| metric(x, &format!("accuracy/taxonomy_{l}"))).collect();
                t.push_str(&format!(" {} |", cell(&xs)));
            }
            let xs: Vec<f64> = s.iter().filter_map(|x| metric(x, "accuracy")).collect();
            t.push_str(&format!(" {} | {} |\n", cell(&xs), speed(&s)));
        }
    }
    t
}

/// Epochs, median seconds per epoch and median glycans/s over every epoch of every seed.
fn speed(s: &[Value]) -> String {
    let mut secs = Vec::new();
    let mut rate = Vec::new();
    let mut epochs = 0;
    for x in s {
        if let Some(h) = x["history"].as_array() {
            epochs = epochs.max(h.len());
            for e in h {
                secs.extend(e["seconds"].as_f64());
                rate.extend(e["items_per_second"].as_f64());
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    format!("{epochs} | {:.0} | {:.0}", median(&mut secs), median(&mut rate))
}
