//! `allatom convert`: a fair-esm ESM-2 or official ESM-AA torch checkpoint as a package.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `allatom convert`.
#[derive(clap::Args)]
pub struct Args {
    /// A fair-esm ESM-2 or official ESM-AA torch checkpoint (`{"cfg", "model"}` pickle).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model directory to write (config.json, model.safetensors, tokenizer.json, README.md).
    #[arg(long)]
    out: PathBuf,
    /// Attention heads, when the checkpoint's config cannot be read and the width is not a
    /// released size.
    #[arg(long)]
    heads: Option<usize>,
}

/// `allatom convert`.
pub fn run(a: Args) -> Result<ExitCode> {
    let c = allatom::export::convert_esm(&a.checkpoint, &a.out, a.heads)?;
    let m = &c.config;
    eprintln!(
        "{}: {} layers × {}, {} heads, {} tokens → {}",
        c.kind,
        m.num_hidden_layers,
        m.hidden_size,
        m.num_attention_heads,
        m.vocab_size,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
