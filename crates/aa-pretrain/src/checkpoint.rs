//! Checkpoints that survive a crash at any moment. Each save writes a fresh directory
//! (`step-000123/` with `model.safetensors`, `optimizer.safetensors`, `state.json`) under a
//! temporary name, syncs it, renames it into place, and only then moves a pointer file
//! (`latest`, `best`) to it by write-then-rename. A reader follows a pointer, so it always sees
//! a complete checkpoint; a kill mid-save leaves at most a `.tmp-*` directory that is ignored
//! and cleaned up by the next save.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Result, Tensor};

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// Directory it was read from.
    pub dir: PathBuf,
    /// Model weights by name.
    pub model: HashMap<String, Tensor>,
    /// Optimiser state by name.
    pub optimizer: HashMap<String, Tensor>,
    /// Trainer state, configuration and anything else the caller stored.
    pub state: serde_json::Value,
}

/// A directory of checkpoints with `latest` and `best` pointers.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
    keep: usize,
}

fn io(path: &Path, what: &str, e: std::io::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what} {}: {e}", path.display()))
}

fn sync_dir(path: &Path) -> Result<()> {
    // Directory fsync makes the rename durable on Linux; elsewhere opening a directory may fail.
    if let Ok(f) = fs::File::open(path) {
        let _ = f.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path` via a temporary sibling and a rename, so that `path` is complete
/// or untouched; a failed write removes its temporary file. A path that is a device, FIFO or
/// socket (`/dev/null`, `/dev/stdout`) is written in place instead — renaming over it would
/// replace the device with a regular file — and a write error there (a full `/dev/full`) is an
/// error too. A directory is refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_set(&[(path, bytes)])
}

/// Whether `path` exists and is neither a regular file nor a directory (a device, FIFO, socket).
pub fn is_special(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Temporary name of `path`'s next version, written by process `pid`.
fn tmp_name(path: &Path, pid: u32) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.join(format!(".tmp-{name}-{pid}"))
}

/// Removes temporary files a killed writer of `path` left behind (`.tmp-NAME-PID` of a
/// process that no longer runs; Linux only, where `/proc` tells).
fn remove_stale_tmps(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".tmp-{name}-");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = f.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() && e.path().is_file() {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Writes several files as a set: every regular file goes to a temporary sibling first (all
/// written and synced before any rename), then the old versions of all but the first file are
/// removed, then each is renamed into place, first file first. A failure before the renames
/// leaves every file untouched; a kill during them can leave the first file new and the others
/// absent — never a new file beside an old partner. Special files (devices) are written in
/// place, as by [`write_atomic`]. Temporary files of killed earlier writers are removed.
pub fn write_set(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut bodies: Vec<(&Path, Body)> = files.iter().map(|&(p, b)| (p, Body::Bytes(b))).collect();
    write_set_streamed(&mut bodies)
}

/// A file's content for [`write_set_streamed`]: bytes at hand, or a writer of them (so that a
/// large file never has to exist in memory whole).
pub enum Body<'a> {
    /// The bytes.
    Bytes(&'a [u8]),
    /// Writes the content to the file it is given.
    Stream(&'a mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>),
}

impl Body<'_> {
    fn write_to(&mut self, w: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Body::Bytes(b) => w.write_all(b),
            Body::Stream(f) => f(w),
        }
    }
}

/// [`write_set`] with content that may be streamed.
pub fn write_set_streamed(files: &mut [(&Path, Body)]) -> Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    let cleanup = |staged: &[(PathBuf, &Path)]| {
        for (tmp, _) in staged {
            let _ = fs::remove_file(tmp);
        }
    };
    for (path, body) in files.iter_mut() {
        let path: &Path = path;
        if let Ok(m) = fs::metadata(path) {
            if m.is_dir() {
                cleanup(&staged);
                candle_core::bail!("{}: is a directory, not a file to write", path.display());
            }
            if !m.is_file() {
                let written =
                    fs::OpenOptions::new().write(true).open(path).map_err(|e| io(path, "opening", e)).and_then(
                        |mut f| body.write_to(&mut f).and_then(|_| f.flush()).map_err(|e| io(path, "writing", e)),
                    );
                if let Err(e) = written {
                    cleanup(&staged);
                    return Err(e);
                }
                continue;
            }
        }
        remove_stale_tmps(path);
        let tmp = tmp_name(path, std::process::id());
        let written = (|| -> Result<()> {
            let f = fs::File::create(&tmp).map_err(|e| io(&tmp, "creating", e))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            body.write_to(&mut w).and_then(|_| w.flush()).map_err(|e| io(&tmp, "writing", e))?;
            let f = w.into_inner().map_err(|e| io(&tmp, "writing", e.into_error()))?;
            f.sync_all().map_err(|e| io(&tmp, "syncing", e))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            cleanup(&staged);
            return Err(e);
        }
        staged.push((tmp, path));
    }
    for (_, path) in staged.iter().skip(1) {
        if let Err(e) = fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                cleanup(&staged);
                return Err(io(path, "removing the old", e));
            }
        }
    }
    for (k, (tmp, path)) in staged.iter().enumerate() {
        if let Err(e) = fs::rename(tmp, path) {
            cleanup(&staged[k..]);
            return Err(io(path, "renaming into", e));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        sync_dir(dir)?;
    }
    Ok(())
}

impl CheckpointDir {
    /// Uses (and creates) `root`; keeps the newest `keep` step directories plus whatever a
    /// pointer names.
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io(&root, "creating", e))?;
        Ok(CheckpointDir { root, keep: keep.max(1) })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Saves a checkpoint named `name` (e.g. `step-000123`) and points `pointers` (e.g.
    /// `["latest"]`, `["latest", "best"]`) at it. Returns its directory.
    pub fn save(
        &self,
        name: &str,
        model: &HashMap<String, Tensor>,
        optimizer: &HashMap<String, Tensor>,
        state: &serde_json::Value,
        pointers: &[&str],
    ) -> Result<PathBuf> {
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            candle_core::bail!("checkpoint name {name:?} must be a plain file name");
        }
        let tmp = self.root.join(format!(".tmp-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| io(&tmp, "creating", e))?;
        let contiguous = |m: &HashMap<String, Tensor>| -> Result<HashMap<String, Tensor>> {
            m.iter().map(|(k, v)| Ok((k.clone(), v.contiguous()?))).collect()
        };
        for (file, tensors) in [("model.safetensors", model), ("optimizer.safetensors", optimizer)] {
            let path = tmp.join(file);
            candle_core::safetensors::save(&contiguous(tensors)?, &path)?;
            fs::File::open(&path).and_then(|f| f.sync_all()).map_err(|e| io(&path, "syncing", e))?;
        }
        let json = serde_json::to_vec_pretty(state).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        write_atomic(&tmp.join("state.json"), &json)?;
        sync_dir(&tmp)?;
        let dest = self.root.join(name);
        if dest.exists() {
            // Re-saving a name: move the old one aside first (pointers may still name it only
            // until they are rewritten below).
            let old = self.root.join(format!(".old-{name}-{}", std::process::id()));
            fs::rename(&dest, &old).map_err(|e| io(&dest, "moving aside", e))?;
            fs::rename(&tmp, &dest).map_err(|e| io(&dest, "renaming into", e))?;
            let _ = fs::remove_dir_all(&old);
        } else {
            fs::rename(&tmp, &dest).map_err(|e| io(&dest, "renaming into", e))?;
        }
        sync_dir(&self.root)?;
        for p in pointers {
            write_atomic(&self.root.join(p), name.as_bytes())?;
        }
        self.prune()?;
        Ok(dest)
    }

    /// The checkpoint a pointer names, if the pointer exists.
    pub fn resolve(&self, pointer: &str) -> Result<Option<PathBuf>> {
        let p = self.root.join(pointer);
        match fs::read_to_string(&p) {
            Ok(name) => Ok(Some(self.root.join(name.trim()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p, "reading", e)),
        }
    }

    /// Loads the checkpoint a pointer names (`None` when there is none yet).
    pub fn load(&self, pointer: &str, device: &Device) -> Result<Option<Checkpoint>> {
        match self.resolve(pointer)? {
            Some(dir) => load_dir(&dir, device).map(Some),
            None => Ok(None),
        }
    }

    /// Removes leftovers of interrupted saves and step directories beyond `keep` that no
    /// pointer names.
    fn prune(&self) -> Result<()> {
        let pinned: Vec<PathBuf> = ["latest", "best"].iter().filter_map(|p| self.resolve(p).ok().flatten()).collect();
        let mut steps = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| io(&self.root, "listing", e))? {
            let entry = entry.map_err(|e| io(&self.root, "listing", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let ours = name.ends_with(&format!("-{}", std::process::id()));
            if (name.starts_with(".tmp-") || name.starts_with(".old-")) && !ours && path.is_dir() {
                let _ = fs::remove_dir_all(&path);
            } else if name.starts_with("step-") && path.is_dir() {
                steps.push((name, path));
            }
        }
        steps.sort();
        let excess = steps.len().saturating_sub(self.keep);
        for (_, path) in steps.into_iter().take(excess) {
            if !pinned.contains(&path) {
                let _ = fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }
}

/// Loads a checkpoint directory, with errors that name the file.
pub fn load_dir(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let read = |file: &str| -> Result<HashMap<String, Tensor>> {
        let path = dir.join(file);
        if !path.exists() {
            candle_core::bail!("checkpoint {}: {file} is missing", dir.display());
        }
        candle_core::safetensors::load(&path, device)
            .map_err(|e| candle_core::Error::Msg(format!("checkpoint {}: {e}", path.display())))
    };
    let state_path = dir.join("state.json");
    let text = fs::read_to_string(&state_path).map_err(|e| io(&state_path, "reading", e))?;
    let state = serde_json::from_str(&text)
        .map_err(|e| candle_core::Error::Msg(format!("checkpoint {}: {e}", state_path.display())))?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        model: read("model.safetensors")?,
        optimizer: read("optimizer.safetensors")?,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("e.npy"), dir.path().join("e.jsonl"));
        write_set(&[(&a, b"rows-1"), (&b, b"meta-1")]).unwrap();
        // The partner cannot be staged (its folder is missing): neither file changes, no
        // temporary file stays.
        let missing = dir.path().join("gone/e.jsonl");
        assert!(write_set(&[(&a, b"rows-2"), (&missing, b"meta-2")]).is_err());
        assert_eq!(fs::read(&a).unwrap(), b"rows-1");
        let left: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(left.iter().all(|n| !n.starts_with(".tmp-")), "{left:?}");
        // A killed writer's temporary file (a PID that does not run) is removed by the next
        // write; a running process's (PID 1) is left alone.
        let stale = dir.path().join(".tmp-e.npy-4000000000");
        let live = tmp_name(&a, 1);
        fs::write(&stale, b"x").unwrap();
        fs::write(&live, b"x").unwrap();
        write_set(&[(&a, b"rows-3"), (&b, b"meta-3")]).unwrap();
        assert_eq!((fs::read(&a).unwrap(), fs::read(&b).unwrap()), (b"rows-3".to_vec(), b"meta-3".to_vec()));
        assert!(!stale.exists());
        assert!(live.exists());
    }
}
