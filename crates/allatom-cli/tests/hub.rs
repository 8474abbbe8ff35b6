//! `allatom embed --model owner/name` against a small server on 127.0.0.1 that answers like the
//! Hugging Face Hub (HEAD for metadata with X-Repo-Commit and ETag; LFS files answer with a
//! redirect to a separate storage server and X-Linked-Etag / X-Linked-Size): download → cache
//! in the `huggingface_hub` layout → offline reload (server gone) all give the embeddings of the
//! local package. A hostile server — corrupt or truncated content, oversized bodies, path
//! traversal in ETag or commit, unverifiable ETags, stalls — is refused with a clear error,
//! nothing is left in or outside the cache, and the token never reaches the storage server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// How the server misbehaves (on model.safetensors unless said otherwise).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Honest,
    /// One byte changed (same size, same ETag).
    FlipByte,
    /// Cut short (announced size unchanged).
    Truncate,
    /// 4 MiB more than announced.
    Oversize,
    /// `X-Linked-Etag: "../../x"`.
    TraversalEtag,
    /// `X-Repo-Commit: ../../../evil` on every file.
    TraversalCommit,
    /// A weak, non-hex ETag.
    WeakEtag,
    /// Never answers the metadata request of config.json.
    StallHead,
    /// Sends headers and half the content, then nothing.
    StallBody,
}

struct Server {
    port: u16,
    requests: Arc<AtomicUsize>,
    /// Whether any request to the storage server carried an Authorization header.
    storage_saw_token: Arc<AtomicBool>,
    /// Whether any request to the hub carried one.
    hub_saw_token: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    ports: Vec<u16>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for p in &self.ports {
            let _ = TcpStream::connect(("127.0.0.1", *p));
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A request line and its headers.
struct Request {
    method: String,
    path: String,
    auth: bool,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut it = line.split_whitespace();
    let (method, path) = (it.next()?.to_string(), it.next()?.to_string());
    let mut auth = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, _)) = h.split_once(':') {
            auth |= k.eq_ignore_ascii_case("authorization");
        }
    }
    Some(Request { method, path, auth })
}

/// Answers every connection to `listener` on its own thread until `stop`: counts it in
/// `requests`, notes in `saw_token` whether it carried a token, and hands it to `handle`.
fn accept(
    listener: TcpListener,
    stop: &Arc<AtomicBool>,
    requests: &Arc<AtomicUsize>,
    saw_token: &Arc<AtomicBool>,
    mut handle: impl FnMut(&mut TcpStream, &mut BufReader<TcpStream>, Request) + Send + 'static,
) {
    let (stop, requests, saw_token) = (stop.clone(), requests.clone(), saw_token.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            requests.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let Some(req) = read_request(&mut reader) else { continue };
            saw_token.fetch_or(req.auth, Ordering::SeqCst);
            handle(&mut stream, &mut reader, req);
        }
    });
}

/// Serves the files of `dir` as repository `repo` at revision `main`, as the hub does: git-blob
/// SHA-1 ETags for small files; for .safetensors (LFS) a 302 to a separate storage server with
/// the SHA-256 in X-Linked-Etag.
fn serve(dir: &Path, repo: &'static str, mode: Mode) -> Server {
    let hub = TcpListener::bind("127.0.0.1:0").unwrap();
    let storage = TcpListener::bind("127.0.0.1:0").unwrap();
    let (port, storage_port) = (hub.local_addr().unwrap().port(), storage.local_addr().unwrap().port());
    // The files of the directory among those a model repository holds (others answer 404).
    let files: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        ["config.json", "model.safetensors", "README.md", "vocab.txt", "tokenizer.json"]
            .iter()
            .filter(|f| dir.join(f).is_file())
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
            .collect(),
    );
    let requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (storage_saw_token, hub_saw_token) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let etag_of = |name: &str, body: &[u8]| {
        if name.ends_with(".safetensors") {
            hex(&sha2::Sha256::digest(body))
        } else {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {}\0", body.len()).as_bytes());
            h.update(body);
            hex(&h.finalize())
        }
    };
    let sleep_until_stopped = |stop: &AtomicBool| {
        let t = Instant::now();
        while !stop.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The hub: metadata and small files.
    {
        let (files, stop2) = (files.clone(), stop.clone());
        accept(hub, &stop, &requests, &hub_saw_token, move |stream, _, req| {
            let stop = &stop2;
            let prefix = format!("/{repo}/resolve/main/");
            let file = req.path.strip_prefix(&prefix).and_then(|f| files.iter().find(|(n, _)| n == f));
            let Some((name, body)) = file else {
                let msg = "Entry not found";
                let code = if req.path.starts_with(&format!("/{repo}/")) { "EntryNotFound" } else { "RepoNotFound" };
                let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nX-Error-Code: {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        msg.len(),
                        if req.method == "HEAD" { "" } else { msg }
                    );
                return;
            };
            if mode == Mode::StallHead && name == "config.json" {
                sleep_until_stopped(stop);
                return;
            }
            let commit = if mode == Mode::TraversalCommit { "../../../evil" } else { COMMIT };
            let etag = etag_of(name, body);
            let head = if name.ends_with(".safetensors") {
                let linked = match mode {
                    Mode::TraversalEtag => "../../x".to_string(),
                    Mode::WeakEtag => "W/\"abc-123\"".to_string(),
                    _ => format!("\"{etag}\""),
                };
                format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{storage_port}/lfs/{etag}\r\nX-Linked-Etag: {linked}\r\nX-Linked-Size: {}\r\nETag: \"{}\"\r\nX-Repo-Commit: {commit}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        body.len(),
                        etag_of("x", body)
                    )
            } else {
                format!(
                        "HTTP/1.1 200 OK\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {commit}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
            };
            let _ = stream.write_all(head.as_bytes());
            if req.method == "GET" && !name.ends_with(".safetensors") {
                let _ = stream.write_all(body);
            }
        });
    }
    // The storage server: LFS content by SHA-256.
    {
        let (files, stop2) = (files.clone(), stop.clone());
        accept(storage, &stop, &requests, &storage_saw_token, move |stream, reader, req| {
            let stop = &stop2;
            let Some((_, body)) = files.iter().find(|(n, b)| req.path == format!("/lfs/{}", etag_of(n, b))) else {
                let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            };
            let mut served = body.clone();
            match mode {
                Mode::FlipByte => {
                    let k = served.len() - 5;
                    served[k] ^= 0x40;
                }
                Mode::Truncate | Mode::StallBody => served.truncate(served.len() / 2),
                Mode::Oversize => served.extend(std::iter::repeat_n(0u8, 4 << 20)),
                _ => {}
            }
            let announced = if mode == Mode::StallBody { body.len() } else { served.len() };
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(&served);
            let _ = stream.flush();
            if mode == Mode::StallBody {
                sleep_until_stopped(stop);
            }
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink).ok();
        });
    }
    Server { port, requests, storage_saw_token, hub_saw_token, stop, ports: vec![port, storage_port] }
}

/// `allatom embed <inputs> --model MODEL --out OUT` with only the given hub variables set.
fn run_embed(inputs: &[&str], model: &str, out: &Path, env: &[(&str, String)]) -> std::process::Output {
    let mut c = allatom();
    c.arg("embed")
        .args(inputs)
        .args(["--model", model, "--out"])
        .arg(out)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_CACHE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The three test glycans with `model`.
fn embed(model: &str, out: &Path, env: &[(&str, String)]) -> std::process::Output {
    let glycans = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/three_glycans.txt");
    run_embed(&["--glycans", glycans.to_str().unwrap()], model, out, env)
}

#[test]
fn download_cache_offline_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The package the server offers: the built-in default model, exported to a directory.
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/preglycanaa-small");
    let local = embed(pkg.to_str().unwrap(), &d.join("local.npy"), &[]);
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let want = std::fs::read(d.join("local.npy")).unwrap();

    let home = d.join("hf");
    let server = serve(&pkg, "allatom/preglycanaa-small", Mode::Honest);
    let env =
        vec![("HF_HOME", home.display().to_string()), ("HF_ENDPOINT", format!("http://127.0.0.1:{}", server.port))];
    let mut with_token = env.clone();
    with_token.push(("HF_TOKEN", "hf_secret".into()));
    let out = embed("allatom/preglycanaa-small", &d.join("hub.npy"), &with_token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(d.join("hub.npy")).unwrap(), want, "hub download embeds identically");
    assert!(server.requests.load(Ordering::SeqCst) >= 4, "metadata + content for two files");
    assert!(server.hub_saw_token.load(Ordering::SeqCst), "the hub gets the token");
    assert!(!server.storage_saw_token.load(Ordering::SeqCst), "the storage server never does");
    // The Python huggingface_hub layout: refs/main, snapshots/<commit>/<file> → blobs/<etag>.
    let repo_dir = home.join("hub/models--allatom--preglycanaa-small");
    assert_eq!(std::fs::read_to_string(repo_dir.join("refs/main")).unwrap().trim(), COMMIT);
    let snap = repo_dir.join(format!("snapshots/{COMMIT}/model.safetensors"));
    let blob = std::fs::canonicalize(&snap).unwrap();
    assert_eq!(blob.parent().unwrap().file_name().unwrap(), "blobs");
    drop(server);

    // Offline, server gone: the cache alone.
    let mut offline = env.clone();
    offline.push(("HF_HUB_OFFLINE", "1".into()));
    let out = embed("allatom/preglycanaa-small", &d.join("off.npy"), &offline);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(d.join("off.npy")).unwrap(), want);
    // Offline and never downloaded: a clear error naming the cache.
    let out = embed("allatom/other-model", &d.join("none.npy"), &offline);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not in the cache") && err.contains("HF_HUB_OFFLINE"), "{err}");

    // A server that corrupts the weights: detected, removed from the cache, nothing written.
    for mode in [Mode::FlipByte, Mode::Truncate] {
        let home2 = d.join(format!("hf-{}", mode as u8));
        let server = serve(&pkg, "allatom/preglycanaa-small", mode);
        let env = vec![
            ("HF_HOME", home2.display().to_string()),
            ("HF_ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
        ];
        let out = embed("allatom/preglycanaa-small", &d.join("bad.npy"), &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("model.safetensors is corrupt"), "{err}");
        assert!(!d.join("bad.npy").exists());
        let snap = home2.join(format!("hub/models--allatom--preglycanaa-small/snapshots/{COMMIT}/model.safetensors"));
        assert!(!snap.exists(), "the corrupt file is not left for the next run");
    }
    // A repository the server does not have.
    let server = serve(&pkg, "allatom/preglycanaa-small", Mode::Honest);
    let env = vec![
        ("HF_HOME", d.join("hf3").display().to_string()),
        ("HF_ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
    ];
    let out = embed("allatom/missing", &d.join("m.npy"), &env);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allatom/missing") && err.contains("config.json"), "{err}");
}

/// Every path under `root`.
fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                let q = e.path();
                if q.is_dir() && !q.is_symlink() {
                    stack.push(q.clone());
                }
                out.push(q);
            }
        }
    }
    out
}

#[test]
fn a_hostile_hub_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/preglycanaa-small");
    for (mode, needle) in [
        (Mode::Oversize, "more than the"),
        (Mode::TraversalEtag, "is not a SHA-256 or git SHA-1 checksum"),
        (Mode::TraversalCommit, "is not a 40-digit commit hash"),
        (Mode::WeakEtag, "cannot be verified"),
        (Mode::StallHead, "timed out"),
        (Mode::StallBody, "stalled"),
    ] {
        let sandbox = d.join(format!("{mode:?}"));
        let home = sandbox.join("a/b/c/hf");
        let server = serve(&pkg, "allatom/preglycanaa-small", mode);
        let env = vec![
            ("HF_HOME", home.display().to_string()),
            ("HF_ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
            ("HF_HUB_ETAG_TIMEOUT", "1".into()),
            ("HF_HUB_DOWNLOAD_TIMEOUT", "1".into()),
        ];
        let out = embed("allatom/preglycanaa-small", &sandbox.join("out.npy"), &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode:?}: {err}");
        assert!(err.contains(needle), "{mode:?}: {err}");
        assert!(!err.contains("panicked"), "{mode:?}: {err}");
        let paths = walk(&sandbox);
        for p in &paths {
            let name = p.file_name().unwrap().to_string_lossy();
            assert!(name != "x" && name != "evil" && !name.contains(".incomplete"), "{mode:?} left {}", p.display());
            assert!(!name.ends_with(".npy"), "{mode:?}: no output");
            assert!(
                p.starts_with(&home) || p.starts_with(sandbox.join("a")),
                "{mode:?} wrote outside the cache: {}",
                p.display()
            );
        }
        assert!(
            !paths.iter().any(|p| p.to_string_lossy().contains("snapshots") && p.ends_with("model.safetensors")),
            "{mode:?}: nothing refused becomes a snapshot"
        );
    }
}

#[test]
fn esm_model_from_the_hub_with_vocab_txt() {
    // A Hugging Face ESM-2 repository layout (config.json, model.safetensors, vocab.txt; no
    // tokenizer.json, which answers 404): embeddings equal those of the local directory.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../aa-codeswitch/tests/fixtures/hf-tiny");
    let run = |model: &str, out: &Path, env: &[(&str, String)]| {
        run_embed(&["--sequence", "MKTAYIAKQRQISFVKSHFSRQ", "--level", "unit"], model, out, env)
    };
    let local = run(repo.to_str().unwrap(), &d.join("local.safetensors"), &[]);
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let server = serve(&repo, "facebook/esm2_tiny", Mode::Honest);
    let env = vec![
        ("HF_HOME", d.join("hf").display().to_string()),
        ("HF_ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
    ];
    let hub = run("facebook/esm2_tiny", &d.join("hub.safetensors"), &env);
    assert!(hub.status.success(), "{}", String::from_utf8_lossy(&hub.stderr));
    assert_eq!(std::fs::read(d.join("hub.safetensors")).unwrap(), std::fs::read(d.join("local.safetensors")).unwrap());
}
