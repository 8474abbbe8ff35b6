//! Embedding jobs of any size, chunk by chunk: the inputs (glycan strings, sequences, structure
//! files, the molecules of an SDF file) are held as cheap items, and fixed chunks of them
//! (`chunk` items, numbered from the start of the list) are featurised, embedded and written one
//! after the other, so memory stays at one chunk whatever the size of the list.
//!
//! **Reproducible parts.** Rows are computed from a chunk alone (its batches are formed inside
//! it), so a chunk's rows are the same bytes whichever job computes it. A shard (`k` of `n`)
//! is a contiguous run of whole chunks, so the shards' outputs concatenated are byte for byte
//! the unsharded output, and a resumed job equals an uninterrupted one. The price: shards are
//! whole chunks, so with fewer chunks than shards some shards are empty.
//!
//! **Files and resuming.** [`Job::to_file`] writes each finished chunk into `<out>.parts/`
//! (`chunk-000000.npy` or `.safetensors` with its `.jsonl`, each written completely or not at
//! all, beside `job.json`, the job's fingerprint), then streams the parts into `<out>` and its
//! `.jsonl` and removes the folder. Killed at any point, the job rerun with `resume` keeps the
//! finished chunks of the same job (same model, inputs, level, chunk, batch size and shard) and
//! refuses parts of a different one.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aa_graph::HeteroGraph;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use glycan_aa::notation::Notation;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::files::{npy_header, safetensors_header_for};
use super::{
    embed, file_inputs, glycan_inputs, molecule_inputs, sequence_inputs, shard_range, Embeddings, Input, Level,
};
use crate::Model;

/// Items per chunk unless a job says otherwise.
pub const DEFAULT_CHUNK: usize = 1024;

/// What a job embeds, before featurisation (cheap to hold for millions of inputs).
pub enum Items {
    /// Glycan strings in `notation` (detected per glycan when `None`).
    Glycans {
        /// The glycans.
        glycans: Vec<String>,
        /// Their notation.
        notation: Option<Notation>,
    },
    /// Protein sequences `(name, sequence)`.
    Sequences(Vec<(String, String)>),
    /// Structure files (PDB/mmCIF, compressed or not; `.sdf` files give their molecules): one
    /// item per file, which gives a window per chain and per glycan tree.
    Files(Vec<PathBuf>),
    /// The molecules of one `.sdf` / `.mol` file, one item per record.
    Molecules {
        /// The file.
        path: PathBuf,
        /// Its molecules.
        molecules: Vec<HeteroGraph>,
        /// SHA-256 of its bytes.
        digest: String,
    },
}

impl Items {
    /// The molecules of an `.sdf` / `.mol` file.
    pub fn molecules(path: &Path) -> Result<Items> {
        let bytes = crate::inputs::read_capped(path)?;
        let digest = hex(&Sha256::digest(&bytes));
        let molecules = super::parse_molecules(path, bytes)?;
        Ok(Items::Molecules { path: path.to_path_buf(), molecules, digest })
    }

    /// A structure file or folder: the molecules of an `.sdf` / `.mol` file, else the sorted
    /// structure files.
    pub fn structures(path: &Path) -> Result<Items> {
        if protein_aa::molfile::is_molfile(path) {
            return Items::molecules(path);
        }
        Ok(Items::Files(crate::inputs::structure_files(path)?))
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            Items::Glycans { glycans, .. } => glycans.len(),
            Items::Sequences(s) => s.len(),
            Items::Files(f) => f.len(),
            Items::Molecules { molecules, .. } => molecules.len(),
        }
    }

    /// No items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inputs of items `range` (a file item can give several).
    pub fn inputs(&self, model: &Model, range: Range<usize>) -> Vec<Input> {
        match self {
            Items::Glycans { glycans, notation } => glycan_inputs(model, &glycans[range], *notation),
            Items::Sequences(s) => sequence_inputs(&s[range]),
            Items::Files(f) => file_inputs(model, &f[range]),
            Items::Molecules { path, molecules, .. } => {
                molecule_inputs(path, range.start, molecules[range].iter().cloned())
            }
        }
    }

    /// SHA-256 of what the items are (strings; file names and sizes; an SDF file's bytes).
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        let mut put = |s: &[u8]| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s);
        };
        match self {
            Items::Glycans { glycans, notation } => {
                put(format!("glycans {notation:?}").as_bytes());
                glycans.iter().for_each(|g| put(g.as_bytes()));
            }
            Items::Sequences(s) => {
                put(b"sequences");
                s.iter().for_each(|(n, q)| {
                    put(n.as_bytes());
                    put(q.as_bytes())
                });
            }
            Items::Files(f) => {
                put(b"files");
                for p in f {
                    put(p.as_os_str().as_encoded_bytes());
                    put(&std::fs::metadata(p).map_or(u64::MAX, |m| m.len()).to_le_bytes());
                }
            }
            Items::Molecules { path, digest, .. } => {
                put(b"molecules");
                put(path.as_os_str().as_encoded_bytes());
                put(digest.as_bytes());
            }
        }
        hex(&h.finalize())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The chunks of `len` items (`chunk` each, the last shorter), numbered from the start, and
/// of them the contiguous run of whole chunks that is shard `k` of `n` (all without a shard):
/// `(chunk number, item range)`.
pub fn plan(len: usize, chunk: usize, shard: Option<(usize, usize)>) -> Vec<(usize, Range<usize>)> {
    let chunk = chunk.max(1);
    let count = len.div_ceil(chunk);
    let chunks = shard.map_or(0..count, |s| shard_range(count, s));
    chunks.map(|c| (c, c * chunk..((c + 1) * chunk).min(len))).collect()
}

/// How far a job has come, after each chunk.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Chunks of this job finished (computed or kept from an earlier run).
    pub chunks_done: usize,
    /// Chunks of this job.
    pub chunks: usize,
    /// Chunks kept from an earlier run.
    pub resumed: usize,
    /// Items finished.
    pub items_done: usize,
    /// Items of this job.
    pub items: usize,
    /// Items computed by this run (not kept from an earlier one).
    pub items_computed: usize,
    /// Seconds since the job started.
    pub seconds: f64,
}

impl std::fmt::Display for Progress {
    /// One line for a log: `chunk 3/10 (3,072 of 10,240 items), 2,950 items/s, about 2 s left`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let computed = self.items_computed;
        let rate = computed as f64 / self.seconds.max(1e-9);
        write!(f, "chunk {}/{} ({} of {} items", self.chunks_done, self.chunks, self.items_done, self.items)?;
        if self.resumed > 0 {
            write!(f, ", {} chunks kept from an earlier run", self.resumed)?;
        }
        write!(f, ")")?;
        if computed > 0 {
            let left = (self.items - self.items_done) as f64 / rate;
            write!(f, ", {rate:.0} items/s, about {left:.0} s left")?;
        }
        Ok(())
    }
}

/// What a job wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Inputs (an item can give several).
    pub inputs: usize,
    /// Inputs embedded.
    pub embedded: usize,
    /// Inputs that failed.
    pub failed: usize,
    /// Rows written.
    pub rows: usize,
    /// Row width.
    pub width: usize,
    /// Chunks kept from an earlier run.
    pub resumed: usize,
    /// The metadata file (none when the output is a device).
    pub metadata: Option<PathBuf>,
}

/// An embedding job: `items` through `model` at `level`, `batch_size` inputs per forward pass,
/// `chunk` items at a time, the shard `k` of `n` of the chunks (all without one).
pub struct Job<'a> {
    /// The model.
    pub model: &'a Model,
    /// What to embed.
    pub items: &'a Items,
    /// Which rows.
    pub level: Level,
    /// Inputs per forward pass.
    pub batch_size: usize,
    /// Items per chunk.
    pub chunk: usize,
    /// Shard `(k, n)`.
    pub shard: Option<(usize, usize)>,
}

/// The width of the rows `encoder` gives at `level`.
pub fn row_width(model: &Model, level: Level) -> usize {
    let e = model.encoder.as_ref();
    match level {
        Level::Graph => e.readout().dim(e.unit_dim()),
        _ => e.unit_dim(),
    }
}

/// The index arrays of a level, in the order the files hold them (by name).
fn index_names(level: Level) -> &'static [&'static str] {
    match level {
        Level::Graph => &[],
        Level::Unit => &["input_index", "unit_index"],
        Level::Atom => &["atom_index", "atomic_number", "input_index", "unit_index"],
    }
}

/// `rec` with `index` and `rows` moved by `inputs` and `rows` (a chunk's records placed in a
/// whole output).
fn shift_record(line: &str, inputs: usize, rows: usize) -> Result<(String, Option<String>)> {
    let mut rec: Value = serde_json::from_str(line).context("an embedding record that is not JSON")?;
    if let Some(i) = rec["index"].as_u64() {
        rec["index"] = json!(i as usize + inputs);
    }
    if let Some([lo, hi]) = rec["rows"].as_array().map(|a| a.as_slice()) {
        let (lo, hi) = (lo.as_u64().unwrap_or(0) as usize, hi.as_u64().unwrap_or(0) as usize);
        rec["rows"] = json!([lo + rows, hi + rows]);
    }
    let err = rec["error"].as_str().map(String::from);
    Ok((rec.to_string(), err))
}

impl Job<'_> {
    /// The chunks this job computes: `(chunk number, item range)`.
    pub fn plan(&self) -> Vec<(usize, Range<usize>)> {
        plan(self.items.len(), self.chunk, self.shard)
    }

    /// What identifies the job's results: the model (origin and configuration), the items, the
    /// level, chunk, batch size and shard.
    pub fn fingerprint(&self) -> Value {
        let config = hex(&Sha256::digest(self.model.config.to_string().as_bytes()));
        json!({
            "model": self.model.origin,
            "config_sha256": config,
            "items_sha256": self.items.digest(),
            "items": self.items.len(),
            "level": format!("{:?}", self.level),
            "chunk": self.chunk.max(1),
            "batch_size": self.batch_size.max(1),
            "shard": self.shard.map(|(k, n)| format!("{k}/{n}")),
        })
    }

    /// Runs the chunks in order: `keep(c)` true skips chunk `c` (finished earlier), else its
    /// embeddings go to `sink`; `progress` hears after every chunk.
    pub fn run(
        &self,
        keep: &mut dyn FnMut(usize) -> bool,
        sink: &mut dyn FnMut(usize, Embeddings) -> Result<()>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let plan = self.plan();
        let started = Instant::now();
        let mut p = Progress {
            chunks_done: 0,
            chunks: plan.len(),
            resumed: 0,
            items_done: 0,
            items: plan.iter().map(|(_, r)| r.len()).sum(),
            items_computed: 0,
            seconds: 0.0,
        };
        for (c, range) in plan {
            let n = range.len();
            if keep(c) {
                p.resumed += 1;
            } else {
                let inputs = self.items.inputs(self.model, range);
                let e = embed(self.model, &inputs, self.level, self.batch_size)?;
                drop(inputs);
                sink(c, e)?;
                p.items_computed += n;
            }
            p.chunks_done += 1;
            p.items_done += n;
            p.seconds = started.elapsed().as_secs_f64();
            progress(&p);
        }
        Ok(())
    }

    /// The whole job in memory: the chunks' embeddings joined (input indices, record indices
    /// and row spans renumbered), the same rows as [`Job::to_file`] writes.
    pub fn in_memory(&self) -> Result<Embeddings> {
        let mut all = Embeddings {
            pieces: Vec::new(),
            rows: 0,
            width: row_width(self.model, self.level),
            index: Default::default(),
            jsonl: String::new(),
            embedded: 0,
            failed: 0,
        };
        let mut index: Vec<(String, Vec<Tensor>)> =
            index_names(self.level).iter().map(|n| (n.to_string(), Vec::new())).collect();
        let mut inputs = 0;
        self.run(
            &mut |_| false,
            &mut |_, e| {
                for (name, parts) in &mut index {
                    let t = e.index.get(name).context("a chunk without its index array")?;
                    parts.push(if name == "input_index" {
                        let v: Vec<u32> = t.to_vec1::<u32>()?.iter().map(|i| i + inputs as u32).collect();
                        Tensor::new(v, &Device::Cpu)?
                    } else {
                        t.clone()
                    });
                }
                for line in e.jsonl.lines() {
                    all.jsonl.push_str(&shift_record(line, inputs, all.rows)?.0);
                    all.jsonl.push('\n');
                }
                inputs += e.jsonl.lines().count();
                all.rows += e.rows;
                all.embedded += e.embedded;
                all.failed += e.failed;
                all.pieces.extend(e.pieces);
                Ok(())
            },
            &mut |_| {},
        )?;
        for (name, parts) in index {
            let t = if parts.is_empty() {
                Tensor::zeros(0, candle_core::DType::U32, &Device::Cpu)?
            } else {
                Tensor::cat(&parts, 0)?
            };
            all.index.insert(name, t);
        }
        Ok(all)
    }

    /// Runs the job into `out` (`.npy` at graph level, `.safetensors` otherwise) and its
    /// `.jsonl`, through `<out>.parts/` (see the module notes); with `resume`, the finished
    /// chunks of an interrupted run of the same job are kept.
    pub fn to_file(&self, out: &Path, resume: bool, progress: &mut dyn FnMut(&Progress)) -> Result<Summary> {
        let device = aa_pretrain::checkpoint::is_special(out);
        let _tmp;
        let dir = if device {
            _tmp = tempfile::tempdir().context("cannot make a temporary folder for the chunks")?;
            _tmp.path().to_path_buf()
        } else {
            parts_dir(out)
        };
        let fingerprint = self.fingerprint();
        let marker = dir.join("job.json");
        if !device {
            prepare_parts(&dir, &marker, &fingerprint, resume)?;
        }
        std::fs::write(&marker, serde_json::to_vec_pretty(&fingerprint)?)
            .with_context(|| format!("cannot write {}", marker.display()))?;
        let ext = if self.level == Level::Graph { "npy" } else { "safetensors" };
        let part = |c: usize| dir.join(format!("chunk-{c:06}.{ext}"));
        let finished = |c: usize| part(c).is_file() && super::metadata_path(&part(c)).is_file();
        let mut resumed = 0;
        self.run(
            &mut |c| {
                let keep = resume && finished(c);
                resumed += keep as usize;
                keep
            },
            &mut |c, e| {
                super::write(&part(c), &e, self.level)?;
                Ok(())
            },
            progress,
        )?;
        let parts: Vec<PathBuf> = self.plan().iter().map(|(c, _)| part(*c)).collect();
        let mut summary = assemble(out, &parts, self.level, row_width(self.model, self.level))?;
        summary.resumed = resumed;
        if !device {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        Ok(summary)
    }
}

/// Where a job writing `out` keeps its finished chunks: `<out>.parts/` beside it.
pub fn parts_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".parts");
    out.with_file_name(name)
}

/// Makes the parts folder ready: kept when resuming the same job, emptied otherwise; a folder
/// that is not one of ours is never touched.
fn prepare_parts(dir: &Path, marker: &Path, fingerprint: &Value, resume: bool) -> Result<()> {
    if dir.exists() {
        let Ok(old) = std::fs::read(marker) else {
            bail!("{}: exists and is not an embedding job's parts folder (no job.json); move it away", dir.display());
        };
        let old: Value = serde_json::from_slice(&old).unwrap_or(Value::Null);
        if resume {
            if &old == fingerprint {
                return Ok(());
            }
            bail!(
                "{}: holds the chunks of a different job (model, inputs, level, chunk, batch size or shard differ); \
                 run without --skip-existing to start over",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))
}

/// Where one part's rows and index arrays lie.
struct PartInfo {
    rows: usize,
    width: usize,
    /// Byte offset of the rows.
    data: u64,
    /// Index arrays by name: byte offset, length.
    index: Vec<(String, u64, usize)>,
}

fn part_info(path: &Path, level: Level) -> Result<PartInfo> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let bad = || anyhow::anyhow!("{}: not a chunk this job wrote", path.display());
    if level == Level::Graph {
        let mut head = [0u8; 10];
        f.read_exact(&mut head).map_err(|_| bad())?;
        let n = u16::from_le_bytes([head[8], head[9]]) as usize;
        let mut h = vec![0u8; n];
        f.read_exact(&mut h).map_err(|_| bad())?;
        let h = String::from_utf8(h).map_err(|_| bad())?;
        let shape = h.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(bad)?;
        let dims: Vec<usize> = shape.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        let [rows, width] = dims[..] else { return Err(bad()) };
        return Ok(PartInfo { rows, width, data: 10 + n as u64, index: vec![] });
    }
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| bad())?;
    let n = u64::from_le_bytes(len) as usize;
    if n > 1 << 24 {
        return Err(bad());
    }
    let mut h = vec![0u8; n];
    f.read_exact(&mut h).map_err(|_| bad())?;
    let h: Value = serde_json::from_slice(&h).map_err(|_| bad())?;
    let at = |name: &str| -> Result<(Vec<usize>, u64)> {
        let t = &h[name];
        let shape = t["shape"].as_array().ok_or_else(bad)?.iter().filter_map(|v| v.as_u64()).map(|v| v as usize);
        let start = t["data_offsets"][0].as_u64().ok_or_else(bad)?;
        Ok((shape.collect(), 8 + n as u64 + start))
    };
    let (shape, data) = at("embeddings")?;
    let [rows, width] = shape[..] else { return Err(bad()) };
    let mut index = Vec::new();
    for name in index_names(level) {
        let (shape, off) = at(name)?;
        index.push((name.to_string(), off, shape.first().copied().unwrap_or(0)));
    }
    Ok(PartInfo { rows, width, data, index })
}

/// Streams the parts (in order) into `out` and its `.jsonl`, renumbering records, row spans
/// and input indices; written as one set (both complete, or neither changed).
fn assemble(out: &Path, parts: &[PathBuf], level: Level, width: usize) -> Result<Summary> {
    use aa_pretrain::checkpoint::{write_set_streamed, Body};
    let infos: Vec<PartInfo> = parts.iter().map(|p| part_info(p, level)).collect::<Result<_>>()?;
    if let Some((p, i)) = parts.iter().zip(&infos).find(|(_, i)| i.width != width) {
        bail!("{}: rows {} wide, the job's are {width}", p.display(), i.width);
    }
    let rows: usize = infos.iter().map(|i| i.rows).sum();
    // Records counted first (the counts place each part's input indices); they are streamed
    // into the output's metadata part by part, never held whole.
    let mut bases = Vec::with_capacity(parts.len() + 1);
    let (mut inputs, mut failed) = (0, 0);
    for p in parts {
        bases.push(inputs);
        let m = super::metadata_path(p);
        let text = std::fs::read_to_string(&m).with_context(|| format!("cannot read {}", m.display()))?;
        for line in text.lines() {
            let (_, err) = shift_record(line, 0, 0).with_context(|| m.display().to_string())?;
            if err.is_some() {
                failed += 1;
            }
            inputs += 1;
        }
    }
    let mut records = |w: &mut dyn Write| -> std::io::Result<()> {
        let mut row_base = 0;
        for ((p, info), base) in parts.iter().zip(&infos).zip(&bases) {
            let mut out = String::new();
            for line in std::fs::read_to_string(super::metadata_path(p))?.lines() {
                out.push_str(&shift_record(line, *base, row_base).map_err(std::io::Error::other)?.0);
                out.push('\n');
            }
            w.write_all(out.as_bytes())?;
            row_base += info.rows;
        }
        Ok(())
    };
    let totals: Vec<(String, usize)> = index_names(level)
        .iter()
        .map(|n| (n.to_string(), infos.iter().map(|i| i.index.iter().find(|x| x.0 == *n).map_or(0, |x| x.2)).sum()))
        .collect();
    let mut body = |w: &mut dyn Write| -> std::io::Result<()> {
        match level {
            Level::Graph => w.write_all(&npy_header(rows, width))?,
            _ => w.write_all(&safetensors_header_for(rows, width, &totals)?)?,
        }
        let mut buf = Vec::new();
        let copy = |p: &Path, off: u64, bytes: usize, buf: &mut Vec<u8>| -> std::io::Result<()> {
            let mut f = std::fs::File::open(p)?;
            f.seek(SeekFrom::Start(off))?;
            buf.resize(bytes, 0);
            f.read_exact(buf)
        };
        for (p, i) in parts.iter().zip(&infos) {
            copy(p, i.data, 4 * i.rows * i.width, &mut buf)?;
            w.write_all(&buf)?;
        }
        for (name, _) in &totals {
            for ((p, i), base) in parts.iter().zip(&infos).zip(&bases) {
                let (_, off, n) = i.index.iter().find(|x| &x.0 == name).cloned().unwrap_or_default();
                copy(p, off, 4 * n, &mut buf)?;
                if name == "input_index" {
                    for c in buf.chunks_exact_mut(4) {
                        let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) + *base as u32;
                        c.copy_from_slice(&v.to_le_bytes());
                    }
                }
                w.write_all(&buf)?;
            }
        }
        Ok(())
    };
    let metadata = if aa_pretrain::checkpoint::is_special(out) {
        write_set_streamed(&mut [(out, Body::Stream(&mut body))])?;
        None
    } else {
        let meta = super::metadata_path(out);
        if meta == out {
            bail!("{}: the output needs an extension other than .jsonl (.npy or .safetensors)", out.display());
        }
        write_set_streamed(&mut [(out, Body::Stream(&mut body)), (&meta, Body::Stream(&mut records))])?;
        Some(meta)
    };
    Ok(Summary { inputs, embedded: inputs - failed, failed, rows, width, resumed: 0, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks are numbered from the start and shards are runs of whole chunks that cover every
    /// chunk once, in order.
    #[test]
    fn shards_are_runs_of_whole_chunks() {
        let all = plan(10, 3, None);
        assert_eq!(all, vec![(0, 0..3), (1, 3..6), (2, 6..9), (3, 9..10)]);
        for n in 1..6 {
            let cat: Vec<_> = (0..n).flat_map(|k| plan(10, 3, Some((k, n)))).collect();
            assert_eq!(cat, all, "{n} shards");
        }
        assert_eq!(plan(10, 3, Some((0, 2))), vec![(0, 0..3), (1, 3..6)]);
        assert!(plan(2, 3, Some((0, 2))).is_empty(), "fewer chunks than shards: an empty shard");
        assert!(plan(0, 3, None).is_empty());
    }

    /// A record moved into a whole output: index and row span shifted, error reported.
    #[test]
    fn records_are_renumbered() {
        let (r, e) = shift_record(r#"{"index":1,"input":"x","rows":[2,5]}"#, 10, 100).unwrap();
        assert_eq!(r, r#"{"index":11,"input":"x","rows":[102,105]}"#);
        assert_eq!(e, None);
        let (r, e) = shift_record(r#"{"error":"bad","index":0}"#, 3, 7).unwrap();
        assert_eq!(r, r#"{"error":"bad","index":3}"#);
        assert_eq!(e.as_deref(), Some("bad"));
    }
}
