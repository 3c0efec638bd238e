"""Download, cache and verify the registered data sets (:mod:`cosmobench.datasets.catalog`).

``pooch`` does the transfer (its ``HTTPDownloader``, with a progress bar), the temporary
file and the sha256 check against the known hash (``pooch.retrieve(url, known_hash)``).
Written here, because pooch does not do it:

* mirror fallback: each URL of a file in order (pooch takes one URL per file);
* placement: every attempt downloads into its own temporary directory inside the cache
  root (same file system), and only a checked file is moved into place (:func:`cosmobench.io.atomic_path`);
  the temporary directory is removed whatever happens (hash mismatch, 404, a transfer cut
  short, Ctrl-C), so a failed download leaves nothing in the cache;
* files with only a git blob id (the publisher's git tree; the file itself could not be
  obtained to compute its sha256): the download is checked against that id;
* a manifest per data set (``.cosmobench.json``: sha256, URL and date of each fetched file)
  for ``verify`` (files without a published hash are checked against what was first fetched)
  and for a run's provenance (:func:`provenance`), without re-hashing;
* offline use: :func:`require` and :func:`loader_config` never touch the network: a cached
  set works without it, a missing one is a one-line ``InputError`` naming
  ``cosmobench data fetch NAME``.

Cache root: ``$COSMOBENCH_DATA``, else ``pooch.os_cache("cosmobench")`` (the platform's user
cache directory); data set ``NAME`` lives in ``<root>/NAME/``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from cosmobench.datasets.catalog import DATASETS, DataFile, Dataset, get_dataset
from cosmobench.errors import InputError
from cosmobench.io import atomic_path

ENV_VAR = "COSMOBENCH_DATA"
MANIFEST = ".cosmobench.json"
TIMEOUT = 30  # seconds without a byte before a transfer is abandoned (requests' read timeout)
_PARTIAL_PREFIX = ".partial-"


def data_home() -> Path:
    """The cache root: ``$COSMOBENCH_DATA`` or the platform user cache dir (``pooch.os_cache``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("cosmobench"))


def dataset_dir(ds: Dataset | str) -> Path:
    return data_home() / get_dataset(ds).name


def local_path(ds: Dataset | str, f: DataFile | str) -> Path:
    ds = get_dataset(ds)
    f = ds.file(f) if isinstance(f, str) else f
    return dataset_dir(ds).joinpath(*f.name.split("/"))


def _present(ds: Dataset, f: DataFile) -> bool:
    p = local_path(ds, f)
    return p.is_file() and (f.size is None or p.stat().st_size == f.size)


def cache_state(ds: Dataset | str) -> str:
    """``cached`` (every file present, sizes as registered), ``partial`` or ``no``."""
    ds = get_dataset(ds)
    have = [_present(ds, f) for f in ds.files]
    return "cached" if all(have) else "partial" if any(have) else "no"


def fetch_command(ds: Dataset | str) -> str:
    return f"cosmobench data fetch {get_dataset(ds).name}"


def require(ds: Dataset | str) -> Path:
    """The data set's cache directory if every file is there (no network, no re-hash), else
    a one-line ``InputError`` naming the fetch command."""
    ds = get_dataset(ds)
    missing = [f.name for f in ds.files if not _present(ds, f)]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"data set {ds.name!r} is not in the cache {dataset_dir(ds)} (missing {missing[0]}{more}): "
                         f"run `{fetch_command(ds)}` (with network) first")
    return dataset_dir(ds)


def _resolve(value: Any, names: dict[str, Path]) -> Any:
    if isinstance(value, str) and value in names:
        return str(names[value])
    if isinstance(value, (list, tuple)):
        return [_resolve(v, names) for v in value]
    return value


def loader_config(ds: Dataset | str) -> dict[str, Any]:
    """The data set's loader keys with file names replaced by their cached paths (``"."``: the
    data set's directory). Offline: needs the files cached (:func:`require`)."""
    ds = get_dataset(ds)
    root = require(ds)
    names: dict[str, Path] = {}
    for f in ds.files:  # a key may name a file by its full name or by its base name
        p = local_path(ds, f)
        names[f.name] = p
        names.setdefault(f.name.rsplit("/", 1)[-1], p)
    out = {k: _resolve(v, names) for k, v in ds.loader.items()}
    return {k: (str(root) if v == "." else v) for k, v in out.items()}


# --------------------------------------------------------------------------- hashing

def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def git_blob_id(path: Path, chunk: int = 1 << 20) -> str:
    """The git object id of a file's content (what ``git hash-object`` prints)."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- manifest

def _manifest_path(ds: Dataset) -> Path:
    return dataset_dir(ds) / MANIFEST


def read_manifest(ds: Dataset | str) -> dict[str, Any]:
    ds = get_dataset(ds)
    p = _manifest_path(ds)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return {"dataset": ds.name, "files": {}}
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: unreadable cache manifest ({exc}); delete it and re-fetch") from exc
    data.setdefault("files", {})
    return data


def _write_manifest(ds: Dataset, data: dict[str, Any]) -> None:
    p = _manifest_path(ds)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def provenance(ds: Dataset | str) -> dict[str, Any]:
    """For a run's provenance: the data set's name and, per file, the sha256 recorded when it
    was fetched (no re-hash), the registered hash and the URL it came from."""
    ds = get_dataset(ds)
    require(ds)
    recorded = read_manifest(ds)["files"]
    return {"dataset": ds.name, "task": ds.task,
            "files": {f.name: {"sha256": recorded.get(f.name, {}).get("sha256") or f.sha256,
                               "registered_sha256": f.sha256, "git_blob": f.git_blob,
                               "url": recorded.get(f.name, {}).get("url")} for f in ds.files}}


# --------------------------------------------------------------------------- download

@contextmanager
def _quiet_pooch():
    """pooch logs every download at INFO on stderr (with our temporary names); we print our own."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _progressbar(label: str):
    from tqdm.auto import tqdm

    # total=1: pooch tests the bar for truth (tqdm: total > 0) before it sets the real total
    return tqdm(desc=label, total=1, unit="B", unit_scale=True, ncols=79, leave=True, file=sys.stderr)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


class _Mismatch(Exception):
    pass


def _attempt(f: DataFile, url: str, tmp_root: Path, progress: bool) -> Path:
    """Download ``url`` into a fresh directory below ``tmp_root``, checked; return its path."""
    import pooch

    d = Path(tempfile.mkdtemp(prefix="try-", dir=tmp_root))
    bar = _progressbar(f.name.rsplit("/", 1)[-1]) if progress else False
    downloader = pooch.HTTPDownloader(progressbar=bar, timeout=TIMEOUT)
    try:
        got = Path(pooch.retrieve(url, known_hash=f.known_hash, fname="download", path=d, downloader=downloader))
    except ValueError as exc:  # pooch: "... does not match the known hash: expected X but got Y ..."
        if "does not match" in str(exc):
            m = re.search(r"expected (\S+) but got (\S+?)\.?(\s|$)", str(exc))
            detail = f"expected {m.group(1).split(':')[-1]} but got {m.group(2)}" if m else _short(exc, 300)
            raise _Mismatch(f"sha256 mismatch ({detail})") from None
        raise
    finally:
        if bar is not False and not bar.disable:
            bar.close()
    if f.size is not None and got.stat().st_size != f.size:  # pooch checked the hash; size is a cheap extra
        raise _Mismatch(f"size mismatch (expected {f.size} bytes, got {got.stat().st_size})")
    if f.sha256 is None and f.git_blob is not None:
        blob = git_blob_id(got)
        if blob != f.git_blob:
            raise _Mismatch(f"git blob id mismatch (expected {f.git_blob} but got {blob})")
    return got


def _download(ds: Dataset, f: DataFile, progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Fetch one file through its URLs in order into the cache; return its manifest record."""
    import requests

    home = data_home()
    home.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=_PARTIAL_PREFIX, dir=home))
    failures, mismatch = [], False
    try:
        for url in f.urls:
            say(f"  {f.name} <- {url}")
            try:
                got = _attempt(f, url, tmp_root, progress)
            except _Mismatch as exc:
                mismatch = True
                failures.append(f"{url}: {exc}")
            except requests.HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else "?"
                failures.append(f"{url}: HTTP {code}")
            except requests.RequestException as exc:  # connection refused/reset, cut-short body, timeout
                failures.append(f"{url}: transfer failed ({type(exc).__name__}: {_short(exc)})")
            else:
                digest = f.sha256 or sha256_file(got)
                dest = local_path(ds, f)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(dest) as tmp:  # readers see the old file or the whole checked one
                    shutil.move(got, tmp)  # a rename: the partial dir is on the cache root's file system
                return {"sha256": digest, "url": url, "checked_by": f.check,
                        "fetched": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            if len(f.urls) > 1 and url != f.urls[-1]:
                say(f"  {failures[-1]}; trying the next mirror")
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    what = "hash mismatch" if mismatch else "download failed"
    raise InputError(f"{ds.name}: {what} for {f.name}, nothing was written to the cache: " + "; ".join(failures))


@dataclass
class FetchReport:
    dataset: str
    directory: Path
    downloaded: list[str]
    already: list[str]
    unverified: list[tuple[str, str]]  # (file, sha256 of what was fetched)


def fetch(ds: Dataset | str, *, force: bool = False, progress: bool = True,
          say: Callable[[str], None] = print) -> FetchReport:
    """Download every missing file of ``ds`` (all with ``force``), checked; files already in
    the cache are not re-downloaded (and need no network). Raises a one-line ``InputError``
    if a file cannot be fetched or fails its check; files fetched before stay (they passed)."""
    ds = get_dataset(ds)
    manifest = read_manifest(ds)
    report = FetchReport(ds.name, dataset_dir(ds), [], [], [])
    created = not dataset_dir(ds).exists()
    try:
        with _quiet_pooch():
            for f in ds.files:
                if not force and _present(ds, f):
                    report.already.append(f.name)
                    continue
                record = _download(ds, f, progress, say)
                manifest["dataset"] = ds.name
                manifest["files"][f.name] = record
                _write_manifest(ds, manifest)
                report.downloaded.append(f.name)
                if f.check == "none":
                    report.unverified.append((f.name, record["sha256"]))
    except BaseException:
        d = dataset_dir(ds)
        if created and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
        raise
    return report


# --------------------------------------------------------------------------- verify

@dataclass
class VerifyResult:
    dataset: str
    file: str
    status: str  # ok | MISMATCH | missing | unrecorded
    detail: str = ""


def _verify_file(ds: Dataset, f: DataFile, recorded: dict[str, Any]) -> VerifyResult:
    p = local_path(ds, f)
    if not p.is_file():
        return VerifyResult(ds.name, f.name, "missing")
    if f.size is not None and p.stat().st_size != f.size:
        return VerifyResult(ds.name, f.name, "MISMATCH", f"size {p.stat().st_size}, expected {f.size}")
    if f.sha256:
        got = sha256_file(p)
        return VerifyResult(ds.name, f.name, "ok" if got == f.sha256 else "MISMATCH",
                            "" if got == f.sha256 else f"sha256 {got}, expected {f.sha256}")
    if f.git_blob:
        got = git_blob_id(p)
        return VerifyResult(ds.name, f.name, "ok" if got == f.git_blob else "MISMATCH",
                            "" if got == f.git_blob else f"git blob {got}, expected {f.git_blob}")
    want = recorded.get(f.name, {}).get("sha256")
    if not want:
        return VerifyResult(ds.name, f.name, "unrecorded", "UNVERIFIED file with no recorded sha256")
    got = sha256_file(p)
    return VerifyResult(ds.name, f.name, "ok" if got == want else "MISMATCH",
                        "against the sha256 recorded at fetch (UNVERIFIED file)" if got == want
                        else f"sha256 {got}, recorded at fetch {want}")


def verify(names: Iterable[str] | None = None) -> list[VerifyResult]:
    """Re-hash every cached file of ``names`` (default: every registered data set that has a
    cache directory) against its registered hash (or, for an UNVERIFIED file, the sha256
    recorded when it was fetched)."""
    sets = [get_dataset(n) for n in names] if names else [d for d in DATASETS.values() if dataset_dir(d).is_dir()]
    out: list[VerifyResult] = []
    for ds in sets:
        recorded = read_manifest(ds)["files"]
        for f in ds.files:
            out.append(_verify_file(ds, f, recorded))
    return out
