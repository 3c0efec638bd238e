"""Datamodule of the ``lensfinding`` task: multi-band cutouts -> lens (1) / not a lens (0).

Sources (``data.source``):

``sim`` (default)
    :class:`cosmobench.sim.lensing.LensSimulator` (model, units and priors in its module
    docstring): ``data.n_bands`` bands, ``data.image_size``² px at ``data.pixel_scale`` "/px, per-band
    ``data.zero_point`` / ``data.sky_mag`` / ``data.psf_fwhm``, lens fraction ``data.lens_fraction``,
    hard negatives ``data.hard_negatives`` (fraction ``data.hard_negative_fraction`` of the
    negatives). Sample ``i`` of split ``s`` is a pure function of ``(seed, s, i)``; the splits are
    rendered in batches at set-up. With ``data.resample_train`` the training cutouts are drawn
    afresh every epoch (:class:`ResampledSimDataset`; sample ``i`` of epoch ``e`` is a pure function
    of ``(seed, train, e, i)``, epoch 0 is the fixed set); validation and test stay fixed. Items also carry the truth used for the binned completeness:
    ``theta_e`` (arcsec), ``source_mag`` (unlensed, reference band), ``magnification`` and
    ``kind`` (index into :data:`cosmobench.sim.lensing.KINDS`), NaN / -1 where not applicable.
``lenstronomy``
    An external simulator (:mod:`cosmobench.sim.lenstronomy_peer`, the ``peers`` extra; data set
    ``lenstronomy-lenses``): cutouts rendered by lenstronomy with an elliptical power-law mass +
    external shear, bulge + disk lens light and a Sérsic source, observed through this node's survey
    settings (bands, pixel scale, stamp size, zero points, sky, PSF, noise, super-sampling) and
    priors (Einstein radius, magnitudes, source size, lens fraction). ``data.n_train`` / ``data.n_val``
    labelled cutouts of the run's seed (cut to ``data.subset`` if set) and a test set of
    ``data.n_test`` cutouts fixed by ``data.render_seed`` (the same for every run seed); sample ``i``
    of split ``s`` is a pure function of (seed, s, i). Rendered samples are cached under
    ``$COSMOBENCH_DATA/lenstronomy-lenses/renders/``. Items carry ``theta_e``, ``source_mag``,
    ``magnification`` and ``kind`` (0 lens, 1 non-lens) for the binned completeness.
``stack``
    ``data.path``: one file holding an image stack (``.npy``, ``.npz``, ``.h5``/``.hdf5`` or a FITS
    cube; :func:`cosmobench.images.read_image_stack`, dataset/member/HDU ``data.image_key``).
    Labels (0/1): the ``data.label_key`` member/dataset of the same ``.npz``/``.h5`` file, or
    column ``data.label_column`` of the table ``data.label_path`` (CSV/FITS/ECSV/Parquet, one row
    per cutout in stack order).
``folder``
    ``data.path``: a table (CSV/FITS/...) with a ``data.file_column`` of image files (FITS/NPY/PNG,
    relative to the table) and a ``data.label_column`` of 0/1 labels.

Real data are split into train/val/test with ``data.val_fraction``/``data.test_fraction``
(seeded), or into train/val with ``data.test_path`` as the fixed test set (a second stack with
its own labels in ``.npz``/``.h5``, or a second folder table); cutouts are centre-cropped to ``data.crop`` (if set) and resized to ``data.image_size``.

``predict`` input (:meth:`LensFindingDataModule.read_input`): an image stack file as above
(labels not needed) or a folder table (``data.file_column``; labels ignored); the output has
one row per cutout: ``index`` (position in the stack / row of the table), ``score`` = p(lens) and
``pred_label`` (score >= 0.5).

Normalisation statistics, ``info``, ``export`` and ``read_input`` come from
:class:`cosmobench.image_data.ImageClassDataModule`, the exact D4 augmentation of training
batches (``data.augment``) from :class:`cosmobench.datamodule.ImageDataModule`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cosmobench.datamodule import ArrayDataset, EpochSeededSampler, ExternalRenders, check_memory, progress
from cosmobench.errors import ConfigError, InputError
from cosmobench.image_data import ImageClassDataModule, ImageClassSettings
from cosmobench.images import (HDF5_SUFFIXES, FileImages, LazyImageDataset, check_finite_images, crop_resize, load_array,
                               read_folder_catalog, read_image_stack)
from cosmobench.settings import build, setting
from cosmobench.sim.lensing import LensSimConfig

CLASSES = ["non_lens", "lens"]
#: completeness bins per property: edges spread evenly over the simulator's prior range
N_COMPLETENESS_BINS = 4
SIM_BATCH = 256
TRUTH_KEYS = ("theta_e", "source_mag", "magnification", "kind")


def sim_arrays(sim, indices: np.ndarray, split: str, seed: int) -> dict[str, np.ndarray]:
    """Simulated samples ``indices`` of ``split``: ``image`` ``(B, C, H, W)`` float32, ``label``
    int64 and the truth :data:`TRUTH_KEYS` (float32; ``kind`` int64)."""
    img, t = sim.simulate(indices, split, seed)
    arrays = {"image": img.numpy(), "label": t["label"].numpy().astype(np.int64)}
    arrays.update({k: t[k].numpy().astype(np.float32 if k != "kind" else np.int64) for k in TRUTH_KEYS})
    return arrays


class ResampledSimDataset(Dataset):
    """Training split of ``n`` simulated cutouts that is drawn afresh every epoch
    (``data.resample_train``: the simulator's unlimited supply instead of a fixed set).

    Item ``k = epoch * n + i`` (the keys :class:`EpochResampledSampler` yields) is sample ``i`` of
    epoch ``epoch`` = simulator sample ``k`` of the ``train`` stream, i.e. a pure function of
    ``(seed, "train", epoch, i)`` whatever the batch composition, process or ``num_workers``;
    epoch 0 is exactly the fixed training set (kept in memory as :attr:`arrays`, which the
    normalisation statistics are computed from). Batches are rendered at once
    (``__getitems__``, called by the DataLoader's fetcher in the main process or a worker).
    ``idx`` is ``i``, so the per-sample D4 augmentation stays a function of (seed, epoch, i).
    Validation and test splits stay fixed (their own streams)."""

    def __init__(self, epoch0: ArrayDataset, sim_config, seed: int):
        self.epoch0, self.sim_config, self.seed = epoch0, sim_config, int(seed)
        self.arrays, self.n = epoch0.arrays, len(epoch0)
        self._sim = None  # built lazily in the process that renders (not pickled into workers)

    def __len__(self) -> int:
        return self.n

    def __getstate__(self):
        return {**self.__dict__, "_sim": None}

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([k])[0]

    def __getitems__(self, keys) -> list[dict[str, torch.Tensor]]:
        keys = np.asarray([int(k) for k in keys], dtype=np.int64)
        if (keys < 0).any():
            raise IndexError(f"negative sample key {int(keys.min())}")
        if (keys < self.n).all():
            return [self.epoch0[int(k)] for k in keys]
        if self._sim is None:
            from cosmobench.sim.lensing import LensSimulator
            self._sim = LensSimulator(self.sim_config)
        arrays = {k: torch.from_numpy(v) for k, v in sim_arrays(self._sim, keys, "train", self.seed).items()}
        return [{**{name: v[j] for name, v in arrays.items()}, "idx": torch.tensor(int(k) % self.n, dtype=torch.long)}
                for j, k in enumerate(keys)]


class EpochResampledSampler(EpochSeededSampler):
    """:class:`~cosmobench.datamodule.EpochSeededSampler` (same shuffle) yielding the keys
    ``epoch * n + i`` of :class:`ResampledSimDataset`; Lightning's ``set_epoch`` before every epoch
    (also after a resume) selects the epoch's fresh samples."""

    def __iter__(self):
        return (self.epoch * self.n + i for i in super().__iter__())


@dataclass
class LensFindingData(LensSimConfig, ImageClassSettings, ExternalRenders):
    """The ``data`` node of ``lensfinding``: the simulator's survey and priors
    (:class:`LensSimConfig`), the image-classification settings, and these."""

    source: str = setting("sim", ["sim", "lenstronomy", "stack", "folder"],
                          help="sim, lenstronomy (an external simulator, the peers extra), or a real-data source")
    resample_train: bool = setting(False, "bool", help="sim: fresh simulated training cutouts every epoch")
    label_path: str | None = setting(None, "str or null",
                                     help="stack: table of the labels (column data.label_column), one row per cutout")


class LensFindingDataModule(ImageClassDataModule):
    export_suffix = ".npy"

    @classmethod
    def preflight(cls, cfg) -> None:
        """The base checks; ``data.source=lenstronomy`` needs lenstronomy (exit 2 naming the
        install command) and no ``data.path``, and its rendered splits must fit in memory."""
        if cfg["source"] != "lenstronomy":
            return super().preflight(cfg)
        from cosmobench.sim.lenstronomy_peer import require_lenstronomy
        require_lenstronomy()
        check_memory(cls.memory_estimate({**cfg, "source": "sim"}))  # held in memory like simulated splits

    def __init__(self, cfg, seed: int = 0):
        super().__init__(cfg, seed)
        self.class_names = list(CLASSES)
        self.sim_config()  # bad simulator settings fail before anything is written
        self._stage: str | None = None
        if self.cfg["resample_train"] and self.cfg["source"] not in ("sim", "lenstronomy"):
            self._refuse_resample()

    def _refuse_resample(self):
        raise ConfigError(f"data.resample_train=true needs simulated data (data.source=sim), "
                          f"not data.source={self.cfg['source']}")

    def setup(self, stage: str | None = None) -> None:
        """As the base; remembers the stage: a ``test``/``predict`` run of ``data.source=lenstronomy``
        renders only the test split (and ignores ``data.resample_train``, a training setting that a
        simulator checkpoint's config may carry)."""
        if not self.datasets:
            self._stage = stage
            if self.cfg["source"] == "lenstronomy" and self.cfg["resample_train"] and not self._test_only():
                self._refuse_resample()
        super().setup(stage)

    def _test_only(self) -> bool:
        return self._stage in ("test", "predict")

    # --- simulator ------------------------------------------------------------------------
    def sim_config(self) -> LensSimConfig:
        """The simulator's settings from the ``data`` node."""
        try:
            return build(LensSimConfig, self.cfg)
        except ValueError as exc:
            raise ConfigError(f"bad lens-simulator setting: {exc}") from None

    def simulate_split(self, split: str, n: int) -> ArrayDataset:
        """``n`` simulated cutouts of ``split`` with labels and truth (see the module docstring)."""
        from cosmobench.sim.lensing import LensSimulator
        sim = LensSimulator(self.sim_config())
        parts = []
        starts = range(0, n, SIM_BATCH)
        for a in progress(starts, len(starts), f"simulating {split} lens cutouts", min_total=8):
            parts.append(sim_arrays(sim, np.arange(a, min(a + SIM_BATCH, n)), split, self.seed))
        return ArrayDataset({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})

    # --- building -------------------------------------------------------------------------
    def build_splits(self) -> dict[str, Dataset]:
        source = self.cfg["source"]
        if source == "stack":
            return self._build_stack()
        if source == "folder":
            return self._build_folder()
        if source == "lenstronomy":
            return self._build_lenstronomy()
        datasets = {s: self.simulate_split(s, int(self.cfg[f"n_{s}"])) for s in ("train", "val", "test")}
        if self.cfg["resample_train"]:
            datasets["train"] = ResampledSimDataset(datasets["train"], self.sim_config(), self.seed)
        return datasets

    def _build_lenstronomy(self) -> dict[str, Dataset]:
        """External-simulator splits (module docstring), read from / written to the render cache.
        A test-only run renders the test split alone and uses it for train/val too (those serve
        only the normalisation statistics of :meth:`info`, which a checkpoint brings its own of)."""
        from cosmobench.datasets.download import dataset_dir
        from cosmobench.sim.lenstronomy_peer import render_cached
        cache = dataset_dir("lenstronomy-lenses") / "renders"
        cfg, c = self.sim_config(), self.cfg
        seeds = ExternalRenders.split_seeds(c["render_seed"], self.seed, self._test_only())
        out = {}
        for split, seed in seeds.items():
            arrays = render_cached(cfg, split, seed, int(c[f"n_{split}"]), cache,
                                   lambda it, n, desc: progress(it, n, desc, min_total=4))
            if split == "train":
                rows = self.subset_rows(np.arange(len(arrays["label"])), arrays["label"])
                arrays = {k: v[rows] for k, v in arrays.items()}
            out[split] = ArrayDataset(arrays)
        if self._test_only():
            out["train"] = out["val"] = out["test"]
        return out

    @staticmethod
    def _check_labels(labels: np.ndarray, where: str) -> np.ndarray:
        labels = np.asarray(labels).reshape(-1)
        try:
            as_float = labels.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{where}: labels must be 0 (non-lens) or 1 (lens), got non-numeric values") from None
        if not np.isin(as_float, (0.0, 1.0)).all():
            bad = labels[~np.isin(as_float, (0.0, 1.0))][0]
            raise InputError(f"{where}: labels must be 0 (non-lens) or 1 (lens), got {bad!r}")
        return as_float.astype(np.int64)

    def _stack_labels(self, path: Path, n: int, label_path: str | None) -> np.ndarray:
        c = self.cfg
        if label_path:
            from cosmobench.io import read_table
            table = read_table(Path(label_path).expanduser(), [c["label_column"]])
            labels, where = np.asarray(table[c["label_column"]]), f"{label_path}:{c['label_column']}"
        elif path.name.lower().endswith((".npz",) + HDF5_SUFFIXES):
            labels = load_array(path, c["label_key"])  # the shared reader's npz member / HDF5 dataset
            where = f"{path}:{c['label_key']}"
        else:
            raise InputError(f"{path}: a {path.suffix} stack holds no labels; set data.label_path=TABLE "
                             f"(column data.label_column) or use .npz/.h5 with a '{c['label_key']}' member")
        labels = self._check_labels(labels, where)
        if len(labels) != n:
            raise InputError(f"{where}: {len(labels)} labels for {n} images")
        return labels

    def _stack_file(self, path: Path, label_path: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(N, C, size, size)`` and 0/1 labels ``(N,)`` of one stack file."""
        x = read_image_stack(path, key=self.cfg["image_key"] if path.suffix.lower() != ".npy" else None,
                             n_bands=self.n_bands)
        labels = self._stack_labels(path, len(x), label_path)
        x = torch.from_numpy(x)
        check_finite_images(x, what=str(path))
        self.resize_memory_check(len(x), str(path))
        return crop_resize(x, self.cfg["crop"], self.image_size).contiguous().numpy(), labels

    def _real_splits(self, make, n: int, test) -> dict[str, Dataset]:
        """Train/val(/test) datasets ``make(rows)`` of ``data.path`` (+ the ``data.test_path`` dataset)."""
        out = {s: make(rows) for s, rows in self.real_split_rows(n).items()}
        if test is not None:
            out["test"] = test
        labels = np.concatenate([np.asarray(d.labels[d.rows] if hasattr(d, "rows") else d.arrays["label"])
                                 for s, d in out.items() if s != "test"])
        if len(np.unique(labels)) < 2:
            raise InputError(f"{self.cfg['path']}: training needs both lenses (1) and non-lenses (0)")
        return out

    def _build_stack(self) -> dict[str, Dataset]:
        """``data.path`` stack; ``data.test_path`` (a stack with its own labels: .npz/.h5 ``data.label_key``)."""
        x, labels = self._stack_file(self.require_path(), self.cfg["label_path"])
        test_path = self.test_file()
        test = None
        if test_path is not None:
            tx, ty = self._stack_file(test_path, None)
            test = ArrayDataset({"image": tx, "label": ty})
        return self._real_splits(lambda rows: ArrayDataset({"image": x[rows], "label": labels[rows]}), len(x), test)

    def _folder_file(self, path: Path) -> tuple[FileImages, np.ndarray]:
        cat = read_folder_catalog(path, self.cfg["file_column"], self.cfg["label_column"])
        return FileImages(cat["files"], self.n_bands), self._check_labels(np.asarray(cat["labels"]),
                                                                          f"{path}:{self.cfg['label_column']}")

    def _build_folder(self) -> dict[str, Dataset]:
        load, labels = self._folder_file(self.require_path())
        lazy = lambda rows, ld, lb: LazyImageDataset(rows, ld, lb, None, self.cfg["crop"], self.image_size)  # noqa: E731
        test_path = self.test_file()
        test = None
        if test_path is not None:
            tload, tlabels = self._folder_file(test_path)
            test = lazy(np.arange(len(tlabels)), tload, tlabels)
        return self._real_splits(lambda rows: lazy(rows, load, labels), len(labels), test)

    def shuffle_sampler(self, ds: Dataset) -> Sampler:
        """With ``data.resample_train`` (simulated data): fresh cutouts every epoch
        (:class:`ResampledSimDataset` / :class:`EpochResampledSampler`); else the base sampler."""
        if isinstance(ds, ResampledSimDataset):
            return EpochResampledSampler(len(ds), self.seed)
        return super().shuffle_sampler(ds)

    # --- facts for the model ----------------------------------------------------------------
    def input_pixel_scale(self) -> float | None:
        """Arcsec per network input pixel: lenstronomy renders at ``data.pixel_scale``, as the simulator."""
        if self.cfg["source"] == "lenstronomy":
            return float(self.cfg["pixel_scale"])
        return super().input_pixel_scale()

    def info(self) -> dict[str, Any]:
        out = super().info()
        if self.cfg["source"] in ("sim", "lenstronomy"):  # both carry the truth of every cutout
            c = self.cfg
            out["completeness_edges"] = {
                "theta_e": np.linspace(*c["theta_e_range"], N_COMPLETENESS_BINS + 1).tolist(),
                "source_mag": np.linspace(*c["source_mag_range"], N_COMPLETENESS_BINS + 1).tolist()}
        return out
