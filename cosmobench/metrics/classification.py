"""Classification metrics (numpy). ``y`` holds integer true labels ``(N,)``; ``probs`` predicted
class probabilities ``(N, K)`` (rows sum to 1); ``pred`` predicted labels ``(N,)``.

Definitions:

* ``accuracy``: fraction of ``pred == y``.
* ``balanced_accuracy``: mean over the classes present in ``y`` of the per-class recall.
* ``macro_f1``: unweighted mean of per-class F1 ``2 TP / (2 TP + FP + FN)`` over the classes
  present in ``y`` or ``pred`` (scikit-learn's default label set; a class with no true and no
  predicted members is skipped).
* ``ece``: expected calibration error with ``n_bins`` (15) equal-width bins of the top-class
  confidence ``c = max_k p_k`` on ``(0, 1]`` (bin b = ``((b-1)/B, b/B]``):
  ``sum_b (n_b / N) |accuracy_b - mean confidence_b|`` (Guo et al. 2017).
* ``nll``: mean of ``-ln p_y`` with ``p_y`` clipped below at ``eps`` = 1e-12.
* ``rotation_invariance_error``: mean over samples, transforms and classes of
  ``|p_k(T x) - p_k(x)|`` (see :func:`rotation_invariance_error`).
"""
from __future__ import annotations

import numpy as np


def _labels(y) -> np.ndarray:
    return np.asarray(y).astype(np.int64).reshape(-1)


def accuracy(y, pred) -> float:
    y, pred = _labels(y), _labels(pred)
    return float(np.mean(y == pred))


def balanced_accuracy(y, pred) -> float:
    y, pred = _labels(y), _labels(pred)
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return float(np.mean(recalls))


def macro_f1(y, pred) -> float:
    y, pred = _labels(y), _labels(pred)
    f1s = []
    for c in np.union1d(np.unique(y), np.unique(pred)):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def ece(probs, y, n_bins: int = 15) -> float:
    probs, y = np.asarray(probs, dtype=float), _labels(y)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    # bin b (0-based) holds conf in (b/B, (b+1)/B]; conf == 0 goes to the first bin
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total)


def nll(probs, y, eps: float = 1e-12) -> float:
    probs, y = np.asarray(probs, dtype=float), _labels(y)
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, None))))


def rotation_invariance_error(probs, probs_transformed) -> np.ndarray:
    """Per-sample invariance error: ``probs`` ``(N, K)`` for the original images and
    ``probs_transformed`` ``(T, N, K)`` for ``T`` transformed copies (e.g. the 7 non-identity
    rot90/flip elements of D4). Returns ``(N,)``: mean over transforms and classes of
    ``|p(Tx) - p(x)|``; the metric is its mean over samples."""
    p = np.asarray(probs, dtype=float)
    pt = np.asarray(probs_transformed, dtype=float)
    if pt.ndim == 2:
        pt = pt[None]
    return np.abs(pt - p[None]).mean(axis=(0, 2))


def confusion_matrix(y, pred, n_classes: int) -> np.ndarray:
    """``M[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (_labels(y), _labels(pred)), 1)
    return m


def classification_metrics(probs, y, invariance_error=None, n_bins: int = 15) -> dict[str, float]:
    """All metrics of the morphology task from gathered test outputs."""
    pred = np.asarray(probs).argmax(axis=1)
    out = {"accuracy": accuracy(y, pred), "balanced_accuracy": balanced_accuracy(y, pred),
           "macro_f1": macro_f1(y, pred), "ece": ece(probs, y, n_bins), "nll": nll(probs, y)}
    if invariance_error is not None:
        out["rotation_invariance_error"] = float(np.mean(invariance_error))
    return out


__all__ = ["accuracy", "balanced_accuracy", "macro_f1", "ece", "nll", "rotation_invariance_error",
           "confusion_matrix", "classification_metrics"]
