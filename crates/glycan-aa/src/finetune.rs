//! Glycan property prediction (GlycanML-style fine-tuning): GlycanAA's glycan embedding through
//! an MLP head (TorchDrug `MLP(768, [768, Σ classes])`, ReLU: `mlp.layers.{0,1}`) whose outputs
//! are split among the task's targets — one for a single task, eight for the taxonomy levels
//! trained jointly (GlycanML-MTL). Per target: cross-entropy for single-label targets, binary
//! cross-entropy per class for multi-label ones; the loss is the mean over targets.
//! Validation per target: accuracy and macro-F1, or multi-label macro-F1 at threshold 0.5 and
//! Fmax; with several targets, `<metric>/<target>` and the mean over targets as `<metric>`.

use std::collections::BTreeMap;

use aa_pretrain::metrics;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use crate::compat::{CompatGraph, CompatVocab};
use crate::model::{GlycanAA, GlycanAABatch, GlycanAAConfig};
use crate::tasks::Target;

/// A glycan with its label indices, per target.
#[derive(Clone, Debug)]
pub struct Labelled {
    /// Official featurisation.
    pub graph: CompatGraph,
    /// Per target, label indices.
    pub labels: Vec<Vec<usize>>,
}

/// GlycanAA (or the monosaccharide-level RGCN) plus a classification head.
pub struct PropertyModel {
    /// The encoder (official weight names).
    pub encoder: GlycanAA,
    layer0: Linear,
    layer1: Linear,
    /// The label columns; target `t` owns logits `offsets[t]..offsets[t + 1]`.
    pub targets: Vec<Target>,
    offsets: Vec<usize>,
    /// Feed only monosaccharides and their links (the RGCN baseline's input).
    pub units_only: bool,
    vocab: CompatVocab,
    device: Device,
}

impl PropertyModel {
    /// Loads or creates the encoder under `vb` and the head under `vb.pp("mlp")`.
    pub fn new(
        vb: VarBuilder,
        config: &GlycanAAConfig,
        vocab: CompatVocab,
        targets: Vec<Target>,
        units_only: bool,
    ) -> Result<Self> {
        if targets.is_empty() || targets.iter().any(|t| t.classes.is_empty()) {
            candle_core::bail!("a property model needs at least one target with at least one class");
        }
        let mut offsets = vec![0];
        for t in &targets {
            offsets.push(offsets.last().copied().unwrap_or(0) + t.classes.len());
        }
        let encoder = GlycanAA::new(vb.clone(), config)?;
        let d = config.graph_dim();
        let layer0 = candle_nn::linear(d, d, vb.pp("mlp.layers.0"))?;
        let layer1 = candle_nn::linear(d, offsets[targets.len()], vb.pp("mlp.layers.1"))?;
        Ok(PropertyModel { encoder, layer0, layer1, targets, offsets, units_only, vocab, device: vb.device().clone() })
    }

    /// Collates glycans for the encoder (all-atom, or monosaccharides only).
    pub fn collate(&self, graphs: &[&CompatGraph]) -> Result<GlycanAABatch> {
        if self.units_only {
            GlycanAABatch::from_compat_units_only(graphs, &self.vocab, &self.device)
        } else {
            GlycanAABatch::from_compat_refs(graphs, &self.vocab, &self.device)
        }
    }

    /// Logits `[B, Σ classes]`.
    pub fn logits(&self, batch: &GlycanAABatch, train: bool) -> Result<Tensor> {
        let g = self.encoder.forward(batch, train)?.graph_feature;
        self.layer1.forward(&self.layer0.forward(&g)?.relu()?)
    }

    /// Mean over targets of each target's loss; `labels[i][t]` are item `i`'s labels for
    /// target `t`.
    fn loss_of(&self, logits: &Tensor, labels: &[Vec<Vec<usize>>]) -> Result<Tensor> {
        let items = labels;
        let mut total: Option<Tensor> = None;
        for (t, target) in self.targets.iter().enumerate() {
            let n = target.classes.len();
            let z = logits.narrow(1, self.offsets[t], n)?;
            let loss = if target.multi_label {
                let mut y = vec![0f32; items.len() * n];
                for (i, it) in items.iter().enumerate() {
                    for &l in &it[t] {
                        y[i * n + l] = 1.0;
                    }
                }
                candle_nn::loss::binary_cross_entropy_with_logit(
                    &z,
                    &Tensor::from_vec(y, (items.len(), n), &self.device)?,
                )?
            } else {
                let y: Vec<u32> = items.iter().map(|it| it[t].first().copied().unwrap_or(0) as u32).collect();
                candle_nn::loss::cross_entropy(&z, &Tensor::from_vec(y, items.len(), &self.device)?)?
            };
            total = Some(match total {
                None => loss,
                Some(s) => (s + loss)?,
            });
        }
        total.expect("at least one target") / self.targets.len() as f64
    }

    /// Validation metrics of one target from its logits.
    fn target_metrics(&self, t: usize, scores: &[Vec<f32>], items: &[Labelled]) -> Result<Vec<(&'static str, f64)>> {
        let err = |e: metrics::MetricError| candle_core::Error::Msg(e.to_string());
        let (lo, n) = (self.offsets[t], self.targets[t].classes.len());
        let part: Vec<&[f32]> = scores.iter().map(|r| &r[lo..lo + n]).collect();
        if self.targets[t].multi_label {
            let target: Vec<Vec<bool>> =
                items.iter().map(|it| (0..n).map(|c| it.labels[t].contains(&c)).collect()).collect();
            let pred: Vec<Vec<bool>> = part.iter().map(|r| r.iter().map(|&v| v > 0.0).collect()).collect();
            let probs: Vec<Vec<f64>> =
                part.iter().map(|r| r.iter().map(|&v| 1.0 / (1.0 + (-v as f64).exp())).collect()).collect();
            Ok(vec![
                ("macro_f1", metrics::macro_f1_multilabel(&pred, &target).map_err(err)?),
                ("fmax", metrics::fmax(&probs, &target).map_err(err)?),
            ])
        } else {
            let rows: Vec<Vec<f32>> = part.iter().map(|r| r.to_vec()).collect();
            let pred = metrics::argmax(&rows);
            let labels: Vec<usize> = items.iter().map(|it| it.labels[t].first().copied().unwrap_or(0)).collect();
            Ok(vec![
                ("accuracy", metrics::accuracy(&pred, &labels).map_err(err)?),
                ("macro_f1", metrics::macro_f1(&pred, &labels).map_err(err)?),
            ])
        }
    }
}

/// A collated batch and its items' labels.
pub struct LabelledBatch {
    /// The collated glycans.
    pub batch: GlycanAABatch,
    /// Per item, per target, label indices.
    pub labels: Vec<Vec<Vec<usize>>>,
}

impl Objective for PropertyModel {
    type Item = Labelled;
    type Batch = LabelledBatch;

    fn prepare(&self, items: &[&Labelled], _rng: &mut Rng) -> Result<LabelledBatch> {
        let graphs: Vec<&CompatGraph> = items.iter().map(|b| &b.graph).collect();
        Ok(LabelledBatch { batch: self.collate(&graphs)?, labels: items.iter().map(|i| i.labels.clone()).collect() })
    }

    fn loss(&self, batch: LabelledBatch) -> Result<(Tensor, Vec<(String, f64)>)> {
        let logits = self.logits(&batch.batch, true)?;
        Ok((self.loss_of(&logits, &batch.labels)?, vec![]))
    }

    fn evaluate(&self, items: &[Labelled]) -> Result<BTreeMap<String, f64>> {
        let mut scores: Vec<Vec<f32>> = Vec::with_capacity(items.len());
        let mut loss = 0.0;
        for chunk in items.chunks(256) {
            let graphs: Vec<&CompatGraph> = chunk.iter().map(|b| &b.graph).collect();
            let logits = self.logits(&self.collate(&graphs)?, false)?;
            let labels: Vec<Vec<Vec<usize>>> = chunk.iter().map(|i| i.labels.clone()).collect();
            loss += self.loss_of(&logits, &labels)?.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
            scores.extend(logits.to_vec2::<f32>()?);
        }
        let mut out = BTreeMap::from([("loss".to_string(), loss / items.len().max(1) as f64)]);
        let many = self.targets.len() > 1;
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        for t in 0..self.targets.len() {
            for (name, value) in self.target_metrics(t, &scores, items)? {
                *sums.entry(name).or_default() += value / self.targets.len() as f64;
                if many {
                    out.insert(format!("{name}/{}", self.targets[t].name), value);
                }
            }
        }
        // One target: its metrics; several: their means (GlycanML-MTL's "average").
        out.extend(sums.into_iter().map(|(k, v)| (k.to_string(), v)));
        Ok(out)
    }
}
