//! `allatom vabs-official`: the official-compatible Vabs-Net's two levels on files.

use std::path::PathBuf;
use std::process::ExitCode;

use aa_sparse_attn::official::FeaturizeOptions;
use anyhow::Result;

/// Arguments of `allatom vabs-official`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    step: Step,
}

#[derive(clap::Subcommand)]
enum Step {
    /// A structure file → the official model inputs (safetensors: atom_pos, atom_type,
    /// residue_type, residue_idx_all, res_mask, edge_index, aa_edge_index, edge_vec,
    /// edge_aa_vec), as the official data pipeline builds them without its random rotation.
    Featurize {
        /// PDB or mmCIF file (gzip/bzip2 allowed).
        #[arg(long)]
        structure: PathBuf,
        /// Chain to read (default: the first chain with ATOM records).
        #[arg(long)]
        chain: Option<String>,
        /// Residue neighbours, the residue itself included (official 30).
        #[arg(long, default_value_t = 30)]
        knn_res: usize,
        /// Atom neighbours, the atom itself included (official 30).
        #[arg(long, default_value_t = 30)]
        knn_atom: usize,
        /// Output safetensors file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Official inputs (the layout `featurize` writes, plus `esm_feat` [R, esm_dim] when the
    /// model takes language-model rows) + an official-mode package → every stage of the
    /// forward pass (embed.*, encoder.*, layer.{i}.atom / residue / out, final, pocket_logits).
    Forward {
        /// Official-mode package directory (from `allatom convert`).
        #[arg(long)]
        model: PathBuf,
        /// Input safetensors file.
        #[arg(long)]
        inputs: PathBuf,
        /// Output safetensors file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `allatom vabs-official`.
pub fn run(a: Args) -> Result<ExitCode> {
    match a.step {
        Step::Featurize { structure, chain, knn_res, knn_atom, out } => {
            let x = allatom::vabs_official::featurize_file(
                &structure,
                chain.as_deref(),
                &FeaturizeOptions { knn_res, knn_atom },
                &out,
            )?;
            eprintln!(
                "{} atom rows, {} residue rows, {} residue edges, {} atom edges → {}",
                x.num_atoms(),
                x.num_residue_rows(),
                x.edge_index.len(),
                x.aa_edge_index.len(),
                out.display()
            );
        }
        Step::Forward { model, inputs, out } => {
            let stages = allatom::vabs_official::forward_file(&model, &inputs, &out)?;
            for (name, shape) in stages {
                eprintln!("{name} {shape:?}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
