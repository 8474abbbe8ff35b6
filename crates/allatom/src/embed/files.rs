//! Writing an embedding job's rows and metadata: `.npy` (graph level) or `.safetensors` with
//! index arrays (unit and atom levels), and the `.jsonl` beside them, streamed from the pieces.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
#[cfg(test)]
use candle_core::Device;
use candle_core::Tensor;

use super::{Embeddings, Level};

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
pub(crate) fn index_order(index: &HashMap<String, Tensor>) -> Vec<(&String, &Tensor)> {
    let mut v: Vec<(&String, &Tensor)> = index.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// The safetensors header (length prefix and JSON, padded to 8 bytes) of `embeddings`
/// (F32 `[rows, width]`) followed by the index arrays — the layout `safetensors::serialize`
/// writes for the same tensors, built with its own `Metadata`.
pub(crate) fn safetensors_header(e: &Embeddings) -> std::io::Result<Vec<u8>> {
    let index: Vec<(String, usize)> =
        index_order(&e.index).iter().map(|(n, t)| (n.to_string(), t.elem_count())).collect();
    safetensors_header_for(e.rows, e.width, &index)
}

/// The safetensors header of F32 `embeddings` `[rows, width]` followed by the U32 index
/// arrays `(name, length)` in the order given.
pub(crate) fn safetensors_header_for(rows: usize, width: usize, index: &[(String, usize)]) -> std::io::Result<Vec<u8>> {
    use safetensors::tensor::{Metadata, TensorInfo};
    use safetensors::Dtype;
    let mut infos = Vec::new();
    let mut offset = 4 * rows * width;
    infos.push((
        "embeddings".to_string(),
        TensorInfo { dtype: Dtype::F32, shape: vec![rows, width], data_offsets: (0, offset) },
    ));
    for (name, len) in index {
        let n = 4 * len;
        infos.push((
            name.clone(),
            TensorInfo { dtype: Dtype::U32, shape: vec![*len], data_offsets: (offset, offset + n) },
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
pub(crate) fn npy_header(n: usize, d: usize) -> Vec<u8> {
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
        let pieces = vec![a.narrow(0, 1, 2).unwrap(), b.clone()];
        let u32s = |v: Vec<u32>| Tensor::from_vec(v.clone(), v.len(), &dev).unwrap();
        let index: HashMap<String, Tensor> = [
            ("input_index".to_string(), u32s(vec![0, 0, 1, 1])),
            ("unit_index".to_string(), u32s(vec![0, 1, 0, 1])),
            ("atom_index".to_string(), u32s(vec![5, 6, 7, 8])),
            ("atomic_number".to_string(), u32s(vec![6, 8, 6, 7])),
        ]
        .into();
        let e = Embeddings { pieces, rows: 4, width: 4, index, jsonl: "{}\n".into(), embedded: 2, failed: 0 };
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
    }
}
