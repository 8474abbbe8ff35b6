//! `allatom finetune`: a task run configuration (`graph_task`, `unit_task`) for any encoder.

use std::path::PathBuf;
use std::process::ExitCode;

use allatom::runs::{run as start, Overrides, RunConfig};
use anyhow::{bail, Result};

/// Arguments of `allatom finetune`.
#[derive(clap::Args)]
pub struct Args {
    /// Run configuration (JSON), e.g. models/configs/glycanaa_glycan_type.json.
    #[arg(long)]
    config: PathBuf,
    /// Directory for checkpoints and logs (created; resumed if it holds a checkpoint).
    #[arg(long)]
    run_dir: PathBuf,
    /// Override the training seed (for repeated runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
}

/// `allatom finetune`: prints `{"task", "family", "test"}` as one JSON line on stdout.
pub fn run(a: Args) -> Result<ExitCode> {
    let cfg = RunConfig::read(&a.config)?;
    if cfg.is_pretraining() {
        bail!("{}: objective {} is pretraining; run it with `allatom pretrain`", a.config.display(), cfg.objective());
    }
    let overrides = Overrides { seed: a.seed, epochs: a.epochs, ..Default::default() };
    let summary = start(&a.config, cfg, &a.run_dir, &overrides)?;
    let line = serde_json::json!({ "task": summary["task"], "family": summary["family"], "test": summary["test"] });
    allatom::output::print(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}
