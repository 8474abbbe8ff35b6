//! `allatom`: command-line front end of the allatom workspace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rayon::prelude::*;
use serde_json::{json, Value};

mod embed;
mod esm;
mod finetune;
mod pretrain;
mod vabs;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// All-atom graphs and encoders for glycans and proteins.
#[derive(Parser)]
#[command(name = "allatom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the all-atom graph of a glycan (or a file of glycans) and report its summary.
    ///
    /// With --glycan, prints a summary of one glycan. With --glycans, reads one IUPAC-condensed
    /// glycan per line (or a CSV column) and writes one JSON object per input line to --jsonl
    /// (or stdout) with fields input, units, atoms, bonds, rings, heavy, formula, flags — or
    /// input and error. With --structure (a PDB/mmCIF file, gzip/bzip2 allowed, or a directory
    /// of them), writes one JSON object per structure with chains, residues, units (by kind),
    /// atoms, bonds, glycans, missing_atoms, warnings — or error. Exits with status 1 if any
    /// input failed, after writing every line.
    Graph(GraphArgs),
    /// Pretrain PreGlycanAA (masked monosaccharide- and atom-type recovery) on a glycan file.
    ///
    /// Everything comes from a JSON config (examples in models/configs/): the glycan file,
    /// the validation fraction, the model (GlycanAA fields), the masking rates and the
    /// training settings (epochs, batch size, AdamW, schedule, clipping, seed, early stopping,
    /// checkpointing). Writes checkpoints/, metrics.jsonl, curve.svg and summary.json into the
    /// run directory. Running the same command again resumes from the latest checkpoint and
    /// continues exactly where it stopped (interrupt with Ctrl-C at any time).
    Pretrain(PretrainArgs),
    /// Fine-tune GlycanAA on a glycowork task (from `cargo xtask data`), from scratch or from a
    /// PreGlycanAA checkpoint, and report validation and test metrics.
    ///
    /// The JSON config names the task directory and task (`glycan_type`,
    /// `taxonomy_<level>`, or `taxonomy` for the eight levels trained jointly), the model, an
    /// optional `pretrained` checkpoint directory, `units_only` (the monosaccharide-level RGCN
    /// baseline), the encoder's `lr_ratio` and the training settings (examples in
    /// models/configs/). The best validation epoch (accuracy; macro-F1 for multi-label tasks;
    /// the mean over targets for joint tasks) is evaluated on the test split; everything goes
    /// to summary.json in the run directory. Running it again resumes.
    ///
    /// A config with `"objective": "residue_task"` trains a per-unit task on structure files
    /// instead: `task` dssp, ligand_contact or glycan_mobility, `encoder` vabs (Vabs-Net,
    /// optionally from an SMPC run and with `lm` features of an ESM model) or glycanaa
    /// (GlycanAA's RGConv on the all-atom graph); see models/configs/vabs_*.json and
    /// glycanaa_*dssp.json / glycanaa_glycan_mobility.json.
    Finetune(FinetuneArgs),
    /// Evaluate a fine-tuned checkpoint on a split of its task and print the metrics as JSON.
    ///
    /// --checkpoint takes a fine-tuning run directory (its best checkpoint is used) or one
    /// checkpoint directory. The model, vocabulary, classes and task come from the checkpoint.
    Eval(EvalArgs),
    /// Embed glycans with a GlycanAA encoder package: one row per glycan (.npy), or per
    /// monosaccharide / atom node (.safetensors with index arrays), plus JSONL metadata.
    ///
    /// The metadata file sits next to --out with the extension .jsonl: one line per input, in
    /// input order, with the rows it owns (`rows: [start, end)`), its monosaccharides and atom
    /// count — or its error. Unit and atom files hold `embeddings` [rows, width] and u32 index
    /// arrays `glycan_index` (input line), `unit_index` (monosaccharide in IUPAC order) and, for
    /// atoms, `atom_index` and `atomic_number`. Inputs that cannot be featurised are reported
    /// and skipped; the exit status is then 1.
    Embed(EmbedArgs),
    /// Write the encoder of a pretraining or fine-tuning checkpoint as a package directory
    /// (config.json, model.safetensors, README.md model card) that `embed` and the hub read.
    /// An ESM-AA pretraining run becomes an ESM model directory (with tokenizer.json) for
    /// `embed --model` and for Vabs-Net's `lm` features.
    Export(ExportArgs),
    /// Convert a fair-esm ESM-2 or official ESM-AA torch checkpoint (.pt) into a model
    /// directory (config.json, model.safetensors, tokenizer.json) for `embed --model`. This is
    /// the only place a pickle is read; the head count comes from the checkpoint's config.
    Convert(ConvertArgs),
}

#[derive(clap::Args)]
pub(crate) struct EmbedArgs {
    /// One glycan in IUPAC-condensed notation.
    #[arg(long, conflicts_with = "glycans")]
    glycan: Option<String>,
    /// A text file with one glycan per line, or a CSV file (see --column).
    #[arg(long, conflicts_with = "structure")]
    glycans: Option<PathBuf>,
    /// CSV column holding the glycans (default: "IUPAC Condensed" or "glycan" if present).
    #[arg(long)]
    column: Option<String>,
    /// A structure file (PDB/mmCIF, .gz/.bz2 allowed) or a directory of them: every glycan tree
    /// in them (e.g. N-glycans of a glycoprotein) is embedded; the metadata names the file, the
    /// attachment (e.g. `ASN 90 chain A`) and each monosaccharide's chain, residue and number.
    #[arg(long, conflicts_with = "glycan")]
    structure: Option<PathBuf>,
    /// With an ESM model: one protein sequence (one-letter codes).
    #[arg(long, conflicts_with_all = ["glycan", "glycans", "structure", "fasta"])]
    sequence: Option<String>,
    /// With an ESM model: a FASTA file of protein sequences.
    #[arg(long, conflicts_with_all = ["glycan", "glycans", "structure"])]
    fasta: Option<PathBuf>,
    /// The encoder: a package directory (from `allatom export`), a Hugging Face Hub repository
    /// id (owner/name[@revision]; HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_OFFLINE are honoured),
    /// or preglycanaa-small, the model built into this binary (the default). An ESM-2/ESM-AA
    /// model (e.g. facebook/esm2_t6_8M_UR50D, or a folder from `allatom convert`) embeds
    /// proteins instead: --sequence, --fasta or --structure (one sequence per chain; an .sdf/.mol
    /// file gives all-atom sequences of its molecules, ESM-AA only); --level
    /// unit gives one row per residue, atom one per atom token (ESM-AA, every residue unzipped),
    /// graph the mean over residues.
    #[arg(long)]
    model: Option<String>,
    /// Which rows: graph (one per glycan), unit (per monosaccharide) or atom (per atom node).
    #[arg(long, value_enum, default_value = "graph")]
    level: embed::Level,
    /// Output file: .npy for graph level, .safetensors for unit/atom level.
    #[arg(long)]
    out: PathBuf,
    /// Glycans per forward pass (ESM models: sequences per pass, at most 8,192 tokens with padding).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

#[derive(clap::Args)]
pub(crate) struct ConvertArgs {
    /// A fair-esm ESM-2 or official ESM-AA torch checkpoint (`{"cfg", "model"}` pickle).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model directory to write (config.json, model.safetensors, tokenizer.json, README.md).
    #[arg(long)]
    out: PathBuf,
    /// Attention heads, when the checkpoint's config cannot be read and the width is not a
    /// released size.
    #[arg(long)]
    heads: Option<usize>,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// A run directory (its best checkpoint) or a checkpoint directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Package directory to write (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Storage type of the weights: f32, f16 or bf16 (computation is always f32).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Name in the model card (default: the directory name).
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// A run directory from `allatom finetune` or a checkpoint directory inside it.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Which split: train, valid or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Task directory (default: the one recorded at fine-tuning).
    #[arg(long)]
    task_dir: Option<PathBuf>,
    /// Write the JSON here (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct FinetuneArgs {
    /// Run configuration (JSON), e.g. models/configs/glycanaa_glycan_type.json.
    #[arg(long)]
    config: PathBuf,
    /// Directory for checkpoints and logs (created; resumed if it holds a checkpoint).
    #[arg(long)]
    run_dir: PathBuf,
    /// Override the training seed (for repeated runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
}

#[derive(clap::Args)]
pub(crate) struct PretrainArgs {
    /// Run configuration (JSON), e.g. models/configs/preglycanaa_quick.json.
    #[arg(long)]
    config: PathBuf,
    /// Directory for checkpoints and logs (created; resumed if it holds a checkpoint).
    #[arg(long)]
    run_dir: PathBuf,
    /// Pause after this many optimiser steps in total (overrides the config).
    #[arg(long)]
    max_steps: Option<u64>,
}

#[derive(clap::Args)]
struct GraphArgs {
    /// One glycan in IUPAC-condensed notation, e.g. "Gal(b1-4)GlcNAc".
    #[arg(long, conflicts_with = "glycans")]
    glycan: Option<String>,
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

/// Tells mimalloc to keep freed memory instead of returning it to the OS after 10 ms: large
/// tensors (16–63 MB activations of an ESM batch) are then reused instead of page-faulted in and
/// zeroed again on every layer (~10 % of a batch-32 ESM forward).
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in `mi_option_t` (15 in both mimalloc v2 and v3 headers).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide allocator option; mimalloc allows this at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Graph(a) => graph(a),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Eval(a) => finetune::eval(a),
        Command::Embed(a) => embed::embed(a),
        Command::Export(a) => embed::export(a),
        Command::Convert(a) => esm::convert(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The JSON record for one glycan line.
fn glycan_record(input: &str) -> (Value, bool) {
    match glycan_aa::Glycan::from_iupac(input) {
        Ok(g) => {
            let gr = &g.molecule.graph;
            (
                json!({
                    "input": input,
                    "units": gr.num_units(),
                    "atoms": gr.num_atoms(),
                    "bonds": gr.bonds.len(),
                    "rings": gr.ring_count(),
                    "heavy": gr.heavy_composition(),
                    "formula": gr.formula(),
                    "flags": g.molecule.flags,
                }),
                true,
            )
        }
        Err(e) => (json!({"input": input, "error": e.to_string()}), false),
    }
}

fn graph(a: GraphArgs) -> Result<ExitCode> {
    if let Some(path) = &a.structure {
        return structures(path, &a);
    }
    if let Some(s) = a.glycan {
        let (rec, ok) = glycan_record(&s);
        if a.json {
            println!("{rec}");
        } else if ok {
            println!("glycan   {s}");
            println!("units    {}", rec["units"]);
            println!("atoms    {} heavy", rec["atoms"]);
            println!("bonds    {} heavy-heavy", rec["bonds"]);
            println!("rings    {}", rec["rings"]);
            println!("formula  {}", rec["formula"].as_str().unwrap_or(""));
            let flags: Vec<String> =
                rec["flags"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(String::from)).collect();
            if !flags.is_empty() {
                println!("flags    {}", flags.join(", "));
            }
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
    let inputs = read_glycan_file(&path, a.column.as_deref())?;
    run_all(&inputs, "glycans", |s| glycan_record(s), a.jsonl.as_deref())
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
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    eprintln!("{} {what}: {} built, {} failed", records.len(), records.len() - failed, failed);
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

const STRUCTURE_SUFFIXES: [&str; 12] = [
    ".pdb",
    ".ent",
    ".cif",
    ".mmcif",
    ".pdb.gz",
    ".ent.gz",
    ".cif.gz",
    ".mmcif.gz",
    ".pdb.bz2",
    ".cif.bz2",
    ".pqr",
    ".pdb1",
];

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

fn structures(path: &Path, a: &GraphArgs) -> Result<ExitCode> {
    let files = structure_files(path)?;
    let opts = protein_aa::StructureOptions {
        model: a.model,
        keep_hydrogens: a.keep_hydrogens,
        keep_waters: a.keep_waters,
        ..Default::default()
    };
    run_all(&files, "structures", |f| structure_record(f, &opts), a.jsonl.as_deref())
}

/// A structure file as given, or the structure files of a directory (sorted).
pub(crate) fn structure_files(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
                p.is_file() && STRUCTURE_SUFFIXES.iter().any(|s| n.ends_with(s))
            })
            .collect();
        v.sort();
        if v.is_empty() {
            bail!("{}: no structure files (.pdb, .cif, .ent, optionally .gz/.bz2) in the directory", path.display());
        }
        v
    } else {
        if !path.exists() {
            bail!("cannot read {}: no such file or directory", path.display());
        }
        vec![path.to_path_buf()]
    })
}

/// Reads glycans: a CSV (by extension, or a header naming a known column) or one per line.
pub(crate) fn read_glycan_file(path: &Path, column: Option<&str>) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })?;
    let first = text.lines().next().unwrap_or("");
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) || column.is_some();
    if is_csv {
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers = rdr.headers().with_context(|| format!("{}: cannot read CSV header", path.display()))?.clone();
        let wanted: Vec<&str> = match column {
            Some(c) => vec![c],
            None => vec!["IUPAC Condensed", "glycan", "iupac"],
        };
        let Some(col) = headers.iter().position(|h| wanted.contains(&h)) else {
            bail!("{}: no column named {:?} in header {:?} (use --column)", path.display(), wanted, first);
        };
        let mut out = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.with_context(|| format!("{}: CSV row {}", path.display(), i + 2))?;
            out.push(rec.get(col).unwrap_or("").trim().to_string());
        }
        Ok(out)
    } else {
        Ok(text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
    }
}
