"""Real multi-band cutouts and detection catalogues of the ``deblending`` task (``predict``).

Layouts (:func:`read_cutout`): ``.npz`` with arrays ``images`` ``(C, H, W)`` (or a stack
``(S, C, H, W)``), ``variance`` or ``weights`` (= 1/variance; 0 = no data) of the same shape,
optional ``mask`` (``(H, W)`` or ``(C, H, W)``), ``psfs`` ``(C, h, w)``, ``filters`` (``C``
names), ``mask_planes`` (bit names) and ``catalog`` (record array with fields ``x``, ``y``):
scarlet's HSC example-data layout; or FITS with one HDU per plane named ``IMAGES`` (or the
primary HDU), ``VARIANCE``/``WEIGHTS``, ``MASK``, ``PSFS``, filter names in the IMAGES header
``FILTERS`` (comma-separated).

Rules (each a one-line :class:`~cosmobench.errors.InputError`, exit 2, unless said otherwise):

* the file must be readable and each plane numeric (not text, records or complex values;
  ``images``/``variance``/``weights``/``psfs`` not boolean) with the shapes above; an array
  whose size would not fit in memory is refused from the file's header, before it is read;
* **unusable pixels** are masked, not rejected: a pixel whose image value is NaN or ±inf in
  any band, whose variance is NaN, +inf or 0 (weight 0 or non-finite) in any band, or that a
  bad bit of the mask flags. Its image value becomes 0 and its variance the band's median
  over the usable pixels; detection and the model fit ignore it. Non-finite image or variance
  values are counted and logged (one warning line: how many pixels, how many of them the mask
  already flagged). A negative finite variance is an error (a wrong file, not missing data),
  and so is a scene without one usable pixel;
* an integer mask is a bit-mask plane (HSC/LSST ``afw``): bit ``i`` is ``mask_planes[i]``
  (from the file, else ``data.mask_planes``: :data:`AFW_MASK_PLANES`); a pixel is unusable
  if a bit named in ``data.mask_bad_bits`` (:data:`BAD_BITS`) is set, other bits are
  informational. A mask flagging every pixel of a scene is an error naming the bits;
* ``filters`` (the ``flux_<filter>`` columns of predict) must be ``C`` distinct names of
  letters, digits and ``_ . + -`` (at most 32 characters);
* **catalogue positions** (:func:`catalog_positions`) must be numbers inside the cutout:
  ``-0.5 <= x < W - 0.5`` and ``-0.5 <= y < H - 0.5`` in 0-based pixel-centre coordinates
  (after subtracting ``data.catalog_origin``); a position outside, a missing or non-numeric
  value and a scene index that is not an integer of ``0..S-1`` are errors naming the file,
  the row and the column. Nothing is written in any of these cases.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from cosmobench.errors import ConfigError, InputError
from cosmobench.images import FITS_SUFFIXES, check_numeric
from cosmobench.io import quiet_readers

log = logging.getLogger(__name__)

#: the ``afw`` base mask planes of HSC/LSST images, in bit order (bit 0 = BAD)
AFW_MASK_PLANES = ["BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT", "NO_DATA"]
#: mask bits that make a pixel unusable by default
BAD_BITS = ["BAD", "SAT", "INTRP", "CR", "EDGE", "NO_DATA"]
#: planes read as pixel values (numeric, not boolean)
VALUE_PLANES = ("images", "variance", "weights", "psfs")
#: bytes of working memory per stored element while a cutout is read and preprocessed
#: (float64 copies of images and variance, the mask, the background-subtracted stack)
BYTES_PER_ELEMENT = 48
FILTER_NAME = re.compile(r"[A-Za-z0-9_.+\-]{1,32}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_size(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse arrays too large for memory from their stored shapes, before reading them."""
    from cosmobench.datamodule import check_memory
    need = {f"{path}: '{k}' of shape {tuple(s)}": float(np.prod(s, dtype=float)) * BYTES_PER_ELEMENT
            for k, s in shapes.items()}
    if need:
        check_memory(need, what="reading this cutout")


def _npz_planes(path: Path) -> dict[str, np.ndarray]:
    import zipfile
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not a .npz file (not a zip archive; empty or truncated?)")
    try:
        with quiet_readers(), np.load(path, allow_pickle=False) as z:
            shapes = {}
            for k in z.files:
                with z.zip.open(k + ".npy") as fh:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shapes[k] = read(fh)[0]
            _check_size(path, shapes)
            return {k: z[k] for k in z.files}
    except (InputError, ConfigError):
        raise
    except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise many types for corrupt files
        raise InputError(f"{path} is not a readable .npz file (truncated or corrupt?): {_one_line(exc)}") from None


def _fits_planes(path: Path) -> dict[str, np.ndarray]:
    from astropy.io import fits
    try:
        with quiet_readers(), fits.open(path, memmap=False) as hdul:
            chosen = {}
            for i, h in enumerate(hdul):
                if not h.is_image or h.header.get("NAXIS", 0) == 0:
                    continue
                name = (h.name or "").lower()
                key = name if name in ("images", "variance", "weights", "mask", "psfs") else None
                if key is None and "images" not in chosen and i == 0:
                    key = "images"
                if key is not None:
                    chosen[key] = h
            _check_size(path, {k: h.shape for k, h in chosen.items()})
            planes = {}
            for key, h in chosen.items():
                planes[key] = np.array(h.data)
                if key == "mask":
                    bits = {k[3:]: int(v) for k, v in h.header.items() if k.startswith("MP_")}
                    if bits:
                        if min(bits.values()) < 0 or max(bits.values()) > 63:
                            raise InputError(f"{path}: MASK header MP_* bit numbers must be in 0..63")
                        names = [""] * (max(bits.values()) + 1)
                        for n, bit in bits.items():
                            names[bit] = n
                        planes["mask_planes"] = np.array(names)
                if key == "images" and "FILTERS" in h.header:
                    planes["filters"] = np.array([f.strip() for f in str(h.header["FILTERS"]).split(",")])
            return planes
    except (InputError, ConfigError):
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for non-FITS or corrupt files
        raise InputError(f"{path} is not a readable FITS file (truncated or corrupt?): {_one_line(exc)}") from None


def bad_pixels(mask: np.ndarray, bad_bits: list[str], planes: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Unusable pixels of a mask plane (module docstring): boolean masks as they are; integer
    bit masks through the plane names ``planes`` (bit ``i`` = ``planes[i]``) and the names of
    the bad bits. Returns the boolean map and, per bad bit present, the pixels it flags."""
    m = np.asarray(mask)
    if m.dtype == bool:
        return m, {"mask": m}
    if m.dtype.kind not in "iuf" or (m.dtype.kind == "f" and (not np.all(np.isfinite(m)) or np.any(m != np.round(m)))):
        raise InputError(f"mask: expected a boolean or an integer bit-mask plane, got dtype {m.dtype}")
    if m.dtype.kind == "f":
        m = m.astype(np.int64)
    unknown = sorted(set(bad_bits) - set(planes))
    if unknown:
        raise InputError(f"mask: bad bit(s) {', '.join(unknown)} are not planes of the mask "
                         f"(its planes: {', '.join(p for p in planes if p)}); set data.mask_bad_bits")
    by_bit = {}
    for name in bad_bits:
        bit = planes.index(name)
        if bit >= 8 * m.dtype.itemsize:
            by_bit[name] = np.zeros(m.shape, bool)  # the plane cannot be set in a mask this narrow
        else:
            by_bit[name] = (m.astype(np.uint64, copy=False) & np.uint64(1 << bit)) != 0
    bad = np.zeros(m.shape, bool)
    for v in by_bit.values():
        bad |= v
    return bad, {k: v for k, v in by_bit.items() if v.any()}


def _planes(p: Path) -> dict[str, np.ndarray]:
    if not p.is_file():
        raise InputError(f"input file not found: {p}")
    name = p.name.lower()
    if name.endswith(".npz"):
        planes = _npz_planes(p)
    elif name.endswith(FITS_SUFFIXES):
        planes = _fits_planes(p)
    else:
        raise InputError(f"{p}: unsupported cutout format; use .npz (images, variance, mask, psfs) or FITS "
                         f"(HDUs IMAGES, VARIANCE/WEIGHTS, MASK, PSFS)")
    if "images" not in planes:
        raise InputError(f"{p}: no 'images' array/HDU (has: {', '.join(planes) or 'nothing'})")
    for key in VALUE_PLANES + ("mask",):
        if key in planes:
            a = check_numeric(planes[key], p, f"'{key}'")
            if key != "mask" and a.dtype.kind == "b":
                raise InputError(f"{p}: '{key}' is boolean; pixel values are expected")
    return planes


def _mask_planes(p: Path, planes: dict, mask_planes: list[str] | None) -> list[str]:
    if "mask_planes" not in planes:
        return list(AFW_MASK_PLANES if mask_planes is None else mask_planes)
    names = np.asarray(planes["mask_planes"])
    if names.dtype.kind not in "US" or names.ndim != 1 or len(names) > 64:
        raise InputError(f"{p}: 'mask_planes' must be a list of at most 64 plane names (bit order)")
    return [str(n).strip() for n in names]


def read_cutout(path: str | Path, bad_bits: list[str] | None = None, mask_planes: list[str] | None = None) -> dict[str, Any]:
    """A real multi-band cutout (module docstring) -> ``images`` ``(S, C, H, W)`` float32,
    ``variance`` ``(S, C, H, W)`` or ``(S, C)`` float32, ``mask`` ``(S, H, W)`` bool (unusable
    pixels), ``psfs`` ``(C, h, w)`` or None, ``catalog`` (the NPZ's own array) or None,
    ``filters`` (``C`` names) or None. An integer mask is read with the bad bits ``bad_bits``
    (default :data:`BAD_BITS`) and the plane names of the file, else ``mask_planes`` (default
    :data:`AFW_MASK_PLANES`)."""
    bad_bits = BAD_BITS if bad_bits is None else list(bad_bits)
    p = Path(path).expanduser()
    planes = _planes(p)
    images = np.asarray(planes["images"], dtype=np.float64)
    if images.ndim in (2, 3):
        images = images.reshape((1,) * (4 - images.ndim) + images.shape)
    if images.ndim != 4 or min(images.shape) < 1:
        raise InputError(f"{p}: 'images' must be (C, H, W) or (S, C, H, W), got shape {planes['images'].shape}")
    s, c, h, w = images.shape

    def like_images(key: str) -> np.ndarray:
        a = np.asarray(planes[key], dtype=np.float64)
        a = a.reshape((1,) * (4 - a.ndim) + a.shape) if a.ndim < 4 else a
        if a.shape[1:] != (c, h, w) or a.shape[0] not in (1, s):
            raise InputError(f"{p}: '{key}' has shape {planes[key].shape}, expected that of images {images.shape[1:]}")
        return np.broadcast_to(a, images.shape)

    masked = np.zeros((s, h, w), bool)        # flagged by the mask's bad bits
    flagged: dict[str, np.ndarray] = {}
    if "mask" in planes:
        try:
            m, flagged = bad_pixels(planes["mask"], bad_bits, _mask_planes(p, planes, mask_planes))
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from None
        m = m.reshape((1,) * (3 - m.ndim) + m.shape) if m.ndim < 3 else m
        if m.ndim == 4 or (m.ndim == 3 and m.shape[0] == c and m.shape[1:] == (h, w) and s == 1):
            m = m.reshape(-1, c, h, w).any(axis=1)               # a pixel bad in any band is masked
        if m.ndim != 3 or m.shape[1:] != (h, w) or m.shape[0] not in (1, s):
            raise InputError(f"{p}: 'mask' has shape {planes['mask'].shape}; expected (H, W) or (C, H, W) "
                             f"with H, W = {h}, {w}")
        masked = np.broadcast_to(m, (s, h, w))
        if masked.all(axis=(1, 2)).any():
            share = {k: float(np.mean(v)) for k, v in flagged.items()}
            bits = ", ".join(f"{k} ({100 * v:.0f} %)" for k, v in sorted(share.items(), key=lambda kv: -kv[1]))
            raise InputError(f"{p}: the mask flags every pixel of a scene as unusable, by {bits}; "
                             f"set data.mask_bad_bits to the bits that mean unusable")
    nonfinite = ~np.isfinite(images).all(axis=1)             # (S, H, W)
    variance = None
    if "variance" in planes:
        variance = like_images("variance").copy()
    elif "weights" in planes:
        wt = like_images("weights")
        if np.any(wt < 0):
            raise InputError(f"{p}: 'weights' must be non-negative (0 = no data)")
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = np.where(wt > 0, 1.0 / np.where(wt > 0, wt, 1.0), np.inf)
        variance[~np.isfinite(wt)] = np.nan
    zero = np.zeros((s, h, w), bool)
    if variance is not None:
        if np.any(variance < 0):
            r = np.argwhere(variance < 0)[0]
            raise InputError(f"{p}: variance must be non-negative; pixel (scene {r[0]}, band {r[1]}, y {r[2]}, "
                             f"x {r[3]}) holds {variance[tuple(r)]:g}")
        nonfinite |= np.isnan(variance).any(axis=1)
        zero = np.isinf(variance).any(axis=1) | (variance == 0).any(axis=1)
    bad = masked | nonfinite | zero
    if bad.all(axis=(1, 2)).any():
        raise InputError(f"{p}: a scene has no usable pixel (all masked, zero weight or non-finite)")
    if nonfinite.any():
        n, known = int(nonfinite.sum()), int((nonfinite & masked).sum())
        log.warning("%s: %d pixel(s) with NaN/inf image or variance values masked as unusable (%d of them "
                    "flagged by the mask already)", p, n, known)
    images = np.where(bad[:, None], 0.0, images)
    if variance is None:
        import sep
        variance = np.array([[sep.Background(np.ascontiguousarray(images[i, b]), mask=bad[i]).globalrms ** 2
                              for b in range(c)] for i in range(s)])
    else:
        fill = np.array([[np.median(variance[i, b][~bad[i]]) for b in range(c)] for i in range(s)])
        variance = np.where(bad[:, None], fill[:, :, None, None], variance)
    return {"images": images.astype(np.float32), "variance": np.asarray(variance, dtype=np.float32),
            "mask": bad, "psfs": _psfs(p, planes, c), "catalog": planes.get("catalog"),
            "filters": _filters(p, planes, c)}


def _psfs(p: Path, planes: dict, c: int) -> np.ndarray | None:
    if "psfs" not in planes:
        return None
    psfs = np.asarray(planes["psfs"], dtype=np.float64)
    psfs = psfs[None] if psfs.ndim == 2 else psfs
    if psfs.ndim != 3 or psfs.shape[0] not in (1, c) or not np.isfinite(psfs).all() or \
            np.any(psfs.sum(axis=(1, 2)) <= 0):
        raise InputError(f"{p}: 'psfs' must be (C, h, w) finite images with positive sums, got {planes['psfs'].shape}")
    return psfs


def _filters(p: Path, planes: dict, c: int) -> list[str] | None:
    if "filters" not in planes:
        return None
    raw = np.asarray(planes["filters"])
    if raw.dtype.kind not in "US":
        raise InputError(f"{p}: 'filters' must be names (text), got dtype {raw.dtype}")
    filters = [str(f).strip() for f in raw.reshape(-1)]
    if len(filters) != c or len(set(filters)) != c:
        raise InputError(f"{p}: 'filters' must name each of the {c} bands once, got {len(filters)} names")
    odd = next((f for f in filters if not FILTER_NAME.fullmatch(f)), None)
    if odd is not None:
        raise InputError(f"{p}: filter name {odd[:40]!r} is not a plain name (letters, digits, _ . + -; "
                         f"at most 32 characters)")
    return filters


def mean_psf_kernel(psfs: np.ndarray) -> np.ndarray:
    """Detection filter: the band-mean of unit-sum PSFs, cropped to odd sizes of at most 31 px."""
    k = np.mean([q / q.sum() for q in psfs], axis=0)
    h, w = k.shape
    ch, cw = min(h - (1 - h % 2), 31), min(w - (1 - w % 2), 31)
    i0, j0 = (h - ch) // 2, (w - cw) // 2
    return k[i0:i0 + ch, j0:j0 + cw]


# ----------------------------------------------------------------------------- catalogue


def catalog_positions(cfg: dict, path: Path, cut: dict[str, Any]) -> list[np.ndarray] | None:
    """Positions ``(K_s, 2)`` (x, y; 0-based pixel centres) per scene of the detection
    catalogue ``cfg["catalog"]`` (a table file, or ``npz``: the cutout's own ``catalog``
    record array), or None without one. Every value is checked (module docstring)."""
    cat = cfg["catalog"]
    if cat in (None, ""):
        return None
    from cosmobench.io import numeric_strict, read_table
    s, _, h, w = cut["images"].shape
    xcol, ycol, scol = cfg["x_column"], cfg["y_column"], cfg["scene_column"]
    if cat == "npz":
        rec, where = cut["catalog"], path
        if rec is None or rec.dtype.names is None or not {xcol, ycol} <= set(rec.dtype.names) or rec.ndim != 1:
            raise InputError(f"{path}: data.catalog=npz needs a 'catalog' record array with fields "
                             f"{xcol!r}, {ycol!r}")
        table = {k: numeric_strict(rec[k], f"{path} 'catalog'", k) for k in (xcol, ycol, scol) if k in rec.dtype.names}
    else:
        where = cat
        table = read_table(cat, columns=[xcol, ycol], optional=[scol], numeric=True)
    if s > 1 and scol not in table:
        raise InputError(f"{where}: {s} scenes in {path} but the catalogue has no {scol!r} column")
    origin = float(cfg["catalog_origin"])
    for col, size in ((xcol, w), (ycol, h)):
        v = table[col] - origin
        out = ~(np.isfinite(v) & (v >= -0.5) & (v < size - 0.5))
        if out.any():
            r = int(np.flatnonzero(out)[0])
            raise InputError(f"{where}: row {r}, column {col!r} = {table[col][r]:g} is "
                             f"{'missing' if np.isnan(v[r]) else 'outside the cutout'} (valid: "
                             f"{origin - 0.5:g} <= {col} < {size - 0.5 + origin:g} with data.catalog_origin="
                             f"{cfg['catalog_origin']}; {int(out.sum())} row(s) like it)")
    scene = np.zeros(len(table[xcol]), dtype=np.int64)
    if scol in table:
        sv = table[scol]
        wrong = ~(np.isfinite(sv) & (sv == np.round(sv)) & (sv >= 0) & (sv <= s - 1))
        if wrong.any():
            r = int(np.flatnonzero(wrong)[0])
            raise InputError(f"{where}: row {r}, column {scol!r} = {sv[r]:g} is not a scene index "
                             f"(an integer in 0..{s - 1}; {int(wrong.sum())} row(s) like it)")
        scene = sv.astype(np.int64)
    xy = np.stack([table[xcol], table[ycol]], axis=1) - origin
    per_scene = [xy[scene == i] for i in range(s)]
    from cosmobench.datamodule import check_memory
    k = max((len(v) for v in per_scene), default=0)   # a network input and an output image per position
    check_memory({f"{where}: {k} positions in one scene": float(k) * (cut["images"].shape[1] + 6) * h * w * 16},
                 what="deblending them")
    return per_scene


__all__ = ["AFW_MASK_PLANES", "BAD_BITS", "bad_pixels", "read_cutout", "mean_psf_kernel", "catalog_positions"]
