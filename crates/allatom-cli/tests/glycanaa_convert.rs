//! `allatom convert` of an official GlycanAA / PreGlycanAA checkpoint: a TorchDrug-style
//! `{"model": state dict}` torch file (encoder under `model.`, masking head under `mlp.`;
//! `tests/reference/glycanaa_official_checkpoint.py`) with GlycanML's official glycoword
//! vocabulary becomes a package whose embeddings equal the independent NumPy reference
//! (`tests/reference/glycanaa_reference.py` on the official vocabulary's featurisation of 40
//! real glycans) to 1e-4.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::read_npy;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn an_official_checkpoint_converts_and_reproduces_the_reference_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = allatom()
        .args(["convert", "--checkpoint"])
        .arg(fixtures().join("glycanaa_official_tiny.pth"))
        .arg("--out")
        .arg(d.join("pkg"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("official GlycanAA: 3 blocks [16, 16, 16], 210 node types, 89 relations, 4 head tensors left out"),
        "{err}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("pkg/config.json")).unwrap()).unwrap();
    assert_eq!(config["featurisation"], "official");
    assert_eq!(config["vocab"]["units"][0], "dHex", "the official id order");
    let batch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("glycanaa_official_batch.json")).unwrap())
            .unwrap();
    let glycans: Vec<&str> =
        batch["glycans"].as_array().unwrap().iter().map(|g| g["iupac"].as_str().unwrap()).collect();
    assert_eq!(glycans.len(), 40);
    std::fs::write(d.join("in.txt"), glycans.join("\n") + "\n").unwrap();
    let out = allatom()
        .args(["embed", "--model"])
        .arg(d.join("pkg"))
        .arg("--glycans")
        .arg(d.join("in.txt"))
        .arg("--out")
        .arg(d.join("e.npy"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (shape, ours) = read_npy(&d.join("e.npy"));
    let expected = candle_core::safetensors::load(
        fixtures().join("glycanaa_official_expected.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let want = expected["eval.graph_feature"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(shape, vec![40, 96]);
    let worst = ours.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0f32, f32::max);
    assert!(worst < 1e-4, "largest difference from the NumPy reference {worst}");
}

#[test]
fn a_vocabulary_of_another_shape_and_stray_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 127 units but only 80 links: 85 relations, not the checkpoint's 89.
    let v = glycan_aa::compat::CompatVocab::official();
    let words: Vec<&String> = v.units.iter().chain(v.links.iter().take(80)).collect();
    std::fs::write(d.join("v.json"), serde_json::to_string(&words).unwrap()).unwrap();
    for (extra, message) in [
        (
            vec!["--vocab".to_string(), d.join("v.json").display().to_string()],
            "89 relations, the vocabulary 210 and 85",
        ),
        (vec!["--heads".to_string(), "4".to_string()], "do not apply to GlycanAA"),
    ] {
        let out = allatom()
            .args(["convert", "--checkpoint"])
            .arg(fixtures().join("glycanaa_official_tiny.pth"))
            .arg("--out")
            .arg(d.join("pkg"))
            .args(&extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(message), "{extra:?}: {err}");
        assert!(!d.join("pkg").exists(), "no partial output");
    }
}
