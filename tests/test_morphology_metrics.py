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
