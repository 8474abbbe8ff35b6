//! Square heat maps (attention matrices): one panel per matrix, row `i` top to bottom, column
//! `j` left to right, white to dark blue by `√(value / max)` so that small weights stay
//! visible. Matrices wider than [`MAX_CELLS`] are shown as block means.

use std::fmt::Write;

use crate::esc;

/// Most cells per side drawn; larger matrices are averaged over blocks of nodes.
pub const MAX_CELLS: usize = 160;

/// One square matrix to draw.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// Panel title.
    pub title: String,
    /// Side of the matrix.
    pub n: usize,
    /// `n · n` values, row-major.
    pub values: Vec<f32>,
    /// Labelled rows / columns: `(index, label)` (a few, e.g. every tenth residue).
    pub ticks: Vec<(usize, String)>,
}

impl Heatmap {
    /// The panel as an SVG document of `size` × `size` pixels.
    pub fn svg(&self, size: u32) -> String {
        let s = size as f64;
        let (left, top, right, bottom) = (70.0, 34.0, 12.0, 28.0);
        let side = (s - left - right).min(s - top - bottom).max(1.0);
        let block = self.n.div_ceil(MAX_CELLS).max(1);
        let cells = self.n.div_ceil(block);
        let mut means = vec![0f64; cells * cells];
        for i in 0..self.n {
            for j in 0..self.n {
                let v = f64::from(self.values.get(i * self.n + j).copied().unwrap_or(0.0));
                if v.is_finite() {
                    means[(i / block) * cells + j / block] += v;
                }
            }
        }
        for (k, m) in means.iter_mut().enumerate() {
            let (bi, bj) = (k / cells, k % cells);
            let rows = (self.n - bi * block).min(block);
            let cols = (self.n - bj * block).min(block);
            *m /= (rows * cols) as f64;
        }
        let max = means.iter().copied().fold(0.0, f64::max);
        let cell = side / cells.max(1) as f64;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\" font-family=\"DejaVu Sans, sans-serif\">"
        );
        let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let title = if block > 1 { format!("{} ({block}×{block} blocks)", self.title) } else { self.title.clone() };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"20\" font-size=\"13\" text-anchor=\"middle\">{}</text>",
            left + side / 2.0,
            esc(&title)
        );
        let _ = writeln!(
            out,
            "<rect x=\"{left}\" y=\"{top}\" width=\"{side:.2}\" height=\"{side:.2}\" fill=\"white\" stroke=\"#888\"/>"
        );
        for (k, &m) in means.iter().enumerate() {
            if m <= 0.0 || max <= 0.0 {
                continue;
            }
            let t = (m / max).sqrt();
            let c = |white: f64, dark: f64| (white + (dark - white) * t).round() as u8;
            let (x, y) = (left + (k % cells) as f64 * cell, top + (k / cells) as f64 * cell);
            let _ = writeln!(
                out,
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"#{:02x}{:02x}{:02x}\"/>",
                cell + 0.3,
                cell + 0.3,
                c(255.0, 8.0),
                c(255.0, 48.0),
                c(255.0, 107.0)
            );
        }
        for (i, label) in &self.ticks {
            let pos = (*i / block) as f64 * cell + cell / 2.0;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
                left - 4.0,
                top + pos,
                esc(label)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">attended node → (max {max:.3})</text>",
            left + side / 2.0,
            top + side + 18.0
        );
        out.push_str("</svg>\n");
        out
    }
}

/// Panels in a grid of `columns`, each `size` × `size` pixels, as one SVG document.
pub fn heatmap_grid(maps: &[Heatmap], columns: usize, size: u32) -> String {
    let columns = columns.max(1);
    let rows = maps.len().div_ceil(columns).max(1);
    let (w, h) = (size * columns.min(maps.len().max(1)) as u32, size * rows as u32);
    let mut out =
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n");
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    for (k, m) in maps.iter().enumerate() {
        let (x, y) = ((k % columns) as u32 * size, (k / columns) as u32 * size);
        out.push_str(&m.svg(size).replacen("<svg ", &format!("<svg x=\"{x}\" y=\"{y}\" "), 1));
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_matrix_is_drawn_as_block_means_and_rasterises() {
        let n = 400;
        let values: Vec<f32> = (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect();
        let m = Heatmap { title: "diag <&>".into(), n, values, ticks: vec![(0, "A 1".into()), (399, "A 400".into())] };
        let svg = m.svg(300);
        // 400 nodes in blocks of 3: 134 diagonal cells drawn, nothing else.
        assert_eq!(svg.matches("<rect x=").count(), 1 + 134);
        assert!(svg.contains("3×3 blocks") && !svg.contains("<&>"));
        let grid = heatmap_grid(&[m.clone(), m], 2, 300);
        let png = crate::png_of_svg(&grid).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        assert_eq!((dec.info().width, dec.info().height), (600, 300));
    }
}
