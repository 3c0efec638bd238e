"""Galaxy-scale strong gravitational lensing: SIE + external shear deflection, ray tracing, and a
batched (torch) simulator of multi-band lens / non-lens cutouts for lens finding.

Units and conventions
---------------------
* Angles on the sky are **arcsec**, measured from the stamp centre: ``x`` along the image columns,
  ``y`` along the rows (pixel ``(i, j)`` is centred on ``x = (j - (W-1)/2) p``, ``y = (i - (H-1)/2) p``
  for pixel scale ``p`` arcsec/px; :func:`cosmobench.sim.profiles.pixel_grid` conventions). Position
  angles are radians counter-clockwise from +x.
* Fluxes are counts (photo-electrons, gain 1 e-/ADU by default); magnitudes are AB with a zero
  point per band ``zp_b`` (the magnitude of 1 count in the full exposure): ``m = zp_b - 2.5 log10(counts)``.
  Surface brightness is counts/arcsec^2.

Lens model (physics, :func:`sie_deflection`, :func:`shear_deflection`, :func:`ray_trace`)
-----------------------------------------------------------------------------------------
Singular isothermal ellipsoid (Kormann, Schneider & Bartelmann 1994) in the "intermediate axis"
normalisation used by lenstronomy: in the frame of the mass major axis ``(u, v)``,
``kappa = theta_E / (2 sqrt(q u^2 + v^2 / q))``, so the critical curve encloses the area
``pi theta_E^2`` for any axis ratio ``q`` and ``q = 1`` is the singular isothermal sphere
(|alpha| = theta_E everywhere). Deflection, with ``e = sqrt(1 - q^2)``, ``psi = sqrt(q^2 u^2 + v^2)``:
``alpha_u = theta_E sqrt(q)/e atan(e u / psi)``, ``alpha_v = theta_E sqrt(q)/e atanh(e v / psi)``.
External shear (lenstronomy's ``SHEAR`` convention): ``alpha = (g1 dx + g2 dy, g2 dx - g1 dy)``.
Lens equation ``beta = theta - alpha(theta)``; the lensed image is ``I(theta) = S(beta(theta))``
(surface brightness is conserved), integrated over ``oversample^2`` sub-pixels per pixel.
Closed forms are textbook; the batched torch evaluation is written here because no library
evaluates them vectorised over a batch of different lenses on CPU/GPU (lenstronomy works one
lens at a time in numpy; it is the benchmark peer in ``benchmarks/bench_lensfinding.py``).

Simulated cutouts (:class:`LensSimulator`)
------------------------------------------
Default survey: KiDS-like g, r, i (``n_bands`` bands spread over 480-920 nm as in
:func:`cosmobench.sim.galaxies.band_wavelengths`; the middle band is the reference band ``r``),
0.2"/px, 64 x 64 px (12.8"). Per band: Gaussian (or Moffat) PSF of FWHM ``psf_fwhm`` = (0.9, 0.7,
0.8)", sky ``sky_mag`` = (22.0, 21.0, 20.0) mag/arcsec^2, zero points ``zero_point`` = (33.5, 34.0,
33.0). A background-limited 5-sigma point-source depth in a 2" aperture is
``(zp + mu_sky)/2 - 2.5 log10(5 sqrt(pi))`` = 25.4, 25.1, 24.1 mag: KiDS DR4's g, r, i depths
(Kuijken+2019). Noise: Poisson (sky + sources, Gaussian limit, see
:func:`cosmobench.sim.profiles.poisson_gaussian_noise`) + read noise, sky subtracted.

Priors (``U(a, b)`` uniform; adapted from the KiDS lens-finding simulations of Petrillo+2019
(MNRAS 484, 3879) and Li+2020/2021 (ApJ 899, 30; ApJ 923, 16) and the Bologna challenge,
Metcalf+2019 (A&A 625, A119)):

* lens light (every lens and plain non-lens): elliptical Sérsic, ``n ~ U(2.5, 5.5)``,
  ``r_e ~ U(0.5, 2.0)"``, ``q_L ~ U(0.5, 1)``, PA uniform, centre ``U(-0.5, 0.5)`` px,
  reference-band magnitude ``~ U(lens_mag_range)`` = U(17.5, 20.0); red colour.
* mass (lenses): SIE with ``theta_E ~ U(theta_e_range)`` = U(0.8, 3.0)", centred on the light,
  ``q_m = clip(q_L + N(0, 0.05), 0.4, 1)``, ``PA_m = PA_L + N(0, 10 deg)`` (roughly aligned with the
  light); external shear ``gamma_1, gamma_2 ~ N(0, shear_sigma = 0.05)``.
* source (lenses): elliptical Sérsic, ``n ~ U(0.5, 3)``, ``r_e ~ U(source_re_range)`` = U(0.15, 0.6)",
  ``q ~ U(0.3, 1)``, PA uniform, unlensed reference-band magnitude ``~ U(source_mag_range)`` =
  U(21.0, 24.5), position uniform in area within ``0.8 theta_E`` of the lens centre (multiply imaged;
  SIS magnification ``>= 2.5``); blue colour. With probability ``clump_prob`` (0.5) 1-4 star-forming
  clumps (Gaussians of sigma ``U(0.04, 0.12)"`` at ``N(0, r_e)`` offsets) carry ``U(0.1, 0.4)`` of the
  source light.
* colours: power-law ``f_nu ∝ lambda^alpha`` across the bands (as in
  :class:`cosmobench.sim.galaxies.Observation`), lens ``alpha ~ U(2, 3)`` (g-r ≈ 0.8-1.2 for the
  default bands), source and star-forming features ``alpha ~ U(-1, 0.5)``.
* negatives: a fraction ``1 - lens_fraction`` of the samples. Of those, ``1 -
  hard_negative_fraction`` are the lens-light galaxy alone; the rest are hard negatives drawn
  uniformly from ``hard_negatives``:

  ``ring``       lens-light galaxy + a blue (collisional/resonance) star-forming ring: Gaussian in
                 elliptical radius, radius ``U(theta_e_range)``, width ``U(0.1, 0.3)"``, axis ratio
                 ``U(0.4, 1)``, with ``m`` = 2-5 azimuthal knots (modulation ``U(0.3, 0.9)``),
                 magnitude from the source prior.
  ``companion``  lens-light galaxy + 1-3 close, unlensed blue galaxies (source-prior Sérsics) at
                 ``U(0.8, 3.0)"`` from its centre.
  ``spiral``     a spiral galaxy (bulge, exponential disk, logarithmic blue arms) and
  ``edge_on``    an edge-on disk with a dust lane, both from the morphology simulator
                 (:func:`cosmobench.sim.galaxies.simulate_galaxy`, noiseless and unconvolved, magnitude
                 from the lens-light prior) and then observed through the same PSF and noise.

Reproducibility: sample ``i`` of split ``s`` is a pure function of ``(seed, s, i)``: its random
numbers come from a ``torch.Generator`` seeded by
:func:`cosmobench.datamodule.sample_seed` (computed for a whole batch at once by
:func:`sample_keys`; parameters as a fixed vector of uniforms, the noise deviates, and the
morphology-simulator generator for ``spiral``/``edge_on``), while rendering is vectorised over the
batch (:class:`LensSimulator` says how). Results do not depend on batch composition beyond float
rounding of batched kernels (tested bitwise on CPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cosmobench.settings import setting
from cosmobench.sim import profiles as P
from cosmobench.sim.profiles import Camera

HARD_NEGATIVES = ("ring", "companion", "spiral", "edge_on")
#: sample kinds: 0 lens, 1 plain non-lens, 2.. the hard negatives in HARD_NEGATIVES order
KINDS = ("lens", "non_lens") + HARD_NEGATIVES
MAX_CLUMPS = 4
MAX_COMPANIONS = 3

# --------------------------------------------------------------------------- lens physics


def sie_deflection(x, y, theta_e, q, phi, x0=0.0, y0=0.0):
    """Deflection ``(alpha_x, alpha_y)`` (arcsec) of a singular isothermal ellipsoid of Einstein
    radius ``theta_e`` (arcsec), mass axis ratio ``q`` in (0, 1] and major-axis position angle
    ``phi`` (rad), centred on ``(x0, y0)``, at image-plane positions ``(x, y)`` (arcsec).
    numpy or torch (broadcasting); ``q = 1`` is the singular isothermal sphere."""
    xp = P.array_namespace(x, y, theta_e, q, phi, x0, y0)
    u, v = P.rotate_coords(x, y, x0, y0, phi)
    as_arr = (lambda a: torch.as_tensor(a, dtype=u.dtype, device=u.device)) if xp is torch else \
        (lambda a: np.asarray(a, dtype=float))
    theta_e, q, phi = as_arr(theta_e), as_arr(q), as_arr(phi)
    q = xp.clip(q, 1e-3, 1.0)
    e2 = 1.0 - q * q
    round_ = e2 < 1e-6
    e = xp.sqrt(xp.where(round_, xp.ones_like(e2), e2))
    double = (u.dtype == torch.float64) if xp is torch else (u.dtype == np.float64)
    tiny = 1e-9 if double else 1e-6
    psi = xp.sqrt(q * q * u * u + v * v)
    psi = xp.where(psi > tiny, psi, tiny + 0 * psi)
    amp = theta_e * xp.sqrt(q) / e
    a_u = xp.where(round_, theta_e * u / psi, amp * xp.arctan(e * u / psi))
    a_v = xp.where(round_, theta_e * v / psi, amp * xp.arctanh(xp.clip(e * v / psi, -1 + 1e-7, 1 - 1e-7)))
    c, s = xp.cos(phi), xp.sin(phi)
    return c * a_u - s * a_v, s * a_u + c * a_v


def shear_deflection(x, y, gamma1, gamma2, x0=0.0, y0=0.0):
    """Deflection (arcsec) of an external shear ``(gamma1, gamma2)`` about ``(x0, y0)``:
    potential ``psi = (g1 (dx^2 - dy^2) + 2 g2 dx dy) / 2``."""
    dx, dy = x - x0, y - y0
    return gamma1 * dx + gamma2 * dy, gamma2 * dx - gamma1 * dy


def ray_trace(x, y, theta_e, q, phi, gamma1=0.0, gamma2=0.0, x0=0.0, y0=0.0):
    """Source-plane positions ``beta = theta - alpha_SIE(theta) - alpha_shear(theta)`` (arcsec) of
    image-plane positions ``(x, y)`` for an SIE + external shear centred on ``(x0, y0)``."""
    ax, ay = sie_deflection(x, y, theta_e, q, phi, x0, y0)
    sx, sy = shear_deflection(x, y, gamma1, gamma2, x0, y0)
    return x - ax - sx, y - ay - sy


# --------------------------------------------------------------------------- survey + simulator


def _per_band(value, n: int, name: str) -> list[float]:
    vals = [float(v) for v in (value if isinstance(value, (list, tuple, np.ndarray)) else [value])]
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise ValueError(f"{name} needs 1 or n_bands={n} values, got {len(vals)}")
    return vals


def _range(value, name: str) -> list[float]:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(value)}")
    return [float(v) for v in value]


@dataclass
class LensSimConfig(Camera):
    """Survey and prior settings of :class:`LensSimulator` (units in the module docstring).
    Per-band settings take one value per band, or one value for all bands."""

    pixel_scale: float = setting(0.2, "positive float", unit="arcsec/px", help="pixel size")
    zero_point: list[float] = setting([33.5, 34.0, 33.0], "nonempty list[float]", unit="mag",
                                      help="per band: AB magnitude of 1 count")
    sky_mag: list[float] = setting([22.0, 21.0, 20.0], "nonempty list[float]", unit="mag/arcsec^2",
                                   help="per band: sky surface brightness")
    psf: str = setting("gaussian", ["gaussian", "moffat"], help="PSF profile")
    psf_fwhm: list[float] = setting([0.9, 0.7, 0.8], "nonempty list[positive float]", unit="arcsec",
                                    help="per band: PSF FWHM")
    oversample: int = setting(2, "positive int", help="sub-pixels per pixel side (0.1\" at 0.2\"/px)")
    lens_fraction: float = setting(0.5, "probability", help="fraction of the samples that are lenses")
    hard_negative_fraction: float = setting(0.5, "probability", help="fraction of the negatives that are hard negatives")
    hard_negatives: list[str] = setting(["ring", "companion", "spiral", "edge_on"],
                                        "list[one of ring, companion, spiral, edge_on]",
                                        help="kinds of hard negatives, drawn uniformly")
    theta_e_range: list[float] = setting([0.8, 3.0], "list[positive float]", unit="arcsec",
                                         help="[low, high]: Einstein radius, uniform")
    lens_mag_range: list[float] = setting([17.5, 20.0], "list[float]", unit="mag",
                                          help="[low, high]: lens-light magnitude (reference band), uniform")
    source_mag_range: list[float] = setting([21.0, 24.5], "list[float]", unit="mag",
                                            help="[low, high]: unlensed source magnitude (reference band), uniform")
    source_re_range: list[float] = setting([0.15, 0.6], "list[positive float]", unit="arcsec",
                                           help="[low, high]: source half-light radius, uniform")
    shear_sigma: float = setting(0.05, "non-negative float", help="std of each external-shear component")
    clump_prob: float = setting(0.5, "probability", help="probability that a source has star-forming clumps")
    wavelengths: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from cosmobench.sim.galaxies import band_wavelengths
        for name in ("zero_point", "sky_mag", "psf_fwhm"):
            setattr(self, name, _per_band(getattr(self, name), self.n_bands, name))
        if self.hard_negative_fraction > 0 and not self.hard_negatives:
            raise ValueError("hard_negative_fraction > 0 needs at least one hard negative kind")
        self.hard_negatives = list(self.hard_negatives)
        for name in ("theta_e_range", "lens_mag_range", "source_mag_range", "source_re_range"):
            setattr(self, name, _range(getattr(self, name), name))
        half = (self.image_size - 1) / 2 * self.pixel_scale
        if 1.8 * self.theta_e_range[1] > half:  # outer image of a source at 0.8 theta_E: 1.8 theta_E
            raise ValueError(f"theta_e_range upper end {self.theta_e_range[1]}\" does not fit a "
                             f"{self.image_size} px x {self.pixel_scale}\"/px stamp: the outer lensed image reaches "
                             f"1.8 theta_E, the half-width is {half:.2f}\"")
        self.wavelengths = band_wavelengths(self.n_bands)
        self.ref_band = self.n_bands // 2

    def colour(self, alpha: torch.Tensor) -> torch.Tensor:
        """Band fluxes relative to the reference band, ``(lambda_b / lambda_ref)^alpha``: ``(B, C)``."""
        lam = torch.as_tensor(self.wavelengths / self.wavelengths[self.ref_band], dtype=alpha.dtype)
        return lam[None, :] ** alpha[:, None]

    def counts(self, mag: torch.Tensor) -> torch.Tensor:
        """Reference-band magnitudes ``(B,)`` -> counts in that band ``(B,)``."""
        return P.mag_to_counts(mag, self.zero_point[self.ref_band])

    @property
    def band_zp_factor(self) -> np.ndarray:
        """Counts in band b per count in the reference band at equal AB magnitude: ``10^(0.4 (zp_b - zp_ref))``."""
        zp = np.asarray(self.zero_point)
        return 10.0 ** (0.4 * (zp - zp[self.ref_band]))

    def sky_counts(self) -> np.ndarray:
        """Sky counts per pixel per band."""
        return np.array([float(P.sb_to_counts_per_pixel(m, self.pixel_scale, z))
                         for m, z in zip(self.sky_mag, self.zero_point)])

    def psf_kernels(self) -> np.ndarray:
        """``(C, k, k)`` unit-sum PSF stamps (one odd size for all bands, ~3 FWHM half-width)."""
        fwhm_px = np.asarray(self.psf_fwhm) / self.pixel_scale
        size = 2 * int(np.ceil(3 * fwhm_px.max())) + 1
        return np.stack([P.make_psf(self.psf, f, self.moffat_beta, size) for f in fwhm_px])


# slots of the per-sample uniform vector
_U_LABEL, _U_HARD, _U_KIND = 0, 1, 2
_U_LENS = 3          # mag, n, r_e, q, pa, x0, y0, alpha                          (8)
_U_MASS = 11         # theta_e, dq, dpa, g1, g2                                  (5)
_U_SRC = 16          # r_beta, ang_beta, mag, n, r_e, q, pa, alpha               (8)
_U_CLUMP = 24        # has, n, frac, then MAX_CLUMPS x (dx, dy, sigma, weight)   (3 + 16)
_U_RING = 43         # radius, width, q, pa, mag, alpha, m, phase, amplitude     (9)
_U_COMP = 52         # n, then MAX_COMPANIONS x (r, ang, mag, r_e, n, q, pa, alpha) (1 + 24)
N_UNIFORMS = 77


def _gauss(u: torch.Tensor) -> torch.Tensor:
    """Standard-normal deviates from uniforms in (0, 1) (inverse CDF)."""
    return math.sqrt(2.0) * torch.erfinv((2 * u - 1).clamp(-1 + 1e-12, 1 - 1e-12))


def _lerp(u: torch.Tensor, rng: tuple[float, float]) -> torch.Tensor:
    return rng[0] + (rng[1] - rng[0]) * u


_MASK32 = np.uint64(0xFFFFFFFF)


def sample_keys(seed: int, split: str, indices) -> np.ndarray:
    """64-bit keys ``(B,)`` uint64 of samples ``indices`` of ``split``:
    ``sample_seed(seed, split, i).generate_state(1, np.uint64)[0]`` of
    :func:`cosmobench.datamodule.sample_seed`, computed for all samples at once (numpy's
    ``SeedSequence`` hash mixing, vectorised; tested against ``SeedSequence`` itself) when seed and
    indices are 32-bit, per sample otherwise."""
    from cosmobench.datamodule import SPLITS, sample_seed
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= 2 ** 32 or not 0 <= int(seed) < 2 ** 32):
        return np.array([sample_seed(seed, split, int(i)).generate_state(1, np.uint64)[0] for i in idx],
                        dtype=np.uint64)
    consts = {"a": 0x43b0d7e5}

    def hashmix(v):
        v = (v ^ np.uint64(consts["a"])) & _MASK32
        consts["a"] = (consts["a"] * 0x931e8875) & 0xFFFFFFFF
        v = (v * np.uint64(consts["a"])) & _MASK32
        return v ^ (v >> np.uint64(16))

    def mix(x, y):
        r = (np.uint64(0xca01f9dd) * x - np.uint64(0x4973f715) * y) & _MASK32
        return r ^ (r >> np.uint64(16))

    n = len(idx)
    entropy = [np.full(n, int(seed), np.uint64), np.full(n, SPLITS[split], np.uint64), idx.astype(np.uint64),
               np.zeros(n, np.uint64)]
    pool = [hashmix(e) for e in entropy]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    words, hb = [], 0x8b51f9dd
    for k in range(2):
        v = (pool[k] ^ np.uint64(hb)) & _MASK32
        hb = (hb * 0x58f38ded) & 0xFFFFFFFF
        v = (v * np.uint64(hb)) & _MASK32
        words.append(v ^ (v >> np.uint64(16)))
    return words[0] | (words[1] << np.uint64(32))


class LensSimulator:
    """Batched simulator of lens / non-lens cutouts (see the module docstring for the model).

    ``simulate(indices, split, seed)`` returns images ``(B, C, H, W)`` in counts (sky-subtracted;
    dtype ``dtype``, float32 by default) and per-sample truth: ``label`` (1 lens, 0 not), ``kind`` (index into
    :data:`KINDS`), ``theta_e`` (arcsec), ``source_mag`` (unlensed, reference band),
    ``magnification`` (lensed source flux within the stamp / unlensed source flux, before the PSF), ``lens_mag`` (NaN where
    not applicable). ``dtype`` float32 (fast) or float64 (tests).

    Implementation (why it is fast; the model is the module docstring's). All per-sample
    parameters of a batch are turned into per-sample coefficients at once; the images are then
    rendered in chunks of samples whose temporaries stay in the CPU's L2 cache, with only
    whole-grid tensor ops per chunk. Sub-pixel coordinates are laid out as ``(s, s, B, H, W)``
    (sub-pixel row offset, column offset, sample, pixel row, pixel column), so an affine function
    of ``(x, y)`` is one broadcast of per-sample coefficients against the 1-d pixel axes, a
    quadratic form (elliptical radius) one broadcast plus one fused multiply-add of an outer
    product, and binning sub-pixels into pixels a sum over the leading axes. The SIE deflection,
    external shear and the source's elliptical frame are folded into per-sample coefficients of
    the two deflection integrals (:meth:`_source_plan`); a Sérsic profile is
    ``exp(A - b exp(k ln r^2 + c))`` (three transcendental ops; exponents are clipped just above
    float underflow, where exp is ~10x slower). Each profile shape is evaluated
    once and multiplied by its per-band fluxes at pixel resolution; the PSF convolution is a
    separable matrix product (:class:`cosmobench.sim.profiles.SeparableConvolver`; Moffat PSFs as a
    few separable terms); each sample's random numbers come from its own ``torch.Generator`` (the
    noise deviates drawn chunk by chunk, in cache).
    """

    #: target number of sub-pixel values per chunk of samples (float32: 512 kB per temporary)
    chunk_elements = 1 << 17

    def __init__(self, cfg: LensSimConfig, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        self.cfg, self.dtype, self.device = cfg, dtype, torch.device(device)
        c = cfg
        s, n = c.oversample, c.image_size
        off = (np.arange(s) + 0.5) / s - 0.5                     # sub-pixel centre offsets (px)
        pos = ((np.arange(n)[None, :] + off[:, None]) - (n - 1) / 2) * c.pixel_scale   # (s, n) arcsec
        kw = dict(dtype=dtype, device=self.device)
        self.xs = torch.as_tensor(pos, **kw).view(1, s, 1, 1, n)  # x of sub-pixel (., a, ., ., j)
        self.ys = torch.as_tensor(pos, **kw).view(s, 1, 1, n, 1)  # y of sub-pixel (a, ., ., i, .)
        self.sub_area = (c.pixel_scale / s) ** 2                  # arcsec^2 per sub-pixel
        self.psf_kernels = c.psf_kernels()
        self.convolver = P.SeparableConvolver(self.psf_kernels, (n, n), dtype=dtype, device=self.device)
        self.sky = torch.as_tensor(c.sky_counts(), **kw).view(1, -1, 1, 1)
        self.zp_factor = torch.as_tensor(c.band_zp_factor, **kw)
        self._gal_obs = None
        self._float64 = dtype == torch.float64
        # exponents of profiles are clipped here, just above exp's underflow (1e-38 in float32):
        # exp of an underflowing argument is ~10x slower on CPU; the clip adds < 1e-30 counts per
        # sub-pixel (1.6e-38 of a unit profile times fluxes < 1e7 counts)
        self._exp_floor = -700.0 if self._float64 else -87.0

    # --- random numbers ------------------------------------------------------------------
    def draw(self, indices, split: str, seed: int) -> tuple[torch.Tensor, list[torch.Generator], list[int]]:
        """Per-sample uniforms ``(B, N_UNIFORMS)`` (float64), the per-sample generators (which then
        draw the ``(C, H, W)`` standard-normal noise deviates) and their 63-bit seeds (also the seeds
        of the morphology simulator), each a pure function of ``(seed, split, index)``: generator
        ``i`` is a ``torch.Generator`` seeded with :func:`sample_keys` (63 bits)."""
        seeds = [int(v) & (2 ** 63 - 1) for v in sample_keys(seed, split, indices)]
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        u = torch.empty(len(seeds), N_UNIFORMS, dtype=torch.float64)
        for i, g in enumerate(gens):
            u[i].uniform_(generator=g)
        return u.to(self.device), gens, seeds

    # --- rendering helpers ------------------------------------------------------------------
    # A "plan" is a list of tensors with the sample axis at dim 2, made once per batch from the
    # per-sample parameters: per-sample scalars (1, 1, N, 1, 1) and the parts of affine/quadratic
    # forms already broadcast against one pixel axis ((1, s, N, 1, W) or (s, 1, N, H, 1)); a chunk
    # of samples takes a slice of each (_cut), and evaluating it costs only whole-grid ops.
    def _b(self, col) -> torch.Tensor:
        """Per-sample values ``(N,)`` -> ``(1, 1, N, 1, 1)`` in the working dtype."""
        return torch.as_tensor(col).to(self.dtype).view(1, 1, -1, 1, 1)

    @staticmethod
    def _cut(plan, sl: slice) -> list[torch.Tensor]:
        return [t[:, :, sl] for t in plan]

    def _chunks(self, n: int):
        step = self.chunk
        return [slice(a, min(a + step, n)) for a in range(0, n, step)]

    def _bin(self, sb: torch.Tensor) -> torch.Tensor:
        """Values on the ``(s, s, B, H, W)`` sub-pixel grid -> their sum per pixel ``(B, H, W)``."""
        s = self.cfg.oversample
        return sb[0, 0] if s == 1 else sb.view(s * s, *sb.shape[2:]).sum(0)

    def _affine_plan(self, a, b, c0) -> list[torch.Tensor]:
        """Plan of ``a x + b y + c0`` on the sub-pixel grid (evaluate with :meth:`_affine`)."""
        a, b, c0 = self._b(a), self._b(b), self._b(c0)
        return [a * self.xs + c0, b * self.ys]

    @staticmethod
    def _affine(p) -> torch.Tensor:
        return torch.add(p[0], p[1])

    def _quadratic_plan(self, a, b, c, x0, y0) -> list[torch.Tensor]:
        """Plan of ``a dx^2 + 2 b dx dy + c dy^2`` with ``dx = x - x0``, ``dy = y - y0`` on the
        sub-pixel grid (evaluate with :meth:`_quadratic`)."""
        dx, dy = self.xs - self._b(x0), self.ys - self._b(y0)
        return [self._b(a) * dx * dx, self._b(c) * dy * dy, self._b(2 * b) * dx, dy]

    @staticmethod
    def _quadratic(p) -> torch.Tensor:
        return torch.add(p[0], p[1]).addcmul_(p[2], p[3])

    def _sersic_from_r2(self, r2, k, c0, a, nb) -> torch.Tensor:
        """Sérsic ``exp(a + nb exp(k ln r2 + c0))`` from the squared elliptical radius ``r2``, in place."""
        return r2.log_().mul_(k).add_(c0).exp_().mul_(nb).add_(a).clamp_min_(self._exp_floor).exp_()

    def _sersic_plan(self, r_e, n, q, pa, x0, y0) -> list[torch.Tensor]:
        """Plan of a unit-flux elliptical Sérsic (flux per sub-pixel, so that the sum over
        a pixel's sub-pixels is that pixel's flux) for :meth:`_sersic_eval`: the quadratic form
        ``r^2 = u^2 + (v/q)^2`` of the elliptical radius, then ``I_e exp(-b_n ((r/r_e)^(1/n) - 1))
        = exp(A - b_n exp((ln r^2 - 2 ln r_e) / 2n))`` with ``A = ln(I_e sub_area) + b_n`` and
        ``I_e`` the unit-flux normalisation of :func:`cosmobench.sim.profiles.sersic_total_flux`."""
        c, s, iq2 = torch.cos(pa), torch.sin(pa), 1.0 / (q * q)
        return self._quadratic_plan(c * c + s * s * iq2, c * s * (1 - iq2), s * s + c * c * iq2, x0, y0) + \
            self._profile_plan(r_e, n, q)

    def _profile_plan(self, r_e, n, q) -> list[torch.Tensor]:
        b = P.sersic_bn(n)
        k = 0.5 / n
        a = -torch.log(P.sersic_total_flux(1.0, r_e, n, q)) + math.log(self.sub_area) + b
        return [self._b(k), self._b(-2 * k * torch.log(r_e)), self._b(a), self._b(-b)]

    def _sersic_eval(self, p) -> torch.Tensor:
        """Binned unit-flux Sérsic ``(B, H, W)`` from (a chunk of) a plan of :meth:`_sersic_plan`."""
        return self._bin(self._sersic_from_r2(self._quadratic(p[:4]), *p[4:8]))

    def _source_plan(self, theta_e, q, phi, g1, g2, lx0, ly0, sx0, sy0, q_s, pa_s) -> list[torch.Tensor]:
        """Plan of the source-frame coordinates of the ray-traced grid.

        SIE (module docstring) in the mass frame ``(u, v)`` at ``(dx, dy)`` from the lens centre:
        ``alpha = A (c T - s H, s T + c H)`` with ``T = atan(e u / psi)``, ``H = atanh(e v / psi)``,
        ``A = theta_E sqrt(q) / e``, ``psi^2 = q^2 u^2 + v^2`` (a quadratic form in ``dx, dy``), and
        ``e u``, ``e v`` affine in ``(x, y)``. The lens equation ``beta = theta - alpha - Gamma (dx, dy)``
        (shear matrix ``Gamma``) rotated into the source frame (position angle ``phi_s``) is an
        affine function of ``(x, y)`` minus ``A R(phi_s - phi) (T, H)``: the source coordinates
        ``(u_s, v_s / q_s)`` cost two broadcasts and four fused multiply-adds on top of ``T`` and
        ``H``. A round mass (``q = 1``) is evaluated at ``e = 1e-3`` (``q = 1 - 5e-7``; ``e = 1e-6``
        in float64), where the formula equals the SIS's to float rounding (tested)."""
        e_min = 1e-6 if self._float64 else 1e-3
        e = (1 - q * q).clamp_min(e_min ** 2).sqrt()
        q = (1 - e * e).sqrt()
        c, s = torch.cos(phi), torch.sin(phi)
        amp = theta_e * q.sqrt() / e
        cs, ss = torch.cos(pa_s), torch.sin(pa_s)
        cd, sd = torch.cos(pa_s - phi), torch.sin(pa_s - phi)
        # beta - s0 = M (dx, dy) + (l0 - s0) - alpha, M = [[1 - g1, -g2], [-g2, 1 + g1]]
        mxx, mxy, myx, myy = 1 - g1, -g2, -g2, 1 + g1
        ox, oy = lx0 - sx0, ly0 - sy0
        ux, uy = cs * mxx + ss * myx, cs * mxy + ss * myy
        vx, vy = (-ss * mxx + cs * myx) / q_s, (-ss * mxy + cs * myy) / q_s
        b = self._b
        return (self._quadratic_plan(q * q * c * c + s * s, c * s * (q * q - 1), q * q * s * s + c * c, lx0, ly0)  # psi^2
                + self._affine_plan(e * c, e * s, -e * (c * lx0 + s * ly0))                          # e u
                + self._affine_plan(-e * s, e * c, e * (s * lx0 - c * ly0))                          # e v
                + self._affine_plan(ux, uy, cs * ox + ss * oy - ux * lx0 - uy * ly0) + [b(-amp * cd), b(-amp * sd)]
                + self._affine_plan(vx, vy, (-ss * ox + cs * oy) / q_s - vx * lx0 - vy * ly0)       # v_s / q_s
                + [b(amp * sd / q_s), b(-amp * cd / q_s)])

    def _source_eval(self, p) -> tuple[torch.Tensor, torch.Tensor]:
        """Source-frame coordinates ``(u_s, v_s / q_s)`` of the ray-traced sub-pixel grid from (a
        chunk of) a plan of :meth:`_source_plan`."""
        psi = self._quadratic(p[0:4]).sqrt_().clamp_min_(1e-9 if self._float64 else 1e-6)
        t = torch.atan2(self._affine(p[4:6]), psi)
        h = self._affine(p[6:8]).div_(psi).atanh_()
        us = self._affine(p[8:10]).addcmul_(t, p[10]).addcmul_(h, p[11])
        vs = self._affine(p[12:14]).addcmul_(t, p[14]).addcmul_(h, p[15])
        return us, vs

    # --- simulate ------------------------------------------------------------------------
    @property
    def chunk(self) -> int:
        """Samples per rendering chunk: :attr:`chunk_elements` sub-pixel values (temporaries of
        ~0.5 MB stay in the L2 cache)."""
        c = self.cfg
        return max(1, self.chunk_elements // (c.image_size * c.oversample) ** 2)

    def simulate(self, indices, split: str, seed: int, noise: bool = True, psf: bool = True):
        """Images ``(B, C, H, W)`` (``dtype``) and truth (see the class docstring) of samples
        ``indices`` of ``split``."""
        c = self.cfg
        dt = self.dtype
        u, gens, seeds = self.draw(indices, split, seed)
        B = u.shape[0]
        label = (u[:, _U_LABEL] < c.lens_fraction).long()
        hard = (label == 0) & (u[:, _U_HARD] < c.hard_negative_fraction)
        n_hard = max(len(c.hard_negatives), 1)
        hard_idx = (u[:, _U_KIND] * n_hard).long().clamp(max=n_hard - 1)
        kind = torch.where(label == 1, 0, 1)
        for k, name in enumerate(c.hard_negatives):
            kind = torch.where(hard & (hard_idx == k), KINDS.index(name), kind)

        nan = torch.full((B,), float("nan"), dtype=torch.float64)
        truth = {"label": label, "kind": kind, "theta_e": nan.clone(), "source_mag": nan.clone(),
                 "magnification": nan.clone(), "lens_mag": nan.clone()}
        img = torch.zeros(B, c.n_bands, c.image_size, c.image_size, dtype=dt, device=self.device)

        # lens light: every sample except the galaxies taken from the morphology simulator
        has_light = (kind != KINDS.index("spiral")) & (kind != KINDS.index("edge_on"))
        L = torch.nonzero(has_light).flatten()
        ul = u[L, _U_LENS:_U_LENS + 8]
        lens_mag = _lerp(ul[:, 0], c.lens_mag_range)
        n_l, re_l = _lerp(ul[:, 1], (2.5, 5.5)), _lerp(ul[:, 2], (0.5, 2.0))
        q_l, pa_l = _lerp(ul[:, 3], (0.5, 1.0)), ul[:, 4] * math.pi
        x0 = (ul[:, 5] - 0.5) * c.pixel_scale
        y0 = (ul[:, 6] - 0.5) * c.pixel_scale
        alpha_l = _lerp(ul[:, 7], (2.0, 3.0))
        if len(L):
            plan = self._sersic_plan(re_l, n_l, q_l, pa_l, x0, y0)
            flux = (c.counts(lens_mag)[:, None] * c.colour(alpha_l)).to(dt) * self.zp_factor
            for sl in self._chunks(len(L)):
                t = self._sersic_eval(self._cut(plan, sl))
                img.index_add_(0, L[sl], flux[sl, :, None, None] * t[:, None])
            truth["lens_mag"][L] = lens_mag

        # lenses: SIE + shear ray tracing of a Sérsic source (+ clumps)
        pos = torch.nonzero(label == 1).flatten()
        if len(pos):
            self._lenses(u, pos, L, q_l, pa_l, x0, y0, img, truth)

        ring = torch.nonzero(kind == KINDS.index("ring")).flatten()
        for sl in self._chunks(len(ring)):
            rows = ring[sl]
            img[rows] += self._ring(u[rows, _U_RING:_U_RING + 9], x0[self._within(L, rows)], y0[self._within(L, rows)])
        comp = torch.nonzero(kind == KINDS.index("companion")).flatten()
        for sl in self._chunks(len(comp)):
            rows = comp[sl]
            img[rows] += self._companions(u[rows, _U_COMP:_U_COMP + 1 + 8 * MAX_COMPANIONS],
                                          x0[self._within(L, rows)], y0[self._within(L, rows)])
        for name in ("spiral", "edge_on"):
            sel = torch.nonzero(kind == KINDS.index(name)).flatten()
            for j in sel.tolist():
                img[j] = self._morphology_galaxy(name, seeds[j])

        if psf or noise:
            z = torch.empty(self.chunk, *img.shape[1:], dtype=dt) if noise else None
            for sl in self._chunks(B):
                x = self.convolver(img[sl]) if psf else img[sl]
                if noise:
                    for i, g in enumerate(gens[sl]):
                        z[i].normal_(generator=g)
                    x = P.poisson_gaussian_noise(x, self.sky, z[:len(x)].to(self.device), c.read_noise, c.gain)
                img[sl] = x
        return img, truth

    def _lenses(self, u, pos, L, q_l, pa_l, x0, y0, img, truth) -> None:
        """Add the lensed sources of the lens samples ``pos`` to ``img`` and fill their truth."""
        c, dt = self.cfg, self.dtype
        sel = self._within(L, pos)                            # lenses within L (all lenses have light)
        um, us, uc = u[pos, _U_MASS:_U_MASS + 5], u[pos, _U_SRC:_U_SRC + 8], u[pos, _U_CLUMP:_U_CLUMP + 19]
        theta_e = _lerp(um[:, 0], c.theta_e_range)
        q_m = (q_l[sel] + 0.05 * _gauss(um[:, 1])).clamp(0.4, 1.0)
        pa_m = pa_l[sel] + math.radians(10.0) * _gauss(um[:, 2])
        g1, g2 = c.shear_sigma * _gauss(um[:, 3]), c.shear_sigma * _gauss(um[:, 4])
        lx0, ly0 = x0[sel], y0[sel]
        r_b = 0.8 * theta_e * us[:, 0].sqrt()
        a_b = 2 * math.pi * us[:, 1]
        sx0, sy0 = lx0 + r_b * torch.cos(a_b), ly0 + r_b * torch.sin(a_b)
        src_mag = _lerp(us[:, 2], c.source_mag_range)
        n_s, re_s = _lerp(us[:, 3], (0.5, 3.0)), _lerp(us[:, 4], c.source_re_range)
        q_s, pa_s = _lerp(us[:, 5], (0.3, 1.0)), us[:, 6] * math.pi
        alpha_s = _lerp(us[:, 7], (-1.0, 0.5))
        has_clumps = uc[:, 0] < c.clump_prob
        frac = torch.where(has_clumps, _lerp(uc[:, 2], (0.1, 0.4)), torch.zeros_like(uc[:, 2]))
        # rows with clumps first, so that every chunk's clumpy rows are one contiguous slice
        order = torch.argsort((~has_clumps).to(torch.int8), stable=True)
        n_clumpy = int(has_clumps.sum())
        o = lambda t: t[order]  # noqa: E731
        plan = self._source_plan(*map(o, (theta_e, q_m, pa_m, g1, g2, lx0, ly0, sx0, sy0, q_s, pa_s))) + \
            self._profile_plan(o(re_s), o(n_s), o(q_s)) + [self._b(o(1 - frac))]
        oc = lambda t: t[order[:n_clumpy]]  # noqa: E731
        cplan = self._clump_plan(*map(oc, (uc, frac, re_s, pa_s, q_s))) if n_clumpy else None
        flux = ((c.counts(src_mag)[:, None] * c.colour(alpha_s)).to(dt) * self.zp_factor)[order]
        mag = torch.empty(len(pos), dtype=torch.float64)
        rows = pos[order]
        for sl in self._chunks(len(pos)):
            p = self._cut(plan, sl)
            bu, bv = self._source_eval(p)
            clumpy = slice(sl.start, min(sl.stop, n_clumpy))
            clumps = self._clumps_eval(bu[:, :, :clumpy.stop - clumpy.start], bv[:, :, :clumpy.stop - clumpy.start],
                                       self._cut(cplan, clumpy)) if clumpy.stop > clumpy.start else None
            sb = self._sersic_from_r2(bu.mul_(bu).addcmul_(bv, bv), *p[16:20]).mul_(p[20])
            if clumps is not None:
                sb[:, :, :clumpy.stop - clumpy.start] += clumps
            t = self._bin(sb)
            mag[sl] = t.sum(dim=(-2, -1)).double()
            img.index_add_(0, rows[sl], flux[sl, :, None, None] * t[:, None])
        truth["magnification"][rows] = mag
        truth["theta_e"][pos], truth["source_mag"][pos] = theta_e, src_mag

    @staticmethod
    def _within(L: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Positions of the sample indices ``rows`` within the sorted index list ``L``."""
        return torch.searchsorted(L, rows)

    def _clump_plan(self, uc, frac, re_s, pa_s, q_s) -> list[torch.Tensor]:
        """Per clump slot (MAX_CLUMPS): centre in the source frame ``(du, dv / q_s)``, ``1 / q_s``,
        amplitude (flux per sub-pixel at the peak; 0 for absent clumps) and ``-1 / (2 sigma^2)`` of
        the Gaussian star-forming clumps of a unit source (total flux ``frac``). Clump offsets
        ``N(0, r_e)`` are drawn on the sky's axes and rotated into the source frame."""
        n_cl = 1 + (uc[:, 1] * MAX_CLUMPS).long().clamp(max=MAX_CLUMPS - 1)
        w = torch.stack([torch.where(k < n_cl, 0.2 + uc[:, 6 + 4 * k], torch.zeros_like(frac))
                         for k in range(MAX_CLUMPS)], 1)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12) * frac[:, None]
        cs, ss = torch.cos(pa_s), torch.sin(pa_s)
        out = []
        for k in range(MAX_CLUMPS):
            dx, dy = re_s * _gauss(uc[:, 3 + 4 * k]), re_s * _gauss(uc[:, 4 + 4 * k])
            sig = _lerp(uc[:, 5 + 4 * k], (0.04, 0.12))
            out += [self._b(v) for v in (cs * dx + ss * dy, (-ss * dx + cs * dy) / q_s, q_s,
                                         w[:, k] * self.sub_area / (2 * math.pi * sig ** 2), -0.5 / sig ** 2)]
        return out

    def _clumps_eval(self, bu, bv, p) -> torch.Tensor:
        """Clump light (flux per sub-pixel) on the source-frame coordinates ``(u_s, v_s / q_s)``."""
        out = None
        for k in range(MAX_CLUMPS):
            du, dvq, q_s, amp, isig = p[5 * k:5 * (k + 1)]
            r2 = (bu - du).square_().add_(((bv - dvq) * q_s).square_())
            term = r2.mul_(isig).clamp_min_(self._exp_floor).exp_().mul_(amp)
            out = term if out is None else out.add_(term)
        return out

    def _ring(self, ur: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        """Blue star-forming ring around the galaxy (not lensed): ``(B, C, H, W)`` counts."""
        c, dt = self.cfg, self.dtype
        radius, width = _lerp(ur[:, 0], c.theta_e_range), _lerp(ur[:, 1], (0.1, 0.3))
        q, pa = _lerp(ur[:, 2], (0.4, 1.0)), ur[:, 3] * math.pi
        mag, alpha = _lerp(ur[:, 4], c.source_mag_range), _lerp(ur[:, 5], (-1.0, 0.5))
        m = 2 + (ur[:, 6] * 4).long().clamp(max=3)
        phase, amp = ur[:, 7] * 2 * math.pi, _lerp(ur[:, 8], (0.3, 0.9))
        cp, sp = torch.cos(pa), torch.sin(pa)
        du = self._affine(self._affine_plan(cp, sp, -(cp * x0 + sp * y0)))
        dv = self._affine(self._affine_plan(-sp / q, cp / q, (sp * x0 - cp * y0) / q))
        radius, width, amp, m, phase = (self._b(t) for t in (radius, width, amp, m, phase))
        r = torch.sqrt(du * du + dv * dv)
        theta = torch.atan2(dv, du)
        sb = torch.exp((-0.5 * ((r - radius) / width) ** 2).clamp_min_(self._exp_floor)) * \
            (1 + amp * torch.cos(m * theta + phase))
        t = self._bin(sb)
        t = t / t.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
        flux = (c.counts(mag)[:, None] * c.colour(alpha)).to(dt) * self.zp_factor
        return flux[:, :, None, None] * t[:, None]

    def _companions(self, uc: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        """1-3 unlensed blue Sérsic galaxies at 0.8-3.0" from the lens-light centre."""
        c, dt = self.cfg, self.dtype
        n = 1 + (uc[:, 0] * MAX_COMPANIONS).long().clamp(max=MAX_COMPANIONS - 1)
        out = torch.zeros(len(uc), c.n_bands, c.image_size, c.image_size, dtype=dt, device=self.device)
        for k in range(MAX_COMPANIONS):
            on = torch.nonzero(k < n).flatten()
            if not len(on):
                continue
            p = uc[on, 1 + 8 * k:1 + 8 * (k + 1)]
            r, ang = _lerp(p[:, 0], (0.8, 3.0)), 2 * math.pi * p[:, 1]
            mag = _lerp(p[:, 2], c.source_mag_range)
            t = self._sersic_eval(self._sersic_plan(_lerp(p[:, 3], c.source_re_range), _lerp(p[:, 4], (0.5, 3.0)),
                                                    _lerp(p[:, 5], (0.3, 1.0)), p[:, 6] * math.pi,
                                                    x0[on] + r * torch.cos(ang), y0[on] + r * torch.sin(ang)))
            flux = (c.counts(mag)[:, None] * c.colour(_lerp(p[:, 7], (-1.0, 0.5)))).to(dt) * self.zp_factor
            out[on] += flux[:, :, None, None] * t[:, None]
        return out

    def _morphology_galaxy(self, cls: str, seed: int) -> torch.Tensor:
        """Noiseless, unconvolved ``spiral``/``edge_on`` galaxy from the morphology simulator, in
        this survey's bands and per-band zero points."""
        from cosmobench.sim.galaxies import Observation, simulate_galaxy
        c = self.cfg
        if self._gal_obs is None:
            self._gal_obs = Observation(image_size=c.image_size, n_bands=c.n_bands, pixel_scale=c.pixel_scale,
                                        psf="gaussian", psf_fwhm=max(c.psf_fwhm),
                                        zero_point=c.zero_point[c.ref_band], mag_range=c.lens_mag_range,
                                        oversample=c.oversample)
        rng = np.random.default_rng([seed, 7])
        img, _ = simulate_galaxy(rng, cls, self._gal_obs, noise=False, psf=False)
        return torch.as_tensor(img, dtype=self.dtype, device=self.device) * self.zp_factor.view(-1, 1, 1)


__all__ = ["sie_deflection", "shear_deflection", "ray_trace", "LensSimConfig", "LensSimulator",
           "HARD_NEGATIVES", "KINDS", "sample_keys"]
