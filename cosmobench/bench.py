"""Benchmark suites: expand a suite file into jobs, run them (locally or on SLURM), resume, verify.

A *suite* (``experiments/suites/*.yaml``) lists tasks x models x seeds and optional
override grids::

    description: ...
    seeds: 3                          # number of seeds (0..N-1) or a list of seeds
    overrides: [logger=none]          # for every job
    grid: {}                          # override grid for every task (see below)
    tasks:
      photoz:
        models: [mdn, knn]            # default: the task's bench models (registry default_models)
        config: photoz/big.yaml       # optional layer (below experiments/, or beside the suite file)
        overrides: [data.n_train=10000]
        model_overrides: {mdn: [trainer.max_epochs=8]}
        seeds: 5                      # optional, overrides the suite's seeds for this task
        grid:                         # cartesian product; one job per grid point x model x seed
          data.n_train: [500, 2000, 10000]

Every job is exactly one training run, ``cosmobench train TASK -m MODEL [-c LAYER]
OVERRIDES... seed=S``, recorded as one row of the results store. All jobs' configs are
resolved and validated before the first job starts (a bad suite or grid value is a
:class:`~cosmobench.errors.ConfigError`: exit 2, nothing run).

*Identity and resume.* A job is identified by (task, model, experiment hash, seed), where
the experiment hash is ``config_hash(cfg, BOOKKEEPING_KEYS)`` — the same hash the runner
stores in every row. Re-running a suite skips jobs that already have an ``ok`` row and
re-runs failed or missing ones, so an interrupted suite (Ctrl-C, a killed node) resumes
by running the same command again. Rows are written in one SQLite transaction each, so an
interruption never leaves a half-written row.

*Local launcher* (``--launcher local``, default). ``--jobs N`` long-lived worker processes
(default: one per GPU when GPUs are visible, each pinned with ``CUDA_VISIBLE_DEVICES``;
else 1). Each worker imports torch/Lightning once and then calls
:func:`cosmobench.runner.train` — the function behind ``cosmobench train`` — once per
job, with that job's layers and overrides. Why workers and not one ``cosmobench train``
subprocess per job: starting Python + torch + Lightning costs about 5 s per process on
this 2-core machine, which would be a third of the quick suite's budget; a worker still
isolates the suite process from the runs (a crashing run kills its worker, which is
replaced, and the job is reported failed). The runner re-seeds everything and resets the
thread count per run, so a run's metrics do not depend on what ran before it in the same
worker (``--verify`` checks exactly that). While a job runs, the worker's stdout/stderr
(Lightning's model summary, progress bars, warnings) go to ``RUN_DIR/train.log``; the
terminal shows one compact line per finished job with done / failed / remaining and an ETA.

*SLURM launcher* (``--launcher slurm``): writes ``bench.sbatch`` (a job array, one index per
job not yet done, each running one ``cosmobench train ...`` command) and ``manifest.json``
into ``--out DIR`` (default ``ROOT/slurm/<suite>``) and prints the ``sbatch`` command. No
extra service is needed; re-generating the script after a partial run lists only the jobs
still missing.

*Verify* (``--verify``): for each (task, model) of the suite, the first job that has an
``ok`` row is re-run into a scratch root (``ROOT/verify/<timestamp>``) in a fresh worker
and every metric is compared exactly with the stored row; any difference fails (exit 1).
"""
from __future__ import annotations

import itertools
import json
import os
import selectors
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cosmobench import config as C
from cosmobench.errors import ConfigError

SUITE_KEYS = ("description", "seeds", "overrides", "grid", "tasks")
TASK_KEYS = ("models", "config", "overrides", "model_overrides", "seeds", "grid")
MANIFEST_DIR = "suites"  # ROOT/suites/<suite>.json: the jobs of the latest run of each suite


@dataclass
class Job:
    """One run of a suite: ``cosmobench train task -m model [-c config] *overrides``."""

    index: int
    task: str
    model: str
    seed: int
    config: str | None
    overrides: list[str]
    config_hash: str
    grid: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        point = " ".join(f"{k}={_fmt_value(v)}" for k, v in self.grid.items())
        return f"{self.task}/{self.model}{' ' + point if point else ''} seed={self.seed}"

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.task, self.model, self.config_hash, self.seed)

    def argv(self) -> list[str]:
        """Arguments of the equivalent ``cosmobench train`` command."""
        return ["train", self.task, "-m", self.model, *(["-c", self.config] if self.config else []),
                *self.overrides]


def _fmt_value(v: Any) -> str:
    """A YAML value as the right-hand side of a ``key=value`` override."""
    if isinstance(v, str):
        return v
    return json.dumps(v)


# --- suite files -----------------------------------------------------------------------
def default_suite() -> Path:
    return C.experiments_dir() / "suites" / "quick.yaml"


def _seed_list(value: Any, where: str) -> list[int]:
    if isinstance(value, bool) or not isinstance(value, (int, list)):
        raise ConfigError(f"{where}: seeds must be a number of seeds or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: seeds must be >= 1, got {value}")
        return list(range(value))
    if not value or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value):
        raise ConfigError(f"{where}: seeds must be a non-empty list of non-negative integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: seeds {value!r} repeat a seed")
    return list(value)


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or any(not isinstance(v, str) or "=" not in v for v in value):
        raise ConfigError(f"{where}: expected a list of KEY=VALUE strings, got {value!r}")
    return list(value)


def _grid(value: Any, where: str) -> dict[str, list]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: grid must map config keys to lists of values, got {value!r}")
    out = {}
    for k, vals in value.items():
        if not isinstance(k, str) or not k or any(not p for p in k.split(".")):
            raise ConfigError(f"{where}: grid key {k!r} is not a dotted config key")
        if k in ("seed", "task", "model.name"):
            raise ConfigError(f"{where}: grid key {k!r} is not allowed (use seeds / models)")
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"{where}: grid {k} must be a non-empty list of values, got {vals!r}")
        if any(isinstance(v, dict) for v in vals):
            raise ConfigError(f"{where}: grid {k} values must be scalars or lists, got {vals!r}")
        if len({json.dumps(v, sort_keys=True) for v in vals}) != len(vals):
            raise ConfigError(f"{where}: grid {k} repeats a value: {vals!r}")
        out[k] = vals
    return out


def load_suite(suite: str | Path | None = None) -> tuple[Path, dict]:
    path = Path(suite) if suite else default_suite()
    doc = C.load_yaml(path)
    unknown = set(doc) - set(SUITE_KEYS)
    if unknown:
        raise ConfigError(f"suite {path}: unknown keys {sorted(unknown)}; valid: {', '.join(SUITE_KEYS)}")
    if not isinstance(doc.get("tasks") or {}, dict):
        raise ConfigError(f"suite {path}: 'tasks' must map task names to entries")
    return path, doc


def expand(suite: str | Path | None = None, tasks: list[str] | None = None, seeds: int | None = None,
           overrides: Iterable[str] = ()) -> tuple[Path, list[Job]]:
    """Resolve every job of a suite (default ``experiments/suites/quick.yaml``); validates
    every config before returning, so that a bad suite fails before any job runs."""
    from cosmobench.registry import get_task

    path, doc = load_suite(suite)
    overrides = list(overrides)
    _str_list(overrides, "command line")
    suite_ov = _str_list(doc.get("overrides"), f"suite {path}: overrides")
    suite_grid = _grid(doc.get("grid"), f"suite {path}")
    suite_tasks = doc.get("tasks") or {}
    if tasks:
        suite_tasks = {t: suite_tasks.get(t) or {} for t in tasks}
    if not suite_tasks:
        raise ConfigError(f"suite {path} lists no tasks")
    if seeds is not None:
        seeds_cli = _seed_list(seeds, "--seeds")
    jobs: list[Job] = []
    seen: dict[tuple, str] = {}
    for t, entry in suite_tasks.items():
        where = f"suite {path}: task {t!r}"
        entry = entry or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping, got {entry!r}")
        spec = get_task(t)
        bad = set(entry) - set(TASK_KEYS)
        if bad:
            raise ConfigError(f"{where} has unknown keys {sorted(bad)}; valid: {', '.join(TASK_KEYS)}")
        models = entry.get("models") or spec.bench_models()
        if not isinstance(models, list) or any(m not in spec.models for m in models):
            raise ConfigError(f"{where}: models {models!r} must be a list of {', '.join(spec.models)}")
        model_ov = entry.get("model_overrides") or {}
        if not isinstance(model_ov, dict) or set(model_ov) - set(spec.models):
            raise ConfigError(f"{where}: model_overrides must map model names ({', '.join(spec.models)}) "
                              f"to KEY=VALUE lists, got {model_ov!r}")
        layer = entry.get("config")
        if layer is not None:  # relative to the experiments folder, else to the suite file
            if not isinstance(layer, str):
                raise ConfigError(f"{where}: config must be a file name, got {layer!r}")
            cand = [C.experiments_dir() / layer, path.parent / layer, Path(layer)]
            found = next((p for p in cand if p.is_file()), None)
            if found is None:
                raise ConfigError(f"{where}: config layer {layer!r} not found below experiments/ or beside the suite")
            layer = str(found.resolve())
        task_seeds = seeds_cli if seeds is not None else _seed_list(entry.get("seeds", doc.get("seeds", 1)),
                                                                    f"{where}: seeds")
        grid = {**suite_grid, **_grid(entry.get("grid"), where)}
        points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] or [{}]
        for m in models:
            for point in points:
                for s in task_seeds:
                    ov = [*suite_ov, *_str_list(entry.get("overrides"), f"{where}: overrides"),
                          *_str_list(model_ov.get(m), f"{where}: model_overrides.{m}"),
                          *(f"{k}={_fmt_value(v)}" for k, v in point.items()), *overrides, f"seed={s}"]
                    try:
                        cfg = C.resolve(t, m, config_file=layer, overrides=ov)
                    except ConfigError as exc:
                        raise ConfigError(f"{where}, model {m!r}"
                                          f"{', grid ' + json.dumps(point) if point else ''}: {exc}") from None
                    for k, v in point.items():  # a grid value the config layers then overwrite is a mistake
                        if _get(cfg, k) != C.parse_value(_fmt_value(v)) and _get(cfg, k) != v:
                            raise ConfigError(f"{where}: grid {k}={v!r} is overridden to {_get(cfg, k)!r} "
                                              f"by a later override")
                    job = Job(len(jobs), t, m, s, layer, ov, C.config_hash(cfg, C.BOOKKEEPING_KEYS), point)
                    if job.key in seen:
                        raise ConfigError(f"{where}: jobs {seen[job.key]!r} and {job.name!r} are the same run")
                    seen[job.key] = job.name
                    jobs.append(job)
    return path, jobs


def _get(cfg: dict, dotted: str) -> Any:
    node: Any = cfg
    for p in dotted.split("."):
        node = node.get(p) if isinstance(node, dict) else None
    return node


def write_manifest(path: Path, suite_path: Path, jobs: list[Job], root: Path) -> None:
    """Atomically write the suite's job list (read by the leaderboard for learning curves)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"suite": str(suite_path), "name": suite_path.stem, "root": str(root.resolve()),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "grid_keys": sorted({k for j in jobs for k in j.grid}), "jobs": [asdict(j) for j in jobs]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    os.replace(tmp, path)


def read_manifests(root: str | Path) -> list[dict]:
    out = []
    for p in sorted(Path(root, MANIFEST_DIR).glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue  # a manifest is a convenience for plots; a broken one is ignored
    return out


# --- resume ----------------------------------------------------------------------------
def done_keys(root: Path) -> set[tuple[str, str, str, int]]:
    """(task, model, config_hash, seed) of every ``ok`` row in the store."""
    from cosmobench.results import read_rows
    return {(r.task, r.model, r.config_hash, r.seed) for r in read_rows(root, status="ok")}


def _latest_row(root: Path, job: Job):
    from cosmobench.results import read_rows
    rows = [r for r in read_rows(root, task=job.task) if (r.task, r.model, r.config_hash, r.seed) == job.key]
    return rows[-1] if rows else None


# --- worker process (python -m cosmobench.bench --worker) ------------------------------
def _worker_main() -> int:
    """Read one JSON job per line on stdin, run it, answer one JSON line on the original stdout."""
    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell may have ignored it
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    saved_err = os.dup(2)
    try:
        for line in sys.stdin:
            job = json.loads(line)
            proto.write(json.dumps(_run_job_here(job, saved_err, devnull)) + "\n")
    except KeyboardInterrupt:
        return 130
    return 0


def _run_job_here(job: dict, saved_err: int, devnull: int) -> dict:
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
    import resource
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
        import traceback
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
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.workers: list[_Worker] = []
        self.sel = selectors.DefaultSelector()

    def _spawn(self, slot: int) -> _Worker:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        elif self.n_jobs > 1:  # share the CPU cores between workers
            n = str(max(1, (os.cpu_count() or 1) // self.n_jobs))
            env.setdefault("OMP_NUM_THREADS", n)
            env.setdefault("MKL_NUM_THREADS", n)
        proc = subprocess.Popen([sys.executable, "-m", "cosmobench.bench", "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        w = _Worker(proc, slot)
        self.sel.register(proc.stdout, selectors.EVENT_READ, w)
        return w

    def _submit(self, w: _Worker, job: Job) -> None:
        w.job, w.started = job, time.time()
        log = self.root / "bench" / "logs" / f"{job.task}-{job.model}-{job.config_hash[:8]}-s{job.seed}.log"
        msg = {**asdict(job), "root": str(self.root), "log": str(log), "argv": job.argv()}
        w.proc.stdin.write(json.dumps(msg) + "\n")
        w.proc.stdin.flush()

    def run(self, jobs: list[Job], on_done) -> None:
        """Run ``jobs``; ``on_done(job, result_dict)`` is called in the parent as each ends.
        SIGTERM (a scheduler or ``timeout`` stopping the suite) is handled like Ctrl-C."""
        import signal
        pending = list(jobs)

        def on_term(signum, frame):
            raise KeyboardInterrupt

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
        import signal
        deadline = time.time() + 5  # a Ctrl-C reaches the whole process group: workers stop by themselves
        for w in self.workers:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                w.proc.send_signal(signal.SIGINT)  # only the suite process was signalled
        for w in self.workers:
            try:
                w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        self.workers = []


# --- the suite -------------------------------------------------------------------------
@dataclass
class BenchReport:
    jobs: list[Job]
    skipped: list[Job] = field(default_factory=list)
    ok: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    interrupted: bool = False


class _Progress:
    """One compact line per finished job: done / failed / remaining and an ETA."""

    def __init__(self, total: int, n_workers: int, skipped: int):
        self.total, self.n_workers, self.skipped = total, n_workers, skipped
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
    from cosmobench.runner import default_root
    root = default_root(root)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    suite_path, jobs = expand(suite, tasks, seeds, overrides)  # validated before anything runs
    _check_root(root)
    write_manifest(root / MANIFEST_DIR / f"{suite_path.stem}.json", suite_path, jobs, root)
    done = set() if rerun else done_keys(root)
    report = BenchReport(jobs=jobs)
    todo = []
    for j in jobs:
        (report.skipped if j.key in done else todo).append(j)
    resumed = [j for j in todo if _resumable(root, j)]
    for j in resumed:  # an interrupted run continues from its last.ckpt in its own run dir
        j.overrides = [*j.overrides, "resume=last"]
    launcher = LocalLauncher(root, n_jobs, log)
    log(f"[bench] {suite_path.name}: {len(jobs)} jobs, {len(report.skipped)} already done (skipped), "
        f"{len(todo)} to run ({len(resumed)} resuming an interrupted run) on "
        f"{min(launcher.n_jobs, max(1, len(todo)))} worker(s); per-run output in RUN_DIR/train.log")
    progress = _Progress(len(todo), launcher.n_jobs, len(report.skipped))

    def on_done(job: Job, res: dict) -> None:
        run_dir = res.get("run_dir")
        if res["status"] != "ok" and not run_dir:
            row = _latest_row(root, job)
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
    except KeyboardInterrupt:
        report.interrupted = True
        left = len(todo) - len(report.ok) - len(report.failed)
        log(f"[bench] interrupted: {len(report.ok)} done, {len(report.failed)} failed, {left} not finished; "
            f"run the same command again to resume")
        raise
    log(f"[bench] finished in {_fmt_secs(time.time() - progress.t0)}: {len(report.ok)} ok, "
        f"{len(report.failed)} failed, {len(report.skipped)} skipped (already done)")
    return report


def _resumable(root: Path, job: Job) -> bool:
    """Whether an interrupted run of exactly this job (``last.ckpt``, neither ``metrics.json``
    nor ``failed.txt``) can be continued with ``resume=last`` (the runner's own criterion)."""
    base = root / job.task / job.model
    if not base.is_dir():
        return False
    want = C.config_hash(C.resolve(job.task, job.model, job.config, job.overrides))
    for d in base.glob("*/"):
        if (d / "checkpoints" / "last.ckpt").is_file() and not (d / "metrics.json").exists() \
                and not (d / "failed.txt").exists() and (d / "config.yaml").is_file():
            try:
                if C.config_hash(C.load_yaml(d / "config.yaml")) == want:
                    return True
            except ConfigError:
                continue
    return False


def _check_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory")


def _move_log(root: Path, job: Job, run_dir: str | None) -> None:
    log = root / "bench" / "logs" / f"{job.task}-{job.model}-{job.config_hash[:8]}-s{job.seed}.log"
    if run_dir and log.is_file() and Path(run_dir).is_dir():
        with open(Path(run_dir) / "train.log", "ab") as dst, open(log, "rb") as src:  # a resume appends
            shutil.copyfileobj(src, dst)
        log.unlink()


# --- verify ----------------------------------------------------------------------------
@dataclass
class VerifyResult:
    job: Job
    status: str  # "same", "differs", "missing" (no stored ok row), "failed" (re-run failed)
    diffs: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    error: str = ""


def verify(suite: str | Path | None = None, tasks: list[str] | None = None, seeds: int | None = None,
           overrides: Iterable[str] = (), root: str | Path | None = None, log=None,
           n_jobs: int | None = None) -> list[VerifyResult]:
    """Re-run one stored seed per (task, model) of the suite and compare every metric exactly.

    Give the ``n_jobs`` the suite ran with: it sets the CPU threads per worker, and a
    different thread count may change floating-point reductions (``num_threads`` in the
    config fixes it for a task)."""
    from cosmobench.results import read_rows
    from cosmobench.runner import default_root
    root = default_root(root)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    _, jobs = expand(suite, tasks, seeds, overrides)
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
    if chosen:
        log(f"[verify] re-running {len(chosen)} job(s) into {scratch}")
        launcher = LocalLauncher(scratch, n_jobs, log)

        def on_done(job: Job, res: dict) -> None:
            if res["status"] != "ok":
                results.append(VerifyResult(job, "failed", error=res.get("error", "")))
                return
            stored = ok_rows[job.key].metrics
            new = res["metrics"]
            diffs = {k: (stored.get(k), new.get(k)) for k in sorted(set(stored) | set(new))
                     if stored.get(k) != new.get(k) and not (_isnan(stored.get(k)) and _isnan(new.get(k)))}
            results.append(VerifyResult(job, "differs" if diffs else "same", diffs))

        launcher.run(list(chosen.values()), on_done)
    for r in results:
        detail = "; ".join(f"{k}: stored {a!r} vs re-run {b!r}" for k, a, b in
                           ((k, *v) for k, v in r.diffs.items()))
        log(f"[verify] {r.status:<8} {r.job.name} {detail or r.error}".rstrip())
    return results


def _isnan(v) -> bool:
    return isinstance(v, float) and v != v


# --- SLURM -----------------------------------------------------------------------------
def write_slurm(suite: str | Path | None = None, tasks: list[str] | None = None, seeds: int | None = None,
                overrides: Iterable[str] = (), root: str | Path | None = None, out: str | Path | None = None,
                sbatch_options: Iterable[str] = (), rerun: bool = False) -> tuple[Path, Path, list[Job]]:
    """Write ``bench.sbatch`` (job array: index i runs the i-th job of ``manifest.json``) and the
    manifest. Jobs with an ``ok`` row are left out unless ``rerun``. Returns (script, manifest, jobs)."""
    from cosmobench.runner import default_root
    root = default_root(root).resolve()
    suite_path, jobs = expand(suite, tasks, seeds, overrides)
    _check_root(root)
    done = set() if rerun else done_keys(root)
    todo = [j for j in jobs if j.key not in done]
    out = Path(out) if out else root / "slurm" / suite_path.stem
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    write_manifest(root / MANIFEST_DIR / f"{suite_path.stem}.json", suite_path, jobs, root)
    manifest = out / "manifest.json"
    write_manifest(manifest, suite_path, todo, root)
    exe = Path(sys.executable).parent / "cosmobench"
    exe_s = shlex.quote(str(exe)) if exe.is_file() else f"{shlex.quote(sys.executable)} -m cosmobench.cli"
    lines = ["#!/bin/bash",
             f"# cosmobench suite {suite_path.name}: {len(todo)} jobs (of {len(jobs)}; the rest already have ok rows)",
             f"# submit: sbatch {shlex.quote(str(out / 'bench.sbatch'))}   (manifest: manifest.json)",
             f"#SBATCH --job-name=cosmobench-{suite_path.stem}",
             f"#SBATCH --array=0-{max(0, len(todo) - 1)}",
             f"#SBATCH --output={out / 'logs'}/%A_%a.log",
             "#SBATCH --ntasks=1",
             *(f"#SBATCH {o}" for o in sbatch_options),
             "set -euo pipefail",
             f"export COSMOBENCH_HOME={shlex.quote(str(root))}",
             "export WANDB_MODE=${WANDB_MODE:-offline}",
             'case "${SLURM_ARRAY_TASK_ID:?this script is a SLURM job array (sbatch), or set SLURM_ARRAY_TASK_ID}" in']
    for i, j in enumerate(todo):
        lines.append(f"  {i}) exec {exe_s} {shlex.join(j.argv())} ;;  # {j.name}")
    lines += ['  *) echo "cosmobench: array index ${SLURM_ARRAY_TASK_ID} is not a job of this suite" >&2; exit 2 ;;',
              "esac", ""]
    script = out / "bench.sbatch"
    tmp = script.with_name(script.name + ".tmp")
    tmp.write_text("\n".join(lines))
    os.chmod(tmp, 0o755)
    os.replace(tmp, script)
    return script, manifest, todo


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker_main())
    sys.exit("usage: python -m cosmobench.bench --worker   (internal: a bench worker process)")
