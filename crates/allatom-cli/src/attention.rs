//! `allatom attention`: the attention graphs of one input through an attending encoder package
//! (ESM-2 / ESM-AA, Vabs-Net) or a graph-task run with an HSA-Net readout, as JSON and a PNG of
//! heat maps.

use std::path::PathBuf;
use std::process::ExitCode;

use aa_pretrain::hub::HubOptions;
use allatom::embed as job;
use allatom::{Model, DEFAULT_MODEL};
use anyhow::{bail, Context, Result};

/// Arguments of `allatom attention`.
#[derive(clap::Args)]
pub struct Args {
    /// Model package directory, hub id or built-in name (default: the built-in model, which
    /// does not attend).
    #[arg(long, conflicts_with = "checkpoint")]
    model: Option<String>,
    /// A graph-task run (or checkpoint directory) whose readout attends (HSA-Net); its
    /// encoder's own attention is reported too.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// One IUPAC-condensed glycan.
    #[arg(long)]
    glycan: Option<String>,
    /// A structure file (PDB/mmCIF, .gz/.bz2; .sdf/.mol); --input picks which of its windows.
    #[arg(long, conflicts_with_all = ["glycan", "checkpoint"])]
    structure: Option<PathBuf>,
    /// One protein sequence (one-letter codes).
    #[arg(long, conflicts_with_all = ["glycan", "structure", "checkpoint"])]
    sequence: Option<String>,
    /// Which input of the structure file (its chains, then its glycans, as `embed` lists them).
    #[arg(long, default_value_t = 0)]
    input: usize,
    /// With an ESM-AA model: every residue written as atom tokens (the all-atom code-switch
    /// sequence), so that the tokens' graph has covalent bonds and atom contacts.
    #[arg(long)]
    atoms: bool,
    /// Hop distances reported one by one (further ones are summed).
    #[arg(long, default_value_t = 4)]
    max_hop: usize,
    /// The JSON report.
    #[arg(long)]
    out: PathBuf,
    /// The heat maps (PNG; default: --out with the extension .png).
    #[arg(long)]
    png: Option<PathBuf>,
}

/// `allatom attention`.
pub fn run(a: Args) -> Result<ExitCode> {
    let png_path = a.png.clone().unwrap_or_else(|| a.out.with_extension("png"));
    if png_path == a.out {
        bail!("--png and --out name the same file {}", a.out.display());
    }
    let (report, input) = match &a.checkpoint {
        Some(ck) => {
            let Some(g) = &a.glycan else { bail!("--checkpoint reads a glycan: give --glycan STRING") };
            let m = allatom::runs::graph_task_model(ck)?;
            let w = m.graphs.window(g).with_context(|| format!("glycan {g:?}"))?;
            let r = allatom::attention::report(m.task.encoder.as_ref(), Some(m.task.readout.as_ref()), &w, a.max_hop)?;
            (r, serde_json::json!({ "input": g, "checkpoint": m.dir }))
        }
        None => {
            let name = a.model.as_deref().unwrap_or(DEFAULT_MODEL);
            let opts = HubOptions::from_env();
            let mut model = Model::from_pretrained(name, &opts)?;
            if a.atoms {
                if model.family().name() != "esm" {
                    bail!(
                        "--atoms unzips residues into atom tokens of an ESM-AA model; {name} is {}",
                        model.family().name()
                    );
                }
                model = Model::from_pretrained_with(name, &opts, &serde_json::json!({ "unzip": "all" }))
                    .with_context(|| format!("--atoms: {name}"))?;
            }
            let inputs = match (&a.glycan, &a.structure, &a.sequence) {
                (Some(g), None, None) => job::glycan_inputs(&model, std::slice::from_ref(g), None),
                (None, Some(p), None) => job::structure_inputs(&model, p)?,
                (None, None, Some(s)) => job::sequence_inputs(&[(s.clone(), s.clone())]),
                _ => bail!("give one of --glycan STRING, --structure FILE, --sequence STRING"),
            };
            let n = inputs.len();
            let Some(chosen) = inputs.into_iter().nth(a.input) else {
                bail!("--input {}: the input holds {n} windows (chains, then glycans)", a.input)
            };
            let w = chosen
                .window
                .map_err(|e| anyhow::anyhow!("{}: {e}", serde_json::Value::Object(chosen.meta.clone())))?;
            let r = allatom::attention::report(model.encoder.as_ref(), None, &w, a.max_hop)
                .with_context(|| format!("model {name}"))?;
            let mut meta = serde_json::Value::Object(chosen.meta);
            meta["model"] = serde_json::json!(name);
            (r, meta)
        }
    };
    let mut json = report.json.clone();
    json["input"] = input;
    let png = report.png()?;
    let text = serde_json::to_string_pretty(&json)? + "\n";
    // Both files or neither: the PNG first, the report last.
    aa_pretrain::checkpoint::write_atomic(&png_path, &png)?;
    if let Err(e) = aa_pretrain::checkpoint::write_atomic(&a.out, text.as_bytes()) {
        let _ = std::fs::remove_file(&png_path);
        return Err(e.into());
    }
    eprintln!(
        "{} attention tracks of {} → {} and {}",
        json["tracks"].as_array().map_or(0, Vec::len),
        json["family"].as_str().unwrap_or("?"),
        a.out.display(),
        png_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
