//! The pretraining runs: PreGlycanAA on glycans, ESM-AA and Vabs-Net SMPC on structures.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aa_codeswitch::{Alphabet, EsmConfig};
use aa_pretrain::run::{fit, resolve, split_counts, split_fractions, write_summary, RunSpec};
use aa_pretrain::trainer::{Selection, TrainConfig};
use aa_sparse_attn::{Vabs, VabsConfig};
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use glycan_aa::compat::{featurize, CompatVocab};
use glycan_aa::model::{molecule_compat, GlycanAAConfig};
use glycan_aa::pretrain::{MaskingConfig, PreGlycanAA};
use protein_aa::esm_pretrain::{residue_windows, EsmAaMasking, EsmAaPretrain};
use protein_aa::vabs::{SpanMasking, VabsSmpc};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::resolve_lm;
use crate::families::glycanaa::{Featurisation, GlycanAAFamilyConfig};
use crate::families::vabs::VabsFamilyConfig;
use crate::inputs::{read_glycan_file, read_structures};

fn d_valid_glycans() -> f64 {
    0.05
}
fn d_links() -> usize {
    84
}
fn d_valid() -> f64 {
    0.15
}
fn d_window() -> usize {
    128
}

/// Where glycans come from and how they are split.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlycanData {
    /// Glycan file (CSV or one per line); relative paths are relative to the config file.
    pub glycans: PathBuf,
    /// CSV column (default: "IUPAC Condensed" or "glycan").
    #[serde(default)]
    pub column: Option<String>,
    /// Fraction held out for validation (random, by the training seed).
    #[serde(default = "d_valid_glycans")]
    pub valid_fraction: f64,
    /// Use only the first this many glycans (the vocabulary still comes from the whole file).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Links in the vocabulary: the most frequent ones in the file (84 in the official release).
    #[serde(default = "d_links")]
    pub vocab_links: usize,
}

/// A PreGlycanAA pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreGlycanAARun {
    /// Input glycans.
    pub data: GlycanData,
    /// The encoder (`num_unit`/`num_relation` 0: sized from the vocabulary).
    pub model: GlycanAAConfig,
    /// Which graph it reads: `official` (GlycanML's glycoword vocabulary, what official weights
    /// need) or `molecule` (the true molecule: every heavy atom, substituents included).
    #[serde(default)]
    pub featurisation: Featurisation,
    /// Masking rates.
    #[serde(default)]
    pub masking: MaskingConfig,
    /// Training settings.
    pub train: TrainConfig,
}

/// Structure files and how they are split (by file, or by glycan for `glycan_mobility`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureData {
    /// Structure files or directories (relative to the config file).
    pub structures: Vec<PathBuf>,
    /// Fraction of structure groups held out for validation (random, by the training seed).
    #[serde(default = "d_valid")]
    pub valid_fraction: f64,
    /// Fraction held out for testing (tasks only).
    #[serde(default = "d_valid")]
    pub test_fraction: f64,
    /// Residues per window (tasks; pretraining objectives use their masking's window).
    #[serde(default = "d_window")]
    pub window: usize,
}

impl StructureData {
    /// The structure paths, relative to the config file.
    pub fn paths(&self, config_path: &Path) -> Vec<PathBuf> {
        self.structures.iter().map(|p| resolve(config_path, p)).collect()
    }
}

/// An ESM-AA pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsmAaRun {
    /// Input structures (windows are split, `valid_fraction` of them held out; at least one).
    pub data: StructureData,
    /// The model (Hugging Face ESM fields; `pair_bias` must be true).
    pub model: EsmConfig,
    /// Masking, unzipping and window size.
    #[serde(default)]
    pub masking: EsmAaMasking,
    /// Training settings.
    pub train: TrainConfig,
}

/// A Vabs-Net SMPC pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmpcRun {
    /// Input structures (files are split).
    pub data: StructureData,
    /// The encoder.
    pub model: VabsConfig,
    /// Span masking.
    #[serde(default)]
    pub masking: SpanMasking,
    /// Optional language model for per-residue features (an ESM package directory, relative to
    /// the config file, or a hub id); sets `lm_dim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<String>,
    /// Training settings.
    pub train: TrainConfig,
}

fn pretraining_spec<'a>(
    run_dir: &'a Path,
    train: &'a TrainConfig,
    vars: aa_pretrain::run::Named,
    metadata: Value,
) -> RunSpec<'a> {
    RunSpec {
        run_dir,
        train,
        vars,
        head_prefix: None,
        encoder_lr_scale: 1.0,
        selection: Selection { metric: "loss".into(), higher_is_better: false },
        metadata,
    }
}

/// PreGlycanAA on a glycan file, in the official or the true-molecule featurisation.
pub(super) fn preglycanaa(config_path: &Path, cfg: &PreGlycanAARun, run_dir: &Path) -> Result<Value> {
    let mut cfg = cfg.clone();
    if !(0.0..1.0).contains(&cfg.data.valid_fraction) {
        bail!("data.valid_fraction must be in [0, 1)");
    }
    let mut glycans = read_glycan_file(&resolve(config_path, &cfg.data.glycans), cfg.data.column.as_deref())?;
    if cfg.featurisation == Featurisation::Molecule {
        return preglycanaa_molecules(cfg, glycans, run_dir);
    }
    // The vocabulary comes from the whole file, so `limit` does not change the model's shape.
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &glycans, cfg.data.vocab_links);
    if let Some(n) = cfg.data.limit {
        glycans.truncate(n);
    }
    cfg.model.sized_for(&vocab)?;
    let started = std::time::Instant::now();
    let featurised: Vec<_> = glycans.par_iter().map(|g| featurize(g, &vocab)).collect();
    let failed = featurised.iter().filter(|r| r.is_err()).count();
    let items: Vec<_> = featurised.into_iter().filter_map(|r| r.ok()).collect();
    eprintln!(
        "{} glycans featurised in {:.1} s ({failed} outside the official vocabulary skipped)",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    let n_valid = (items.len() as f64 * cfg.data.valid_fraction).round() as usize;
    let [train, valid, _] = split_counts(items, cfg.train.seed, n_valid, 0);
    // Initial weights from the training seed (candle's CPU RNG cannot be seeded).
    let store = aa_pretrain::init::SeededVarMap::new(cfg.train.seed);
    let model =
        PreGlycanAA::new(store.var_builder(DType::F32, &Device::Cpu), &cfg.model, vocab.clone(), cfg.masking.clone())?;
    let encoder = json!({ "family": "glycanaa", "model": cfg.model, "featurisation": "official", "vocab": vocab });
    let metadata =
        json!({ "objective": "preglycanaa", "config": cfg, "vocab": vocab, "encoder": encoder, "task": "PreGlycanAA" });
    let counts = json!({ "train_glycans": train.len(), "valid_glycans": valid.len(), "skipped_glycans": failed });
    let t = std::time::Instant::now();
    let report = fit(pretraining_spec(run_dir, &cfg.train, store.all(), metadata), &model, &train, &valid)?;
    Ok(write_summary(run_dir, &report, counts, t.elapsed().as_secs_f64(), "glycans")?)
}

/// PreGlycanAA on true molecules ([`glycan_aa::model::molecule_compat`]): glycans the molecule
/// builder cannot build are skipped and counted.
fn preglycanaa_molecules(mut cfg: PreGlycanAARun, mut glycans: Vec<String>, run_dir: &Path) -> Result<Value> {
    let family = GlycanAAFamilyConfig { model: cfg.model.clone(), featurisation: Featurisation::Molecule, vocab: None };
    cfg.model = family.complete()?.model;
    if let Some(n) = cfg.data.limit {
        glycans.truncate(n);
    }
    let started = std::time::Instant::now();
    let built: Vec<_> = glycans
        .par_iter()
        .map(|g| glycan_aa::Glycan::parse(g).map(|g| molecule_compat(&g.molecule.graph, None)))
        .collect();
    let failed = built.iter().filter(|r| r.is_err()).count();
    let items: Vec<_> = built.into_iter().filter_map(|r| r.ok()).collect();
    eprintln!(
        "{} glycans built as molecules in {:.1} s ({failed} the molecule builder cannot build skipped)",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    if items.is_empty() {
        bail!("no glycan of the file could be built as a molecule");
    }
    let n_valid = (items.len() as f64 * cfg.data.valid_fraction).round() as usize;
    let [train, valid, _] = split_counts(items, cfg.train.seed, n_valid, 0);
    let store = aa_pretrain::init::SeededVarMap::new(cfg.train.seed);
    let model =
        PreGlycanAA::on_molecules(store.var_builder(DType::F32, &Device::Cpu), &cfg.model, cfg.masking.clone())?;
    let encoder = json!({ "family": "glycanaa", "model": cfg.model, "featurisation": "molecule" });
    let metadata = json!({ "objective": "preglycanaa", "config": cfg, "encoder": encoder, "task": "PreGlycanAA" });
    let counts = json!({ "train_glycans": train.len(), "valid_glycans": valid.len(), "skipped_glycans": failed });
    let t = std::time::Instant::now();
    let report = fit(pretraining_spec(run_dir, &cfg.train, store.all(), metadata), &model, &train, &valid)?;
    Ok(write_summary(run_dir, &report, counts, t.elapsed().as_secs_f64(), "glycans")?)
}

/// ESM-AA on residue windows of structure files.
pub(super) fn esm_aa(config_path: &Path, cfg: &EsmAaRun, run_dir: &Path) -> Result<Value> {
    let structures = read_structures(&cfg.data.paths(config_path), false)?;
    let n_files = structures.len();
    let items: Vec<_> =
        structures.into_iter().flat_map(|(_, s)| residue_windows(Arc::new(s.graph), cfg.masking.window)).collect();
    let n_valid =
        ((items.len() as f64 * cfg.data.valid_fraction).round() as usize).max(1).min(items.len().saturating_sub(1));
    let [train, valid, _] = split_counts(items, cfg.train.seed, n_valid, 0);
    eprintln!("{n_files} structure files: {} training and {} validation windows", train.len(), valid.len());
    let store = aa_pretrain::init::SeededVarMap::new(cfg.train.seed);
    let model = aa_codeswitch::Esm::load(store.var_builder(DType::F32, &Device::Cpu), &cfg.model)?;
    let objective = EsmAaPretrain::new(model, Alphabet::esm_aa(), cfg.masking.clone())?;
    let counts = json!({ "train_windows": train.len(), "valid_windows": valid.len(), "structure_files": n_files });
    let encoder = json!({ "family": "esm", "model": cfg.model });
    let metadata = json!({ "objective": "esm_aa", "config": cfg, "encoder": encoder, "task": "ESM-AA" });
    let t = std::time::Instant::now();
    let report = fit(pretraining_spec(run_dir, &cfg.train, store.all(), metadata), &objective, &train, &valid)?;
    Ok(write_summary(run_dir, &report, counts, t.elapsed().as_secs_f64(), "windows")?)
}

/// Vabs-Net SMPC on residue windows of structure files (split by file).
pub(super) fn smpc(config_path: &Path, cfg: &SmpcRun, run_dir: &Path) -> Result<Value> {
    let mut encoder = json!({ "model": cfg.model });
    if let Some(lm) = &cfg.lm {
        encoder["lm"] = Value::String(lm.clone());
    }
    resolve_lm(config_path, &mut encoder);
    // The language model is loaded (and lm_dim checked) before any structure is read.
    let fam = serde_json::from_value::<VabsFamilyConfig>(encoder)?.complete()?;
    let lm = fam.lm.as_deref().map(crate::families::vabs::load_lm).transpose()?;
    let structures = read_structures(&cfg.data.paths(config_path), true)?;
    let n_files = structures.len();
    let [train, valid, _] = split_fractions(structures, cfg.train.seed, cfg.data.valid_fraction, 0.0);
    let windows = |s: Vec<(PathBuf, protein_aa::Structure)>| -> Vec<_> {
        s.into_iter().flat_map(|(_, s)| residue_windows(Arc::new(s.graph), cfg.masking.window)).collect()
    };
    let (train, valid) = (windows(train), windows(valid));
    if train.is_empty() || valid.is_empty() {
        bail!("need residue windows for training and validation");
    }
    eprintln!("{n_files} structure files: {} training and {} validation windows", train.len(), valid.len());
    let store = aa_pretrain::init::SeededVarMap::new(cfg.train.seed);
    let vb = store.var_builder(DType::F32, &Device::Cpu);
    let mut objective = VabsSmpc::new(Vabs::new(vb.clone(), fam.allatom()?)?, vb, cfg.masking.clone())?;
    objective.lm = lm;
    let counts = json!({ "train_windows": train.len(), "valid_windows": valid.len(), "structure_files": n_files });
    let mut encoder = serde_json::to_value(&fam)?;
    encoder["family"] = json!("vabs");
    let metadata = json!({ "objective": "vabs_smpc", "config": cfg, "encoder": encoder, "task": "Vabs-Net SMPC" });
    let t = std::time::Instant::now();
    let report = fit(pretraining_spec(run_dir, &cfg.train, store.all(), metadata), &objective, &train, &valid)?;
    Ok(write_summary(run_dir, &report, counts, t.elapsed().as_secs_f64(), "windows")?)
}
