//! Writes the inputs of the GlycanAA parity check: random weights (small widths, random
//! BatchNorm running statistics) and the official featurisation of 100 real glycans. The
//! independent NumPy reference (`tests/reference/glycanaa_reference.py`) then computes the
//! expected outputs from these files.
//!
//! `cargo run --release -p glycan-aa --example glycanaa_parity_inputs -- OUT_DIR`
//!
//! With `--official OUT_FILE` instead it writes only the official featurisation of 40 real
//! glycans with GlycanML's official glycoword vocabulary (`CompatVocab::official`), the input of
//! the `allatom convert` check of an official checkpoint.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use glycan_aa::compat::{featurize, CompatVocab};
use glycan_aa::model::{GlycanAA, GlycanAAConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if args.first().map(String::as_str) == Some("--official") {
        let out = args.get(1).expect("usage: glycanaa_parity_inputs --official OUT_FILE");
        let mut rdr = csv::Reader::from_path(root.join("../../../shared/data/glycans/glycan_pretrain.csv"))?;
        let vocab = CompatVocab::official();
        let mut chosen = Vec::new();
        // Every 500th glycan the official featurisation takes (with atoms), 40 in all.
        for (i, r) in rdr.records().enumerate() {
            let g = r?[0].to_string();
            if i % 500 == 0 {
                if let Ok(f) = featurize(&g, &vocab) {
                    if f.node_type.len() > f.num_units {
                        chosen.push(serde_json::json!({"iupac": g, "graph": f}));
                    }
                }
            }
            if chosen.len() == 40 {
                break;
            }
        }
        std::fs::write(out, serde_json::to_string(&serde_json::json!({"vocab": vocab, "glycans": chosen}))?)?;
        println!("{} glycans in {out}", chosen.len());
        return Ok(());
    }
    let out = std::path::PathBuf::from(args.first().expect("usage: glycanaa_parity_inputs OUT_DIR"));
    std::fs::create_dir_all(&out)?;
    // Vocabulary: the official 127 unit names and the 84 most frequent links of the
    // pretraining set (the official id order is not available here; see compat docs).
    let mut rdr = csv::Reader::from_path(root.join("../../../shared/data/glycans/glycan_pretrain.csv"))?;
    let glycans: Vec<String> = rdr.records().map(|r| r.map(|r| r[0].to_string())).collect::<Result<_, _>>()?;
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &glycans, 84);
    let mut chosen = Vec::new();
    for g in &glycans {
        if let Ok(f) = featurize(g, &vocab) {
            if f.node_type.len() > f.num_units {
                chosen.push((g.clone(), f));
            }
        }
        if chosen.len() == 100 {
            break;
        }
    }
    let batch = serde_json::json!({
        "vocab": vocab,
        "glycans": chosen.iter().map(|(g, f)| serde_json::json!({"iupac": g, "graph": f})).collect::<Vec<_>>(),
    });
    std::fs::write(out.join("glycanaa_batch.json"), serde_json::to_string(&batch)?)?;
    // Random weights, with random BatchNorm running statistics so eval mode is not trivial.
    let config = GlycanAAConfig { input_dim: 16, hidden_dims: vec![16, 16, 16], ..GlycanAAConfig::paper() };
    let map = VarMap::new();
    let dev = Device::Cpu;
    let _ = GlycanAA::new(VarBuilder::from_varmap(&map, DType::F32, &dev), &config)?;
    for (name, var) in map.data().lock().unwrap().iter() {
        let shape = var.shape().clone();
        if name.ends_with("running_mean") {
            var.set(&Tensor::randn(0f32, 0.5, shape, &dev)?)?;
        } else if name.ends_with("running_var") || name.ends_with("batch_norm.weight") {
            var.set(&(Tensor::rand(0f32, 1.0, shape, &dev)? + 0.5)?)?;
        } else if name.ends_with("batch_norm.bias") {
            var.set(&Tensor::randn(0f32, 0.2, shape, &dev)?)?;
        }
    }
    map.save(out.join("glycanaa_weights.safetensors"))?;
    std::fs::write(out.join("glycanaa_config.json"), serde_json::to_string_pretty(&config)?)?;
    println!("{} glycans, weights and config in {}", chosen.len(), out.display());
    Ok(())
}
