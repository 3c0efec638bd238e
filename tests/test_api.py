"""Python API ``cosmobench.train`` and runner options, in-process on the toy plugin task."""
import json

import pytest

import cosmobench
from cosmobench.errors import ConfigError
from cosmobench.results import read_rows

FAST = ["logger=csv", "trainer.enable_progress_bar=false"]


def test_train_returns_run_result(toy_plugin, root):
    res = cosmobench.train("toy", model="linear", overrides=[*FAST, "trainer.max_epochs=2"], root=root)
    assert res.status == "ok" and res.task == "toy" and res.model == "linear"
    assert json.loads((res.run_dir / "metrics.json").read_text()) == res.metrics
    assert res.metrics["n_test"] == 128  # every test sample counted once
    assert (res.run_dir / "csv" / "metrics.csv").is_file()  # csv logger
    (row,) = read_rows(root)
    assert row.run_id == res.run_id and row.metrics == res.metrics and row.wall_seconds > 0
    assert row.versions["torch"] and row.hardware["cpus"] >= 1


def test_linear_model_learns_and_beats_mean_baseline(toy_plugin, root):
    lin = cosmobench.train("toy", "linear", [*FAST, "trainer.max_epochs=15"], root=root)
    mean = cosmobench.train("toy", "mean", FAST, root=root)
    assert lin.metrics["mse"] < 0.1 * mean.metrics["mse"]
    assert mean.metrics["mse"] > 5  # var(y) = 1 + 4 + 0.25 + 9: the mean predicts nothing


def test_early_stopping_and_max_steps(toy_plugin, root):
    res = cosmobench.train("toy", "linear", [*FAST, "trainer.max_epochs=50", "early_stopping.enabled=true",
                                             "early_stopping.patience=1", "early_stopping.min_delta=100.0"],
                           root=root)
    ckpt_epochs = sorted(p.name for p in (res.run_dir / "checkpoints").iterdir())
    assert ckpt_epochs == ["best.ckpt", "last.ckpt"]
    import torch
    last = torch.load(res.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] < 5  # stopped long before 50 epochs
    res = cosmobench.train("toy", "linear", [*FAST, "trainer.max_steps=3", "trainer.max_epochs=50"], root=root)
    last = torch.load(res.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 3


def test_train_loss_epoch_is_the_sample_weighted_mean_and_early_stopping_can_monitor_it(toy_plugin, root):
    import csv

    import torch
    # 100 training samples in batches of 32 (the last one has 4): an unweighted mean would differ
    res = cosmobench.train("toy", "linear", [*FAST, "trainer.max_epochs=50", "data.n_train=100",
                                             "data.batch_size=32", "trainer.log_every_n_steps=1",
                                             "early_stopping.enabled=true", "early_stopping.monitor=train_loss",
                                             "early_stopping.patience=1", "early_stopping.min_delta=100.0"],
                           root=root)
    last = torch.load(res.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] < 5  # stopped on the training loss long before 50 epochs
    with open(res.run_dir / "csv" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for epoch in {int(r["epoch"]) for r in rows if r.get("train_loss_epoch")}:
        steps = [float(r["train_loss_step"]) for r in rows if r["epoch"] == str(epoch) and r.get("train_loss_step")]
        (logged,) = [float(r["train_loss_epoch"]) for r in rows if r["epoch"] == str(epoch) and r.get("train_loss_epoch")]
        assert len(steps) == 4  # log_every_n_steps=1: every step's loss is written
        assert logged == pytest.approx((32 * sum(steps[:3]) + 4 * steps[3]) / 100, rel=1e-5)


def test_bad_override_raises_before_anything_is_written(toy_plugin, root):
    with pytest.raises(ConfigError, match="max_epochz"):
        cosmobench.train("toy", overrides=["trainer.max_epochz=1"], root=root)
    assert list(root.iterdir()) == []
