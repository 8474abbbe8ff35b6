//! `allatom compare`: encoders × tasks × seeds as resumable runs, then tables.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `allatom compare`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment file (JSON: encoders, tasks, seeds, train; see `allatom::compare`).
    #[arg(long)]
    experiment: PathBuf,
    /// Output directory: runs/<encoder>__<task>__s<seed>/, results.md, results.csv,
    /// results.json.
    #[arg(long)]
    out: PathBuf,
}

/// `allatom compare`.
pub fn run(a: Args) -> Result<ExitCode> {
    let c = allatom::compare::compare(&a.experiment, &a.out)?;
    eprintln!(
        "{} runs finished ({} from before), {} pairings skipped, {} failed → {}",
        c.rows.len(),
        c.reused,
        c.skipped.len(),
        c.failed.len(),
        a.out.join("results.md").display()
    );
    Ok(if c.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
