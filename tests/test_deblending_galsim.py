"""deblending's external-simulator track: data.source=galsim (cosmobench/sim/galsim_blends.py)
through data.dataset=galsim-blends: seeded rendering, the truth (isolated images sum to the
noiseless scene, their sums are the catalogue fluxes), the render cache, training on it and a
simulator checkpoint scored on it, and the one-line exit 2 without GalSim. Tiny scenes; everything
but the last test skips when GalSim (the peers extra) is absent."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import cosmobench
from conftest import HERE
from cosmobench import cli
from cosmobench import config as C
from cosmobench.datamodule import sample_rng
from cosmobench.sim.blends import BlendSetup, blendedness, footprint_threshold

TINY = HERE / "conf" / "deblending.yaml"
FAST = ["trainer.enable_progress_bar=false", "plots=false", "data.n_train=16", "data.n_val=8", "data.n_test=8"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "galsim-blends" / "renders"


@pytest.fixture
def galsim():
    return pytest.importorskip("galsim", reason="GalSim (the peers extra: pip install .[peers]) is not installed")


def _setup(**kw):
    return BlendSetup(**{"image_size": 32, "pixel_scale": 0.3, "psf_fwhm": 0.7, "zero_point": 34.0,
                         "mag_range": [20.0, 22.0], "n_max": 3, "margin": 3.0, **kw})


def test_rendering_is_seeded_and_pure_per_scene(galsim):
    from cosmobench.sim.galsim_blends import PER_GALAXY, GalSimBlendRenderer
    r = GalSimBlendRenderer(_setup())
    a = r.render(range(6), "test", 3)
    assert a["image"].shape == (6, 3, 32, 32) and a["image"].dtype == np.float32
    assert a["isolated"].shape == (a["n_gal"].sum(), 3, 32, 32) and all(len(a[k]) == a["n_gal"].sum()
                                                                         for k in PER_GALAXY)
    again = GalSimBlendRenderer(_setup()).render(range(6), "test", 3)
    for k in a:
        np.testing.assert_array_equal(again[k], a[k])
    b = r.render([4], "test", 3)  # scene i: a function of (seed, split, i) only
    first = int(a["n_gal"][:4].sum())
    np.testing.assert_array_equal(b["image"][0], a["image"][4])
    np.testing.assert_array_equal(b["isolated"], a["isolated"][first:first + int(a["n_gal"][4])])
    assert not np.array_equal(r.render(range(6), "train", 3)["image"], a["image"])  # another split
    assert not np.array_equal(r.render(range(6), "test", 4)["image"], a["image"])   # another seed


def test_truth_sums_to_the_scene_and_fluxes_are_the_catalogue(galsim):
    from cosmobench.sim.galsim_blends import GalSimBlendRenderer
    st = _setup(n_min=3, n_max=3, overlap_fraction=1.0)
    r = GalSimBlendRenderer(st)
    sc = r.scene(sample_rng(0, "test", 1), noise=False)
    np.testing.assert_allclose(sc.image, sc.isolated.sum(0), rtol=1e-6, atol=1e-3)  # truth sums to the scene
    np.testing.assert_allclose(sc.flux, sc.isolated.sum((-2, -1)))
    # the catalogue (analytic) fluxes: the colours of the components, and the in-stamp flux of a galaxy far
    # from the edges (64 px stamp, centroids 22 px inside, small disks)
    g = sc.params[0]
    np.testing.assert_allclose(sc.flux_total[0], sum(r.band_fluxes(g)))
    big = GalSimBlendRenderer(_setup(image_size=64, margin=22.0, disk_re_range=[0.3, 0.5]))
    wide = big.scene(sample_rng(0, "test", 2), noise=False)
    np.testing.assert_allclose(wide.isolated.sum((-2, -1)), wide.flux_total, rtol=0.02)
    # blue knots: a galaxy whose light is mostly knots is brighter in the bluest band than in the reddest
    knotty = {**g, "bulge_to_total": 0.0, "knot_fraction": 1.0}
    assert r.band_fluxes(knotty)[2][0] > r.band_fluxes(knotty)[2][-1] > 0
    # blendedness by our simulator's function: overlap placed every further galaxy onto an earlier one
    beta = blendedness(sc.isolated, footprint_threshold(st.band_sigma, 1.0))
    assert ((0 <= beta) & (beta < 1)).all() and beta.max() > 0.1
    # the noise is ours: where the scene is faint, noisy - noiseless has the sky + read-noise rms
    noisy = r.scene(sample_rng(0, "test", 1))
    faint = sc.image < 0.1 * st.band_sigma[:, None, None]
    rms = [(noisy.image - sc.image)[b][faint[b]].std() for b in range(st.n_bands)]
    np.testing.assert_allclose(rms, st.band_sigma, rtol=0.1)


def test_render_cache_extends_and_is_reused(galsim, tmp_path, monkeypatch):
    from cosmobench.sim import galsim_blends as G
    st, cache = _setup(), tmp_path / "renders"
    monkeypatch.setattr(G, "BLOCK", 4)
    first = G.render_cached(st, "val", 1, 6, cache)
    folder = cache / G.cache_key(st, "val", 1)
    assert sorted(p.name for p in folder.iterdir()) == ["block_00000.npz", "block_00001.npz"]
    more = G.render_cached(st, "val", 1, 7, cache)  # extends the second block by one scene
    direct = G.GalSimBlendRenderer(st).render(range(7), "val", 1)
    for k in direct:
        np.testing.assert_array_equal(more[k], direct[k])
    np.testing.assert_array_equal(more["image"][:6], first["image"])
    head = G.render_cached(st, "val", 1, 5, cache)  # a shorter read takes the galaxies of its scenes only
    assert len(head["isolated"]) == head["n_gal"].sum() == direct["n_gal"][:5].sum()

    def boom(*a, **k):
        raise AssertionError("rendered although cached")
    monkeypatch.setattr(G, "GalSimBlendRenderer", boom)
    np.testing.assert_array_equal(G.render_cached(st, "val", 1, 7, cache)["image"], more["image"])
    assert G.cache_key(_setup(psf_fwhm=1.0), "val", 1) != G.cache_key(st, "val", 1)  # the survey is in the key
    assert G.cache_key(_setup(oversample=5), "val", 1) == G.cache_key(st, "val", 1)  # GalSim does not use it


def test_dataset_selects_galsim_with_a_fixed_test_set(galsim, cache):
    from cosmobench.datamodules.deblending import DeblendingDataModule
    cfg = C.resolve("deblending", "sep", config_file=TINY, overrides=["data.dataset=galsim-blends", *FAST])
    assert cfg["data"]["source"] == "galsim"
    dms = [DeblendingDataModule(cfg["data"], seed=s) for s in (0, 1)]
    for dm in dms:
        dm.setup("fit")
    a, b = (dm.datasets for dm in dms)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (16, 8, 8)
    assert np.array_equal(a["test"].image, b["test"].image)  # data.render_seed, not the run's seed
    assert not np.array_equal(a["val"].image, b["val"].image)
    item = a["test"][2]
    n = int(item["n_true"])
    np.testing.assert_allclose(item["truth_flux"][:n], item["truth_images"][:n].sum((-2, -1)), rtol=1e-5)
    assert np.isnan(item["truth_xy"][n:]).all() and item["truth_images"].shape == (3, 3, 32, 32)


def test_train_on_it_and_score_a_simulator_checkpoint_on_it(galsim, cache, tmp_path):
    from cosmobench.leaderboard.stats import run_track
    root = tmp_path / "root"
    tiny = ["model.base_channels=4", "model.depth=2"]
    ext = cosmobench.train("deblending", "unet", [*FAST, *tiny, "data.dataset=galsim-blends", "seed=1"],
                           config_file=TINY, root=root)
    assert ext.status == "ok" and np.isfinite(ext.metrics["flux_mape"]) and 0 <= ext.metrics["recall"] <= 1
    assert run_track(str(ext.run_dir)) == "external:galsim-blends"
    sim = cosmobench.train("deblending", "unet", [*FAST, *tiny], config_file=TINY, root=root)
    assert sim.status == "ok"
    t = cosmobench.test("deblending", sim.run_dir / "checkpoints" / "best.ckpt",
                        overrides=["data.dataset=galsim-blends", "plots=false", "trainer.enable_progress_bar=false"],
                        root=root)
    assert t.status == "ok" and np.isfinite(t.metrics["flux_mape"])
    assert t.metrics["flux_mape"] != sim.metrics["flux_mape"]
    assert run_track(str(t.run_dir)) == "external:galsim-blends"
    # the test run (seed 0) rendered no train/val split of its own: it read the test split that the external
    # run (seed 1) rendered (data.render_seed), so the cache holds that run's train, val and the shared test
    assert len(list(cache.iterdir())) == 3


def test_missing_galsim_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "galsim", None)  # as if the peers extra were not installed
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    code = cli.main(["train", "deblending", "-m", "sep", "-c", str(TINY), "--root", str(root),
                     "data.dataset=galsim-blends", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install .[peers]" in err[0], err
    assert not root.exists() or not any(root.rglob("*.ckpt"))


def test_learned_detector_checkpoint_keeps_its_detector_under_cosmobench_test(galsim, cache, tmp_path):
    """`cosmobench test CKPT` scores the checkpoint's trained detector (Lightning calls the
    configure_model hook again at test start; it must not re-initialise the loaded detector)."""
    root = tmp_path / "root"
    learned = ["model.detector=learned", "model.detector_threshold=0.05", "data.n_train=48"]  # finds some at 1 epoch
    r = cosmobench.train("deblending", "sep", [*FAST, *learned], config_file=TINY, root=root)
    assert r.status == "ok" and r.metrics["recall"] > 0
    ckpt = r.run_dir / "checkpoints" / "best.ckpt"
    again = cosmobench.test("deblending", ckpt, overrides=["plots=false", "trainer.enable_progress_bar=false"],
                            root=root)
    assert again.metrics["recall"] == r.metrics["recall"] and again.metrics["flux_mape"] == r.metrics["flux_mape"]
    ext = cosmobench.test("deblending", ckpt, overrides=["data.dataset=galsim-blends", "plots=false",
                                                         "trainer.enable_progress_bar=false"], root=root)
    assert ext.status == "ok" and ext.metrics["recall"] > 0
