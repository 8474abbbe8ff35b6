//! `allatom attention`: a report and a picture for an attending model on a real sequence and a
//! real structure; models that do not attend, missing files and bad windows are refused with
//! nothing written.

use std::path::PathBuf;
use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hf_tiny() -> PathBuf {
    root().join("crates/aa-codeswitch/tests/fixtures/hf-tiny")
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    (dec.info().width, dec.info().height)
}

#[test]
fn esm_on_a_sequence_and_on_a_structure_chain() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seq.json");
    let run = allatom()
        .args(["attention", "--model"])
        .arg(hf_tiny())
        .args(["--sequence", "MKTAYIAKQRQISFVKSHFSRQ", "--max-hop", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["family"], "esm");
    assert_eq!(v["input"]["input"], "MKTAYIAKQRQISFVKSHFSRQ");
    let t = &v["tracks"][0];
    assert_eq!(t["name"], "tokens");
    let nodes = t["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 24, "<cls>, 22 residues, <eos>");
    assert_eq!((nodes[0].as_str(), nodes[1].as_str()), (Some("<cls>"), Some("MET 1")));
    assert_eq!(t["special"], serde_json::json!([0, 23]));
    assert_eq!(t["edges"]["covalent"].as_array().unwrap().len(), 21);
    assert_eq!(t["layers"].as_array().unwrap().len(), 2);
    let m = &t["product"]["metrics"]["covalent"];
    assert_eq!(m["hop_mass"].as_array().unwrap().len(), 3);
    assert!(!t["product"]["graph"].as_array().unwrap().is_empty());
    assert_eq!(png_size(&out.with_extension("png")), (3 * 420, 420), "layer 1, layer 2, product");

    // A real structure: chain A of 1UBQ with residue labels; the picture where asked.
    let pdb = root().join("data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb");
    assert!(pdb.exists(), "{} missing: run `cargo xtask fetch-data`", pdb.display());
    let (out, png) = (dir.path().join("ubq.json"), dir.path().join("pictures.png"));
    let run = allatom()
        .args(["attention", "--model"])
        .arg(hf_tiny())
        .arg("--structure")
        .arg(&pdb)
        .arg("--out")
        .arg(&out)
        .arg("--png")
        .arg(&png)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["input"]["chain"], "A");
    let nodes = v["tracks"][0]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 78);
    assert_eq!(nodes[1], "A MET 1");
    assert!(png_size(&png).0 > 0);
}

#[test]
fn refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let refused = |args: &[&str], model: Option<PathBuf>, why: &str| {
        let mut c = allatom();
        c.arg("attention").args(args).arg("--out").arg(&out);
        if let Some(m) = model {
            c.arg("--model").arg(m);
        }
        let run = c.output().unwrap();
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!out.exists() && !out.with_extension("png").exists(), "{args:?}: nothing written");
    };
    // The built-in GlycanAA passes messages: no attention to report.
    refused(&["--glycan", "Gal(b1-4)GlcNAc"], None, "glycanaa does not attend");
    refused(&["--sequence", "MKT"], None, "");
    refused(&["--structure", "/nonexistent/x.pdb"], Some(hf_tiny()), "x.pdb");
    refused(&["--sequence", "MK1T"], Some(hf_tiny()), "");
    // Atom tokens need ESM-AA (the tiny model is ESM-2) and an ESM model at all.
    refused(&["--sequence", "MKT", "--atoms"], Some(hf_tiny()), "needs an ESM-AA model");
    refused(&["--glycan", "Gal(b1-4)GlcNAc", "--atoms"], None, "--atoms unzips residues");
    let pdb = root().join("data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb");
    refused(&["--structure", pdb.to_str().unwrap(), "--input", "5"], Some(hf_tiny()), "--input 5");
}
