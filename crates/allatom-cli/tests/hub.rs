//! `allatom embed --model owner/name` against a small server on 127.0.0.1 that answers like the
//! Hugging Face Hub's resolve endpoint (ranged GETs with ETag, X-Repo-Commit, Content-Range):
//! download → cache in the `huggingface_hub` layout → offline reload (server gone) all give the
//! embeddings of the local package; a corrupted download is detected, removed and not used.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use sha2::Digest;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// How the server misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Honest,
    /// Serves model.safetensors with one byte changed (same size, same ETag).
    FlipByte,
    /// Serves model.safetensors cut short (announced size unchanged).
    Truncate,
}

struct Server {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves the files of `dir` as repository `repo` at revision `main`: LFS-style ETag (SHA-256)
/// for .safetensors, git-blob SHA-1 for the rest, as the hub does.
fn serve(dir: &Path, repo: &'static str, mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The files of the directory among those a model repository holds (others answer 404).
    let files: Vec<(String, Vec<u8>)> =
        ["config.json", "model.safetensors", "README.md", "vocab.txt", "tokenizer.json"]
            .iter()
            .filter(|f| dir.join(f).is_file())
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
            .collect();
    let requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (req2, stop2) = (requests.clone(), stop.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            req2.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().trim_start_matches("bytes=").to_string());
                    }
                }
            }
            let prefix = format!("/{repo}/resolve/main/");
            let file = path.strip_prefix(&prefix).and_then(|f| files.iter().find(|(n, _)| n == f));
            let Some((name, body)) = file else {
                let msg = "Entry not found";
                let _ = write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                    msg.len()
                );
                continue;
            };
            let etag = if name.ends_with(".safetensors") {
                hex(&sha2::Sha256::digest(body))
            } else {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {}\0", body.len()).as_bytes());
                h.update(body);
                hex(&h.finalize())
            };
            let mut served = body.clone();
            if name == "model.safetensors" {
                match mode {
                    Mode::Honest => {}
                    Mode::FlipByte => {
                        let k = served.len() - 5;
                        served[k] ^= 0x40;
                    }
                    Mode::Truncate => served.truncate(served.len() / 2),
                }
            }
            let total = body.len();
            let (status, start, end) = match range {
                Some(r) => {
                    let (a, b) = r.split_once('-').unwrap_or((r.as_str(), ""));
                    let a: usize = a.parse().unwrap_or(0);
                    let b: usize = b.parse().map(|b: usize| b + 1).unwrap_or(total).min(served.len());
                    ("206 Partial Content", a.min(served.len()), b)
                }
                None => ("200 OK", 0, served.len()),
            };
            let chunk = &served[start..end.max(start)];
            let mut head = format!(
                "HTTP/1.1 {status}\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nContent-Length: {}\r\nConnection: close\r\n",
                chunk.len()
            );
            if status.starts_with("206") {
                head.push_str(&format!("Content-Range: bytes {start}-{}/{total}\r\n", end.max(start + 1) - 1));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(chunk);
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink).ok();
        }
    });
    Server { port, requests, stop }
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
    let out = embed("allatom/preglycanaa-small", &d.join("hub.npy"), &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(d.join("hub.npy")).unwrap(), want, "hub download embeds identically");
    assert!(server.requests.load(Ordering::SeqCst) >= 4, "metadata + content for two files");
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
