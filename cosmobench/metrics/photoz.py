"""Photometric-redshift point metrics.

Convention: ``dz = (z_phot - z_spec) / (1 + z_spec)`` where ``z_phot`` is a point estimate
(cosmobench uses the posterior median). The outlier cut is the common fixed
``|dz| > 0.15`` (not RAIL's ``max(0.06, 3 sigma_IQR)``).
"""
from __future__ import annotations

import numpy as np

OUTLIER_CUT = 0.15


def delta_z(z_phot, z_spec) -> np.ndarray:
    """``(z_phot - z_spec) / (1 + z_spec)``."""
    z_phot, z_spec = np.asarray(z_phot, np.float64), np.asarray(z_spec, np.float64)
    return (z_phot - z_spec) / (1.0 + z_spec)


def bias(z_phot, z_spec) -> float:
    """``median(dz)``."""
    return float(np.median(delta_z(z_phot, z_spec)))


def sigma_nmad(z_phot, z_spec) -> float:
    """Normalised median absolute deviation ``1.4826 median(|dz - median(dz)|)``
    (equals the standard deviation for Gaussian dz)."""
    dz = delta_z(z_phot, z_spec)
    return float(1.4826 * np.median(np.abs(dz - np.median(dz))))


def outlier_fraction(z_phot, z_spec, cut: float = OUTLIER_CUT) -> float:
    """Fraction of objects with ``|dz| > cut`` (default 0.15)."""
    return float(np.mean(np.abs(delta_z(z_phot, z_spec)) > cut))


def point_metrics(z_phot, z_spec) -> dict[str, float]:
    """``{"bias", "sigma_nmad", "outlier_frac"}`` of a point estimate."""
    return {"bias": bias(z_phot, z_spec), "sigma_nmad": sigma_nmad(z_phot, z_spec),
            "outlier_frac": outlier_fraction(z_phot, z_spec)}
