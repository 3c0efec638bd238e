"""SIGTERM (a scheduler's time limit / preemption) stops every phase like Ctrl-C: exit 143
within seconds, nothing recorded, the run dir resumable; SIGUSR1 under SLURM requeues
(Lightning's auto-requeue) and the requeued job continues its run. Real signals to a
``cosmobench`` subprocess; the phase is recognised from files or the process's memory."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, HERE, PLUGIN_SRC, db_rows, run_cli, run_dirs, sigint_as_in_a_terminal

SBI = HERE / "conf" / "sbi.yaml"
PHOTOZ = HERE / "conf" / "photoz.yaml"


def _popen(args, root, env=None):
    full = {**os.environ, "COSMOBENCH_HOME": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "COSMOBENCH_CACHE": str(root / "cache"), **(env or {})}
    return subprocess.Popen([str(BIN / "cosmobench"), *args], cwd=root, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_as_in_a_terminal)


def _wait(cond, proc, timeout=300.0):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    return None


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _terminate(proc, sig=signal.SIGTERM) -> tuple[float, str]:
    t0 = time.time()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return time.time() - t0, err


def test_interrupt_code_follows_the_signal_through_wrappers():
    from cosmobench.runner import RunInterrupted
    from cosmobench.signals import Terminated, interrupt_code

    def wrapped(outer, inner):
        try:
            try:
                raise inner
            except BaseException:
                raise outer from None  # the context is kept (Lightning's sys.exit(1), the runner's re-raise)
        except BaseException as exc:  # noqa: BLE001
            return exc

    assert interrupt_code(Terminated()) == 143 and interrupt_code(KeyboardInterrupt()) == 130
    assert interrupt_code(wrapped(SystemExit(1), Terminated())) == 143
    assert interrupt_code(wrapped(SystemExit(1), KeyboardInterrupt())) == 130
    assert interrupt_code(wrapped(RunInterrupted("x", exit_code=143), SystemExit(1))) == 143  # a bench worker's


def test_sigterm_during_simulation_exits_143_writes_nothing(root):
    # 3 million gaussian_linear pairs: several seconds of simulation, recognised by the memory
    # the simulated arrays take (the imports alone stay well below it)
    proc = _popen(["train", "sbi", "-c", str(SBI), "data.problem=gaussian_linear", "data.num_simulations=3000000"],
                  root)
    hit = _wait(lambda: _rss_mb(proc.pid) > 1100, proc)
    assert hit, "the simulation never started"
    assert not (root / "sbi").exists()  # before the run dir: still simulating
    took, err = _terminate(proc)
    assert proc.returncode == 143 and took < 10, (took, err[-2000:])
    assert err.strip().splitlines()[-1].startswith("cosmobench: terminated (SIGTERM)")
    assert not (root / "sbi").exists() and db_rows(root) == []


def test_sigterm_during_fit_exits_143_and_resumes(root):
    args = ["train", "photoz", "-c", str(PHOTOZ), "data.n_train=20000", "trainer.max_epochs=4"]
    proc = _popen(args, root)
    last = _wait(lambda: next(iter(root.glob("photoz/mdn/*/checkpoints/last.ckpt")), None), proc)
    time.sleep(0.2)
    took, err = _terminate(proc)
    assert last is not None and proc.returncode == 143 and took < 10, (took, err[-2000:])
    final = err.strip().splitlines()[-1]
    assert final.startswith("cosmobench: terminated (SIGTERM): run ") and "resume=last" in final
    run_dir = last.parent.parent
    assert db_rows(root) == [] and not (run_dir / "metrics.json").exists()
    assert "SIGTERM" in (run_dir / "interrupted.txt").read_text()
    out = run_cli([*args, "resume=last"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert run_dirs(root, "photoz", "mdn") == [run_dir]
    assert [r["status"] for r in db_rows(root)] == ["ok"] and not (run_dir / "interrupted.txt").exists()


def test_sigterm_during_test_phase_evaluation_exits_143(root):
    # C2ST on 2 x 3000 samples: the evaluation (sklearn fits in Python loops) lasts long
    # enough after the last checkpoint to be signalled in the middle of it
    args = ["train", "sbi", "-c", str(SBI), "data.problem=gaussian_linear", "trainer.max_epochs=1",
            "eval.num_posterior_samples=3000", "eval.reference_samples=3000"]
    proc = _popen(args, root)
    last = _wait(lambda: next(iter(root.glob("sbi/npe/*/checkpoints/last.ckpt")), None), proc)
    time.sleep(3)
    assert last is not None and proc.poll() is None
    took, err = _terminate(proc)
    assert proc.returncode == 143 and took < 10, (took, err[-2000:])
    run_dir = last.parent.parent
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "plots").exists() and db_rows(root) == []
    assert "resume=last" in err.strip().splitlines()[-1]


def _stderr_lines(proc) -> list[str]:
    """The lines ``proc`` writes to stderr, collected by a thread as they come."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    return lines


def test_sigterm_during_predict_exits_143_no_output(root, tmp_path, monkeypatch):
    import cosmobench
    monkeypatch.setenv("WANDB_MODE", "disabled")
    res = cosmobench.train("sbi", model="rejection_abc", config_file=SBI, root=root, overrides=[
        "data.problem=gaussian_linear", "data.num_simulations=200", "data.num_observations=1", "data.num_sbc=10",
        "eval.num_posterior_samples=50", "eval.reference_samples=50", "eval.sbc_posterior_samples=10",
        "eval.time_posterior_samples=10", "plots=false"])
    obs = tmp_path / "obs.csv"
    rng = np.random.default_rng(0)  # 2000 observations, a KDE and 1000 draws each: ~24 CPU-s in all
    obs.write_text(",".join(f"data_{i}" for i in range(1, 11)) + "\n"
                   + "\n".join(",".join(f"{v:.3f}" for v in row) for row in rng.uniform(-0.5, 0.5, (2000, 10))))
    dest = tmp_path / "post.csv"
    proc = _popen(["predict", "sbi", "--checkpoint", str(res.run_dir / "checkpoints" / "best.ckpt"), "--input",
                   str(obs), "--output", str(dest), "eval.num_posterior_samples=1000"], root)
    err = _stderr_lines(proc)
    assert _wait(lambda: any(line.startswith("predict: sbi/rejection_abc on") for line in err), proc), err
    time.sleep(1.0)  # into the sampling
    assert proc.poll() is None, "predict ended before the signal: give it more work"
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    took = time.time() - t0
    assert proc.returncode == 143 and took < 10, (took, err[-20:])
    assert err[-1].startswith("cosmobench: terminated (SIGTERM)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.csv", "runs"]  # no output, no staged file


def test_sigterm_to_a_bench_job_marks_its_run_interrupted_and_the_suite_resumes(root, tmp_path):
    # SLURM signals every process of the job: the suite process and its worker both get SIGTERM
    import yaml
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"seeds": 1, "tasks": {"toy": {"models": ["linear"]}}, "overrides": [
        "logger=none", "plots=false", "data.n_train=2048", "data.n_val=32", "data.n_test=32", "trainer.max_epochs=6"]}))
    env = {"PYTHONPATH": str(PLUGIN_SRC)}
    proc = subprocess.Popen([str(BIN / "cosmobench"), "bench", str(suite)], cwd=root, text=True,
                            env={**os.environ, "COSMOBENCH_HOME": str(root), "WANDB_MODE": "disabled", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    last = _wait(lambda: next(iter(root.glob("toy/linear/*/checkpoints/last.ckpt")), None), proc)
    assert last is not None, proc.communicate()[1][-2000:]
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    took = time.time() - t0
    assert proc.returncode == 143 and took < 10, (took, err[-2000:])
    assert "run the same command again to resume" in err
    run_dir = last.parent.parent
    assert (run_dir / "interrupted.txt").read_text().split()[-1] == "SIGTERM"  # the worker's own SIGTERM
    assert db_rows(root) == [] and not (run_dir / "metrics.json").exists()
    out = run_cli(["bench", str(suite)], root, plugin=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert run_dirs(root, "toy", "linear") == [run_dir] and [r["status"] for r in db_rows(root)] == ["ok"]


@pytest.mark.slow
def test_slurm_sigusr1_requeues_and_the_requeued_job_resumes(root, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "scontrol.calls"
    (fake / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (fake / "scontrol").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "cosmobench", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost",
             "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    args = ["train", "photoz", "-c", str(PHOTOZ), "data.n_train=20000", "trainer.max_epochs=4"]
    proc = _popen(args, root, env=slurm)
    last = _wait(lambda: next(iter(root.glob("photoz/mdn/*/checkpoints/last.ckpt")), None), proc)
    assert last is not None, proc.communicate()[1][-2000:]
    run_dir = last.parent.parent
    assert run_dir.name.startswith("slurm4242-")
    proc.send_signal(signal.SIGUSR1)  # SLURM's warning signal before the time limit
    hpc = _wait(lambda: next(iter(run_dir.glob("hpc_ckpt_*.ckpt")), None), proc, timeout=60)
    assert hpc is not None
    assert _wait(lambda: calls.is_file() and calls.read_text(), proc, timeout=30) == "requeue 4242\n"
    took, err = _terminate(proc)  # then SLURM ends the job
    assert proc.returncode == 143 and took < 10, err[-2000:]
    # the requeued job: same command, same job id, SLURM_RESTART_COUNT=1: continues the run dir
    out = run_cli(args, root, env={**slurm, "SLURM_RESTART_COUNT": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert run_dirs(root, "photoz", "mdn") == [run_dir]
    (row,) = db_rows(root)
    assert row["status"] == "ok" and row["run_id"] == run_dir.name
