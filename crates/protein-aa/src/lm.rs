//! Per-residue language-model features for Vabs-Net (the paper's optional ESM input, official
//! `esm_feat_encoder`): the final hidden state of a frozen ESM-2 / ESM-AA model
//! ([`aa_codeswitch::EsmPackage`], e.g. from [`crate::esm::from_pretrained`]) at each residue
//! token of a window's residue-only sequence. Masked residues and units without a residue token
//! (the virtual node) get zero rows, as the official pipeline zeroes the features of masked
//! residues.

use aa_codeswitch::{CodeSwitchBatch, CodeSwitchSequence, EsmPackage, EsmRequest, Unzip};
use candle_core::{Device, Result, Tensor};

use crate::esm_pretrain::ResidueWindow;

/// A frozen language model giving per-residue features.
pub struct LmFeatures {
    /// The model, its alphabet and tokenizer.
    pub package: EsmPackage,
}

impl LmFeatures {
    /// Features from `package` (used in inference mode; no gradient reaches it).
    pub fn new(package: EsmPackage) -> LmFeatures {
        LmFeatures { package }
    }

    /// Width of the features (the model's hidden size).
    pub fn dim(&self) -> usize {
        self.package.model.config().hidden_size
    }

    /// Feature rows for `windows` laid out as [`aa_sparse_attn::VabsInput::concat`] lays out
    /// their units: for window `i`, one row per window unit (zero where `masked[i][k]`, or when
    /// the unit has no residue token), then `extra[i]` zero rows (its virtual node). One ESM
    /// forward pass over all windows.
    pub fn rows(&self, windows: &[&ResidueWindow], masked: Option<&[Vec<bool>]>, extra: &[usize]) -> Result<Tensor> {
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
        let d = self.dim();
        let zero = Tensor::zeros((1, d), candle_core::DType::F32, &dev)?;
        let mut rows = Vec::new();
        for (i, (w, seq)) in windows.iter().zip(&seqs).enumerate() {
            // Token of each window unit (the first residue token naming it).
            let mut token = vec![None; w.units.len()];
            for (t, u) in seq.unit.iter().enumerate() {
                if let (Some(u), true) = (u, seq.aa_mask[t]) {
                    if let Some(k) = w.units.iter().position(|x| x == u) {
                        token[k].get_or_insert(t);
                    }
                }
            }
            let h = hidden.get(i)?;
            for (k, t) in token.iter().enumerate() {
                let is_masked = masked.and_then(|m| m.get(i)).and_then(|m| m.get(k)).copied().unwrap_or(false);
                rows.push(match t {
                    Some(t) if !is_masked => h.narrow(0, *t, 1)?,
                    _ => zero.clone(),
                });
            }
            for _ in 0..extra.get(i).copied().unwrap_or(0) {
                rows.push(zero.clone());
            }
        }
        Tensor::cat(&rows, 0)
    }
}
