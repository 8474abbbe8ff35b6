//! `cargo xtask …`: fetching data sets into `data/fetched/` with the same files the shared
//! folder holds, so the project works for users who only have the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download glycowork 1.11.0 from PyPI (pip download --no-deps) and unpack its curated
    /// glycan tables (v12_df_species.csv, v12_glycan_binding.csv, sugarbase) into
    /// data/fetched/glycowork/.
    FetchGlycowork,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::FetchGlycowork => fetch_glycowork(&root().join("data/fetched/glycowork")),
    }
}

fn fetch_glycowork(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    let wheel = dest.join("glycowork-1.11.0-py3-none-any.whl");
    if !wheel.exists() {
        let st = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "glycowork==1.11.0", "-d"])
            .arg(dest)
            .status()
            .context("running python3 -m pip (is Python with pip installed?)")?;
        if !st.success() {
            bail!("pip download glycowork==1.11.0 failed");
        }
    }
    // Unpack only the data tables we use, with Python's zipfile (always present with pip).
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor n in z.namelist():\n    if n.startswith('glycowork/glycan_data/v12_') :\n        z.extract(n, sys.argv[2])\n";
    let st = Command::new("python3").arg("-c").arg(script).arg(&wheel).arg(dest).status()?;
    if !st.success() {
        bail!("unpacking {} failed", wheel.display());
    }
    println!("glycowork tables in {}", dest.join("glycowork/glycan_data").display());
    Ok(())
}
