//! The training path: same numbers as inference, and gradients reach every parameter
//! (candle's fused LayerNorm/softmax/rotary kernels have no backward, so `train: true` must
//! avoid them).

use aa_codeswitch::{Alphabet, CodeSwitchBatch, CodeSwitchSequence, Esm, EsmConfig, EsmRequest};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

fn sequences(alphabet: &Alphabet) -> Vec<CodeSwitchSequence> {
    let tok = alphabet.tokenizer().unwrap();
    let mut a = CodeSwitchSequence::from_tokens(alphabet.encode(&tok, "MK<mask>C N_a C_a C_a O_a S_a LV").unwrap());
    for i in 5..10 {
        a.aa_mask[i] = false;
        a.atom[i] = Some(i as u32);
        a.coords[i] = Some([i as f32 * 1.3, (i * i) as f32 * 0.2, 1.0 - i as f32 * 0.4]);
    }
    let b = CodeSwitchSequence::from_tokens(alphabet.encode(&tok, "GSHM").unwrap());
    vec![a, b]
}

#[test]
fn train_path_equals_inference_and_reaches_every_parameter() {
    let alphabet = Alphabet::esm_aa();
    let varmap = VarMap::new();
    let model = Esm::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &EsmConfig::tiny(true)).unwrap();
    let seqs = sequences(&alphabet);
    let batch = CodeSwitchBatch::collate(&seqs.iter().collect::<Vec<_>>(), &alphabet, &Device::Cpu).unwrap();
    assert_eq!(seqs[0].positions(), vec![0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 5, 6, 7]);
    let req = |train| EsmRequest { logits: true, train, ..Default::default() };
    let eval = model.forward(&batch, &req(false)).unwrap();
    let train = model.forward(&batch, &req(true)).unwrap();
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    };
    let len = batch.lengths[1];
    let rows = |t: &Tensor, b: usize, n: usize| t.get(b).unwrap().narrow(0, 0, n).unwrap();
    for (b, &n) in batch.lengths.iter().enumerate() {
        let d = diff(&rows(eval.logits.as_ref().unwrap(), b, n), &rows(train.logits.as_ref().unwrap(), b, n));
        assert!(d < 1e-4, "sequence {b}: train vs eval logits differ by {d}");
    }
    assert!(len < batch.lengths[0]);
    let pair = train.pair.as_ref().unwrap();
    let dist = model.distances(pair, true).unwrap();
    let loss =
        (train.logits.unwrap().sqr().unwrap().mean_all().unwrap() + dist.sqr().unwrap().mean_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    assert!(vars.len() > 30);
    for (name, var) in vars.iter() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(norm > 0.0 && norm.is_finite(), "{name}: gradient norm {norm}");
    }
}

#[test]
fn esm_aa_without_atoms_is_esm2() {
    // An ESM-AA model on a residue-only sequence ignores its pair modules: equal to the same
    // weights loaded as ESM-2 (vocabulary cut to 33 rows).
    let alphabet = Alphabet::esm_aa();
    let varmap = VarMap::new();
    let aa = Esm::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &EsmConfig::tiny(true)).unwrap();
    let mut tensors: std::collections::HashMap<String, Tensor> =
        varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    tensors.retain(|k, _| !k.starts_with("gbf") && !k.starts_with("dist_head"));
    let emb = tensors["embed_tokens.weight"].narrow(0, 0, 33).unwrap();
    tensors.insert("embed_tokens.weight".into(), emb);
    let bias = tensors["lm_head.bias"].narrow(0, 0, 33).unwrap();
    tensors.insert("lm_head.bias".into(), bias);
    let esm2 = Esm::load(VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu), &EsmConfig::tiny(false)).unwrap();
    let tok = alphabet.tokenizer().unwrap();
    let s = CodeSwitchSequence::from_tokens(alphabet.encode(&tok, "MKTAYIAK<mask>QR").unwrap());
    let batch = CodeSwitchBatch::collate(&[&s], &alphabet, &Device::Cpu).unwrap();
    let req = EsmRequest { logits: true, ..Default::default() };
    let a = aa.forward(&batch, &req).unwrap().logits.unwrap().narrow(2, 0, 33).unwrap();
    let b = esm2.forward(&batch, &req).unwrap().logits.unwrap();
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(d < 1e-6, "{d}");
}
