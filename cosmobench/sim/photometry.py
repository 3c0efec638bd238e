"""Broad-band galaxy photometry: SED templates, filters, n(z), luminosity function, noise.

Shared, vectorised numpy primitives (no torch). Everything below is the complete
generative model used by the ``photoz`` simulator; other tasks may reuse the pieces.

Units and conventions
---------------------
* Wavelengths ``lam`` in Angstrom (vacuum); ``lam_obs = (1 + z) * lam_rest``.
* SEDs are given as f_nu (per unit frequency), in arbitrary linear units for templates.
* AB magnitudes: ``m = -2.5 log10(<f_nu> / 3631 Jy)`` with the photon-counting band
  average ``<f_nu>_b = int f_nu T_b dlam/lam / int T_b dlam/lam``.
* Fluxes in nJy: ``m = 31.4 - 2.5 log10(F / nJy)`` (:data:`AB_ZP_NJY`).
* Cosmology: flat LambdaCDM, H0 = 70 km/s/Mpc, Omega_m = 0.3 (luminosity distance
  by numerical integration); distance modulus ``DM = 5 log10(D_L / 10 pc)``.

Model
-----
1. **Filters** (:data:`FILTERS`): analytic SDSS-like ugriz bandpasses, smoothed top-hats
   ``T(lam) = 0.5 [tanh((lam - lo)/w) - tanh((lam - hi)/w)]`` with edges (Angstrom)
   u 3050-4000, g 4000-5500, r 5500-6950, i 6950-8450, z 8450-10000 and edge width
   w = 60. The rest-frame B band used for absolute magnitudes is 3900-4900 (same shape).
2. **Continuum templates** (:data:`BASE_TEMPLATES`, E, Sbc, Scd, starburst):
   f_nu ∝ (lam/5500)^gamma_red redward of the 4000 Å break, a step of height D4000
   (ratio of f_nu across 4000 Å, smoothed over 60 Å) and f_nu ∝ lam^gamma_uv blueward,
   zero below the 912 Å Lyman limit. A galaxy's continuum is a linear mix of the two
   adjacent templates at a continuous type ``t`` in [0, 3] (0 = E ... 3 = starburst).
3. **Emission lines** (Gaussians, rest sigma 8 Å): [OII]3727, Hbeta 4861, Halpha 6563,
   [NII]6584 with fixed ratios to Halpha (0.6, 1/2.86 (case B), 1, 0.3) and a separate
   [OIII]5007 component with [OIII]/Hbeta log-uniform in [0.3, 5]. Line strength is the
   rest equivalent width of Halpha, log-normal (0.3 dex) with a median rising from
   0 Å (E) to 150 Å (starburst).
4. **Dust**: Calzetti et al. (2000) attenuation ``10^(-0.4 k(lam) E(B-V))`` on continuum
   and lines; E(B-V) = 0 for t < 0.35, else exponential with mean 0.05 + 0.05 t,
   capped at 0.5.
5. **IGM** (Madau 1995): Lyman-alpha/beta forest optical depths
   ``0.0036 (lam_obs/1216)^3.46`` and ``0.0017 (lam_obs/1026)^3.46`` blueward of the
   redshifted lines, zero transmission below 912 (1 + z) Å.
6. **Redshifts**: Smail-type n(z) ∝ z^alpha exp[-(z/z0)^beta] on (0.005, z_max]
   (the defaults of :class:`PhotometrySurvey` are the LSST i < 25.3 "gold" sample of
   Chang et al. 2013). This is the n(z) of the *selected* (magnitude-limited) sample.
7. **Types**: red sequence (t ~ U(0, 0.35)) with probability 0.35 exp(-z/1.2),
   otherwise blue cloud t ~ U(0.35, 3) with density ∝ 1 + z·(t - 0.35)/2.65
   (bluer galaxies more common at high z).
8. **Luminosities**: Schechter luminosity function in rest-frame B absolute magnitude,
   red: M* = -20.8 - z, alpha = -0.5; blue: M* = -20.4 - z, alpha = -1.3. Given (z, t),
   M is drawn from the LF truncated at the faintest M that still passes the apparent
   magnitude limit on the noiseless i magnitude (``mag_limit``), so the selected sample
   keeps the n(z) of item 6 while faint/bright objects follow the LF.
9. **Apparent magnitudes**: ``m_b = M_B + DM(z) - 2.5 log10(1 + z) - 2.5 log10(<f_nu>_b(z) / <f_nu>_B(0))``
   where ``<f_nu>_b(z)`` is the band average of the redshifted rest-frame SED (K-correction).
10. **Noise** (flux space): ``sigma_F = F_5sigma / 5`` with ``F_5sigma`` the flux of the
    5-sigma depth ``m_5sigma`` of each band; ``F_obs = F + N(0, sigma_F)``.
    Non-detections: the observed flux is clipped from below at ``sigma_F`` (an S/N = 1
    upper limit) before converting to magnitudes, so every object has a finite magnitude
    ``m = 31.4 - 2.5 log10(max(F_obs, sigma_F))`` and error ``1.0857 sigma_F / max(F_obs, sigma_F)``
    (at most 1.0857 mag, which flags a non-detection).

Degeneracies kept on purpose: the Lyman break (z ~ 2.5-3) and the 4000 Å / Balmer
break (z ~ 0-0.4) both redden u-g; at 1.4 < z < 2.5 no break falls in ugriz (the
"redshift desert"); dust reddening mimics an older population at lower redshift.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cosmobench.settings import setting

AB_ZP_NJY = 31.4            #: AB magnitude of 1 nJy
MAG_ERR_FACTOR = 2.5 / np.log(10.0)   #: 1.0857: dm = 1.0857 dF/F
BANDS = ("u", "g", "r", "i", "z")
#: (lo, hi) band edges in Angstrom of the analytic ugriz filters
FILTERS: dict[str, tuple[float, float]] = {
    "u": (3050.0, 4000.0), "g": (4000.0, 5500.0), "r": (5500.0, 6950.0),
    "i": (6950.0, 8450.0), "z": (8450.0, 10000.0)}
REST_B = (3900.0, 4900.0)   #: rest-frame B band for absolute magnitudes
FILTER_EDGE = 60.0          #: tanh edge width of the bandpasses, Angstrom
LAM_OBS = np.arange(2700.0, 10600.0, 5.0)   #: observed wavelength grid, Angstrom

#: continuum templates: f_nu slope redward of the break, D4000 (f_nu ratio), UV f_nu slope
BASE_TEMPLATES: dict[str, dict[str, float]] = {
    "E": {"gamma_red": 2.2, "d4000": 2.3, "gamma_uv": 3.0},
    "Sbc": {"gamma_red": 1.5, "d4000": 1.6, "gamma_uv": 1.5},
    "Scd": {"gamma_red": 1.0, "d4000": 1.3, "gamma_uv": 0.5},
    "SB": {"gamma_red": 0.6, "d4000": 1.1, "gamma_uv": 0.0},
}
#: emission lines: rest wavelength (Angstrom) and flux relative to Halpha (component 1)
LINES_1 = {"OII_3727": (3727.0, 0.6), "Hbeta": (4861.0, 1 / 2.86),
           "Halpha": (6563.0, 1.0), "NII_6584": (6584.0, 0.3)}
LINE_OIII = (5007.0, 1 / 2.86)   #: [OIII]5007 per unit [OIII]/Hbeta, relative to Halpha
LINE_SIGMA = 8.0                 #: rest-frame Gaussian line width, Angstrom
EBV_GRID = np.round(np.arange(0.0, 0.5001, 0.05), 3)   #: E(B-V) nodes of the flux grid
Z_STEP = 0.004                   #: redshift step of the flux grid
H0, OMEGA_M = 70.0, 0.3
C_KMS = 299792.458


# --- filters and AB magnitudes -----------------------------------------------------------
def bandpass(lam: np.ndarray, lo: float, hi: float, edge: float = FILTER_EDGE) -> np.ndarray:
    """Smoothed top-hat throughput in [0, 1] at wavelengths ``lam`` (Angstrom)."""
    lam = np.asarray(lam, float)
    return 0.5 * (np.tanh((lam - lo) / edge) - np.tanh((lam - hi) / edge))


def filter_curves(lam: np.ndarray, bands: Sequence[str] = BANDS) -> np.ndarray:
    """Throughputs (n_bands, n_lam) of the analytic ugriz filters."""
    return np.stack([bandpass(lam, *FILTERS[b]) for b in bands])


def band_weights(lam: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Weights (n_lam, n_bands) such that ``fnu @ W`` is the photon-counting band
    average ``int f_nu T dlam/lam / int T dlam/lam`` (trapezoid rule on ``lam``)."""
    lam = np.asarray(lam, float)
    dlam = np.gradient(lam)
    w = curves * (dlam / lam)[None, :]
    return (w / w.sum(axis=1, keepdims=True)).T


def band_average_fnu(lam: np.ndarray, fnu: np.ndarray, bands: Sequence[str] = BANDS) -> np.ndarray:
    """Band-averaged f_nu (same units as ``fnu``), shape ``fnu.shape[:-1] + (n_bands,)``."""
    return np.asarray(fnu, float) @ band_weights(lam, filter_curves(lam, bands))


def ab_mag(lam: np.ndarray, fnu_jy: np.ndarray, bands: Sequence[str] = BANDS) -> np.ndarray:
    """AB magnitudes of spectra ``fnu_jy`` (f_nu in Jy on wavelength grid ``lam``)."""
    return -2.5 * np.log10(band_average_fnu(lam, fnu_jy, bands) / 3631.0)


def mag_to_njy(mag: np.ndarray) -> np.ndarray:
    """AB magnitude -> flux in nJy."""
    return 10.0 ** (-0.4 * (np.asarray(mag, float) - AB_ZP_NJY))


def njy_to_mag(flux: np.ndarray) -> np.ndarray:
    """Flux in nJy (> 0) -> AB magnitude."""
    return AB_ZP_NJY - 2.5 * np.log10(flux)


# --- SED templates -----------------------------------------------------------------------
def continuum_fnu(lam_rest: np.ndarray, gamma_red: float, d4000: float, gamma_uv: float) -> np.ndarray:
    """Continuum f_nu (arbitrary units, = 1 at 5500 Å) at rest wavelengths (Angstrom).

    Power law ``(lam/5500)^gamma_red`` redward of 4000 Å; a smooth break lowering f_nu by a
    factor ``d4000`` across 4000 Å (logistic, 60 Å); ``(lam/4000)^gamma_uv`` relative slope
    blueward; zero below the Lyman limit (912 Å)."""
    lam = np.asarray(lam_rest, float)
    red = (lam / 5500.0) ** gamma_red
    ratio = (np.minimum(lam, 4000.0) / 4000.0) ** (gamma_uv - gamma_red)  # UV slope change
    step = 1.0 / (1.0 + np.exp(-(lam - 4000.0) / 60.0))                    # 0 blue, 1 red
    brk = d4000 ** (step - 1.0)
    return np.where(lam > 912.0, red * ratio * brk, 0.0)


def lines_fnu(lam_rest: np.ndarray, lines: dict[str, tuple[float, float]] | Sequence[tuple[float, float]],
              sigma: float = LINE_SIGMA) -> np.ndarray:
    """f_nu of Gaussian emission lines (f_lambda Gaussians of unit Halpha flux, in units where
    f_lambda(lam) = f_nu(lam) * (5500/lam)^2, i.e. the same normalisation as the continuum)."""
    lam = np.asarray(lam_rest, float)
    items = lines.values() if isinstance(lines, dict) else lines
    flam = np.zeros_like(lam)
    for lam0, rel in items:
        flam += rel * np.exp(-0.5 * ((lam - lam0) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return flam * (lam / 5500.0) ** 2


def calzetti_k(lam_rest: np.ndarray) -> np.ndarray:
    """Calzetti et al. (2000) k(lambda), R_V = 4.05; extrapolated linearly in 1/lambda
    below 1200 Å and beyond 2.2 micron; clipped at 0."""
    x = 1e4 / np.asarray(lam_rest, float)   # inverse micron
    short = 2.659 * (-2.156 + 1.509 * x - 0.198 * x ** 2 + 0.011 * x ** 3) + 4.05
    long_ = 2.659 * (-1.857 + 1.040 * x) + 4.05
    k = np.where(x >= 1e4 / 6300.0, short, long_)
    x_lim = 1e4 / 1200.0   # linear extrapolation blueward of 1200 Å
    slope = 2.659 * (1.509 - 2 * 0.198 * x_lim + 3 * 0.011 * x_lim ** 2)
    k_lim = 2.659 * (-2.156 + 1.509 * x_lim - 0.198 * x_lim ** 2 + 0.011 * x_lim ** 3) + 4.05
    k = np.where(x > x_lim, k_lim + slope * (x - x_lim), k)
    return np.maximum(k, 0.0)


def igm_transmission(lam_obs: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Madau (1995) mean IGM transmission (Lyman alpha + beta forest, Lyman limit)."""
    lam = np.asarray(lam_obs, float)
    z = np.asarray(z, float)
    tau = np.where(lam < 1216.0 * (1 + z), 0.0036 * (lam / 1216.0) ** 3.46, 0.0)
    tau = tau + np.where(lam < 1026.0 * (1 + z), 0.0017 * (lam / 1026.0) ** 3.46, 0.0)
    return np.where(lam < 912.0 * (1 + z), 0.0, np.exp(-tau))


def template_components(lam_rest: np.ndarray) -> np.ndarray:
    """Linear SED components (n_comp, n_lam) in f_nu: the 4 continuum templates,
    line component 1 ([OII], Hbeta, Halpha, [NII]; unit Halpha flux) and [OIII]5007
    (per unit [OIII]/Hbeta ratio)."""
    conts = [continuum_fnu(lam_rest, **p) for p in BASE_TEMPLATES.values()]
    return np.stack(conts + [lines_fnu(lam_rest, LINES_1), lines_fnu(lam_rest, [LINE_OIII])])


def sed_fnu(lam_rest: np.ndarray, t: float, ew_halpha: float = 0.0, oiii_hbeta: float = 1.0,
            ebv: float = 0.0) -> np.ndarray:
    """Rest-frame f_nu of one galaxy (type ``t`` in [0, 3], Halpha rest EW in Å,
    [OIII]/Hbeta ratio, Calzetti E(B-V)), without IGM; continuum = 1 at 5500 Å for t integer."""
    comps = template_components(lam_rest)
    coef = mixture_coefficients(np.atleast_1d(t), np.atleast_1d(ew_halpha), np.atleast_1d(oiii_hbeta))[0]
    return (coef @ comps) * 10 ** (-0.4 * calzetti_k(lam_rest) * ebv)


def mixture_coefficients(t: np.ndarray, ew_halpha: np.ndarray, oiii_hbeta: np.ndarray) -> np.ndarray:
    """Coefficients (n, 6) of the linear components of :func:`template_components`.

    Continuum: linear interpolation between adjacent templates at type ``t``. Lines: the
    Halpha flux is ``EW * f_lambda,cont(6563 Å)`` with ``f_lambda = f_nu (5500/lam)^2``."""
    t = np.clip(np.asarray(t, float), 0.0, 3.0)
    n_t = len(BASE_TEMPLATES)
    lo = np.minimum(np.floor(t).astype(int), n_t - 2)
    frac = t - lo
    coef = np.zeros((len(t), n_t + 2))
    rows = np.arange(len(t))
    coef[rows, lo] = 1.0 - frac
    coef[rows, lo + 1] = frac
    cont_ha = np.array([continuum_fnu(np.array([6563.0]), **p)[0] for p in BASE_TEMPLATES.values()])
    flam_ha = (coef[:, :n_t] @ cont_ha) * (5500.0 / 6563.0) ** 2
    coef[:, n_t] = np.asarray(ew_halpha, float) * flam_ha
    coef[:, n_t + 1] = coef[:, n_t] * np.asarray(oiii_hbeta, float)
    return coef


# --- cosmology ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _dm_table(z_max: float) -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(0.0, z_max + 0.1, 4001)
    ez = np.sqrt(OMEGA_M * (1 + z) ** 3 + 1 - OMEGA_M)
    dc = np.concatenate([[0.0], np.cumsum(0.5 * (1 / ez[1:] + 1 / ez[:-1]) * np.diff(z))]) * C_KMS / H0  # Mpc
    dl = np.maximum((1 + z) * dc, 1e-30)
    return z, 5 * np.log10(dl * 1e6 / 10.0)


def distance_modulus(z: np.ndarray) -> np.ndarray:
    """Distance modulus 5 log10(D_L/10 pc) in flat LCDM (H0=70, Om=0.3); z > 0."""
    z = np.asarray(z, float)
    zt, dm = _dm_table(float(max(3.0, np.max(z, initial=0.0))))
    return np.interp(z, zt, dm)


# --- flux grid ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def flux_grid(z_max: float) -> dict[str, np.ndarray]:
    """Band-averaged f_nu of every SED component, redshifted with IGM and Calzetti dust.

    Returns ``{"z": (n_z,), "ebv": (n_e,), "obs": (n_comp, n_e, n_z, n_bands),
    "restB": (n_comp, n_e)}`` where ``obs[j, e, k, b]`` is ``<f_nu>_b`` of component j
    with E(B-V) = ebv[e] at redshift z[k] (rest-frame f_nu evaluated at lam_obs/(1+z)),
    and ``restB`` the rest-frame B band average at z = 0. Linear in the components."""
    zs = np.arange(0.0, z_max + 2 * Z_STEP, Z_STEP)
    lam = LAM_OBS
    w_obs = band_weights(lam, filter_curves(lam))                       # (n_lam, 5)
    lam_rest = lam[None, :] / (1 + zs[:, None])                           # (n_z, n_lam)
    igm = igm_transmission(lam[None, :], zs[:, None])
    kdust = calzetti_k(lam_rest)
    comps = template_components(lam_rest.ravel()).reshape(-1, *lam_rest.shape)  # (n_comp, n_z, n_lam)
    obs = np.empty((comps.shape[0], len(EBV_GRID), len(zs), w_obs.shape[1]))
    for e, ebv in enumerate(EBV_GRID):
        att = igm * 10 ** (-0.4 * kdust * ebv)
        obs[:, e] = (comps * att[None]) @ w_obs
    lam_b = np.arange(3500.0, 5300.0, 2.0)
    w_b = band_weights(lam_b, bandpass(lam_b, *REST_B)[None, :])[:, 0]
    comps_b = template_components(lam_b)
    rest_b = np.stack([(comps_b * 10 ** (-0.4 * calzetti_k(lam_b) * ebv)) @ w_b for ebv in EBV_GRID], axis=1)
    return {"z": zs, "ebv": EBV_GRID.copy(), "obs": obs, "restB": rest_b}


def _interp_weights(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    f = np.clip((x - grid[i]) / (grid[i + 1] - grid[i]), 0.0, 1.0)
    return i, f


def model_magnitudes(z: np.ndarray, coef: np.ndarray, ebv: np.ndarray, abs_mag_b: np.ndarray,
                     z_max: float = 3.0) -> np.ndarray:
    """Noiseless AB magnitudes (n, n_bands) of galaxies with redshifts ``z``, component
    coefficients ``coef`` (n, n_comp), E(B-V) ``ebv`` and rest-frame B absolute magnitude."""
    colours = k_corrections(z, coef, ebv, z_max)
    return (np.asarray(abs_mag_b, float) + distance_modulus(z))[:, None] + colours


def k_corrections(z: np.ndarray, coef: np.ndarray, ebv: np.ndarray, z_max: float = 3.0) -> np.ndarray:
    """``m_b - M_B - DM(z)`` (n, n_bands): ``-2.5 log10[(1+z) <f_nu>_b(z) / <f_nu>_B(0)]``."""
    g = flux_grid(float(z_max))
    z = np.asarray(z, float)
    iz, fz = _interp_weights(g["z"], z)
    ie, fe = _interp_weights(g["ebv"], np.clip(ebv, 0.0, g["ebv"][-1]))
    obs = g["obs"]
    fl = 0.0
    for de, we in ((0, 1 - fe), (1, fe)):
        for dz, wz in ((0, 1 - fz), (1, fz)):
            fl = fl + (we * wz)[:, None] * np.einsum("nj,jnb->nb", coef, obs[:, ie + de, iz + dz, :])
    rb = g["restB"]
    fb = (1 - fe) * np.einsum("nj,jn->n", coef, rb[:, ie]) + fe * np.einsum("nj,jn->n", coef, rb[:, ie + 1])
    ratio = np.maximum(fl, 1e-300) / fb[:, None]
    return -2.5 * np.log10((1 + z)[:, None] * ratio)


# --- populations -------------------------------------------------------------------------
def smail_pdf(z: np.ndarray, alpha: float, beta: float, z0: float) -> np.ndarray:
    """Unnormalised Smail n(z) ∝ z^alpha exp[-(z/z0)^beta]."""
    z = np.asarray(z, float)
    return np.where(z > 0, z ** alpha * np.exp(-(np.maximum(z, 0) / z0) ** beta), 0.0)


def sample_smail(rng: np.random.Generator, n: int, alpha: float, beta: float, z0: float,
                 z_min: float = 0.005, z_max: float = 3.0) -> np.ndarray:
    """``n`` redshifts from the Smail n(z) truncated to [z_min, z_max] (inverse CDF on a grid)."""
    grid = np.linspace(z_min, z_max, 4001)
    pdf = smail_pdf(grid, alpha, beta, z0)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    if not cdf[-1] > 0:
        raise ValueError(f"Smail n(z) with alpha={alpha}, beta={beta}, z0={z0} has no mass in [{z_min}, {z_max}]")
    return np.interp(rng.random(n) * cdf[-1], cdf, grid)


def schechter_log_phi(mag: np.ndarray, m_star: np.ndarray, alpha: float) -> np.ndarray:
    """log of the Schechter LF per unit magnitude (unnormalised):
    phi(M) ∝ 10^{-0.4 (alpha+1)(M - M*)} exp(-10^{-0.4 (M - M*)})."""
    x = -0.4 * (np.asarray(mag, float) - m_star)
    return (alpha + 1) * x * np.log(10.0) - 10.0 ** x


def sample_schechter_truncated(u: np.ndarray, m_star: np.ndarray, alpha: float,
                               m_faint: np.ndarray, m_floor: float = -26.5) -> np.ndarray:
    """Absolute magnitudes from the Schechter LF restricted to ``M <= m_faint`` (per object),
    by inverse CDF of the uniforms ``u`` in (0, 1).

    The CDF is tabulated in log space on a 0.01 mag grid relative to M*, so it stays exact
    when ``m_faint`` lies far in the exponential bright tail (M is then just brighter than
    ``m_faint``); results are floored at ``m_floor``."""
    dm = np.arange(-9.0, 8.0, 0.01)                      # M - M*
    log_cdf = np.logaddexp.accumulate(schechter_log_phi(dm, 0.0, alpha) + np.log(0.01))
    top = np.clip(np.asarray(m_faint, float) - m_star, dm[0], dm[-1])
    log_u = np.interp(top, dm, log_cdf) + np.log(np.asarray(u, float))
    return np.maximum(m_star + np.interp(log_u, log_cdf, dm), m_floor)


def add_flux_noise(rng: np.random.Generator, mag_true: np.ndarray, depth_5sigma: Sequence[float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Observed magnitudes and errors from noiseless magnitudes (n, n_bands).

    ``sigma_F = F(depth_5sigma)/5``; ``F_obs = F + N(0, sigma_F)``; fluxes below ``sigma_F``
    are clipped to ``sigma_F`` (non-detection -> S/N = 1 upper limit);
    ``mag = 31.4 - 2.5 log10 F_clip``, ``err = 1.0857 sigma_F / F_clip``."""
    sigma = mag_to_njy(np.asarray(depth_5sigma, float)) / 5.0
    flux = mag_to_njy(mag_true) + rng.standard_normal(np.shape(mag_true)) * sigma
    flux = np.maximum(flux, sigma)
    return njy_to_mag(flux), MAG_ERR_FACTOR * sigma / flux


@dataclass
class PhotometrySurvey:
    """Survey settings of :func:`simulate_catalog` (the ``data`` keys of the photoz
    simulator); the defaults are an LSST-like i < 25.3 "gold" sample."""

    mag_limit: float = setting(25.3, "float", unit="AB mag",
                               help="limit on the noiseless magnitude of the limit band (i)")
    depth_5sigma: list[float] = setting([26.1, 27.4, 27.5, 26.8, 26.1], "nonempty list[float]", unit="AB mag",
                                        help="5-sigma point-source depth per band (ugriz; catalogues: the "
                                             "S/N = 1 limit of non-detections)")
    z_max: float = setting(3.0, "float > 0.05", help="largest redshift (simulated n(z); valid catalogue z_spec)")
    nz_alpha: float = setting(1.24, "positive float", help="Smail n(z) ∝ z^alpha exp[-(z/z0)^beta]: alpha")
    nz_beta: float = setting(1.01, "positive float", help="Smail n(z): beta")
    nz_z0: float = setting(0.51, "positive float", help="Smail n(z): z0")


def simulate_catalog(rng: np.random.Generator, n: int, survey: PhotometrySurvey | None = None,
                     limit_band: int = 3) -> dict[str, np.ndarray]:
    """Simulate ``n`` magnitude-limited galaxies of ``survey`` (default: :class:`PhotometrySurvey`'s
    defaults; see the module docstring for the model).

    Returns ``z`` (n,), ``mag``/``magerr`` (n, 5) observed AB magnitudes and errors,
    ``mag_true`` (n, 5), ``type`` (n,), ``ebv`` (n,), ``abs_mag_b`` (n,).
    The random draws happen in a fixed order with sizes depending only on ``n``."""
    survey = survey if survey is not None else PhotometrySurvey()
    depth_5sigma, z_max = [float(d) for d in survey.depth_5sigma], float(survey.z_max)
    if len(depth_5sigma) != len(BANDS):
        raise ValueError(f"depth_5sigma needs {len(BANDS)} values ({''.join(BANDS)}), got {len(depth_5sigma)}")
    z = sample_smail(rng, n, float(survey.nz_alpha), float(survey.nz_beta), float(survey.nz_z0), z_max=z_max)
    red = rng.random(n) < 0.35 * np.exp(-z / 1.2)
    # blue-cloud type density ∝ 1 + z s  on s in [0, 1]  (s = (t - 0.35)/2.65): inverse CDF
    u = rng.random(n)
    s = np.where(z > 1e-6, (-1 + np.sqrt(1 + 2 * z * u * (1 + z / 2))) / np.maximum(z, 1e-6), u)
    t = np.where(red, 0.35 * rng.random(n), 0.35 + 2.65 * s)
    ew_median = np.where(t < 0.35, 0.0, 150.0 * np.clip((t - 0.35) / 2.65, 0, 1) ** 1.5 + 5.0)
    ew = ew_median * 10 ** (0.3 * rng.standard_normal(n))
    oiii = 10 ** rng.uniform(np.log10(0.3), np.log10(5.0), n)
    ebv = np.where(t < 0.35, 0.0, np.minimum(rng.exponential(1.0, n) * (0.05 + 0.05 * t), 0.5))
    coef = mixture_coefficients(t, ew, oiii)
    kcorr = k_corrections(z, coef, ebv, z_max)
    dm = distance_modulus(z)
    m_faint = float(survey.mag_limit) - dm - kcorr[:, limit_band]     # faintest M_B passing the cut
    m_star = np.where(red, -20.8, -20.4) - z
    u_lum = rng.random(n)
    abs_mag = np.where(red, sample_schechter_truncated(u_lum, m_star, -0.5, m_faint),
                       sample_schechter_truncated(u_lum, m_star, -1.3, m_faint))
    mag_true = (abs_mag + dm)[:, None] + kcorr
    mag, magerr = add_flux_noise(rng, mag_true, depth_5sigma)
    return {"z": z, "mag": mag, "magerr": magerr, "mag_true": mag_true, "type": t,
            "ebv": ebv, "abs_mag_b": abs_mag}


#: columns of Beck+2017's template-fitting catalogues (COINtoolbox/photoz_catalogues, columns.txt)
BECK2017_COLUMNS = ("ID", "u", "g", "r", "i", "z", "uErr", "gErr", "rErr", "iErr", "zErr", "redshift", "redshiftErr")
#: SDSS-like survey for the stand-ins: i < 17.9 (about the SDSS main-sample r < 17.77 for a
#: typical r - i), SDSS 5-sigma depths (Abazajian+2004 95 % completeness, rounded), z up to 0.8
SDSS_LIKE = PhotometrySurvey(mag_limit=17.9, depth_5sigma=[22.0, 22.2, 22.2, 21.3, 20.5], z_max=0.8,
                             nz_alpha=2.0, nz_beta=1.5, nz_z0=0.12)


def write_beck2017_standin(path, n: int, seed: int, survey: PhotometrySurvey | None = None,
                           header: bool = False) -> None:
    """A generated stand-in with the layout of Beck+2017's ``forTemplateBased`` files
    (whitespace-separated, the 13 columns of :data:`BECK2017_COLUMNS`, an SDSS-like integer
    ObjID, optionally a ``#`` header line), drawn from :func:`simulate_catalog` with ``survey``
    (default :data:`SDSS_LIKE`). Not the real catalogue: it exercises the reader and the
    track where the real files cannot be downloaded. A shifted ``survey`` (fainter
    ``mag_limit``) imitates the wider coverage of set D."""
    rng = np.random.default_rng(seed)
    cat = simulate_catalog(rng, n, survey or SDSS_LIKE)
    ids = 1237645876861272064 + rng.choice(10 ** 9, n, replace=False)
    zerr = np.abs(1e-4 * (1 + cat["z"]) * (1 + 0.3 * rng.standard_normal(n)))
    rows = np.column_stack([cat["mag"], cat["magerr"], cat["z"], zerr])
    with open(path, "w") as fh:
        if header:
            fh.write("#" + " ".join(BECK2017_COLUMNS) + "\n")
        for i, r in zip(ids, rows):
            fh.write(f"{i} " + " ".join(f"{v:.6f}" for v in r) + "\n")
