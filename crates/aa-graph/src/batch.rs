//! Collating many graphs into one disjoint-union graph, and splitting results back.

use serde::{Deserialize, Serialize};

use crate::csr::Csr;
use crate::graph::{HeteroGraph, Level, SpatialRelation};

/// Many graphs collated into one: node and edge indices are shifted by per-graph offsets, and
/// every atom and unit knows which graph it came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The disjoint union of the input graphs.
    pub graph: HeteroGraph,
    /// `atom_offsets[g]..atom_offsets[g + 1]` are graph `g`'s atoms (`num_graphs + 1` entries).
    pub atom_offsets: Vec<u32>,
    /// Unit ranges per graph.
    pub unit_offsets: Vec<u32>,
    /// Bond ranges per graph.
    pub bond_offsets: Vec<u32>,
    /// Unit-link ranges per graph.
    pub link_offsets: Vec<u32>,
    /// Graph index of every atom.
    pub atom_graph: Vec<u32>,
    /// Graph index of every unit.
    pub unit_graph: Vec<u32>,
}

impl Batch {
    /// Collates graphs. Positions are kept only if every graph has them.
    pub fn collate(graphs: &[HeteroGraph]) -> Batch {
        let mut b = Batch {
            atom_offsets: vec![0],
            unit_offsets: vec![0],
            bond_offsets: vec![0],
            link_offsets: vec![0],
            ..Default::default()
        };
        let all_pos = !graphs.is_empty() && graphs.iter().all(|g| g.positions.is_some());
        let mut positions = Vec::new();
        let out = &mut b.graph;
        for (gi, g) in graphs.iter().enumerate() {
            let ao = out.atoms.len() as u32;
            let uo = out.units.len() as u32;
            out.atoms.extend(g.atoms.iter().map(|a| {
                let mut a = a.clone();
                a.unit += uo;
                a
            }));
            out.units.extend(g.units.iter().map(|u| {
                let mut u = u.clone();
                u.anchor = u.anchor.map(|x| x + ao);
                u
            }));
            out.bonds.extend(g.bonds.iter().map(|x| {
                let mut x = *x;
                x.a += ao;
                x.b += ao;
                x
            }));
            out.unit_links.extend(g.unit_links.iter().map(|l| {
                let mut l = l.clone();
                l.src += uo;
                l.dst += uo;
                l
            }));
            if all_pos {
                positions.extend_from_slice(g.positions.as_ref().unwrap());
            }
            b.atom_graph.extend(std::iter::repeat(gi as u32).take(g.atoms.len()));
            b.unit_graph.extend(std::iter::repeat(gi as u32).take(g.units.len()));
            b.atom_offsets.push(out.atoms.len() as u32);
            b.unit_offsets.push(out.units.len() as u32);
            b.bond_offsets.push(out.bonds.len() as u32);
            b.link_offsets.push(out.unit_links.len() as u32);
        }
        if all_pos {
            out.positions = Some(positions);
        }
        // Spatial relations are kept when every graph has the same list (same levels and kinds,
        // same order); each relation's rows are concatenated with node offsets.
        let same = !graphs.is_empty()
            && graphs.iter().all(|g| {
                g.spatial.len() == graphs[0].spatial.len()
                    && g.spatial.iter().zip(&graphs[0].spatial).all(|(a, b)| a.level == b.level && a.kind == b.kind)
            });
        if same {
            for (r, first) in graphs[0].spatial.iter().enumerate() {
                let offsets = if first.level == Level::Atom { &b.atom_offsets } else { &b.unit_offsets };
                let mut csr = Csr { offsets: vec![0], targets: Vec::new(), edges: Vec::new() };
                for (gi, g) in graphs.iter().enumerate() {
                    let n = &g.spatial[r].neighbors;
                    let base = csr.targets.len() as u32;
                    csr.offsets.extend(n.offsets[1..].iter().map(|o| o + base));
                    csr.targets.extend(n.targets.iter().map(|t| t + offsets[gi]));
                    csr.edges.extend_from_slice(&n.edges);
                }
                b.graph.spatial.push(SpatialRelation { level: first.level, kind: first.kind, neighbors: csr });
            }
        }
        b
    }

    /// Number of graphs in the batch.
    pub fn num_graphs(&self) -> usize {
        self.atom_offsets.len().saturating_sub(1)
    }

    /// Splits per-atom rows (`width` values per atom, row-major) into one slice per graph.
    pub fn split_atom_rows<'a, T>(&self, rows: &'a [T], width: usize) -> Vec<&'a [T]> {
        split(&self.atom_offsets, rows, width)
    }

    /// Splits per-unit rows (`width` values per unit) into one slice per graph.
    pub fn split_unit_rows<'a, T>(&self, rows: &'a [T], width: usize) -> Vec<&'a [T]> {
        split(&self.unit_offsets, rows, width)
    }

    /// Recovers the original graphs.
    pub fn unbatch(&self) -> Vec<HeteroGraph> {
        (0..self.num_graphs())
            .map(|g| {
                let (a0, a1) = (self.atom_offsets[g], self.atom_offsets[g + 1]);
                let (u0, u1) = (self.unit_offsets[g], self.unit_offsets[g + 1]);
                let (b0, b1) = (self.bond_offsets[g] as usize, self.bond_offsets[g + 1] as usize);
                let (l0, l1) = (self.link_offsets[g] as usize, self.link_offsets[g + 1] as usize);
                let src = &self.graph;
                HeteroGraph {
                    atoms: src.atoms[a0 as usize..a1 as usize]
                        .iter()
                        .map(|a| {
                            let mut a = a.clone();
                            a.unit -= u0;
                            a
                        })
                        .collect(),
                    units: src.units[u0 as usize..u1 as usize]
                        .iter()
                        .map(|u| {
                            let mut u = u.clone();
                            u.anchor = u.anchor.map(|x| x - a0);
                            u
                        })
                        .collect(),
                    bonds: src.bonds[b0..b1]
                        .iter()
                        .map(|x| {
                            let mut x = *x;
                            x.a -= a0;
                            x.b -= a0;
                            x
                        })
                        .collect(),
                    unit_links: src.unit_links[l0..l1]
                        .iter()
                        .map(|l| {
                            let mut l = l.clone();
                            l.src -= u0;
                            l.dst -= u0;
                            l
                        })
                        .collect(),
                    positions: src.positions.as_ref().map(|p| p[a0 as usize..a1 as usize].to_vec()),
                    spatial: src
                        .spatial
                        .iter()
                        .map(|rel| {
                            let (n0, n1) = if rel.level == Level::Atom { (a0, a1) } else { (u0, u1) };
                            let c = &rel.neighbors;
                            let (e0, e1) = (c.offsets[n0 as usize] as usize, c.offsets[n1 as usize] as usize);
                            SpatialRelation {
                                level: rel.level,
                                kind: rel.kind,
                                neighbors: Csr {
                                    offsets: c.offsets[n0 as usize..=n1 as usize]
                                        .iter()
                                        .map(|o| o - e0 as u32)
                                        .collect(),
                                    targets: c.targets[e0..e1].iter().map(|t| t - n0).collect(),
                                    edges: c.edges[e0..e1].to_vec(),
                                },
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

fn split<'a, T>(offsets: &[u32], rows: &'a [T], width: usize) -> Vec<&'a [T]> {
    offsets.windows(2).map(|w| &rows[w[0] as usize * width..w[1] as usize * width]).collect()
}
