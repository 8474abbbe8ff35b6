//! The `allatom graph` command on real glycans and bad input.

use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

#[test]
fn one_glycan_summary() {
    let out = allatom().args(["graph", "--glycan", "Gal(b1-4)GlcNAc"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("C14H25NO11"), "{s}");
    let out = allatom().args(["graph", "--glycan", "Gal(b1-4)Glx", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("at character 10"), "{v}");
}

#[test]
fn file_of_glycans_writes_every_line_and_fails_after() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "Neu5Ac(a2-3)Gal(b1-4)Glc\nGal(b1-4\nGlcNAc6S(b1-4)Man\n").unwrap();
    let out_path = dir.path().join("out.jsonl");
    let out = allatom().args(["graph", "--glycans"]).arg(&input).arg("--jsonl").arg(&out_path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "one line failed");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out_path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let mut got: Vec<&str> = lines[0].as_object().unwrap().keys().map(|k| k.as_str()).collect();
    got.sort();
    let mut expected =
        vec!["input", "notation", "iupac", "units", "atoms", "bonds", "rings", "heavy", "formula", "flags", "aglycone"];
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(lines[0]["notation"], "iupac");
    assert_eq!(lines[0]["iupac"], "Neu5Ac(a2-3)Gal(b1-4)Glc");
    assert!(lines[0]["aglycone"].is_null(), "no spacer written");
    assert_eq!(lines[0]["formula"], "C23H39NO19");
    assert_eq!(lines[0]["heavy"]["N"], 1);
    assert_eq!(lines[0]["rings"], 3);
    assert_eq!(lines[1]["input"], "Gal(b1-4");
    assert!(lines[1]["error"].as_str().unwrap().contains("at character 4"), "{}", lines[1]);
    assert_eq!(lines[2]["formula"], "C14H25NO14S");
}

#[test]
fn csv_column_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("g.csv");
    std::fs::write(&input, "id,IUPAC Condensed\n1,Man(a1-6)Man\n2,\"Fuc(a1-2)Gal\"\n").unwrap();
    let out = allatom().args(["graph", "--glycans"]).arg(&input).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let missing = dir.path().join("nope.txt");
    let out_path = dir.path().join("never.jsonl");
    let out = allatom().args(["graph", "--glycans"]).arg(&missing).arg("--jsonl").arg(&out_path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("cannot read"));
    assert!(!out_path.exists(), "no partial output");
}

fn fetched(rel: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures").join(rel);
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

#[test]
fn structure_file_and_directory() {
    let out = allatom().args(["graph", "--structure"]).arg(fetched("biopython/7DDO.pdb")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["chains", "residues", "units", "atoms", "bonds", "glycans", "missing_atoms", "warnings"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["chains"], 2);
    assert_eq!(v["units"]["monosaccharide"], 4);
    let glycans = v["glycans"].as_array().unwrap();
    assert!(glycans.iter().any(|g| g["iupac"] == "GlcNAc(b1-" && g["attached_to"] == "ASN 90 chain A (atom ND2)"));

    // A directory with one good structure and one broken file: both lines written, exit 1.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fetched("pdbrust/examples/pdb_files/1UBQ.pdb"), dir.path().join("1ubq.pdb")).unwrap();
    std::fs::write(dir.path().join("broken.cif"), "data_x\nloop_\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n1.0\n")
        .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a structure").unwrap();
    let out_path = dir.path().join("out.jsonl");
    let out = allatom().args(["graph", "--structure"]).arg(dir.path()).arg("--jsonl").arg(&out_path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out_path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "notes.txt is not a structure file name");
    assert_eq!(lines[0]["residues"], 76);
    assert!(lines[1]["error"].as_str().unwrap().contains("truncated"), "{}", lines[1]);
    // A missing path: exit 2, nothing written.
    let out = allatom().args(["graph", "--structure", "/nonexistent/x.pdb"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Files are read up to the stated caps (lowered here), structures and SD files alike.
    let dir = tempfile::tempdir().unwrap();
    let pdb = dir.path().join("x.pdb");
    std::fs::write(&pdb, "ATOM      1  N   ALA A   1      11.104   6.134  -2.100  1.00  0.00           N\n".repeat(30))
        .unwrap();
    let out = allatom()
        .args(["graph", "--structure"])
        .arg(&pdb)
        .env("ALLATOM_MAX_DECOMPRESSED_BYTES", "1000")
        .output()
        .unwrap();
    // graph reports a bad file on its own line (exit 1, as for any failed input).
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("larger than 1000 bytes") && text.contains("ALLATOM_MAX_DECOMPRESSED_BYTES"), "{text}");
    let sdf = dir.path().join("x.sdf");
    std::fs::write(&sdf, "x".repeat(200)).unwrap();
    let out = allatom()
        .args(["embed", "--structure"])
        .arg(&sdf)
        .arg("--out")
        .arg(dir.path().join("o.npy"))
        .env("ALLATOM_MAX_INPUT_BYTES", "100")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than 100 bytes"), "{err}");
}

/// Output to special files and failing streams: a device is written in place, never replaced
/// by a regular file; a full device and a failing stdout are errors (exit 2, no panic); a closed
/// pipe ends the output quietly.
#[test]
fn special_outputs_and_failing_streams() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "Gal(b1-4)GlcNAc\n".repeat(2000)).unwrap();
    let out = allatom().args(["graph", "--glycans"]).arg(&input).args(["--jsonl", "/dev/null"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null is still a device");
    // Embeddings to a device: the rows go there, and no metadata file appears beside it.
    let jsonl_existed = std::path::Path::new("/dev/null.jsonl").exists();
    let out = allatom().args(["embed", "--glycan", "Gal(b1-4)GlcNAc", "--out", "/dev/null"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("no metadata"), "{err}");
    assert!(jsonl_existed || !std::path::Path::new("/dev/null.jsonl").exists(), "no /dev/null.jsonl");
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    if std::path::Path::new("/dev/full").exists() {
        let out = allatom().args(["graph", "--glycans"]).arg(&input).args(["--jsonl", "/dev/full"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = allatom().args(["graph", "--glycan", "Gal", "--json"]).stdout(full).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("writing to standard output") && !err.contains("panicked"), "{err}");
    }
    // A reader that goes away: no panic, exit 0.
    let mut child = allatom()
        .args(["graph", "--glycans"])
        .arg(&input)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// A 17,000-unit chain in a file is that line's positioned error; the other lines are built
/// (no stack overflow loses the batch), in `graph` and in `embed`.
#[test]
fn a_pathological_line_does_not_lose_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let long = "Glc(b1-4)".repeat(17_000) + "Glc";
    std::fs::write(&input, format!("Gal(b1-4)GlcNAc\n{long}\nMan(a1-3)Man\n")).unwrap();
    let out = allatom().args(["graph", "--glycans"]).arg(&input).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1]["error"].as_str().unwrap().contains("monosaccharides on one path"), "{}", lines[1]["error"]);
    assert_eq!((lines[0]["units"].as_u64(), lines[2]["units"].as_u64()), (Some(2), Some(2)));
    let out =
        allatom().args(["embed", "--glycans"]).arg(&input).arg("--out").arg(dir.path().join("e.npy")).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let meta = std::fs::read_to_string(dir.path().join("e.jsonl")).unwrap();
    assert_eq!(meta.lines().filter(|l| l.contains("\"rows\"")).count(), 2, "{meta}");
}
