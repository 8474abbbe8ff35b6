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
}

impl Grid {
    fn new(points: &[[f32; 3]], cell: f32) -> Grid {
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in points {
            for d in 0..3 {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        if points.is_empty() {
            lo = [0.0; 3];
            hi = [0.0; 3];
        }
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
        Grid { origin: lo, cell, dims, starts: counts, items }
    }

    fn coord(&self, p: &[f32; 3]) -> [i64; 3] {
        [0, 1, 2].map(|d| ((p[d] - self.origin[d]) / self.cell).floor() as i64)
    }

    /// Calls `f` for every point in cells within Chebyshev ring `r` of `c` (the shell only).
    fn for_shell(&self, c: [i64; 3], r: i64, mut f: impl FnMut(u32)) {
        let lim = |d: usize| self.dims[d] as i64 - 1;
        for x in (c[0] - r).max(0)..=(c[0] + r).min(lim(0)) {
            for y in (c[1] - r).max(0)..=(c[1] + r).min(lim(1)) {
                for z in (c[2] - r).max(0)..=(c[2] + r).min(lim(2)) {
                    let on_shell = (x - c[0]).abs() == r || (y - c[1]).abs() == r || (z - c[2]).abs() == r;
                    if !on_shell {
                        continue;
                    }
                    let cell = ((x as usize) * self.dims[1] + y as usize) * self.dims[2] + z as usize;
                    for &i in &self.items[self.starts[cell] as usize..self.starts[cell + 1] as usize] {
                        f(i);
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
    // A cell about the size of a k-neighbourhood at the mean density.
    let grid = Grid::new(points, 3.0);
    let rows: Vec<Vec<(f32, u32)>> = points
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let c = grid.coord(p);
            let mut best: Vec<(f32, u32)> = Vec::with_capacity(4 * k);
            let mut r = 0;
            loop {
                grid.for_shell(c, r, |j| {
                    if j as usize != i {
                        best.push((dist2(p, &points[j as usize]), j));
                    }
                });
                if best.len() >= k {
                    best.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    best.truncate(k);
                    // After rings 0..=r every point closer than r·cell has been seen.
                    let reach = r as f32 * grid.cell;
                    if best[k - 1].0 < reach * reach {
                        break;
                    }
                }
                if r > grid.max_ring() {
                    best.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    best.truncate(k);
                    break;
                }
                r += 1;
            }
            best
        })
        .collect();
    to_csr(rows)
}

/// Every other point within `cutoff` ångström of every point, nearest first.
pub fn radius(points: &[[f32; 3]], cutoff: f32) -> Csr {
    let grid = Grid::new(points, cutoff.max(0.5));
    let reach = (cutoff / grid.cell).ceil() as i64;
    let c2 = cutoff * cutoff;
    let rows: Vec<Vec<(f32, u32)>> = points
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let c = grid.coord(p);
            let mut out = Vec::new();
            for r in 0..=reach {
                grid.for_shell(c, r, |j| {
                    if j as usize != i {
                        let d = dist2(p, &points[j as usize]);
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
        for (n, scale, k) in [(500, 30.0, 15), (300, 5.0, 30), (50, 200.0, 10), (3, 1.0, 30), (1, 1.0, 5), (0, 1.0, 5)] {
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
