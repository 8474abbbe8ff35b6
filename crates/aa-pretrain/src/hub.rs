//! Model files from a local directory or a Hugging Face Hub repository.
//!
//! [`resolve`] takes a name that is either a directory (used as it is) or a repository id
//! (`owner/name`, optionally `owner/name@revision`) and returns a directory holding the requested
//! files. Repositories are fetched with the `hf-hub` crate's blocking client into the cache
//! layout the Python `huggingface_hub` uses (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`; `models--owner--name/{blobs,snapshots,refs}`), so a cache filled
//! by Python is reused and the other way round.
//!
//! Environment, as in `huggingface_hub`: `HF_ENDPOINT` (another server), `HF_TOKEN` (else the
//! cache's `token` file), `HF_HUB_OFFLINE=1` (read the cache only, never the network).
//!
//! Every file is checked against the hub's ETag before use — SHA-256 for LFS files, the git
//! blob SHA-1 for small ones — so a truncated or corrupted download (or cache entry) is removed
//! and reported instead of being loaded.

use std::path::{Path, PathBuf};

use sha2::Digest;

/// Where and how to fetch.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    /// Server (default `https://huggingface.co`).
    pub endpoint: Option<String>,
    /// Access token.
    pub token: Option<String>,
    /// Cache directory (the `hub` folder).
    pub cache_dir: Option<PathBuf>,
    /// Only read the cache.
    pub offline: bool,
}

impl HubOptions {
    /// Options from `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_CACHE` / `HF_HOME` and `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        HubOptions {
            endpoint: var("HF_ENDPOINT").map(|e| e.trim_end_matches('/').to_string()),
            token: var("HF_TOKEN"),
            cache_dir: var("HF_HUB_CACHE")
                .map(PathBuf::from)
                .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub"))),
            offline: var("HF_HUB_OFFLINE")
                .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")),
        }
    }

    fn cache(&self) -> hf_hub::Cache {
        match &self.cache_dir {
            Some(d) => hf_hub::Cache::new(d.clone()),
            None => hf_hub::Cache::from_env(),
        }
    }
}

/// Errors finding model files.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Neither a directory nor a repository id.
    #[error("{0:?} is neither a directory nor a hub repository id (owner/name)")]
    NotAModel(String),
    /// A directory lacks a file.
    #[error("{dir}: {file} is missing")]
    MissingLocal {
        /// Directory.
        dir: String,
        /// File.
        file: String,
    },
    /// Offline and not in the cache.
    #[error("{repo}: {file} is not in the cache ({cache}) and HF_HUB_OFFLINE is set")]
    NotCached {
        /// Repository.
        repo: String,
        /// File.
        file: String,
        /// Cache directory.
        cache: String,
    },
    /// The download failed (network, missing file, authentication).
    #[error("{repo}: downloading {file} from {endpoint}: {message}")]
    Download {
        /// Repository.
        repo: String,
        /// File.
        file: String,
        /// Server.
        endpoint: String,
        /// Cause.
        message: String,
    },
    /// The file's content does not match the hub's checksum.
    #[error("{repo}: {file} is corrupt ({message}); it was removed from the cache, run again to re-download")]
    Corrupt {
        /// Repository.
        repo: String,
        /// File.
        file: String,
        /// What differs.
        message: String,
    },
    /// Local file system.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Whether `name` reads as a repository id: `owner/name` with the hub's characters.
pub fn is_repo_id(name: &str) -> bool {
    let id = name.split('@').next().unwrap_or("");
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// A directory holding `files`: `name` itself when it is a directory, else the cache snapshot
/// of repository `name` (downloading what is missing unless offline).
pub fn resolve(name: &str, files: &[&str], opts: &HubOptions) -> Result<PathBuf, HubError> {
    let local = Path::new(name);
    if local.is_dir() {
        for f in files {
            if !local.join(f).is_file() {
                return Err(HubError::MissingLocal { dir: name.to_string(), file: f.to_string() });
            }
        }
        return Ok(local.to_path_buf());
    }
    if !is_repo_id(name) {
        return Err(HubError::NotAModel(name.to_string()));
    }
    let (id, revision) = match name.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (name, "main"),
    };
    let repo = hf_hub::Repo::with_revision(id.to_string(), hf_hub::RepoType::Model, revision.to_string());
    let cache = opts.cache();
    let api = if opts.offline {
        None
    } else {
        let mut b = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone()).with_progress(false);
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e.clone());
        }
        if opts.token.is_some() {
            b = b.with_token(opts.token.clone());
        }
        let api = b.build().map_err(|e| HubError::Download {
            repo: name.to_string(),
            file: String::new(),
            endpoint: opts.endpoint.clone().unwrap_or_default(),
            message: e.to_string(),
        })?;
        Some(api.repo(repo.clone()))
    };
    let mut dir = None;
    for f in files {
        let cached = cache.repo(repo.clone()).get(f);
        let path = match (cached, &api) {
            (Some(p), _) => p,
            (None, None) => {
                return Err(HubError::NotCached {
                    repo: name.to_string(),
                    file: f.to_string(),
                    cache: cache.path().display().to_string(),
                })
            }
            (None, Some(api)) => api.download(f).map_err(|e| HubError::Download {
                repo: name.to_string(),
                file: f.to_string(),
                endpoint: opts.endpoint.clone().unwrap_or_else(|| "https://huggingface.co".into()),
                message: e.to_string(),
            })?,
        };
        verify(&path).map_err(|message| {
            // Drop the bad blob and its snapshot entry so the next run downloads again.
            if let Ok(blob) = std::fs::canonicalize(&path) {
                let _ = std::fs::remove_file(blob);
            }
            let _ = std::fs::remove_file(&path);
            HubError::Corrupt { repo: name.to_string(), file: f.to_string(), message }
        })?;
        dir = path.parent().map(Path::to_path_buf);
    }
    dir.ok_or_else(|| HubError::NotAModel(name.to_string()))
}

/// Checks a cached file against its blob name (the ETag): 64 hex digits are the SHA-256 of
/// the content (LFS), 40 the git blob SHA-1.
fn verify(path: &Path) -> Result<(), String> {
    let blob = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let etag = blob.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = std::fs::read(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let is_hex = etag.chars().all(|c| c.is_ascii_hexdigit());
    let got = match etag.len() {
        64 if is_hex => hex(&sha2::Sha256::digest(&bytes)),
        40 if is_hex => {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {}\0", bytes.len()).as_bytes());
            h.update(&bytes);
            hex(&h.finalize())
        }
        // Not a content hash (e.g. a weak ETag): nothing to check against.
        _ => return Ok(()),
    };
    if got == etag.to_ascii_lowercase() {
        Ok(())
    } else {
        Err(format!("{} bytes hash to {got}, the hub says {etag}", bytes.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_local_directories() {
        for ok in ["owner/name", "facebook/esm2_t6_8M_UR50D", "a-b/c.d@v1.0"] {
            assert!(is_repo_id(ok), "{ok}");
        }
        for bad in ["name", "a/b/c", "/abs/path", "./x/y", "a/", "a b/c", "../up"] {
            assert!(!is_repo_id(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let name = dir.path().to_str().unwrap();
        assert_eq!(resolve(name, &["config.json"], &HubOptions::default()).unwrap(), dir.path());
        let err = resolve(name, &["config.json", "model.safetensors"], &HubOptions::default()).unwrap_err();
        assert!(err.to_string().ends_with("model.safetensors is missing"), "{err}");
        let err = resolve("no-such-dir", &["config.json"], &HubOptions::default()).unwrap_err();
        assert!(matches!(err, HubError::NotAModel(_)), "{err}");
    }

    #[test]
    fn files_are_checked_against_their_etag() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"hello hub\n";
        // LFS: SHA-256 of the content; small files: git blob SHA-1.
        let sha256 = "46a8c8d0c0ac4b8a4a2a1cb8d3a2c4c8a4f5e1c7c1b1a1f1e1d1c1b1a1918171";
        let real256: String = sha2::Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", body.len()).as_bytes());
        h.update(body);
        let real1: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        for (name, ok) in [(real256.as_str(), true), (sha256, false), (real1.as_str(), true), ("weak-etag", true)] {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            assert_eq!(verify(&p).is_ok(), ok, "{name}: {:?}", verify(&p));
        }
        let wrong1 = dir.path().join("0".repeat(40));
        std::fs::write(&wrong1, body).unwrap();
        assert!(verify(&wrong1).unwrap_err().contains("the hub says"));
    }
}
