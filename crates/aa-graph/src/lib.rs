#![warn(missing_docs)]
//! # aa-graph
//!
//! The one graph type of allatom: a heterogeneous all-atom graph in which heavy atoms are
//! grouped into *units* (monosaccharides, amino-acid residues, other groups) and connected by
//! typed edges — covalent bonds between atoms, atom→unit membership, and unit↔unit links
//! (glycosidic, peptide, …). Every encoder in the workspace consumes this graph; every front end
//! produces it.
//!
//! ```
//! use aa_graph::{Atom, Bond, BondOrder, Element, HeteroGraph, Unit, UnitKind, Batch};
//!
//! // Methanol as a one-unit graph.
//! let g = HeteroGraph {
//!     atoms: vec![
//!         Atom { element: Element::C, formal_charge: 0, aromatic: false, implicit_h: 3, name: "C1".into(), unit: 0 },
//!         Atom { element: Element::O, formal_charge: 0, aromatic: false, implicit_h: 1, name: "O1".into(), unit: 0 },
//!     ],
//!     units: vec![Unit { kind: UnitKind::Other, type_id: 0, name: "MOH".into(), anchor: Some(0), label: None }],
//!     bonds: vec![Bond { a: 0, b: 1, order: BondOrder::Single }],
//!     ..Default::default()
//! };
//! assert_eq!(g.formula(), "CH4O");
//! let batch = Batch::collate(&[g.clone(), g.clone()]);
//! assert_eq!(batch.graph.num_atoms(), 4);
//! assert_eq!(batch.unbatch()[1], g);
//! ```

mod batch;
mod csr;
pub mod dense;
mod element;
mod graph;
pub mod kernels;
pub mod linear;
pub mod moe;
pub mod neighbors;
pub mod norm;
pub mod scan;
mod window;

pub use batch::Batch;
pub use csr::Csr;
pub use element::Element;
pub use graph::{
    hill_formula, Anomer, Atom, Bond, BondOrder, HeteroGraph, Level, ResidueLabel, SpatialKind, SpatialRelation, Unit,
    UnitKind, UnitLink, UnitLinkKind,
};
pub use window::Window;

/// Helpers shared by the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::Tensor;

    /// Largest absolute difference between two tensors of one shape.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }
}

/// Errors raised when a graph is inconsistent or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// An index points outside the graph.
    #[error("invalid graph: {0}")]
    Index(String),
    /// JSON could not be parsed into a graph.
    #[error("invalid graph JSON: {0}")]
    Json(String),
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
