"""Where the jobs of a suite run: local worker processes, or a SLURM job array.

*Local* (:class:`LocalLauncher`, ``--launcher local``, the default): ``--jobs N``
long-lived worker processes (:mod:`cosmobench.bench.worker`; default one per GPU when GPUs
are visible, each pinned with ``CUDA_VISIBLE_DEVICES``, else 1; without GPUs the CPU cores
are shared out through ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``). A worker imports torch and
Lightning once and then runs job after job through :func:`cosmobench.runner.train`, instead
of paying Python + torch + Lightning start-up for every job in its own ``cosmobench train``
process. It still isolates the suite process from the runs: a crashing run kills its
worker, which is replaced, and the job is reported failed. SIGTERM (a scheduler or
``timeout``) stops the suite like Ctrl-C, with exit 143, and is passed on to workers that do
not stop by themselves.

*SLURM* (:func:`write_slurm`, ``--launcher slurm``): writes ``bench.sbatch`` (a job array, one
index per job not yet done; index i runs ``python -m cosmobench.bench.worker --manifest
manifest.json --index i``, which reads the i-th job's ``cosmobench train`` arguments from the
manifest, so no value of a suite or config is ever part of the script) and
``manifest.json`` into ``--out DIR`` (default ``ROOT/slurm/<suite>``). No extra service is
needed; re-generating the script after a partial run lists only the jobs still missing. A
suite with ``tune: {trials: N}`` whose studies have no result yet gets ``tune.sbatch`` first
(one index per study, :mod:`cosmobench.bench.tune_job`); the same command then writes
``bench.sbatch`` at the tuned values.
"""
from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from cosmobench.bench.suites import MANIFEST_DIR, Job, check_root, done_keys, expand, write_manifest
from cosmobench.errors import ConfigError
from cosmobench.io import atomic_path
from cosmobench.signals import Terminated


def stderr_log(msg: str) -> None:
    """The default progress log of the suite commands: one line on stderr."""
    print(msg, file=sys.stderr, flush=True)


# --- local worker processes ------------------------------------------------------------
@dataclass
class _Worker:
    proc: subprocess.Popen
    slot: int
    job: Job | None = None
    started: float = 0.0


def _gpu_ids() -> list[str]:
    """Visible GPUs without importing torch: CUDA_VISIBLE_DEVICES, else ``nvidia-smi -L``."""
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        return [g for g in vis.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [str(i) for i, ln in enumerate(out.splitlines()) if ln.startswith("GPU ")]
    return []


class LocalLauncher:
    """Run jobs on ``n_jobs`` worker processes (see the module docstring)."""

    def __init__(self, root: Path, n_jobs: int | None = None, log=None):
        self.root = root
        self.gpus = _gpu_ids()
        self.n_jobs = n_jobs or max(1, len(self.gpus))
        if self.n_jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.n_jobs}")
        self.log = log or stderr_log
        self.workers: list[_Worker] = []
        self.sel = selectors.DefaultSelector()
        self._signal = signal.SIGINT  # what close() sends workers that do not stop by themselves

    def _spawn(self, slot: int) -> _Worker:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        elif self.n_jobs > 1:  # share the CPU cores between workers
            n = str(max(1, (os.cpu_count() or 1) // self.n_jobs))
            env.setdefault("OMP_NUM_THREADS", n)
            env.setdefault("MKL_NUM_THREADS", n)
        proc = subprocess.Popen([sys.executable, "-m", "cosmobench.bench.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        w = _Worker(proc, slot)
        self.sel.register(proc.stdout, selectors.EVENT_READ, w)
        return w

    def _submit(self, w: _Worker, job: Job) -> None:
        w.job, w.started = job, time.time()
        msg = {**asdict(job), "root": str(self.root), "log": str(job.log_path(self.root)), "argv": job.argv()}
        w.proc.stdin.write(json.dumps(msg) + "\n")
        w.proc.stdin.flush()

    def run(self, jobs: list[Job], on_done) -> None:
        """Run ``jobs``; ``on_done(job, result_dict)`` is called in the parent as each ends
        (the result line of :mod:`cosmobench.bench.worker`)."""
        pending = list(jobs)

        def on_term(signum, frame):
            self._signal = signal.SIGTERM  # passed on to the workers by close(); the CLI exits 143
            raise Terminated("suite terminated (SIGTERM)")

        old = signal.signal(signal.SIGTERM, on_term)
        try:
            for slot in range(min(self.n_jobs, len(pending))):
                w = self._spawn(slot)
                self.workers.append(w)
                self._submit(w, pending.pop(0))
            while any(w.job for w in self.workers):
                for key, _ in self.sel.select(timeout=1.0):
                    w: _Worker = key.data
                    line = w.proc.stdout.readline()
                    job = w.job
                    if not line:  # the worker died (segfault, OOM killer ...): report, replace
                        self.sel.unregister(w.proc.stdout)
                        code = w.proc.wait()
                        self.workers.remove(w)
                        if job is not None:
                            on_done(job, {"status": "failed", "error": f"worker process died (exit code {code})",
                                          "seconds": round(time.time() - w.started, 2)})
                        if pending:
                            nw = self._spawn(w.slot)
                            self.workers.append(nw)
                            self._submit(nw, pending.pop(0))
                        continue
                    w.job = None
                    on_done(job, json.loads(line))
                    if pending:
                        self._submit(w, pending.pop(0))
        finally:
            signal.signal(signal.SIGTERM, old)
            self.close()

    def close(self) -> None:
        for w in self.workers:
            try:
                w.proc.stdin.close()
            except OSError:
                pass
        deadline = time.time() + 5  # a Ctrl-C reaches the whole process group: workers stop by themselves
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                w.proc.send_signal(self._signal)  # only the suite process was signalled
        for w in self.workers:
            try:
                w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        self.workers = []


# --- SLURM -----------------------------------------------------------------------------
def write_slurm(suite: str | Path | None = None, tasks: list[str] | None = None, seeds: int | None = None,
                overrides: Iterable[str] = (), root: str | Path | None = None, out: str | Path | None = None,
                sbatch_options: Iterable[str] = (), rerun: bool = False, log=None) -> tuple[Path, Path, list[Job]]:
    """Write ``bench.sbatch`` (job array: index i runs the i-th job of ``manifest.json``) and the
    manifest. Jobs with an ``ok`` row are left out unless ``rerun``. Returns (script, manifest, jobs).

    A suite with ``tune: {trials: N}`` whose studies have no result yet in ``root`` gets
    ``tune.sbatch`` instead (index i runs the i-th study of ``tune_manifest.json`` through
    ``cosmobench tune``; submitting it again adds workers to the same studies, the budget stays
    N): the seeds' configs depend on the tuned values, so ``bench.sbatch`` is written by the
    same command once the tuning has finished. Returns (tune script, tune manifest, one job per
    study) then."""
    from cosmobench.results import default_root
    root = default_root(root).resolve()
    log = log or stderr_log
    suite_path, jobs = expand(suite, tasks, seeds, overrides, root=root)
    check_root(root)
    done = set() if rerun else done_keys(root)
    todo = [j for j in jobs if j.key not in done]
    studies: dict[str, Job] = {}
    for j in jobs:
        if j.tune.get("pending"):
            studies.setdefault(j.tune["study"], j)
    safe_stem = re.sub(r"[^A-Za-z0-9._-]", "_", suite_path.stem).strip(".") or "suite"
    out = Path(out) if out else root / "slurm" / safe_stem
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is not a directory")
    logs = _sbatch_path(out / "logs", "--out")  # checked before anything is written
    options = [_sbatch_option(o) for o in sbatch_options]
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    if studies:
        manifest = out / "tune_manifest.json"
        body = {"suite": str(suite_path), "root": str(root),
                "studies": [{"task": j.task, "model": j.model, "study": name, "trials": j.tune["trials"],
                             "argv": j.tune_argv(root)} for name, j in studies.items()]}
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(body, indent=1) + "\n")
        script = _write_sbatch(out / "tune.sbatch", f"{safe_stem}-tune", len(studies), logs, options, root,
                               f"-m cosmobench.bench.tune_job --manifest {shlex.quote(str(manifest.resolve()))}",
                               f"# cosmobench suite {safe_stem}: tuning of {len(studies)} model(s) "
                               f"(tune: {{trials: N}}) before its seeds run")
        log(f"[bench] {len(studies)} model(s) of {suite_path.name} are tuned before their seeds run: submit "
            f"{script}; when it has finished, run this command again to write bench.sbatch with the tuned values")
        return script, manifest, list(studies.values())
    write_manifest(root / MANIFEST_DIR / f"{suite_path.stem}.json", suite_path, jobs, root)
    manifest = out / "manifest.json"
    write_manifest(manifest, suite_path, todo, root)
    script = _write_sbatch(out / "bench.sbatch", safe_stem, len(todo), logs, options, root,
                           f"-m cosmobench.bench.worker --manifest {shlex.quote(str(manifest.resolve()))}",
                           f"# cosmobench suite {safe_stem}: {len(todo)} jobs (of {len(jobs)}; "
                           f"the rest already have ok rows)")
    return script, manifest, todo


def _write_sbatch(script: Path, name: str, n: int, logs: str, options: list[str], root: Path, command: str,
                  comment: str) -> Path:
    """A job-array script whose index i runs ``python COMMAND --index i``."""
    py = shlex.quote(sys.executable)
    # Nothing read from the suite, a config or a file name is written into the script as code:
    # index i's command line is read from the manifest at run time (inert data); the only
    # values written are shell-quoted paths and #SBATCH lines checked to be one safe line.
    lines = ["#!/bin/bash", comment,
             f"# submit: sbatch {script.name} (index i runs the i-th entry of its manifest)",
             f"#SBATCH --job-name=cosmobench-{name[:64]}",
             f"#SBATCH --array=0-{max(0, n - 1)}",
             f"#SBATCH --output={logs}/%A_%a.log",
             "#SBATCH --ntasks=1",
             *(f"#SBATCH {o}" for o in options),
             "set -euo pipefail",
             f"export COSMOBENCH_HOME={shlex.quote(str(root))}",
             "export WANDB_MODE=${WANDB_MODE:-offline}",
             f"exec {py} {command} "
             '--index "${SLURM_ARRAY_TASK_ID:?this script is a SLURM job array (sbatch), or set SLURM_ARRAY_TASK_ID}"',
             ""]
    with atomic_path(script) as tmp:
        tmp.write_text("\n".join(lines))
        os.chmod(tmp, 0o755)
    return script


_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+-]+")
_SAFE_OPTION = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9._:/,+%@=-]*)?")


def _sbatch_path(path: Path, what: str) -> str:
    """A path for an ``#SBATCH`` line (read by sbatch, which does not quote): safe characters only."""
    text = str(path.resolve())
    if not _SAFE_PATH.fullmatch(text):
        raise ConfigError(f"{what} {text!r}: the SLURM log folder may hold only letters, digits and ._/+- "
                          f"(it is written into an #SBATCH line)")
    return text


def _sbatch_option(option: str) -> str:
    """An ``--sbatch`` option: one ``--name[=value]`` of safe characters (it becomes an #SBATCH line)."""
    if not isinstance(option, str) or not _SAFE_OPTION.fullmatch(option):
        raise ConfigError(f"--sbatch {option!r}: give one option --name=value of letters, digits and "
                          f"._:/,+%@=- (it is written into an #SBATCH line)")
    return option
