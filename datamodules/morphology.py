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
``batches``
    CIFAR-10-style pickled batches (as FR-DEEP, HTRU1, MiraBest publish them): ``data.path``
    = the training batch files: a directory (its ``data_batch_*`` files), a glob pattern
    (``DIR/data_batch_*``) or one file; numbered names sort by number (``data_batch_2``
    before ``data_batch_10``). ``data.test_path`` = the published test batch (else the
    seeded ``data.test_fraction`` of the training batches), ``data.meta_path`` = the meta
    file whose ``label_names`` are the class names (null: ``"0"``..``"K-1"``). Each batch is
    a pickled dict with ``data``, uint8 ``(N, C*H*W)``: per image the ``C = data.n_bands``
    channel planes one after the other, each ``H x W`` row-major (CIFAR-10's layout; FR-DEEP:
    ``C = 1``, 150x150), and ``labels``, N ints indexing ``label_names``. Pixel values are
    kept as stored (0-255, not rescaled); an all-zero image is kept (the normalisation's
    scale falls back to the pixel range when the background is constant). The files are read
    with an unpickler that admits only numpy's array globals (:func:`read_pickled_batch`):
    anything else is an InputError, never executed.

Real images are centre-cropped to ``data.crop`` px (if set) and resized to
``data.image_size``; normalisation statistics, ``info``, ``export`` and ``read_input`` come
from :class:`cosmobench.image_data.ImageClassDataModule`, the exact D4 augmentation of training
batches (``data.augment``) from :class:`cosmobench.datamodule.ImageDataModule`.
"""
from __future__ import annotations

import glob
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from cosmobench.datamodule import ArrayDataset, file_sha256, progress, sample_rng
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

#: the only globals a pickled batch may name: numpy's array reconstruction (numpy 1.x wrote
#: ``numpy.core.multiarray``, numpy 2 writes ``numpy._core.multiarray``)
BATCH_GLOBALS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"),
                           ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                           ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar")})


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in BATCH_GLOBALS:
            raise _RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def read_pickled_batch(path: str | Path) -> dict:
    """The dict pickled in ``path`` (a CIFAR-style batch or meta file), read with an unpickler
    that admits only :data:`BATCH_GLOBALS` (Python 2 strings decoded as latin-1, as CIFAR's
    readers do). Any other global, a corrupt file or a non-dict is a one-line InputError; the
    pickle is never allowed to call anything else."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _RefusedGlobal as exc:
        raise InputError(f"{path}: refused to unpickle: it names {exc}, but a pickled batch may hold only "
                         f"numpy arrays, lists, numbers and strings (not a batch file, or unsafe)") from None
    except Exception as exc:  # noqa: BLE001 - unpickling a corrupt file raises many types
        raise InputError(f"{path} is not a readable pickled batch (truncated or not a pickle?): "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: a pickled batch holds a dict, got {type(obj).__name__}")
    return obj


def _natural_key(path: str) -> list:
    """Sort key putting ``data_batch_2`` before ``data_batch_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


class BatchImages:
    """Per-item reader of images held in memory ``(N, C, H, W)`` (as stored, e.g. uint8)."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __call__(self, r: int) -> np.ndarray:
        return self.images[r].astype(np.float32)


@dataclass
class MorphologyData(GalaxySample, Observation, ImageClassSettings):
    """The ``data`` node of ``morphology``: the simulator's survey (:class:`Observation`) and
    classes (:class:`GalaxySample`), the image-classification settings, and these."""

    source: str = setting("sim", ["sim", "galaxy10", "folder", "batches"], help="sim, or a real-data source")
    meta_path: str | None = setting(None, "str or null",
                                    help="batches: pickled meta file with the class names (label_names; null: 0..K-1)")
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
                "folder": self._build_folder, "batches": self._build_batches}[self.cfg["source"]]()

    def path_sha256(self):
        """batches: the sha256 of every batch file and of the meta file."""
        if self.cfg["source"] != "batches":
            return super().path_sha256()
        meta = [self.require_path("meta_path")] if self.cfg["meta_path"] else []
        return [file_sha256(p) for p in self._batch_files() + meta]

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
        """Splits from ``(load, labels, votes)`` of ``data.path`` and, if given, of ``data.test_path``
        (``data.subset`` stratified by the labels)."""
        out = {s: self._lazy(rows, *main) for s, rows in self.real_split_rows(len(main[1]), main[1]).items()}
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

    def _batch_files(self) -> list[Path]:
        """The training batch files of ``data.path`` (a directory's ``data_batch_*``, a glob
        pattern or one file), in natural order."""
        spec = self.cfg["path"]
        if not spec:
            raise InputError("data.source='batches' needs data.path=DIR, a glob pattern or one batch file")
        p = Path(spec).expanduser()
        pattern = str(p / "data_batch_*") if p.is_dir() else str(p) if re.search(r"[*?[]", spec) else None
        if pattern is None:
            if not p.is_file():
                raise InputError(f"data file not found: {p} (data.path)")
            return [p]
        files = [Path(f) for f in sorted(glob.glob(pattern), key=_natural_key) if Path(f).is_file()]
        if not files:
            raise InputError(f"data.path={spec!r}: no batch file matches {pattern}")
        return files

    def _read_batches(self, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(N, C, H, W)`` (dtype as stored) and labels ``(N,)`` of the batch files."""
        c = self.n_bands
        images, labels = [], []
        for p in paths:
            entry = read_pickled_batch(p)
            missing = [k for k in ("data", "labels") if k not in entry]
            if missing:
                raise InputError(f"{p}: a pickled batch needs the keys 'data' and 'labels' "
                                 f"(missing {missing[0]!r}; has: {', '.join(map(str, entry))})")
            data, lab = np.asarray(entry["data"]), np.asarray(entry["labels"])
            if data.ndim != 2 or data.dtype.kind not in "biuf":
                raise InputError(f"{p}: 'data' must be a numeric (N, C*H*W) array, got {data.dtype} {data.shape}")
            side = int(np.sqrt(data.shape[1] // c))
            if c * side * side != data.shape[1]:
                raise InputError(f"{p}: {data.shape[1]} values per image are not data.n_bands={c} square planes "
                                 f"(C*H*W)")
            if lab.shape != (len(data),) or lab.dtype.kind not in "iu":
                raise InputError(f"{p}: 'labels' must be {len(data)} integers (one per image), "
                                 f"got {lab.dtype} {lab.shape}")
            if images and images[0].shape[1:] != (c, side, side):
                raise InputError(f"{p}: {side}x{side} images, but {paths[0]} has "
                                 f"{images[0].shape[-1]}x{images[0].shape[-1]}")
            images.append(data.reshape(-1, c, side, side))
            labels.append(lab.astype(np.int64))
        return np.concatenate(images), np.concatenate(labels)

    def _build_batches(self) -> dict[str, Dataset]:
        if self.soft:
            raise ConfigError("data.label_type=soft needs vote fractions: use data.source=folder with data.vote_columns")
        x, y = self._read_batches(self._batch_files())
        test_path = self.test_file()
        test = self._read_batches([test_path]) if test_path is not None else None
        if self.cfg["meta_path"]:
            meta_path = self.require_path("meta_path")
            meta = read_pickled_batch(meta_path)
            names = meta.get("label_names")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise InputError(f"{meta_path}: the meta file needs 'label_names', a list of class names "
                                 f"(has: {', '.join(map(str, meta))})")
            where = f"the {len(names)} label_names of {meta_path}"
        else:
            k = int(max(y.max(initial=0), test[1].max(initial=0) if test is not None else 0)) + 1
            names, where = [str(i) for i in range(k)], "data.meta_path=null: classes 0..K-1"
        for what, lab in (("data.path", y), ("data.test_path", None if test is None else test[1])):
            if lab is not None and len(lab) and (lab.min() < 0 or lab.max() >= len(names)):
                raise InputError(f"{what}: labels {lab.min()}..{lab.max()} do not index {where}")
        if len(names) < 2:
            raise InputError(f"need at least two classes, got {names}")
        self.class_names = list(names)
        return self._real_splits((BatchImages(x), y, None),
                                 None if test is None else (BatchImages(test[0]), test[1], None))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "label_type": self.cfg["label_type"]}
