//! HSA-Net readout: equal to the PyTorch reference (`tests/reference/hsa_reference.py`,
//! identical weights and Gumbel noise, fixture committed) in training and inference mode, for
//! weighted and unweighted fusion, with and without coordinates, and for each projector alone;
//! gradients reach every parameter on the training path (and, as documented, none reaches the
//! router when the experts are summed unweighted); clear errors for impossible shapes.

use std::collections::HashMap;
use std::sync::Arc;

use aa_encoder::{EncoderOutput, Hsa, HsaConfig, LayerStates, Projectors, Readout, UnitGeometry};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

fn fixture() -> HashMap<String, Tensor> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hsa/hsa.safetensors");
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn config() -> HsaConfig {
    HsaConfig {
        dim: 8,
        tokens: 3,
        heads: 2,
        motifs: 2,
        projectors: Projectors::Adaptive,
        experts: 3,
        top_k: 2,
        weighted: true,
        tau: 1.0,
        state: 4,
    }
}

fn output(f: &HashMap<String, Tensor>, positions: bool) -> EncoderOutput {
    let uw: Vec<u32> = f["unit_window"].to_vec1::<i64>().unwrap().into_iter().map(|w| w as u32).collect();
    let degree: Vec<u32> = f["degree"].to_vec1::<i64>().unwrap().into_iter().map(|d| d as u32).collect();
    let pos: Vec<[f32; 3]> = f["positions"].to_vec2::<f32>().unwrap().into_iter().map(|r| [r[0], r[1], r[2]]).collect();
    let geometry = UnitGeometry { positions: positions.then_some(pos), degree };
    EncoderOutput {
        layers: vec![
            LayerStates { units: f["layer0"].clone(), atoms: None },
            LayerStates { units: f["layer1"].clone(), atoms: None },
        ],
        units: f["units"].clone(),
        windows: uw.iter().max().map_or(0, |&w| w as usize + 1),
        unit_window: uw,
        atoms: None,
        geometry: Some(Arc::new(geometry)),
    }
}

fn hsa(f: &HashMap<String, Tensor>, cfg: HsaConfig) -> Hsa {
    let vb = VarBuilder::from_tensors(f.clone(), DType::F32, &Device::Cpu);
    Hsa::new(vb, &[6, 5], 7, cfg).unwrap()
}

fn choices(t: &Tensor) -> Vec<Vec<u8>> {
    t.to_vec2::<i64>().unwrap().into_iter().map(|r| r.into_iter().map(|c| c as u8).collect()).collect()
}

#[test]
fn equals_the_pytorch_reference() {
    let f = fixture();
    let out = output(&f, true);
    let r = hsa(&f, config());
    let train = r.run(&out, true, Some(&f["gumbel"])).unwrap();
    assert_eq!(train.choices, choices(&f["train_choices"]));
    let flat: Vec<u8> = train.choices.iter().flatten().copied().collect();
    assert!(flat.contains(&0) && flat.contains(&1), "the fixture exercises both projectors: {flat:?}");
    assert!(max_diff(&train.tokens, &f["train_tokens"]) < 1e-5);
    assert!(max_diff(&train.graph, &f["train_graph"]) < 1e-5);
    let eval = r.run(&out, false, None).unwrap();
    assert_eq!(eval.choices, choices(&f["eval_choices"]));
    assert!(max_diff(&eval.tokens, &f["eval_tokens"]) < 1e-5);
    assert!(max_diff(&eval.graph, &f["eval_graph"]) < 1e-5);
    assert!(max_diff(&r.forward(&out, false).unwrap(), &f["eval_graph"]) < 1e-5);
    assert!(max_diff(eval.attention[0].as_ref().unwrap(), &f["eval_attention0"]) < 1e-5);
    assert_eq!(r.choices(&out).unwrap(), Some(eval.choices.clone()));
    assert_eq!(r.num_tokens(), 8);
    assert_eq!(r.dim(7), 16);

    let unweighted = hsa(&f, HsaConfig { weighted: false, ..config() });
    assert!(max_diff(&unweighted.forward(&out, false).unwrap(), &f["eval_unweighted_graph"]) < 1e-5);
    assert!(max_diff(&r.forward(&output(&f, false), false).unwrap(), &f["eval_nopos_graph"]) < 1e-5);
    for (p, key) in [(Projectors::Attention, "eval_attention_graph"), (Projectors::Mamba, "eval_mamba_graph")] {
        let one = hsa(&f, HsaConfig { projectors: p, ..config() });
        let d = max_diff(&one.forward(&out, false).unwrap(), &f[key]);
        assert!(d < 1e-5, "{key}: {d}");
    }
}

/// Gumbel noise that sends window 0 to attention and window 2 to Mamba in every layer.
fn both_ways(windows: usize) -> Tensor {
    let mut g = vec![0f32; 2 * windows * 2];
    for l in 0..2 {
        g[(l * windows) * 2] = 8.0;
        g[(l * windows + 2) * 2 + 1] = 8.0;
    }
    Tensor::from_vec(g, (2, windows, 2), &Device::Cpu).unwrap()
}

#[test]
fn gradients_reach_every_parameter_on_the_training_path() {
    let f = fixture();
    let out = output(&f, true);
    for weighted in [true, false] {
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let r = Hsa::new(vb, &[6, 5], 7, HsaConfig { weighted, ..config() }).unwrap();
        let run = r.run(&out, true, Some(&both_ways(out.windows))).unwrap();
        let w = Tensor::randn(0f32, 1.0, run.graph.shape(), &Device::Cpu).unwrap();
        let grads = (run.graph * w).unwrap().sum_all().unwrap().backward().unwrap();
        let vars = map.data().lock().unwrap();
        assert!(vars.len() > 60, "{} variables", vars.len());
        for (name, v) in vars.iter() {
            let g = grads.get(v.as_tensor()).map(|g| g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap());
            let router = name.starts_with("saf.router");
            if router && !weighted {
                assert!(g.unwrap_or(0.0) == 0.0, "{name}: the unweighted sum must leave the router untrained");
            } else {
                assert!(g.is_some_and(|g| g > 0.0), "{name} gets no gradient (weighted {weighted})");
            }
        }
    }
}

#[test]
fn impossible_shapes_are_refused() {
    let f = fixture();
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    let e = Hsa::new(vb.clone(), &[], 7, config()).err().unwrap().to_string();
    assert!(e.contains("reports none"), "{e}");
    let e = Hsa::new(vb.clone(), &[6, 5], 7, HsaConfig { heads: 3, ..config() }).err().unwrap().to_string();
    assert!(e.contains("heads"), "{e}");
    let e = Hsa::new(vb.clone(), &[6, 5], 7, HsaConfig { top_k: 4, ..config() }).err().unwrap().to_string();
    assert!(e.contains("top_k"), "{e}");
    let r = Hsa::new(vb, &[6, 5, 5], 7, config()).unwrap();
    let e = r.forward(&output(&f, true), false).unwrap_err().to_string();
    assert!(e.contains("3 encoder layers"), "{e}");
}
