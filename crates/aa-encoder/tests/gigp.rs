//! GIGP readout: equal to the PyTorch reference (`tests/reference/gigp_reference.py`, identical
//! weights, fixture committed) for nearest-centre and within-delta membership, exactly mean
//! pooling at initialisation, gradients to every trained parameter, and clear errors.

use std::collections::HashMap;

use aa_encoder::{EncoderOutput, Gigp, GigpConfig, Orbit, Readout, UnitGeometry};
use aa_graph::kernels::scatter_mean;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

fn fixture() -> HashMap<String, Tensor> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gigp/gigp.safetensors");
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn output(f: &HashMap<String, Tensor>) -> (EncoderOutput, Vec<u32>) {
    let uw: Vec<u32> = f["unit_window"].to_vec1::<i64>().unwrap().into_iter().map(|w| w as u32).collect();
    let pos: Vec<[f32; 3]> = f["positions"].to_vec2::<f32>().unwrap().into_iter().map(|r| [r[0], r[1], r[2]]).collect();
    let geometry = UnitGeometry { positions: Some(pos), degree: vec![0; uw.len()] };
    let windows = uw.iter().max().map_or(0, |&w| w as usize + 1);
    let out = EncoderOutput {
        layers: vec![],
        units: f["x"].clone(),
        unit_window: uw.clone(),
        atoms: None,
        windows,
        geometry: Some(std::sync::Arc::new(geometry)),
    };
    (out, uw)
}

#[test]
fn equals_the_pytorch_reference() {
    let f = fixture();
    let train: Vec<f32> = f["train_values"].to_vec1().unwrap();
    let centres = Gigp::fit_centres(&train, 5);
    assert_eq!(centres, f["expected_centres"].to_vec1::<f32>().unwrap());
    let (out, uw) = output(&f);
    let values = Gigp::orbit_values(out.geometry.as_ref().unwrap(), Orbit::CentroidDistance, &uw).unwrap();
    let got = Tensor::new(values.as_slice(), &Device::Cpu).unwrap();
    assert!(max_diff(&got, &f["expected_values"]) < 1e-5);
    for (delta, key) in [(None, "expected_nearest"), (Some(0.7), "expected_delta")] {
        let mut weights: HashMap<String, Tensor> =
            f.iter().filter(|(k, _)| k.starts_with("orbit_")).map(|(k, v)| (k.clone(), v.clone())).collect();
        weights.insert("buffer_orbit_centres".into(), Tensor::new(centres.as_slice(), &Device::Cpu).unwrap());
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let gigp = Gigp::new(vb, 6, GigpConfig { bins: 5, orbit: Orbit::CentroidDistance, delta, hidden: 4 }).unwrap();
        let pooled = gigp.forward(&out, false).unwrap();
        let d = max_diff(&pooled, &f[key]);
        assert!(d < 1e-5, "{key}: {d}");
    }
}

#[test]
fn starts_as_mean_pooling_and_trains_every_parameter() {
    let f = fixture();
    let (out, uw) = output(&f);
    for delta in [None, Some(0.7)] {
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let cfg = GigpConfig { bins: 5, orbit: Orbit::CentroidDistance, delta, hidden: 4 };
        let gigp = Gigp::new(vb, 6, cfg).unwrap();
        let vars: Vec<(String, candle_core::Var)> =
            map.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let train: Vec<f32> = f["train_values"].to_vec1().unwrap();
        gigp.set_centres(&Gigp::fit_centres(&train, 5), &vars).unwrap();
        let index = Tensor::new(uw.as_slice(), &Device::Cpu).unwrap();
        let mean = scatter_mean(&out.units, &index, out.windows).unwrap();
        let pooled = gigp.forward(&out, true).unwrap();
        let d = max_diff(&pooled, &mean);
        assert!(d < 1e-6, "initial GIGP differs from mean pooling by {d}");
        // Away from the initialisation every trained parameter gets a gradient; the centres
        // (a buffer) do not.
        for (k, v) in &vars {
            if k.ends_with("w2") || k.ends_with("b2") {
                v.set(&f[&format!("orbit_mlp.{}", k.rsplit('.').next().unwrap())]).unwrap();
            }
        }
        let loss = gigp.forward(&out, true).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        for (k, v) in &vars {
            let g = grads.get(v.as_tensor());
            if k == "buffer_orbit_centres" {
                assert!(g.is_none(), "the centres are not trained");
            } else {
                let g = g.unwrap_or_else(|| panic!("no gradient for {k}"));
                assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "zero gradient: {k}");
            }
        }
    }
}

#[test]
fn refuses_what_it_cannot_pool() {
    let f = fixture();
    let (mut out, uw) = output(&f);
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    let gigp = Gigp::new(vb.clone(), 6, GigpConfig::default()).unwrap();
    out.geometry = Some(std::sync::Arc::new(UnitGeometry { positions: None, degree: vec![1; uw.len()] }));
    let e = gigp.forward(&out, false).unwrap_err().to_string();
    assert!(e.contains("needs coordinates") && e.contains("degree"), "{e}");
    out.geometry = None;
    assert!(gigp.forward(&out, false).unwrap_err().to_string().contains("geometry"));
    assert!(Gigp::new(vb.clone(), 6, GigpConfig { bins: 0, ..Default::default() }).is_err());
    assert!(Gigp::new(vb, 6, GigpConfig { delta: Some(-1.0), ..Default::default() }).is_err());
    // Degree orbits need no coordinates.
    let g = UnitGeometry { positions: None, degree: vec![0, 1, 2] };
    assert_eq!(Gigp::orbit_values(&g, Orbit::Degree, &[0, 0, 0]).unwrap(), vec![0.0, 1.0, 2.0]);
}
