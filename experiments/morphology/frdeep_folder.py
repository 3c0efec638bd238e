"""Turn the published FR-DEEP batches (Tang, Scaife & Leahy 2019) into a table of image files
that ``data.source=folder`` reads: a real, labelled radio-galaxy morphology set (FRI / FRII)
small enough for a CPU run, for the morphology task's real-data track.

FR-DEEP is published as CIFAR-style pickled batches in the authors' repository
https://github.com/HongmingTang060313/FR-DEEP (commit b01744e, 2019-04-29): one tarball per
survey, ``FIRST_data/FIRST_PNG_dataset.tar.gz`` and ``NVSS_data/NVSS_PNG_dataset.tar.gz``, each
11 training batches and one test batch of 50 images (150x150 px, one band, uint8; 264 FRI and
336 FRII in all), labels 0 = FRI, 1 = FRII (``batches.meta``). No cosmobench loader reads
pickled batches, so this script writes each image as ``images/<batch>_<i>.npy`` (150x150 uint8)
with ``train.csv`` (the 11 training batches) and ``test.csv`` (the published test batch),
columns ``file,label`` (label = FRI / FRII).

The tarball is checked first against the md5 its publisher gives (``tgz_md5`` in FRDEEP.py of
the same commit) and the sha256 computed here from the file of a git snapshot of that commit;
the batches are read with an unpickler that admits only the numpy types they contain.

Usage::

    # FIRST: https://raw.githubusercontent.com/HongmingTang060313/FR-DEEP/b01744e102c61a63cc76211f98b65e3531ffb5c7/FIRST_data/FIRST_PNG_dataset.tar.gz
    python experiments/morphology/frdeep_folder.py FIRST_PNG_dataset.tar.gz OUT_DIR
    cosmobench train morphology -m cnn -c experiments/morphology/real_frdeep.yaml \\
        data.path=OUT_DIR/train.csv data.test_path=OUT_DIR/test.csv seed=0
"""
from __future__ import annotations

import csv
import hashlib
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np

COMMIT = "b01744e102c61a63cc76211f98b65e3531ffb5c7"
#: tarball name -> (publisher's md5 from FRDEEP.py at COMMIT, sha256 computed here from the file at COMMIT, bytes)
TARBALLS = {
    "FIRST_PNG_dataset.tar.gz": ("2f39461e6c62fb45289559915106013a",
                                 "9bacbcc771a0b7d373ae1340e290bc1950531ed4fa1fa17d5d3d14295c9b2c48", 306842),
    "NVSS_PNG_dataset.tar.gz": ("2584ed1e174ea71f581d0e0d6f32ef38",
                                "37ef88b83a8177454002dd2dea3075d54b9b60a31ada44caa922dfbd8fbb2248", 370254),
}
#: the only globals the batches name (numpy 1.x wrote them; numpy 2 writes numpy._core)
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar")}


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name} in an FR-DEEP batch")
        return super().find_class(module, name)


def _load(raw: bytes) -> dict:
    return _NumpyOnly(io.BytesIO(raw), encoding="latin1").load()


def check(path: Path) -> bytes:
    """The bytes of ``path`` if it is one of the published tarballs (name, size, md5, sha256)."""
    raw = path.read_bytes()
    if path.name not in TARBALLS:
        sys.exit(f"{path.name}: expected one of {', '.join(TARBALLS)}")
    md5, sha, size = TARBALLS[path.name]
    if len(raw) != size or hashlib.md5(raw).hexdigest() != md5 or hashlib.sha256(raw).hexdigest() != sha:
        sys.exit(f"{path}: size/md5/sha256 differ from the published FR-DEEP tarball (commit {COMMIT[:7]})")
    return raw


def write_tables(raw: bytes, out: str | Path) -> dict[str, int]:
    """Write ``images/*.npy``, ``train.csv`` and ``test.csv`` under ``out`` from the tarball
    bytes ``raw``; returns the number of images per table."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and "/." not in m.name:
                members[m.name.rsplit("/", 1)[-1]] = tar.extractfile(m).read()
    names = _load(members["batches.meta"])["label_names"]
    outdir = Path(out)
    (outdir / "images").mkdir(parents=True, exist_ok=True)
    written = {}
    train = sorted((k for k in members if k.startswith("data_batch_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    for table, batches in (("train.csv", train), ("test.csv", ["test_batch"])):
        rows = []
        for b in batches:
            entry = _load(members[b])
            data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 150, 150)
            for i, (img, lab) in enumerate(zip(data, entry["labels"])):
                rel = f"images/{b}_{i:02d}.npy"
                np.save(outdir / rel, img)
                rows.append((rel, names[int(lab)]))
        with open(outdir / table, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "label"])
            w.writerows(rows)
        counts = {n: sum(r[1] == n for r in rows) for n in names}
        print(f"{outdir / table}: {len(rows)} images {counts}")
        written[table] = len(rows)
    return written


def main(tarball: str, out: str) -> None:
    write_tables(check(Path(tarball)), out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
