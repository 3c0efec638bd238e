"""Metrics of the ``sbi`` task: posterior samples against reference samples and true
parameters. Definitions:

* :func:`c2st` — classifier two-sample test accuracy, **as sbibm defines it**
  (``sbibm/metrics/c2st.py``, Lueckmann et al. 2021): both sample sets are z-scored with the
  mean and (unbiased) std of the *first* set (the reference); a scikit-learn
  ``MLPClassifier(activation="relu", hidden_layer_sizes=(10 d, 10 d), max_iter=10000,
  solver="adam", random_state=seed)`` is scored with ``KFold(n_splits=5, shuffle=True,
  random_state=seed)`` and ``scoring="accuracy"``; the metric is the mean accuracy over folds
  (0.5: indistinguishable, 1: disjoint). sbibm calls it as ``c2st(reference, algorithm)``, and
  so do we. :mod:`cosmobench.metrics.c2st` re-implements that classifier as one batched
  computation (:func:`c2st`, :func:`c2st_many`: many folds and observations at once);
  :func:`c2st_sklearn` is scikit-learn's, the reference it is cross-checked against.
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

from cosmobench.metrics.c2st import c2st, c2st_many, c2st_sklearn

__all__ = ["c2st", "c2st_many", "c2st_sklearn", "nltp", "posterior_std"]


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
