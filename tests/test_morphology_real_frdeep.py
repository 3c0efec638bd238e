"""experiments/morphology/frdeep_folder.py: FR-DEEP's pickled batches -> a table of .npy images
that data.source=folder reads. Runs on a generated tarball of the published layout (the real
one, 307 kB, is not shipped); the hash check and the numpy-only unpickler are exercised too."""
from __future__ import annotations

import importlib.util
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cosmobench.images import FileImages, read_folder_catalog

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "morphology" / "frdeep_folder.py"


def _module():
    spec = importlib.util.spec_from_file_location("frdeep_folder", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tarball(n_train_batches: int = 2, per_batch: int = 4) -> tuple[bytes, dict]:
    """A tarball of the FR-DEEP layout: FIRST_PNG_dataset/{data_batch_k, test_batch, batches.meta}."""
    rng = np.random.default_rng(0)
    truth = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, obj) -> None:
            data = pickle.dumps(obj, protocol=3)
            info = tarfile.TarInfo(f"FIRST_PNG_dataset/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("batches.meta", {"num_cases_per_batch": per_batch, "label_names": ["FRI", "FRII"], "num_vis": 22500})
        for b in [f"data_batch_{k}" for k in range(1, n_train_batches + 1)] + ["test_batch"]:
            data = rng.integers(0, 256, (per_batch, 22500), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 2, per_batch)]
            truth[b] = (data, labels)
            add(b, {"batch_label": b, "labels": labels, "data": data,
                    "filenames": [f"{i}_example.png" for i in range(per_batch)]})
    return buf.getvalue(), truth


def test_tables_are_read_by_the_folder_source(tmp_path):
    mod = _module()
    raw, truth = _tarball()
    written = mod.write_tables(raw, tmp_path / "out")
    assert written == {"train.csv": 8, "test.csv": 4}
    cat = read_folder_catalog(tmp_path / "out" / "train.csv", "file", "label")
    assert cat["class_names"] == ["FRI", "FRII"]
    assert cat["labels"].tolist() == truth["data_batch_1"][1] + truth["data_batch_2"][1]
    images = FileImages(cat["files"], 1)
    first = images(0)
    assert first.shape == (1, 150, 150)
    np.testing.assert_array_equal(first[0], truth["data_batch_1"][0][0].reshape(150, 150).astype(np.float32))
    test = read_folder_catalog(tmp_path / "out" / "test.csv", "file", "label")
    assert test["labels"].tolist() == truth["test_batch"][1]


def test_unpickler_admits_only_numpy(tmp_path):
    mod = _module()
    evil = pickle.dumps({"labels": [0], "f": os.getcwd}, protocol=3)  # names posix.getcwd
    with pytest.raises(pickle.UnpicklingError, match="unexpected global"):
        mod._load(evil)


def test_tarball_must_match_the_published_hashes(tmp_path):
    mod = _module()
    raw, _ = _tarball()
    fake = tmp_path / "FIRST_PNG_dataset.tar.gz"
    fake.write_bytes(raw)
    with pytest.raises(SystemExit, match="differ from the published FR-DEEP tarball"):
        mod.check(fake)
    other = tmp_path / "something.tar.gz"
    other.write_bytes(raw)
    with pytest.raises(SystemExit, match="expected one of"):
        mod.check(other)
