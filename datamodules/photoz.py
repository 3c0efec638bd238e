"""Photometric-redshift data: ugriz simulator and real-catalogue loader.

Dataset items (dict of tensors, see :class:`~cosmobench.datamodule.ArrayDataset`):

* ``mag``, ``magerr`` (n_bands,) float32: AB magnitudes and their 1-sigma errors;
* ``x`` (2 n_bands,) float32: model features (:func:`photoz_features`):
  ``n_bands - 1`` adjacent colours ``m_b - m_{b+1}``, the reference-band magnitude
  ``m_ref`` (``data.ref_band``, default i) and ``log10(magerr_b)`` for every band;
* ``z`` () float32: spectroscopic / true redshift (absent in predict inputs without it);
* ``idx``: index within the split.

``info()`` returns the feature names and the train-split mean/std of ``x`` and of ``z``
(json-able lists/floats) that the models store as buffers.

Sources:

* ``sim`` (default): :func:`cosmobench.sim.photometry.simulate_catalog` with
  ``data.mag_limit`` (i band), ``data.depth_5sigma`` (ugriz), ``data.z_max`` and the Smail
  n(z) parameters ``data.nz_alpha/nz_beta/nz_z0``. Split s is generated in chunks of
  :data:`CHUNK` galaxies, chunk c from ``sample_rng(seed, s, c)``, so sample i of a split
  depends only on (seed, split, i). Non-detections are clipped to S/N = 1 (see the
  simulator docstring), so every magnitude is finite.
* ``catalog``: ``data.path`` = CSV, ECSV, FITS or Parquet table (:func:`cosmobench.io.read_table`) with ``data.mag_columns``,
  ``data.err_columns`` and ``data.z_column``; rows with a missing or non-finite value in
  any of them are dropped (count logged at WARNING); split with
  :func:`~cosmobench.datamodule.split_indices`. Magnitudes must be finite: encode
  non-detections as an upper-limit magnitude with a large error (as the simulator does).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cosmobench.datamodule import ArrayDataset, BaseDataModule, sample_rng, split_indices
from cosmobench.errors import ConfigError, InputError
from cosmobench.io import numeric_column, read_table, write_table
from cosmobench.sim.photometry import BANDS, simulate_catalog

log = logging.getLogger(__name__)

CHUNK = 1000   #: simulated galaxies per independent random chunk


def photoz_features(mag: np.ndarray, magerr: np.ndarray, ref_band: int) -> np.ndarray:
    """Features (n, 2 n_bands): adjacent colours, ``mag[:, ref_band]``, ``log10(magerr)``."""
    mag, magerr = np.asarray(mag, np.float64), np.asarray(magerr, np.float64)
    colours = mag[:, :-1] - mag[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        logerr = np.log10(np.maximum(magerr, 1e-4))
    return np.concatenate([colours, mag[:, ref_band:ref_band + 1], logerr], axis=1)


def feature_names(bands: list[str], ref_band: int) -> list[str]:
    return ([f"{a}-{b}" for a, b in zip(bands[:-1], bands[1:])] + [bands[ref_band]]
            + [f"log10_err_{b}" for b in bands])


class PhotoZDataModule(BaseDataModule):
    """ugriz photometry -> redshift. ``cfg`` is the ``data`` config node (see module docstring)."""

    real_sources = ("catalog",)

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0):
        super().__init__(cfg, seed)
        self.stats: dict[str, Any] = {}
        self.n_dropped = 0

    # --- config -----------------------------------------------------------------------
    def _bands(self) -> list[str]:
        if self.cfg.get("source", "sim") == "sim":
            return list(BANDS)
        return [str(c) for c in self.cfg.get("mag_columns") or []]

    def _ref_band(self, n_bands: int) -> int:
        ref = int(self.cfg.get("ref_band", 3))
        if not 0 <= ref < n_bands:
            raise ConfigError(f"data.ref_band={ref} is out of range for {n_bands} bands (0..{n_bands - 1})")
        return ref

    def _check_cfg(self) -> None:
        c = self.cfg
        if c.get("source", "sim") == "sim":
            depth = list(c.get("depth_5sigma") or [])
            if len(depth) != len(BANDS):
                raise ConfigError(f"data.depth_5sigma needs {len(BANDS)} values (ugriz), got {depth}")
            if not float(c.get("z_max", 3.0)) > 0.05:
                raise ConfigError(f"data.z_max must be > 0.05, got {c.get('z_max')}")
            for k in ("nz_z0", "nz_beta"):
                if not float(c.get(k, 1.0)) > 0:
                    raise ConfigError(f"data.{k} must be > 0, got {c.get(k)}")
            if not float(c.get("nz_alpha", 1.0)) > -1:
                raise ConfigError(f"data.nz_alpha must be > -1, got {c.get('nz_alpha')}")
        else:
            mags, errs = list(c.get("mag_columns") or []), list(c.get("err_columns") or [])
            if len(mags) < 2 or len(mags) != len(errs):
                raise ConfigError(f"data.mag_columns ({len(mags)}) and data.err_columns ({len(errs)}) "
                                  "must list the same number (>= 2) of columns")
            if not c.get("z_column"):
                raise ConfigError("data.source=catalog needs data.z_column")

    # --- simulation -------------------------------------------------------------------
    def simulate(self, split: str, n: int) -> dict[str, np.ndarray]:
        """``n`` galaxies of ``split``: chunk c drawn from ``sample_rng(seed, split, c)``."""
        c = self.cfg
        kw = dict(mag_limit=float(c.get("mag_limit", 25.3)), depth_5sigma=[float(d) for d in c["depth_5sigma"]],
                  z_max=float(c.get("z_max", 3.0)), nz_alpha=float(c.get("nz_alpha", 1.24)),
                  nz_beta=float(c.get("nz_beta", 1.01)), nz_z0=float(c.get("nz_z0", 0.51)))
        chunks = [simulate_catalog(sample_rng(self.seed, split, i), CHUNK, **kw)
                  for i in range(-(-n // CHUNK))]
        return {k: np.concatenate([ch[k] for ch in chunks])[:n] for k in ("mag", "magerr", "z")}

    # --- real data --------------------------------------------------------------------
    def _load_catalog(self, path: Path, need_z: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
        c = self.cfg
        mags, errs, zcol = list(c["mag_columns"]), list(c["err_columns"]), c.get("z_column")
        cols = mags + errs + ([zcol] if need_z else [])
        raw = read_table(path, cols, optional=() if need_z or not zcol else (zcol,))
        table = {k: numeric_column(v) for k, v in raw.items()}
        out = {"mag": np.stack([table[m] for m in mags], axis=1),
               "magerr": np.stack([table[e] for e in errs], axis=1)}
        if zcol in table:
            out["z"] = table[zcol]
        finite = np.isfinite(out["mag"]).all(1) & np.isfinite(out["magerr"]).all(1)
        if need_z:
            finite &= np.isfinite(out["z"])
        return out, finite

    # --- BaseDataModule API -----------------------------------------------------------
    def build(self):
        self._check_cfg()
        if self.cfg.get("source", "sim") == "sim":
            splits = {s: self.simulate(s, int(self.cfg[f"n_{s}"])) for s in ("train", "val", "test")}
        else:
            path = self.require_path()
            data, finite = self._load_catalog(path, need_z=True)
            self.n_dropped = int((~finite).sum())
            if self.n_dropped:
                log.warning("dropped %d of %d rows of %s with missing or non-finite magnitudes, "
                            "errors or redshift", self.n_dropped, len(finite), path)
            data = {k: v[finite] for k, v in data.items()}
            idx = split_indices(len(data["z"]), float(self.cfg.get("val_fraction", 0.15)),
                                float(self.cfg.get("test_fraction", 0.15)), self.seed)
            splits = {s: {k: v[i] for k, v in data.items()} for s, i in idx.items()}
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
                "n_features": 2 * len(bands), "z_max": float(self.cfg.get("z_max", 3.0)), **self.stats}

    def export(self, split: str, path: str | Path) -> Path:
        """Write ``split`` as a CSV/ECSV/FITS/Parquet table (by suffix, :func:`cosmobench.io.write_table`) with the ``data.mag_columns``,
        ``data.err_columns`` and ``data.z_column`` names, readable by :meth:`read_input`."""
        self.setup()
        arrays = self.datasets[split].arrays
        c = self.cfg
        mags, errs = list(c["mag_columns"]), list(c["err_columns"])
        if len(mags) != arrays["mag"].shape[1] or len(errs) != arrays["magerr"].shape[1]:
            raise ConfigError(f"data.mag_columns/err_columns must name {arrays['mag'].shape[1]} bands to export")
        cols = {m: arrays["mag"][:, i].numpy() for i, m in enumerate(mags)}
        cols.update({e: arrays["magerr"][:, i].numpy() for i, e in enumerate(errs)})
        if "z" in arrays and c.get("z_column"):
            cols[c["z_column"]] = arrays["z"].numpy()
        return write_table(cols, path)

    def read_input(self, path: str | Path) -> ArrayDataset:
        """Unlabelled items from a CSV/ECSV/FITS/Parquet table with the ``data.mag_columns``/``err_columns``
        (the ``data.z_column`` is read if present). Rows are kept in file order; rows with
        non-finite inputs are kept (their predictions are NaN) and counted in a warning."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"input file not found: {p}")
        c = self.cfg
        if not c.get("mag_columns") or len(c["mag_columns"]) != len(c.get("err_columns") or []):
            raise ConfigError("predict needs data.mag_columns and data.err_columns of equal length")
        if c.get("source", "sim") == "sim" and len(c["mag_columns"]) != len(BANDS):
            raise ConfigError(f"a model trained on simulated ugriz data needs {len(BANDS)} data.mag_columns")
        data, finite = self._load_catalog(p, need_z=False)
        if not finite.all():
            log.warning("%d of %d rows of %s have missing or non-finite magnitudes/errors: "
                        "their predictions are NaN", int((~finite).sum()), len(finite), p)
        return ArrayDataset(self._arrays(data, self._ref_band(data["mag"].shape[1])))
