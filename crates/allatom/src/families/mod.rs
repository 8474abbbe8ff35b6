//! The registry: every encoder family, chosen by the `family` field of a configuration.
//!
//! A family is one file here implementing [`Family`] (how to build its [`Encoder`] from a
//! configuration and a variable tree, and which glycan graph it reads) plus one line in
//! [`FAMILIES`]. Its layers live in a layer crate (`aa-rgconv`, `aa-sparse-attn`,
//! `aa-codeswitch`) or its own model crate; its encoder implements `aa_encoder::Encoder`.
//!
//! A configuration — a package's `config.json` or a run's `encoder` section — is one JSON
//! object: `{"family": NAME, "model": {…the family's model fields…}, …family options…,
//! "info": {…free-form…}}`. Hugging Face ESM repositories (`"model_type": "esm"`, flat fields)
//! are read as family `esm` unchanged.

pub mod esm;
pub mod glycanaa;
pub mod rgcn;
pub mod vabs;
pub mod vabs_official;

use std::collections::HashMap;

use aa_encoder::Encoder;
use anyhow::{bail, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::inputs::GlycanGraphs;

/// Reads the other files of a package (ESM's `tokenizer.json`), when loading one.
pub trait PackageFiles {
    /// The file's bytes, `None` when the package has no such file.
    fn read(&self, name: &str) -> Option<Vec<u8>>;
}

/// No files besides the configuration and weights (training from a run configuration).
pub struct NoFiles;

impl PackageFiles for NoFiles {
    fn read(&self, _name: &str) -> Option<Vec<u8>> {
        None
    }
}

/// One encoder family.
pub trait Family: Sync {
    /// The `family` value (`glycanaa`, `rgcn`, `vabs`, `esm`).
    fn name(&self) -> &'static str;
    /// One line for listings and errors.
    fn summary(&self) -> &'static str;
    /// Checks a configuration (its `family` and `info` removed) and returns it completed (sizes
    /// filled in), without building weights: what a run checks before reading data.
    fn complete(&self, config: &Value) -> Result<Value>;
    /// Builds the encoder of a completed configuration, its weights under `vb` (created from a
    /// seeded variable map for training, or read from a package).
    fn load(&self, vb: VarBuilder, config: &Value, files: &dyn PackageFiles) -> Result<Box<dyn Encoder>>;
    /// The glycan graph this configuration reads (the official GlycanAA featurisation or the
    /// true molecule).
    fn glycan_graphs(&self, config: &Value) -> Result<GlycanGraphs>;
    /// Maps a checkpoint's tensor names to the family's (Hugging Face ESM names → fair-esm).
    fn canonical_tensors(&self, tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
        tensors
    }
}

/// Every family. Adding one: a file in this folder and one line here.
pub static FAMILIES: &[&dyn Family] =
    &[&glycanaa::GlycanAAFamily, &rgcn::RgcnFamily, &vabs::VabsFamily, &esm::EsmFamily];

/// The family named `name`.
pub fn family(name: &str) -> Result<&'static dyn Family> {
    match FAMILIES.iter().find(|f| f.name() == name) {
        Some(f) => Ok(*f),
        None => bail!(
            "unknown encoder family {name:?}; known: {}",
            FAMILIES.iter().map(|f| format!("{} ({})", f.name(), f.summary())).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Splits a configuration into its family and the family's part (without `family` and
/// `info`). A Hugging Face ESM configuration (`model_type: "esm"`, or ESM's
/// `num_hidden_layers` / `hidden_size` fields, and no `family`) becomes `esm` with the whole
/// object as its `model`.
pub fn split_config(config: &Value) -> Result<(&'static dyn Family, Value)> {
    let Some(obj) = config.as_object() else { bail!("an encoder configuration must be a JSON object") };
    let name = match obj.get("family") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => bail!("`family` must be a string, not {other}"),
        // Hugging Face ESM repositories, and ESM configs written before packages had a family.
        None if obj.get("model_type").and_then(Value::as_str) == Some("esm")
            || (obj.contains_key("num_hidden_layers") && obj.contains_key("hidden_size")) =>
        {
            return Ok((family("esm")?, serde_json::json!({ "model": config })));
        }
        None => bail!(
            "the configuration has no `family` field (one of {})",
            FAMILIES.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
        ),
    };
    let f = family(&name)?;
    let mut rest = obj.clone();
    rest.remove("family");
    rest.remove("info");
    if f.name() == "esm" && !rest.contains_key("model") {
        // An ESM package keeps the Hugging Face layout (flat model fields) so that ESM
        // readers see a plain ESM config; only `unzip` is ours.
        let unzip = rest.remove("unzip");
        let mut part = serde_json::Map::from_iter([("model".to_string(), Value::Object(rest))]);
        if let Some(u) = unzip {
            part.insert("unzip".into(), u);
        }
        return Ok((f, Value::Object(part)));
    }
    Ok((f, Value::Object(rest)))
}

/// The configuration as written to checkpoints and packages: `family` first, then the family's
/// fields (for `esm` packages see [`package_config`]).
pub fn join_config(family: &dyn Family, config: &Value) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("family".into(), Value::String(family.name().into()));
    if let Some(o) = config.as_object() {
        obj.extend(o.clone());
    }
    Value::Object(obj)
}

/// Parses a family's part of a configuration into its typed config, naming the family in errors.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(family: &str, config: &Value) -> Result<T> {
    serde_json::from_value(config.clone()).map_err(|e| anyhow::anyhow!("not a {family} encoder configuration: {e}"))
}

/// The `config.json` of a package: [`join_config`], except that ESM keeps the Hugging Face
/// layout (the model's fields at the top, plus `family` and `unzip`), so that every ESM reader
/// (and `transformers`) reads it.
pub fn package_config(family: &dyn Family, config: &Value) -> Value {
    if family.name() != "esm" {
        return join_config(family, config);
    }
    let mut obj = config.get("model").and_then(Value::as_object).cloned().unwrap_or_default();
    obj.insert("family".into(), Value::String("esm".into()));
    obj.entry("model_type").or_insert(Value::String("esm".into()));
    if let Some(u) = config.get("unzip") {
        obj.insert("unzip".into(), u.clone());
    }
    Value::Object(obj)
}
