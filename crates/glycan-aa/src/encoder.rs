//! Pretrained GlycanAA encoders as packages: a directory (or two byte buffers) holding
//! `config.json` — the family, the encoder configuration, the featurisation vocabulary and
//! free-form provenance — and `model.safetensors` with the encoder's weights and BatchNorm
//! statistics under their official names (stored in f32, f16 or bf16; computed in f32). This is
//! what `allatom export` writes, `allatom embed` reads and a model hub serves.
//!
//! ```no_run
//! use glycan_aa::encoder::GlycanEncoder;
//! use aa_pretrain::hub::HubOptions;
//! // A directory, or a hub repository id such as "owner/preglycanaa-small".
//! let enc = GlycanEncoder::from_pretrained("models/preglycanaa-small", &HubOptions::from_env()).unwrap();
//! let g = enc.featurize("Neu5Ac(a2-3)Gal(b1-4)GlcNAc").unwrap();
//! let out = enc.embed(&[&g]).unwrap();
//! assert_eq!(out.graph.dims(), &[1, enc.config.model.graph_dim()]);
//! ```

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::compat::{featurize, CompatGraph, CompatVocab};
use crate::model::{GlycanAA, GlycanAABatch, GlycanAAConfig};
use crate::GlycanError;

/// File name of the configuration in a package.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the weights in a package.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The `family` value of GlycanAA packages.
pub const FAMILY: &str = "glycanaa";

/// `config.json` of a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    /// Model family (`glycanaa`).
    pub family: String,
    /// Encoder configuration.
    pub model: GlycanAAConfig,
    /// Featurisation vocabulary (unit names and link types).
    pub vocab: CompatVocab,
    /// Provenance and measured metrics (free-form; not read by the loader).
    #[serde(default)]
    pub info: serde_json::Value,
}

/// Errors loading a package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The package could not be found or fetched.
    #[error(transparent)]
    Hub(#[from] aa_pretrain::hub::HubError),
    /// A file is not what a package holds.
    #[error("{origin}: {message}")]
    Invalid {
        /// Package or file concerned.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(origin: &str, message: impl std::fmt::Display) -> PackageError {
    PackageError::Invalid { origin: origin.to_string(), message: message.to_string() }
}

/// A GlycanAA encoder ready for inference.
pub struct GlycanEncoder {
    /// The package configuration.
    pub config: PackageConfig,
    model: GlycanAA,
    device: Device,
}

/// Embeddings of a batch of glycans.
#[derive(Clone, Debug)]
pub struct BatchEmbedding {
    /// Glycan embeddings `[B, 2·node_dim]` (mean ‖ max over monosaccharides).
    pub graph: Tensor,
    /// Node embeddings `[N, node_dim]`, glycan by glycan, each glycan's monosaccharides (in
    /// the order of its IUPAC string) and then its atoms (residue by residue).
    pub nodes: Tensor,
    /// `nodes` rows of glycan `i`: `offsets[i]..offsets[i + 1]`.
    pub offsets: Vec<usize>,
    /// Monosaccharides of each glycan (its first rows in `nodes`).
    pub num_units: Vec<usize>,
}

impl GlycanEncoder {
    /// Loads `dir/config.json` and `dir/model.safetensors`.
    pub fn from_dir(dir: &Path) -> Result<Self, PackageError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| PackageError::Io { path: path.display().to_string(), source })
        };
        let (config, weights) = (read(CONFIG_FILE)?, read(WEIGHTS_FILE)?);
        Self::from_bytes(&config, &weights, &dir.display().to_string())
    }

    /// Loads a package from a directory or a Hugging Face Hub repository id (`owner/name`,
    /// optionally `@revision`), downloading into the shared cache unless `opts.offline`
    /// (see [`aa_pretrain::hub`]).
    pub fn from_pretrained(name: &str, opts: &aa_pretrain::hub::HubOptions) -> Result<Self, PackageError> {
        let dir = aa_pretrain::hub::resolve(name, &[CONFIG_FILE, WEIGHTS_FILE], opts)?;
        Self::from_dir(&dir)
    }

    /// Loads a package from the contents of its two files; `origin` names it in errors.
    pub fn from_bytes(config: &[u8], weights: &[u8], origin: &str) -> Result<Self, PackageError> {
        let config: PackageConfig = serde_json::from_slice(config)
            .map_err(|e| invalid(&format!("{origin}/{CONFIG_FILE}"), format!("not a package configuration: {e}")))?;
        if config.family != FAMILY {
            return Err(invalid(origin, format!("family {:?}, this loader reads {FAMILY:?}", config.family)));
        }
        let mut config = config;
        config.model.sized_for(&config.vocab).map_err(|e| invalid(origin, e))?;
        let device = Device::Cpu;
        let tensors: HashMap<String, Tensor> = candle_core::safetensors::load_buffer(weights, &device)
            .map_err(|e| invalid(&format!("{origin}/{WEIGHTS_FILE}"), e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = GlycanAA::new(vb, &config.model).map_err(|e| invalid(&format!("{origin}/{WEIGHTS_FILE}"), e))?;
        Ok(GlycanEncoder { config, model, device })
    }

    /// The official featurisation of a glycan in this package's vocabulary.
    pub fn featurize(&self, glycan: &str) -> Result<CompatGraph, GlycanError> {
        featurize(glycan, &self.config.vocab)
    }

    /// Embeds featurised glycans (inference mode: BatchNorm uses the stored statistics, so a
    /// glycan's embedding does not depend on the rest of the batch).
    pub fn embed(&self, graphs: &[&CompatGraph]) -> candle_core::Result<BatchEmbedding> {
        let batch = GlycanAABatch::from_compat_refs(graphs, &self.config.vocab, &self.device)?;
        let out = self.model.forward(&batch, false)?;
        let nodes = out.all_node_feature.index_select(&batch.order, 0)?;
        let mut offsets = vec![0];
        for g in graphs {
            offsets.push(offsets.last().copied().unwrap_or(0) + g.node_type.len());
        }
        Ok(BatchEmbedding {
            graph: out.graph_feature,
            nodes,
            offsets,
            num_units: graphs.iter().map(|g| g.num_units).collect(),
        })
    }
}

/// Writes a package directory atomically (a temporary sibling renamed into place): the
/// configuration and `tensors` stored as `dtype`.
pub fn write_package(
    dir: &Path,
    config: &PackageConfig,
    tensors: &HashMap<String, Tensor>,
    dtype: DType,
    readme: Option<&str>,
) -> candle_core::Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "package".into());
    let err = |what: &str, p: &Path, e: std::io::Error| candle_core::Error::Msg(format!("{what} {}: {e}", p.display()));
    std::fs::create_dir_all(parent).map_err(|e| err("creating", parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| err("creating", &tmp, e))?;
    let stored: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), if t.dtype().is_float() { t.to_dtype(dtype)? } else { t.clone() }.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    candle_core::safetensors::save(&stored, tmp.join(WEIGHTS_FILE))?;
    let json = serde_json::to_string_pretty(config).map_err(|e| candle_core::Error::Msg(e.to_string()))? + "\n";
    std::fs::write(tmp.join(CONFIG_FILE), json).map_err(|e| err("writing", &tmp, e))?;
    if let Some(text) = readme {
        std::fs::write(tmp.join("README.md"), text).map_err(|e| err("writing", &tmp, e))?;
    }
    if dir.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(|e| err("moving aside", dir, e))?;
        std::fs::rename(&tmp, dir).map_err(|e| err("renaming into", dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, dir).map_err(|e| err("renaming into", dir, e))?;
    }
    Ok(())
}
