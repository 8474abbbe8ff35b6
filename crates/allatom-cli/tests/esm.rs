//! ESM in the CLI: `convert` of a torch checkpoint (the fixture written by
//! tests/reference/esm_reference.py in fair-esm/ESM-AA format) gives the embeddings of the same
//! weights as a Hugging Face directory; `embed --model <ESM>` on a sequence, a FASTA file and a
//! structure; bad inputs fail cleanly with nothing written; an ESM-AA pretraining config runs.
//! Official Vabs-Net checkpoints convert too, and `vabs-official featurize` / `forward` on files
//! give the official code's inputs and stages.

use std::path::{Path, PathBuf};
use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../aa-codeswitch/tests/fixtures")
}

fn structures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures/pdbrust/examples/pdb_files");
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

fn ok(c: &mut Command) -> std::process::Output {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn convert_then_embed_equals_the_hugging_face_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conv = d.join("converted");
    ok(allatom().args(["convert", "--checkpoint"]).arg(fixtures().join("fairesm_tiny.pt")).arg("--out").arg(&conv));
    for f in ["config.json", "model.safetensors", "tokenizer.json", "README.md"] {
        assert!(conv.join(f).is_file(), "{f}");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(conv.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["num_attention_heads"], 4, "heads read from the pickled config");
    assert_eq!(cfg["num_hidden_layers"], 2);
    let embed = |model: &Path, out: &Path| {
        ok(allatom()
            .args(["embed", "--sequence", "MKTAYIAKQRQISFVKSHFSRQ", "--level", "unit", "--model"])
            .arg(model)
            .arg("--out")
            .arg(out));
    };
    embed(&conv, &d.join("a.safetensors"));
    embed(&fixtures().join("hf-tiny"), &d.join("b.safetensors"));
    assert_eq!(std::fs::read(d.join("a.safetensors")).unwrap(), std::fs::read(d.join("b.safetensors")).unwrap());
    let t = candle_core::safetensors::load(d.join("a.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(t["embeddings"].dims(), &[22, 40]);
    // Not a checkpoint: clear error, nothing written.
    let bad = d.join("bad.pt");
    std::fs::write(&bad, b"not a zip").unwrap();
    let out = allatom().args(["convert", "--checkpoint"]).arg(&bad).arg("--out").arg(d.join("x")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.pt"));
    assert!(!d.join("x").exists());
}

#[test]
fn a_hostile_checkpoint_pickle_is_refused_before_candle_reads_it() {
    // Nesting a million deep once overflowed the stack (exit 134); copies of copies asked for
    // exponential memory. Both are refused with the limit named, exit 2, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut deep = vec![0x80u8, 2, b']'];
    deep.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    deep.push(b'.');
    let mut bomb = vec![0x80u8, 2, b')', b'q', 0];
    for _ in 0..40 {
        bomb.extend([b'h', 0, b'h', 0, 0x86, b'q', 0]);
    }
    bomb.push(b'.');
    for (name, pkl, needle) in [("deep", deep, "nested deeper than"), ("bomb", bomb, "objects")] {
        let path = d.join(format!("{name}.pt"));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", opts).unwrap();
        std::io::Write::write_all(&mut zip, &pkl).unwrap();
        zip.finish().unwrap();
        let out_dir = d.join(format!("{name}-out"));
        let out = allatom().args(["convert", "--checkpoint"]).arg(&path).arg("--out").arg(&out_dir).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(needle) && err.contains("data.pkl"), "{name}: {err}");
        assert!(!out_dir.exists());
    }
    // A negative head count in the checkpoint's config is named as such (it once printed as
    // 18446744073709551615).
    let mut src = zip::ZipArchive::new(std::fs::File::open(fixtures().join("fairesm_tiny.pt")).unwrap()).unwrap();
    let path = d.join("negative.pt");
    let mut dst = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut f = src.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
        if name.ends_with("data.pkl") {
            let k = bytes.windows(26).position(|w| w.starts_with(b"encoder_attention_headsq\tK")).unwrap() + 25;
            bytes.splice(k..k + 2, [b'J', 0xff, 0xff, 0xff, 0xff]);
        }
        dst.start_file(name, opts).unwrap();
        std::io::Write::write_all(&mut dst, &bytes).unwrap();
    }
    dst.finish().unwrap();
    let out = allatom().args(["convert", "--checkpoint"]).arg(&path).arg("--out").arg(d.join("neg")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("encoder_attention_heads = -1"), "{err}");
    assert!(!d.join("neg").exists());
}

#[test]
fn embed_fasta_and_structures_with_an_esm_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = fixtures().join("hf-tiny");
    std::fs::write(d.join("p.fasta"), ">one\nMKTAYIAKQR\nQISFV\n>two\nGSHMLEDP\n").unwrap();
    ok(allatom()
        .args(["embed", "--fasta"])
        .arg(d.join("p.fasta"))
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(d.join("f.npy")));
    let meta = std::fs::read_to_string(d.join("f.jsonl")).unwrap();
    assert_eq!(meta.lines().count(), 2);
    assert!(meta.contains("\"input\":\"one\""));
    // Structures: one sequence per chain, per-residue rows labelled with chain, name, number.
    ok(allatom()
        .args(["embed", "--structure"])
        .arg(structures().join("1UBQ.pdb"))
        .args(["--level", "unit", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(d.join("s.safetensors")));
    let meta: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(d.join("s.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(meta["rows"], serde_json::json!([0, 76]));
    assert_eq!(meta["units"][0], "A MET 1");
    // A FASTA record without a sequence: error, nothing written.
    std::fs::write(d.join("bad.fasta"), ">one\n>two\nMK\n").unwrap();
    let out = allatom()
        .args(["embed", "--fasta"])
        .arg(d.join("bad.fasta"))
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(d.join("bad.npy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"one\" has no sequence"));
    assert!(!d.join("bad.npy").exists());
    // A sequence with the glycan model: refused.
    let out = allatom().args(["embed", "--sequence", "MK", "--out"]).arg(d.join("g.npy")).output().unwrap();
    assert!(!out.status.success());
    // Atom level needs ESM-AA.
    let out = allatom()
        .args(["embed", "--sequence", "MK", "--level", "atom", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(d.join("a.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn esm_aa_pretraining_config_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = serde_json::json!({
        "objective": "esm_aa",
        "data": { "structures": [structures().join("1UBQ.pdb"), structures().join("1HSG.pdb")], "valid_fraction": 0.2 },
        "model": { "vocab_size": 59, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "intermediate_size": 128, "pair_bias": true, "gaussian_kernels": 16 },
        "masking": { "window": 32, "unzip_ratio": 0.2 },
        "train": { "epochs": 2, "batch_size": 4, "optimizer": { "lr": 1e-3 }, "seed": 1 }
    });
    std::fs::write(d.join("c.json"), cfg.to_string()).unwrap();
    ok(allatom().args(["pretrain", "--config"]).arg(d.join("c.json")).arg("--run-dir").arg(d.join("run")));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/summary.json")).unwrap()).unwrap();
    let hist = summary["history"].as_array().unwrap();
    assert_eq!(hist.len(), 2);
    for k in ["loss", "mlm_loss", "distance_l1", "residue_accuracy", "atom_accuracy"] {
        assert!(hist[1]["valid"][k].as_f64().unwrap().is_finite(), "{k}");
    }
    // A config whose model lacks the pair bias is refused before training.
    let mut bad = cfg.clone();
    bad["model"]["pair_bias"] = serde_json::json!(false);
    bad["model"]["vocab_size"] = serde_json::json!(33);
    std::fs::write(d.join("bad.json"), bad.to_string()).unwrap();
    let out = allatom()
        .args(["pretrain", "--config"])
        .arg(d.join("bad.json"))
        .arg("--run-dir")
        .arg(d.join("r2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pair_bias"));
    // The run exports as a model directory that `embed` reads and that feeds Vabs-Net's
    // language-model features in a per-residue task.
    ok(allatom().args(["export", "--checkpoint"]).arg(d.join("run")).arg("--out").arg(d.join("lm")));
    for f in ["config.json", "model.safetensors", "tokenizer.json", "README.md"] {
        assert!(d.join("lm").join(f).is_file(), "{f}");
    }
    ok(allatom()
        .args(["embed", "--model"])
        .arg(d.join("lm"))
        .args(["--sequence", "MKTAYIAK", "--out"])
        .arg(d.join("e.npy")));
    let dssp = dssp_subset(d, 6);
    let task = serde_json::json!({
        "objective": "unit_task", "task": "dssp",
        "data": { "structures": [dssp], "valid_fraction": 0.2, "test_fraction": 0.2, "window": 64 },
        "encoder": { "family": "vabs", "lm": "lm",
            "model": { "layers": 1, "dim": 16, "edge_dim": 8, "heads": 2, "ffn_multiplier": 2, "kernels": 16, "atom_knn": 8, "unit_knn": 8 } },
        "train": { "epochs": 1, "batch_size": 4, "optimizer": { "lr": 1e-3 }, "seed": 0 }
    });
    std::fs::write(d.join("t.json"), task.to_string()).unwrap();
    let out = ok(allatom().args(["finetune", "--config"]).arg(d.join("t.json")).arg("--run-dir").arg(d.join("t")));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(line["test"]["accuracy"].as_f64().unwrap() > 0.0, "{line}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("t/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["history"][0]["valid"]["accuracy"].as_f64().map(|a| a > 0.0), Some(true));
    // SMPC pretraining with the same features; fine-tuning from it takes the encoder, language
    // model included, from the checkpoint.
    let smpc = serde_json::json!({
        "objective": "vabs_smpc", "lm": "lm",
        "data": { "structures": [dssp], "valid_fraction": 0.2 },
        "model": task["encoder"]["model"], "masking": { "window": 48 },
        "train": { "epochs": 1, "batch_size": 4, "optimizer": { "lr": 1e-3 }, "seed": 0 }
    });
    std::fs::write(d.join("s.json"), smpc.to_string()).unwrap();
    ok(allatom().args(["pretrain", "--config"]).arg(d.join("s.json")).arg("--run-dir").arg(d.join("s")));
    // The SMPC run exports as a Vabs-Net package (language model named by its absolute path)
    // that embeds structures per residue; a glycan string has no coordinates: refused.
    ok(allatom().args(["export", "--checkpoint"]).arg(d.join("s")).arg("--out").arg(d.join("vabs-pkg")));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("vabs-pkg/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["family"], "vabs");
    ok(allatom()
        .args(["embed", "--model"])
        .arg(d.join("vabs-pkg"))
        .arg("--structure")
        .arg(structures().join("1UBQ.pdb"))
        .args(["--level", "unit", "--out"])
        .arg(d.join("v.safetensors")));
    let t = candle_core::safetensors::load(d.join("v.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(t["embeddings"].dims(), &[76, 16]);
    // Atom rows map back to the file's atoms (the virtual node is not a row).
    ok(allatom()
        .args(["embed", "--model"])
        .arg(d.join("vabs-pkg"))
        .arg("--structure")
        .arg(structures().join("1UBQ.pdb"))
        .args(["--level", "atom", "--out"])
        .arg(d.join("va.safetensors")));
    let t = candle_core::safetensors::load(d.join("va.safetensors"), &candle_core::Device::Cpu).unwrap();
    let z = t["atomic_number"].to_vec1::<u32>().unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(d.join("va.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(t["embeddings"].dim(0).unwrap(), z.len());
    assert_eq!(meta["atoms"].as_u64(), Some(z.len() as u64), "{meta}");
    assert!(z.len() > 500 && z.iter().all(|z| [6, 7, 8, 16].contains(z)), "{} atoms", z.len());
    assert_eq!(meta["labels"][0], "N");
    let out = allatom()
        .args(["embed", "--glycan", "Gal(b1-4)GlcNAc", "--model"])
        .arg(d.join("vabs-pkg"))
        .arg("--out")
        .arg(d.join("vg.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs 3D coordinates"));
    assert!(!d.join("vg.npy").exists());
    let mut from = task.clone();
    from["pretrained"] = serde_json::json!("s");
    from.as_object_mut().unwrap().remove("encoder");
    std::fs::write(d.join("f.json"), from.to_string()).unwrap();
    ok(allatom().args(["finetune", "--config"]).arg(d.join("f.json")).arg("--run-dir").arg(d.join("f")));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("f/summary.json")).unwrap()).unwrap();
    let lm = summary["encoder"]["lm"].as_str().unwrap();
    assert!(Path::new(lm).is_absolute() && lm.ends_with("lm"), "{lm}");
    assert_eq!(summary["encoder"]["model"]["lm_dim"], 32);
}

/// `<dir>/dssp` with the first `n` DSSP-labelled structures of mdanalysistests and their labels.
fn dssp_subset(dir: &Path, n: usize) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures/mdanalysistests/dssp");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .expect("run `cargo xtask fetch-data`")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".pdb.dssp"))
        .collect();
    files.sort();
    let out = dir.join("dssp");
    std::fs::create_dir_all(&out).unwrap();
    for f in files.into_iter().take(n) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let pdb = name.trim_end_matches(".dssp").to_string();
        std::fs::copy(&f, out.join(&name)).unwrap();
        let gz = src.join(format!("{pdb}.gz"));
        if gz.exists() {
            std::fs::copy(&gz, out.join(format!("{pdb}.gz"))).unwrap();
        } else {
            std::fs::copy(src.join(&pdb), out.join(&pdb)).unwrap();
        }
    }
    out
}

#[test]
fn residue_tasks_on_either_encoder_and_modality() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = serde_json::json!({ "epochs": 1, "batch_size": 4, "optimizer": { "lr": 1e-3 }, "seed": 0 });
    let glycanaa = serde_json::json!({ "num_unit": 0, "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16],
        "batch_norm": true, "activation": "gelu", "concat_hidden": true, "readout_type": "mono", "unit_knn": 8 });
    // GlycanAA on protein secondary structure.
    let dssp = dssp_subset(d, 6);
    let cfg = serde_json::json!({ "objective": "unit_task", "task": "dssp",
        "encoder": { "family": "glycanaa", "featurisation": "molecule", "model": glycanaa },
        "data": { "structures": [dssp], "valid_fraction": 0.2, "test_fraction": 0.2, "window": 64 },
        "train": train });
    std::fs::write(d.join("g.json"), cfg.to_string()).unwrap();
    let out = ok(allatom().args(["finetune", "--config"]).arg(d.join("g.json")).arg("--run-dir").arg(d.join("g")));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["family"], "glycanaa");
    assert!(line["test"]["accuracy"].as_f64().unwrap() > 0.0, "{line}");
    // Vabs-Net on lectin-bound glycans (glycontact): one glycan per split group.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/glycontact/unilectin");
    let glycans = d.join("glycans");
    std::fs::create_dir_all(&glycans).unwrap();
    for f in ["0100_00.pdb", "0100_01.pdb", "0101_00.pdb", "0150_00.pdb", "0200_00.pdb", "0250_00.pdb", "0280_00.pdb"] {
        std::fs::copy(src.join(f), glycans.join(f)).expect("run `cargo xtask fetch-data`");
    }
    let cfg = serde_json::json!({ "objective": "unit_task", "task": "glycan_mobility",
        "data": { "structures": [glycans], "valid_fraction": 0.2, "test_fraction": 0.2 },
        "encoder": { "family": "vabs",
            "model": { "layers": 1, "dim": 16, "edge_dim": 8, "heads": 2, "ffn_multiplier": 2, "kernels": 16, "atom_knn": 8, "unit_knn": 8 } },
        "train": train });
    std::fs::write(d.join("v.json"), cfg.to_string()).unwrap();
    let out = ok(allatom().args(["finetune", "--config"]).arg(d.join("v.json")).arg("--run-dir").arg(d.join("v")));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((line["family"].as_str(), line["task"].as_str()), (Some("vabs"), Some("glycan_mobility")));
    assert!(line["test"]["auroc"].as_f64().is_some(), "{line}");
    // Bad configs fail with a reason and leave no run behind.
    for (edit, reason) in [
        (serde_json::json!({ "encoder": { "family": "gearnet" } }), "unknown encoder family"),
        (
            serde_json::json!({ "encoder": { "family": "glycanaa", "featurisation": "molecule", "lm": "lm", "model": glycanaa } }),
            "unknown field `lm`",
        ),
        (
            serde_json::json!({ "encoder": { "family": "esm", "model": serde_json::to_value(aa_codeswitch::EsmConfig::tiny(false)).unwrap() } }),
            "amino-acid residues only",
        ),
        (serde_json::json!({ "task": "binding" }), "unknown task"),
    ] {
        let mut bad = cfg.clone();
        for (k, v) in edit.as_object().unwrap() {
            bad[k] = v.clone();
        }
        std::fs::write(d.join("bad.json"), bad.to_string()).unwrap();
        let out = allatom()
            .args(["finetune", "--config"])
            .arg(d.join("bad.json"))
            .arg("--run-dir")
            .arg(d.join("bad"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{reason}: {err}");
        assert!(!d.join("bad").exists());
    }
}

#[test]
fn small_molecules_become_all_atom_sequences() {
    // A tiny ESM-AA model with random weights, written as a model directory.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("esm-aa-tiny");
    std::fs::create_dir_all(&model).unwrap();
    let cfg = aa_codeswitch::EsmConfig::tiny(true);
    let varmap = candle_nn::VarMap::new();
    aa_codeswitch::Esm::load(
        candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu),
        &cfg,
    )
    .unwrap();
    varmap.save(model.join("model.safetensors")).unwrap();
    std::fs::write(model.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    // Indinavir (MK1) with its coordinates from PDB 1HSG, as an SD file.
    let sdf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mk1_1hsg.sdf");
    ok(allatom()
        .args(["embed", "--structure"])
        .arg(&sdf)
        .args(["--level", "atom", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(d.join("m.safetensors")));
    let t = candle_core::safetensors::load(d.join("m.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(t["embeddings"].dims(), &[45, 32]);
    let meta = std::fs::read_to_string(d.join("m.jsonl")).unwrap();
    assert!(meta.contains("\"labels\":[\"N1\""), "{meta}");
    // Per-residue structure embedding still works with the same model (atoms only where asked).
    ok(allatom()
        .args(["embed", "--structure"])
        .arg(structures().join("1HSG.pdb"))
        .args(["--level", "unit", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(d.join("p.safetensors")));
    // A truncated SD file: error naming the file, nothing written.
    let text = std::fs::read_to_string(&sdf).unwrap();
    let cut: String = text.lines().take(20).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("cut.sdf"), cut).unwrap();
    let out = allatom()
        .args(["embed", "--structure"])
        .arg(d.join("cut.sdf"))
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(d.join("cut.npy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut.sdf"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!d.join("cut.npy").exists());
}

#[test]
fn convert_an_esm_aa_checkpoint() {
    // The official ESM-AA layout (`encoder.sentence_encoder.` / `encoder.` prefixes, tied
    // lm_head.weight, rotary buffers, Gaussian pair bias, distance head, no contact head), tiny;
    // expected logits from the PyTorch transcription of the official code on a 1UBQ code-switch
    // sequence (tests/reference/esm_reference.py).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("esm-aa");
    ok(allatom().args(["convert", "--checkpoint"]).arg(fixtures().join("esm_aa_tiny.pt")).arg("--out").arg(&out));
    // A legacy (pre-zip) torch file is named as such, nothing written.
    std::fs::write(dir.path().join("legacy.pt"), b"\x80\x02\x8a\x0alegacy pickle").unwrap();
    let res = allatom()
        .args(["convert", "--checkpoint"])
        .arg(dir.path().join("legacy.pt"))
        .arg("--out")
        .arg(dir.path().join("legacy"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("legacy format of torch < 1.6"));
    assert!(!dir.path().join("legacy").exists());
    let pkg = aa_codeswitch::EsmPackage::from_dir(&out, &candle_core::Device::Cpu).unwrap();
    let cfg = pkg.model.config();
    assert!(cfg.pair_bias);
    assert_eq!((cfg.vocab_size, cfg.num_attention_heads, cfg.gaussian_kernels), (59, 4, 128));
    assert!(!pkg.model.has_contact_head());
    let want =
        candle_core::safetensors::load(fixtures().join("esm_aa_tiny_expected.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let tokens: Vec<u32> = want["tokens"].get(0).unwrap().to_dtype(candle_core::DType::U32).unwrap().to_vec1().unwrap();
    let aa: Vec<i64> = want["aa_mask"].get(0).unwrap().to_vec1().unwrap();
    let xyz = want["coords"].get(0).unwrap().to_vec2::<f32>().unwrap();
    let mut seq = aa_codeswitch::CodeSwitchSequence::from_tokens(tokens);
    for i in 0..seq.len() {
        if aa[i] == 0 {
            seq.aa_mask[i] = false;
            seq.atom[i] = Some(i as u32);
            seq.coords[i] = Some([xyz[i][0], xyz[i][1], xyz[i][2]]);
        }
    }
    let batch = aa_codeswitch::CodeSwitchBatch::collate(&[&seq], &pkg.alphabet, &candle_core::Device::Cpu).unwrap();
    let got = pkg.model.forward(&batch, &aa_codeswitch::EsmRequest { logits: true, ..Default::default() }).unwrap();
    let d = (got.logits.unwrap() - &want["logits"])
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d <= 1e-4, "converted ESM-AA logits differ by {d}");
}

#[test]
fn batched_sequences_equal_one_at_a_time() {
    // Sequences of different lengths share padded forward passes; every row matches the
    // unbatched run (padding only changes rounding), and the metadata is identical.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = fixtures().join("hf-tiny");
    let fasta: String = (0..7)
        .map(|k| {
            format!(
                ">s{k}\n{}\n",
                "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ".chars().cycle().skip(k * 3).take(5 + 4 * k).collect::<String>()
            )
        })
        .collect();
    std::fs::write(d.join("p.fasta"), fasta).unwrap();
    for (name, bs) in [("batched", "256"), ("single", "1")] {
        ok(allatom()
            .args(["embed", "--fasta"])
            .arg(d.join("p.fasta"))
            .args(["--level", "unit", "--batch-size", bs, "--model"])
            .arg(&model)
            .arg("--out")
            .arg(d.join(format!("{name}.safetensors"))));
    }
    let load = |n: &str| candle_core::safetensors::load(d.join(n), &candle_core::Device::Cpu).unwrap();
    let (a, b) = (load("batched.safetensors"), load("single.safetensors"));
    assert_eq!(a["embeddings"].dims(), b["embeddings"].dims());
    let diff = (&a["embeddings"] - &b["embeddings"]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
    assert_eq!(std::fs::read(d.join("batched.jsonl")).unwrap(), std::fs::read(d.join("single.jsonl")).unwrap());
}

#[test]
fn convert_an_official_vabs_checkpoint() {
    // The unicore checkpoint ({"args": Namespace, "model": …}) the official-code reference wrote.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ckpt =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../aa-sparse-attn/tests/fixtures/vabs_official/checkpoint.pt");
    let out = ok(allatom().args(["convert", "--checkpoint"]).arg(&ckpt).arg("--out").arg(d.join("vabs")));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("official Vabs-Net: 2 layers × 32, edge width 16, 4 heads, kNN 30/30, 24-wide"), "{text}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("vabs/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["family"], "vabs");
    assert_eq!(cfg["official"]["heads"], 4, "heads read from the pickled args Namespace");
    assert_eq!(cfg["official"]["pocket_head"], true);
    // The package takes 24-wide ESM rows; without `lm` it says so, exits non-zero, writes nothing.
    let res = allatom()
        .args(["embed", "--level", "unit", "--structure"])
        .arg(structures().join("1UBQ.pdb"))
        .arg("--model")
        .arg(d.join("vabs"))
        .arg("--out")
        .arg(d.join("e.safetensors"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("24-wide language-model features"), "{err}");
    assert!(!d.join("e.safetensors").exists());
    // --lm is for Vabs-Net checkpoints only.
    let res = allatom()
        .args(["convert", "--lm", "x", "--checkpoint"])
        .arg(fixtures().join("fairesm_tiny.pt"))
        .arg("--out")
        .arg(d.join("esm"))
        .output()
        .unwrap();
    assert!(!res.status.success() && String::from_utf8_lossy(&res.stderr).contains("--lm applies to Vabs-Net"));
}

#[test]
fn vabs_official_steps_on_files_equal_the_official_code() {
    // featurize 1UBQ → the official pipeline's edge lists; + the fixture's ESM rows → forward
    // through the converted checkpoint → the official stages.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../aa-sparse-attn/tests/fixtures/vabs_official");
    let dev = candle_core::Device::Cpu;
    ok(allatom()
        .args(["vabs-official", "featurize", "--chain", "A", "--structure"])
        .arg(structures().join("1UBQ.pdb"))
        .arg("--out")
        .arg(d.join("inputs.safetensors")));
    let mut inputs = candle_core::safetensors::load(d.join("inputs.safetensors"), &dev).unwrap();
    let official = candle_core::safetensors::load(fx.join("features.safetensors"), &dev).unwrap();
    let ints = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<i64>().unwrap();
    for k in ["edge_index", "aa_edge_index", "atom_type", "residue_idx_all"] {
        assert_eq!(ints(&inputs[k]), ints(&official[k]), "{k}");
    }
    inputs.insert("esm_feat".into(), official["esm_feat"].clone());
    candle_core::safetensors::save(&inputs, d.join("inputs.safetensors")).unwrap();
    ok(allatom().args(["convert", "--checkpoint"]).arg(fx.join("checkpoint.pt")).arg("--out").arg(d.join("vabs")));
    ok(allatom()
        .args(["vabs-official", "forward", "--model"])
        .arg(d.join("vabs"))
        .arg("--inputs")
        .arg(d.join("inputs.safetensors"))
        .arg("--out")
        .arg(d.join("stages.safetensors")));
    let ours = candle_core::safetensors::load(d.join("stages.safetensors"), &dev).unwrap();
    let want = candle_core::safetensors::load(fx.join("stages.safetensors"), &dev).unwrap();
    assert_eq!(ours.len(), want.len());
    for (k, v) in &want {
        let diff = (&ours[k] - v).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        assert!(diff <= 1e-4, "{k}: {diff}");
    }
    // Inputs missing a tensor: a clear error, nothing written.
    inputs.remove("edge_vec");
    candle_core::safetensors::save(&inputs, d.join("bad.safetensors")).unwrap();
    let res = allatom()
        .args(["vabs-official", "forward", "--model"])
        .arg(d.join("vabs"))
        .arg("--inputs")
        .arg(d.join("bad.safetensors"))
        .arg("--out")
        .arg(d.join("bad_stages.safetensors"))
        .output()
        .unwrap();
    assert!(!res.status.success() && String::from_utf8_lossy(&res.stderr).contains("no tensor edge_vec"));
    assert!(!d.join("bad_stages.safetensors").exists());
}
