"""Full-sky (HEALPix) weak lensing with healpy: lognormal convergence maps, spin-2 shear,
spherical Kaiser–Squires and Wiener filters, and gnomonic patches that tile a survey mask.

Conventions
-----------
* Maps are RING-ordered HEALPix arrays of ``12 nside^2`` pixels; ``lmax = 3 nside - 1``
  unless stated. Harmonic transforms are healpy's (``map2alm`` with ``iter=3``,
  ``map2alm_spin``/``alm2map_spin`` for spin 2).
* **Shear.** ``gamma1, gamma2`` are the components of the spin-2 field in healpy's local
  basis ``(e_theta, e_phi)`` (the polarisation ``Q, U`` slots of healpy). In harmonics,
  ``gamma_E,lm = -f_l kappa_lm`` (healpy's E has a minus sign relative to the spin-weighted
  coefficients, ``a_E = -(a_2 + a_-2)/2``), ``f_l = sqrt((l+2)(l-1) / (l(l+1)))``, ``gamma_B = 0``
  — the full-sky Kaiser–Squires relation (Wallis et al. 2017). These signs are fixed by the test
  that spherical and flat KS agree on a gnomonic patch (``tests/test_massmapping.py``).
* **Gnomonic patches.** A patch of ``n x n`` pixels of side ``reso`` (arcmin) centred on the unit
  vector ``c`` lies on the tangent plane with ``x`` along east ``e_phi(c)`` and ``y`` along
  north ``-e_theta(c)``; pixel ``(i, j)`` (row, column) sits at ``X = (j - (n-1)/2) reso``,
  ``Y = (i - (n-1)/2) reso`` (tangent-plane coordinates: the sky position is
  ``normalise(c + X e_x + Y e_y)``). Values are bilinearly interpolated from the HEALPix map
  (``healpy.get_interp_weights``). The shear is rotated into the patch frame,
  ``gamma_patch = gamma_hpx exp(2 i alpha)``, where ``alpha`` is the angle from the patch's
  local ``x`` direction to ``e_theta`` at that position; so the flat Kaiser–Squires of
  :mod:`cosmobench.sim.cosmology` applies inside a patch.
* **Lognormal field.** ``kappa = lambda (exp(g - sigma_g^2/2) - 1)`` pixel by pixel, where the
  Gaussian field ``g`` has ``C^g_l`` from the exact transform of the correlation function,
  ``xi_g(theta) = ln(1 + xi_kappa(theta) / lambda^2)``, computed with Gauss–Legendre quadrature
  over ``l <= lmax`` (as FLASK, Xavier et al. 2016, do). Exact for the band-limited field at the
  pixel centres; negative ``C^g_l`` (rare) are set to zero.

Written here: the Legendre transform of the lognormal spectrum, the harmonic filters and the
patch geometry (healpy has the transforms and pixel queries, but no lognormal generator and no
projection that returns pixel weights together with the spin-2 rotation). Settings of the
HEALPix simulator (the massmapping ``data`` node inherits them): :class:`HealpixFootprint`,
:class:`PatchSettings`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosmobench.settings import setting

ARCMIN = np.pi / (180.0 * 60.0)


@dataclass
class HealpixFootprint:
    """Resolution and survey footprint of simulated HEALPix maps (:func:`footprint_mask`)."""

    nside: int = setting(64, "int >= 8", help="HEALPix resolution (a power of 2; lmax = 3 nside - 1)")
    footprint: str = setting("band", ["full", "band", "cap"],
                             help="full sky, |latitude| > footprint_deg, or within footprint_deg of the pole")
    footprint_deg: float = setting(30.0, "0 <= float <= 180", unit="deg", help="latitude cut or cap radius")


@dataclass
class PatchSettings:
    """Gnomonic patches on which a flat-map network runs on the sphere (:class:`GnomonicPatches`)."""

    patch_size: int = setting(64, "int >= 8", unit="px",
                              help="side of the square gnomonic patches that tile a HEALPix mask")


def default_lmax(nside: int) -> int:
    return 3 * int(nside) - 1


def pixel_arcmin(nside: int) -> float:
    """Mean HEALPix pixel side ``sqrt(4 pi / npix)`` in arcmin."""
    import healpy as hp
    return float(hp.nside2resol(int(nside), arcmin=True))


def ks_factor(lmax: int) -> np.ndarray:
    """``f_l = sqrt((l+2)(l-1) / (l(l+1)))`` for ``l = 0..lmax`` (0 for ``l < 2``)."""
    ell = np.arange(lmax + 1, dtype=float)
    f = np.zeros(lmax + 1)
    ok = ell >= 2
    f[ok] = np.sqrt((ell[ok] + 2) * (ell[ok] - 1) / (ell[ok] * (ell[ok] + 1)))
    return f


# --------------------------------------------------------------------------- fields


def gaussian_alm(cl: np.ndarray, lmax: int, rng: np.random.Generator) -> np.ndarray:
    """Complex ``a_lm`` (healpy layout, ``m >= 0``) of a Gaussian field with spectrum
    ``cl[0..lmax]``: ``<|a_lm|^2> = C_l``, real for ``m = 0``. Seeded by ``rng`` (healpy's
    ``synalm`` uses numpy's global state)."""
    import healpy as hp

    ell, m = hp.Alm.getlm(lmax)
    amp = np.sqrt(np.clip(np.asarray(cl, float)[ell], 0, None))
    re, im = rng.standard_normal(len(ell)), rng.standard_normal(len(ell))
    alm = amp * (re + 1j * im) / np.sqrt(2.0)
    alm[m == 0] = amp[m == 0] * re[m == 0]
    return alm


def _legendre_matrix(lmax: int, x: np.ndarray) -> np.ndarray:
    """``P_l(x)`` for ``l = 0..lmax``: shape ``(lmax + 1, len(x))`` (upward recurrence)."""
    p = np.empty((lmax + 1, len(x)))
    p[0] = 1.0
    if lmax >= 1:
        p[1] = x
    for ell in range(2, lmax + 1):
        p[ell] = ((2 * ell - 1) * x * p[ell - 1] - (ell - 1) * p[ell - 2]) / ell
    return p


def lognormal_gaussian_cl(cl: np.ndarray, shift: float) -> tuple[np.ndarray, float]:
    """``(C^g_l, sigma_g^2)`` of the Gaussian field whose shifted lognormal transform has the
    spectrum ``cl[0..lmax]`` (module docstring)."""
    if shift <= 0:
        raise ValueError(f"lognormal shift must be positive, got {shift}")
    cl = np.asarray(cl, float)
    lmax = len(cl) - 1
    x, w = np.polynomial.legendre.leggauss(2 * lmax + 2)
    p = _legendre_matrix(lmax, x)
    ell = np.arange(lmax + 1)
    xi = ((2 * ell + 1) / (4 * np.pi) * cl) @ p
    if np.any(1 + xi / shift ** 2 <= 0):
        raise ValueError("lognormal transform undefined: correlation below -shift^2 (increase the shift)")
    xi_g = np.log1p(xi / shift ** 2)
    cl_g = 2 * np.pi * (p * w) @ xi_g
    cl_g = np.clip(cl_g, 0, None)
    cl_g[:2] = 0.0
    var_g = float(np.sum((2 * ell + 1) / (4 * np.pi) * cl_g))
    return cl_g, var_g


class HealpixFieldSimulator:
    """Full-sky convergence maps (Gaussian or shifted lognormal) and their shear at ``nside``.

    ``cl_func(ell)`` is the target spectrum; :meth:`sample` returns ``(kappa, gamma1, gamma2)``
    RING maps. The shear is the spherical KS forward transform of the (pixelised) ``kappa``.
    """

    def __init__(self, cl_func, nside: int, field: str = "lognormal", shift: float | None = None,
                 lmax: int | None = None):
        import healpy as hp  # noqa: F401  (fail early if missing)

        if field not in ("gaussian", "lognormal"):
            raise ValueError(f"field must be 'gaussian' or 'lognormal', got {field!r}")
        self.nside, self.field, self.shift = int(nside), field, shift
        self.lmax = default_lmax(nside) if lmax is None else int(lmax)
        cl = np.asarray(cl_func(np.arange(self.lmax + 1, dtype=float)), float)
        cl[:2] = 0.0
        self.cl = cl
        if field == "lognormal":
            if shift is None:
                raise ValueError("a lognormal field needs a shift")
            self.cl_g, self.var_g = lognormal_gaussian_cl(cl, shift)
        else:
            self.cl_g, self.var_g = cl, 0.0

    def kappa(self, rng: np.random.Generator) -> np.ndarray:
        import healpy as hp

        g = hp.alm2map(gaussian_alm(self.cl_g, self.lmax, rng), self.nside, lmax=self.lmax)
        if self.field == "lognormal":
            return self.shift * (np.exp(g - 0.5 * self.var_g) - 1.0)
        return g

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kappa = self.kappa(rng)
        g1, g2 = ks_forward(kappa, self.lmax)
        return kappa, g1, g2


# --------------------------------------------------------------------------- KS / Wiener


def ks_forward(kappa: np.ndarray, lmax: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shear ``(gamma1, gamma2)`` of a convergence map (module docstring conventions)."""
    import healpy as hp

    nside = hp.npix2nside(len(kappa))
    lmax = default_lmax(nside) if lmax is None else int(lmax)
    klm = hp.map2alm(np.asarray(kappa, float), lmax=lmax, iter=3)
    elm = hp.almxfl(klm, ks_factor(lmax))
    g1, g2 = hp.alm2map_spin([elm, np.zeros_like(elm)], nside, 2, lmax)
    return g1, g2


def harmonic_filter(ell_filter: np.ndarray, gamma1: np.ndarray, gamma2: np.ndarray,
                    mask: np.ndarray | None = None, lmax: int | None = None) -> np.ndarray:
    """Convergence map ``kappa = sum_lm F_l (-gamma_E,lm / f_l) Y_lm`` from a shear map
    (masked pixels zero-filled): ``F_l = 1`` is plain spherical Kaiser–Squires, a Gaussian beam
    the smoothed KS, ``S_l / (S_l + N_l)`` the (harmonic-space) Wiener filter."""
    import healpy as hp

    g1, g2 = np.asarray(gamma1, float), np.asarray(gamma2, float)
    if mask is not None:
        g1, g2 = g1 * (mask > 0), g2 * (mask > 0)
    nside = hp.npix2nside(len(g1))
    lmax = default_lmax(nside) if lmax is None else int(lmax)
    elm, _ = hp.map2alm_spin([g1, g2], 2, lmax)
    f = ks_factor(lmax)
    inv = np.where(f > 0, 1.0 / np.where(f > 0, f, 1.0), 0.0) * np.asarray(ell_filter, float)[:lmax + 1]
    return hp.alm2map(hp.almxfl(elm, inv), nside, lmax=lmax)


def ks_inverse(gamma1, gamma2, mask=None, smoothing_arcmin: float = 0.0, lmax: int | None = None) -> np.ndarray:
    """Spherical Kaiser–Squires E-mode convergence, smoothed with a Gaussian of standard
    deviation ``smoothing_arcmin`` (harmonic window ``exp(-l(l+1) sigma^2 / 2)``)."""
    import healpy as hp

    nside = hp.npix2nside(len(gamma1))
    lmax = default_lmax(nside) if lmax is None else int(lmax)
    return harmonic_filter(gaussian_window(lmax, smoothing_arcmin), gamma1, gamma2, mask, lmax)


def gaussian_window(lmax: int, sigma_arcmin: float) -> np.ndarray:
    ell = np.arange(lmax + 1, dtype=float)
    return np.exp(-0.5 * ell * (ell + 1) * (float(sigma_arcmin) * ARCMIN) ** 2)


def smooth(m: np.ndarray, sigma_arcmin: float, lmax: int | None = None) -> np.ndarray:
    """Gaussian smoothing of a scalar map (``sigma_arcmin = 0``: unchanged)."""
    import healpy as hp

    if sigma_arcmin <= 0:
        return np.asarray(m, float)
    nside = hp.npix2nside(len(m))
    lmax = default_lmax(nside) if lmax is None else int(lmax)
    alm = hp.map2alm(np.asarray(m, float), lmax=lmax, iter=3)
    return hp.alm2map(hp.almxfl(alm, gaussian_window(lmax, sigma_arcmin)), nside, lmax=lmax)


def white_noise_cl(sigma_pix: float, nside: int) -> float:
    """Harmonic power ``sigma^2 Omega_pix`` of white noise with per-pixel standard deviation
    ``sigma_pix`` (per shear component; also the noise of the KS convergence)."""
    import healpy as hp
    return float(sigma_pix ** 2 * hp.nside2pixarea(int(nside)))


# --------------------------------------------------------------------------- masks


def footprint_mask(nside: int, kind: str = HealpixFootprint.footprint,
                   deg: float = HealpixFootprint.footprint_deg) -> np.ndarray:
    """Survey footprint (float 0/1): ``full`` sky, ``band`` = ``|latitude| > deg`` (a galactic-plane
    cut), ``cap`` = within ``deg`` of the north pole (a contiguous survey, e.g. 40 deg ≈ 5,000 deg^2)."""
    import healpy as hp

    theta, _ = hp.pix2ang(int(nside), np.arange(hp.nside2npix(int(nside))))
    lat = 90.0 - np.degrees(theta)
    if kind == "full":
        return np.ones_like(theta)
    if kind == "band":
        return (np.abs(lat) > deg).astype(float)
    if kind == "cap":
        return (np.degrees(theta) < deg).astype(float)
    raise ValueError(f"footprint must be full, band or cap, got {kind!r}")


# --------------------------------------------------------------------------- gnomonic patches


class GnomonicPatches:
    """Square gnomonic patches (``patch_size`` px of ``reso_arcmin``) whose centres tile the
    observed part of ``mask`` (module docstring), with the tables to project HEALPix maps onto
    them (:meth:`project_scalar`, :meth:`project_shear`) and to re-assemble patch maps into a
    HEALPix map (:meth:`assemble`, apodised weighted mean of overlapping patches).

    Centres are the pixel centres of a coarse HEALPix grid (``nside_c``, the smallest power of two
    whose mean pixel side is <= ``spacing * patch side``) that contain an observed pixel, so
    neighbouring patches overlap and every observed pixel (at most ~0.75 coarse pixel sides from a
    centre) lies inside a patch; :attr:`coverage` (fraction of observed pixels inside at least one
    patch) checks it.
    """

    def __init__(self, nside: int, mask: np.ndarray | None, patch_size: int, reso_arcmin: float,
                 spacing: float = 0.6, taper: float = 0.25):
        import healpy as hp

        self.nside, self.n, self.reso = int(nside), int(patch_size), float(reso_arcmin)
        npix = hp.nside2npix(self.nside)
        mask = np.ones(npix) if mask is None else np.asarray(mask, float)
        if mask.shape != (npix,):
            raise ValueError(f"mask has {mask.shape} pixels, expected {npix} for nside {nside}")
        side = self.n * self.reso * ARCMIN
        nside_c = 1
        while hp.nside2resol(nside_c) > spacing * side and nside_c < self.nside:
            nside_c *= 2
        self.nside_c = nside_c
        coarse = hp.ud_grade(mask, nside_c, power=0) > 0  # any observed fine pixel (mean > 0)
        cidx = np.nonzero(coarse)[0]
        self.centres = np.stack(hp.pix2vec(nside_c, cidx), axis=-1)  # (P, 3)
        P, n = len(cidx), self.n
        # tangent-plane basis per patch: e_x = east = e_phi, e_y = north = -e_theta
        th, ph = hp.vec2ang(self.centres)
        e_phi = np.stack([-np.sin(ph), np.cos(ph), np.zeros_like(ph)], -1)
        e_theta = np.stack([np.cos(th) * np.cos(ph), np.cos(th) * np.sin(ph), -np.sin(th)], -1)
        self.ex, self.ey = e_phi, -e_theta
        coords = (np.arange(n) - (n - 1) / 2.0) * self.reso * ARCMIN
        X, Y = np.meshgrid(coords, coords)  # (n, n): X varies along columns, Y along rows
        v = (self.centres[:, None, None, :] + X[None, :, :, None] * self.ex[:, None, None, :]
             + Y[None, :, :, None] * self.ey[:, None, None, :])
        v /= np.linalg.norm(v, axis=-1, keepdims=True)  # (P, n, n, 3)
        flat_v = v.reshape(-1, 3)
        theta, phi = hp.vec2ang(flat_v)
        pix, wts = hp.get_interp_weights(self.nside, theta, phi)  # (4, P n n)
        self.pix = pix.reshape(4, P, n, n)
        self.wts = wts.reshape(4, P, n, n)
        # spin-2 rotation angle alpha: from the patch's local x direction to e_theta(v)
        tx = np.broadcast_to(self.ex[:, None, None, :], v.shape)
        tx = tx - np.sum(tx * v, -1, keepdims=True) * v
        tx /= np.linalg.norm(tx, axis=-1, keepdims=True)
        ty = np.cross(v, tx)  # completes the right-handed (x, y, outward) frame
        et = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), -np.sin(theta)], -1)
        et = et.reshape(v.shape)
        alpha = np.arctan2(np.sum(et * ty, -1), np.sum(et * tx, -1))
        self.cos2a, self.sin2a = np.cos(2 * alpha), np.sin(2 * alpha)
        # re-assembly tables: observed pixels within each patch, fractional patch coordinates, weights
        half = (n - 1) / 2.0
        radius = np.sqrt(2.0) * (n / 2.0) * self.reso * ARCMIN * 1.05
        self.mask = mask
        obs = np.nonzero(mask > 0)[0]
        obs_set = np.zeros(npix, bool)
        obs_set[obs] = True
        rows, cols, hpx, wt, pid = [], [], [], [], []
        ramp = max(1.0, taper * n)
        for p in range(P):
            disc = hp.query_disc(self.nside, self.centres[p], radius)
            disc = disc[obs_set[disc]]
            if len(disc) == 0:
                continue
            u = np.stack(hp.pix2vec(self.nside, disc), -1)
            dot = u @ self.centres[p]
            ok = dot > 0
            u, disc, dot = u[ok], disc[ok], dot[ok]
            Xp = (u @ self.ex[p]) / dot / (self.reso * ARCMIN)
            Yp = (u @ self.ey[p]) / dot / (self.reso * ARCMIN)
            jj, ii = Xp + half, Yp + half
            inside = (jj >= 0) & (jj <= n - 1) & (ii >= 0) & (ii <= n - 1)
            if not inside.any():
                continue
            jj, ii, disc = jj[inside], ii[inside], disc[inside]
            edge = np.minimum(np.minimum(jj, n - 1 - jj), np.minimum(ii, n - 1 - ii))
            w = np.sin(0.5 * np.pi * np.clip((edge + 0.5) / ramp, 0, 1)) ** 2
            rows.append(ii), cols.append(jj), hpx.append(disc), wt.append(w), pid.append(np.full(len(disc), p))
        self.a_rows = np.concatenate(rows) if rows else np.zeros(0)
        self.a_cols = np.concatenate(cols) if cols else np.zeros(0)
        self.a_hpx = np.concatenate(hpx) if hpx else np.zeros(0, int)
        self.a_w = np.concatenate(wt) if wt else np.zeros(0)
        self.a_pid = np.concatenate(pid) if pid else np.zeros(0, int)
        wsum = np.zeros(npix)
        np.add.at(wsum, self.a_hpx, self.a_w)
        self.wsum = wsum
        self.coverage = float(np.mean(wsum[obs] > 0)) if len(obs) else 1.0

    @property
    def n_patches(self) -> int:
        return len(self.centres)

    def project_scalar(self, m: np.ndarray) -> np.ndarray:
        """``(..., npix)`` -> ``(..., P, n, n)`` bilinear samples at the patch pixels."""
        m = np.asarray(m)
        return np.sum(m[..., self.pix] * self.wts, axis=-4)

    def project_shear(self, gamma1: np.ndarray, gamma2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shear maps ``(..., npix)`` -> patch-frame ``(gamma1, gamma2)`` ``(..., P, n, n)``."""
        a, b = self.project_scalar(gamma1), self.project_scalar(gamma2)
        return a * self.cos2a - b * self.sin2a, a * self.sin2a + b * self.cos2a

    def assemble(self, patches: np.ndarray) -> np.ndarray:
        """Patch maps ``(P, n, n)`` -> HEALPix map: apodised (sin^2 taper) weighted mean of the
        bilinearly interpolated patch values; 0 outside the observed pixels."""
        from scipy.ndimage import map_coordinates

        patches = np.asarray(patches, float)
        if patches.shape != (self.n_patches, self.n, self.n):
            raise ValueError(f"expected patches of shape {(self.n_patches, self.n, self.n)}, got {patches.shape}")
        vals = map_coordinates(patches, np.stack([self.a_pid.astype(float), self.a_rows, self.a_cols]),
                               order=1, mode="nearest")
        num = np.zeros(len(self.wsum))
        np.add.at(num, self.a_hpx, self.a_w * vals)
        return np.where(self.wsum > 0, num / np.where(self.wsum > 0, self.wsum, 1.0), 0.0)


#: values of a HEALPix FITS header's ORDERING keyword and the ``nest`` flag of healpy they mean
ORDERINGS = {"RING": False, "NESTED": True, "NEST": True}


def read_healpix_fits(path, fields: tuple[int, ...] | None, what: str = "HEALPix map", min_fields: int = 1,
                      max_fields: int = 3) -> np.ndarray:
    """Fields ``fields`` (None: the first ``min_fields..max_fields`` the file has) of a HEALPix FITS map (binary table in HDU 1) as float64 ``(len(fields),
    npix)`` in RING order. The ordering is the header's ``ORDERING`` keyword, which must be
    ``RING`` or ``NESTED``/``NEST`` (healpy reads anything else, or no keyword, as RING: a
    silently scrambled map); ``NSIDE`` must match the number of pixels. Every problem, and any
    failure of astropy/healpy to read the file, is a one-line InputError; their warnings and
    log messages are silenced (:func:`cosmobench.io.quiet_readers`)."""
    from pathlib import Path

    from cosmobench.errors import InputError
    from cosmobench.io import quiet_readers
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    try:
        import healpy as hp
        from astropy.io import fits
        with quiet_readers():
            with fits.open(p, memmap=False) as hdul:
                if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
                    raise InputError(f"{p}: not a HEALPix FITS map (no binary table in HDU 1)")
                hdr, n_fields = hdul[1].header, len(hdul[1].columns)
                kinds = [c.format[-1:] for c in hdul[1].columns]
            order = str(hdr.get("ORDERING", "")).strip().upper()
            if order not in ORDERINGS:
                raise InputError(f"{p}: HEALPix ORDERING {order or '(missing)'!r} is not RING or NESTED; "
                                 f"set the header keyword ORDERING")
            if fields is None:
                if n_fields < min_fields:
                    raise InputError(f"{p}: {what} needs at least {min_fields} fields, the file has {n_fields}")
                fields = tuple(range(min(n_fields, max_fields)))
            if max(fields) >= n_fields:
                raise InputError(f"{p}: {what} needs {max(fields) + 1} field(s), the file has {n_fields}")
            if any(kinds[f] in ("A", "C", "M", "L", "X", "P", "Q") for f in fields):
                raise InputError(f"{p}: {what} fields must be real numbers, got FITS formats "
                                 f"{[kinds[f] for f in fields]}")
            maps = hp.read_map(p, field=tuple(fields), dtype=np.float64, nest=False, partial=False)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy and healpy raise many types for corrupt files
        raise InputError(f"{p}: cannot read {what} (truncated or not a HEALPix map?): "
                         f"{' '.join(str(exc).split())[:300]}") from None
    maps = np.atleast_2d(np.asarray(maps, dtype=np.float64))
    nside = hdr.get("NSIDE")
    if nside is not None and maps.shape[1] != 12 * int(nside) ** 2:
        raise InputError(f"{p}: NSIDE={nside} but the map has {maps.shape[1]} pixels")
    return maps

