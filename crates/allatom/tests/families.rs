//! Every encoder family through the same generic task code on real data: graph-level glycan
//! tasks (glycowork's glycosylation type), per-unit structure tasks (DSSP of mdanalysistests'
//! structures, monosaccharide mobility of glycontact's lectin-bound glycans), impossible
//! pairings refused before data is read, and one package format that every family writes and
//! loads back with the same numbers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aa_encoder::tasks::{GraphItem, GraphTask, LabelledWindow, UnitTask};
use aa_encoder::{check_pairing, Encoder, Window};
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use allatom::families::{package_config, split_config};
use allatom::runs::{trainable_encoder, TrainableEncoder};
use allatom::Model;
use candle_core::{DType, Device, Tensor, Var};
use glycan_aa::compat::CompatVocab;
use protein_aa::tasks::{dssp_labels, labelled_windows, sugar_mobility_labels, whole_structure_window};
use protein_aa::{read_structure_file, StructureOptions};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fetched(rel: &str) -> PathBuf {
    let p = root().join("data/fetched").join(rel);
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

fn vocab() -> CompatVocab {
    let glycans =
        allatom::inputs::read_glycan_file(&root().join("../shared/data/glycans/glycan_pretrain.csv"), None).unwrap();
    CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &glycans, 84)
}

fn tiny_glycanaa(variant: &str, batch_norm: bool) -> Value {
    json!({ "num_unit": 0, "num_relation": 0, "input_dim": 16, "hidden_dims": [16, 16], "batch_norm": batch_norm,
            "activation": "gelu", "concat_hidden": true, "readout_type": "mono", "variant": variant })
}

fn tiny_vabs() -> Value {
    json!({ "layers": 2, "dim": 16, "edge_dim": 8, "heads": 2, "ffn_multiplier": 2, "kernels": 16, "atom_knn": 8, "unit_knn": 6 })
}

fn tiny_official() -> Value {
    json!({ "layers": 2, "dim": 16, "edge_dim": 8, "heads": 2, "ffn_dim": 32, "kernels": 16, "knn_res": 6, "knn_atom": 8 })
}

fn tiny_esm(atoms: bool) -> Value {
    serde_json::to_value(aa_codeswitch::EsmConfig::tiny(atoms)).unwrap()
}

/// Names without a gradient by construction: GlycanAA's unit-convolution biases, which
/// training-mode batch norm removes right after them; ESM's unused heads (LM, contact,
/// distance) and, on inputs without coordinates, its pair bias.
fn gradient_free(family: &str, name: &str, coordinates: bool) -> bool {
    match family {
        "glycanaa" | "rgcn" => {
            (name.starts_with("mono_layers.") || name.starts_with("hidden_layers."))
                && name.ends_with(".bias")
                && !name.contains("batch_norm")
        }
        "esm" => {
            name.starts_with("lm_head.") || name.starts_with("dist_head.") || (!coordinates && name.starts_with("gbf"))
        }
        _ => false,
    }
}

/// Every optimised variable gets a non-zero gradient (but those [`gradient_free`] names), and
/// `steps` AdamW steps on `items` lower the training loss of the whole set.
fn check_training<O: Objective>(
    obj: &O,
    vars: &[(String, Var)],
    items: &[O::Item],
    family: &str,
    coordinates: bool,
    steps: usize,
) {
    let refs: Vec<&O::Item> = items.iter().collect();
    let mut rng = Rng::new(3);
    let loss = |rng: &mut Rng| obj.loss(obj.prepare(&refs, rng).unwrap()).unwrap().0;
    let l0 = loss(&mut rng);
    let grads = l0.backward().unwrap();
    let mut params = Vec::new();
    for (name, v) in vars.iter().filter(|(k, _)| !k.contains("running_")) {
        if gradient_free(family, name, coordinates) {
            continue;
        }
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{family}: no gradient for {name}"));
        let n = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(n > 0.0, "{family}: zero gradient for {name}");
        params.push(v.clone());
    }
    let mut opt = candle_nn::AdamW::new_lr(params, 3e-3).unwrap();
    use candle_nn::Optimizer;
    for _ in 0..steps {
        opt.backward_step(&loss(&mut rng)).unwrap();
    }
    let (before, after) = (l0.to_scalar::<f32>().unwrap(), loss(&mut rng).to_scalar::<f32>().unwrap());
    assert!(after < before, "{family}: training loss {before} -> {after}");
}

/// The output contract: one unit row per window unit, every layer, atoms where the family has them.
fn check_output(enc: &dyn Encoder, windows: &[&Window], layers: usize, has_atoms: bool) {
    let out = enc.encode(windows, false).unwrap();
    let units: usize = windows.iter().map(|w| w.units.len()).sum();
    assert_eq!(out.units.dims(), &[units, enc.unit_dim()], "{}", enc.family());
    assert_eq!(out.unit_window.len(), units);
    assert_eq!(out.layers.len(), layers, "{}", enc.family());
    for l in &out.layers {
        assert_eq!(l.units.dim(0).unwrap(), units);
        assert_eq!(l.atoms.is_some(), has_atoms, "{}", enc.family());
    }
    assert_eq!(out.atoms.is_some(), has_atoms, "{}", enc.family());
    if let Some(a) = &out.atoms {
        assert_eq!(a.states.dim(0).unwrap(), a.unit.len());
        assert!(a.unit.iter().all(|&u| (u as usize) < units));
    }
    let g = enc.readout().forward(&out, false).unwrap();
    assert_eq!(g.dim(0).unwrap(), windows.len());
}

fn glycan_items(enc: &TrainableEncoder, n: usize) -> Vec<GraphItem> {
    let task = glycan_aa::tasks::load(&root().join("data/tasks"), "glycan_type").unwrap();
    let graphs = enc.family.glycan_graphs(&split_config(&enc.config).unwrap().1).unwrap();
    // Both classes of the first rows that build, alternating, so a few steps can learn.
    let mut by_class: Vec<Vec<GraphItem>> = vec![Vec::new(); task.targets[0].classes.len()];
    for r in task.rows.iter().filter(|r| r.split == glycan_aa::tasks::Split::Train) {
        if let Ok(w) = graphs.window(&r.glycan) {
            let c = r.labels[0][0];
            if by_class[c].len() < n / 2 {
                by_class[c].push(GraphItem { window: w, labels: r.labels.clone() });
            }
        }
    }
    by_class.into_iter().flatten().collect()
}

#[test]
fn graph_task_for_every_glycan_encoder() {
    let v = serde_json::to_value(vocab()).unwrap();
    let encoders = [
        (json!({ "family": "glycanaa", "model": tiny_glycanaa("hierarchical", true), "vocab": v }), 2, true),
        (
            json!({ "family": "glycanaa", "featurisation": "molecule", "model": tiny_glycanaa("hierarchical", true) }),
            2,
            true,
        ),
        (json!({ "family": "rgcn", "model": tiny_glycanaa("flat", false), "vocab": v }), 2, false),
        (json!({ "family": "esm", "model": tiny_esm(true) }), 2, true),
    ];
    for (config, layers, atoms) in encoders {
        let enc = trainable_encoder(&config, 0).unwrap();
        let family = enc.family.name();
        let items = glycan_items(&enc, 24);
        assert!(items.len() >= 20, "{family}: {} glycans", items.len());
        let windows: Vec<&Window> = items.iter().take(4).map(|i| &i.window).collect();
        check_output(enc.encoder.as_ref(), &windows, layers, atoms);
        let targets = glycan_aa::tasks::load(&root().join("data/tasks"), "glycan_type").unwrap().targets;
        let readout = enc.encoder.readout();
        let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
        let task = GraphTask::new(enc.encoder, readout, vb, targets).unwrap();
        check_training(&task, &enc.store.all(), &items, family, false, 8);
        let m = task.evaluate(&items).unwrap();
        assert!((0.0..=1.0).contains(&m["accuracy"]) && m.contains_key("macro_f1"), "{family}: {m:?}");
    }
}

#[test]
fn impossible_pairings_are_refused_before_any_data_is_read() {
    let glycans = aa_encoder::DataTraits {
        name: "glycan_type".into(),
        coordinates: false,
        unit_kinds: vec![aa_graph::UnitKind::Monosaccharide],
    };
    let vabs = trainable_encoder(&json!({ "family": "vabs", "model": tiny_vabs() }), 0).unwrap();
    let e = check_pairing(vabs.encoder.as_ref(), &glycans).unwrap_err();
    assert!(e.contains("vabs needs 3D coordinates") && e.contains("glycan_type"), "{e}");
    let esm2 = trainable_encoder(&json!({ "family": "esm", "model": tiny_esm(false) }), 0).unwrap();
    let e = check_pairing(esm2.encoder.as_ref(), &glycans).unwrap_err();
    assert!(e.contains("amino-acid residues only"), "{e}");
    // The official GlycanAA featurisation types units by glycoword: no proteins.
    let official = trainable_encoder(
        &json!({ "family": "glycanaa", "model": tiny_glycanaa("hierarchical", true), "vocab": vocab() }),
        0,
    )
    .unwrap();
    let (_, dssp) = allatom::runs::unit_task_kind("dssp").unwrap();
    let e = check_pairing(official.encoder.as_ref(), &dssp).unwrap_err();
    assert!(e.contains("reads monosaccharides only, not amino-acid residues"), "{e}");
    // Through a run: the task directory does not exist, yet the error is the pairing's.
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({
        "objective": "graph_task", "task": { "dir": "no/such/tasks", "name": "glycan_type" },
        "encoder": { "family": "vabs", "model": tiny_vabs() },
        "train": { "epochs": 1, "batch_size": 4, "optimizer": { "lr": 1e-3 } }
    });
    let path = dir.path().join("run.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let run = allatom::runs::RunConfig::read(&path).unwrap();
    let e = allatom::runs::run(&path, run, &dir.path().join("run"), &Default::default()).unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains("needs 3D coordinates") && !text.contains("no/such"), "{text}");
    assert!(!dir.path().join("run").exists(), "nothing written");
}

fn dssp_windows() -> Vec<LabelledWindow> {
    let dir = fetched("structures/mdanalysistests/dssp");
    let g = read_structure_file(&dir.join("1ahsA.pdb.gz"), &StructureOptions::default()).unwrap().graph;
    let labels = dssp_labels(&dir.join("1ahsA.pdb.dssp"), &g).unwrap();
    labelled_windows(Arc::new(g), &labels, 64)
}

fn mobility_windows() -> Vec<LabelledWindow> {
    ["0100_00.pdb", "0100_01.pdb"]
        .iter()
        .map(|f| {
            let s =
                read_structure_file(&fetched("glycontact/unilectin").join(f), &StructureOptions::default()).unwrap();
            let labels = sugar_mobility_labels(&s).unwrap();
            whole_structure_window(Arc::new(s.graph), &labels)
        })
        .collect()
}

fn unit_task(config: Value, items: &[LabelledWindow], classes: usize, layers: usize, atoms: bool) {
    let enc = trainable_encoder(&config, 0).unwrap();
    let family = enc.family.name();
    let windows: Vec<&Window> = items.iter().map(|i| &i.window).collect();
    check_output(enc.encoder.as_ref(), &windows, layers, atoms);
    let vars = || enc.store.all();
    let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
    let store = enc.store.clone();
    let task = UnitTask::new(enc.encoder, vb, classes).unwrap();
    check_training(&task, &vars(), items, family, true, 12);
    let m = task.evaluate(items).unwrap();
    assert!((0.0..=1.0).contains(&m["accuracy"]), "{family}: {m:?}");
    drop(store);
}

#[test]
fn unit_task_for_every_encoder_on_protein_secondary_structure() {
    let items = dssp_windows();
    assert!(items.len() >= 2);
    let molecule =
        |variant: &str, bn: bool| json!({ "featurisation": "molecule", "model": tiny_glycanaa(variant, bn) });
    let mut knn = molecule("hierarchical", true);
    knn["model"]["unit_knn"] = json!(8);
    for (mut config, layers, atoms) in [
        (molecule("hierarchical", true), 2, true),
        (knn, 2, true),
        (molecule("flat", false), 2, false),
        (json!({ "model": tiny_vabs() }), 2, true),
        (json!({ "official": tiny_official() }), 2, true),
        (json!({ "model": tiny_esm(false) }), 2, false),
        (json!({ "model": tiny_esm(true), "unzip": "all" }), 2, true),
    ] {
        let family = if config.get("featurisation").is_some() {
            if config["model"]["variant"] == "flat" {
                "rgcn"
            } else {
                "glycanaa"
            }
        } else if config.get("official").is_some() || config["model"].get("layers").is_some() {
            "vabs"
        } else {
            "esm"
        };
        config["family"] = json!(family);
        unit_task(config, &items, 3, layers, atoms);
    }
}

#[test]
fn unit_task_for_every_encoder_on_lectin_bound_glycans() {
    let items = mobility_windows();
    for config in [
        json!({ "family": "vabs", "model": tiny_vabs() }),
        json!({ "family": "glycanaa", "featurisation": "molecule", "model": tiny_glycanaa("hierarchical", true) }),
        json!({ "family": "esm", "model": tiny_esm(true) }),
    ] {
        unit_task(config, &items, 2, 2, true);
    }
    // ESM-2 has no atom tokens: the monosaccharides cannot be written.
    let esm2 = trainable_encoder(&json!({ "family": "esm", "model": tiny_esm(false) }), 0).unwrap();
    let (_, traits) = allatom::runs::unit_task_kind("glycan_mobility").unwrap();
    assert!(check_pairing(esm2.encoder.as_ref(), &traits).is_err());
}

#[test]
fn a_context_readout_joins_each_unit_row_with_its_window_vector() {
    let items = &mobility_windows();
    let cfg =
        json!({ "family": "glycanaa", "featurisation": "molecule", "model": tiny_glycanaa("hierarchical", true) });
    let enc = trainable_encoder(&cfg, 4).unwrap();
    let d = enc.encoder.unit_dim();
    let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
    let task = UnitTask::with_context(enc.encoder, Box::new(aa_encoder::MeanMax::default()), vb, 2).unwrap();
    let (probs, labels) = task.predict(items).unwrap();
    // By hand: each labelled unit's row ‖ mean ‖ max of its window, through the same head.
    let (mut manual, mut k) = (Vec::new(), 0);
    for chunk in items.chunks(8) {
        let windows: Vec<&Window> = chunk.iter().map(|i| &i.window).collect();
        let out = task.encoder.encode(&windows, false).unwrap();
        let graph = aa_encoder::Readout::forward(&aa_encoder::MeanMax::default(), &out, false).unwrap();
        assert_eq!(graph.dim(1).unwrap(), 2 * d);
        let mut base = 0;
        for (w, it) in chunk.iter().enumerate() {
            for (u, l) in it.labels.iter().enumerate() {
                if l.is_some() {
                    let row = Tensor::cat(&[out.units.get(base + u).unwrap(), graph.get(w).unwrap()], 0).unwrap();
                    let logits = task.head.forward(&row.unsqueeze(0).unwrap(), false).unwrap();
                    manual.push(candle_nn::ops::softmax(&logits, 1).unwrap().get(0).unwrap().to_vec1::<f32>().unwrap());
                    k += 1;
                }
            }
            base += it.window.units.len();
        }
    }
    assert_eq!(k, labels.len());
    assert!(k >= 4, "{k} labelled monosaccharides");
    for (a, b) in probs.iter().zip(&manual) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5), "{a:?} vs {b:?}");
    }
}

/// Writes `enc` as a package the way `allatom export` does.
fn write(enc: &TrainableEncoder, dir: &Path) {
    let (family, part) = split_config(&enc.config).unwrap();
    let tensors = enc.store.all().into_iter().map(|(k, v)| (k, v.as_tensor().detach())).collect();
    let mut extra = Vec::new();
    if family.name() == "esm" {
        extra.push((aa_codeswitch::TOKENIZER_FILE, aa_codeswitch::Alphabet::esm_aa().tokenizer_json().into_bytes()));
    }
    allatom::write_package(dir, &package_config(family, &part), &tensors, DType::F32, None, &extra).unwrap();
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn every_family_writes_and_loads_one_package_format() {
    let dir = tempfile::tempdir().unwrap();
    let items = dssp_windows();
    let windows: Vec<&Window> = items.iter().take(2).map(|i| &i.window).collect();
    let v = serde_json::to_value(vocab()).unwrap();
    for (i, config) in [
        json!({ "family": "glycanaa", "featurisation": "molecule", "model": tiny_glycanaa("hierarchical", true) }),
        json!({ "family": "rgcn", "model": tiny_glycanaa("flat", false), "vocab": v }),
        json!({ "family": "vabs", "model": tiny_vabs() }),
        json!({ "family": "esm", "model": tiny_esm(true), "unzip": "all" }),
    ]
    .into_iter()
    .enumerate()
    {
        let enc = trainable_encoder(&config, 7).unwrap();
        let family = enc.family.name();
        let pkg = dir.path().join(format!("pkg{i}"));
        write(&enc, &pkg);
        let model = Model::from_dir(&pkg).unwrap();
        assert_eq!(model.encoder.family(), family);
        // Glycan input for the official-featurisation RGCN, structure windows for the others.
        let glycan;
        let ws: Vec<&Window> = if family == "rgcn" {
            glycan = model.glycan_window("Neu5Ac(a2-3)Gal(b1-4)GlcNAc").unwrap();
            vec![&glycan]
        } else {
            windows.clone()
        };
        let (a, b) = (enc.encoder.encode(&ws, false).unwrap(), model.encoder.encode(&ws, false).unwrap());
        assert!(max_diff(&a.units, &b.units) < 1e-6, "{family}");
    }
    // Weights that would embed NaN are refused with the tensor's name.
    let enc = trainable_encoder(
        &json!({ "family": "glycanaa", "featurisation": "molecule", "model": tiny_glycanaa("hierarchical", true) }),
        3,
    )
    .unwrap();
    let (family, part) = split_config(&enc.config).unwrap();
    for (name, value) in [("embedding.weight", f32::NAN), ("atom_layers.0.batch_norm.running_var", -1.0)] {
        let mut tensors: std::collections::HashMap<String, Tensor> =
            enc.store.all().into_iter().map(|(k, v)| (k, v.as_tensor().detach())).collect();
        let t = &tensors[name];
        let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[0] = value;
        tensors.insert(name.to_string(), Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap());
        let pkg = dir.path().join(format!("bad-{value}"));
        allatom::write_package(&pkg, &package_config(family, &part), &tensors, DType::F32, None, &[]).unwrap();
        let e = format!("{:#}", Model::from_dir(&pkg).err().expect("refused"));
        assert!(e.contains(name), "{e}");
    }
    // Integer weights are refused, not cast (integer buffers such as num_batches_tracked pass).
    let mut tensors: std::collections::HashMap<String, Tensor> =
        enc.store.all().into_iter().map(|(k, v)| (k, v.as_tensor().detach())).collect();
    let t = tensors["embedding.weight"].to_dtype(DType::I64).unwrap();
    tensors.insert("embedding.weight".into(), t);
    tensors.insert("atom_layers.0.batch_norm.num_batches_tracked".into(), Tensor::new(&[3i64], &Device::Cpu).unwrap());
    let pkg = dir.path().join("bad-int");
    allatom::write_package(&pkg, &package_config(family, &part), &tensors, DType::F32, None, &[]).unwrap();
    let e = format!("{:#}", Model::from_dir(&pkg).err().expect("refused"));
    assert!(e.contains("embedding.weight is I64") && e.contains("floating point"), "{e}");
    // Writing over a directory that is not a package is refused, and nothing in it is touched.
    let precious = dir.path().join("notes");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("thesis.txt"), "keep me").unwrap();
    let enc = trainable_encoder(&json!({ "family": "vabs", "model": tiny_vabs() }), 0).unwrap();
    let (family, part) = split_config(&enc.config).unwrap();
    let e =
        allatom::write_package(&precious, &package_config(family, &part), &Default::default(), DType::F32, None, &[])
            .unwrap_err();
    assert!(e.to_string().contains("not a model package"), "{e}");
    assert_eq!(std::fs::read_to_string(precious.join("thesis.txt")).unwrap(), "keep me");
}

#[test]
fn vabs_with_language_model_features_trains_through_the_unit_task() {
    let dir = tempfile::tempdir().unwrap();
    let lm = trainable_encoder(&json!({ "family": "esm", "model": tiny_esm(true) }), 1).unwrap();
    write(&lm, &dir.path().join("lm"));
    let lm_path = dir.path().join("lm").display().to_string();
    let config = json!({ "family": "vabs", "model": tiny_vabs(), "lm": lm_path });
    let enc = trainable_encoder(&config, 0).unwrap();
    assert_eq!(enc.config["model"]["lm_dim"], json!(32));
    assert!(enc.names.iter().any(|k| k.starts_with("esm_feat_encoder.")));
    let items = dssp_windows();
    let vb = enc.store.var_builder(DType::F32, &Device::Cpu);
    let vars = enc.store.all();
    let task = UnitTask::new(enc.encoder, vb, 3).unwrap();
    check_training(&task, &vars, &items, "vabs", true, 8);
}

#[test]
fn an_official_vabs_checkpoint_converts_and_encodes_protein_windows() {
    // The unicore checkpoint the official-code reference wrote (2 layers, width 32, 24-wide ESM
    // rows), converted with a 24-wide ESM package as its language model.
    let dir = tempfile::tempdir().unwrap();
    let mut esm = aa_codeswitch::EsmConfig::tiny(true);
    esm.hidden_size = 24;
    esm.intermediate_size = 48;
    let lm = trainable_encoder(&json!({ "family": "esm", "model": esm }), 1).unwrap();
    write(&lm, &dir.path().join("lm"));
    let ckpt = root().join("crates/aa-sparse-attn/tests/fixtures/vabs_official/checkpoint.pt");
    let out = dir.path().join("vabs");
    let lm_path = dir.path().join("lm").display().to_string();
    let c = allatom::export::convert_vabs(&ckpt, &out, None, Some(&lm_path)).unwrap();
    assert_eq!((c.config.layers, c.config.dim, c.config.heads, c.config.ffn_dim), (2, 32, 4, 64));
    assert_eq!((c.config.knn_res, c.config.knn_atom, c.config.lm_dim, c.config.pocket_head), (30, 30, Some(24), true));
    let model = Model::from_dir(&out).unwrap();
    assert_eq!(model.family().name(), "vabs");
    // Every stored tensor is the checkpoint's.
    let st = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    let orig: std::collections::HashMap<String, Tensor> =
        candle_core::pickle::read_all_with_key(&ckpt, Some("model")).unwrap().into_iter().collect();
    assert_eq!(st.len(), orig.len());
    for (k, v) in &st {
        assert_eq!(max_diff(v, &orig[k]), 0.0, "{k}");
    }
    // DSSP windows of a real structure: one row per residue, atoms and every layer.
    let items = dssp_windows();
    let windows: Vec<&Window> = items.iter().take(2).map(|i| &i.window).collect();
    check_output(model.encoder.as_ref(), &windows, 2, true);
    // A glycan window is refused by the official mode (amino-acid residues only).
    let traits = aa_encoder::DataTraits {
        name: "glycan_mobility".into(),
        coordinates: true,
        unit_kinds: vec![aa_graph::UnitKind::Monosaccharide],
    };
    let e = check_pairing(model.encoder.as_ref(), &traits).unwrap_err();
    assert!(e.contains("amino-acid residues only"), "{e}");
    // A bare fp16 state dict (no args): sizes from the tensors, the head count must be given,
    // tensors widened to f32.
    let bare = root().join("crates/aa-sparse-attn/tests/fixtures/vabs_official/state_dict_fp16.pt");
    let e = format!("{:#}", allatom::export::convert_vabs(&bare, &dir.path().join("bare"), None, None).unwrap_err());
    assert!(e.contains("give --heads"), "{e}");
    let c = allatom::export::convert_vabs(&bare, &dir.path().join("bare"), Some(4), None).unwrap();
    assert_eq!((c.config.layers, c.config.dim, c.config.heads, c.config.knn_res), (2, 32, 4, 30));
    let half = candle_core::safetensors::load(dir.path().join("bare/model.safetensors"), &Device::Cpu).unwrap();
    let w = "molecule_encoder.layers.1.aa_attn.linear_q.weight";
    assert_eq!(half[w].dtype(), DType::F32);
    let rounded = orig[w].to_dtype(DType::F16).unwrap().to_dtype(DType::F32).unwrap();
    assert_eq!(max_diff(&half[w], &rounded), 0.0);
    // Without its language model the package says what it needs.
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("lm");
    std::fs::write(out.join("config.json"), config.to_string()).unwrap();
    let e = format!("{:#}", Model::from_dir(&out).err().unwrap());
    assert!(e.contains("24-wide language-model features"), "{e}");
}
