"""Photometric-redshift data: ugriz simulator and real-catalogue loader.

Dataset items (dict of tensors, see :class:`~cosmobench.datamodule.ArrayDataset`):

* ``mag``, ``magerr`` (n_bands,) float32: AB magnitudes and their 1-sigma errors;
* ``x`` (2 n_bands,) float32: model features (:func:`photoz_features`):
  ``n_bands - 1`` adjacent colours ``m_b - m_{b+1}``, the reference-band magnitude
  ``m_ref`` (``data.ref_band``) and ``log10(magerr_b)`` for every band;
* ``z`` () float32: spectroscopic / true redshift (absent in predict inputs without it);
* ``idx``: index within the split.

``info()`` returns the feature names and the train-split mean/std of ``x`` and of ``z``
(json-able lists/floats) that the models store as buffers.

Sources:

* ``sim``: :func:`cosmobench.sim.photometry.simulate_catalog` with the survey settings
  :class:`~cosmobench.sim.photometry.PhotometrySurvey` (``data.mag_limit`` (i band),
  ``data.depth_5sigma`` (ugriz), ``data.z_max``, the Smail n(z) ``data.nz_alpha/nz_beta/nz_z0``).
  Split s is generated in chunks of :data:`CHUNK` galaxies, chunk c from ``sample_rng(seed, s, c)``, so sample i of a split
  depends only on (seed, split, i). Non-detections are clipped to S/N = 1 (see the
  simulator docstring), so every magnitude is finite.
* ``catalog``: ``data.path`` = CSV, ECSV, FITS or Parquet table
  (:func:`cosmobench.io.read_table`) with ``data.mag_columns``, ``data.err_columns`` and
  ``data.z_column``; split into train/val/test by
  :meth:`~cosmobench.datamodule.BaseDataModule.real_split_rows` (``data.val_fraction``,
  ``data.test_fraction``), or, with ``data.test_path`` (a second table with the same
  columns, e.g. a survey's published test set), train/val from ``data.path`` and test from
  ``data.test_path``.
  Plain whitespace-separated text catalogues (``.cat``, ``.txt``, ``.dat`` or no suffix, as
  Beck+2017's Teddy/Happy files ``teddyT_A.cat``/``happyT_A``) are read by
  :func:`read_text_catalog`: lines starting with ``#`` are comments, ``data.text_columns``
  names the columns (the files have no header line), or, if null, the first line is the
  header; a header line that repeats the names is skipped.

Valid values (catalogues; every rule is applied to both files and the dropped rows are
counted per reason in one WARNING line and in ``self.dropped``):

* non-detections: a magnitude or error equal to one of ``data.nondetection_values``
  (by default the SDSS/many-surveys sentinels) marks a non-detection in that
  band. ``data.nondetection=limit`` replaces it by the S/N = 1 upper limit
  ``m = depth_5sigma_b + 2.5 log10(5)`` with error ``2.5/ln 10 = 1.0857`` mag -- exactly what
  the simulator does, so ``data.depth_5sigma`` must give the survey's 5-sigma depth per
  band; ``data.nondetection=drop`` drops the row;
* magnitudes must be finite and within ``data.mag_valid_range`` (AB mag; by default wider
  than any survey's range, so values like 1e30 or an un-listed sentinel fall out);
  errors finite and > 0;
* ``z_spec`` must be finite and within ``[0, data.z_max]``.

A catalogue with no valid row is an InputError. ``predict`` inputs get the same rules, but
invalid rows are kept (in file order) with NaN predictions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cosmobench.datamodule import (ArrayDataset, BaseDataModule, DataSettings, FileSplits, FixedTestFile, SimSplits,
                                   sample_rng)
from cosmobench.errors import ConfigError, InputError
from cosmobench.io import numeric_column, read_table, table_format, write_table
from cosmobench.settings import build, setting
from cosmobench.sim.photometry import BANDS, PhotometrySurvey, simulate_catalog

log = logging.getLogger(__name__)

CHUNK = 1000   #: simulated galaxies per independent random chunk
SN1_MAGERR = 2.5 / np.log(10.0)  #: magnitude error of an S/N = 1 measurement (1.0857 mag)


@dataclass
class PhotoZData(PhotometrySurvey, DataSettings, SimSplits, FileSplits, FixedTestFile):
    """The ``data`` node of photoz: the simulator's survey (:class:`PhotometrySurvey`),
    splits, and the layout and validity rules of real catalogues (module docstring)."""

    source: str = setting("sim", ["sim", "catalog"], help="sim (the ugriz simulator) or catalog (data.path, a table)")
    mag_columns: list[str] = setting(["mag_u", "mag_g", "mag_r", "mag_i", "mag_z"], "nonempty list[str]",
                                     help="catalogue columns of the AB magnitudes, blue to red")
    err_columns: list[str] = setting(["magerr_u", "magerr_g", "magerr_r", "magerr_i", "magerr_z"], "list[str]",
                                     help="catalogue columns of the 1-sigma magnitude errors, as data.mag_columns")
    z_column: str = setting("z_spec", "str", help="catalogue column of the spectroscopic redshift")
    ref_band: int = setting(3, "non-negative int", help="band whose magnitude is a feature (index; 3: i)")
    mag_valid_range: list[float] = setting([10.0, 40.0], "list[float]", unit="AB mag",
                                           help="[brightest, faintest] valid catalogue magnitude")
    nondetection_values: list[float] = setting([99.0, -99.0], "list[float]",
                                               help="catalogue magnitudes/errors that mark a non-detection")
    nondetection: str = setting("limit", ["limit", "drop"],
                                help="non-detections: S/N = 1 upper limit from data.depth_5sigma, or drop the row")
    text_columns: list[str] | None = setting(None, "list[str] or null",
                                             help="whitespace-separated text catalogues (.cat/.txt/.dat or no "
                                                  "suffix, e.g. Beck+2017's): their column names in order; null: "
                                                  "the first line of the file is the header")


def photoz_features(mag: np.ndarray, magerr: np.ndarray, ref_band: int) -> np.ndarray:
    """Features (n, 2 n_bands): adjacent colours, ``mag[:, ref_band]``, ``log10(magerr)``."""
    mag, magerr = np.asarray(mag, np.float64), np.asarray(magerr, np.float64)
    colours = mag[:, :-1] - mag[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        logerr = np.log10(np.maximum(magerr, 1e-4))
    return np.concatenate([colours, mag[:, ref_band:ref_band + 1], logerr], axis=1)


TEXT_SUFFIXES = (".cat", ".txt", ".dat", "")  #: plain text catalogues (read_text_catalog)


def read_text_catalog(path: Path, names: list[str] | None, columns: list[str],
                      optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Columns of a whitespace-separated text table (astropy ``ascii``; ``#`` lines are
    comments) -> ``{name: array}``. ``names``: the column names in order (files without a
    header; a first line equal to them is skipped), or None (the first line is the header,
    with or without a leading ``#``). Missing columns are an InputError listing those found."""
    from astropy.io import ascii
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"table file not found: {p}")
    with open(p, errors="replace") as fh:
        first = next((line for line in fh if line.strip()), "")
    words = first.lstrip("#").split()
    try:
        if names is None:
            fmt = "commented_header" if first.lstrip().startswith("#") else "basic"
            table = ascii.read(p, format=fmt, delimiter=" ", guess=False, fast_reader=False)
        else:
            start = 1 if not first.lstrip().startswith("#") and words == list(names) else 0
            table = ascii.read(p, format="no_header", names=list(names), delimiter=" ", guess=False,
                               data_start=start)
    except Exception as exc:  # astropy raises many types for malformed text
        raise InputError(f"cannot read text table {p}: {' '.join(str(exc).split())[:300]}") from None
    available = list(table.colnames)
    missing = [c for c in columns if c not in available]
    if missing:
        raise InputError(f"column(s) {', '.join(repr(c) for c in missing)} not found in {p}; "
                         f"available columns: {', '.join(available)} (data.text_columns names them)")
    return {c: np.asarray(table[c]) for c in [*columns, *(c for c in optional if c in available)]}


def feature_names(bands: list[str], ref_band: int) -> list[str]:
    return ([f"{a}-{b}" for a, b in zip(bands[:-1], bands[1:])] + [bands[ref_band]]
            + [f"log10_err_{b}" for b in bands])


class PhotoZDataModule(BaseDataModule):
    """ugriz photometry -> redshift. ``cfg`` is the ``data`` config node (:class:`PhotoZData`)."""

    #: a checkpoint applies to catalogues with its number of features (2 per band)
    shape_keys = ("n_features",)

    @classmethod
    def memory_estimate(cls, cfg) -> dict[str, float]:
        """Simulated catalogues: magnitudes, errors, features and redshift (float64, ~4 copies)."""
        if cfg["source"] != "sim":
            return {}
        n = sum(int(cfg[f"n_{s}"]) for s in ("train", "val", "test"))
        return {f"data.n_train + data.n_val + data.n_test = {n} simulated galaxies": 4 * 8.0 * 21 * n}

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0):
        super().__init__(cfg, seed)
        self.stats: dict[str, Any] = {}
        self.n_dropped = 0
        #: rows of the catalogue(s) dropped by reason (:meth:`clean_catalog`)
        self.dropped: dict[str, int] = {}

    # --- config -----------------------------------------------------------------------
    def _bands(self) -> list[str]:
        if self.cfg["source"] == "sim":
            return list(BANDS)
        return [str(c) for c in self.cfg["mag_columns"]]

    def _ref_band(self, n_bands: int) -> int:
        ref = int(self.cfg["ref_band"])
        if not 0 <= ref < n_bands:
            raise ConfigError(f"data.ref_band={ref} is out of range for {n_bands} bands (0..{n_bands - 1})")
        return ref

    def _check_cfg(self) -> None:
        """Checks across keys (single values were checked against their declared constraints)."""
        c = self.cfg
        lo, hi = (list(c["mag_valid_range"]) + [None, None])[:2]
        if lo is None or hi is None or not lo < hi:
            raise ConfigError(f"data.mag_valid_range must be [brightest, faintest] valid magnitudes, got "
                              f"{c['mag_valid_range']}")
        if c["source"] == "sim":
            depth = list(c["depth_5sigma"])
            if len(depth) != len(BANDS):
                raise ConfigError(f"data.depth_5sigma needs {len(BANDS)} values (ugriz), got {depth}")
        else:
            mags, errs = list(c["mag_columns"]), list(c["err_columns"])
            if len(mags) < 2 or len(mags) != len(errs):
                raise ConfigError(f"data.mag_columns ({len(mags)}) and data.err_columns ({len(errs)}) "
                                  "must list the same number (>= 2) of columns")
            if not c["z_column"]:
                raise ConfigError("data.source=catalog needs data.z_column")

    # --- simulation -------------------------------------------------------------------
    def simulate(self, split: str, n: int) -> dict[str, np.ndarray]:
        """``n`` galaxies of ``split``: chunk c drawn from ``sample_rng(seed, split, c)``."""
        survey = build(PhotometrySurvey, self.cfg)
        chunks = [simulate_catalog(sample_rng(self.seed, split, i), CHUNK, survey) for i in range(-(-n // CHUNK))]
        return {k: np.concatenate([ch[k] for ch in chunks])[:n] for k in ("mag", "magerr", "z")}

    # --- real data --------------------------------------------------------------------
    def _load_catalog(self, path: Path, need_z: bool) -> dict[str, np.ndarray]:
        """``mag``, ``magerr`` (N, n_bands) and ``z`` (N,) (if required or present) as float64."""
        c = self.cfg
        mags, errs, zcol = list(c["mag_columns"]), list(c["err_columns"]), c["z_column"]
        cols = mags + errs + ([zcol] if need_z else [])
        optional = () if need_z or not zcol else (zcol,)
        if table_format(path) is None and Path(path).suffix.lower() in TEXT_SUFFIXES:
            text_cols = c["text_columns"]
            raw = read_text_catalog(path, list(text_cols) if text_cols else None, cols, optional)
        else:
            raw = read_table(path, cols, optional=optional)
        table = {k: numeric_column(v) for k, v in raw.items()}
        out = {"mag": np.stack([table[m] for m in mags], axis=1),
               "magerr": np.stack([table[e] for e in errs], axis=1)}
        if zcol in table:
            out["z"] = table[zcol]
        return out

    def clean_catalog(self, data: dict[str, np.ndarray], need_z: bool) -> tuple[dict[str, np.ndarray], dict]:
        """Apply the catalogue's validity rules (module docstring, "Valid values") in place of
        the raw values. Returns the data with non-detections handled and the per-row reasons:
        ``{reason: bool (N,)}`` of the rows that are invalid (a row may have several)."""
        c = self.cfg
        mag, err = data["mag"].copy(), data["magerr"].copy()
        sentinel = np.zeros(mag.shape, bool)
        for v in c["nondetection_values"] or []:
            sentinel |= (mag == float(v)) | (err == float(v))
        bad: dict[str, np.ndarray] = {}
        if sentinel.any():
            if c["nondetection"] == "drop":
                bad["non-detection sentinel"] = sentinel.any(1)
            else:
                depth = np.asarray(c["depth_5sigma"], float)
                if len(depth) != mag.shape[1]:
                    raise ConfigError(f"data.nondetection=limit needs data.depth_5sigma for each of the "
                                      f"{mag.shape[1]} bands (got {len(depth)} values)")
                limit = np.broadcast_to(depth + 2.5 * np.log10(5.0), mag.shape)  # S/N = 1 magnitude
                mag[sentinel] = limit[sentinel]
                err[sentinel] = SN1_MAGERR
        lo, hi = (float(v) for v in c["mag_valid_range"])
        with np.errstate(invalid="ignore"):
            bad["missing or non-finite magnitude/error"] = ~(np.isfinite(mag).all(1) & np.isfinite(err).all(1))
            bad[f"magnitude outside data.mag_valid_range [{lo:g}, {hi:g}]"] = (
                np.isfinite(mag) & ((mag < lo) | (mag > hi))).any(1)
            bad["magnitude error <= 0"] = (np.isfinite(err) & (err <= 0)).any(1)
            if need_z:
                z = data["z"]
                bad["missing or non-finite redshift"] = ~np.isfinite(z)
                bad[f"redshift outside [0, data.z_max={float(c['z_max']):g}]"] = np.isfinite(z) & (
                    (z < 0) | (z > float(c["z_max"])))
        out = dict(data, mag=mag, magerr=err)
        return out, {k: v for k, v in bad.items() if v.any()}

    def _catalog_rows(self, path: Path) -> dict[str, np.ndarray]:
        """The valid rows of a labelled catalogue; the dropped ones are counted and logged."""
        data, bad = self.clean_catalog(self._load_catalog(path, need_z=True), need_z=True)
        n = len(data["z"])
        drop = np.zeros(n, bool)
        for reason, rows in bad.items():
            drop |= rows
            self.dropped[f"{path.name}: {reason}"] = int(rows.sum())
        self.n_dropped += int(drop.sum())
        if drop.any():
            log.warning("dropped %d of %d rows of %s (%s)", int(drop.sum()), n, path,
                        "; ".join(f"{k}: {int(v.sum())}" for k, v in bad.items()))
        if drop.all():
            raise InputError(f"{path}: none of its {n} rows is valid ("
                             + "; ".join(f"{k}: {int(v.sum())}" for k, v in bad.items()) + ")")
        return {k: v[~drop] for k, v in data.items()}

    # --- BaseDataModule API -----------------------------------------------------------
    def build(self):
        self._check_cfg()
        if self.cfg["source"] == "sim":
            splits = {s: self.simulate(s, int(self.cfg[f"n_{s}"])) for s in ("train", "val", "test")}
        else:
            self.n_dropped, self.dropped = 0, {}
            data = self._catalog_rows(self.require_path())
            z = data["z"]  # data.subset of the training rows: stratified in redshift deciles
            idx = self.real_split_rows(len(z), np.searchsorted(np.quantile(z, np.linspace(0.1, 0.9, 9)), z))
            splits = {s: {k: v[i] for k, v in data.items()} for s, i in idx.items()}
            test = self.test_file()
            if test is not None:
                splits["test"] = self._catalog_rows(test)
        ref = self._ref_band(splits["train"]["mag"].shape[1])
        arrays = {s: self._arrays(d, ref) for s, d in splits.items()}
        x, z = arrays["train"]["x"].astype(np.float64), arrays["train"]["z"].astype(np.float64)
        std = x.std(axis=0)
        self.stats = {"x_mean": x.mean(axis=0).tolist(), "x_std": np.where(std > 0, std, 1.0).tolist(),
                      "z_mean": float(z.mean()), "z_std": float(z.std()) if z.std() > 0 else 1.0}
        return {s: ArrayDataset(a) for s, a in arrays.items()}

    def _arrays(self, d: dict[str, np.ndarray], ref: int) -> dict[str, np.ndarray]:
        out = {"mag": d["mag"].astype(np.float32), "magerr": d["magerr"].astype(np.float32),
               "x": photoz_features(d["mag"], d["magerr"], ref).astype(np.float32)}
        if "z" in d:
            out["z"] = d["z"].astype(np.float32)
        return out

    def info(self) -> dict[str, Any]:
        self.setup()
        bands = self._bands()
        ref = self._ref_band(len(bands))
        return {"bands": bands, "ref_band": ref, "feature_names": feature_names(bands, ref),
                "n_features": 2 * len(bands), "z_max": float(self.cfg["z_max"]), **self.stats}

    def export(self, split: str, path: str | Path) -> Path:
        """Write ``split`` as a CSV/ECSV/FITS/Parquet table (by suffix,
        :func:`cosmobench.io.write_table`) with the ``data.mag_columns``, ``data.err_columns``
        and ``data.z_column`` names, readable by :meth:`read_input`."""
        self.setup()
        arrays = self.datasets[split].arrays
        c = self.cfg
        mags, errs = list(c["mag_columns"]), list(c["err_columns"])
        if len(mags) != arrays["mag"].shape[1] or len(errs) != arrays["magerr"].shape[1]:
            raise ConfigError(f"data.mag_columns/err_columns must name {arrays['mag'].shape[1]} bands to export")
        cols = {m: arrays["mag"][:, i].numpy() for i, m in enumerate(mags)}
        cols.update({e: arrays["magerr"][:, i].numpy() for i, e in enumerate(errs)})
        if "z" in arrays and c["z_column"]:
            cols[c["z_column"]] = arrays["z"].numpy()
        return write_table(cols, path)

    def read_input(self, path: str | Path) -> ArrayDataset:
        """Unlabelled items from a CSV/ECSV/FITS/Parquet table with the ``data.mag_columns``/
        ``err_columns`` (the ``data.z_column`` is read if present). Rows are kept in file order;
        non-detection sentinels are handled as in training; rows with invalid inputs (non-finite,
        out of ``data.mag_valid_range``, sentinels with ``data.nondetection=drop``) are kept, get
        NaN predictions, and are counted in a warning."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
        c = self.cfg
        if not c["mag_columns"] or len(c["mag_columns"]) != len(c["err_columns"] or []):
            raise ConfigError("predict needs data.mag_columns and data.err_columns of equal length")
        if c["source"] == "sim" and len(c["mag_columns"]) != len(BANDS):
            raise ConfigError(f"a model trained on simulated ugriz data needs {len(BANDS)} data.mag_columns")
        data, bad = self.clean_catalog(self._load_catalog(p, need_z=False), need_z=False)
        arrays = self._arrays(data, self._ref_band(data["mag"].shape[1]))
        if bad:
            invalid = np.logical_or.reduce(list(bad.values()))
            arrays["x"][invalid] = np.nan  # -> NaN predictions (PhotoZTask.predict_outputs)
            log.warning("%d of %d rows of %s have invalid inputs (%s): their predictions are NaN",
                        int(invalid.sum()), len(invalid), p, "; ".join(f"{k}: {int(v.sum())}" for k, v in bad.items()))
        return ArrayDataset(arrays)
