//! `cargo xtask python-tests`: the Python package's test suite on a fresh wheel. Builds the CLI
//! and the `allatom` wheel (maturin, the development profile `cargo test` uses, so the Python
//! rows can be compared with the CLI's bit for bit), installs the wheel into
//! `target/python-tests/venv` (made with `python3 -m venv`; maturin 1.16, NumPy, pytest and ray 2.60
//! from PyPI on first use) and runs pytest on `crates/allatom-py/tests/`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Python packages the suite needs (`maturin` builds the wheel; ray for the Ray Data recipe,
/// about 20 s to install here).
const PACKAGES: [&str; 4] = ["maturin==1.16.0", "numpy", "pytest", "ray[data]==2.60.0"];

pub fn run(root: &Path, release: bool, pytest_args: &[String]) -> Result<()> {
    let target = root.join("target");
    let profile = if release { "release" } else { "debug" };
    let mut build = Command::new(env!("CARGO"));
    build.current_dir(root).args(["build", "-p", "allatom-cli"]);
    if release {
        build.arg("--release");
    }
    super::run(&mut build, "building the allatom CLI")?;
    let dir = target.join("python-tests");
    let venv = dir.join("venv");
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        let st =
            Command::new("python3").arg("-m").arg("venv").arg(&venv).status().context("running python3 -m venv")?;
        if !st.success() {
            bail!("python3 -m venv {} failed (on Debian/Ubuntu: apt-get install python3-venv)", venv.display());
        }
    }
    let python = bin.join("python");
    let ready = bin.join("maturin").exists()
        && Command::new(&python).args(["-c", "import numpy, pytest, ray"]).status().is_ok_and(|s| s.success());
    if !ready {
        let mut pip = Command::new(&python);
        pip.args(["-m", "pip", "install", "-q"]).args(PACKAGES);
        super::run(&mut pip, "installing maturin, numpy, pytest and ray into the test venv")?;
    }
    let wheels = dir.join("wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    let mut maturin = Command::new(bin.join("maturin"));
    maturin.current_dir(root).args(["build", "-q", "-m", "crates/allatom-py/Cargo.toml", "-o"]).arg(&wheels);
    if release {
        maturin.arg("--release");
    }
    super::run(&mut maturin, "building the allatom wheel")?;
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("maturin wrote no wheel")?;
    let mut install = Command::new(&python);
    install.args(["-m", "pip", "install", "-q", "--force-reinstall", "--no-deps"]).arg(&wheel);
    super::run(&mut install, "installing the wheel")?;
    let st = Command::new(&python)
        .current_dir(root)
        .args(["-m", "pytest", "-q", "crates/allatom-py/tests"])
        .args(pytest_args)
        .env("ALLATOM_CLI", target.join(profile).join("allatom"))
        .status()
        .context("running pytest")?;
    match st.code() {
        Some(0) => Ok(()),
        // pytest's "no tests collected": the suite is missing, which is a failure here.
        Some(5) => bail!("pytest collected no tests from crates/allatom-py/tests"),
        _ => bail!("the Python tests failed"),
    }
}
