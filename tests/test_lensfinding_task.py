"""LensFindingTask and its datamodule beyond the simulator: real-data sources (image stack with
labels, folder of FITS files), predict on unlabelled stacks in every format, metrics/plots of
the task, and bad input. (Train -> metrics.json -> results row -> predict through the CLI for
every model is tests/test_e2e.py with tests/conf/lensfinding.yaml.)"""
import logging
import types
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from conftest import run_cli, run_dirs
from cosmobench.config import resolve
from cosmobench.datamodules.lensfinding import LensFindingDataModule
from cosmobench.errors import ConfigError, InputError
from cosmobench.tasks.lensfinding import LensFindingTask

warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)

TINY = ["data.image_size=24", "data.pixel_scale=0.3", "data.oversample=1", "data.theta_e_range=[0.8,1.8]",
        "data.n_train=48", "data.n_val=16", "data.n_test=32", "data.batch_size=16", "model.channels=[4,8,8]"]


def cfg_for(*extra):
    return resolve("lensfinding", "cnn", overrides=TINY + list(extra))


@pytest.fixture(scope="module")
def sim():
    """A small simulated sample: images (N, 3, 24, 24) and 0/1 labels."""
    dm = LensFindingDataModule(cfg_for()["data"], seed=0)
    dm.setup()
    x = torch.cat([dm.split_images(s) for s in ("train", "val", "test")]).numpy()
    y = np.concatenate([dm.datasets[s].arrays["label"].numpy() for s in ("train", "val", "test")])
    return x, y


def fit(cfg, tmp_path):
    pl.seed_everything(0, workers=True, verbose=False)
    dm = LensFindingDataModule(cfg["data"], seed=cfg["seed"])
    dm.setup()
    task = LensFindingTask(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), deterministic=True, accelerator="cpu")
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    return dm, task, trainer


def test_stack_source_trains_and_predicts_every_stack_format(sim, tmp_path):
    import h5py
    from astropy.io import fits
    x, y = sim
    np.savez(tmp_path / "cutouts.npz", images=x, labels=y)
    dm, task, trainer = fit(cfg_for("data.source=stack", f"data.path={tmp_path / 'cutouts.npz'}"), tmp_path)
    assert sum(len(dm.datasets[s]) for s in ("train", "val", "test")) == len(x)
    m = task.test_metrics
    assert {"auroc", "tpr_at_fpr_1e-2", "tpr0", "tpr10", "average_precision", "ece"} <= set(m)
    assert "roc_auc" not in m and not any(k.startswith("completeness") for k in m)  # no truth in real data
    assert all(np.isfinite(v) for v in m.values())
    # a fixed test set: data.test_path (train/val from data.path)
    np.savez(tmp_path / "test.npz", images=x[:12], labels=y[:12])
    dm2 = LensFindingDataModule(cfg_for("data.source=stack", f"data.path={tmp_path / 'cutouts.npz'}",
                                        f"data.test_path={tmp_path / 'test.npz'}")["data"])
    dm2.setup()
    assert torch.equal(dm2.datasets["test"].arrays["image"], torch.from_numpy(x[:12]))
    assert len(dm2.datasets["train"]) + len(dm2.datasets["val"]) == len(x)
    # predict on unlabelled stacks: .npy (N, C, H, W), .h5 (N, H, W, C), FITS cube of one band per file? no:
    # a 4-D FITS cube (N, C, H, W)
    np.save(tmp_path / "in.npy", x[:10])
    with h5py.File(tmp_path / "in.h5", "w") as fh:
        fh.create_dataset("images", data=x[:10].transpose(0, 2, 3, 1))
    fits.PrimaryHDU(x[:10]).writeto(tmp_path / "in.fits")
    task.eval()
    scores = []
    for name in ("in.npy", "in.h5", "in.fits"):
        ds = dm.read_input(tmp_path / name)
        batch = {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ("image", "idx")}
        with torch.no_grad():
            cols = task.predict_outputs(batch)
        assert list(cols) == ["index", "score", "pred_label"]
        assert torch.equal(cols["index"], torch.arange(10))
        assert ((cols["score"] >= 0) & (cols["score"] <= 1)).all()
        assert torch.equal(cols["pred_label"], (cols["score"] >= 0.5).long())
        scores.append(cols["score"])
    torch.testing.assert_close(scores[0], scores[1])
    torch.testing.assert_close(scores[0], scores[2])


def test_stack_labels_from_a_table_and_bad_labels(sim, tmp_path):
    x, y = sim
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(InputError, match="holds no labels"):
        LensFindingDataModule(cfg_for("data.source=stack", f"data.path={tmp_path / 'x.npy'}")["data"]).setup()
    (tmp_path / "labels.csv").write_text("label\n" + "\n".join(str(v) for v in y) + "\n")
    dm = LensFindingDataModule(cfg_for("data.source=stack", f"data.path={tmp_path / 'x.npy'}",
                                       f"data.label_path={tmp_path / 'labels.csv'}")["data"])
    dm.setup()
    assert dm.datasets["train"].arrays["label"].numpy().tolist() == y[dm.real_split_rows(len(y))["train"]].tolist()
    (tmp_path / "bad.csv").write_text("label\n" + "\n".join(["2"] + ["0"] * (len(y) - 1)) + "\n")
    with pytest.raises(InputError, match="labels must be 0 \\(non-lens\\) or 1"):
        LensFindingDataModule(cfg_for("data.source=stack", f"data.path={tmp_path / 'x.npy'}",
                                      f"data.label_path={tmp_path / 'bad.csv'}")["data"]).setup()
    (tmp_path / "short.csv").write_text("label\n0\n1\n")
    with pytest.raises(InputError, match="2 labels for"):
        LensFindingDataModule(cfg_for("data.source=stack", f"data.path={tmp_path / 'x.npy'}",
                                      f"data.label_path={tmp_path / 'short.csv'}")["data"]).setup()


def test_folder_of_fits_files(sim, tmp_path):
    from astropy.io import fits
    x, y = sim
    rows = ["file,label"]
    for i in range(40):
        fits.PrimaryHDU(x[i]).writeto(tmp_path / f"c{i}.fits")
        rows.append(f"c{i}.fits,{y[i]}")
    (tmp_path / "cat.csv").write_text("\n".join(rows) + "\n")
    dm = LensFindingDataModule(cfg_for("data.source=folder", f"data.path={tmp_path / 'cat.csv'}")["data"], seed=0)
    dm.setup()
    item = dm.datasets["test"][0]
    r = int(dm.datasets["test"].rows[0])
    assert torch.equal(item["image"], torch.from_numpy(x[r])) and int(item["label"]) == y[r]
    assert dm.info()["classes"] == ["non_lens", "lens"] and "completeness_edges" not in dm.info()
    # predict from the table alone (labels ignored): one item per row, in table order
    ds = dm.read_input(tmp_path / "cat.csv")
    assert len(ds) == 40 and torch.equal(ds[7]["image"], torch.from_numpy(x[7])) and int(ds[7]["idx"]) == 7


def test_metrics_and_plots_of_simulated_test_outputs(tmp_path):
    dm = LensFindingDataModule(cfg_for()["data"], seed=0)
    dm.setup()
    cfg = cfg_for()
    task = LensFindingTask(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())
    test = dm.datasets["test"].arrays
    y = test["label"].numpy()
    rng = np.random.default_rng(0)
    p = np.clip(0.3 + 0.4 * y + 0.2 * rng.standard_normal(len(y)), 0.01, 0.99)
    out = {"probs": np.stack([1 - p, p], 1), "label": y, "idx": np.arange(len(y)),
           "inv_err": np.zeros(len(y)), **{k: test[k].numpy() for k in ("theta_e", "source_mag", "kind")}}
    m = task.compute_metrics(out)
    assert any(k.startswith("completeness_theta_e_") for k in m)
    assert any(k.startswith("completeness_source_mag_") for k in m)
    # the completeness bins together reproduce tpr_at_fpr_1e-2
    comp = {k: v for k, v in m.items() if k.startswith("completeness_theta_e_")}
    from cosmobench.metrics.lensfinding import completeness_binned, threshold_at_fpr
    thr = threshold_at_fpr(y, p, 1e-2)
    rows = completeness_binned(y, p, out["theta_e"], dm.info()["completeness_edges"]["theta_e"], thr)
    assert [c for *_, c in rows] == list(comp.values())
    assert sum(n * c for _, _, n, c in rows) / (y == 1).sum() == pytest.approx(m["tpr_at_fpr_1e-2"])
    task._trainer = types.SimpleNamespace(datamodule=dm)  # the gallery reads the test images from it
    paths = task.make_plots(out, tmp_path / "plots")
    names = {q.name for q in paths}
    assert {"roc.png", "score_histograms.png", "completeness.png", "gallery.png"} <= names
    assert all(q.stat().st_size > 1000 for q in paths)


def test_cli_bad_input_exits_2_and_writes_nothing(root):
    out = run_cli(["train", "lensfinding", "data.source=stack", f"data.path={root / 'missing.npy'}"], root)
    assert out.returncode == 2 and "missing.npy" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not run_dirs(root, "lensfinding", "resnet18")


def test_resample_train_fresh_cutouts_every_epoch_whatever_num_workers():
    """data.resample_train: epoch 0 is the fixed training set, later epochs are new samples, each
    a pure function of (seed, epoch, i): the same batches with 0 or 2 workers, val/test fixed."""
    fixed = LensFindingDataModule(cfg_for()["data"], seed=3)
    fixed.setup()
    runs = []
    for nw in (0, 2):
        dm = LensFindingDataModule(cfg_for("data.resample_train=true", f"data.num_workers={nw}")["data"], seed=3)
        dm.setup()
        loader = dm.train_dataloader()
        epochs = []
        for epoch in range(3):
            loader.sampler.set_epoch(epoch)  # what Lightning does before every epoch
            epochs.append(list(loader))
        runs.append((dm, epochs))
    (dm0, e0), (_, e2) = runs
    for a, b in zip(sum(e0, []), sum(e2, [])):
        assert a.keys() == b.keys()
        for k in a:  # bitwise; NaN truth (theta_e of non-lenses) equal to NaN
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, equal_nan=True)
    assert len(e0[0]) == 3 and sorted(torch.cat([b["idx"] for b in e0[1]]).tolist()) == list(range(48))
    fixed_batches = list(fixed.train_dataloader())
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(e0[0], fixed_batches))  # epoch 0 = fixed set
    images = [torch.cat([b["image"] for b in ep]) for ep in e0]
    assert not torch.equal(images[1], images[2]) and not torch.equal(images[0][:8], images[1][:8])
    labels = torch.cat([b["label"] for b in e0[2]])
    assert 0 < labels.float().mean() < 1  # both classes in a fresh epoch
    # a fresh sample is the simulator's train sample epoch * n + i, not a val/test sample
    b = e0[2][0]
    from cosmobench.sim.lensing import LensSimulator
    img, _ = LensSimulator(dm0.sim_config()).simulate([2 * 48 + int(b["idx"][0])], "train", 3)
    torch.testing.assert_close(b["image"][0], img[0])
    for s in ("val", "test"):
        assert torch.equal(dm0.datasets[s].arrays["image"], fixed.datasets[s].arrays["image"])
    assert dm0.info()["norm_mean"] == fixed.info()["norm_mean"]
    with pytest.raises(ConfigError, match="resample_train"):
        LensFindingDataModule(cfg_for("data.resample_train=true", "data.source=stack", "data.path=x.npy")["data"])
