//! `allatom graph`: the all-atom graph of glycans and structure files, summarised as JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use glycan_aa::notation::Notation;
use rayon::prelude::*;
use serde_json::{json, Value};

/// Arguments of `allatom graph`.
#[derive(clap::Args)]
pub struct Args {
    /// One glycan: IUPAC-condensed ("Gal(b1-4)GlcNAc"), WURCS 2.0 ("WURCS=2.0/…") or GlycoCT
    /// condensed ("RES 1b:b-dglc-HEX-1:5 …"), detected from the string (see --format).
    #[arg(long, conflicts_with = "glycans")]
    glycan: Option<String>,
    /// The glycans' notation (iupac, wurcs, glycoct) instead of detecting it per glycan.
    #[arg(long, value_parser = parse_notation)]
    format: Option<Notation>,
    /// A text file with one glycan per line, or a CSV file (see --column).
    #[arg(long)]
    glycans: Option<PathBuf>,
    /// CSV column holding the glycans (default: "IUPAC Condensed" or "glycan" if present).
    #[arg(long)]
    column: Option<String>,
    /// Write JSON lines here instead of stdout (written atomically: complete or not at all).
    #[arg(long)]
    jsonl: Option<PathBuf>,
    /// With --glycan: print the JSON object instead of the readable summary.
    #[arg(long)]
    json: bool,
    /// A structure file (PDB or mmCIF, optionally .gz/.bz2) or a directory of them.
    #[arg(long, conflicts_with_all = ["glycan", "glycans"])]
    structure: Option<PathBuf>,
    /// With --structure: model number to read (default: the first).
    #[arg(long)]
    model: Option<i32>,
    /// With --structure: keep hydrogen atoms.
    #[arg(long)]
    keep_hydrogens: bool,
    /// With --structure: keep waters.
    #[arg(long)]
    keep_waters: bool,
}

/// `--format`: a glycan notation by name.
pub fn parse_notation(s: &str) -> Result<Notation, String> {
    s.parse()
}

/// The JSON record for one glycan line; `iupac` is the IUPAC-condensed form a WURCS, GlycoCT
/// or loosely written IUPAC input was read as, `aglycone` the spacer a short form named.
fn glycan_record(input: &str, format: Option<Notation>) -> (Value, bool) {
    let notation = format.unwrap_or_else(|| Notation::detect(input));
    match glycan_aa::Glycan::parse_as(input, notation) {
        Ok(g) => {
            let gr = &g.molecule.graph;
            (
                json!({
                    "input": input,
                    "notation": notation.name(),
                    "iupac": g.iupac,
                    "units": gr.num_units(),
                    "atoms": gr.num_atoms(),
                    "bonds": gr.bonds.len(),
                    "rings": gr.ring_count(),
                    "heavy": gr.heavy_composition(),
                    "formula": gr.formula(),
                    "flags": g.molecule.flags,
                    "aglycone": g.aglycone,
                }),
                true,
            )
        }
        Err(e) => (json!({"input": input, "error": e.to_string()}), false),
    }
}

/// `allatom graph`.
pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(path) = &a.structure {
        return structures(path, &a);
    }
    if let Some(s) = a.glycan {
        let (rec, ok) = glycan_record(&s, a.format);
        if a.json {
            allatom::output::print(&format!("{rec}\n"))?;
        } else if ok {
            let flags: Vec<String> =
                rec["flags"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(String::from)).collect();
            let mut text = format!(
                "glycan   {s}\n{}units    {}\natoms    {} heavy\nbonds    {} heavy-heavy\nrings    {}\nformula  {}\n",
                if notation_is_iupac(&rec) {
                    String::new()
                } else {
                    format!("iupac    {}\n", rec["iupac"].as_str().unwrap_or(""))
                },
                rec["units"],
                rec["atoms"],
                rec["bonds"],
                rec["rings"],
                rec["formula"].as_str().unwrap_or("")
            );
            if !flags.is_empty() {
                text.push_str(&format!("flags    {}\n", flags.join(", ")));
            }
            if let Some(a) = rec["aglycone"].as_str() {
                text.push_str(&format!("aglycone {a} (not part of the molecule)\n"));
            }
            allatom::output::print(&text)?;
        }
        if !ok {
            eprintln!("error: {s:?}: {}", rec["error"].as_str().unwrap_or(""));
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = a.glycans else {
        bail!("give --glycan STRING or --glycans FILE (see allatom graph --help)");
    };
    let inputs = allatom::inputs::read_glycan_file(&path, a.column.as_deref())?;
    run_all(&inputs, "glycans", |s| glycan_record(s, a.format), a.jsonl.as_deref())
}

/// Runs `record` on every input in parallel with a progress bar on stderr, writes one JSON line
/// per input (in input order) to `out` or stdout, and returns exit status 1 when any failed.
fn run_all<T: Sync>(
    inputs: &[T],
    what: &str,
    record: impl Fn(&T) -> (Value, bool) + Sync,
    out: Option<&Path>,
) -> Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} {{per_sec}} eta {{eta}}"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let records: Vec<(String, bool)> = inputs
        .par_iter()
        .map(|x| {
            let (rec, ok) = record(x);
            bar.inc(1);
            (rec.to_string(), ok)
        })
        .collect();
    bar.finish_and_clear();
    let failed = records.iter().filter(|r| !r.1).count();
    let mut text = String::with_capacity(records.iter().map(|r| r.0.len() + 1).sum());
    for (line, _) in &records {
        text.push_str(line);
        text.push('\n');
    }
    match out {
        Some(out) => aa_pretrain::checkpoint::write_atomic(out, text.as_bytes())?,
        None => allatom::output::print(&text)?,
    }
    eprintln!("{} {what}: {} built, {} failed", records.len(), records.len() - failed, failed);
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn structure_record(path: &Path, opts: &protein_aa::StructureOptions) -> (Value, bool) {
    match protein_aa::read_structure_file(path, opts) {
        Ok(s) => {
            let (res, mono, other) = s.units_by_kind();
            (
                json!({
                    "input": path.display().to_string(),
                    "chains": s.chains,
                    "residues": s.residues,
                    "units": {"residue": res, "monosaccharide": mono, "other": other},
                    "atoms": s.graph.num_atoms(),
                    "bonds": s.graph.bonds.len(),
                    "glycans": s.glycans.iter().map(|g| json!({"iupac": g.iupac, "attached_to": g.attached_to})).collect::<Vec<_>>(),
                    "missing_atoms": s.missing_atoms,
                    "warnings": s.warnings,
                }),
                true,
            )
        }
        Err(e) => (json!({"input": path.display().to_string(), "error": e.to_string()}), false),
    }
}

fn structures(path: &Path, a: &Args) -> Result<ExitCode> {
    let files = allatom::inputs::structure_files(path)?;
    let opts = protein_aa::StructureOptions {
        model: a.model,
        keep_hydrogens: a.keep_hydrogens,
        keep_waters: a.keep_waters,
        ..Default::default()
    };
    run_all(&files, "structures", |f| structure_record(f, &opts), a.jsonl.as_deref())
}

/// Whether the input was IUPAC-condensed as it stands (not a WURCS or GlycoCT input, nor a
/// loose form rewritten into IUPAC-condensed).
fn notation_is_iupac(rec: &Value) -> bool {
    rec["notation"].as_str() == Some("iupac") && rec["iupac"] == rec["input"]
}
