"""Datamodules of the image-classification tasks (``morphology``, ``lensfinding``): what they share.

:class:`ImageClassSettings` declares the ``data`` keys both tasks have (input stretch, D4
augmentation, crop of real images, and the keys and columns of real-data files), with the
loader and split settings every task has; a task's data settings class inherits it and its
simulator's settings. :class:`ImageClassDataModule` holds the code both datamodules run the
same way: the train-split normalisation statistics, :meth:`~ImageClassDataModule.info`,
:meth:`~ImageClassDataModule.export` and :meth:`~ImageClassDataModule.read_input`; a task
implements :meth:`~ImageClassDataModule.build_splits` and sets
:attr:`~ImageClassDataModule.class_names`.

Conventions: images ``(C, H, W)`` float32 in their own units (counts, nanomaggies, 8-bit
values), square, ``data.image_size`` px, ``data.n_bands`` bands. Real images are centre-cropped
to ``data.crop`` px (if set) and resized to ``data.image_size`` (bilinear, antialiased). The task
normalises them with ``(stretch(x / scale_b) - mean_b) / std_b`` per band
(:mod:`cosmobench.images`), statistics of (at most ``cosmobench.images.NORM_MAX_IMAGES`` evenly
spaced images of) the **train** split, returned by :meth:`~ImageClassDataModule.info`.

Bands and pixel scale (what a checkpoint remembers, :mod:`cosmobench.transfer` uses them):
``data.bands`` names the bands in channel order (e.g. ``[g, r, z]``; null: unnamed), must have
``data.n_bands`` distinct names, and is a shape key (a checkpoint scores / predicts only data of
its bands in its order). ``info()["input_pixel_scale"]`` is the angle of one network input pixel
in arcsec: ``data.pixel_scale`` for the simulator; for real data
``data.native_pixel_scale x (data.crop or the files' image side) / data.image_size``, or null when
``data.native_pixel_scale`` is null (not checked then).
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cosmobench.datamodule import (ArrayDataset, DataSettings, FileSplits, FixedTestFile, ImageAugment,
                                   ImageDataModule, SimSplits, check_memory)
from cosmobench.errors import ConfigError, InputError
from cosmobench.images import (HDF5_SUFFIXES, FileImages, LazyImageDataset, check_finite_images, crop_resize,
                               read_folder_catalog, read_image_stack, stack_members, train_band_statistics,
                               write_image_stack)
from cosmobench.settings import setting

#: suffixes of a table of image files that :meth:`ImageClassDataModule.read_input` accepts
TABLE_SUFFIXES = (".csv", ".ecsv", ".parquet")


@dataclass
class ImageClassSettings(ImageAugment, FixedTestFile, FileSplits, SimSplits, DataSettings):
    """``data`` settings shared by the image-classification tasks."""

    stretch: str = setting("asinh", ["asinh", "linear"],
                           help="input normalisation: asinh(x / background noise) or x, then standardised per band")
    crop: int | None = setting(None, "positive int or null", unit="px",
                               help="real images: centre crop before the resize to data.image_size (null: none)")
    image_key: str = setting("images", "str", help="real data: HDF5 dataset / npz member / FITS HDU of the images")
    label_key: str = setting("labels", "str", help="real data: HDF5 dataset / npz member of the labels")
    file_column: str = setting("file", "str", help="table of image files: column of the paths (relative to the table)")
    label_column: str = setting("label", "str", help="table of image files: column of the labels")
    bands: list[str] | None = setting(None, "list[str] or null",
                                      help="names of the bands in channel order (e.g. [g, r, z]; null: unnamed); "
                                           "model.init_from maps a checkpoint's first layer to them by name")
    native_pixel_scale: float | None = setting(None, "positive float or null", unit="arcsec/px",
                                               help="real data: pixel size of the files' images (null: unknown, "
                                                    "the pixel-scale check of model.init_from is skipped)")


def split_labels(ds: Dataset) -> np.ndarray | None:
    """The hard labels of a split (in-memory or lazy dataset), or None if it holds none."""
    if isinstance(ds, ArrayDataset):
        return ds.arrays["label"].numpy() if "label" in ds.arrays else None
    if isinstance(ds, LazyImageDataset):
        return np.asarray(ds.labels)[np.asarray(ds.rows)]
    return None


class ImageClassDataModule(ImageDataModule):
    """Datamodule of an image-classification task (see the module docstring)."""

    #: a checkpoint scores / predicts only images of its bands and size, and its classes
    shape_keys = ("n_bands", "bands", "image_size", "classes")
    #: checked against the config before any data is read; ``classes`` only against the data read
    #: (``data.classes`` is the simulator's list, not the class names of a real source or label scheme)
    config_shape_keys = ("n_bands", "bands", "image_size")

    @classmethod
    def preflight(cls, cfg) -> None:
        """Also: ``data.bands`` has ``data.n_bands`` distinct names (ConfigError)."""
        bands = cfg["bands"]
        if bands is not None and (len(bands) != int(cfg["n_bands"]) or len(set(bands)) != len(bands)):
            raise ConfigError(f"data.bands={list(bands)} must name data.n_bands={cfg['n_bands']} distinct bands")
        super().preflight(cfg)

    @classmethod
    def memory_estimate(cls, cfg) -> dict[str, float]:
        """float32 images: a batch (twice: the collated copy), and every simulated image
        (the simulated splits are held in memory)."""
        size, bands, batch = int(cfg["image_size"]), int(cfg["n_bands"]), int(cfg["batch_size"])
        per_image = 4.0 * bands * size * size
        out = {f"data.image_size={size} (data.n_bands={bands}, data.batch_size={batch})": 2 * per_image * batch}
        if cfg["source"] == "sim":
            n = sum(int(cfg[f"n_{s}"]) for s in ("train", "val", "test"))
            out[f"data.image_size={size} with data.n_train + data.n_val + data.n_test = {n} simulated images"] = \
                per_image * n
        return out

    def resize_memory_check(self, n_images: int, what: str) -> None:
        """Before resizing ``n_images`` images to ``data.image_size``: they must fit in memory."""
        check_memory({f"data.image_size={self.image_size} for {n_images} images of {what}":
                      4.0 * self.n_bands * self.image_size ** 2 * n_images})

    def __init__(self, cfg, seed: int = 0):
        super().__init__(cfg, seed)
        self.image_size = int(self.cfg["image_size"])
        self.n_bands = int(self.cfg["n_bands"])
        #: class names (index = label); set by :meth:`build_splits`
        self.class_names: list[str] = []
        self.norm: dict[str, list[float]] = {}

    @abstractmethod
    def build_splits(self) -> dict[str, Dataset]:
        """The train/val/test datasets (items ``image`` ``(C, size, size)``, ``label``, ``idx``);
        sets :attr:`class_names`."""

    def build(self) -> dict[str, Dataset]:
        datasets = self.build_splits()
        if self.cfg["source"] != "sim":  # a classifier is trained and scored on at least two classes
            for split in ("train", "test"):
                labels = split_labels(datasets[split])
                if labels is not None and len(np.unique(labels)) < 2:
                    only = int(labels[0]) if len(labels) else None
                    name = self.class_names[only] if only is not None and only < len(self.class_names) else only
                    raise InputError(f"the {split} split holds only class {name!r} ({len(labels)} images): "
                                     f"{'training' if split == 'train' else 'the metrics (balanced accuracy, ROC-AUC)'}"
                                     f" need at least two classes")
        check_finite_images(datasets)  # every split (lazy ones: per image as it is read)
        self.norm = train_band_statistics(datasets["train"], self.cfg["stretch"])
        return datasets

    def info(self) -> dict[str, Any]:
        self.setup()
        return {"image_size": self.image_size, "n_bands": self.n_bands, "classes": list(self.class_names),
                "stretch": self.cfg["stretch"], "norm_scale": self.norm["scale"], "norm_mean": self.norm["mean"],
                "norm_std": self.norm["std"], "source": self.cfg["source"],
                "bands": None if self.cfg["bands"] is None else [str(b) for b in self.cfg["bands"]],
                "input_pixel_scale": self.input_pixel_scale(), "native_pixel_scale": self.cfg["native_pixel_scale"]}

    def input_pixel_scale(self) -> float | None:
        """Arcsec per network input pixel (module docstring), or None if unknown."""
        if self.cfg["source"] == "sim":
            return float(self.cfg["pixel_scale"]) if "pixel_scale" in self.cfg else None
        native = self.cfg["native_pixel_scale"]
        if native is None:
            return None
        side = self.cfg["crop"]
        train = self.datasets["train"]
        if side is None and isinstance(train, LazyImageDataset) and len(train):
            side = int(np.shape(train.load(int(train.rows[0])))[-1])  # the files' image side, px
        return None if side is None else float(native) * int(side) / self.image_size

    def export(self, split: str, path) -> Path:
        """Write the images of ``split`` (no labels) as an image stack ``(N, C, H, W)`` float32 in
        the format of ``path``'s extension (:func:`cosmobench.images.write_image_stack`)."""
        return write_image_stack(path, self.split_images(split))

    def read_input(self, path) -> Dataset:
        """Unlabelled images for ``predict``: an image stack (``.npy``, ``.npz``, ``.h5``/``.hdf5``,
        FITS cube; :func:`cosmobench.images.read_image_stack`, member ``data.image_key`` if the file
        has it, else ``images`` or its only array) ``(N, H, W[, C])`` / ``(N, C, H, W)``, or a table
        of image files (``.csv``/``.ecsv``/``.parquet``, column ``data.file_column``). Items:
        ``image`` and ``idx`` (position in the stack / row of the table). Images of
        ``data.image_size`` px are taken as preprocessed; others are centre-cropped to
        ``data.crop`` (real-data sources) and resized as in training."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
        crop = self.cfg["crop"] if self.cfg["source"] != "sim" else None
        if p.suffix.lower() in TABLE_SUFFIXES:
            cat = read_folder_catalog(p, self.cfg["file_column"])
            rows = np.arange(len(cat["files"]))
            return LazyImageDataset(rows, FileImages(cat["files"], self.n_bands), np.zeros(len(rows), np.int64),
                                    None, crop, self.image_size)
        key = self.cfg["image_key"]
        if not (p.name.lower().endswith((".npz",) + HDF5_SUFFIXES) and key in stack_members(p)):
            key = None
        x = torch.from_numpy(read_image_stack(p, key=key, n_bands=self.n_bands))
        check_finite_images(x, what=str(p))
        if x.shape[-1] != self.image_size:
            self.resize_memory_check(len(x), str(p))
            x = crop_resize(x, crop, self.image_size)
        return ArrayDataset({"image": x.contiguous().numpy()})


__all__ = ["ImageClassSettings", "ImageClassDataModule", "TABLE_SUFFIXES"]
