//! `allatom export` and `allatom embed` on a tiny PreGlycanAA trained by `allatom pretrain`:
//! the CLI's graph embeddings equal the library's, unit rows pool to the graph embedding,
//! f16 storage stays close to f32, and bad inputs fail clearly without partial output.

mod common;

use std::path::Path;
use std::process::Command;

use common::read_npy;

use allatom::{Model, Window};
use candle_core::Device;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const GLYCANS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tasks/glycan_type.csv");

fn ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Pretrains a tiny model for one epoch and exports it as `<dir>/pkg` (f32) and `<dir>/pkg16`.
fn package(dir: &Path) {
    let text = std::fs::read_to_string(GLYCANS).expect("run `cargo xtask data` first");
    let rows: Vec<&str> = text.lines().take(1).chain(text.lines().skip(1).step_by(100)).collect();
    std::fs::write(dir.join("g.csv"), rows.join("\n") + "\n").unwrap();
    let cfg = serde_json::json!({"objective": "preglycanaa", "data": {"glycans": "g.csv", "column": "glycan", "valid_fraction": 0.2},
        "model": {"num_unit": 0, "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16], "batch_norm": true,
                  "activation": "gelu", "concat_hidden": true, "readout_type": "mono"},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 4}});
    std::fs::write(dir.join("pre.json"), cfg.to_string()).unwrap();
    ok(allatom().arg("pretrain").arg("--config").arg(dir.join("pre.json")).arg("--run-dir").arg(dir.join("run")));
    for (out, dtype) in [("pkg", "f32"), ("pkg16", "f16")] {
        ok(allatom()
            .args(["export", "--dtype", dtype, "--checkpoint"])
            .arg(dir.join("run"))
            .arg("--out")
            .arg(dir.join(out)));
    }
}

#[test]
fn embeddings_from_the_cli_equal_the_library_and_pool_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    package(d);
    let glycans =
        ["Neu5Ac(a2-3)Gal(b1-4)GlcNAc", "Fuc(a1-2)Gal(b1-3)GalNAc", "Man(a1-3)[Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc"];
    std::fs::write(d.join("in.txt"), glycans.join("\n") + "\n").unwrap();
    ok(allatom()
        .args(["embed", "--model"])
        .arg(d.join("pkg"))
        .arg("--glycans")
        .arg(d.join("in.txt"))
        .arg("--out")
        .arg(d.join("g.npy")));
    let (shape, cli) = read_npy(&d.join("g.npy"));
    // One glycan per batch (batches then run in parallel): the same bytes.
    ok(allatom()
        .args(["embed", "--batch-size", "1", "--model"])
        .arg(d.join("pkg"))
        .arg("--glycans")
        .arg(d.join("in.txt"))
        .arg("--out")
        .arg(d.join("g1.npy")));
    assert_eq!(std::fs::read(d.join("g1.npy")).unwrap(), std::fs::read(d.join("g.npy")).unwrap());

    let model = Model::from_dir(&d.join("pkg")).unwrap();
    let windows: Vec<Window> = glycans.iter().map(|g| model.glycan_window(g).unwrap()).collect();
    let embed = |ws: &[&Window]| {
        let out = model.encoder.encode(ws, false).unwrap();
        model.encoder.readout().forward(&out, false).unwrap()
    };
    let lib = embed(&windows.iter().collect::<Vec<_>>());
    assert_eq!(shape, lib.dims());
    let lib_rows: Vec<f32> = lib.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(cli, lib_rows, "CLI and library embeddings are identical");
    // One glycan alone gives the same row (inference BatchNorm: no batch dependence).
    let alone = embed(&[&windows[1]]).flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = shape[1];
    let max_diff = alone.iter().zip(&cli[w..2 * w]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max_diff < 1e-5, "{max_diff}");

    // Unit rows: their mean is the first half of the graph embedding.
    ok(allatom()
        .args(["embed", "--level", "unit", "--model"])
        .arg(d.join("pkg"))
        .arg("--glycans")
        .arg(d.join("in.txt"))
        .arg("--out")
        .arg(d.join("u.safetensors")));
    let t = candle_core::safetensors::load(d.join("u.safetensors"), &Device::Cpu).unwrap();
    let (emb, gi) = (&t["embeddings"], t["input_index"].to_vec1::<u32>().unwrap());
    assert_eq!(gi.len(), windows.iter().map(|w| w.units.len()).sum::<usize>());
    let meta: Vec<serde_json::Value> =
        std::fs::read_to_string(d.join("u.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (i, m) in meta.iter().enumerate() {
        let (lo, hi) = (m["rows"][0].as_u64().unwrap() as usize, m["rows"][1].as_u64().unwrap() as usize);
        assert!(gi[lo..hi].iter().all(|&g| g as usize == i));
        let mean: Vec<f32> = emb.narrow(0, lo, hi - lo).unwrap().mean(0).unwrap().to_vec1().unwrap();
        for (k, m) in mean.iter().enumerate() {
            assert!((m - cli[i * w + k]).abs() < 1e-4, "glycan {i} dim {k}: {m} vs {}", cli[i * w + k]);
        }
    }
    assert_eq!(meta[0]["units"], serde_json::json!(["Neu5Ac", "Gal", "GlcNAc"]));

    // Atom rows: one per atom node, element numbers of C/N/O.
    ok(allatom()
        .args(["embed", "--level", "atom", "--model"])
        .arg(d.join("pkg"))
        .arg("--glycan")
        .arg(glycans[0])
        .arg("--out")
        .arg(d.join("a.safetensors")));
    let t = candle_core::safetensors::load(d.join("a.safetensors"), &Device::Cpu).unwrap();
    let z = t["atomic_number"].to_vec1::<u32>().unwrap();
    assert_eq!(z.len(), windows[0].graph.num_atoms());
    assert!(z.iter().all(|z| [6, 7, 8].contains(z)), "{z:?}");
    let units = t["unit_index"].to_vec1::<u32>().unwrap();
    assert!(units.windows(2).all(|w| w[0] <= w[1]) && units[units.len() - 1] == 2, "{units:?}");

    // f16 storage: embeddings within 1 % of the f32 package's.
    ok(allatom()
        .args(["embed", "--model"])
        .arg(d.join("pkg16"))
        .arg("--glycans")
        .arg(d.join("in.txt"))
        .arg("--out")
        .arg(d.join("h.npy")));
    let (_, half) = read_npy(&d.join("h.npy"));
    let scale = cli.iter().map(|v| v.abs()).fold(0f32, f32::max);
    let err = half.iter().zip(&cli).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 0.01 * scale, "f16 max error {err} vs scale {scale}");
    let size = |p: &str| std::fs::metadata(d.join(p).join("model.safetensors")).unwrap().len();
    assert!(size("pkg16") * 10 < size("pkg") * 6, "f16 file is about half");
}

#[test]
fn bad_inputs_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    package(d);
    // One malformed glycan: exit 2, message with the position, nothing written.
    let out = allatom()
        .args(["embed", "--glycan", "Gal(b1-4", "--model"])
        .arg(d.join("pkg"))
        .arg("--out")
        .arg(d.join("x.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at character"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!d.join("x.npy").exists() && !d.join("x.jsonl").exists());
    // `export --out` on a directory that is not a package this tool wrote — the working
    // directory, its parent, a folder of the user's — is refused, and nothing in it is touched.
    std::fs::create_dir_all(d.join("mine")).unwrap();
    std::fs::write(d.join("mine/thesis.txt"), "keep me").unwrap();
    for out in [".", "..", "mine"] {
        let res = allatom()
            .current_dir(d.join("mine"))
            .args(["export", "--checkpoint"])
            .arg(d.join("run"))
            .args(["--out", &format!("../{out}").replace("../.", ".").replace("../..", "..")])
            .output()
            .unwrap();
        assert_eq!(res.status.code(), Some(2), "{out}: {}", String::from_utf8_lossy(&res.stderr));
        assert!(String::from_utf8_lossy(&res.stderr).contains("refusing to replace"), "{out}");
    }
    assert_eq!(std::fs::read_to_string(d.join("mine/thesis.txt")).unwrap(), "keep me");
    assert!(d.join("pkg/config.json").is_file() && d.join("run").is_dir());
    // A package this tool wrote is replaced in place.
    ok(allatom()
        .args(["export", "--checkpoint"])
        .arg(d.join("run"))
        .arg("--out")
        .arg(d.join("pkg16"))
        .args(["--dtype", "f16"]));
    // The file's format follows its name; an output may not overwrite an input; empty input.
    let out = allatom().args(["embed", "--glycan", "Gal", "--out"]).arg(d.join("g.safetensors")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give a .npy path"));
    std::fs::write(d.join("list.jsonl"), "Gal\n").unwrap();
    let out = allatom()
        .args(["embed", "--glycans"])
        .arg(d.join("list.jsonl"))
        .arg("--out")
        .arg(d.join("list.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("would destroy the input"));
    assert_eq!(std::fs::read_to_string(d.join("list.jsonl")).unwrap(), "Gal\n");
    std::fs::write(d.join("empty.txt"), "\n\n").unwrap();
    let out = allatom()
        .args(["embed", "--glycans"])
        .arg(d.join("empty.txt"))
        .arg("--out")
        .arg(d.join("e.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to embed"));
    // A byte-order mark is not part of the first glycan.
    std::fs::write(d.join("bom.txt"), "\u{feff}Gal(b1-4)GlcNAc\n").unwrap();
    ok(allatom().args(["embed", "--glycans"]).arg(d.join("bom.txt")).arg("--out").arg(d.join("bom.npy")));
    // Input files are read up to a stated cap (here lowered to 100 bytes), also for FASTA.
    std::fs::write(d.join("big.txt"), "Gal(b1-4)GlcNAc\n".repeat(20)).unwrap();
    std::fs::write(d.join("big.fasta"), format!(">a\n{}\n", "M".repeat(200))).unwrap();
    for (flag, file) in [("--glycans", "big.txt"), ("--fasta", "big.fasta")] {
        let out = allatom()
            .args(["embed", flag])
            .arg(d.join(file))
            .arg("--out")
            .arg(d.join("big.npy"))
            .env("ALLATOM_MAX_INPUT_BYTES", "100")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("larger than 100 bytes") && err.contains("ALLATOM_MAX_INPUT_BYTES"), "{err}");
        assert!(!d.join("big.npy").exists());
    }
    // Names the molecule builder does not know are errors here too (the official featurisation
    // alone would map them onto its catch-all "Monosaccharide" unit and embed garbage).
    for bad in ["AAAA", "Glcxyz", "Foo(a1-4)Bar", "1234"] {
        let out = allatom().args(["embed", "--glycan", bad, "--out"]).arg(d.join("u.npy")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("at character"), "{bad}");
        assert!(!d.join("u.npy").exists());
    }
    // A file with one bad line: the others are embedded, the bad one reported, exit 1.
    std::fs::write(d.join("in.txt"), "Gal(b1-4)GlcNAc\nGal(b1-4\nMan(a1-3)Man\nFoo(a1-4)Bar\n").unwrap();
    let out = allatom()
        .args(["embed", "--model"])
        .arg(d.join("pkg"))
        .arg("--glycans")
        .arg(d.join("in.txt"))
        .arg("--out")
        .arg(d.join("y.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(read_npy(&d.join("y.npy")).0[0], 2);
    let meta = std::fs::read_to_string(d.join("y.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = meta.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines[1]["error"].as_str().unwrap().contains("at character"), "{meta}");
    assert_eq!(lines[2]["rows"], serde_json::json!([1, 2]));
    // Not a package; a package with wrong-shaped weights.
    let out = allatom()
        .args(["embed", "--glycan", "Gal", "--model"])
        .arg(d)
        .arg("--out")
        .arg(d.join("z.npy"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a model package"));
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("pkg/config.json")).unwrap()).unwrap();
    cfg["model"]["hidden_dims"] = serde_json::json!([16, 8]);
    std::fs::write(d.join("pkg/config.json"), cfg.to_string()).unwrap();
    let out = allatom()
        .args(["embed", "--glycan", "Gal", "--model"])
        .arg(d.join("pkg"))
        .arg("--out")
        .arg(d.join("z.npy"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("model.safetensors") && err.contains("shape"), "{err}");
    assert!(!d.join("z.npy").exists());
}

#[test]
fn glycans_of_a_structure_with_the_built_in_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let structures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures/biopython");
    let out = allatom()
        .args(["embed", "--level", "unit", "--structure"])
        .arg(structures.join("7DDO.pdb"))
        .arg("--out")
        .arg(d.join("s.safetensors"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: Vec<serde_json::Value> =
        std::fs::read_to_string(d.join("s.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(meta.len(), 4, "four N-glycans (one GlcNAc each) on ACE2 and the RBD");
    let mut sites: Vec<String> = meta.iter().map(|m| m["attached_to"].as_str().unwrap().to_string()).collect();
    sites.sort();
    assert_eq!(sites[0], "ASN 343 chain C (atom ND2)");
    assert!(meta.iter().all(|m| m["residues"].as_array().unwrap().len() == 1 && m["input"] == "GlcNAc(b1-"));
    assert_eq!(meta[0]["residues"][0], "A NAG 902");
    let t = candle_core::safetensors::load(d.join("s.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(t["embeddings"].dims(), &[4, 192], "3 × 64 concatenated, the default model");
    // The same glycan string embeds to the same row wherever it sits (inference mode).
    let rows = t["embeddings"].to_vec2::<f32>().unwrap();
    assert!(rows.iter().all(|r| r == &rows[0]));
    // A directory with unreadable files: the readable ones are embedded, the others reported.
    let out =
        allatom().args(["embed", "--structure"]).arg(&structures).arg("--out").arg(d.join("all.npy")).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let all = std::fs::read_to_string(d.join("all.jsonl")).unwrap();
    assert_eq!(all.lines().filter(|l| l.contains("\"rows\"")).count(), read_npy(&d.join("all.npy")).0[0]);
    assert!(all.lines().any(|l| l.contains("not a PDB or mmCIF structure")), "{all}");
}

/// A full disk mid-write (a file-size limit, `ulimit -f`, in a child shell): the writer is
/// killed while its temporary file grows, the previous `.npy` / `.jsonl` pair is left exactly as
/// it was, and the next successful run removes the dead writer's temporary file.
#[test]
fn a_full_disk_leaves_the_previous_pair_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let glycans = ["Neu5Ac(a2-3)Gal(b1-4)GlcNAc", "Fuc(a1-2)Gal(b1-3)GlcNAc", "Man(a1-3)[Man(a1-6)]Man"];
    let text: String = (0..40).map(|i| format!("{}\n", glycans[i % 3])).collect();
    std::fs::write(d.join("g.txt"), text).unwrap();
    let out = d.join("e.npy");
    let args = |c: &mut Command| {
        c.arg("embed").arg("--glycans").arg(d.join("g.txt")).arg("--out").arg(&out);
    };
    let mut first = allatom();
    args(&mut first);
    ok(&mut first);
    let (old_rows, old_meta) = (std::fs::read(&out).unwrap(), std::fs::read(d.join("e.jsonl")).unwrap());
    assert!(old_rows.len() > 32 * 1024, "the rows outgrow the limit below");
    // Temporary files beside the output and in the job's parts folder.
    let tmps = || -> Vec<String> {
        [d.to_path_buf(), d.join("e.npy.parts")]
            .iter()
            .filter_map(|p| std::fs::read_dir(p).ok())
            .flatten()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect()
    };
    // 32 KiB per file (64 blocks of 512 bytes): the rows cannot be written.
    let mut limited = Command::new("sh");
    limited.arg("-c").arg("ulimit -f 64; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_allatom"));
    args(&mut limited);
    assert!(!limited.output().unwrap().status.success());
    assert_eq!(std::fs::read(&out).unwrap(), old_rows);
    assert_eq!(std::fs::read(d.join("e.jsonl")).unwrap(), old_meta);
    assert_eq!(tmps().len(), 1, "the killed writer left its temporary file");
    let mut again = allatom();
    args(&mut again);
    ok(&mut again);
    assert!(tmps().is_empty(), "{:?}", tmps());
}

/// PreGlycanAA on true molecules (`"featurisation": "molecule"`): the run pretrains and
/// reports recovery accuracies, the exported package embeds, and sulfated / unsulfated (and
/// phosphorylated, O-acetylated) pairs get different vectors, as with the built-in
/// `preglycanaa-molecule-small` — which the official featurisation of the built-in default
/// cannot tell apart.
#[test]
fn a_molecule_pretrained_model_tells_modified_from_unmodified_glycans() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(GLYCANS).expect("run `cargo xtask data` first");
    let rows: Vec<&str> = text.lines().take(1).chain(text.lines().skip(1).step_by(60)).collect();
    // Two rows the molecule builder refuses are skipped and counted, not fatal.
    let csv = rows.join("\n") + "\nNotAGlycan(b1-4)GlcNAc,x\nGal(b1-4,x\n";
    std::fs::write(d.join("g.csv"), csv).unwrap();
    let cfg = serde_json::json!({"objective": "preglycanaa", "featurisation": "molecule",
        "data": {"glycans": "g.csv", "column": "glycan", "valid_fraction": 0.2},
        "model": {"num_unit": 0, "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16], "batch_norm": true,
                  "activation": "gelu", "concat_hidden": true, "readout_type": "mono"},
        "train": {"epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.003}, "seed": 4}});
    std::fs::write(d.join("pre.json"), cfg.to_string()).unwrap();
    ok(allatom().arg("pretrain").arg("--config").arg(d.join("pre.json")).arg("--run-dir").arg(d.join("run")));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["skipped_glycans"], 2, "{summary}");
    let hist = summary["history"].as_array().unwrap();
    for k in ["mono_accuracy", "atom_accuracy", "loss"] {
        let v = hist[1]["valid"][k].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{k}: {v}");
    }
    ok(allatom().args(["export", "--checkpoint"]).arg(d.join("run")).arg("--out").arg(d.join("pkg")));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("pkg/config.json")).unwrap()).unwrap();
    assert_eq!(config["featurisation"], "molecule", "{config}");
    let pairs = [
        ("GlcNAc6S(b1-3)Gal", "GlcNAc(b1-3)Gal"),
        ("Man6P(a1-2)Man", "Man(a1-2)Man"),
        ("Neu5,9Ac2(a2-6)Gal", "Neu5Ac(a2-6)Gal"),
    ];
    let glycans: Vec<&str> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    std::fs::write(d.join("in.txt"), glycans.join("\n") + "\n").unwrap();
    for (model, differ) in [
        (d.join("pkg").to_string_lossy().into_owned(), true),
        ("preglycanaa-molecule-small".into(), true),
        ("preglycanaa-small".into(), false),
    ] {
        ok(allatom()
            .args(["embed", "--model", &model, "--glycans"])
            .arg(d.join("in.txt"))
            .arg("--out")
            .arg(d.join("m.npy")));
        let (shape, v) = read_npy(&d.join("m.npy"));
        let w = shape[1];
        for (k, (a, b)) in pairs.iter().enumerate() {
            let (x, y) = (&v[2 * k * w..(2 * k + 1) * w], &v[(2 * k + 1) * w..(2 * k + 2) * w]);
            let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert_eq!(diff > 1e-4, differ, "{model}: {a} vs {b} differ by {diff}");
        }
    }
}

/// The rows of an `.npy` file (its bytes after the header).
fn npy_data(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    let n = u16::from_le_bytes([b[8], b[9]]) as usize;
    b[10 + n..].to_vec()
}

/// The metadata records without their output-relative numbering (`index`, `rows`).
fn records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path.with_extension("jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut r: serde_json::Value = serde_json::from_str(l).unwrap();
            r.as_object_mut().unwrap().remove("index");
            r.as_object_mut().unwrap().remove("rows");
            r
        })
        .collect()
}

/// `--shard K/N` takes whole chunks: the shards cover every input once, in order, and their
/// rows concatenated are byte for byte the unsharded output's (so is `--threads 1`); with
/// fewer chunks than shards a shard writes an empty output and succeeds; a shard outside
/// `0 ≤ K < N` or a zero chunk is a usage error.
#[test]
fn shards_concatenate_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(GLYCANS).expect("run `cargo xtask data` first");
    let rows: Vec<&str> = text.lines().take(1).chain(text.lines().skip(1).step_by(200)).collect();
    std::fs::write(d.join("g.csv"), rows.join("\n") + "\n").unwrap();
    let embed = |out: &str, extra: &[&str]| {
        let o = ok(allatom()
            .args(["embed", "--chunk", "24", "--glycans"])
            .arg(d.join("g.csv"))
            .arg("--out")
            .arg(d.join(out))
            .args(extra));
        assert!(!d.join(format!("{out}.parts")).exists(), "the parts folder is removed at the end");
        (npy_data(&d.join(out)), records(&d.join(out)), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (all, recs, log) = embed("all.npy", &[]);
    assert!(recs.len() > 100, "{}", recs.len());
    assert!(log.contains("embed: chunk 2/"), "one progress line per chunk: {log}");
    let (mut cat, mut recs_cat) = (Vec::new(), Vec::new());
    for k in 0..3 {
        let (v, r, _) = embed(&format!("s{k}.npy"), &["--shard", &format!("{k}/3")]);
        assert!(!v.is_empty());
        cat.extend(v);
        recs_cat.extend(r);
    }
    assert_eq!(recs_cat, recs, "the shards cover every input once, in order");
    assert!(cat == all, "the shards' rows are the whole run's, byte for byte");
    let (one, _, _) = embed("t1.npy", &["--threads", "1"]);
    assert!(one == all, "one thread gives the same bytes");
    // 5 chunks of 24 over 6 shards: one shard is empty.
    let (v, r, log) = embed("e.npy", &["--shard", "0/6"]);
    let (shape, _) = read_npy(&d.join("e.npy"));
    assert!(v.is_empty() && r.is_empty() && shape[0] == 0, "{shape:?}");
    assert!(log.contains("holds no chunks"), "{log}");
    for bad in [&["--shard", "3/3"][..], &["--shard", "1/0"], &["--shard", "x"], &["--chunk", "0"]] {
        let o = allatom()
            .args(["embed", "--glycans"])
            .arg(d.join("g.csv"))
            .arg("--out")
            .arg(d.join("bad.npy"))
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("K/N") || err.contains("--chunk"), "{err}");
    }
}

/// A job killed with SIGKILL mid-way leaves its finished chunks in `<out>.parts/` and no
/// output; rerun with `--skip-existing` it keeps them and ends with the output an
/// uninterrupted run writes, byte for byte (rows and metadata); run again it does nothing;
/// parts of a different job (another chunk size) are refused, not mixed in.
#[test]
fn a_killed_job_resumes_to_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(GLYCANS).expect("run `cargo xtask data` first");
    let rows: Vec<&str> = text.lines().take(3001).collect();
    std::fs::write(d.join("g.csv"), rows.join("\n") + "\n").unwrap();
    let job = |out: &str| {
        let mut c = allatom();
        c.args(["embed", "--chunk", "100", "--threads", "1", "--glycans"])
            .arg(d.join("g.csv"))
            .arg("--out")
            .arg(d.join(out));
        c
    };
    let status = |c: &mut Command| c.output().unwrap().status.code();
    let clean = status(&mut job("clean.npy"));
    assert!(matches!(clean, Some(0 | 1)), "{clean:?}");
    let parts = d.join("cut.npy.parts");
    let mut child = job("cut.npy").stderr(std::process::Stdio::null()).spawn().unwrap();
    let finished = |p: &Path| {
        std::fs::read_dir(p)
            .map_or(0, |r| r.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "jsonl")).count())
    };
    let t = std::time::Instant::now();
    while finished(&parts) < 2 {
        assert!(t.elapsed().as_secs() < 300, "no chunk finished");
        assert!(child.try_wait().unwrap().is_none(), "the job ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!d.join("cut.npy").exists() && !d.join("cut.jsonl").exists(), "no output from a killed job");
    let kept = finished(&parts);
    assert!((2..30).contains(&kept), "{kept} chunks finished before the kill");
    // A different job does not take these parts.
    let o = allatom()
        .args(["embed", "--chunk", "50", "--skip-existing", "--glycans"])
        .arg(d.join("g.csv"))
        .arg("--out")
        .arg(d.join("cut.npy"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different job"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = job("cut.npy").arg("--skip-existing").output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), clean, "{log}");
    assert!(log.contains("chunks kept from an earlier run"), "{log}");
    assert!(std::fs::read(d.join("cut.npy")).unwrap() == std::fs::read(d.join("clean.npy")).unwrap());
    assert_eq!(
        std::fs::read_to_string(d.join("cut.jsonl")).unwrap(),
        std::fs::read_to_string(d.join("clean.jsonl")).unwrap()
    );
    assert!(!parts.exists());
    let o = ok(job("cut.npy").arg("--skip-existing"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to do"));
}

/// Unit- and atom-level jobs in several chunks renumber what a chunk numbers locally: the
/// assembled file equals the one-chunk run's (input indices, rows, record spans), and a
/// `--files-from` list embeds the listed structure files, a missing one costing its own record.
#[test]
fn chunked_unit_and_atom_outputs_equal_the_one_chunk_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let glycans = [
        "Neu5Ac(a2-3)Gal(b1-4)GlcNAc",
        "Fuc(a1-2)Gal(b1-3)GalNAc",
        "Gal(b1-4)Glc",
        "Man(a1-3)[Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc",
        "GlcNAc",
    ];
    std::fs::write(d.join("in.txt"), glycans.join("\n") + "\n").unwrap();
    for level in ["unit", "atom"] {
        let run = |out: &str, chunk: &str| {
            ok(allatom()
                .args([
                    "embed",
                    "--model",
                    "preglycanaa-molecule-small",
                    "--level",
                    level,
                    "--chunk",
                    chunk,
                    "--glycans",
                ])
                .arg(d.join("in.txt"))
                .arg("--out")
                .arg(d.join(out)));
            (std::fs::read(d.join(out)).unwrap(), std::fs::read_to_string(d.join(out).with_extension("jsonl")).unwrap())
        };
        let whole = run(&format!("{level}1.safetensors"), "100");
        let chunked = run(&format!("{level}2.safetensors"), "2");
        // Rows depend on the chunk they are computed in (rounding), indices and records do not.
        assert_eq!(whole.1, chunked.1, "{level}: the chunked metadata differs");
        let load =
            |n: u8| candle_core::safetensors::load(d.join(format!("{level}{n}.safetensors")), &Device::Cpu).unwrap();
        let (w, c) = (load(1), load(2));
        assert_eq!(w.len(), c.len());
        for (name, t) in &w {
            if name == "embeddings" {
                let diff = (t - &c[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-4, "{level}: rows differ by {diff}");
            } else {
                assert_eq!(t.to_vec1::<u32>().unwrap(), c[name].to_vec1::<u32>().unwrap(), "{level}: {name}");
            }
        }
    }
    // Structure files from a list, one per chunk; a missing file is its own failed record.
    let structures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures/biopython");
    let list = format!(
        "# two structures and a missing file\n{}\n\n{}\n{}\n",
        structures.join("7DDO.pdb").display(),
        d.join("missing.pdb").display(),
        structures.join("7DDO.pdb").display()
    );
    std::fs::write(d.join("list.txt"), list).unwrap();
    let o = allatom()
        .args(["embed", "--chunk", "1", "--files-from"])
        .arg(d.join("list.txt"))
        .arg("--out")
        .arg(d.join("f.npy"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let meta: Vec<serde_json::Value> =
        std::fs::read_to_string(d.join("f.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed: Vec<&serde_json::Value> = meta.iter().filter(|r| r.get("error").is_some()).collect();
    assert_eq!(failed.len(), 1, "{meta:?}");
    assert!(failed[0]["structure"].as_str().unwrap().ends_with("missing.pdb"));
    let ok_rows: Vec<&serde_json::Value> = meta.iter().filter(|r| r.get("rows").is_some()).collect();
    assert!(ok_rows.len() >= 2 && ok_rows.len() % 2 == 0, "both copies of 7DDO embed alike: {meta:?}");
    let (shape, v) = read_npy(&d.join("f.npy"));
    let half = shape[0] / 2 * shape[1];
    assert!(v[..half] == v[half..], "the same file in two chunks gives the same rows");
}
