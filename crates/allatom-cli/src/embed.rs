//! `allatom embed`: glycans, protein sequences or structure files through any encoder package,
//! one row per input, unit or atom, with one metadata line per input.

use std::path::PathBuf;
use std::process::ExitCode;

use aa_pretrain::hub::HubOptions;
use allatom::embed::job::{Items, Job};
use allatom::embed::{self as job, Level as Rows};
use allatom::{Model, DEFAULT_MODEL};
use anyhow::{bail, Result};

/// Which rows `embed` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    /// One row per input (the encoder's readout, mean ‖ max), `.npy`.
    Graph,
    /// One row per unit (monosaccharide, residue), `.safetensors` with index arrays.
    Unit,
    /// One row per atom node, `.safetensors` with index arrays.
    Atom,
}

/// Arguments of `allatom embed`.
#[derive(clap::Args)]
pub struct Args {
    /// One glycan: IUPAC-condensed, WURCS 2.0 or GlycoCT condensed (detected; see --format).
    #[arg(long, conflicts_with = "glycans")]
    glycan: Option<String>,
    /// The glycans' notation (iupac, wurcs, glycoct) instead of detecting it per glycan.
    #[arg(long, value_parser = crate::graph::parse_notation)]
    format: Option<glycan_aa::notation::Notation>,
    /// A text file with one glycan per line, or a CSV file (see --column).
    #[arg(long, conflicts_with = "structure")]
    glycans: Option<PathBuf>,
    /// CSV column holding the glycans (default: "IUPAC Condensed" or "glycan" if present).
    #[arg(long)]
    column: Option<String>,
    /// A structure file (PDB/mmCIF, .gz/.bz2 allowed; .sdf/.mol molecules) or a directory of
    /// them. Official-featurisation glycan models embed every glycan tree in them; other models
    /// one window per chain and per glycan tree. The metadata names the file, chain or
    /// attachment (e.g. `ASN 90 chain A`) and every unit.
    #[arg(long, conflicts_with = "glycan")]
    structure: Option<PathBuf>,
    /// A text file listing structure files, one path per line (`#` comments; relative to the
    /// working directory): for lists too long for a command line or a directory.
    #[arg(long, conflicts_with_all = ["glycan", "glycans", "structure"])]
    files_from: Option<PathBuf>,
    /// One protein sequence (one-letter codes), for sequence models (ESM).
    #[arg(long, conflicts_with_all = ["glycan", "glycans", "structure", "fasta", "files_from"])]
    sequence: Option<String>,
    /// A FASTA file of protein sequences.
    #[arg(long, conflicts_with_all = ["glycan", "glycans", "structure", "files_from"])]
    fasta: Option<PathBuf>,
    /// The encoder: a package directory (`allatom export`/`convert`), a Hugging Face Hub
    /// repository id (owner/name[@revision]; HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_OFFLINE are
    /// honoured), or a model built into this binary: preglycanaa-small (the default; GlycanML's
    /// featurisation) or preglycanaa-molecule-small (true molecules: tells sulfated,
    /// phosphorylated, O-acetylated glycans from unmodified ones). Any
    /// family: GlycanAA, RGCN, Vabs-Net (structures), ESM-2 / ESM-AA (Hugging Face
    /// `EsmForMaskedLM` repositories load as they are).
    #[arg(long)]
    model: Option<String>,
    /// Which rows: graph (one per input), unit (per monosaccharide / residue) or atom (per atom
    /// node; with ESM-AA every residue is unzipped into atom tokens).
    #[arg(long, value_enum, default_value = "graph")]
    level: Level,
    /// Output file: .npy for graph level, .safetensors for unit/atom level.
    #[arg(long)]
    out: PathBuf,
    /// Inputs per forward pass (at most 8,192 units a batch).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Items (glycans, sequences, structure files, SDF records) featurised, embedded and written
    /// at a time: memory stays at one chunk however long the list. Rows depend on the chunk
    /// they are computed in, so runs to be compared or joined use the same --chunk.
    #[arg(long, default_value_t = allatom::embed::job::DEFAULT_CHUNK, value_parser = parse_chunk)]
    chunk: usize,
    /// Embed only part K of N (`--shard 0/4` … `--shard 3/4`): a contiguous run of whole chunks
    /// of the glycan or sequence list, the sorted structure files or the SDF records, so the N
    /// outputs' rows concatenated in shard order are byte for byte the unsharded output (a job
    /// array over one list). With fewer chunks than shards some shards are empty (an empty
    /// output, exit status 0).
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Resume: keep the chunks an interrupted run of the same job left in `<out>.parts/`, and do
    /// nothing when the output and its metadata already exist.
    #[arg(long)]
    skip_existing: bool,
    /// Worker threads (default: RAYON_NUM_THREADS, else OMP_NUM_THREADS, else every core).
    #[arg(long)]
    threads: Option<usize>,
}

/// A chunk size of at least 1.
fn parse_chunk(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("--chunk {s}: expected a number of items ≥ 1"))
}

/// `K/N` with `0 ≤ K < N`.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s.split_once('/').ok_or_else(|| format!("--shard {s}: expected K/N, e.g. 0/4"))?;
    let (k, n) = (k.trim().parse::<usize>(), n.trim().parse::<usize>());
    match (k, n) {
        (Ok(k), Ok(n)) if n > 0 && k < n => Ok((k, n)),
        _ => Err(format!("--shard {s}: expected K/N with 0 ≤ K < N, e.g. 0/4")),
    }
}

/// Sets the worker threads before any pool starts: `threads`, else `RAYON_NUM_THREADS`, else
/// `OMP_NUM_THREADS` (what Ray and Slurm set), else rayon's default (every core).
fn set_threads(threads: Option<usize>) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0);
    let Some(n) = threads.or_else(|| env("RAYON_NUM_THREADS")).or_else(|| env("OMP_NUM_THREADS")) else {
        return Ok(());
    };
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    // candle's element-wise pool reads these when it starts (after this).
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| anyhow::anyhow!("cannot start {n} threads: {e}"))
}

/// `allatom embed`.
pub fn run(a: Args) -> Result<ExitCode> {
    set_threads(a.threads)?;
    let rows = match a.level {
        Level::Graph => Rows::Graph,
        Level::Unit => Rows::Unit,
        Level::Atom => Rows::Atom,
    };
    let given: Vec<&std::path::Path> =
        [&a.glycans, &a.structure, &a.fasta, &a.files_from].into_iter().flatten().map(|p| p.as_path()).collect();
    job::check_output(&a.out, rows, &given)?;
    let name = a.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let opts = HubOptions::from_env();
    let mut model = Model::from_pretrained(name, &opts)?;
    if rows == Rows::Atom && model.family().name() == "esm" {
        // Atom rows of a sequence model: every residue unzipped into atom tokens (ESM-AA).
        model = Model::from_pretrained_with(name, &opts, &serde_json::json!({ "unzip": "all" }))?;
    }
    let notation = a.format;
    let items = match (&a.glycan, &a.glycans, &a.structure, &a.sequence, &a.fasta, &a.files_from) {
        (Some(g), None, None, None, None, None) => Items::Glycans { glycans: vec![g.clone()], notation },
        (None, Some(p), None, None, None, None) => {
            Items::Glycans { glycans: allatom::inputs::read_glycan_file(p, a.column.as_deref())?, notation }
        }
        (None, None, Some(p), None, None, None) => Items::structures(p)?,
        (None, None, None, None, None, Some(p)) => Items::Files(allatom::inputs::read_file_list(p)?),
        (None, None, None, Some(s), None, None) => Items::Sequences(vec![(s.clone(), s.clone())]),
        (None, None, None, None, Some(f), None) => Items::Sequences(allatom::inputs::read_fasta(f)?),
        _ => bail!(
            "give one of --glycan STRING, --glycans FILE, --structure FILE|DIR, --files-from LIST, --sequence STRING, --fasta FILE"
        ),
    };
    if items.is_empty() {
        bail!("nothing to embed: the input holds no glycans, sequences or structures");
    }
    if a.glycan.is_some() || a.sequence.is_some() {
        // One input: its error is the command's, before anything is written.
        if let Some(err) = job::first_input_error(&model, &items) {
            let what = if a.glycan.is_some() { "glycan" } else { "sequence" };
            bail!("{what} {:?}: {err}", a.glycan.as_ref().or(a.sequence.as_ref()).cloned().unwrap_or_default());
        }
    }
    let started = std::time::Instant::now();
    let job =
        Job { model: &model, items: &items, level: rows, batch_size: a.batch_size, chunk: a.chunk, shard: a.shard };
    let meta_path = job::metadata_path(&a.out);
    if a.skip_existing && a.out.is_file() && meta_path.is_file() && !allatom::embed::job::parts_dir(&a.out).exists() {
        eprintln!("{} and {} exist: nothing to do (--skip-existing)", a.out.display(), meta_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let chunks = job.plan().len();
    if chunks == 0 {
        let (k, n) = a.shard.unwrap_or((0, 1));
        eprintln!(
            "shard {k}/{n} holds no chunks ({} items make {} chunks of --chunk {}): writing an empty output",
            items.len(),
            items.len().div_ceil(a.chunk),
            a.chunk
        );
    }
    let s = job.to_file(&a.out, a.skip_existing, &mut |p| {
        if chunks > 1 {
            // One line per chunk: readable in a batch system's log, not only on a terminal.
            eprintln!("embed: {p}");
        }
    })?;
    let meta = match &s.metadata {
        Some(p) => p.display().to_string(),
        None => "no metadata (the output is a device)".to_string(),
    };
    eprintln!(
        "{} of {} inputs embedded by {} ({} rows × {}) in {:.2} s{} → {} and {}",
        s.embedded,
        s.inputs,
        model.family().name(),
        s.rows,
        s.width,
        started.elapsed().as_secs_f64(),
        if s.resumed > 0 { format!(" ({} chunks kept from an earlier run)", s.resumed) } else { String::new() },
        a.out.display(),
        meta
    );
    if s.failed > 0 {
        eprintln!("{} inputs failed (see the \"error\" lines in {meta})", s.failed);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
