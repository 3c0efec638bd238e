"""Issue 17, deblending's real track: the ``hsc-blends`` data set (scarlet's HSC COSMOS example
files) wired into ``cosmobench predict deblending``. No network: a file with the real layout
(keys, dtypes, shapes and mask bits of ``hsc_cosmos_35.npz``, checked on the real file) is
generated and put in the data cache under the registered name."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import HERE, run_cli
from cosmobench import cli
from cosmobench import config as C
from cosmobench.datamodules.deblending import AFW_MASK_PLANES, DeblendingDataModule, read_cutout
from cosmobench.datasets import catalog, get_dataset
from cosmobench.io import read_table

H, W = 58, 48
#: hsc_cosmos_35.npz's catalogue (x, y), 0-based pixel centres
CATALOG = [(14.0, 33.0), (31.0, 36.0), (19.0, 47.0), (25.0, 15.0), (37.0, 51.0), (22.0, 23.0), (34.0, 5.0)]
BIT = {n: 1 << i for i, n in enumerate(AFW_MASK_PLANES)}


def hsc_like(path, **change):
    """The layout of hsc_cosmos_35.npz: images/variance (5, 58, 48) float32, mask (5, 58, 48)
    int32 (DETECTED on most pixels, INTRP|CR spots, unnamed bits 10/12/14/15 over large areas),
    psfs (5, 43, 43) float64 of unit sum, filters '<U1' g r i z y, catalog record array (x, y) f8."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:H, :W]
    img = np.zeros((5, H, W))
    for k, (x, y) in enumerate(CATALOG):
        s = 1.2 + 0.3 * (k % 3)
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))[None] * (2.0 + k) * \
            np.linspace(0.5, 1.5, 5)[:, None, None]
    var = np.full((5, H, W), 0.002) + 0.0005 * np.arange(5)[:, None, None]
    images = img + rng.normal(0, np.sqrt(var))
    mask = np.where(img.sum(0) > 0.05, BIT["DETECTED"], 0)[None].repeat(5, 0).astype(np.int32)
    mask[:, 40:44, 2:5] |= BIT["INTRP"] | BIT["CR"]
    mask[:, :, :20] |= 1 << 12
    mask[1:, 30:, :] |= (1 << 10) | (1 << 14) | (1 << 15)
    k = np.exp(-np.add.outer(np.arange(-21, 22) ** 2, np.arange(-21, 22) ** 2) / (2 * 1.5 ** 2))
    out = {"images": images.astype(np.float32), "mask": mask, "variance": var.astype(np.float32),
           "filters": np.array(list("grizy")), "catalog": np.array(CATALOG, dtype=[("x", "<f8"), ("y", "<f8")]),
           "psfs": np.stack([k / k.sum()] * 5)}
    out.update(change)
    np.savez(path, **{k: v for k, v in out.items() if v is not None})
    return path


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """hsc-blends in a private data cache, its files generated with the real layout (the
    registered entry with size-free files, so the generated files count as cached)."""
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "cache"))
    real = get_dataset("hsc-blends")
    d = tmp_path / "cache" / "hsc-blends"
    d.mkdir(parents=True)
    hsc_like(d / "hsc_cosmos_35.npz")
    hsc_like(d / "hsc_cosmos.npz", variance=None, mask=None)
    files = tuple(dataclasses.replace(f, size=None) for f in real.files)
    catalog.register_dataset(dataclasses.replace(real, files=files), replace=True)
    yield d
    catalog.register_dataset(real, replace=True)


def test_real_layout_read_with_the_documented_mask_rule(tmp_path):
    hsc_like(tmp_path / "c.npz")
    cut = read_cutout(tmp_path / "c.npz")
    assert cut["images"].shape == (1, 5, H, W) and cut["filters"] == list("grizy") and cut["psfs"].shape == (5, 43, 43)
    assert cut["mask"][0, 40:44, 2:5].all() and cut["mask"].sum() == 12   # INTRP|CR only: bits 5, 10-15 informational
    cut = read_cutout(tmp_path / "c.npz", bad_bits=["BAD"])
    assert cut["mask"].sum() == 0
    from cosmobench.errors import InputError
    with pytest.raises(InputError, match=r"every pixel .* by DETECTED"):
        # only pixels DETECTED in some band are flagged in this one: make DETECTED cover all
        hsc_like(tmp_path / "d.npz", mask=np.full((5, H, W), BIT["DETECTED"], np.int32))
        read_cutout(tmp_path / "d.npz", bad_bits=["DETECTED"])


def test_dataset_fills_input_catalogue_and_background(cached):
    cfg = C.resolve("deblending", "sep", overrides=["data.dataset=hsc-blends"])
    d = cfg["data"]
    assert d["input"] == str(cached / "hsc_cosmos_35.npz") and d["catalog"] == "npz" and d["background"] == "none"
    ds = DeblendingDataModule(d, seed=0).predict_loader().dataset        # data.input, no path given
    assert len(ds) == 1 and ds.filters == list("grizy")
    item = ds[0]
    assert item["image"].shape == (5, H, W) and int(item["n_cat"]) == 7
    np.testing.assert_allclose(item["cat_xy"][:7].numpy(), CATALOG)
    # the user's command line wins over the data set
    assert C.resolve("deblending", "sep", overrides=["data.dataset=hsc-blends", "data.background=sep"])[
        "data"]["background"] == "sep"


def test_run_config_layer_order(cached):
    sim_run = {"data": {"catalog": None, "background": "sep", "dataset": None}}
    cfg = C.resolve("deblending", "unet", overrides=["data.dataset=hsc-blends"], extra_layers=[("run", sim_run)])
    assert cfg["data"]["catalog"] == "npz" and cfg["data"]["background"] == "none"
    own_run = {"data": {"catalog": "npz", "background": "sep", "dataset": "hsc-blends"}}
    cfg = C.resolve("deblending", "unet", overrides=["data.dataset=hsc-blends"], extra_layers=[("run", own_run)])
    assert cfg["data"]["background"] == "sep"                              # the run's own choice stays


def test_predict_hsc_blends_as_a_user_runs_it(cached, tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    code = cli.main(["predict", "deblending", "-m", "sep", "--input", str(cached / "hsc_cosmos_35.npz"),
                     "--output", str(root / "cat.csv"), "data.dataset=hsc-blends"])
    assert code == 0, capsys.readouterr().err
    cols = read_table(root / "cat.csv")
    assert list(zip(cols["x"], cols["y"])) == CATALOG
    flux = np.stack([cols[f"flux_{b}"] for b in "grizy"], 1)
    assert (flux > 0).all() and (flux[:, 4] > flux[:, 0]).all()            # the sources get redder to y
    with np.load(root / "cat_images.npz") as z:
        assert len(z.files) >= 1
    # the second file: no variance, no mask (SEP estimates the noise), its own catalogue
    code = cli.main(["predict", "deblending", "-m", "sep", "--input", str(cached / "hsc_cosmos.npz"),
                     "--output", str(root / "cat2.csv"), "data.dataset=hsc-blends"])
    assert code == 0, capsys.readouterr().err
    assert len(read_table(root / "cat2.csv")["x"]) == 7
    # without --input: the data set's own cutout (data.input), the same table
    code = cli.main(["predict", "deblending", "-m", "sep", "--output", str(root / "cat3.csv"), "data.dataset=hsc-blends"])
    assert code == 0, capsys.readouterr().err
    assert read_table(root / "cat3.csv")["flux_y"].tolist() == cols["flux_y"].tolist()
    code = cli.main(["predict", "deblending", "-m", "sep", "--output", str(root / "cat4.csv")])
    assert code == 2 and "give --input FILE" in capsys.readouterr().err and not (root / "cat4.csv").exists()


@pytest.mark.parametrize("change,needle", [
    ({"mask": np.zeros((5, H, W - 1), np.int32)}, "'mask' has shape"),
    ({"variance": np.ones((5, H, W + 1), np.float32)}, "'variance' has shape"),
    ({"catalog": np.array([(1.0, 2.0)], dtype=[("ra", "<f8"), ("dec", "<f8")])}, "record array with fields 'x', 'y'"),
    ({"catalog": None}, "record array"),
    ({"catalog": np.array([(14.0, 58.0)], dtype=[("x", "<f8"), ("y", "<f8")])}, "row 0, column 'y' = 58 is outside"),
    ({"filters": np.array(list("griz"))}, "'filters' must name each of the 5 bands"),
    ({"psfs": np.ones((4, 43, 43))}, "'psfs'"),
    ({"mask": np.full((5, H, W), BIT["NO_DATA"], np.int32)}, "NO_DATA (100 %)"),
    ({"mask": np.full((5, H, W), 0.25)}, "bit-mask"),
    ({"images": np.zeros((5, H, W), "U1")}, "not numeric"),
])
def test_bad_layout_exit_2(change, needle, tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    path = hsc_like(tmp_path / "bad.npz", **change)
    code = cli.main(["predict", "deblending", "-m", "sep", "--input", str(path), "--output", str(root / "cat.csv"),
                     "data.catalog=npz", "data.background=none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert list(root.iterdir()) == []


def test_unknown_bad_bit_names_the_planes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COSMOBENCH_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    path = hsc_like(tmp_path / "c.npz")
    code = cli.main(["predict", "deblending", "-m", "sep", "--input", str(path), "--output", str(tmp_path / "o.csv"),
                     "data.catalog=npz", "data.mask_bad_bits=[BAD,SENSOR_EDGE]"])
    err = capsys.readouterr().err
    assert code == 2 and "SENSOR_EDGE" in err and "data.mask_bad_bits" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # a tiny 5-band training run, then predict on the data set as a user would
def test_train_5_bands_then_predict_hsc_blends(cached, tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    out = run_cli(["train", "deblending", "-m", "unet", "-c", str(HERE / "conf" / "deblending.yaml"),
                   "data.n_bands=5"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    ckpt = next(root.glob("deblending/unet/*/checkpoints/best.ckpt"))
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    code = cli.main(["predict", "deblending", "--checkpoint", str(ckpt), "--input", str(cached / "hsc_cosmos_35.npz"),
                     "--output", str(root / "cat.csv"), "data.dataset=hsc-blends"])
    assert code == 0, capsys.readouterr().err
    cols = read_table(root / "cat.csv")
    assert list(zip(cols["x"], cols["y"])) == CATALOG                      # the file's catalogue, not SEP
    assert all(np.isfinite(cols[f"flux_{b}"]).all() for b in "grizy")


def test_train_and_test_refuse_the_predict_only_data_set(cached, tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    code = cli.main(["train", "deblending", "-m", "sep", "-c", str(HERE / "conf" / "deblending.yaml"),
                     "data.dataset=hsc-blends"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data.input (data.dataset=hsc-blends)" in err[0] and "predict" in err[0]
    assert list(root.iterdir()) == []                                        # no run dir, no row
