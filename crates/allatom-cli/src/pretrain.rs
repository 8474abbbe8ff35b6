//! `allatom pretrain`: a pretraining run configuration (PreGlycanAA, ESM-AA, Vabs-Net SMPC).

use std::path::PathBuf;
use std::process::ExitCode;

use allatom::runs::{run as start, Overrides, RunConfig};
use anyhow::{bail, Result};

/// Arguments of `allatom pretrain`.
#[derive(clap::Args)]
pub struct Args {
    /// Run configuration (JSON), e.g. models/configs/preglycanaa_quick.json.
    #[arg(long)]
    config: PathBuf,
    /// Directory for checkpoints and logs (created; resumed if it holds a checkpoint).
    #[arg(long)]
    run_dir: PathBuf,
    /// Pause after this many optimiser steps in total (overrides the config).
    #[arg(long)]
    max_steps: Option<u64>,
}

/// `allatom pretrain`.
pub fn run(a: Args) -> Result<ExitCode> {
    let cfg = RunConfig::read(&a.config)?;
    if !cfg.is_pretraining() {
        bail!("{}: objective {} is a task; run it with `allatom finetune`", a.config.display(), cfg.objective());
    }
    start(&a.config, cfg, &a.run_dir, &Overrides { max_steps: a.max_steps, ..Default::default() })?;
    Ok(ExitCode::SUCCESS)
}
