//! Compressed sparse row neighbour lists, the layout every message-passing kernel reads.

use serde::{Deserialize, Serialize};

/// Neighbour lists in CSR form: the neighbours of node `i` are
/// `targets[offsets[i]..offsets[i + 1]]`, and `edges` holds the id of the edge each entry
/// came from (bond index, link index, atom index — the builder says which).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Csr {
    /// Row offsets, `num_nodes + 1` entries.
    pub offsets: Vec<u32>,
    /// Neighbour (column) indices.
    pub targets: Vec<u32>,
    /// Edge id per entry.
    pub edges: Vec<u32>,
}

impl Csr {
    /// Builds from directed `(source, target, edge id)` triples. Entries of a row keep their
    /// input order (a stable counting sort), so results are deterministic.
    pub fn from_directed(num_nodes: usize, triples: impl IntoIterator<Item = (u32, u32, u32)>) -> Csr {
        let triples: Vec<(u32, u32, u32)> = triples.into_iter().collect();
        let mut offsets = vec![0u32; num_nodes + 1];
        for &(s, _, _) in &triples {
            offsets[s as usize + 1] += 1;
        }
        for i in 0..num_nodes {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0u32; triples.len()];
        let mut edges = vec![0u32; triples.len()];
        for &(s, t, e) in &triples {
            let k = fill[s as usize] as usize;
            targets[k] = t;
            edges[k] = e;
            fill[s as usize] += 1;
        }
        Csr { offsets, targets, edges }
    }

    /// Builds symmetric lists from undirected pairs; edge id = position in the input.
    pub fn from_undirected(num_nodes: usize, pairs: impl IntoIterator<Item = (u32, u32)>) -> Csr {
        let with_ids: Vec<(u32, u32, u32)> =
            pairs.into_iter().enumerate().map(|(i, (a, b))| (a, b, i as u32)).collect();
        Csr::from_undirected_with_ids(num_nodes, with_ids)
    }

    /// Builds symmetric lists from undirected `(a, b, edge id)` triples.
    pub fn from_undirected_with_ids(num_nodes: usize, triples: Vec<(u32, u32, u32)>) -> Csr {
        Csr::from_directed(num_nodes, triples.iter().flat_map(|&(a, b, e)| [(a, b, e), (b, a, e)]))
    }

    /// Number of rows.
    pub fn num_nodes(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Number of stored entries.
    pub fn num_entries(&self) -> usize {
        self.targets.len()
    }

    /// Neighbours of node `i`.
    pub fn neighbors(&self, i: usize) -> &[u32] {
        &self.targets[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Edge ids of node `i`'s entries.
    pub fn edge_ids(&self, i: usize) -> &[u32] {
        &self.edges[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Degree of node `i`.
    pub fn degree(&self, i: usize) -> usize {
        (self.offsets[i + 1] - self.offsets[i]) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_rows_and_symmetry() {
        let c = Csr::from_undirected(4, [(0, 1), (1, 2), (0, 3)]);
        assert_eq!(c.neighbors(0), &[1, 3]);
        assert_eq!(c.neighbors(1), &[0, 2]);
        assert_eq!(c.neighbors(2), &[1]);
        assert_eq!(c.edge_ids(0), &[0, 2]);
        assert_eq!(c.degree(3), 1);
        assert_eq!(c.num_entries(), 6);
        let d = Csr::from_directed(3, [(2, 0, 7), (0, 1, 8)]);
        assert_eq!(d.neighbors(2), &[0]);
        assert_eq!(d.edge_ids(2), &[7]);
        assert!(d.neighbors(1).is_empty());
    }
}
