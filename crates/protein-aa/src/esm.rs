//! ESM-2 / ESM-AA models from a directory or the Hugging Face Hub.

use aa_codeswitch::{EsmPackage, CONFIG_FILE, TOKENIZER_FILE, VOCAB_FILE, WEIGHTS_FILE};
use aa_pretrain::hub::{resolve, HubError, HubOptions};

/// Errors of [`from_pretrained`].
#[derive(Debug, thiserror::Error)]
pub enum EsmLoadError {
    /// Resolving or downloading the files failed.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The files are not a valid ESM model.
    #[error(transparent)]
    Model(#[from] aa_codeswitch::CodeSwitchError),
}

/// Loads an ESM-2 / ESM-AA model: `name` is a directory or a hub repository id
/// (`owner/name[@revision]`, e.g. `facebook/esm2_t6_8M_UR50D`) holding `config.json`,
/// `model.safetensors` and `tokenizer.json` or `vocab.txt` (Hugging Face ESM repositories have
/// the latter). Downloads go to the `huggingface_hub` cache and are checked against the hub's
/// checksums.
pub fn from_pretrained(name: &str, opts: &HubOptions) -> Result<EsmPackage, EsmLoadError> {
    let dir = resolve(name, &[CONFIG_FILE, WEIGHTS_FILE], opts)?;
    if !dir.join(TOKENIZER_FILE).is_file() && !dir.join(VOCAB_FILE).is_file() {
        // A repository has one of the two: try tokenizer.json, then vocab.txt; without either
        // the built-in alphabet of the vocabulary size is used.
        if resolve(name, &[TOKENIZER_FILE], opts).is_err() {
            let _ = resolve(name, &[VOCAB_FILE], opts);
        }
    }
    Ok(EsmPackage::from_dir(&dir, &candle_core::Device::Cpu)?)
}
