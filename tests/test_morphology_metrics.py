"""Classification metrics against hand-computed values."""
import math

import numpy as np
import pytest

from cosmobench.metrics import classification as M

Y = [0, 0, 0, 0, 1, 1, 2, 2]
PRED = [0, 0, 0, 0, 1, 0, 2, 1]


def test_accuracy():
    assert M.accuracy(Y, PRED) == pytest.approx(6 / 8)


def test_balanced_accuracy():
    # recalls: class 0 4/4, class 1 1/2, class 2 1/2
    assert M.balanced_accuracy(Y, PRED) == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_macro_f1():
    # F1 = 2TP / (2TP + FP + FN): class 0 8/9, class 1 2/4, class 2 2/3
    assert M.macro_f1(Y, PRED) == pytest.approx((8 / 9 + 0.5 + 2 / 3) / 3)


def test_macro_f1_counts_classes_only_predicted():
    # class 1 never true but predicted once: F1_1 = 0 enters the mean
    assert M.macro_f1([0, 0], [0, 1]) == pytest.approx((2 / 3 + 0.0) / 2)


PROBS = np.array([[0.9, 0.1], [0.85, 0.15], [0.3, 0.7], [0.45, 0.55], [0.08, 0.92]])
YP = np.array([0, 1, 1, 0, 0])


def test_ece_15_bins():
    # confidences 0.9 (ok), 0.92 (wrong) share bin (13/15, 14/15]; 0.85 wrong, 0.7 ok, 0.55 wrong alone
    expected = (2 * abs(0.5 - 0.91) + 0.85 + 0.3 + 0.55) / 5
    assert M.ece(PROBS, YP) == pytest.approx(expected)
    assert expected == pytest.approx(0.504)


def test_ece_perfectly_calibrated_is_zero():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert M.ece(probs, [0, 1]) == 0.0


def test_nll():
    expected = -(math.log(0.9) + math.log(0.15) + math.log(0.7) + math.log(0.45) + math.log(0.08)) / 5
    assert M.nll(PROBS, YP) == pytest.approx(expected)
    assert expected == pytest.approx(1.13668, abs=1e-4)


def test_rotation_invariance_error():
    p = np.array([[0.5, 0.5], [0.2, 0.8]])
    pt = np.array([[[0.6, 0.4], [0.2, 0.8]], [[0.5, 0.5], [0.4, 0.6]]])
    err = M.rotation_invariance_error(p, pt)
    # sample 0: (0.1 + 0.1 + 0 + 0)/4; sample 1: (0 + 0 + 0.2 + 0.2)/4
    np.testing.assert_allclose(err, [0.05, 0.1])


def test_confusion_matrix_and_bundle():
    cm = M.confusion_matrix(Y, PRED, 3)
    assert cm.tolist() == [[4, 0, 0], [1, 1, 0], [0, 1, 1]]
    probs = np.eye(3)[PRED] * 0.7 + 0.1
    out = M.classification_metrics(probs, Y, invariance_error=np.array([0.0, 0.2]))
    assert set(out) == {"accuracy", "balanced_accuracy", "macro_f1", "ece", "nll", "rotation_invariance_error"}
    assert out["rotation_invariance_error"] == pytest.approx(0.1)
    assert out["accuracy"] == pytest.approx(0.75)


def test_binary_roc_auc_and_average_precision_by_hand():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    # AUC = fraction of (positive, negative) pairs ranked correctly: negatives 0.1, 0.4, 0.2;
    # positives 0.35 (beats 0.1, 0.2), 0.8 (all 3), 0.9 (all 3) -> 8/9
    assert M.roc_auc(y, s) == pytest.approx(8 / 9)
    # AP = sum (R_n - R_{n-1}) P_n over thresholds 0.9, 0.8, 0.4, 0.35: 1/3*1 + 1/3*1 + 0 + 1/3*3/4
    assert M.average_precision(y, s) == pytest.approx(1 / 3 + 1 / 3 + 0.25)
    fpr, tpr, _ = M.roc_curve(y, s)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert math.isnan(M.roc_auc([1, 1], [0.2, 0.3]))
    probs = np.stack([1 - np.array(s), s], 1)
    out = M.classification_metrics(probs, y)
    assert out["roc_auc"] == pytest.approx(8 / 9) and "average_precision" in out


def test_ece_cross_checked_with_torchmetrics_off_bin_edges():
    """torchmetrics bins [b/B, (b+1)/B) (plus c == 1 alone); ours (b/B, (b+1)/B] as Guo et al.:
    equal whenever no confidence sits on an edge, different when one does."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 4, 500)
    tm = multiclass_calibration_error(torch.tensor(probs), torch.tensor(y), num_classes=4, n_bins=15, norm="l1")
    assert M.ece(probs, y) == pytest.approx(float(tm), rel=1e-6)  # torchmetrics works in float32
    # a saturated wrong prediction (c = 1) and a correct one at c = 0.95: one bin (14/15, 1] for
    # us, |0.5 - 0.975|; two bins for torchmetrics, (1 + 0.05) / 2
    edge, yy = np.array([[1.0, 0.0], [0.95, 0.05]]), np.array([1, 0])
    tm_edge = multiclass_calibration_error(torch.tensor(edge), torch.tensor(yy), num_classes=2, n_bins=15,
                                           norm="l1")
    assert M.ece(edge, yy) == pytest.approx(0.475) and float(tm_edge) == pytest.approx(0.525)


def test_reliability_bins_match_ece():
    rel = M.reliability(PROBS, YP)
    ok = rel["count"] > 0
    ece = np.nansum(rel["count"][ok] / rel["count"].sum() * np.abs(rel["accuracy"][ok] - rel["confidence"][ok]))
    assert ece == pytest.approx(M.ece(PROBS, YP)) and rel["count"].sum() == len(YP)
