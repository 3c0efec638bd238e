"""Band and pixel-scale rules of model.init_from (cosmobench.transfer), data.bands as a shape key,
and data.label_scheme=galaxy10 of the morphology simulator."""
import json

import numpy as np
import pytest
import torch

from cosmobench.errors import ConfigError
from cosmobench.transfer import INIT_FILE, check_pixel_scale, map_bands
from tests.conftest import run_cli, run_dirs
from tests.test_transfer import fit, save

GRZ = "data.bands=[g,r,z]"


def test_map_bands_reindexes_by_name():
    w = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).view(2, 3, 1, 1)
    src = {"stem.weight": w.clone(), "head.weight": torch.ones(4, 2)}
    net = {"stem.weight": torch.zeros(2, 4, 1, 1), "head.weight": torch.zeros(4, 2)}
    out = map_bands(src, net, ["g", "r", "z"], ["z", "g", "y", "r"], "model.init_from=x")
    assert out == {"checkpoint": ["g", "r", "z"], "data": ["z", "g", "y", "r"], "stem": "stem.weight", "zero": ["y"]}
    torch.testing.assert_close(src["stem.weight"][:, 0], w[:, 2])  # z
    torch.testing.assert_close(src["stem.weight"][:, 1], w[:, 0])  # g
    assert torch.all(src["stem.weight"][:, 2] == 0)                 # y: unknown to the checkpoint
    torch.testing.assert_close(src["stem.weight"][:, 3], w[:, 1])  # r
    assert map_bands(src, net, ["g", "r"], ["g", "r"], "w") is None  # same bands: nothing to do
    assert map_bands(src, net, None, ["g", "r"], "w") is None        # unnamed: by position
    with pytest.raises(ConfigError, match=r"have no band in common"):
        map_bands({"stem.weight": w}, net, ["g", "r", "z"], ["u", "i", "y", "Y"], "w")
    with pytest.raises(ConfigError, match=r"not a plain convolution"):  # e2cnn: basis coefficients, no 4-D stem
        map_bands({"weights": torch.ones(10)}, {"weights": torch.ones(10)}, ["g", "r", "z"], ["z", "r", "g"], "w")


def test_pixel_scale_rule():
    check_pixel_scale(0.5, {"input_pixel_scale": 0.51}, "w")  # within 5 %
    check_pixel_scale(None, {"input_pixel_scale": 2.0}, "w")  # unknown: not checked
    check_pixel_scale(0.5, {"input_pixel_scale": None}, "w")
    with pytest.raises(ConfigError, match=r"0.524\"/px images, these are 2.096\"/px: set data.crop=64"):
        check_pixel_scale(0.524, {"input_pixel_scale": 2.096, "image_size": 32, "native_pixel_scale": 0.262,
                                  "source": "galaxy10"}, "w")
    with pytest.raises(ConfigError, match=r"set data.pixel_scale=0.8"):
        check_pixel_scale(0.8, {"input_pixel_scale": 0.4, "image_size": 16, "source": "sim"}, "w")


def test_init_from_permuted_bands_loads_reindexed_stem(tmp_path):
    _, _, src, trainer = fit("cnn", tmp_path / "a", GRZ)
    ckpt = save(trainer, tmp_path / "src.ckpt")
    _, _, task, _ = fit("cnn", tmp_path / "b", "data.bands=[z,g,r]", f"model.init_from={ckpt}", epochs=0)
    report = json.loads((tmp_path / "b" / INIT_FILE).read_text())
    assert report["bands"]["stem"] == "features.0.weight" and "features.0.weight" in report["loaded"]
    w0, w1 = src.net.state_dict()["features.0.weight"], task.net.state_dict()["features.0.weight"]
    torch.testing.assert_close(w1, w0[:, [2, 0, 1]])
    # 4 bands, one the checkpoint lacks: re-indexed with a zero filter; other size, same pixel scale
    _, _, task, _ = fit("cnn", tmp_path / "c", "data.n_bands=4", "data.bands=[r,g,z,y]", f"model.init_from={ckpt}",
                        epochs=0)
    w = task.net.state_dict()["features.0.weight"]
    torch.testing.assert_close(w[:, :3], w0[:, [1, 0, 2]])
    assert torch.all(w[:, 3] == 0)
    with pytest.raises(ConfigError, match="have no band in common"):
        fit("cnn", tmp_path / "d", "data.bands=[u,i,y]", f"model.init_from={ckpt}", epochs=0)
    with pytest.raises(ConfigError, match=r"set data.pixel_scale=0.8"):  # fit(): 16 px at 0.8"/px
        fit("cnn", tmp_path / "e", GRZ, "data.pixel_scale=0.4", f"model.init_from={ckpt}", epochs=0)
    fit("cnn", tmp_path / "f", GRZ, "data.pixel_scale=0.4", f"model.init_from={ckpt}", "model.check_pixel_scale=false",
        epochs=0)


def test_e2cnn_other_band_order_exits_2(tmp_path):
    _, _, _, trainer = fit("e2cnn", tmp_path / "a", GRZ)
    ckpt = save(trainer, tmp_path / "src.ckpt")
    with pytest.raises(ConfigError, match="not a plain convolution"):
        fit("e2cnn", tmp_path / "b", "data.bands=[z,r,g]", f"model.init_from={ckpt}", epochs=0)
    fit("e2cnn", tmp_path / "c", GRZ, f"model.init_from={ckpt}", epochs=0)  # same bands: loads


def test_label_scheme_galaxy10():
    from cosmobench.config import resolve
    from cosmobench.datamodules.morphology import GALAXY10_CLASSES, SIM_TO_GALAXY10, MorphologyDataModule
    from tests.test_transfer import TINY
    cfg = resolve("morphology", "cnn", overrides=TINY + ["data.label_scheme=galaxy10",
                                                         "data.classes=[elliptical,edge_on,merger]"])
    dm = MorphologyDataModule(cfg["data"], seed=0)
    dm.setup()
    assert dm.info()["classes"] == GALAXY10_CLASSES
    labels = dm.datasets["train"].arrays["label"].numpy()
    want = {GALAXY10_CLASSES.index(SIM_TO_GALAXY10[c]) for c in ("elliptical", "edge_on", "merger")}
    assert set(np.unique(labels)) == want
    cfg = resolve("morphology", "cnn", overrides=TINY + ["data.label_scheme=galaxy10", "data.label_type=soft"])
    with pytest.raises(ConfigError, match="label_scheme=galaxy10 needs data.label_type=hard"):
        MorphologyDataModule(cfg["data"], seed=0).setup()


@pytest.mark.slow
def test_cli_bands_errors_exit_2_and_write_nothing(tmp_path):
    base = ["trainer.max_epochs=1", "logger=none", "data.n_train=16", "data.n_val=8", "data.n_test=8",
            "data.batch_size=8", "plots=false", "model.channels=[4,8,8]", "data.image_size=16",
            "data.pixel_scale=0.8", "data.oversample=2"]
    r = run_cli(["train", "morphology", "-m", "cnn", *base, "data.bands=[g,r]"], tmp_path)
    assert r.returncode == 2 and "data.bands=['g', 'r'] must name data.n_bands=3 distinct bands" in r.stderr
    r = run_cli(["train", "morphology", "-m", "cnn", *base, GRZ], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = run_dirs(tmp_path, "morphology", "cnn")
    ckpt = run / "checkpoints" / "best.ckpt"
    r = run_cli(["train", "morphology", "-m", "cnn", *base, "data.bands=[u,i,y]", f"model.init_from={ckpt}"], tmp_path)
    line = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "have no band in common" in line, r.stderr[-2000:]
    r = run_cli(["test", "morphology", "--checkpoint", str(ckpt), "data.bands=[z,r,g]"], tmp_path)
    assert r.returncode == 2 and "expects data.bands=['g', 'r', 'z']" in r.stderr, r.stderr[-2000:]
    assert run_dirs(tmp_path, "morphology", "cnn") == [run]  # nothing else written
