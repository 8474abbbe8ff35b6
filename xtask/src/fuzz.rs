//! `cargo xtask fuzz`: builds the cargo-fuzz targets of `fuzz/` (nightly, no sanitizer, debug
//! assertions on so that overflows panic) and runs each for a fixed number of executions from
//! its committed seeds (`fuzz/seeds/<target>/`), a working corpus in `fuzz/corpus/<target>/`
//! (not committed). Prints one Markdown row per target: executions, seconds, crashes. A crash
//! leaves its input in `fuzz/artifacts/<target>/` and makes the command fail.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Every target, in the order of the README table.
/// Fast ones first, so that two run side by side for similar times.
pub const TARGETS: [&str; 8] = ["iupac", "sdf", "fasta", "torch_pickle", "pdb", "mmcif", "structure_bytes", "package"];

/// Longest input per target: packages carry their weights (seeds of 0.2-0.6 MB); structure
/// files are parsed and built whole, so short inputs keep the execution rate up (8 KiB is
/// ~100 atom records, more than any parser state needs); the rest 64 KiB.
fn max_len(target: &str) -> usize {
    match target {
        "package" => 1 << 20,
        "pdb" | "mmcif" | "structure_bytes" | "fasta" => 8 << 10,
        _ => 64 << 10,
    }
}

/// One target's run.
struct Outcome {
    target: String,
    runs: u64,
    seconds: u64,
    ok: bool,
}

/// Builds, then runs `targets` (`jobs` at a time) for `runs` executions each.
pub fn run(root: &Path, targets: &[String], runs: u64, jobs: usize) -> Result<()> {
    for t in targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!("unknown fuzz target {t:?} (known: {})", TARGETS.join(", "));
        }
    }
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "build", "-s", "none", "-a"])
        .current_dir(root)
        .status()
        .context("running cargo +nightly fuzz (install: rustup toolchain install nightly; cargo install cargo-fuzz)")?;
    if !status.success() {
        bail!("cargo fuzz build failed");
    }
    let bin_dir = root.join("fuzz/target/x86_64-unknown-linux-gnu/release");
    let mut outcomes = Vec::new();
    for chunk in targets.chunks(jobs.max(1)) {
        let children: Vec<_> = chunk
            .iter()
            .map(|t| {
                let corpus = root.join("fuzz/corpus").join(t);
                let artifacts = root.join("fuzz/artifacts").join(t);
                std::fs::create_dir_all(&corpus)?;
                std::fs::create_dir_all(&artifacts)?;
                let log = std::fs::File::create(root.join("fuzz/artifacts").join(format!("{t}.log")))?;
                let child = Command::new(bin_dir.join(t))
                    .arg(format!("-runs={runs}"))
                    .arg("-rss_limit_mb=4096")
                    .arg(format!("-max_len={}", max_len(t)))
                    .arg("-timeout=30")
                    .arg(format!("-artifact_prefix={}/", artifacts.display()))
                    .arg(&corpus)
                    .arg(root.join("fuzz/seeds").join(t))
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {}", bin_dir.join(t).display()))?;
                Ok((t.clone(), child))
            })
            .collect::<Result<_>>()?;
        for (t, mut child) in children {
            let ok = child.wait()?.success();
            let log = std::fs::read_to_string(root.join("fuzz/artifacts").join(format!("{t}.log"))).unwrap_or_default();
            // libFuzzer ends with "Done N runs in S second(s)".
            let (done, seconds) = log
                .lines()
                .rev()
                .find_map(|l| {
                    let rest = l.strip_prefix("Done ")?;
                    let mut w = rest.split_whitespace();
                    let n = w.next()?.parse().ok()?;
                    let s = w.nth(2)?.parse().ok()?;
                    Some((n, s))
                })
                .unwrap_or((0, 0));
            outcomes.push(Outcome { target: t, runs: done, seconds, ok: ok && done >= runs });
        }
    }
    println!("| target | executions | seconds | crashes |");
    println!("|---|---:|---:|---:|");
    for o in &outcomes {
        println!("| `{}` | {} | {} | {} |", o.target, o.runs, o.seconds, if o.ok { "0" } else { "see fuzz/artifacts" });
    }
    if outcomes.iter().any(|o| !o.ok) {
        bail!("a fuzz target failed: its input and log are under fuzz/artifacts/");
    }
    Ok(())
}
