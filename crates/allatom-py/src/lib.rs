//! Python bindings of allatom, the native part (`allatom._native`) of the `allatom` package:
//! [`encoder::Encoder`] (`from_pretrained` for every family, `embed` to NumPy arrays),
//! [`molecule::Glycan`] (a glycan's true molecule) and [`molecule::read_structure`]. The
//! package's `__init__.py` re-exports them with the pure-Python pieces (`Embeddings`, the
//! pickling hook). Everything here only converts between Python and the `allatom` crate.
//!
//! Errors are Python exceptions, never a crash: [`AllatomError`] and its subclasses
//! `GlycanParseError` (with `.position`), `StructureError` and `ModelError`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

mod encoder;
mod molecule;

// The CLI's allocator, for the Rust side's allocations: the glibc allocator made embedding
// about a third slower than `allatom embed` (benches/python_embed.py).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(
    allatom,
    AllatomError,
    PyException,
    "The base of every error allatom raises for bad input, a bad model or a failed job."
);
create_exception!(
    allatom,
    GlycanParseError,
    AllatomError,
    "A glycan string that cannot be read or built (`.position`: 0-based offset, or None)."
);
create_exception!(allatom, StructureError, AllatomError, "A structure file that cannot be read.");
create_exception!(
    allatom,
    ModelError,
    AllatomError,
    "A model that cannot be loaded (missing, malformed, wrong-shaped), or that cannot embed an input."
);

/// A `GlycanParseError` for `e`, with its position.
pub(crate) fn glycan_error(py: Python<'_>, input: &str, e: &glycan_aa::GlycanError) -> PyErr {
    let err = GlycanParseError::new_err(format!("glycan {input:?}: {e}"));
    let _ = err.value(py).setattr("position", e.position());
    let _ = err.value(py).setattr("input", input);
    err
}

/// A `ModelError` with `e`'s whole chain of causes.
pub(crate) fn model_error(e: anyhow::Error) -> PyErr {
    ModelError::new_err(format!("{e:#}"))
}

/// The worker threads: `threads`, else `RAYON_NUM_THREADS`, else `OMP_NUM_THREADS` (what Ray
/// sets for its workers), else every core.
pub(crate) fn thread_count(threads: Option<usize>) -> PyResult<usize> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0);
    match threads {
        Some(0) => Err(pyo3::exceptions::PyValueError::new_err("threads must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(env("RAYON_NUM_THREADS")
            .or_else(|| env("OMP_NUM_THREADS"))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))),
    }
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("AllatomError", py.get_type::<AllatomError>())?;
    m.add("GlycanParseError", py.get_type::<GlycanParseError>())?;
    m.add("StructureError", py.get_type::<StructureError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add_class::<encoder::Encoder>()?;
    m.add_class::<molecule::Glycan>()?;
    m.add_class::<molecule::Structure>()?;
    m.add_function(wrap_pyfunction!(molecule::read_structure, m)?)?;
    m.add("DEFAULT_MODEL", allatom::DEFAULT_MODEL)?;
    m.add("MOLECULE_MODEL", allatom::MOLECULE_MODEL)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
