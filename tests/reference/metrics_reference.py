"""Reference values for aa-pretrain's metrics, computed with scikit-learn and SciPy (and NumPy for
the protein-centric Fmax, written from its definition) on fixed random inputs. Writes
crates/aa-pretrain/tests/fixtures/metrics_reference.json.

    /tmp/refenv/bin/pip install scikit-learn scipy
    /tmp/refenv/bin/python tests/reference/metrics_reference.py

Definitions checked:
- accuracy: sklearn.metrics.accuracy_score on argmax predictions.
- macro-F1: sklearn.metrics.f1_score(average="macro", zero_division=0) — classes are the union
  of those in y_true and y_pred (sklearn's default `labels`).
- AUROC / AUPRC: roc_auc_score / average_precision_score on binary labels (ties included).
- Spearman / Pearson: scipy.stats.spearmanr / pearsonr (average ranks for ties).
- RMSE: sqrt of sklearn.metrics.mean_squared_error.
- multi-label macro-F1: f1_score(average="macro", zero_division=0) on indicator matrices
  (every column counts).
- Fmax (protein-centric, as TorchDrug's f1_max): for every threshold t among the predicted
  scores, precision = mean over proteins with at least one score >= t of TP/predicted, recall =
  mean over all proteins of TP/positives (0 for proteins without positives), F = 2PR/(P+R);
  the maximum over t.
"""
import json
import pathlib

import numpy as np
from scipy import stats
from sklearn import metrics

rng = np.random.default_rng(20261123)
cases = []

for k, (n, c) in enumerate([(50, 3), (200, 7), (31, 5)]):
    logits = rng.normal(size=(n, c))
    labels = rng.integers(0, c, size=n)
    # Make the predictions informative but imperfect.
    logits[np.arange(n), labels] += rng.uniform(0, 2, size=n)
    pred = logits.argmax(1)
    cases.append({
        "kind": "classification",
        "logits": logits.tolist(),
        "labels": labels.tolist(),
        "accuracy": float(metrics.accuracy_score(labels, pred)),
        "macro_f1": float(metrics.f1_score(labels, pred, average="macro", zero_division=0)),
    })
# A class that is never predicted and one that never occurs (zero_division matters).
labels = np.array([0, 0, 1, 1, 2, 2, 2, 0])
pred_logits = np.eye(4)[[0, 1, 1, 1, 3, 3, 2, 0]] * 3.0
cases.append({
    "kind": "classification",
    "logits": pred_logits.tolist(),
    "labels": labels.tolist(),
    "accuracy": float(metrics.accuracy_score(labels, pred_logits.argmax(1))),
    "macro_f1": float(metrics.f1_score(labels, pred_logits.argmax(1), average="macro", zero_division=0)),
})

for n, tie in [(60, False), (300, False), (40, True)]:
    y = rng.integers(0, 2, size=n)
    s = rng.normal(size=n) + y * 0.8
    if tie:
        s = np.round(s, 1)
    cases.append({
        "kind": "binary",
        "scores": s.tolist(),
        "labels": y.tolist(),
        "auroc": float(metrics.roc_auc_score(y, s)),
        "auprc": float(metrics.average_precision_score(y, s)),
    })

for n, tie in [(80, False), (25, True)]:
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n) * 0.8
    if tie:
        x, y = np.round(x, 0), np.round(y, 0)
    cases.append({
        "kind": "regression",
        "pred": x.tolist(),
        "target": y.tolist(),
        "spearman": float(stats.spearmanr(x, y).statistic),
        "pearson": float(stats.pearsonr(x, y).statistic),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y, x))),
    })


for n, c in [(40, 6), (100, 12)]:
    target = (rng.uniform(size=(n, c)) < 0.3).astype(int)
    scores = np.clip(rng.uniform(size=(n, c)) * 0.8 + target * 0.35, 0, 1)
    pred = (scores >= 0.5).astype(int)
    pred[:, 0] = 0  # a class never predicted
    cases.append({"kind": "multilabel_f1", "pred": pred.tolist(), "target": target.tolist(),
                  "macro_f1": float(metrics.f1_score(target, pred, average="macro", zero_division=0))})


def fmax(pred, target):
    best = 0.0
    for t in np.unique(pred):
        called = pred >= t
        tp = (called & (target > 0)).sum(1)
        n_called = called.sum(1)
        has = n_called > 0
        precision = (tp[has] / n_called[has]).mean() if has.any() else 0.0
        pos = target.sum(1)
        recall = np.where(pos > 0, tp / np.maximum(pos, 1), 0.0).mean()
        if precision + recall > 0:
            best = max(best, 2 * precision * recall / (precision + recall))
    return float(best)


for b, c in [(20, 10), (64, 30)]:
    target = (rng.uniform(size=(b, c)) < 0.15).astype(int)
    target[0] = 0  # a protein without labels
    pred = np.clip(rng.uniform(size=(b, c)) * 0.7 + target * 0.3, 0, 1)
    cases.append({"kind": "multilabel", "pred": pred.tolist(), "target": target.tolist(), "fmax": fmax(pred, target)})

out = {"sklearn": metrics.__name__ and __import__("sklearn").__version__, "scipy": __import__("scipy").__version__,
       "cases": cases}
path = pathlib.Path(__file__).resolve().parents[2] / "crates/aa-pretrain/tests/fixtures/metrics_reference.json"
path.write_text(json.dumps(out))
print("wrote", path, len(cases), "cases")
