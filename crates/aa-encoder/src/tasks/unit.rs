//! Per-unit classification for any encoder: the encoder's unit rows of the labelled units
//! through a [`ClsHead`] (weights under `residue_cls`, the official name). With a *context*
//! readout ([`UnitTask::with_context`]) each unit row is concatenated with its window's graph
//! vector first, so a graph readout (mean ‖ max, GIGP, HSA-Net) also serves per-unit tasks.
//! Selection metric and reports: accuracy and macro-F1; with two classes also AUROC and AUPRC
//! of class 1.

use std::collections::BTreeMap;

use aa_pretrain::metrics;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{Device, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::metric_error;
use crate::heads::ClsHead;
use crate::{Encoder, Featurized, Readout, Window};

/// A window of units with one optional label per unit (`None`: unlabelled).
#[derive(Clone, Debug)]
pub struct LabelledWindow {
    /// The units.
    pub window: Window,
    /// One label per unit of the window.
    pub labels: Vec<Option<u32>>,
}

/// A per-unit classification task on any encoder.
pub struct UnitTask {
    /// The encoder.
    pub encoder: Box<dyn Encoder>,
    /// The head (`residue_cls`).
    pub head: ClsHead,
    /// Number of classes.
    pub classes: usize,
    /// A graph readout whose window vector joins every unit row (`None`: unit rows alone).
    pub context: Option<Box<dyn Readout>>,
}

/// A prepared unit-task batch.
pub struct UnitBatch {
    input: Featurized,
    rows: Tensor,
    labels: Tensor,
}

impl UnitTask {
    /// The task with a new head under `residue_cls`.
    pub fn new(encoder: Box<dyn Encoder>, vb: VarBuilder, classes: usize) -> Result<UnitTask> {
        let d = encoder.unit_dim();
        Ok(UnitTask { head: ClsHead::new(vb.pp("residue_cls"), d, classes)?, encoder, classes, context: None })
    }

    /// The task with a context readout: the head (under `residue_cls`) reads
    /// `unit row ‖ readout(window)`.
    pub fn with_context(
        encoder: Box<dyn Encoder>,
        context: Box<dyn Readout>,
        vb: VarBuilder,
        classes: usize,
    ) -> Result<UnitTask> {
        let d = encoder.unit_dim() + context.dim(encoder.unit_dim());
        Ok(UnitTask { head: ClsHead::new(vb.pp("residue_cls"), d, classes)?, encoder, classes, context: Some(context) })
    }

    fn logits(&self, b: &UnitBatch, train: bool) -> Result<Tensor> {
        let out = self.encoder.forward(&b.input, train)?;
        let mut rows = out.units.index_select(&b.rows, 0)?;
        if let Some(readout) = &self.context {
            let graph = readout.forward(&out, train)?;
            let window: Vec<u32> = b.rows.to_vec1::<u32>()?.iter().map(|&r| out.unit_window[r as usize]).collect();
            let n = window.len();
            let ctx = graph.index_select(&Tensor::from_vec(window, n, graph.device())?, 0)?;
            rows = Tensor::cat(&[&rows, &ctx], D::Minus1)?;
        }
        self.head.forward(&rows, train)
    }

    /// Class probabilities and labels of every labelled unit of `items` (8 windows a batch).
    pub fn predict(&self, items: &[LabelledWindow]) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
        let mut rng = Rng::new(0);
        let (mut probs, mut labels) = (Vec::new(), Vec::new());
        for chunk in items.chunks(8) {
            let refs: Vec<&LabelledWindow> = chunk.iter().collect();
            let b = self.prepare(&refs, &mut rng)?;
            if b.labels.dim(0)? == 0 {
                continue;
            }
            let p = candle_nn::ops::softmax(&self.logits(&b, false)?, D::Minus1)?;
            probs.extend(p.to_vec2::<f32>()?);
            labels.extend(b.labels.to_vec1::<u32>()?.into_iter().map(|l| l as usize));
        }
        Ok((probs, labels))
    }
}

impl Objective for UnitTask {
    type Item = LabelledWindow;
    type Batch = UnitBatch;

    fn prepare(&self, items: &[&LabelledWindow], _rng: &mut Rng) -> Result<UnitBatch> {
        let windows: Vec<&Window> = items.iter().map(|it| &it.window).collect();
        let (mut rows, mut labels, mut base) = (Vec::new(), Vec::new(), 0u32);
        for it in items {
            if it.labels.len() != it.window.units.len() {
                candle_core::bail!("{} labels for a window of {} units", it.labels.len(), it.window.units.len());
            }
            for (k, l) in it.labels.iter().enumerate() {
                if let Some(l) = l {
                    if *l as usize >= self.classes {
                        candle_core::bail!("label {l} of a {}-class task", self.classes);
                    }
                    rows.push(base + k as u32);
                    labels.push(*l);
                }
            }
            base += it.window.units.len() as u32;
        }
        let n = rows.len();
        let dev = Device::Cpu;
        Ok(UnitBatch {
            input: self.encoder.featurize(&windows)?,
            rows: Tensor::from_vec(rows, n, &dev)?,
            labels: Tensor::from_vec(labels, n, &dev)?,
        })
    }

    fn loss(&self, b: UnitBatch) -> Result<(Tensor, Vec<(String, f64)>)> {
        if b.labels.dim(0)? == 0 {
            candle_core::bail!("unit task: a batch without labelled units");
        }
        let logits = self.logits(&b, true)?;
        Ok((candle_nn::loss::cross_entropy(&logits, &b.labels)?, vec![]))
    }

    fn evaluate(&self, items: &[LabelledWindow]) -> Result<BTreeMap<String, f64>> {
        let (probs, labels) = self.predict(items)?;
        let pred = metrics::argmax(&probs);
        let mut m = BTreeMap::from([
            ("accuracy".to_string(), metrics::accuracy(&pred, &labels).map_err(metric_error)?),
            ("macro_f1".to_string(), metrics::macro_f1(&pred, &labels).map_err(metric_error)?),
        ]);
        if self.classes == 2 {
            let scores: Vec<f64> = probs.iter().map(|p| p[1] as f64).collect();
            let pos: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
            m.insert("auroc".into(), metrics::auroc(&scores, &pos).map_err(metric_error)?);
            m.insert("auprc".into(), metrics::auprc(&scores, &pos).map_err(metric_error)?);
        }
        Ok(m)
    }
}
