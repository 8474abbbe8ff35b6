//! Seeded parameter initialisation. candle's CPU random numbers cannot be seeded, so a model
//! built from a plain `VarMap` starts differently every run; [`SeededVarMap`] creates each
//! variable from its own stream of a seeded [`Rng`] (derived from the seed and the variable's
//! name, so the order of creation does not matter), with candle's own initialisation rules.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::rng::Rng;

/// A variable store like `candle_nn::VarMap` whose new variables are drawn from a seed.
#[derive(Debug, Default)]
pub struct SeededVarMap {
    seed: u64,
    vars: Mutex<HashMap<String, Var>>,
}

impl SeededVarMap {
    /// An empty store; variables created through [`SeededVarMap::var_builder`] use `seed`.
    pub fn new(seed: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(SeededVarMap { seed, vars: Mutex::new(HashMap::new()) })
    }

    /// A `VarBuilder` that creates (or returns) variables in this store.
    pub fn var_builder(self: &std::sync::Arc<Self>, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Handle(self.clone())), dtype, device.clone())
    }

    /// Every variable by name, sorted by name.
    pub fn all(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> =
            self.vars.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn create(&self, shape: &Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> Result<Var> {
        // One stream per variable: the seed mixed with an FNV-1a hash of the name.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Rng::new(self.seed ^ h);
        let n = shape.elem_count();
        let uniform = |rng: &mut Rng, lo: f64, hi: f64| -> Vec<f32> {
            (0..n).map(|_| (lo + (hi - lo) * rng.uniform()) as f32).collect()
        };
        let normal = |rng: &mut Rng, mean: f64, std: f64| -> Vec<f32> {
            // Box–Muller.
            (0..n)
                .map(|_| {
                    let (u1, u2) = (rng.uniform().max(f64::MIN_POSITIVE), rng.uniform());
                    (mean + std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
                })
                .collect()
        };
        let values = match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Kaiming { dist, fan, non_linearity } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(&mut rng, -bound, bound)
                    }
                    NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                }
            }
        };
        Var::from_tensor(&Tensor::from_vec(values, shape.clone(), dev)?.to_dtype(dtype)?)
    }
}

struct Handle(std::sync::Arc<SeededVarMap>);

impl SimpleBackend for Handle {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut vars = self.0.vars.lock().map_err(|_| candle_core::Error::Msg("variable store poisoned".into()))?;
        if let Some(v) = vars.get(name) {
            if v.shape() != &s {
                candle_core::bail!("variable {name} is {:?}, requested {s:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let v = self.0.create(&s, name, h, dtype, dev)?;
        let t = v.as_tensor().clone();
        vars.insert(name.to_string(), v);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let vars = self.0.vars.lock().map_err(|_| candle_core::Error::Msg("variable store poisoned".into()))?;
        vars.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name} (its shape is unknown here)")))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.vars.lock().map(|v| v.contains_key(name)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_and_candle_statistics() {
        let make = |seed| {
            let store = SeededVarMap::new(seed);
            let vb = store.var_builder(DType::F32, &Device::Cpu);
            let lin = candle_nn::linear(256, 64, vb.pp("head")).unwrap();
            let emb = vb.get_with_hints((100, 32), "emb", Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
            (store, lin, emb)
        };
        let (a, lin_a, emb_a) = make(5);
        let (_, lin_b, _) = make(5);
        let (_, lin_c, _) = make(6);
        let w = |l: &candle_nn::Linear| l.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(w(&lin_a), w(&lin_b));
        assert_ne!(w(&lin_a), w(&lin_c));
        assert_eq!(a.all().len(), 3);
        // candle's linear: bias U(±1/√256).
        let ba = lin_a.bias().unwrap().to_vec1::<f32>().unwrap();
        let bound = 1.0 / 16.0;
        assert!(ba.iter().all(|v| v.abs() <= bound + 1e-6) && ba.iter().any(|v| v.abs() > 0.8 * bound));
        let e = emb_a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mean = e.iter().sum::<f32>() / e.len() as f32;
        let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / e.len() as f32;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.08, "{mean} {var}");
    }
}
