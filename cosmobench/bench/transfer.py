"""Transfer suites: a pretraining step, then a grid (e.g. the number of real labels) x strategies
x seeds, run as ordinary suite stages; ``cosmobench bench experiments/suites/transfer_<task>.yaml``.

A transfer suite is a suite file with a ``pretrain`` entry (that is how :func:`is_transfer_suite`
tells it from an ordinary one)::

    description: ...
    task: morphology
    seeds: 3                      # fine-tuning / test seeds (number or list), as in a suite
    overrides: [logger=none]      # every run of every stage
    grid: {data.subset: [50, 100, 200, null]}   # null: all training rows
    curve: data.subset            # the grid key on the x axis (default: the only grid key)
    pretrain:                     # stage 1: ONE training run (one seed) on the simulator
      model: cnn
      config: morphology/transfer_pretrain.yaml
      overrides: []
      seed: 0
    strategies:                   # stage 2: per strategy, an ordinary suite stage over grid x seeds
      scratch:  {model: cnn, config: morphology/transfer_real.yaml}
      sim+ft:   {model: cnn, config: morphology/transfer_real.yaml,
                 overrides: ["model.init_from={pretrain}", model.freeze_epochs=3]}
      sim-only: {test: pretrain, config: morphology/transfer_real.yaml}   # zero-shot
      imagenet: {model: resnet18, config: ..., overrides: [model.pretrained=imagenet]}

``{pretrain}`` in a strategy's overrides is replaced by the pretraining run's
``checkpoints/best.ckpt``. A ``test: pretrain`` strategy trains nothing: it scores that
checkpoint (``cosmobench test``) on every grid point x seed (same test split as the trained
strategies of that seed), so zero-shot is a flat curve with its own CI; its config must differ
from the pretraining run's data and from every trained job's config (else one experiment hash
would hold both: ConfigError). Every fine-tuning seed
starts from the same pretrained network (its spread is over subsets, head initialisation and
batch order, not over pretraining seeds).

Each training stage is written as an ordinary suite (``ROOT/suites/stages/<strategy>/<name>.yaml``)
and run by :func:`cosmobench.bench.run.run_suite` (skip done jobs, resume interrupted ones);
all configs of all stages are resolved and validated before anything runs (ConfigError: exit 2).
A strategy whose published weights are not cached (``model.pretrained``) is left out with one
line naming what to fetch, here and in the summary. At the end ``ROOT/suites/<name>.json`` holds
every job with ``grid = {<curve>: x, "strategy": S}`` (the leaderboard draws the primary metric
vs the curve key, one line and 95 % CI band per strategy), and a ``transfer`` record: the
pretraining run, its simulator test metrics vs the zero-shot real ones (the domain-shift gap),
the strategies left out, and the paired differences of every strategy vs the first one.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from cosmobench import config as C
from cosmobench.errors import ConfigError, RunFailure

SUITE_KEYS = ("description", "task", "seeds", "overrides", "grid", "curve", "pretrain", "strategies")
PRETRAIN_KEYS = ("model", "config", "overrides", "seed")
STRATEGY_KEYS = ("model", "config", "overrides", "test")
PLACEHOLDER = "{pretrain}"
STAGE_DIR = "stages"  # ROOT/suites/stages/<strategy>/<suite name>.yaml


def is_transfer_suite(path: str | Path | None) -> bool:
    """Whether ``path`` is a suite file with a ``pretrain`` step (False for anything else)."""
    if not path or not Path(path).is_file():
        return False
    try:
        doc = C.load_yaml(Path(path))
    except ConfigError:
        return False
    return isinstance(doc, dict) and "pretrain" in doc


@dataclass
class TransferSuite:
    path: Path
    task: str
    seeds: Any
    overrides: list[str]
    grid: dict[str, list]
    curve: str
    pretrain: dict[str, Any]
    strategies: dict[str, dict[str, Any]]
    description: str = ""

    @property
    def name(self) -> str:
        return self.path.stem


def _layer(value: Any, suite: Path, where: str) -> str | None:
    """A config layer as an absolute path (below experiments/, beside the suite, or as given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: config must be a file name, got {value!r}")
    found = next((p for p in (C.experiments_dir() / value, suite.parent / value, Path(value)) if p.is_file()), None)
    if found is None:
        raise ConfigError(f"{where}: config layer {value!r} not found below experiments/ or beside the suite")
    return str(found.resolve())


def _overrides(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or any(not isinstance(v, str) or "=" not in v for v in value):
        raise ConfigError(f"{where}: overrides must be a list of KEY=VALUE strings, got {value!r}")
    return list(value)


def load_transfer(path: str | Path, seeds: int | None = None, overrides: list[str] = ()) -> TransferSuite:
    """Read and check a transfer suite (module docstring); ``seeds``/``overrides``: the command
    line's. ConfigError naming the problem."""
    from cosmobench.registry import get_task
    path = Path(path)
    doc = C.load_yaml(path)
    where = f"transfer suite {path}"
    bad = set(doc) - set(SUITE_KEYS)
    if bad:
        raise ConfigError(f"{where}: unknown keys {sorted(bad)}; valid: {', '.join(SUITE_KEYS)}")
    task = doc.get("task")
    if not isinstance(task, str):
        raise ConfigError(f"{where}: task must name one task")
    spec = get_task(task)
    grid = doc.get("grid") or {}
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}: grid must map at least one config key (e.g. data.subset) to a list of values")
    curve = doc.get("curve") or (next(iter(grid)) if len(grid) == 1 else None)
    if curve not in grid:
        raise ConfigError(f"{where}: curve must be one of the grid keys {sorted(grid)}, got {curve!r}")
    pre = doc.get("pretrain")
    if not isinstance(pre, dict) or set(pre) - set(PRETRAIN_KEYS) or pre.get("model") not in spec.models:
        raise ConfigError(f"{where}: pretrain must be {{model: one of {', '.join(spec.models)}, config, overrides, "
                          f"seed}}, got {pre!r}")
    seed = pre.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: pretrain.seed must be a non-negative integer, got {seed!r}")
    pre = {"model": pre["model"], "config": _layer(pre.get("config"), path, f"{where}: pretrain"),
           "overrides": _overrides(pre.get("overrides"), f"{where}: pretrain"), "seed": seed}
    strategies = doc.get("strategies")
    if not isinstance(strategies, dict) or not strategies:
        raise ConfigError(f"{where}: strategies must map names to {{model, config, overrides}} or {{test: pretrain}}")
    out = {}
    for name, s in strategies.items():
        w = f"{where}: strategy {name!r}"
        if not isinstance(s, dict) or set(s) - set(STRATEGY_KEYS):
            raise ConfigError(f"{w} must be a mapping of {', '.join(STRATEGY_KEYS)}, got {s!r}")
        if ("test" in s) == ("model" in s):
            raise ConfigError(f"{w}: give either model (a training stage) or test: pretrain (zero-shot)")
        if "test" in s and s["test"] != "pretrain":
            raise ConfigError(f"{w}: test must be 'pretrain', got {s['test']!r}")
        if "model" in s and s["model"] not in spec.models:
            raise ConfigError(f"{w}: model {s['model']!r} is not one of {', '.join(spec.models)}")
        ov = _overrides(s.get("overrides"), w)
        if "test" in s and any(o.startswith(("model.", "optim.")) for o in ov):
            raise ConfigError(f"{w}: a zero-shot test cannot change model./optim. settings (fixed by the checkpoint)")
        out[str(name)] = {"model": s.get("model"), "test": "test" in s, "overrides": ov,
                          "config": _layer(s.get("config"), path, w)}
    return TransferSuite(path, task, seeds if seeds is not None else doc.get("seeds", 3),
                         [*_overrides(doc.get("overrides"), where), *overrides], grid, curve, pre, out,
                         str(doc.get("description") or ""))


def _stage_doc(ts: TransferSuite, model: str, config: str | None, overrides: list[str], seeds: Any,
               grid: bool = True) -> dict:
    """An ordinary suite document of one stage."""
    entry = {"models": [model], "overrides": [*ts.overrides, *overrides]}
    if config:
        entry["config"] = config
    return {"description": f"stage of transfer suite {ts.path}", "seeds": seeds, "grid": ts.grid if grid else {},
            "tasks": {ts.task: entry}}


def _write_stage(root: Path, ts: TransferSuite, stage: str, doc: dict) -> Path:
    from cosmobench.io import atomic_path
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", stage)
    path = root / "suites" / STAGE_DIR / slug / f"{ts.name}.yaml"  # same stem: the stages share one manifest name
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(C.to_yaml(doc))
    return path


def _fill(overrides: list[str], ckpt: str) -> list[str]:
    return [o.replace(PLACEHOLDER, ckpt) for o in overrides]


def _left_out(ts: TransferSuite) -> dict[str, str]:
    """Strategies whose published weights are not cached: name -> the one-line reason."""
    from cosmobench.transfer import pretrained_file
    out = {}
    for name, s in ts.strategies.items():
        if s["test"]:
            continue
        cfg = C.resolve(ts.task, s["model"], s["config"], _fill([*ts.overrides, *s["overrides"]], "x"))
        weights = (cfg.get("model") or {}).get("pretrained")
        if weights:
            try:
                pretrained_file(weights, s["model"])
            except ConfigError as exc:
                out[name] = str(exc)
    return out


def plan(ts: TransferSuite, root: Path) -> dict[str, Any]:
    """Expand every stage (validates every config; nothing runs): ``{"pretrain": [Job],
    "strategies": {name: [Job]}}`` with ``{pretrain}`` standing for a placeholder path."""
    from cosmobench.bench.suites import expand
    p = ts.pretrain
    out = {"pretrain": expand(_write_stage(root, ts, "pretrain", _stage_doc(ts, p["model"], p["config"],
                                                                          p["overrides"], [p["seed"]], False)),
                              root=root)[1], "strategies": {}}
    for name, s in ts.strategies.items():
        if s["test"]:
            continue
        doc = _stage_doc(ts, s["model"], s["config"], _fill(s["overrides"], "PRETRAIN_CHECKPOINT"), ts.seeds)
        out["strategies"][name] = expand(_write_stage(root, ts, name, doc), root=root)[1]
    return out


def _row_of(root: Path, job) -> Any:
    from cosmobench.bench.suites import latest_row
    row = latest_row(root, job)
    return row if row is not None and row.status == "ok" else None


def _zero_shot(ts: TransferSuite, name: str, s: dict, ckpt: Path, root: Path, rerun: bool,
               log: Callable[[str], None], n_jobs: int | None = None,
               trained: dict[str, str] | None = None) -> tuple[list[dict], int]:
    """``cosmobench test`` of the pretraining checkpoint at every grid point x seed (skipping
    done ones), ``n_jobs`` at a time; returns the manifest jobs (their config hashes are the
    rows') and the number of failed tests."""
    import itertools

    from cosmobench.bench.suites import _seed_list, done_keys, fmt_value
    from cosmobench.checkpoints import checkpoint_config
    seeds = _seed_list(ts.seeds, f"transfer suite {ts.path}: seeds")
    points = [dict(zip(ts.grid, combo)) for combo in itertools.product(*ts.grid.values())]
    own, _ = checkpoint_config(ts.task, ckpt)
    done = set() if rerun else done_keys(root)
    jobs: list[dict] = []
    todo: list[dict] = []
    for point in points:
        for seed in seeds:
            ov = [*ts.overrides, *s["overrides"], *(f"{k}={fmt_value(v)}" for k, v in point.items()), f"seed={seed}"]
            cfg, _ = checkpoint_config(ts.task, ckpt, None, ov, s["config"])
            if all(cfg["data"].get(k) == own["data"].get(k) for k in ("source", "dataset", "path")):
                raise ConfigError(f"zero-shot strategy {name!r}: its config scores {ckpt} on the data it was "
                                  f"trained on (data.source={cfg['data'].get('source')!r}); set the real data")
            job = {"index": 0, "task": ts.task, "model": cfg["model"]["name"], "seed": seed, "config": s["config"],
                   "overrides": ov, "config_hash": C.config_hash(cfg, C.BOOKKEEPING_KEYS),
                   "grid": {**point, "strategy": name}, "tune": {}, "test_of": str(ckpt)}
            clash = (trained or {}).get(job["config_hash"])
            if clash:  # one experiment hash would hold both a trained run and this test: one leaderboard entry
                raise ConfigError(f"zero-shot strategy {name!r}: its test config at {point} equals that of the "
                                  f"training strategy {clash!r}; add an override that sets them apart "
                                  f"(e.g. a data.* key that only training reads)")
            jobs.append(job)
            if (job["task"], job["model"], job["config_hash"], seed) not in done:
                todo.append(job)
    log(f"[transfer] {name}: {len(jobs)} zero-shot tests of {ckpt}, {len(jobs) - len(todo)} already done")

    def one(job: dict) -> tuple[dict, subprocess.CompletedProcess, float]:
        argv = [sys.executable, "-m", "cosmobench.cli", "test", ts.task, "--checkpoint", str(ckpt), "--root",
                str(root), *(["-c", job["config"]] if job["config"] else []), *job["overrides"]]
        t0 = time.time()
        return job, subprocess.run(argv, capture_output=True, text=True), time.time() - t0

    from concurrent.futures import ThreadPoolExecutor
    refused, failed = None, 0
    with ThreadPoolExecutor(max(1, n_jobs or 1)) as pool:
        for i, (job, proc, secs) in enumerate(pool.map(one, todo)):
            if proc.returncode in (130, 143):
                raise KeyboardInterrupt("zero-shot test interrupted; run the suite again to resume")
            tail = (proc.stderr.strip().splitlines() or [""])[-1]
            log(f"[transfer {i + 1}/{len(todo)}] {'ok' if proc.returncode == 0 else 'failed'} {name} "
                f"{' '.join(f'{k}={fmt_value(v)}' for k, v in job['grid'].items() if k != 'strategy')} "
                f"seed={job['seed']} ({secs:.0f} s){'' if proc.returncode == 0 else '  ' + tail}")
            failed += proc.returncode != 0
            if proc.returncode == 2 and refused is None:
                refused = tail.removeprefix("cosmobench: error: ")
    if refused is not None:
        raise ConfigError(f"zero-shot strategy {name!r}: {refused}")
    return jobs, failed


def summary(root: Path, ts: TransferSuite, jobs: list[dict]) -> dict[str, Any]:
    """Per strategy and curve value: mean and 95 % t interval of the primary metric over seeds,
    and the paired (same seed) difference to the first strategy with its 95 % t interval."""
    import numpy as np
    from scipy import stats

    from cosmobench.registry import get_task
    from cosmobench.results import read_rows
    pm = get_task(ts.task).primary_metric
    value = {(r.model, r.config_hash, r.seed): float(r.metrics[pm]) for r in read_rows(root, task=ts.task, status="ok")
             if pm in r.metrics}
    per: dict[tuple[str, str], dict[int, float]] = {}
    for j in jobs:
        v = value.get((j["model"], j["config_hash"], j["seed"]))
        if v is not None:
            per.setdefault((j["grid"]["strategy"], json.dumps(j["grid"][ts.curve])), {})[j["seed"]] = v

    def t_ci(x):
        x = np.asarray(x, float)
        half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None
        return {"mean": float(x.mean()), "half_width": half, "n": int(len(x))}

    ref = next(iter(ts.strategies))
    rows = []
    def order(kv):  # strategies in the suite's order, then the curve values (numbers up, null = all last)
        x = json.loads(kv[0][1])
        return (list(ts.strategies).index(kv[0][0]), x is None or isinstance(x, (str, bool)),
                x if isinstance(x, (int, float)) and not isinstance(x, bool) else 0, str(x))
    for (strategy, x), vals in sorted(per.items(), key=order):
        row = {"strategy": strategy, ts.curve: json.loads(x), "seeds": sorted(vals), **t_ci(list(vals.values()))}
        base = per.get((ref, x), {})
        shared = sorted(set(vals) & set(base))
        if strategy != ref and shared:
            d = [vals[s] - base[s] for s in shared]
            row["vs"] = {"reference": ref, **t_ci(d), "per_seed": d}
        rows.append(row)
    return {"metric": pm, "rows": rows}


def format_summary(summ: dict[str, Any], curve: str) -> str:
    """The summary as a Markdown table."""
    def pm(m, h):
        return f"{m:.3f}" + (f" ± {h:.3f}" if h is not None else "")
    lines = [f"| {curve} | strategy | {summ['metric']} (mean ± 95% t CI) | seeds | paired difference vs reference |",
             "|---|---|---|---|---|"]
    for r in summ["rows"]:
        vs = r.get("vs")
        diff = (f"{vs['mean']:+.3f}" + (f" ± {vs['half_width']:.3f}" if vs["half_width"] is not None else "")
                + f" vs {vs['reference']} ({', '.join(f'{d:+.3f}' for d in vs['per_seed'])})") if vs else "—"
        x = "all" if r[curve] is None else r[curve]
        lines.append(f"| {x} | {r['strategy']} | {pm(r['mean'], r['half_width'])} | {r['n']} | {diff} |")
    return "\n".join(lines) + "\n"


def run_transfer(suite: str | Path, root: str | Path | None = None, n_jobs: int | None = None,
                 rerun: bool = False, seeds: int | None = None, overrides: list[str] = (), print_config: bool = False,
                 log: Callable[[str], None] | None = None) -> int:
    """Run a transfer suite (module docstring); returns the exit code (0 ok, 1 a job failed)."""
    from cosmobench.bench.launchers import stderr_log
    from cosmobench.bench.run import run_suite
    from cosmobench.bench.suites import MANIFEST_DIR, check_root
    from cosmobench.results import default_root
    log = log or stderr_log
    root = default_root(root)
    check_root(root)
    ts = load_transfer(suite, seeds, list(overrides))
    stages = plan(ts, root)  # every config of every stage validated before anything runs
    if print_config:
        for job in [*stages["pretrain"], *(j for js in stages["strategies"].values() for j in js)]:
            print(f"# {job.name}\n{C.to_yaml(C.resolve(job.task, job.model, job.config, job.overrides))}---")
        return 0
    left_out = _left_out(ts)
    for name, why in left_out.items():
        log(f"[transfer] strategy {name!r} left out: {why}")
    log(f"[transfer] {ts.name}: pretraining ({ts.pretrain['model']}, seed {ts.pretrain['seed']})")
    pre_job = stages["pretrain"][0]
    rep = run_suite(_write_stage(root, ts, "pretrain", _stage_doc(ts, ts.pretrain["model"], ts.pretrain["config"],
                                                                 ts.pretrain["overrides"], [ts.pretrain["seed"]],
                                                                 False)), root=root, n_jobs=1, rerun=rerun, log=log)
    row = _row_of(root, pre_job)
    if rep.failed or row is None:
        raise RunFailure(f"the pretraining run of {ts.path} failed: {rep.failed[0][1] if rep.failed else 'no ok row'}")
    ckpt = Path(row.run_dir) / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        raise RunFailure(f"the pretraining run {row.run_dir} has no checkpoints/best.ckpt")
    jobs: list[dict] = []
    failed = 0
    for name, s in ts.strategies.items():
        if name in left_out:
            continue
        if s["test"]:
            trained = {j.config_hash: n for n, js in stages["strategies"].items() for j in js}
            zs_jobs, zs_failed = _zero_shot(ts, name, s, ckpt, root, rerun, log, n_jobs, trained)
            jobs += zs_jobs
            failed += zs_failed
            continue
        log(f"[transfer] strategy {name!r}")
        doc = _stage_doc(ts, s["model"], s["config"], _fill(s["overrides"], str(ckpt)), ts.seeds)
        rep = run_suite(_write_stage(root, ts, name, doc), root=root, n_jobs=n_jobs, rerun=rerun, log=log)
        failed += len(rep.failed)
        jobs += [{**asdict(j), "grid": {**j.grid, "strategy": name}} for j in rep.jobs]
    for i, j in enumerate(jobs):
        j["index"] = i
    pm_rows = summary(root, ts, jobs)
    zero = [r for r in pm_rows["rows"] if ts.strategies[r["strategy"]]["test"]]
    metric = pm_rows["metric"]
    shift = {"metric": metric, "sim_test": row.metrics.get(metric),
             "real_zero_shot": zero[0]["mean"] if zero else None}
    if shift["sim_test"] is not None and shift["real_zero_shot"] is not None:
        shift["gap"] = shift["real_zero_shot"] - shift["sim_test"]
        log(f"[transfer] shift of the pretrained {ts.pretrain['model']}: {metric} {shift['sim_test']:.3f} on its "
            f"simulator test set, {shift['real_zero_shot']:.3f} zero-shot on the real test set "
            f"(gap {shift['gap']:+.3f})")
    man = {"suite": str(ts.path), "name": ts.name, "root": str(root.resolve()),
           "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "grid_keys": [ts.curve], "jobs": jobs,
           "transfer": {"task": ts.task, "curve": ts.curve, "strategies": list(ts.strategies),
                        "pretrain": {"run_dir": row.run_dir, "checkpoint": str(ckpt), "model": ts.pretrain["model"],
                                     "metrics": row.metrics}, "shift": shift, "left_out": left_out,
                        "summary": pm_rows}}
    from cosmobench.io import atomic_path
    path = root / MANIFEST_DIR / f"{ts.name}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(man, indent=1, default=str) + "\n")
    print(format_summary(pm_rows, ts.curve), end="")
    for name, why in left_out.items():
        print(f"not run: strategy {name!r}: {why}")
    print(f"manifest: {path}; curves: cosmobench leaderboard --task {ts.task} --format html --out board.html")
    return 1 if failed else 0


__all__ = ["is_transfer_suite", "TransferSuite", "load_transfer", "plan", "run_transfer", "summary",
           "format_summary", "PLACEHOLDER"]
