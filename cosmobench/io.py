"""Tables in the field's usual formats, read and written through :mod:`astropy.table`.

Formats, chosen by the file name's extension:

* ``.csv`` (read also ``.csv.gz``): astropy ``ascii.csv`` (empty fields -> masked);
* ``.ecsv``: astropy ``ascii.ecsv`` (keeps dtypes and units);
* ``.fits``/``.fit`` (read also ``.gz``): FITS binary table (the first table HDU);
* ``.parquet``: astropy through pyarrow;
* ``.npz``, ``.h5``/``.hdf5``: write only (``predict`` output), one array per column.

:func:`read_table` returns ``{column: numpy array}`` with masked (missing) entries of float
columns filled with NaN; :func:`numeric_column` converts a column to float64 (non-numeric
entries -> NaN, as missing values). :func:`write_table` writes atomically (a temporary file
renamed into place), so a failed write leaves nothing half-done. Every problem is an
:class:`~cosmobench.errors.InputError` with one line naming the file.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from cosmobench.errors import ConfigError, InputError

#: extension -> astropy format name
TABLE_FORMATS = {".csv": "ascii.csv", ".csv.gz": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits",
                 ".fit": "fits", ".fits.gz": "fits", ".fit.gz": "fits", ".parquet": "parquet"}
#: extensions :func:`write_table` accepts
WRITE_SUFFIXES = (".csv", ".ecsv", ".fits", ".fit", ".parquet", ".npz", ".h5", ".hdf5")


@contextmanager
def quiet_readers():
    """Silence third-party chatter while a file is read: Python warnings (numpy's
    ComplexWarning, astropy's VerifyWarning/AstropyUserWarning, h5py) and astropy's logger
    (which prints ``WARNING: File may have been truncated`` itself). A problem they signal is
    then caught as an exception or by :func:`check_numeric` and reported as one InputError."""
    import logging
    import warnings
    known = logging.Logger.manager.loggerDict  # never create astropy's logger (it has its own class)
    loggers = [known[n] for n in ("astropy", "healpy") if isinstance(known.get(n), logging.Logger)]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def table_format(path: str | Path) -> str | None:
    """astropy format name of ``path`` by extension, or None (``.npz``/``.h5``/unknown)."""
    name = Path(path).name.lower()
    for ext in sorted(TABLE_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return TABLE_FORMATS[ext]
    return None


def _column_array(col) -> np.ndarray:
    if col.dtype.kind == "S":  # FITS text columns are bytes
        col = col.astype(str)
    mask = getattr(col, "mask", None)
    if mask is not None and np.any(mask):
        if col.dtype.kind == "f":
            return np.asarray(col.filled(np.nan))
        if col.dtype.kind in "iu":
            return np.asarray(col.astype(np.float64).filled(np.nan))
        return np.asarray(col.filled(""))
    return np.asarray(col)


def read_table(path: str | Path, columns: Iterable[str] | None = None,
               optional: Iterable[str] = (), numeric: Iterable[str] | bool = ()) -> dict[str, np.ndarray]:
    """Columns of a CSV/ECSV/FITS/Parquet table -> ``{name: array}`` (file order).

    ``columns``: the columns needed (all if None; a missing one is an InputError listing the
    available ones); ``optional``: columns read only if present. Masked float/int entries
    become NaN, masked strings ``""``. ``numeric`` (column names, or True for all read):
    those columns are returned as float64 and an entry that is text other than a missing
    value is an InputError naming the column, the row and the value (:func:`numeric_strict`)."""
    p = Path(path).expanduser()
    fmt = table_format(p)
    if fmt is None:
        raise InputError(f"unsupported table format {p.name!r}: use .csv, .ecsv, .fits or .parquet")
    if not p.is_file():
        raise InputError(f"table file not found: {p}")
    from astropy.table import Table
    try:
        with quiet_readers():
            table = Table.read(p, format=fmt)
    except Exception as exc:  # noqa: BLE001 - astropy/pyarrow raise many types for corrupt files
        raise InputError(f"cannot read {fmt.replace('ascii.', '').upper()} table {p}: {_one_line(exc)}") from None
    available = list(table.colnames)
    wanted = available if columns is None else list(columns)
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(f"column(s) {', '.join(repr(c) for c in missing)} not found in {p}; "
                         f"available columns: {', '.join(available)}")
    names = wanted + [c for c in optional if c in available and c not in wanted]
    out = {}
    for c in names:
        col = table[c]
        if col.ndim != 1:
            raise InputError(f"{p}: column {c!r} is not a scalar column (shape {col.shape})")
        out[c] = _column_array(col)
    strict = names if numeric is True else [c for c in (numeric or ()) if c in out]
    for c in strict:
        out[c] = numeric_strict(out[c], p, c)
    return out


#: text entries read as missing values (NaN) by :func:`numeric_strict`
MISSING_TEXT = ("", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A", "--", "-")


def numeric_strict(values: np.ndarray, path: str | Path, column: str) -> np.ndarray:
    """A table column as float64 where every entry is a number or a missing value (empty,
    ``nan``, ``null``, ...: NaN); other text is a one-line InputError naming the column, row
    and value. Complex values are refused (their imaginary part would be dropped)."""
    a = np.asarray(values)
    if a.dtype.kind == "c":
        raise InputError(f"{path}: column {column!r} holds complex values; a real number is expected")
    if a.dtype.kind in "fiub":
        return a.astype(np.float64)
    if a.dtype.kind not in "USO":
        raise InputError(f"{path}: column {column!r} is not numeric (dtype {a.dtype})")
    out = numeric_column(a)
    text = np.char.strip(a.astype(str))
    bad = np.isnan(out) & ~np.isin(text, MISSING_TEXT)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: column {column!r} is not numeric: row {r} holds {str(text[r])[:40]!r} "
                         f"({int(bad.sum())} such entries)")
    return out


def numeric_column(values: np.ndarray) -> np.ndarray:
    """A table column as float64; entries that are not numbers (text, empty) become NaN."""
    a = np.asarray(values)
    if a.dtype.kind in "fiub":
        return a.astype(np.float64)
    import pandas as pd
    return pd.to_numeric(pd.Series(a.astype(str)).str.strip(), errors="coerce").to_numpy(dtype=np.float64)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` only if the block
    succeeds, removed otherwise (a reader never sees a half-written file). The temporary name
    is unique per call, so concurrent writers of the same file never share it. Inside an
    active :func:`write_set` that declares ``path``, the file is instead moved into place
    with the rest of the set when the set commits."""
    path = Path(path)
    ws = _ACTIVE_SET.get()
    if ws is not None and ws.declares(path):
        with ws.stage(path) as tmp:
            yield tmp
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --- sets of output files: checked before anything is written, committed together --------
#: extensions stripped from an output name to get its stem (longest first): the table formats,
#: the image formats and the task outputs of ``predict``
OUTPUT_SUFFIXES = (".fits.gz", ".fit.gz", ".csv.gz", ".parquet", ".hdf5", ".ecsv", ".fits", ".json", ".yaml",
                   ".csv", ".fit", ".fts", ".npz", ".npy", ".png", ".pdf", ".h5")


def output_stem(path: str | Path) -> str:
    """The name of ``path`` without its (known) extension, and only that: ``run.v1.csv`` ->
    ``run.v1``, ``cat.fits.gz`` -> ``cat`` (unknown extensions: the last suffix is removed)."""
    name = Path(path).name
    for ext in OUTPUT_SUFFIXES:
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[:-len(ext)]
    return Path(name).stem


def side_path(output: str | Path, tail: str) -> Path:
    """A companion file of ``output`` named from its full stem: ``side_path("run.v1.csv",
    "_images.npz")`` -> ``run.v1_images.npz`` (two outputs never share a companion)."""
    output = Path(output)
    return output.with_name(output_stem(output) + tail)


_ACTIVE_SET: ContextVar["WriteSet | None"] = ContextVar("cosmobench_write_set", default=None)


class WriteSet:
    """The files one command writes (see :func:`write_set`)."""

    def __init__(self, paths: Iterable[str | Path], overwrite: bool = False, what: str = "--output"):
        self.paths = [Path(p).expanduser() for p in paths]
        self.what = what
        self.staged: dict[Path, Path] = {}
        keys = [self._key(p) for p in self.paths]
        if len(set(keys)) != len(keys):
            dup = next(p for p, k in zip(self.paths, keys) if keys.count(k) > 1)
            raise ConfigError(f"{what}: {dup} would be written twice (choose another output name)")
        for p in self.paths:
            if p.is_dir():
                raise ConfigError(f"{what}: {p} is a directory")
            if p.exists() and not overwrite:
                raise ConfigError(f"{what}: {p} exists: pass --overwrite to replace it")
            parent = p.parent
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{what}: cannot write {p}: {parent} is not a writable directory")

    @staticmethod
    def _key(p: Path) -> str:
        return os.path.normcase(os.path.abspath(p))

    def declares(self, path: str | Path) -> bool:
        return self._key(Path(path)) in {self._key(p) for p in self.paths}

    @contextmanager
    def stage(self, path: Path) -> Iterator[Path]:
        """A temporary file for ``path`` (its suffix kept, for writers that infer the format);
        kept until :meth:`commit` moves every staged file into place."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to the staged file of {path}")
        old = self.staged.pop(next((p for p in self.staged if self._key(p) == self._key(path)), path), None)
        if old is not None:
            old.unlink(missing_ok=True)
        self.staged[path] = tmp

    def commit(self) -> None:
        """Move every staged file into place. An existing file is first moved aside, so that a
        failure part-way restores the previous set (nothing half-replaced)."""
        done: list[tuple[Path, Path | None]] = []
        try:
            for path, tmp in self.staged.items():
                backup = None
                if path.exists():
                    backup = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.bak")
                    os.replace(path, backup)
                done.append((path, backup))
                os.replace(tmp, path)
        except BaseException:
            for path, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, path)
                else:
                    path.unlink(missing_ok=True)
            raise
        finally:
            for tmp in self.staged.values():
                tmp.unlink(missing_ok=True)
        for _, backup in done:
            if backup is not None:
                backup.unlink(missing_ok=True)
        self.staged = {}

    def discard(self) -> None:
        for tmp in self.staged.values():
            tmp.unlink(missing_ok=True)
        self.staged = {}


@contextmanager
def write_set(paths: Iterable[str | Path], overwrite: bool = False, what: str = "--output") -> Iterator[WriteSet]:
    """Write several files as one: every path is checked first (not a directory; an existing
    file only with ``overwrite``; a writable folder; no path twice: ``ConfigError`` before
    anything is written), then inside the block every write through :func:`atomic_path`
    (hence :func:`write_table`, :func:`cosmobench.images.write_image_stack`, and any code that
    writes to ``atomic_path(p)``'s temporary file) of a declared path goes to a temporary file,
    and only when the block succeeds are all of them moved into place together; on any error
    none is (a path the set does not declare is written as usual, at once). Use::

        with write_set([out, side_path(out, "_images.npz")], overwrite) as ws:
            write_table(table, out)
            with atomic_path(side_path(out, "_images.npz")) as tmp:
                np.savez(tmp, ...)
    """
    ws = WriteSet(paths, overwrite, what)
    token = _ACTIVE_SET.set(ws)
    try:
        yield ws
        ws.commit()
    except BaseException:
        ws.discard()
        raise
    finally:
        _ACTIVE_SET.reset(token)


def write_table(columns: Mapping[str, np.ndarray], path: str | Path, overwrite: bool = True) -> Path:
    """Write equal-length 1-D columns to ``path`` by extension (module docstring), atomically.

    ``.npz``/``.h5`` keep every array as is (any shape); the table formats need 1-D columns."""
    p = Path(path).expanduser()
    name = p.name.lower()
    if p.is_dir():
        raise InputError(f"{p} is a directory, not a file name")
    if not name.endswith(WRITE_SUFFIXES):
        raise InputError(f"{p}: cannot write a table with this extension; use one of {', '.join(WRITE_SUFFIXES)}")
    if p.exists() and not overwrite:
        raise InputError(f"{p} exists (not overwriting)")
    cols = {str(k): np.asarray(v) for k, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise InputError(f"{p}: columns of unequal length {sorted(lengths)}")
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        if name.endswith(".npz"):
            with open(tmp, "wb") as fh:
                np.savez(fh, **cols)
        elif name.endswith((".h5", ".hdf5")):
            import h5py
            with h5py.File(tmp, "w") as fh:
                for k, v in cols.items():
                    fh.create_dataset(k, data=v)
        else:
            from astropy.table import Table
            bad = [k for k, v in cols.items() if v.ndim != 1]
            if bad:
                raise InputError(f"{p}: column {bad[0]!r} is not 1-D; write .npz or .h5 for arrays")
            Table(cols).write(tmp, format=table_format(p), overwrite=True)
    return p


__all__ = ["TABLE_FORMATS", "WRITE_SUFFIXES", "table_format", "read_table", "numeric_column", "numeric_strict", "write_table",
           "atomic_path", "quiet_readers",
           "output_stem", "side_path", "write_set", "WriteSet"]
