//! `cargo xtask package-check`: what `cargo install allatom-cli` would do from crates.io, offline.
//! Packages every crate (`cargo package --workspace`, which also verifies that each packaged
//! crate builds), makes a directory registry of the packaged crates plus the vendored
//! third-party ones (`cargo vendor`), installs the packaged CLI from it into
//! `target/package-check/root`, and runs the built-in default embedding with the hub offline.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Workspace crates a `cargo install allatom-cli` needs (the publishable ones).
const CRATES: [&str; 11] = [
    "aa-graph",
    "aa-plot",
    "aa-rgconv",
    "aa-codeswitch",
    "aa-sparse-attn",
    "aa-pretrain",
    "aa-encoder",
    "glycan-aa",
    "protein-aa",
    "allatom",
    "allatom-cli",
];

pub fn run(root: &Path, verify: bool) -> Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let work = root.join("target/package-check");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut package = Command::new(env!("CARGO"));
    package.current_dir(root).args(["package", "--allow-dirty"]);
    for c in CRATES {
        package.args(["-p", c]);
    }
    if !verify {
        package.arg("--no-verify");
    }
    super::run(&mut package, "cargo package")?;
    // Third-party crates, as a directory source.
    let vendor = work.join("vendor");
    let mut v = Command::new(env!("CARGO"));
    v.current_dir(root).args(["vendor", "--offline", "--versioned-dirs", "-q"]).arg(&vendor);
    super::run(v.stdout(std::process::Stdio::null()), "cargo vendor")?;
    // Ours, from the .crate files (what crates.io would serve).
    for c in CRATES {
        let file = root.join(format!("target/package/{c}-{version}.crate"));
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let size = bytes.len();
        if size > 10 << 20 {
            bail!("{}: {size} bytes, over crates.io's 10 MB", file.display());
        }
        println!("{c}: {:.1} MB packaged", size as f64 / 1e6);
        let dest = vendor.join(format!("{c}-{version}"));
        let _ = std::fs::remove_dir_all(&dest);
        super::run(Command::new("tar").arg("xzf").arg(&file).arg("-C").arg(&vendor), "unpacking a crate")?;
        let sum = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
        std::fs::write(dest.join(".cargo-checksum.json"), format!("{{\"files\":{{}},\"package\":\"{sum}\"}}"))?;
    }
    let install_root = work.join("root");
    let mut install = Command::new(env!("CARGO"));
    install
        .current_dir(&work)
        .args(["install", "allatom-cli", "--offline", "--locked", "--root"])
        .arg(&install_root)
        .arg("--config")
        .arg("source.crates-io.replace-with='packaged'")
        .arg("--config")
        .arg(format!("source.packaged.directory='{}'", vendor.display()));
    super::run(&mut install, "cargo install allatom-cli from the packaged crates")?;
    let out = work.join("e.npy");
    let st = Command::new(install_root.join("bin/allatom"))
        .args(["embed", "--glycan", "Neu5Ac(a2-3)Gal(b1-4)GlcNAc(b1-", "--out"])
        .arg(&out)
        .env("HF_HUB_OFFLINE", "1")
        .status()
        .context("running the installed allatom")?;
    if !st.success() || std::fs::metadata(&out).map_or(0, |m| m.len()) < 128 {
        bail!("the installed allatom did not embed with its built-in model");
    }
    println!(
        "installed {} and embedded with the built-in default: {}",
        install_root.join("bin/allatom").display(),
        out.display()
    );
    Ok(())
}
