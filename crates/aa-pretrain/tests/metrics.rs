//! Metrics against scikit-learn / SciPy / a NumPy Fmax on fixed random inputs
//! (`tests/reference/metrics_reference.py`). Tolerance 1e-9.

use aa_pretrain::metrics::*;

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(what: &str, got: f64, want: &serde_json::Value) {
    let want = want.as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{what}: {got} vs reference {want}");
}

#[test]
fn match_the_reference_libraries() {
    let fx: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metrics_reference.json"
    )))
    .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for case in fx["cases"].as_array().unwrap() {
        let kind = case["kind"].as_str().unwrap();
        *seen.entry(kind.to_string()).or_insert(0) += 1;
        match kind {
            "classification" => {
                let logits: Vec<Vec<f32>> = case["logits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| f64s(r).iter().map(|&v| v as f32).collect())
                    .collect();
                let labels: Vec<usize> = f64s(&case["labels"]).iter().map(|&v| v as usize).collect();
                let pred = argmax(&logits);
                close("accuracy", accuracy(&pred, &labels).unwrap(), &case["accuracy"]);
                close("macro-F1", macro_f1(&pred, &labels).unwrap(), &case["macro_f1"]);
            }
            "binary" => {
                let s = f64s(&case["scores"]);
                let y: Vec<bool> = f64s(&case["labels"]).iter().map(|&v| v > 0.5).collect();
                close("AUROC", auroc(&s, &y).unwrap(), &case["auroc"]);
                close("AUPRC", auprc(&s, &y).unwrap(), &case["auprc"]);
            }
            "regression" => {
                let (p, t) = (f64s(&case["pred"]), f64s(&case["target"]));
                close("Spearman", spearman(&p, &t).unwrap(), &case["spearman"]);
                close("Pearson", pearson(&p, &t).unwrap(), &case["pearson"]);
                close("RMSE", rmse(&p, &t).unwrap(), &case["rmse"]);
            }
            "multilabel" => {
                let p: Vec<Vec<f64>> = case["pred"].as_array().unwrap().iter().map(f64s).collect();
                let t: Vec<Vec<bool>> = case["target"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| f64s(r).iter().map(|&v| v > 0.5).collect())
                    .collect();
                close("Fmax", fmax(&p, &t).unwrap(), &case["fmax"]);
            }
            "multilabel_f1" => {
                let b = |v: &serde_json::Value| -> Vec<Vec<bool>> {
                    v.as_array().unwrap().iter().map(|r| f64s(r).iter().map(|&x| x > 0.5).collect()).collect()
                };
                close(
                    "multi-label macro-F1",
                    macro_f1_multilabel(&b(&case["pred"]), &b(&case["target"])).unwrap(),
                    &case["macro_f1"],
                );
            }
            other => panic!("unknown case {other}"),
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
}

#[test]
fn bad_inputs_are_errors() {
    assert!(matches!(accuracy(&[1, 2], &[1]), Err(MetricError::Length { .. })));
    assert!(matches!(macro_f1(&[], &[]), Err(MetricError::Undefined(_))));
    assert!(matches!(auroc(&[0.1, 0.2], &[true, true]), Err(MetricError::Undefined(_))));
    assert!(matches!(pearson(&[1.0, 1.0], &[1.0, 2.0]), Err(MetricError::Undefined(_))));
    assert!(fmax(&[vec![0.1, 0.2]], &[vec![true]]).is_err());
}
