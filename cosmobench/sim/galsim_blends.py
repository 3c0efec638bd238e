"""An external blend renderer: deblending scenes drawn by GalSim (the ``peers`` extra; Rowe et
al. 2015) with galaxy profiles that :mod:`cosmobench.sim.blends` does not make, observed through
**our** survey and scene layout (:class:`~cosmobench.sim.blends.BlendSetup`). It is the
``data.source=galsim`` source of ``deblending`` (data set ``galsim-blends``): a test of whether a
deblender trained on our simulator has learnt to deblend galaxies or our simulator's profiles.

Units and conventions as :mod:`cosmobench.sim.blends`: fluxes in counts with
``m = data.zero_point - 2.5 log10(counts)``, sizes in arcsec (GalSim's unit; ``data.pixel_scale``
arcsec/px), positions in px with pixel centres at 0-based integer coordinates (x = column,
y = row); GalSim's ``offset`` is taken from the stamp centre ``(S - 1) / 2``.

Same as ours (the run's ``data`` settings): bands and their wavelengths, pixel scale, stamp size,
zero point, sky, read noise, gain; the number of galaxies ``U{n_min..n_max}``, their placement
(:func:`cosmobench.sim.blends._place`: ``overlap_fraction`` of the further galaxies in strong
overlap with an earlier one, ``margin``), middle-band total magnitude ``U(mag_range)``, B/T
``U(bt_range)``, disk half-light radius ``U(disk_re_range)``, power-law colours
``(lambda / lambda_mid)^alpha`` (``Observation.colour``); the noise
(:func:`cosmobench.sim.profiles.add_noise`: Poisson on image + sky, Gaussian read noise, sky
subtracted). The PSF of each band is GalSim's own ``Moffat`` (``data.moffat_beta``) or
``Gaussian`` of the same per-band FWHM (``data.psf_fwhm`` at the middle band, ``∝ lambda^-0.2``);
ours is that profile integrated over pixels and truncated at 3 FWHM.

What differs (GalSim profiles, drawn with its exact Fourier-space convolution and pixel
response; ``data.oversample`` is not used):

* bulge: ``DeVaucouleurs`` (Sérsic n = 4; ours ``n ~ U(2, 4.5)``), half-light radius
  ``U(0.1, 0.4) r_d``, axis ratio ``U(0.6, 1)`` and its **own** position angle (ours shares the
  disk's); red, ``alpha ~ U(0.8, 2.0)``;
* disk: ``Exponential`` sheared by a reduced shear ``g`` with components ``N(0, 0.3)`` (``|g|``
  capped at 0.7; ours: an inclined thick disk); ``alpha ~ U(-0.8, 0.4)``;
* star-forming knots: ``RandomKnots`` (``U{10..60}`` point sources drawn from the disk's
  profile, half-light radius ``r_d``, sheared like the disk) holding a fraction ``U(0.1, 0.5)``
  of the disk's middle-band light, blue (``alpha ~ U(-2.5, -1.2)``: brightest in the bluest
  band). Ours has no knots.

Truth (:class:`cosmobench.sim.blends.Scene`, as ours): noiseless isolated PSF-convolved image per
galaxy and band, centroid (the profile centre, px), in-stamp flux per band (the isolated image's
sum; light outside the stamp is lost as in ours), analytic total flux (``flux_total``) and the
drawn parameters (``params``: sizes in arcsec, the components' reduced shears ``g1, g2``).
Blendedness and ellipticity are measured from the isolated images by the task, with the same
functions as for our scenes (:func:`cosmobench.sim.blends.blendedness`).

Scene ``i`` of split ``s`` is a pure function of ``(seed, s, i)``
(:func:`cosmobench.datamodule.sample_rng`; the knots' GalSim deviate is seeded from it). GalSim
draws one galaxy and band at a time, so :func:`render_cached` stores the
rendered scenes on disk in blocks of :data:`BLOCK`, keyed by the settings, split, seed and GalSim
version (a block is extended when a larger ``n`` asks for more of it).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np

from cosmobench.errors import ConfigError
from cosmobench.sim import profiles as P
from cosmobench.sim.blends import BlendSetup, Scene, simulate_scene
from cosmobench.sim.render_cache import cached_blocks

#: bump when the rendering changes: old cache blocks are then not reused
VERSION = 1
#: scenes per cache file
BLOCK = 64
INSTALL_HINT = "pip install .[peers]"
#: per-galaxy parameters kept in the rendered arrays (``params_<name>``)
PARAMS = ("mag", "bulge_to_total", "knot_fraction", "n_knots", "disk_hlr", "bulge_hlr", "disk_g1", "disk_g2",
          "bulge_g1", "bulge_g2", "placed_overlapping")
#: rendered arrays with one row per galaxy (the others have one row per scene)
PER_GALAXY = ("isolated", "xy", "flux", "flux_total") + tuple(f"params_{k}" for k in PARAMS)
#: settings of BlendSetup that do not change GalSim's images (left out of the cache key)
_NOT_IN_KEY = ("oversample",)


def require_galsim() -> None:
    """A one-line ConfigError (exit 2) naming the install command when GalSim is missing."""
    if importlib.util.find_spec("galsim") is None:
        raise ConfigError(f"data.source=galsim needs the package galsim, which is not installed: "
                          f"{INSTALL_HINT} (the 'peers' extra)")


def _shear(g: float, angle: float) -> tuple[float, float]:
    return g * math.cos(2 * angle), g * math.sin(2 * angle)


def draw_galaxy(rng: np.random.Generator, setup: BlendSetup) -> dict:
    """The parameters of one galaxy (module docstring; sizes in arcsec, ``*_px`` in px for the
    placement of :func:`~cosmobench.sim.blends._place`)."""
    u = rng.uniform
    r_d = u(*setup.disk_re_range)
    g1, g2 = rng.normal(0.0, 0.3, 2)
    g = math.hypot(g1, g2)
    if g > 0.7:
        g1, g2 = g1 * 0.7 / g, g2 * 0.7 / g
    q_b = u(0.6, 1.0)
    b1, b2 = _shear((1 - q_b) / (1 + q_b), u(0.0, math.pi))
    r_b = u(0.1, 0.4) * r_d
    out = {"mag": u(*setup.mag_range), "bulge_to_total": u(*setup.bt_range), "knot_fraction": u(0.1, 0.5),
           "n_knots": int(rng.integers(10, 61)), "disk_hlr": r_d, "bulge_hlr": r_b, "disk_g1": float(g1),
           "disk_g2": float(g2), "bulge_g1": b1, "bulge_g2": b2, "alpha_bulge": u(0.8, 2.0),
           "alpha_disk": u(-0.8, 0.4), "alpha_knots": u(-2.5, -1.2), "knot_seed": int(rng.integers(1, 2 ** 31))}
    out.update(disk_re_px=r_d / setup.pixel_scale, bulge_re_px=r_b / setup.pixel_scale)
    return {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in out.items()}


class GalSimBlendRenderer:
    """Renders scenes of the external set for the survey and layout ``setup`` (module docstring)."""

    def __init__(self, setup: BlendSetup):
        require_galsim()
        import galsim
        self.galsim, self.setup = galsim, setup
        fwhm = np.asarray(setup.psf_fwhm_px) * setup.pixel_scale  # arcsec per band
        self.psfs = [galsim.Moffat(beta=setup.moffat_beta, fwhm=float(f)) if setup.psf == "moffat"
                     else galsim.Gaussian(fwhm=float(f)) for f in fwhm]

    def band_fluxes(self, g: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts per band ``(C,)`` of the bulge, the smooth disk and the knots of galaxy ``g``."""
        s = self.setup
        total = float(P.mag_to_counts(g["mag"], s.zero_point))
        bt, kf = g["bulge_to_total"], g["knot_fraction"]
        return (bt * total * s.colour(g["alpha_bulge"]), (1 - bt) * (1 - kf) * total * s.colour(g["alpha_disk"]),
                (1 - bt) * kf * total * s.colour(g["alpha_knots"]))

    def render_galaxy(self, g: dict) -> tuple[np.ndarray, np.ndarray]:
        """Noiseless PSF-convolved ``(C, H, W)`` image of galaxy ``g`` (with centre ``x``, ``y``
        in px) and its analytic total flux per band ``(C,)``."""
        gs, s = self.galsim, self.setup
        bulge = gs.DeVaucouleurs(half_light_radius=g["bulge_hlr"]).shear(g1=g["bulge_g1"], g2=g["bulge_g2"])
        disk = gs.Exponential(half_light_radius=g["disk_hlr"]).shear(g1=g["disk_g1"], g2=g["disk_g2"])
        knots = gs.RandomKnots(int(g["n_knots"]), half_light_radius=g["disk_hlr"], flux=1.0,
                               rng=gs.BaseDeviate(int(g["knot_seed"]))).shear(g1=g["disk_g1"], g2=g["disk_g2"])
        f_b, f_d, f_k = self.band_fluxes(g)
        c = (s.image_size - 1) / 2
        img = np.empty((s.n_bands, s.image_size, s.image_size))
        for b, psf in enumerate(self.psfs):
            obj = gs.Convolve(gs.Add([bulge * f_b[b], disk * f_d[b], knots * f_k[b]]), psf)
            img[b] = obj.drawImage(nx=s.image_size, ny=s.image_size, scale=s.pixel_scale,
                                   offset=(g["x"] - c, g["y"] - c)).array
        return np.clip(img, 0.0, None), f_b + f_d + f_k   # clip FFT round-off below zero

    def scene(self, rng: np.random.Generator, noise: bool = True) -> Scene:
        """One scene; depends only on the state of ``rng``. ``noise=False``: the noiseless scene
        as ``image`` (for tests)."""
        return simulate_scene(rng, self.setup, noise, draw=draw_galaxy, render=self.render_galaxy)

    def render(self, indices, split: str, seed: int) -> dict[str, np.ndarray]:
        """Scenes ``indices`` of ``split`` as flat arrays: per scene ``image`` ``(B, C, H, W)``
        float32 (noisy, sky-subtracted counts) and ``n_gal`` ``(B,)``; per galaxy (scenes in
        order) ``isolated`` ``(N, C, H, W)`` float32, ``xy`` ``(N, 2)``, ``flux`` and
        ``flux_total`` ``(N, C)``, ``params_<name>`` ``(N,)`` for :data:`PARAMS`."""
        from cosmobench.datamodule import sample_rng
        s = self.setup
        scenes = [self.scene(sample_rng(seed, split, int(i))) for i in indices]
        shape = (s.n_bands, s.image_size, s.image_size)
        gal = [g for sc in scenes for g in sc.params]

        def cat(key, width):
            return np.concatenate([getattr(sc, key) for sc in scenes]) if scenes else np.zeros((0,) + width)
        out = {"image": np.stack([sc.image for sc in scenes]) if scenes else np.zeros((0,) + shape, np.float32),
               "n_gal": np.array([sc.n for sc in scenes], np.int64),
               "isolated": cat("isolated", shape).astype(np.float32), "xy": cat("xy", (2,)),
               "flux": cat("flux", (s.n_bands,)), "flux_total": cat("flux_total", (s.n_bands,))}
        for k in PARAMS:
            out[f"params_{k}"] = np.array([float(g[k]) for g in gal], np.float64)
        return out


def _head(part: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The first ``k`` scenes of a flat block (per-galaxy rows up to their galaxies)."""
    n_gal = int(part["n_gal"][:k].sum())
    return {key: v[:n_gal] if key in PER_GALAXY else v[:k] for key, v in part.items()}


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Flat blocks of consecutive scenes, joined."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def cache_key(setup: BlendSetup, split: str, seed: int) -> str:
    """Hash of what the rendered scenes depend on: the renderer version, GalSim's version, the
    survey and layout settings (not ``oversample``), the split and the seed."""
    import galsim
    settings = {f.name: getattr(setup, f.name) for f in fields(setup) if f.init and f.name not in _NOT_IN_KEY}
    text = json.dumps({"v": VERSION, "galsim": galsim.__version__, "cfg": settings, "split": split,
                       "seed": int(seed)}, sort_keys=True, default=float)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_cached(setup: BlendSetup, split: str, seed: int, n: int, cache_dir: Path | None,
                  progress=None) -> dict[str, np.ndarray]:
    """Scenes ``0 .. n-1`` of ``split`` (as :meth:`GalSimBlendRenderer.render`), read from
    ``cache_dir/<key>/block_<b>.npz`` where present and rendered (and written, atomically) where
    not; ``cache_dir=None``: no cache. ``progress(iterable, total, desc)`` wraps the block loop."""
    require_galsim()
    renderer = None

    def render(indices: range) -> dict[str, np.ndarray]:
        nonlocal renderer
        renderer = renderer or GalSimBlendRenderer(setup)
        return renderer.render(indices, split, seed)

    folder = Path(cache_dir) / cache_key(setup, split, seed) if cache_dir is not None else None
    return cached_blocks(render, n, folder, BLOCK, count=lambda a: len(a["n_gal"]), head=_head, concat=concat,
                         desc=f"rendering {split} scenes with GalSim", progress=progress)


__all__ = ["GalSimBlendRenderer", "draw_galaxy", "render_cached", "require_galsim", "cache_key", "concat",
           "BLOCK", "INSTALL_HINT", "PARAMS", "PER_GALAXY"]
