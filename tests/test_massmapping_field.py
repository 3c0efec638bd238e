"""The published kappaTNG protocol of massmapping (Remy+2023): its two metrics against hand values and
the published code, the simulated survey (mask and noise crops), the ``kappa`` test source and the
train-on-simulations / score-the-field wiring through the CLI on a tiny generated field."""
import json

import numpy as np
import pytest

from conftest import HERE, run_cli, run_dirs
from cosmobench.errors import ConfigError, InputError
from cosmobench.leaderboard.stats import _track_of_config as run_track_of
from cosmobench.metrics import massmapping as mm
from cosmobench.sim import cosmology as C


def _published_rmse(a, b, mask):  # jax-lensing papers/Remy2021/DeepMass.ipynb, cell 18, verbatim
    a = a - (mask * a).mean()
    b = b - (mask * b).mean()
    return np.sqrt(np.sum(mask * (a - b) * (a - b)) / np.sum(mask))


def _published_r(a, b, mask):  # same cell; called there on flattened maps
    return np.cov(mask * a, mask * b)[0, 1] / np.std(mask * a) / np.std(mask * b)


def test_rmse_and_r_hand_values():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = np.array([[1.0, 1.0], [1.0, 0.0]])
    # b = a + 1 inside the mask: the means are taken over the whole zero-filled array (6/4 and 9/4),
    # so the differences inside the mask are 1 - 0.75 = 0.25 (a mean over the mask alone would give 0)
    b = np.where(mask > 0, a + 1.0, 7.0)
    assert mm.rmse_mean_subtracted(b[None], a[None], mask[None]) == pytest.approx(0.25)
    assert mm.rmse_mean_subtracted(a[None], a[None], mask[None]) == 0.0
    # a perfect map: np.cov (ddof=1) over np.std (ddof=0) gives N / (N - 1) = 4/3
    assert mm.r_zero_filled(a, a, mask) == pytest.approx(4.0 / 3.0)
    assert mm.pearson_r(a, a, mask) == pytest.approx(1.0)


def test_rmse_and_r_equal_the_published_code_and_pool_maps():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.01, 0.03, (2, 3, 24, 24))
    b = 0.6 * a + b
    mask = (rng.random((3, 24, 24)) > 0.4).astype(float)
    for i in range(3):
        assert mm.rmse_mean_subtracted(b[i:i + 1], a[i:i + 1], mask[i:i + 1]) == pytest.approx(
            _published_rmse(a[i], b[i], mask[i]), rel=1e-12)
        assert mm.r_zero_filled(b[i], a[i], mask[i]) == pytest.approx(
            _published_r(a[i].ravel(), b[i].ravel(), mask[i].ravel()), rel=1e-12)
    # several maps: each loses its own mean, squared errors pooled over the maps' observed pixels
    per_map = [_published_rmse(a[i], b[i], mask[i]) ** 2 * mask[i].sum() for i in range(3)]
    assert mm.rmse_mean_subtracted(b, a, mask) == pytest.approx(np.sqrt(sum(per_map) / mask.sum()))
    # the zero-filled r is not the Pearson r inside the mask
    assert abs(mm.r_zero_filled(b, a, mask) - mm.pearson_r(b, a, mask)) > 1e-3


def _write(path, arr):
    np.save(path, np.asarray(arr, np.float64))
    return str(path)


SIGMA = 0.05  # per-pixel shear noise std of the generated survey


def _survey(tmp_path, n=40):
    mask = np.ones((n, n))
    mask[:, : n // 4] = 0  # a vertical stripe unobserved
    noise = np.where(mask > 0, SIGMA, 0.0)
    return _write(tmp_path / "mask.npy", mask), _write(tmp_path / "noise.npy", noise), mask


def _dm(stage=None, **over):
    from cosmobench import config
    from cosmobench.datamodules.massmapping import MassMappingDataModule
    cfg = config.resolve("massmapping", "wiener", overrides=[f"data.{k}={v}" for k, v in over.items()])
    dm = MassMappingDataModule(cfg["data"], seed=cfg["seed"])
    if stage != "none":
        dm.setup(stage)
    return dm


def test_simulated_survey_crops_mask_and_noise(tmp_path):
    mask_path, noise_path, survey = _survey(tmp_path)
    kw = dict(n_train=6, n_val=1, n_test=1, map_size=16, pixel_arcmin=1.0)
    a = _dm(**kw, mask_path=mask_path, noise_path=noise_path).datasets["train"].arrays
    ref = _dm(**kw, sigma_e=0.0).datasets["train"].arrays  # same seeds: same kappa and noise-free shear
    np.testing.assert_array_equal(a["kappa"].numpy(), ref["kappa"].numpy())
    crops = {survey[y:y + 16, x:x + 16].tobytes() for y in range(25) for x in range(25)}
    m = a["mask"].numpy()[:, 0]
    assert all(mi.astype(np.float64).tobytes() in crops for mi in m)
    assert len({mi.tobytes() for mi in m}) > 1  # the crops move
    np.testing.assert_array_equal(a["noise"].numpy()[:, 0] > 0, m > 0)
    observed = np.broadcast_to(m[:, None] > 0, a["gamma"].shape)
    resid = (a["gamma"].numpy() - ref["gamma"].numpy() * m[:, None])[observed]
    assert resid.std() == pytest.approx(SIGMA, rel=0.05)
    assert np.all(a["gamma"].numpy()[~observed] == 0)
    with pytest.raises(InputError, match="fewer than data.map_size"):
        _dm(**{**kw, "map_size": 48}, mask_path=mask_path)


def _field(tmp_path, n=32):
    rng = np.random.default_rng(3)
    kappa = C.gaussian_smooth(rng.normal(0, 0.2, (n, n)), 2.0, 1.0)
    mask_path, noise_path, _ = _survey(tmp_path, n)
    return _write(tmp_path / "kappa.npy", kappa), mask_path, noise_path, kappa


def test_kappa_source_observes_the_field_and_is_a_test_set(tmp_path):
    kappa_path, mask_path, noise_path, kappa = _field(tmp_path)
    kw = dict(source="kappa", kappa_path=kappa_path, mask_path=mask_path, noise_path=noise_path, pixel_arcmin=1.0)
    dm = _dm("test", **kw)
    t = dm.datasets["test"].arrays
    assert len(dm.datasets["test"]) == 1  # the one field; train/val are the same map (unused at test time)
    np.testing.assert_array_equal(dm.datasets["train"].arrays["gamma"].numpy(), t["gamma"].numpy())
    g, m = t["gamma"].numpy()[0].astype(float), t["mask"].numpy()[0, 0]
    g1, g2 = C.ks_forward(kappa)
    resid = (g - np.stack([g1, g2]) * m)[:, m > 0]
    assert resid.std() == pytest.approx(SIGMA, rel=0.05) and np.all(g[:, m == 0] == 0)
    np.testing.assert_allclose(t["kappa"].numpy()[0, 0], kappa, rtol=1e-6)
    np.testing.assert_array_equal(g, _dm("test", **kw).datasets["test"].arrays["gamma"].numpy()[0])
    assert not np.array_equal(g, _dm("test", **kw, render_seed=1).datasets["test"].arrays["gamma"].numpy()[0])
    with pytest.raises(ConfigError, match="test set"):
        _dm("fit", **kw)
    with pytest.raises(InputError, match="kappa_path"):
        _dm("test", source="kappa")


TINY = str(HERE / "conf" / "massmapping.yaml")


def test_train_on_simulations_score_the_field(root, tmp_path):
    """Wiener fitted on simulated maps with the field's survey, then scored on the whole field
    (``cosmobench test``; ``cosmobench shift`` runs the same test beside the simulator's)."""
    from cosmobench.leaderboard.stats import run_track
    kappa_path, mask_path, noise_path, _ = _field(tmp_path)
    survey = [f"data.mask_path={mask_path}", f"data.noise_path={noise_path}", "data.map_size=16",
              "data.pixel_arcmin=1.0", f"data.kappa_path={kappa_path}"]
    out = run_cli(["train", "massmapping", "-m", "wiener", "-c", TINY, *survey], root)
    assert out.returncode == 0, out.stderr[-3000:]
    run = run_dirs(root, "massmapping", "wiener")[-1]
    assert set(json.loads((run / "metrics.json").read_text())) >= {"rmse", "r_zero_filled"}
    out = run_cli(["test", "massmapping", "--checkpoint", str(run / "checkpoints" / "best.ckpt"),
                   "data.source=kappa"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    field_run = [p for p in run_dirs(root, "massmapping", "wiener") if p != run][0]
    assert run_track(str(run)) == "sim" and run_track(str(field_run)) == "kappa"
    assert "map_size: 16" in (field_run / "config.yaml").read_text()  # the field is scored whole (32 px)
    field = json.loads((field_run / "metrics.json").read_text())
    assert 0.5 < field["r_zero_filled"] < 1.0 and 0 < field["rmse"] < 0.05  # a real reconstruction
    # the same in one run: train/val simulated, the test split the field (data.test_source=kappa)
    out = run_cli(["train", "massmapping", "-m", "wiener", "-c", TINY, *survey, "data.test_source=kappa"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    one = [p for p in run_dirs(root, "massmapping", "wiener") if p not in (run, field_run)][0]
    assert run_track(str(one)) == "kappa"
    one_metrics = json.loads((one / "metrics.json").read_text())
    for k in ("rmse", "r_zero_filled"):
        assert one_metrics[k] == pytest.approx(field[k], rel=1e-6)
    # shift from that checkpoint: its source side is the simulator's test split, not the field again
    from cosmobench.shift import shift
    report = shift("massmapping", one / "checkpoints" / "best.ckpt", ["data.source=kappa"], root=root)
    assert report["source"]["track"] == "sim" and report["target"]["track"] == "kappa"
    assert report["target"]["metrics"]["rmse"] == pytest.approx(field["rmse"], rel=1e-6)
    assert report["source"]["metrics"]["rmse"] != pytest.approx(field["rmse"], rel=1e-3)
    out = run_cli(["train", "massmapping", "-m", "wiener", "-c", TINY, *survey, "data.test_source=kappa",
                   "data.source=flat", "data.path=x.npy"], root)
    assert out.returncode == 2 and "data.test_source=kappa is for data.source=sim" in out.stderr
    out = run_cli(["train", "massmapping", "-m", "wiener", "-c", TINY, "data.test_source=kappa"], root)
    assert out.returncode == 2 and "data.test_source='kappa' needs data.kappa_path" in out.stderr


def test_external_field_config_wires_the_data_set(tmp_path, monkeypatch):
    """experiments/massmapping/external_field.yaml + kappatng-remy23 (generated files of the registered
    sizes in a private cache): the simulator crops the entry's mask and noise; data.source=kappa
    observes the entry's 360 px map whole."""
    from astropy.io import fits

    from cosmobench import config
    from cosmobench.datamodules.massmapping import MassMappingDataModule
    from cosmobench.datasets import get_dataset
    monkeypatch.setenv("COSMOBENCH_DATA", str(tmp_path))
    n = 360
    mask = np.ones((n, n), np.float32)
    mask[:, :90] = 0
    arrays = {"ktng_kappa360v2.fits": C.gaussian_smooth(np.random.default_rng(0).normal(0, 0.1, (n, n)), 2.0, 1.0)
              .astype(np.float32), "cosmos_full_mask_0.29arcmin360.fits": mask,
              "std1.fits": np.where(mask > 0, SIGMA, 0.0)}  # float64, as the real std1.fits
    for f in get_dataset("kappatng-remy23").files:
        (tmp_path / "kappatng-remy23").mkdir(exist_ok=True)
        fits.PrimaryHDU(arrays[f.name]).writeto(tmp_path / "kappatng-remy23" / f.name)
        assert (tmp_path / "kappatng-remy23" / f.name).stat().st_size == f.size
    layer = str(HERE.parent / "experiments" / "massmapping" / "external_field.yaml")
    tiny = ["data.n_train=3", "data.n_val=1", "data.n_test=1"]
    cfg = config.resolve("massmapping", "ks", config_file=layer, overrides=tiny)
    assert cfg["data"]["source"] == "sim" and cfg["data"]["pixel_arcmin"] == 0.29
    assert run_track_of(cfg) == "external:kappatng-remy23"
    dm = MassMappingDataModule(cfg["data"], seed=0)
    dm.setup("fit")
    sim = dm.datasets["train"].arrays
    assert sim["gamma"].shape[-1] == cfg["data"]["map_size"] < n
    np.testing.assert_array_equal(sim["noise"].numpy() > 0, sim["mask"].numpy() > 0)
    assert set(np.unique(sim["noise"].numpy())) <= {0.0, np.float32(SIGMA)}
    for over in ([], ["data.source=kappa"]):  # the training run's test split, and `cosmobench test` on the field
        cfg = config.resolve("massmapping", "ks", config_file=layer, overrides=[*tiny, *over])
        dm = MassMappingDataModule(cfg["data"], seed=0)
        dm.setup("test")
        field = dm.datasets["test"].arrays
        assert field["gamma"].shape == (1, 2, n, n)
        np.testing.assert_array_equal(field["mask"].numpy()[0, 0], mask)
        np.testing.assert_allclose(field["kappa"].numpy()[0, 0], arrays["ktng_kappa360v2.fits"])


def test_a_noise_map_must_be_positive_where_observed():
    from cosmobench.datamodules.massmapping_files import check_noise
    mask = np.array([[1.0, 0.0]])
    check_noise(np.array([[0.2, 0.0]]), mask, "n.fits")            # zero std only where unobserved: fine
    with pytest.raises(InputError, match="n.fits: the noise map must be > 0 in observed pixels"):
        check_noise(np.array([[0.0, 0.3]]), mask, "n.fits")
