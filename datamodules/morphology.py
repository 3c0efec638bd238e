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
    ``data.label_scheme=galaxy10`` reports the simulated classes under Galaxy10's ten class
    names (:data:`SIM_TO_GALAXY10`; the other Galaxy10 classes never occur), so that a network
    trained on the simulator keeps its head when fine-tuned on, and is scored zero-shot on,
    Galaxy10 (``cosmobench test --checkpoint SIM.ckpt data.dataset=galaxy10-decals``).
``galaxy10``
    HDF5 in the Galaxy10 DECaLS layout: ``data.image_key`` (``images``, uint8 N×H×W×3) and
    ``data.label_key`` (``ans``, ints 0-9); the ten Galaxy10 class names. Read lazily per item.
``folder``
    ``data.path`` = table (CSV/ECSV/FITS/Parquet) with a ``data.file_column`` (image paths
    relative to the table: PNG/JPEG, FITS or ``.npy`` H×W[×C]) and either ``data.label_column`` (class names or ints 0..K-1) or
    ``data.vote_columns`` (vote fractions, one column per class; the class names are the
    column names, the hard label is their argmax).

Real images are centre-cropped to ``data.crop`` px (if set) and resized to
``data.image_size``; normalisation statistics, ``info``, ``export`` and ``read_input`` come
from :class:`cosmobench.image_data.ImageClassDataModule`, the exact D4 augmentation of training
batches (``data.augment``) from :class:`cosmobench.datamodule.ImageDataModule`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from cosmobench.datamodule import ArrayDataset, progress, sample_rng
from cosmobench.errors import ConfigError, InputError
from cosmobench.image_data import ImageClassDataModule, ImageClassSettings
from cosmobench.images import FileImages, H5Images, LazyImageDataset, read_folder_catalog, to_chw
from cosmobench.io import quiet_readers
from cosmobench.settings import build, setting
from cosmobench.sim.galaxies import GalaxySample, Observation

GALAXY10_CLASSES = [
    "disturbed", "merging", "round_smooth", "in_between_round_smooth", "cigar_shaped_smooth",
    "barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral", "edge_on_without_bulge",
    "edge_on_with_bulge",
]

#: simulated class -> the Galaxy10 class it stands for (``data.label_scheme=galaxy10``)
SIM_TO_GALAXY10 = {"irregular": "disturbed", "merger": "merging", "elliptical": "round_smooth",
                   "barred_spiral": "barred_spiral", "spiral": "unbarred_loose_spiral",
                   "edge_on": "edge_on_without_bulge"}


@dataclass
class MorphologyData(GalaxySample, Observation, ImageClassSettings):
    """The ``data`` node of ``morphology``: the simulator's survey (:class:`Observation`) and
    classes (:class:`GalaxySample`), the image-classification settings, and these."""

    source: str = setting("sim", ["sim", "galaxy10", "folder"], help="sim, or a real-data source")
    label_type: str = setting("hard", ["hard", "soft"],
                              help="train on class labels, or on vote fractions (sim: simulated votes)")
    label_scheme: str = setting("sim", ["sim", "galaxy10"],
                                help="sim: the simulated class names; galaxy10: report them as Galaxy10's ten "
                                     "classes (SIM_TO_GALAXY10) for transfer to Galaxy10")
    vote_columns: list[str] = setting([], "list[str]",
                                      help="folder: vote-fraction columns, one per class (the class names)")


class MorphologyDataModule(ImageClassDataModule):
    export_suffix = ".h5"

    def __init__(self, cfg, seed: int = 0):
        super().__init__(cfg, seed)
        self.soft = self.cfg["label_type"] == "soft"

    # --- building -------------------------------------------------------------------------
    def build_splits(self) -> dict[str, Dataset]:
        return {"sim": self._build_sim, "galaxy10": self._build_galaxy10,
                "folder": self._build_folder}[self.cfg["source"]]()

    def observation(self) -> Observation:
        """The simulator's survey from the ``data`` node."""
        try:
            return build(Observation, self.cfg)
        except ValueError as exc:
            raise ConfigError(f"bad simulator setting: {exc}") from None

    def _build_sim(self) -> dict[str, Dataset]:
        from cosmobench.sim.galaxies import simulate_galaxy, vote_fractions
        sample = build(GalaxySample, self.cfg)
        classes = list(sample.classes)
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ConfigError(f"data.classes must be >= 2 distinct names; got {classes}")
        self.class_names = classes
        target = np.arange(len(classes))  # label of simulated class k
        if self.cfg["label_scheme"] == "galaxy10":
            if self.soft:
                raise ConfigError("data.label_scheme=galaxy10 needs data.label_type=hard "
                                  "(Galaxy10 has no vote fractions)")
            self.class_names = list(GALAXY10_CLASSES)
            target = np.array([GALAXY10_CLASSES.index(SIM_TO_GALAXY10[c]) for c in classes])
        obs = self.observation()
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
                                              sample.vote_noise, sample.n_votes)
            arrays = {"image": images, "label": target[labels]}
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
            with quiet_readers(), h5py.File(path, "r") as fh:
                missing = [k for k in (ikey, lkey) if k not in fh]
                if missing:
                    raise InputError(f"{path}: HDF5 has no dataset {missing[0]!r} (has: {', '.join(fh.keys())}); "
                                     f"set data.image_key / data.label_key")
                for k in (ikey, lkey):
                    ds = fh[k]
                    if not isinstance(ds, h5py.Dataset) or ds.shape is None or ds.ndim == 0:
                        raise InputError(f"{path}: HDF5 {k!r} is not an array dataset (a group or a scalar)")
                    if ds.dtype.kind not in "biuf":
                        raise InputError(f"{path}: HDF5 dataset {k!r} is not numeric (dtype {ds.dtype})")
                shape = fh[ikey].shape
                labels = np.asarray(fh[lkey][()])
                if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
                    raise InputError(f"{path}: labels {lkey!r} must be integers 0..9")
                labels = labels.astype(np.int64).reshape(-1)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - h5py raises many types for corrupt files
            raise InputError(f"{path} is not a readable HDF5 file (truncated or corrupt?): "
                             f"{' '.join(str(exc).split())}") from None
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
        cat = read_folder_catalog(path, c["file_column"], c["label_column"], c["vote_columns"])
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

    def info(self) -> dict[str, Any]:
        return {**super().info(), "label_type": self.cfg["label_type"]}
