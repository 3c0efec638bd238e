"""Datamodule of the ``deblending`` task: multi-band scenes of blended galaxies.

Simulator (``data.source=sim``, the only training source: deblenders are scored against the
truth, which real cutouts do not have): :mod:`cosmobench.sim.blends`, settings
:class:`~cosmobench.sim.blends.BlendSetup` (survey: ``data.n_bands`` bands,
``data.image_size``² px at ``data.pixel_scale`` arcsec/px, PSF ``data.psf`` of FWHM
``data.psf_fwhm`` arcsec, sky ``data.sky_mag`` mag/arcsec², zero point ``data.zero_point``,
read noise ``data.read_noise`` e-, gain ``data.gain``; galaxies ``data.n_min``..``data.n_max``
per scene, middle-band magnitude in ``data.mag_range``, a fraction ``data.overlap_fraction`` of
the further galaxies placed in strong overlap). Scene ``i`` of split ``s`` is a pure function
of ``(seed, s, i)``.

Pipeline shared by simulated and real scenes (so both models and training see the same
inputs): with ``data.background=sep`` the image is background-subtracted per band with
``sep.Background`` (``data.back_size`` px mesh; :func:`cosmobench.detection.subtract_background`);
``none`` keeps it as is. Simulated scenes carry the background variance per band as
``variance``.

Real cutouts (:func:`read_cutout`, for ``cosmobench predict``): ``.npz`` with arrays
``images`` ``(C, H, W)`` (or a stack ``(S, C, H, W)``), ``variance`` or ``weights``
(= 1/variance; 0 = no data) of the same shape, optional ``mask`` (``(H, W)`` or ``(C, H, W)``),
``psfs`` ``(C, h, w)`` and ``filters`` (``C`` names) (scarlet's HSC example-data layout); or
FITS with one HDU per plane named ``IMAGES`` (or the primary HDU), ``VARIANCE``/``WEIGHTS``,
``MASK``, ``PSFS``, filter names in the IMAGES header ``FILTERS`` (comma-separated).

Masks: a boolean mask is ``True`` = bad. An integer mask is a bit-mask plane (HSC/LSST
``afw`` style): bit ``i`` is the plane named ``mask_planes[i]`` (NPZ array ``mask_planes``; FITS
``MP_<NAME> = i`` keywords of the MASK header, as the LSST pipelines write them; else
``data.mask_planes``, the fixed ``afw`` base planes ``BAD SAT INTRP CR EDGE DETECTED
DETECTED_NEGATIVE SUSPECT NO_DATA``), and a pixel is unusable if any of the bits named in
``data.mask_bad_bits`` is set (default ``BAD SAT INTRP CR EDGE NO_DATA``, :data:`BAD_BITS`;
``DETECTED``, ``DETECTED_NEGATIVE``, ``SUSPECT``, ``BRIGHT_OBJECT`` and bits without a name are
informational). Unusable pixels are set to 0 with the median variance and are ignored by SEP
detection and the model fit. A scene whose every pixel is unusable is an ``InputError`` naming
the bits that flagged it. Filter names become the ``flux_<filter>`` columns of ``predict``.

Background: survey coadd cutouts (HSC, LSST) are already background-subtracted; predict them
with ``data.background=none`` (the default ``sep`` re-estimates a ``data.back_size`` px mesh
background, which on a small cutout filled by a large galaxy removes part of its wings; the
simulated training scenes are sky-subtracted, so both settings see the same kind of input).
Without variance or weights the per-band background variance is estimated with SEP
(``globalrms²``). The PSFs, if given, become the detection filter (mean PSF).
A detection catalogue replaces SEP detection when ``data.catalog`` is a table (CSV/FITS/ECSV/
Parquet) with columns ``data.x_column``/``data.y_column`` (px; ``data.catalog_origin`` = 0
for 0-based pixel centres as in SEP/numpy, 1 for SExtractor/FITS ``X_IMAGE``) and, for
stacks, ``data.scene_column``; or ``npz`` to use the NPZ file's own ``catalog`` record array
(fields ``x``, ``y``, as in scarlet's example data).

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

from cosmobench.datamodule import BaseDataModule, DataSettings, SimSplits, progress, sample_rng
from cosmobench.detection import subtract_background
from cosmobench.errors import ConfigError, InputError
from cosmobench.settings import build, setting
from cosmobench.sim.blends import BlendSetup


#: the ``afw`` base mask planes of HSC/LSST images, in bit order (bit 0 = BAD)
AFW_MASK_PLANES = ["BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT", "NO_DATA"]
#: mask bits that make a pixel unusable by default
BAD_BITS = ["BAD", "SAT", "INTRP", "CR", "EDGE", "NO_DATA"]


@dataclass
class DeblendingData(BlendSetup, SimSplits, DataSettings):
    """The ``data`` node: the loaders and split sizes, the simulator (:class:`BlendSetup`),
    the pipeline shared by both models and the real-cutout catalogue (module docstring)."""

    source: str = setting("sim", ["sim"], help="scenes to train and test on (the simulator: deblenders need the truth)")
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


# ----------------------------------------------------------------------------- real cutouts


def _fits_planes(path: Path) -> dict[str, np.ndarray]:
    from astropy.io import fits
    try:
        with fits.open(path, memmap=False) as hdul:
            planes = {}
            for i, h in enumerate(hdul):
                if not h.is_image or h.data is None:
                    continue
                name = (h.name or "").upper()
                key = name.lower() if name.lower() in ("images", "variance", "weights", "mask", "psfs") else None
                if key is None and "images" not in planes and i == 0:
                    key = "images"
                if key is not None:
                    planes[key] = np.array(h.data)
                    if key == "mask":
                        bits = {k[3:]: int(v) for k, v in h.header.items() if k.startswith("MP_")}
                        if bits:
                            names = [""] * (max(bits.values()) + 1)
                            for name, bit in bits.items():
                                names[bit] = name
                            planes["mask_planes"] = np.array(names)
                    if key == "images" and "FILTERS" in h.header:
                        planes["filters"] = np.array([f.strip() for f in str(h.header["FILTERS"]).split(",")])
            return planes
    except OSError as exc:
        raise InputError(f"{path} is not a readable FITS file: {' '.join(str(exc).split())}") from None


def bad_pixels(mask: np.ndarray, bad_bits: list[str], planes: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Unusable pixels of a mask plane (module docstring): boolean masks as they are; integer
    bit masks through the plane names ``planes`` (bit ``i`` = ``planes[i]``) and the names of
    the bad bits. Returns the boolean map and, per bad bit present, the pixels it flags."""
    m = np.asarray(mask)
    if m.dtype == bool:
        return m, {"mask": m}
    if not np.issubdtype(m.dtype, np.integer):
        if not np.all(np.isfinite(m)) or np.any(m != np.round(m)):
            raise InputError("mask: expected a boolean or an integer bit-mask plane")
        m = m.astype(np.int64)
    unknown = sorted(set(bad_bits) - set(planes))
    if unknown:
        raise InputError(f"mask: bad bit(s) {', '.join(unknown)} are not planes of the mask "
                         f"(its planes: {', '.join(p for p in planes if p)}); set data.mask_bad_bits")
    by_bit = {name: (m & (1 << planes.index(name))) != 0 for name in bad_bits}
    bad = np.zeros(m.shape, bool)
    for v in by_bit.values():
        bad |= v
    return bad, {k: v for k, v in by_bit.items() if v.any()}


def read_cutout(path: str | Path, bad_bits: list[str] | None = None, mask_planes: list[str] | None = None) -> dict[str, Any]:
    """A real multi-band cutout (module docstring) -> ``images`` ``(S, C, H, W)`` float32,
    ``variance`` ``(S, C, H, W)`` or ``(S, C)`` float32, ``mask`` ``(S, H, W)`` bool,
    ``psfs`` ``(C, h, w)`` or None, ``catalog`` (the NPZ's own record array) or None,
    ``filters`` (``C`` names) or None. An integer mask is read with the bad bits ``bad_bits``
    (default :data:`BAD_BITS`) and the plane names of the file, else ``mask_planes`` (default
    :data:`AFW_MASK_PLANES`)."""
    bad_bits = BAD_BITS if bad_bits is None else list(bad_bits)
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"input file not found: {p}")
    name = p.name.lower()
    if name.endswith(".npz"):
        try:
            with np.load(p, allow_pickle=False) as z:
                planes = {k: z[k] for k in z.files}
        except (ValueError, OSError) as exc:
            raise InputError(f"{p} is not a readable .npz file: {' '.join(str(exc).split())}") from None
    elif name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
        planes = _fits_planes(p)
    else:
        raise InputError(f"{p}: unsupported cutout format; use .npz (images, variance, mask, psfs) or FITS "
                         f"(HDUs IMAGES, VARIANCE/WEIGHTS, MASK, PSFS)")
    if "images" not in planes:
        raise InputError(f"{p}: no 'images' array/HDU (has: {', '.join(planes) or 'nothing'})")
    images = np.asarray(planes["images"], dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or min(images.shape) < 1:
        raise InputError(f"{p}: 'images' must be (C, H, W) or (S, C, H, W), got shape {planes['images'].shape}")
    s, c, h, w = images.shape

    def like_images(key: str) -> np.ndarray:
        a = np.asarray(planes[key], dtype=np.float64)
        a = a.reshape((1,) * (4 - a.ndim) + a.shape) if a.ndim < 4 else a
        if a.shape[1:] != (c, h, w) or a.shape[0] not in (1, s):
            raise InputError(f"{p}: '{key}' has shape {planes[key].shape}, expected that of images {images.shape[1:]}")
        return np.broadcast_to(a, images.shape)

    bad = ~np.isfinite(images).all(axis=1)                     # (S, H, W)
    flagged: dict[str, np.ndarray] = {}
    if "mask" in planes:
        names = [str(n) for n in planes["mask_planes"]] if "mask_planes" in planes else \
            list(AFW_MASK_PLANES if mask_planes is None else mask_planes)
        try:
            m, flagged = bad_pixels(planes["mask"], bad_bits, names)
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from None
        m = m.reshape((1,) * (3 - m.ndim) + m.shape) if m.ndim < 3 else m
        if m.ndim == 4 or (m.ndim == 3 and m.shape[0] == c and m.shape[1:] == (h, w) and s == 1):
            m = m.reshape(-1, c, h, w).any(axis=1)               # a pixel bad in any band is masked
        if m.shape[1:] != (h, w) or m.shape[0] not in (1, s):
            raise InputError(f"{p}: 'mask' has shape {planes['mask'].shape}; expected (H, W) or (C, H, W) "
                             f"with H, W = {h}, {w}")
        m = np.broadcast_to(m, (s, h, w))
        if m.all(axis=(1, 2)).any():
            share = {k: float(np.mean(v)) for k, v in flagged.items()}
            bits = ", ".join(f"{k} ({100 * v:.0f} %)" for k, v in sorted(share.items(), key=lambda kv: -kv[1]))
            raise InputError(f"{p}: the mask flags every pixel of a scene as unusable, by {bits}; "
                             f"set data.mask_bad_bits to the bits that mean unusable")
        bad = bad | m
    variance = None
    if "variance" in planes:
        variance = like_images("variance").copy()
    elif "weights" in planes:
        wt = like_images("weights")
        with np.errstate(divide="ignore"):
            variance = np.where(wt > 0, 1.0 / np.where(wt > 0, wt, 1.0), np.inf)
    if variance is not None:
        if np.any(variance < 0) or np.isnan(variance).any():
            raise InputError(f"{p}: variance must be non-negative and not NaN")
        bad = bad | ~np.isfinite(variance).all(axis=1) | (variance <= 0).any(axis=1)
    images = np.where(bad[:, None], 0.0, np.nan_to_num(images, nan=0.0, posinf=0.0, neginf=0.0))
    if bad.all(axis=(1, 2)).any():
        raise InputError(f"{p}: a scene has no valid pixel (all masked, zero weight or non-finite)")
    if variance is None:
        import sep
        variance = np.array([[sep.Background(np.ascontiguousarray(images[i, b]), mask=bad[i]).globalrms ** 2
                              for b in range(c)] for i in range(s)])
    else:
        fill = np.array([[np.median(variance[i, b][~bad[i]]) for b in range(c)] for i in range(s)])
        variance = np.where(bad[:, None], fill[:, :, None, None], variance)
    psfs = None
    if "psfs" in planes:
        psfs = np.asarray(planes["psfs"], dtype=np.float64)
        psfs = psfs[None] if psfs.ndim == 2 else psfs
        if psfs.ndim != 3 or psfs.shape[0] not in (1, c) or not np.isfinite(psfs).all() or \
                np.any(psfs.sum(axis=(1, 2)) <= 0):
            raise InputError(f"{p}: 'psfs' must be (C, h, w) finite images with positive sums, got {planes['psfs'].shape}")
    catalog = planes.get("catalog")
    filters = None
    if "filters" in planes:
        filters = [str(f).strip() for f in np.asarray(planes["filters"]).reshape(-1)]
        if len(filters) != c or len(set(filters)) != c or not all(filters):
            raise InputError(f"{p}: 'filters' must name each of the {c} bands once, got {filters}")
    return {"images": images.astype(np.float32), "variance": np.asarray(variance, dtype=np.float32),
            "mask": bad, "psfs": psfs, "catalog": catalog, "filters": filters}


def mean_psf_kernel(psfs: np.ndarray) -> np.ndarray:
    """Detection filter: the band-mean of unit-sum PSFs, cropped to odd sizes of at most 31 px."""
    k = np.mean([q / q.sum() for q in psfs], axis=0)
    h, w = k.shape
    ch, cw = min(h - (1 - h % 2), 31), min(w - (1 - w % 2), 31)
    i0, j0 = (h - ch) // 2, (w - cw) // 2
    return k[i0:i0 + ch, j0:j0 + cw]


# ----------------------------------------------------------------------------- datamodule


class DeblendingDataModule(BaseDataModule):
    """Simulated blend scenes (train/val/test) and real cutouts for predict (module docstring)."""

    export_suffix = ".npz"

    def __init__(self, cfg, seed: int = 0):
        super().__init__(cfg, seed)
        self.n_bands, self.image_size = self.cfg["n_bands"], self.cfg["image_size"]
        self.setup_ = self.blend_setup()

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

    def _catalog(self, path: Path, cut: dict[str, Any]) -> list[np.ndarray] | None:
        cat = self.cfg["catalog"]
        if cat in (None, ""):
            return None
        s = len(cut["images"])
        origin = float(self.cfg["catalog_origin"])
        xcol, ycol, scol = self.cfg["x_column"], self.cfg["y_column"], self.cfg["scene_column"]
        if cat == "npz":
            rec = cut["catalog"]
            if rec is None or rec.dtype.names is None or not {xcol, ycol} <= set(rec.dtype.names):
                raise InputError(f"{path}: data.catalog=npz needs a 'catalog' record array with fields "
                                 f"{xcol!r}, {ycol!r}")
            table = {k: np.asarray(rec[k], dtype=float) for k in rec.dtype.names if k in (xcol, ycol, scol)}
        else:
            from cosmobench.io import read_table
            cols = read_table(cat)
            missing = [k for k in (xcol, ycol) if k not in cols]
            if missing:
                raise InputError(f"{cat}: catalogue has no column {missing[0]!r} (has: {', '.join(cols)}); "
                                 f"set data.x_column / data.y_column")
            table = {k: np.asarray(cols[k], dtype=float) for k in (xcol, ycol, scol) if k in cols}
        xy = np.stack([table[xcol], table[ycol]], axis=1) - origin
        if not np.isfinite(xy).all():
            raise InputError(f"{cat}: non-finite catalogue positions")
        scene = table[scol].astype(int) if scol in table else np.zeros(len(xy), dtype=int)
        if s > 1 and scol not in table:
            raise InputError(f"{cat}: {s} scenes in {path} but the catalogue has no {scol!r} column")
        if len(scene) and (scene.min() < 0 or scene.max() >= s):
            raise InputError(f"{cat}: {scol!r} must be in 0..{s - 1}")
        return [xy[scene == i] for i in range(s)]

    def read_input(self, path) -> Dataset:
        """Dataset of the scenes of a real cutout file (:func:`read_cutout`), background-
        subtracted like the training scenes, with the catalogue positions if ``data.catalog``."""
        p = Path(path).expanduser()
        cut = read_cutout(p, self.cfg["mask_bad_bits"], self.cfg["mask_planes"])
        images = np.stack([self.preprocess(im, m) for im, m in zip(cut["images"], cut["mask"])])
        ds = SceneDataset(images, cut["variance"], mask=cut["mask"], catalog=self._catalog(p, cut), psfs=cut["psfs"])
        ds.filters = cut["filters"]
        return ds

    def predict_loader(self, path) -> DataLoader:
        return DataLoader(self.read_input(path), batch_size=1, shuffle=False, num_workers=0)


__all__ = ["DeblendingData", "DeblendingDataModule", "SceneDataset", "read_cutout", "bad_pixels", "mean_psf_kernel",
           "AFW_MASK_PLANES", "BAD_BITS"]
