//! `allatom export`: the encoder of a pretraining or task run, of any family, as a package.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `allatom export`.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory (its best checkpoint) or a checkpoint directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Package directory to write (replaced atomically; only a package is ever replaced).
    #[arg(long)]
    out: PathBuf,
    /// Storage type of the weights: f32, f16 or bf16 (computation is always f32; ESM: f32).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Name in the model card (default: the directory name).
    #[arg(long)]
    name: Option<String>,
}

/// `allatom export`.
pub fn run(a: Args) -> Result<ExitCode> {
    let dtype = allatom::export::dtype_of(&a.dtype)?;
    let name = a.name.clone().unwrap_or_else(|| {
        a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
    });
    let e = allatom::export::export(&a.checkpoint, &a.out, dtype, &name)?;
    eprintln!("{name} ({}, {} parameters, {}) written to {}", e.family, e.parameters, a.dtype, a.out.display());
    Ok(ExitCode::SUCCESS)
}
