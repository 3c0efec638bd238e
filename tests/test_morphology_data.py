"""MorphologyDataModule: determinism, splits, normalisation, soft labels, augmentation,
real-data loaders (files built here) and bad-input paths."""
import csv

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from cosmobench.config import resolve
from cosmobench.augment import apply_augmentation, augment_elements, d4_transform
from cosmobench.datamodules.morphology import GALAXY10_CLASSES, MorphologyDataModule
from cosmobench.errors import ConfigError, InputError
from cosmobench.images import crop_resize


def data_cfg(*overrides, model="cnn"):
    base = ["data.image_size=16", "data.pixel_scale=0.8", "data.n_train=12", "data.n_val=4", "data.n_test=6",
            "data.batch_size=4", "data.oversample=2"]
    return resolve("morphology", model, overrides=base + list(overrides))["data"]


def make_dm(*overrides, seed=0):
    dm = MorphologyDataModule(data_cfg(*overrides), seed=seed)
    dm.setup()
    return dm


def test_sim_samples_are_pure_functions_of_seed_split_index():
    a = make_dm()
    b = make_dm("data.n_train=5", "data.n_test=9")
    tr_a, tr_b = a.datasets["train"].arrays, b.datasets["train"].arrays
    torch.testing.assert_close(tr_a["image"][:5], tr_b["image"])  # independent of the split size
    torch.testing.assert_close(a.datasets["test"].arrays["image"], b.datasets["test"].arrays["image"][:6])
    c = make_dm(seed=1)
    assert not torch.allclose(a.datasets["train"].arrays["image"], c.datasets["train"].arrays["image"])
    # splits are disjoint: no test image equals a train image
    te = a.datasets["test"].arrays["image"].flatten(1)
    d = torch.cdist(te, tr_a["image"].flatten(1))
    assert d.min() > 0
    item = a.datasets["train"][3]
    assert set(item) == {"image", "label", "idx"} and item["image"].shape == (3, 16, 16) and int(item["idx"]) == 3


def test_info_holds_classes_and_train_normalisation():
    # wide stamp (32 px of 1"): the 4-px border is sky-dominated
    dm = make_dm("data.classes=[elliptical,edge_on,merger]", "data.n_bands=2", "data.image_size=32",
                 "data.pixel_scale=1.0")
    info = dm.info()
    assert info["classes"] == ["elliptical", "edge_on", "merger"] and info["n_bands"] == 2
    x = dm.datasets["train"].arrays["image"].double()
    z = torch.asinh(x / torch.tensor(info["norm_scale"]).view(1, -1, 1, 1))
    np.testing.assert_allclose(z.mean(dim=(0, 2, 3)).numpy(), info["norm_mean"], rtol=1e-6)
    np.testing.assert_allclose(z.std(dim=(0, 2, 3)).numpy(), info["norm_std"], rtol=1e-6)
    # the asinh scale is the background noise: sqrt(sky + read_noise^2) for gain 1
    from cosmobench.sim.profiles import noise_sigma, sb_to_counts_per_pixel
    sigma = noise_sigma(sb_to_counts_per_pixel(21.0, 1.0, 30.0), 5.0)
    np.testing.assert_allclose(info["norm_scale"], sigma, rtol=0.15)
    assert set(dm.datasets["train"].arrays["label"].tolist()) <= {0, 1, 2}
    import json
    json.dumps(info)


def test_soft_labels_are_vote_fractions():
    dm = make_dm("data.label_type=soft", "data.n_votes=10")
    arr = dm.datasets["train"].arrays
    v = arr["votes"].numpy()
    np.testing.assert_allclose(v.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(v * 10, np.round(v * 10), atol=1e-5)
    assert np.mean(v.argmax(1) == arr["label"].numpy()) > 0.7


def test_augmentation_is_deterministic_and_exact():
    idx = np.arange(64)
    g1, g2 = augment_elements(0, 3, idx), augment_elements(0, 3, idx)
    np.testing.assert_array_equal(g1, g2)
    assert set(g1.tolist()) == set(range(8))
    assert not np.array_equal(g1, augment_elements(0, 4, idx)) and not np.array_equal(g1, augment_elements(1, 3, idx))
    x = torch.randn(5, 2, 7, 7)
    out = apply_augmentation(x, torch.arange(10, 15), seed=0, epoch=2)
    for i, g in enumerate(augment_elements(0, 2, np.arange(10, 15))):
        torch.testing.assert_close(out[i], d4_transform(x[i], int(g)), rtol=0, atol=0)
    # the eight elements are distinct transforms of an asymmetric image
    img = torch.arange(16.0).view(1, 4, 4)
    assert len({tuple(d4_transform(img, g).flatten().tolist()) for g in range(8)}) == 8


def test_galaxy10_hdf5_loader(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "Galaxy10_DECals.h5"
    with h5py.File(path, "w") as fh:
        fh["images"] = rng.integers(0, 255, size=(30, 40, 40, 3), dtype=np.uint8)
        fh["ans"] = np.arange(30) % 10
    dm = MorphologyDataModule(data_cfg("data.source=galaxy10", f"data.path={path}", "data.crop=30"), seed=0)
    dm.setup()
    info = dm.info()
    assert info["classes"] == GALAXY10_CLASSES
    sizes = {s: len(d) for s, d in dm.datasets.items()}
    assert sum(sizes.values()) == 30 and sizes["test"] >= 1
    item = dm.datasets["test"][0]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    # crop + resize of the raw uint8 image, values kept in their units
    with h5py.File(path, "r") as fh:
        raw = torch.from_numpy(fh["images"][dm.datasets["test"].rows[0]].astype(np.float32)).permute(2, 0, 1)
    expected = torch.nn.functional.interpolate(raw[None, :, 5:35, 5:35], size=(16, 16), mode="bilinear",
                                               antialias=True)[0]
    torch.testing.assert_close(item["image"], expected)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1:] == (3, 16, 16)


def _write_folder(tmp_path, votes=False, n=12):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        name = f"img{i}.png" if i % 2 else f"img{i}.npy"
        arr = rng.integers(0, 255, size=(20, 20, 3), dtype=np.uint8)
        if name.endswith(".png"):
            Image.fromarray(arr).save(tmp_path / name)
        else:
            np.save(tmp_path / name, arr.astype(np.float32))
        row = {"file": name, "label": ["spiral", "elliptical", "merger"][i % 3]}
        if votes:
            row.update(p_a=f"{(i % 4) / 4:.2f}", p_b=f"{1 - (i % 4) / 4:.2f}")
        rows.append(row)
    csv_path = tmp_path / "labels.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return csv_path


def test_folder_loader_with_labels_and_votes(tmp_path):
    path = _write_folder(tmp_path, votes=True)
    dm = MorphologyDataModule(data_cfg("data.source=folder", f"data.path={path}"), seed=0)
    dm.setup()
    assert dm.info()["classes"] == ["elliptical", "merger", "spiral"]
    item = dm.datasets["train"][0]
    assert item["image"].shape == (3, 16, 16) and "votes" not in item
    dm2 = MorphologyDataModule(data_cfg("data.source=folder", f"data.path={path}", "data.vote_columns=[p_a,p_b]",
                                        "data.label_type=soft"), seed=0)
    dm2.setup()
    assert dm2.info()["classes"] == ["p_a", "p_b"]
    it = dm2.datasets["train"][1]
    assert float(it["votes"].sum()) == pytest.approx(1.0) and int(it["label"]) == int(it["votes"].argmax())


def test_real_subset_is_stratified_by_class(tmp_path):
    """data.subset of a real table keeps each class's share of the training rows (within the
    rounding of one row)."""
    path = _write_folder(tmp_path, n=60)
    split = ["data.source=folder", f"data.path={path}", "data.val_fraction=0.1", "data.test_fraction=0.1"]
    for seed in range(4):
        pool = make_dm(*split, seed=seed).datasets["train"]  # the same split without a subset
        share = np.bincount([int(pool[i]["label"]) for i in range(len(pool))], minlength=3) / len(pool)
        train = make_dm(*split, "data.subset=9", seed=seed).datasets["train"]
        assert len(train) == 9
        counts = np.bincount([int(train[i]["label"]) for i in range(9)], minlength=3)
        assert np.all(np.abs(counts - 9 * share) < 1), (counts, 9 * share)


@pytest.mark.parametrize("overrides,exc,match", [
    (["data.classes=[elliptical,unicorn]"], ConfigError, "data.classes"),
    (["data.stretch=log"], ConfigError, "data.stretch"),
    (["data.label_type=fuzzy"], ConfigError, "label_type"),
    (["data.psf=airy"], ConfigError, "psf"),
    (["data.mag_range=[19.0,17.0]"], ConfigError, "mag_range"),
    (["data.source=galaxy10"], InputError, "data.path"),
    (["data.source=galaxy10", "data.path=/nonexistent/g10.h5"], InputError, "not found"),
])
def test_bad_config_and_input(overrides, exc, match):
    with pytest.raises(exc, match=match):
        make_dm(*overrides)


def test_bad_real_files(tmp_path):
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as fh:
        fh["images"] = np.zeros((10, 8, 8, 3), np.uint8)
        fh["labels"] = np.zeros(10, int)
    with pytest.raises(InputError, match="'ans'"):
        make_dm("data.source=galaxy10", f"data.path={p}")
    with h5py.File(p, "w") as fh:
        fh["images"] = np.zeros((10, 8, 8, 3), np.uint8)
        fh["ans"] = np.full(10, 12)
    with pytest.raises(InputError, match="0..9"):
        make_dm("data.source=galaxy10", f"data.path={p}")
    with pytest.raises(InputError, match=r"\(N, H, W, 4\)"):
        with h5py.File(p, "w") as fh:
            fh["images"] = np.zeros((10, 8, 8, 3), np.uint8)
            fh["ans"] = np.zeros(10, int)
        make_dm("data.source=galaxy10", f"data.path={p}", "data.n_bands=4")
    txt = tmp_path / "bad.h5"
    txt.write_text("not hdf5")
    with pytest.raises(InputError, match="HDF5"):
        make_dm("data.source=galaxy10", f"data.path={txt}")
    csv_path = _write_folder(tmp_path)
    (tmp_path / "img3.png").unlink()
    with pytest.raises(InputError, match="image file not found"):
        make_dm("data.source=folder", f"data.path={csv_path}")
    with pytest.raises(InputError, match="'klass' not found"):
        make_dm("data.source=folder", f"data.path={csv_path}", "data.label_column=klass")


def test_export_roundtrip(tmp_path):
    dm = make_dm()
    path = dm.export("test", tmp_path / f"x{dm.export_suffix}")
    ds = dm.read_input(path)
    assert len(ds) == len(dm.datasets["test"])
    torch.testing.assert_close(ds[3]["image"], dm.datasets["test"][3]["image"])


def test_read_input_for_predict(tmp_path):
    dm = MorphologyDataModule(data_cfg(), seed=0)
    arr = np.random.default_rng(0).normal(size=(5, 16, 16, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", arr)
    ds = dm.read_input(tmp_path / "x.npy")
    assert len(ds) == 5
    torch.testing.assert_close(ds[2]["image"], torch.from_numpy(arr[2]).permute(2, 0, 1))
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        fh["images"] = np.moveaxis(arr, -1, 1)  # channel-first also accepted
    torch.testing.assert_close(dm.read_input(tmp_path / "x.h5")[4]["image"], ds[4]["image"])
    np.save(tmp_path / "big.npy", np.zeros((2, 32, 32, 3), np.float32))
    assert dm.read_input(tmp_path / "big.npy")[0]["image"].shape == (3, 16, 16)
    np.save(tmp_path / "bad.npy", np.zeros((2, 16, 16, 5), np.float32))
    with pytest.raises(InputError, match="n_bands=3"):
        dm.read_input(tmp_path / "bad.npy")
    nan = arr.copy()
    nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(InputError, match="NaN"):
        dm.read_input(tmp_path / "nan.npy")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(InputError, match="unsupported image format"):
        dm.read_input(tmp_path / "x.txt")
    with pytest.raises(InputError, match="not found"):
        dm.read_input(tmp_path / "missing.npy")


def test_fixed_test_set_from_test_path_galaxy10(tmp_path):
    rng = np.random.default_rng(2)
    for name, n in (("train.h5", 30), ("test.h5", 8)):
        with h5py.File(tmp_path / name, "w") as fh:
            fh["images"] = rng.integers(0, 255, size=(n, 20, 20, 3), dtype=np.uint8)
            fh["ans"] = np.arange(n) % 10
    dm = make_dm("data.source=galaxy10", f"data.path={tmp_path / 'train.h5'}",
                 f"data.test_path={tmp_path / 'test.h5'}")
    sizes = {s: len(d) for s, d in dm.datasets.items()}
    assert sizes["train"] + sizes["val"] == 30 and sizes["test"] == 8
    with h5py.File(tmp_path / "test.h5", "r") as fh:
        raw = torch.from_numpy(fh["images"][5].astype(np.float32)).permute(2, 0, 1)
    torch.testing.assert_close(dm.datasets["test"][5]["image"], crop_resize(raw, None, 16))
    assert int(dm.datasets["test"][5]["label"]) == 5


def test_fixed_test_set_from_test_path_folder_and_nan_pixels_in_any_split(tmp_path):
    train_csv = _write_folder(tmp_path)
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    rows = [("t0.npy", "merger"), ("t1.npy", "spiral"), ("t2.npy", "merger")]
    for i, (name, _) in enumerate(rows):
        a = np.random.default_rng(i).normal(size=(20, 20, 3)).astype(np.float32)
        if i == 2:
            a[4, 4, 1] = np.nan
        np.save(test_dir / name, a)
    with open(test_dir / "test.csv", "w") as fh:
        fh.write("file,label\n" + "".join(f"{f},{lab}\n" for f, lab in rows))
    dm = make_dm("data.source=folder", f"data.path={train_csv}", f"data.test_path={test_dir / 'test.csv'}")
    assert dm.info()["classes"] == ["elliptical", "merger", "spiral"]
    test = dm.datasets["test"]
    assert len(test) == 3 and sum(len(dm.datasets[s]) for s in ("train", "val")) == 12
    assert [int(test[i]["label"]) for i in range(2)] == [1, 2]  # names mapped onto the training classes
    with pytest.raises(InputError, match=r"t2.npy: image contains NaN"):  # the test split is checked too
        test[2]
    with open(test_dir / "bad.csv", "w") as fh:
        fh.write("file,label\nt0.npy,unicorn\n")
    with pytest.raises(InputError, match=r"classes \['unicorn'\] do not occur in the training table"):
        make_dm("data.source=folder", f"data.path={train_csv}", f"data.test_path={test_dir / 'bad.csv'}")


def _read_every_split(csv_path):
    dm = MorphologyDataModule(data_cfg("data.source=folder", f"data.path={csv_path}"), seed=0)
    dm.setup()
    for s in ("train", "val", "test"):
        for i in range(len(dm.datasets[s])):
            dm.datasets[s][i]


def test_nan_pixels_or_a_non_image_in_any_split_are_input_errors(tmp_path):
    csv_path = _write_folder(tmp_path)
    _read_every_split(csv_path)
    good = np.load(tmp_path / "img0.npy")
    bad = good.copy()
    bad[0, 0, 0] = np.inf
    np.save(tmp_path / "img0.npy", bad)
    with pytest.raises(InputError, match="img0.npy: image contains NaN or infinite pixels"):
        _read_every_split(csv_path)
    np.save(tmp_path / "img0.npy", good)
    (tmp_path / "img1.png").write_text("not a png")
    with pytest.raises(InputError, match="img1.png is not a readable image"):
        _read_every_split(csv_path)


@pytest.mark.parametrize("model", ["e2cnn", "cnn", "resnet18"])
def test_cpu_config_resolves_to_the_low_data_settings(model):
    from cosmobench.config import experiments_dir
    cfg = resolve("morphology", model, config_file=experiments_dir() / "morphology" / "cpu.yaml")
    low = resolve("morphology", model, config_file=experiments_dir() / "morphology" / "low_data.yaml")
    assert cfg["data"] == low["data"] and cfg["optim"] == low["optim"] and cfg["trainer"] == low["trainer"]
    assert (cfg["data"]["image_size"], cfg["data"]["n_train"]) == (32, 2000)
