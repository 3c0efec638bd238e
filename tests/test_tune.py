"""cosmobench tune on the toy plugin task (tiny configs): 3 trials, pruning, the test split
never read, resume after Ctrl-C, two workers sharing one study, the best config layer,
declared search spaces of the built-in models, errors."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import BIN, PLUGIN_SRC, run_cli, sigint_as_in_a_terminal

FAST = ["data.n_train=64", "data.n_val=32", "data.n_test=32"]
SPACE = {"optim.lr": ["log", 1e-3, 0.3]}


def trial_states(root):
    con = sqlite3.connect(root / "tune.sqlite")
    rows = con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    con.close()
    return rows


def test_three_trials_pruning_best_layer_and_test_split_untouched(root, toy_plugin, monkeypatch):
    from cosmobench import runner, tune
    reads = []
    real = runner._NoTestSplit.__getitem__

    def spy(self, i):  # the stand-in raises; count any attempt too
        reads.append(i)
        return real(self, i)
    monkeypatch.setattr(runner._NoTestSplit, "__getitem__", spy)
    # the third trial has a tiny learning rate: its val_loss after epoch 0 is far above the median -> pruned
    res = tune.tune("toy", "linear", trials=3, overrides=FAST, root=root, space=SPACE, log=lambda m: None,
                    enqueue=[{"optim.lr": 0.2}, {"optim.lr": 0.25}, {"optim.lr": 0.001}])
    assert (res.complete, res.pruned, res.failed) == (2, 1, 0)
    assert [s for _, s in trial_states(root)] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert reads == []
    assert res.best_params["optim.lr"] in (0.2, 0.25)
    layer = res.best_layer.read_text()
    assert "lr: 0.2" in layer and "n_train: 64" in layer
    summary = json.loads((root / "tune" / f"{res.study}.json").read_text())
    assert summary["trials"] == 3 and summary["task"] == "toy"
    # no checkpoint is kept; each trial's config and result are
    assert not list((root / "tune").rglob("*.ckpt"))
    assert len(list((root / "tune" / res.study).glob("trial-*/result.json"))) == 3
    # the layer trains the tuned config, and the leaderboard marks it with the budget
    from cosmobench import leaderboard as L
    from cosmobench.runner import train
    train("toy", "linear", config_file=res.best_layer, overrides=["logger=none", "plots=false"], root=root)
    board = L.load(root)
    (e,) = board["toy"]
    assert e.tuned == {"trials": 3, "study": res.study} and "(tuned 3)" in L.to_markdown(board)
    # the same command again: the study is complete, nothing runs
    again = tune.tune("toy", "linear", trials=3, overrides=FAST, root=root, space=SPACE, log=lambda m: None)
    assert again.study == res.study and len(trial_states(root)) == 3


def test_reading_the_test_split_while_tuning_is_an_error(root, toy_plugin, monkeypatch):
    """A task whose code touches the test split during tuning fails the trial loudly."""
    from cosmobench import runner
    import toyplug
    monkeypatch.setattr(toyplug.ToyTask, "on_fit_start",
                        lambda self: self.trainer.datamodule.datasets["test"][0], raising=False)
    from cosmobench import config as C
    cfg = C.resolve("toy", "linear", overrides=[*FAST, "logger=none", "plots=false"])
    with pytest.raises(runner.TestSplitUsed):
        runner.fit_validate(cfg, root / "t")


def test_no_space_and_bad_space_are_one_line_errors(root, toy_plugin):
    from cosmobench import tune
    from cosmobench.errors import ConfigError
    assert "nothing to tune" in tune.tune("toy", "linear", trials=2, root=root).summary()
    for space, needle in [({"optim.lrr": ["log", 1e-3, 1e-1]}, "not a key"),
                          ({"optim.lr": ["log", 0, 1e-1]}, "low < high > 0"),
                          ({"optim.lr": ["log", -1.0, 1e-1]}, "low < high"),
                          ({"optim.name": ["choice", ["adamw", "nope"]]}, "not valid"),
                          ({"optim.lr": ["uniform", 1, 2]}, "kind")]:
        with pytest.raises(ConfigError, match=needle):
            tune.tune("toy", "linear", trials=2, root=root, space=space)
    out = run_cli(["tune", "toy", "-m", "linear", "--trials", "0"], root, plugin=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--trials" in out.stderr


def test_declared_search_spaces_are_valid():
    """Every built-in model's declared space names real keys with valid bounds (no training)."""
    from cosmobench import tune
    from cosmobench.registry import get_task
    tuned = {}
    for task in ("photoz", "morphology", "lensfinding", "massmapping", "sbi", "deblending"):
        for model in get_task(task).models:
            space = tune.declared_space(task, model)
            tune.check_space(task, model, space)
            tuned[(task, model)] = set(space)
    assert {"optim.lr", "model.n_components"} <= tuned[("photoz", "mdn")] and tuned[("photoz", "knn")]
    assert "model.base_channels" in tuned[("massmapping", "unet")] and tuned[("massmapping", "wiener")] == set()
    assert tuned[("lensfinding", "cnn")] and tuned[("lensfinding", "resnet18")] and tuned[("sbi", "rejection_abc")]


def _tune_cmd(root, trials):
    return [str(BIN / "cosmobench"), "tune", "toy", "-m", "linear", "--trials", str(trials),
            "--space", "optim.lr=log:1e-3:0.3", *FAST, "trainer.max_epochs=40"]


def _env(root):
    return {**os.environ, "COSMOBENCH_HOME": str(root), "WANDB_MODE": "disabled",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_SRC), os.environ.get("PYTHONPATH")]))}


def test_resume_after_ctrl_c(root):
    proc = subprocess.Popen(_tune_cmd(root, 4), env=_env(root), cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_in_a_terminal)
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt in the middle of the second trial
        if (root / "tune.sqlite").exists():
            try:
                states = [s for _, s in trial_states(root)]
            except sqlite3.OperationalError:
                states = []
            if states.count("COMPLETE") >= 1 and "RUNNING" in states:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and err.strip().splitlines()[-1].startswith("cosmobench: interrupted")
    states = [s for _, s in trial_states(root)]
    assert states[-1] == "FAIL" and "RUNNING" not in states
    done_before = sum(s in ("COMPLETE", "PRUNED") for s in states)
    out = subprocess.run(_tune_cmd(root, 4), env=_env(root), cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{done_before} of 4 trials done" in out.stderr
    states = [s for _, s in trial_states(root)]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 4  # the interrupted trial did not count


def test_two_workers_share_one_study(root):
    cmd = _tune_cmd(root, 4)
    cmd[cmd.index("trainer.max_epochs=40")] = "trainer.max_epochs=10"
    procs = [subprocess.Popen(cmd, env=_env(root), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    states = [s for _, s in trial_states(root)]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 4  # one budget, shared
    con = sqlite3.connect(root / "tune.sqlite")
    assert con.execute("SELECT COUNT(*) FROM studies").fetchone()[0] == 1
    con.close()
    workers = [sum("[tune] trial" in ln for ln in o[1].splitlines()) for o in outs]
    assert sum(workers) >= 4


def test_a_flat_objective_is_reported(root, toy_plugin):
    """Every complete trial with the same score (here: a one-value space, so identical runs):
    the study says its search learned nothing, in the log, the summary and the study JSON."""
    from cosmobench import tune
    lines = []
    res = tune.tune("toy", "linear", trials=2, overrides=FAST, root=root, space={"optim.lr": ["choice", [0.1]]},
                    log=lines.append)
    assert res.complete == 2 and res.flat
    assert any("[tune] warning" in ln and "learned nothing" in ln for ln in lines)
    assert "warning:" in res.summary()
    assert json.loads((root / "tune" / f"{res.study}.json").read_text())["flat_objective"] is True
    other = tune.tune("toy", "linear", trials=2, overrides=FAST, root=root / "b", space=SPACE, log=lambda m: None,
                      enqueue=[{"optim.lr": 0.2}, {"optim.lr": 0.01}])
    assert not other.flat and "warning" not in other.summary()
