"""1-D Gaussian-mixture predictive distributions: density, CDF, quantiles, CRPS, PIT.

A batch of N mixtures is given by weights ``w``, means ``mu`` and standard deviations
``sigma``, each of shape (N, K); weights of each row are >= 0 and sum to 1. The mixtures
are *not* truncated at any boundary (e.g. z >= 0): all quantities refer to the full
Gaussian mixture ``p(y) = sum_k w_k N(y; mu_k, sigma_k^2)``. Pure numpy (float64).
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, ndtr

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _arrays(w, mu, sigma):
    w, mu, sigma = (np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in (w, mu, sigma))
    if not (w.shape == mu.shape == sigma.shape):
        raise ValueError(f"w, mu, sigma must have the same (N, K) shape, got {w.shape}, {mu.shape}, {sigma.shape}")
    return w, mu, sigma


def mixture_logpdf(y, w, mu, sigma) -> np.ndarray:
    """``log p(y_n)`` (N,) of each row's mixture at ``y_n``."""
    w, mu, sigma = _arrays(w, mu, sigma)
    y = np.asarray(y, np.float64).reshape(-1, 1)
    logn = -0.5 * ((y - mu) / sigma) ** 2 - np.log(sigma) - _LOG_SQRT_2PI
    with np.errstate(divide="ignore"):
        return logsumexp(logn + np.log(w), axis=1)


def mixture_cdf(y, w, mu, sigma) -> np.ndarray:
    """``F(y_n) = sum_k w_k Phi((y_n - mu_k)/sigma_k)`` (N,)."""
    w, mu, sigma = _arrays(w, mu, sigma)
    y = np.asarray(y, np.float64).reshape(-1, 1)
    return np.sum(w * ndtr((y - mu) / sigma), axis=1)


def mixture_quantile(q, w, mu, sigma, tol: float = 1e-7, max_iter: int = 200) -> np.ndarray:
    """``F^{-1}(q)`` (N,) for each row, by vectorised bisection (absolute tolerance ``tol``).

    ``q`` is a scalar or an (N,) array of probabilities in (0, 1). The bracket
    [min(mu - 10 sigma), max(mu + 10 sigma)] contains every quantile with
    1e-23 < q < 1 - 1e-23. Rows with non-finite parameters give NaN."""
    w, mu, sigma = _arrays(w, mu, sigma)
    q = np.broadcast_to(np.asarray(q, np.float64), (len(w),))
    lo = np.min(mu - 10 * sigma, axis=1)
    hi = np.max(mu + 10 * sigma, axis=1)
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    lo, hi = np.where(bad, 0.0, lo), np.where(bad, 0.0, hi)
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        below = mixture_cdf(mid, w, mu, sigma) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        if np.max(hi - lo, initial=0.0) < tol:
            break
    out = 0.5 * (lo + hi)
    out[bad] = np.nan
    return out


def _crps_a(m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``E|X|`` for X ~ N(m, s^2): ``2 s phi(m/s) + m (2 Phi(m/s) - 1)``."""
    r = m / s
    return 2 * s * np.exp(-0.5 * r ** 2) / np.sqrt(2 * np.pi) + m * (2 * ndtr(r) - 1)


def mixture_crps(y, w, mu, sigma) -> np.ndarray:
    """Continuous ranked probability score (N,), in the units of ``y``:
    ``CRPS(F, y) = int (F(x) - 1[x >= y])^2 dx = E|X - y| - E|X - X'|/2``, closed form for a
    Gaussian mixture (Grimit et al. 2006):
    ``sum_k w_k A(y - mu_k, s_k) - 1/2 sum_jk w_j w_k A(mu_j - mu_k, sqrt(s_j^2 + s_k^2))``
    with ``A(m, s) = E|N(m, s^2)|``. Lower is better; equals |y - mu| for a point mass."""
    w, mu, sigma = _arrays(w, mu, sigma)
    y = np.asarray(y, np.float64).reshape(-1, 1)
    term1 = np.sum(w * _crps_a(y - mu, sigma), axis=1)
    dm = mu[:, :, None] - mu[:, None, :]
    ds = np.sqrt(sigma[:, :, None] ** 2 + sigma[:, None, :] ** 2)
    term2 = np.einsum("nj,nk,njk->n", w, w, _crps_a(dm, ds))
    return term1 - 0.5 * term2


def pit(y, w, mu, sigma) -> np.ndarray:
    """Probability integral transform ``F(y_n)`` (N,); U(0, 1) if the predictions are calibrated."""
    return mixture_cdf(y, w, mu, sigma)


def ks_uniform(u) -> float:
    """Kolmogorov-Smirnov statistic ``sup_x |ECDF(x) - x|`` of samples ``u`` against U(0, 1):
    ``max_i max(i/n - u_(i), u_(i) - (i-1)/n)`` with ``u_(i)`` sorted ascending (i = 1..n)."""
    u = np.sort(np.asarray(u, np.float64).ravel())
    n = len(u)
    if n == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - u), np.max(u - (i - 1) / n)))
