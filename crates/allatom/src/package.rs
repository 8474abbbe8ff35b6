//! One package format and one loader for every family (Hugging Face's `from_pretrained` idiom):
//! a directory (or hub repository) with `config.json` — `{"family", "model", …, "info"}`, see
//! [`crate::families`] — and `model.safetensors` (weights under the family's official names,
//! stored as f32, f16 or bf16, computed in f32), plus `tokenizer.json` or `vocab.txt` for ESM.
//! Hugging Face `EsmForMaskedLM` repositories load as they are.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aa_encoder::{Encoder, Window};
use aa_pretrain::hub::HubOptions;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::families::{split_config, Family, PackageFiles};
use crate::inputs::GlycanGraphs;

/// File name of the configuration in a package.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the weights in a package.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Name of the model built into the library (`models/preglycanaa-small`).
pub const DEFAULT_MODEL: &str = "preglycanaa-small";

/// Name of the built-in model pretrained on true molecules
/// (`models/preglycanaa-molecule-small`: PreGlycanAA 3 × 48 on the molecule featurisation,
/// stored as f16), which tells modified glycans (sulfated, phosphorylated, O-acetylated, …)
/// from unmodified ones.
pub const MOLECULE_MODEL: &str = "preglycanaa-molecule-small";

/// The built-in model's files (embedded once; `models/` links to the workspace's models).
static BUILTIN_CONFIG: &[u8] = include_bytes!("../models/preglycanaa-small/config.json");
static BUILTIN_WEIGHTS: &[u8] = include_bytes!("../models/preglycanaa-small/model.safetensors");
const BUILTIN_ORIGIN: &str = "the built-in preglycanaa-small";
#[cfg(molecule_model)]
static MOLECULE_CONFIG: &[u8] = include_bytes!("../models/preglycanaa-molecule-small/config.json");
#[cfg(molecule_model)]
static MOLECULE_WEIGHTS: &[u8] = include_bytes!("../models/preglycanaa-molecule-small/model.safetensors");
#[cfg(molecule_model)]
const MOLECULE_ORIGIN: &str = "the built-in preglycanaa-molecule-small";

/// The built-in models: name, configuration, weights, origin. The molecule model is built in
/// from a checkout only (a packaged crate leaves it out, see build.rs).
const BUILTINS: &[(&str, &[u8], &[u8], &str)] = &[
    (DEFAULT_MODEL, BUILTIN_CONFIG, BUILTIN_WEIGHTS, BUILTIN_ORIGIN),
    #[cfg(molecule_model)]
    (MOLECULE_MODEL, MOLECULE_CONFIG, MOLECULE_WEIGHTS, MOLECULE_ORIGIN),
];

/// A loaded encoder package.
pub struct Model {
    /// The encoder.
    pub encoder: Box<dyn Encoder>,
    /// The package configuration as read (`family`, `model`, …, `info`).
    pub config: Value,
    /// The glycan graph the encoder reads.
    pub glycans: GlycanGraphs,
    /// Where it came from (for messages).
    pub origin: String,
    family: &'static dyn Family,
}

struct DirFiles(PathBuf);

impl PackageFiles for DirFiles {
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(name)).ok()
    }
}

impl Model {
    /// Loads `name`: [`DEFAULT_MODEL`] or [`MOLECULE_MODEL`] (built in), a package directory, or a Hugging Face Hub
    /// repository id (`owner/name[@revision]`; downloads go to the shared `huggingface_hub`
    /// cache and are checked against the hub's checksums, see [`aa_pretrain::hub`]).
    pub fn from_pretrained(name: &str, opts: &HubOptions) -> Result<Model> {
        Model::from_pretrained_with(name, opts, &Value::Null)
    }

    /// [`Model::from_pretrained`] with `patch` (a JSON object) merged into the family's
    /// configuration before the encoder is built, e.g. `{"unzip": "all"}` for ESM-AA atom tokens.
    pub fn from_pretrained_with(name: &str, opts: &HubOptions, patch: &Value) -> Result<Model> {
        if let Some((_, config, weights, origin)) = BUILTINS.iter().find(|b| b.0 == name) {
            return Model::from_bytes_with(config, weights, origin, &crate::families::NoFiles, patch);
        }
        #[cfg(not(molecule_model))]
        if name == MOLECULE_MODEL {
            bail!(
                "{MOLECULE_MODEL} is not built into this binary (a packaged allatom crate carries only \
                 {DEFAULT_MODEL}: crates.io limits a crate to 10 MB); give the package directory \
                 models/{MOLECULE_MODEL} of the allatom repository as --model"
            );
        }
        let local = Path::new(name);
        if local.is_dir() && !local.join(CONFIG_FILE).exists() {
            bail!(
                "{name}: not a model package (no {CONFIG_FILE}); write one with `allatom export` or `allatom convert`"
            );
        }
        let dir = aa_pretrain::hub::resolve(name, &[CONFIG_FILE, WEIGHTS_FILE], opts)?;
        if !dir.join(aa_codeswitch::TOKENIZER_FILE).is_file() && !dir.join(aa_codeswitch::VOCAB_FILE).is_file() {
            // ESM repositories have one of the two; other families have neither (then nothing
            // is fetched and nothing is needed).
            if aa_pretrain::hub::resolve(name, &[aa_codeswitch::TOKENIZER_FILE], opts).is_err() {
                let _ = aa_pretrain::hub::resolve(name, &[aa_codeswitch::VOCAB_FILE], opts);
            }
        }
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
        };
        let origin = dir.display().to_string();
        Model::from_bytes_with(&read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?, &origin, &DirFiles(dir.clone()), patch)
    }

    /// The built-in `preglycanaa-small` (PreGlycanAA 3 × 64, `models/preglycanaa-small`).
    pub fn builtin() -> Result<Model> {
        Model::from_bytes(BUILTIN_CONFIG, BUILTIN_WEIGHTS, BUILTIN_ORIGIN, &crate::families::NoFiles)
    }

    /// Loads a package directory.
    pub fn from_dir(dir: &Path) -> Result<Model> {
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
        };
        Model::from_bytes(&read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?, &dir.display().to_string(), &DirFiles(dir.into()))
    }

    /// Loads a package from its configuration and weights; `files` gives its other files and
    /// `origin` names it in errors.
    pub fn from_bytes(config: &[u8], weights: &[u8], origin: &str, files: &dyn PackageFiles) -> Result<Model> {
        Model::from_bytes_with(config, weights, origin, files, &Value::Null)
    }

    fn from_bytes_with(
        config: &[u8],
        weights: &[u8],
        origin: &str,
        files: &dyn PackageFiles,
        patch: &Value,
    ) -> Result<Model> {
        let config: Value = serde_json::from_slice(config)
            .with_context(|| format!("{origin}/{CONFIG_FILE}: not a package configuration"))?;
        let (family, mut part) = split_config(&config).with_context(|| format!("{origin}/{CONFIG_FILE}"))?;
        if let (Some(p), Some(o)) = (part.as_object_mut(), patch.as_object()) {
            p.extend(o.clone());
        }
        let part = family.complete(&part).with_context(|| format!("{origin}/{CONFIG_FILE}"))?;
        let tensors: HashMap<String, Tensor> = candle_core::safetensors::load_buffer(weights, &Device::Cpu)
            .with_context(|| format!("{origin}/{WEIGHTS_FILE}"))?;
        let tensors = family.canonical_tensors(tensors);
        check_weights(&tensors).with_context(|| format!("{origin}/{WEIGHTS_FILE}"))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let encoder = family.load(vb, &part, files).with_context(|| format!("{origin}/{WEIGHTS_FILE}"))?;
        let glycans = family.glycan_graphs(&part)?;
        Ok(Model { encoder, config, glycans, origin: origin.to_string(), family })
    }

    /// The family.
    pub fn family(&self) -> &'static dyn Family {
        self.family
    }

    /// The window of one glycan (IUPAC-condensed, WURCS or GlycoCT, detected) in the graph
    /// this encoder reads.
    pub fn glycan_window(&self, glycan: &str) -> Result<Window, glycan_aa::GlycanError> {
        self.glycans.window(glycan)
    }

    /// The window of one glycan written in `notation` in the graph this encoder reads.
    pub fn glycan_window_as(
        &self,
        glycan: &str,
        notation: glycan_aa::notation::Notation,
    ) -> Result<Window, glycan_aa::GlycanError> {
        self.glycans.window_as(glycan, notation)
    }
}

/// Refuses weights that would silently give wrong embeddings: non-finite values anywhere,
/// negative BatchNorm running variances.
/// Integer tensors a package may hold (torch buffers no encoder reads as weights).
const INTEGER_BUFFERS: [&str; 2] = ["num_batches_tracked", "position_ids"];

fn check_weights(tensors: &HashMap<String, Tensor>) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        if !t.dtype().is_float() {
            // Integer buffers torch keeps beside the weights; any other integer tensor would be
            // cast to floats without a word.
            if INTEGER_BUFFERS.iter().any(|b| name.ends_with(b)) {
                continue;
            }
            bail!("tensor {name} is {:?}: weights must be floating point (F32, F16, BF16, F64)", t.dtype());
        }
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            bail!("tensor {name} holds a non-finite value ({v}): refusing weights that would embed NaN");
        }
        if name.ends_with("running_var") {
            if let Some(v) = values.iter().find(|v| **v < 0.0) {
                bail!("tensor {name} holds a negative variance ({v})");
            }
        }
    }
    Ok(())
}

/// An ESM package (model, alphabet, tokenizer) from a directory or hub id: the frozen
/// language model of Vabs-Net's `lm` option.
pub fn esm_package(name: &str) -> Result<aa_codeswitch::EsmPackage> {
    Ok(protein_aa::esm::from_pretrained(name, &HubOptions::from_env())?)
}

/// Marker file that says a directory is a package written by [`write_package`]: only such a
/// directory (or an empty one) is ever replaced.
pub const MARKER_FILE: &str = ".allatom-package";

/// Writes a package directory atomically (a temporary sibling renamed into place):
/// `config.json`, `tensors` stored as `dtype` (floating tensors only), an optional `README.md`
/// model card and `extra` files. An existing `dir` is replaced only when it is a package this
/// function wrote (it holds [`MARKER_FILE`]) or an empty directory; anything else — a user's
/// folder, `.`, `..`, a file — is refused and left untouched.
pub fn write_package(
    dir: &Path,
    config: &Value,
    tensors: &HashMap<String, Tensor>,
    dtype: DType,
    readme: Option<&str>,
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir);
    if let Ok(m) = &meta {
        let written_by_us = m.is_dir() && dir.join(MARKER_FILE).is_file();
        let empty = m.is_dir() && std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !(written_by_us || empty) {
            bail!(
                "{}: exists and is not a model package written by allatom (no {MARKER_FILE}); refusing to replace it — choose a new directory",
                dir.display()
            );
        }
    }
    let dir = &std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    if dir.file_name().is_none() {
        bail!("{}: not a directory name a package can be written to", dir.display());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "package".into());
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let stored: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), if t.dtype().is_float() { t.to_dtype(dtype)? } else { t.clone() }.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    candle_core::safetensors::save(&stored, tmp.join(WEIGHTS_FILE))?;
    std::fs::write(tmp.join(CONFIG_FILE), serde_json::to_string_pretty(config)? + "\n")?;
    std::fs::write(tmp.join(MARKER_FILE), "written by allatom\n")?;
    if let Some(text) = readme {
        std::fs::write(tmp.join("README.md"), text)?;
    }
    for (file, bytes) in extra {
        std::fs::write(tmp.join(file), bytes)?;
    }
    if dir.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old).with_context(|| format!("moving aside {}", dir.display()))?;
        std::fs::rename(&tmp, dir).with_context(|| format!("renaming into {}", dir.display()))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, dir).with_context(|| format!("renaming into {}", dir.display()))?;
    }
    Ok(())
}
