"""A local bench worker process: ``python -m cosmobench.bench.worker`` (started by
:class:`cosmobench.bench.launchers.LocalLauncher`, not by users).

Protocol: one JSON job per line on stdin (a :class:`~cosmobench.bench.suites.Job` as a dict
plus ``root``, ``log`` and ``argv``), one JSON result per line on the original stdout:
``{"index", "status": "ok"|"failed"|"error", "run_dir", "metrics", "config_hash", "error",
"seconds", "cpu_seconds"}``. ``--manifest FILE --index I`` runs job I of a SLURM manifest
instead (:func:`slurm_job`). While a job runs, stdout and stderr (Lightning's model
summary, progress bars, warnings, a traceback) go to the job's log file. The worker runs
each job through :func:`cosmobench.runner.train`, which re-seeds everything and resets the
thread count, so a run's metrics do not depend on the jobs before it in the same worker.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shlex
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def main() -> int:
    """Read jobs from stdin until it closes; 130 on Ctrl-C, 143 on SIGTERM (a scheduler signals
    every process of the job, workers included): the running job's run is then marked
    interrupted and stays resumable (:mod:`cosmobench.signals`), no result line is written."""
    from cosmobench.signals import INTERRUPTS, handle_sigterm, interrupt_code
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell may have ignored it
    handle_sigterm()  # without it SIGTERM killed the worker at once, or Lightning only logged it during a fit
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    saved_err = os.dup(2)
    try:
        for line in sys.stdin:
            job = json.loads(line)
            proto.write(json.dumps(run_job(job, saved_err, devnull)) + "\n")
    except INTERRUPTS as exc:  # runner.RunInterrupted carries the code (130 or 143)
        return interrupt_code(exc)
    return 0


def run_job(job: dict, saved_err: int, devnull: int) -> dict:
    """Run one job with stdout/stderr redirected to its log; the result line's fields."""
    from cosmobench import config as C
    from cosmobench.errors import CosmobenchError, RunFailure
    from cosmobench.runner import train

    log = Path(job["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    t0, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    out: dict[str, Any] = {"index": job["index"]}
    try:
        print(f"$ cosmobench {shlex.join(job['argv'])}", flush=True)
        res = train(job["task"], job["model"], overrides=job["overrides"], config_file=job["config"],
                    root=job["root"])
        out.update(status="ok", run_dir=str(res.run_dir), metrics=res.metrics,
                   config_hash=C.config_hash(res.config, C.BOOKKEEPING_KEYS))
    except RunFailure as exc:
        out.update(status="failed", error=str(exc))
    except CosmobenchError as exc:  # bad input found only when loading the data
        out.update(status="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - reported as a failed job, traceback kept in the log
        traceback.print_exc()
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(devnull, 1)
        os.dup2(saved_err, 2)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out["seconds"] = round(time.time() - t0, 2)
    out["cpu_seconds"] = round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2)
    return out


def slurm_job(manifest: str, index: str) -> int:
    """Run job ``index`` of a SLURM ``manifest.json`` (:func:`cosmobench.bench.launchers.write_slurm`)
    as ``cosmobench train ...``: the job's arguments are read here as data, never from the script."""
    from cosmobench.bench.suites import Job
    from cosmobench.cli import main as cli_main

    try:
        jobs = json.loads(Path(manifest).read_text())["jobs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cosmobench: error: cannot read the suite manifest {manifest}: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    if not re.fullmatch(r"[0-9]{1,9}", index) or int(index) >= len(jobs):
        print(f"cosmobench: array index {index[:40]!r} is not a job of this suite (0-{len(jobs) - 1})", file=sys.stderr)
        return 2
    try:
        job = Job(**jobs[int(index)])
    except TypeError as exc:
        print(f"cosmobench: error: job {index} of {manifest} is not a job: {exc}", file=sys.stderr)
        return 2
    print(f"$ cosmobench {shlex.join(job.argv())}", flush=True)
    return cli_main(job.argv())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--manifest" and sys.argv[3] == "--index":
        sys.exit(slurm_job(sys.argv[2], sys.argv[4]))
    sys.exit(main())
