"""Lens-finding metrics (numpy). ``y`` holds true labels ``(N,)`` (1 = lens, 0 = not a lens),
``score`` the classifier's lens score ``(N,)`` (any monotonic score; the task uses p(lens)).

Definitions (ROC quantities from scikit-learn's ``roc_curve`` with ``drop_intermediate=False``,
whose thresholds are the distinct scores, a sample counted positive when ``score >= threshold``):

* ``auroc``: area under the ROC curve (``sklearn.metrics.roc_auc_score``; ties count one half).
* ``tpr_at_fpr_1e-2``: the highest true-positive rate among thresholds with false-positive rate
  ``<= 0.01``.
* ``tpr0``: the highest TPR reached before the first false positive, i.e. at zero false positives
  (Metcalf+2019, Bologna challenge). With ties at the top negative score those positives do not
  count.
* ``tpr10``: the highest TPR with fewer than ten false positives (``FP <= 9``; Metcalf+2019
  "TPR_10"). ``tpr0`` and ``tpr10`` depend on the number of negatives in the test set (the
  challenge had ~10^5); compare them only between runs on equal test sets.
* ``average_precision``: ``sklearn.metrics.average_precision_score``,
  ``AP = sum_n (R_n - R_{n-1}) P_n`` over the thresholds (no interpolation).
* completeness in bins of a lens property (Einstein radius, source magnitude): the fraction of
  the lenses in the bin with ``score >= threshold``; the task uses the threshold of
  ``tpr_at_fpr_1e-2`` (:func:`threshold_at_fpr`), so completeness summed over all bins
  (weighted by counts) equals ``tpr_at_fpr_1e-2``. Bin ``k`` is ``[edges[k], edges[k+1])``, the
  last bin closed; bins with no lens are left out (no NaN in metrics.json).
"""
from __future__ import annotations

import numpy as np


def _check(y, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(np.int64).reshape(-1)
    score = np.asarray(score, dtype=float).reshape(-1)
    if y.shape != score.shape:
        raise ValueError(f"labels {y.shape} and scores {score.shape} differ in length")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0 (non-lens) or 1 (lens)")
    return y, score


def roc(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``fpr, tpr, thresholds, fp`` (false-positive counts) at every distinct score."""
    from sklearn.metrics import roc_curve
    y, score = _check(y, score)
    fpr, tpr, thr = roc_curve(y, score, drop_intermediate=False)
    n_neg = int((y == 0).sum())
    fp = np.rint(fpr * n_neg).astype(np.int64)
    return fpr, tpr, thr, fp


def tpr_at_fpr(y, score, max_fpr: float) -> float:
    fpr, tpr, _, _ = roc(y, score)
    return float(tpr[fpr <= max_fpr].max())


def tpr_at_fp(y, score, max_fp: int) -> float:
    """Highest TPR with at most ``max_fp`` false positives (``tpr0``: 0, ``tpr10``: 9)."""
    _, tpr, _, fp = roc(y, score)
    return float(tpr[fp <= max_fp].max())


def threshold_at_fpr(y, score, max_fpr: float) -> float:
    """Lowest score threshold whose FPR is ``<= max_fpr`` (the ROC point of :func:`tpr_at_fpr`)."""
    fpr, _, thr, _ = roc(y, score)
    ok = fpr <= max_fpr
    return float(np.min(thr[ok]))


def completeness_binned(y, score, values, edges, threshold: float) -> list[tuple[float, float, int, float]]:
    """``[(lo, hi, n_lenses, completeness)]`` of the lenses (``y == 1``) binned by ``values``."""
    y, score = _check(y, score)
    values = np.asarray(values, dtype=float).reshape(-1)
    edges = np.asarray(edges, dtype=float)
    lens = y == 1
    out = []
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        last = k == len(edges) - 2
        inb = lens & (values >= lo) & ((values <= hi) if last else (values < hi))
        n = int(inb.sum())
        if n:
            out.append((float(lo), float(hi), n, float(np.mean(score[inb] >= threshold))))
    return out


def lensfinding_metrics(y, score) -> dict[str, float]:
    """``auroc``, ``tpr_at_fpr_1e-2``, ``tpr0``, ``tpr10``, ``average_precision`` (module docstring)."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    y, score = _check(y, score)
    if len(np.unique(y)) < 2:
        raise ValueError("lens-finding metrics need both lenses and non-lenses in the test set")
    return {"auroc": float(roc_auc_score(y, score)), "tpr_at_fpr_1e-2": tpr_at_fpr(y, score, 1e-2),
            "tpr0": tpr_at_fp(y, score, 0), "tpr10": tpr_at_fp(y, score, 9),
            "average_precision": float(average_precision_score(y, score))}


def completeness_metrics(y, score, properties: dict[str, tuple[np.ndarray, np.ndarray]],
                         max_fpr: float = 1e-2) -> dict[str, float]:
    """Flat ``completeness_<name>_<lo>_<hi>`` entries for each ``name: (values, edges)``, at the
    score threshold of FPR ``max_fpr``."""
    thr = threshold_at_fpr(y, score, max_fpr)
    out = {}
    for name, (values, edges) in properties.items():
        for lo, hi, _, comp in completeness_binned(y, score, values, edges, thr):
            out[f"completeness_{name}_{lo:.2f}_{hi:.2f}"] = comp
    return out


__all__ = ["roc", "tpr_at_fpr", "tpr_at_fp", "threshold_at_fpr", "completeness_binned", "lensfinding_metrics",
           "completeness_metrics"]
