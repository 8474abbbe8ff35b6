//! `allatom.Encoder`: any encoder package behind `from_pretrained`, and `embed` through the
//! same chunked job as `allatom embed` (so the rows are the CLI's, bit for bit).

use std::path::PathBuf;
use std::sync::OnceLock;

use aa_pretrain::hub::HubOptions;
use allatom::embed::job::{Items, Job, DEFAULT_CHUNK};
use allatom::embed::{first_input_error, Embeddings, InputError, Level};
use allatom::Model;
use glycan_aa::notation::Notation;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::{glycan_error, model_error, thread_count, AllatomError, ModelError, StructureError};

/// What the encoder was loaded from (kept for pickling).
#[derive(Clone)]
struct Source {
    name: String,
    revision: Option<String>,
    cache_dir: Option<PathBuf>,
    local_files_only: bool,
    threads: Option<usize>,
}

impl Source {
    fn load(&self, patch: &serde_json::Value) -> anyhow::Result<Model> {
        let mut opts = HubOptions::from_env();
        if let Some(c) = &self.cache_dir {
            opts.cache_dir = Some(c.clone());
        }
        opts.offline |= self.local_files_only;
        let local = std::path::Path::new(&self.name).exists()
            || [allatom::DEFAULT_MODEL, allatom::MOLECULE_MODEL].contains(&self.name.as_str());
        let id = match &self.revision {
            Some(_) if local => anyhow::bail!("{}: a revision applies to hub repositories only", self.name),
            Some(r) => format!("{}@{r}", self.name),
            None => self.name.clone(),
        };
        Model::from_pretrained_with(&id, &opts, patch)
    }
}

/// An encoder of any family (GlycanAA, RGCN, Vabs-Net, ESM-2 / ESM-AA) with its readout.
///
/// `Encoder.from_pretrained(name_or_path=None, revision=None, cache_dir=None,
/// local_files_only=False, threads=None)` loads the built-in default (`preglycanaa-small`),
/// the other built-in model, a package directory or a Hugging Face Hub repository id.
/// `embed(...)` gives NumPy arrays. Encoders pickle (they reload from where they came from).
#[pyclass(module = "allatom", frozen)]
pub struct Encoder {
    model: Model,
    /// ESM with every residue unzipped into atom tokens, for atom-level rows (loaded once).
    atom_model: OnceLock<Result<Model, String>>,
    source: Source,
    pool: rayon::ThreadPool,
}

/// What `embed` reads its inputs as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Glycan,
    Sequence,
    Structure,
}

impl Encoder {
    fn atom_model(&self) -> PyResult<&Model> {
        if self.model.family().name() != "esm" {
            return Ok(&self.model);
        }
        self.atom_model
            .get_or_init(|| self.source.load(&serde_json::json!({ "unzip": "all" })).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| ModelError::new_err(e.clone()))
    }

    /// The inputs as strings and paths, and whether one input (not a list) was given.
    fn read_inputs<'py>(
        inputs: &Bound<'py, PyAny>,
        pathlike: &Bound<'py, PyAny>,
    ) -> PyResult<(Vec<Bound<'py, PyAny>>, bool)> {
        if inputs.is_instance_of::<PyString>() || inputs.is_instance(pathlike)? {
            return Ok((vec![inputs.clone()], true));
        }
        let items: Vec<Bound<'_, PyAny>> = inputs
            .try_iter()
            .map_err(|_| PyTypeError::new_err("embed takes a string, a path, or a list of them"))?
            .collect::<PyResult<_>>()?;
        Ok((items, false))
    }

    fn kind(&self, items: &[Bound<'_, PyAny>], pathlike: &Bound<'_, PyAny>, kind: Option<&str>) -> PyResult<Kind> {
        Ok(match kind {
            Some("glycan") => Kind::Glycan,
            Some("sequence") => Kind::Sequence,
            Some("structure") => Kind::Structure,
            Some(k) => {
                return Err(PyValueError::new_err(format!("kind {k:?}: expected glycan, sequence or structure")))
            }
            None => {
                if items.is_empty() {
                    return Ok(Kind::Glycan);
                }
                if items.iter().all(|i| i.is_instance(pathlike).unwrap_or(false))
                    || self.model.encoder.requirements().coordinates
                {
                    Kind::Structure
                } else if self.model.family().name() == "esm" {
                    Kind::Sequence
                } else {
                    Kind::Glycan
                }
            }
        })
    }

    /// Raises the error of a single input, before the job (as `allatom embed --glycan` does).
    fn check_single(py: Python<'_>, model: &Model, items: &Items, notation: Option<Notation>) -> PyResult<()> {
        if let Items::Glycans { glycans, .. } = items {
            let g = &glycans[0];
            if let Err(e) = model.glycans.read_as(g, notation.unwrap_or_else(|| Notation::detect(g))) {
                return Err(glycan_error(py, g, &e));
            }
        }
        // Featurised without the GIL (a structure file can take a while), the error raised with it.
        match py.detach(|| first_input_error(model, items)) {
            Some(InputError::Model(e)) => Err(ModelError::new_err(e)),
            Some(InputError::Input(e)) => Err(match items {
                Items::Files(_) | Items::Molecules { .. } => StructureError::new_err(e),
                _ => AllatomError::new_err(e),
            }),
            None => Ok(()),
        }
    }
}

fn level(s: &str) -> PyResult<Level> {
    match s {
        "graph" => Ok(Level::Graph),
        "unit" => Ok(Level::Unit),
        "atom" => Ok(Level::Atom),
        _ => Err(PyValueError::new_err(format!("level {s:?}: expected graph, unit or atom"))),
    }
}

fn notation(s: Option<&str>) -> PyResult<Option<Notation>> {
    s.map(|f| f.parse::<Notation>().map_err(PyValueError::new_err)).transpose()
}

/// A NumPy array `[rows, width]` of f32.
fn matrix<'py>(py: Python<'py>, v: Vec<f32>, rows: usize, width: usize) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, v).reshape([rows, width])?.into_any())
}

fn u32s<'py>(py: Python<'py>, e: &Embeddings, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let v = match e.index.get(name) {
        Some(t) => t.to_vec1::<u32>().map_err(|e| model_error(e.into()))?,
        None => Vec::new(),
    };
    Ok(PyArray1::from_vec(py, v).into_any())
}

#[pymethods]
impl Encoder {
    /// Loads an encoder package: `name_or_path` is a built-in model (`preglycanaa-small`, the
    /// default; `preglycanaa-molecule-small`), a package directory, or a Hugging Face Hub
    /// repository id (`revision` a branch, tag or commit; `cache_dir` the hub cache folder,
    /// default `HF_HOME`'s; `local_files_only` reads only the cache). `threads`: worker threads
    /// (default `RAYON_NUM_THREADS`, else `OMP_NUM_THREADS`, else every core).
    #[staticmethod]
    #[pyo3(signature = (name_or_path=None, revision=None, cache_dir=None, local_files_only=false, threads=None))]
    fn from_pretrained(
        py: Python<'_>,
        name_or_path: Option<PathBuf>,
        revision: Option<String>,
        cache_dir: Option<PathBuf>,
        local_files_only: bool,
        threads: Option<usize>,
    ) -> PyResult<Encoder> {
        let name = name_or_path.map_or(allatom::DEFAULT_MODEL.to_string(), |p| p.to_string_lossy().into_owned());
        let n = thread_count(threads)?;
        let source = Source { name, revision, cache_dir, local_files_only, threads };
        let model = py.detach(|| source.load(&serde_json::Value::Null)).map_err(model_error)?;
        // Threads named by pool and index (`allatom3-0`, within Linux's 15 characters), so a
        // profiler or `top -H` tells the encoders' pools apart.
        static POOLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let id = POOLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |i| format!("allatom{id}-{i}"))
            .build()
            .map_err(|e| AllatomError::new_err(format!("cannot start {n} threads: {e}")))?;
        // Every worker started (build returns once they are spawned, not once they run) before the
        // encoder is handed out.
        pool.broadcast(|_| ());
        Ok(Encoder { model, atom_model: OnceLock::new(), source, pool })
    }

    /// Embeds glycans (IUPAC-condensed, WURCS, GlycoCT, the short forms; `format` forces one),
    /// protein sequences or structure files (paths; `.sdf` files give their molecules).
    /// `kind` ("glycan", "sequence", "structure") is detected when not given: paths are
    /// structures, strings are sequences for ESM models and glycans otherwise.
    ///
    /// `level="graph"`: one row per input, a float32 array `[inputs, dim]` (a single glycan or
    /// sequence gives `[dim]`; a structure file is one input per chain and per glycan tree, in
    /// the order of `allatom embed`'s records); a failed input's row is NaN and an
    /// `allatom.InputWarning` names it — or, with `return_records=True`, no warning and the
    /// pair `(rows, records)`: per input the metadata `allatom embed` writes (`input`, and for
    /// structures `structure`, `chain` or `attached_to`; `error` when it failed).
    /// `level="unit"` / `"atom"`: an `allatom.Embeddings` (rows, per-input offsets, index
    /// arrays, per-input errors). A single bad input raises (`GlycanParseError`,
    /// `StructureError`, `ModelError`). The rows equal `allatom embed`'s for the same
    /// `batch_size` and `chunk`; the GIL is released while they are computed.
    #[pyo3(signature = (inputs, level="graph", kind=None, format=None, batch_size=256, chunk=DEFAULT_CHUNK, return_records=false))]
    #[allow(clippy::too_many_arguments)]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        level: &str,
        kind: Option<&str>,
        format: Option<&str>,
        batch_size: usize,
        chunk: usize,
        return_records: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let level = self::level(level)?;
        let notation = notation(format)?;
        if batch_size == 0 || chunk == 0 {
            return Err(PyValueError::new_err("batch_size and chunk must be at least 1"));
        }
        let pathlike = py.import("os")?.getattr("PathLike")?;
        let (raw, single) = Self::read_inputs(inputs, &pathlike)?;
        let kind = self.kind(&raw, &pathlike, kind)?;
        let strings = |what: &str| -> PyResult<Vec<String>> {
            raw.iter()
                .enumerate()
                .map(|(i, x)| {
                    x.extract::<String>().map_err(|_| {
                        PyTypeError::new_err(format!("input {i}: a {what} is a string, got {}", x.get_type()))
                    })
                })
                .collect()
        };
        let items = match kind {
            Kind::Glycan => Items::Glycans { glycans: strings("glycan")?, notation },
            Kind::Sequence => Items::Sequences(strings("sequence")?.into_iter().map(|s| (s.clone(), s)).collect()),
            Kind::Structure => {
                let paths: Vec<PathBuf> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.extract::<PathBuf>().map_err(|_| {
                            PyTypeError::new_err(format!("input {i}: a structure is a path, got {}", x.get_type()))
                        })
                    })
                    .collect::<PyResult<_>>()?;
                match &paths[..] {
                    [p] if protein_aa::molfile::is_molfile(p) => {
                        py.detach(|| Items::molecules(p)).map_err(|e| StructureError::new_err(format!("{e:#}")))?
                    }
                    _ => Items::Files(paths),
                }
            }
        };
        let model = if level == Level::Atom { self.atom_model()? } else { &self.model };
        if single {
            Self::check_single(py, model, &items, notation)?;
        }
        let job = Job { model, items: &items, level, batch_size, chunk, shard: None };
        let e = py.detach(|| self.pool.install(|| job.in_memory())).map_err(model_error)?;
        let records: Vec<serde_json::Value> =
            e.jsonl.lines().map(|l| serde_json::from_str(l).unwrap_or(serde_json::Value::Null)).collect();
        let rows = e.matrix().and_then(|m| Ok(m.flatten_all()?.to_vec1::<f32>()?)).map_err(model_error)?;
        let width = e.width;
        if level == Level::Graph {
            // One row per input, NaN where an input failed.
            let mut full = vec![f32::NAN; records.len() * width];
            let mut failed = Vec::new();
            for (i, r) in records.iter().enumerate() {
                match r["rows"].as_array().and_then(|a| a.first()).and_then(|v| v.as_u64()) {
                    Some(lo) => {
                        let lo = lo as usize * width;
                        full[i * width..(i + 1) * width].copy_from_slice(&rows[lo..lo + width]);
                    }
                    None => failed.push(format!("input {i}: {}", r["error"].as_str().unwrap_or("not embedded"))),
                }
            }
            if return_records {
                let m = matrix(py, full, records.len(), width)?;
                let loads = py.import("json")?.getattr("loads")?;
                let recs = PyList::empty(py);
                for line in e.jsonl.lines() {
                    recs.append(loads.call1((line,))?)?;
                }
                return Ok(PyTuple::new(py, [m, recs.into_any()])?.into_any());
            }
            if !failed.is_empty() {
                let warning = py.import("allatom")?.getattr("InputWarning")?;
                let msg = format!(
                    "{} of {} inputs failed (their rows are NaN): {}",
                    failed.len(),
                    records.len(),
                    failed.join("; ")
                );
                PyErr::warn(py, &warning, &std::ffi::CString::new(msg).unwrap_or_default(), 1)?;
            }
            let m = matrix(py, full, records.len(), width)?;
            // One glycan or sequence: its row. A structure file gives a row per chain and glycan.
            return if single && kind != Kind::Structure { m.call_method1("reshape", (width,)) } else { Ok(m) };
        }
        let kw = PyDict::new(py);
        kw.set_item("values", matrix(py, rows, e.rows, width)?)?;
        let mut offsets = vec![0i64; records.len() + 1];
        let mut next = 0i64;
        for (i, r) in records.iter().enumerate() {
            if let Some(hi) = r["rows"].as_array().and_then(|a| a.get(1)).and_then(|v| v.as_u64()) {
                next = hi as i64;
            }
            offsets[i + 1] = next;
        }
        kw.set_item("offsets", PyArray1::from_vec(py, offsets))?;
        kw.set_item("input_index", u32s(py, &e, "input_index")?)?;
        kw.set_item("unit_index", u32s(py, &e, "unit_index")?)?;
        if level == Level::Atom {
            kw.set_item("atom_index", u32s(py, &e, "atom_index")?)?;
            kw.set_item("atomic_number", u32s(py, &e, "atomic_number")?)?;
        }
        let errors: Vec<Option<String>> = records.iter().map(|r| r["error"].as_str().map(String::from)).collect();
        kw.set_item("errors", PyList::new(py, errors)?)?;
        let lines: Vec<&str> = e.jsonl.lines().collect();
        kw.set_item("records", PyList::new(py, lines)?)?;
        kw.set_item("level", if level == Level::Unit { "unit" } else { "atom" })?;
        py.import("allatom")?.getattr("Embeddings")?.call((), Some(&kw))
    }

    /// The family (`glycanaa`, `rgcn`, `vabs`, `esm`).
    #[getter]
    fn family(&self) -> &str {
        self.model.family().name()
    }

    /// What it was loaded as (the name or path given).
    #[getter]
    fn name(&self) -> &str {
        &self.source.name
    }

    /// Where it was loaded from (a built-in model, a directory, the hub cache's snapshot).
    #[getter]
    fn origin(&self) -> &str {
        &self.model.origin
    }

    /// Width of a graph-level row.
    #[getter]
    fn dim(&self) -> usize {
        allatom::embed::job::row_width(&self.model, Level::Graph)
    }

    /// Width of a unit- or atom-level row.
    #[getter]
    fn unit_dim(&self) -> usize {
        self.model.encoder.unit_dim()
    }

    /// Worker threads this encoder computes with.
    #[getter]
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The package configuration (`family`, `model`, …) as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (self.model.config.to_string(),))
    }

    /// Pickles as the call that loads it again (`allatom._reload`).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let s = &self.source;
        let reload = py.import("allatom")?.getattr("_reload")?;
        let args = (
            s.name.clone(),
            s.revision.clone(),
            s.cache_dir.as_ref().map(|p| p.to_string_lossy().into_owned()),
            s.local_files_only,
            s.threads,
        );
        PyTuple::new(py, [reload, args.into_pyobject(py)?.into_any()])
    }

    fn __repr__(&self) -> String {
        format!(
            "Encoder({:?}, family={:?}, dim={}, threads={})",
            self.source.name,
            self.family(),
            self.dim(),
            self.threads()
        )
    }
}
