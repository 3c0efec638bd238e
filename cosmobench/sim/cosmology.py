"""Weak-lensing cosmology: convergence power spectra (pyccl), flat-sky Gaussian and
lognormal convergence fields, the Kaiser–Squires operators and a power-spectrum estimator.

Shared by the ``massmapping`` task (simulated shear maps) and the ``sbi`` task
(binned C_ell data and lognormal maps as a function of (Omega_m, sigma8)). The settings of
the flat-sky simulator (the massmapping ``data`` node inherits them) are declared here:
:class:`Cosmology`, :class:`ConvergenceField`, :class:`FlatMaps`, :class:`ShearNoise` and
:class:`FlatMask`.

Physical model
--------------
* **Spectrum.** :func:`convergence_cl` is pyccl's (LSST DESC Core Cosmology Library) Limber
  convergence power spectrum of one source population, ``ccl.WeakLensingTracer`` ×
  ``ccl.angular_cl``, flat ΛCDM (w = -1, no massive neutrinos). Linear matter power from the
  **Eisenstein & Hu (1998)** fitting formula (``transfer_function='eisenstein_hu'``): it
  includes baryon wiggles, is accurate to a few per cent against a Boltzmann code and costs
  ~0.1 s per cosmology (CAMB/CLASS are 10-100x slower and not installed; BBKS omits baryons
  and is ~10 % off). Non-linear power from **halofit** (Takahashi et al. 2012,
  ``matter_power_spectrum='halofit'``). No intrinsic alignments, no baryonic feedback.
* **Source n(z).** Default :func:`smail_nz`: ``n(z) ∝ z^2 exp[-(z/z0)^alpha]`` with the LSST
  DESC Science Requirements Document year-10 values ``z0 = 0.11, alpha = 0.68``
  (Mandelbaum et al. 2018, eq. 5; median z ≈ 0.87) on ``0 < z <= 4``.
  Pass ``nz=(z, n)`` for any other distribution (normalisation is irrelevant).
* **Caching.** Spectra are evaluated once per (cosmology, n(z), models) on a log-spaced
  grid ``ell = 2 … 1e5`` (:data:`ELL_TABLE`) and interpolated in log-log (power-law
  extrapolation beyond 1e5; ``C_0 = C_1 = 0``); tables are memoised in memory and, for
  :class:`ClGrid`, on disk.
* **Many cosmologies.** :class:`ClGrid` tabulates log C_ell on a regular (Omega_m, sigma8)
  grid and interpolates cubically in (Omega_m, ln sigma8); ``tests/test_cosmology.py``
  measures its error against direct pyccl calls.

Flat-sky conventions
--------------------
* A map is an array ``(..., ny, nx)``; axis -1 is **x** (column index j, ``ell_1``),
  axis -2 is **y** (row index i, ``ell_2``). Pixels are square, side ``pixel_arcmin``
  (arcmin). Fourier modes are ``ell_i = 2*pi * np.fft.fftfreq(n, d=pixel_rad)``.
* **Shear sign.** ``gamma1 + i gamma2 = D(ell) * kappa`` in Fourier space with
  ``D = (ell_1^2 - ell_2^2 + 2i ell_1 ell_2) / ell^2`` (Kaiser & Squires 1993): gamma1 > 0
  stretches along x, gamma2 > 0 along the diagonal x = y, with x, y the column and row
  index directions. On the sky with x = RA increasing to the *left* (east) the sign of
  gamma2 flips — real catalogues differ, which is why the mass-mapping loaders have a
  ``gamma2_sign`` option.
* **Fourier normalisation.** For a field of area A = n_y n_x δ² (δ = pixel side in rad),
  ``<|FFT(kappa)(ell)|^2> = n_y n_x C_ell / δ^2``; :func:`flat_power_spectrum` inverts this.
  Field values are point samples of the continuous field at pixel centres (no pixel window).
* **Periodicity.** Generated fields are periodic on the ``n * box_factor`` box; with
  ``box_factor > 1`` the returned map is the central cut-out of a larger periodic box, so it
  is not periodic itself (as a survey patch is not).

The Fourier-space field generators, the lognormal correlation-function transform and the
KS operators are written here with numpy FFTs because no installed library provides flat-sky
versions (healpy does the spherical ones, see :mod:`cosmobench.sim.healpix`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from cosmobench.settings import setting

ARCMIN = np.pi / (180.0 * 60.0)  #: one arcminute in radians
ELL_TABLE = np.geomspace(2.0, 1.0e5, 160)  #: multipoles at which spectra are tabulated


# --------------------------------------------------------------------------- settings


@dataclass
class Cosmology:
    """Flat ΛCDM parameters (Planck-2018-like fiducial values) and the Smail source n(z) of
    the convergence spectrum (:func:`convergence_cl`, :func:`smail_nz`)."""

    omega_m: float = setting(0.31, "0 < float < 1", help="total matter density Omega_m (> omega_b)")
    sigma8: float = setting(0.81, "positive float", help="rms linear matter fluctuation in 8 Mpc/h spheres")
    h: float = setting(0.677, "positive float", unit="100 km/s/Mpc", help="Hubble constant H0 / (100 km/s/Mpc)")
    n_s: float = setting(0.965, "positive float", help="primordial spectral index")
    omega_b: float = setting(0.049, "positive float", help="baryon density Omega_b (< omega_m)")
    nz_z0: float = setting(0.11, "positive float", help="Smail n(z) scale z0 (LSST SRD year 10)")
    nz_alpha: float = setting(0.68, "positive float", help="Smail n(z) exponent alpha (LSST SRD year 10)")

    def ccl_params(self) -> dict[str, float]:
        """Keyword arguments of :func:`convergence_cl` and :func:`make_cosmology`."""
        return dict(Omega_m=float(self.omega_m), sigma8=float(self.sigma8), h=float(self.h),
                    n_s=float(self.n_s), Omega_b=float(self.omega_b))

    def nz(self) -> tuple[np.ndarray, np.ndarray]:
        """The source ``(z, n(z))``: :func:`smail_nz` on the grid of :func:`default_nz`."""
        z, _ = default_nz()
        return z, smail_nz(z, z0=float(self.nz_z0), alpha=float(self.nz_alpha))

    def shift(self) -> float:
        """The empty-beam lognormal shift of this cosmology and n(z) (:func:`lognormal_shift`)."""
        return lognormal_shift(float(self.omega_m), float(self.h), self.nz(), float(self.omega_b))


@dataclass
class ConvergenceField:
    """The one-point model of the simulated convergence (:class:`FlatFieldSimulator`,
    :class:`cosmobench.sim.healpix.HealpixFieldSimulator`)."""

    field: str = setting("lognormal", ["lognormal", "gaussian"],
                         help="shifted lognormal (kappa >= -shift) or Gaussian convergence")
    lognormal_shift: float | None = setting(None, "positive float or null",
                                            help="lognormal shift lambda (null: the empty-beam value, "
                                                 "lognormal_shift())")


@dataclass
class FlatMaps:
    """Geometry of simulated flat-sky maps (module docstring, "Flat-sky conventions")."""

    map_size: int = setting(128, "int >= 8", unit="px", help="side of the square maps")
    pixel_arcmin: float = setting(2.0, "positive float", unit="arcmin",
                                  help="pixel side (flat simulations and flat real maps)")
    box_factor: int = setting(2, "positive int",
                              help="each map is the centre of a periodic box this many times larger")


@dataclass
class ShearNoise:
    """Observed shear: white shape noise :func:`shape_noise_sigma` per pixel and component,
    optionally reduced shear ``g = gamma / (1 - kappa)``."""

    sigma_e: float = setting(0.26, "non-negative float", help="intrinsic ellipticity dispersion per component")
    n_gal: float = setting(30.0, "positive float", unit="arcmin^-2", help="effective source density")
    reduced_shear: bool = setting(False, "bool", help="observe the reduced shear gamma / (1 - kappa)")


@dataclass
class FlatMask:
    """Survey mask of simulated flat maps (:func:`flat_mask`)."""

    mask_holes: int = setting(0, "non-negative int", help="circular holes per map (bright-star masks)")
    mask_hole_radius: list[float] = setting([2.0, 6.0], "list[positive float]", unit="arcmin",
                                            help="[r_min, r_max]: hole radii are uniform in this range")
    mask_edge: int = setting(0, "non-negative int", unit="px", help="unobserved border width")


#: fiducial cosmology (the declared defaults of :class:`Cosmology`)
FIDUCIAL = {"Omega_m": Cosmology.omega_m, "sigma8": Cosmology.sigma8, "h": Cosmology.h, "n_s": Cosmology.n_s,
            "Omega_b": Cosmology.omega_b}


# --------------------------------------------------------------------------- n(z), spectra


def smail_nz(z, z0: float = Cosmology.nz_z0, alpha: float = Cosmology.nz_alpha, beta: float = 2.0) -> np.ndarray:
    """Smail-type source distribution ``n(z) ∝ z^beta exp[-(z/z0)^alpha]`` (unnormalised).

    Defaults are the LSST DESC SRD year-10 source sample (Mandelbaum et al. 2018):
    ``beta = 2, z0 = 0.11, alpha = 0.68``.
    """
    z = np.asarray(z, dtype=float)
    return np.where(z > 0, z ** beta * np.exp(-(np.clip(z, 0, None) / z0) ** alpha), 0.0)


def default_nz(z_max: float = 4.0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The default ``(z, n(z))`` table: :func:`smail_nz` on ``0 < z <= z_max``."""
    z = np.linspace(0.0, z_max, n + 1)[1:]
    return z, smail_nz(z)


def _nz_tuple(nz) -> tuple[tuple[float, ...], tuple[float, ...]]:
    z, n = default_nz() if nz is None else nz
    z, n = np.asarray(z, dtype=float), np.asarray(n, dtype=float)
    if z.ndim != 1 or z.shape != n.shape or len(z) < 3:
        raise ValueError("nz must be a pair (z, n) of equal-length 1-d arrays with >= 3 points")
    if np.any(~np.isfinite(n)) or np.any(n < 0) or n.sum() <= 0 or np.any(np.diff(z) <= 0):
        raise ValueError("nz: z must increase and n(z) be finite, non-negative and not all zero")
    return tuple(z.tolist()), tuple(n.tolist())


def make_cosmology(Omega_m: float, sigma8: float, h: float = FIDUCIAL["h"], n_s: float = FIDUCIAL["n_s"],
                   Omega_b: float = FIDUCIAL["Omega_b"], transfer_function: str = "eisenstein_hu",
                   nonlinear: str = "halofit"):
    """A flat-ΛCDM ``pyccl.Cosmology`` (``Omega_c = Omega_m - Omega_b``)."""
    import pyccl as ccl

    if not (Omega_b < Omega_m < 1.0) or sigma8 <= 0 or h <= 0:
        raise ValueError(f"unphysical cosmology: Omega_m={Omega_m}, Omega_b={Omega_b}, sigma8={sigma8}, h={h}")
    return ccl.Cosmology(Omega_c=Omega_m - Omega_b, Omega_b=Omega_b, h=h, n_s=n_s, sigma8=sigma8,
                         transfer_function=transfer_function, matter_power_spectrum=nonlinear)


@lru_cache(maxsize=256)
def _cl_table(params: tuple[float, ...], nz: tuple, models: tuple[str, str]) -> np.ndarray:
    import pyccl as ccl

    Omega_m, sigma8, h, n_s, Omega_b = params
    cosmo = make_cosmology(Omega_m, sigma8, h, n_s, Omega_b, *models)
    tracer = ccl.WeakLensingTracer(cosmo, dndz=(np.asarray(nz[0]), np.asarray(nz[1])))
    cl = np.asarray(ccl.angular_cl(cosmo, tracer, tracer, ELL_TABLE), dtype=float)
    if np.any(~np.isfinite(cl)) or np.any(cl <= 0):
        raise ValueError(f"pyccl returned a non-positive convergence spectrum for {params}")
    cl.setflags(write=False)
    return cl


def interp_loglog(ell, log_table: np.ndarray) -> np.ndarray:
    """Evaluate a spectrum tabulated as ``log C`` at :data:`ELL_TABLE` (power-law
    extrapolation beyond the table, ``C = 0`` for ``ell < 2``: a spin-2 field has no monopole
    or dipole)."""
    ell = np.asarray(ell, dtype=float)
    le = np.log(ELL_TABLE)
    x = np.log(np.clip(ell, ELL_TABLE[0], None))
    out = np.interp(x, le, log_table)
    hi = x > le[-1]
    if np.any(hi):
        slope = (log_table[-1] - log_table[-2]) / (le[-1] - le[-2])
        out = np.where(hi, log_table[-1] + slope * (x - le[-1]), out)
    return np.where(ell >= ELL_TABLE[0], np.exp(out), 0.0)


def convergence_cl(ell, Omega_m: float = FIDUCIAL["Omega_m"], sigma8: float = FIDUCIAL["sigma8"],
                   h: float = FIDUCIAL["h"], n_s: float = FIDUCIAL["n_s"], Omega_b: float = FIDUCIAL["Omega_b"],
                   nz=None, transfer_function: str = "eisenstein_hu", nonlinear: str = "halofit") -> np.ndarray:
    """Convergence angular power spectrum ``C_ell^{kappa kappa}`` (dimensionless, per steradian).

    ``ell`` may be any array (>= 0; ``C = 0`` below ell = 2). ``nz=(z, n)`` is the source
    redshift distribution (default :func:`default_nz`). See the module docstring for the
    physics; results are cached per (cosmology, n(z), models).
    """
    table = _cl_table((float(Omega_m), float(sigma8), float(h), float(n_s), float(Omega_b)),
                      _nz_tuple(nz), (transfer_function, nonlinear))
    return interp_loglog(ell, np.log(table))


def lognormal_shift(Omega_m: float = FIDUCIAL["Omega_m"], h: float = FIDUCIAL["h"], nz=None,
                    Omega_b: float = FIDUCIAL["Omega_b"]) -> float:
    """Lognormal shift parameter ``lambda = |kappa_empty|``: minus the convergence of an
    empty beam (density contrast -1 everywhere along the line of sight), averaged over the
    source n(z). ``kappa >= -lambda`` then holds for the lognormal field, as for the real one.

    This is the empty-beam argument of Hilbert, Hartlap & Schneider (2011, §2; also Taruya et al.
    2002): ``kappa_empty = -(3/2) Omega_m (H0/c)^2 ∫ dchi chi (1+z) q(chi)`` with
    ``q(chi) = ∫_{chi}^{inf} dchi' n(chi') (chi' - chi)/chi'``. Hilbert et al. (2011) and
    Xavier et al. (2016) fit the shift to ray-traced simulations and find values close to this
    (the fitted value depends somewhat on smoothing scale); ``data.lognormal_shift`` in the
    mass-mapping task overrides it with a fixed number.
    """
    import pyccl as ccl

    z, n = (np.asarray(a) for a in _nz_tuple(nz))
    cosmo = make_cosmology(Omega_m, FIDUCIAL["sigma8"], h, FIDUCIAL["n_s"], Omega_b)
    chi = ccl.comoving_radial_distance(cosmo, 1.0 / (1.0 + z))  # Mpc
    p = n / np.trapezoid(n, z)  # normalised n(z); q is integrated over z' (n(chi') dchi' = n(z') dz')
    q = np.array([np.trapezoid(np.where(chi >= c, p * (chi - c) / np.maximum(chi, 1e-30), 0.0), z) for c in chi])
    c_kms = 299792.458
    h0 = 100.0 * h / c_kms  # H0/c in 1/Mpc
    kappa_empty = -1.5 * Omega_m * h0 ** 2 * np.trapezoid(chi * (1.0 + z) * q, chi)
    return float(-kappa_empty)


# --------------------------------------------------------------------------- (Omega_m, sigma8) grid


class ClGrid:
    """Convergence C_ell on a regular (Omega_m, sigma8) grid for fast evaluation at many
    cosmologies (e.g. simulation-based inference).

    ``log C_ell`` is tabulated at :data:`ELL_TABLE` on ``n_omega x n_sigma`` grid points
    (other parameters fixed) and interpolated with cubic splines in (Omega_m, ln sigma8)
    (``scipy.interpolate.RegularGridInterpolator(method='cubic')``). The table is cached on disk
    in ``cache_dir`` (default ``$COSMOBENCH_CACHE`` or ``~/.cache/cosmobench``; ``cache_dir=False``
    disables it) under a hash of all inputs. Points outside the grid raise ``ValueError``.

    Measured maximum relative error over ``30 <= ell <= 8000`` at random points: 0.06 % for the
    default 13 x 13 grid on Omega_m in [0.1, 0.5], sigma8 in [0.5, 1.1] (169 pyccl calls,
    ~20-35 s once, then read from the cache); 0.15 % for 9 x 9.
    """

    def __init__(self, omega_m_range: Sequence[float] = (0.1, 0.5), sigma8_range: Sequence[float] = (0.5, 1.1),
                 n_omega: int = 13, n_sigma: int = 13, h: float = FIDUCIAL["h"], n_s: float = FIDUCIAL["n_s"],
                 Omega_b: float = FIDUCIAL["Omega_b"], nz=None, transfer_function: str = "eisenstein_hu",
                 nonlinear: str = "halofit", cache_dir: str | os.PathLike | bool | None = None):
        from scipy.interpolate import RegularGridInterpolator

        if n_omega < 4 or n_sigma < 4:
            raise ValueError("ClGrid needs at least 4 points per axis for cubic interpolation")
        self.omega_m = np.linspace(*map(float, omega_m_range), int(n_omega))
        self.sigma8 = np.geomspace(*map(float, sigma8_range), int(n_sigma))
        if self.omega_m[0] <= Omega_b or self.sigma8[0] <= 0:
            raise ValueError(f"grid range must have Omega_m > Omega_b={Omega_b} and sigma8 > 0")
        nzt = _nz_tuple(nz)
        fixed = dict(h=float(h), n_s=float(n_s), Omega_b=float(Omega_b))
        key = json.dumps({"om": self.omega_m.tolist(), "s8": self.sigma8.tolist(), "fixed": fixed,
                          "nz": nzt, "models": [transfer_function, nonlinear], "ell": ELL_TABLE.tolist()})
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        path = None
        if cache_dir is not False:
            root = Path(cache_dir) if cache_dir else Path(os.environ.get("COSMOBENCH_CACHE",
                                                                         Path.home() / ".cache" / "cosmobench"))
            path = root / f"clgrid_{digest}.npy"
        if path is not None and path.exists():
            table = np.load(path)
        else:
            table = np.empty((len(self.omega_m), len(self.sigma8), len(ELL_TABLE)))
            for i, om in enumerate(self.omega_m):
                for j, s8 in enumerate(self.sigma8):
                    table[i, j] = np.log(_cl_table((om, s8, fixed["h"], fixed["n_s"], fixed["Omega_b"]), nzt,
                                                   (transfer_function, nonlinear)))
            if path is not None:
                from cosmobench.io import atomic_path
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # readers never see half a file
                    np.save(fh, table)
        self.log_table = table
        self._interp = RegularGridInterpolator((self.omega_m, np.log(self.sigma8)), table, method="cubic",
                                               bounds_error=True)

    def log_cl_table(self, Omega_m, sigma8) -> np.ndarray:
        """``log C`` at :data:`ELL_TABLE` for arrays of parameters: shape ``(..., len(ELL_TABLE))``."""
        om, s8 = np.broadcast_arrays(np.asarray(Omega_m, float), np.asarray(sigma8, float))
        if np.any(s8 <= 0):
            raise ValueError("sigma8 must be positive")
        pts = np.stack([om.ravel(), np.log(s8.ravel())], axis=-1)
        try:
            vals = self._interp(pts)
        except ValueError as e:
            raise ValueError(f"(Omega_m, sigma8) outside the ClGrid range Omega_m in "
                             f"[{self.omega_m[0]}, {self.omega_m[-1]}], sigma8 in "
                             f"[{self.sigma8[0]}, {self.sigma8[-1]}]") from e
        return vals.reshape(om.shape + (len(ELL_TABLE),))

    def __call__(self, ell, Omega_m, sigma8) -> np.ndarray:
        """C_ell at multipoles ``ell`` (1-d) for scalar or array parameters:
        shape ``params_shape + ell.shape``."""
        logt = self.log_cl_table(Omega_m, sigma8)
        flat = logt.reshape(-1, len(ELL_TABLE))
        out = np.stack([interp_loglog(ell, row) for row in flat])
        return out.reshape(logt.shape[:-1] + np.shape(ell))


# --------------------------------------------------------------------------- flat-sky grids


def ell_grid(shape: tuple[int, int], pixel_arcmin: float) -> tuple[np.ndarray, np.ndarray]:
    """Fourier multipoles ``(ell_1, ell_2)`` of a ``(ny, nx)`` map, each of shape ``(ny, nx)``
    in ``np.fft.fft2`` order (``ell_1`` along x = axis -1, ``ell_2`` along y = axis -2)."""
    ny, nx = shape
    if pixel_arcmin <= 0:
        raise ValueError(f"pixel_arcmin must be positive, got {pixel_arcmin}")
    d = pixel_arcmin * ARCMIN
    l1 = 2 * np.pi * np.fft.fftfreq(nx, d=d)
    l2 = 2 * np.pi * np.fft.fftfreq(ny, d=d)
    return np.broadcast_to(l1[None, :], (ny, nx)), np.broadcast_to(l2[:, None], (ny, nx))


def _spectrum_on_grid(cl, shape, pixel_arcmin) -> np.ndarray:
    """``C_ell`` evaluated at ``|ell|`` on the FFT grid (``cl`` a callable or a grid array)."""
    l1, l2 = ell_grid(shape, pixel_arcmin)
    ell = np.hypot(l1, l2)
    p = np.asarray(cl(ell) if callable(cl) else cl, dtype=float)
    if p.shape != ell.shape:
        raise ValueError(f"spectrum on the grid has shape {p.shape}, expected {ell.shape}")
    p = p.copy()
    p[0, 0] = 0.0  # no mean mode
    return p


class FlatFieldSimulator:
    """Repeated draws of flat convergence maps and their shear, with the Fourier-space set-up
    (spectrum on the grid, lognormal transform) done once.

    ``field`` is ``"gaussian"`` or ``"lognormal"`` (shift ``shift``, see :func:`lognormal_field`).
    :meth:`sample` draws ``kappa`` on the periodic box of ``box_factor * shape`` pixels,
    computes the shear with :func:`ks_forward` **on the box** (so a cut-out's shear includes the
    contribution of mass outside it, as on the sky) and returns the central cut-outs
    ``(kappa, gamma1, gamma2)``, each ``shape``.
    """

    def __init__(self, cl, shape: tuple[int, int], pixel_arcmin: float, field: str = "lognormal",
                 shift: float | None = None, box_factor: int = 1):
        if field not in ("gaussian", "lognormal"):
            raise ValueError(f"field must be 'gaussian' or 'lognormal', got {field!r}")
        if int(box_factor) < 1:
            raise ValueError(f"box_factor must be >= 1, got {box_factor}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.big = (self.shape[0] * int(box_factor), self.shape[1] * int(box_factor))
        self.pixel_arcmin, self.field, self.shift = float(pixel_arcmin), field, shift
        p = _spectrum_on_grid(cl, self.big, pixel_arcmin)
        d = pixel_arcmin * ARCMIN
        if field == "lognormal":
            if shift is None:
                raise ValueError("a lognormal field needs a shift")
            p, self.clipped_fraction = lognormal_gaussian_power(p, pixel_arcmin, shift)
            self.var_g = float(np.fft.ifft2(p).real[0, 0] / d ** 2)
        self.amplitude = np.sqrt(np.clip(p, 0, None)) / d

    def gaussian_box(self, rng: np.random.Generator) -> np.ndarray:
        return np.fft.ifft2(np.fft.fft2(rng.standard_normal(self.big)) * self.amplitude).real

    def kappa_box(self, rng: np.random.Generator) -> np.ndarray:
        g = self.gaussian_box(rng)
        if self.field == "lognormal":
            return self.shift * (np.exp(g - 0.5 * self.var_g) - 1.0)
        return g

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kappa = self.kappa_box(rng)
        g1, g2 = ks_forward(kappa)
        return _cutout(kappa, self.shape), _cutout(g1, self.shape), _cutout(g2, self.shape)


def gaussian_field(cl, shape: tuple[int, int], pixel_arcmin: float, rng: np.random.Generator,
                   box_factor: int = 1) -> np.ndarray:
    """A zero-mean Gaussian random field with angular power spectrum ``cl`` (a callable
    ``cl(ell)``), shape ``(ny, nx)``, pixel side ``pixel_arcmin``. Generated on a periodic box
    ``box_factor`` times larger per side and cut out from its centre (``box_factor=1``:
    the periodic field itself)."""
    return _cutout(FlatFieldSimulator(cl, shape, pixel_arcmin, "gaussian", None, box_factor).kappa_box(rng), shape)


def _cutout(field: np.ndarray, shape) -> np.ndarray:
    ny, nx = field.shape[-2:]
    oy, ox = (ny - shape[0]) // 2, (nx - shape[1]) // 2
    return np.ascontiguousarray(field[..., oy:oy + shape[0], ox:ox + shape[1]])


def lognormal_gaussian_power(p_grid: np.ndarray, pixel_arcmin: float, shift: float) -> tuple[np.ndarray, float]:
    """Power of the Gaussian field ``g`` whose shifted lognormal transform
    ``kappa = shift * (exp(g - sigma_g^2/2) - 1)`` has the target grid power ``p_grid``.

    Exact on the periodic pixel grid: the target correlation function of the discrete field,
    ``xi_kappa = IFFT(p_grid) / δ^2``, maps to ``xi_g = ln(1 + xi_kappa / shift^2)`` (the
    lognormal identity), and ``P_g = FFT(xi_g) δ^2``. Negative ``P_g`` values (the target is
    not exactly realisable as a lognormal field) are clipped to zero; the returned fraction
    is the clipped power relative to the total (typically < 1e-3; it is tested).
    """
    if shift <= 0:
        raise ValueError(f"lognormal shift must be positive, got {shift}")
    d2 = (pixel_arcmin * ARCMIN) ** 2
    xi_k = np.fft.ifft2(p_grid).real / d2  # correlation function of the pixel field (xi[0] = variance)
    if np.any(1.0 + xi_k / shift ** 2 <= 0):
        raise ValueError("lognormal transform undefined: correlation below -shift^2 (increase the shift)")
    xi_g = np.log1p(xi_k / shift ** 2)
    p_g = np.fft.fft2(xi_g).real * d2
    neg = np.clip(-p_g, 0, None).sum()
    p_g = np.clip(p_g, 0, None)
    p_g[0, 0] = 0.0
    return p_g, float(neg / max(np.abs(p_g).sum(), 1e-300))


def lognormal_field(cl, shape: tuple[int, int], pixel_arcmin: float, shift: float, rng: np.random.Generator,
                    box_factor: int = 1) -> np.ndarray:
    """Zero-mean shifted lognormal convergence field ``kappa >= -shift`` whose power spectrum
    on the pixel grid equals ``cl`` (see :func:`lognormal_gaussian_power`). Arguments as in
    :func:`gaussian_field`; ``shift`` (= lambda, dimensionless) e.g. :func:`lognormal_shift`."""
    sim = FlatFieldSimulator(cl, shape, pixel_arcmin, "lognormal", shift, box_factor)
    return _cutout(sim.kappa_box(rng), shape)


# --------------------------------------------------------------------------- Kaiser–Squires


def ks_kernel(shape) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts ``(c, s)`` of ``D = (l1^2 - l2^2 + 2i l1 l2)/l^2`` on the FFT
    grid (pixel units suffice: D is scale free). On the Nyquist row/column of an even-sized
    axis ``l1 l2`` is odd under the aliasing ``-N/2 ≡ N/2``, so a real shear field cannot carry
    it: ``s`` is set to 0 there (the Hermitian projection that ``.real`` would apply anyway).
    That includes the corner mode ``(N/2, N/2)`` of an even x even grid (a checkerboard): its
    aliases ``(+-N/2, +-N/2)`` have ``s = +-1``, so it carries no shear at all (``D = 0``); this
    keeps the operator exactly equivariant under the D4 rotations/flips of the grid, at the price
    of that single mode of ``kappa`` being unrecoverable (``ks_inverse`` returns 0 for it)."""
    ny, nx = shape
    l1 = np.broadcast_to(np.fft.fftfreq(nx)[None, :], (ny, nx))
    l2 = np.broadcast_to(np.fft.fftfreq(ny)[:, None], (ny, nx))
    l2sq = l1 ** 2 + l2 ** 2
    l2sq_safe = np.where(l2sq == 0, 1.0, l2sq)
    c = np.where(l2sq == 0, 0.0, (l1 ** 2 - l2 ** 2) / l2sq_safe)
    s = np.where(l2sq == 0, 0.0, 2 * l1 * l2 / l2sq_safe)
    nyq = np.zeros((ny, nx), dtype=bool)
    if nx % 2 == 0:
        nyq[:, nx // 2] = True
    if ny % 2 == 0:
        nyq[ny // 2, :] = True
    # l1*l2 is consistent (even under the aliasing) only where the other component is 0
    ok = (~nyq) | (l1 == 0) | (l2 == 0)
    s = np.where(ok, s, 0.0)
    return c, s


def ks_forward(kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shear ``(gamma1, gamma2)`` of a convergence map ``(..., ny, nx)`` (flat sky, periodic):
    ``gamma_hat = D kappa_hat`` (conventions in the module docstring). The mean (ell = 0)
    of the shear is zero."""
    kappa = np.asarray(kappa, dtype=float)
    c, s = ks_kernel(kappa.shape[-2:])
    kh = np.fft.fft2(kappa)
    return np.fft.ifft2(c * kh).real, np.fft.ifft2(s * kh).real


def ks_inverse(gamma1: np.ndarray, gamma2: np.ndarray, return_b: bool = False):
    """Kaiser–Squires inversion: E-mode convergence ``kappa_E`` (and with ``return_b`` the
    B-mode ``kappa_B``) of a shear map ``(..., ny, nx)``: ``kappa_hat = D* gamma_hat / |D|^2``.

    ``|D| = 1`` except on the Nyquist row/column of an even-sized axis, where the forward
    operator is projected (see :func:`ks_kernel`); dividing by ``|D|^2`` there makes
    ``ks_inverse(*ks_forward(k))`` return ``k`` exactly, up to its mean (which the shear does
    not constrain: the result has zero mean) and, on an even x even grid, its checkerboard
    ``(N/2, N/2)`` mode (which carries no shear). No smoothing, no mask handling: masked pixels
    should be zero-filled by the caller.
    """
    g1 = np.asarray(gamma1, dtype=float)
    g2 = np.asarray(gamma2, dtype=float)
    if g1.shape != g2.shape:
        raise ValueError(f"gamma1 and gamma2 shapes differ: {g1.shape} vs {g2.shape}")
    c, s = ks_kernel(g1.shape[-2:])
    norm = c ** 2 + s ** 2
    inv = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)
    g1h, g2h = np.fft.fft2(g1), np.fft.fft2(g2)
    kE = np.fft.ifft2((c * g1h + s * g2h) * inv).real
    if not return_b:
        return kE
    kB = np.fft.ifft2((-s * g1h + c * g2h) * inv).real
    return kE, kB


def gaussian_smooth(field: np.ndarray, sigma_arcmin: float, pixel_arcmin: float) -> np.ndarray:
    """Convolve a map ``(..., ny, nx)`` with a Gaussian of standard deviation ``sigma_arcmin``
    (periodic, Fourier space); ``sigma_arcmin = 0`` returns the input."""
    if sigma_arcmin < 0:
        raise ValueError(f"smoothing scale must be >= 0, got {sigma_arcmin}")
    if sigma_arcmin == 0:
        return np.asarray(field, dtype=float)
    l1, l2 = ell_grid(np.shape(field)[-2:], pixel_arcmin)
    sig = sigma_arcmin * ARCMIN
    w = np.exp(-0.5 * (l1 ** 2 + l2 ** 2) * sig ** 2)
    return np.fft.ifft2(np.fft.fft2(field) * w).real


# --------------------------------------------------------------------------- power spectra


def default_ell_bins(shape: tuple[int, int], pixel_arcmin: float, n_bins: int = 12) -> np.ndarray:
    """Log-spaced bin edges from the fundamental mode ``2 pi / L`` to the Nyquist mode ``pi / δ``."""
    d = pixel_arcmin * ARCMIN
    lmin = 2 * np.pi / (max(shape) * d)
    lmax = np.pi / d
    return np.geomspace(lmin, lmax, int(n_bins) + 1)


def flat_power_spectrum(map1: np.ndarray, pixel_arcmin: float, ell_bins=None, map2: np.ndarray | None = None,
                        mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned (cross-)power spectrum of flat maps ``(..., ny, nx)``.

    ``C_hat(ell) = Re[F1 F2*] δ^2 / (n_y n_x)`` per Fourier mode (``δ`` the pixel side in rad,
    ``F`` the FFT), averaged over the modes with ``ell_lo <= |ell| < ell_hi`` in each bin
    (``ell = 0`` excluded). With a ``mask`` (1 = observed), the maps are multiplied by it and
    the result divided by the mean of ``mask^2`` (the f_sky correction of a pseudo-C_ell;
    mode coupling is not deconvolved). Returns ``(ell_mean, C_hat, n_modes)`` with the
    mode-averaged ``|ell|`` per bin, ``C_hat`` of shape ``(..., n_bins)`` and the number of
    FFT modes per bin (the independent modes are about half of them: Hermitian pairs).
    """
    m1 = np.asarray(map1, dtype=float)
    m2 = m1 if map2 is None else np.asarray(map2, dtype=float)
    if m1.shape != m2.shape:
        raise ValueError(f"maps differ in shape: {m1.shape} vs {m2.shape}")
    shape = m1.shape[-2:]
    norm = 1.0
    if mask is not None:
        mask = np.asarray(mask, dtype=float)
        m1, m2 = m1 * mask, m2 * mask
        norm = float(np.mean(mask ** 2))
        if norm <= 0:
            raise ValueError("mask is empty")
    if ell_bins is None:
        ell_bins = default_ell_bins(shape, pixel_arcmin)
    edges = np.asarray(ell_bins, dtype=float)
    l1, l2 = ell_grid(shape, pixel_arcmin)
    ell = np.hypot(l1, l2).ravel()
    f1 = np.fft.fft2(m1)
    f2 = f1 if map2 is None else np.fft.fft2(m2)
    p = (f1 * np.conj(f2)).real * (pixel_arcmin * ARCMIN) ** 2 / (shape[0] * shape[1]) / norm
    p = p.reshape(p.shape[:-2] + (-1,))
    which = np.digitize(ell, edges) - 1
    valid = (which >= 0) & (which < len(edges) - 1) & (ell > 0)
    nb = len(edges) - 1
    counts = np.bincount(which[valid], minlength=nb).astype(float)
    ell_mean = np.bincount(which[valid], weights=ell[valid], minlength=nb) / np.maximum(counts, 1)
    sel = p[..., valid]
    onehot = np.zeros((valid.sum(), nb))
    onehot[np.arange(valid.sum()), which[valid]] = 1.0
    cl = (sel @ onehot) / np.maximum(counts, 1)
    return ell_mean, cl, counts


def binned_theory(cl, shape: tuple[int, int], pixel_arcmin: float, ell_bins=None) -> np.ndarray:
    """The expectation of :func:`flat_power_spectrum` for a field with spectrum ``cl``
    (callable): ``C(|ell|)`` averaged over the same FFT modes in each bin."""
    if ell_bins is None:
        ell_bins = default_ell_bins(shape, pixel_arcmin)
    edges = np.asarray(ell_bins, dtype=float)
    l1, l2 = ell_grid(shape, pixel_arcmin)
    ell = np.hypot(l1, l2).ravel()
    which = np.digitize(ell, edges) - 1
    valid = (which >= 0) & (which < len(edges) - 1) & (ell > 0)
    nb = len(edges) - 1
    counts = np.bincount(which[valid], minlength=nb)
    vals = np.bincount(which[valid], weights=np.asarray(cl(ell[valid]), float), minlength=nb)
    return vals / np.maximum(counts, 1)


def shape_noise_sigma(sigma_e: float, n_gal_arcmin2: float, pixel_arcmin: float) -> float:
    """Per-pixel, per-component shear noise ``sigma_e / sqrt(n_gal A_pix)``.

    ``sigma_e`` is the per-component intrinsic ellipticity dispersion (e.g. 0.26), ``n_gal``
    the effective source density in arcmin^-2, ``A_pix = pixel_arcmin^2``."""
    if sigma_e < 0 or n_gal_arcmin2 <= 0 or pixel_arcmin <= 0:
        raise ValueError("shape noise needs sigma_e >= 0, n_gal > 0 and pixel_arcmin > 0")
    return float(sigma_e / np.sqrt(n_gal_arcmin2 * pixel_arcmin ** 2))


def shape_noise_cl(sigma_e: float, n_gal_arcmin2: float) -> float:
    """White shape-noise power of the convergence (and of each shear E/B component):
    ``N = sigma_e^2 / n_gal`` per steradian (``n_gal`` converted from arcmin^-2)."""
    return float(sigma_e ** 2 / (n_gal_arcmin2 / ARCMIN ** 2))


# --------------------------------------------------------------------------- masks


def flat_mask(rng: np.random.Generator, n: int, pixel_arcmin: float, holes: int, radius: list[float],
              edge: int) -> np.ndarray:
    """Mask ``(n, n)`` float (1 = observed): ``holes`` circles of radius uniform in ``radius``
    (arcmin) at uniform positions, and an ``edge`` px unobserved border (:class:`FlatMask`)."""
    m = np.ones((n, n))
    if holes:
        yy, xx = np.mgrid[:n, :n]
        for _ in range(int(holes)):
            cy, cx = rng.uniform(0, n, 2)
            r = rng.uniform(*radius) / pixel_arcmin
            m[(yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2] = 0.0
    if edge:
        e = int(edge)
        m[:e], m[-e:], m[:, :e], m[:, -e:] = 0.0, 0.0, 0.0, 0.0
    return m
