//! The rebuilt glycowork tasks (`cargo xtask data`, run by `cargo xtask fetch-data`): files
//! match the committed manifest, splits do not share glycans, the glycosylation-type split is
//! stratified, and the glycans build.

use std::collections::HashSet;
use std::path::PathBuf;

use glycan_aa::tasks::{load, Split};

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tasks"))
}

#[test]
fn tasks_match_the_manifest_and_split_cleanly() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("MANIFEST.json")).unwrap()).unwrap();
    let names: Vec<String> = manifest.as_object().unwrap().keys().cloned().collect();
    assert_eq!(names.len(), 9, "glycan type + 8 taxonomy levels");
    for name in &names {
        let task = load(&dir(), name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(task.rows.len() as u64, manifest[name]["rows"].as_u64().unwrap());
        assert_eq!(task.classes.len() as u64, manifest[name]["classes"].as_u64().unwrap());
        let sets: Vec<HashSet<&str>> = [Split::Train, Split::Valid, Split::Test]
            .iter()
            .map(|&s| task.split(s).map(|r| r.glycan.as_str()).collect())
            .collect();
        assert!(sets[0].is_disjoint(&sets[1]) && sets[0].is_disjoint(&sets[2]) && sets[1].is_disjoint(&sets[2]));
        let frac = sets[0].len() as f64 / task.rows.len() as f64;
        assert!((0.78..0.82).contains(&frac), "{name}: train fraction {frac}");
    }
    let t = load(&dir(), "glycan_type").unwrap();
    assert_eq!(t.classes, ["N", "O", "free"]);
    assert!(!t.multi_label && t.rows.iter().all(|r| r.labels.len() == 1));
    for c in 0..3 {
        let all = t.rows.iter().filter(|r| r.labels[0] == c).count() as f64;
        let test = t.split(Split::Test).filter(|r| r.labels[0] == c).count() as f64;
        assert!((test / all - 0.1).abs() < 0.01, "class {c} stratified: {test}/{all}");
    }
    // Most glycans build as molecules (the rest are syntax this grammar does not read); every
    // fifth row, to keep the test quick.
    let sample: Vec<_> = t.rows.iter().step_by(5).collect();
    let ok = sample.iter().filter(|r| glycan_aa::Glycan::from_iupac(&r.glycan).is_ok()).count();
    assert!(ok as f64 / sample.len() as f64 > 0.97, "{ok} of {}", sample.len());
}

#[test]
fn a_changed_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir().join("MANIFEST.json"), tmp.path().join("MANIFEST.json")).unwrap();
    let mut text = std::fs::read_to_string(dir().join("glycan_type.csv")).unwrap();
    text.push_str("\"Gal(b1-4)Glc\",N,train\n");
    std::fs::write(tmp.path().join("glycan_type.csv"), text).unwrap();
    let err = load(tmp.path(), "glycan_type").unwrap_err().to_string();
    assert!(err.contains("SHA-256") && err.contains("glycan_type.csv"), "{err}");
    let missing = load(tmp.path(), "taxonomy_genus").unwrap_err().to_string();
    assert!(missing.contains("cargo xtask data"), "{missing}");
}
