//! Parity with the PyTorch references on identical deterministic weights (fixtures written by
//! `tests/reference/esm_reference.py`): ESM-2 against fair-esm 2.0.0 at the 8M and 35M sizes,
//! ESM-AA against our transcription of the official ESM-AA code on code-switch sequences of a
//! real structure (1UBQ), and a Hugging Face `EsmForMaskedLM` directory. Tolerance: max abs
//! difference ≤ 1e-4 in f32.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aa_codeswitch::{Alphabet, CodeSwitchBatch, CodeSwitchSequence, Esm, EsmConfig, EsmPackage, EsmRequest};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
}

/// Same ranges as `value_range` in the reference script.
fn value_range(name: &str, shape: &[usize]) -> (f64, f64) {
    if name.ends_with("means.weight") {
        (0.0, 3.0)
    } else if name.ends_with("stds.weight") {
        (0.5, 3.0)
    } else if name.ends_with("mul.weight") {
        (0.5, 1.5)
    } else if name.ends_with("gbf.bias.weight") {
        (-0.2, 0.2)
    } else if name == "embed_tokens.weight" {
        (-1.0, 1.0)
    } else if name.contains("norm") && name.ends_with("weight") {
        (0.8, 1.2)
    } else if name.ends_with("bias") {
        (-0.1, 0.1)
    } else {
        let a = (3.0 / *shape.last().unwrap() as f64).sqrt();
        (-a, a)
    }
}

fn det_tensor(name: &str, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let seed = fnv1a(name);
    let (lo, hi) = value_range(name, shape);
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let u = (mix(seed ^ mix(i)) >> 11) as f64 / (1u64 << 53) as f64;
            (lo + (hi - lo) * u) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

struct Case {
    cfg: EsmConfig,
    model: Esm,
    repr_layers: Vec<usize>,
    expected: HashMap<String, Tensor>,
}

fn load_case(tag: &str) -> Case {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{tag}.json"))).unwrap()).unwrap();
    let cfg: EsmConfig = serde_json::from_value(meta["config"].clone()).unwrap();
    let mut tensors = HashMap::new();
    for p in meta["params"].as_array().unwrap() {
        let name = p[0].as_str().unwrap();
        let shape: Vec<usize> = p[1].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        tensors.insert(name.to_string(), det_tensor(name, &shape));
    }
    let model = Esm::load(VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu), &cfg).unwrap();
    let repr_layers = meta["repr_layers"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let expected =
        candle_core::safetensors::load(fixtures().join(format!("{tag}_expected.safetensors")), &Device::Cpu).unwrap();
    Case { cfg, model, repr_layers, expected }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Compares only the rows of real (non-pad) tokens: padded positions are undefined.
fn check_rows(what: &str, got: &Tensor, want: &Tensor, lengths: &[usize]) {
    for (b, &len) in lengths.iter().enumerate() {
        let g = got.get(b).unwrap().narrow(0, 0, len).unwrap();
        let w = want.get(b).unwrap().narrow(0, 0, len).unwrap();
        let d = max_abs_diff(&g, &w);
        assert!(d <= TOL, "{what}[{b}]: max abs diff {d:e}");
    }
}

fn rows_i64(t: &Tensor) -> Vec<Vec<i64>> {
    t.to_dtype(DType::I64).unwrap().to_vec2::<i64>().unwrap()
}

fn esm2_case(tag: &str) {
    let case = load_case(tag);
    let toks = rows_i64(&case.expected["tokens"]);
    let seqs: Vec<CodeSwitchSequence> = toks
        .iter()
        .map(|r| CodeSwitchSequence::from_tokens(r.iter().filter(|&&t| t != 1).map(|&t| t as u32).collect()))
        .collect();
    let alphabet = Alphabet::esm2();
    let batch = CodeSwitchBatch::collate(&seqs.iter().collect::<Vec<_>>(), &alphabet, &Device::Cpu).unwrap();
    let req = EsmRequest { repr_layers: case.repr_layers.clone(), logits: true, contacts: true, ..Default::default() };
    let out = case.model.forward(&batch, &req).unwrap();
    check_rows("logits", out.logits.as_ref().unwrap(), &case.expected["logits"], &batch.lengths);
    for l in &case.repr_layers {
        check_rows(&format!("rep_{l}"), &out.representations[l], &case.expected[&format!("rep_{l}")], &batch.lengths);
    }
    let contact_lengths: Vec<usize> = batch.lengths.iter().map(|l| l - 2).collect();
    check_rows("contacts", out.contacts.as_ref().unwrap(), &case.expected["contacts"], &contact_lengths);
    assert_eq!(case.cfg.vocab_size, 33);
    // Without attention maps the fused attention kernel runs: the same numbers.
    let req = EsmRequest { repr_layers: case.repr_layers.clone(), logits: true, ..Default::default() };
    let fused = case.model.forward(&batch, &req).unwrap();
    check_rows("fused logits", fused.logits.as_ref().unwrap(), &case.expected["logits"], &batch.lengths);
    for l in &case.repr_layers {
        check_rows(
            &format!("fused rep_{l}"),
            &fused.representations[l],
            &case.expected[&format!("rep_{l}")],
            &batch.lengths,
        );
    }
    // One sequence alone (no padding) gives its rows of the padded batch.
    let single = CodeSwitchBatch::collate(&[&seqs[1]], &alphabet, &Device::Cpu).unwrap();
    let one = case.model.forward(&single, &req).unwrap();
    let want = case.expected["logits"].narrow(0, 1, 1).unwrap();
    check_rows("single logits", one.logits.as_ref().unwrap(), &want, &single.lengths);
}

#[test]
fn esm2_t6_8m_equals_fair_esm() {
    esm2_case("esm2_t6_8m");
}

#[test]
fn esm2_t12_35m_equals_fair_esm() {
    esm2_case("esm2_t12_35m");
}

fn esm_aa_case(tag: &str) {
    let case = load_case(tag);
    let toks = rows_i64(&case.expected["tokens"]);
    let aa = rows_i64(&case.expected["aa_mask"]);
    let has = rows_i64(&case.expected["has_coords"]);
    let coords = case.expected["coords"].to_vec3::<f32>().unwrap();
    let seqs: Vec<CodeSwitchSequence> = (0..toks.len())
        .map(|b| {
            let len = toks[b].iter().filter(|&&t| t != 1).count();
            let mut s = CodeSwitchSequence::from_tokens(toks[b][..len].iter().map(|&t| t as u32).collect());
            for i in 0..len {
                s.aa_mask[i] = aa[b][i] == 1;
                if aa[b][i] == 0 {
                    s.atom[i] = Some(i as u32);
                }
                if has[b][i] == 1 {
                    s.coords[i] = Some([coords[b][i][0], coords[b][i][1], coords[b][i][2]]);
                }
            }
            s
        })
        .collect();
    let alphabet = Alphabet::esm_aa();
    let batch = CodeSwitchBatch::collate(&seqs.iter().collect::<Vec<_>>(), &alphabet, &Device::Cpu).unwrap();
    assert!(batch.pairs.is_some());
    let req = EsmRequest { repr_layers: case.repr_layers.clone(), logits: true, contacts: true, ..Default::default() };
    let out = case.model.forward(&batch, &req).unwrap();
    check_rows("logits", out.logits.as_ref().unwrap(), &case.expected["logits"], &batch.lengths);
    for l in &case.repr_layers {
        check_rows(&format!("rep_{l}"), &out.representations[l], &case.expected[&format!("rep_{l}")], &batch.lengths);
    }
    let pair = out.pair.as_ref().unwrap();
    check_rows("pair", pair, &case.expected["pair"], &batch.lengths);
    let dist = case.model.distances(pair, false).unwrap();
    check_rows("distances", &dist, &case.expected["distances"], &batch.lengths);
    let contact_lengths: Vec<usize> = batch.lengths.iter().map(|l| l - 2).collect();
    check_rows("contacts", out.contacts.as_ref().unwrap(), &case.expected["contacts"], &contact_lengths);
    // The pair bias changes the result: the same sequences without atom pairs differ.
    let mut plain = batch.clone();
    plain.pairs = None;
    let out2 = case.model.forward(&plain, &EsmRequest { logits: true, ..Default::default() }).unwrap();
    assert!(max_abs_diff(out2.logits.as_ref().unwrap(), out.logits.as_ref().unwrap()) > 1e-2);
}

#[test]
fn esm_aa_t6_8m_equals_reference() {
    esm_aa_case("esm_aa_t6_8m");
}

#[test]
fn esm_aa_t12_35m_equals_reference() {
    esm_aa_case("esm_aa_t12_35m");
}

#[test]
fn hugging_face_directory_equals_transformers() {
    let pkg = EsmPackage::from_dir(&fixtures().join("hf-tiny"), &Device::Cpu).unwrap();
    assert_eq!(pkg.alphabet, Alphabet::esm2());
    let expected =
        candle_core::safetensors::load(fixtures().join("hf_tiny_expected.safetensors"), &Device::Cpu).unwrap();
    let toks = rows_i64(&expected["tokens"]);
    let seqs: Vec<CodeSwitchSequence> = toks
        .iter()
        .map(|r| CodeSwitchSequence::from_tokens(r.iter().filter(|&&t| t != 1).map(|&t| t as u32).collect()))
        .collect();
    let batch = CodeSwitchBatch::collate(&seqs.iter().collect::<Vec<_>>(), &pkg.alphabet, &Device::Cpu).unwrap();
    let out = pkg.model.forward(&batch, &EsmRequest { logits: true, contacts: true, ..Default::default() }).unwrap();
    check_rows("logits", out.logits.as_ref().unwrap(), &expected["logits"], &batch.lengths);
    let contact_lengths: Vec<usize> = batch.lengths.iter().map(|l| l - 2).collect();
    check_rows("contacts", out.contacts.as_ref().unwrap(), &expected["contacts"], &contact_lengths);
    // The tokenizer reproduces fair-esm's batch converter on the same string.
    let ids = pkg.alphabet.encode(&pkg.tokenizer, "GSHMLEDP").unwrap();
    assert_eq!(ids, seqs[1].tokens);
}
