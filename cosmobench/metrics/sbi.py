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


def c2st(reference: np.ndarray, samples: np.ndarray, seed: int = 1, n_folds: int = 5, z_score: bool = True,
         n_jobs: int = 1) -> float:
    """sbibm's C2ST accuracy between ``reference`` (n, d) and ``samples`` (m, d) (module docstring).

    Bit-for-bit reproducible whatever the load and thread pools: every fold is fitted with
    the BLAS/OpenMP pools limited to one thread (``threadpoolctl``; a multi-threaded BLAS may
    sum in another order), so ``n_jobs`` (folds fitted in parallel worker processes) changes
    the time only, never the value. Each fold is exactly what ``cross_val_score`` does: a
    clone of the classifier fitted on the fold's training part, accuracy on the rest."""
    from sklearn.model_selection import KFold
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
    folds = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(data, target))
    if n_jobs > 1:
        from joblib import Parallel, delayed
        scores = Parallel(n_jobs=min(n_jobs, n_folds), backend="loky")(
            delayed(_fold_accuracy)(clf, data, target, tr, te) for tr, te in folds)
    else:
        scores = [_fold_accuracy(clf, data, target, tr, te) for tr, te in folds]
    return float(np.mean(scores))


def _fold_accuracy(clf, data: np.ndarray, target: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """One C2ST fold (``cross_val_score``'s fit and ``accuracy`` score), single-threaded."""
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        est = clone(clf).fit(data[train], target[train])
        return float(accuracy_score(target[test], est.predict(data[test])))


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
