"""bench --verify without training: the launcher and the store replaced by fakes, so the
comparison and its messages are checked in milliseconds (the real re-runs: test_bench.py)."""
from __future__ import annotations

import importlib
from types import SimpleNamespace

V = importlib.import_module("cosmobench.bench.verify")  # the module (the package exports the function)


def _fake(monkeypatch, stored: dict, rerun: dict, hardware: dict | None = None) -> list:
    from cosmobench.bench.suites import Job
    job = Job(0, "toy", "linear", 0, None, ["logger=none"], "h")
    monkeypatch.setattr(V, "expand", lambda *a, **kw: (None, [job]))
    monkeypatch.setattr("cosmobench.results.read_rows", lambda root, **kw: [
        SimpleNamespace(task="toy", model="linear", config_hash="h", seed=0, metrics=stored,
                        hardware=hardware or {})])
    ran = []

    class Launcher:
        def __init__(self, root, n_jobs, log):
            self.n_jobs = n_jobs or 1

        def run(self, jobs, on_done):
            for j in jobs:
                ran.append(j)
                on_done(j, {"status": "ok", "metrics": rerun})
    monkeypatch.setattr(V, "LocalLauncher", Launcher)
    return ran


def test_a_difference_fails_names_the_metric_and_the_thread_caveat(monkeypatch, tmp_path):
    _fake(monkeypatch, {"mse": 0.5, "fit_seconds": 3.0, "nan": float("nan")},
          {"mse": 0.5000001, "fit_seconds": 4.0, "nan": float("nan")})
    lines: list[str] = []
    (r,) = V.verify("s.yaml", root=tmp_path, log=lines.append, n_jobs=2)
    assert r.status == "differs" and set(r.diffs) == {"mse"} and r.timings == {"fit_seconds": (3.0, 4.0)}
    assert any("timing, not compared: fit_seconds" in ln and "+33.3%" in ln for ln in lines)
    assert any(ln.startswith("[verify] note: the re-runs used --jobs 2") for ln in lines)


def test_only_timings_differ_is_the_same_and_no_note(monkeypatch, tmp_path):
    _fake(monkeypatch, {"mse": 0.5, "time_per_posterior": 0.1}, {"mse": 0.5, "time_per_posterior": 0.2})
    lines: list[str] = []
    (r,) = V.verify("s.yaml", root=tmp_path, log=lines.append)
    assert r.status == "same" and not any("note:" in ln for ln in lines)


def test_the_rerun_uses_the_stored_runs_thread_count(monkeypatch, tmp_path):
    ran = _fake(monkeypatch, {"mse": 0.5}, {"mse": 0.5}, hardware={"torch_threads": 3})
    (r,) = V.verify("s.yaml", root=tmp_path, log=lambda m: None, n_jobs=2)
    assert r.status == "same" and ran[0].overrides == ["logger=none", "num_threads=3"]
    ran = _fake(monkeypatch, {"mse": 0.5}, {"mse": 0.5}, hardware={})  # a row from before it was recorded
    V.verify("s.yaml", root=tmp_path, log=lambda m: None, n_jobs=2)
    assert ran[0].overrides == ["logger=none"]
