//! `allatom`: the command-line front end of the allatom workspace — argument parsing and file
//! IO around the `allatom` library, one file per command (no command file imports another).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod attention;
mod compare;
mod convert;
mod draw;
mod embed;
mod eval;
mod export;
mod finetune;
mod graph;
mod pretrain;
mod vabs_official;

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
    /// With --glycan, prints a summary of one glycan. With --glycans, reads one glycan per line
    /// (or a CSV column) — IUPAC-condensed, WURCS 2.0 or one-line GlycoCT, detected per line or
    /// set by --format — and writes one JSON object per input line to --jsonl (or stdout) with
    /// fields input, notation, iupac (the IUPAC-condensed form it was read as), units, atoms,
    /// bonds, rings, heavy, formula, flags, aglycone (the spacer a glycan-array short form
    /// names, else null) — or input and error. Loosely written IUPAC (IUPAC-extended, short
    /// forms such as Galb1-4GlcNAcb-Sp8, Greek anomers, typographic dashes) is read too. With --structure (a PDB/mmCIF file, gzip/bzip2 allowed, or a directory
    /// of them), writes one JSON object per structure with chains, residues, units (by kind),
    /// atoms, bonds, glycans, missing_atoms, warnings — or error. Exits with status 1 if any
    /// input failed, after writing every line.
    Graph(graph::Args),
    /// Pretrain an encoder: PreGlycanAA on glycans, ESM-AA or Vabs-Net SMPC on structures.
    ///
    /// Everything comes from a JSON run configuration whose `objective` (preglycanaa, esm_aa,
    /// vabs_smpc) says what it is (examples in models/configs/): the data, the model, the
    /// masking and the training settings (epochs, batch size, AdamW, schedule, clipping, seed,
    /// early stopping, checkpointing). Writes checkpoints/, metrics.jsonl, curve.svg and
    /// summary.json into the run directory. Running the same command again resumes from the
    /// latest checkpoint and continues exactly where it stopped (interrupt at any time).
    Pretrain(pretrain::Args),
    /// Train any encoder on a task and report validation and test metrics.
    ///
    /// `"objective": "graph_task"`: a glycowork glycan task (from `cargo xtask data`:
    /// `glycan_type`, `taxonomy_<level>`, or `taxonomy` for the eight levels jointly);
    /// `"objective": "unit_task"`: per-unit labels of structure files (`dssp`,
    /// `ligand_contact`, `glycan_mobility`). The encoder is an `encoder` configuration with its
    /// `family` (glycanaa, rgcn, vabs, esm) or the encoder of a `pretrained` run; a pairing the
    /// encoder cannot read (Vabs-Net on glycans without coordinates) is refused before any data
    /// is read. The best validation epoch is evaluated on the test split; everything goes to
    /// summary.json in the run directory, and `{"task", "family", "test"}` to stdout. Running
    /// it again resumes.
    Finetune(finetune::Args),
    /// Evaluate a fine-tuned checkpoint on a split of its task and print the metrics as JSON.
    ///
    /// --checkpoint takes a fine-tuning run directory (its best checkpoint is used) or one
    /// checkpoint directory. The model, vocabulary, classes and task come from the checkpoint.
    Eval(eval::Args),
    /// Embed glycans, protein sequences or structures with any encoder package: one row per
    /// input (.npy), or per unit / atom node (.safetensors with index arrays), plus JSONL
    /// metadata.
    ///
    /// The metadata file sits next to --out with the extension .jsonl: one line per input, in
    /// input order, with the rows it owns (`rows: [start, end)`), its unit labels and atom
    /// count — or its error. Unit and atom files hold `embeddings` [rows, width] and u32 index
    /// arrays `input_index` (input line), `unit_index` (unit in the input's order) and, for
    /// atoms, `atom_index` and `atomic_number`. Inputs the encoder cannot read are reported and
    /// skipped; the exit status is then 1.
    Embed(embed::Args),
    /// Write the encoder of a pretraining or fine-tuning checkpoint as a package directory
    /// (config.json, model.safetensors, README.md model card) that `embed` and the hub read.
    /// An ESM-AA pretraining run becomes an ESM model directory (with tokenizer.json) for
    /// `embed --model` and for Vabs-Net's `lm` features.
    Export(export::Args),
    /// Convert a fair-esm ESM-2, official ESM-AA, official Vabs-Net or official GlycanAA /
    /// PreGlycanAA torch checkpoint (.pt, .pth) into a model directory (config.json,
    /// model.safetensors, tokenizer.json for ESM) for `embed --model`. This is the only place a
    /// pickle is read; the head count comes from the checkpoint's config (`--heads` otherwise),
    /// GlycanAA's vocabulary is GlycanML's official one (`--vocab` otherwise).
    Convert(convert::Args),
    /// Draw a glycan in SNFG symbols (Symbol Nomenclature for Glycans) as SVG or PNG.
    ///
    /// The glycan in any notation `graph` reads; the reducing end on the right, links labelled
    /// with anomer and positions, modifications beside their residue. The format comes from the
    /// extension of --out (.svg or .png).
    Draw(draw::Args),
    /// Run a comparative experiment: every encoder on every task it can read, for every seed,
    /// under one training budget, each (encoder, task, seed) a resumable run directory; then
    /// results.md (mean ± sd tables), results.csv and results.json in --out. Pairings an
    /// encoder cannot read are listed and skipped; finished runs are kept when re-run. Exits
    /// with status 1 if a run failed.
    Compare(compare::Args),
    /// Official-compatible Vabs-Net, step by step: `featurize` a structure file into the
    /// official model inputs, or run an official-mode package `forward` on such inputs and
    /// write every stage — to compare either with the official code.
    VabsOfficial(vabs_official::Args),
    /// Attention graphs of one input (El et al., arXiv 2502.12352): every attention layer of an
    /// ESM-2 / ESM-AA or Vabs-Net package (or the HSA-Net readout of a graph-task run) averaged
    /// over heads, their product across layers, and how both relate to the molecular graph.
    ///
    /// The JSON report has, per track (ESM: tokens; Vabs-Net: atoms, units, bilevel; HSA-Net:
    /// hsa), the node labels, the molecular graph's covalent edges and spatial contacts, each
    /// layer's and the product's metrics against them (attention mass by hop distance, the
    /// non-neighbour / neighbour mean-weight ratio, precision / recall / F1 of the strongest
    /// entries) and the strongest entries per row (`graph`); the PNG holds the heat maps.
    Attention(attention::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout, e.g.
    /// `allatom completions bash > ~/.local/share/bash-completion/completions/allatom`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `allatom manpage > allatom.1 && man ./allatom.1`.
    Manpage,
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

/// The manual page of `allatom` and its commands, one roff document, to stdout.
fn manpage() -> anyhow::Result<ExitCode> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("allatom-{}", sub.get_name());
        clap_mangen::Man::new(sub.clone().name(name)).render(&mut out)?;
    }
    allatom::output::print(&String::from_utf8_lossy(&out))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Graph(a) => graph::run(a),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Export(a) => export::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Draw(a) => draw::run(a),
        Command::VabsOfficial(a) => vabs_official::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Attention(a) => attention::run(a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "allatom", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => manpage(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
