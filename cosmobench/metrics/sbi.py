"""Metrics of the ``sbi`` task: posterior samples against reference samples and true
parameters. Definitions:

* :func:`c2st` — classifier two-sample test accuracy, **as sbibm defines it**
  (``sbibm/metrics/c2st.py``, Lueckmann et al. 2021): both sample sets are z-scored with the
  mean and (unbiased) std of the *first* set (the reference); a scikit-learn
  ``MLPClassifier(activation="relu", hidden_layer_sizes=(10 d, 10 d), max_iter=10000,
  solver="adam", random_state=seed)`` is scored by ``cross_val_score`` with
  ``KFold(n_splits=5, shuffle=True, random_state=seed)`` and ``scoring="accuracy"``;
  the metric is the mean accuracy over folds (0.5: indistinguishable, 1: disjoint).
  sbibm calls it as ``c2st(reference, algorithm)``, and so do we.
* :func:`nltp` — negative log posterior density at the true parameters, ``-log q(theta*|x)``,
  with ``q`` a Gaussian KDE (scipy ``gaussian_kde``, Scott's bandwidth) of the posterior
  samples. The same estimator for every model, so that models without a normalised density
  (NLE/NRE's MCMC posteriors, rejection ABC, MCMC on the likelihood) are comparable.
* :func:`posterior_std` — mean over parameters of the posterior standard deviation.
* SBC (``sbc_ks_pvalue``: the minimum over parameters of the KS p-value of SBC rank
  uniformity) and TARP (``tarp_atc``) come from ``sbi``'s diagnostics, see
  :mod:`cosmobench.sbi_adapter`.
"""
from __future__ import annotations

import numpy as np


def c2st(reference: np.ndarray, samples: np.ndarray, seed: int = 1, n_folds: int = 5, z_score: bool = True) -> float:
    """sbibm's C2ST accuracy between ``reference`` (n, d) and ``samples`` (m, d) (module docstring)."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    X = np.asarray(reference, np.float64)
    Y = np.asarray(samples, np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"c2st needs two (n, d) sample arrays of equal d, got {X.shape} and {Y.shape}")
    if z_score:
        mean, std = X.mean(0), X.std(0, ddof=1)
        X, Y = (X - mean) / std, (Y - mean) / std
    ndim = X.shape[1]
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * ndim, 10 * ndim), max_iter=10000,
                        solver="adam", random_state=seed)
    data = np.concatenate([X, Y]).astype(np.float32)
    target = np.concatenate([np.zeros(len(X)), np.ones(len(Y))])
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, data, target, cv=folds, scoring="accuracy")))


def nltp(samples: np.ndarray, theta_true: np.ndarray) -> float:
    """``-log q(theta_true)`` with ``q`` the Gaussian KDE (Scott) of ``samples`` (n, d)."""
    from scipy.stats import gaussian_kde

    s = np.asarray(samples, np.float64)
    kde = gaussian_kde(s.T)
    val = kde.logpdf(np.asarray(theta_true, np.float64).reshape(-1, 1))[0]
    return float(-max(val, -1e3))  # a true value far outside every sample: cap at 1e3 nats


def posterior_std(samples: np.ndarray) -> float:
    """Mean over parameters of the sample standard deviation of ``samples`` (n, d)."""
    return float(np.mean(np.std(np.asarray(samples, np.float64), axis=0, ddof=1)))
