//! Per-residue language-model features for Vabs-Net (the paper's optional ESM input, official
//! `esm_feat_encoder`): the final hidden state of a frozen ESM-2 / ESM-AA model
//! ([`aa_codeswitch::EsmPackage`], e.g. from [`crate::esm::from_pretrained`]) at each residue
//! token of a window's residue-only sequence. Masked residues and units without a residue token
//! (the virtual node) get zero rows, as the official pipeline zeroes the features of masked
//! residues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aa_codeswitch::{CodeSwitchBatch, CodeSwitchSequence, EsmPackage, EsmRequest, Unzip};
use aa_graph::HeteroGraph;
use candle_core::{Device, Result, Tensor};

use crate::esm_pretrain::ResidueWindow;

/// Cached rows of one window, keyed by its graph's address and its units; the value holds the
/// graph, so the address cannot be reused while the entry lives.
type Cache = HashMap<(usize, Vec<u32>), (Arc<HeteroGraph>, Tensor)>;

/// A frozen language model giving per-residue features.
pub struct LmFeatures {
    /// The model, its alphabet and tokenizer.
    pub package: EsmPackage,
    cache: Mutex<Cache>,
}

impl LmFeatures {
    /// Features from `package` (used in inference mode; no gradient reaches it).
    pub fn new(package: EsmPackage) -> LmFeatures {
        LmFeatures { package, cache: Mutex::new(HashMap::new()) }
    }

    /// Width of the features (the model's hidden size).
    pub fn dim(&self) -> usize {
        self.package.model.config().hidden_size
    }

    /// Feature rows for `windows` laid out as [`aa_sparse_attn::VabsInput::concat`] lays out
    /// their units: for window `i`, one row per window unit (zero where `masked[i][k]`, or when
    /// the unit has no residue token), then `extra[i]` zero rows (its virtual node). Windows
    /// seen before come from the cache; the others share one ESM forward pass.
    pub fn rows(&self, windows: &[&ResidueWindow], masked: Option<&[Vec<bool>]>, extra: &[usize]) -> Result<Tensor> {
        let all = self.window_rows(windows)?;
        let zero = Tensor::zeros((1, self.dim()), candle_core::DType::F32, &Device::Cpu)?;
        let mut rows = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            let t = all[i].narrow(0, 0, w.units.len())?;
            match masked.and_then(|m| m.get(i)) {
                Some(m) if m.iter().any(|&x| x) => {
                    for k in 0..w.units.len() {
                        rows.push(if m.get(k) == Some(&true) { zero.clone() } else { t.narrow(0, k, 1)? });
                    }
                }
                _ => rows.push(t),
            }
            for _ in 0..extra.get(i).copied().unwrap_or(0) {
                rows.push(zero.clone());
            }
        }
        Tensor::cat(&rows, 0)
    }

    /// Each window's rows `[units, dim]` (as [`LmFeatures::rows`] without masking) and its
    /// `<cls>` row `[1, dim]` (the hidden state at the BOS token), which official Vabs-Net gives
    /// its virtual node.
    pub fn rows_and_cls(&self, windows: &[&ResidueWindow]) -> Result<Vec<(Tensor, Tensor)>> {
        let all = self.window_rows(windows)?;
        windows
            .iter()
            .zip(all)
            .map(|(w, t)| Ok((t.narrow(0, 0, w.units.len())?, t.narrow(0, w.units.len(), 1)?)))
            .collect()
    }

    /// Every window's cached `[units + 1, dim]` rows (the last is `<cls>`), computing the
    /// missing ones in one ESM forward pass.
    fn window_rows(&self, windows: &[&ResidueWindow]) -> Result<Vec<Tensor>> {
        let keys: Vec<(usize, Vec<u32>)> =
            windows.iter().map(|w| (Arc::as_ptr(&w.graph) as usize, w.units.clone())).collect();
        let poisoned = || candle_core::Error::Msg("language-model cache poisoned".into());
        let missing: Vec<usize> = {
            let cache = self.cache.lock().map_err(|_| poisoned())?;
            let mut seen = std::collections::HashSet::new();
            (0..windows.len()).filter(|&i| !cache.contains_key(&keys[i]) && seen.insert(&keys[i])).collect()
        };
        if !missing.is_empty() {
            let computed = self.compute(&missing.iter().map(|&i| windows[i]).collect::<Vec<_>>())?;
            let mut cache = self.cache.lock().map_err(|_| poisoned())?;
            for (&i, t) in missing.iter().zip(computed) {
                cache.insert(keys[i].clone(), (windows[i].graph.clone(), t));
            }
        }
        let cache = self.cache.lock().map_err(|_| poisoned())?;
        Ok(keys.iter().map(|k| cache[k].1.clone()).collect())
    }

    /// Unmasked rows `[units, dim]` of each window and its `<cls>` row (last), one ESM forward
    /// pass over all of them.
    fn compute(&self, windows: &[&ResidueWindow]) -> Result<Vec<Tensor>> {
        let dev = Device::Cpu;
        let err = |e: aa_codeswitch::CodeSwitchError| candle_core::Error::Msg(format!("language model: {e}"));
        let seqs: Vec<CodeSwitchSequence> = windows
            .iter()
            .map(|w| CodeSwitchSequence::from_units(&w.graph, &w.units, &self.package.alphabet, &Unzip::None))
            .collect::<std::result::Result<_, _>>()
            .map_err(err)?;
        let refs: Vec<&CodeSwitchSequence> = seqs.iter().collect();
        let batch = CodeSwitchBatch::collate(&refs, &self.package.alphabet, &dev).map_err(err)?;
        let hidden = self.package.model.forward(&batch, &EsmRequest::default()).map_err(err)?.hidden.detach();
        let zero = Tensor::zeros((1, self.dim()), candle_core::DType::F32, &dev)?;
        let mut out = Vec::with_capacity(windows.len());
        for (i, (w, seq)) in windows.iter().zip(&seqs).enumerate() {
            // Token of each window unit (the first residue token naming it).
            let slot: HashMap<u32, usize> = w.units.iter().enumerate().map(|(k, &u)| (u, k)).collect();
            let mut token = vec![None; w.units.len()];
            for (t, u) in seq.unit.iter().enumerate() {
                if let (Some(k), true) = (u.and_then(|u| slot.get(&u)), seq.aa_mask[t]) {
                    token[*k].get_or_insert(t);
                }
            }
            let h = hidden.get(i)?;
            let mut rows: Vec<Tensor> = token
                .iter()
                .map(|t| t.map_or_else(|| Ok(zero.clone()), |t| h.narrow(0, t, 1)))
                .collect::<Result<_>>()?;
            // The collated sequence starts with <cls> (ESM's BOS).
            rows.push(h.narrow(0, 0, 1)?);
            out.push(Tensor::cat(&rows, 0)?);
        }
        Ok(out)
    }
}
