//! Every example configuration under models/configs/ reads as the run it is for, and its
//! encoder configuration (where it has one) is complete for its family.

use allatom::runs::RunConfig;

#[test]
fn example_configs_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/configs");
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let cfg = RunConfig::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
        let encoder = match &cfg {
            RunConfig::GraphTask(c) => c.encoder.clone(),
            RunConfig::UnitTask(c) => c.encoder.clone(),
            RunConfig::PairTask(c) => c.encoder.clone(),
            _ => None,
        };
        if let Some(e) = encoder {
            let (family, part) = allatom::families::split_config(&e).unwrap();
            // Official-featurisation glycan encoders get their vocabulary at run time
            // (`vocab_glycans`); language models are loaded at run time.
            if part.get("lm").is_none() && family.name() != "rgcn" && part.get("featurisation").is_some() {
                family.complete(&part).unwrap_or_else(|err| panic!("{}: {err:#}", path.display()));
            }
        }
        *seen.entry(cfg.objective()).or_default() += 1;
    }
    assert_eq!(seen.len(), 6, "every objective has an example: {seen:?}");
}

#[test]
fn a_config_without_its_objective_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.json");
    std::fs::write(&p, r#"{"task": {"dir": "x", "name": "glycan_type"}, "train": {}}"#).unwrap();
    let e = format!("{:#}", RunConfig::read(&p).unwrap_err());
    assert!(e.contains("old.json") && e.contains("objective"), "{e}");
    std::fs::write(&p, r#"{"objective": "unit_task", "task": "dssp", "modle": {}}"#).unwrap();
    let e = format!("{:#}", RunConfig::read(&p).unwrap_err());
    assert!(e.contains("modle"), "{e}");
}
