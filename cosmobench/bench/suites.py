"""Benchmark suites: a suite file expanded into jobs, the jobs' manifests and their state in the store.

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
        tune: {trials: 20}            # optional (also suite-wide): every model of the task gets the same
                                      # Optuna budget (cosmobench tune) before its seeds run
        grid:                         # cartesian product; one job per grid point x model x seed
          data.n_train: [500, 2000, 10000]

Every job is exactly one training run, ``cosmobench train TASK -m MODEL [-c LAYER]
OVERRIDES... seed=S``, recorded as one row of the results store. All jobs' configs are
resolved and validated before the first job starts (a bad suite or grid value is a
:class:`~cosmobench.errors.ConfigError`: exit 2, nothing run).

A job is identified by (task, model, experiment hash, seed), where the experiment hash is
``config_hash(cfg, BOOKKEEPING_KEYS)``, the hash the runner stores in every row.
``ROOT/suites/<suite>.json`` (:func:`write_manifest`) holds the jobs of the latest run of
each suite; the leaderboard reads it for learning curves.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cosmobench import config as C
from cosmobench.errors import ConfigError
from cosmobench.io import atomic_path
from cosmobench.results import FAILED_FILE, METRICS_FILE, read_rows

SUITE_KEYS = ("description", "seeds", "overrides", "grid", "tasks", "tune")
TASK_KEYS = ("models", "config", "overrides", "model_overrides", "seeds", "grid", "tune")
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
    tune: dict[str, Any] = field(default_factory=dict)   # {"trials", "study"[, "pending"]} of a tuned job

    @property
    def name(self) -> str:
        point = " ".join(f"{k}={fmt_value(v)}" for k, v in self.grid.items())
        return f"{self.task}/{self.model}{' ' + point if point else ''} seed={self.seed}"

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.task, self.model, self.config_hash, self.seed)

    def log_path(self, root: Path) -> Path:
        """Where a local worker writes the job's output until it moves to ``RUN_DIR/train.log``."""
        return root / "bench" / "logs" / f"{self.task}-{self.model}-{self.config_hash[:8]}-s{self.seed}.log"

    def argv(self) -> list[str]:
        """Arguments of the equivalent ``cosmobench train`` command."""
        return ["train", self.task, "-m", self.model, *(["-c", self.config] if self.config else []),
                *self.overrides]

    def tune_argv(self, root: Path, n_jobs: int = 1) -> list[str]:
        """Arguments of the ``cosmobench tune`` command of a tuned job's study (``tune: {trials: N}``)."""
        return ["tune", self.task, "-m", self.model, "--trials", str(self.tune["trials"]), "--jobs", str(n_jobs),
                "--root", str(root), *(["-c", self.config] if self.config else []), *self.tune["base"]]


def fmt_value(v: Any) -> str:
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


def _tune_option(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"trials"} or isinstance(value["trials"], bool) \
            or not isinstance(value["trials"], int) or value["trials"] < 1:
        raise ConfigError(f"{where}: tune must be {{trials: N}} with N >= 1, got {value!r}")
    return value["trials"]


def expand(suite: str | Path | None = None, tasks: list[str] | None = None, seeds: int | None = None,
           overrides: Iterable[str] = (), root: str | Path | None = None) -> tuple[Path, list[Job]]:
    """Resolve every job of a suite (default ``experiments/suites/quick.yaml``); validates
    every config before returning, so that a bad suite fails before any job runs.

    A task with ``tune: {trials: N}`` (its own or the suite's): each model's jobs take the best
    values of its ``cosmobench tune`` study of that base config, read from ``root`` (default:
    the results store's default root; :func:`cosmobench.tune.tuned_overrides`) and appended to
    their overrides; jobs whose study has no result yet carry ``tune["pending"]``
    (:func:`cosmobench.bench.run.run_suite` tunes them first; on SLURM,
    :func:`cosmobench.bench.launchers.write_slurm` writes the tuning array first). Models
    without a declared search space run as they are."""
    from cosmobench.registry import get_task
    from cosmobench.results import default_root

    path, doc = load_suite(suite)
    root = default_root(root)
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
        n_trials = _tune_option(entry.get("tune", doc.get("tune")), where)
        for m in models:
            for point in points:
                tuned: list[str] = []
                tune_info: dict[str, Any] = {}
                if n_trials:
                    from cosmobench.tune import declared_space, tuned_overrides
                    base = [*suite_ov, *_str_list(entry.get("overrides"), f"{where}: overrides"),
                            *_str_list(model_ov.get(m), f"{where}: model_overrides.{m}"),
                            *(f"{k}={fmt_value(v)}" for k, v in point.items()), *overrides]
                    clash = set(declared_space(t, m)) & set(point)
                    if clash:
                        raise ConfigError(f"{where}: grid keys {sorted(clash)} are also tuned for {m!r}")
                    if declared_space(t, m):
                        name, best, _ = tuned_overrides(root, t, m, layer, base)
                        tune_info = {"trials": n_trials, "study": name, "base": base}
                        if best is None:
                            tune_info["pending"] = True
                        else:
                            tuned = best
                for s in task_seeds:
                    ov = [*suite_ov, *_str_list(entry.get("overrides"), f"{where}: overrides"),
                          *_str_list(model_ov.get(m), f"{where}: model_overrides.{m}"),
                          *(f"{k}={fmt_value(v)}" for k, v in point.items()), *overrides, *tuned, f"seed={s}"]
                    try:
                        cfg = C.resolve(t, m, config_file=layer, overrides=ov)
                        preflight(cfg)
                    except ConfigError as exc:
                        raise ConfigError(f"{where}, model {m!r}"
                                          f"{', grid ' + json.dumps(point) if point else ''}: {exc}") from None
                    for k, v in point.items():  # a grid value the config layers then overwrite is a mistake
                        if _get(cfg, k) != C.parse_value(fmt_value(v)) and _get(cfg, k) != v:
                            raise ConfigError(f"{where}: grid {k}={v!r} is overridden to {_get(cfg, k)!r} "
                                              f"by a later override")
                    job = Job(len(jobs), t, m, s, layer, ov, C.config_hash(cfg, C.BOOKKEEPING_KEYS), point,
                              dict(tune_info))
                    if job.key in seen:
                        raise ConfigError(f"{where}: jobs {seen[job.key]!r} and {job.name!r} are the same run")
                    seen[job.key] = job.name
                    jobs.append(job)
    return path, jobs


def preflight(cfg: dict) -> None:
    """What a run checks before it reads any data, for one job's resolved config: a run that
    would train nothing (``trainer.max_epochs=0`` ...) and the datamodule's
    :meth:`~cosmobench.datamodule.BaseDataModule.preflight` (a real source without
    ``data.path``, sizes that do not fit in memory). ConfigError."""
    from cosmobench.checkpoints import load_classes
    from cosmobench.registry import get_task
    from cosmobench.runner import check_trains
    check_trains(cfg)
    dm_cls, _ = load_classes(get_task(cfg["task"]))
    dm_cls.preflight(cfg["data"])


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
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(body, indent=1) + "\n")


def read_manifests(root: str | Path) -> list[dict]:
    out = []
    for p in sorted(Path(root, MANIFEST_DIR).glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue  # a manifest is a convenience for plots; a broken one is ignored
    return out


# --- jobs in the results store ---------------------------------------------------------
def done_keys(root: Path) -> set[tuple[str, str, str, int]]:
    """(task, model, config_hash, seed) of every ``ok`` row in the store."""
    return {(r.task, r.model, r.config_hash, r.seed) for r in read_rows(root, status="ok")}


def latest_row(root: Path, job: Job):
    """The job's latest row in the store (any status), or None."""
    rows = [r for r in read_rows(root, task=job.task) if (r.task, r.model, r.config_hash, r.seed) == job.key]
    return rows[-1] if rows else None


def resumable(root: Path, job: Job) -> bool:
    """Whether an interrupted run of exactly this job (``last.ckpt``, neither ``metrics.json``
    nor ``failed.txt``) can be continued with ``resume=last``; a failed run starts afresh."""
    base = root / job.task / job.model
    if not base.is_dir():
        return False
    want = C.config_hash(C.resolve(job.task, job.model, job.config, job.overrides))
    for d in base.glob("*/"):
        if (d / "checkpoints" / "last.ckpt").is_file() and not (d / METRICS_FILE).exists() \
                and not (d / FAILED_FILE).exists() and (d / "config.yaml").is_file():
            try:
                if C.config_hash(C.load_yaml(d / "config.yaml")) == want:
                    return True
            except ConfigError:
                continue
    return False


def check_root(root: Path) -> None:
    """``--root`` must be a directory (or not exist yet)."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory")
