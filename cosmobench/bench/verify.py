"""``cosmobench bench --verify``: re-run stored jobs and compare their metrics exactly.

For each (task, model) of the suite, the first job that has an ``ok`` row is re-run into a
scratch root (``ROOT/verify/<timestamp>``) in a fresh local worker, and every metric is
compared exactly (NaN equals NaN) with the stored row; a difference, a failed re-run or a
(task, model) without any ``ok`` row fails the check (the CLI exits 1).

Timing metrics (:func:`is_timing`: the naming rule ``time_*``, ``*_time``, ``*_seconds``, e.g.
sbi's ``time_per_posterior``) measure the machine, not the model: they are reported apart
(stored, re-run, relative change) and never fail the check.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

from cosmobench.bench.launchers import LocalLauncher, stderr_log
from cosmobench.bench.suites import Job, expand


@dataclass
class VerifyResult:
    job: Job
    status: str  # "same", "differs", "missing" (no stored ok row), "failed" (re-run failed)
    diffs: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    error: str = ""
    timings: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  #: never compared


def is_timing(name: str) -> bool:
    """Whether metric ``name`` is a wall-clock timing (module docstring: the one naming rule)."""
    return name.startswith("time_") or name.endswith(("_time", "_seconds"))


def verify(suite: str | Path | None = None, tasks: list[str] | None = None, seeds: int | None = None,
           overrides: Iterable[str] = (), root: str | Path | None = None, log=None,
           n_jobs: int | None = None) -> list[VerifyResult]:
    """Re-run one stored seed per (task, model) of the suite and compare every metric exactly.

    Each job re-runs with the CPU thread count its stored run recorded (a different count
    may change floating-point reductions); rows without it re-run with the threads of
    ``n_jobs`` workers."""
    from cosmobench.results import default_root, read_rows
    root = default_root(root)
    log = log or stderr_log
    _, jobs = expand(suite, tasks, seeds, overrides, root=root)
    ok_rows = {}
    for r in read_rows(root, status="ok"):
        ok_rows[(r.task, r.model, r.config_hash, r.seed)] = r  # latest ok row per job key
    chosen: dict[tuple[str, str], Job] = {}
    for j in jobs:
        if (j.task, j.model) not in chosen and j.key in ok_rows:
            chosen[(j.task, j.model)] = j
    results: list[VerifyResult] = []
    for j in jobs:  # a (task, model) with no stored ok row cannot be verified: that fails too
        if (j.task, j.model) not in chosen and all((r.job.task, r.job.model) != (j.task, j.model) for r in results):
            results.append(VerifyResult(j, "missing", error="no ok row stored for any of its jobs"))
    scratch = root / "verify" / time.strftime("%Y%m%d-%H%M%S")
    used_jobs = None
    if chosen:
        log(f"[verify] re-running {len(chosen)} job(s) into {scratch}")
        launcher = LocalLauncher(scratch, n_jobs, log)
        used_jobs = launcher.n_jobs

        def on_done(job: Job, res: dict) -> None:
            if res["status"] != "ok":
                results.append(VerifyResult(job, "failed", error=res.get("error", "")))
                return
            stored = ok_rows[job.key].metrics
            new = res["metrics"]
            keys = sorted(set(stored) | set(new))
            diffs = {k: (stored.get(k), new.get(k)) for k in keys if not is_timing(k)
                     and stored.get(k) != new.get(k) and not (_isnan(stored.get(k)) and _isnan(new.get(k)))}
            timings = {k: (stored.get(k), new.get(k)) for k in keys if is_timing(k)}
            results.append(VerifyResult(job, "differs" if diffs else "same", diffs, timings=timings))

        launcher.run([_same_threads(j, ok_rows[j.key]) for j in chosen.values()], on_done)
    for r in results:
        detail = "; ".join(f"{k}: stored {a!r} vs re-run {b!r}" for k, a, b in
                           ((k, *v) for k, v in r.diffs.items()))
        log(f"[verify] {r.status:<8} {r.job.name} {detail or r.error}".rstrip())
        for k, (a, b) in r.timings.items():
            change = f" ({(b - a) / a:+.1%})" if isinstance(a, float) and isinstance(b, float) and a else ""
            log(f"[verify]   timing, not compared: {k} stored {a!r} vs re-run {b!r}{change}")
    if any(r.status == "differs" for r in results):
        log(f"[verify] note: the re-runs used --jobs {used_jobs} and, where the stored row says it, the stored "
            f"run's CPU thread count; a run stored without it (older rows) re-runs with the worker's threads, "
            f"and another thread count may change the last digits")
    return results


def _same_threads(job: Job, row) -> Job:
    """``job`` re-run with the CPU thread count of its stored run (``hardware.torch_threads``;
    ``num_threads`` is a bookkeeping key, so the config hash stays): a different count changes
    the order of floating-point reductions, e.g. the quick suite's morphology/e2cnn stored with
    one worker (2 threads) and re-run with ``--jobs 2`` (1 thread) differed in ece's 4th digit."""
    threads = row.hardware.get("torch_threads")  # absent in rows written before it was recorded
    if not isinstance(threads, int) or threads < 1:
        return job
    return replace(job, overrides=[*job.overrides, f"num_threads={threads}"])


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v
