"""Datamodule of the ``morphology`` task: galaxy images -> morphological class.

Sources (``data.source``):

``sim`` (default)
    :mod:`cosmobench.sim.galaxies`: ``data.n_bands`` bands (default 3, g/r/z-like),
    ``data.image_size``² px at ``data.pixel_scale`` arcsec/px, classes ``data.classes``
    (subset of elliptical, spiral, barred_spiral, edge_on, irregular, merger; drawn with equal
    probability), PSF ``data.psf`` (moffat|gaussian) of FWHM ``data.psf_fwhm`` arcsec, sky
    ``data.sky_mag`` mag/arcsec², read noise ``data.read_noise`` e-, total magnitude uniform in
    ``data.mag_range`` (zero point ``data.zero_point``, counts). Sample ``i`` of split ``s``
    is a pure function of ``(seed, s, i)``. With ``data.label_type=soft`` each sample also has
    vote fractions from ``data.n_votes`` simulated volunteers (noise ``data.vote_noise``).
``galaxy10``
    HDF5 in the Galaxy10 DECaLS layout: ``data.image_key`` (``images``, uint8 N×H×W×3) and
    ``data.label_key`` (``ans``, ints 0-9); the ten Galaxy10 class names. Read lazily per item.
``folder``
    ``data.path`` = CSV with a ``data.file_column`` (image paths relative to the CSV: PNG/JPEG
    or ``.npy`` H×W[×C]) and either ``data.label_column`` (class names or ints 0..K-1) or
    ``data.vote_columns`` (vote fractions, one column per class; the class names are the
    column names, the hard label is their argmax).

Real images are centre-cropped to ``data.crop`` px (if set) and resized to
``data.image_size`` (bilinear, antialiased); pixel values are kept in their own units.

Normalisation: the task applies ``(stretch(x / scale_b) - mean_b) / std_b`` per band with
``stretch`` = ``asinh`` or ``linear`` (``data.stretch``); ``scale_b`` (the background noise:
1.4826 × MAD of the pixels in a 4-px border, for ``asinh``) and ``mean_b``/``std_b`` are
computed on (at most ``NORM_MAX_IMAGES`` evenly spaced images of) the **train** split and
returned by :meth:`info`; the task stores them in its checkpoint.

Augmentation (``data.augment=true``): each training image is transformed by one of the eight
exact rot90/flip elements of D4 chosen by a hash of ``(seed, epoch, idx)`` (independent of
workers and batch order), in :meth:`on_after_batch_transfer`.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cosmobench.datamodule import ArrayDataset, BaseDataModule, progress, sample_rng, split_indices
from cosmobench.errors import ConfigError, InputError

GALAXY10_CLASSES = [
    "disturbed", "merging", "round_smooth", "in_between_round_smooth", "cigar_shaped_smooth",
    "barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral", "edge_on_without_bulge",
    "edge_on_with_bulge",
]
NORM_MAX_IMAGES = 2000
BORDER = 4
STRETCHES = ("asinh", "linear")
LABEL_TYPES = ("hard", "soft")


# ----------------------------------------------------------------------------- helpers


def d4_transform(x: torch.Tensor, g: int) -> torch.Tensor:
    """Element ``g`` in 0..7 of D4 on the last two axes: ``rot90`` by ``g % 4`` quarter turns,
    then a left-right flip if ``g >= 4``. Exact (no interpolation)."""
    y = torch.rot90(x, g % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if g >= 4 else y


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def augment_elements(seed: int, epoch: int, idx: np.ndarray) -> np.ndarray:
    """D4 element (0..7) of each training sample: a hash of ``(seed, epoch, idx)``."""
    with np.errstate(over="ignore"):
        z = _splitmix64(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(epoch))
        z = _splitmix64(z ^ np.asarray(idx, dtype=np.uint64))
    return (z % np.uint64(8)).astype(np.int64)


def to_chw(arr: np.ndarray, n_bands: int, what: str) -> np.ndarray:
    """Stack of images ``(N, H, W[, C])`` or ``(N, C, H, W)`` -> float32 ``(N, C, H, W)``."""
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
    return a.astype(np.float32, copy=False)


def crop_resize(x: torch.Tensor, crop: int | None, size: int) -> torch.Tensor:
    """Centre-crop ``(..., H, W)`` to ``crop`` px (if given) then resize to ``size`` px."""
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


class LazyImageDataset(Dataset):
    """Items ``{"image", "label"[, "votes"], "idx"}`` read on demand by ``load(row)``."""

    def __init__(self, rows: np.ndarray, load, labels: np.ndarray, votes: np.ndarray | None,
                 crop: int | None, size: int):
        self.rows, self.load, self.labels, self.votes = rows, load, labels, votes
        self.crop, self.size = crop, size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = int(self.rows[i])
        img = crop_resize(torch.from_numpy(self.load(r)), self.crop, self.size)
        item = {"image": img.float(), "label": torch.tensor(int(self.labels[r])), "idx": torch.tensor(i)}
        if self.votes is not None:
            item["votes"] = torch.from_numpy(self.votes[r].astype(np.float32))
        return item


class _H5Images:
    """Picklable per-item reader of an HDF5 image stack (file opened lazily per process)."""

    def __init__(self, path: Path, key: str, n_bands: int):
        self.path, self.key, self.n_bands, self._fh = str(path), key, n_bands, None

    def __getstate__(self):
        return {**self.__dict__, "_fh": None}

    def __call__(self, r: int) -> np.ndarray:
        if self._fh is None:
            import h5py
            self._fh = h5py.File(self.path, "r")
        return to_chw(self._fh[self.key][r][None], self.n_bands, self.path)[0]


class _FileImages:
    def __init__(self, files: list[Path], n_bands: int):
        self.files, self.n_bands = files, n_bands

    def __call__(self, r: int) -> np.ndarray:
        return read_image_file(self.files[r], self.n_bands)


def read_image_file(path: Path, n_bands: int) -> np.ndarray:
    """One image file (PNG/JPEG via Pillow, or ``.npy``) -> float32 ``(C, H, W)``."""
    if path.suffix.lower() == ".npy":
        a = np.load(path)
    else:
        from PIL import Image
        with Image.open(path) as im:
            a = np.asarray(im.convert("L" if n_bands == 1 else "RGB"))
    if a.ndim == 2:
        a = a[..., None]
    return to_chw(a[None], n_bands, str(path))[0]


# ----------------------------------------------------------------------------- datamodule


class MorphologyDataModule(BaseDataModule):
    real_sources = ("galaxy10", "folder")
    export_suffix = ".h5"

    def __init__(self, cfg, seed: int = 0):
        super().__init__(cfg, seed)
        c = self.cfg
        self.image_size = int(c.get("image_size", 64))
        self.n_bands = int(c.get("n_bands", 3))
        if self.image_size < 8:
            raise ConfigError(f"data.image_size must be >= 8 px, got {self.image_size}")
        if self.n_bands < 1:
            raise ConfigError(f"data.n_bands must be >= 1, got {self.n_bands}")
        if c.get("stretch", "asinh") not in STRETCHES:
            raise ConfigError(f"data.stretch={c.get('stretch')!r} is not known; choose {', '.join(STRETCHES)}")
        if c.get("label_type", "hard") not in LABEL_TYPES:
            raise ConfigError(f"data.label_type={c.get('label_type')!r} is not known; choose hard or soft")
        self.class_names: list[str] = []
        self.norm: dict[str, list[float]] = {}

    # --- building -------------------------------------------------------------------------
    def build(self) -> dict[str, Dataset]:
        source = self.cfg.get("source", "sim")
        datasets = {"sim": self._build_sim, "galaxy10": self._build_galaxy10,
                    "folder": self._build_folder}[source]()
        self.norm = self._norm_stats(datasets["train"])
        return datasets

    def observation(self):
        from cosmobench.sim.galaxies import Observation
        c = self.cfg
        mag_range = c.get("mag_range", [16.0, 18.5])
        if len(mag_range) != 2 or mag_range[0] > mag_range[1]:
            raise ConfigError(f"data.mag_range must be [bright, faint], got {mag_range}")
        try:
            return Observation(
                image_size=self.image_size, n_bands=self.n_bands, pixel_scale=float(c.get("pixel_scale", 0.262)),
                psf=c.get("psf", "moffat"), psf_fwhm=float(c.get("psf_fwhm", 1.2)),
                moffat_beta=float(c.get("moffat_beta", 3.5)), zero_point=float(c.get("zero_point", 30.0)),
                sky_mag=float(c.get("sky_mag", 21.0)), read_noise=float(c.get("read_noise", 5.0)),
                gain=float(c.get("gain", 1.0)), mag_range=(float(mag_range[0]), float(mag_range[1])),
                oversample=int(c.get("oversample", 3)))
        except ValueError as exc:
            raise ConfigError(f"bad simulator setting: {exc}") from None

    def _build_sim(self) -> dict[str, Dataset]:
        from cosmobench.sim.galaxies import CLASSES, simulate_galaxy, vote_fractions
        classes = list(self.cfg.get("classes") or CLASSES)
        unknown = [k for k in classes if k not in CLASSES]
        if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
            raise ConfigError(f"data.classes must be >= 2 distinct names from {', '.join(CLASSES)}; got {classes}")
        self.class_names = classes
        obs = self.observation()
        soft = self.cfg.get("label_type", "hard") == "soft"
        n_votes, vote_noise = int(self.cfg.get("n_votes", 40)), float(self.cfg.get("vote_noise", 0.15))
        out = {}
        for split in ("train", "val", "test"):
            n = int(self.cfg.get(f"n_{split}"))
            images = np.empty((n, self.n_bands, self.image_size, self.image_size), np.float32)
            labels = np.empty(n, np.int64)
            votes = np.empty((n, len(classes)), np.float32) if soft else None
            for i in progress(range(n), n, f"simulating {split} galaxies"):
                rng = sample_rng(self.seed, split, i)
                labels[i] = rng.integers(len(classes))
                images[i], params = simulate_galaxy(rng, classes[labels[i]], obs)
                if soft:
                    votes[i] = vote_fractions(rng, int(labels[i]), params["mag"], classes, obs.mag_range,
                                              vote_noise, n_votes)
            arrays = {"image": images, "label": labels}
            if soft:
                arrays["votes"] = votes
            out[split] = ArrayDataset(arrays)
        return out

    def _split(self, n: int) -> dict[str, np.ndarray]:
        return split_indices(n, float(self.cfg.get("val_fraction", 0.15)),
                             float(self.cfg.get("test_fraction", 0.15)), self.seed)

    def _lazy_splits(self, n: int, load, labels, votes) -> dict[str, Dataset]:
        crop = self.cfg.get("crop")
        return {s: LazyImageDataset(rows, load, labels, votes, crop, self.image_size)
                for s, rows in self._split(n).items()}

    def _build_galaxy10(self) -> dict[str, Dataset]:
        import h5py
        path = self.require_path()
        ikey, lkey = self.cfg.get("image_key", "images"), self.cfg.get("label_key", "ans")
        try:
            with h5py.File(path, "r") as fh:
                missing = [k for k in (ikey, lkey) if k not in fh]
                if missing:
                    raise InputError(f"{path}: HDF5 has no dataset {missing[0]!r} (has: {', '.join(fh.keys())}); "
                                     f"set data.image_key / data.label_key")
                shape = fh[ikey].shape
                labels = np.asarray(fh[lkey][:]).astype(np.int64).reshape(-1)
        except OSError as exc:
            raise InputError(f"{path} is not a readable HDF5 file: {exc}") from None
        to_chw(np.zeros((1,) + tuple(shape[1:]), np.uint8), self.n_bands, f"{path}:{ikey}")  # validate layout
        if len(labels) != shape[0]:
            raise InputError(f"{path}: {shape[0]} images but {len(labels)} labels")
        if labels.min() < 0 or labels.max() >= len(GALAXY10_CLASSES):
            raise InputError(f"{path}: labels must be 0..9 (Galaxy10), got {labels.min()}..{labels.max()}")
        self.class_names = list(GALAXY10_CLASSES)
        if self.cfg.get("label_type", "hard") == "soft":
            raise ConfigError("data.label_type=soft needs vote fractions: use data.source=folder with data.vote_columns")
        return self._lazy_splits(len(labels), _H5Images(path, ikey, self.n_bands), labels, None)

    def _build_folder(self) -> dict[str, Dataset]:
        path = self.require_path()
        fcol, lcol = self.cfg.get("file_column", "file"), self.cfg.get("label_column", "label")
        vcols = list(self.cfg.get("vote_columns") or [])
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
        if not rows:
            raise InputError(f"{path}: CSV has no rows")
        need = [fcol] + (vcols if vcols else [lcol])
        missing = [k for k in need if k not in header]
        if missing:
            raise InputError(f"{path}: CSV has no column {missing[0]!r} (columns: {', '.join(header)})")
        files = [path.parent / r[fcol] for r in rows]
        absent = [f for f in files if not f.is_file()]
        if absent:
            raise InputError(f"{path}: image file not found: {absent[0]} ({len(absent)} missing)")
        votes = None
        if vcols:
            try:
                votes = np.array([[float(r[k]) for k in vcols] for r in rows], dtype=np.float64)
            except ValueError as exc:
                raise InputError(f"{path}: vote column is not numeric: {exc}") from None
            if (votes < 0).any() or not np.all(votes.sum(1) > 0):
                raise InputError(f"{path}: vote fractions must be >= 0 with a positive sum in every row")
            votes = votes / votes.sum(1, keepdims=True)
            self.class_names = list(vcols)
            labels = votes.argmax(1)
        else:
            raw = [r[lcol].strip() for r in rows]
            if all(v.lstrip("-").isdigit() for v in raw):
                labels = np.array([int(v) for v in raw])
                if labels.min() < 0:
                    raise InputError(f"{path}: integer labels must be >= 0, got {labels.min()}")
                self.class_names = [f"class_{k}" for k in range(labels.max() + 1)]
            else:
                self.class_names = sorted(set(raw))
                labels = np.array([self.class_names.index(v) for v in raw])
        if len(self.class_names) < 2:
            raise InputError(f"{path}: need at least two classes, got {self.class_names}")
        soft = self.cfg.get("label_type", "hard") == "soft"
        if soft and votes is None:
            raise ConfigError("data.label_type=soft needs vote fractions: set data.vote_columns")
        return self._lazy_splits(len(rows), _FileImages(files, self.n_bands), labels, votes if soft else None)

    # --- normalisation --------------------------------------------------------------------
    def _norm_stats(self, train: Dataset) -> dict[str, list[float]]:
        """Per-band stretch scale, mean and std on (a subset of) the train split."""
        n = len(train)
        take = np.unique(np.linspace(0, n - 1, min(n, NORM_MAX_IMAGES)).astype(int))
        if isinstance(train, ArrayDataset):
            x = train.arrays["image"][torch.as_tensor(take)].double()
        else:
            x = torch.stack([train[int(i)]["image"] for i in take]).double()
        if not torch.isfinite(x).all():
            raise InputError("training images contain NaN or infinite pixels")
        xb = x.transpose(0, 1).reshape(self.n_bands, len(take), -1)  # (C, N, H*W)
        stretch = self.cfg.get("stretch", "asinh")
        if stretch == "asinh":
            frame = torch.ones(x.shape[-2:], dtype=torch.bool)
            b = min(BORDER, x.shape[-1] // 4)
            frame[b:-b, b:-b] = False
            border = x[..., frame].transpose(0, 1).reshape(self.n_bands, -1)
            med = border.median(dim=1, keepdim=True).values
            scale = 1.4826 * (border - med).abs().median(dim=1).values
            # constant background (e.g. zero-padded 8-bit images): fall back to 1% of the
            # band's 1-99% pixel range so that asinh stays finite and well scaled
            spread = torch.quantile(xb.reshape(self.n_bands, -1)[:, ::max(1, xb[0].numel() // 200_000)].float(),
                                    torch.tensor([0.01, 0.99]), dim=1).double()
            fallback = (0.01 * (spread[1] - spread[0])).clamp_min(1e-6)
            scale = torch.where(scale > 0, scale, fallback)
            z = torch.asinh(xb / scale[:, None, None])
        else:
            scale = torch.ones(self.n_bands, dtype=torch.float64)
            z = xb
        mean = z.mean(dim=(1, 2))
        std = z.std(dim=(1, 2)).clamp_min(1e-6)
        return {"scale": scale.tolist(), "mean": mean.tolist(), "std": std.tolist()}

    def info(self) -> dict[str, Any]:
        self.setup()
        return {"image_size": self.image_size, "n_bands": self.n_bands, "classes": list(self.class_names),
                "stretch": self.cfg.get("stretch", "asinh"), "norm_scale": self.norm["scale"],
                "norm_mean": self.norm["mean"], "norm_std": self.norm["std"],
                "label_type": self.cfg.get("label_type", "hard"), "source": self.cfg.get("source", "sim")}

    # --- augmentation ---------------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        if self.cfg.get("augment") and trainer is not None and trainer.training and "image" in batch:
            batch = dict(batch)
            batch["image"] = apply_augmentation(batch["image"], batch["idx"], self.seed, trainer.current_epoch)
        return batch

    # --- predict --------------------------------------------------------------------------
    def export(self, split: str, path) -> Path:
        """Write the (preprocessed) images of ``split`` as HDF5 ``images`` ``(N, H, W, C)`` float32."""
        import h5py
        self.setup()
        ds = self.datasets[split]
        if isinstance(ds, ArrayDataset):
            x = ds.arrays["image"]
        else:
            x = torch.stack([ds[i]["image"] for i in range(len(ds))])
        path = Path(path)
        with h5py.File(path, "w") as fh:
            fh.create_dataset("images", data=x.permute(0, 2, 3, 1).numpy(), compression="gzip")
        return path

    def read_input(self, path) -> Dataset:
        """HDF5 (dataset ``data.image_key``, else ``images``) or ``.npy`` stack of images
        ``(N, H, W[, C])`` / ``(N, C, H, W)`` -> dataset of float images. Images already of
        ``data.image_size`` px are taken as preprocessed; others are centre-cropped to
        ``data.crop`` (real-data sources) and resized as in training."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
        if p.suffix.lower() == ".npy":
            try:
                arr = np.load(p, allow_pickle=False)
            except ValueError as exc:
                raise InputError(f"{p} is not a readable .npy array: {exc}") from None
        elif p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
            import h5py
            try:
                with h5py.File(p, "r") as fh:
                    keys = [k for k in (self.cfg.get("image_key", "images"), "images") if k in fh]
                    if not keys:
                        raise InputError(f"{p}: HDF5 has no dataset 'images' (has: {', '.join(fh.keys())})")
                    arr = fh[keys[0]][:]
            except OSError as exc:
                raise InputError(f"{p} is not a readable HDF5 file: {exc}") from None
        else:
            raise InputError(f"{p}: predict input must be .npy or .h5/.hdf5, got {p.suffix or 'no suffix'}")
        x = torch.from_numpy(to_chw(arr, self.n_bands, str(p)))
        if not torch.isfinite(x).all():
            raise InputError(f"{p}: images contain NaN or infinite pixels")
        if x.shape[-1] != self.image_size:
            source = self.cfg.get("source", "sim")
            x = crop_resize(x, self.cfg.get("crop") if source != "sim" else None, self.image_size)
        return ArrayDataset({"image": x.contiguous().numpy()})


def apply_augmentation(images: torch.Tensor, idx: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """Apply each sample's D4 element (:func:`augment_elements`) to a batch ``(B, C, H, W)``."""
    g = augment_elements(seed, epoch, idx.detach().cpu().numpy())
    out = images.clone()
    for e in np.unique(g):
        sel = torch.as_tensor(np.nonzero(g == e)[0], device=images.device)
        out[sel] = d4_transform(images[sel], int(e))
    return out
