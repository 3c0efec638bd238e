"""Run-time reliability of ``train``/``predict`` and the results store (issue 7 §2-§5,
issue 6 §3): bad input found with the data or model built is exit 2 with nothing written;
no untrained or non-finite result is recorded as ``ok``; no run or result is lost
(store checked before training, ``results --rescan``, Ctrl-C, resume, run-dir lock);
nothing unsafe is loaded (``weights_only=True`` even with torch's override variable set);
W&B runs of one process never mix.

Most cases run in-process on the toy plugin task (fast); what only a user's shell shows
(exit codes, SIGINT, the environment variable) runs the CLI in a subprocess."""
from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import sqlite3
import struct
import subprocess
import time
from pathlib import Path

import pytest
import torch

import cosmobench
from conftest import BIN, HERE, db_rows, run_cli, run_dirs, sigint_as_in_a_terminal
from cosmobench import results as R
from cosmobench import runner
from cosmobench.errors import ConfigError, InputError, RunFailure

TINY = str(HERE / "conf" / "photoz.yaml")
FAST = ["logger=csv", "trainer.enable_progress_bar=false", "plots=false"]


def tree(root: Path) -> list[str]:
    """Every file and folder under root (to prove that nothing was written or changed)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def toy(root, model="linear", extra=()):
    return cosmobench.train("toy", model, [*FAST, "trainer.max_epochs=2", *extra], root=root)


# --- §2: bad input found with data/model built: exit 2, nothing written -------------------
def test_knn_k_larger_than_training_set_leaves_nothing(root):
    with pytest.raises(InputError, match="model.k=700 exceeds the 600 training galaxies"):
        cosmobench.train("photoz", "knn", ["model.k=700", *FAST], config_file=TINY, root=root)
    assert tree(root) == []


def test_knn_k_too_large_cli_exit_2_one_line(root):
    out = run_cli(["train", "photoz", "-m", "knn", "-c", TINY, "model.k=5000"], root)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith("cosmobench: error: knn: model.k=5000")
    assert tree(root) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "not_a_checkpoint"])
def test_bad_last_ckpt_for_resume_is_rejected_before_the_run(toy_plugin, root, damage):
    res = toy(root)
    (res.run_dir / "metrics.json").unlink()  # make it look unfinished, resumable
    last = res.run_dir / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    if damage == "truncate":
        last.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        last.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        last.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, last)
    before = tree(root)
    rows = R.read_rows(root)
    with pytest.raises(InputError) as err:
        toy(root, extra=["resume=last"])
    assert "\n" not in str(err.value) and str(last) in str(err.value)
    assert tree(root) == before and R.read_rows(root) == rows  # no failed.txt, no failed row


def test_resume_path_outside_root_writes_nothing_there(toy_plugin, tmp_path):
    other, root = tmp_path / "other", tmp_path / "runs"
    res = toy(other)
    (res.run_dir / "metrics.json").unlink()
    before = tree(other)
    ckpt = res.run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="outside --root"):
        toy(root, extra=[f"resume={ckpt}"])
    assert tree(other) == before and not root.exists()


def test_resume_path_of_another_model_is_rejected(toy_plugin, root):
    res = toy(root, model="mean")
    (res.run_dir / "metrics.json").unlink()
    before = tree(root)
    with pytest.raises(ConfigError, match="toy/mean, not toy/linear"):
        toy(root, extra=[f"resume={res.run_dir / 'checkpoints' / 'last.ckpt'}"])
    assert tree(root) == before


# --- §3: no bad result is ever saved as ok ------------------------------------------------
@pytest.mark.parametrize("model,setting", [("linear", "trainer.max_epochs=0"), ("mean", "trainer.max_epochs=0"),
                                           ("linear", "trainer.max_steps=0"),
                                           ("linear", "trainer.limit_train_batches=0"),
                                           ("linear", "trainer.limit_train_batches=0.0")])
def test_training_nothing_is_rejected_up_front(toy_plugin, root, model, setting):
    with pytest.raises(ConfigError, match="trains nothing"):
        toy(root, model=model, extra=[setting])
    assert tree(root) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_test_metric_is_a_failed_run(toy_plugin, root, monkeypatch, bad):
    import toyplug
    real = toyplug.ToyTask.compute_metrics
    monkeypatch.setattr(toyplug.ToyTask, "compute_metrics", lambda self, out: {**real(self, out), "mse": bad})
    with pytest.raises(RunFailure, match=f"test metric mse={bad} is not finite"):
        toy(root)
    (row,) = R.read_rows(root)
    assert row.status == "failed" and "mse" in row.error and row.metrics == {}
    (run_dir,) = run_dirs(root, "toy", "linear")
    assert not (run_dir / "metrics.json").exists() and "mse" in (run_dir / "failed.txt").read_text()


@pytest.mark.parametrize("model", ["linear", "mean"])
def test_fast_dev_run_is_a_smoke_test_not_a_result(toy_plugin, root, model):
    res = toy(root, model=model, extra=["trainer.fast_dev_run=true"])
    assert res.status == "smoke" and res.metrics  # the pipeline ran through test
    assert R.read_rows(root, installed_only=False) == [] and tree(root) == []


def test_fast_dev_run_cli_says_not_recorded(root):
    out = run_cli(["train", "photoz", "-m", "knn", "-c", TINY, "trainer.fast_dev_run=true"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "not recorded" in out.stdout and "crps" in out.stdout and tree(root) == []


# --- §4: the results store ------------------------------------------------------------------
def _garbage_store(root):
    (root / R.DB_NAME).write_bytes(b"this is not an sqlite file\n" * 200)


def _store_is_dir(root):
    (root / R.DB_NAME).mkdir()


@pytest.mark.parametrize("breakage,needle", [(_garbage_store, "corrupt"), (_store_is_dir, "not a file")])
def test_broken_store_is_detected_before_training(toy_plugin, root, breakage, needle):
    breakage(root)
    before = tree(root)
    t0 = time.time()
    with pytest.raises(R.StoreError, match=needle):
        toy(root, extra=["trainer.max_epochs=50"])
    assert tree(root) == before and time.time() - t0 < 10  # no run dir, no training


def test_locked_store_is_detected_before_training(toy_plugin, root, monkeypatch):
    R.write_row(root, R.RunRow(run_id="x", task="toy", model="linear", seed=0, status="ok", config_hash="h"))
    monkeypatch.setattr(R, "PREFLIGHT_TIMEOUT", 0.3)
    holder = sqlite3.connect(root / R.DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing, and not letting go
    try:
        with pytest.raises(R.StoreError, match="locked"):
            toy(root)
    finally:
        holder.close()
    assert not (root / "toy").exists()


def test_root_that_cannot_be_a_directory(toy_plugin, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for root in (blocker, blocker / "runs"):
        with pytest.raises(R.StoreError, match="not a (writable )?directory"):
            toy(root)
    assert blocker.read_text() == "x"


def test_row_that_cannot_be_recorded_is_kept_and_rescanned(toy_plugin, root, monkeypatch):
    real = R.write_row

    def broken(root_, row):
        raise R.StoreError("results store is locked by another process (database is locked)")

    monkeypatch.setattr(R, "write_row", broken)
    with pytest.raises(RunFailure, match="results --rescan"):
        toy(root)
    monkeypatch.setattr(R, "write_row", real)
    assert R.read_rows(root) == []
    (run_dir,) = run_dirs(root, "toy", "linear")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    added, unfinished = R.rescan(root)
    assert added == [run_dir.name] and unfinished == 0
    (row,) = R.read_rows(root)
    assert row.status == "ok" and row.metrics == metrics and row.run_id == run_dir.name
    assert row.config_hash and row.dataset_fingerprint and row.git_commit == json.loads(
        (run_dir / "run.json").read_text())["git_commit"]
    assert R.rescan(root) == ([], 0)  # idempotent


def test_rescan_rebuilds_a_store_moved_aside(toy_plugin, root):
    ok = toy(root)
    toy(root, extra=["seed=1"])
    (root / R.DB_NAME).rename(root / "old.sqlite")
    for p in root.glob(R.DB_NAME + "-*"):
        p.unlink()
    out = run_cli(["results", "--rescan", str(root)], root)  # the toy task is not installed there:
    assert out.returncode == 0, out.stderr                  # rescanning needs no task code
    assert "recorded 2 run(s)" in out.stdout
    rows = R.read_rows(root)
    assert {r.run_id for r in rows} == {d.name for d in run_dirs(root, "toy", "linear")}
    assert next(r for r in rows if r.run_id == ok.run_id).metrics == ok.metrics


def test_corrupt_store_clear_error_in_leaderboard_and_results(root):
    _garbage_store(root)
    for args in (["leaderboard"], ["results"]):
        out = run_cli(args, root)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "corrupt" in out.stderr and "--rescan" in out.stderr


def test_rows_of_a_task_that_is_not_installed_are_skipped(toy_plugin, root):
    """Rows recorded by a plugin that was later removed: the leaderboard still works."""
    toy(root)
    out = run_cli(["leaderboard"], root)  # a fresh process without the plugin on its path
    assert out.returncode == 0, out.stderr
    assert "not installed: toy" in out.stderr and "toy" not in out.stdout
    assert len(R.read_rows(root, installed_only=False)) == 1


# --- §4: Ctrl-C, resume, locking -------------------------------------------------------------
def _popen(args, root, wandb_mode="disabled"):
    env = {**os.environ, "COSMOBENCH_HOME": str(root), "WANDB_MODE": wandb_mode, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(BIN / "cosmobench"), *args], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_as_in_a_terminal)


def _wait_for(pattern_root: Path, pattern: str, proc, timeout=60.0) -> Path | None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = list(pattern_root.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.05)
    return None


def _csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_ctrl_c_exit_130_resumable_and_csv_log_kept(root):
    # 20,000 galaxies: ~1 s per epoch here, so the SIGINT sent 0.2 s after epoch 0's checkpoint
    # lands mid-training even on a machine several times faster (2,000 was ~0.1 s an epoch: on a
    # fast CI runner the run had finished and the signal hit the row recording instead)
    args = ["train", "photoz", "-c", TINY, "data.n_train=20000", "trainer.max_epochs=4", "logger=wandb"]
    proc = _popen(args, root, wandb_mode="offline")
    last = _wait_for(root, "photoz/mdn/*/checkpoints/last.ckpt", proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert last is not None and proc.returncode == 130, err[-2000:]
    final = err.strip().splitlines()[-1]
    assert final.startswith("cosmobench: interrupted: run ") and "resume=last" in final
    run_dir = last.parent.parent
    assert db_rows(root) == [] and not (run_dir / "metrics.json").exists()  # README: no row until it ends
    epochs_before = {int(r["epoch"]) for r in _csv_rows(run_dir)}
    assert 0 in epochs_before

    assert [e.exit_code for e in _of(_wandb_records(run_dir), "exit")] == [130]  # W&B run closed as failed

    out = run_cli([*args, "resume=last"], root, env={"WANDB_MODE": "offline"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert run_dirs(root, "photoz", "mdn") == [run_dir]
    (row,) = db_rows(root)
    assert row["status"] == "ok"
    rows = _csv_rows(run_dir)
    train_rows = [r for r in rows if r.get("val_loss")]
    assert [int(r["epoch"]) for r in train_rows] == [0, 1, 2, 3]  # every epoch once, none lost
    steps = [int(r["step"]) for r in rows if r.get("train_loss_step")]
    assert steps == sorted(set(steps))  # no step logged twice


@pytest.mark.slow
def test_resumed_csv_log_equals_uninterrupted(tmp_path):
    args = ["train", "photoz", "-c", TINY, "data.n_train=20000", "trainer.max_epochs=4", "logger=csv"]  # ~1 s an epoch
    full, cut = tmp_path / "full", tmp_path / "cut"
    full.mkdir(), cut.mkdir()
    assert run_cli(args, full).returncode == 0
    proc = _popen(args, cut)
    last = _wait_for(cut, "photoz/mdn/*/checkpoints/last.ckpt", proc)
    time.sleep(0.3)
    proc.kill()
    proc.communicate()
    assert last is not None
    assert run_cli([*args, "resume=last"], cut).returncode == 0
    (a,), (b,) = run_dirs(full, "photoz", "mdn"), run_dirs(cut, "photoz", "mdn")
    assert _csv_rows(a) == _csv_rows(b)


def test_second_resume_of_a_locked_run_dir_exits_2(toy_plugin, root):
    res = toy(root)
    (res.run_dir / "metrics.json").unlink()
    rows = R.read_rows(root)
    fd = os.open(res.run_dir, os.O_RDONLY)  # another process is training in this run dir
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        before = tree(root)
        with pytest.raises(ConfigError, match="in use by another cosmobench process"):
            toy(root, extra=["resume=last"])
        assert tree(root) == before and R.read_rows(root) == rows
    finally:
        os.close(fd)
    again = toy(root, extra=["resume=last"])  # lock released: the resume goes ahead
    assert again.run_dir == res.run_dir and (res.run_dir / "metrics.json").is_file()


def _locked(run_dir: Path) -> bool:
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_two_concurrent_resumes_cli_one_runs(root):
    args = ["train", "photoz", "-c", TINY, "trainer.max_epochs=3"]
    cosmobench.train("photoz", "mdn", ["trainer.max_epochs=1"], TINY, root=root)  # in-process: faster
    # make it an unfinished 3-epoch run that stopped after epoch 1 (as if killed there)
    (run_dir,) = run_dirs(root, "photoz", "mdn")
    cfg = run_dir / "config.yaml"
    cfg.write_text(cfg.read_text().replace("max_epochs: 1", "max_epochs: 3"))
    (run_dir / "metrics.json").unlink()
    R.connect(root).execute("DELETE FROM runs")
    first = _popen([*args, "resume=last"], root)
    deadline = time.time() + 60
    while time.time() < deadline and first.poll() is None and not _locked(run_dir):
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # hold the first one mid-run, however slow the second starts
    try:
        second = run_cli([*args, "resume=last"], root)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2 and "in use by another cosmobench process" in second.stderr, second.stderr
    assert not (run_dir / "failed.txt").exists()
    (row,) = db_rows(root)
    assert row["status"] == "ok"


def test_successful_resume_clears_an_earlier_failure(toy_plugin, root, monkeypatch):
    import toyplug
    real = toyplug.ToyTask.compute_metrics
    monkeypatch.setattr(toyplug.ToyTask, "compute_metrics", lambda self, out: {"mse": float("nan")})
    with pytest.raises(RunFailure):
        toy(root)
    monkeypatch.setattr(toyplug.ToyTask, "compute_metrics", real)
    (run_dir,) = run_dirs(root, "toy", "linear")
    assert (run_dir / "failed.txt").is_file()
    res = toy(root, extra=["resume=last"])
    assert res.run_dir == run_dir and not (run_dir / "failed.txt").exists()
    (row,) = R.read_rows(root)
    assert row.status == "ok"


# --- §4: predict never overwrites silently --------------------------------------------------
def test_predict_refuses_to_overwrite_and_bad_outputs(toy_plugin, root, tmp_path):
    res = toy(root)
    ckpt = res.run_dir / "checkpoints" / "best.ckpt"
    import numpy as np
    inp = tmp_path / "in.npz"
    np.savez(inp, x=np.zeros((5, 4), np.float32))

    out = tmp_path / "pred.csv"
    out.write_text("precious\n")
    with pytest.raises(ConfigError, match="exists: pass --overwrite"):
        runner.predict("toy", ckpt, inp, out)
    assert out.read_text() == "precious\n"
    with pytest.raises(ConfigError, match="is a directory"):
        runner.predict("toy", ckpt, inp, tmp_path)
    with pytest.raises(ConfigError, match="use a file ending in"):
        runner.predict("toy", ckpt, inp, tmp_path / "pred.txt")


def test_predict_overwrite_flag_cli(root):
    res = cosmobench.train("photoz", "knn", FAST, TINY, root=root)  # in-process: faster
    from cosmobench.datamodules.photoz import PhotoZDataModule
    dm = PhotoZDataModule(res.config["data"], seed=0)
    dm.setup()
    inp = dm.export("test", root / "in.csv")
    ckpt = res.run_dir / "checkpoints" / "best.ckpt"
    out = root / "z.csv"
    out.write_text("keep me\n")
    base = ["predict", "photoz", "--checkpoint", str(ckpt), "--input", str(inp), "--output", str(out)]
    refused = run_cli(base, root)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and out.read_text() == "keep me\n"
    done = run_cli([*base, "--overwrite"], root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_text().startswith("z_phot") and len(out.read_text().splitlines()) == 201
    header_only = root / "empty.csv"
    header_only.write_text(inp.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError):
        runner.predict("photoz", ckpt, header_only, root / "e.csv")
    assert not (root / "e.csv").exists()


# --- §5: nothing unsafe is loaded ------------------------------------------------------------
class _Payload:
    """Pickles to a call of builtins.exec that creates ``marker``: what a hostile checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _evil_checkpoint(path: Path, marker: Path, like: Path | None = None) -> Path:
    ckpt = torch.load(like, weights_only=True) if like else {"state_dict": {}, "epoch": 0}
    ckpt["hyper_parameters"] = {**ckpt.get("hyper_parameters", {}), "evil": _Payload(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """Control: the crafted checkpoint does execute code under a plain pickle load."""
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_evil_checkpoint_refused_by_predict_even_with_torch_override(root, tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    inp = tmp_path / "in.csv"
    inp.write_text("mag_u,mag_g\n1,2\n")
    out = run_cli(["predict", "photoz", "--checkpoint", str(evil), "--input", str(inp), "--output", "o.csv"],
                  root, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "refusing to load checkpoint" in out.stderr and "Python object exec" in out.stderr
    assert not marker.exists()


def test_evil_last_ckpt_refused_on_resume(toy_plugin, root, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    res = toy(root)
    (res.run_dir / "metrics.json").unlink()
    marker = tmp_path / "pwned"
    last = res.run_dir / "checkpoints" / "last.ckpt"
    _evil_checkpoint(last, marker, like=last)
    with pytest.raises(InputError, match="refusing to load"):
        toy(root, extra=["resume=last"])
    assert not marker.exists()
    # Lightning's own load must refuse it too (our check skipped): weights_only is explicit there
    monkeypatch.setattr(runner, "load_checkpoint", lambda path: {"epoch": 0})
    with pytest.raises(RunFailure, match="Weights only load failed|WeightsUnpickler|UnpicklingError"):
        toy(root, extra=["resume=last"])
    assert not marker.exists()


def test_evil_best_ckpt_refused_by_lightning_test_load(toy_plugin, root, tmp_path, monkeypatch):
    """trainer.test(ckpt_path=best.ckpt) reloads from disk: swap best.ckpt for a hostile
    one as soon as it is written, and the load inside Lightning must refuse it."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    import pytorch_lightning as pl
    real_test = pl.Trainer.test

    def swapped_test(self, *args, ckpt_path=None, **kw):
        _evil_checkpoint(Path(ckpt_path), marker, like=Path(ckpt_path))
        return real_test(self, *args, ckpt_path=ckpt_path, **kw)

    monkeypatch.setattr(pl.Trainer, "test", swapped_test)
    with pytest.raises(RunFailure):
        toy(root)
    assert not marker.exists()


# --- issue 6 §3: loggers and W&B -------------------------------------------------------------
def _wandb_records(run_dir: Path) -> list:
    """Records of the offline W&B run file(s) in a run dir (LevelDB-log framing: 32 KiB
    blocks of [crc32 u32, length u16, type u8] chunks; type 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb
    records = []
    for f in sorted(run_dir.glob("wandb/offline-run-*/*.wandb")):
        raw, pos, buf = f.read_bytes(), 7, b""
        while pos + 7 <= len(raw):
            if 32768 - pos % 32768 < 7:
                pos += 32768 - pos % 32768
                continue
            _, n, kind = struct.unpack("<IHB", raw[pos:pos + 7])
            if kind == 0 and n == 0:
                break
            buf += raw[pos + 7:pos + 7 + n]
            pos += 7 + n
            if kind in (1, 4):
                rec = pb.Record()
                rec.ParseFromString(buf)
                records.append(rec)
                buf = b""
    return records


def _of(records, kind):
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def test_wandb_failed_run_is_finished_and_next_run_is_separate(root, monkeypatch):
    import wandb
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(RunFailure, match="loss became"):
        cosmobench.train("photoz", "mdn", ["optim.lr=1e30", "logger=wandb", "plots=false"], TINY, root=root)
    assert wandb.run is None
    ok = cosmobench.train("photoz", "knn", ["logger=[wandb,csv]"], TINY, root=root)
    assert wandb.run is None and os.environ["WANDB_MODE"] == "offline"
    (failed_dir,) = run_dirs(root, "photoz", "mdn")
    failed, good = _wandb_records(failed_dir), _wandb_records(ok.run_dir)
    assert [e.exit_code for e in _of(failed, "exit")] == [1]
    assert [e.exit_code for e in _of(good, "exit")] == [0]
    logged_in_failed = {i.nested_key[0] if i.nested_key else i.key for h in _of(failed, "history") for i in h.item}
    assert not any(k.startswith("test_") for k in logged_in_failed)  # run 2 never logged into run 1
    (run,) = _of(good, "run")
    from cosmobench import config as C
    assert run.run_id == ok.run_id and run.job_type == "train"
    assert run.run_group == f"photoz/knn/{C.config_hash(ok.config, C.BOOKKEEPING_KEYS)}"
    assert "seed=0" in run.tags
    (art,) = _of(good, "artifact")
    assert art.type == "model" and sorted(m.path for m in art.manifest.contents) == ["best.ckpt", "config.yaml"]
    assert (ok.run_dir / "csv" / "metrics.csv").is_file()  # the CSV log runs beside W&B
    staged = list((ok.run_dir / "wandb").rglob("staging/*"))
    assert staged  # artifact staging copies stay inside the run dir


def test_logger_none_logs_nothing_csv_always_otherwise(toy_plugin, root):
    quiet = cosmobench.train("toy", "linear", ["logger=none", "trainer.max_epochs=1", "plots=false"], root=root)
    assert not (quiet.run_dir / "csv").exists() and not (quiet.run_dir / "wandb").exists()
    tb = cosmobench.train("toy", "linear", ["logger=tensorboard", "trainer.max_epochs=1", "plots=false"], root=root)
    assert (tb.run_dir / "csv" / "metrics.csv").is_file() and list((tb.run_dir / "tensorboard").glob("events.*"))
