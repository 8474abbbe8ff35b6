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
use anyhow::{bail, Context, Result};
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
/// the shards `0/n … (n−1)/n` cover every item once, in order, so their outputs concatenated
/// are the unsharded output.
pub fn shard_range(len: usize, (k, n): (usize, usize)) -> std::ops::Range<usize> {
    let n = n.max(1);
    let k = k.min(n - 1);
    (k * len / n)..((k + 1) * len / n)
}

/// The items of shard `k` of `n` of a list (all of it without a shard).
pub fn shard_of<T>(items: &[T], shard: Option<(usize, usize)>) -> &[T] {
    match shard {
        Some(s) => &items[shard_range(items.len(), s)],
        None => items,
    }
}

/// The windows of structure files (a file, or a directory of them). Official-featurisation
/// glycan models read every glycan tree in them through its IUPAC string; other models read one
/// window per chain of amino-acid residues and (unless they read residues only) one per glycan
/// tree, with their coordinates. `.sdf` / `.mol` files give one window per molecule.
pub fn structure_inputs(model: &Model, path: &Path) -> Result<Vec<Input>> {
    structure_inputs_shard(model, path, None)
}

/// [`structure_inputs`] of one shard: `shard` = `(k, n)` takes the `k`-th of `n` contiguous
/// parts of the sorted file list (of the records of an `.sdf` file).
pub fn structure_inputs_shard(model: &Model, path: &Path, shard: Option<(usize, usize)>) -> Result<Vec<Input>> {
    if protein_aa::molfile::is_molfile(path) {
        let text = String::from_utf8(crate::inputs::read_capped(path)?)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
        let mols = protein_aa::molfile::parse_sdf(&text).map_err(|mut e| {
            e.path = Some(path.display().to_string());
            e
        })?;
        let range = shard.map_or(0..mols.len(), |sh| shard_range(mols.len(), sh));
        return Ok(mols
            .into_iter()
            .enumerate()
            .skip(range.start)
            .take(range.len())
            .map(|(k, g)| {
                let m =
                    meta(json!({ "input": g.units.first().map(|u| u.name.clone()), "structure": path, "record": k }));
                Input { window: Ok(Window::whole(Arc::new(g))), meta: m }
            })
            .collect());
    }
    let files = structure_files(path)?;
    let files = shard_of(&files, shard);
    let glycans_readable = model.encoder.requirements().refuses(UnitKind::Monosaccharide).is_none();
    let official = matches!(model.glycans, GlycanGraphs::Official(_));
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let per_file: Vec<Vec<Input>> = files
        .par_iter()
        .map(|f| match protein_aa::read_structure_file(f, &opts) {
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
        })
        .collect();
    Ok(per_file.into_iter().flatten().collect())
}

/// A unit's label: `chain name number[insertion]` for units read from a file, else its name.
pub fn unit_label(g: &aa_graph::HeteroGraph, u: u32) -> String {
    let unit = &g.units[u as usize];
    match &unit.label {
        Some(l) if !l.chain.is_empty() => format!("{} {} {}{}", l.chain, unit.name, l.number, l.insertion),
        _ => unit.name.clone(),
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
    /// The rows, inputs in order, as the pieces the batches produced (views, not copies, or
    /// ranges of the spill file): [`Embeddings::matrix`] joins them, [`write`] streams them to
    /// a file without ever holding a second copy.
    pub pieces: Vec<Piece>,
    /// Where spilled pieces live (an anonymous temporary file, gone when this is dropped).
    pub spill: Option<std::fs::File>,
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

/// Some consecutive rows of an embedding job.
pub enum Piece {
    /// In memory.
    Rows(Tensor),
    /// In the spill file: `rows` rows of little-endian f32 from byte `offset`.
    Spilled {
        /// Byte offset.
        offset: u64,
        /// Rows.
        rows: usize,
    },
}

impl Embeddings {
    /// The rows `[rows, width]` as one tensor (a copy of every piece).
    pub fn matrix(&self) -> Result<Tensor> {
        let mut bytes = Vec::with_capacity(4 * self.rows * self.width);
        self.write_rows(&mut bytes)?;
        let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Tensor::from_vec(v, (self.rows, self.width), &Device::Cpu)?)
    }

    /// Writes the rows' little-endian f32 bytes, piece after piece.
    fn write_rows(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut buf = Vec::new();
        for p in &self.pieces {
            buf.clear();
            match p {
                Piece::Rows(t) => {
                    let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(std::io::Error::other)?;
                    buf.extend(v.iter().flat_map(|x| x.to_le_bytes()));
                }
                Piece::Spilled { offset, rows } => {
                    let mut f = self
                        .spill
                        .as_ref()
                        .ok_or_else(|| std::io::Error::other("spilled rows without a spill file"))?;
                    f.seek(SeekFrom::Start(*offset))?;
                    buf.resize(4 * rows * self.width, 0);
                    f.read_exact(&mut buf)?;
                }
            }
            w.write_all(&buf)?;
        }
        Ok(())
    }
}

/// Rows of one batch, before assembly.
struct Part {
    /// The rows, or where they start in the spill file.
    rows: Result<Tensor, u64>,
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
    Ok(Part { rows: Ok(rows), spans, input, unit, atom, element })
}

/// Most units in one batch (bounds a batch's memory and an ESM batch's padding).
const BATCH_UNITS: usize = 8192;

/// Embeds `inputs` with `model` at `level`, at most `batch_size` inputs per forward pass;
/// batches of similar size run in parallel, a group at a time. With `spill` (a folder), each
/// group's rows go to an anonymous temporary file there as soon as they are computed, so memory
/// stays at one group of batches however many inputs there are (the rows are read back in
/// input order by [`write`]); without it they stay in memory.
pub fn embed(
    model: &Model,
    inputs: &[Input],
    level: Level,
    batch_size: usize,
    spill: Option<&Path>,
) -> Result<Embeddings> {
    use std::io::Write;
    let mut spill_file = match spill {
        Some(dir) => Some(
            tempfile::tempfile_in(dir)
                .with_context(|| format!("cannot make a temporary file in {} for the rows", dir.display()))?,
        ),
        None => None,
    };
    let mut spilled: u64 = 0;
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
            let mut p = p?;
            if let (Some(f), Ok(rows)) = (spill_file.as_mut(), &p.rows) {
                let v = rows.flatten_all()?.to_vec1::<f32>()?;
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                f.write_all(&bytes).context("writing rows to the temporary file")?;
                p.rows = Err(spilled);
                spilled += bytes.len() as u64;
            }
            parts.push((b, p));
        }
    }
    let width = match level {
        Level::Graph => encoder.readout().dim(encoder.unit_dim()),
        _ => encoder.unit_dim(),
    };
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
        rows.push(match &p.rows {
            Ok(t) => Piece::Rows(t.narrow(0, lo, hi - lo)?),
            Err(start) => Piece::Spilled { offset: start + (4 * lo * width) as u64, rows: hi - lo },
        });
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
    if let Some(f) = spill_file.as_mut() {
        f.flush().context("writing rows to the temporary file")?;
    }
    Ok(Embeddings {
        pieces: rows,
        spill: spill_file,
        rows: next,
        width,
        index,
        jsonl,
        embedded: inputs.len() - failed,
        failed,
    })
}

/// Checks an output path before any work: `.npy` for graph level, `.safetensors` for unit and
/// atom levels (the file's format follows its name), and neither the output nor its `.jsonl`
/// metadata may be one of the `inputs` (they would be overwritten).
pub fn check_output(out: &Path, level: Level, inputs: &[&Path]) -> Result<()> {
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let want = if level == Level::Graph { "npy" } else { "safetensors" };
    let is_special = std::fs::metadata(out).is_ok_and(|m| !m.is_file() && !m.is_dir());
    if !is_special && ext.as_deref() != Some(want) {
        bail!(
            "{}: {} rows are written as .{want} (the file's format follows its name); give a .{want} path",
            out.display(),
            match level {
                Level::Graph => "graph-level",
                Level::Unit => "unit-level",
                Level::Atom => "atom-level",
            }
        );
    }
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    for input in inputs {
        for o in [out.to_path_buf(), metadata_path(out)] {
            if same(&o, input) {
                bail!("{}: is also an input; writing it would destroy the input", o.display());
            }
        }
    }
    Ok(())
}

/// `emb.npy` → `emb.jsonl`.
pub fn metadata_path(out: &Path) -> PathBuf {
    out.with_extension("jsonl")
}

/// Writes the rows (`.npy` for graph level, `.safetensors` with `embeddings` and the index
/// arrays otherwise) and the `.jsonl` metadata beside them as one set
/// ([`aa_pretrain::checkpoint::write_set_streamed`]: both complete, or the old pair untouched,
/// never a new file beside an old partner); the rows stream from the batches' pieces, so the
/// file never exists in memory. Returns the metadata path. When `out` is a device
/// (`/dev/null`, `/dev/stdout`) the rows are written to it and no metadata is written (there is
/// no "beside" a device): `None`.
pub fn write(out: &Path, e: &Embeddings, level: Level) -> Result<Option<PathBuf>> {
    use aa_pretrain::checkpoint::{write_set_streamed, Body};
    let meta_path = metadata_path(out);
    if meta_path == out {
        bail!("{}: the output needs an extension other than .jsonl (.npy or .safetensors)", out.display());
    }
    let mut rows = |w: &mut dyn std::io::Write| -> std::io::Result<()> {
        match level {
            Level::Graph => w.write_all(&npy_header(e.rows, e.width))?,
            _ => w.write_all(&safetensors_header(e)?)?,
        }
        e.write_rows(w)?;
        if level != Level::Graph {
            for (_, t) in index_order(&e.index) {
                let v = t.to_vec1::<u32>().map_err(std::io::Error::other)?;
                w.write_all(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
            }
        }
        Ok(())
    };
    if aa_pretrain::checkpoint::is_special(out) {
        write_set_streamed(&mut [(out, Body::Stream(&mut rows))])?;
        return Ok(None);
    }
    write_set_streamed(&mut [(out, Body::Stream(&mut rows)), (&meta_path, Body::Bytes(e.jsonl.as_bytes()))])?;
    Ok(Some(meta_path))
}

/// The index arrays in file order (by name: all are U32, which safetensors places after the
/// F32 embeddings).
fn index_order(index: &HashMap<String, Tensor>) -> Vec<(&String, &Tensor)> {
    let mut v: Vec<(&String, &Tensor)> = index.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// The safetensors header (length prefix and JSON, padded to 8 bytes) of `embeddings`
/// (F32 `[rows, width]`) followed by the index arrays — the layout `safetensors::serialize`
/// writes for the same tensors, built with its own `Metadata`.
fn safetensors_header(e: &Embeddings) -> std::io::Result<Vec<u8>> {
    use safetensors::tensor::{Metadata, TensorInfo};
    use safetensors::Dtype;
    let mut infos = Vec::new();
    let mut offset = 4 * e.rows * e.width;
    infos.push((
        "embeddings".to_string(),
        TensorInfo { dtype: Dtype::F32, shape: vec![e.rows, e.width], data_offsets: (0, offset) },
    ));
    for (name, t) in index_order(&e.index) {
        let n = 4 * t.elem_count();
        infos.push((
            name.clone(),
            TensorInfo { dtype: Dtype::U32, shape: t.dims().to_vec(), data_offsets: (offset, offset + n) },
        ));
        offset += n;
    }
    let meta = Metadata::new(None, infos).map_err(std::io::Error::other)?;
    let mut json = serde_json::to_string(&meta).map_err(std::io::Error::other)?.into_bytes();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    Ok(out)
}

/// A 2-D f32 tensor as a NumPy `.npy` file (format 1.0, little-endian, C order).
pub fn npy_f32(t: &Tensor) -> Result<Vec<u8>> {
    let (n, d) = t.dims2()?;
    let mut out = npy_header(n, d);
    for v in t.flatten_all()?.to_vec1::<f32>()? {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// The `.npy` header (format 1.0) of an `[n, d]` little-endian f32 array.
fn npy_header(n: usize, d: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.push_str(&" ".repeat(pad % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed files equal what serialising the joined matrix gives (safetensors'
    /// own writer, our `.npy` writer), byte for byte.
    #[test]
    fn streamed_files_equal_the_in_memory_serialisation() {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 12.0, &dev).unwrap().reshape((3, 4)).unwrap();
        let b = Tensor::arange(100f32, 108.0, &dev).unwrap().reshape((2, 4)).unwrap();
        let pieces = vec![Piece::Rows(a.narrow(0, 1, 2).unwrap()), Piece::Rows(b.clone())];
        let u32s = |v: Vec<u32>| Tensor::from_vec(v.clone(), v.len(), &dev).unwrap();
        let index: HashMap<String, Tensor> = [
            ("input_index".to_string(), u32s(vec![0, 0, 1, 1])),
            ("unit_index".to_string(), u32s(vec![0, 1, 0, 1])),
            ("atom_index".to_string(), u32s(vec![5, 6, 7, 8])),
            ("atomic_number".to_string(), u32s(vec![6, 8, 6, 7])),
        ]
        .into();
        let e =
            Embeddings { pieces, spill: None, rows: 4, width: 4, index, jsonl: "{}\n".into(), embedded: 2, failed: 0 };
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("e.safetensors");
        assert_eq!(write(&st, &e, Level::Atom).unwrap(), Some(dir.path().join("e.jsonl")));
        let mut all = e.index.clone();
        all.insert("embeddings".into(), e.matrix().unwrap());
        let want = safetensors::tensor::serialize(all.iter().map(|(k, v)| (k.as_str(), v)), None).unwrap();
        assert_eq!(std::fs::read(&st).unwrap(), want);
        let npy = dir.path().join("g.npy");
        write(&npy, &e, Level::Graph).unwrap();
        assert_eq!(std::fs::read(&npy).unwrap(), npy_f32(&e.matrix().unwrap()).unwrap());
        assert_eq!(std::fs::read_to_string(dir.path().join("g.jsonl")).unwrap(), "{}\n");
        // The same rows spilled to a file (the second piece first in the file) write the same.
        let mut f = tempfile::tempfile().unwrap();
        let le = |t: &Tensor| {
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()
        };
        std::io::Write::write_all(&mut f, &le(&b)).unwrap();
        std::io::Write::write_all(&mut f, &le(&a)).unwrap();
        let spilled = Embeddings {
            pieces: vec![Piece::Spilled { offset: 32 + 16, rows: 2 }, Piece::Spilled { offset: 0, rows: 2 }],
            spill: Some(f),
            ..e
        };
        let st2 = dir.path().join("s.safetensors");
        write(&st2, &spilled, Level::Atom).unwrap();
        assert_eq!(std::fs::read(&st2).unwrap(), want);
    }
}
