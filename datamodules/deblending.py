"""Datamodule of the ``deblending`` task: multi-band scenes of blended galaxies.

Sources of scenes with truth (deblenders are scored against the truth, which real cutouts do
not have), ``data.source``:

``sim`` (default): :mod:`cosmobench.sim.blends`, settings
:class:`~cosmobench.sim.blends.BlendSetup` (survey: ``data.n_bands`` bands,
``data.image_size``² px at ``data.pixel_scale`` arcsec/px, PSF ``data.psf`` of FWHM
``data.psf_fwhm`` arcsec, sky ``data.sky_mag`` mag/arcsec², zero point ``data.zero_point``,
read noise ``data.read_noise`` e-, gain ``data.gain``; galaxies ``data.n_min``..``data.n_max``
per scene, middle-band magnitude in ``data.mag_range``, a fraction ``data.overlap_fraction`` of
the further galaxies placed in strong overlap). Scene ``i`` of split ``s`` is a pure function
of ``(seed, s, i)``.

``galsim``: an external renderer (:mod:`cosmobench.sim.galsim_blends`, the ``peers`` extra; data
set ``galsim-blends``): scenes drawn by GalSim with profiles ours does not make (de Vaucouleurs
bulge with its own position angle + sheared exponential disk + blue ``RandomKnots``) through the
same survey, galaxy count, placement, magnitude and colour settings, with the same truth.
``data.n_train`` / ``data.n_val`` scenes of the run's seed and a test set of ``data.n_test``
scenes fixed by ``data.render_seed`` (the same for every run seed); a test run renders the test
split only. Rendered scenes are cached under ``$COSMOBENCH_DATA/galsim-blends/renders/``.

Pipeline shared by simulated and real scenes (so both models and training see the same
inputs): with ``data.background=sep`` the image is background-subtracted per band with
``sep.Background`` (``data.back_size`` px mesh; :func:`cosmobench.detection.subtract_background`);
``none`` keeps it as is. Simulated scenes carry the background variance per band as
``variance``.

Real cutouts and detection catalogues, for ``cosmobench predict`` only
(:mod:`cosmobench.datamodules.deblending_cutouts`, which states every rule): scarlet's HSC
layout (``.npz``: ``images`` ``(C, H, W)`` or ``(S, C, H, W)``, ``variance`` or ``weights``,
integer bit-mask ``mask``, ``psfs``, ``filters``, ``catalog``) or FITS planes. In short:

* an integer mask is an HSC/LSST bit-mask plane; a pixel is unusable if a bit of
  ``data.mask_bad_bits`` is set (default ``BAD SAT INTRP CR EDGE NO_DATA``; bit names from the
  file, else ``data.mask_planes``, the ``afw`` base planes); a mask that flags every pixel of a
  scene is an error naming the bits;
* NaN/inf pixels are **masked and logged**: a pixel whose image is NaN or ±inf, or whose
  variance is NaN, +inf or 0, in any band, is unusable like a masked one (value 0, the band's
  median variance, ignored by detection and the fit); the count of non-finite pixels is logged
  as one warning line. A negative variance or a scene without a usable pixel is an error;
* catalogue positions (``data.catalog``: a table with ``data.x_column``/``data.y_column``
  and, for stacks, ``data.scene_column``; or ``npz``: the cutout's own ``catalog`` record
  array) are **rejected** if outside the cutout (``-0.5 <= x < W - 0.5`` after subtracting
  ``data.catalog_origin``), missing or non-numeric, and so is a scene index that is not an
  integer of ``0..S-1`` (fractional ids are not truncated): exit 2, one line naming the file,
  row and column, nothing written;
* ``data.input`` is the cutout predict reads when ``--input`` is not given (a named data set
  fills it: ``data.dataset=hsc-blends``).

Background: survey coadd cutouts (HSC, LSST) are already background-subtracted; predict them
with ``data.background=none`` (``data.dataset=hsc-blends`` sets it; the default ``sep``
re-estimates a ``data.back_size`` px mesh background, which on a small cutout filled by a
large galaxy removes part of its wings; the simulated training scenes are sky-subtracted, so
both settings see the same kind of input). Without variance or weights the per-band
background variance is estimated with SEP (``globalrms²``). The PSFs, if given, become the
detection filter (mean PSF). Filter names become the ``flux_<filter>`` columns of ``predict``.

Items are dicts of tensors: ``image`` ``(C, H, W)``, ``variance`` ``(C, H, W)``, ``mask``
``(H, W)`` bool, ``idx``; simulated items add the truth padded to ``data.n_max`` sources:
``truth_images`` ``(n_max, C, H, W)``, ``truth_xy`` ``(n_max, 2)`` (NaN padding),
``truth_flux`` ``(n_max, C)``, ``n_true``; catalogue items add ``cat_xy`` ``(K, 2)`` (NaN padding) and ``n_cat``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cosmobench.datamodule import BaseDataModule, DataSettings, ExternalRenders, SimSplits, progress, sample_rng
from cosmobench.datamodules.deblending_cutouts import (AFW_MASK_PLANES, BAD_BITS, bad_pixels, catalog_positions,
                                                      mean_psf_kernel, read_cutout)
from cosmobench.detection import subtract_background
from cosmobench.errors import ConfigError
from cosmobench.settings import build, setting
from cosmobench.sim.blends import BlendSetup




@dataclass
class DeblendingData(BlendSetup, SimSplits, DataSettings, ExternalRenders):
    """The ``data`` node: the loaders and split sizes, the simulator (:class:`BlendSetup`),
    the pipeline shared by both models and the real-cutout catalogue (module docstring)."""

    source: str = setting("sim", ["sim", "galsim"],
                          help="scenes with truth to train and test on: our simulator, or GalSim (an external "
                               "renderer, the peers extra)")
    background: str = setting("sep", ["sep", "none"],
                              help="background subtraction of every scene: SEP's mesh estimate, or none")
    back_size: int = setting(64, "int >= 8", unit="px", help="mesh cell size of the SEP background")
    catalog: str | None = setting(None, "str or null",
                                  help="predict: detection catalogue (table file, or npz: the cutout's own) "
                                       "instead of SEP detection")
    x_column: str = setting("x", "str", help="catalogue column of the x position")
    y_column: str = setting("y", "str", help="catalogue column of the y position")
    scene_column: str = setting("scene", "str", help="catalogue column of the scene index (stacks)")
    catalog_origin: int = setting(0, [0, 1], unit="px",
                                  help="pixel coordinate of the first pixel's centre (1: SExtractor/FITS)")
    mask_bad_bits: list[str] = setting(BAD_BITS, "list[str]",
                                       help="predict: bit-mask planes that make a pixel unusable (others are informational)")
    mask_planes: list[str] = setting(AFW_MASK_PLANES, "list[str]",
                                     help="predict: names of the bits of an integer mask without its own plane names")
    input: str | None = setting(None, "str or null",
                                help="predict: the cutout file read when --input is not given (data.dataset fills it)")


class SceneDataset(Dataset):
    """Scenes ``image`` ``(n, C, H, W)`` with ``variance`` per band ``(n, C)`` or per pixel
    ``(n, C, H, W)``, optional ``mask`` ``(n, H, W)``, optional truth (galaxies stored flat,
    ``offsets[i]:offsets[i+1]`` belong to scene ``i``) and optional catalogue positions."""

    def __init__(self, image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None = None,
                 truth: dict[str, np.ndarray] | None = None, n_max: int | None = None,
                 catalog: list[np.ndarray] | None = None, psfs: np.ndarray | None = None):
        self.psfs = psfs  # (C, h, w) PSF images of a real cutout (the detection filter), or None
        self.filters = None  # the cutout's filter names (predict's flux columns), or None
        self.image = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32))
        self.variance = torch.as_tensor(np.ascontiguousarray(variance, dtype=np.float32))
        self.mask = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool))
        self.truth = None if truth is None else {k: torch.as_tensor(np.asarray(v)) for k, v in truth.items()}
        self.n_max = n_max
        self.catalog = catalog
        self.k_max = max((len(c) for c in catalog), default=0) if catalog is not None else 0

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = self.image[i]
        var = self.variance[i]
        if var.ndim == 1:
            var = var[:, None, None].expand_as(img)
        item = {"image": img, "variance": var,
                "mask": self.mask[i] if self.mask is not None else torch.zeros(img.shape[-2:], dtype=torch.bool),
                "idx": torch.tensor(i, dtype=torch.long)}
        if self.truth is not None:
            t = self.truth
            a, b = int(t["offsets"][i]), int(t["offsets"][i + 1])
            n, pad = b - a, self.n_max - (b - a)

            def padded(x: torch.Tensor, fill: float) -> torch.Tensor:
                return torch.cat([x[a:b].float(), torch.full((pad,) + tuple(x.shape[1:]), fill)])

            item.update(truth_images=padded(t["images"], 0.0), truth_xy=padded(t["xy"], float("nan")),
                        truth_flux=padded(t["flux"], float("nan")), n_true=torch.tensor(n))
        if self.catalog is not None:
            c = torch.as_tensor(self.catalog[i], dtype=torch.float32).reshape(-1, 2)
            item["cat_xy"] = torch.cat([c, torch.full((self.k_max - len(c), 2), float("nan"))])
            item["n_cat"] = torch.tensor(len(c))
        return item


# ----------------------------------------------------------------------------- datamodule


class DeblendingDataModule(BaseDataModule):
    """Simulated blend scenes (train/val/test) and real cutouts for predict (module docstring)."""

    export_suffix = ".npz"

    @classmethod
    def preflight(cls, cfg) -> None:
        """The base checks; a real cutout (``data.input``, which a data set such as
        ``hsc-blends`` fills) is for predict only: train and test refuse it before any run dir."""
        if cfg["input"] not in (None, ""):
            named = f" (data.dataset={cfg['dataset']})" if cfg["dataset"] else ""
            raise ConfigError(f"data.input{named} is a real cutout without truth, for `cosmobench predict "
                              f"deblending` only: deblenders train and test on the simulator")
        if cfg["source"] == "galsim":  # one line naming the install command (exit 2)
            from cosmobench.sim.galsim_blends import require_galsim
            require_galsim()
        super().preflight(cfg)

    def __init__(self, cfg, seed: int = 0):
        super().__init__(cfg, seed)
        self.n_bands, self.image_size = self.cfg["n_bands"], self.cfg["image_size"]
        self.setup_ = self.blend_setup()
        self._stage: str | None = None

    def setup(self, stage: str | None = None) -> None:
        """As the base; remembers the stage (a ``test``/``predict`` run of ``data.source=galsim``
        renders the test split only)."""
        if not self.datasets:
            self._stage = stage
        super().setup(stage)

    def blend_setup(self) -> BlendSetup:
        try:
            return build(BlendSetup, self.cfg)
        except ValueError as exc:
            raise ConfigError(f"bad simulator setting (data.*): {exc}") from None

    def preprocess(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The shared pipeline step: background subtraction (``data.background``)."""
        if self.cfg["background"] == "sep":
            return subtract_background(image, mask, int(self.cfg["back_size"]))
        return np.asarray(image, dtype=np.float64)

    # --- building -------------------------------------------------------------------------
    def build(self) -> dict[str, Dataset]:
        from cosmobench.sim.blends import simulate_scene
        st = self.setup_
        if self.cfg["source"] == "galsim":
            return self._build_galsim()
        out = {}
        for split in ("train", "val", "test"):
            n = int(self.cfg[f"n_{split}"])
            images = np.empty((n, self.n_bands, self.image_size, self.image_size), np.float32)
            gal: dict[str, list] = {"images": [], "xy": [], "flux": []}
            offsets = [0]
            for i in progress(range(n), n, f"simulating {split} scenes", min_total=200):
                scene = simulate_scene(sample_rng(self.seed, split, i), st)
                images[i] = self.preprocess(scene.image)
                gal["images"].append(scene.isolated.astype(np.float32))
                gal["xy"].append(scene.xy)
                gal["flux"].append(scene.flux)
                offsets.append(offsets[-1] + scene.n)
            truth = {k: np.concatenate(v).astype(np.float32) if n else np.zeros(0) for k, v in gal.items()}
            truth["offsets"] = np.asarray(offsets, dtype=np.int64)
            variance = np.broadcast_to(st.background_variance.astype(np.float32), (n, self.n_bands))
            out[split] = SceneDataset(images, variance, truth=truth, n_max=st.n_max)
        return out

    def _build_galsim(self) -> dict[str, Dataset]:
        """GalSim splits (module docstring), read from / written to the render cache. A test-only
        run renders the test split alone and uses it for train/val too (nothing is learned from
        them at test time)."""
        from cosmobench.datasets.download import dataset_dir
        from cosmobench.sim.galsim_blends import render_cached
        st, c = self.setup_, self.cfg
        test_only = self._stage in ("test", "predict")
        seeds = ExternalRenders.split_seeds(c["render_seed"], self.seed, test_only)
        out = {}
        for split, seed in seeds.items():
            a = render_cached(st, split, seed, int(c[f"n_{split}"]), dataset_dir("galsim-blends") / "renders",
                              lambda it, n, desc: progress(it, n, desc, min_total=4))
            n = len(a["n_gal"])
            images = np.stack([self.preprocess(im) for im in a["image"]]) if n else a["image"]
            truth = {"images": a["isolated"], "xy": a["xy"].astype(np.float32), "flux": a["flux"].astype(np.float32),
                     "offsets": np.concatenate([[0], np.cumsum(a["n_gal"])]).astype(np.int64)}
            variance = np.broadcast_to(st.background_variance.astype(np.float32), (n, self.n_bands))
            out[split] = SceneDataset(images, variance, truth=truth, n_max=st.n_max)
        if test_only:
            out["train"] = out["val"] = out["test"]
        return out

    def info(self) -> dict[str, Any]:
        """Shapes, the detection filter (mean PSF), the PSF of every band (``modelfit``) and the per-band noise ``band_sigma``
        (counts; the blendedness footprint threshold); nothing is learned from the train split
        (the models normalise each source on its own)."""
        st = self.setup_
        return {"n_bands": self.n_bands, "image_size": self.image_size, "n_max": st.n_max,
                "psf_kernel": mean_psf_kernel(np.stack(st.psfs)).tolist(),
                "psfs": np.stack(st.psfs).tolist(),
                "band_sigma": [float(s) for s in np.atleast_1d(st.band_sigma)]}

    # --- predict --------------------------------------------------------------------------
    def export(self, split: str, path) -> Path:
        """Write the scenes of ``split`` as a real-format cutout stack: ``.npz`` with ``images``
        ``(S, C, H, W)``, ``variance`` (per pixel) and ``psfs`` ``(C, h, w)``, or FITS with
        HDUs IMAGES, VARIANCE, PSFS. Images are already background-subtracted (a second
        ``sep`` background pass changes them little)."""
        self.setup()
        ds = self.datasets[split]
        items = [ds[i] for i in range(len(ds))]
        images = torch.stack([it["image"] for it in items]).numpy()
        variance = torch.stack([it["variance"] for it in items]).numpy()
        psfs = np.stack(self.setup_.psfs).astype(np.float32)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.lower().endswith(".npz"):
            np.savez(path, images=images, variance=variance, psfs=psfs)
        else:
            from astropy.io import fits
            fits.HDUList([fits.PrimaryHDU(images), fits.ImageHDU(variance, name="VARIANCE"),
                          fits.ImageHDU(psfs, name="PSFS")]).writeto(path, overwrite=True)
        return path

    def input_path(self, path=None) -> Path:
        """The cutout to read: ``path`` (``--input``), else ``data.input`` (a data set's file)."""
        if path in (None, ""):
            path = self.cfg["input"]
        if path in (None, ""):
            raise ConfigError("predict needs --input FILE (or data.input, which data.dataset=NAME fills)")
        return Path(path).expanduser()

    def read_input(self, path=None) -> Dataset:
        """Dataset of the scenes of a real cutout file (:func:`read_cutout`; ``path`` or
        ``data.input``), background-subtracted like the training scenes, with the catalogue
        positions if ``data.catalog``."""
        p = self.input_path(path)
        cut = read_cutout(p, self.cfg["mask_bad_bits"], self.cfg["mask_planes"])
        images = np.stack([self.preprocess(im, m) for im, m in zip(cut["images"], cut["mask"])])
        ds = SceneDataset(images, cut["variance"], mask=cut["mask"], catalog=catalog_positions(self.cfg, p, cut),
                          psfs=cut["psfs"])
        ds.filters = cut["filters"]
        return ds

    def predict_loader(self, path=None) -> DataLoader:
        return DataLoader(self.read_input(path), batch_size=1, shuffle=False, num_workers=0)


__all__ = ["DeblendingData", "DeblendingDataModule", "SceneDataset", "read_cutout", "bad_pixels", "mean_psf_kernel",
           "AFW_MASK_PLANES", "BAD_BITS", "catalog_positions"]
