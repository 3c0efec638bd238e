"""data.source=batches (CIFAR-style pickled batches) and the FR-DEEP entries' loader mapping, on
batch files generated here in the published layout (the real files, 13.6 MB per survey, are not
shipped; no network)."""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest

from cosmobench.cli import main
from cosmobench.config import resolve
from cosmobench.datamodules.morphology import MorphologyDataModule, read_pickled_batch
from cosmobench.datasets.catalog import DataFile, get_dataset, register_dataset, unregister_dataset
from cosmobench.errors import InputError

SIDE = 150  # FR-DEEP: 150x150 px, one band


def _write_batches(d, n_train_batches=3, per_batch=6, seed=0, zero=None):
    """FR-DEEP's layout: data_batch_k / test_batch = pickled dict (protocol 3) with data uint8
    (N, 22500), labels (list of 0/1), filenames, batch_label; batches.meta with label_names.
    ``zero``: (batch, index) of an image set to all zeros. Returns {batch: (data, labels)}."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    (d / "batches.meta").write_bytes(pickle.dumps(
        {"num_cases_per_batch": per_batch, "label_names": ["FRI", "FRII"], "num_vis": SIDE * SIDE}, protocol=3))
    for b in [f"data_batch_{k}" for k in range(1, n_train_batches + 1)] + ["test_batch"]:
        data = np.zeros((per_batch, SIDE * SIDE), np.uint8)
        data[:, rng.integers(0, SIDE * SIDE, 300)] = rng.integers(1, 256, (per_batch, 300), dtype=np.uint8)
        labels = [int(v) for v in np.arange(per_batch) % 2]  # both classes in every batch
        if zero is not None and zero[0] == b:
            data[zero[1]] = 0
        truth[b] = (data, labels)
        (d / b).write_bytes(pickle.dumps({"batch_label": b, "labels": labels, "data": data,
                                          "filenames": [f"{i}_x.png" for i in range(per_batch)]}, protocol=3))
    return truth


def _cfg(*overrides):
    base = ["data.source=batches", "data.n_bands=1", "data.image_size=16", "data.batch_size=4",
            "data.val_fraction=0.2"]
    return resolve("morphology", "cnn", overrides=base + list(overrides))["data"]


def _dm(*overrides, seed=0):
    dm = MorphologyDataModule(_cfg(*overrides), seed=seed)
    dm.setup()
    return dm


def test_labels_and_pixels_round_trip_with_the_published_test_batch(tmp_path):
    truth = _write_batches(tmp_path / "b", n_train_batches=11, per_batch=4, zero=("data_batch_11", 1))
    d = tmp_path / "b"
    # a glob: numbered names in natural order (data_batch_2 before data_batch_10)
    dm = _dm(f"data.path={d}/data_batch_*", f"data.test_path={d / 'test_batch'}",
             f"data.meta_path={d / 'batches.meta'}", "data.image_size=150")
    assert dm.info()["classes"] == ["FRI", "FRII"]
    assert [p.name for p in dm._batch_files()] == [f"data_batch_{k}" for k in range(1, 12)]
    images = np.concatenate([truth[f"data_batch_{k}"][0] for k in range(1, 12)]).reshape(-1, SIDE, SIDE)
    labels = sum((truth[f"data_batch_{k}"][1] for k in range(1, 12)), [])
    train, val, test = (dm.datasets[s] for s in ("train", "val", "test"))
    assert len(train) + len(val) == 44 and len(test) == 4
    for ds in (train, val):
        for i in range(len(ds)):
            r = int(ds.rows[i])
            item = ds[i]
            assert item["image"].shape == (1, SIDE, SIDE) and int(item["label"]) == labels[r]
            np.testing.assert_array_equal(item["image"][0].numpy(), images[r].astype(np.float32))
    for i in range(4):  # the test split is the test batch, in order
        np.testing.assert_array_equal(test[i]["image"][0].numpy(),
                                      truth["test_batch"][0][i].reshape(SIDE, SIDE).astype(np.float32))
        assert int(test[i]["label"]) == truth["test_batch"][1][i]
    # the all-zero image is kept, and the normalisation stays finite (no division by zero)
    info = dm.info()
    assert all(np.isfinite(info[k]).all() and min(info["norm_scale"]) > 0
               for k in ("norm_scale", "norm_mean", "norm_std"))
    # the directory reads its data_batch_* files: the same data set
    listed = _dm(f"data.path={d}", f"data.test_path={d / 'test_batch'}", f"data.meta_path={d / 'batches.meta'}",
                 "data.image_size=150")
    assert [p.name for p in listed._batch_files()] == [f"data_batch_{k}" for k in range(1, 12)]
    assert listed.datasets["train"].rows.tolist() == train.rows.tolist()
    # every batch file's content enters the fingerprint
    before = dm.fingerprint()
    (d / "data_batch_7").write_bytes(pickle.dumps({"labels": [1, 0, 1, 0], "data": images[:4].reshape(4, -1)},
                                                  protocol=3))
    assert MorphologyDataModule(dm.cfg, seed=0).fingerprint() != before


def test_without_meta_and_test_path_classes_are_numbers_and_rows_split(tmp_path):
    _write_batches(tmp_path / "b", n_train_batches=2, per_batch=10)
    dm = _dm(f"data.path={tmp_path / 'b'}/data_batch_*", "data.test_fraction=0.2", "data.crop=96")
    assert dm.info()["classes"] == ["0", "1"]
    assert sorted(len(dm.datasets[s]) for s in ("train", "val", "test")) == [4, 4, 12]
    assert dm.datasets["train"][0]["image"].shape == (1, 16, 16)


def test_unsafe_or_broken_batch_is_one_input_error_and_exit_2(tmp_path, capsys):
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({"labels": [0], "data": np.zeros((1, 4), np.uint8), "f": os.getcwd}, protocol=3))
    with pytest.raises(InputError, match=r"refused to unpickle: it names (posix|nt)\.getcwd"):
        read_pickled_batch(evil)
    rc = main(["train", "morphology", "-m", "cnn", "--root", str(tmp_path / "runs"), "data.source=batches",
               f"data.path={evil}", "data.n_bands=1", "logger=csv"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "refused to unpickle" in err and "Traceback" not in err
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x80\x03}q\x00(X")
    with pytest.raises(InputError, match="not a readable pickled batch"):
        read_pickled_batch(broken)
    odd = tmp_path / "odd"
    odd.write_bytes(pickle.dumps({"data": np.zeros((2, 3 * 10), np.uint8), "labels": [0, 1]}, protocol=3))
    with pytest.raises(InputError, match="not data.n_bands=1 square planes"):
        _dm(f"data.path={odd}")
    with pytest.raises(InputError, match="no batch file matches"):
        _dm(f"data.path={tmp_path}/nothing_*")


def test_labels_must_index_the_meta_names(tmp_path):
    _write_batches(tmp_path / "b", n_train_batches=2)
    d = tmp_path / "b"
    (d / "one.meta").write_bytes(pickle.dumps({"label_names": ["FRI"]}, protocol=3))
    with pytest.raises(InputError, match=r"labels 0..1 do not index the 1 label_names"):
        _dm(f"data.path={d}", f"data.meta_path={d / 'one.meta'}")
    (d / "none.meta").write_bytes(pickle.dumps({"num_vis": 22500}, protocol=3))
    with pytest.raises(InputError, match="needs 'label_names'"):
        _dm(f"data.path={d}", f"data.meta_path={d / 'none.meta'}")


@pytest.mark.parametrize("name", ["frdeep-first", "frdeep-nvss"])
def test_the_entry_resolves_to_its_batch_files_in_the_cache(name, tmp_path, monkeypatch):
    """The registered entry's loader mapping, with generated files of the same names in a private
    COSMOBENCH_DATA (the real sizes and hashes are the entry's; here a copy with the test's)."""
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "data"))
    real = get_dataset(name)
    src = tmp_path / "src"
    truth = _write_batches(src, n_train_batches=11, per_batch=4)
    files = tuple(DataFile(f.name, ("http://127.0.0.1:9/x",), hashlib.sha256((src / f.name).read_bytes()).hexdigest(),
                           (src / f.name).stat().st_size, "generated by the test") for f in real.files)
    toy = register_dataset(replace(real, name=f"t-{name}", files=files), replace=True)
    try:
        d = tmp_path / "data" / toy.name
        d.mkdir(parents=True)
        for f in files:
            (d / f.name).write_bytes((src / f.name).read_bytes())
        cfg = resolve("morphology", "cnn", overrides=[f"data.dataset={toy.name}", "data.image_size=16"])["data"]
        assert cfg["source"] == "batches" and cfg["n_bands"] == 1
        assert cfg["path"] == str(d)
        assert cfg["test_path"] == str(d / "test_batch") and cfg["meta_path"] == str(d / "batches.meta")
        assert cfg["native_pixel_scale"] == real.loader["native_pixel_scale"]
        dm = MorphologyDataModule(cfg, seed=0)
        dm.setup()
        assert dm.info()["classes"] == ["FRI", "FRII"] and len(dm.datasets["test"]) == 4
        assert [int(dm.datasets["test"][i]["label"]) for i in range(4)] == truth["test_batch"][1]
    finally:
        unregister_dataset(toy.name)
