//! Neighbour search on 3D points: k nearest neighbours and radius graphs on a sparse uniform
//! grid, in parallel over query points. Distances are Euclidean in ångström.
//!
//! # Limits
//! Time and memory are bounded whatever the coordinates:
//! - cells are hashed, so one far outlier does not stretch the grid (only occupied cells
//!   exist); a k-NN query that finds too few points within a few rings of cells is answered
//!   by a scan over all points;
//! - no query examines more than [`scan_limit`] candidate points, and no radius row keeps
//!   more than [`radius_row_limit`] neighbours (its nearest). Both bounds sit far above any
//!   molecule ([`MAX_DENSITY`]): they bite only on non-physical input such as thousands of
//!   coincident atoms. Every query they cut short is counted in [`Search::truncated`], so a
//!   caller can warn; for coincident points the answer is still the exact one (ties break by
//!   index, and a cell lists its points in index order).
//!
//! Results are exact whenever no query was truncated and squared distances are finite in
//! `f32` (coordinates below about 1e18).

use std::collections::HashMap;

use rayon::prelude::*;

use crate::csr::Csr;

/// Points per cubic ångström above which space is not a molecule: five times the densest
/// solids (diamond holds 0.18 atoms/Å³, water with hydrogens 0.1). The search caps derive
/// from it.
pub const MAX_DENSITY: f32 = 0.5;

/// Candidates one query may examine with cells of edge `cell` Å and `k` wanted neighbours
/// (`k = 0` for radius search): at least 1,024, at least 128·k, and the points the 27
/// surrounding cells would hold at [`MAX_DENSITY`].
pub fn scan_limit(cell: f32, k: usize) -> usize {
    let physical = (MAX_DENSITY * 27.0 * cell.powi(3)).ceil();
    (physical.min(1e9) as usize).max(1024).max(128 * k)
}

/// Neighbours one radius row keeps (its nearest) for a cutoff of `cutoff` Å: the points a
/// sphere of that radius would hold at [`MAX_DENSITY`], at least 64.
pub fn radius_row_limit(cutoff: f32) -> usize {
    let physical = (MAX_DENSITY * 4.0 / 3.0 * std::f32::consts::PI * cutoff.powi(3)).ceil();
    (physical.min(1e9) as usize).max(64)
}

/// A neighbour search: the lists, and how many queries the limits cut short.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// Neighbour lists, one row per query; `edges` holds distances in milli-ångström.
    pub csr: Csr,
    /// Queries whose candidates were capped at [`scan_limit`] or whose row was capped at
    /// [`radius_row_limit`] (zero on any physical structure).
    pub truncated: usize,
}

/// Rings of cells a k-NN query walks before it falls back to scanning every point.
const MAX_RINGS: i64 = 3;

/// Where a grid finds its occupied cells: an array over the bounding box when that box holds
/// few cells (any physical structure), a hash map otherwise (far outliers).
enum Cells {
    /// `slot[(x * dims[1] + y) * dims[2] + z]` is the occupied-cell index, `u32::MAX` if empty.
    Dense { dims: [i64; 3], slot: Vec<u32> },
    /// Occupied cell coordinate → occupied-cell index.
    Sparse(HashMap<[i64; 3], u32>),
}

/// A uniform grid listing its occupied cells only, each holding its point indices.
struct Grid {
    origin: [f32; 3],
    cell: f32,
    cells: Cells,
    /// Cell coordinates, one per occupied cell, in lexicographic order.
    keys: Vec<[i64; 3]>,
    /// CSR over occupied cells: points of cell c are `items[starts[c]..starts[c+1]]`, in
    /// index order.
    starts: Vec<u32>,
    items: Vec<u32>,
    /// Positions in the same (cell) order as `items`, for cache-friendly scans.
    sorted: Vec<[f32; 3]>,
}

/// Bounding box of the points (zero box when empty).
fn bounds(points: &[[f32; 3]]) -> ([f32; 3], [f32; 3]) {
    if points.is_empty() {
        return ([0.0; 3], [0.0; 3]);
    }
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for p in points {
        for d in 0..3 {
            lo[d] = lo[d].min(p[d]);
            hi[d] = hi[d].max(p[d]);
        }
    }
    (lo, hi)
}

impl Grid {
    fn new(points: &[[f32; 3]], cell: f32) -> Grid {
        let (origin, hi) = bounds(points);
        let cell = cell.max(1e-3);
        // `as i64` saturates, so even absurd coordinates land in some (far) cell.
        let key_of = |p: &[f32; 3]| [0, 1, 2].map(|d| ((p[d] - origin[d]) / cell).floor() as i64);
        let span: [f64; 3] = [0, 1, 2].map(|d| ((hi[d] - origin[d]) / cell).floor() as f64 + 1.0);
        let dense = span.iter().product::<f64>() <= 4.0 * points.len() as f64 + 64.0;
        let keys_of_points: Vec<[i64; 3]> = points.iter().map(key_of).collect();
        // Points in (cell, index) order: a counting sort over the box, or a sort by key.
        let (order, mut cells) = if dense {
            let dims = span.map(|v| v as i64);
            let lin = |k: &[i64; 3]| {
                ((k[0].min(dims[0] - 1) * dims[1] + k[1].min(dims[1] - 1)) * dims[2] + k[2].min(dims[2] - 1)) as usize
            };
            let ncell = (dims[0] * dims[1] * dims[2]) as usize;
            let mut counts = vec![0u32; ncell + 1];
            for k in &keys_of_points {
                counts[lin(k) + 1] += 1;
            }
            for c in 0..ncell {
                counts[c + 1] += counts[c];
            }
            let mut order = vec![0u32; points.len()];
            for (i, k) in keys_of_points.iter().enumerate() {
                let c = lin(k);
                order[counts[c] as usize] = i as u32;
                counts[c] += 1;
            }
            (order, Cells::Dense { dims, slot: vec![u32::MAX; ncell] })
        } else {
            let mut order: Vec<u32> = (0..points.len() as u32).collect();
            order.par_sort_unstable_by_key(|&i| (keys_of_points[i as usize], i));
            (order, Cells::Sparse(HashMap::new()))
        };
        let mut keys: Vec<[i64; 3]> = Vec::new();
        let mut starts = Vec::new();
        for (q, &i) in order.iter().enumerate() {
            let mut key = keys_of_points[i as usize];
            if let Cells::Dense { dims, .. } = &cells {
                key = [0, 1, 2].map(|d| key[d].min(dims[d] - 1));
            }
            if keys.last() != Some(&key) {
                match &mut cells {
                    Cells::Dense { dims, slot } => {
                        slot[((key[0] * dims[1] + key[1]) * dims[2] + key[2]) as usize] = keys.len() as u32
                    }
                    Cells::Sparse(map) => {
                        map.insert(key, keys.len() as u32);
                    }
                }
                starts.push(q as u32);
                keys.push(key);
            }
        }
        starts.push(order.len() as u32);
        let sorted = order.iter().map(|&i| points[i as usize]).collect();
        Grid { origin, cell, cells, keys, starts, items: order, sorted }
    }

    /// Number of occupied cells.
    fn occupied(&self) -> usize {
        self.keys.len()
    }

    fn coord(&self, p: &[f32; 3]) -> [i64; 3] {
        [0, 1, 2].map(|d| ((p[d] - self.origin[d]) / self.cell).floor() as i64)
    }

    /// The item range of the cell at coordinate `c`, if occupied.
    fn range(&self, c: [i64; 3]) -> Option<std::ops::Range<usize>> {
        let k = match &self.cells {
            Cells::Dense { dims, slot } => {
                if (0..3).any(|d| c[d] < 0 || c[d] >= dims[d]) {
                    return None;
                }
                let k = slot[((c[0] * dims[1] + c[1]) * dims[2] + c[2]) as usize];
                if k == u32::MAX {
                    return None;
                }
                k
            }
            Cells::Sparse(map) => *map.get(&c)?,
        };
        Some(self.starts[k as usize] as usize..self.starts[k as usize + 1] as usize)
    }

    /// Calls `f(index, position)` for every point in the cells of Chebyshev ring `r` around
    /// cell `c` (the shell only), in cell order, until `f` returns `false`; says whether it
    /// went through every point.
    fn for_shell(&self, c: [i64; 3], r: i64, mut f: impl FnMut(u32, &[f32; 3]) -> bool) -> bool {
        let span = |d: usize| {
            let (lo, hi) = (c[d].saturating_sub(r), c[d].saturating_add(r));
            match &self.cells {
                Cells::Dense { dims, .. } => lo.max(0)..=hi.min(dims[d] - 1),
                Cells::Sparse(_) => lo..=hi,
            }
        };
        for x in span(0) {
            for y in span(1) {
                for z in span(2) {
                    let on_shell =
                        x.abs_diff(c[0]) == r as u64 || y.abs_diff(c[1]) == r as u64 || z.abs_diff(c[2]) == r as u64;
                    if !on_shell {
                        continue;
                    }
                    if let Some(range) = self.range([x, y, z]) {
                        for (i, p) in self.items[range.clone()].iter().zip(&self.sorted[range]) {
                            if !f(*i, p) {
                                return false;
                            }
                        }
                    }
                }
            }
        }
        true
    }
}

fn dist2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    x * x + y * y + z * z
}

/// The `k` nearest other points of every point (fewer when there are fewer points), nearest
/// first, ties broken by index. `edges` holds distances in milli-ångström (rounded).
pub fn knn(points: &[[f32; 3]], k: usize) -> Csr {
    knn_search(points, k).csr
}

/// Edge of the box holding the central 98 % of the points along each axis, so that a few
/// outliers do not make the density look low.
fn central_extent(points: &[[f32; 3]]) -> [f32; 3] {
    let n = points.len();
    let (lo_q, hi_q) = (n / 100, n - 1 - n / 100);
    [0, 1, 2].map(|d| {
        let mut v: Vec<f32> = points.iter().map(|p| p[d]).collect();
        let (_, lo, rest) = v.select_nth_unstable_by(lo_q, f32::total_cmp);
        let lo = *lo;
        let hi = if hi_q == lo_q { lo } else { *rest.select_nth_unstable_by(hi_q - lo_q - 1, f32::total_cmp).1 };
        (hi - lo).max(1.0)
    })
}

/// [`knn`] with the count of queries the limits cut short.
pub fn knn_search(points: &[[f32; 3]], k: usize) -> Search {
    let n = points.len();
    let k = k.min(n.saturating_sub(1));
    if k == 0 {
        return Search { csr: Csr { offsets: vec![0; n + 1], targets: vec![], edges: vec![] }, truncated: 0 };
    }
    // Cell size from the density of the occupied cells, aiming at about k/4.5 points per cell:
    // the 27 cells around a point then hold ~6k candidates, usually enough for its k neighbours
    // (k/3 held ~9k, and selecting among them cost more than the extra ring searches k/4.5
    // needs: +5 % AlphaFold-sized structures/s, 51,688-atom graph 91.6 → 88.5 ms, 2026-12-04).
    let volume: f32 = central_extent(points).iter().product();
    let target = (k as f32 / 4.5).max(1.0);
    let h0 = (volume * target / n as f32).cbrt().clamp(0.5, 1e4);
    let probe = Grid::new(points, h0);
    let density = n as f32 / (probe.occupied().max(1) as f32 * probe.cell.powi(3));
    let grid = Grid::new(points, (target / density).cbrt().clamp(0.5, 1e4));
    let limit = scan_limit(grid.cell, k);
    // One task per occupied cell: the points of the 27 surrounding cells are gathered once and
    // shared by every query point of the cell; a query whose k-th neighbour could lie outside
    // that cube searches ring by ring, and past a few rings scans every point. Rows are
    // written in cell order and scattered to their points afterwards.
    let mut t_sorted = vec![0u32; n * k];
    let mut e_sorted = vec![0u32; n * k];
    let mut t_parts: Vec<(usize, &mut [u32], &mut [u32])> = Vec::with_capacity(grid.occupied());
    {
        let mut t_rest: &mut [u32] = &mut t_sorted;
        let mut e_rest: &mut [u32] = &mut e_sorted;
        for c in 0..grid.occupied() {
            let len = (grid.starts[c + 1] - grid.starts[c]) as usize * k;
            let (t_head, t_tail) = std::mem::take(&mut t_rest).split_at_mut(len);
            let (e_head, e_tail) = std::mem::take(&mut e_rest).split_at_mut(len);
            t_parts.push((c, t_head, e_head));
            t_rest = t_tail;
            e_rest = e_tail;
        }
    }
    // Candidates are packed as (squared-distance bits << 32 | index): non-negative f32 bits
    // order like the numbers, so integer selection sorts by distance, then index.
    let key = |d2: f32, j: u32| ((d2.to_bits() as u64) << 32) | j as u64;
    let truncated: usize = t_parts
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(shared_p, shared_i, cand): &mut (Vec<[f32; 3]>, Vec<u32>, Vec<u64>), (cell, t_out, e_out)| {
                let c = grid.keys[cell];
                shared_p.clear();
                shared_i.clear();
                let mut capped = false;
                for r in 0..=1 {
                    capped = !grid.for_shell(c, r, |j, pj| {
                        shared_i.push(j);
                        shared_p.push(*pj);
                        shared_i.len() < limit
                    });
                    if capped {
                        break;
                    }
                }
                let (a, b) = (grid.starts[cell] as usize, grid.starts[cell + 1] as usize);
                for (slot, q) in (a..b).enumerate() {
                    let i = grid.items[q];
                    let p = grid.sorted[q];
                    cand.clear();
                    cand.extend(
                        shared_p
                            .iter()
                            .zip(shared_i.iter())
                            .filter(|(_, &j)| j != i)
                            .map(|(pj, &j)| key(dist2(&p, pj), j)),
                    );
                    let mut r = 1i64;
                    loop {
                        if capped {
                            break;
                        }
                        if cand.len() >= k {
                            if cand.len() > k {
                                cand.select_nth_unstable(k - 1);
                                cand.truncate(k);
                            }
                            // Points outside the scanned cube are at least this far away.
                            let bound = (0..3)
                                .map(|d| {
                                    let lo_face = grid.origin[d] + (c[d] - r) as f32 * grid.cell;
                                    let hi_face = grid.origin[d] + c[d].saturating_add(r + 1) as f32 * grid.cell;
                                    (p[d] - lo_face).min(hi_face - p[d])
                                })
                                .fold(f32::INFINITY, f32::min);
                            let kth = cand.iter().copied().max().map_or(0.0, |x| f32::from_bits((x >> 32) as u32));
                            if kth <= bound * bound {
                                break;
                            }
                        }
                        r += 1;
                        if r > MAX_RINGS {
                            // Isolated point: every other point is a candidate.
                            cand.clear();
                            cand.extend(
                                points
                                    .iter()
                                    .enumerate()
                                    .filter(|&(j, _)| j as u32 != i)
                                    .map(|(j, pj)| key(dist2(&p, pj), j as u32)),
                            );
                            break;
                        }
                        grid.for_shell(c, r, |j, pj| {
                            if j != i {
                                cand.push(key(dist2(&p, pj), j));
                            }
                            true
                        });
                    }
                    if cand.len() > k {
                        cand.select_nth_unstable(k - 1);
                        cand.truncate(k);
                    }
                    cand.sort_unstable();
                    let t_row = &mut t_out[slot * k..(slot + 1) * k];
                    let e_row = &mut e_out[slot * k..(slot + 1) * k];
                    for (s_, x) in cand.iter().enumerate() {
                        t_row[s_] = *x as u32;
                        e_row[s_] = (f32::from_bits((x >> 32) as u32).sqrt() * 1000.0).round() as u32;
                    }
                }
                if capped {
                    b - a
                } else {
                    0
                }
            },
        )
        .sum();
    let mut targets = vec![0u32; n * k];
    let mut edges = vec![0u32; n * k];
    for (q, &i) in grid.items.iter().enumerate() {
        let (src, dst) = (q * k..(q + 1) * k, i as usize * k..(i as usize + 1) * k);
        targets[dst.clone()].copy_from_slice(&t_sorted[src.clone()]);
        edges[dst].copy_from_slice(&e_sorted[src]);
    }
    let offsets = (0..=n).map(|i| (i * k) as u32).collect();
    Search { csr: Csr { offsets, targets, edges }, truncated }
}

/// Every other point within `cutoff` ångström of every point, nearest first.
pub fn radius(points: &[[f32; 3]], cutoff: f32) -> Csr {
    radius_search(points, None, cutoff).csr
}

/// Like [`radius`], but only for the query points listed (row `r` of the result belongs to
/// `queries[r]`); neighbours are searched among all points.
pub fn radius_of(points: &[[f32; 3]], queries: &[u32], cutoff: f32) -> Csr {
    radius_search(points, Some(queries), cutoff).csr
}

/// [`radius`] (all points, `queries = None`) or [`radius_of`], with the count of queries the
/// limits cut short: rows hold at most [`radius_row_limit`] neighbours, the nearest.
pub fn radius_search(points: &[[f32; 3]], queries: Option<&[u32]>, cutoff: f32) -> Search {
    let grid = Grid::new(points, cutoff.max(0.5));
    let reach = (cutoff / grid.cell).ceil() as i64;
    let c2 = cutoff * cutoff;
    let (limit, row_limit) = (scan_limit(grid.cell, 0), radius_row_limit(cutoff));
    let one = |i: u32| -> (Vec<(f32, u32)>, bool) {
        let (i, p) = (i as usize, &points[i as usize]);
        let c = grid.coord(p);
        let (mut out, mut seen, mut whole) = (Vec::new(), 0usize, true);
        for r in 0..=reach {
            whole = grid.for_shell(c, r, |j, pj| {
                if j as usize != i {
                    seen += 1;
                    let d = dist2(p, pj);
                    if d <= c2 {
                        out.push((d, j));
                    }
                }
                seen < limit
            });
            if !whole {
                break;
            }
        }
        let order = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        let cut = !whole || out.len() > row_limit;
        if out.len() > row_limit {
            out.select_nth_unstable_by(row_limit - 1, order);
            out.truncate(row_limit);
        }
        out.sort_by(order);
        (out, cut)
    };
    let rows: Vec<(Vec<(f32, u32)>, bool)> = match queries {
        Some(q) => q.par_iter().map(|&i| one(i)).collect(),
        None => (0..points.len() as u32).into_par_iter().map(one).collect(),
    };
    let truncated = rows.iter().filter(|r| r.1).count();
    Search { csr: to_csr(rows.into_iter().map(|r| r.0).collect()), truncated }
}

fn to_csr(rows: Vec<Vec<(f32, u32)>>) -> Csr {
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    offsets.push(0u32);
    let total: usize = rows.iter().map(|r| r.len()).sum();
    let mut targets = Vec::with_capacity(total);
    let mut edges = Vec::with_capacity(total);
    for r in rows {
        for (d2, j) in r {
            targets.push(j);
            edges.push((d2.sqrt() * 1000.0).round() as u32);
        }
        offsets.push(targets.len() as u32);
    }
    Csr { offsets, targets, edges }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_knn(p: &[[f32; 3]], k: usize) -> Vec<Vec<u32>> {
        (0..p.len())
            .map(|i| {
                let mut v: Vec<(f32, u32)> =
                    (0..p.len()).filter(|&j| j != i).map(|j| (dist2(&p[i], &p[j]), j as u32)).collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                v.into_iter().take(k).map(|x| x.1).collect()
            })
            .collect()
    }

    fn cloud(n: usize, seed: u64, scale: f32) -> Vec<[f32; 3]> {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * scale
        };
        (0..n).map(|_| [next(), next(), next()]).collect()
    }

    #[test]
    fn knn_equals_brute_force() {
        for (n, scale, k) in [(500, 30.0, 15), (300, 5.0, 30), (50, 200.0, 10), (3, 1.0, 30), (1, 1.0, 5), (0, 1.0, 5)]
        {
            let p = cloud(n, 42 + n as u64, scale);
            let c = knn(&p, k);
            let b = brute_knn(&p, k);
            for i in 0..n {
                assert_eq!(c.neighbors(i), &b[i][..], "n={n} i={i}");
            }
        }
    }

    #[test]
    fn radius_equals_brute_force() {
        let p = cloud(400, 7, 25.0);
        let c = radius(&p, 4.5);
        for i in 0..p.len() {
            let mut want: Vec<u32> =
                (0..p.len()).filter(|&j| j != i && dist2(&p[i], &p[j]) <= 4.5 * 4.5).map(|j| j as u32).collect();
            want.sort();
            let mut got = c.neighbors(i).to_vec();
            got.sort();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_far_outlier_keeps_results_exact() {
        // One point at 1e30 once stretched the grid so that every other point shared a cell.
        let mut p = cloud(300, 11, 20.0);
        p.insert(150, [1e30, 0.0, 0.0]);
        let s = knn_search(&p, 12);
        assert_eq!(s.truncated, 0);
        let b = brute_knn(&p, 12);
        for i in 0..p.len() {
            assert_eq!(s.csr.neighbors(i), &b[i][..], "i={i}");
        }
        let r = radius_search(&p, None, 3.0);
        assert_eq!(r.truncated, 0);
        assert!(r.csr.neighbors(150).is_empty());
        for i in (0..p.len()).filter(|&i| i != 150) {
            let mut want: Vec<u32> =
                (0..p.len()).filter(|&j| j != i && dist2(&p[i], &p[j]) <= 9.0).map(|j| j as u32).collect();
            want.sort();
            let mut got = r.csr.neighbors(i).to_vec();
            got.sort();
            assert_eq!(got, want, "i={i}");
        }
    }

    #[test]
    fn coincident_points_are_capped_and_counted() {
        // 20,000 atoms at one point once asked > 5 GB of radius_of; every row is now capped
        // (nearest first, ties by index: exactly the lowest other indices).
        let n = 20_000;
        let p = vec![[1.5f32, -2.0, 3.0]; n];
        let queries: Vec<u32> = (0..n as u32).step_by(7).collect();
        let r = radius_search(&p, Some(&queries), 2.7);
        let cap = radius_row_limit(2.7);
        assert_eq!(r.truncated, queries.len());
        for (row, &i) in queries.iter().enumerate() {
            let want: Vec<u32> = (0..n as u32).filter(|&j| j != i).take(cap).collect();
            assert_eq!(r.csr.neighbors(row), &want[..], "query {i}");
        }
        let p = &p[..6000];
        let s = knn_search(p, 8);
        assert_eq!(s.truncated, p.len());
        for i in [0usize, 5, 5999] {
            let want: Vec<u32> = (0..n as u32).filter(|&j| j != i as u32).take(8).collect();
            assert_eq!(s.csr.neighbors(i), &want[..]);
        }
        // A physical structure is never cut.
        let q = cloud(2000, 3, 28.0);
        assert_eq!(radius_search(&q, None, 2.7).truncated, 0);
        assert_eq!(knn_search(&q, 30).truncated, 0);
    }

    #[test]
    fn absurd_coordinates_do_not_explode() {
        let p = vec![[0.0, 0.0, 0.0], [1e6, -1e6, 3e5], [1.0, 1.0, 1.0], [9999.0, 0.0, 0.0]];
        let c = knn(&p, 2);
        assert_eq!(c.neighbors(0)[0], 2);
        let r = radius(&p, 2.0);
        assert_eq!(r.neighbors(0), &[2]);
    }
}
