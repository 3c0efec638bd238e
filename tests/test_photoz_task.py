"""PhotoZTask (MDN, kNN) and the real-catalogue loader, on tiny configs."""
import logging

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from cosmobench.config import resolve
from cosmobench.datamodules.photoz import PhotoZDataModule
from cosmobench.errors import ConfigError, InputError
from cosmobench.nn.mdn import MDN, MDNConfig
from cosmobench.tasks.photoz import KNNPhotoZ, KNNSettings, PhotoZTask

TINY = ["data.n_train=2000", "data.n_val=300", "data.n_test=500", "data.batch_size=256",
        "trainer.max_epochs=3", "model.hidden=[32,32]", "model.n_components=3"]
MAGS = ["mag_u", "mag_g", "mag_r", "mag_i", "mag_z"]
ERRS = ["magerr_u", "magerr_g", "magerr_r", "magerr_i", "magerr_z"]


def _trainer(epochs):
    return pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", deterministic=True)


@pytest.fixture(scope="module")
def tiny_dm():
    cfg = resolve("photoz", "mdn", overrides=TINY)
    dm = PhotoZDataModule(cfg["data"], seed=0)
    dm.setup()
    return cfg, dm


def _val_nll(task, dm):
    task.eval()
    with torch.no_grad():
        losses = [float(task.loss(b)) * len(b["idx"]) for b in dm.val_dataloader()]
    return sum(losses) / len(dm.datasets["val"])


def test_mdn_training_reduces_loss_and_reports_metrics(tiny_dm, tmp_path):
    cfg, dm = tiny_dm
    pl.seed_everything(0)
    task = PhotoZTask(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())
    before = _val_nll(task, dm)
    task.train()
    trainer = _trainer(3)
    trainer.fit(task, datamodule=dm)
    after = _val_nll(task, dm)
    assert after < before - 0.5, (before, after)
    trainer.test(task, datamodule=dm, verbose=False)
    m = task.test_metrics
    assert set(m) == {"bias", "sigma_nmad", "outlier_frac", "crps", "pit_ks", "nll"}
    assert all(np.isfinite(v) for v in m.values())
    assert 0 < m["sigma_nmad"] < 0.3 and 0 <= m["outlier_frac"] <= 1 and 0 < m["pit_ks"] < 1
    # predict columns
    batch = next(iter(dm.test_dataloader()))
    out = task.predict_outputs(batch)
    n = len(batch["idx"])
    assert out["z_phot"].shape == (n,) and out["weights"].shape == (n, 3) and out["sigmas"].shape == (n, 3)
    assert torch.all(out["z_lo"] <= out["z_phot"]) and torch.all(out["z_phot"] <= out["z_hi"])
    torch.testing.assert_close(out["weights"].sum(1), torch.ones(n))
    # checkpoint round trip keeps the normalisation buffers and the predictions
    ckpt = tmp_path / "mdn.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = PhotoZTask.load_from_checkpoint(ckpt)
    torch.testing.assert_close(loaded.x_mean, task.x_mean)
    torch.testing.assert_close(loaded.predict_outputs(batch)["z_phot"], out["z_phot"])
    paths = task.make_plots(task.test_arrays, tmp_path / "plots")
    assert len(paths) == 2 and all(p.suffix == ".png" and p.stat().st_size > 1000 for p in paths)


def test_knn_fit_predict_and_state_round_trip(tiny_dm, tmp_path):
    cfg, dm = tiny_dm
    info = dm.info()
    train = {k: v.numpy() for k, v in dm.datasets["train"].arrays.items()}
    knn = KNNPhotoZ(KNNSettings(k=7, bandwidth=0.02), torch.tensor(info["x_mean"]), torch.tensor(info["x_std"]), n_dims=5)
    knn.fit(train)
    x = dm.datasets["test"].arrays["x"][:50]
    log_w, mu, sigma = knn(x)
    assert log_w.shape == mu.shape == sigma.shape == (50, 7)
    torch.testing.assert_close(sigma, 0.02 * (1 + mu))
    # the nearest neighbour of a training galaxy is itself
    _, mu_self, _ = knn(torch.as_tensor(train["x"][:20]))
    torch.testing.assert_close(mu_self[:, 0], torch.as_tensor(train["z"][:20]))
    # state -> torch.save -> torch.load(weights_only) -> new instance: same predictions
    knn.fitted = True
    torch.save(knn.get_extra_state(), tmp_path / "knn.pt")
    other = KNNPhotoZ(KNNSettings(k=7, bandwidth=0.02), torch.tensor(info["x_mean"]), torch.tensor(info["x_std"]), n_dims=5)
    other.set_extra_state(torch.load(tmp_path / "knn.pt", weights_only=True))
    assert other.fitted
    torch.testing.assert_close(other(x)[1], mu)
    with pytest.raises(ConfigError):
        resolve("photoz", "knn", overrides=["model.k=0"])


def test_knn_task_through_trainer_and_checkpoint(tiny_dm, tmp_path):
    cfg_knn = resolve("photoz", "knn", overrides=[o for o in TINY if not o.startswith(("model.", "trainer."))])
    _, dm = tiny_dm
    task = PhotoZTask(model=cfg_knn["model"], optim=cfg_knn["optim"], data_info=dm.info())
    trainer = _trainer(1)
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    assert task.net.fitted and len(task.net.train_z) == 2000
    assert task.test_metrics["sigma_nmad"] < 0.2 and np.isfinite(task.test_metrics["nll"])
    trainer.save_checkpoint(tmp_path / "knn.ckpt")
    loaded = PhotoZTask.load_from_checkpoint(tmp_path / "knn.ckpt")
    batch = next(iter(dm.test_dataloader()))
    out = loaded.predict_outputs(batch)
    assert out["weights"].shape == (len(batch["idx"]), 30)
    torch.testing.assert_close(out["means"], task.predict_outputs(batch)["means"])
    # a row with a non-finite input gets NaN outputs; the others are unaffected
    bad = {k: v.clone() for k, v in batch.items()}
    bad["x"][1, 0] = float("nan")
    out_bad = loaded.predict_outputs(bad)
    assert torch.isnan(out_bad["z_phot"][1]) and torch.isnan(out_bad["means"][1]).all()
    torch.testing.assert_close(out_bad["z_phot"][[0, 2]], out["z_phot"][[0, 2]])
    with pytest.raises(InputError, match="features"):
        loaded.predict_outputs({"x": batch["x"][:, :6]})


def test_unknown_model_and_missing_info():
    with pytest.raises(ConfigError, match="no model"):
        PhotoZTask(model={"name": "bnn"}, data_info={"x_mean": [0.0] * 10, "x_std": [1.0] * 10,
                                                    "z_mean": 1.0, "z_std": 1.0, "n_features": 10})
    with pytest.raises(ConfigError, match="data_info"):
        PhotoZTask(model={"name": "mdn"}, data_info={})


def test_mdn_head_outputs_valid_mixture():
    net = MDN(MDNConfig(n_components=4, hidden=[16], dropout=0.0), in_features=10, loc=1.0, scale=0.5)
    log_w, mu, sigma = net(torch.randn(8, 10))
    torch.testing.assert_close(log_w.exp().sum(1), torch.ones(8))
    assert torch.all(sigma > 0) and mu.shape == (8, 4)


# --- real catalogues -----------------------------------------------------------------------
def _catalog(n=300, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.1, 2.0, n)
    mag = 22 + z[:, None] + rng.normal(0, 0.3, (n, 5)) + np.arange(5)[None] * -0.2 * z[:, None]
    err = rng.uniform(0.01, 0.2, (n, 5))
    cols = {"id": np.arange(n), "z_spec": z}
    cols.update({m: mag[:, i] for i, m in enumerate(MAGS)})
    cols.update({e: err[:, i] for i, e in enumerate(ERRS)})
    return cols


def _cat_cfg(path, **over):
    cfg = resolve("photoz", "knn", overrides=["data.source=catalog", f"data.path={path}"])["data"]
    cfg.update(over)
    return cfg


def test_csv_loader_drops_nan_rows_and_logs(tmp_path, caplog):
    import pandas as pd
    cols = _catalog()
    cols["mag_g"][[3, 10]] = np.nan
    cols["z_spec"][20] = np.inf
    path = tmp_path / "cat.csv"
    pd.DataFrame(cols).to_csv(path, index=False)
    dm = PhotoZDataModule(_cat_cfg(path), seed=0)
    with caplog.at_level(logging.WARNING, logger="cosmobench.datamodules.photoz"):
        dm.setup()
    assert dm.n_dropped == 3
    assert any("dropped 3 of 300 rows" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 297 and sizes["test"] == round(0.15 * 297)
    zs = {s: set(dm.datasets[s].arrays["z"].numpy().tolist()) for s in sizes}
    assert not (zs["train"] & zs["test"]) and not (zs["train"] & zs["val"])
    # predict input: no z column needed, rows kept in order
    pd.DataFrame({k: v for k, v in cols.items() if k != "z_spec"}).to_csv(tmp_path / "in.csv", index=False)
    ds = dm.read_input(tmp_path / "in.csv")
    assert len(ds) == 300 and "z" not in ds.arrays
    np.testing.assert_allclose(ds.arrays["mag"][:, 3].numpy(), cols["mag_i"], rtol=1e-6)


def test_fits_loader_and_errors(tmp_path):
    from astropy.table import Table
    cols = _catalog(200, seed=1)
    Table(cols).write(tmp_path / "cat.fits")
    dm = PhotoZDataModule(_cat_cfg(tmp_path / "cat.fits"), seed=0)
    dm.setup()
    assert sum(len(d) for d in dm.datasets.values()) == 200 and dm.n_dropped == 0
    assert dm.info()["bands"] == MAGS
    with pytest.raises(InputError, match=r"'redshift' not found.*available columns: id, z_spec"):
        PhotoZDataModule(_cat_cfg(tmp_path / "cat.fits", z_column="redshift"), seed=0).setup()
    with pytest.raises(InputError, match="not found"):
        PhotoZDataModule(_cat_cfg(tmp_path / "nope.csv"), seed=0).setup()
    (tmp_path / "cat.txt").write_text("a b\n1 2\n")  # a whitespace text table, without the columns
    with pytest.raises(InputError, match=r"'mag_u', .* not found .*available columns: a, b"):
        PhotoZDataModule(_cat_cfg(tmp_path / "cat.txt"), seed=0).setup()
    (tmp_path / "cat.xlsx").write_text("a b\n")
    with pytest.raises(InputError, match="unsupported"):
        PhotoZDataModule(_cat_cfg(tmp_path / "cat.xlsx"), seed=0).setup()
    with pytest.raises(ConfigError, match="same number"):
        PhotoZDataModule(_cat_cfg(tmp_path / "cat.fits", err_columns=ERRS[:3]), seed=0).setup()
    with pytest.raises(InputError, match="input file not found"):
        dm.read_input(tmp_path / "missing.fits")


@pytest.mark.parametrize("suffix", [".csv", ".fits"])
def test_export_round_trips_through_read_input(tiny_dm, tmp_path, suffix):
    _, dm = tiny_dm
    path = dm.export("test", tmp_path / f"test{suffix}")
    ds = dm.read_input(path)
    assert len(ds) == len(dm.datasets["test"])
    for key in ("mag", "magerr", "x", "z"):
        np.testing.assert_allclose(ds.arrays[key].numpy(), dm.datasets["test"].arrays[key].numpy(),
                                   rtol=1e-5, atol=1e-5)


def _poisoned_catalog(n=300, seed=2):
    """A catalogue with each kind of invalid row at known positions."""
    cols = _catalog(n, seed=seed)
    cols["mag_u"][[0, 1]] = 99.0          # SDSS-style non-detection: mag and error 99
    cols["magerr_u"][[0, 1]] = 99.0
    cols["mag_z"][2] = -99.0              # the other common sentinel
    cols["z_spec"][3] = 1e30              # physically impossible redshift (overflows float32)
    cols["z_spec"][4] = -0.2              # negative redshift
    cols["mag_r"][5] = 1e30               # absurd magnitude
    cols["mag_g"][6] = -5.0               # brighter than data.mag_valid_range
    cols["magerr_i"][7] = 0.0             # zero error
    cols["z_spec"][8] = 3.5               # beyond data.z_max = 3
    return cols


@pytest.mark.parametrize("mode", ["limit", "drop"])
def test_catalog_valid_ranges_and_nondetection_sentinels(tmp_path, caplog, mode):
    from cosmobench.io import write_table
    cols = _poisoned_catalog()
    path = write_table(cols, tmp_path / "cat.ecsv")
    dm = PhotoZDataModule(_cat_cfg(path, nondetection=mode), seed=0)
    with caplog.at_level(logging.WARNING, logger="cosmobench.datamodules.photoz"):
        dm.setup()
    n_sentinel_rows = 3
    expected_drop = 6 + (n_sentinel_rows if mode == "drop" else 0)
    assert dm.n_dropped == expected_drop
    assert sum(len(d) for d in dm.datasets.values()) == 300 - expected_drop
    msg = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(msg) == 1 and f"dropped {expected_drop} of 300 rows" in msg[0] and "redshift outside" in msg[0]
    assert dm.dropped["cat.ecsv: redshift outside [0, data.z_max=3]"] == 3
    z = np.concatenate([d.arrays["z"].numpy() for d in dm.datasets.values()])
    mag = np.concatenate([d.arrays["mag"].numpy() for d in dm.datasets.values()])
    err = np.concatenate([d.arrays["magerr"].numpy() for d in dm.datasets.values()])
    assert z.min() >= 0 and z.max() <= 3.0 and np.all(np.abs(mag) < 40) and np.all(err > 0)
    depth_u = dm.cfg["depth_5sigma"][0]
    at_limit = np.isclose(mag[:, 0], depth_u + 2.5 * np.log10(5), atol=1e-4)
    if mode == "limit":  # the sentinels became S/N = 1 upper limits, as the simulator makes them
        assert at_limit.sum() == 2 and np.allclose(err[at_limit, 0], 1.0857, atol=1e-4)
    else:
        assert at_limit.sum() == 0
    # predict: same rules, rows kept in order, invalid ones flagged by NaN features
    ds = dm.read_input(path)
    x = ds.arrays["x"].numpy()
    nan_rows = set(np.nonzero(~np.isfinite(x).all(1))[0].tolist())
    assert nan_rows == ({5, 6, 7} | ({0, 1, 2} if mode == "drop" else set()))


def test_catalog_with_no_valid_row_is_an_input_error(tmp_path):
    from cosmobench.io import write_table
    cols = _catalog(20)
    cols["z_spec"][:] = -1.0
    path = write_table(cols, tmp_path / "cat.csv")
    with pytest.raises(InputError, match=r"none of its 20 rows is valid \(redshift outside"):
        PhotoZDataModule(_cat_cfg(path), seed=0).setup()


def test_fixed_test_set_from_test_path(tmp_path):
    from cosmobench.io import write_table
    train = write_table(_catalog(300, seed=0), tmp_path / "train.fits")
    test_cols = _poisoned_catalog(120, seed=5)
    test = write_table(test_cols, tmp_path / "test.csv")
    dm = PhotoZDataModule(_cat_cfg(train, test_path=str(test)), seed=0)
    dm.setup()
    sizes = {s: len(d) for s, d in dm.datasets.items()}
    assert sizes["train"] + sizes["val"] == 300 and sizes["val"] == round(0.15 * 300)
    assert sizes["test"] == 120 - 6 and dm.n_dropped == 6  # the test file's invalid rows are dropped too
    keep = np.ones(120, bool)
    keep[[3, 4, 5, 6, 7, 8]] = False
    np.testing.assert_allclose(dm.datasets["test"].arrays["z"].numpy(), test_cols["z_spec"][keep], rtol=1e-6)
    # the statistics come from the train split of data.path only; the fingerprint covers both files
    fp = dm.fingerprint()
    write_table(_catalog(120, seed=6), test)
    assert PhotoZDataModule(_cat_cfg(train, test_path=str(test)), seed=0).fingerprint() != fp
    with pytest.raises(InputError, match=r"data file not found: .*nope.csv \(data.test_path\)"):
        PhotoZDataModule(_cat_cfg(train, test_path=str(tmp_path / "nope.csv")), seed=0).setup()
    with pytest.raises(ConfigError, match="data.test_path is for real data"):
        PhotoZDataModule(resolve("photoz", "knn", overrides=[f"data.test_path={test}"])["data"])
