//! The official tensor inputs and the official featurisation (`PocketDataset.__getitem_cached__`
//! of `vabs/data/protein_downstream_bindingsite_dataset.py`, evaluation path, without the random
//! rigid motion: give already moved coordinates to reproduce one).

use aa_graph::neighbors::knn_search;
use candle_core::{DType, Device, Tensor};

use super::{DIRECTION_WIDTH, VIRTUAL_ATOM, VIRTUAL_RESIDUE};
use crate::features::{direction_features_f64, local_frame_f64, normalize_f64, rotate64, sub64};

/// One residue in atom37 layout, as the official LMDB records store it.
#[derive(Clone, Debug, PartialEq)]
pub struct Residue37 {
    /// Residue type (0–19 `ARNDCQEGHILKMFPSTWYV`, 20 unknown; see [`super::RESIDUE_TYPES`]).
    pub residue_type: u32,
    /// Coordinates (Å) of the 37 atom slots ([`crate::features::ATOM37`] order); slots without an
    /// atom are ignored.
    pub positions: [[f64; 3]; 37],
    /// Which slots hold an atom.
    pub mask: [bool; 37],
}

/// Per-residue language-model features (the official ESM-2 rows): one row per residue of
/// [`Atom37Residues::residues`] and the `<cls>` row, which the virtual node takes.
#[derive(Clone, Debug, PartialEq)]
pub struct LmRows {
    /// Row width (ESM-2 650M: 1280).
    pub dim: usize,
    /// `residues × dim` values, row-major.
    pub rows: Vec<f32>,
    /// The `<cls>` row (`dim` values).
    pub cls: Vec<f32>,
}

/// One chain in atom37 layout (what `protein_aa::vabs_official` reads from a structure file).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Atom37Residues {
    /// The residues in chain order.
    pub residues: Vec<Residue37>,
    /// Language-model rows, when the model takes them.
    pub lm: Option<LmRows>,
}

/// Neighbour counts of the featurisation (each counts the node itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeaturizeOptions {
    /// Residue neighbours (`knn_res`; released fine-tuning 30, pretraining 15); at most
    /// `residues − 1` are taken, as in the official code.
    pub knn_res: usize,
    /// Atom neighbours (`knn_atom2atom`; 30, pretraining 15); at most `atoms − 1`.
    pub knn_atom: usize,
}

impl Default for FeaturizeOptions {
    fn default() -> Self {
        FeaturizeOptions { knn_res: 30, knn_atom: 30 }
    }
}

/// The official model's inputs for one sample or a batch ([`OfficialInputs::concat`]): the
/// tensors `MDProteinModel.forward` receives (`OFFICIAL.md` §1.1), as flat row-major vectors.
/// Rows are atom nodes (the virtual node included); the residue track is the rows with
/// `res_mask` (every CA, and the virtual node), in row order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OfficialInputs {
    /// Atom positions (Å), `[A]`.
    pub atom_pos: Vec<[f64; 3]>,
    /// Atom type per atom row (atom37 slot, 37 masked, 38 virtual), `[A]`.
    pub atom_type: Vec<u32>,
    /// Residue type of each atom row's residue (23 for the virtual node), `[A]`.
    pub residue_type: Vec<u32>,
    /// Residue-track row of each atom row's residue (`residue_idx_all`), `[A]`.
    pub residue_idx: Vec<u32>,
    /// Whether an atom row is a residue-track row (CA atoms and the virtual node), `[A]`.
    pub res_mask: Vec<bool>,
    /// Residue edges `[destination, source]` over residue-track rows (`edge_index`).
    pub edge_index: Vec<[u32; 2]>,
    /// Atom edges `[destination, source]` over atom rows (`aa_edge_index`).
    pub aa_edge_index: Vec<[u32; 2]>,
    /// Residue-edge direction features, `[E_r, 180]` row-major (`edge_vec`).
    pub edge_vec: Vec<f64>,
    /// Atom-edge direction features, `[E_a, 180]` row-major (`edge_aa_vec`).
    pub edge_aa_vec: Vec<f64>,
    /// Language-model rows, `[R, lm_dim]` row-major, one per residue-track row (`esm_feat`;
    /// the official pipeline rounds them to f16).
    pub esm_feat: Option<Vec<f32>>,
}

impl OfficialInputs {
    /// Atom rows.
    pub fn num_atoms(&self) -> usize {
        self.atom_type.len()
    }

    /// Residue-track rows.
    pub fn num_residue_rows(&self) -> usize {
        self.res_mask.iter().filter(|&&m| m).count()
    }

    /// Checks every length and index (a model given bad inputs would index out of range);
    /// `lm_dim` is the width the model expects (`None`: no language-model rows).
    pub fn validate(&self, lm_dim: Option<usize>) -> Result<(), String> {
        let a = self.atom_pos.len();
        for (name, len) in [
            ("atom_type", self.atom_type.len()),
            ("residue_type", self.residue_type.len()),
            ("residue_idx", self.residue_idx.len()),
            ("res_mask", self.res_mask.len()),
        ] {
            if len != a {
                return Err(format!("{name} has {len} rows, atom_pos {a}"));
            }
        }
        if a == 0 {
            return Err("no atoms".into());
        }
        if let Some(i) = self.atom_pos.iter().position(|p| p.iter().any(|c| !c.is_finite())) {
            return Err(format!("atom_pos row {i} is not finite"));
        }
        if let Some(i) = self.atom_type.iter().position(|&t| t as usize >= super::ATOM_TYPES) {
            return Err(format!("atom_type row {i} is {} (vocabulary {})", self.atom_type[i], super::ATOM_TYPES));
        }
        if let Some(i) = self.residue_type.iter().position(|&t| t as usize >= super::RESIDUE_TYPES) {
            return Err(format!(
                "residue_type row {i} is {} (vocabulary {})",
                self.residue_type[i],
                super::RESIDUE_TYPES
            ));
        }
        let r = self.num_residue_rows();
        if r == 0 {
            return Err("res_mask selects no residue-track row".into());
        }
        if let Some(i) = self.residue_idx.iter().position(|&x| x as usize >= r) {
            return Err(format!("residue_idx row {i} is {} but there are {r} residue-track rows", self.residue_idx[i]));
        }
        let check = |name: &str, edges: &[[u32; 2]], nodes: usize, vec: &[f64]| -> Result<(), String> {
            if let Some(e) = edges.iter().position(|e| e[0] as usize >= nodes || e[1] as usize >= nodes) {
                return Err(format!("{name} edge {e} is {:?} but there are {nodes} nodes", edges[e]));
            }
            if vec.len() != edges.len() * DIRECTION_WIDTH {
                return Err(format!(
                    "{name}: {} direction values for {} edges (need {DIRECTION_WIDTH} per edge)",
                    vec.len(),
                    edges.len()
                ));
            }
            if let Some(i) = vec.iter().position(|v| !v.is_finite()) {
                return Err(format!("{name}: direction value {i} is not finite"));
            }
            Ok(())
        };
        check("edge_index", &self.edge_index, r, &self.edge_vec)?;
        check("aa_edge_index", &self.aa_edge_index, a, &self.edge_aa_vec)?;
        match (&self.esm_feat, lm_dim) {
            (Some(f), Some(d)) if f.len() != r * d => {
                return Err(format!("esm_feat has {} values, need {r} rows × {d}", f.len()));
            }
            (Some(_), None) => return Err("esm_feat given but the model takes no language-model rows".into()),
            (None, Some(d)) => return Err(format!("the model takes {d}-wide esm_feat rows; none given")),
            _ => {}
        }
        Ok(())
    }

    /// Joins samples into one batch as the official collaters do: rows concatenated, residue
    /// rows (`edge_index`, `residue_idx`) and atom rows (`aa_edge_index`) offset by the rows
    /// before them. Every part must have `esm_feat`, or none.
    pub fn concat(parts: &[OfficialInputs]) -> OfficialInputs {
        let mut out = OfficialInputs::default();
        let lm = parts.iter().all(|p| p.esm_feat.is_some()) && !parts.is_empty();
        let mut esm = Vec::new();
        for p in parts {
            let (ab, rb) = (out.num_atoms() as u32, out.num_residue_rows() as u32);
            out.atom_pos.extend_from_slice(&p.atom_pos);
            out.atom_type.extend_from_slice(&p.atom_type);
            out.residue_type.extend_from_slice(&p.residue_type);
            out.residue_idx.extend(p.residue_idx.iter().map(|r| r + rb));
            out.res_mask.extend_from_slice(&p.res_mask);
            out.edge_index.extend(p.edge_index.iter().map(|e| [e[0] + rb, e[1] + rb]));
            out.aa_edge_index.extend(p.aa_edge_index.iter().map(|e| [e[0] + ab, e[1] + ab]));
            out.edge_vec.extend_from_slice(&p.edge_vec);
            out.edge_aa_vec.extend_from_slice(&p.edge_aa_vec);
            if let (true, Some(f)) = (lm, &p.esm_feat) {
                esm.extend_from_slice(f);
            }
        }
        out.esm_feat = lm.then_some(esm);
        out
    }
}

impl OfficialInputs {
    /// The inputs as tensors under the official argument names of `MDProteinModel.forward`:
    /// `atom_pos` f64 `[A, 3]`, `atom_type`, `residue_type`, `residue_idx_all` i64 `[A]`,
    /// `res_mask` u8 `[A]`, `edge_index`, `aa_edge_index` i64 `[E, 2]` (column 0 destination),
    /// `edge_vec`, `edge_aa_vec` f64 `[E, 180]`, `esm_feat` f32 `[R, lm_dim]` when present.
    pub fn to_tensors(&self) -> candle_core::Result<std::collections::HashMap<String, Tensor>> {
        let dev = Device::Cpu;
        let a = self.num_atoms();
        let i64s = |v: &[u32]| Tensor::from_vec(v.iter().map(|&x| x as i64).collect::<Vec<_>>(), v.len(), &dev);
        let pairs = |v: &[[u32; 2]]| {
            Tensor::from_vec(v.iter().flatten().map(|&x| x as i64).collect::<Vec<_>>(), (v.len(), 2), &dev)
        };
        let mut t = std::collections::HashMap::new();
        t.insert("atom_pos".into(), Tensor::from_vec(self.atom_pos.iter().flatten().copied().collect(), (a, 3), &dev)?);
        t.insert("atom_type".into(), i64s(&self.atom_type)?);
        t.insert("residue_type".into(), i64s(&self.residue_type)?);
        t.insert("residue_idx_all".into(), i64s(&self.residue_idx)?);
        t.insert("res_mask".into(), Tensor::from_vec(self.res_mask.iter().map(|&m| m as u8).collect(), a, &dev)?);
        t.insert("edge_index".into(), pairs(&self.edge_index)?);
        t.insert("aa_edge_index".into(), pairs(&self.aa_edge_index)?);
        let e = |v: &[f64]| Tensor::from_vec(v.to_vec(), (v.len() / DIRECTION_WIDTH, DIRECTION_WIDTH), &dev);
        t.insert("edge_vec".into(), e(&self.edge_vec)?);
        t.insert("edge_aa_vec".into(), e(&self.edge_aa_vec)?);
        if let Some(f) = &self.esm_feat {
            let r = self.num_residue_rows();
            t.insert("esm_feat".into(), Tensor::from_vec(f.clone(), (r, f.len() / r.max(1)), &dev)?);
        }
        Ok(t)
    }

    /// Reads [`OfficialInputs::to_tensors`]' layout (any integer or float dtype; shapes are
    /// checked, indices by [`OfficialInputs::validate`] when the model runs), e.g. tensors a
    /// PyTorch user saved from the official collater.
    pub fn from_tensors(t: &std::collections::HashMap<String, Tensor>) -> Result<OfficialInputs, String> {
        let get = |k: &str| t.get(k).ok_or_else(|| format!("no tensor {k}"));
        fn msg(k: &str) -> impl Fn(candle_core::Error) -> String + '_ {
            move |e| format!("{k}: {e}")
        }
        let ints = |k: &str| -> Result<Vec<u32>, String> {
            let v = get(k)?.to_dtype(DType::I64).and_then(|x| x.flatten_all()?.to_vec1::<i64>()).map_err(msg(k))?;
            v.into_iter()
                .map(|x| u32::try_from(x).map_err(|_| format!("{k}: value {x} is not a valid index")))
                .collect()
        };
        let floats = |k: &str, width: usize| -> Result<Vec<f64>, String> {
            let x = get(k)?;
            if x.rank() != 2 || x.dim(1).map_err(msg(k))? != width {
                return Err(format!("{k} has shape {:?}, need [rows, {width}]", x.dims()));
            }
            x.to_dtype(DType::F64).and_then(|x| x.flatten_all()?.to_vec1::<f64>()).map_err(msg(k))
        };
        let pairs = |k: &str| -> Result<Vec<[u32; 2]>, String> {
            let x = get(k)?;
            if x.rank() != 2 || x.dim(1).map_err(msg(k))? != 2 {
                return Err(format!("{k} has shape {:?}, need [edges, 2]", x.dims()));
            }
            Ok(ints(k)?.chunks(2).map(|c| [c[0], c[1]]).collect())
        };
        let esm_feat = match t.get("esm_feat") {
            Some(x) => {
                Some(x.to_dtype(DType::F32).and_then(|x| x.flatten_all()?.to_vec1::<f32>()).map_err(msg("esm_feat"))?)
            }
            None => None,
        };
        Ok(OfficialInputs {
            atom_pos: floats("atom_pos", 3)?.chunks(3).map(|c| [c[0], c[1], c[2]]).collect(),
            atom_type: ints("atom_type")?,
            residue_type: ints("residue_type")?,
            residue_idx: ints("residue_idx_all")?,
            res_mask: ints("res_mask")?.into_iter().map(|m| m != 0).collect(),
            edge_index: pairs("edge_index")?,
            aa_edge_index: pairs("aa_edge_index")?,
            edge_vec: floats("edge_vec", DIRECTION_WIDTH)?,
            edge_aa_vec: floats("edge_aa_vec", DIRECTION_WIDTH)?,
            esm_feat,
        })
    }
}

fn dist64(a: [f64; 3], b: [f64; 3]) -> f64 {
    let d = sub64(a, b);
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

/// The `k` nearest points of every point, the point itself included, nearest first (ties by
/// index), by f64 distance — the official `topk` / `argsort` over a full distance matrix. A grid
/// search in f32 proposes candidates; a row whose candidates cannot prove the f64 order (near
/// ties at the k-th distance, dense clusters) is searched exhaustively.
fn knn_with_self(points: &[[f64; 3]], k: usize) -> Vec<Vec<u32>> {
    let n = points.len();
    let k = k.min(n);
    const MARGIN: usize = 16;
    let p32: Vec<[f32; 3]> = points.iter().map(|p| p.map(|c| c as f32)).collect();
    let search = knn_search(&p32, (k + MARGIN).min(n.saturating_sub(1)));
    let order = |cand: &mut Vec<(f64, u32)>| cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    // A capped grid search may miss near points on some row: search every row exhaustively.
    let exhaustive = search.truncated > 0;
    (0..n)
        .map(|i| {
            let mut cand: Vec<(f64, u32)> = std::iter::once(i as u32)
                .chain(search.csr.neighbors(i).iter().copied())
                .map(|j| (dist64(points[i], points[j as usize]), j))
                .collect();
            order(&mut cand);
            let all = cand.len() == n;
            // Proven when every point outside the candidates is farther (by more than the f32
            // rounding) than the k-th pick: the grid returned the nearest candidates in f32.
            let proven =
                !exhaustive && (all || (cand.len() > k && cand[cand.len() - 1].0 - cand[k.saturating_sub(1)].0 > 1e-3));
            if !proven {
                cand = (0..n as u32).map(|j| (dist64(points[i], points[j as usize]), j)).collect();
                order(&mut cand);
            }
            cand.truncate(k);
            cand.into_iter().map(|(_, j)| j).collect()
        })
        .collect()
}

/// Why residues cannot be featurised.
fn err(msg: impl Into<String>) -> crate::FeatureError {
    crate::FeatureError::Length(msg.into())
}

/// The official featurisation of one chain (`OFFICIAL.md` §1.3–1.8): residues without a CA
/// dropped; coordinates centred on the CA centroid (f64), missing slots at the origin; atom rows
/// residue-major in atom37 order, then the virtual node (atom type 38, residue type 23, at the
/// origin); residue kNN on CA and atom kNN on all atoms, `min(k, n − 1)` neighbours with the node
/// itself first, edges `(i ← j)` grouped by destination nearest first; then the virtual node's
/// edges, no self loop (residues: `(i ← V)` for all i, then `(V ← i)`; atoms: `(V ← i)`, then
/// `(i ← V)`); direction features in f64 (absolute part of `pos[dst] − pos[src]`, relative part
/// of `pos[src] − pos[dst]` rotated into the destination residue's frame and normalised, with
/// the official exceptions: raw vectors on residue edges touching V, a zero frame for the last
/// residue in the residue track, a zero frame for V in the atom track); language-model rows
/// rounded to f16, V taking the `<cls>` row.
pub fn featurize(chain: &Atom37Residues, opts: &FeaturizeOptions) -> Result<OfficialInputs, crate::FeatureError> {
    // 1. Residues with a CA.
    let keep: Vec<usize> = (0..chain.residues.len()).filter(|&r| chain.residues[r].mask[1]).collect();
    let n = keep.len();
    if n < 2 {
        return Err(err(format!(
            "official Vabs-Net needs at least 2 residues with a CA atom ({n} of {} have one)",
            chain.residues.len()
        )));
    }
    if let Some(r) = chain.residues.iter().position(|r| r.residue_type as usize >= super::RESIDUE_TYPES) {
        return Err(err(format!("residue {r} has type {} (vocabulary 25)", chain.residues[r].residue_type)));
    }
    for &r in &keep {
        let res = &chain.residues[r];
        if (0..37).any(|s| res.mask[s] && res.positions[s].iter().any(|c| !c.is_finite())) {
            return Err(err(format!("residue {r} has a non-finite coordinate")));
        }
    }
    // 2. Centre on the CA centroid; missing slots sit at the origin.
    let mut c = [0f64; 3];
    for &r in &keep {
        for (d, x) in c.iter_mut().enumerate() {
            *x += chain.residues[r].positions[1][d];
        }
    }
    let c = c.map(|x| x / n as f64);
    let all37: Vec<[[f64; 3]; 37]> = keep
        .iter()
        .map(|&r| {
            let res = &chain.residues[r];
            std::array::from_fn(|s| if res.mask[s] { sub64(res.positions[s], c) } else { [0.0; 3] })
        })
        .collect();
    // 3. Atom rows.
    let mut out = OfficialInputs::default();
    let mut ca_row = Vec::with_capacity(n);
    for (k, &r) in keep.iter().enumerate() {
        let res = &chain.residues[r];
        for (s, &pos) in all37[k].iter().enumerate() {
            if !res.mask[s] {
                continue;
            }
            if s == 1 {
                ca_row.push(out.atom_type.len());
            }
            out.atom_pos.push(pos);
            out.atom_type.push(s as u32);
            out.residue_type.push(res.residue_type);
            out.residue_idx.push(k as u32);
            out.res_mask.push(s == 1);
        }
    }
    let m = out.atom_pos.len();
    if m < 3 {
        return Err(err(format!("official Vabs-Net needs at least 3 atoms ({m} given)")));
    }
    // 4. kNN edges (self included), then the virtual node's blocks.
    let ca: Vec<[f64; 3]> = ca_row.iter().map(|&a| out.atom_pos[a]).collect();
    let k_res = opts.knn_res.min(n - 1);
    let k_atom = opts.knn_atom.min(m - 1);
    if k_res == 0 || k_atom < 2 {
        return Err(err("knn_res must be at least 1 and knn_atom at least 2"));
    }
    for (i, nb) in knn_with_self(&ca, k_res).into_iter().enumerate() {
        out.edge_index.extend(nb.into_iter().map(|j| [i as u32, j]));
    }
    for (i, nb) in knn_with_self(&out.atom_pos, k_atom).into_iter().enumerate() {
        out.aa_edge_index.extend(nb.into_iter().map(|j| [i as u32, j]));
    }
    let (vr, va) = (n as u32, m as u32);
    out.edge_index.extend((0..vr).map(|i| [i, vr]));
    out.edge_index.extend((0..vr).map(|i| [vr, i]));
    out.aa_edge_index.extend((0..va).map(|i| [va, i]));
    out.aa_edge_index.extend((0..va).map(|i| [i, va]));
    out.atom_pos.push([0.0; 3]);
    out.atom_type.push(VIRTUAL_ATOM);
    out.residue_type.push(VIRTUAL_RESIDUE);
    out.residue_idx.push(vr);
    out.res_mask.push(true);
    // 5. Frames from N, CA, C of every real residue (the atom track uses all of them; the
    // residue track gives the last residue a zero frame).
    let frames: Vec<[[f64; 3]; 3]> = all37.iter().map(|x| local_frame_f64(x[0], x[1], x[2])).collect();
    let mut res_pos = ca.clone();
    res_pos.push([0.0; 3]);
    let knn_edges = n * k_res;
    out.edge_vec.reserve(out.edge_index.len() * DIRECTION_WIDTH);
    for (e, &[d, s]) in out.edge_index.iter().enumerate() {
        let (pd, ps) = (res_pos[d as usize], res_pos[s as usize]);
        direction_features_f64(sub64(pd, ps), &mut out.edge_vec);
        let w = sub64(ps, pd);
        let local = if e >= knn_edges {
            w
        } else if (d as usize) + 1 == n {
            [0.0; 3]
        } else {
            normalize_f64(rotate64(&frames[d as usize], w))
        };
        direction_features_f64(local, &mut out.edge_vec);
    }
    out.edge_aa_vec.reserve(out.aa_edge_index.len() * DIRECTION_WIDTH);
    for &[d, s] in &out.aa_edge_index {
        let (pd, ps) = (out.atom_pos[d as usize], out.atom_pos[s as usize]);
        direction_features_f64(sub64(pd, ps), &mut out.edge_aa_vec);
        let r = out.residue_idx[d as usize] as usize;
        let local = if r < n { normalize_f64(rotate64(&frames[r], sub64(ps, pd))) } else { [0.0; 3] };
        direction_features_f64(local, &mut out.edge_aa_vec);
    }
    // 6. Language-model rows, f16-rounded; V takes <cls>.
    if let Some(lm) = &chain.lm {
        if lm.dim == 0 || lm.rows.len() != chain.residues.len() * lm.dim || lm.cls.len() != lm.dim {
            return Err(err(format!(
                "language-model rows: {} values and a {}-value <cls> row for {} residues of width {}",
                lm.rows.len(),
                lm.cls.len(),
                chain.residues.len(),
                lm.dim
            )));
        }
        let f16 = |x: f32| half::f16::from_f32(x).to_f32();
        let mut f = Vec::with_capacity((n + 1) * lm.dim);
        for &r in &keep {
            f.extend(lm.rows[r * lm.dim..(r + 1) * lm.dim].iter().map(|&x| f16(x)));
        }
        f.extend(lm.cls.iter().map(|&x| f16(x)));
        out.esm_feat = Some(f);
    }
    Ok(out)
}
