//! `cargo xtask …`: fetching data sets into `data/fetched/` (the same files the shared folder
//! and the issues name), so the project works for users who only have the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod fuzz;
mod package;
mod python;
mod results;
mod tasks;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything the tests read: glycowork tables, the structure files and the glycan
    /// crystal structures of glycontact.
    FetchData,
    /// Download glycontact 0.6.0 from PyPI and write the 2,904 lectin-bound glycan structures
    /// of its UniLectin table (`unilectin_data.json`: 310 glycans, coordinates and B-factors of
    /// the glycan atoms from crystal structures) as PDB files into
    /// data/fetched/glycontact/unilectin/, with `index.csv` (`file,glycan`).
    FetchGlycontact,
    /// Download glycowork 1.11.0 from PyPI (pip download --no-deps) and unpack its curated
    /// glycan tables (v12_df_species.csv, v12_glycan_binding.csv, sugarbase) into
    /// data/fetched/glycowork/.
    FetchGlycowork,
    /// Real structure files into data/fetched/structures/: the PDB/mmCIF files shipped in
    /// PyPI's mdanalysistests 2.11.0 and in the biopython 1.88 sdist (Tests/PDB, with 7DDO),
    /// and the structures shipped in the pdbrust 0.7.1 crate.
    FetchStructures,
    /// Rebuild GlycanML-style tasks from glycowork 1.11.0 into data/tasks/: glycosylation type
    /// (N / O / free, from the sugarbase) and taxonomy at 8 levels (Domain … Species, from
    /// v12_df_species.csv, single-label per level over glycans with one lineage), with
    /// deterministic splits and a MANIFEST.json of row counts and SHA-256 checksums. See
    /// data/tasks/README.md.
    Data,
    /// The fine-tuning comparison in models/RESULTS.md: `allatom finetune` with
    /// models/configs/<model>_<task>.json for every model, task and seed (into runs/results/,
    /// finished runs kept), then a Markdown table (runs/results/table.md). The preglycanaa
    /// configs need the pretraining run runs/preglycanaa_paper (see models/RESULTS.md). Hours
    /// of CPU time with the defaults.
    Results {
        /// Comma-separated config prefixes.
        #[arg(long, default_value = "rgcn,glycanaa,preglycanaa")]
        models: String,
        /// Comma-separated tasks.
        #[arg(long, default_value = "glycan_type,taxonomy")]
        tasks: String,
        /// Comma-separated seeds.
        #[arg(long, default_value = "0,1,2")]
        seeds: String,
    },
    /// The Python package's tests: builds the CLI and the wheel, installs it into
    /// target/python-tests/venv (maturin, numpy, pytest from PyPI on first use) and runs pytest
    /// on crates/allatom-py/tests (arguments after `--` go to pytest).
    PythonTests {
        /// Release builds (for timing; the default matches `cargo test`'s profile).
        #[arg(long)]
        release: bool,
        /// Extra pytest arguments.
        #[arg(last = true)]
        pytest: Vec<String>,
    },
    /// What `cargo install allatom-cli` from crates.io would do, offline: packages the crates
    /// (verifying each builds unless --no-verify), installs the packaged CLI from a directory
    /// registry of them plus the vendored dependencies into target/package-check/root, and runs
    /// the built-in default embedding. A release build from scratch: many minutes.
    PackageCheck {
        /// Skip `cargo package`'s build of each packaged crate.
        #[arg(long)]
        no_verify: bool,
    },
    /// Fuzz every reader of user data (cargo-fuzz on nightly; see fuzz/README.md): builds the
    /// targets, runs each for `--runs` executions from fuzz/seeds, prints the table of
    /// fuzz/README.md, fails on any crash (its input in fuzz/artifacts/).
    Fuzz {
        /// Executions per target.
        #[arg(long, default_value_t = 10_000_000)]
        runs: u64,
        /// Comma-separated targets (default: all).
        #[arg(long)]
        targets: Option<String>,
        /// Targets run at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
    },
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() -> Result<()> {
    let fetched = root().join("data/fetched");
    match Cli::parse().command {
        Cmd::FetchData => {
            fetch_glycowork(&fetched.join("glycowork"))?;
            fetch_glycanbench(&fetched.join("glycanbench"))?;
            tasks::build(&fetched.join("glycowork"), &fetched.join("glycanbench"), &root().join("data/tasks"))?;
            fetch_structures(&fetched)?;
            fetch_glycontact(&fetched.join("glycontact"))
        }
        Cmd::FetchGlycontact => fetch_glycontact(&fetched.join("glycontact")),
        Cmd::Data => {
            fetch_glycowork(&fetched.join("glycowork"))?;
            fetch_glycanbench(&fetched.join("glycanbench"))?;
            tasks::build(&fetched.join("glycowork"), &fetched.join("glycanbench"), &root().join("data/tasks"))
        }
        Cmd::FetchGlycowork => fetch_glycowork(&fetched.join("glycowork")),
        Cmd::Results { models, tasks, seeds } => {
            let list = |s: &str| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
            let seeds = seeds
                .split(',')
                .map(|x| x.trim().parse::<u64>().with_context(|| format!("--seeds: {x:?} is not a number")))
                .collect::<Result<_>>()?;
            results::run(&root(), &results::Plan { models: list(&models), tasks: list(&tasks), seeds })
        }
        Cmd::FetchStructures => fetch_structures(&fetched),
        Cmd::PackageCheck { no_verify } => package::run(&root(), !no_verify),
        Cmd::PythonTests { release, pytest } => python::run(&root(), release, &pytest),
        Cmd::Fuzz { runs, targets, jobs } => {
            let targets: Vec<String> = match targets {
                Some(t) => t.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
                None => fuzz::TARGETS.iter().map(|t| t.to_string()).collect(),
            };
            fuzz::run(&root(), &targets, runs, jobs)
        }
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {what}"))?;
    if !st.success() {
        bail!("{what} failed");
    }
    Ok(())
}

fn pip_download(spec: &str, dest: &Path, sdist: bool) -> Result<()> {
    let mut c = Command::new("python3");
    c.args(["-m", "pip", "download", "--quiet", "--no-deps", spec, "-d"]).arg(dest);
    if sdist {
        c.args(["--no-binary", ":all:"]);
    }
    run(&mut c, &format!("pip download {spec} (is Python with pip installed?)"))
}

/// glycanbench 1.0.0 (MIT) from PyPI: only its labelled glycan table
/// (`glycanbench/dataset/merged_glycan_dataset.csv`, the immunogenicity labels).
fn fetch_glycanbench(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    let wheel = dest.join("glycanbench-1.0.0-py3-none-any.whl");
    if !wheel.exists() {
        pip_download("glycanbench==1.0.0", dest, false)?;
    }
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nz.extract('glycanbench/dataset/merged_glycan_dataset.csv', sys.argv[2])\n";
    run(Command::new("python3").arg("-c").arg(script).arg(&wheel).arg(dest), "unpacking glycanbench")?;
    println!("glycanbench table in {}", dest.join("glycanbench/dataset").display());
    Ok(())
}

fn fetch_glycowork(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    let wheel = dest.join("glycowork-1.11.0-py3-none-any.whl");
    if !wheel.exists() {
        pip_download("glycowork==1.11.0", dest, false)?;
    }
    // Unpack only the data tables we use, with Python's zipfile (always present with pip).
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor n in z.namelist():\n    if n.startswith('glycowork/glycan_data/v12_'):\n        z.extract(n, sys.argv[2])\n";
    run(Command::new("python3").arg("-c").arg(script).arg(&wheel).arg(dest), "unpacking glycowork")?;
    println!("glycowork tables in {}", dest.join("glycowork/glycan_data").display());
    Ok(())
}

/// The value of one cell of glycontact's serialised data frames (`{"type": "primitive",
/// "value": "..."}`).
fn cell(v: &serde_json::Value) -> Result<&str> {
    v.get("value").and_then(|x| x.as_str()).context("a data-frame cell without a string value")
}

fn fetch_glycontact(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    let wheel = dest.join("glycontact-0.6.0-py3-none-any.whl");
    if !wheel.exists() {
        pip_download("glycontact==0.6.0", dest, false)?;
    }
    let json = dest.join("glycontact/unilectin_data.json");
    if !json.exists() {
        let script = "import sys, zipfile\nzipfile.ZipFile(sys.argv[1]).extract('glycontact/unilectin_data.json', sys.argv[2])\n";
        run(Command::new("python3").arg("-c").arg(script).arg(&wheel).arg(dest), "unpacking glycontact")?;
    }
    let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JSON object", json.display()))?;
    let out = dest.join("unilectin");
    std::fs::create_dir_all(&out)?;
    let mut index = String::from("file,glycan\n");
    let (mut files, mut glycans) = (0usize, 0usize);
    // Sorted by glycan string, so file names do not depend on the JSON's key order.
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    for key in keys {
        let sets = data[key].as_array().with_context(|| format!("glycan {key}: not a list of structures"))?;
        for (k, set) in sets.iter().enumerate() {
            let frame = set.get(0).with_context(|| format!("glycan {key}, structure {k}: no data frame"))?;
            let columns: Vec<&str> = frame["columns"]
                .as_array()
                .context("a data frame without columns")?
                .iter()
                .filter_map(|c| c.as_str())
                .collect();
            let col = |name: &str| {
                columns.iter().position(|c| *c == name).with_context(|| format!("glycan {key}: no column {name}"))
            };
            let (name, resname, chain, resseq) =
                (col("atom_name")?, col("monosaccharide")?, col("chain_id")?, col("residue_number")?);
            let (x, y, z, occ, b, el) =
                (col("x")?, col("y")?, col("z")?, col("occupancy")?, col("temperature_factor")?, col("element")?);
            let mut pdb = format!("REMARK   1 GLYCAN {key}\nREMARK   2 GLYCONTACT 0.6.0 UNILECTIN STRUCTURE {k}\n");
            let rows = frame["data"].as_array().context("a data frame without data")?;
            for (i, row) in rows.iter().enumerate() {
                let r = row.as_array().context("a data-frame row that is not a list")?;
                let get = |c: usize| r.get(c).context("a short data-frame row").and_then(cell);
                let num = |c: usize| -> Result<f64> {
                    get(c)?.parse::<f64>().with_context(|| format!("glycan {key}: column {c} is not a number"))
                };
                let atom = get(name)?;
                let element = get(el)?;
                // PDB columns 13–16: names shorter than four characters start in column 14.
                let padded = if atom.len() < 4 { format!(" {atom:<3}") } else { atom.to_string() };
                pdb.push_str(&format!(
                    "HETATM{:>5} {padded} {:>3} {:1}{:>4}    {:8.3}{:8.3}{:8.3}{:6.2}{:6.2}          {:>2}\n",
                    i + 1,
                    get(resname)?,
                    get(chain)?.chars().next().unwrap_or('A'),
                    get(resseq)?,
                    num(x)?,
                    num(y)?,
                    num(z)?,
                    num(occ)?,
                    num(b)?,
                    element.to_uppercase()
                ));
            }
            pdb.push_str("END\n");
            let file = format!("{glycans:04}_{k:02}.pdb");
            std::fs::write(out.join(&file), pdb)?;
            index.push_str(&format!("{file},\"{}\"\n", key.replace('"', "\"\"")));
            files += 1;
        }
        glycans += 1;
    }
    std::fs::write(out.join("index.csv"), index)?;
    println!("{files} glycan structures of {glycans} glycans in {}", out.display());
    Ok(())
}

/// Extracts structure files from an archive (tar.gz or .crate) whose member paths contain
/// `inside`, flattening nothing: members keep their path below `inside`.
fn extract_structures(archive: &Path, inside: &str, out: &Path) -> Result<()> {
    let script = r#"
import sys, tarfile, os
archive, inside, out = sys.argv[1], sys.argv[2], sys.argv[3]
suffixes = ('.pdb.dssp', '.pdb', '.pdb.gz', '.pdb.bz2', '.cif', '.cif.gz', '.ent', '.ent.gz', '.mmcif')
n = 0
with tarfile.open(archive) as t:
    for m in t.getmembers():
        if not m.isfile() or inside not in m.name:
            continue
        rel = m.name.split(inside, 1)[1].lstrip('/')
        if not rel.lower().endswith(suffixes) or '/DTDs/' in m.name:
            continue
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with t.extractfile(m) as src, open(dest, 'wb') as dst:
            dst.write(src.read())
        n += 1
print(f"{n} files from {os.path.basename(archive)}")
"#;
    run(Command::new("python3").arg("-c").arg(script).arg(archive).arg(inside).arg(out), "extracting structures")
}

fn fetch_structures(fetched: &Path) -> Result<()> {
    let dl = fetched.join("downloads");
    let out = fetched.join("structures");
    std::fs::create_dir_all(&dl)?;
    let mda = dl.join("mdanalysistests-2.11.0.tar.gz");
    if !mda.exists() {
        pip_download("mdanalysistests==2.11.0", &dl, true)?;
    }
    extract_structures(&mda, "MDAnalysisTests/data", &out.join("mdanalysistests"))?;
    let bp = dl.join("biopython-1.88.tar.gz");
    if !bp.exists() {
        pip_download("biopython==1.88", &dl, true)?;
    }
    extract_structures(&bp, "Tests/PDB", &out.join("biopython"))?;
    // The pdbrust crate from crates.io: cargo fetches it into its registry cache.
    let krate = dl.join("pdbrust-0.7.1.crate");
    if !krate.exists() {
        let proj = dl.join("pdbrust-fetch");
        std::fs::create_dir_all(proj.join("src"))?;
        std::fs::write(
            proj.join("Cargo.toml"),
            "[package]\nname = \"pdbrust-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[dependencies]\npdbrust = \"=0.7.1\"\n\n[workspace]\n",
        )?;
        std::fs::write(proj.join("src/lib.rs"), "")?;
        run(Command::new("cargo").arg("fetch").current_dir(&proj), "cargo fetch pdbrust")?;
        let home = std::env::var("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
        let cache = home.join("registry/cache");
        let found = std::fs::read_dir(&cache)
            .with_context(|| format!("reading {}", cache.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("pdbrust-0.7.1.crate"))
            .find(|p| p.exists())
            .context("pdbrust-0.7.1.crate not in the cargo registry cache after cargo fetch")?;
        std::fs::copy(found, &krate)?;
    }
    extract_structures(&krate, "pdbrust-0.7.1/", &out.join("pdbrust"))?;
    println!("structures in {}", out.display());
    Ok(())
}
