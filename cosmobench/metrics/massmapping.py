"""Mass-mapping metrics: reconstructed convergence ``kappa_hat`` against the true ``kappa``.

All metrics pool every pixel of every test map that lies inside the survey mask
(``mask > 0``; no mask = all pixels). Definitions:

* ``nmse`` (primary, lower is better) = ``mean_in((kappa_hat - kappa)^2) / var_in(kappa)``:
  the mean squared error divided by the variance of the true convergence, both over the
  unmasked pixels of the whole test set. 0 is perfect; ``kappa_hat = 0`` gives ~1.
* ``pearson_r``: Pearson correlation of ``kappa_hat`` and ``kappa`` over the same pixels.
* ``rmse`` (kappa units) and ``r_zero_filled``: the definitions of Remy et al. 2023 (A&A 672,
  A51; jax-lensing ``papers/Remy2021/DeepMass.ipynb``), per map then pooled. Each map ``a``
  (truth) and ``b`` (reconstruction) first loses its mean ``mean(mask * a)`` over the *whole*
  array (masked pixels count as zeros); ``rmse = sqrt(sum(mask (a - b)^2) / sum(mask))`` with the
  sums over every map. ``r_zero_filled = cov(mask a, mask b) / (std(mask a) std(mask b))`` over
  every pixel of every map (zero-filled outside the mask; ``cov`` with ``ddof=1``, ``std`` with
  ``ddof=0``, as ``np.cov``/``np.std`` there, so a perfect map gives ``N / (N - 1)``). Unlike
  ``pearson_r`` it includes the masked zeros, which add to the covariance; on the 360 px
  kappaTNG field with the COSMOS mask the two differ by a few per cent.
* ``power_ratio_dev``: the power spectra of ``kappa_hat`` and of ``kappa`` (masked maps,
  pseudo-C_ell: flat :func:`cosmobench.sim.cosmology.flat_power_spectrum`, sphere
  ``healpy.anafast``) are summed over the test maps in ``eval.power_bins`` ell bins;
  ``ratio_b = C_hat_b / C_b``; reported: the mean over bins of ``|ratio_b - 1|`` (0 = the
  reconstruction has the true power at every scale; the Wiener filter is expected to lose
  power, ratio < 1, where noise dominates).
* ``peak_err_<nu>`` for each S/N threshold ``nu`` of ``eval.peak_thresholds`` and
  ``peak_count_err`` (their mean): both maps are smoothed with the same Gaussian (standard
  deviation ``eval.peak_smoothing_pix`` pixels); a peak is
  a pixel higher than all its 8 (flat) or HEALPix neighbours, with all neighbours inside the mask
  (flat: not on the map border); its S/N is ``kappa_smoothed / sigma_noise``, where
  ``sigma_noise = sigma_pix / (2 sqrt(pi) s)`` is the standard deviation of white shape noise of
  per-pixel standard deviation ``sigma_pix`` (per shear component, which is also that of the
  Kaiser-Squires convergence) after smoothing with a Gaussian of ``s`` pixels (the usual
  peak-statistics S/N of a noisy KS map; with zero noise the smoothed true map's standard
  deviation is used instead). ``peak_err_nu = |N_hat(> nu) - N(> nu)| / max(N(> nu), 1)`` with
  the counts summed over the test set.

Hand-written (no library computes these map-level statistics); the flat local-maximum search
uses ``scipy.ndimage.maximum_filter``, the spherical one ``healpy.get_all_neighbours``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosmobench.settings import setting


@dataclass
class MassMappingEval:
    """The ``eval`` node of massmapping: the protocol of the power-spectrum and peak metrics."""

    peak_thresholds: list[float] = setting([2.0, 3.0, 4.0], "nonempty list[float]",
                                           help="peak S/N thresholds nu of peak_err_<nu>")
    peak_smoothing_pix: float = setting(2.0, "positive float", unit="px",
                                        help="Gaussian smoothing (standard deviation) before the peak search")
    power_bins: int = setting(12, "int >= 2", help="ell bins of the power spectra (power_ratio_dev)")


def _in_mask(kappa: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return np.ones(kappa.shape, dtype=bool) if mask is None else np.asarray(mask) > 0


def nmse(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``mean((pred - true)^2) / var(true)`` over the pixels inside ``mask`` (module docstring)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    sel = _in_mask(true, mask)
    t = true[sel]
    var = t.var()
    if not var > 0:
        raise ValueError("nmse: the true convergence has zero variance inside the mask")
    return float(np.mean((pred[sel] - t) ** 2) / var)


def pearson_r(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation coefficient of ``pred`` and ``true`` over the pixels inside ``mask``."""
    sel = _in_mask(np.asarray(true), mask)
    p = np.asarray(pred, np.float64)[sel]
    t = np.asarray(true, np.float64)[sel]
    p, t = p - p.mean(), t - t.mean()
    den = np.sqrt((p ** 2).sum() * (t ** 2).sum())
    return float((p * t).sum() / den) if den > 0 else 0.0


def rmse_mean_subtracted(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Remy+2023's RMSE (kappa units; module docstring) of maps ``(M, ...)`` (a leading map axis:
    flat ``(M, H, W)``, HEALPix ``(M, npix)``), each minus ``mean(mask * map)`` over its whole array."""
    p, t = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    w = np.ones(t.shape) if mask is None else (np.asarray(mask) > 0).astype(np.float64)
    if not w.sum() > 0:
        raise ValueError("rmse: no pixel inside the mask")
    axes = tuple(range(1, t.ndim))
    p = p - (w * p).mean(axes, keepdims=True)
    t = t - (w * t).mean(axes, keepdims=True)
    return float(np.sqrt(np.sum(w * (t - p) ** 2) / np.sum(w)))


def r_zero_filled(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Remy+2023's correlation (module docstring): ``np.cov(mask a, mask b)[0, 1] /
    np.std(mask a) / np.std(mask b)`` over every pixel of every map; 0 if a map is constant."""
    w = np.ones(np.shape(true)) if mask is None else (np.asarray(mask) > 0)
    a = (w * np.asarray(true, np.float64)).ravel()
    b = (w * np.asarray(pred, np.float64)).ravel()
    den = a.std() * b.std()
    return float(np.cov(a, b)[0, 1] / den) if den > 0 else 0.0


def power_ratio(pred_cl: np.ndarray, true_cl: np.ndarray) -> tuple[np.ndarray, float]:
    """``(ratio per bin, mean |ratio - 1|)`` of spectra ``(n_maps, n_bins)`` summed over maps
    (bins where the true power is zero are skipped)."""
    p, t = np.asarray(pred_cl, np.float64).sum(0), np.asarray(true_cl, np.float64).sum(0)
    ok = t > 0
    ratio = np.where(ok, p / np.where(ok, t, 1.0), np.nan)
    return ratio, float(np.mean(np.abs(ratio[ok] - 1.0))) if ok.any() else float("nan")


def noise_sigma_smoothed(sigma_pix: float, smoothing_pix: float) -> float:
    """Standard deviation of white noise (per-pixel ``sigma_pix``) after Gaussian smoothing with
    a standard deviation of ``smoothing_pix`` pixels: ``sigma_pix / (2 sqrt(pi) s)``."""
    return float(sigma_pix / (2.0 * np.sqrt(np.pi) * smoothing_pix))


def flat_peaks(maps: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean ``(..., H, W)``: pixels strictly higher than their 8 neighbours, not on the border
    and with the whole 3x3 neighbourhood inside ``mask``."""
    from scipy import ndimage

    m = np.asarray(maps, np.float64)
    lead = m.shape[:-2]
    m2 = m.reshape((-1,) + m.shape[-2:])
    inside = np.ones(m2.shape, bool) if mask is None else (np.asarray(mask).reshape(m2.shape) > 0)
    out = np.zeros(m2.shape, bool)
    foot = np.ones((3, 3), bool)
    foot[1, 1] = False
    for i in range(len(m2)):
        neigh_max = ndimage.maximum_filter(m2[i], footprint=foot, mode="constant", cval=np.inf)
        full = ndimage.minimum_filter(inside[i].astype(np.uint8), size=3, mode="constant", cval=0) > 0
        out[i] = (m2[i] > neigh_max) & full
    return out.reshape(lead + m.shape[-2:])


def peak_counts(maps: np.ndarray, peaks: np.ndarray, thresholds, sigma: float) -> np.ndarray:
    """Number of peaks with ``map / sigma > nu`` for each threshold ``nu`` (summed over maps)."""
    vals = np.asarray(maps, np.float64)[np.asarray(peaks, bool)] / sigma
    return np.array([(vals > nu).sum() for nu in thresholds], dtype=float)


def peak_count_errors(pred_counts: np.ndarray, true_counts: np.ndarray, thresholds) -> dict[str, float]:
    """``{"peak_err_<nu>": |N_hat - N| / max(N, 1), ..., "peak_count_err": their mean}`` (the
    ``max(N, 1)`` keeps the error finite when the truth has no peak above a high threshold,
    e.g. on a tiny test set: then it is the number of spurious peaks)."""
    p, t = np.asarray(pred_counts, float), np.asarray(true_counts, float)
    err = np.abs(p - t) / np.maximum(t, 1.0)
    out = {f"peak_err_{_fmt(nu)}": float(e) for nu, e in zip(thresholds, err)}
    out["peak_count_err"] = float(err.mean())
    return out


def _fmt(nu: float) -> str:
    return f"{nu:g}".replace(".", "p")


def healpix_peaks(m: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean ``(npix,)`` of local maxima of a RING-ordered HEALPix map: higher than all its
    (7 or 8) neighbours, with the pixel and all neighbours inside ``mask``."""
    import healpy as hp

    m = np.asarray(m, np.float64)
    nside = hp.npix2nside(len(m))
    neigh = hp.get_all_neighbours(nside, np.arange(len(m)))  # (8, npix), -1 where missing
    valid = neigh >= 0
    nvals = np.where(valid, m[np.where(valid, neigh, 0)], -np.inf)
    peak = np.all(m[None, :] > nvals, axis=0)
    if mask is not None:
        inside = np.asarray(mask) > 0
        ok = inside & np.all(np.where(valid, inside[np.where(valid, neigh, 0)], True), axis=0)
        peak &= ok
    return peak
