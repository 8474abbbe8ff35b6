#![warn(missing_docs)]
//! # allatom
//!
//! The library a user of the workspace depends on: every encoder family behind the one
//! interface of `aa-encoder`, chosen by the `family` field of a configuration
//! ([`families`]); one package format and loader for all of them ([`Model::from_pretrained`]:
//! the built-in default, a directory, a hub id); inputs as windows of the shared graph
//! ([`inputs`]); and the runs — pretraining objectives and graph- and unit-level tasks for any
//! encoder — on the shared trainer ([`runs`]). The CLI and the Python bindings only parse
//! arguments and move files around this crate.
//!
//! ```
//! use allatom::Model;
//! let model = Model::builtin().unwrap();
//! let w = model.glycan_window("Neu5Ac(a2-3)Gal(b1-4)GlcNAc").unwrap();
//! let out = model.encoder.encode(&[&w], false).unwrap();
//! let graph = model.encoder.readout().forward(&out, false).unwrap();
//! assert_eq!(graph.dims(), &[1, 2 * model.encoder.unit_dim()]);
//! assert_eq!(out.units.dims(), &[3, model.encoder.unit_dim()]);
//! ```

pub mod attention;
pub mod compare;
pub mod embed;
pub mod export;
pub mod families;
pub mod inputs;
pub mod output;
pub mod package;
pub mod runs;
pub mod torch;
pub mod vabs_official;

pub use aa_encoder::{
    check_pairing, tasks, AtomRows, DataTraits, Encoder, EncoderOutput, Featurized, LayerStates, MeanMax, PoolNodes,
    Readout, Requirements, Window,
};
pub use package::{write_package, Model, DEFAULT_MODEL, MOLECULE_MODEL};

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
