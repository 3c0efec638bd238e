"""Shared LightningDataModule machinery for all tasks.

A task's datamodule subclasses :class:`BaseDataModule` and implements
:meth:`~BaseDataModule.build` (return the three splits), :meth:`~BaseDataModule.info`
(json-able facts the model needs: shapes, class names, normalisation statistics
computed on the *train* split) and, for ``cosmobench predict``,
:meth:`~BaseDataModule.read_input`.

Every dataset item is a ``dict`` of tensors that includes ``"idx"`` (the sample's
index within its split). The index lets test outputs be gathered across DDP ranks
and de-duplicated, so that DDP and one process give identical metrics.

Real data (``data.source`` other than ``sim``): rows of ``data.path`` are split into
train/val/test by the seeded :func:`split_indices` (``data.val_fraction``,
``data.test_fraction``), or, when the task declares ``data.test_path`` and it is set, the
test split is that file (a published catalogue's own test set) and ``data.path`` gives
train/val only (:meth:`BaseDataModule.real_split_rows`, :meth:`BaseDataModule.test_file`).
Both files enter the dataset fingerprint. See ``docs/ARCHITECTURE.md``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from cosmobench.errors import InputError
from cosmobench.settings import setting

log = logging.getLogger(__name__)


@dataclass
class DataSettings:
    """Settings of every ``data`` node (:class:`BaseDataModule`'s loaders). A task's data
    settings class inherits it and declares ``source``: ``"sim"`` and its real-data sources."""

    batch_size: int = setting(128, "positive int", help="samples per batch")
    num_workers: int = setting(0, "non-negative int", help="DataLoader worker processes (0: the main process)")
    dataset: str | None = setting(None, "str or null",
                                  help="a named public data set (`cosmobench data list`); it sets data.source and "
                                       "the file keys to its cached files")
    subset: int | None = setting(None, "positive int or null",
                                 help="real data: train on a seeded subset of this many training rows "
                                      "(stratified by class where the task has classes)")


@dataclass
class SimSplits:
    """Sizes of the simulated splits (sample i of split s depends only on seed, s and i)."""

    n_train: int = setting(2000, "positive int", help="simulated training samples")
    n_val: int = setting(500, "positive int", help="simulated validation samples")
    n_test: int = setting(1000, "positive int", help="simulated test samples")


@dataclass
class ExternalRenders:
    """An external simulator rendered locally (data sets of kind ``external``: lenstronomy,
    GalSim): train/val are rendered with the run's seed, the test set with a fixed one, so every
    run seed is scored on the same test set."""

    render_seed: int = setting(0, "non-negative int",
                               help="external renderer: seed of the rendered test set (train/val use the run's seed)")

    @staticmethod
    def split_seeds(render_seed: int, run_seed: int, test_only: bool) -> dict[str, int]:
        """Seed of each split to render; a test-only run renders the test split alone."""
        if test_only:
            return {"test": int(render_seed)}
        return {"train": int(run_seed), "val": int(run_seed), "test": int(render_seed)}


@dataclass
class FileSplits:
    """A real-data file split into train/val/test by seeded row fractions (:func:`split_indices`)."""

    path: str | None = setting(None, "str or null", help="the real-data file (data.source other than sim)")
    val_fraction: float = setting(0.15, "0 <= float < 1", help="fraction of the file's rows held out for validation")
    test_fraction: float = setting(0.15, "0 <= float < 1",
                                   help="fraction held out for test (unused with data.test_path)")


@dataclass
class FixedTestFile:
    """A published test set in its own file (:meth:`BaseDataModule.real_split_rows`)."""

    test_path: str | None = setting(None, "str or null",
                                    help="real data: a fixed test set with the layout of data.path")

SPLITS = {"train": 0, "val": 1, "test": 2}

def sample_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """Seed sequence of simulated sample ``index`` of ``split``: a pure function of the three."""
    return np.random.SeedSequence([int(seed), SPLITS[split], int(index)])


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Random generator for simulated sample (or fixed-size chunk) ``index`` of ``split``."""
    return np.random.default_rng(sample_seed(seed, split, index))


def progress(iterable, total: int, desc: str, min_total: int = 500):
    """tqdm bar for long loops (data simulation, loading); silent for short loops and
    when stderr is not a terminal."""
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False, disable=None if total >= min_total else True)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Disjoint, seeded train/val/test row indices for a real catalogue of ``n`` rows.
    ``test_fraction=0`` gives an empty test split (the test set comes from another file)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 1234])).permutation(n)
    n_val, n_test = int(round(val_fraction * n)), int(round(test_fraction * n))
    if n - n_val - n_test < 1 or (test_fraction > 0 and n_test < 1):
        raise InputError(f"only {n} usable rows: too few to split into train/val/test")
    return {"test": np.sort(perm[:n_test]), "val": np.sort(perm[n_test:n_test + n_val]),
            "train": np.sort(perm[n_test + n_val:])}


class RowBatch(Sequence):
    """Rows of an :class:`ArrayDataset` fetched at once: :attr:`batch` is the collated batch
    ``{key: (B, ...), "idx": (B,)}``, built with one ``index_select`` per array.

    As a sequence it is the ``B`` per-row items (views of :attr:`batch`), equal to
    ``[ds[i] for i in indices]``; so torch's ``default_collate``, or any code that expects the
    list of items a DataLoader fetcher normally builds, gets the same batch as before, and
    :func:`collate_rows` (the collate function of every cosmobench loader) returns
    :attr:`batch` with no per-row work."""

    def __init__(self, batch: dict[str, torch.Tensor]):
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["idx"])

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[k] for k in range(*j.indices(len(self)))]
        return {k: v[j] for k, v in self.batch.items()}


def collate_rows(items):
    """Collate function of the cosmobench DataLoaders: a :class:`RowBatch` (an
    :class:`ArrayDataset` batch fetched with ``__getitems__``) is already collated; anything
    else (a list of per-item dicts from another dataset) goes through torch's
    ``default_collate``. Both give identical batches for an :class:`ArrayDataset`."""
    if isinstance(items, RowBatch):
        return items.batch
    return default_collate(items)


class ArrayDataset(Dataset):
    """Dataset over a dict of equal-length arrays; item ``i`` is ``{key: tensor, "idx": i}``.

    A DataLoader with ``batch_size`` fetches a whole batch with :meth:`__getitems__` (torch's
    batched-fetch protocol; used by the fetcher in the main process and in every worker):
    one ``index_select`` per array instead of ``B`` single-row items and a ``torch.stack``
    of them. The indices still come from the loader's sampler (:class:`EpochSeededSampler`,
    or Lightning's ``DistributedSampler`` under DDP), so the batches are the same, in the same
    order, whatever ``num_workers`` -- and equal to the per-row path (``tests/test_datamodule_batched.py``).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(f"arrays of unequal length: {lengths}")
        self.arrays = {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in arrays.items()}
        self.n = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {k: v[i] for k, v in self.arrays.items()}
        item["idx"] = torch.tensor(i, dtype=torch.long)
        return item

    def __getitems__(self, indices: list[int]) -> RowBatch | list[dict[str, torch.Tensor]]:
        """Items ``indices`` as one :class:`RowBatch`. A subclass that overrides
        :meth:`__getitem__` gets its own items, one by one."""
        if type(self).__getitem__ is not ArrayDataset.__getitem__:
            return [self[i] for i in indices]
        idx = torch.as_tensor(indices, dtype=torch.long)
        if idx.ndim != 1:
            raise IndexError(f"ArrayDataset.__getitems__ takes a list of row indices, got shape {tuple(idx.shape)}")
        in_worker = get_worker_info() is not None
        batch = {}
        for k, v in self.arrays.items():
            out = None
            if in_worker:  # as default_collate: fill shared memory, so sending it to the main process is no copy
                out = torch.empty((len(idx),) + tuple(v.shape[1:]), dtype=v.dtype).share_memory_()
            batch[k] = torch.index_select(v, 0, idx, out=out)
        batch["idx"] = idx
        return RowBatch(batch)


class EpochSeededSampler(Sampler[int]):
    """Shuffles with a permutation that depends only on (seed, epoch).

    Lightning calls :meth:`set_epoch` before every epoch, so a run resumed from a
    checkpoint sees exactly the batches an uninterrupted run would have seen.
    (Under DDP Lightning swaps this for a ``DistributedSampler``, also seeded by epoch.)
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def file_sha256(path: str | Path, limit: int = 1 << 30) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        read = 0
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            read += len(chunk)
            if read >= limit:
                break
    return h.hexdigest()


# --- memory bounds of sizes ---------------------------------------------------------------
#: share of the memory available to this process that the data of one run may take
MEMORY_FRACTION = 0.5


def available_memory() -> int:
    """Bytes of memory this process may use: the physical memory, bounded by a cgroup (v2 or
    v1) limit and ``RLIMIT_AS``, whichever is smallest."""
    import os
    import resource
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft not in (resource.RLIM_INFINITY, -1):
        limits.append(int(soft))
    return min(limits) if limits else 1 << 34


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(estimates: Mapping[str, float], what: str = "the data") -> None:
    """Refuse sizes whose arrays would not fit in memory, before anything is allocated:
    ``estimates`` maps the setting(s) that set a size (``"data.image_size=4096,
    data.n_train=10000"``) to the bytes they need; their sum above ``MEMORY_FRACTION`` of
    :func:`available_memory` is a ConfigError (exit 2) naming the keys and the estimate."""
    from cosmobench.errors import ConfigError
    total = float(sum(estimates.values()))
    limit = MEMORY_FRACTION * available_memory()
    if total > limit:
        key, big = max(estimates.items(), key=lambda kv: kv[1])
        raise ConfigError(f"{key}: {what} would need about {_fmt_bytes(big)} of memory"
                          f"{f' ({_fmt_bytes(total)} in all)' if len(estimates) > 1 else ''}, more than the "
                          f"{_fmt_bytes(limit)} a run may use here ({int(MEMORY_FRACTION * 100)} % of "
                          f"{_fmt_bytes(available_memory())}): reduce it")


class BaseDataModule(pl.LightningDataModule, metaclass=ABCMeta):
    """Base of every task's datamodule. ``cfg`` is the resolved ``data`` config node: every
    key its settings class declares is present and was validated (read ``cfg[key]``; never
    restate a default or re-check a declared constraint)."""

    #: file extension :meth:`export` writes
    export_suffix: str = ".csv"
    #: keys of :meth:`info` that data must share with a checkpoint to be scored or predicted by
    #: it (bands, image size, classes, ...; :func:`cosmobench.checkpoints.check_data_matches`)
    shape_keys: tuple[str, ...] = ()

    @classmethod
    def preflight(cls, cfg: Mapping[str, Any]) -> None:
        """Cheap checks of a resolved ``data`` node before any data is read or simulated (run
        by :meth:`setup` and for every job of a suite before the first job runs): a real-data
        source without ``data.path``, and sizes whose arrays would not fit in memory
        (:meth:`memory_estimate`, :func:`check_memory`). InputError/ConfigError (exit 2)."""
        source = cfg["source"]
        if source != "sim" and "path" in cfg and not cfg["path"]:  # as require_path says it
            raise InputError(f"data.source={source!r} needs data.path=FILE")
        estimates = cls.memory_estimate(cfg)
        if estimates:
            check_memory(estimates)

    @classmethod
    def memory_estimate(cls, cfg: Mapping[str, Any]) -> dict[str, float]:
        """``{"data.key=value[, ...]": bytes}``: the memory the datasets of ``cfg`` will take
        (the largest arrays; an estimate made before anything is allocated). Default: none."""
        return {}

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0):
        super().__init__()
        self.cfg = dict(cfg)
        self.seed = int(seed)
        self.datasets: dict[str, Dataset] = {}
        if "test_path" in self.cfg and self.cfg["test_path"] and self.cfg["source"] == "sim":
            from cosmobench.errors import ConfigError
            raise ConfigError("data.test_path is for real data; set data.source to a real-data source")

    # --- to implement -------------------------------------------------------------------
    @abstractmethod
    def build(self) -> dict[str, Dataset]:
        """Return ``{"train": ds, "val": ds, "test": ds}``; each item of a dataset is a dict of
        tensors incl. ``idx`` (index in its split). Raise InputError on bad input. Called once
        (from :meth:`setup`); compute the train-split statistics for :meth:`info` here."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Json-able facts the model needs (shapes, class names, normalisation statistics of
        the **train** split); stored with the model's hyper-parameters, i.e. in the checkpoint."""

    def read_input(self, path: str | Path) -> Dataset:
        """Dataset of unlabelled items from a user file, for ``cosmobench predict`` (items as
        in :meth:`build`, without targets). Optional."""
        raise NotImplementedError(f"{type(self).__name__} does not support predict")

    def export(self, split: str, path: str | Path) -> Path:
        """Write the inputs of ``split`` to ``path`` in a format :meth:`read_input` reads
        (a ready-made input for ``cosmobench predict``; also used by the tests). Optional."""
        raise NotImplementedError(f"{type(self).__name__} cannot export a split")

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        type(self).preflight(self.cfg)
        datasets = self.build()
        missing = {"train", "val", "test"} - set(datasets)
        if missing:
            raise RuntimeError(f"{type(self).__name__}.build() did not return splits {sorted(missing)}")
        for split, ds in datasets.items():
            if len(ds) == 0:
                raise InputError(f"the {split} split is empty")
        self.datasets = datasets

    def require_path(self, key: str = "path") -> Path:
        """``data.<key>`` as an existing file, or an InputError naming the problem."""
        path = self.cfg[key]
        if not path:
            raise InputError(f"data.source={self.cfg['source']!r} needs data.{key}=FILE")
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"data file not found: {p} (data.{key})")
        return p

    def test_file(self) -> Path | None:
        """``data.test_path`` as an existing file if the task declares the key and it is set
        (the fixed test set of a real catalogue), else None."""
        return self.require_path("test_path") if "test_path" in self.cfg and self.cfg["test_path"] else None

    def real_split_rows(self, n: int, strata: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Row indices of the ``n`` rows of ``data.path`` per split: train/val/test
        (:func:`split_indices` with ``data.val_fraction``/``data.test_fraction``), or only
        train/val when ``data.test_path`` is set (its rows are the test split). The train rows
        are cut to ``data.subset`` (:meth:`subset_rows`, stratified by ``strata[row]`` if given)."""
        fixed_test = self.test_file() is not None
        rows = split_indices(n, float(self.cfg["val_fraction"]),
                             0.0 if fixed_test else float(self.cfg["test_fraction"]), self.seed)
        if fixed_test:
            rows.pop("test")
        rows["train"] = self.subset_rows(rows["train"], None if strata is None else np.asarray(strata)[rows["train"]])
        return rows

    def fingerprint(self) -> str:
        """Hash identifying the dataset: data config + seed (+ the files' content for real data:
        a named data set's recorded file hashes, else those of ``data.path``/``data.test_path``)."""
        cfg = {k: v for k, v in self.cfg.items() if k not in ("batch_size", "num_workers")}
        payload: dict[str, Any] = {"cfg": cfg, "seed": self.seed}
        if self.cfg["dataset"]:
            payload["dataset"] = self.provenance()
        elif self.cfg["source"] != "sim" and "path" in self.cfg and self.cfg["path"]:
            payload["file_sha256"] = self.path_sha256()
        if not self.cfg["dataset"] and self.cfg["source"] != "sim" and self.test_file() is not None:
            payload["test_file_sha256"] = file_sha256(self.cfg["test_path"])
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def path_sha256(self) -> str | list[str]:
        """sha256 of the content of ``data.path`` for :meth:`fingerprint` (a source reading
        several files returns the list of theirs)."""
        return file_sha256(self.cfg["path"])

    def provenance(self) -> dict[str, Any] | None:
        """The named data set this run reads (``data.dataset``): its name and the sha256 of each
        file as recorded when it was fetched; None for the simulator or a user's own file."""
        if not self.cfg["dataset"]:
            return None
        from cosmobench.datasets.download import provenance
        return provenance(self.cfg["dataset"])

    def subset_rows(self, rows: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
        """``data.subset`` of the training ``rows`` (all of them if unset or larger): a seeded
        draw, stratified by ``strata`` (e.g. the class labels of the rows: each class keeps its
        share, at least one row), in the original order."""
        n = self.cfg["subset"]
        rows = np.asarray(rows)
        if not n or n >= len(rows):
            return rows
        rng = np.random.default_rng([self.seed, 0x5B5E7])
        if strata is None:
            return np.sort(rng.choice(rows, size=n, replace=False))
        strata = np.asarray(strata)
        groups = [rows[strata == v] for v in np.unique(strata)]
        quota = np.maximum(1, np.floor(n * np.array([len(g) for g in groups]) / len(rows)).astype(int))
        for i in np.argsort([-len(g) for g in groups]):  # hand out what rounding left, largest classes first
            if quota.sum() >= n:
                break
            quota[i] += min(len(groups[i]) - quota[i], n - quota.sum())
        picked = [rng.choice(g, size=min(q, len(g)), replace=False) for g, q in zip(groups, quota)]
        return np.sort(np.concatenate(picked))

    def shuffle_sampler(self, ds: Dataset) -> Sampler:
        """Sampler of a shuffled (training) loader: :class:`EpochSeededSampler`."""
        return EpochSeededSampler(len(ds), self.seed)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        ds = self.datasets[split]
        nw = int(self.cfg["num_workers"])
        return DataLoader(ds, batch_size=int(self.cfg["batch_size"]),
                          sampler=self.shuffle_sampler(ds) if shuffle else None,
                          shuffle=False, num_workers=nw, persistent_workers=nw > 0, collate_fn=collate_rows)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_loader(self, path: str | Path) -> DataLoader:
        return DataLoader(self.read_input(path), batch_size=int(self.cfg["batch_size"]),
                          shuffle=False, num_workers=0, collate_fn=collate_rows)


class ImageDataModule(BaseDataModule):
    """:class:`BaseDataModule` of an image task (items hold ``(C, H, W)`` fields).

    Adds the exact D4 augmentation of training batches (:mod:`cosmobench.augment`): when
    :meth:`augments` is true (default: ``data.augment``), every field of
    :attr:`augment_fields` present in a training batch is transformed by the sample's
    element of D4 (a hash of seed, epoch and ``idx``; all fields of a sample get the same
    element), on the device, after the transfer; and :meth:`split_images`."""

    #: batch keys augmented together: name -> ``"scalar"`` (images, maps, masks) or ``"spin2"``
    #: (shear ``(B, 2, H, W)``)
    augment_fields: dict[str, str] = {"image": "scalar"}

    def augments(self) -> bool:
        """Whether training batches are augmented (``data.augment``)."""
        return bool(self.cfg["augment"])

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        if trainer is None or not trainer.training or not self.augments():
            return batch
        from cosmobench.augment import apply_augmentation, d4_transform, d4_transform_spin2
        transforms = {"scalar": d4_transform, "spin2": d4_transform_spin2}
        out = dict(batch)
        for key, kind in self.augment_fields.items():
            if key in out:
                out[key] = apply_augmentation(out[key], out["idx"], self.seed, trainer.current_epoch, transforms[kind])
        return out

    def split_images(self, split: str, key: str = "image") -> torch.Tensor:
        """All images ``(N, C, H, W)`` of ``split`` (read through the dataset, i.e. after
        crop/resize; in-memory datasets without a copy)."""
        from cosmobench.images import stack_images
        self.setup()
        return stack_images(self.datasets[split], key=key)


@dataclass
class ImageAugment:
    """The ``data.augment`` switch of :class:`ImageDataModule` (inherited by the data settings
    of the image tasks that offer it)."""

    augment: bool = setting(False, "bool", help="exact D4 (rot90/flip) augmentation of training batches")
