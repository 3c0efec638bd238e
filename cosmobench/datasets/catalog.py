"""The registry of named public data sets: plain data, one frozen :class:`Dataset` per entry.

Every entry states its files (local name, URLs = primary then mirrors, sha256, size), where
each hash came from (:attr:`DataFile.provenance`), its licence and whether that restricts
use, its citation (BibTeX), the loader keys it fills for its task (:attr:`Dataset.loader`,
file names as values: :func:`cosmobench.datasets.loader_config` turns them into cached
paths) and an optional CPU-sized subset rule. Downloads, caching and hash checks are in
:mod:`cosmobench.datasets.download`; the list of entries and their hash provenance is in
``docs/datasets.md``.

Rules for a new entry: every hash is either computed from the real file or copied from the
publisher's own page, and :attr:`DataFile.provenance` says which (with the URL and date);
where neither was possible the file has no hash and its provenance starts with
``UNVERIFIED:`` — never invent one. GitHub-hosted files are pinned to a commit
(:func:`github_file`): the primary URL is raw.githubusercontent.com, the mirror jsDelivr's
GitHub CDN, which serves the same bytes of the same commit.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from cosmobench.errors import ConfigError

#: the day the hashes of this file were computed or copied
HASHED_ON = "2026-12-06"

TASKS = ("photoz", "morphology", "lensfinding", "deblending", "massmapping", "sbi")
KINDS = ("real", "external")  # external: made by another code than ours (an external simulator)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class DataFile:
    """One file of a data set.

    ``name`` is its path inside the data set's cache directory (``/``-separated; may have
    sub-directories). ``urls``: the primary URL first, then mirrors serving the same bytes.
    ``sha256``/``size``: of the whole file, or None when unknown. ``git_blob``: the git
    object id (SHA-1 of ``b"blob <size>\\0" + content``) from the publisher's repository
    tree, a content hash used when the file itself could not be obtained to compute its
    sha256. ``approx_size``: bytes, for display only, when the publisher gives a rounded size.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None
    provenance: str
    git_blob: str | None = None
    approx_size: int | None = None

    def __post_init__(self):
        if not self.urls:
            raise ValueError(f"{self.name}: no URL")
        if self.sha256 is not None and not _HEX64.match(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lower-case hex digits")
        if self.git_blob is not None and not _HEX40.match(self.git_blob):
            raise ValueError(f"{self.name}: git_blob must be 40 lower-case hex digits")
        if self.name.startswith("/") or ".." in self.name.split("/"):
            raise ValueError(f"{self.name}: must be a relative path inside the data set's directory")
        if (self.sha256 is None and self.git_blob is None) != self.provenance.startswith("UNVERIFIED"):
            raise ValueError(f"{self.name}: a file without a hash has provenance 'UNVERIFIED: <why>', "
                             "and only such a file")

    @property
    def known_hash(self) -> str | None:
        """pooch's ``known_hash`` (``"sha256:<hex>"``), None without a sha256."""
        return f"sha256:{self.sha256}" if self.sha256 else None

    @property
    def check(self) -> str:
        """How a download is checked: ``sha256``, ``git-blob`` or ``none``."""
        return "sha256" if self.sha256 else "git-blob" if self.git_blob else "none"


@dataclass(frozen=True)
class Subset:
    """A seeded CPU-sized subset (``data.subset=N``): ``n`` items by default, drawn with the
    run's seed, stratified by ``stratify`` (a loader field, or None for a plain draw)."""

    n: int
    stratify: str | None
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    """A named data set. ``loader``: the task's data keys it fills (file names as values);
    ``restriction``: None, or one line saying how the licence restricts use (printed on
    fetch); ``kind``: ``real`` (observed data or a published data set) or ``external``
    (made by a simulator other than ours); ``notes``: what a user must know (layout, gaps)."""

    name: str
    task: str
    description: str
    files: tuple[DataFile, ...]
    licence: str
    licence_url: str
    citation_key: str
    citation: str
    loader: Mapping[str, Any]
    kind: str = "real"
    restriction: str | None = None
    subset: Subset | None = None
    notes: str = ""
    homepage: str = ""

    def __post_init__(self):
        if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", self.name):
            raise ValueError(f"data set name {self.name!r}: lower-case letters, digits, '_', '-', '.'")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate file names")
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "loader", MappingProxyType(dict(self.loader)))

    @property
    def size(self) -> int | None:
        """Total bytes (None if a file's size is unknown)."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(sizes)

    @property
    def approx_size(self) -> int:
        """Total bytes for display: exact sizes, the publisher's rounded ones otherwise."""
        return sum(f.size if f.size is not None else (f.approx_size or 0) for f in self.files)

    def file(self, name: str) -> DataFile:
        for f in self.files:
            if f.name == name:
                return f
        raise ConfigError(f"data set {self.name!r} has no file {name!r} "
                          f"(files: {', '.join(f.name for f in self.files[:5])}{' ...' if len(self.files) > 5 else ''})")


# --------------------------------------------------------------------------- registry

DATASETS: dict[str, Dataset] = {}


def register_dataset(ds: Dataset, *, replace: bool = False) -> Dataset:
    """Add ``ds`` to :data:`DATASETS` (plugins and tests add their own entries)."""
    if ds.name in DATASETS and not replace:
        raise ValueError(f"data set {ds.name!r} is already registered")
    DATASETS[ds.name] = ds
    return ds


def unregister_dataset(name: str) -> None:
    DATASETS.pop(name, None)


def get_dataset(name: str) -> Dataset:
    """The registered data set ``name``; a one-line :class:`ConfigError` (with a suggestion)
    if there is none."""
    if isinstance(name, Dataset):
        return name
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown data set {name!r}{hint} (`cosmobench data list` shows them)") from None


# --------------------------------------------------------------------------- helpers for entries

def github_file(owner: str, repo: str, commit: str, path: str, *, name: str | None = None,
                sha256: str | None = None, size: int | None = None, git_blob: str | None = None) -> DataFile:
    """A file of a public GitHub repository pinned to ``commit``: raw.githubusercontent.com
    first, jsDelivr's GitHub CDN (same commit, same bytes) as mirror. ``sha256``/``size``
    were computed from the file of a git snapshot of that commit; ``git_blob`` alone: the
    file was absent from the snapshot (GitHub-sized files, >= 4 MiB), only its tree entry."""
    urls = (f"https://raw.githubusercontent.com/{owner}/{repo}/{commit}/{path}",
            f"https://cdn.jsdelivr.net/gh/{owner}/{repo}@{commit}/{path}")
    where = f"https://github.com/{owner}/{repo}/blob/{commit}/{path}"
    if sha256:
        prov = f"sha256 computed from the file fetched from {where} (git snapshot of commit {commit[:7]}) on {HASHED_ON}"
    elif git_blob:
        prov = (f"git blob id {git_blob} read from the publisher's tree at {where} on {HASHED_ON}; "
                "the file (>= 4 MiB) could not be obtained here, so its sha256 and size are not known yet: "
                "a download is checked against the git blob id (SHA-1 of 'blob <size>\\0' + content)")
    else:
        prov = f"UNVERIFIED: no hash could be obtained for {where}"
    return DataFile(name or path.rsplit("/", 1)[-1], urls, sha256, size, prov, git_blob=git_blob)


def bibtex(text: str) -> str:
    """A BibTeX block written indented in the source, de-indented by four spaces."""
    return "\n".join(line[4:] if line.startswith("    ") else line for line in text.strip("\n").splitlines())


# the built-in entries, one module per task (cosmobench/datasets/entries/)
from cosmobench.datasets import entries  # noqa: E402,F401  (registers them)
