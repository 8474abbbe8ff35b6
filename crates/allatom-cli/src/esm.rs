//! ESM-2 / ESM-AA in the CLI: `pretrain` with an `"objective": "esm_aa"` config, `convert`
//! (torch checkpoints → model directories) and `embed --model <ESM model>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::embed::{u32_tensor, write_embedding_outputs, EmbeddingFile};
use aa_codeswitch::{
    canonical_tensors, Alphabet, CodeSwitchBatch, CodeSwitchSequence, EsmConfig, EsmPackage, EsmRequest, Unzip,
};
use aa_pretrain::init::SeededVarMap;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::TrainConfig;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use protein_aa::esm_pretrain::{residue_windows, EsmAaMasking, EsmAaPretrain};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Structures for ESM-AA pretraining.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsmDataConfig {
    /// Structure files or directories (relative to the config file).
    pub structures: Vec<PathBuf>,
    /// Fraction of windows held out for validation (random, by the training seed).
    #[serde(default = "default_valid")]
    pub valid_fraction: f64,
}

fn default_valid() -> f64 {
    0.1
}

/// An ESM-AA pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsmPretrainConfig {
    /// Must be "esm_aa".
    pub objective: String,
    /// Input structures.
    pub data: EsmDataConfig,
    /// The model (Hugging Face ESM config fields; `pair_bias` must be true).
    pub model: EsmConfig,
    /// Masking, unzipping and window size.
    #[serde(default)]
    pub masking: EsmAaMasking,
    /// Training settings.
    pub train: TrainConfig,
}

/// `allatom pretrain` for an ESM-AA config.
pub fn pretrain(a: crate::PretrainArgs, text: &str) -> Result<ExitCode> {
    let mut cfg: EsmPretrainConfig = serde_json::from_str(text)
        .with_context(|| format!("{}: not an ESM-AA pretraining config", a.config.display()))?;
    if cfg.objective != "esm_aa" {
        bail!("{}: objective {:?} is not esm_aa", a.config.display(), cfg.objective);
    }
    if let Some(m) = a.max_steps {
        cfg.train.max_steps = Some(m);
    }
    let mut files = Vec::new();
    for p in &cfg.data.structures {
        files.extend(crate::structure_files(&crate::pretrain::resolve(&a.config, p))?);
    }
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let mut items = Vec::new();
    let mut skipped = 0;
    for f in &files {
        match protein_aa::read_structure_file(f, &opts) {
            Ok(s) => items.extend(residue_windows(Arc::new(s.graph), cfg.masking.window)),
            Err(e) => {
                skipped += 1;
                eprintln!("skipped {e}");
            }
        }
    }
    let mut split = Rng::new(cfg.train.seed ^ 0x5EED_5EED);
    split.shuffle(&mut items);
    let n_valid =
        ((items.len() as f64 * cfg.data.valid_fraction).round() as usize).max(1).min(items.len().saturating_sub(1));
    let valid = items.split_off(items.len() - n_valid);
    let train = items;
    eprintln!(
        "{} structure files ({skipped} unreadable): {} training and {} validation windows",
        files.len(),
        train.len(),
        valid.len()
    );
    let store = SeededVarMap::new(cfg.train.seed);
    let model = aa_codeswitch::Esm::load(store.var_builder(DType::F32, &Device::Cpu), &cfg.model)?;
    let objective = EsmAaPretrain::new(model, Alphabet::esm_aa(), cfg.masking.clone())?;
    let counts = json!({ "train_windows": train.len(), "valid_windows": valid.len(), "structure_files": files.len() });
    let metadata = json!({ "config": cfg, "task": "ESM-AA" });
    crate::pretrain::fit_pretraining(&a, &cfg.train, &store, &objective, &train, &valid, metadata, counts, "windows")
}

/// Attention heads of the released ESM-2 / ESM-AA sizes, by width (the checkpoint's tensors
/// do not carry it).
fn heads_for_width(width: usize) -> Option<usize> {
    match width {
        320 | 480 | 640 | 1280 => Some(20),
        2560 | 5120 => Some(40),
        _ => None,
    }
}

/// Looks for `encoder_attention_heads` anywhere in a torch checkpoint's pickled objects.
fn heads_from_pickle(path: &Path) -> Option<usize> {
    use candle_core::pickle::{Object, Stack};
    fn find(o: &Object) -> Option<usize> {
        match o {
            Object::Dict(kv) => kv.iter().find_map(|(k, v)| match (k, v) {
                (Object::Unicode(k), Object::Int(n)) if k == "encoder_attention_heads" => Some(*n as usize),
                (Object::Unicode(k), Object::Long(n)) if k == "encoder_attention_heads" => Some(*n as usize),
                _ => find(v),
            }),
            Object::Tuple(v) | Object::List(v) => v.iter().find_map(find),
            Object::Reduce { callable, args } | Object::Build { callable, args } => {
                find(callable).or_else(|| find(args))
            }
            Object::PersistentLoad(o) => find(o),
            _ => None,
        }
    }
    let file = std::fs::File::open(path).ok()?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).ok()?;
    let name = zip.file_names().filter_map(|n| n.ok()).find(|n| n.ends_with("data.pkl"))?.to_string();
    let mut reader = std::io::BufReader::new(zip.by_name(&name).ok()?);
    let mut stack = Stack::empty();
    stack.read_loop(&mut reader).ok()?;
    find(&stack.finalize().ok()?)
}

/// `allatom convert`: a fair-esm ESM-2 or official ESM-AA torch checkpoint → a model directory.
pub fn convert(a: crate::ConvertArgs) -> Result<ExitCode> {
    let path = &a.checkpoint;
    if !path.is_file() {
        bail!("{}: no such checkpoint file", path.display());
    }
    let raw = candle_core::pickle::read_all_with_key(path, Some("model"))
        .with_context(|| format!("{}: not a torch checkpoint with a \"model\" state dict", path.display()))?;
    let tensors = canonical_tensors(raw);
    let get = |k: &str| {
        tensors.get(k).with_context(|| format!("{}: no tensor {k} (not an ESM-2/ESM-AA checkpoint?)", path.display()))
    };
    let (vocab, width) = get("embed_tokens.weight")?.dims2()?;
    let layers = (0..).take_while(|i| tensors.contains_key(&format!("layers.{i}.fc1.weight"))).count();
    let ffn = get("layers.0.fc1.weight")?.dim(0)?;
    let pair_bias = tensors.contains_key("gbf.means.weight");
    let heads = match a.heads.or_else(|| heads_from_pickle(path)).or_else(|| heads_for_width(width)) {
        Some(h) => h,
        None => bail!("{}: cannot tell the number of attention heads; give --heads", path.display()),
    };
    let mut cfg = EsmConfig::esm2_t6_8m();
    cfg.vocab_size = vocab;
    cfg.hidden_size = width;
    cfg.num_hidden_layers = layers;
    cfg.num_attention_heads = heads;
    cfg.intermediate_size = ffn;
    cfg.pair_bias = pair_bias;
    if pair_bias {
        cfg.gaussian_kernels = get("gbf.means.weight")?.dim(1)?;
    }
    let alphabet = match vocab {
        33 => Alphabet::esm2(),
        59 => Alphabet::esm_aa(),
        n => bail!("{}: {n} tokens is neither ESM-2's (33) nor ESM-AA's (59) alphabet", path.display()),
    };
    // Build the model once: shapes are checked before anything is written.
    let f32s: HashMap<String, Tensor> =
        tensors.into_iter().map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?))).collect::<Result<_>>()?;
    aa_codeswitch::Esm::load(candle_nn::VarBuilder::from_tensors(f32s.clone(), DType::F32, &Device::Cpu), &cfg)
        .with_context(|| format!("{}: does not fit the inferred config", path.display()))?;
    let kind = if pair_bias { "ESM-AA" } else { "ESM-2" };
    let readme = format!(
        "# {}\n\n{kind} converted by `allatom convert` from `{}`: {layers} layers, width {width}, {heads} heads, \
         {vocab} tokens{}.\n\nUse: `allatom embed --model <this folder> --sequence MKT... --level unit --out e.safetensors`.\n",
        a.out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        path.display(),
        if pair_bias { ", Gaussian pair bias" } else { "" }
    );
    write_model_dir(&a.out, &cfg, &f32s, &alphabet, &readme)?;
    eprintln!("{kind}: {layers} layers × {width}, {heads} heads, {vocab} tokens → {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes an ESM model directory (config.json, model.safetensors, tokenizer.json, README.md)
/// atomically: into a temporary sibling, then renamed over `out`.
fn write_model_dir(
    out: &Path,
    cfg: &EsmConfig,
    tensors: &HashMap<String, Tensor>,
    alphabet: &Alphabet,
    readme: &str,
) -> Result<()> {
    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    candle_core::safetensors::save(tensors, tmp.join(aa_codeswitch::WEIGHTS_FILE))?;
    std::fs::write(tmp.join(aa_codeswitch::CONFIG_FILE), serde_json::to_string_pretty(cfg)?)?;
    std::fs::write(tmp.join(aa_codeswitch::TOKENIZER_FILE), alphabet.tokenizer_json())?;
    std::fs::write(tmp.join("README.md"), readme)?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// `allatom export` of an ESM-AA pretraining run (`allatom pretrain` with `"objective":
/// "esm_aa"`): the model directory `embed --model` and the Vabs-Net `lm` option read.
pub fn export(a: &crate::ExportArgs, ck: aa_pretrain::checkpoint::Checkpoint) -> Result<ExitCode> {
    let cfg: EsmConfig = serde_json::from_value(ck.state["metadata"]["config"]["model"].clone())
        .with_context(|| format!("{}: no ESM model configuration in the checkpoint", ck.dir.display()))?;
    if a.dtype != "f32" {
        bail!("--dtype {}: ESM model directories are written in f32", a.dtype);
    }
    let alphabet = if cfg.pair_bias { Alphabet::esm_aa() } else { Alphabet::esm2() };
    let tensors: HashMap<String, Tensor> = ck.model.into_iter().collect();
    aa_codeswitch::Esm::load(candle_nn::VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu), &cfg)
        .with_context(|| format!("{}: the weights do not fit the checkpoint's config", ck.dir.display()))?;
    let name = a.name.clone().unwrap_or_else(|| {
        a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "esm-aa".into())
    });
    let readme = format!(
        "# {name}\n\nESM-AA pretrained by `allatom pretrain` and exported by `allatom export` from `{}` (step {}): \
         {} layers, width {}, {} heads.\n\nUse: `allatom embed --model <this folder> --structure 1ubq.pdb --level unit \
         --out e.safetensors`, or as Vabs-Net language-model features (`\"lm\"` in a residue-task config).\n\n\
         ## Training\n\n```json\n{}\n```\n",
        ck.dir.display(),
        ck.state["trainer"]["step"],
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.num_attention_heads,
        serde_json::to_string_pretty(&ck.state["metadata"]["config"])?
    );
    write_model_dir(&a.out, &cfg, &tensors, &alphabet, &readme)?;
    load(&a.out.display().to_string())?;
    eprintln!("{name} (ESM-AA, {} layers × {}) written to {}", cfg.num_hidden_layers, cfg.hidden_size, a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Whether a model name (directory or hub id) is an ESM model, judged from its config.json.
pub fn is_esm_model(name: &str) -> Result<bool> {
    let dir =
        aa_pretrain::hub::resolve(name, &[aa_codeswitch::CONFIG_FILE], &aa_pretrain::hub::HubOptions::from_env())?;
    let p = dir.join(aa_codeswitch::CONFIG_FILE);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p)?).with_context(|| format!("{}: not JSON", p.display()))?;
    Ok(protein_aa::esm::is_esm_config(&v))
}

/// Loads an ESM model directory or hub repository.
pub fn load(name: &str) -> Result<EsmPackage> {
    Ok(protein_aa::esm::from_pretrained(name, &aa_pretrain::hub::HubOptions::from_env())?)
}

/// Most tokens (padding included) in one ESM forward pass of `embed`.
const ESM_BATCH_TOKENS: usize = 8192;

/// One sequence to embed and where it came from.
struct EsmInput {
    seq: Option<CodeSwitchSequence>,
    meta: serde_json::Value,
    labels: Vec<String>,
    error: Option<String>,
}

fn read_fasta(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(h) = line.strip_prefix('>') {
            out.push((h.trim().to_string(), String::new()));
        } else if !line.is_empty() {
            match out.last_mut() {
                Some((_, s)) => s.push_str(line),
                None => bail!("{}: line {}: sequence before the first '>' header", path.display(), n + 1),
            }
        }
    }
    if out.is_empty() {
        bail!("{}: no FASTA records", path.display());
    }
    if let Some((h, _)) = out.iter().find(|(_, s)| s.is_empty()) {
        bail!("{}: record {h:?} has no sequence", path.display());
    }
    Ok(out)
}

/// `allatom embed` with an ESM model: per-residue (unit), per-atom-token (atom) or mean
/// residue (graph) embeddings of sequences, FASTA records or structure chains.
pub fn embed(a: crate::EmbedArgs, model: &str) -> Result<ExitCode> {
    let pkg = load(model)?;
    let unzip = if a.level == crate::embed::Level::Atom { Unzip::All } else { Unzip::None };
    if unzip == Unzip::All && !pkg.model.config().pair_bias {
        bail!("--level atom needs an ESM-AA model (atom tokens); {model} is ESM-2");
    }
    let from_text = |text: &str, meta: serde_json::Value| -> EsmInput {
        match pkg.alphabet.encode(&pkg.tokenizer, text) {
            Ok(ids) => {
                let labels = (1..ids.len() - 1).map(|i| (i).to_string()).collect();
                EsmInput { seq: Some(CodeSwitchSequence::from_tokens(ids)), meta, labels, error: None }
            }
            Err(e) => EsmInput { seq: None, meta, labels: vec![], error: Some(e.to_string()) },
        }
    };
    let inputs: Vec<EsmInput> = match (&a.sequence, &a.fasta, &a.structure) {
        (Some(s), None, None) => {
            if s.trim().is_empty() {
                bail!("--sequence is empty");
            }
            vec![from_text(s, json!({"input": s}))]
        }
        (None, Some(f), None) => read_fasta(f)?.into_iter().map(|(h, s)| from_text(&s, json!({"input": h}))).collect(),
        (None, None, Some(p)) if protein_aa::molfile::is_molfile(p) => {
            // Small molecules: all-atom sequences (ESM-AA), one per record.
            if !pkg.model.config().pair_bias {
                bail!("{}: small molecules need an ESM-AA model (atom tokens); {model} is ESM-2", p.display());
            }
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            let mols = protein_aa::molfile::parse_sdf(&text).map_err(|mut e| {
                e.path = Some(p.display().to_string());
                e
            })?;
            mols.iter()
                .enumerate()
                .map(|(k, g)| {
                    let meta = json!({"structure": p, "record": k, "name": g.units[0].name});
                    match CodeSwitchSequence::from_graph(g, &pkg.alphabet, &Unzip::All) {
                        Ok(seq) => {
                            let labels = seq.atom.iter().flatten().map(|&a| g.atoms[a as usize].name.clone()).collect();
                            EsmInput { seq: Some(seq), meta, labels, error: None }
                        }
                        Err(e) => EsmInput { seq: None, meta, labels: vec![], error: Some(e.to_string()) },
                    }
                })
                .collect()
        }
        (None, None, Some(p)) => {
            let files = crate::structure_files(p)?;
            let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
            let mut v = Vec::new();
            for f in files {
                match protein_aa::read_structure_file(&f, &opts) {
                    Err(e) => v.push(EsmInput {
                        seq: None,
                        meta: json!({"structure": f}),
                        labels: vec![],
                        error: Some(e.to_string()),
                    }),
                    Ok(s) => {
                        let g = &s.graph;
                        for w in residue_windows(Arc::new(g.clone()), usize::MAX) {
                            let chain = g.units[w.units[0] as usize]
                                .label
                                .as_ref()
                                .map(|l| l.chain.clone())
                                .unwrap_or_default();
                            let meta = json!({"structure": f, "chain": chain});
                            match CodeSwitchSequence::from_units(g, &w.units, &pkg.alphabet, &unzip) {
                                Ok(seq) => {
                                    let labels = (0..seq.len())
                                        .filter_map(|i| seq.unit[i].map(|u| (i, u)))
                                        .filter(|&(i, _)| (unzip == Unzip::All) != seq.aa_mask[i])
                                        .map(|(i, u)| {
                                            let unit = &g.units[u as usize];
                                            let l = unit.label.as_ref();
                                            let base = format!(
                                                "{} {} {}{}",
                                                l.map_or("", |l| l.chain.as_str()),
                                                unit.name,
                                                l.map_or(0, |l| l.number),
                                                l.map_or("", |l| l.insertion.as_str())
                                            );
                                            match seq.atom[i] {
                                                Some(at) => format!("{base} {}", g.atoms[at as usize].name),
                                                None => base,
                                            }
                                        })
                                        .collect();
                                    v.push(EsmInput { seq: Some(seq), meta, labels, error: None })
                                }
                                Err(e) => {
                                    v.push(EsmInput { seq: None, meta, labels: vec![], error: Some(e.to_string()) })
                                }
                            }
                        }
                    }
                }
            }
            v
        }
        _ => bail!("with an ESM model give one of --sequence STRING, --fasta FILE, --structure FILE|DIR"),
    };
    if a.sequence.is_some() {
        if let Some(e) = &inputs[0].error {
            bail!("sequence: {e}");
        }
    }
    let started = std::time::Instant::now();
    let width = pkg.model.config().hidden_size;
    let mut rows: Vec<Tensor> = Vec::new();
    let (mut seq_idx, mut tok_idx) = (Vec::new(), Vec::new());
    let mut spans: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut next = 0usize;
    // Sequences of similar length share a forward pass: sorted by length, at most --batch-size
    // of them and ESM_BATCH_TOKENS tokens (padding included) per batch.
    let mut order: Vec<usize> = (0..inputs.len()).filter(|&i| inputs[i].seq.is_some()).collect();
    order.sort_by_key(|&i| inputs[i].seq.as_ref().map_or(0, |s| s.len()));
    let mut hidden: Vec<Option<Tensor>> = vec![None; inputs.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && end - start < a.batch_size.max(1) {
            let longest = inputs[order[end]].seq.as_ref().map_or(0, |s| s.len());
            if (end - start + 1) * longest > ESM_BATCH_TOKENS {
                break;
            }
            end += 1;
        }
        let seqs: Vec<&CodeSwitchSequence> = order[start..end].iter().filter_map(|&i| inputs[i].seq.as_ref()).collect();
        let batch = CodeSwitchBatch::collate(&seqs, &pkg.alphabet, &Device::Cpu)?;
        let out = pkg.model.forward(&batch, &EsmRequest::default())?;
        for (k, &i) in order[start..end].iter().enumerate() {
            hidden[i] = Some(out.hidden.get(k)?.narrow(0, 0, batch.lengths[k])?);
        }
        start = end;
    }
    for (i, inp) in inputs.iter().enumerate() {
        let (Some(seq), Some(hidden)) = (&inp.seq, &hidden[i]) else { continue };
        // Residue rows, or atom rows for --level atom and for molecules without residues.
        let atoms = a.level == crate::embed::Level::Atom || seq.aa_mask[1..seq.len() - 1].iter().all(|&m| !m);
        let keep: Vec<u32> = (1..seq.len() - 1).filter(|&k| seq.aa_mask[k] != atoms).map(|k| k as u32).collect();
        let n = keep.len();
        let picked = hidden.index_select(&Tensor::from_vec(keep.clone(), n, &Device::Cpu)?, 0)?;
        match a.level {
            crate::embed::Level::Graph => {
                rows.push(picked.mean_keepdim(0)?);
                spans.insert(i, (next, next + 1));
                next += 1;
            }
            _ => {
                rows.push(picked);
                spans.insert(i, (next, next + n));
                next += n;
                seq_idx.extend(std::iter::repeat_n(i as u32, n));
                tok_idx.extend(keep);
            }
        }
    }
    let matrix =
        if rows.is_empty() { Tensor::zeros((0, width), DType::F32, &Device::Cpu)? } else { Tensor::cat(&rows, 0)? };
    let mut jsonl = String::new();
    for (i, inp) in inputs.iter().enumerate() {
        let mut rec = json!({"index": i});
        match (&inp.error, spans.get(&i)) {
            (Some(e), _) => rec["error"] = json!(e),
            (None, Some(&(lo, hi))) => {
                rec["rows"] = json!([lo, hi]);
                if a.level != crate::embed::Level::Graph {
                    rec["labels"] = json!(inp.labels);
                }
            }
            (None, None) => rec["error"] = json!("not embedded"),
        }
        if let (Some(o), Some(m)) = (rec.as_object_mut(), inp.meta.as_object()) {
            o.extend(m.clone());
        }
        jsonl.push_str(&rec.to_string());
        jsonl.push('\n');
    }
    let file = match a.level {
        crate::embed::Level::Graph => EmbeddingFile::Npy(matrix.clone()),
        _ => EmbeddingFile::Tensors(HashMap::from([
            ("embeddings".to_string(), matrix.clone()),
            ("sequence_index".to_string(), u32_tensor(seq_idx)?),
            ("token_index".to_string(), u32_tensor(tok_idx)?),
        ])),
    };
    let meta_path = write_embedding_outputs(&a.out, file, &jsonl)?;
    let failed = inputs.iter().filter(|i| i.error.is_some()).count();
    eprintln!(
        "{} of {} sequences embedded ({} rows × {width}) in {:.2} s → {} and {}",
        inputs.len() - failed,
        inputs.len(),
        matrix.dim(0)?,
        started.elapsed().as_secs_f64(),
        a.out.display(),
        meta_path.display()
    );
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
