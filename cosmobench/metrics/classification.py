"""Classification metrics (numpy in, floats out). ``y`` holds integer true labels ``(N,)``;
``probs`` predicted class probabilities ``(N, K)`` (rows sum to 1); ``pred`` predicted labels
``(N,)``; ``score`` the positive-class probability ``(N,)`` of a binary task.

Definitions (scikit-learn computes those it defines identically; the tests cross-check them
against hand-computed values):

* ``accuracy``: fraction of ``pred == y`` (``sklearn.metrics.accuracy_score``).
* ``balanced_accuracy``: mean over the classes present in ``y`` of the per-class recall
  (``balanced_accuracy_score``).
* ``macro_f1``: unweighted mean of per-class F1 ``2 TP / (2 TP + FP + FN)`` over the classes
  present in ``y`` or ``pred`` (``f1_score(average="macro")``; a class with no true and no
  predicted members is skipped).
* ``ece``: expected calibration error with ``n_bins`` (15) equal-width bins of the top-class
  confidence ``c = max_k p_k`` on ``(0, 1]`` (bin b = ``((b-1)/B, b/B]``, right-closed as in
  Guo et al. 2017): ``sum_b (n_b / N) |accuracy_b - mean confidence_b|``. Hand-written:
  torchmetrics' ``MulticlassCalibrationError`` uses left-closed bins ``[b/B, (b+1)/B)`` and a
  separate bin for ``c = 1`` (common for saturated float32 softmax), so it differs at the bin
  edges (equal elsewhere; cross-checked in the tests).
* ``nll``: mean of ``-ln p_y`` with ``p_y`` clipped below at ``eps`` = 1e-12 (hand-written:
  ``sklearn.metrics.log_loss`` renormalises rows and clips at the dtype's machine epsilon).
* ``rotation_invariance_error``: mean over samples, transforms and classes of
  ``|p_k(T x) - p_k(x)|`` (see :func:`rotation_invariance_error`).
* binary tasks: ``roc_auc`` (area under the ROC curve, ``roc_auc_score``) and
  ``average_precision`` (area under the precision-recall curve as the step sum
  ``sum_n (R_n - R_{n-1}) P_n``, ``average_precision_score``); NaN if ``y`` has one class only.
"""
from __future__ import annotations

import warnings

import numpy as np


def _labels(y) -> np.ndarray:
    return np.asarray(y).astype(np.int64).reshape(-1)


def accuracy(y, pred) -> float:
    from sklearn.metrics import accuracy_score
    return float(accuracy_score(_labels(y), _labels(pred)))


def balanced_accuracy(y, pred) -> float:
    from sklearn.metrics import balanced_accuracy_score
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": those are skipped
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(_labels(y), _labels(pred)))


def macro_f1(y, pred) -> float:
    from sklearn.metrics import f1_score
    return float(f1_score(_labels(y), _labels(pred), average="macro", zero_division=0.0))


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


def reliability(probs, y, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin ``count``, mean ``confidence`` and ``accuracy`` (NaN for empty bins) of the
    :func:`ece` bins, for a reliability diagram; ``edges`` (n_bins + 1,)."""
    probs, y = np.asarray(probs, dtype=float), _labels(y)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, conf, n_bins) / count
        acc = np.bincount(bins, correct, n_bins) / count
    return {"edges": np.linspace(0, 1, n_bins + 1), "count": count, "confidence": mean_conf, "accuracy": acc}


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
    from sklearn.metrics import confusion_matrix as sk_confusion
    return sk_confusion(_labels(y), _labels(pred), labels=np.arange(n_classes)).astype(np.int64)


def _two_classes(y) -> bool:
    return len(np.unique(_labels(y))) == 2


def roc_curve(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds of a binary classifier
    (``sklearn.metrics.roc_curve``, all thresholds kept)."""
    from sklearn.metrics import roc_curve as sk_roc
    fpr, tpr, thr = sk_roc(_labels(y), np.asarray(score, dtype=float), drop_intermediate=False)
    return fpr, tpr, thr


def roc_auc(y, score) -> float:
    """Area under the ROC curve of a binary classifier; NaN if ``y`` has one class only."""
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(_labels(y), np.asarray(score, dtype=float))) if _two_classes(y) else float("nan")


def average_precision(y, score) -> float:
    """Average precision (area under the precision-recall curve, step sum); NaN if one class."""
    from sklearn.metrics import average_precision_score
    if not _two_classes(y):
        return float("nan")
    return float(average_precision_score(_labels(y), np.asarray(score, dtype=float)))


def classification_metrics(probs, y, invariance_error=None, n_bins: int = 15) -> dict[str, float]:
    """All metrics of an image-classification task from gathered test outputs; binary tasks
    (``K = 2``) also get ``roc_auc`` and ``average_precision`` of ``probs[:, 1]``."""
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    out = {"accuracy": accuracy(y, pred), "balanced_accuracy": balanced_accuracy(y, pred),
           "macro_f1": macro_f1(y, pred), "ece": ece(probs, y, n_bins), "nll": nll(probs, y)}
    if probs.shape[1] == 2:
        out["roc_auc"] = roc_auc(y, probs[:, 1])
        out["average_precision"] = average_precision(y, probs[:, 1])
    if invariance_error is not None:
        out["rotation_invariance_error"] = float(np.mean(invariance_error))
    return out


__all__ = ["accuracy", "balanced_accuracy", "macro_f1", "ece", "reliability", "nll", "rotation_invariance_error",
           "confusion_matrix", "roc_curve", "roc_auc", "average_precision", "classification_metrics"]
