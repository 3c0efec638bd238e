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


def test_bad_override_raises_before_anything_is_written(toy_plugin, root):
    with pytest.raises(ConfigError, match="max_epochz"):
        cosmobench.train("toy", overrides=["trainer.max_epochz=1"], root=root)
    assert list(root.iterdir()) == []
