//! Vabs-Net as the official code computes it (Heisenburger2020/Vabs-Net @ 11db7ad, the released
//! binding-site configuration): the mode for reproducing the paper and for loading official
//! weights. The all-atom variant ([`crate::Vabs`]: sugars and ligands as units, larger
//! vocabularies, residue-number offsets) stays the default for glycans and complexes; what differs
//! is listed in `OFFICIAL.md` §6 and the crate README.
//!
//! Two levels, each usable alone:
//! - [`OfficialVabs::forward`] — the model from the official tensor inputs ([`OfficialInputs`]:
//!   atom positions, atom37 type, residue type and residue row per atom, the residue-track mask,
//!   both edge lists as `(destination, source)`, both 180-wide direction-feature matrices and the
//!   per-residue language-model rows), returning every stage ([`OfficialOutput`]);
//! - [`featurize`] — from atom37 residues ([`Atom37Residues`], which `protein-aa` reads from a
//!   structure file) to those inputs, as the official data pipeline (`PocketDataset`) builds
//!   them: residues without CA dropped, centred on the CA centroid, kNN with the node itself
//!   counted, the virtual node at the origin with its two edge blocks and no self loop,
//!   direction features in f64.
//!
//! Parameter names are the official state-dict keys (`OFFICIAL.md` §3), so a unicore checkpoint's
//! `model` dictionary loads as it is.

mod inputs;
mod model;

pub use inputs::{featurize, Atom37Residues, FeaturizeOptions, LmRows, OfficialInputs, Residue37};
pub use model::{OfficialConfig, OfficialOutput, OfficialVabs};

/// Atom vocabulary: the 37 atom37 slots, then the masked atom, the virtual node and the
/// pretraining "virtual point" (`37 + 3`).
pub const ATOM_TYPES: usize = 40;
/// Residue vocabulary: 20 amino acids (`ARNDCQEGHILKMFPSTWYV`), unknown, padding, masked, the
/// virtual node and the pretraining "virtual point" (`21 + 4`).
pub const RESIDUE_TYPES: usize = 25;
/// Atom type of a masked residue's atoms (fine-tuning augmentation).
pub const MASK_ATOM: u32 = 37;
/// Atom type of the virtual node.
pub const VIRTUAL_ATOM: u32 = 38;
/// Residue type of residues outside the 20 amino acids.
pub const UNKNOWN_RESIDUE: u32 = 20;
/// Residue type of a masked residue.
pub const MASK_RESIDUE: u32 = 22;
/// Residue type of the virtual node (its edges take the ±1200 offset tables).
pub const VIRTUAL_RESIDUE: u32 = 23;
/// Width of one direction-feature row: 90 absolute + 90 relative values.
pub const DIRECTION_WIDTH: usize = 2 * crate::features::DIRECTION_DIM;
/// Both pair-type tables are indexed `type(dst) · 40 + type(src)` — the residue table too (the
/// official code builds it with the atom-type count).
pub const PAIR_MULTIPLIER: u32 = ATOM_TYPES as u32;
/// Sequence offsets of ordinary edges are clamped to ±256 (`*_positional_edge`, 513 rows).
pub const OFFSET_CLAMP: i64 = 256;
/// Sequence offsets of edges touching the virtual node are clamped to ±1200
/// (`*_v_positional_edge`, 2401 rows).
pub const VIRTUAL_OFFSET_CLAMP: i64 = 1200;
