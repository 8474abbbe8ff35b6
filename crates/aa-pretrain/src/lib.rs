#![warn(missing_docs)]
//! # aa-pretrain
//!
//! The one training framework of allatom, shared by every encoder family: the optimiser
//! (AdamW with parameter groups), learning-rate schedules, the trainer, checkpoints, metrics
//! and masking strategies, and model files from a directory or the Hugging Face Hub.

pub mod checkpoint;
pub mod hub;
pub mod init;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod trainer;

pub use optim::{AdamW, AdamWConfig, ParamGroup};

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
