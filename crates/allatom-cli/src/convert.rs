//! `allatom convert`: a fair-esm ESM-2, official ESM-AA, official Vabs-Net or official GlycanAA /
//! PreGlycanAA torch checkpoint as a package.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

/// Arguments of `allatom convert`.
#[derive(clap::Args)]
pub struct Args {
    /// A fair-esm ESM-2 or official ESM-AA torch checkpoint (`{"cfg", "model"}` pickle), an
    /// official Vabs-Net one (unicore `{"args", "model"}`, or a bare state dict), or an official
    /// GlycanAA / PreGlycanAA one (TorchDrug `{"model": state dict}`, `model.` / `mlp.` keys, or
    /// a bare state dict).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model directory to write (config.json, model.safetensors, tokenizer.json, README.md).
    #[arg(long)]
    out: PathBuf,
    /// Attention heads, when the checkpoint's config cannot be read and the width is not a
    /// released size.
    #[arg(long)]
    heads: Option<usize>,
    /// Vabs-Net: the ESM package (directory or hub id) giving the per-residue rows the
    /// checkpoint's `esm_feat_encoder` takes, written into the package's config.
    #[arg(long)]
    lm: Option<String>,
    /// GlycanAA: the glycoword vocabulary the checkpoint was trained with (JSON: a word list,
    /// `{"glycowords": [...]}` or `{"units", "links"}`); default GlycanML's official one, bundled.
    #[arg(long)]
    vocab: Option<PathBuf>,
}

/// `allatom convert`.
pub fn run(a: Args) -> Result<ExitCode> {
    if allatom::export::is_glycanaa_checkpoint(&a.checkpoint)? {
        if a.lm.is_some() || a.heads.is_some() {
            anyhow::bail!("--lm and --heads do not apply to GlycanAA checkpoints");
        }
        let vocab = a
            .vocab
            .as_ref()
            .map(|p| -> Result<_> {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                glycan_aa::compat::CompatVocab::from_json(&text).with_context(|| p.display().to_string())
            })
            .transpose()?;
        let c = allatom::export::convert_glycanaa(&a.checkpoint, &a.out, vocab)?;
        eprintln!(
            "official GlycanAA: {} blocks {:?}, {} node types, {} relations{} → {}",
            c.config.hidden_dims.len(),
            c.config.hidden_dims,
            c.config.num_unit,
            c.config.num_relation,
            if c.dropped.is_empty() { String::new() } else { format!(", {} head tensors left out", c.dropped.len()) },
            a.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if a.vocab.is_some() {
        anyhow::bail!("--vocab applies to GlycanAA checkpoints only");
    }
    if allatom::export::is_vabs_checkpoint(&a.checkpoint)? {
        let c = allatom::export::convert_vabs(&a.checkpoint, &a.out, a.heads, a.lm.as_deref())?;
        let m = &c.config;
        eprintln!(
            "official Vabs-Net: {} layers × {}, edge width {}, {} heads, kNN {}/{}{}{} → {}",
            m.layers,
            m.dim,
            m.edge_dim,
            m.heads,
            m.knn_res,
            m.knn_atom,
            m.lm_dim.map(|d| format!(", {d}-wide language-model rows")).unwrap_or_default(),
            if c.dropped.is_empty() {
                String::new()
            } else {
                format!(", {} pretraining-head tensors left out", c.dropped.len())
            },
            a.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if a.lm.is_some() {
        anyhow::bail!("--lm applies to Vabs-Net checkpoints only");
    }
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
