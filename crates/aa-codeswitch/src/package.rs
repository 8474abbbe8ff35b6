//! A model directory: `config.json` (Hugging Face ESM field names), `model.safetensors`
//! (fair-esm or Hugging Face tensor names) and `tokenizer.json` or `vocab.txt`.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::{canonical_tensors, Alphabet, CodeSwitchError, Esm, EsmConfig};

/// Config file name.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Vocabulary file name of the Hugging Face ESM repositories.
pub const VOCAB_FILE: &str = "vocab.txt";

/// A loaded model with its alphabet and tokenizer.
pub struct EsmPackage {
    /// The model.
    pub model: Esm,
    /// Its alphabet.
    pub alphabet: Alphabet,
    /// Its tokenizer.
    pub tokenizer: tokenizers::Tokenizer,
}

fn file_error(path: &Path, message: impl Into<String>) -> CodeSwitchError {
    CodeSwitchError::File { path: path.display().to_string(), message: message.into() }
}

impl EsmPackage {
    /// Reads a model directory. The alphabet comes from `tokenizer.json`, else `vocab.txt`,
    /// else the built-in ESM-2/ESM-AA alphabet of the config's vocabulary size.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<EsmPackage, CodeSwitchError> {
        let cfg_path = dir.join(CONFIG_FILE);
        let text =
            std::fs::read_to_string(&cfg_path).map_err(|e| file_error(&cfg_path, format!("cannot read: {e}")))?;
        let cfg: EsmConfig =
            serde_json::from_str(&text).map_err(|e| file_error(&cfg_path, format!("not an ESM config: {e}")))?;
        let alphabet = if dir.join(TOKENIZER_FILE).is_file() {
            let p = dir.join(TOKENIZER_FILE);
            let t = std::fs::read_to_string(&p).map_err(|e| file_error(&p, format!("cannot read: {e}")))?;
            Alphabet::from_tokenizer_json(&t).map_err(|e| file_error(&p, e.to_string()))?
        } else if dir.join(VOCAB_FILE).is_file() {
            let p = dir.join(VOCAB_FILE);
            let t = std::fs::read_to_string(&p).map_err(|e| file_error(&p, format!("cannot read: {e}")))?;
            Alphabet::from_vocab_txt(&t).map_err(|e| file_error(&p, e.to_string()))?
        } else if cfg.vocab_size == 59 {
            Alphabet::esm_aa()
        } else if cfg.vocab_size == 33 {
            Alphabet::esm2()
        } else {
            return Err(file_error(
                dir,
                format!(
                    "no {TOKENIZER_FILE} or {VOCAB_FILE}, and vocab_size {} is neither ESM-2's nor ESM-AA's",
                    cfg.vocab_size
                ),
            ));
        };
        if alphabet.len() != cfg.vocab_size {
            return Err(file_error(
                &cfg_path,
                format!("vocab_size {} but the tokenizer has {} tokens", cfg.vocab_size, alphabet.len()),
            ));
        }
        let w = dir.join(WEIGHTS_FILE);
        let tensors =
            candle_core::safetensors::load(&w, device).map_err(|e| file_error(&w, format!("cannot read: {e}")))?;
        let tensors = canonical_tensors(tensors);
        let vb = VarBuilder::from_tensors(
            tensors.into_iter().map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap_or(v))).collect(),
            DType::F32,
            device,
        );
        let model = Esm::load(vb, &cfg).map_err(|e| file_error(&w, e.to_string()))?;
        let tokenizer = alphabet.tokenizer()?;
        Ok(EsmPackage { model, alphabet, tokenizer })
    }
}
