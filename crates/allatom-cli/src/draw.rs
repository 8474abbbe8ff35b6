//! `allatom draw`: a glycan in SNFG symbols (`glycan_aa::snfg`), as SVG or PNG.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use glycan_aa::notation::Notation;

/// Arguments of `allatom draw`.
#[derive(clap::Args)]
pub struct Args {
    /// The glycan (IUPAC-condensed, WURCS 2.0, GlycoCT, IUPAC-extended or a short form).
    #[arg(long)]
    glycan: String,
    /// The picture to write: .svg, or .png (rasterised at twice the SVG's size).
    #[arg(long)]
    out: PathBuf,
    /// The notation (default: detected).
    #[arg(long)]
    format: Option<Notation>,
}

/// `allatom draw`.
pub fn run(a: Args) -> Result<ExitCode> {
    let ext = a.out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let png = match ext.as_deref() {
        Some("svg") => false,
        Some("png") => true,
        _ => bail!("--out {}: give a .svg or .png file", a.out.display()),
    };
    let notation = a.format.unwrap_or_else(|| Notation::detect(&a.glycan));
    let g = match glycan_aa::Glycan::parse_as(&a.glycan, notation) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: glycan {:?}: {e}", a.glycan);
            return Ok(ExitCode::from(1));
        }
    };
    let bytes = if png {
        aa_plot::png_of_svg(&glycan_aa::snfg::svg_scaled(&g.tree, 2.0)).map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        glycan_aa::snfg::svg(&g.tree).into_bytes()
    };
    aa_pretrain::checkpoint::write_atomic(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("{} residues drawn → {}", g.tree.residues.len(), a.out.display());
    Ok(ExitCode::SUCCESS)
}
