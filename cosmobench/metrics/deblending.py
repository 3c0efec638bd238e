"""Deblending metrics, evaluated as in the LSST DESC BlendingToolKit: match detections to true
sources first, then score detection, and flux, shape and reconstruction on matched pairs.

Definitions (``N`` true sources, ``M`` detections, ``C`` bands; positions in px):

* **Matching** (:func:`match_sources`): Hungarian assignment (``scipy.optimize.
  linear_sum_assignment``) of detections to true centroids on their Euclidean distance, pairs
  farther than ``radius`` px forbidden: the largest number of pairs within the radius, and among
  those the smallest total distance. Each truth and each detection is used at most once.
* **Detection**, over all scenes: ``precision = TP / M``, ``recall = TP / N``,
  ``f1 = 2 P R / (P + R)`` with ``TP`` the number of matched pairs.
* **Flux**, per matched source and band: ``F = sum`` of the (reconstructed / true) isolated
  image over the stamp; relative error ``delta_b = (F_pred,b - F_true,b) / F_true,b``.
  ``flux_mape = 100 mean |delta|`` (percent; mean over bands, then over sources — equal to
  the mean over all (source, band) pairs) and ``flux_bias = 100 mean delta`` (percent).
* **Ellipticity** (:func:`ellipticity`): Gaussian-weighted second moments of the band-summed
  image about the **true** centroid (so that centroid errors do not enter),
  ``Q_ij = sum w I d_i d_j / sum w I`` with ``w = exp(-r^2 / (2 sigma_w^2))``, as the
  *distortion* ``e = (Q_xx - Q_yy, 2 Q_xy) / (Q_xx + Q_yy)`` (Bernstein & Jarvis 2002's chi;
  ``|e| = (1 - q^2)/(1 + q^2)`` for an unconvolved, unweighted elliptical profile of axis
  ratio ``q``). The same weight is used for truth and prediction.
  ``ellipticity_rmse = sqrt(mean |e_pred - e_true|^2)`` over matched sources with finite
  moments (a non-positive weighted flux or trace gives NaN, left out).
* **Reconstruction**: ``recon_mse = sum (pred - true)^2 / sum true^2`` over bands and pixels
  of one source (the MSE normalised by the true image's energy), averaged over sources;
  ``ssim`` = scikit-image's ``structural_similarity`` per band (7x7 uniform window,
  ``data_range`` = the true band image's max - min), averaged over bands and sources.
* **Blendedness bins**: every matched-source metric and the recall are also given per bin of
  the true blendedness (:func:`cosmobench.sim.blends.blendedness`), named
  ``<metric>_bl<lo>_<hi>`` with the bin edges in percent (``flux_mape_bl10_30`` for
  ``0.1 <= beta < 0.3``; the last bin includes its upper edge), and for all sources with
  ``beta >= blended_threshold`` as ``<metric>_blended``, with ``n_true_<bin>`` (number of true
  sources in the bin); a bin without sources (or without matches) has no metrics, so that no
  NaN appears in a run's metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from cosmobench.settings import setting

SOURCE_METRICS = ("flux_mape", "flux_bias", "ellipticity_rmse", "recon_mse", "ssim")


@dataclass
class DeblendingEval:
    """The ``eval`` node of the deblending task: the evaluation protocol (module docstring)."""

    match_radius: float = setting(3.0, "positive float", unit="px",
                                  help="largest distance of a matched (truth, detection) pair")
    footprint_nsigma: float = setting(1.0, "positive float", unit="sigma",
                                      help="blendedness footprint threshold, in band-summed noise sigmas")
    moment_sigma: float = setting(3.0, "positive float", unit="px", help="Gaussian weight of the ellipticity moments")
    blend_bins: list[float] = setting([0.0, 0.01, 0.1, 0.3, 1.0], "nonempty list[probability]",
                                      help="blendedness bin edges (increasing) of the per-bin metrics")
    blended_threshold: float = setting(0.1, "probability", help="blendedness from which a source counts as blended")


# ----------------------------------------------------------------------------- matching


def match_sources(true_xy: np.ndarray, det_xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ti, di)`` of matched (truth, detection) pairs, sorted by truth index
    (see module docstring). ``true_xy`` ``(N, 2)``, ``det_xy`` ``(M, 2)``, ``radius`` > 0 px."""
    if radius <= 0:
        raise ValueError(f"matching radius must be > 0 px, got {radius}")
    t = np.asarray(true_xy, dtype=float).reshape(-1, 2)
    d = np.asarray(det_xy, dtype=float).reshape(-1, 2)
    if len(t) == 0 or len(d) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    dist = np.hypot(t[:, None, 0] - d[None, :, 0], t[:, None, 1] - d[None, :, 1])
    allowed = dist <= radius
    # forbidden pairs cost more than any set of allowed ones: maximise the number of pairs first
    big = 1.0 + radius * (min(len(t), len(d)) + 1)
    ti, di = linear_sum_assignment(np.where(allowed, dist, big))
    keep = allowed[ti, di]
    order = np.argsort(ti[keep])
    return ti[keep][order], di[keep][order]


def detection_scores(n_true: int, n_det: int, n_matched: int) -> dict[str, float]:
    """``precision``, ``recall``, ``f1`` from counts (0 where undefined)."""
    p = n_matched / n_det if n_det else 0.0
    r = n_matched / n_true if n_true else 0.0
    return {"precision": float(p), "recall": float(r), "f1": float(2 * p * r / (p + r)) if p + r > 0 else 0.0}


# ----------------------------------------------------------------------------- per source


def ellipticity(image: np.ndarray, centre: Sequence[float], sigma: float) -> np.ndarray:
    """Distortion ``(e1, e2)`` of a 2-D image from Gaussian-weighted (``sigma`` px) second
    moments about ``centre = (x, y)`` (module docstring). NaN if undefined."""
    img = np.asarray(image, dtype=float)
    ny, nx = img.shape
    dx = np.arange(nx) - float(centre[0])
    dy = np.arange(ny)[:, None] - float(centre[1])
    w = np.exp(-(dx ** 2 + dy ** 2) / (2.0 * sigma ** 2)) * img
    s = w.sum()
    if not s > 0:
        return np.full(2, np.nan)
    qxx, qyy, qxy = (w * dx ** 2).sum() / s, (w * dy ** 2).sum() / s, (w * dx * dy).sum() / s
    tr = qxx + qyy
    if not tr > 0:
        return np.full(2, np.nan)
    return np.array([(qxx - qyy) / tr, 2.0 * qxy / tr])


def relative_flux_error(pred_flux: np.ndarray, true_flux: np.ndarray) -> np.ndarray:
    """``(F_pred - F_true) / F_true`` elementwise (e.g. ``(N, C)``)."""
    return (np.asarray(pred_flux, dtype=float) - np.asarray(true_flux, dtype=float)) / np.asarray(true_flux, dtype=float)


def recon_mse(pred: np.ndarray, true: np.ndarray) -> float:
    """``sum (pred - true)^2 / sum true^2`` over all axes of one source's ``(C, H, W)`` images."""
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    return float(((pred - true) ** 2).sum() / (true ** 2).sum())


def ssim(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over bands of scikit-image's SSIM of ``(C, H, W)`` images (module docstring)."""
    from skimage.metrics import structural_similarity

    vals = []
    for p, t in zip(np.asarray(pred, dtype=float), np.asarray(true, dtype=float)):
        rng = float(t.max() - t.min())
        vals.append(structural_similarity(t, p, data_range=rng if rng > 0 else 1.0))
    return float(np.mean(vals))


def measure_scene(true_images: np.ndarray, true_xy: np.ndarray, det_xy: np.ndarray, pred_images: np.ndarray,
                  radius: float, moment_sigma: float) -> dict[str, np.ndarray]:
    """Match one scene and measure every true source.

    ``true_images`` ``(N, C, H, W)``, ``true_xy`` ``(N, 2)``, ``det_xy`` ``(M, 2)``,
    ``pred_images`` ``(M, C, H, W)`` (the deblender's isolated image of every detection).
    Returns per-truth arrays (NaN where unmatched): ``matched`` ``(N,)`` bool, ``det_index``
    ``(N,)`` (-1 if unmatched), ``flux_true``/``flux_pred`` ``(N, C)``, ``e_true``/``e_pred``
    ``(N, 2)``, ``recon_mse``, ``ssim`` ``(N,)``; and ``n_det`` (int)."""
    true_images = np.asarray(true_images, dtype=float)
    n, c = true_images.shape[:2]
    ti, di = match_sources(true_xy, det_xy, radius)
    out = {"matched": np.zeros(n, bool), "det_index": np.full(n, -1), "flux_true": true_images.sum(axis=(-2, -1)),
           "flux_pred": np.full((n, c), np.nan), "e_true": np.full((n, 2), np.nan), "e_pred": np.full((n, 2), np.nan),
           "recon_mse": np.full(n, np.nan), "ssim": np.full(n, np.nan), "n_det": len(np.asarray(det_xy).reshape(-1, 2))}
    for i in range(n):
        out["e_true"][i] = ellipticity(true_images[i].sum(0), true_xy[i], moment_sigma)
    for i, j in zip(ti, di):
        pred = np.asarray(pred_images[j], dtype=float)
        out["matched"][i], out["det_index"][i] = True, j
        out["flux_pred"][i] = pred.sum(axis=(-2, -1))
        out["e_pred"][i] = ellipticity(pred.sum(0), true_xy[i], moment_sigma)
        out["recon_mse"][i] = recon_mse(pred, true_images[i])
        out["ssim"][i] = ssim(pred, true_images[i])
    return out


# ----------------------------------------------------------------------------- aggregates


def source_metrics(flux_pred: np.ndarray, flux_true: np.ndarray, e_pred: np.ndarray, e_true: np.ndarray,
                   recon: np.ndarray, ssim_values: np.ndarray) -> dict[str, float]:
    """Matched-source metrics (module docstring) of ``n`` matched sources; NaN for ``n = 0``."""
    if len(flux_true) == 0:
        return {k: float("nan") for k in SOURCE_METRICS}
    delta = relative_flux_error(flux_pred, flux_true)
    de = np.asarray(e_pred, dtype=float) - np.asarray(e_true, dtype=float)
    ok = np.isfinite(de).all(axis=1)
    return {"flux_mape": float(100 * np.mean(np.abs(delta))), "flux_bias": float(100 * np.mean(delta)),
            "ellipticity_rmse": float(np.sqrt(np.mean((de[ok] ** 2).sum(1)))) if ok.any() else float("nan"),
            "recon_mse": float(np.mean(recon)), "ssim": float(np.mean(ssim_values))}


def check_bins(bins: Sequence[float]) -> np.ndarray:
    """Blendedness bin edges as an array; ValueError unless at least two, increasing."""
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"blendedness bins must be increasing edges, got {list(bins)}")
    return edges


def bin_name(lo: float, hi: float) -> str:
    """``bl10_30`` for the blendedness bin [0.1, 0.3)."""
    return f"bl{int(round(lo * 100)):02d}_{int(round(hi * 100)):02d}"


def deblending_metrics(per_source: dict[str, np.ndarray], n_det: int, bins: Sequence[float],
                       blended_threshold: float) -> dict[str, float]:
    """All metrics from the concatenated per-truth arrays of :func:`measure_scene` (plus
    ``blendedness`` ``(n,)``) and the total number of detections ``n_det``."""
    matched = np.asarray(per_source["matched"], bool)
    beta = np.asarray(per_source["blendedness"], dtype=float)
    edges = check_bins(bins)

    def subset(sel: np.ndarray) -> dict[str, float]:
        """Metrics of the truths ``sel``; only the count for an empty group, no matched-source
        metrics for a group without matches (so that metrics.json holds no NaN from a bin)."""
        m = sel & matched
        res = {"n_true": float(sel.sum())}
        if sel.any():
            res["recall"] = float(m.sum() / sel.sum())
        if m.any():
            res.update(source_metrics(per_source["flux_pred"][m], per_source["flux_true"][m], per_source["e_pred"][m],
                                      per_source["e_true"][m], per_source["recon_mse"][m], per_source["ssim"][m]))
        return res

    out = detection_scores(len(matched), int(n_det), int(matched.sum()))
    m = matched
    out.update(source_metrics(per_source["flux_pred"][m], per_source["flux_true"][m], per_source["e_pred"][m],
                              per_source["e_true"][m], per_source["recon_mse"][m], per_source["ssim"][m]))
    out["n_true"], out["n_det"], out["n_matched"] = float(len(matched)), float(n_det), float(matched.sum())
    groups = {bin_name(lo, hi): (beta >= lo) & ((beta < hi) | ((hi == edges[-1]) & (beta <= hi)))
              for lo, hi in zip(edges[:-1], edges[1:])}
    groups["blended"] = beta >= blended_threshold
    for name, sel in groups.items():
        for k, v in subset(sel).items():
            out[f"{k}_{name}"] = v
    return out


__all__ = ["DeblendingEval", "SOURCE_METRICS", "check_bins", "match_sources", "detection_scores", "ellipticity", "relative_flux_error", "recon_mse",
           "ssim", "measure_scene", "source_metrics", "bin_name", "deblending_metrics"]
