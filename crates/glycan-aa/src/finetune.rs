//! Glycan property prediction (GlycanML-style fine-tuning): GlycanAA's glycan embedding through
//! an MLP head (TorchDrug `MLP(768, [768, classes])`, ReLU: `mlp.layers.{0,1}`), cross-entropy
//! for single-label tasks (glycosylation type) and binary cross-entropy per class for
//! multi-label ones (taxonomy). Validation: accuracy and macro-F1, or multi-label macro-F1 at
//! threshold 0.5 and Fmax.

use std::collections::BTreeMap;

use aa_pretrain::metrics;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use crate::compat::{CompatGraph, CompatVocab};
use crate::model::{GlycanAA, GlycanAABatch, GlycanAAConfig};

/// A glycan with its label indices.
#[derive(Clone, Debug)]
pub struct Labelled {
    /// Official featurisation.
    pub graph: CompatGraph,
    /// Label indices.
    pub labels: Vec<usize>,
}

/// GlycanAA plus a classification head.
pub struct PropertyModel {
    /// The encoder (official weight names).
    pub encoder: GlycanAA,
    layer0: Linear,
    layer1: Linear,
    /// Number of classes.
    pub num_classes: usize,
    /// Several labels per glycan (BCE) or one (CE).
    pub multi_label: bool,
    vocab: CompatVocab,
    device: Device,
}

impl PropertyModel {
    /// Loads or creates the encoder under `vb` and the head under `vb.pp("mlp")`.
    pub fn new(
        vb: VarBuilder,
        config: &GlycanAAConfig,
        vocab: CompatVocab,
        num_classes: usize,
        multi_label: bool,
    ) -> Result<Self> {
        let encoder = GlycanAA::new(vb.clone(), config)?;
        let d = config.graph_dim();
        let layer0 = candle_nn::linear(d, d, vb.pp("mlp.layers.0"))?;
        let layer1 = candle_nn::linear(d, num_classes, vb.pp("mlp.layers.1"))?;
        Ok(PropertyModel { encoder, layer0, layer1, num_classes, multi_label, vocab, device: vb.device().clone() })
    }

    /// Logits `[B, classes]`.
    pub fn logits(&self, graphs: &[&CompatGraph], train: bool) -> Result<Tensor> {
        let batch = GlycanAABatch::from_compat_refs(graphs, &self.vocab, &self.device)?;
        let g = self.encoder.forward(&batch, train)?.graph_feature;
        self.layer1.forward(&self.layer0.forward(&g)?.relu()?)
    }

    fn targets(&self, items: &[&Labelled]) -> Result<Tensor> {
        if self.multi_label {
            let mut t = vec![0f32; items.len() * self.num_classes];
            for (i, it) in items.iter().enumerate() {
                for &l in &it.labels {
                    t[i * self.num_classes + l] = 1.0;
                }
            }
            Tensor::from_vec(t, (items.len(), self.num_classes), &self.device)
        } else {
            let t: Vec<u32> = items.iter().map(|it| it.labels.first().copied().unwrap_or(0) as u32).collect();
            Tensor::from_vec(t, items.len(), &self.device)
        }
    }

    fn loss_of(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if self.multi_label {
            candle_nn::loss::binary_cross_entropy_with_logit(logits, targets)
        } else {
            candle_nn::loss::cross_entropy(logits, targets)
        }
    }
}

impl Objective for PropertyModel {
    type Item = Labelled;

    fn loss(&self, batch: &[&Labelled], _rng: &mut Rng) -> Result<(Tensor, Vec<(String, f64)>)> {
        let graphs: Vec<&CompatGraph> = batch.iter().map(|b| &b.graph).collect();
        let logits = self.logits(&graphs, true)?;
        Ok((self.loss_of(&logits, &self.targets(batch)?)?, vec![]))
    }

    fn evaluate(&self, items: &[Labelled]) -> Result<BTreeMap<String, f64>> {
        let mut scores: Vec<Vec<f32>> = Vec::with_capacity(items.len());
        let mut loss = 0.0;
        for chunk in items.chunks(256) {
            let refs: Vec<&Labelled> = chunk.iter().collect();
            let graphs: Vec<&CompatGraph> = refs.iter().map(|b| &b.graph).collect();
            let logits = self.logits(&graphs, false)?;
            loss += self.loss_of(&logits, &self.targets(&refs)?)?.to_dtype(DType::F64)?.to_scalar::<f64>()?
                * chunk.len() as f64;
            scores.extend(logits.to_vec2::<f32>()?);
        }
        let mut out = BTreeMap::from([("loss".to_string(), loss / items.len().max(1) as f64)]);
        let err = |e: metrics::MetricError| candle_core::Error::Msg(e.to_string());
        if self.multi_label {
            let target: Vec<Vec<bool>> =
                items.iter().map(|it| (0..self.num_classes).map(|c| it.labels.contains(&c)).collect()).collect();
            let pred: Vec<Vec<bool>> = scores.iter().map(|r| r.iter().map(|&v| v > 0.0).collect()).collect();
            let probs: Vec<Vec<f64>> =
                scores.iter().map(|r| r.iter().map(|&v| 1.0 / (1.0 + (-v as f64).exp())).collect()).collect();
            out.insert("macro_f1".into(), metrics::macro_f1_multilabel(&pred, &target).map_err(err)?);
            out.insert("fmax".into(), metrics::fmax(&probs, &target).map_err(err)?);
        } else {
            let pred = metrics::argmax(&scores);
            let labels: Vec<usize> = items.iter().map(|it| it.labels.first().copied().unwrap_or(0)).collect();
            out.insert("accuracy".into(), metrics::accuracy(&pred, &labels).map_err(err)?);
            out.insert("macro_f1".into(), metrics::macro_f1(&pred, &labels).map_err(err)?);
        }
        Ok(out)
    }
}
