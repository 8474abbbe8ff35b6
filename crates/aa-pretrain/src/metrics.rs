//! Evaluation metrics with the reference semantics of scikit-learn / SciPy (and TorchDrug's
//! protein-centric Fmax), checked against values those libraries computed on fixed random
//! inputs (`tests/reference/metrics_reference.py`).

use thiserror::Error;

/// Why a metric cannot be computed.
#[derive(Debug, Error, PartialEq)]
pub enum MetricError {
    /// Inputs of different lengths.
    #[error("{what}: {a} predictions but {b} targets")]
    Length {
        /// The metric.
        what: &'static str,
        /// Number of predictions.
        a: usize,
        /// Number of targets.
        b: usize,
    },
    /// No samples, or a class missing that the metric needs.
    #[error("{0}")]
    Undefined(String),
}

fn same_len(what: &'static str, a: usize, b: usize) -> Result<(), MetricError> {
    if a != b {
        return Err(MetricError::Length { what, a, b });
    }
    if a == 0 {
        return Err(MetricError::Undefined(format!("{what}: no samples")));
    }
    Ok(())
}

/// Index of the largest value of each row (the first on ties).
pub fn argmax(rows: &[Vec<f32>]) -> Vec<usize> {
    rows.iter()
        .map(|r| r.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0)
        .collect()
}

/// Fraction of predictions equal to the label (`sklearn.metrics.accuracy_score`).
pub fn accuracy(pred: &[usize], labels: &[usize]) -> Result<f64, MetricError> {
    same_len("accuracy", pred.len(), labels.len())?;
    Ok(pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / pred.len() as f64)
}

/// Macro-averaged F1 over the classes present in the labels or the predictions, with F1 = 0
/// where precision or recall is undefined (`f1_score(average="macro", zero_division=0)`).
pub fn macro_f1(pred: &[usize], labels: &[usize]) -> Result<f64, MetricError> {
    same_len("macro-F1", pred.len(), labels.len())?;
    let classes: std::collections::BTreeSet<usize> = pred.iter().chain(labels).copied().collect();
    let mut total = 0.0;
    for &c in &classes {
        let tp = pred.iter().zip(labels).filter(|&(&p, &l)| p == c && l == c).count() as f64;
        let predicted = pred.iter().filter(|&&p| p == c).count() as f64;
        let actual = labels.iter().filter(|&&l| l == c).count() as f64;
        // F1 = 2TP / (predicted + actual); both zero cannot happen for a class in the union.
        total += if predicted + actual > 0.0 { 2.0 * tp / (predicted + actual) } else { 0.0 };
    }
    Ok(total / classes.len() as f64)
}

/// Macro-averaged F1 of multi-label predictions (`pred`, `target`: `[samples][classes]`), every
/// class counted, F1 = 0 where undefined (`f1_score(average="macro", zero_division=0)` on
/// indicator matrices).
pub fn macro_f1_multilabel(pred: &[Vec<bool>], target: &[Vec<bool>]) -> Result<f64, MetricError> {
    same_len("multi-label macro-F1", pred.len(), target.len())?;
    let c = target[0].len();
    if pred.iter().chain(target).any(|r| r.len() != c) {
        return Err(MetricError::Undefined("multi-label macro-F1: rows of different widths".into()));
    }
    let mut total = 0.0;
    for k in 0..c {
        let (mut tp, mut called, mut actual) = (0.0, 0.0, 0.0);
        for (p, t) in pred.iter().zip(target) {
            tp += (p[k] && t[k]) as u8 as f64;
            called += p[k] as u8 as f64;
            actual += t[k] as u8 as f64;
        }
        total += if called + actual > 0.0 { 2.0 * tp / (called + actual) } else { 0.0 };
    }
    Ok(total / c.max(1) as f64)
}

/// Ranks 1..n with ties sharing their average rank (SciPy's `rankdata(method="average")`).
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Area under the ROC curve for binary labels (`roc_auc_score`): the Mann–Whitney statistic,
/// ties counted one half.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    same_len("AUROC", scores.len(), labels.len())?;
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Err(MetricError::Undefined("AUROC: needs both positive and negative labels".into()));
    }
    let ranks = average_ranks(scores);
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, &l)| l).map(|(r, _)| r).sum();
    Ok((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision for binary labels (`average_precision_score`): Σ (Rₙ − Rₙ₋₁)·Pₙ over the
/// distinct score thresholds, highest first.
pub fn auprc(scores: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    same_len("AUPRC", scores.len(), labels.len())?;
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    if pos == 0.0 {
        return Err(MetricError::Undefined("AUPRC: no positive labels".into()));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut called, mut ap, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // Everything scoring at least this threshold is called positive.
        let t = scores[order[i]];
        while i < order.len() && scores[order[i]] == t {
            tp += if labels[order[i]] { 1.0 } else { 0.0 };
            called += 1.0;
            i += 1;
        }
        let recall = tp / pos;
        ap += (recall - last_recall) * (tp / called);
        last_recall = recall;
    }
    Ok(ap)
}

/// Pearson correlation (`scipy.stats.pearsonr`).
pub fn pearson(pred: &[f64], target: &[f64]) -> Result<f64, MetricError> {
    same_len("Pearson", pred.len(), target.len())?;
    let n = pred.len() as f64;
    let (mp, mt) = (pred.iter().sum::<f64>() / n, target.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&p, &t) in pred.iter().zip(target) {
        sxy += (p - mp) * (t - mt);
        sxx += (p - mp) * (p - mp);
        syy += (t - mt) * (t - mt);
    }
    if sxx == 0.0 || syy == 0.0 {
        return Err(MetricError::Undefined("Pearson: a constant input".into()));
    }
    Ok(sxy / (sxx * syy).sqrt())
}

/// Spearman rank correlation (`scipy.stats.spearmanr`: Pearson of average ranks).
pub fn spearman(pred: &[f64], target: &[f64]) -> Result<f64, MetricError> {
    same_len("Spearman", pred.len(), target.len())?;
    pearson(&average_ranks(pred), &average_ranks(target))
}

/// Root mean squared error.
pub fn rmse(pred: &[f64], target: &[f64]) -> Result<f64, MetricError> {
    same_len("RMSE", pred.len(), target.len())?;
    let se: f64 = pred.iter().zip(target).map(|(p, t)| (p - t) * (p - t)).sum();
    Ok((se / pred.len() as f64).sqrt())
}

/// Protein-centric maximum F-score (TorchDrug's `f1_max`, the CAFA Fmax): over every threshold
/// `t` among the scores, precision = mean over samples with at least one score ≥ t of
/// TP/called, recall = mean over all samples of TP/positives (0 without positives),
/// F = 2PR/(P+R); the maximum. `pred` and `target` are `[samples][labels]`. One sweep over the
/// scores sorted once: O(E log E) for E entries.
pub fn fmax(pred: &[Vec<f64>], target: &[Vec<bool>]) -> Result<f64, MetricError> {
    same_len("Fmax", pred.len(), target.len())?;
    let mut entries = Vec::new();
    for (i, (p, t)) in pred.iter().zip(target).enumerate() {
        if p.len() != t.len() {
            return Err(MetricError::Length { what: "Fmax (labels of one sample)", a: p.len(), b: t.len() });
        }
        entries.extend(p.iter().zip(t).map(|(&s, &l)| (s, i, l)));
    }
    entries.sort_by(|a, b| b.0.total_cmp(&a.0));
    let b = pred.len();
    let positives: Vec<f64> = target.iter().map(|t| t.iter().filter(|&&l| l).count() as f64).collect();
    let (mut tp, mut called) = (vec![0f64; b], vec![0f64; b]);
    // Running sums of each sample's precision (over samples that call something) and recall.
    let (mut prec_sum, mut prec_count, mut rec_sum, mut best) = (0.0, 0usize, 0.0, 0.0f64);
    let mut k = 0;
    while k < entries.len() {
        let t = entries[k].0;
        while k < entries.len() && entries[k].0 == t {
            let (_, i, l) = entries[k];
            if called[i] > 0.0 {
                prec_sum -= tp[i] / called[i];
            } else {
                prec_count += 1;
            }
            if positives[i] > 0.0 {
                rec_sum -= tp[i] / positives[i];
            }
            called[i] += 1.0;
            tp[i] += if l { 1.0 } else { 0.0 };
            prec_sum += tp[i] / called[i];
            if positives[i] > 0.0 {
                rec_sum += tp[i] / positives[i];
            }
            k += 1;
        }
        let (p, r) = (prec_sum / prec_count as f64, rec_sum / b as f64);
        if p + r > 0.0 {
            best = best.max(2.0 * p * r / (p + r));
        }
    }
    Ok(best)
}
