"""An external lens simulator: lens / non-lens cutouts rendered by lenstronomy (the ``peers``
extra; Birrer & Amara 2018) with mass and light models that :mod:`cosmobench.sim.lensing` does
not use, observed through **our** survey (:class:`~cosmobench.sim.lensing.LensSimConfig`: bands,
pixel scale, stamp size, zero points, sky, PSF, read noise, gain, super-sampling). It is the
``data.source=lenstronomy`` source of ``lensfinding`` (data set ``lenstronomy-lenses``): a test of
whether a finder trained on our simulator has learnt lenses or our simulator's quirks.

Models (lenstronomy names; angles in arcsec from the stamp centre, fluxes in counts):

* mass: elliptical power law ``EPL`` (Tessore & Metcalf 2015), slope ``gamma ~ U(1.8, 2.2)``
  (ours: an isothermal SIE, gamma = 2), ``theta_E ~ U(data.theta_e_range)``, axis ratio
  ``q_m ~ U(0.5, 0.95)``, PA uniform, + external ``SHEAR`` (each component ``N(0, data.shear_sigma)``);
* lens light: bulge + disk, two ``SERSIC_ELLIPSE`` with ``n = 4`` and ``n = 1`` (ours: one Sérsic
  with ``n ~ U(2.5, 5.5)``), sharing the centre (``U(-0.5, 0.5)`` px) and the mass PA (+-10 deg);
  bulge ``R ~ U(0.3, 1.0)"``, disk ``R ~ U(1.0, 2.5)"``, bulge-to-total ``U(0.3, 0.8)`` of a total
  reference-band magnitude ``~ U(data.lens_mag_range)``; a red bulge (``alpha ~ U(2.5, 3.5)``) and a
  bluer disk (``alpha ~ U(1, 2)``), colours ``f_nu ∝ lambda^alpha`` as in our simulator;
* source (lenses): one ``SERSIC_ELLIPSE`` (no star-forming clumps), ``n ~ U(0.7, 2.5)``,
  ``R ~ U(data.source_re_range)``, ``q ~ U(0.4, 0.9)``, unlensed magnitude ``~
  U(data.source_mag_range)``, ``alpha ~ U(-1.5, 0.5)``, uniform in area within ``0.8 theta_E`` of
  the lens centre;
* non-lenses (a fraction ``1 - data.lens_fraction``): the same lens galaxies without a source
  (no hard negatives).

Each band: one lenstronomy ``ImageModel`` (super-sampling ``data.oversample``, convolution at
pixel resolution with our pixelised PSF of that band, ``PSF(psf_type="PIXEL")``), then our noise
(:func:`cosmobench.sim.profiles.poisson_gaussian_noise`: sky + source Poisson in its Gaussian
limit, read noise, sky subtracted). Sample ``i`` of split ``s`` is a pure function of
``(seed, s, i)`` (:func:`cosmobench.datamodule.sample_rng`). lenstronomy renders one lens at a
time in numpy, so :func:`render_cached` stores the rendered samples on disk in blocks of
:data:`BLOCK`, keyed by the settings, split and seed (a block is extended when a larger ``n``
asks for more of it).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cosmobench.errors import ConfigError
from cosmobench.sim import profiles as P
from cosmobench.sim.lensing import LensSimConfig
from cosmobench.sim.render_cache import cached_blocks

#: bump when the rendering changes: old cache blocks are then not reused
VERSION = 1
#: samples per cache file
BLOCK = 64
TRUTH = ("theta_e", "source_mag", "magnification", "kind")
INSTALL_HINT = "pip install .[peers]"

#: settings of LensSimConfig that the rendered images depend on (cache key)
_KEY_FIELDS = ("image_size", "n_bands", "pixel_scale", "zero_point", "sky_mag", "psf", "psf_fwhm", "moffat_beta",
               "read_noise", "gain", "oversample", "lens_fraction", "theta_e_range", "lens_mag_range",
               "source_mag_range", "source_re_range", "shear_sigma")


def require_lenstronomy() -> None:
    """A one-line ConfigError (exit 2) naming the install command when lenstronomy is missing."""
    import importlib.util
    if importlib.util.find_spec("lenstronomy") is None:
        raise ConfigError(f"data.source=lenstronomy needs the package lenstronomy, which is not installed: "
                          f"{INSTALL_HINT} (the 'peers' extra)")


class LenstronomyRenderer:
    """Renders samples of the external set for the survey ``cfg`` (see the module docstring)."""

    def __init__(self, cfg: LensSimConfig):
        require_lenstronomy()
        from lenstronomy.Data.imaging_data import ImageData
        from lenstronomy.Data.psf import PSF
        from lenstronomy.ImSim.image_model import ImageModel
        from lenstronomy.LensModel.lens_model import LensModel
        from lenstronomy.LightModel.light_model import LightModel
        from lenstronomy.Util import simulation_util

        self.cfg = c = cfg
        kw_data = simulation_util.data_configure_simple(c.image_size, c.pixel_scale, exposure_time=1.0,
                                                        background_rms=1.0)
        lens, self.lens_light, self.source = LensModel(["EPL", "SHEAR"]), LightModel(["SERSIC_ELLIPSE"] * 2), \
            LightModel(["SERSIC_ELLIPSE"])
        numerics = {"supersampling_factor": int(c.oversample), "supersampling_convolution": False}
        self.models = [ImageModel(ImageData(**kw_data), PSF(psf_type="PIXEL", kernel_point_source=k), lens,
                                  self.source, self.lens_light, kwargs_numerics=numerics)
                       for k in c.psf_kernels()]
        self.sky = c.sky_counts()[:, None, None]
        self.zp_factor = c.band_zp_factor

    def _flux(self, mag: float, alpha: float) -> np.ndarray:
        """Counts per band ``(C,)`` of reference-band magnitude ``mag`` and colour ``alpha``."""
        c = self.cfg
        colour = (c.wavelengths / c.wavelengths[c.ref_band]) ** alpha
        return float(P.mag_to_counts(mag, c.zero_point[c.ref_band])) * colour * self.zp_factor

    @staticmethod
    def _ellipticity(q: float, phi: float) -> tuple[float, float]:
        from lenstronomy.Util import param_util
        return param_util.phi_q2_ellipticity(phi, q)

    def _unit_amp(self, kw: dict) -> float:
        """lenstronomy amplitude of one Sérsic component per count of total flux."""
        return 1.0 / float(self.source.total_flux([{**kw, "amp": 1.0}])[0])

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
        """One cutout ``(C, H, W)`` float32 (counts, sky-subtracted) and its truth (``label``,
        ``kind`` 0 lens / 1 non-lens, ``theta_e`` arcsec, unlensed ``source_mag``, ``magnification``
        of the source in the reference band before the PSF; NaN for non-lenses)."""
        c, u = self.cfg, rng.uniform
        label = int(u() < c.lens_fraction)
        cx, cy = (u(-0.5, 0.5, 2) * c.pixel_scale).tolist()
        phi_m, q_m = u(0, math.pi), u(0.5, 0.95)
        theta_e, slope = u(*c.theta_e_range), u(1.8, 2.2)
        g1, g2 = rng.normal(0.0, c.shear_sigma, 2).tolist()
        e1, e2 = self._ellipticity(q_m, phi_m)
        kw_lens = [{"theta_E": theta_e, "gamma": slope, "e1": e1, "e2": e2, "center_x": cx, "center_y": cy},
                   {"gamma1": g1, "gamma2": g2, "ra_0": cx, "dec_0": cy}]
        phi_l = phi_m + math.radians(10.0) * rng.normal()
        q_b, q_d = min(q_m + 0.1, 1.0) * u(0.85, 1.0), q_m * u(0.85, 1.0)
        lens_mag, bt = u(*c.lens_mag_range), u(0.3, 0.8)
        kw_b = {"R_sersic": u(0.3, 1.0), "n_sersic": 4.0, "center_x": cx, "center_y": cy}
        kw_d = {"R_sersic": u(1.0, 2.5), "n_sersic": 1.0, "center_x": cx, "center_y": cy}
        kw_b["e1"], kw_b["e2"] = self._ellipticity(q_b, phi_l)
        kw_d["e1"], kw_d["e2"] = self._ellipticity(q_d, phi_l)
        f_bulge = self._flux(lens_mag - 2.5 * math.log10(bt), u(2.5, 3.5))
        f_disk = self._flux(lens_mag - 2.5 * math.log10(1.0 - bt), u(1.0, 2.0))
        amp_b, amp_d = self._unit_amp(kw_b), self._unit_amp(kw_d)
        # source (drawn for every sample so that a sample's lens does not depend on its label's draws)
        r, ang = 0.8 * theta_e * math.sqrt(u()), u(0, 2 * math.pi)
        kw_s = {"R_sersic": u(*c.source_re_range), "n_sersic": u(0.7, 2.5),
                "center_x": cx + r * math.cos(ang), "center_y": cy + r * math.sin(ang)}
        kw_s["e1"], kw_s["e2"] = self._ellipticity(u(0.4, 0.9), u(0, math.pi))
        src_mag = u(*c.source_mag_range)
        f_src = self._flux(src_mag, u(-1.5, 0.5)) * label
        amp_s = self._unit_amp(kw_s)

        img = np.empty((c.n_bands, c.image_size, c.image_size))
        for b, model in enumerate(self.models):
            kw_ll = [{**kw_b, "amp": f_bulge[b] * amp_b}, {**kw_d, "amp": f_disk[b] * amp_d}]
            kw_src = [{**kw_s, "amp": f_src[b] * amp_s}] if label else None
            img[b] = model.image(kwargs_lens=kw_lens, kwargs_source=kw_src, kwargs_lens_light=kw_ll,
                                 source_add=bool(label), lens_light_add=True)
        magnification = float("nan")
        if label:
            ref = self.models[c.ref_band]
            lensed = ref.image(kwargs_lens=kw_lens, kwargs_source=[{**kw_s, "amp": amp_s}], source_add=True,
                               lens_light_add=False, unconvolved=True)
            magnification = float(lensed.sum())
        z = rng.standard_normal(img.shape)
        noisy = P.poisson_gaussian_noise(np.clip(img, 0.0, None), self.sky, z, c.read_noise, c.gain)
        nan = float("nan")
        truth = {"label": label, "kind": 1 - label, "theta_e": theta_e if label else nan,
                 "source_mag": src_mag if label else nan, "magnification": magnification}
        return noisy.astype(np.float32), truth

    def render(self, indices, split: str, seed: int) -> dict[str, np.ndarray]:
        """Samples ``indices`` of ``split``: ``image`` ``(B, C, H, W)`` float32, ``label``/``kind``
        int64, ``theta_e``/``source_mag``/``magnification`` float32."""
        from cosmobench.datamodule import sample_rng
        images, rows = [], []
        for i in indices:
            img, t = self.sample(sample_rng(seed, split, int(i)))
            images.append(img)
            rows.append(t)
        out = {"image": np.stack(images) if images else
               np.zeros((0, self.cfg.n_bands, self.cfg.image_size, self.cfg.image_size), np.float32)}
        for k in ("label", "kind"):
            out[k] = np.array([t[k] for t in rows], np.int64)
        for k in ("theta_e", "source_mag", "magnification"):
            out[k] = np.array([t[k] for t in rows], np.float32)
        return out


def cache_key(cfg: LensSimConfig, split: str, seed: int) -> str:
    """Hash of what the rendered samples depend on: the renderer version, lenstronomy's version,
    the survey and prior settings, the split and the seed."""
    import lenstronomy
    settings = {k: v for k, v in asdict(cfg).items() if k in _KEY_FIELDS}
    text = json.dumps({"v": VERSION, "lenstronomy": lenstronomy.__version__, "cfg": settings, "split": split,
                       "seed": int(seed)}, sort_keys=True, default=float)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_cached(cfg: LensSimConfig, split: str, seed: int, n: int, cache_dir: Path | None,
                  progress=None) -> dict[str, np.ndarray]:
    """Samples ``0 .. n-1`` of ``split`` (as :meth:`LenstronomyRenderer.render`), read from
    ``cache_dir/<key>/block_<b>.npz`` where present and rendered (and written, atomically) where
    not; ``cache_dir=None``: no cache. ``progress(iterable, total, desc)`` wraps the block loop."""
    require_lenstronomy()
    renderer = None

    def render(indices: range) -> dict[str, np.ndarray]:
        nonlocal renderer
        renderer = renderer or LenstronomyRenderer(cfg)
        return renderer.render(indices, split, seed)

    folder = Path(cache_dir) / cache_key(cfg, split, seed) if cache_dir is not None else None
    return cached_blocks(render, n, folder, BLOCK, count=lambda a: len(a["label"]),
                         head=lambda a, k: {key: v[:k] for key, v in a.items()},
                         concat=lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in parts[0]},
                         desc=f"rendering {split} cutouts with lenstronomy", progress=progress)


__all__ = ["LenstronomyRenderer", "render_cached", "require_lenstronomy", "cache_key", "BLOCK", "INSTALL_HINT"]
