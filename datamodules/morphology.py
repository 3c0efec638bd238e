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

from cosmobench.datamodule import ArrayDataset, ImageDataModule, progress, sample_rng
from cosmobench.errors import ConfigError, InputError
from cosmobench.images import (STRETCHES, FileImages, H5Images, LazyImageDataset, check_finite_images,
                               crop_resize, read_folder_catalog, read_image_stack, to_chw,
                               train_band_statistics, write_image_stack)

GALAXY10_CLASSES = [
    "disturbed", "merging", "round_smooth", "in_between_round_smooth", "cigar_shaped_smooth",
    "barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral", "edge_on_without_bulge",
    "edge_on_with_bulge",
]
LABEL_TYPES = ("hard", "soft")


# ----------------------------------------------------------------------------- datamodule


class MorphologyDataModule(ImageDataModule):
    real_sources = ("galaxy10", "folder")
    export_suffix = ".h5"

    def __init__(self, cfg, seed: int = 0):
        super().__init__(cfg, seed)
        c = self.cfg
        self.image_size = int(c["image_size"])
        self.n_bands = int(c["n_bands"])
        if self.image_size < 8:
            raise ConfigError(f"data.image_size must be >= 8 px, got {self.image_size}")
        if self.n_bands < 1:
            raise ConfigError(f"data.n_bands must be >= 1, got {self.n_bands}")
        if c["stretch"] not in STRETCHES:
            raise ConfigError(f"data.stretch={c['stretch']!r} is not known; choose {', '.join(STRETCHES)}")
        if c["label_type"] not in LABEL_TYPES:
            raise ConfigError(f"data.label_type={c['label_type']!r} is not known; choose hard or soft")
        self.soft = c["label_type"] == "soft"
        self.class_names: list[str] = []
        self.norm: dict[str, list[float]] = {}

    # --- building -------------------------------------------------------------------------
    def build(self) -> dict[str, Dataset]:
        datasets = {"sim": self._build_sim, "galaxy10": self._build_galaxy10,
                    "folder": self._build_folder}[self.cfg["source"]]()
        check_finite_images(datasets)  # every split (lazy ones: per image as it is read)
        self.norm = self._norm_stats(datasets["train"])
        return datasets

    def observation(self):
        """The simulator's :class:`~cosmobench.sim.galaxies.Observation` from the ``data`` node."""
        from cosmobench.sim.galaxies import Observation
        c = self.cfg
        mag_range = c["mag_range"]
        if len(mag_range) != 2 or mag_range[0] > mag_range[1]:
            raise ConfigError(f"data.mag_range must be [bright, faint], got {mag_range}")
        try:
            return Observation(
                image_size=self.image_size, n_bands=self.n_bands, pixel_scale=float(c["pixel_scale"]),
                psf=c["psf"], psf_fwhm=float(c["psf_fwhm"]), moffat_beta=float(c["moffat_beta"]),
                zero_point=float(c["zero_point"]), sky_mag=float(c["sky_mag"]), read_noise=float(c["read_noise"]),
                gain=float(c["gain"]), mag_range=(float(mag_range[0]), float(mag_range[1])),
                oversample=int(c["oversample"]))
        except ValueError as exc:
            raise ConfigError(f"bad simulator setting: {exc}") from None

    def _build_sim(self) -> dict[str, Dataset]:
        from cosmobench.sim.galaxies import CLASSES, simulate_galaxy, vote_fractions
        classes = list(self.cfg["classes"])
        unknown = [k for k in classes if k not in CLASSES]
        if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
            raise ConfigError(f"data.classes must be >= 2 distinct names from {', '.join(CLASSES)}; got {classes}")
        self.class_names = classes
        obs = self.observation()
        n_votes, vote_noise = int(self.cfg["n_votes"]), float(self.cfg["vote_noise"])
        out = {}
        for split in ("train", "val", "test"):
            n = int(self.cfg[f"n_{split}"])
            images = np.empty((n, self.n_bands, self.image_size, self.image_size), np.float32)
            labels = np.empty(n, np.int64)
            votes = np.empty((n, len(classes)), np.float32) if self.soft else None
            for i in progress(range(n), n, f"simulating {split} galaxies"):
                rng = sample_rng(self.seed, split, i)
                labels[i] = rng.integers(len(classes))
                images[i], params = simulate_galaxy(rng, classes[labels[i]], obs)
                if self.soft:
                    votes[i] = vote_fractions(rng, int(labels[i]), params["mag"], classes, obs.mag_range,
                                              vote_noise, n_votes)
            arrays = {"image": images, "label": labels}
            if self.soft:
                arrays["votes"] = votes
            out[split] = ArrayDataset(arrays)
        return out

    def _lazy(self, rows: np.ndarray, load, labels, votes) -> LazyImageDataset:
        return LazyImageDataset(rows, load, labels, votes if self.soft else None, self.cfg["crop"], self.image_size)

    def _real_splits(self, main: tuple, test: tuple | None) -> dict[str, Dataset]:
        """Splits from ``(load, labels, votes)`` of ``data.path`` and, if given, of ``data.test_path``."""
        out = {s: self._lazy(rows, *main) for s, rows in self.real_split_rows(len(main[1])).items()}
        if test is not None:
            out["test"] = self._lazy(np.arange(len(test[1])), *test)
        return out

    def _galaxy10_file(self, path: Path) -> tuple[H5Images, np.ndarray, None]:
        import h5py
        ikey, lkey = self.cfg["image_key"], self.cfg["label_key"]
        try:
            with h5py.File(path, "r") as fh:
                missing = [k for k in (ikey, lkey) if k not in fh]
                if missing:
                    raise InputError(f"{path}: HDF5 has no dataset {missing[0]!r} (has: {', '.join(fh.keys())}); "
                                     f"set data.image_key / data.label_key")
                shape = fh[ikey].shape
                labels = np.asarray(fh[lkey][:]).astype(np.int64).reshape(-1)
        except OSError as exc:
            raise InputError(f"{path} is not a readable HDF5 file: {' '.join(str(exc).split())}") from None
        to_chw(np.zeros((1,) + tuple(shape[1:]), np.uint8), self.n_bands, f"{path}:{ikey}")  # validate layout
        if len(labels) != shape[0]:
            raise InputError(f"{path}: {shape[0]} images but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(GALAXY10_CLASSES)):
            raise InputError(f"{path}: labels must be 0..9 (Galaxy10), got {labels.min()}..{labels.max()}")
        return H5Images(path, ikey, self.n_bands), labels, None

    def _build_galaxy10(self) -> dict[str, Dataset]:
        if self.soft:
            raise ConfigError("data.label_type=soft needs vote fractions: use data.source=folder with data.vote_columns")
        main = self._galaxy10_file(self.require_path())
        test = self.test_file()
        self.class_names = list(GALAXY10_CLASSES)
        return self._real_splits(main, self._galaxy10_file(test) if test is not None else None)

    def _folder_file(self, path: Path) -> tuple[dict, tuple]:
        c = self.cfg
        cat = read_folder_catalog(path, c["file_column"], c["label_column"], list(c["vote_columns"] or []))
        return cat, (FileImages(cat["files"], self.n_bands), cat["labels"], cat["votes"])

    def _build_folder(self) -> dict[str, Dataset]:
        path = self.require_path()
        cat, main = self._folder_file(path)
        self.class_names = cat["class_names"]
        if len(self.class_names) < 2:
            raise InputError(f"{path}: need at least two classes, got {self.class_names}")
        if self.soft and cat["votes"] is None:
            raise ConfigError("data.label_type=soft needs vote fractions: set data.vote_columns")
        test = None
        test_path = self.test_file()
        if test_path is not None:
            tcat, (tload, tlabels, tvotes) = self._folder_file(test_path)
            unknown = sorted(set(tcat["class_names"]) - set(self.class_names))
            if unknown:
                raise InputError(f"{test_path}: classes {unknown} do not occur in the training table {path}")
            remap = np.array([self.class_names.index(n) for n in tcat["class_names"]], dtype=np.int64)
            test = (tload, remap[tlabels] if len(remap) else tlabels, tvotes)
        return self._real_splits(main, test)

    # --- normalisation --------------------------------------------------------------------
    def _norm_stats(self, train: Dataset) -> dict[str, list[float]]:
        """Per-band stretch scale, mean and std on (a subset of) the train split."""
        return train_band_statistics(train, self.cfg["stretch"])

    def info(self) -> dict[str, Any]:
        self.setup()
        return {"image_size": self.image_size, "n_bands": self.n_bands, "classes": list(self.class_names),
                "stretch": self.cfg["stretch"], "norm_scale": self.norm["scale"],
                "norm_mean": self.norm["mean"], "norm_std": self.norm["std"],
                "label_type": self.cfg["label_type"], "source": self.cfg["source"]}

    # --- predict --------------------------------------------------------------------------
    def export(self, split: str, path) -> Path:
        """Write the (preprocessed) images of ``split`` as an image stack ``(N, C, H, W)`` float32
        in the format of ``path``'s extension (:func:`cosmobench.images.write_image_stack`)."""
        return write_image_stack(path, self.split_images(split))

    def read_input(self, path) -> Dataset:
        """Stack of images (:func:`cosmobench.images.read_image_stack`: HDF5 dataset
        ``data.image_key``, else ``images``; ``.npy``; ``.npz``; FITS cube) ``(N, H, W[, C])`` /
        ``(N, C, H, W)`` -> dataset of float images. Images already of
        ``data.image_size`` px are taken as preprocessed; others are centre-cropped to
        ``data.crop`` (real-data sources) and resized as in training."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
        key = self.cfg["image_key"]
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
            x = crop_resize(x, self.cfg["crop"] if self.cfg["source"] != "sim" else None, self.image_size)
        return ArrayDataset({"image": x.contiguous().numpy()})

