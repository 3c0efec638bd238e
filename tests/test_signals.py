"""SIGTERM (a scheduler's time limit / preemption) stops every phase like Ctrl-C: exit 143
within seconds, nothing recorded, the run dir resumable; SIGUSR1 under SLURM requeues
(Lightning's auto-requeue) and the requeued job continues its run. Real signals to a
``cosmobench`` subprocess; the phase is recognised from files or the process's memory."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, HERE, db_rows, run_cli, run_dirs, sigint_as_in_a_terminal

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


@pytest.mark.slow  # not yet run to the end here (the machine was overloaded): see the session note
def test_sigterm_during_predict_exits_143_no_output(root, tmp_path):
    out = run_cli(["train", "sbi", "-c", str(SBI), "-m", "rejection_abc", "data.problem=gaussian_linear"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = run_dirs(root, "sbi", "rejection_abc")
    obs = tmp_path / "obs.csv"
    obs.write_text("data_1,data_2,data_3,data_4,data_5,data_6,data_7,data_8,data_9,data_10\n"
                   + "\n".join(",".join(["0.1"] * 10) for _ in range(4)) + "\n")
    dest = tmp_path / "post.csv"
    # 2 million KDE draws per observation, each checked against the prior: many seconds
    proc = _popen(["predict", "sbi", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--input", str(obs),
                   "--output", str(dest), "eval.num_posterior_samples=2000000"], root)
    hit = _wait(lambda: _rss_mb(proc.pid) > 500, proc)  # torch, sbi and the checkpoint loaded
    time.sleep(3)
    assert hit and proc.poll() is None
    took, err = _terminate(proc)
    assert proc.returncode == 143 and took < 10, (took, err[-2000:])
    assert not dest.exists() and not list(tmp_path.glob("post*"))


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
