//! Neighbour search on 3D points: k nearest neighbours and radius graphs on a uniform grid,
//! in parallel over query points. Distances are Euclidean in ångström.

use rayon::prelude::*;

use crate::csr::Csr;

/// A uniform grid of cells holding point indices.
struct Grid {
    origin: [f32; 3],
    cell: f32,
    dims: [usize; 3],
    /// CSR over cells: points of cell c are `items[starts[c]..starts[c+1]]`.
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
        let (lo, hi) = bounds(points);
        let cell = cell.max(1e-3);
        // Bound the number of cells so absurd coordinates cannot exhaust memory.
        let mut cell = cell;
        loop {
            let n: f64 = (0..3).map(|d| ((hi[d] - lo[d]) / cell).floor() as f64 + 1.0).product();
            if n <= 4.0 * points.len().max(1) as f64 + 64.0 {
                break;
            }
            cell *= 2.0;
        }
        let dims = [0, 1, 2].map(|d| ((hi[d] - lo[d]) / cell).floor() as usize + 1);
        let ncell = dims[0] * dims[1] * dims[2];
        let mut counts = vec![0u32; ncell + 1];
        let cell_of: Vec<usize> = points
            .iter()
            .map(|p| {
                let c = [0, 1, 2].map(|d| (((p[d] - lo[d]) / cell) as usize).min(dims[d] - 1));
                (c[0] * dims[1] + c[1]) * dims[2] + c[2]
            })
            .collect();
        for &c in &cell_of {
            counts[c + 1] += 1;
        }
        for i in 0..ncell {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut items = vec![0u32; points.len()];
        for (i, &c) in cell_of.iter().enumerate() {
            items[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
        let sorted = items.iter().map(|&i| points[i as usize]).collect();
        Grid { origin: lo, cell, dims, starts: counts, items, sorted }
    }

    /// Number of non-empty cells.
    fn occupied(&self) -> usize {
        self.starts.windows(2).filter(|w| w[1] > w[0]).count()
    }

    fn coord(&self, p: &[f32; 3]) -> [i64; 3] {
        [0, 1, 2].map(|d| ((p[d] - self.origin[d]) / self.cell).floor() as i64)
    }

    /// Calls `f(index, position)` for every point in the cells of Chebyshev ring `r` around
    /// cell `c` (the shell only).
    fn for_shell(&self, c: [i64; 3], r: i64, mut f: impl FnMut(u32, &[f32; 3])) {
        let lim = |d: usize| self.dims[d] as i64 - 1;
        for x in (c[0] - r).max(0)..=(c[0] + r).min(lim(0)) {
            for y in (c[1] - r).max(0)..=(c[1] + r).min(lim(1)) {
                for z in (c[2] - r).max(0)..=(c[2] + r).min(lim(2)) {
                    let on_shell = (x - c[0]).abs() == r || (y - c[1]).abs() == r || (z - c[2]).abs() == r;
                    if !on_shell {
                        continue;
                    }
                    let cell = ((x as usize) * self.dims[1] + y as usize) * self.dims[2] + z as usize;
                    let (a, b) = (self.starts[cell] as usize, self.starts[cell + 1] as usize);
                    for (i, p) in self.items[a..b].iter().zip(&self.sorted[a..b]) {
                        f(*i, p);
                    }
                }
            }
        }
    }

    fn max_ring(&self) -> i64 {
        *self.dims.iter().max().unwrap() as i64
    }
}

fn dist2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    x * x + y * y + z * z
}

/// The `k` nearest other points of every point (fewer when there are fewer points), nearest
/// first, ties broken by index. `edges` holds distances in milli-ångström (rounded).
pub fn knn(points: &[[f32; 3]], k: usize) -> Csr {
    let n = points.len();
    let k = k.min(n.saturating_sub(1));
    if k == 0 {
        return Csr { offsets: vec![0; n + 1], targets: vec![], edges: vec![] };
    }
    // Cell size from the density of the occupied cells, aiming at about k/3 points per cell so
    // that the 27 cells around a point usually hold its k neighbours.
    let (lo, hi) = bounds(points);
    let volume: f32 = (0..3).map(|d| (hi[d] - lo[d]).max(1.0)).product();
    let target = (k as f32 / 3.0).max(1.0);
    let h0 = (volume * target / n as f32).cbrt().clamp(0.5, 1e4);
    let probe = Grid::new(points, h0);
    let density = n as f32 / (probe.occupied().max(1) as f32 * probe.cell.powi(3));
    let grid = Grid::new(points, (target / density).cbrt().clamp(0.5, 1e4));
    // One task per occupied cell: the points of the 27 surrounding cells are gathered once and
    // shared by every query point of the cell; a query whose k-th neighbour could lie outside
    // that cube falls back to searching ring by ring. Rows are written in cell order and
    // scattered to their points afterwards.
    let mut t_sorted = vec![0u32; n * k];
    let mut e_sorted = vec![0u32; n * k];
    let ncell = grid.starts.len() - 1;
    let cells: Vec<usize> = (0..ncell).filter(|&c| grid.starts[c + 1] > grid.starts[c]).collect();
    // Split the output rows by cell (cells are contiguous in sorted order).
    let mut t_parts: Vec<(usize, &mut [u32], &mut [u32])> = Vec::with_capacity(cells.len());
    {
        let mut t_rest: &mut [u32] = &mut t_sorted;
        let mut e_rest: &mut [u32] = &mut e_sorted;
        for &c in &cells {
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
    t_parts.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |(shared_p, shared_i, cand): &mut (Vec<[f32; 3]>, Vec<u32>, Vec<u64>), (cell, t_out, e_out)| {
            let cz = cell % grid.dims[2];
            let cy = (cell / grid.dims[2]) % grid.dims[1];
            let cx = cell / (grid.dims[1] * grid.dims[2]);
            let c = [cx as i64, cy as i64, cz as i64];
            shared_p.clear();
            shared_i.clear();
            for r in 0..=1 {
                grid.for_shell(c, r, |j, pj| {
                    shared_i.push(j);
                    shared_p.push(*pj);
                });
            }
            let (a, b) = (grid.starts[cell] as usize, grid.starts[cell + 1] as usize);
            for (slot, q) in (a..b).enumerate() {
                let i = grid.items[q];
                let p = grid.sorted[q];
                cand.clear();
                cand.extend(
                    shared_p.iter().zip(shared_i.iter()).filter(|(_, &j)| j != i).map(|(pj, &j)| key(dist2(&p, pj), j)),
                );
                let mut r = 1i64;
                loop {
                    let exhausted = r > grid.max_ring();
                    if cand.len() >= k || exhausted {
                        let m = k.min(cand.len());
                        if m > 0 && m < cand.len() {
                            cand.select_nth_unstable(m - 1);
                            cand.truncate(m);
                        }
                        // Points outside the scanned cube are at least this far away.
                        let bound = (0..3)
                            .map(|d| {
                                let lo_face = grid.origin[d] + (c[d] - r) as f32 * grid.cell;
                                let hi_face = grid.origin[d] + (c[d] + r + 1) as f32 * grid.cell;
                                (p[d] - lo_face).min(hi_face - p[d])
                            })
                            .fold(f32::INFINITY, f32::min);
                        let kth = cand.iter().copied().max().map_or(0.0, |x| f32::from_bits((x >> 32) as u32));
                        if exhausted || (cand.len() >= k && kth <= bound * bound) {
                            break;
                        }
                    }
                    r += 1;
                    grid.for_shell(c, r, |j, pj| {
                        if j != i {
                            cand.push(key(dist2(&p, pj), j));
                        }
                    });
                }
                cand.sort_unstable();
                let t_row = &mut t_out[slot * k..(slot + 1) * k];
                let e_row = &mut e_out[slot * k..(slot + 1) * k];
                for (s_, x) in cand.iter().take(k).enumerate() {
                    t_row[s_] = *x as u32;
                    e_row[s_] = (f32::from_bits((x >> 32) as u32).sqrt() * 1000.0).round() as u32;
                }
            }
        },
    );
    let mut targets = vec![0u32; n * k];
    let mut edges = vec![0u32; n * k];
    for (q, &i) in grid.items.iter().enumerate() {
        let (src, dst) = (q * k..(q + 1) * k, i as usize * k..(i as usize + 1) * k);
        targets[dst.clone()].copy_from_slice(&t_sorted[src.clone()]);
        edges[dst].copy_from_slice(&e_sorted[src]);
    }
    let offsets = (0..=n).map(|i| (i * k) as u32).collect();
    Csr { offsets, targets, edges }
}

/// Every other point within `cutoff` ångström of every point, nearest first.
pub fn radius(points: &[[f32; 3]], cutoff: f32) -> Csr {
    let all: Vec<u32> = (0..points.len() as u32).collect();
    radius_of(points, &all, cutoff)
}

/// Like [`radius`], but only for the query points listed (row `r` of the result belongs to
/// `queries[r]`); neighbours are searched among all points.
pub fn radius_of(points: &[[f32; 3]], queries: &[u32], cutoff: f32) -> Csr {
    let grid = Grid::new(points, cutoff.max(0.5));
    let reach = (cutoff / grid.cell).ceil() as i64;
    let c2 = cutoff * cutoff;
    let rows: Vec<Vec<(f32, u32)>> = queries
        .par_iter()
        .map(|&i| {
            let (i, p) = (i as usize, &points[i as usize]);
            let c = grid.coord(p);
            let mut out = Vec::new();
            for r in 0..=reach {
                grid.for_shell(c, r, |j, pj| {
                    if j as usize != i {
                        let d = dist2(p, pj);
                        if d <= c2 {
                            out.push((d, j));
                        }
                    }
                });
            }
            out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            out
        })
        .collect();
    to_csr(rows)
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
    fn absurd_coordinates_do_not_explode() {
        let p = vec![[0.0, 0.0, 0.0], [1e6, -1e6, 3e5], [1.0, 1.0, 1.0], [9999.0, 0.0, 0.0]];
        let c = knn(&p, 2);
        assert_eq!(c.neighbors(0)[0], 2);
        let r = radius(&p, 2.0);
        assert_eq!(r.neighbors(0), &[2]);
    }
}
