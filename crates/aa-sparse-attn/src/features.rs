//! Vabs-Net's input featurisation of an allatom graph: atom and unit vocabularies, the two
//! kNN edge sets (atom→atom on atom coordinates, unit→unit on anchor coordinates, each with
//! self loops as in the official data pipeline), the optional virtual node linked both ways to
//! every atom and every unit, local frames of units, and the direction encoding of edge
//! vectors. Everything here is plain Rust on CPU; [`crate::Vabs`] turns it into tensors.

use std::collections::HashMap;

use aa_graph::neighbors::knn;
use aa_graph::{Csr, Element, HeteroGraph, Unit, UnitKind};

/// The 37 atom names of Vabs-Net's `atom37` order (AlphaFold's), ids 0..36.
pub const ATOM37: [&str; 37] = [
    "N", "CA", "C", "CB", "O", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD", "CD1", "CD2", "ND1", "ND2", "OD1", "OD2",
    "SD", "CE", "CE1", "CE2", "CE3", "NE", "NE1", "NE2", "OE1", "OE2", "CH2", "NH1", "NH2", "OH", "CZ", "CZ2", "CZ3",
    "NZ", "OXT",
];

/// Size of the atom vocabulary: atom37 (0–36), then `C1`…`C9`, `O1`…`O9`, `N1`…`N9`,
/// `S1`…`S9`, `P1`…`P9` (sugar and ligand positions, 37–81), then one id per element class for
/// other names (C, N, O, S, P, other: 82–87), a spare, and the virtual node (89).
pub const ATOM_TYPES: usize = 90;
/// Atom type of the virtual node.
pub const VIRTUAL_ATOM: u32 = 89;
/// Size of the unit vocabulary: amino acids 0–19 (templates order), 20 other residue, 21
/// padding (unused), 22 masked unit, 23 virtual node, 24 non-residue non-sugar unit (ligand),
/// 25 + monosaccharide core id for sugars (clamped to 63).
pub const UNIT_TYPES: usize = 64;
/// Unit type of a masked unit (span-mask pretraining).
pub const MASK_UNIT: u32 = 22;
/// Unit type of the virtual node.
pub const VIRTUAL_UNIT: u32 = 23;
/// Width of [`direction_features`].
pub const DIRECTION_DIM: usize = 90;

/// Atom type id of an atom called `name` of element `element` (see [`ATOM_TYPES`]).
pub fn atom_type_id(name: &str, element: Element) -> u32 {
    if let Some(i) = ATOM37.iter().position(|n| *n == name) {
        return i as u32;
    }
    let b = name.as_bytes();
    if b.len() == 2 && (b'1'..=b'9').contains(&b[1]) {
        if let Some(p) = b"CONSP".iter().position(|c| *c == b[0]) {
            return 37 + (p as u32) * 9 + (b[1] - b'1') as u32;
        }
    }
    let class = match element.symbol() {
        "C" => 0,
        "N" => 1,
        "O" => 2,
        "S" => 3,
        "P" => 4,
        _ => 5,
    };
    82 + class
}

/// Unit type id of a unit (see [`UNIT_TYPES`]).
pub fn unit_type_id(unit: &Unit) -> u32 {
    match unit.kind {
        UnitKind::Residue => unit.type_id.min(20),
        UnitKind::Monosaccharide => (25 + unit.type_id).min(UNIT_TYPES as u32 - 1),
        UnitKind::Other => 24,
    }
}

/// `[θ, sin θ, cos θ, sin 2θ, cos 2θ, …]` with `bands` octaves, written to `out`.
fn nerf(x: f64, bands: usize, out: &mut Vec<f64>) {
    out.push(x);
    for k in 0..bands {
        let f = (1u32 << k) as f64 * x;
        out.push(f.sin());
        out.push(f.cos());
    }
}

fn norm2(a: f64, b: f64) -> f64 {
    (a * a + b * b).sqrt()
}

/// Vabs-Net's direction encoding of an edge vector `v` (90 values, the official
/// `use_nerf_encoding` variant), in double precision as the official data pipeline computes it:
/// three angles `atan2(|v_z|, |v_xy|)`, `atan2(|v_y|, |v_xz|)`, `atan2(|v_xy|, |v_yz|)` (each
/// re-derived as `atan2(sin θ, cos θ)`, as the official code does), each as
/// `[θ, sin 2^k θ, cos 2^k θ]` for k < 4 (27 values), then each coordinate as
/// `[x, sin 2^k x, cos 2^k x]` for k < 10 (63 values, coordinate-major).
pub fn direction_features_f64(v: [f64; 3], out: &mut Vec<f64>) {
    let [x, y, z] = v;
    for a in [z.abs().atan2(norm2(x, y)), y.abs().atan2(norm2(x, z)), norm2(x, y).atan2(norm2(y, z))] {
        nerf(a.sin().atan2(a.cos()), 4, out);
    }
    for c in v {
        nerf(c, 10, out);
    }
}

/// [`direction_features_f64`] of an f32 vector, rounded to f32 (the all-atom variant's
/// featurisation).
pub fn direction_features(v: [f32; 3], out: &mut Vec<f32>) {
    let mut buf = Vec::with_capacity(DIRECTION_DIM);
    direction_features_f64(v.map(f64::from), &mut buf);
    out.extend(buf.into_iter().map(|x| x as f32));
}

pub(crate) fn sub64(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn cross64(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// `v / |v|`, zero for a zero (or non-finite) vector: the official `_normalize`, which divides
/// and then replaces NaN with 0.
pub fn normalize_f64(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if n > 0.0 && n.is_finite() {
        [v[0] / n, v[1] / n, v[2] / n]
    } else {
        [0.0; 3]
    }
}

/// [`normalize_f64`] in f32.
pub fn normalize(v: [f32; 3]) -> [f32; 3] {
    normalize_f64(v.map(f64::from)).map(|x| x as f32)
}

/// The local frame (rows) of three points — `N, CA, C` for residues — in double precision:
/// with `u0 = norm(b − a)`, `u1 = norm(c − b)`, rows `b1 = norm(u0 − u1)`, `n0 = norm(u0 × u1)`,
/// `b1 × n0` (the official `compute_sin_cos_res` construction).
pub fn local_frame_f64(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> [[f64; 3]; 3] {
    let u0 = normalize_f64(sub64(b, a));
    let u1 = normalize_f64(sub64(c, b));
    let n0 = normalize_f64(cross64(u0, u1));
    let b1 = normalize_f64(sub64(u0, u1));
    [b1, n0, cross64(b1, n0)]
}

/// [`local_frame_f64`] of f32 points, rounded to f32.
pub fn local_frame(a: [f32; 3], b: [f32; 3], c: [f32; 3]) -> [[f32; 3]; 3] {
    local_frame_f64(a.map(f64::from), b.map(f64::from), c.map(f64::from)).map(|r| r.map(|x| x as f32))
}

/// `q · v` for a frame `q` given by its rows.
pub(crate) fn rotate64(q: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    let dot = |r: [f64; 3]| r[0] * v[0] + r[1] * v[1] + r[2] * v[2];
    [dot(q[0]), dot(q[1]), dot(q[2])]
}

/// The three atoms spanning a unit's local frame: `N, CA, C` for residues; for sugars the ring
/// oxygen bonded to the anomeric carbon, the anomeric carbon, and its ring carbon neighbour.
fn frame_atoms(g: &HeteroGraph, unit: usize, bonds: &Csr, members: &Csr) -> Option<[u32; 3]> {
    let u = &g.units[unit];
    let member = |name: &str| members.neighbors(unit).iter().copied().find(|&a| g.atoms[a as usize].name == name);
    match u.kind {
        UnitKind::Residue => Some([member("N")?, member("CA")?, member("C")?]),
        UnitKind::Monosaccharide => {
            let c1 = u.anchor?;
            let same = |j: &u32| g.atoms[*j as usize].unit as usize == unit;
            let nbrs: Vec<u32> = bonds.neighbors(c1 as usize).iter().copied().filter(same).collect();
            let carbons = |j: u32| {
                bonds.neighbors(j as usize).iter().filter(|k| g.atoms[**k as usize].element == Element::C).count()
            };
            let ring_o =
                nbrs.iter().copied().find(|&j| g.atoms[j as usize].element == Element::O && carbons(j) >= 2)?;
            let next_c = nbrs.iter().copied().find(|&j| g.atoms[j as usize].element == Element::C)?;
            Some([ring_o, c1, next_c])
        }
        UnitKind::Other => None,
    }
}

/// What to build from a graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureOptions {
    /// Neighbours per atom, self included (Vabs-Net: 30).
    pub atom_knn: usize,
    /// Neighbours per unit, self included (Vabs-Net: 30).
    pub unit_knn: usize,
    /// Add the virtual node.
    pub virtual_node: bool,
}

/// A featurised graph (or a batch of them, see [`VabsInput::concat`]): node vocabularies,
/// coordinates, anchors, local frames and directed edges `(src, dst)`.
#[derive(Clone, Debug, Default)]
pub struct VabsInput {
    /// Atom type ids ([`ATOM_TYPES`]).
    pub atom_type: Vec<u32>,
    /// Unit of each atom.
    pub atom_unit: Vec<u32>,
    /// Atom index in its input graph of each atom (`None` for a virtual node).
    pub graph_atom: Vec<Option<u32>>,
    /// Atom coordinates (Å).
    pub positions: Vec<[f32; 3]>,
    /// Unit type ids ([`UNIT_TYPES`]).
    pub unit_type: Vec<u32>,
    /// Anchor atom of each unit.
    pub anchors: Vec<u32>,
    /// `(chain key, residue number)` of labelled units, for sequence offsets.
    pub unit_label: Vec<Option<(u32, i32)>>,
    /// Local frame (rows) of each unit, when its frame atoms are present.
    pub frames: Vec<Option<[[f32; 3]; 3]>>,
    /// Atom→atom edges `(src, dst)`.
    pub atom_edges: Vec<(u32, u32)>,
    /// Unit→unit edges `(src, dst)`.
    pub unit_edges: Vec<(u32, u32)>,
    /// For each input graph, its virtual node's unit row (if any).
    pub virtual_units: Vec<Option<u32>>,
}

/// Why a graph cannot be featurised.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    /// The graph has no coordinates.
    #[error("the graph has no coordinates (Vabs-Net needs 3D structures)")]
    NoPositions,
    /// A selected unit has no anchor atom.
    #[error("unit {0} ({1}) has no anchor atom")]
    NoAnchor(usize, String),
    /// Nothing selected.
    #[error("no units selected")]
    Empty,
    /// Inputs of different lengths.
    #[error("{0}")]
    Length(String),
}

impl VabsInput {
    /// Featurises the whole graph with its own coordinates.
    pub fn from_graph(g: &HeteroGraph, opts: &FeatureOptions) -> Result<VabsInput, FeatureError> {
        let units: Vec<u32> = (0..g.num_units() as u32).collect();
        let pos = g.positions.as_ref().ok_or(FeatureError::NoPositions)?;
        VabsInput::build(g, &units, &vec![false; units.len()], pos, opts)
    }

    /// Featurises the selected `units` of `g` with atom coordinates `positions` (one per atom
    /// of `g`). Units flagged in `masked` keep only their anchor atom and get
    /// [`MASK_UNIT`] as type (span masking); hydrogens are never included.
    pub fn build(
        g: &HeteroGraph,
        units: &[u32],
        masked: &[bool],
        positions: &[[f32; 3]],
        opts: &FeatureOptions,
    ) -> Result<VabsInput, FeatureError> {
        if units.is_empty() {
            return Err(FeatureError::Empty);
        }
        if masked.len() != units.len() || positions.len() != g.num_atoms() {
            return Err(FeatureError::Length(format!(
                "{} mask flags for {} units, {} positions for {} atoms",
                masked.len(),
                units.len(),
                positions.len(),
                g.num_atoms()
            )));
        }
        if let Some(&u) = units.iter().find(|&&u| u as usize >= g.num_units()) {
            return Err(FeatureError::Length(format!("unit {u} of a graph with {} units", g.num_units())));
        }
        let bonds = g.bond_csr();
        let members = g.unit_members();
        let mut slot = vec![u32::MAX; g.num_units()];
        for (k, &u) in units.iter().enumerate() {
            slot[u as usize] = k as u32;
        }
        let mut out = VabsInput::default();
        let mut atom_row = vec![u32::MAX; g.num_atoms()];
        for (i, a) in g.atoms.iter().enumerate() {
            let k = slot[a.unit as usize];
            if k == u32::MAX || a.element == Element::H {
                continue;
            }
            let unit = &g.units[a.unit as usize];
            if masked[k as usize] && unit.anchor != Some(i as u32) {
                continue;
            }
            atom_row[i] = out.atom_type.len() as u32;
            out.atom_type.push(atom_type_id(&a.name, a.element));
            out.atom_unit.push(k);
            out.graph_atom.push(Some(i as u32));
            out.positions.push(positions[i]);
        }
        let mut chains: HashMap<&str, u32> = HashMap::new();
        for (k, &u) in units.iter().enumerate() {
            let unit = &g.units[u as usize];
            let anchor = unit
                .anchor
                .map(|a| atom_row[a as usize])
                .filter(|&r| r != u32::MAX)
                .ok_or_else(|| FeatureError::NoAnchor(u as usize, unit.name.clone()))?;
            out.anchors.push(anchor);
            out.unit_type.push(if masked[k] { MASK_UNIT } else { unit_type_id(unit) });
            out.unit_label.push(unit.label.as_ref().map(|l| {
                let n = chains.len() as u32;
                (*chains.entry(l.chain.as_str()).or_insert(n), l.number)
            }));
            let frame = if masked[k] {
                None
            } else {
                frame_atoms(g, u as usize, &bonds, &members)
                    .map(|[a, b, c]| local_frame(positions[a as usize], positions[b as usize], positions[c as usize]))
            };
            out.frames.push(frame);
        }
        let n_atoms = out.positions.len();
        let n_units = units.len();
        let with_self = |pts: &[[f32; 3]], k: usize, edges: &mut Vec<(u32, u32)>| {
            let nb = knn(pts, k.saturating_sub(1));
            for i in 0..pts.len() {
                edges.push((i as u32, i as u32));
                for &j in nb.neighbors(i) {
                    edges.push((j, i as u32));
                }
            }
        };
        with_self(&out.positions, opts.atom_knn, &mut out.atom_edges);
        let anchor_pos: Vec<[f32; 3]> = out.anchors.iter().map(|&a| out.positions[a as usize]).collect();
        with_self(&anchor_pos, opts.unit_knn, &mut out.unit_edges);
        if opts.virtual_node {
            // One node at the centroid, an atom and a unit at once, linked both ways to all.
            let mut c = [0f32; 3];
            for p in &out.positions {
                for d in 0..3 {
                    c[d] += p[d] / n_atoms as f32;
                }
            }
            let (va, vu) = (n_atoms as u32, n_units as u32);
            out.atom_type.push(VIRTUAL_ATOM);
            out.atom_unit.push(vu);
            out.graph_atom.push(None);
            out.positions.push(c);
            out.anchors.push(va);
            out.unit_type.push(VIRTUAL_UNIT);
            out.unit_label.push(None);
            out.frames.push(None);
            out.atom_edges.push((va, va));
            for i in 0..va {
                out.atom_edges.push((i, va));
                out.atom_edges.push((va, i));
            }
            out.unit_edges.push((vu, vu));
            for i in 0..vu {
                out.unit_edges.push((i, vu));
                out.unit_edges.push((vu, i));
            }
            out.virtual_units.push(Some(vu));
        } else {
            out.virtual_units.push(None);
        }
        Ok(out)
    }

    /// Number of atom nodes (the virtual node included).
    pub fn num_atoms(&self) -> usize {
        self.atom_type.len()
    }

    /// Number of unit nodes (the virtual node included).
    pub fn num_units(&self) -> usize {
        self.unit_type.len()
    }

    /// Joins featurised graphs into one disconnected batch graph (chain keys are kept apart).
    pub fn concat(parts: &[VabsInput]) -> VabsInput {
        let mut out = VabsInput::default();
        let mut chain_base = 0u32;
        for p in parts {
            let (na, nu) = (out.num_atoms() as u32, out.num_units() as u32);
            out.atom_type.extend_from_slice(&p.atom_type);
            out.atom_unit.extend(p.atom_unit.iter().map(|u| u + nu));
            out.graph_atom.extend_from_slice(&p.graph_atom);
            out.positions.extend_from_slice(&p.positions);
            out.unit_type.extend_from_slice(&p.unit_type);
            out.anchors.extend(p.anchors.iter().map(|a| a + na));
            let mut max_chain = 0;
            out.unit_label.extend(p.unit_label.iter().map(|l| {
                l.map(|(c, n)| {
                    max_chain = max_chain.max(c + 1);
                    (c + chain_base, n)
                })
            }));
            chain_base += max_chain;
            out.frames.extend_from_slice(&p.frames);
            out.atom_edges.extend(p.atom_edges.iter().map(|(s, d)| (s + na, d + na)));
            out.unit_edges.extend(p.unit_edges.iter().map(|(s, d)| (s + nu, d + nu)));
            out.virtual_units.extend(p.virtual_units.iter().map(|v| v.map(|v| v + nu)));
        }
        out
    }

    /// Residue-number offset `number(dst) − number(src)` of two units on one chain.
    pub fn unit_offset(&self, src: u32, dst: u32) -> Option<i32> {
        match (self.unit_label[src as usize], self.unit_label[dst as usize]) {
            (Some((ca, na)), Some((cb, nb))) if ca == cb => Some(nb - na),
            _ => None,
        }
    }

    /// Direction features of edges `(src, dst)` over points `pos`: [`direction_features`] of
    /// `pos[src] − pos[dst]` in the absolute frame, then of the same vector rotated into
    /// `frame(dst)` and normalised (zeros without a frame) — `[E, 180]` row-major.
    pub fn edge_directions(
        edges: &[(u32, u32)],
        pos: impl Fn(u32) -> [f32; 3],
        frame: impl Fn(u32) -> Option<[[f32; 3]; 3]>,
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(edges.len() * 2 * DIRECTION_DIM);
        for &(s, d) in edges {
            let (a, b) = (pos(s), pos(d));
            let v = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
            direction_features(v, &mut out);
            let local = frame(d).map_or([0.0; 3], |q| {
                let q = q.map(|r| r.map(f64::from));
                normalize_f64(rotate64(&q, v.map(f64::from))).map(|x| x as f32)
            });
            direction_features(local, &mut out);
        }
        out
    }
}
