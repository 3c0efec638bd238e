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
    ``data.path`` = table (CSV/ECSV/FITS/Parquet) with a ``data.file_column`` (image paths
    relative to the table: PNG/JPEG, FITS or ``.npy`` H×W[×C]) and either ``data.label_column`` (class names or ints 0..K-1) or
    ``data.vote_columns`` (vote fractions, one column per class; the class names are the
    column names, the hard label is their argmax).

Real images are centre-cropped to ``data.crop`` px (if set) and resized to
``data.image_size`` (bilinear, antialiased); pixel values are kept in their own units.

Normalisation: the task applies ``(stretch(x / scale_b) - mean_b) / std_b`` per band with
``stretch`` = ``asinh`` or ``linear`` (``data.stretch``); ``scale_b`` (the background noise:
1.4826 × MAD of the pixels in a 4-px border, for ``asinh``) and ``mean_b``/``std_b`` are
computed on (at most ``cosmobench.images.NORM_MAX_IMAGES`` evenly spaced images of) the **train** split and
returned by :meth:`info`; the task stores them in its checkpoint.

Augmentation (``data.augment=true``): each training image is transformed by one of the eight
exact rot90/flip elements of D4 chosen by a hash of ``(seed, epoch, idx)`` (independent of
workers and batch order), in :meth:`on_after_batch_transfer`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cosmobench.augment import apply_augmentation
from cosmobench.datamodule import ArrayDataset, BaseDataModule, progress, sample_rng, split_indices
from cosmobench.errors import ConfigError, InputError
from cosmobench.images import (STRETCHES, FileImages, H5Images, LazyImageDataset, check_finite_images,
                               crop_resize, read_folder_catalog, read_image_stack, to_chw,
                               train_band_statistics)

GALAXY10_CLASSES = [
    "disturbed", "merging", "round_smooth", "in_between_round_smooth", "cigar_shaped_smooth",
    "barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral", "edge_on_without_bulge",
    "edge_on_with_bulge",
]
LABEL_TYPES = ("hard", "soft")


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
        check_finite_images(datasets)
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
        return self._lazy_splits(len(labels), H5Images(path, ikey, self.n_bands), labels, None)

    def _build_folder(self) -> dict[str, Dataset]:
        path = self.require_path()
        cat = read_folder_catalog(path, self.cfg.get("file_column", "file"), self.cfg.get("label_column", "label"),
                                  list(self.cfg.get("vote_columns") or []))
        self.class_names, votes = cat["class_names"], cat["votes"]
        if len(self.class_names) < 2:
            raise InputError(f"{path}: need at least two classes, got {self.class_names}")
        soft = self.cfg.get("label_type", "hard") == "soft"
        if soft and votes is None:
            raise ConfigError("data.label_type=soft needs vote fractions: set data.vote_columns")
        return self._lazy_splits(len(cat["files"]), FileImages(cat["files"], self.n_bands), cat["labels"],
                                 votes if soft else None)

    # --- normalisation --------------------------------------------------------------------
    def _norm_stats(self, train: Dataset) -> dict[str, list[float]]:
        """Per-band stretch scale, mean and std on (a subset of) the train split."""
        return train_band_statistics(train, self.cfg.get("stretch", "asinh"))

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
        """Stack of images (:func:`cosmobench.images.read_image_stack`: HDF5 dataset
        ``data.image_key``, else ``images``; ``.npy``; ``.npz``; FITS cube) ``(N, H, W[, C])`` /
        ``(N, C, H, W)`` -> dataset of float images. Images already of
        ``data.image_size`` px are taken as preprocessed; others are centre-cropped to
        ``data.crop`` (real-data sources) and resized as in training."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
        key = self.cfg.get("image_key", "images")
        if p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
            import h5py
            try:
                with h5py.File(p, "r") as fh:
                    key = key if key in fh else "images"
            except OSError as exc:
                raise InputError(f"{p} is not a readable HDF5 file: {' '.join(str(exc).split())}") from None
        else:
            key = None
        x = torch.from_numpy(read_image_stack(p, key=key, n_bands=self.n_bands))
        check_finite_images(x, what=str(p))
        if x.shape[-1] != self.image_size:
            source = self.cfg.get("source", "sim")
            x = crop_resize(x, self.cfg.get("crop") if source != "sim" else None, self.image_size)
        return ArrayDataset({"image": x.contiguous().numpy()})

