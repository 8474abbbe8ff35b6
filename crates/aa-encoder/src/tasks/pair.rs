//! Pair regression (GlycanML's protein–glycan interaction) for any encoder: the encoder reads
//! one side of each pair (a glycan), the other side is a fixed embedding matrix (proteins,
//! embedded once by a frozen model), and an MLP head (`mlp.layers.{0,1}`, TorchDrug's
//! `InteractionPrediction` shape) reads `partner ‖ item` and regresses the value; mean squared
//! error on values standardised by the training mean and deviation, as TorchDrug normalises
//! regression targets. Validation: Spearman (GlycanML's metric), Pearson, MAE and RMSE of the
//! de-standardised predictions over every pair.
//!
//! An item is one window with all its pairs of one split, so that each window is encoded once
//! per batch however many partners it has; the loss is the mean over the batch's pairs (what
//! uniform pair sampling gives in expectation).

use std::collections::BTreeMap;

use aa_pretrain::metrics;
use aa_pretrain::rng::Rng;
use aa_pretrain::trainer::Objective;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::metric_error;
use crate::heads::Mlp2;
use crate::{Encoder, Featurized, Readout, Window};

/// A window and its pairs: `(partner row, value)`.
#[derive(Clone, Debug)]
pub struct PairItem {
    /// The encoded side (a whole glycan).
    pub window: Window,
    /// Partner rows (into [`PairTask`]'s partner matrix) and target values.
    pub pairs: Vec<(u32, f32)>,
}

/// An encoder, a readout, fixed partner embeddings and a regression head.
pub struct PairTask {
    /// The encoder (its weights at the root of the variable tree).
    pub encoder: Box<dyn Encoder>,
    /// The readout of the encoded side.
    pub readout: Box<dyn Readout>,
    /// Partner embeddings `[partners, width]` (plain tensor: not trained).
    pub partners: Tensor,
    head: Mlp2,
    /// Training mean and standard deviation of the values (targets are standardised by them).
    pub scale: (f64, f64),
    device: Device,
}

/// A featurised batch with its pairs.
pub struct PairBatch {
    input: Featurized,
    item: Tensor,
    partner: Tensor,
    target: Tensor,
}

impl PairTask {
    /// The task with a new head under `vb.pp("mlp")` reading `partner ‖ readout`; `scale` is the
    /// training values' mean and standard deviation.
    pub fn new(
        encoder: Box<dyn Encoder>,
        readout: Box<dyn Readout>,
        vb: VarBuilder,
        partners: Tensor,
        scale: (f64, f64),
    ) -> Result<PairTask> {
        if !(scale.1.is_finite() && scale.1 > 0.0 && scale.0.is_finite()) {
            candle_core::bail!("a pair task needs a finite mean and a positive deviation, got {scale:?}");
        }
        let d = readout.dim(encoder.unit_dim()) + partners.dim(1)?;
        let head = Mlp2::new(vb.pp("mlp"), d, 1)?;
        Ok(PairTask { encoder, readout, partners, head, scale, device: vb.device().clone() })
    }

    fn batch(&self, items: &[&PairItem]) -> Result<PairBatch> {
        let n = self.partners.dim(0)?;
        let (mut item, mut partner, mut target) = (Vec::new(), Vec::new(), Vec::new());
        for (i, it) in items.iter().enumerate() {
            for &(p, v) in &it.pairs {
                if p as usize >= n {
                    candle_core::bail!("partner row {p} of {n}");
                }
                item.push(i as u32);
                partner.push(p);
                target.push(((f64::from(v) - self.scale.0) / self.scale.1) as f32);
            }
        }
        let windows: Vec<&Window> = items.iter().map(|i| &i.window).collect();
        let len = item.len();
        Ok(PairBatch {
            input: self.encoder.featurize(&windows)?,
            item: Tensor::from_vec(item, len, &self.device)?,
            partner: Tensor::from_vec(partner, len, &self.device)?,
            target: Tensor::from_vec(target, len, &self.device)?,
        })
    }

    /// Standardised predictions `[pairs]` of a batch.
    fn predict(&self, b: &PairBatch, train: bool) -> Result<Tensor> {
        let g = self.readout.forward(&self.encoder.forward(&b.input, train)?, train)?;
        self.head.forward_pairs(&self.partners, &g, &b.partner, &b.item)?.squeeze(1)
    }
}

impl Objective for PairTask {
    type Item = PairItem;
    type Batch = PairBatch;

    fn prepare(&self, items: &[&PairItem], _rng: &mut Rng) -> Result<PairBatch> {
        self.batch(items)
    }

    fn loss(&self, batch: PairBatch) -> Result<(Tensor, Vec<(String, f64)>)> {
        let pred = self.predict(&batch, true)?;
        Ok((candle_nn::loss::mse(&pred, &batch.target)?, vec![]))
    }

    fn evaluate(&self, items: &[PairItem]) -> Result<BTreeMap<String, f64>> {
        let (mut pred, mut target) = (Vec::new(), Vec::new());
        let mut sq = 0.0;
        for chunk in items.chunks(64) {
            let refs: Vec<&PairItem> = chunk.iter().collect();
            let b = self.batch(&refs)?;
            let p = self.predict(&b, false)?;
            sq += (&p - &b.target)?.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let (m, s) = self.scale;
            pred.extend(p.to_vec1::<f32>()?.into_iter().map(|x| f64::from(x) * s + m));
            target.extend(chunk.iter().flat_map(|it| it.pairs.iter().map(|&(_, v)| f64::from(v))));
        }
        let n = pred.len().max(1) as f64;
        let mae = pred.iter().zip(&target).map(|(p, t)| (p - t).abs()).sum::<f64>() / n;
        Ok(BTreeMap::from([
            ("loss".to_string(), sq / n),
            ("spearman".to_string(), metrics::spearman(&pred, &target).map_err(metric_error)?),
            ("pearson".to_string(), metrics::pearson(&pred, &target).map_err(metric_error)?),
            ("rmse".to_string(), metrics::rmse(&pred, &target).map_err(metric_error)?),
            ("mae".to_string(), mae),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncoderOutput, Requirements};
    use std::sync::Arc;

    /// An encoder whose unit embedding is a learnable vector per unit name length (enough to
    /// tell glycans apart in a test).
    struct Toy(Tensor);

    impl Encoder for Toy {
        fn family(&self) -> &str {
            "toy"
        }
        fn unit_dim(&self) -> usize {
            self.0.dim(1).unwrap()
        }
        fn layer_dims(&self) -> Vec<usize> {
            vec![]
        }
        fn requirements(&self) -> Requirements {
            Requirements::default()
        }
        fn featurize(&self, windows: &[&Window]) -> Result<Featurized> {
            let ids: Vec<u32> = windows
                .iter()
                .flat_map(|w| w.units.iter().map(|&u| (w.graph.units[u as usize].name.len() % 4) as u32))
                .collect();
            let uw: Vec<u32> =
                windows.iter().enumerate().flat_map(|(i, w)| std::iter::repeat_n(i as u32, w.units.len())).collect();
            Ok(Featurized::new((ids, uw), windows))
        }
        fn forward(&self, input: &Featurized, _train: bool) -> Result<EncoderOutput> {
            let (ids, uw) = input.get::<(Vec<u32>, Vec<u32>)>("toy")?;
            let units = self.0.index_select(&Tensor::new(ids.as_slice(), &Device::Cpu)?, 0)?;
            Ok(EncoderOutput {
                layers: vec![],
                units,
                unit_window: uw.clone(),
                atoms: None,
                windows: input.windows,
                geometry: Some(input.geometry.clone()),
            })
        }
    }

    fn glycan(name: &str) -> Window {
        let mut g = aa_graph::HeteroGraph::default();
        g.units.push(aa_graph::Unit {
            kind: aa_graph::UnitKind::Monosaccharide,
            type_id: 0,
            name: name.into(),
            anchor: None,
            label: None,
        });
        Window::whole(Arc::new(g))
    }

    #[test]
    fn learns_pairs_and_reaches_every_parameter() {
        let dev = Device::Cpu;
        let map = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        let table = vb.get_with_hints((4, 3), "emb", candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
        let partners = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &dev).unwrap();
        // value = +1 for (glycan of name length 1, partner 0) and (length 2, partner 1), else −1.
        let items: Vec<PairItem> = ["a", "bb"]
            .iter()
            .enumerate()
            .map(|(i, n)| PairItem {
                window: glycan(n),
                pairs: vec![(0, if i == 0 { 1.0 } else { -1.0 }), (1, if i == 1 { 1.0 } else { -1.0 })],
            })
            .collect();
        let task =
            PairTask::new(Box::new(Toy(table)), Box::new(crate::MeanMax::default()), vb, partners, (0.0, 1.0)).unwrap();
        let mut opt = candle_nn::optim::AdamW::new(
            map.all_vars(),
            candle_nn::optim::ParamsAdamW { lr: 0.05, ..Default::default() },
        )
        .unwrap();
        use candle_nn::Optimizer;
        let refs: Vec<&PairItem> = items.iter().collect();
        let first = task.loss(task.prepare(&refs, &mut Rng::new(0)).unwrap()).unwrap().0;
        let grads = first.backward().unwrap();
        for (name, v) in map.data().lock().unwrap().iter() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "zero gradient: {name}");
        }
        for _ in 0..200 {
            let (loss, _) = task.loss(task.prepare(&refs, &mut Rng::new(0)).unwrap()).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let m = task.evaluate(&items).unwrap();
        assert!(m["loss"] < 0.05, "{m:?}");
        assert!(m["pearson"] > 0.95, "{m:?}");
        assert!(PairTask::new(
            Box::new(Toy(Tensor::zeros((4, 3), DType::F32, &dev).unwrap())),
            Box::new(crate::MeanMax::default()),
            VarBuilder::zeros(DType::F32, &dev),
            Tensor::zeros((1, 2), DType::F32, &dev).unwrap(),
            (0.0, 0.0)
        )
        .is_err());
    }
}
