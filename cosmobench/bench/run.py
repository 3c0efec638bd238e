"""Run a suite locally: tune first where the suite asks for it, skip jobs that have an ``ok``
row, resume interrupted ones, report.

A task with ``tune: {trials: N}`` gets, for each of its models with a declared search space,
one ``cosmobench tune`` study of N trials (train/validation splits only) before its seeds run;
the seeds then run at the study's best values (the same study is reused when the suite runs
again). Tuned jobs are marked in the manifest, and the leaderboard shows their budget.

Re-running a suite skips jobs that already have an ``ok`` row and re-runs failed or missing
ones, so an interrupted suite (Ctrl-C, a killed node) resumes by running the same command
again; a job whose run was interrupted after a checkpoint continues in its own run dir
(``resume=last``). Rows are written in one SQLite transaction each, so an interruption never
leaves a half-written row. The terminal shows one compact line per finished job (done /
failed / remaining, ETA); each run's own output goes to ``RUN_DIR/train.log``.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from cosmobench.bench.launchers import LocalLauncher, stderr_log
from cosmobench.bench.suites import (MANIFEST_DIR, Job, check_root, done_keys, expand, latest_row, resumable,
                                     write_manifest)
from cosmobench.signals import INTERRUPTS


@dataclass
class BenchReport:
    jobs: list[Job]
    skipped: list[Job] = field(default_factory=list)
    ok: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    interrupted: bool = False


class _Progress:
    """One compact line per finished job: done / failed / remaining and an ETA."""

    def __init__(self, total: int):
        self.total = total
        self.done = self.failed = 0
        self.t0 = time.time()

    def line(self, job: Job, res: dict) -> str:
        finished = self.done + self.failed
        remaining = self.total - finished
        elapsed = time.time() - self.t0
        eta = elapsed / finished * remaining if finished else 0.0
        status = res["status"]
        tail = f"  {res.get('error', '')}" if status != "ok" else ""
        cpu = f", cpu {res['cpu_seconds']:.0f} s" if "cpu_seconds" in res else ""
        return (f"[bench {finished}/{self.total}] {status:<6} {job.name} ({res.get('seconds', 0):.0f} s{cpu}) | "
                f"done {self.done}, failed {self.failed}, remaining {remaining}"
                f"{f', ETA {_fmt_secs(eta)}' if remaining else ''}{tail}")


def _fmt_secs(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def run_suite(suite: str | Path | None = None, tasks: list[str] | None = None, seeds: int | None = None,
              overrides: Iterable[str] = (), root: str | Path | None = None, n_jobs: int | None = None,
              rerun: bool = False, log=None) -> BenchReport:
    """Run every job of the suite that has no ``ok`` row yet (all of them with ``rerun``)."""
    from cosmobench.results import default_root
    root = default_root(root)
    log = log or stderr_log
    suite_path, jobs = expand(suite, tasks, seeds, overrides, root=root)  # validated before anything runs
    check_root(root)
    pending = {}
    for j in jobs:  # tune: {trials: N}: every model gets the same budget before its seeds run
        if j.tune.get("pending"):
            pending.setdefault((j.task, j.model, j.tune["study"]), j)
    for (task, model, _), j in pending.items():
        log(f"[bench] tuning {task}/{model}: {j.tune['trials']} trials (train/validation only)")
        _tune_in_subprocess(j, root, n_jobs or 1)
    if pending:
        suite_path, jobs = expand(suite, tasks, seeds, overrides, root=root)
    write_manifest(root / MANIFEST_DIR / f"{suite_path.stem}.json", suite_path, jobs, root)
    done = set() if rerun else done_keys(root)
    report = BenchReport(jobs=jobs)
    todo = []
    for j in jobs:
        (report.skipped if j.key in done else todo).append(j)
    resumed = [j for j in todo if resumable(root, j)]
    for j in resumed:  # an interrupted run continues from its last.ckpt in its own run dir
        j.overrides = [*j.overrides, "resume=last"]
    launcher = LocalLauncher(root, n_jobs, log)
    log(f"[bench] {suite_path.name}: {len(jobs)} jobs, {len(report.skipped)} already done (skipped), "
        f"{len(todo)} to run ({len(resumed)} resuming an interrupted run) on "
        f"{min(launcher.n_jobs, max(1, len(todo)))} worker(s); per-run output in RUN_DIR/train.log")
    progress = _Progress(len(todo))

    def on_done(job: Job, res: dict) -> None:
        run_dir = res.get("run_dir")
        if res["status"] != "ok" and not run_dir:
            row = latest_row(root, job)
            run_dir = row.run_dir if row is not None and row.status == "failed" else None
        _move_log(root, job, run_dir)
        if res["status"] == "ok":
            progress.done += 1
            report.ok.append(job)
            if res.get("config_hash") and res["config_hash"] != job.config_hash:
                log(f"[bench] warning: {job.name} ran with config hash {res['config_hash']}, "
                    f"expected {job.config_hash}")
        else:
            progress.failed += 1
            report.failed.append((job, res.get("error", "")))
        log(progress.line(job, res))

    try:
        if todo:
            launcher.run(todo, on_done)
    except INTERRUPTS:
        report.interrupted = True
        left = len(todo) - len(report.ok) - len(report.failed)
        log(f"[bench] interrupted: {len(report.ok)} done, {len(report.failed)} failed, {left} not finished; "
            f"run the same command again to resume")
        raise
    log(f"[bench] finished in {_fmt_secs(time.time() - progress.t0)}: {len(report.ok)} ok, "
        f"{len(report.failed)} failed, {len(report.skipped)} skipped (already done)")
    return report


def _tune_in_subprocess(job: Job, root: Path, n_jobs: int) -> None:
    """``cosmobench tune`` for the job's model and base config in a child process (as the
    runs themselves, training never happens in the suite process); its ``[tune]`` lines go to
    stderr. Ctrl-C stops the suite (the study resumes next time)."""
    import subprocess
    import sys

    from cosmobench.errors import ConfigError, RunFailure
    proc = subprocess.run([sys.executable, "-m", "cosmobench.cli", *job.tune_argv(root, n_jobs)],
                          stdout=subprocess.DEVNULL)
    if proc.returncode == 130:
        raise KeyboardInterrupt(f"tuning {job.task}/{job.model} interrupted; run the suite again to resume")
    if proc.returncode == 2:
        raise ConfigError(f"tuning {job.task}/{job.model} refused its config (see the line above)")
    if proc.returncode != 0:
        raise RunFailure(f"tuning {job.task}/{job.model} failed (exit {proc.returncode}; see the lines above)")


def _move_log(root: Path, job: Job, run_dir: str | None) -> None:
    """Append the worker's log of the job to ``RUN_DIR/train.log`` (a resume appends)."""
    log = job.log_path(root)
    if run_dir and log.is_file() and Path(run_dir).is_dir():
        with open(Path(run_dir) / "train.log", "ab") as dst, open(log, "rb") as src:
            shutil.copyfileobj(src, dst)
        log.unlink()
