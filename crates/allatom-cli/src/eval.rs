//! `allatom eval`: a graph-task checkpoint on one split of its task, as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `allatom eval`.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory from `allatom finetune` or a checkpoint directory inside it.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Which split: train, valid or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Task directory (default: the one recorded at fine-tuning).
    #[arg(long)]
    task_dir: Option<PathBuf>,
    /// Write the JSON here (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `allatom eval`.
pub fn run(a: Args) -> Result<ExitCode> {
    let out = allatom::runs::eval(&a.checkpoint, &a.split, a.task_dir.as_deref())?;
    let text = serde_json::to_string_pretty(&out)? + "\n";
    match &a.out {
        Some(p) => aa_pretrain::checkpoint::write_atomic(p, text.as_bytes())?,
        None => allatom::output::print(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}
