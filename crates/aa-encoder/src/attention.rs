//! Attention graphs (El et al., arXiv 2502.12352): how information flows through an attention
//! encoder, compared with the molecular graph it read.
//!
//! An encoder that attends ([`crate::Encoder::attention`], [`crate::Readout::attention`])
//! returns one [`AttentionTrack`] per node set it attends over (ESM: the tokens; Vabs-Net: the
//! atom track and the unit track; HSA-Net: the units its query tokens read). Each layer's
//! matrix is the attention averaged over heads, row `i` the weights with which node `i` reads
//! every node (rows sum to 1). For a chained track (each layer reads the previous layer's
//! output on the same nodes) the **attention graph** is the product across layers, later layer
//! on the left: `A_L ⋯ A_2 A_1`, row `i` how node `i`'s final state draws on the input nodes.
//!
//! [`NodeGraph::of`] places a track's nodes in the molecular graph: covalent edges (bonds between
//! atom nodes, glycosidic / peptide links between unit nodes, atom→unit membership) and, when
//! the graph has coordinates, spatial contacts (atoms within [`ATOM_CONTACT`] Å, units within
//! [`UNIT_CONTACT`] Å, not already covalent). [`metrics`] compares a matrix with one edge set:
//! attention mass by hop distance, the mean weight on non-neighbours over the mean on
//! neighbours, and precision / recall / F1 of the matrix's largest off-diagonal entries taken
//! as predicted edges, as many as the edge set has (at that threshold precision equals recall,
//! by construction). Checked against NumPy (`tests/reference/attention_graph_reference.py`).

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::{UnitGeometry, Window};

/// Most nodes a track may have: its matrices are dense `N × N`.
pub const MAX_NODES: usize = 4096;
/// Atoms closer than this (Å), not bonded, are in contact.
pub const ATOM_CONTACT: f32 = 4.5;
/// Units whose positions (anchor atom, else centroid) are closer than this (Å), not linked, are
/// in contact.
pub const UNIT_CONTACT: f32 = 8.0;

/// One node of a track.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionNode {
    /// An atom of the window's graph (index into `HeteroGraph::atoms`).
    Atom(u32),
    /// A unit of the window: the `k`-th of `Window::units` (the order of the unit rows).
    Unit(u32),
    /// A node that is not in the molecular graph (ESM's `<cls>` and `<eos>` tokens).
    Special(String),
}

/// A dense row-major `n × n` matrix, row `i` the weights node `i` gives every node.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionMatrix {
    /// Side.
    pub n: usize,
    /// `n · n` values, row after row.
    pub values: Vec<f32>,
}

impl AttentionMatrix {
    /// An `n × n` matrix of zeros.
    pub fn zeros(n: usize) -> AttentionMatrix {
        AttentionMatrix { n, values: vec![0.0; n * n] }
    }

    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.values[i * self.n + j]
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.n..(i + 1) * self.n]
    }

    /// `self · rhs` (accumulated in f64).
    pub fn matmul(&self, rhs: &AttentionMatrix) -> AttentionMatrix {
        let n = self.n;
        let mut out = vec![0f64; n * n];
        for i in 0..n {
            let acc = &mut out[i * n..(i + 1) * n];
            for (k, &a) in self.row(i).iter().enumerate() {
                if a != 0.0 {
                    for (o, &b) in acc.iter_mut().zip(rhs.row(k)) {
                        *o += f64::from(a) * f64::from(b);
                    }
                }
            }
        }
        AttentionMatrix { n, values: out.into_iter().map(|x| x as f32).collect() }
    }
}

/// The attention of one encoder (or readout) over one node set of one window.
#[derive(Clone, Debug)]
pub struct AttentionTrack {
    /// What the nodes are (`tokens`, `atoms`, `units`, `hsa`).
    pub name: String,
    /// The window (index into the featurised windows).
    pub window: usize,
    /// The nodes, in matrix order.
    pub nodes: Vec<AttentionNode>,
    /// Each layer's head-averaged attention, first layer first.
    pub layers: Vec<AttentionMatrix>,
    /// A label per layer (`layer 3`; HSA-Net adds the gate's choice).
    pub labels: Vec<String>,
    /// Whether layer `l + 1` reads layer `l`'s output on the same nodes, so that the product
    /// across layers is the attention graph (false for HSA-Net, whose layers each read another
    /// encoder layer).
    pub chained: bool,
}

impl AttentionTrack {
    /// The attention graph `A_L ⋯ A_1` of a chained track; `None` otherwise or without layers.
    pub fn product(&self) -> Option<AttentionMatrix> {
        if !self.chained {
            return None;
        }
        let mut it = self.layers.iter();
        let mut p = it.next()?.clone();
        for a in it {
            p = a.matmul(&p);
        }
        Some(p)
    }
}

/// A head-averaged dense matrix from sparse edge attention: edge `e` from `src[e]` into
/// `dst[e]` with per-head weights `weights[e·heads ..]` (each destination's edges summing to 1
/// per head) gives entry `(local[dst], local[src])`; edges with an end whose `local` is
/// `u32::MAX` (another window's node) are left out, and parallel edges add.
pub fn from_edges(n: usize, local: &[u32], src: &[u32], dst: &[u32], weights: &[f32], heads: usize) -> AttentionMatrix {
    let mut m = AttentionMatrix::zeros(n);
    for (e, (&s, &d)) in src.iter().zip(dst).enumerate() {
        let (Some(&i), Some(&j)) = (local.get(d as usize), local.get(s as usize)) else { continue };
        if i == u32::MAX || j == u32::MAX {
            continue;
        }
        let w: f32 = weights[e * heads..(e + 1) * heads].iter().sum::<f32>() / heads as f32;
        m.values[i as usize * n + j as usize] += w;
    }
    m
}

/// An undirected edge set between node indices of a track (`i < j`, no repeats).
pub type EdgeSet = Vec<(u32, u32)>;

/// A track's nodes placed in the molecular graph of their window.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeGraph {
    /// Whether each node is in the molecular graph (not a special token).
    pub in_graph: Vec<bool>,
    /// Covalent edges: bonds, unit links, atom→unit membership.
    pub covalent: EdgeSet,
    /// Spatial contacts not already covalent (`None` without coordinates).
    pub contacts: Option<EdgeSet>,
}

impl NodeGraph {
    /// Places `nodes` in `window`'s graph.
    pub fn of(window: &Window, nodes: &[AttentionNode]) -> NodeGraph {
        let g = &window.graph;
        let mut atom_slot: HashMap<u32, u32> = HashMap::new();
        let mut unit_slot: HashMap<u32, u32> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            match n {
                AttentionNode::Atom(a) => {
                    atom_slot.entry(*a).or_insert(i as u32);
                }
                AttentionNode::Unit(k) => {
                    if let Some(&u) = window.units.get(*k as usize) {
                        unit_slot.entry(u).or_insert(i as u32);
                    }
                }
                AttentionNode::Special(_) => {}
            }
        }
        let mut covalent = HashSet::new();
        let add = |set: &mut HashSet<(u32, u32)>, a: u32, b: u32| {
            if a != b {
                set.insert((a.min(b), a.max(b)));
            }
        };
        for b in &g.bonds {
            if let (Some(&x), Some(&y)) = (atom_slot.get(&b.a), atom_slot.get(&b.b)) {
                add(&mut covalent, x, y);
            }
        }
        for l in &g.unit_links {
            if let (Some(&x), Some(&y)) = (unit_slot.get(&l.src), unit_slot.get(&l.dst)) {
                add(&mut covalent, x, y);
            }
        }
        for (&a, &x) in &atom_slot {
            if let Some(&y) = g.atoms.get(a as usize).and_then(|atom| unit_slot.get(&atom.unit)) {
                add(&mut covalent, x, y);
            }
        }
        let contacts = g.positions.as_ref().map(|pos| {
            let mut set = HashSet::new();
            let atoms: Vec<(u32, [f32; 3])> =
                atom_slot.iter().filter_map(|(&a, &x)| pos.get(a as usize).map(|&p| (x, p))).collect();
            let geometry = UnitGeometry::of(&[window]);
            let unit_pos: HashMap<u32, [f32; 3]> =
                window.units.iter().zip(geometry.positions.unwrap_or_default()).map(|(&u, p)| (u, p)).collect();
            let units: Vec<(u32, [f32; 3])> =
                unit_slot.iter().filter_map(|(u, &x)| unit_pos.get(u).map(|&p| (x, p))).collect();
            for (list, cut) in [(&atoms, ATOM_CONTACT), (&units, UNIT_CONTACT)] {
                // The workspace's grid radius search (pairs within `cut`, both directions).
                let points: Vec<[f32; 3]> = list.iter().map(|p| p.1).collect();
                let near = aa_graph::neighbors::radius(&points, cut);
                for (k, &(x, _)) in list.iter().enumerate() {
                    for &j in near.neighbors(k) {
                        let y = list[j as usize].0;
                        if !covalent.contains(&(x.min(y), x.max(y))) {
                            add(&mut set, x, y);
                        }
                    }
                }
            }
            sorted(set)
        });
        let in_graph = nodes.iter().map(|n| !matches!(n, AttentionNode::Special(_))).collect();
        NodeGraph { in_graph, covalent: sorted(covalent), contacts }
    }

    /// The edge sets to compare with, by name: `covalent`, and with coordinates `contacts` and
    /// `covalent+contacts`.
    pub fn edge_sets(&self) -> Vec<(&'static str, EdgeSet)> {
        let mut v = vec![("covalent", self.covalent.clone())];
        if let Some(c) = &self.contacts {
            v.push(("contacts", c.clone()));
            let mut both: Vec<(u32, u32)> = self.covalent.iter().chain(c).copied().collect();
            both.sort_unstable();
            both.dedup();
            v.push(("covalent+contacts", both));
        }
        v
    }
}

fn sorted(set: HashSet<(u32, u32)>) -> EdgeSet {
    let mut v: Vec<_> = set.into_iter().collect();
    v.sort_unstable();
    v
}

/// How one attention matrix relates to one edge set (rows of special nodes left out; means
/// over the graph nodes' rows).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphMetrics {
    /// Undirected edges in the set.
    pub edges: usize,
    /// Mean attention mass at hop distance `d` (index `d`; 0 is the node itself), up to the
    /// requested maximum.
    pub hop_mass: Vec<f64>,
    /// Mean mass on graph nodes further than the maximum hop.
    pub further: f64,
    /// Mean mass on graph nodes not connected to the row's node.
    pub unreachable: f64,
    /// Mean mass on special nodes.
    pub special: f64,
    /// Mean weight over neighbour pairs `(i, j)`, `{i, j}` an edge.
    pub neighbour_mean: Option<f64>,
    /// Mean weight over non-neighbour pairs of distinct graph nodes.
    pub non_neighbour_mean: Option<f64>,
    /// `non_neighbour_mean / neighbour_mean`.
    pub ratio: Option<f64>,
    /// Of the `2 · edges` largest off-diagonal entries between graph nodes (ties by row, then
    /// column), the fraction that are edges.
    pub precision: Option<f64>,
    /// The fraction of directed edges among those entries.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
}

/// Hop distances from every node to every node over `edges` (`u32::MAX`: unreachable or not a
/// graph node).
pub fn hop_distances(n: usize, in_graph: &[bool], edges: &[(u32, u32)]) -> Vec<Vec<u32>> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        adj[a as usize].push(b as usize);
        adj[b as usize].push(a as usize);
    }
    (0..n)
        .map(|s| {
            let mut d = vec![u32::MAX; n];
            if !in_graph[s] {
                return d;
            }
            d[s] = 0;
            let mut q = VecDeque::from([s]);
            while let Some(x) = q.pop_front() {
                for &y in &adj[x] {
                    if d[y] == u32::MAX {
                        d[y] = d[x] + 1;
                        q.push_back(y);
                    }
                }
            }
            d
        })
        .collect()
}

/// [`GraphMetrics`] of `a` against `edges` (hop mass up to `max_hop`).
pub fn metrics(a: &AttentionMatrix, in_graph: &[bool], edges: &[(u32, u32)], max_hop: usize) -> GraphMetrics {
    let n = a.n;
    let dist = hop_distances(n, in_graph, edges);
    let rows: Vec<usize> = (0..n).filter(|&i| in_graph[i]).collect();
    let mut hop = vec![0f64; max_hop + 1];
    let (mut further, mut unreachable, mut special) = (0f64, 0f64, 0f64);
    let (mut nb_sum, mut nb_count, mut non_sum, mut non_count) = (0f64, 0usize, 0f64, 0usize);
    let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
    for &i in &rows {
        for j in 0..n {
            let w = f64::from(a.get(i, j));
            if !in_graph[j] {
                special += w;
                continue;
            }
            match dist[i][j] {
                u32::MAX => unreachable += w,
                d if d as usize > max_hop => further += w,
                d => hop[d as usize] += w,
            }
            if i == j {
                continue;
            }
            candidates.push((a.get(i, j), i, j));
            if dist[i][j] == 1 {
                nb_sum += w;
                nb_count += 1;
            } else {
                non_sum += w;
                non_count += 1;
            }
        }
    }
    let r = rows.len().max(1) as f64;
    hop.iter_mut().for_each(|x| *x /= r);
    let mean = |s: f64, c: usize| (c > 0).then(|| s / c as f64);
    let (neighbour_mean, non_neighbour_mean) = (mean(nb_sum, nb_count), mean(non_sum, non_count));
    let ratio = match (neighbour_mean, non_neighbour_mean) {
        (Some(nb), Some(non)) if nb > 0.0 => Some(non / nb),
        _ => None,
    };
    // The largest entries, ties broken by row-major position (a stable sort of the row-major list).
    candidates.sort_by(|x, y| y.0.total_cmp(&x.0));
    let k = 2 * edges.len();
    let (precision, recall, f1) = if k == 0 || candidates.is_empty() {
        (None, None, None)
    } else {
        let kept = &candidates[..k.min(candidates.len())];
        let hits = kept.iter().filter(|&&(_, i, j)| dist[i][j] == 1).count() as f64;
        let p = hits / kept.len() as f64;
        let rc = hits / k as f64;
        let f = if p + rc > 0.0 { 2.0 * p * rc / (p + rc) } else { 0.0 };
        (Some(p), Some(rc), Some(f))
    };
    GraphMetrics {
        edges: edges.len(),
        hop_mass: hop,
        further: further / r,
        unreachable: unreachable / r,
        special: special / r,
        neighbour_mean,
        non_neighbour_mean,
        ratio,
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_is_later_layer_on_the_left() {
        let a1 = AttentionMatrix { n: 2, values: vec![1.0, 0.0, 1.0, 0.0] };
        let a2 = AttentionMatrix { n: 2, values: vec![0.0, 1.0, 0.0, 1.0] };
        let t = AttentionTrack {
            name: "t".into(),
            window: 0,
            nodes: vec![AttentionNode::Unit(0), AttentionNode::Unit(1)],
            layers: vec![a1.clone(), a2.clone()],
            labels: vec!["layer 1".into(), "layer 2".into()],
            chained: true,
        };
        // A2·A1: every row reads node 1 in layer 2, which read node 0 in layer 1.
        assert_eq!(t.product().unwrap().values, vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(a1.matmul(&a2).values, vec![0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn a_path_graph_attending_to_neighbours_scores_one() {
        // Path 0-1-2-3; each node attends to its neighbours equally.
        let n = 4;
        let edges = vec![(0, 1), (1, 2), (2, 3)];
        let mut m = AttentionMatrix::zeros(n);
        for &(a, b) in &edges {
            m.values[a as usize * n + b as usize] = 1.0;
            m.values[b as usize * n + a as usize] = 1.0;
        }
        for i in 0..n {
            let s: f32 = m.row(i).iter().sum();
            m.values[i * n..(i + 1) * n].iter_mut().for_each(|x| *x /= s);
        }
        let g = metrics(&m, &[true; 4], &edges, 2);
        assert_eq!(g.hop_mass, vec![0.0, 1.0, 0.0]);
        assert_eq!((g.precision, g.recall, g.f1), (Some(1.0), Some(1.0), Some(1.0)));
        assert_eq!(g.ratio, Some(0.0));
        assert_eq!(g.unreachable, 0.0);
    }
}
