//! Glycans drawn in the Symbol Nomenclature for Glycans (SNFG; Varki et al., Glycobiology 2015,
//! and its 2019 update): one symbol per monosaccharide — shape by class (hexose circle, HexNAc
//! square, hexosamine divided square, hexuronate divided diamond, deoxyhexose triangle,
//! deoxy-HexNAc divided triangle, dideoxyhexose flat rectangle, pentose star, nonulosonate
//! diamond, dideoxynonulosonate flat diamond, other assigned pentagon, unknown flat hexagon),
//! colour by configuration (Glc blue, Man green, Gal yellow, …, Fuc red) — the reducing end on
//! the right, each residue's children to its left, links labelled with anomer and positions
//! (`β1-4`), modifications (`6S`, `9Ac`, `P`) and ring forms (`f`) written beside the symbol.
//! Residues without an SNFG symbol are a white flat hexagon with their name. Output is SVG.
//!
//! ```
//! let g = glycan_aa::Glycan::parse("Neu5Ac(a2-3)Gal(b1-4)[Fuc(a1-3)]GlcNAc6S").unwrap();
//! let svg = glycan_aa::snfg::svg(&g.tree);
//! assert!(svg.starts_with("<svg") && svg.matches("class=\"residue\"").count() == 4);
//! ```

use std::fmt::Write as _;

use aa_graph::Anomer;

use crate::iupac::{Bridge, LinkSpec, ParsedGlycan};

/// SNFG symbol shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Circle,
    Square,
    CrossedSquare,
    DividedDiamond,
    Triangle,
    DividedTriangle,
    FlatRectangle,
    Star,
    Diamond,
    FlatDiamond,
    Pentagon,
    FlatHexagon,
}

const BLUE: &str = "#0072BC";
const GREEN: &str = "#00A651";
const YELLOW: &str = "#FFD400";
const ORANGE: &str = "#F47920";
const PINK: &str = "#F69EA1";
const PURPLE: &str = "#A54399";
const LIGHT_BLUE: &str = "#8FCCE9";
const BROWN: &str = "#A17A4D";
const RED: &str = "#ED1C24";
const WHITE: &str = "#FFFFFF";

/// Name prefixes with their symbol (longest match wins).
const SYMBOLS: &[(&str, Shape, &str)] = {
    use Shape::*;
    &[
        ("Glc", Circle, BLUE),
        ("Man", Circle, GREEN),
        ("Gal", Circle, YELLOW),
        ("Gul", Circle, ORANGE),
        ("Alt", Circle, PINK),
        ("All", Circle, PURPLE),
        ("Tal", Circle, LIGHT_BLUE),
        ("Ido", Circle, BROWN),
        ("Hex", Circle, WHITE),
        ("GlcNAc", Square, BLUE),
        ("ManNAc", Square, GREEN),
        ("GalNAc", Square, YELLOW),
        ("GulNAc", Square, ORANGE),
        ("AltNAc", Square, PINK),
        ("AllNAc", Square, PURPLE),
        ("TalNAc", Square, LIGHT_BLUE),
        ("IdoNAc", Square, BROWN),
        ("HexNAc", Square, WHITE),
        ("GlcN", CrossedSquare, BLUE),
        ("ManN", CrossedSquare, GREEN),
        ("GalN", CrossedSquare, YELLOW),
        ("GulN", CrossedSquare, ORANGE),
        ("AltN", CrossedSquare, PINK),
        ("AllN", CrossedSquare, PURPLE),
        ("TalN", CrossedSquare, LIGHT_BLUE),
        ("IdoN", CrossedSquare, BROWN),
        ("HexN", CrossedSquare, WHITE),
        ("GlcA", DividedDiamond, BLUE),
        ("ManA", DividedDiamond, GREEN),
        ("GalA", DividedDiamond, YELLOW),
        ("GulA", DividedDiamond, ORANGE),
        ("AltA", DividedDiamond, PINK),
        ("AllA", DividedDiamond, PURPLE),
        ("TalA", DividedDiamond, LIGHT_BLUE),
        ("IdoA", DividedDiamond, BROWN),
        ("HexA", DividedDiamond, WHITE),
        ("Qui", Triangle, BLUE),
        ("Rha", Triangle, GREEN),
        ("6dGul", Triangle, ORANGE),
        ("6dAlt", Triangle, PINK),
        ("6dTal", Triangle, LIGHT_BLUE),
        ("Fuc", Triangle, RED),
        ("dHex", Triangle, WHITE),
        ("QuiNAc", DividedTriangle, BLUE),
        ("RhaNAc", DividedTriangle, GREEN),
        ("6dAltNAc", DividedTriangle, PINK),
        ("6dTalNAc", DividedTriangle, LIGHT_BLUE),
        ("FucNAc", DividedTriangle, RED),
        ("dHexNAc", DividedTriangle, WHITE),
        ("Oli", FlatRectangle, BLUE),
        ("Tyv", FlatRectangle, GREEN),
        ("Abe", FlatRectangle, ORANGE),
        ("Par", FlatRectangle, PINK),
        ("Dig", FlatRectangle, PURPLE),
        ("Col", FlatRectangle, LIGHT_BLUE),
        ("ddHex", FlatRectangle, WHITE),
        ("Ara", Star, GREEN),
        ("Lyx", Star, YELLOW),
        ("Xyl", Star, ORANGE),
        ("Rib", Star, PINK),
        ("Pen", Star, WHITE),
        ("Kdn", Diamond, GREEN),
        ("Neu5Ac", Diamond, PURPLE),
        ("Neu5Gc", Diamond, LIGHT_BLUE),
        ("Neu", Diamond, BROWN),
        ("Sia", Diamond, RED),
        ("Pse", FlatDiamond, GREEN),
        ("Leg", FlatDiamond, YELLOW),
        ("Aci", FlatDiamond, PINK),
        ("4eLeg", FlatDiamond, LIGHT_BLUE),
        ("Bac", FlatHexagon, BLUE),
        ("LDManHep", FlatHexagon, GREEN),
        ("Kdo", FlatHexagon, YELLOW),
        ("Dha", FlatHexagon, ORANGE),
        ("DDManHep", FlatHexagon, PINK),
        ("MurNAc", FlatHexagon, PURPLE),
        ("MurNGc", FlatHexagon, LIGHT_BLUE),
        ("Mur", FlatHexagon, BROWN),
        ("Api", Pentagon, BLUE),
        ("Fru", Pentagon, GREEN),
        ("Tag", Pentagon, YELLOW),
        ("Sor", Pentagon, ORANGE),
        ("Psi", Pentagon, PINK),
    ]
};

/// The symbol of a residue name and what is left to write beside it (modifications, a
/// furanose `f`); `None` for a name without an SNFG symbol.
fn symbol(name: &str) -> Option<(Shape, &'static str, String)> {
    let bare = name.strip_prefix("D-").or_else(|| name.strip_prefix("L-")).unwrap_or(name);
    let (prefix, shape, colour) =
        SYMBOLS.iter().filter(|(p, _, _)| bare.starts_with(p)).max_by_key(|(p, _, _)| p.len())?;
    let mut rest = bare[prefix.len()..].to_string();
    // Ring letters right after the core (`Galp`, `Galf`): the pyranose is implied.
    if let Some(r) = rest.strip_prefix('p') {
        rest = r.to_string();
    }
    Some((*shape, colour, rest))
}

/// Sizes of the drawing, in SVG units.
const SIZE: f64 = 24.0;
const DX: f64 = 70.0;
const DY: f64 = 44.0;
const MARGIN: f64 = 30.0;

fn link_label(l: &LinkSpec) -> String {
    let an = match l.anomer {
        Anomer::Alpha => "α",
        Anomer::Beta => "β",
        _ => "?",
    };
    let donor = l.donor.map_or("?".to_string(), |d| d.to_string());
    let acceptor = if l.acceptor.is_empty() {
        "?".to_string()
    } else {
        l.acceptor.iter().map(u8::to_string).collect::<Vec<_>>().join("/")
    };
    let bridge = match l.bridge {
        Bridge::Oxygen => "",
        Bridge::Phosphate => "P",
        Bridge::Sulfur => "S",
        Bridge::Nitrogen => "N",
    };
    if bridge.is_empty() {
        format!("{an}{donor}-{acceptor}")
    } else {
        format!("{an}{donor}-{bridge}-{acceptor}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SVG path of a shape centred at `(x, y)`, filled with `colour` (divided shapes: the
/// coloured half and a white half).
fn shape_svg(out: &mut String, shape: Shape, colour: &str, x: f64, y: f64) {
    let h = SIZE / 2.0;
    let stroke = "stroke=\"#000\" stroke-width=\"1.2\"";
    let poly = |out: &mut String, pts: &[(f64, f64)], fill: &str| {
        let p: Vec<String> = pts.iter().map(|(a, b)| format!("{:.1},{:.1}", x + a, y + b)).collect();
        let _ = write!(out, "<polygon points=\"{}\" fill=\"{fill}\" {stroke}/>", p.join(" "));
    };
    match shape {
        Shape::Circle => {
            let _ = write!(out, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{h:.1}\" fill=\"{colour}\" {stroke}/>");
        }
        Shape::Square => poly(out, &[(-h, -h), (h, -h), (h, h), (-h, h)], colour),
        Shape::CrossedSquare => {
            poly(out, &[(-h, -h), (h, -h), (h, h)], colour);
            poly(out, &[(-h, -h), (h, h), (-h, h)], WHITE);
        }
        Shape::DividedDiamond => {
            poly(out, &[(-h, 0.0), (0.0, -h), (h, 0.0)], colour);
            poly(out, &[(-h, 0.0), (h, 0.0), (0.0, h)], WHITE);
        }
        Shape::Triangle => poly(out, &[(0.0, -h), (h, h), (-h, h)], colour),
        Shape::DividedTriangle => {
            poly(out, &[(0.0, -h), (0.0, h), (-h, h)], colour);
            poly(out, &[(0.0, -h), (h, h), (0.0, h)], WHITE);
        }
        Shape::FlatRectangle => poly(out, &[(-h, -h / 2.0), (h, -h / 2.0), (h, h / 2.0), (-h, h / 2.0)], colour),
        Shape::Star => {
            let pts: Vec<(f64, f64)> = (0..10)
                .map(|k| {
                    let r = if k % 2 == 0 { h * 1.1 } else { h * 0.45 };
                    let t = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
                    (r * t.cos(), r * t.sin())
                })
                .collect();
            poly(out, &pts, colour);
        }
        Shape::Diamond => poly(out, &[(-h, 0.0), (0.0, -h), (h, 0.0), (0.0, h)], colour),
        Shape::FlatDiamond => poly(out, &[(-h, 0.0), (0.0, -h / 2.0), (h, 0.0), (0.0, h / 2.0)], colour),
        Shape::Pentagon => {
            let pts: Vec<(f64, f64)> = (0..5)
                .map(|k| {
                    let t = std::f64::consts::PI * (2.0 * k as f64 / 5.0 - 0.5);
                    (h * t.cos(), h * t.sin())
                })
                .collect();
            poly(out, &pts, colour);
        }
        Shape::FlatHexagon => poly(
            out,
            &[(-h, 0.0), (-h / 2.0, -h / 2.0), (h / 2.0, -h / 2.0), (h, 0.0), (h / 2.0, h / 2.0), (-h / 2.0, h / 2.0)],
            colour,
        ),
    }
}

/// The SNFG drawing of a parsed glycan as an SVG document (the module docs).
pub fn svg(tree: &ParsedGlycan) -> String {
    svg_scaled(tree, 1.0)
}

/// [`svg`] with the document's width and height multiplied by `scale` (the drawing scales
/// with them; e.g. 2 for a sharper raster).
pub fn svg_scaled(tree: &ParsedGlycan, scale: f64) -> String {
    let n = tree.residues.len();
    let mut children = vec![Vec::new(); n];
    for (i, r) in tree.residues.iter().enumerate() {
        if let Some(p) = r.parent {
            children[p].push(i);
        }
    }
    // Depth from the root (x) and a row per leaf, parents centred on their children (y).
    let mut depth = vec![0usize; n];
    let mut row = vec![0f64; n];
    let mut next_row = 0f64;
    let mut roots = vec![tree.root];
    roots.extend(tree.floating_roots.iter().copied().filter(|&r| r != tree.root));
    let mut stack: Vec<(usize, usize, bool)> = roots.iter().rev().map(|&r| (r, 0, false)).collect();
    while let Some((i, d, done)) = stack.pop() {
        if done {
            let c = &children[i];
            row[i] = if c.is_empty() {
                let r = next_row;
                next_row += 1.0;
                r
            } else {
                c.iter().map(|&k| row[k]).sum::<f64>() / c.len() as f64
            };
            continue;
        }
        depth[i] = d;
        stack.push((i, d, true));
        // Later children first on the stack, so the first-written child gets the top row.
        for &k in children[i].iter().rev() {
            stack.push((k, d + 1, false));
        }
    }
    let max_depth = depth.iter().copied().max().unwrap_or(0);
    let reducing = tree.reducing_end.is_some();
    let width = MARGIN * 2.0 + max_depth as f64 * DX + if reducing { DX * 0.6 } else { 0.0 } + SIZE;
    let height = MARGIN * 2.0 + (next_row - 1.0).max(0.0) * DY + SIZE + 12.0;
    let pos = |i: usize| (MARGIN + SIZE / 2.0 + (max_depth - depth[i]) as f64 * DX, MARGIN + SIZE / 2.0 + row[i] * DY);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>",
        width * scale,
        height * scale
    );
    // Links first (under the symbols), labelled near the child.
    for (i, r) in tree.residues.iter().enumerate() {
        let (Some(p), Some(l)) = (r.parent, &r.link) else { continue };
        let ((x1, y1), (x2, y2)) = (pos(i), pos(p));
        let _ = write!(
            out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#000\" stroke-width=\"1.2\"/>"
        );
        let (lx, ly) = (x1 + (x2 - x1) * 0.5, y1 + (y2 - y1) * 0.5 - 4.0);
        let _ = write!(
            out,
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            escape(&link_label(l))
        );
    }
    if let Some(l) = &tree.reducing_end {
        let (x, y) = pos(tree.root);
        let x2 = x + DX * 0.6;
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x2:.1}\" y2=\"{y:.1}\" stroke=\"#000\" stroke-width=\"1.2\"/>"
        );
        let label = link_label(l).trim_end_matches("-?").to_string();
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            x + DX * 0.35,
            y - 4.0,
            escape(&label)
        );
    }
    for (i, r) in tree.residues.iter().enumerate() {
        let (x, y) = pos(i);
        let _ = write!(out, "<g class=\"residue\" data-name=\"{}\">", escape(&r.name));
        let note = match symbol(&r.name) {
            Some((shape, colour, rest)) => {
                shape_svg(&mut out, shape, colour, x, y);
                rest
            }
            None => {
                shape_svg(&mut out, Shape::FlatHexagon, WHITE, x, y);
                r.name.clone()
            }
        };
        if !note.is_empty() {
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                y + SIZE / 2.0 + 11.0,
                escape(&note)
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_follow_the_snfg_table() {
        assert_eq!(symbol("GlcNAc6S").map(|s| (s.0, s.1, s.2)), Some((Shape::Square, BLUE, "6S".to_string())));
        assert_eq!(symbol("Neu5Ac9Ac").map(|s| (s.0, s.1)), Some((Shape::Diamond, PURPLE)));
        assert_eq!(symbol("L-Fucp").map(|s| (s.0, s.1, s.2)), Some((Shape::Triangle, RED, String::new())));
        assert_eq!(symbol("Galf").map(|s| (s.0, s.2)), Some((Shape::Circle, "f".to_string())));
        assert_eq!(symbol("GlcA").map(|s| s.0), Some(Shape::DividedDiamond));
        assert_eq!(symbol("GlcN").map(|s| s.0), Some(Shape::CrossedSquare));
        assert_eq!(symbol("Kdo").map(|s| (s.0, s.1)), Some((Shape::FlatHexagon, YELLOW)));
        assert_eq!(symbol("Xyl").map(|s| (s.0, s.1)), Some((Shape::Star, ORANGE)));
        assert!(symbol("Ery-ol").is_none());
    }

    #[test]
    fn a_branched_glycan_is_laid_out_right_to_left() {
        let g = crate::Glycan::parse("Man(a1-3)[Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc(b1-").unwrap();
        let s = svg(&g.tree);
        assert_eq!(s.matches("class=\"residue\"").count(), 5);
        assert_eq!(s.matches(GREEN).count(), 3, "three mannoses");
        assert!(s.contains(">α1-3<") && s.contains(">α1-6<") && s.contains(">β1-4<"), "{s}");
        assert_eq!(s.matches("<line").count(), 5, "four links and the reducing end");
    }
}
