#![warn(missing_docs)]
//! # aa-plot
//!
//! The workspace's charts: line charts (training and validation curves), bar charts with ± error
//! bars (a metric per encoder) and scatter plots (2-D maps of embeddings coloured by class),
//! each with axes, ticks, axis titles and a legend, written as SVG and rasterised to PNG with
//! resvg (text with the system's fonts; without any installed font the PNG has no text).

use std::fmt::Write as _;

mod heatmap;
pub use heatmap::{heatmap_grid, Heatmap, MAX_CELLS};

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The SVG could not be parsed (a bug here, or a bad size).
    #[error("svg: {0}")]
    Svg(String),
    /// The PNG could not be made.
    #[error("png: {0}")]
    Png(String),
}

/// Colours of successive series (Tableau 10).
pub const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/// One named series of points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`; non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
}

/// One bar: a mean and its ± error.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Category label under the bar.
    pub label: String,
    /// Height.
    pub value: f64,
    /// Half-length of the error bar (0: none).
    pub error: f64,
}

/// What kind of chart.
#[derive(Clone, Debug, PartialEq)]
pub enum Marks {
    /// Lines through each series' points.
    Lines(Vec<Series>),
    /// Dots for each series' points.
    Points(Vec<Series>),
    /// Vertical bars with error bars.
    Bars(Vec<Bar>),
}

/// A chart: title, axis titles, marks.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Title of the x axis.
    pub x_label: String,
    /// Title of the y axis.
    pub y_label: String,
    /// The marks.
    pub marks: Marks,
}

/// About `n` round tick values covering `[lo, hi]` (steps of 1, 2 or 5 × 10^k).
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || n == 0 {
        return Vec::new();
    }
    let span = (hi - lo).abs().max(1e-12);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10() - 1e-9).ceil().max(0.0) as usize };
    format!("{v:.decimals$}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Chart {
    /// The chart as an SVG document of `width` × `height` pixels.
    pub fn svg(&self, width: u32, height: u32) -> String {
        let (w, h) = (width as f64, height as f64);
        let (left, right, top, bottom) = (64.0, 16.0, 36.0, 52.0);
        let legend_w = match &self.marks {
            Marks::Lines(s) | Marks::Points(s) if !s.is_empty() => 150.0,
            _ => 0.0,
        };
        let (x0p, x1p, y0p, y1p) = (left, w - right - legend_w, h - bottom, top);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans, sans-serif\">"
        );
        let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"20\" font-size=\"14\" text-anchor=\"middle\">{}</text>",
            (x0p + x1p) / 2.0,
            esc(&self.title)
        );
        // Data ranges.
        let (xr, yr, categories) = match &self.marks {
            Marks::Lines(s) | Marks::Points(s) => {
                let pts: Vec<(f64, f64)> = s
                    .iter()
                    .flat_map(|s| s.points.iter().copied())
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect();
                let r = |f: fn(&(f64, f64)) -> f64| {
                    let lo = pts.iter().map(f).fold(f64::INFINITY, f64::min);
                    let hi = pts.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
                    if lo.is_finite() {
                        if hi > lo {
                            (lo, hi)
                        } else {
                            (lo - 0.5, hi + 0.5)
                        }
                    } else {
                        (0.0, 1.0)
                    }
                };
                (r(|p| p.0), r(|p| p.1), Vec::new())
            }
            Marks::Bars(b) => {
                let hi = b.iter().map(|b| b.value + b.error).filter(|v| v.is_finite()).fold(0.0, f64::max);
                let lo = b.iter().map(|b| b.value - b.error).filter(|v| v.is_finite()).fold(0.0, f64::min);
                (
                    (0.0, b.len().max(1) as f64),
                    (lo, if hi > lo { hi * 1.05 } else { lo + 1.0 }),
                    b.iter().map(|b| b.label.clone()).collect(),
                )
            }
        };
        let yt = ticks(yr.0, yr.1, 5);
        let (y_lo, y_hi) =
            (yr.0.min(yt.first().copied().unwrap_or(yr.0)), yr.1.max(yt.last().copied().unwrap_or(yr.1)));
        let sx = |x: f64| x0p + (x - xr.0) / (xr.1 - xr.0).max(1e-12) * (x1p - x0p);
        let sy = |y: f64| y0p - (y - y_lo) / (y_hi - y_lo).max(1e-12) * (y0p - y1p);
        // Axes, ticks, grid.
        let _ = writeln!(out, "<g stroke=\"#333\" stroke-width=\"1\"><line x1=\"{x0p}\" y1=\"{y0p}\" x2=\"{x1p}\" y2=\"{y0p}\"/><line x1=\"{x0p}\" y1=\"{y0p}\" x2=\"{x0p}\" y2=\"{y1p}\"/></g>");
        let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
        for &v in &yt {
            let y = sy(v);
            let _ = writeln!(out, "<line x1=\"{x0p}\" y1=\"{y:.1}\" x2=\"{x1p}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><line x1=\"{}\" y1=\"{y:.1}\" x2=\"{x0p}\" y2=\"{y:.1}\" stroke=\"#333\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>", x0p - 4.0, x0p - 6.0, y + 4.0, fmt_tick(v, ystep));
        }
        if categories.is_empty() {
            // Whole-number data (epochs, steps) get whole-number ticks.
            let whole = match &self.marks {
                Marks::Lines(s) | Marks::Points(s) => s.iter().flat_map(|s| &s.points).all(|p| p.0.fract() == 0.0),
                Marks::Bars(_) => false,
            };
            let mut xt = ticks(xr.0, xr.1, 6);
            if whole && xt.len() > 1 && xt[1] - xt[0] < 1.0 {
                xt = (xr.0.ceil() as i64..=xr.1.floor() as i64).map(|v| v as f64).collect();
            }
            let xstep = if xt.len() > 1 { xt[1] - xt[0] } else { 1.0 };
            for &v in &xt {
                let x = sx(v);
                let _ = writeln!(out, "<line x1=\"{x:.1}\" y1=\"{y0p}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>", y0p + 4.0, y0p + 16.0, fmt_tick(v, xstep));
            }
        } else {
            for (i, c) in categories.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                    sx(i as f64 + 0.5),
                    y0p + 16.0,
                    esc(c)
                );
            }
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            (x0p + x1p) / 2.0,
            h - 14.0,
            esc(&self.x_label)
        );
        let _ = writeln!(out, "<text x=\"16\" y=\"{0}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 {0})\">{1}</text>", (y0p + y1p) / 2.0, esc(&self.y_label));
        // Marks.
        match &self.marks {
            Marks::Lines(series) | Marks::Points(series) => {
                let lines = matches!(self.marks, Marks::Lines(_));
                for (k, s) in series.iter().enumerate() {
                    let c = PALETTE[k % PALETTE.len()];
                    let pts: Vec<(f64, f64)> =
                        s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
                    if lines {
                        let p: Vec<String> = pts.iter().map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1))).collect();
                        let _ = writeln!(
                            out,
                            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.8\" points=\"{}\"/>",
                            p.join(" ")
                        );
                    } else {
                        for p in &pts {
                            let _ = writeln!(
                                out,
                                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{c}\" fill-opacity=\"0.75\"/>",
                                sx(p.0),
                                sy(p.1)
                            );
                        }
                    }
                    let ly = top + 8.0 + 18.0 * k as f64;
                    let lx = w - right - legend_w + 12.0;
                    let _ = writeln!(out, "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>", ly - 10.0, lx + 18.0, ly, esc(&s.label));
                }
            }
            Marks::Bars(bars) => {
                for (i, b) in bars.iter().enumerate() {
                    let c = PALETTE[i % PALETTE.len()];
                    let (xa, xb) = (sx(i as f64 + 0.2), sx(i as f64 + 0.8));
                    let (ya, yb) = (sy(b.value.max(0.0)), sy(b.value.min(0.0)));
                    let _ = writeln!(
                        out,
                        "<rect x=\"{xa:.1}\" y=\"{ya:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\"/>",
                        xb - xa,
                        (yb - ya).max(0.0)
                    );
                    if b.error > 0.0 && b.error.is_finite() {
                        let xm = (xa + xb) / 2.0;
                        let (e0, e1) = (sy(b.value - b.error), sy(b.value + b.error));
                        let _ = writeln!(out, "<g stroke=\"#111\" stroke-width=\"1.2\"><line x1=\"{xm:.1}\" y1=\"{e0:.1}\" x2=\"{xm:.1}\" y2=\"{e1:.1}\"/><line x1=\"{:.1}\" y1=\"{e0:.1}\" x2=\"{:.1}\" y2=\"{e0:.1}\"/><line x1=\"{:.1}\" y1=\"{e1:.1}\" x2=\"{:.1}\" y2=\"{e1:.1}\"/></g>", xm - 5.0, xm + 5.0, xm - 5.0, xm + 5.0);
                    }
                    let _ = writeln!(
                        out,
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{:.3}</text>",
                        (xa + xb) / 2.0,
                        sy(b.value + b.error.max(0.0)) - 4.0,
                        b.value
                    );
                }
            }
        }
        out.push_str("</svg>\n");
        out
    }

    /// The chart as a PNG of `width` × `height` pixels (the SVG rasterised by resvg).
    pub fn png(&self, width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
        png_of_svg(&self.svg(width, height))
    }
}

/// The first two principal components of `rows` (each row one point): the rows centred, then
/// projected on the two leading eigenvectors of their covariance (power iteration with
/// deflation, in f64; each vector's sign fixed so that its largest entry is positive). Rows of
/// unequal width, or fewer than two rows, give an empty result.
pub fn pca_2d(rows: &[Vec<f32>]) -> Vec<(f64, f64)> {
    let n = rows.len();
    let Some(d) = rows.first().map(Vec::len) else { return Vec::new() };
    if n < 2 || d == 0 || rows.iter().any(|r| r.len() != d) {
        return Vec::new();
    }
    let mut mean = vec![0f64; d];
    for r in rows {
        for (m, &x) in mean.iter_mut().zip(r) {
            *m += f64::from(x) / n as f64;
        }
    }
    let centred: Vec<Vec<f64>> =
        rows.iter().map(|r| r.iter().zip(&mean).map(|(&x, m)| f64::from(x) - m).collect()).collect();
    let mut cov = vec![0f64; d * d];
    for r in &centred {
        for i in 0..d {
            if r[i] == 0.0 {
                continue;
            }
            for j in 0..d {
                cov[i * d + j] += r[i] * r[j];
            }
        }
    }
    let mut comps: Vec<Vec<f64>> = Vec::new();
    for c in 0..2 {
        // Deterministic start, not orthogonal to any fixed direction by construction.
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + ((i * 7 + c * 3) % 11) as f64 / 11.0).collect();
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..d).map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum()).collect();
            for p in &comps {
                let dot: f64 = w.iter().zip(p).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(p).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-300 {
                break;
            }
            w.iter_mut().for_each(|x| *x /= norm);
            let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            if change < 1e-12 {
                break;
            }
        }
        let big = v.iter().copied().fold(0f64, |a, x| if x.abs() > a.abs() { x } else { a });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        comps.push(v);
    }
    centred
        .iter()
        .map(|r| {
            let p = |v: &[f64]| r.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
            (p(&comps[0]), p(&comps[1]))
        })
        .collect()
}

/// Charts stacked top to bottom in one SVG document, each `width` × `height` pixels.
pub fn stack(charts: &[Chart], width: u32, height: u32) -> String {
    let total = height * charts.len() as u32;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{total}\" viewBox=\"0 0 {width} {total}\">\n"
    );
    for (i, c) in charts.iter().enumerate() {
        let inner = c.svg(width, height);
        // Nested <svg> placed at its offset (the inner document's own attributes kept).
        let inner = inner.replacen("<svg ", &format!("<svg y=\"{}\" ", i as u32 * height), 1);
        out.push_str(&inner);
    }
    out.push_str("</svg>\n");
    out
}

/// Rasterises an SVG document at its own size, text set in the system's fonts.
pub fn png_of_svg(svg: &str) -> Result<Vec<u8>, PlotError> {
    let mut opt = resvg::usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| PlotError::Svg(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| PlotError::Png(format!("cannot make a {}×{} image", size.width(), size.height())))?;
    resvg::render(&tree, resvg::tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| PlotError::Png(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(ticks(3.0, 97.0, 5), vec![20.0, 40.0, 60.0, 80.0]);
        assert!(ticks(f64::NAN, 1.0, 5).is_empty());
        assert_eq!(fmt_tick(1.5, 0.1), "1.5");
        assert_eq!(fmt_tick(0.25, 0.05), "0.25");
        assert_eq!(fmt_tick(40.0, 20.0), "40");
    }

    #[test]
    fn every_kind_renders_to_a_png_of_the_stated_size() {
        let series = vec![
            Series { label: "a".into(), points: vec![(1.0, 0.5), (2.0, 0.7), (3.0, f64::NAN)] },
            Series { label: "b <&>".into(), points: vec![(1.0, 0.4), (2.0, 0.6)] },
        ];
        let charts = [
            Marks::Lines(series.clone()),
            Marks::Points(series),
            Marks::Bars(vec![
                Bar { label: "x".into(), value: 0.8, error: 0.05 },
                Bar { label: "y".into(), value: 0.6, error: 0.0 },
            ]),
        ];
        for marks in charts {
            let c = Chart { title: "t".into(), x_label: "epoch".into(), y_label: "accuracy".into(), marks };
            let svg = c.svg(480, 300);
            assert!(svg.contains("epoch") && svg.contains("accuracy") && !svg.contains("<&>"));
            let png = c.png(480, 300).unwrap();
            let dec = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
            assert_eq!((dec.info().width, dec.info().height), (480, 300));
        }
    }

    #[test]
    fn pca_finds_the_directions_of_largest_spread() {
        // Points spread 10× more along (1, 1, 0)/√2 than along (0, 0, 1); none along (1, -1, 0).
        let rows: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                let (a, b) = ((i as f32 - 20.0) * 0.5, if i % 4 == 0 || i % 4 == 3 { 1.0 } else { -1.0 });
                vec![a / 2f32.sqrt() + 3.0, a / 2f32.sqrt() - 1.0, b]
            })
            .collect();
        let p = pca_2d(&rows);
        assert_eq!(p.len(), 40);
        for (i, (x, y)) in p.iter().enumerate() {
            let a = (i as f64 - 20.0) * 0.5 + 0.25; // centred (the mean of a is −0.25)
            assert!((x - a).abs() < 1e-4, "{i}: {x} vs {a}");
            assert!((y.abs() - 1.0).abs() < 1e-4, "{i}: {y}");
        }
        assert!(pca_2d(&rows[..1]).is_empty());
    }

    #[test]
    fn stacked_charts_make_one_document() {
        let c = |t: &str| Chart {
            title: t.into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            marks: Marks::Lines(vec![Series { label: "train".into(), points: vec![(0.0, 2.0), (1.0, 1.5)] }]),
        };
        let svg = stack(&[c("one"), c("two")], 400, 200);
        assert!(svg.contains("y=\"200\"") && svg.contains(">one<") && svg.contains(">two<"));
        let dec = png::Decoder::new(std::io::Cursor::new(png_of_svg(&svg).unwrap())).read_info().unwrap();
        assert_eq!((dec.info().width, dec.info().height), (400, 400));
    }
}

/// The crate README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
