//! AdamW against PyTorch's `torch.optim.AdamW` (fixture from
//! `tests/reference/adamw_reference.py`): two parameter groups with their own learning-rate
//! multiplier and weight decay, four steps, a changing learning rate. Tolerance 1e-6 (f32
//! state against PyTorch's f64).

use aa_pretrain::{AdamW, AdamWConfig, ParamGroup};
use candle_core::{backprop::GradStore, Device, Tensor, Var};

fn vec(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn run(device: &Device, fused: bool) {
    // `fused`: the one-pass CPU kernels; otherwise the candle-op path other devices take.
    let fx: serde_json::Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/adamw_reference.json")))
            .unwrap();
    let enc = Var::from_vec(vec(&fx["enc0"]), (3, 4), device).unwrap();
    let head = Var::from_vec(vec(&fx["head0"]), 5, device).unwrap();
    let groups = vec![
        ParamGroup { vars: vec![("enc".into(), enc.clone())], lr_scale: 0.1, weight_decay: Some(0.05) },
        ParamGroup { vars: vec![("head".into(), head.clone())], lr_scale: 1.0, weight_decay: Some(0.0) },
    ];
    let mut opt = AdamW::new(groups, AdamWConfig { lr: 1e-2, ..Default::default() }).unwrap();
    if !fused {
        opt = opt.without_fused_kernels();
    }
    for step in fx["steps"].as_array().unwrap() {
        // A loss whose gradients are exactly the fixture's: Σ g ⊙ θ.
        let ge = Tensor::from_vec(vec(&step["grad_enc"]), (3, 4), device).unwrap();
        let gh = Tensor::from_vec(vec(&step["grad_head"]), 5, device).unwrap();
        let loss = ((enc.as_tensor() * &ge).unwrap().sum_all().unwrap()
            + (head.as_tensor() * &gh).unwrap().sum_all().unwrap())
        .unwrap();
        let grads: GradStore = loss.backward().unwrap();
        opt.step(&grads, step["lr"].as_f64().unwrap()).unwrap();
        let got_e = enc.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let got_h = head.as_tensor().to_vec1::<f32>().unwrap();
        for (got, want) in [(got_e, vec(&step["enc"])), (got_h, vec(&step["head"]))] {
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-6, "fused={fused}: {g} vs PyTorch {w}");
            }
        }
    }
    assert_eq!(opt.steps(), 4);
}

#[test]
fn matches_pytorch_adamw() {
    run(&Device::Cpu, true);
    run(&Device::Cpu, false);
}

#[test]
fn state_round_trips() {
    let dev = Device::Cpu;
    let w = Var::from_vec(vec![1f32, -2.0, 3.0], 3, &dev).unwrap();
    let mk = |w: &Var| {
        AdamW::new(
            vec![ParamGroup { vars: vec![("w".into(), w.clone())], lr_scale: 1.0, weight_decay: None }],
            AdamWConfig::default(),
        )
        .unwrap()
    };
    let mut a = mk(&w);
    let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
    a.step(&loss.backward().unwrap(), 0.1).unwrap();
    let (state, step) = a.state().unwrap();
    let w2 = Var::from_tensor(w.as_tensor()).unwrap();
    let mut b = mk(&w2);
    b.load_state(&state, step).unwrap();
    for (opt, var) in [(&mut a, &w), (&mut b, &w2)] {
        let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap(), 0.1).unwrap();
    }
    assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), w2.as_tensor().to_vec1::<f32>().unwrap());
    // A wrong-shaped state is refused with the parameter's name.
    let mut bad = state.clone();
    bad.insert("w.exp_avg".into(), Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap());
    let err = b.load_state(&bad, step).unwrap_err().to_string();
    assert!(err.contains("w.exp_avg"), "{err}");
}
