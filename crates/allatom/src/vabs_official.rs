//! The official-compatible Vabs-Net as two checkable steps on files (`allatom vabs-official`):
//! a structure file → the official model inputs (safetensors under the official argument
//! names), and official inputs + an official-mode package → every stage of the forward pass.
//! Anyone holding tensors from the official code can compare either step on its own.

use std::collections::HashMap;
use std::path::Path;

use aa_sparse_attn::official::{featurize, FeaturizeOptions, OfficialConfig, OfficialInputs, OfficialVabs};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::families::split_config;
use crate::families::vabs::VabsFamilyConfig;

fn save(tensors: &HashMap<String, Tensor>, out: &Path) -> Result<()> {
    let bytes = safetensors::tensor::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .with_context(|| format!("{}: serialising", out.display()))?;
    Ok(aa_pretrain::checkpoint::write_set(&[(out, &bytes)])?)
}

/// Featurises chain `chain` (the first chain when `None`) of a structure file as the official
/// pipeline does ([`featurize`], no random rigid motion, no language-model rows: add an
/// `esm_feat` tensor for a model that takes them) and writes the inputs to `out`. Returns the
/// inputs.
pub fn featurize_file(path: &Path, chain: Option<&str>, opts: &FeaturizeOptions, out: &Path) -> Result<OfficialInputs> {
    let residues = protein_aa::vabs_official::read_atom37(path, chain)?;
    let x = featurize(&residues, opts).with_context(|| path.display().to_string())?;
    save(&x.to_tensors()?, out)?;
    Ok(x)
}

/// The official-mode configuration and model of a package directory (`{"family": "vabs",
/// "official": {…}}`), without its language model: inputs carry their own `esm_feat`.
pub fn official_model(dir: &Path) -> Result<(OfficialConfig, OfficialVabs)> {
    let config_path = dir.join(crate::package::CONFIG_FILE);
    let text =
        std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config_path.display()))?;
    let (family, part) = split_config(&config)?;
    if family.name() != "vabs" {
        bail!("{}: a {} package, not Vabs-Net", dir.display(), family.name());
    }
    let cfg: VabsFamilyConfig = serde_json::from_value(part).with_context(|| config_path.display().to_string())?;
    let Some(official) = cfg.official else {
        bail!(
            "{}: an all-atom Vabs-Net package (`model`), not the official-compatible mode (`official`)",
            dir.display()
        );
    };
    let weights = dir.join(crate::package::WEIGHTS_FILE);
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .with_context(|| format!("cannot read {}", weights.display()))?;
    let f32s = tensors.into_iter().map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?))).collect::<Result<HashMap<_, _>>>()?;
    let model = OfficialVabs::new(candle_nn::VarBuilder::from_tensors(f32s, DType::F32, &Device::Cpu), &official)
        .with_context(|| format!("{}: weights do not fit the configuration", dir.display()))?;
    Ok((official, model))
}

/// Runs the official-mode package `model_dir` on the inputs in `inputs` (the layout of
/// [`OfficialInputs::to_tensors`]) and writes every stage ([`aa_sparse_attn::official::OfficialOutput::stages`])
/// to `out`. Returns the stage names and shapes.
pub fn forward_file(model_dir: &Path, inputs: &Path, out: &Path) -> Result<Vec<(String, Vec<usize>)>> {
    let (_, model) = official_model(model_dir)?;
    let t = candle_core::safetensors::load(inputs, &Device::Cpu)
        .with_context(|| format!("cannot read {} as safetensors", inputs.display()))?;
    let x = OfficialInputs::from_tensors(&t).map_err(|e| anyhow::anyhow!("{}: {e}", inputs.display()))?;
    let stages = model.forward(&x, false)?.stages();
    save(&stages, out)?;
    let mut shapes: Vec<(String, Vec<usize>)> = stages.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect();
    shapes.sort();
    Ok(shapes)
}
