"""Shared image layer of the image tasks (morphology, lensfinding, deblending, massmapping).

Conventions (used by every image task; see ``docs/ARCHITECTURE.md``):

* an image stack is a float32 array/tensor ``(N, C, H, W)``: ``C`` bands, ``H`` rows (the
  ``y`` axis), ``W`` columns (the ``x`` axis, the last axis); a single image is ``(C, H, W)``;
* pixel values stay in their own units (counts, nanomaggies, 8-bit values, convergence)
  until the task normalises them with the **train-split** statistics of
  :func:`band_statistics` (``(stretch(x / scale_b) - mean_b) / std_b``, :func:`apply_stretch`);
* readers raise :class:`~cosmobench.errors.InputError` with one line naming the file and the
  problem; NaN/inf pixels are rejected in every split (:func:`check_finite_images`).

Readers: :func:`read_image_stack` (``.npy``, ``.npz``, ``.h5``/``.hdf5``, FITS cube; written by
:func:`write_image_stack`),
:func:`read_image_file` (one FITS/NPY/PNG/JPEG image), :func:`read_folder_catalog` (a table of
image files + labels, any format :func:`cosmobench.io.read_table` reads), and the lazy per-item
readers :class:`H5Images` / :class:`FileImages` behind :class:`LazyImageDataset`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cosmobench.errors import InputError
from cosmobench.io import quiet_readers

#: stretches :func:`apply_stretch` knows
STRETCHES = ("asinh", "linear")
#: images used for the train-split band statistics (evenly spaced over the split)
NORM_MAX_IMAGES = 2000
#: width (px) of the border whose pixels estimate the background noise for the asinh scale
BORDER = 4
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# ----------------------------------------------------------------------------- layout


def to_chw(arr: np.ndarray, n_bands: int, what: str) -> np.ndarray:
    """Stack of images ``(N, H, W[, C])`` or ``(N, C, H, W)`` -> float32 ``(N, C, H, W)``.

    ``what`` names the source in the error message. Images must be square."""
    a = np.asarray(arr)
    if a.ndim == 3 and n_bands == 1:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] == n_bands and a.shape[1] != n_bands:
        a = np.moveaxis(a, -1, 1)
    elif not (a.ndim == 4 and a.shape[1] == n_bands):
        raise InputError(f"{what}: expected images of shape (N, H, W, {n_bands}) or (N, {n_bands}, H, W)"
                         f" for data.n_bands={n_bands}, got {a.shape}")
    if a.shape[-1] != a.shape[-2]:
        raise InputError(f"{what}: images must be square, got {a.shape[-2]}x{a.shape[-1]}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"{what}: images must be numeric, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def crop_resize(x: torch.Tensor, crop: int | None, size: int) -> torch.Tensor:
    """Centre-crop ``(..., H, W)`` (``(C, H, W)`` or ``(B, C, H, W)``) to ``crop`` px (if given),
    then resize to ``size`` px (bilinear, antialiased when shrinking)."""
    h = x.shape[-1]
    if crop is not None:
        crop = int(crop)
        if not 1 <= crop <= h:
            raise InputError(f"data.crop={crop} must be between 1 and the image size {h}")
        a = (h - crop) // 2
        x = x[..., a:a + crop, a:a + crop]
    if x.shape[-1] != size:
        batched = x if x.ndim == 4 else x[None]
        batched = F.interpolate(batched, size=(size, size), mode="bilinear", align_corners=False,
                                antialias=batched.shape[-1] > size)
        x = batched if x.ndim == 4 else batched[0]
    return x


# ----------------------------------------------------------------------------- finiteness


def check_finite_images(datasets: Mapping[str, Dataset] | torch.Tensor | np.ndarray, key: str = "image",
                        what: str = "images") -> None:
    """Raise :class:`InputError` if any pixel is NaN or infinite.

    ``datasets`` is a tensor/array, or a ``{split: dataset}`` mapping: in-memory datasets
    (:class:`~cosmobench.datamodule.ArrayDataset`) are checked whole, here; lazy datasets
    (:class:`LazyImageDataset`) check each image when it is read (so a bad pixel in any split,
    test included, stops the run with the file named instead of producing NaN metrics).
    """
    if isinstance(datasets, (torch.Tensor, np.ndarray)):
        x = torch.as_tensor(datasets)
        if x.is_floating_point() and not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x.reshape(len(x), -1))).any(1).sum()) if x.ndim > 1 else 1
            raise InputError(f"{what}: {bad} image(s) contain NaN or infinite pixels")
        return
    for split, ds in datasets.items():
        arrays = getattr(ds, "arrays", None)
        if arrays is not None and key in arrays:
            check_finite_images(arrays[key], what=f"{split} split {what}")
        elif isinstance(ds, LazyImageDataset):
            ds.check_finite = True


# ----------------------------------------------------------------------------- readers


def check_numeric(a: Any, path: str | Path, what: str = "array", allow_empty: bool = False) -> np.ndarray:
    """``a`` as a numeric (integer, float or bool) numpy array with at least one axis, else a
    one-line InputError naming ``path``: strings, objects, records, complex values (the
    imaginary part would be dropped silently), a scalar, or an empty array."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise InputError(f"{path}: {what} holds complex values ({a.dtype}); cosmobench reads real values only "
                         f"(store the real and imaginary parts as separate real arrays)")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{path}: {what} is not numeric (dtype {a.dtype})")
    if a.ndim == 0:
        raise InputError(f"{path}: {what} is a scalar, not an array")
    if a.size == 0 and not allow_empty:
        raise InputError(f"{path}: {what} is empty (shape {a.shape})")
    return a


def _load_fits_array(path: Path, key: str | int | None) -> np.ndarray:
    from astropy.io import fits
    try:
        with quiet_readers(), fits.open(path, memmap=False) as hdul:
            if key is not None:
                try:
                    hdu = hdul[int(key) if str(key).isdigit() else key]
                except (KeyError, IndexError):
                    names = ", ".join(h.name or str(i) for i, h in enumerate(hdul))
                    raise InputError(f"{path}: FITS file has no HDU {key!r} (has: {names})") from None
            else:
                hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.is_image), None)
                if hdu is None:
                    raise InputError(f"{path}: FITS file has no image HDU with data")
            if not hdu.is_image or hdu.data is None:
                raise InputError(f"{path}: FITS HDU {key!r} is not an image with data")
            return check_numeric(np.array(hdu.data), path, f"FITS HDU {hdu.name or key!r}").astype(np.float32)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for non-FITS or corrupt files
        raise InputError(f"{path} is not a readable FITS file (truncated or corrupt?): {_one_line(exc)}") from None


def _member(names: list[str], key: str | None) -> str | None:
    return key if key is not None else ("images" if "images" in names else names[0] if len(names) == 1 else None)


def stack_members(path: str | Path) -> list[str]:
    """Names of the arrays of an ``.npz`` file or of the top-level datasets of an HDF5 file."""
    path = Path(path).expanduser()
    try:
        with quiet_readers():
            if path.name.lower().endswith(".npz"):
                with np.load(path, allow_pickle=False) as z:
                    return list(z.files)
            import h5py
            with h5py.File(path, "r") as fh:
                return [k for k in fh.keys() if isinstance(fh[k], h5py.Dataset)]
    except Exception as exc:  # noqa: BLE001 - zipfile, h5py and numpy raise many types for corrupt files
        raise InputError(f"{path} is not a readable {path.suffix} file (truncated or corrupt?): "
                         f"{_one_line(exc)}") from None


def load_array(path: str | Path, key: str | None = None) -> np.ndarray:
    """The raw array stored in ``path`` (``.npy``, ``.npz``, ``.h5``/``.hdf5``, FITS; ``key``
    selects an npz member / HDF5 dataset / FITS HDU, default ``images`` or the only array).
    No layout checks (see :func:`read_image_stack` for image stacks). Every malformed file
    (empty, truncated, not the format its name says, a member that is a group or a scalar,
    strings, complex values, no values) is one InputError line; third-party warnings are
    silenced (:func:`quiet_readers`)."""
    path = Path(path).expanduser()
    name = path.name.lower()
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    if name.endswith(FITS_SUFFIXES):
        return _load_fits_array(path, key)
    if not name.endswith((".npy", ".npz") + HDF5_SUFFIXES):
        raise InputError(f"{path}: unsupported image format {path.suffix or 'without suffix'!r}; "
                         f"use .npy, .npz, .h5/.hdf5 or .fits")
    try:
        with quiet_readers():
            if name.endswith(".npy"):
                what = "array"
                if path.stat().st_size == 0:
                    raise InputError(f"{path} is empty (0 bytes), not a .npy array")
                a = np.load(path, allow_pickle=False)
            elif name.endswith(".npz"):
                import zipfile
                if not zipfile.is_zipfile(path):
                    raise InputError(f"{path} is not a .npz file (not a zip archive; empty or truncated?)")
                with np.load(path, allow_pickle=False) as z:
                    names = list(z.files)
                    k = _member(names, key)
                    if k not in names:
                        raise InputError(f"{path}: .npz has no array {key or 'images'!r} (has: {', '.join(names)})")
                    what = f"member {k!r}"
                    a = z[k]
            else:
                import h5py
                with h5py.File(path, "r") as fh:
                    names = [k for k in fh.keys() if isinstance(fh[k], h5py.Dataset)]
                    k = _member(list(fh.keys()), key)
                    if k is None or k not in fh:
                        raise InputError(f"{path}: HDF5 has no dataset {key or 'images'!r} "
                                         f"(has: {', '.join(fh.keys())})")
                    what = f"HDF5 dataset {k!r}"
                    ds = fh[k]
                    if not isinstance(ds, h5py.Dataset):
                        raise InputError(f"{path}: HDF5 {k!r} is a {type(ds).__name__.lower()}, not a dataset "
                                         f"(has datasets: {', '.join(names) or 'none'})")
                    if ds.shape is None or ds.ndim == 0:
                        raise InputError(f"{path}: {what} is a scalar, not an array")
                    a = ds[()]
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy, zipfile and h5py raise many types for corrupt files
        raise InputError(f"{path} is not a readable {path.suffix} file (truncated or corrupt?): "
                         f"{_one_line(exc)}") from None
    return check_numeric(a, path, what)


def read_image_stack(path: str | Path, key: str | None = None, n_bands: int | None = None) -> np.ndarray:
    """Stack of images from ``.npy``, ``.npz``, ``.h5``/``.hdf5`` or a FITS cube -> float32
    ``(N, C, H, W)``.

    ``key``: npz member / HDF5 dataset / FITS HDU (name or index); default ``images``, else the
    file's only array (for FITS: the first image HDU with data). Layouts: ``(N, H, W)``
    (one band), ``(N, C, H, W)`` or ``(N, H, W, C)``; with ``n_bands`` given the layout is
    checked against it (:func:`to_chw`), otherwise the band axis is the one that is not part
    of the square ``H x W`` pair (axis 1 if ambiguous). A FITS cube of ``NAXIS3 = N`` planes
    reads as ``(N, H, W)`` (numpy order of the FITS axes).
    """
    p = Path(path).expanduser()
    a = load_array(p, key)
    if n_bands is not None:
        return to_chw(a, int(n_bands), str(p))
    if a.ndim == 3:
        return to_chw(a, 1, str(p))
    if a.ndim == 4:
        if a.shape[2] == a.shape[3]:
            return to_chw(a, a.shape[1], str(p))
        if a.shape[1] == a.shape[2]:
            return to_chw(a, a.shape[3], str(p))
    raise InputError(f"{p}: expected an image stack (N, H, W), (N, C, H, W) or (N, H, W, C) of square "
                     f"images, got shape {a.shape}")


def write_image_stack(path: str | Path, images: torch.Tensor | np.ndarray, key: str = "images") -> Path:
    """Write a float32 image stack ``(N, C, H, W)`` to ``path`` by its extension -- ``.npy``,
    ``.npz`` / ``.h5`` / ``.hdf5`` (array ``key``) or a FITS cube (``.fits``/``.fit``/``.fts``,
    primary HDU) -- atomically, in the layout :func:`read_image_stack` reads back. Returns
    ``path``; an unknown extension is an InputError and writes nothing."""
    from cosmobench.io import atomic_path, write_table

    p = Path(path).expanduser()
    name = p.name.lower()
    x = np.ascontiguousarray(images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images,
                             dtype=np.float32)
    if x.ndim != 4:
        raise InputError(f"{p}: an image stack is (N, C, H, W), got shape {x.shape}")
    if name.endswith((".npz", ".h5", ".hdf5")):
        return write_table({key: x}, p)
    if not name.endswith((".npy", ".fits", ".fit", ".fts")):
        raise InputError(f"{p}: cannot write an image stack with this extension; use .npy, .npz, .h5/.hdf5 "
                         f"or .fits")
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        if name.endswith(".npy"):
            with open(tmp, "wb") as fh:
                np.save(fh, x)
        else:
            from astropy.io import fits
            fits.PrimaryHDU(x).writeto(tmp, overwrite=True)
    return p


def read_image_file(path: str | Path, n_bands: int) -> np.ndarray:
    """One image file -> float32 ``(C, H, W)``: FITS (first image HDU; 2-D or a ``(C, H, W)``
    cube), ``.npy`` ``(H, W[, C])``/``(C, H, W)``, or PNG/JPEG/TIFF via Pillow (converted to
    ``L`` for one band, ``RGB`` otherwise; 8-bit values kept)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".npy",) + FITS_SUFFIXES):
        a = load_array(path, None)
    else:
        from PIL import Image
        try:
            with quiet_readers(), Image.open(path) as im:
                a = np.asarray(im.convert("L" if n_bands == 1 else "RGB"))
        except FileNotFoundError:
            raise InputError(f"image file not found: {path}") from None
        except Exception as exc:  # noqa: BLE001 - Pillow: unidentified, truncated, decompression bomb ...
            raise InputError(f"{path} is not a readable image: {_one_line(exc)}") from None
    if a.ndim == 2:
        a = a[..., None]
    return to_chw(a[None], n_bands, str(path))[0]


def read_folder_catalog(path: str | Path, file_column: str, label_column: str | None = None,
                        vote_columns: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A table (CSV/FITS/ECSV/Parquet, :func:`cosmobench.io.read_table`) listing image files.

    Returns ``{"files": [Path], "labels": int (N,), "class_names": [str], "votes": (N, K) | None}``.
    File paths are relative to the table's folder. Labels come from ``vote_columns`` (vote
    fractions, normalised per row; class names = column names; hard label = argmax) or from
    ``label_column`` (class names -> sorted names, or integers 0..K-1 -> ``class_<k>``).
    """
    from cosmobench.io import read_table
    path = Path(path)
    vote_columns = list(vote_columns or [])
    need = [file_column] + (vote_columns if vote_columns else [label_column] if label_column else [])
    table = read_table(path, need, numeric=vote_columns)
    n = len(table[file_column])
    if n == 0:
        raise InputError(f"{path}: table has no rows")
    files = [path.parent / str(f).strip() for f in table[file_column]]
    absent = [f for f in files if not f.is_file()]
    if absent:
        raise InputError(f"{path}: image file not found: {absent[0]} ({len(absent)} missing)")
    votes = None
    if vote_columns:
        try:
            votes = np.stack([np.asarray(table[k], dtype=np.float64) for k in vote_columns], axis=1)
        except ValueError as exc:
            raise InputError(f"{path}: vote column is not numeric: {_one_line(exc)}") from None
        if not np.isfinite(votes).all() or (votes < 0).any() or not np.all(votes.sum(1) > 0):
            raise InputError(f"{path}: vote fractions must be finite and >= 0 with a positive sum in every row")
        votes = votes / votes.sum(1, keepdims=True)
        class_names = list(vote_columns)
        labels = votes.argmax(1)
    elif label_column:
        raw = [str(v).strip() for v in table[label_column]]
        if all(v.lstrip("-").isdigit() for v in raw):
            labels = np.array([int(v) for v in raw])
            if labels.min() < 0:
                raise InputError(f"{path}: integer labels must be >= 0, got {labels.min()}")
            class_names = [f"class_{k}" for k in range(labels.max() + 1)]
        else:
            class_names = sorted(set(raw))
            labels = np.array([class_names.index(v) for v in raw])
    else:
        labels, class_names = np.zeros(n, np.int64), []
    return {"files": files, "labels": labels.astype(np.int64), "class_names": class_names, "votes": votes}




class H5Images:
    """Picklable per-item reader of an HDF5 image stack (the file is opened lazily, once per
    worker process). ``reader(r)`` -> float32 ``(C, H, W)``."""

    def __init__(self, path: str | Path, key: str, n_bands: int):
        self.path, self.key, self.n_bands, self._fh = str(path), key, n_bands, None

    def __getstate__(self):
        return {**self.__dict__, "_fh": None}

    def __call__(self, r: int) -> np.ndarray:
        try:
            with quiet_readers():
                if self._fh is None:
                    import h5py
                    self._fh = h5py.File(self.path, "r")
                a = np.asarray(self._fh[self.key][r])
        except Exception as exc:  # noqa: BLE001 - h5py raises many types for a corrupt or truncated file
            raise InputError(f"{self.path}: cannot read image {r} of {self.key!r} (truncated or corrupt?): "
                             f"{_one_line(exc)}") from None
        return to_chw(check_numeric(a, self.path, f"image {r} of {self.key!r}")[None], self.n_bands, self.path)[0]


class FileImages:
    """Per-item reader of a list of image files (:func:`read_image_file`)."""

    def __init__(self, files: list[Path], n_bands: int):
        self.files, self.n_bands = files, n_bands

    def __call__(self, r: int) -> np.ndarray:
        return read_image_file(self.files[r], self.n_bands)


class LazyImageDataset(Dataset):
    """Items ``{"image": (C, size, size) float32, "label": int, ["votes": (K,)], "idx": i}``.

    ``load(row)`` returns the raw ``(C, H, W)`` image of row ``rows[i]`` of the source
    (:class:`H5Images`, :class:`FileImages` or any callable); it is centre-cropped to ``crop``
    and resized to ``size`` (:func:`crop_resize`). With ``check_finite`` every image read is
    checked for NaN/inf pixels (:func:`check_finite_images` turns it on for every split)."""

    def __init__(self, rows: np.ndarray, load: Callable[[int], np.ndarray], labels: np.ndarray,
                 votes: np.ndarray | None, crop: int | None, size: int, check_finite: bool = True):
        self.rows, self.load, self.labels, self.votes = rows, load, labels, votes
        self.crop, self.size, self.check_finite = crop, size, check_finite

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = int(self.rows[i])
        raw = torch.from_numpy(np.ascontiguousarray(self.load(r)))
        if self.check_finite and raw.is_floating_point() and not torch.isfinite(raw).all():
            files = getattr(self.load, "files", None)
            where = str(files[r]) if files is not None else f"{getattr(self.load, 'path', 'source')} row {r}"
            raise InputError(f"{where}: image contains NaN or infinite pixels")
        img = crop_resize(raw, self.crop, self.size)
        item = {"image": img.float(), "label": torch.tensor(int(self.labels[r])), "idx": torch.tensor(i)}
        if self.votes is not None:
            item["votes"] = torch.from_numpy(self.votes[r].astype(np.float32))
        return item


# ----------------------------------------------------------------------------- normalisation


def apply_stretch(x: torch.Tensor, scale: torch.Tensor, stretch: str) -> torch.Tensor:
    """``asinh(x / scale)`` (``stretch="asinh"``, Lupton et al. 1999: linear below ~``scale``,
    logarithmic above) or ``x / scale`` (``"linear"``). ``scale`` broadcasts against ``x``
    (per band: shape ``(1, C, 1, 1)`` for a batch)."""
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}; choose {', '.join(STRETCHES)}")
    z = x / scale
    return torch.asinh(z) if stretch == "asinh" else z


def sample_indices(n: int, max_images: int = NORM_MAX_IMAGES) -> np.ndarray:
    """At most ``max_images`` evenly spaced indices of ``range(n)`` (deterministic)."""
    return np.unique(np.linspace(0, n - 1, min(n, max_images)).astype(int))


def stack_images(ds: Dataset, take: np.ndarray | None = None, key: str = "image") -> torch.Tensor:
    """Images ``(len(take), C, H, W)`` of a dataset (all of them if ``take`` is None)."""
    take = np.arange(len(ds)) if take is None else np.asarray(take)
    arrays = getattr(ds, "arrays", None)
    if arrays is not None and key in arrays:
        return arrays[key][torch.as_tensor(take, dtype=torch.long)]
    return torch.stack([ds[int(i)][key] for i in take])


def background_sigma(x: torch.Tensor, border: int = BORDER) -> torch.Tensor:
    """Per-band background noise ``(C,)`` of images ``(N, C, H, W)``: 1.4826 x the median
    absolute deviation of the pixels in a ``border``-px frame (at most a quarter of the size)."""
    c = x.shape[1]
    frame = torch.ones(x.shape[-2:], dtype=torch.bool)
    b = max(1, min(border, x.shape[-1] // 4))
    frame[b:-b, b:-b] = False
    pix = x[..., frame].transpose(0, 1).reshape(c, -1)
    med = pix.median(dim=1, keepdim=True).values
    return 1.4826 * (pix - med).abs().median(dim=1).values


def band_statistics(x: torch.Tensor, stretch: str = "asinh") -> dict[str, list[float]]:
    """Per-band normalisation ``{"scale", "mean", "std"}`` (lists of ``C`` floats) of train
    images ``x`` ``(N, C, H, W)``: ``scale`` = :func:`background_sigma` for ``asinh`` (if the
    background is constant, e.g. zero-padded 8-bit images: 1% of the band's 1-99% pixel range,
    so that asinh stays finite and well scaled) or 1 for ``linear``; ``mean``/``std`` of
    :func:`apply_stretch` over all pixels of the band (std clamped at 1e-6)."""
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}; choose {', '.join(STRETCHES)}")
    x = x.double()
    check_finite_images(x, what="training images")
    c = x.shape[1]
    xb = x.transpose(0, 1).reshape(c, x.shape[0], -1)  # (C, N, H*W)
    if stretch == "asinh":
        scale = background_sigma(x)
        flat = xb.reshape(c, -1)
        spread = torch.quantile(flat[:, ::max(1, flat.shape[1] // 200_000)].float(),
                                torch.tensor([0.01, 0.99]), dim=1).double()
        fallback = (0.01 * (spread[1] - spread[0])).clamp_min(1e-6)
        scale = torch.where(scale > 0, scale, fallback)
    else:
        scale = torch.ones(c, dtype=torch.float64)
    z = apply_stretch(xb, scale[:, None, None], stretch)
    return {"scale": scale.tolist(), "mean": z.mean(dim=(1, 2)).tolist(),
            "std": z.std(dim=(1, 2)).clamp_min(1e-6).tolist()}


def train_band_statistics(train: Dataset, stretch: str = "asinh",
                          max_images: int = NORM_MAX_IMAGES) -> dict[str, list[float]]:
    """:func:`band_statistics` of (at most ``max_images`` evenly spaced images of) the train split."""
    return band_statistics(stack_images(train, sample_indices(len(train), max_images)), stretch)


__all__ = ["STRETCHES", "NORM_MAX_IMAGES", "BORDER", "to_chw", "crop_resize", "check_finite_images",
           "stack_members", "load_array", "read_image_stack", "write_image_stack", "read_image_file",
           "read_folder_catalog", "H5Images", "FileImages", "LazyImageDataset", "apply_stretch", "sample_indices",
           "stack_images", "background_sigma", "band_statistics", "train_band_statistics"]
