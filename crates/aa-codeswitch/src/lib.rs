#![warn(missing_docs)]
//! # aa-codeswitch
//!
//! ESM-AA (Zheng et al., "ESM All-Atom: Multi-scale Protein Language Model for Unified
//! Molecular Modeling", ICML 2024) and the ESM-2 model it extends, on allatom graphs.
//!
//! - [`Alphabet`]: the official ESM-2 (33) and ESM-AA (59) vocabularies and their
//!   `tokenizers` tokenizer (`tokenizer.json`).
//! - [`CodeSwitchSequence`]: residues of a graph with chosen residues "unzipped" into atom
//!   tokens, multi-scale positions, and atom-pair distances and edge types;
//!   [`CodeSwitchBatch`] pads them into tensors.
//! - [`Esm`]: the model (ESM-2 blocks, ESM-AA pair bias, LM, contact and distance heads), with
//!   fair-esm parameter names and Hugging Face `EsmForMaskedLM` names mapped on load
//!   ([`canonical_tensors`]); [`EsmPackage`] reads a model directory.

mod fused;
mod model;
mod package;
mod sequence;
mod vocab;

pub use model::{canonical_name, canonical_tensors, Esm, EsmConfig, EsmOutput, EsmRequest};
pub use package::{EsmPackage, CONFIG_FILE, TOKENIZER_FILE, VOCAB_FILE, WEIGHTS_FILE};
pub use sequence::{one_letter, CodeSwitchBatch, CodeSwitchSequence, PairInput, Unzip};
pub use vocab::{Alphabet, ATOM_TOKENS, RESIDUE_TOKENS};

/// Errors of this crate: what is wrong and, where it helps, where.
#[derive(Debug, thiserror::Error)]
pub enum CodeSwitchError {
    /// A vocabulary or tokenizer problem.
    #[error("vocabulary: {0}")]
    Vocabulary(String),
    /// A bad model configuration.
    #[error("model config: {0}")]
    Config(String),
    /// Bad input (graph, sequence, batch).
    #[error("input: {0}")]
    Input(String),
    /// A model file problem (missing, unreadable, wrong shapes).
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
