//! Attention graphs (`aa_encoder::attention`, `allatom::attention`) against the independent
//! reference `tests/reference/attention_graph_reference.py`: ESM per-layer attentions against
//! transformers' `output_attentions` on the tiny fixture model, products and metrics against
//! NumPy (the ESM sequences; deterministic matrices over 1UBQ's residues with the residue graph
//! derived in NumPy from the PDB text); Vabs-Net's and HSA-Net's tracks on real inputs.

use std::path::PathBuf;
use std::sync::Arc;

use aa_encoder::attention::{metrics, AttentionMatrix, AttentionNode, AttentionTrack, GraphMetrics, NodeGraph};
use aa_encoder::{Hsa, HsaConfig, Window};
use allatom::runs::trainable_encoder;
use allatom::Model;
use candle_core::{DType, Device};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture() -> Value {
    let p = root().join("crates/allatom/tests/fixtures/attention/attention_graphs.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ubq() -> PathBuf {
    let p = root().join("data/fetched/structures/pdbrust/examples/pdb_files/1UBQ.pdb");
    assert!(p.exists(), "{} missing: run `cargo xtask fetch-data`", p.display());
    p
}

fn matrix(v: &Value) -> AttentionMatrix {
    let rows = v.as_array().unwrap();
    let n = rows.len();
    let values = rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32)).collect();
    AttentionMatrix { n, values }
}

fn edges(v: &Value) -> Vec<(u32, u32)> {
    v.as_array().unwrap().iter().map(|e| (e[0].as_u64().unwrap() as u32, e[1].as_u64().unwrap() as u32)).collect()
}

fn close(a: &AttentionMatrix, b: &AttentionMatrix, tol: f32, what: &str) {
    assert_eq!(a.n, b.n, "{what}: size");
    let worst = a.values.iter().zip(&b.values).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= tol, "{what}: max abs difference {worst:e} > {tol:e}");
}

fn same_metrics(ours: &GraphMetrics, reference: &Value, tol: f64, what: &str) {
    let ours = json!(ours);
    for key in ["hop_mass", "further", "unreachable", "special", "neighbour_mean", "non_neighbour_mean", "ratio"] {
        let (a, b) = (&ours[key], &reference[key]);
        let flat = |v: &Value| -> Vec<Option<f64>> {
            match v {
                Value::Array(x) => x.iter().map(Value::as_f64).collect(),
                x => vec![x.as_f64()],
            }
        };
        let (fa, fb) = (flat(a), flat(b));
        assert_eq!(fa.len(), fb.len(), "{what}.{key}");
        for (x, y) in fa.iter().zip(&fb) {
            match (x, y) {
                (Some(x), Some(y)) => assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}.{key}: {x} vs {y}"),
                (None, None) => {}
                _ => panic!("{what}.{key}: {a} vs {b}"),
            }
        }
    }
    // The strongest entries are the same ones: precision, recall and F1 agree to rounding.
    assert_eq!(ours["edges"], reference["edges"], "{what}.edges");
    for key in ["precision", "recall", "f1"] {
        match (ours[key].as_f64(), reference[key].as_f64()) {
            (Some(x), Some(y)) => assert!((x - y).abs() < 1e-12, "{what}.{key}: {x} vs {y}"),
            (x, y) => assert_eq!(x, y, "{what}.{key}"),
        }
    }
}

#[test]
fn esm_attention_equals_transformers_and_its_graph_equals_numpy() {
    let fx = fixture();
    let max_hop = fx["max_hop"].as_u64().unwrap() as usize;
    let model = Model::from_dir(&root().join("crates/aa-codeswitch/tests/fixtures/hf-tiny")).unwrap();
    let cases = fx["hf_tiny"].as_array().unwrap();
    let windows: Vec<Window> = cases
        .iter()
        .map(|c| Window::whole(Arc::new(protein_aa::sequence_graph(c["sequence"].as_str().unwrap()).unwrap())))
        .collect();
    let refs: Vec<&Window> = windows.iter().collect();
    // Both sequences in one batch: the shorter one is padded.
    let tracks = model.encoder.attention(&model.encoder.featurize(&refs).unwrap()).unwrap().unwrap();
    assert_eq!(tracks.len(), 2);
    for (k, (case, t)) in cases.iter().zip(&tracks).enumerate() {
        assert_eq!((t.name.as_str(), t.window, t.chained), ("tokens", k, true));
        let graph = NodeGraph::of(&windows[k], &t.nodes);
        let in_graph: Vec<bool> = case["in_graph"].as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect();
        assert_eq!(graph.in_graph, in_graph, "case {k}: <cls> and <eos> are the special nodes");
        assert_eq!(graph.covalent, edges(&case["edges"]), "case {k}: peptide links between residue tokens");
        assert_eq!(graph.contacts, None, "a sequence has no coordinates");
        let layers = case["layers"].as_array().unwrap();
        assert_eq!(t.layers.len(), layers.len());
        for (l, (ours, theirs)) in t.layers.iter().zip(layers).enumerate() {
            close(ours, &matrix(theirs), 1e-5, &format!("case {k} layer {l}"));
            let m = metrics(ours, &graph.in_graph, &graph.covalent, max_hop);
            same_metrics(&m, &case["layer_metrics"][l], 1e-4, &format!("case {k} layer {l}"));
        }
        let p = t.product().unwrap();
        close(&p, &matrix(&case["product"]), 1e-5, &format!("case {k} product"));
        let m = metrics(&p, &graph.in_graph, &graph.covalent, max_hop);
        same_metrics(&m, &case["product_metrics"], 1e-4, &format!("case {k} product"));
    }
}

#[test]
fn residue_graph_products_and_metrics_of_1ubq_equal_numpy() {
    let fx = fixture();
    let max_hop = fx["max_hop"].as_u64().unwrap() as usize;
    let case = &fx["ubq_units"];
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let s = protein_aa::read_structure_file(&ubq(), &opts).unwrap();
    let w = protein_aa::esm_pretrain::residue_windows(Arc::new(s.graph), usize::MAX).remove(0);
    let n = case["residues"].as_u64().unwrap() as usize;
    assert_eq!(w.units.len(), n);
    let nodes: Vec<AttentionNode> = (0..n as u32).map(AttentionNode::Unit).collect();
    let graph = NodeGraph::of(&w, &nodes);
    assert_eq!(graph.covalent, edges(&case["edges"]["covalent"]), "peptide links");
    assert_eq!(graph.contacts.as_ref().unwrap(), &edges(&case["edges"]["contacts"]), "CA–CA contacts ≤ 8 Å");
    let sets = graph.edge_sets();
    assert_eq!(sets.iter().map(|s| s.0).collect::<Vec<_>>(), ["covalent", "contacts", "covalent+contacts"]);
    assert_eq!(sets[2].1, edges(&case["edges"]["covalent+contacts"]));
    let layers: Vec<AttentionMatrix> = case["layers"].as_array().unwrap().iter().map(matrix).collect();
    for (l, m) in layers.iter().enumerate() {
        for (name, e) in &sets {
            same_metrics(
                &metrics(m, &graph.in_graph, e, max_hop),
                &case["layer_metrics"][l][name],
                1e-6,
                &format!("layer {l} {name}"),
            );
        }
    }
    let t = AttentionTrack {
        name: "units".into(),
        window: 0,
        nodes,
        labels: (1..=layers.len()).map(|l| format!("layer {l}")).collect(),
        layers,
        chained: true,
    };
    let p = t.product().unwrap();
    close(&p, &matrix(&case["product"]), 1e-6, "product");
    let p = matrix(&case["product"]);
    for (name, e) in &sets {
        same_metrics(
            &metrics(&p, &graph.in_graph, e, max_hop),
            &case["product_metrics"][name],
            1e-6,
            &format!("product {name}"),
        );
    }
}

fn row_sums_are_one(m: &AttentionMatrix, rows: impl Iterator<Item = usize>, what: &str) {
    for i in rows {
        let s: f32 = m.row(i).iter().sum();
        assert!((s - 1.0).abs() < 1e-4, "{what}: row {i} sums to {s}");
    }
}

#[test]
fn vabs_tracks_on_1ubq_are_stochastic_and_bilevel_joins_the_tracks() {
    let cfg = json!({ "family": "vabs", "model": { "layers": 2, "dim": 16, "edge_dim": 8, "heads": 2, "ffn_multiplier": 2,
                      "kernels": 16, "atom_knn": 8, "unit_knn": 6 } });
    let enc = trainable_encoder(&cfg, 3).unwrap();
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let s = protein_aa::read_structure_file(&ubq(), &opts).unwrap();
    let w = protein_aa::esm_pretrain::residue_windows(Arc::new(s.graph), usize::MAX).remove(0);
    let tracks = enc.encoder.attention(&enc.encoder.featurize(&[&w]).unwrap()).unwrap().unwrap();
    let names: Vec<&str> = tracks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["bilevel", "atoms", "units"]);
    let (bilevel, atoms, units) = (&tracks[0], &tracks[1], &tracks[2]);
    let heavy = w.units.iter().map(|&u| w.graph.atoms.iter().filter(|a| a.unit == u).count()).sum::<usize>();
    // Every heavy atom of the chain plus the virtual node; every residue plus the virtual unit.
    assert_eq!(atoms.nodes.len(), heavy + 1);
    assert_eq!(units.nodes.len(), w.units.len() + 1);
    assert_eq!(atoms.nodes.iter().filter(|n| matches!(n, AttentionNode::Special(_))).count(), 1);
    for t in &tracks {
        assert_eq!(t.layers.len(), 2);
        for (l, m) in t.layers.iter().enumerate() {
            row_sums_are_one(m, 0..m.n, &format!("{} layer {l}", t.name));
        }
        row_sums_are_one(&t.product().unwrap(), 0..t.nodes.len(), &format!("{} product", t.name));
    }
    // Atom-track attention lives on the kNN edges only: at most atom_knn + bonds per row.
    let graph = NodeGraph::of(&w, &atoms.nodes);
    assert!(graph.contacts.as_ref().is_some_and(|c| !c.is_empty()) && !graph.covalent.is_empty());
    let nonzero = atoms.layers[0].values.iter().filter(|&&x| x > 0.0).count();
    assert!(nonzero < atoms.nodes.len() * 16, "{nonzero} entries: the atom track is sparse");
    // Bilevel: rows of non-anchor atoms are the atom track's; anchor rows mix anchors' rows.
    let ca: Vec<usize> = atoms
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n, AttentionNode::Atom(a) if w.graph.atoms[*a as usize].name == "CA"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ca.len(), w.units.len());
    let (a0, b0) = (&atoms.layers[0], &bilevel.layers[0]);
    let other = (0..a0.n).find(|i| !ca.contains(i) && !matches!(atoms.nodes[*i], AttentionNode::Special(_))).unwrap();
    assert_eq!(a0.row(other), b0.row(other));
    assert_ne!(a0.row(ca[0]), b0.row(ca[0]));
    // The report: metrics for every track and edge set, heat maps that rasterise.
    let r = allatom::attention::report(enc.encoder.as_ref(), None, &w, 3).unwrap();
    let tracks = r.json["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 3);
    for t in tracks {
        let m = &t["product"]["metrics"];
        for set in ["covalent", "contacts", "covalent+contacts"] {
            let hop = m[set]["hop_mass"].as_array().unwrap();
            let total: f64 = hop.iter().map(|x| x.as_f64().unwrap()).sum::<f64>()
                + ["further", "unreachable", "special"].iter().map(|k| m[set][k].as_f64().unwrap()).sum::<f64>();
            assert!((total - 1.0).abs() < 1e-4, "{} {set}: mass sums to {total}", t["name"]);
        }
    }
    assert_eq!(r.heatmaps.len(), 9, "first layer, last layer and product of each track");
    let png = r.png().unwrap();
    assert!(png.starts_with(b"\x89PNG"));
}

#[test]
fn hsa_readout_attention_is_a_unit_graph_per_layer_and_glycanaa_alone_does_not_attend() {
    let model = Model::builtin().unwrap();
    let w = model
        .glycan_window(
            "Neu5Ac(a2-3)Gal(b1-4)GlcNAc(b1-2)Man(a1-3)[Gal(b1-4)GlcNAc(b1-2)Man(a1-6)]Man(b1-4)GlcNAc(b1-4)GlcNAc",
        )
        .unwrap();
    let err = allatom::attention::report(model.encoder.as_ref(), None, &w, 3).err().unwrap().to_string();
    assert!(err.contains("glycanaa does not attend"), "{err}");
    let store = aa_pretrain::init::SeededVarMap::new(5);
    let cfg = HsaConfig { dim: 16, tokens: 4, heads: 2, motifs: 2, experts: 2, ..HsaConfig::default() };
    let hsa = Hsa::new(
        store.var_builder(DType::F32, &Device::Cpu),
        &model.encoder.layer_dims(),
        model.encoder.unit_dim(),
        cfg,
    )
    .unwrap();
    let r = allatom::attention::report(model.encoder.as_ref(), Some(&hsa), &w, 3).unwrap();
    let tracks = r.json["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 1);
    let t = &tracks[0];
    assert_eq!(t["name"], "hsa");
    assert_eq!(t["chained"], false);
    assert!(t["product"].is_null(), "HSA layers read different encoder layers: no product");
    assert_eq!(t["nodes"].as_array().unwrap().len(), w.units.len());
    let layers = t["layers"].as_array().unwrap();
    assert_eq!(layers.len(), model.encoder.layer_dims().len());
    for l in layers {
        let label = l["label"].as_str().unwrap();
        assert!(label.contains("gate: "), "{label}");
        // Glycosidic links are the covalent edges between units.
        assert_eq!(l["metrics"]["covalent"]["edges"], w.units.len() - 1);
    }
    assert_eq!(r.heatmaps.len(), layers.len());
    // Rows of the co-attention graph sum to 1.
    let out = model.encoder.encode(&[&w], false).unwrap();
    let tracks = aa_encoder::Readout::attention(&hsa, &out).unwrap().unwrap();
    for m in &tracks[0].layers {
        row_sums_are_one(m, 0..m.n, "hsa");
    }
}
