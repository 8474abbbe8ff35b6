//! The rebuilt glycowork tasks (`cargo xtask data`, run by `cargo xtask fetch-data`): files
//! match the committed manifest, splits do not share glycans, the glycosylation-type split is
//! stratified, the taxonomy levels join into one eight-target task, immunogenicity is glycanbench's
//! binary label on 1,320 glycans, the glycans build, and the interaction pairs match the
//! manifest with every protein (hence every pair) in one split.

use std::collections::HashSet;
use std::path::PathBuf;

use glycan_aa::tasks::{load, Split, TAXONOMY_LEVELS};

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tasks"))
}

#[test]
fn immunogenicity_is_binary_and_stratified() {
    let t = load(&dir(), "immunogenicity").unwrap();
    assert_eq!(t.rows.len(), 1320);
    assert_eq!(t.targets[0].classes, vec!["0".to_string(), "1".to_string()]);
    let pos = |s: Split| {
        let r: Vec<_> = t.split(s).collect();
        r.iter().filter(|r| r.labels[0][0] == 1).count() as f64 / r.len() as f64
    };
    // 636 of 1,320 immunogenic; each split within a few points of that.
    for s in [Split::Train, Split::Valid, Split::Test] {
        assert!((pos(s) - 636.0 / 1320.0).abs() < 0.03, "{s:?}: {}", pos(s));
    }
}

#[test]
fn tasks_match_the_manifest_and_split_cleanly() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("MANIFEST.json")).unwrap()).unwrap();
    let names: Vec<String> =
        manifest.as_object().unwrap().keys().filter(|k| !k.starts_with("interaction")).cloned().collect();
    assert_eq!(names.len(), 10, "glycan type + 8 taxonomy levels + immunogenicity");
    for name in &names {
        let task = load(&dir(), name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(task.rows.len() as u64, manifest[name]["rows"].as_u64().unwrap());
        assert_eq!(task.targets.len(), 1);
        assert_eq!(task.targets[0].classes.len() as u64, manifest[name]["classes"].as_u64().unwrap());
        // Every task is single-label (GlycanML's formulation).
        assert!(!task.targets[0].multi_label && task.rows.iter().all(|r| r.labels[0].len() == 1), "{name}");
        let sets: Vec<HashSet<&str>> = [Split::Train, Split::Valid, Split::Test]
            .iter()
            .map(|&s| task.split(s).map(|r| r.glycan.as_str()).collect())
            .collect();
        assert!(sets[0].is_disjoint(&sets[1]) && sets[0].is_disjoint(&sets[2]) && sets[1].is_disjoint(&sets[2]));
        let frac = sets[0].len() as f64 / task.rows.len() as f64;
        assert!((0.78..0.82).contains(&frac), "{name}: train fraction {frac}");
    }
    let t = load(&dir(), "glycan_type").unwrap();
    assert_eq!(t.targets[0].classes, ["N", "O", "free"]);
    for c in 0..3 {
        let all = t.rows.iter().filter(|r| r.labels[0][0] == c).count() as f64;
        let test = t.split(Split::Test).filter(|r| r.labels[0][0] == c).count() as f64;
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

#[test]
fn taxonomy_levels_join_into_one_task() {
    let joint = load(&dir(), "taxonomy").unwrap();
    assert_eq!(joint.targets.len(), 8);
    let species = load(&dir(), "taxonomy_species").unwrap();
    assert_eq!(joint.rows.len(), species.rows.len());
    for (k, level) in TAXONOMY_LEVELS.iter().enumerate() {
        let single = load(&dir(), &format!("taxonomy_{level}")).unwrap();
        assert_eq!(joint.targets[k], single.targets[0]);
        for (a, b) in joint.rows.iter().zip(&single.rows) {
            assert_eq!((&a.glycan, a.split, &a.labels[k]), (&b.glycan, b.split, &b.labels[0]));
        }
    }
    // Coarser levels have fewer classes; lineages nest: a genus lies in one family (almost
    // always — a few genus names are homonyms across kingdoms in the source data).
    let sizes: Vec<usize> = joint.targets.iter().map(|t| t.classes.len()).collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    let mut families: std::collections::HashMap<usize, std::collections::HashSet<usize>> = Default::default();
    for r in &joint.rows {
        families.entry(r.labels[6][0]).or_default().insert(r.labels[5][0]);
    }
    let nested = families.values().filter(|f| f.len() == 1).count();
    assert!(nested as f64 > 0.98 * families.len() as f64, "{nested} of {}", families.len());

    // Files that disagree are refused, naming the file.
    let tmp = tempfile::tempdir().unwrap();
    for level in TAXONOMY_LEVELS {
        let f = format!("taxonomy_{level}.csv");
        let mut text = std::fs::read_to_string(dir().join(&f)).unwrap();
        if level == "genus" {
            text = text.replacen(",train\n", ",test\n", 1);
        }
        std::fs::write(tmp.path().join(&f), text).unwrap();
    }
    let err = load(tmp.path(), "taxonomy").unwrap_err().to_string();
    assert!(err.contains("taxonomy_genus.csv") && err.contains("Test"), "{err}");
}

#[test]
fn interaction_pairs_match_the_manifest_and_split_by_protein() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("MANIFEST.json")).unwrap()).unwrap();
    let t = glycan_aa::tasks::load_interaction(&dir()).unwrap();
    assert_eq!(t.proteins.len() as u64, manifest["interaction_proteins"]["rows"].as_u64().unwrap());
    assert_eq!(t.pairs.len() as u64, manifest["interaction"]["rows"].as_u64().unwrap());
    assert_eq!(t.glycans.len() as u64, manifest["interaction"]["glycans"].as_u64().unwrap());
    assert_eq!((t.proteins.len(), t.pairs.len(), t.glycans.len()), (2117, 799_408, 2878));
    // Identical sequences share a split; pairs per split as the manifest counts them.
    let mut split_of: std::collections::HashMap<&str, Split> = Default::default();
    for p in &t.proteins {
        assert_eq!(*split_of.entry(p.sequence.as_str()).or_insert(p.split), p.split, "{}", p.name);
    }
    for (s, name) in [(Split::Train, "train"), (Split::Valid, "valid"), (Split::Test, "test")] {
        let n = t.pairs.iter().filter(|p| t.proteins[p.0 as usize].split == s).count() as u64;
        assert_eq!(n, manifest["interaction"]["splits"][name].as_u64().unwrap(), "{name}");
    }
    let train = t.proteins.iter().filter(|p| p.split == Split::Train).count() as f64 / t.proteins.len() as f64;
    assert!((0.78..0.82).contains(&train), "{train}");
}
