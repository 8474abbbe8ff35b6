//! Embedding jobs for every family: inputs (glycans, protein sequences, structure files, SDF
//! molecules) become windows of the shared graph, batches of them go through the encoder, and
//! the rows — one per input (the encoder's readout), per unit or per atom — come back in input
//! order with index arrays and one metadata record per input (its rows, unit labels, atom
//! count — or its error). A bad input costs its own record, never the batch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aa_encoder::{Encoder, Window};
use aa_graph::UnitKind;
use anyhow::Result;
use candle_core::{Device, Tensor};
use glycan_aa::notation::Notation;
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use crate::inputs::{structure_files, GlycanGraphs};
use crate::Model;

/// Which rows an embedding job writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// One row per input (the encoder's readout).
    Graph,
    /// One row per unit (monosaccharide, residue).
    Unit,
    /// One row per atom node.
    Atom,
}

/// One thing to embed: its window (or why there is none) and where it came from.
pub struct Input {
    /// The window, or the error that prevented it.
    pub window: std::result::Result<Window, String>,
    /// Metadata fields of its record (`input`, `structure`, `chain`, …).
    pub meta: Map<String, Value>,
}

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Glycans in the graph `model` reads (built in parallel), each in `notation` or, when `None`,
/// in the notation detected from the string. The metadata of a glycan not written in
/// IUPAC-condensed (WURCS, GlycoCT, IUPAC-extended, a short form) also gives the
/// IUPAC-condensed form it was read as (`iupac`), and a short form's spacer (`aglycone`).
pub fn glycan_inputs(model: &Model, glycans: &[String], notation: Option<Notation>) -> Vec<Input> {
    glycans
        .par_iter()
        .map(|g| {
            let n = notation.unwrap_or_else(|| Notation::detect(g));
            let mut m = meta(json!({ "input": g }));
            let window = model.glycans.read_as(g, n).map(|r| {
                if let Some(iupac) = r.iupac {
                    m.insert("iupac".into(), Value::String(iupac));
                }
                if let Some(a) = r.aglycone {
                    m.insert("aglycone".into(), Value::String(a));
                }
                Window::whole(Arc::new(r.graph))
            });
            Input { window: window.map_err(|e| e.to_string()), meta: m }
        })
        .collect()
}

/// Protein sequences `(name, sequence)` as residue graphs (`protein_aa::sequence_graph`).
pub fn sequence_inputs(records: &[(String, String)]) -> Vec<Input> {
    records
        .iter()
        .map(|(name, seq)| Input {
            window: protein_aa::sequence_graph(seq).map(|g| Window::whole(Arc::new(g))).map_err(|e| e.to_string()),
            meta: meta(json!({ "input": name })),
        })
        .collect()
}

/// The contiguous part `k` of `n` (`0 ≤ k < n`) of `len` items, `[⌊k·len/n⌋, ⌊(k+1)·len/n⌋)`:
/// the parts `0/n … (n−1)/n` cover every item once, in order.
pub fn shard_range(len: usize, (k, n): (usize, usize)) -> std::ops::Range<usize> {
    let n = n.max(1);
    let k = k.min(n - 1);
    (k * len / n)..((k + 1) * len / n)
}

/// The windows of structure files (a file, or a directory of them). Official-featurisation
/// glycan models read every glycan tree in them through its IUPAC string; other models read one
/// window per chain of amino-acid residues and (unless they read residues only) one per glycan
/// tree, with their coordinates. `.sdf` / `.mol` files give one window per molecule.
pub fn structure_inputs(model: &Model, path: &Path) -> Result<Vec<Input>> {
    if protein_aa::molfile::is_molfile(path) {
        return Ok(molecule_inputs(path, 0, read_molecules(path)?));
    }
    Ok(file_inputs(model, &structure_files(path)?))
}

/// The molecules of an `.sdf` / `.mol` file.
pub fn read_molecules(path: &Path) -> Result<Vec<aa_graph::HeteroGraph>> {
    parse_molecules(path, crate::inputs::read_capped(path)?)
}

/// The molecules of an `.sdf` / `.mol` file's bytes (`path` names it in errors).
pub(crate) fn parse_molecules(path: &Path, bytes: Vec<u8>) -> Result<Vec<aa_graph::HeteroGraph>> {
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
    Ok(protein_aa::molfile::parse_sdf(&text).map_err(|mut e| {
        e.path = Some(path.display().to_string());
        e
    })?)
}

/// Molecules of the file `path` as inputs (`first` is the record number of the first).
pub fn molecule_inputs(path: &Path, first: usize, mols: impl IntoIterator<Item = aa_graph::HeteroGraph>) -> Vec<Input> {
    mols.into_iter()
        .enumerate()
        .map(|(k, g)| {
            let m = meta(
                json!({ "input": g.units.first().map(|u| u.name.clone()), "structure": path, "record": first + k }),
            );
            Input { window: Ok(Window::whole(Arc::new(g))), meta: m }
        })
        .collect()
}

/// The windows of structure files, read in parallel, file by file in order (see
/// [`structure_inputs`]; an `.sdf` / `.mol` file in the list gives its molecules). A file that
/// cannot be read costs one input with its error.
pub fn file_inputs(model: &Model, files: &[PathBuf]) -> Vec<Input> {
    let glycans_readable = model.encoder.requirements().refuses(UnitKind::Monosaccharide).is_none();
    let official = matches!(model.glycans, GlycanGraphs::Official(_));
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let per_file: Vec<Vec<Input>> = files
        .par_iter()
        .map(|f| {
            if protein_aa::molfile::is_molfile(f) {
                return match read_molecules(f) {
                    Ok(m) => molecule_inputs(f, 0, m),
                    Err(e) => vec![Input { window: Err(format!("{e:#}")), meta: meta(json!({ "structure": f })) }],
                };
            }
            structure_file_inputs(model, f, &opts, official, glycans_readable)
        })
        .collect();
    per_file.into_iter().flatten().collect()
}

fn structure_file_inputs(
    model: &Model,
    f: &Path,
    opts: &protein_aa::StructureOptions,
    official: bool,
    glycans_readable: bool,
) -> Vec<Input> {
    match protein_aa::read_structure_file(f, opts) {
        Err(e) => vec![Input { window: Err(e.to_string()), meta: meta(json!({ "structure": f })) }],
        Ok(s) => {
            let mut v: Vec<Input> = Vec::new();
            let warnings = s.warnings.clone();
            let g = Arc::new(s.graph);
            if !official {
                for w in protein_aa::esm_pretrain::residue_windows(g.clone(), usize::MAX) {
                    let chain =
                        g.units[w.units[0] as usize].label.as_ref().map(|l| l.chain.clone()).unwrap_or_default();
                    v.push(Input {
                        window: Ok(w),
                        meta: meta(json!({ "input": format!("chain {chain}"), "structure": f, "chain": chain })),
                    });
                }
            }
            if official || glycans_readable {
                for t in &s.glycans {
                    let m = meta(json!({ "input": t.iupac, "structure": f, "attached_to": t.attached_to }));
                    let window = if official {
                        model.glycan_window(&t.iupac).map_err(|e| e.to_string())
                    } else {
                        Ok(Window { graph: g.clone(), units: t.iupac_order.clone() })
                    };
                    let mut m = m;
                    m.insert(
                        "residues".into(),
                        json!(t.iupac_order.iter().map(|&u| unit_label(&g, u)).collect::<Vec<_>>()),
                    );
                    v.push(Input { window, meta: m });
                }
            }
            if !warnings.is_empty() {
                for inp in &mut v {
                    inp.meta.insert("warnings".into(), json!(warnings));
                }
            }
            v
        }
    }
}

/// A unit's label: `chain name number[insertion]` for units read from a file, else its name.
pub fn unit_label(g: &aa_graph::HeteroGraph, u: u32) -> String {
    let unit = &g.units[u as usize];
    match &unit.label {
        Some(l) if !l.chain.is_empty() => format!("{} {} {}{}", l.chain, unit.name, l.number, l.insertion),
        _ => unit.name.clone(),
    }
}

/// Why the first input of `items` cannot be embedded, if it cannot: its own error (a glycan
/// that does not parse, a structure file that cannot be read) or the model's refusal. What a
/// one-input command or call reports before any work is written.
pub fn first_input_error(model: &Model, items: &job::Items) -> Option<InputError> {
    match items.inputs(model, 0..1).into_iter().next()?.window {
        Ok(w) => window_error(model.encoder.as_ref(), &w).map(InputError::Model),
        Err(e) => Some(InputError::Input(e)),
    }
}

/// Why an input cannot be embedded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// The input itself is bad (parse or read error).
    Input(String),
    /// The model cannot read it (missing coordinates, a unit kind it refuses).
    Model(String),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Input(e) | InputError::Model(e) => f.write_str(e),
        }
    }
}

/// Why `encoder` cannot read `w`, if it cannot (before any batch is built).
fn window_error(encoder: &dyn Encoder, w: &Window) -> Option<String> {
    let needs = encoder.requirements();
    if needs.coordinates && w.graph.positions.is_none() {
        return Some(format!("{} needs 3D coordinates, and this input has none", encoder.family()));
    }
    let why = w.units.iter().find_map(|&u| needs.refuses(w.graph.units[u as usize].kind))?;
    Some(format!("{} {why}", encoder.family()))
}

/// What an embedding job produced.
pub struct Embeddings {
    /// The rows, inputs in order, as the pieces the batches produced (views, not copies):
    /// [`Embeddings::matrix`] joins them, [`write`] streams them to a file without a second copy.
    pub pieces: Vec<Tensor>,
    /// Rows in all.
    pub rows: usize,
    /// Row width.
    pub width: usize,
    /// Index arrays (unit and atom levels): `input_index`, `unit_index`, and for atoms
    /// `atom_index`, `atomic_number`.
    pub index: HashMap<String, Tensor>,
    /// One JSON line per input.
    pub jsonl: String,
    /// Inputs embedded.
    pub embedded: usize,
    /// Inputs that failed.
    pub failed: usize,
}

impl Embeddings {
    /// The rows `[rows, width]` as one tensor (a copy of every piece).
    pub fn matrix(&self) -> Result<Tensor> {
        if self.pieces.is_empty() {
            return Ok(Tensor::zeros((0, self.width), candle_core::DType::F32, &Device::Cpu)?);
        }
        Ok(Tensor::cat(&self.pieces, 0)?)
    }

    /// Writes the rows' little-endian f32 bytes, piece after piece.
    pub(crate) fn write_rows(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        for t in &self.pieces {
            let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(std::io::Error::other)?;
            w.write_all(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
        }
        Ok(())
    }
}

/// Rows of one batch, before assembly.
struct Part {
    rows: Tensor,
    spans: Vec<(usize, usize)>,
    input: Vec<u32>,
    unit: Vec<u32>,
    atom: Vec<u32>,
    element: Vec<u32>,
}

fn batch_rows(encoder: &dyn Encoder, items: &[(usize, &Window)], level: Level) -> candle_core::Result<Part> {
    let windows: Vec<&Window> = items.iter().map(|(_, w)| *w).collect();
    let out = encoder.encode(&windows, false)?;
    let (mut spans, mut input, mut unit, mut atom, mut element) = (vec![], vec![], vec![], vec![], vec![]);
    let rows = match level {
        Level::Graph => {
            spans = (0..items.len()).map(|k| (k, k + 1)).collect();
            encoder.readout().forward(&out, false)?
        }
        Level::Unit => {
            for (k, (i, w)) in items.iter().enumerate() {
                let r = out.unit_rows(k);
                spans.push((r.start, r.end));
                input.extend(std::iter::repeat_n(*i as u32, r.len()));
                unit.extend(0..w.units.len() as u32);
            }
            out.units.clone()
        }
        Level::Atom => {
            let Some(a) = &out.atoms else {
                candle_core::bail!("--level atom: the {} encoder has no atom rows for these inputs", encoder.family());
            };
            let Some(graph_atom) = &a.graph_atom else {
                candle_core::bail!(
                    "--level atom: the {} encoder does not map its atom rows to input atoms",
                    encoder.family()
                );
            };
            let window = out.atom_window().unwrap_or_default();
            let first_unit: Vec<usize> = (0..items.len()).map(|k| out.unit_rows(k).start).collect();
            // Atom rows in window order (stable: each window's rows keep their order).
            let mut order: Vec<usize> = (0..window.len()).collect();
            order.sort_by_key(|&r| window[r]);
            let mut next = 0;
            for (k, (i, w)) in items.iter().enumerate() {
                let lo = next;
                while next < order.len() && window[order[next]] as usize == k {
                    let r = order[next];
                    input.push(*i as u32);
                    unit.push((a.unit[r] as usize - first_unit[k]) as u32);
                    atom.push(graph_atom[r]);
                    element.push(
                        w.graph.atoms.get(graph_atom[r] as usize).map_or(0, |x| x.element.atomic_number() as u32),
                    );
                    next += 1;
                }
                spans.push((lo, next));
            }
            let idx: Vec<u32> = order.iter().map(|&r| r as u32).collect();
            let n = idx.len();
            a.states.index_select(&Tensor::from_vec(idx, n, &Device::Cpu)?, 0)?
        }
    };
    Ok(Part { rows, spans, input, unit, atom, element })
}

/// Most units in one batch (bounds a batch's memory and an ESM batch's padding).
const BATCH_UNITS: usize = 8192;

/// Embeds `inputs` with `model` at `level`, at most `batch_size` inputs per forward pass;
/// batches of similar size run in parallel, a group at a time. Every row depends only on the
/// inputs and `batch_size` (not on the threads); a list longer than one chunk is best embedded
/// chunk by chunk ([`job`]), which bounds memory and makes shards of a list reproduce it.
pub fn embed(model: &Model, inputs: &[Input], level: Level, batch_size: usize) -> Result<Embeddings> {
    let encoder = model.encoder.as_ref();
    let checked: Vec<std::result::Result<&Window, String>> = inputs
        .iter()
        .map(|inp| match &inp.window {
            Ok(w) => window_error(encoder, w).map_or(Ok(w), Err),
            Err(e) => Err(e.clone()),
        })
        .collect();
    let mut ok: Vec<(usize, &Window)> =
        checked.iter().enumerate().filter_map(|(i, w)| w.as_ref().ok().map(|w| (i, *w))).collect();
    // Similar sizes share a batch (less padding for sequence models); rows go back in input order.
    ok.sort_by_key(|(_, w)| w.units.len() + if w.is_whole() { w.graph.num_atoms() } else { 0 });
    let mut batches: Vec<&[(usize, &Window)]> = Vec::new();
    let mut start = 0;
    while start < ok.len() {
        let mut end = start + 1;
        while end < ok.len()
            && end - start < batch_size.max(1)
            && (end - start + 1) * ok[end].1.units.len() <= BATCH_UNITS
        {
            end += 1;
        }
        batches.push(&ok[start..end]);
        start = end;
    }
    let group = rayon::current_num_threads().max(1);
    let mut parts: Vec<(&[(usize, &Window)], Part)> = Vec::with_capacity(batches.len());
    for chunk in batches.chunks(group) {
        let done: Vec<candle_core::Result<Part>> = chunk.par_iter().map(|b| batch_rows(encoder, b, level)).collect();
        for (b, p) in chunk.iter().zip(done) {
            parts.push((b, p?));
        }
    }
    let width = job::row_width(model, level);
    // Assemble in input order.
    let mut by_input: Vec<Option<(usize, usize, usize)>> = vec![None; inputs.len()];
    for (pi, (b, p)) in parts.iter().enumerate() {
        for (k, (i, _)) in b.iter().enumerate() {
            by_input[*i] = Some((pi, p.spans[k].0, p.spans[k].1));
        }
    }
    let (mut rows, mut input_idx, mut unit_idx, mut atom_idx, mut element) = (vec![], vec![], vec![], vec![], vec![]);
    let mut spans: Vec<Option<(usize, usize)>> = vec![None; inputs.len()];
    let mut atom_rows: Vec<&[u32]> = vec![&[]; inputs.len()];
    let mut next = 0;
    for (i, slot) in by_input.iter().enumerate() {
        let Some((pi, lo, hi)) = *slot else { continue };
        let p = &parts[pi].1;
        rows.push(p.rows.narrow(0, lo, hi - lo)?);
        if level != Level::Graph {
            input_idx.extend_from_slice(&p.input[lo..hi]);
            unit_idx.extend_from_slice(&p.unit[lo..hi]);
        }
        if level == Level::Atom {
            atom_rows[i] = &p.atom[lo..hi];
            atom_idx.extend_from_slice(&p.atom[lo..hi]);
            element.extend_from_slice(&p.element[lo..hi]);
        }
        spans[i] = Some((next, next + hi - lo));
        next += hi - lo;
    }
    let u32s = |v: Vec<u32>| {
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu)
    };
    let mut index = HashMap::new();
    if level != Level::Graph {
        index.insert("input_index".to_string(), u32s(input_idx)?);
        index.insert("unit_index".to_string(), u32s(unit_idx)?);
    }
    if level == Level::Atom {
        index.insert("atom_index".to_string(), u32s(atom_idx)?);
        index.insert("atomic_number".to_string(), u32s(element)?);
    }
    let mut jsonl = String::new();
    for (i, (inp, w)) in inputs.iter().zip(&checked).enumerate() {
        let mut rec = Map::new();
        rec.insert("index".into(), json!(i));
        rec.extend(inp.meta.clone());
        match (w, spans[i]) {
            (Ok(w), Some((lo, hi))) => {
                rec.insert("rows".into(), json!([lo, hi]));
                rec.insert("units".into(), json!(w.units.iter().map(|&u| unit_label(&w.graph, u)).collect::<Vec<_>>()));
                let members = w.graph.unit_members();
                rec.insert(
                    "atoms".into(),
                    json!(w.units.iter().map(|&u| members.neighbors(u as usize).len()).sum::<usize>()),
                );
                if level == Level::Atom {
                    let names: Vec<&str> = atom_rows[i]
                        .iter()
                        .map(|&a| w.graph.atoms.get(a as usize).map_or("", |x| x.name.as_str()))
                        .collect();
                    rec.insert("labels".into(), json!(names));
                }
            }
            (Err(e), _) => {
                rec.insert("error".into(), json!(e));
            }
            (Ok(_), None) => {
                rec.insert("error".into(), json!("not embedded"));
            }
        }
        jsonl.push_str(&Value::Object(rec).to_string());
        jsonl.push('\n');
    }
    let failed = checked.iter().filter(|w| w.is_err()).count();
    Ok(Embeddings { pieces: rows, rows: next, width, index, jsonl, embedded: inputs.len() - failed, failed })
}

mod files;
pub mod job;
pub use files::{check_output, metadata_path, npy_f32, write};
