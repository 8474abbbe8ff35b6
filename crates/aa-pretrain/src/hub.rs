//! Model files from a local directory or a Hugging Face Hub repository.
//!
//! [`resolve`] takes a name that is either a directory (used as it is) or a repository id
//! (`owner/name`, optionally `owner/name@revision`) and returns a directory holding the requested
//! files. Repositories are fetched over HTTP(S) (`ureq`, rustls) into the cache layout the
//! Python `huggingface_hub` uses (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`; `models--owner--name/{blobs,snapshots,refs}`), so a cache filled
//! by Python is reused and the other way round.
//!
//! Environment, as in `huggingface_hub`: `HF_ENDPOINT` (another server), `HF_TOKEN` (else the
//! `token` file beside the cache), `HF_HUB_OFFLINE=1` (read the cache only, never the network),
//! `HF_HUB_ETAG_TIMEOUT` and `HF_HUB_DOWNLOAD_TIMEOUT` (seconds, default 10: the metadata
//! request, and the longest wait for any read of a download).
//!
//! # Trust
//! The server is not trusted:
//! - the commit (`X-Repo-Commit`) must be 40 hex digits and the checksum (`X-Linked-Etag`, else
//!   `ETag`) 64 (SHA-256, LFS files) or 40 (git blob SHA-1) hex digits — nothing else names a
//!   path in the cache, and a file without a verifiable checksum is refused;
//! - the announced size (`X-Linked-Size`, else `Content-Length`) is required and enforced: the
//!   download stops at the first byte past it;
//! - the content is hashed while it streams into a temporary file beside the blob, and only a
//!   file whose hash matches becomes a blob (the temporary file is removed on any failure);
//! - the token goes only to the endpoint's own host, never to a redirect elsewhere (the CDN);
//! - connect, metadata and per-read timeouts bound every wait.
//!
//! Cached files are checked against their blob name (the checksum) each time they are used, so
//! a damaged cache entry is removed and reported instead of being loaded.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to fetch.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// Server (default [`DEFAULT_ENDPOINT`]).
    pub endpoint: Option<String>,
    /// Access token.
    pub token: Option<String>,
    /// Cache directory (the `hub` folder).
    pub cache_dir: Option<PathBuf>,
    /// Only read the cache.
    pub offline: bool,
    /// Limit for connecting and for the metadata request (`HF_HUB_ETAG_TIMEOUT`).
    pub etag_timeout: Duration,
    /// Longest wait for any single read of a download (`HF_HUB_DOWNLOAD_TIMEOUT`): a stalled
    /// server fails after this long, a slow but live one does not.
    pub download_timeout: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            endpoint: None,
            token: None,
            cache_dir: None,
            offline: false,
            etag_timeout: Duration::from_secs(10),
            download_timeout: Duration::from_secs(10),
        }
    }
}

impl HubOptions {
    /// Options from `HF_ENDPOINT`, `HF_TOKEN` (else `$HF_HOME/token`), `HF_HUB_CACHE` /
    /// `HF_HOME`, `HF_HUB_OFFLINE`, `HF_HUB_ETAG_TIMEOUT` and `HF_HUB_DOWNLOAD_TIMEOUT`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let seconds = |k: &str| {
            var(k)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(Duration::from_secs_f64)
        };
        let defaults = HubOptions::default();
        let token = var("HF_TOKEN").or_else(|| {
            let file = hf_home().join("token");
            std::fs::read_to_string(file).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        HubOptions {
            endpoint: var("HF_ENDPOINT").map(|e| e.trim_end_matches('/').to_string()),
            token,
            cache_dir: var("HF_HUB_CACHE")
                .map(PathBuf::from)
                .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub"))),
            offline: var("HF_HUB_OFFLINE")
                .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")),
            etag_timeout: seconds("HF_HUB_ETAG_TIMEOUT").unwrap_or(defaults.etag_timeout),
            download_timeout: seconds("HF_HUB_DOWNLOAD_TIMEOUT").unwrap_or(defaults.download_timeout),
        }
    }

    /// The cache's `hub` directory.
    pub fn cache(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| hf_home().join("hub"))
    }

    fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT)
    }
}

/// `$HF_HOME`, else `~/.cache/huggingface`.
fn hf_home() -> PathBuf {
    match std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/huggingface"),
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
    /// The download failed (network, missing file, authentication, a timeout).
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
    /// The server's answer breaks a rule this client keeps (see the module docs).
    #[error("{repo}: {file}: refused the server's answer: {message}")]
    Untrusted {
        /// Repository.
        repo: String,
        /// File.
        file: String,
        /// Which header or what content.
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

/// Whether `name` reads as a repository id: `owner/name` with the hub's characters, optionally
/// `@revision`.
pub fn is_repo_id(name: &str) -> bool {
    let (id, rev) = match name.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (name, None),
    };
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2 && parts.iter().all(|p| safe_segment(p)) && rev.is_none_or(safe_relative)
}

/// One path segment of hub characters that is not `.`/`..`-like.
fn safe_segment(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A relative path of safe segments (a file in a repository, a branch like `refs/pr/1`).
fn safe_relative(p: &str) -> bool {
    p.split('/').all(safe_segment)
}

/// 40 (git SHA-1) or 64 (SHA-256) lowercase hex digits.
fn is_checksum(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
    let (id, revision) = name.split_once('@').unwrap_or((name, "main"));
    let repo = Repo { name, id, revision, root: opts.cache().join(format!("models--{}", id.replace('/', "--"))) };
    let mut dir = None;
    for f in files {
        if !safe_relative(f) {
            return Err(HubError::NotAModel(format!("{name}: file {f:?}")));
        }
        let path = match repo.cached(f) {
            Some(p) => {
                verify(&p).map_err(|message| {
                    remove_entry(&p);
                    HubError::Corrupt { repo: name.to_string(), file: f.to_string(), message }
                })?;
                p
            }
            None if opts.offline => {
                return Err(HubError::NotCached {
                    repo: name.to_string(),
                    file: f.to_string(),
                    cache: opts.cache().display().to_string(),
                })
            }
            None => repo.download(f, opts)?,
        };
        dir = path.parent().map(Path::to_path_buf);
    }
    dir.ok_or_else(|| HubError::NotAModel(name.to_string()))
}

/// One repository at one revision, and its folder in the cache.
struct Repo<'a> {
    name: &'a str,
    id: &'a str,
    revision: &'a str,
    root: PathBuf,
}

/// What the metadata request says about a file.
struct Meta {
    commit: String,
    etag: String,
    size: u64,
    location: String,
}

impl Repo<'_> {
    /// The commit the cache knows for the revision (the revision itself when it is one).
    fn cached_commit(&self) -> Option<String> {
        if self.revision.len() == 40 && is_checksum(self.revision) {
            return Some(self.revision.to_string());
        }
        let c = std::fs::read_to_string(self.root.join("refs").join(self.revision)).ok()?;
        let c = c.trim();
        (c.len() == 40 && is_checksum(c)).then(|| c.to_string())
    }

    fn cached(&self, file: &str) -> Option<PathBuf> {
        let p = self.root.join("snapshots").join(self.cached_commit()?).join(file);
        p.is_file().then_some(p)
    }

    fn err(&self, file: &str, opts: &HubOptions, message: impl Into<String>) -> HubError {
        HubError::Download {
            repo: self.name.to_string(),
            file: file.to_string(),
            endpoint: opts.endpoint().to_string(),
            message: message.into(),
        }
    }

    fn untrusted(&self, file: &str, message: impl Into<String>) -> HubError {
        HubError::Untrusted { repo: self.name.to_string(), file: file.to_string(), message: message.into() }
    }

    /// The metadata request: a HEAD without following redirects to other hosts (an LFS file
    /// answers with a redirect to its storage and the `X-Linked-*` headers).
    fn meta(&self, file: &str, opts: &HubOptions) -> Result<Meta, HubError> {
        let agent = agent(opts, Some(opts.etag_timeout), 0);
        // A branch like `refs/pr/1` is one path segment in the URL, as `huggingface_hub` quotes it.
        let mut url = format!("{}/{}/resolve/{}/{}", opts.endpoint(), self.id, self.revision.replace('/', "%2F"), file);
        for _ in 0..5 {
            let mut req = agent.head(&url).header("Accept-Encoding", "identity");
            if let Some(t) = &opts.token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let resp = req.call().map_err(|e| self.err(file, opts, transport_message(&e, opts)))?;
            let status = resp.status().as_u16();
            let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::trim);
            let location = header("location").map(str::to_string);
            if (300..400).contains(&status) && header("x-linked-etag").is_none() {
                // A renamed repository: the hub redirects within itself.
                match location {
                    Some(l) if l.starts_with('/') && !l.starts_with("//") => {
                        url = format!("{}{l}", origin(opts.endpoint()));
                        continue;
                    }
                    _ => return Err(self.untrusted(file, format!("redirect {status} without X-Linked-Etag"))),
                }
            }
            if status >= 400 {
                let hint = match (status, header("x-error-code")) {
                    (404, Some("RepoNotFound")) | (401, _) => " (no such repository, or it needs HF_TOKEN)",
                    (404, _) => " (no such file in the repository)",
                    (403, _) => " (access denied: check HF_TOKEN and the repository's terms)",
                    _ => "",
                };
                return Err(self.err(file, opts, format!("HTTP {status}{hint}")));
            }
            let commit = header("x-repo-commit").unwrap_or("");
            if !(commit.len() == 40 && is_checksum(commit)) {
                return Err(self.untrusted(file, format!("X-Repo-Commit {commit:?} is not a 40-digit commit hash")));
            }
            let raw = header("x-linked-etag").or(header("etag")).unwrap_or("");
            let etag = raw.trim_start_matches("W/").trim_matches('"').to_ascii_lowercase();
            if !is_checksum(&etag) {
                return Err(self.untrusted(
                    file,
                    format!("ETag {raw:?} is not a SHA-256 or git SHA-1 checksum, so the file cannot be verified"),
                ));
            }
            let size_txt = header("x-linked-size").or(header("content-length")).unwrap_or("");
            let Ok(size) = size_txt.parse::<u64>() else {
                return Err(self.untrusted(file, format!("file size {size_txt:?} is not a number of bytes")));
            };
            let location = match location {
                Some(l) if (300..400).contains(&status) => absolute(&l, opts.endpoint()),
                _ => url.clone(),
            };
            return Ok(Meta { commit: commit.to_string(), etag, size, location });
        }
        Err(self.untrusted(file, "more than five redirects"))
    }

    /// Downloads `file` into the cache and returns its snapshot path.
    fn download(&self, file: &str, opts: &HubOptions) -> Result<PathBuf, HubError> {
        let meta = self.meta(file, opts)?;
        let io = |p: &Path, e: std::io::Error| HubError::Io { path: p.display().to_string(), source: e };
        let blobs = self.root.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| io(&blobs, e))?;
        let blob = blobs.join(&meta.etag);
        if !(blob.is_file() && verify(&blob).is_ok()) {
            self.fetch_blob(file, &meta, &blob, opts)?;
        }
        let snapshot = self.root.join("snapshots").join(&meta.commit).join(file);
        let parent = snapshot.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        let _ = std::fs::remove_file(&snapshot);
        link(&blob, &snapshot, file).map_err(|e| io(&snapshot, e))?;
        if !(self.revision.len() == 40 && is_checksum(self.revision)) {
            let refs = self.root.join("refs").join(self.revision);
            let dir = refs.parent().unwrap_or(&self.root);
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            let tmp = refs.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::write(&tmp, &meta.commit).and_then(|_| std::fs::rename(&tmp, &refs)).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(&refs, e)
            })?;
        }
        Ok(snapshot)
    }

    /// Streams the content into `blob.<pid>.incomplete`, at most the announced size, hashing
    /// as it goes; renames it to `blob` only when size and checksum match.
    fn fetch_blob(&self, file: &str, meta: &Meta, blob: &Path, opts: &HubOptions) -> Result<(), HubError> {
        let agent = agent(opts, None, 5);
        let mut req = agent.get(&meta.location).header("Accept-Encoding", "identity");
        if let Some(t) = &opts.token {
            if origin(&meta.location) == origin(opts.endpoint()) {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
        }
        let resp = req.call().map_err(|e| self.err(file, opts, transport_message(&e, opts)))?;
        let status = resp.status().as_u16();
        if status >= 300 {
            return Err(self.err(file, opts, format!("HTTP {status} from {}", meta.location)));
        }
        if let Some(enc) = resp.headers().get("content-encoding").and_then(|v| v.to_str().ok()) {
            if !enc.trim().eq_ignore_ascii_case("identity") {
                return Err(self.untrusted(file, format!("Content-Encoding {enc:?} after asking for identity")));
            }
        }
        let tmp = blob.with_file_name(format!("{}.{}.incomplete", meta.etag, std::process::id()));
        let result = (|| {
            let mut out =
                std::fs::File::create(&tmp).map_err(|e| HubError::Io { path: tmp.display().to_string(), source: e })?;
            let mut hasher = Hasher::new(&meta.etag, meta.size);
            let mut body = resp.into_body().into_reader().take(meta.size + 1);
            let mut buf = vec![0u8; 1 << 16];
            let mut got: u64 = 0;
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        return Err(self.err(
                            file,
                            opts,
                            format!("after {got} of {} bytes: {}", meta.size, io_message(&e, opts)),
                        ))
                    }
                };
                got += n as u64;
                if got > meta.size {
                    return Err(
                        self.untrusted(file, format!("the server sent more than the {} bytes it announced", meta.size))
                    );
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(|e| HubError::Io { path: tmp.display().to_string(), source: e })?;
            }
            if got < meta.size {
                return Err(HubError::Corrupt {
                    repo: self.name.to_string(),
                    file: file.to_string(),
                    message: format!("the download ended after {got} of {} bytes", meta.size),
                });
            }
            let digest = hasher.finish();
            if digest != meta.etag {
                return Err(HubError::Corrupt {
                    repo: self.name.to_string(),
                    file: file.to_string(),
                    message: format!("{got} bytes hash to {digest}, the hub says {}", meta.etag),
                });
            }
            out.sync_all().map_err(|e| HubError::Io { path: tmp.display().to_string(), source: e })?;
            std::fs::rename(&tmp, blob).map_err(|e| HubError::Io { path: blob.display().to_string(), source: e })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// An HTTP agent with this client's timeouts: `metadata` bounds the whole exchange of a
/// metadata request; every read waits at most the download timeout.
fn agent(opts: &HubOptions, metadata: Option<Duration>, redirects: u32) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(redirects)
        .max_redirects_will_error(false)
        .timeout_connect(Some(opts.etag_timeout))
        .timeout_recv_response(Some(metadata.unwrap_or(opts.download_timeout)))
        .timeout_global(metadata)
        .timeout_per_read(Some(opts.download_timeout))
        .user_agent(concat!("allatom/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    &url[..end]
}

/// A `Location` made absolute against the endpoint.
fn absolute(location: &str, endpoint: &str) -> String {
    if location.starts_with('/') && !location.starts_with("//") {
        format!("{}{location}", origin(endpoint))
    } else {
        location.to_string()
    }
}

fn transport_message(e: &ureq::Error, opts: &HubOptions) -> String {
    match e {
        ureq::Error::Timeout(what) => format!(
            "timed out ({what}; limits: HF_HUB_ETAG_TIMEOUT {:?}, HF_HUB_DOWNLOAD_TIMEOUT {:?})",
            opts.etag_timeout, opts.download_timeout
        ),
        ureq::Error::Io(io) => io_message(io, opts),
        other => other.to_string(),
    }
}

fn io_message(e: &std::io::Error, opts: &HubOptions) -> String {
    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
        format!("no data for {:?} (HF_HUB_DOWNLOAD_TIMEOUT): the server stalled", opts.download_timeout)
    } else {
        // ureq wraps its own errors (a timeout among them) in io::Error when reading a body.
        match e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()) {
            Some(ureq::Error::Timeout(_)) => {
                format!("no data for {:?} (HF_HUB_DOWNLOAD_TIMEOUT): the server stalled", opts.download_timeout)
            }
            _ => e.to_string(),
        }
    }
}

/// A symlink from snapshot entry `link` (for repository file `file`) to `blob`, relative as
/// `huggingface_hub` writes it (`../../blobs/<etag>`, one more `..` per folder in `file`).
/// Cached files are verified through the blob the link names, so the cache needs symlinks
/// (Windows: developer mode, as for `huggingface_hub`'s own symlinked cache).
fn link(blob: &Path, link: &Path, file: &str) -> std::io::Result<()> {
    let up = "../".repeat(1 + file.split('/').count());
    let target = PathBuf::from(format!("{up}blobs")).join(blob.file_name().unwrap_or_default());
    #[cfg(unix)]
    return std::os::unix::fs::symlink(target, link);
    #[cfg(windows)]
    return std::os::windows::fs::symlink_file(target, link);
    #[cfg(not(any(unix, windows)))]
    return Err(std::io::Error::other(format!("no symlinks on this platform for {}", link.display())));
}

/// Removes a cache entry and the blob it points to, so the next run downloads again.
fn remove_entry(path: &Path) {
    if let Ok(blob) = std::fs::canonicalize(path) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(path);
}

/// SHA-256 of the content (64-digit checksums) or the git blob SHA-1 (40 digits).
enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
}

impl Hasher {
    fn new(checksum: &str, size: u64) -> Hasher {
        if checksum.len() == 64 {
            Hasher::Sha256(sha2::Sha256::new())
        } else {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            Hasher::Sha1(h)
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        let d: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
        };
        d.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Checks a cached file against its blob name (the checksum); a blob whose name is not a
/// checksum, or that lies outside the repository's `blobs` folder, is refused.
fn verify(path: &Path) -> Result<(), String> {
    let blob = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let etag = blob.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !is_checksum(&etag) {
        return Err(format!("{} is not named by a checksum", blob.display()));
    }
    if blob.parent().and_then(|p| p.file_name()).is_none_or(|n| n != "blobs") {
        return Err(format!("{} is not in a blobs folder", blob.display()));
    }
    let mut f = std::fs::File::open(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    let size = f.metadata().map_err(|e| format!("{}: {e}", blob.display()))?.len();
    let mut h = Hasher::new(&etag, size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) => return Err(format!("{}: {e}", blob.display())),
        }
    }
    let got = h.finish();
    if got == etag {
        Ok(())
    } else {
        Err(format!("{size} bytes hash to {got}, the hub says {etag}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_local_directories() {
        for ok in ["owner/name", "facebook/esm2_t6_8M_UR50D", "a-b/c.d@v1.0", "a/b@refs/pr/1"] {
            assert!(is_repo_id(ok), "{ok}");
        }
        for bad in ["name", "a/b/c", "/abs/path", "./x/y", "a/", "a b/c", "../up", "a/b@../x", "a/b@", "a/b@x//y"] {
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
        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let body = b"hello hub\n";
        // LFS: SHA-256 of the content; small files: git blob SHA-1.
        let wrong256 = "46a8c8d0c0ac4b8a4a2a1cb8d3a2c4c8a4f5e1c7c1b1a1f1e1d1c1b1a1918171";
        let real256: String = sha2::Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", body.len()).as_bytes());
        h.update(body);
        let real1: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let wrong1 = "0".repeat(40);
        for (name, ok) in [
            (real256.as_str(), true),
            (wrong256, false),
            (real1.as_str(), true),
            (&wrong1, false),
            ("weak-etag", false),
        ] {
            let p = blobs.join(name);
            std::fs::write(&p, body).unwrap();
            assert_eq!(verify(&p).is_ok(), ok, "{name}: {:?}", verify(&p));
        }
        assert!(verify(&blobs.join(&wrong1)).unwrap_err().contains("the hub says"));
        // A checksum-named file outside a blobs folder is not a cache entry.
        let stray = dir.path().join(&real256);
        std::fs::write(&stray, body).unwrap();
        assert!(verify(&stray).unwrap_err().contains("blobs"));
    }

    #[test]
    fn urls_and_checksums() {
        assert_eq!(origin("http://127.0.0.1:8080/a/b"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
        assert_eq!(absolute("/x/resolve/main/f", "https://hub.example/"), "https://hub.example/x/resolve/main/f");
        assert_eq!(absolute("https://cdn.example/f", "https://hub.example"), "https://cdn.example/f");
        assert!(is_checksum(&"a".repeat(64)) && is_checksum(&"0".repeat(40)));
        for bad in ["../../x", "ABCDEF0123456789abcdef0123456789abcdef01", "", &"a".repeat(41)] {
            assert!(!is_checksum(bad), "{bad}");
        }
    }
}
