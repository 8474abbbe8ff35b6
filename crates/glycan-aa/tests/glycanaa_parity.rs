//! GlycanAA against the independent NumPy reference (`tests/reference/glycanaa_reference.py`)
//! on identical random weights and 100 real glycans, in eval and train mode: node states and
//! glycan embeddings within 1e-4 (max abs). Also: gradients reach every parameter.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use glycan_aa::compat::{CompatGraph, CompatVocab};
use glycan_aa::model::{GlycanAA, GlycanAABatch, GlycanAAConfig};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn inputs() -> (GlycanAAConfig, CompatVocab, Vec<CompatGraph>) {
    let cfg: GlycanAAConfig =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/glycanaa_config.json")).unwrap()).unwrap();
    let batch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/glycanaa_batch.json")).unwrap()).unwrap();
    let vocab: CompatVocab = serde_json::from_value(batch["vocab"].clone()).unwrap();
    let graphs = batch["glycans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let gr = &g["graph"];
            // The stored graph must still be what our featurisation gives for the glycan.
            let again = glycan_aa::compat::featurize(g["iupac"].as_str().unwrap(), &vocab).unwrap();
            let node_type: Vec<u32> = serde_json::from_value(gr["node_type"].clone()).unwrap();
            assert_eq!(again.node_type, node_type);
            again
        })
        .collect();
    (cfg, vocab, graphs)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn matches_numpy_reference_in_eval_and_train_mode() {
    let (cfg, vocab, graphs) = inputs();
    assert_eq!(graphs.len(), 100);
    let dev = Device::Cpu;
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[format!("{DIR}/glycanaa_weights.safetensors")], DType::F32, &dev).unwrap()
    };
    let expected = candle_core::safetensors::load(format!("{DIR}/glycanaa_expected.safetensors"), &dev).unwrap();
    let batch = GlycanAABatch::from_compat(&graphs, &vocab, &dev).unwrap();
    for (mode, train) in [("eval", false), ("train", true)] {
        // A fresh model per mode, so the train pass's running-stat update cannot leak.
        let model = GlycanAA::new(vb.clone(), &cfg).unwrap();
        let out = model.forward(&batch, train).unwrap();
        let in_input_order = out.all_node_feature.index_select(&batch.order, 0).unwrap();
        let nodes = max_abs_diff(&in_input_order, &expected[&format!("{mode}.all_node_feature")]);
        let graphs_d = max_abs_diff(&out.graph_feature, &expected[&format!("{mode}.graph_feature")]);
        eprintln!("{mode}: max |Δ| nodes {nodes:.2e}, glycans {graphs_d:.2e}");
        assert!(nodes <= 1e-4, "{mode} node states differ by {nodes}");
        assert!(graphs_d <= 1e-4, "{mode} glycan embeddings differ by {graphs_d}");
    }
}

#[test]
fn gradients_reach_every_parameter() {
    let (_, vocab, graphs) = inputs();
    let cfg = GlycanAAConfig { input_dim: 8, hidden_dims: vec![8, 8], ..GlycanAAConfig::paper() };
    let dev = Device::Cpu;
    let map = VarMap::new();
    let model = GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &cfg).unwrap();
    let batch = GlycanAABatch::from_compat(&graphs[..20], &vocab, &dev).unwrap();
    let out = model.forward(&batch, true).unwrap();
    let loss = out.graph_feature.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    for (name, var) in map.data().lock().unwrap().iter() {
        if name.contains("running_") {
            continue; // buffers, not parameters
        }
        // The unit convolution's biases sit right before training-mode batch norm, which
        // removes them: their gradient is exactly zero (PyTorch reports rounding noise), and
        // our layer drops them from the graph (they still set the running mean).
        if name.starts_with("mono_layers.") && name.ends_with(".bias") && !name.contains("batch_norm") {
            assert!(grads.get(var.as_tensor()).is_none(), "{name}: expected no gradient");
            checked += 1;
            continue;
        }
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        // Relations absent from these glycans leave their weight blocks untouched, but every
        // parameter tensor must receive some gradient.
        assert!(norm > 0.0, "zero gradient for {name}");
        checked += 1;
    }
    assert_eq!(checked, 1 + 2 * 3 * 6, "embedding + 2 blocks × 3 convs × (2 linear + 2 self + 2 bn)");
}

#[test]
fn ablations_run_and_train() {
    use glycan_aa::model::{ReadoutNodes, Variant};
    let (_, vocab, graphs) = inputs();
    let dev = Device::Cpu;
    let base = GlycanAAConfig { input_dim: 8, hidden_dims: vec![8, 8], ..GlycanAAConfig::paper() };
    let cases = [
        (
            "GlycanAA-WP (flat)",
            GlycanAAConfig { variant: Variant::Flat, ..base.clone() },
            false,
            "hidden_layers.0.linear.weight",
        ),
        (
            "GlycanAA-AN (all-node readout)",
            GlycanAAConfig { readout_type: ReadoutNodes::All, ..base.clone() },
            false,
            "atom_layers.0.linear.weight",
        ),
        (
            "RGCN (monosaccharides only)",
            GlycanAAConfig { variant: Variant::Flat, ..base.clone() },
            true,
            "hidden_layers.1.self_loop.weight",
        ),
    ];
    for (name, cfg, units_only, key) in cases {
        let map = VarMap::new();
        let model = GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &cfg).unwrap();
        let batch = if units_only {
            GlycanAABatch::from_compat_units_only(&graphs[..30].iter().collect::<Vec<_>>(), &vocab, &dev).unwrap()
        } else {
            GlycanAABatch::from_compat(&graphs[..30], &vocab, &dev).unwrap()
        };
        let out = model.forward(&batch, true).unwrap();
        assert_eq!(out.graph_feature.dims(), &[30, 32], "{name}");
        let loss = out.graph_feature.sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let data = map.data().lock().unwrap();
        let var = data.get(key).unwrap_or_else(|| panic!("{name}: no {key}"));
        let g = grads.get(var.as_tensor()).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(g > 0.0, "{name}: no gradient for {key}");
        if units_only {
            assert_eq!(
                batch.node_type.dims1().unwrap(),
                batch.mono_nodes.dims1().unwrap(),
                "only monosaccharide nodes"
            );
        }
    }
}

#[test]
fn runs_on_true_molecules() {
    let glycans = [
        "Neu5Ac(a2-3)Gal(b1-4)GlcNAc6S(b1-",
        "Fuc(a1-2)Gal(b1-3)[Fuc(a1-4)]GlcNAc",
        "Man(a1-6)[Man(a1-3)]Man(b1-4)GlcNAc(b1-4)GlcNAc",
    ];
    let mols: Vec<_> = glycans.iter().map(|g| glycan_aa::Glycan::from_iupac(g).unwrap().molecule.graph).collect();
    let refs: Vec<&aa_graph::HeteroGraph> = mols.iter().collect();
    let dev = Device::Cpu;
    let batch = GlycanAABatch::from_molecules(&refs, &dev).unwrap();
    let total: usize = mols.iter().map(|m| m.num_atoms() + m.num_units()).sum();
    assert_eq!(batch.node_type.dims1().unwrap(), total);
    let cfg = GlycanAAConfig { input_dim: 8, hidden_dims: vec![8, 8], ..GlycanAAConfig::paper_on_molecules() };
    let map = VarMap::new();
    let model = GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &cfg).unwrap();
    let out = model.forward(&batch, false).unwrap();
    assert_eq!(out.graph_feature.dims(), &[3, 32]);
    // The sulfate's atoms are nodes here (the official featurisation drops modifications).
    assert!(mols[0].atoms.iter().any(|a| a.element == aa_graph::Element::S));
}
