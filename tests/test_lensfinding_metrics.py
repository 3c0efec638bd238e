"""Lens-finding metrics against hand-computed values (cosmobench/metrics/lensfinding.py)."""
import numpy as np
import pytest

from cosmobench.metrics import lensfinding as M

# 4 non-lenses, 4 lenses, one tie (0.35) between a lens and a non-lens
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.7, 0.35, 0.2])


def test_auroc_and_average_precision_by_hand():
    m = M.lensfinding_metrics(Y, S)
    # pairs (lens > non-lens) of 16: 0.9 -> 4, 0.7 -> 3, 0.35 -> 1 + 0.5 (tie), 0.2 -> 1
    assert m["auroc"] == pytest.approx(9.5 / 16)
    # thresholds by descending score: recall steps of 1/4 at precisions 1, 2/3, 1/2 (tie: 3 of 6), 4/7
    assert m["average_precision"] == pytest.approx(0.25 * (1 + 2 / 3 + 1 / 2 + 4 / 7))
    # highest non-lens 0.8: only the 0.9 lens is above it
    assert m["tpr0"] == pytest.approx(0.25)
    assert m["tpr10"] == pytest.approx(1.0)      # all 4 non-lenses are < 10 false positives
    assert m["tpr_at_fpr_1e-2"] == pytest.approx(0.25)


def test_tpr_at_fixed_false_positives_by_hand():
    neg = 0.01 * np.arange(1, 21)                 # 20 non-lenses: 0.01 .. 0.20
    pos = np.array([0.25, 0.195, 0.155, 0.105, 0.05])
    y = np.r_[np.zeros(20), np.ones(5)]
    s = np.r_[neg, pos]
    assert M.tpr_at_fp(y, s, 0) == pytest.approx(1 / 5)        # only 0.25 above 0.20
    # fewer than ten false positives: threshold above the 10th highest non-lens (0.11): 0.12 .. 0.20 -> 9 FP
    assert M.tpr_at_fp(y, s, 9) == pytest.approx(3 / 5)
    assert M.lensfinding_metrics(y, s)["tpr10"] == pytest.approx(3 / 5)
    assert M.tpr_at_fp(y, s, 10) == pytest.approx(4 / 5)       # threshold 0.105: 0.11 .. 0.20 -> 10 FP
    assert M.tpr_at_fp(y, s, 15) == pytest.approx(4 / 5)       # next lens (0.05) ties 0.05: 16 FP
    assert M.tpr_at_fp(y, s, 16) == pytest.approx(1.0)
    assert M.tpr_at_fpr(y, s, 0.1) == pytest.approx(2 / 5)     # <= 2 FP: threshold 0.19
    assert M.threshold_at_fpr(y, s, 0.1) == pytest.approx(0.19)
    assert M.lensfinding_metrics(y, s)["tpr_at_fpr_1e-2"] == pytest.approx(1 / 5)


def test_completeness_binned_by_hand():
    y = np.array([1, 1, 1, 1, 1, 0, 0])
    s = np.array([0.9, 0.2, 0.6, 0.7, 0.1, 0.5, 0.3])
    theta = np.array([1.0, 1.2, 2.0, 3.0, 2.5, np.nan, np.nan])
    rows = M.completeness_binned(y, s, theta, [0.8, 1.5, 2.5, 3.0], threshold=0.55)
    # [0.8,1.5): lenses 0.9, 0.2 -> 1/2; [1.5,2.5): 0.6 -> 1/1; [2.5,3.0] closed: 0.7, 0.1 -> 1/2
    assert rows == [(0.8, 1.5, 2, 0.5), (1.5, 2.5, 1, 1.0), (2.5, 3.0, 2, 0.5)]
    # empty bins are left out
    assert M.completeness_binned(y, s, theta, [0.0, 0.5, 0.8], 0.55) == []


def test_completeness_metrics_sum_to_tpr_at_the_fpr_threshold():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    s = rng.random(2000) + 0.4 * y
    theta = rng.uniform(0.8, 3.0, 2000)
    edges = np.linspace(0.8, 3.0, 5)
    out = M.completeness_metrics(y, s, {"theta_e": (theta, edges)}, 1e-2)
    assert sorted(out) == sorted(f"completeness_theta_e_{a:.2f}_{b:.2f}" for a, b in zip(edges[:-1], edges[1:]))
    thr = M.threshold_at_fpr(y, s, 1e-2)
    rows = M.completeness_binned(y, s, theta, edges, thr)
    weighted = sum(n * c for _, _, n, c in rows) / sum(n for _, _, n, _ in rows)
    assert weighted == pytest.approx(M.tpr_at_fpr(y, s, 1e-2))
    assert np.mean(s[y == 0] >= thr) <= 1e-2


def test_bad_inputs():
    with pytest.raises(ValueError, match="both lenses and non-lenses"):
        M.lensfinding_metrics(np.ones(4), np.random.rand(4))
    with pytest.raises(ValueError, match="0 \\(non-lens\\) or 1"):
        M.lensfinding_metrics(np.array([0, 1, 2]), np.random.rand(3))
    with pytest.raises(ValueError, match="differ in length"):
        M.lensfinding_metrics(np.array([0, 1]), np.random.rand(3))
