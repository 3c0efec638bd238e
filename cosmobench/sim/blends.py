"""Multi-band scenes of blended galaxies with full per-galaxy truth (deblending task).

Model (units and conventions of :mod:`cosmobench.sim.profiles`: pixel centres at integer
coordinates, 0-based, fluxes in counts with ``m = zero_point - 2.5 log10(counts)``):

* **Survey** (:class:`cosmobench.sim.galaxies.Observation`, inherited): ``n_bands`` bands evenly
  spaced in wavelength from 480 to 920 nm, pixel scale ``pixel_scale`` arcsec/px, one PSF per
  band (Moffat or Gaussian, FWHM ``psf_fwhm`` arcsec at the middle band, ``∝ lambda^-0.2``),
  uniform sky ``sky_mag`` mag/arcsec², read noise, gain.
* **Galaxies**: ``n ~ U{n_min..n_max}`` per scene; each is a Sérsic bulge + exponential disk
  (both :func:`~cosmobench.sim.profiles.sersic`) sharing a centre and position angle
  (``pa ~ U(0, pi)``):

  - total magnitude in the middle band ``~ U(mag_range)``;
  - bulge-to-total flux ratio (middle band) ``B/T ~ U(bt_range)``;
  - disk half-light radius ``r_d ~ U(disk_re_range)`` arcsec, axis ratio from a random
    inclination (``cos i ~ U(0, 1)``, intrinsic thickness 0.15,
    :func:`~cosmobench.sim.profiles.inclination_axis_ratio`);
  - bulge Sérsic index ``n ~ U(2, 4.5)``, half-light radius ``U(0.15, 0.5) r_d``, axis ratio
    ``U(0.6, 1)``;
  - colours: power-law SEDs ``flux_b ∝ (lambda_b / lambda_mid)^alpha`` (``Observation.colour``)
    with a red bulge (``alpha ~ U(0.6, 1.8)``) and a blue disk (``alpha ~ U(-1.2, 0.4)``), drawn
    per galaxy, so bulge and disk differ in colour and so do galaxies.

* **Positions**: the first galaxy is uniform in the stamp (``margin`` px from the edges); each
  further one is, with probability ``overlap_fraction``, placed in *strong overlap* with a
  random earlier galaxy ``j``: at a distance ``U(0.4, 1.0) (h_i + h_j)`` (at least 1 px) in a
  random direction, where ``h = sqrt(r_half^2 + (FWHM/2)^2)`` is an approximate PSF-convolved
  half-light radius (``r_half`` = B/T-weighted bulge/disk half-light radius, px); otherwise
  uniform in the stamp (chance overlaps happen too).

* **Rendering**: each component is integrated on an ``oversample`` sub-pixel grid
  (:func:`~cosmobench.sim.profiles.render`, cusp pixels of the bulge refined), scaled by its
  band fluxes, summed and convolved with the band's PSF (unit sum; linear, zero-padded FFT
  convolution). Flux outside the stamp is lost, so the *in-stamp* flux is the truth that an
  image-based deblender can recover.
* **Noise**: the noiseless scene (the sum of the isolated galaxy images) plus sky gets Poisson
  noise and Gaussian read noise, then the sky is subtracted
  (:func:`~cosmobench.sim.profiles.add_noise`).

Truth kept per galaxy (:class:`Scene`): noiseless isolated image per band, centroid
(the profile centre, px), in-stamp flux per band (``flux``, = the isolated image's sum), the
analytic total flux (``flux_total``) and all drawn parameters; measurements that depend on an
evaluation protocol (blendedness, :func:`blendedness` at a footprint threshold
:func:`footprint_threshold`; ellipticity) are made from the isolated images. The scene depends
only on the state of the random generator passed in (same seed -> same scene).

Settings and simulator: :class:`BlendSetup` (the survey's settings are
:class:`~cosmobench.sim.galaxies.Observation`'s).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cosmobench.sim import profiles as P
from cosmobench.settings import setting
from cosmobench.sim.galaxies import Observation


#: smallest stamp of a blend scene (px)
MIN_IMAGE_SIZE = 16


@dataclass
class BlendSetup(Observation):
    """The blend-scene simulator: the survey (:class:`Observation`, whose ``mag_range`` is the
    galaxies' middle-band total-magnitude range) and the galaxy population and scene layout
    (module docstring); ``band_sigma`` is the per-band noise of an empty pixel (counts). Raises
    ValueError for settings that do not fit together. The deblending task's ``data`` node
    embeds these settings."""

    n_min: int = setting(1, "positive int", help="fewest galaxies per scene")
    n_max: int = setting(4, "positive int", help="most galaxies per scene")
    overlap_fraction: float = setting(0.5, "probability", help="P(a further galaxy is placed in strong overlap)")
    disk_re_range: list[float] = setting([0.3, 1.2], "list[positive float]", unit="arcsec",
                                         help="[low, high] of the disk half-light radius (uniform)")
    bt_range: list[float] = setting([0.0, 0.6], "list[probability]",
                                    help="[low, high] of the middle-band bulge-to-total flux ratio (uniform)")
    margin: float = setting(4.0, "non-negative float", unit="px", help="centroids this far from the stamp edges")
    band_sigma: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE} px for blend scenes, got {self.image_size}")
        for key in ("disk_re_range", "bt_range"):
            v = getattr(self, key)
            if len(v) != 2 or not v[0] <= v[1]:
                raise ValueError(f"{key} must be [low, high] with low <= high, got {list(v)}")
        if not 1 <= self.n_min <= self.n_max:
            raise ValueError(f"need 1 <= n_min <= n_max, got n_min={self.n_min}, n_max={self.n_max}")
        if not 0.0 <= self.overlap_fraction <= 1.0:   # for direct callers (a config is checked by its constraint)
            raise ValueError(f"overlap_fraction must be in [0, 1], got {self.overlap_fraction}")
        if 2 * self.margin >= self.image_size - 1:
            raise ValueError(f"margin={self.margin} px leaves no room in a {self.image_size} px stamp")
        self.band_sigma = P.noise_sigma(self.sky, self.read_noise, self.gain)  # (C,) counts

    @property
    def background_variance(self) -> np.ndarray:
        """Per-band variance (counts²) of an empty pixel, shape ``(n_bands,)``."""
        return np.asarray(self.band_sigma, dtype=float) ** 2


@dataclass
class Scene:
    """One simulated scene of ``N`` galaxies in ``C`` bands on an ``H x W`` stamp.

    Attributes:
        image: ``(C, H, W)`` float32 noisy, sky-subtracted image (counts).
        noiseless: ``(C, H, W)`` float64, the sum of ``isolated`` over galaxies.
        isolated: ``(N, C, H, W)`` float64 noiseless isolated (PSF-convolved) galaxy images.
        xy: ``(N, 2)`` true centroids ``(x, y)`` in px (0-based pixel centres).
        flux: ``(N, C)`` in-stamp flux per band (counts) = ``isolated.sum((-2, -1))``.
        flux_total: ``(N, C)`` analytic total flux per band (counts).
        variance: ``(C,)`` background variance per band (counts²).
        params: per-galaxy dicts of the drawn parameters.
    """

    image: np.ndarray
    noiseless: np.ndarray
    isolated: np.ndarray
    xy: np.ndarray
    flux: np.ndarray
    flux_total: np.ndarray
    variance: np.ndarray
    params: list[dict] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.xy)


def blendedness(isolated: np.ndarray, threshold: float) -> np.ndarray:
    """Blendedness of each galaxy: the fraction of the (band-summed, noiseless) flux inside its
    footprint that comes from its neighbours,
    ``beta_i = sum_{p in F_i} sum_{j != i} I_j(p) / sum_{p in F_i} sum_j I_j(p)``,
    with the footprint ``F_i`` = pixels where galaxy ``i``'s own band-summed image exceeds
    ``threshold`` (counts; the brightest pixel if none does). ``isolated``: ``(N, C, H, W)``.
    0 for an isolated galaxy, -> 1 for one buried under a brighter neighbour."""
    own = np.asarray(isolated, dtype=float).sum(axis=1)       # (N, H, W)
    total = own.sum(axis=0)
    out = np.zeros(len(own))
    for i, img in enumerate(own):
        fp = img > threshold
        if not fp.any():
            fp = img == img.max()
        tot = total[fp].sum()
        out[i] = float((tot - img[fp].sum()) / tot) if tot > 0 else 0.0
    return out


def footprint_threshold(band_sigma: np.ndarray, nsigma: float) -> float:
    """Footprint threshold (counts) of :func:`blendedness`: ``nsigma`` times the noise of the
    band-summed image, ``sqrt(sum_b sigma_b^2)`` (``band_sigma``: ``(C,)`` per-band noise, counts)."""
    return nsigma * float(np.sqrt((np.asarray(band_sigma, dtype=float) ** 2).sum()))


def _draw_galaxy(rng: np.random.Generator, setup: BlendSetup) -> dict:
    px = 1.0 / setup.pixel_scale
    r_d = rng.uniform(*setup.disk_re_range) * px
    cos_i = rng.uniform(0.0, 1.0)
    return {
        "mag": float(rng.uniform(*setup.mag_range)),
        "bulge_to_total": float(rng.uniform(*setup.bt_range)),
        "disk_re_px": float(r_d),
        "disk_q": float(P.inclination_axis_ratio(np.arccos(cos_i), 0.15)),
        "bulge_n": float(rng.uniform(2.0, 4.5)),
        "bulge_re_px": float(rng.uniform(0.15, 0.5) * r_d),
        "bulge_q": float(rng.uniform(0.6, 1.0)),
        "pa": float(rng.uniform(0.0, np.pi)),
        "alpha_bulge": float(rng.uniform(0.6, 1.8)),
        "alpha_disk": float(rng.uniform(-1.2, 0.4)),
    }


def _half_size(g: dict, fwhm_px: float) -> float:
    bt = g["bulge_to_total"]
    r_half = bt * g["bulge_re_px"] + (1 - bt) * g["disk_re_px"]
    return float(np.hypot(r_half, fwhm_px / 2))


def _place(rng: np.random.Generator, setup: BlendSetup, galaxies: list[dict], g: dict) -> tuple[float, float, bool]:
    """Centre of a new galaxy ``g`` given the earlier ``galaxies`` (see module docstring)."""
    s, m = setup.image_size, setup.margin
    lo, hi = m, s - 1 - m
    fwhm = float(np.max(setup.psf_fwhm_px))
    if galaxies and rng.random() < setup.overlap_fraction:
        j = galaxies[int(rng.integers(len(galaxies)))]
        for _ in range(50):
            d = max(rng.uniform(0.4, 1.0) * (_half_size(g, fwhm) + _half_size(j, fwhm)), 1.0)
            phi = rng.uniform(0.0, 2 * np.pi)
            x, y = j["x"] + d * np.cos(phi), j["y"] + d * np.sin(phi)
            if lo <= x <= hi and lo <= y <= hi:
                return float(x), float(y), True
    x, y = rng.uniform(lo, hi, size=2)
    return float(x), float(y), False


def render_galaxy(g: dict, setup: BlendSetup) -> tuple[np.ndarray, np.ndarray]:
    """Noiseless PSF-convolved ``(C, H, W)`` image of galaxy ``g`` (a dict from the scene's
    ``params``, with centre ``x``, ``y``) and its analytic total flux per band ``(C,)``."""
    shape = (setup.image_size, setup.image_size)
    x0, y0, pa = g["x"], g["y"], g["pa"]
    bulge = P.render(lambda x, y: P.sersic(x, y, 1.0, g["bulge_re_px"], g["bulge_n"], g["bulge_q"], pa, x0, y0),
                     shape, setup.oversample, refine_at=(x0, y0))
    disk = P.render(lambda x, y: P.sersic(x, y, 1.0, g["disk_re_px"], 1.0, g["disk_q"], pa, x0, y0),
                    shape, setup.oversample)
    total = float(P.mag_to_counts(g["mag"], setup.zero_point))
    bt = g["bulge_to_total"]
    f_bulge = bt * total * setup.colour(g["alpha_bulge"])          # (C,) counts
    f_disk = (1 - bt) * total * setup.colour(g["alpha_disk"])
    img = f_bulge[:, None, None] * bulge[None] + f_disk[:, None, None] * disk[None]
    img = P.fft_convolve(img, np.stack(setup.psfs))
    return np.clip(img, 0.0, None), f_bulge + f_disk   # clip FFT round-off (~1e-12) below zero


def simulate_scene(rng: np.random.Generator, setup: BlendSetup, noise: bool = True, draw=None,
                   render=None) -> Scene:
    """One scene (see module docstring); depends only on the state of ``rng``.
    ``noise=False`` returns the noiseless scene as ``image`` (for tests). ``draw(rng, setup)``
    (a galaxy's parameters) and ``render(galaxy)`` (its isolated image and total flux per band)
    default to this simulator's; an external renderer (GalSim) passes its own and keeps the
    count, placement, noise and truth of this one."""
    draw = draw or _draw_galaxy
    render = render or (lambda g: render_galaxy(g, setup))
    n = int(rng.integers(setup.n_min, setup.n_max + 1))
    galaxies: list[dict] = []
    for _ in range(n):
        g = draw(rng, setup)
        g["x"], g["y"], g["placed_overlapping"] = _place(rng, setup, galaxies, g)
        galaxies.append(g)
    rendered = [render(g) for g in galaxies]
    isolated = np.stack([r[0] for r in rendered])
    flux_total = np.stack([r[1] for r in rendered])
    noiseless = isolated.sum(axis=0)
    image = P.add_noise(rng, noiseless, setup.sky[:, None, None], setup.read_noise, setup.gain) if noise else noiseless
    xy = np.array([[g["x"], g["y"]] for g in galaxies])
    return Scene(image=image.astype(np.float32), noiseless=noiseless, isolated=isolated, xy=xy,
                 flux=isolated.sum(axis=(-2, -1)), flux_total=flux_total, variance=setup.background_variance,
                 params=galaxies)


__all__ = ["BlendSetup", "Scene", "footprint_threshold", "blendedness", "render_galaxy", "simulate_scene"]
