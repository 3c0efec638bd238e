"""lensfinding's external-simulator track: data.source=lenstronomy (cosmobench/sim/lenstronomy_peer.py)
through data.dataset=lenstronomy-lenses, its render cache, a simulator checkpoint scored on it,
and the one-line exit 2 without lenstronomy. Tiny stamps; everything but the last test skips
when lenstronomy (the peers extra) is absent."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import cosmobench
from cosmobench import cli
from cosmobench import config as C
from cosmobench.errors import ConfigError

# a tiny survey: 20 px at 0.3"/px (the outer image of theta_E = 1.2" stays inside), no super-sampling
TINY = ["data.image_size=20", "data.pixel_scale=0.3", "data.theta_e_range=[0.6,1.2]", "data.oversample=1",
        "data.n_train=24", "data.n_val=12", "data.n_test=24", "data.batch_size=12"]
FAST = ["logger=csv", "trainer.enable_progress_bar=false", "plots=false", "trainer.max_epochs=1",
        "model.channels=[4,8]"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "lenstronomy-lenses" / "renders"


@pytest.fixture
def lenstronomy():
    return pytest.importorskip("lenstronomy")


def _survey(**kw):
    from cosmobench.sim.lensing import LensSimConfig
    return LensSimConfig(**{"image_size": 20, "pixel_scale": 0.3, "theta_e_range": [0.6, 1.2], "oversample": 1,
                            **kw})


def test_renderer_pure_per_sample_and_in_survey_units(lenstronomy):
    from cosmobench.sim.lenstronomy_peer import LenstronomyRenderer
    cfg = _survey()
    a = LenstronomyRenderer(cfg).render(range(8), "test", 3)
    b = LenstronomyRenderer(cfg).render([5, 2], "test", 3)
    assert a["image"].shape == (8, 3, 20, 20) and a["image"].dtype == np.float32
    np.testing.assert_array_equal(b["image"], a["image"][[5, 2]])  # sample i: a function of (seed, split, i)
    c = LenstronomyRenderer(cfg).render(range(8), "train", 3)
    assert not np.array_equal(c["image"], a["image"])  # another split, another stream
    lens = a["label"] == 1
    assert 0 < lens.sum() < 8 and (a["kind"] == 1 - a["label"]).all()
    assert np.isfinite(a["theta_e"][lens]).all() and np.isnan(a["theta_e"][~lens]).all()
    assert (a["magnification"][lens] > 1).all()  # multiply imaged sources are magnified
    # our noise model: a sky-subtracted corner has the sky + read-noise rms of the survey
    sky = cfg.sky_counts()
    corner = LenstronomyRenderer(_survey(image_size=40, theta_e_range=[0.6, 1.2])).render(range(6), "val", 0)
    rms = corner["image"][:, :, :4, :4].std(axis=(0, 2, 3))
    np.testing.assert_allclose(rms, np.sqrt(sky * cfg.gain + cfg.read_noise ** 2) / cfg.gain, rtol=0.25)


def test_render_cache_extends_and_is_reused(lenstronomy, tmp_path, monkeypatch):
    from cosmobench.sim import lenstronomy_peer as L
    cfg, cache = _survey(), tmp_path / "renders"
    monkeypatch.setattr(L, "BLOCK", 4)
    first = L.render_cached(cfg, "val", 1, 6, cache)
    folder = cache / L.cache_key(cfg, "val", 1)
    assert sorted(p.name for p in folder.iterdir()) == ["block_00000.npz", "block_00001.npz"]
    more = L.render_cached(cfg, "val", 1, 7, cache)  # extends the second block by one sample
    np.testing.assert_array_equal(more["image"][:6], first["image"])
    direct = L.LenstronomyRenderer(cfg).render(range(7), "val", 1)
    for k in direct:
        np.testing.assert_array_equal(more[k], direct[k])

    def boom(*a, **k):
        raise AssertionError("rendered although cached")
    monkeypatch.setattr(L, "LenstronomyRenderer", boom)
    again = L.render_cached(cfg, "val", 1, 7, cache)
    np.testing.assert_array_equal(again["image"], more["image"])
    assert L.cache_key(_survey(psf_fwhm=[1.0]), "val", 1) != L.cache_key(cfg, "val", 1)  # the survey is in the key


def test_dataset_selects_lenstronomy_with_a_fixed_test_set(lenstronomy, cache):
    from cosmobench.datamodules.lensfinding import LensFindingDataModule
    cfg = C.resolve("lensfinding", "cnn", overrides=["data.dataset=lenstronomy-lenses", *TINY, "data.subset=10"])
    assert cfg["data"]["source"] == "lenstronomy"
    dms = [LensFindingDataModule(cfg["data"], seed=s) for s in (0, 1)]
    for dm in dms:
        dm.setup("fit")
    a, b = (dm.datasets for dm in dms)
    assert len(a["train"]) == 10 and len(a["val"]) == 12 and len(a["test"]) == 24  # data.subset of the labels
    assert set(a["train"].arrays["label"].tolist()) == {0, 1}
    assert np.array_equal(a["test"].arrays["image"], b["test"].arrays["image"])  # data.render_seed, not the run's
    assert not np.array_equal(a["val"].arrays["image"], b["val"].arrays["image"])
    assert "completeness_edges" in dms[0].info() and dms[0].info()["classes"] == ["non_lens", "lens"]


def test_sim_checkpoint_scored_on_the_external_set(lenstronomy, cache, tmp_path):
    from cosmobench.leaderboard.stats import run_track
    root = tmp_path / "root"
    r = cosmobench.train("lensfinding", "cnn", [*FAST, *TINY, "data.resample_train=true"], root=root)
    assert r.status == "ok"
    ckpt = r.run_dir / "checkpoints" / "best.ckpt"
    t = cosmobench.test("lensfinding", ckpt, overrides=["data.dataset=lenstronomy-lenses", "logger=csv",
                                                         "plots=false", "trainer.enable_progress_bar=false"],
                        root=root)
    assert t.status == "ok" and 0 <= t.metrics["auroc"] <= 1 and t.metrics["auroc"] != r.metrics["auroc"]
    assert run_track(str(t.run_dir)) == "external:lenstronomy-lenses"
    # a test run renders the test split only (the simulator run's resample_train is a training setting)
    assert [p.name for p in cache.iterdir()] == [next(cache.iterdir()).name]
    with pytest.raises(ConfigError, match="resample_train"):
        cosmobench.train("lensfinding", "cnn", [*FAST, *TINY, "data.dataset=lenstronomy-lenses",
                                                "data.resample_train=true"], root=root)


def test_missing_lenstronomy_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "lenstronomy", None)  # as if the peers extra were not installed
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    code = cli.main(["train", "lensfinding", "-m", "cnn", "--root", str(root), "data.dataset=lenstronomy-lenses",
                     *TINY, *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install .[peers]" in err[0], err
    assert not root.exists() or not any(root.rglob("*.ckpt"))
