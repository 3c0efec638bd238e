"""Benchmark suites on the toy plugin task: expansion and validation, the local launcher
(failed jobs, resume, logs), --verify, SLURM job arrays, Ctrl-C + resume, concurrent writers."""
import json
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, PLUGIN_SRC, db_rows, run_cli, sigint_as_in_a_terminal

FAST = ["logger=none", "plots=false", "data.n_train=64", "data.n_val=32", "data.n_test=32", "trainer.max_epochs=1"]


def suite_file(tmp_path, body: dict, name="s.yaml"):
    import yaml
    p = tmp_path / name
    p.write_text(yaml.safe_dump(body))
    return p


def toy_suite(tmp_path, **kw):
    body = {"seeds": 2, "overrides": FAST, "tasks": {"toy": {"models": ["linear", "mean"], **kw}}}
    return suite_file(tmp_path, body)


def test_expand_models_seeds_grid(tmp_path, toy_plugin):
    from cosmobench import bench
    s = toy_suite(tmp_path, grid={"data.n_train": [32, 64, 128]}, model_overrides={"mean": ["optim.lr=0.5"]})
    _, jobs = bench.expand(s)
    assert len(jobs) == 2 * 3 * 2
    assert {(j.model, j.grid["data.n_train"], j.seed) for j in jobs} == \
        {(m, n, s) for m in ("linear", "mean") for n in (32, 64, 128) for s in (0, 1)}
    # seeds share a config hash (one leaderboard entry), grid points do not
    hashes = {(j.model, j.grid["data.n_train"]): set() for j in jobs}
    for j in jobs:
        hashes[(j.model, j.grid["data.n_train"])].add(j.config_hash)
    assert all(len(h) == 1 for h in hashes.values()) and len({next(iter(h)) for h in hashes.values()}) == 6
    j = next(j for j in jobs if j.model == "mean")
    assert "optim.lr=0.5" in j.overrides and j.overrides[-1] == f"seed={j.seed}"
    assert j.argv()[:4] == ["train", "toy", "-m", "mean"]
    _, jobs = bench.expand(s, seeds=1, overrides=["data.noise=0.2"])
    assert len(jobs) == 6 and all("data.noise=0.2" in j.overrides for j in jobs)


@pytest.mark.parametrize("body,needle", [
    ({"seeds": 0, "tasks": {"toy": {}}}, "seeds must be >= 1"),
    ({"seeds": [1, 1], "tasks": {"toy": {}}}, "repeat"),
    ({"seedz": 1, "tasks": {"toy": {}}}, "unknown keys ['seedz']"),
    ({"tasks": {"toy": {"grid": {"data.n_train": 64}}}}, "non-empty list"),
    ({"tasks": {"toy": {"grid": {"data.n_train": []}}}}, "non-empty list"),
    ({"tasks": {"toy": {"grid": {"data.n_trian": [1, 2]}}}}, "n_train"),          # did you mean
    ({"tasks": {"toy": {"grid": {"data.n_train": [64, "many"]}}}}, "data.n_train"),  # wrong type
    ({"tasks": {"toy": {"grid": {"data.n_train": [64, 0]}}}}, "data.n_train"),       # out of range
    ({"tasks": {"toy": {"grid": {"seed": [1, 2]}}}}, "not allowed"),
    ({"tasks": {"toy": {"models": ["nope"]}}}, "models"),
    ({"tasks": {"nope": {}}}, "unknown task"),
    ({"tasks": {"toy": {"config": "missing.yaml"}}}, "not found"),
    ({"tasks": {"toy": {"overrides": ["trainer.max_epochz=1"]}}}, "max_epochs"),
    ({"tasks": {"toy": {"overrides": "logger=none"}}}, "KEY=VALUE"),
    ({"tasks": {"toy": {"seeds": [0, -1]}}}, "non-negative"),
    ({"tasks": []}, "tasks"),
])
def test_bad_suite_exit_2_nothing_run(tmp_path, toy_plugin, capsys, body, needle):
    from cosmobench import cli
    root = tmp_path / "runs"
    code = cli.main(["bench", str(suite_file(tmp_path, body)), "--root", str(root)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (root / "results.sqlite").exists() and not (root / "toy").exists()


def test_bad_suite_file_via_cli_subprocess(root):
    (root / "bad.yaml").write_text("tasks: {photoz: {grid: {data.n_train: [500, -3]}}}\n")
    out = run_cli(["bench", "bad.yaml"], root)
    assert out.returncode == 2 and out.stderr.startswith("cosmobench: error:") and "n_train" in out.stderr
    assert not (root / "results.sqlite").exists()
    out = run_cli(["bench", "--jobs", "0"], root)
    assert out.returncode == 2


# The issue-12 guarantees. Each of these starts 4-6 Python processes (a suite process, its
# workers, re-runs): 25-65 s each on a busy 2-core machine, worth it in every `make test`.
def test_failed_job_does_not_stop_suite_logs_and_resume(tmp_path, root):
    # linear diverges (NaN loss) on purpose; mean is fine
    s = toy_suite(tmp_path, model_overrides={"linear": ["optim.lr=1e30"]})
    out = run_cli(["bench", str(s), "--jobs", "2"], root, plugin=True)
    assert out.returncode == 1, out.stderr[-3000:]
    rows = db_rows(root)
    assert sorted((r["model"], r["seed"], r["status"]) for r in rows) == \
        [("linear", 0, "failed"), ("linear", 1, "failed"), ("mean", 0, "ok"), ("mean", 1, "ok")]
    assert "2 of 4 jobs failed" in out.stderr
    # one compact line per job on the terminal; Lightning's output only in each run's train.log
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("[bench ")]
    assert len(lines) == 4 and "remaining 0" in lines[-1] and "ETA" in lines[0]
    assert "Trainable params" not in out.stderr + out.stdout
    for r in rows:
        text = (Path(r["run_dir"]) / "train.log").read_text()
        assert "cosmobench train toy -m" in text and "Trainable params" in text
    # the leaderboard shows the failed entry
    assert "failed: linear seed 0" in out.stdout and "| 1 | mean | 2 |" in out.stdout
    # resume: ok jobs are skipped, failed ones run again
    out = run_cli(["bench", str(s)], root, plugin=True)
    assert "4 jobs, 2 already done (skipped), 2 to run" in out.stderr
    rows2 = db_rows(root)
    assert len(rows2) == 6 and sum(r["status"] == "ok" for r in rows2) == 2


def test_verify_reproduces_and_detects_a_changed_row(tmp_path, root):
    s = toy_suite(tmp_path)
    assert run_cli(["bench", str(s)], root, plugin=True).returncode == 0
    out = run_cli(["bench", str(s), "--verify"], root, plugin=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "verify: 2 of 2 re-runs reproduce" in out.stdout
    assert out.stderr.count("[verify] same") == 2
    con = sqlite3.connect(root / "results.sqlite")
    (run_id, metrics), = con.execute("SELECT run_id, metrics FROM runs WHERE model='mean' AND seed=0").fetchall()
    m = json.loads(metrics)
    m["mse"] = m["mse"] * (1 + 1e-9)
    con.execute("UPDATE runs SET metrics=? WHERE run_id=?", (json.dumps(m), run_id))
    con.commit()
    con.close()
    out = run_cli(["bench", str(s), "--verify"], root, plugin=True)
    assert out.returncode == 1 and "differs" in out.stderr and "mse" in out.stderr
    assert "verify: 1 of 2" in out.stdout


def test_slurm_array_index_runs_its_job(tmp_path, root):
    s = toy_suite(tmp_path, grid={"data.noise": [0.1, 0.3]})
    out = run_cli(["bench", str(s), "--launcher", "slurm", "--sbatch=--time=00:10:00"], root, plugin=True)
    assert out.returncode == 0, out.stderr
    script = root / "slurm" / "s" / "bench.sbatch"
    manifest = json.loads((root / "slurm" / "s" / "manifest.json").read_text())
    text = script.read_text()
    assert "#SBATCH --array=0-7" in text and "#SBATCH --time=00:10:00" in text and len(manifest["jobs"]) == 8
    assert not (root / "results.sqlite").exists()  # writing the script runs nothing
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "5", "WANDB_MODE": "disabled",
           "PYTHONPATH": str(PLUGIN_SRC)}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    job = manifest["jobs"][5]
    (row,) = db_rows(root)
    assert (row["task"], row["model"], row["seed"], row["config_hash"], row["status"]) == \
        (job["task"], job["model"], job["seed"], job["config_hash"], "ok")
    bad = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": "8"}, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "not a job" in bad.stderr
    # regenerating lists only the jobs without an ok row
    out = run_cli(["bench", str(s), "--launcher", "slurm"], root, plugin=True)
    assert "#SBATCH --array=0-6" in script.read_text()


def test_interrupted_suite_leaves_complete_rows_and_resumes(tmp_path, root):
    body = {"seeds": 4, "overrides": [*FAST, "data.n_train=2048", "trainer.max_epochs=20"],
            "tasks": {"toy": {"models": ["linear"]}}}
    s = suite_file(tmp_path, body)
    env = {**os.environ, "COSMOBENCH_HOME": str(root), "WANDB_MODE": "disabled", "PYTHONPATH": str(PLUGIN_SRC)}
    proc = subprocess.Popen([str(BIN / "cosmobench"), "bench", str(s)], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if any(r["status"] == "ok" for r in db_rows(root)):
                break
        except sqlite3.OperationalError:  # the store is being created
            pass
        time.sleep(0.1)
    time.sleep(0.5)  # into the next job's training
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "run the same command again to resume" in err
    con = sqlite3.connect(root / "results.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    rows = db_rows(root)
    done = {r["seed"] for r in rows if r["status"] == "ok"}
    assert 1 <= len(done) < 4
    for r in rows:  # no half-written row: every ok row has its metrics
        assert r["status"] in ("ok", "failed") and (r["status"] == "failed" or "mse" in r["metrics"])
    out = run_cli(["bench", str(s)], root, plugin=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{len(done)} already done (skipped)" in out.stderr
    ok = [r for r in db_rows(root) if r["status"] == "ok"]
    assert sorted(r["seed"] for r in ok) == [0, 1, 2, 3]  # each seed exactly once


def _writer(root, k, n, barrier):
    from cosmobench.results import RunRow, write_row
    barrier.wait()
    for i in range(n):
        write_row(root, RunRow(run_id=f"w{k}-{i}", task="photoz", model="mdn", seed=i, status="ok",
                               metrics={"mse": k + i / 1000, "n": float(i)}, config_hash=f"h{k}",
                               hardware={"pid": os.getpid()}, start_time=f"{time.time():.6f}"))


def test_eight_processes_writing_one_store_lose_nothing(root):
    from cosmobench.results import read_rows
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(8)
    n = 40
    procs = [ctx.Process(target=_writer, args=(root, k, n, barrier)) for k in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    con = sqlite3.connect(root / "results.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    rows = read_rows(root)
    assert len(rows) == 8 * n and len({r.run_id for r in rows}) == 8 * n
    for r in rows:
        k, i = map(int, r.run_id[1:].split("-"))
        assert r.metrics == {"mse": k + i / 1000, "n": float(i)} and r.config_hash == f"h{k}"
    assert len({r.hardware["pid"] for r in rows}) == 8


# 8 full bench workers on 2 cores: ~80 s, so `make test-slow`; the store itself is proven above.
@pytest.mark.slow
def test_eight_bench_workers_record_every_run(tmp_path, root):
    s = suite_file(tmp_path, {"seeds": 8, "overrides": FAST, "tasks": {"toy": {"models": ["mean"]}}})
    out = run_cli(["bench", str(s), "--jobs", "8"], root, plugin=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = db_rows(root)
    assert sorted(r["seed"] for r in rows if r["status"] == "ok") == list(range(8))


def test_suite_tune_option_gives_every_model_the_same_budget(tmp_path):
    """`tune: {trials: N}`: each model with a search space is tuned (train/val only, in a child
    process) before its seeds run, the seeds run at the best values, the leaderboard marks them
    with the budget; running the suite again reuses the study."""
    from cosmobench import bench, leaderboard
    from cosmobench.errors import ConfigError
    root = tmp_path / "runs"
    tiny = ["logger=none", "plots=false", "data.n_train=300", "data.n_val=100", "data.n_test=100"]
    s = suite_file(tmp_path, {"seeds": 2, "overrides": tiny, "tasks": {"photoz": {"models": ["knn"],
                                                                                 "tune": {"trials": 2}}}})
    with pytest.raises(ConfigError, match="trials"):
        bench.expand(suite_file(tmp_path, {"tasks": {"photoz": {"tune": {"trials": 0}}}}, name="bad.yaml"))
    report = bench.run_suite(s, root=root, log=lambda m: None)
    assert len(report.ok) == 2 and not report.failed
    (summary,) = (root / "tune").glob("*.json")
    doc = json.loads(summary.read_text())
    assert doc["trials"] == 2 and doc["model"] == "knn" and set(doc["best_params"]) == {"model.k", "model.bandwidth"}
    jobs = bench.expand(s, root=root)[1]
    assert all(f"model.k={doc['best_params']['model.k']}" in j.overrides and j.tune["trials"] == 2 for j in jobs)
    md = leaderboard.to_markdown(leaderboard.load(root))
    assert "knn (tuned 2)" in md and "2 trials per model" in md
    again = bench.run_suite(s, root=root, log=lambda m: None)
    assert len(again.skipped) == 2  # the same study, the same tuned configs: nothing to run
