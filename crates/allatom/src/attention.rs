//! `allatom attention`: the attention graphs of one input (`aa_encoder::attention`) — every
//! track of the encoder (ESM tokens; Vabs-Net atoms, units and both tracks together) and of an
//! attending readout (HSA-Net), each layer's and the product's metrics against the molecular
//! graph, the strongest entries as a graph, and heat maps.

use aa_encoder::attention::{metrics, AttentionMatrix, AttentionNode, AttentionTrack, NodeGraph};
use aa_encoder::{Encoder, Readout, Window};
use aa_plot::Heatmap;
use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::embed::unit_label;

/// Entries per row kept in a report's `graph` lists (the strongest, at least [`MIN_WEIGHT`]).
pub const TOP_PER_ROW: usize = 16;
/// Smallest weight kept in a report's `graph` lists.
pub const MIN_WEIGHT: f32 = 1e-4;

/// The attention graphs of one window and their pictures.
pub struct AttentionReport {
    /// Per track: nodes, edges of the molecular graph, per-layer and product metrics, the
    /// strongest entries (`graph`).
    pub json: Value,
    /// Heat maps: per chained track its first and last layer and the product; every layer of
    /// an unchained track.
    pub heatmaps: Vec<Heatmap>,
}

/// A label per node: `chain RES number[ins]` for units, that and the atom name for atoms.
fn node_label(w: &Window, node: &AttentionNode) -> String {
    let g = &w.graph;
    match node {
        AttentionNode::Unit(k) => match w.units.get(*k as usize) {
            // Units read from a file carry chain and number; others get their position.
            Some(&u) if g.units[u as usize].label.as_ref().is_some_and(|l| !l.chain.is_empty()) => unit_label(g, u),
            Some(&u) => format!("{} {}", unit_label(g, u), k + 1),
            None => format!("unit {k}"),
        },
        AttentionNode::Atom(a) => match g.atoms.get(*a as usize) {
            Some(atom) => format!("{} {}", unit_label(g, atom.unit), atom.name),
            None => format!("atom {a}"),
        },
        AttentionNode::Special(s) => s.clone(),
    }
}

/// The strongest entries of each row: `[i, j, weight]` lists.
fn strongest(m: &AttentionMatrix) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..m.n {
        let mut row: Vec<(usize, f32)> = m.row(i).iter().copied().enumerate().filter(|p| p.1 >= MIN_WEIGHT).collect();
        row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (j, w) in row.into_iter().take(TOP_PER_ROW) {
            out.push(json!([i, j, (f64::from(w) * 1e6).round() / 1e6]));
        }
    }
    out
}

fn all_metrics(m: &AttentionMatrix, graph: &NodeGraph, max_hop: usize) -> Value {
    let mut out = Map::new();
    for (name, edges) in graph.edge_sets() {
        out.insert(name.to_string(), json!(metrics(m, &graph.in_graph, &edges, max_hop)));
    }
    Value::Object(out)
}

impl AttentionReport {
    /// The heat maps as one PNG (three panels a row).
    pub fn png(&self) -> Result<Vec<u8>> {
        Ok(aa_plot::png_of_svg(&aa_plot::heatmap_grid(&self.heatmaps, 3, 420))?)
    }
}

/// The report of one track of `window`.
pub fn track_report(window: &Window, t: &AttentionTrack, max_hop: usize) -> (Value, Vec<Heatmap>) {
    let graph = NodeGraph::of(window, &t.nodes);
    let labels: Vec<String> = t.nodes.iter().map(|n| node_label(window, n)).collect();
    let ticks: Vec<(usize, String)> = {
        let step = t.nodes.len().div_ceil(8).max(1);
        (0..t.nodes.len()).step_by(step).map(|i| (i, labels[i].clone())).collect()
    };
    let layers: Vec<Value> = t
        .layers
        .iter()
        .zip(&t.labels)
        .map(|(m, label)| {
            let mut v = json!({ "label": label, "metrics": all_metrics(m, &graph, max_hop) });
            if !t.chained {
                v["graph"] = json!(strongest(m));
            }
            v
        })
        .collect();
    let product = t.product();
    let mut heatmaps = Vec::new();
    let panel =
        |m: &AttentionMatrix, title: String| Heatmap { title, n: m.n, values: m.values.clone(), ticks: ticks.clone() };
    match &product {
        // A chained track: its first and last layer, then the attention graph.
        Some(p) => {
            let last = t.layers.len() - 1;
            for l in if last > 0 { vec![0, last] } else { vec![0] } {
                heatmaps
                    .push(panel(&t.layers[l], format!("{}: {}", t.name, t.labels.get(l).map_or("", String::as_str))));
            }
            heatmaps.push(panel(p, format!("{}: attention graph A{}⋯A1", t.name, t.layers.len())));
        }
        None => heatmaps.extend(t.layers.iter().zip(&t.labels).map(|(m, l)| panel(m, format!("{}: {l}", t.name)))),
    }
    let json = json!({
        "name": t.name,
        "nodes": labels,
        "special": graph.in_graph.iter().enumerate().filter(|p| !*p.1).map(|p| p.0).collect::<Vec<_>>(),
        "chained": t.chained,
        "edges": { "covalent": graph.covalent, "contacts": graph.contacts },
        "layers": layers,
        "product": product.as_ref().map(|p| json!({ "metrics": all_metrics(p, &graph, max_hop), "graph": strongest(p) })),
    });
    (json, heatmaps)
}

/// The attention graphs of `window` through `encoder` and, when it attends, `readout`;
/// an error when neither attends.
pub fn report(
    encoder: &dyn Encoder,
    readout: Option<&dyn Readout>,
    window: &Window,
    max_hop: usize,
) -> Result<AttentionReport> {
    let input = encoder.featurize(&[window])?;
    let mut tracks = encoder.attention(&input)?.unwrap_or_default();
    if let Some(r) = readout {
        let out = encoder.forward(&input, false)?;
        tracks.extend(r.attention(&out)?.unwrap_or_default());
    }
    if tracks.is_empty() {
        bail!(
            "{} does not attend (message passing), and {}: attention graphs need an ESM-2 / ESM-AA or Vabs-Net model, or a run with an HSA-Net readout",
            encoder.family(),
            if readout.is_some() { "its readout does not either" } else { "no attending readout was given" }
        );
    }
    let (mut json_tracks, mut heatmaps) = (Vec::new(), Vec::new());
    for t in tracks.iter().filter(|t| t.window == 0) {
        let (j, h) = track_report(window, t, max_hop);
        json_tracks.push(j);
        heatmaps.extend(h);
    }
    Ok(AttentionReport {
        json: json!({ "family": encoder.family(), "max_hop": max_hop, "tracks": json_tracks }),
        heatmaps,
    })
}
