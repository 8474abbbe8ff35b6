//! A window of a graph: some of its units, in a chosen order — the item every encoder reads.

use std::sync::Arc;

use crate::HeteroGraph;

/// Some units of a graph, in order: consecutive residues of a chain, every monosaccharide of a
/// glycan, or every unit of a structure. The graph is shared, so many windows of one structure
/// cost one copy of it. Encoders return one row per window unit, window after window.
#[derive(Clone, Debug)]
pub struct Window {
    /// The whole graph.
    pub graph: Arc<HeteroGraph>,
    /// Unit indices into `graph.units`, in the window's order.
    pub units: Vec<u32>,
}

impl Window {
    /// Every unit of `graph`, in its order.
    pub fn whole(graph: Arc<HeteroGraph>) -> Window {
        let units = (0..graph.num_units() as u32).collect();
        Window { graph, units }
    }

    /// Whether the window covers every unit of its graph in the graph's order.
    pub fn is_whole(&self) -> bool {
        self.units.len() == self.graph.num_units() && self.units.iter().enumerate().all(|(i, &u)| i as u32 == u)
    }
}
