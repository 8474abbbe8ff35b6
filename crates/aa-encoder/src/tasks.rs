//! Tasks generic over the [`Encoder`](crate::Encoder) interface, as objectives of the shared
//! trainer (`aa_pretrain::trainer::Objective`):
//! - [`GraphTask`]: one or more label columns per window (glycosylation type, the taxonomy
//!   levels jointly), through a [`Readout`](crate::Readout) and an [`Mlp2`](crate::heads::Mlp2) head;
//! - [`UnitTask`]: one optional label per window unit (DSSP secondary structure, ligand
//!   contacts, monosaccharide mobility), through a [`ClsHead`](crate::heads::ClsHead);
//! - [`PairTask`]: one value per (window, partner) pair against fixed partner embeddings
//!   (protein–glycan interaction), through an [`Mlp2`](crate::heads::Mlp2) head.
//!
//! Labels come from the modality crates; the tasks know only windows and label indices.

mod graph;
mod pair;
mod unit;

pub use graph::{GraphItem, GraphTask, Target};
pub use pair::{PairBatch, PairItem, PairTask};
pub use unit::{LabelledWindow, UnitTask};

fn metric_error(e: aa_pretrain::metrics::MetricError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}
