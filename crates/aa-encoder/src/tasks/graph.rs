//! Graph-level classification (GlycanML-style property prediction) for any encoder: the
//! encoder's windows through a readout and an MLP head (`mlp.layers.{0,1}`) whose outputs are
//! split among the task's targets — one for a single task, eight for the taxonomy levels
//! trained jointly (GlycanML-MTL). Per target: cross-entropy for single-label targets, binary
//! cross-entropy per class for multi-label ones; the loss is the mean over targets. Validation
//! per target: accuracy and macro-F1, or multi-label macro-F1 at threshold 0.5 and Fmax; with
//! several targets, `<metric>/<target>` and the mean over targets as `<metric>`.

use std::collections::BTreeMap;

use aa_pretrain::metrics;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::metric_error;
use crate::heads::Mlp2;
use crate::{Encoder, Featurized, Readout, Window};

/// One label column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Its name (e.g. the file stem of a task).
    pub name: String,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Whether an item may carry several labels.
    pub multi_label: bool,
}

/// A window with its label indices, per target.
#[derive(Clone, Debug)]
pub struct GraphItem {
    /// The input (a whole glycan, a structure).
    pub window: Window,
    /// Per target, label indices (one for single-label targets).
    pub labels: Vec<Vec<usize>>,
}

/// An encoder, a readout and a classification head over one or more targets.
pub struct GraphTask {
    /// The encoder (its weights at the root of the variable tree).
    pub encoder: Box<dyn Encoder>,
    /// The graph readout.
    pub readout: Box<dyn Readout>,
    head: Mlp2,
    /// The label columns; target `t` owns logits `offsets[t]..offsets[t + 1]`.
    pub targets: Vec<Target>,
    offsets: Vec<usize>,
    device: Device,
}

/// A featurised batch and its items' labels.
pub struct GraphBatch {
    input: Featurized,
    labels: Vec<Vec<Vec<usize>>>,
}

impl GraphTask {
    /// The task with a new head under `vb.pp("mlp")` (the encoder was built from the same tree).
    pub fn new(
        encoder: Box<dyn Encoder>,
        readout: Box<dyn Readout>,
        vb: VarBuilder,
        targets: Vec<Target>,
    ) -> Result<GraphTask> {
        if targets.is_empty() || targets.iter().any(|t| t.classes.is_empty()) {
            candle_core::bail!("a graph task needs at least one target with at least one class");
        }
        let mut offsets = vec![0];
        for t in &targets {
            offsets.push(offsets.last().copied().unwrap_or(0) + t.classes.len());
        }
        let d = readout.dim(encoder.unit_dim());
        let head = Mlp2::new(vb.pp("mlp"), d, offsets[targets.len()])?;
        Ok(GraphTask { encoder, readout, head, targets, offsets, device: vb.device().clone() })
    }

    /// Logits `[B, Σ classes]` of a featurised batch.
    pub fn logits(&self, input: &Featurized, train: bool) -> Result<Tensor> {
        let out = self.encoder.forward(input, train)?;
        self.head.forward(&self.readout.forward(&out, train)?)
    }

    /// Graph embeddings `[items, readout width]` (the readout of the encoder's output, the head's
    /// input), inference path, in batches of 256.
    pub fn embeddings(&self, items: &[GraphItem]) -> Result<Tensor> {
        let mut parts = Vec::new();
        for chunk in items.chunks(256) {
            let windows: Vec<&Window> = chunk.iter().map(|b| &b.window).collect();
            let out = self.encoder.forward(&self.encoder.featurize(&windows)?, false)?;
            parts.push(self.readout.forward(&out, false)?);
        }
        if parts.is_empty() {
            return Tensor::zeros((0, self.readout.dim(self.encoder.unit_dim())), DType::F32, &self.device);
        }
        Tensor::cat(&parts, 0)
    }

    /// Mean over targets of each target's loss; `labels[i][t]` are item `i`'s labels for
    /// target `t`.
    fn loss_of(&self, logits: &Tensor, labels: &[Vec<Vec<usize>>]) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for (t, target) in self.targets.iter().enumerate() {
            let n = target.classes.len();
            let z = logits.narrow(1, self.offsets[t], n)?;
            let loss = if target.multi_label {
                let mut y = vec![0f32; labels.len() * n];
                for (i, it) in labels.iter().enumerate() {
                    for &l in &it[t] {
                        y[i * n + l] = 1.0;
                    }
                }
                candle_nn::loss::binary_cross_entropy_with_logit(
                    &z,
                    &Tensor::from_vec(y, (labels.len(), n), &self.device)?,
                )?
            } else {
                let y: Vec<u32> = labels.iter().map(|it| it[t].first().copied().unwrap_or(0) as u32).collect();
                candle_nn::loss::cross_entropy(&z, &Tensor::from_vec(y, labels.len(), &self.device)?)?
            };
            total = Some(match total {
                None => loss,
                Some(s) => (s + loss)?,
            });
        }
        match total {
            Some(t) => t / self.targets.len() as f64,
            None => candle_core::bail!("a graph task without targets"),
        }
    }

    /// Validation metrics of one target from its logits.
    fn target_metrics(&self, t: usize, scores: &[Vec<f32>], items: &[GraphItem]) -> Result<Vec<(&'static str, f64)>> {
        let (lo, n) = (self.offsets[t], self.targets[t].classes.len());
        let part: Vec<&[f32]> = scores.iter().map(|r| &r[lo..lo + n]).collect();
        if self.targets[t].multi_label {
            let target: Vec<Vec<bool>> =
                items.iter().map(|it| (0..n).map(|c| it.labels[t].contains(&c)).collect()).collect();
            let pred: Vec<Vec<bool>> = part.iter().map(|r| r.iter().map(|&v| v > 0.0).collect()).collect();
            let probs: Vec<Vec<f64>> =
                part.iter().map(|r| r.iter().map(|&v| 1.0 / (1.0 + (-v as f64).exp())).collect()).collect();
            Ok(vec![
                ("macro_f1", metrics::macro_f1_multilabel(&pred, &target).map_err(metric_error)?),
                ("fmax", metrics::fmax(&probs, &target).map_err(metric_error)?),
            ])
        } else {
            let rows: Vec<Vec<f32>> = part.iter().map(|r| r.to_vec()).collect();
            let pred = metrics::argmax(&rows);
            let labels: Vec<usize> = items.iter().map(|it| it.labels[t].first().copied().unwrap_or(0)).collect();
            let mut m = vec![
                ("accuracy", metrics::accuracy(&pred, &labels).map_err(metric_error)?),
                ("macro_f1", metrics::macro_f1(&pred, &labels).map_err(metric_error)?),
            ];
            // Two classes: class 1 (the second name in sorted order, e.g. "1" of a 0/1 label)
            // is the positive one; its score is the logit margin.
            if n == 2 {
                let scores: Vec<f64> = rows.iter().map(|r| f64::from(r[1] - r[0])).collect();
                let pos: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
                if pos.iter().any(|&p| p) && pos.iter().any(|&p| !p) {
                    m.push(("auroc", metrics::auroc(&scores, &pos).map_err(metric_error)?));
                    m.push(("auprc", metrics::auprc(&scores, &pos).map_err(metric_error)?));
                }
            }
            Ok(m)
        }
    }

    fn check_labels(&self, items: &[&GraphItem]) -> Result<()> {
        for it in items {
            if it.labels.len() != self.targets.len() {
                candle_core::bail!("an item with {} label columns for {} targets", it.labels.len(), self.targets.len());
            }
            for (t, ls) in it.labels.iter().enumerate() {
                if let Some(l) = ls.iter().find(|&&l| l >= self.targets[t].classes.len()) {
                    candle_core::bail!(
                        "label {l} of target {} with {} classes",
                        self.targets[t].name,
                        self.targets[t].classes.len()
                    );
                }
            }
        }
        Ok(())
    }
}

impl Objective for GraphTask {
    type Item = GraphItem;
    type Batch = GraphBatch;

    fn prepare(&self, items: &[&GraphItem], _rng: &mut Rng) -> Result<GraphBatch> {
        self.check_labels(items)?;
        let windows: Vec<&Window> = items.iter().map(|i| &i.window).collect();
        Ok(GraphBatch {
            input: self.encoder.featurize(&windows)?,
            labels: items.iter().map(|i| i.labels.clone()).collect(),
        })
    }

    fn loss(&self, batch: GraphBatch) -> Result<(Tensor, Vec<(String, f64)>)> {
        let logits = self.logits(&batch.input, true)?;
        Ok((self.loss_of(&logits, &batch.labels)?, vec![]))
    }

    fn evaluate(&self, items: &[GraphItem]) -> Result<BTreeMap<String, f64>> {
        self.check_labels(&items.iter().collect::<Vec<_>>())?;
        let mut scores: Vec<Vec<f32>> = Vec::with_capacity(items.len());
        let mut loss = 0.0;
        for chunk in items.chunks(256) {
            let windows: Vec<&Window> = chunk.iter().map(|b| &b.window).collect();
            let logits = self.logits(&self.encoder.featurize(&windows)?, false)?;
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
