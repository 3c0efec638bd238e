"""Leaderboard statistics: runs grouped into entries, summarised over seeds, ranked and
compared with the task's baseline.

*Entries.* Runs are grouped by (task, data track, model, experiment hash); the hash leaves
out the seed and bookkeeping keys (:data:`cosmobench.config.BOOKKEEPING_KEYS`), so the seeds
of one experiment form one entry, while runs of the same model with other settings form
entries of their own. The *track* is that of the run's test data (``data.test_source`` if set,
else ``data.source``; read from the run's ``config.yaml``): ``sim`` for the task's simulator,
``real:<name>`` or ``external:<name>`` for a named data set (``data.dataset``, by its kind),
else the source and file: entries of
different tracks are never ranked or compared together. Within an entry a seed run more than once counts once (its latest ``ok``
run). A seed whose runs all failed counts as *failed*; an entry whose seeds all failed is
listed below the ranked entries.

*Statistics* (over the n seeds of an entry, for every metric):

- mean ± sample standard deviation (ddof=1); for one seed the spread is unknown (None),
  never 0;
- a 95% percentile-bootstrap confidence interval of the mean (:func:`scipy.stats.bootstrap`,
  9,999 resamples, fixed random state so the page is reproducible); None for one seed;
- rank by the task's primary metric in its direction, within a track;
- against the task's classical baseline (``register_task(baseline=...)``): a two-sided
  paired t-test (:func:`scipy.stats.ttest_rel`) of the primary metric over the seeds both
  entries share (pairing by seed removes the variance the seed puts into the simulated
  data, which both models see); *better* / *worse* when p < 0.05 in the good / bad
  direction, else *indistinguishable*; "—" with fewer than 2 shared seeds. The baseline
  entry compared with is the one at the same grid point of a suite (or the only one).

*Directions.* ``min`` lower is better, ``max`` higher is better, ``zero`` closest to zero
is best (a bias). The task's ``metric_modes`` win; else :data:`METRIC_MODES` and suffix
rules name the common ones; a metric in bins (``flux_mape_bl10_30``,
``completeness_theta_e_0.80_1.23``, ``ssim_blended``) takes the direction of its longest
prefix that has one; a metric matched by none has no declared direction (None).

*Tuned entries.* An entry whose config is the best config of a ``cosmobench tune`` study
(``ROOT/tune/*.json``, :mod:`cosmobench.tune`) or a tuned job of a suite carries the tuning
budget (:attr:`Entry.tuned`); the renderers mark it.

*Comparisons of two entries* (``cosmobench compare``, :func:`paired_differences`): per metric
the mean paired difference over the shared seeds with a percentile-bootstrap CI, the paired
t-test's p-value and Holm's step-down correction across the metrics (:func:`holm`).

*Learning curves.* For suites with an override grid, ``cosmobench bench`` writes the
suite's jobs to ``ROOT/suites/<suite>.json``; :attr:`Board.curves` holds the primary metric
against each grid variable per model, with the bootstrap CI.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmobench.bench.suites import fmt_value
from cosmobench.errors import ConfigError
from cosmobench.results import RunRow, read_rows

#: Direction of common metric names: "min" (lower is better), "max" or "zero" (best at 0).
METRIC_MODES: dict[str, str] = {
    "accuracy": "max", "balanced_accuracy": "max", "macro_f1": "max", "f1": "max", "auc": "max",
    "roc_auc": "max", "auroc": "max", "average_precision": "max", "precision": "max", "recall": "max",
    "purity": "max", "completeness": "max", "tpr": "max", "r2": "max", "ssim": "max", "psnr": "max",
    "pearson_r": "max", "coverage": "max",
    "crps": "min", "nll": "min", "ece": "min", "mse": "min", "rmse": "min", "mae": "min", "loss": "min",
    "sigma_nmad": "min", "outlier_frac": "min", "pit_ks": "min", "fpr": "min", "c2st": "min",
    "bias": "zero",
}
_SUFFIX_MODES = (("_error", "min"), ("_loss", "min"), ("_frac", "min"), ("_rmse", "min"), ("_mse", "min"),
                 ("_mae", "min"), ("_nll", "min"), ("_ece", "min"), ("_crps", "min"), ("_accuracy", "max"),
                 ("_auc", "max"), ("_f1", "max"), ("_purity", "max"), ("_completeness", "max"),
                 ("_r2", "max"), ("_bias", "zero"))
ALPHA = 0.05
N_BOOT = 9999


def metric_mode(spec, name: str) -> str | None:
    if name == spec.primary_metric:
        return spec.mode
    modes = getattr(spec, "metric_modes", None) or {}
    mode = modes.get(name) or METRIC_MODES.get(name)
    if mode:
        return mode
    mode = next((m for suf, m in _SUFFIX_MODES if name.endswith(suf)), None)
    if mode:
        return mode
    parts = name.split("_")  # a metric in bins (flux_mape_bl10_30, completeness_theta_e_0.80_1.23)
    for k in range(len(parts) - 1, 0, -1):  # inherits the direction of its longest named prefix
        base = "_".join(parts[:k])
        mode = (spec.mode if base == spec.primary_metric else None) or modes.get(base) or METRIC_MODES.get(base)
        if mode:
            return mode
    return None


@dataclass
class Comparison:
    """Paired-by-seed test of an entry's primary metric against the baseline entry."""

    baseline_label: str
    n_pairs: int
    mean_diff: float | None = None   # entry - baseline, in the metric's units
    p_value: float | None = None
    verdict: str = "—"               # better | worse | indistinguishable | — (too few shared seeds)
    #: the track holds several baseline entries (e.g. untuned and tuned): the verdict names its own
    several_baselines: bool = False


@dataclass
class Entry:
    task: str
    model: str
    config_hash: str
    seeds: list[int]
    mean: dict[str, float]
    std: dict[str, float | None]                  # None for one seed
    ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    values: dict[str, dict[int, float]] = field(default_factory=dict)   # metric -> seed -> value
    run_dirs: list[str] = field(default_factory=list)
    rows: list[RunRow] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)               # seed -> reason (no ok run)
    rank: int | None = 0
    label: str = ""
    grid: dict[str, Any] = field(default_factory=dict)
    comparison: Comparison | None = None
    track: str = "sim"                                                 # the data track (module docstring)
    tuned: dict[str, Any] | None = None                                # {"trials": N, "study": name}

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


class Board(dict):
    """``{task: [Entry, ...]}`` (per track, in :func:`track_order`: ranked entries first, then
    all-failed ones) plus ``notes``."""

    def __init__(self, *args, notes: list[str] | None = None, curves: list[dict] | None = None, **kw):
        super().__init__(*args, **kw)
        self.notes = notes or []
        self.curves = curves or []   # [{task, key, suite, series: {label: [(x, mean, lo, hi), ...]}}]


# --- statistics ------------------------------------------------------------------------
def _mean_std(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def bootstrap_ci(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Percentile-bootstrap CI of the mean; None for fewer than 2 values or non-finite ones."""
    import numpy as np
    vals = np.asarray(values, dtype=float)
    if len(vals) < 2 or not np.all(np.isfinite(vals)):
        return None
    if np.all(vals == vals[0]):
        return float(vals[0]), float(vals[0])
    from scipy.stats import bootstrap
    res = bootstrap((vals,), np.mean, confidence_level=level, n_resamples=N_BOOT, method="percentile",
                    random_state=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _score(mode: str | None, v: float) -> float:
    """Larger is better."""
    return -v if mode == "min" else (-abs(v) if mode == "zero" else v)


def paired_test(entry: dict[int, float], base: dict[int, float], mode: str) -> Comparison:
    """Two-sided paired t-test over the shared seeds (see the module docstring)."""
    import numpy as np
    shared = sorted(set(entry) & set(base))
    cmp = Comparison("", len(shared))
    if not shared:
        return cmp
    cmp.mean_diff = float(np.mean([entry[s] - base[s] for s in shared]))
    if len(shared) < 2:
        return cmp
    d = np.array([_score(mode, entry[s]) - _score(mode, base[s]) for s in shared])
    if not np.all(np.isfinite(d)):
        return cmp
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # no spread: t is 0 (equal) or infinite
        p = 1.0 if abs(d.mean()) <= 1e-12 else 0.0
    else:
        from scipy.stats import ttest_1samp
        p = float(ttest_1samp(d, 0.0).pvalue)  # = ttest_rel on the paired scores
    cmp.p_value = p
    cmp.verdict = "indistinguishable" if p >= ALPHA else ("better" if d.mean() > 0 else "worse")
    return cmp


# --- aggregation -----------------------------------------------------------------------
def _grid_index(manifests: list[dict]) -> dict[tuple[str, str, str], tuple[dict, str]]:
    """(task, model, config_hash) -> (grid point, suite name), from bench manifests."""
    out = {}
    for man in manifests:
        for j in man.get("jobs", []):
            if j.get("grid"):
                out[(j["task"], j["model"], j["config_hash"])] = (j["grid"], man.get("name", ""))
    return out


def run_track(run_dir: str | None) -> str:
    """The data track of a run (see the module docstring) from its ``config.yaml``; ``sim``
    when the run dir or its config cannot be read (rows recorded without one)."""
    return _track_of_config(_read_config(run_dir))


def _read_config(run_dir: str | None) -> dict:
    if not run_dir:
        return {}
    path = Path(run_dir) / "config.yaml"
    import yaml
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # no readable config: no track information
        return {}
    return doc if isinstance(doc, dict) else {}


def _track_of_config(cfg: dict) -> str:
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    source = data.get("test_source") or data.get("source", "sim")  # the test data decide the track
    if source in (None, "sim"):
        return "sim"
    dataset = data.get("dataset")
    if dataset:  # real:<name> or external:<name> (the data set's kind)
        from cosmobench.datasets.catalog import DATASETS
        known = DATASETS.get(str(dataset))
        return f"{known.kind if known else 'real'}:{dataset}"
    path = data.get("test_path") or data.get("path")
    return f"{source}:{Path(str(path)).name}" if path else str(source)


def track_order(entries: list[Entry]) -> list[str]:
    """The tracks of a task's entries, ``sim`` first."""
    return sorted({e.track for e in entries}, key=lambda t: (t != "sim", t))


def aggregate(rows: list[RunRow], manifests: list[dict] = (), tuned: dict | None = None) -> Board:
    """Group, summarise, rank and compare (see the module docstring). ``tuned``:
    ``{(task, model, config_hash): {"trials": N, ...}}`` of tuned configs (besides the suite
    manifests' tuned jobs)."""
    from cosmobench.registry import get_task
    specs, notes, skipped = {}, [], {}
    for r in rows:
        if r.task not in specs:
            try:
                specs[r.task] = get_task(r.task)
            except ConfigError:
                specs[r.task] = None
        if specs[r.task] is None:
            skipped[r.task] = skipped.get(r.task, 0) + 1
    for t, n in sorted(skipped.items()):
        notes.append(f"skipped {n} run(s) of task {t!r}, which is not installed")
    grid_of = _grid_index(list(manifests))
    tuned_of = {**_tuned_index(list(manifests)), **(tuned or {})}
    track_of: dict[tuple, str] = {}
    ok: dict[tuple, dict[int, RunRow]] = {}
    bad: dict[tuple, dict[int, RunRow]] = {}
    for r in sorted(rows, key=lambda r: r.start_time or ""):
        if specs.get(r.task) is None:
            continue
        hkey = (r.task, r.model, r.config_hash)
        if hkey not in track_of or (track_of[hkey] == "sim" and r.run_dir):
            track_of[hkey] = run_track(r.run_dir)  # one experiment hash is one data config: one track
        key = (r.task, track_of[hkey], r.model, r.config_hash)
        (ok if r.status == "ok" else bad).setdefault(key, {})[r.seed] = r  # latest per seed
    board = Board(notes=notes)
    for key in sorted(set(ok) | set(bad)):
        task, track, model, chash = key
        per_seed = ok.get(key, {})
        runs = [per_seed[s] for s in sorted(per_seed)]
        failed = {s: (r.error or "failed") for s, r in bad.get(key, {}).items() if s not in per_seed}
        names = sorted(set().union(*(r.metrics for r in runs))) if runs else []
        e = Entry(task, model, chash, sorted(per_seed), {}, {}, run_dirs=[r.run_dir or "" for r in runs],
                  rows=runs, failed=failed, grid=grid_of.get((task, model, chash), ({}, ""))[0], track=track,
                  tuned=tuned_of.get((task, model, chash)))
        for name in names:
            vals = {r.seed: float(r.metrics[name]) for r in runs if name in r.metrics}
            e.values[name] = vals
            e.mean[name], e.std[name] = _mean_std(list(vals.values()))
            e.ci[name] = bootstrap_ci(list(vals.values()))
        board.setdefault(task, []).append(e)
    for task, entries in list(board.items()):
        spec = specs[task]
        ordered = []
        for track in track_order(entries):
            group = [e for e in entries if e.track == track]
            _rank(spec, group)
            _compare(spec, group)
            ordered += group
        board[task] = ordered
    board.curves = _curves(board, manifests, specs)
    return Board(sorted(board.items()), notes=board.notes, curves=board.curves)


def _tuned_index(manifests: list[dict]) -> dict[tuple[str, str, str], dict]:
    """(task, model, config_hash) -> tuning budget, from the tuned jobs of suite manifests."""
    out = {}
    for man in manifests:
        for j in man.get("jobs", []):
            if j.get("tune"):
                out[(j["task"], j["model"], j["config_hash"])] = dict(j["tune"])
    return out


def _rank(spec, entries: list[Entry]) -> None:
    pm = spec.primary_metric

    def key(e: Entry):
        if pm not in e.mean or not math.isfinite(e.mean[pm]):
            return (1, 0.0)
        return (0, -_score(spec.mode, e.mean[pm]))
    entries.sort(key=key)
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.model] = counts.get(e.model, 0) + 1
    rank = 0
    for e in entries:
        if e.seeds and pm in e.mean:
            rank += 1
            e.rank = rank
        else:
            e.rank = None
        point = ", ".join(f"{k}={fmt_value(v)}" for k, v in e.grid.items())
        e.label = f"{e.model} ({point})" if point else (
            e.model if counts[e.model] == 1 else f"{e.model} [{e.config_hash[:6]}]")
        if e.tuned:
            e.label += f" (tuned {e.tuned.get('trials', '?')})"


def _compare(spec, entries: list[Entry]) -> None:
    base_model = getattr(spec, "baseline", None)
    pm = spec.primary_metric
    bases = [e for e in entries if e.model == base_model and pm in e.values]
    if not bases:
        return
    for e in entries:
        if e.model == base_model or pm not in e.values:
            continue
        same_point = [b for b in bases if e.grid and b.grid == e.grid]
        if same_point:
            b = same_point[0]
        elif len(bases) == 1:
            b = bases[0]
        else:
            b = max(bases, key=lambda b: (len(set(b.seeds) & set(e.seeds)), bool(b.tuned) == bool(e.tuned)))
        e.comparison = paired_test(e.values[pm], b.values[pm], spec.mode)
        e.comparison.baseline_label = b.label
        e.comparison.several_baselines = len(bases) > 1


# --- two entries, every metric (cosmobench compare) -------------------------------------
#: fewest shared seeds for a paired comparison: with fewer the answer is "not enough seeds to tell"
MIN_PAIRS = 3


@dataclass
class MetricDiff:
    """``b - a`` of one metric over the seeds both entries share."""

    metric: str
    mode: str | None
    n_pairs: int
    mean_a: float | None = None
    mean_b: float | None = None
    diff: float | None = None                       # mean of (b - a) over the shared seeds
    ci: tuple[float, float] | None = None           # 95% percentile-bootstrap CI of that mean
    p_value: float | None = None                    # two-sided paired t-test
    p_holm: float | None = None                     # Holm-adjusted across the compared metrics
    verdict: str = "not enough seeds to tell"       # b better | b worse | indistinguishable | differs


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error rate); None stays None."""
    idx = sorted((i for i, p in enumerate(p_values) if p is not None), key=lambda i: p_values[i])
    m, out, running = len(idx), list(p_values), 0.0
    for k, i in enumerate(idx):
        running = max(running, min(1.0, (m - k) * p_values[i]))
        out[i] = running
    return out


def paired_differences(spec, a: Entry, b: Entry, metrics: list[str] | None = None,
                       min_pairs: int = MIN_PAIRS) -> list[MetricDiff]:
    """Per metric, ``b - a`` over the shared seeds: mean, bootstrap CI, paired t-test (the
    same test as the leaderboard's verdict, :func:`paired_test`), Holm across the metrics that
    have a test. Fewer than ``min_pairs`` shared seeds: no test, "not enough seeds to tell"."""
    names = metrics or sorted(set(a.values) & set(b.values), key=lambda n: (n != spec.primary_metric, n))
    out = []
    for name in names:
        va, vb = a.values.get(name, {}), b.values.get(name, {})
        shared = sorted(set(va) & set(vb))
        mode = metric_mode(spec, name)
        d = MetricDiff(name, mode, len(shared))
        if shared:
            d.mean_a = sum(va[s] for s in shared) / len(shared)
            d.mean_b = sum(vb[s] for s in shared) / len(shared)
            d.diff = d.mean_b - d.mean_a
        if len(shared) >= min_pairs:
            d.ci = bootstrap_ci([vb[s] - va[s] for s in shared])
            c = paired_test({s: vb[s] for s in shared}, {s: va[s] for s in shared}, mode or "max")
            d.p_value = c.p_value
        out.append(d)
    for d, p in zip(out, holm([d.p_value for d in out])):
        d.p_holm = p
        if p is None:
            continue
        if p >= ALPHA:
            d.verdict = "indistinguishable"
        elif d.mode is None:
            d.verdict = "differs"
        else:
            better = _score(d.mode, d.mean_b) > _score(d.mode, d.mean_a)
            d.verdict = "better" if better else "worse"
    return out


def _curves(board: Board, manifests, specs) -> list[dict]:
    """Learning-curve series for every grid variable of every suite manifest."""
    curves = []
    for man in manifests:
        keys = man.get("grid_keys") or []
        jobs = man.get("jobs") or []
        for task in sorted({j["task"] for j in jobs}):
            spec = specs.get(task) or None
            if spec is None or task not in board:
                continue
            by_hash = {e.config_hash: e for e in board[task]}
            for k in keys:
                series: dict[str, dict] = {}
                seen = set()
                for j in jobs:
                    if j["task"] != task or k not in j.get("grid", {}) or j["config_hash"] in seen:
                        continue
                    seen.add(j["config_hash"])
                    e = by_hash.get(j["config_hash"])
                    if e is None or spec.primary_metric not in e.mean:
                        continue
                    others = ", ".join(f"{kk}={fmt_value(v)}" for kk, v in j["grid"].items() if kk != k)
                    name = f"{j['model']}" + (f" ({others})" if others else "")
                    pm = spec.primary_metric
                    lo, hi = e.ci.get(pm) or (None, None)
                    series.setdefault(name, {})[json.dumps(j["grid"][k])] = (j["grid"][k], e.mean[pm], lo, hi)
                pts = {n: [p for _, p in sorted(s.items(), key=lambda kv: _sort_key(kv[1][0]))]
                       for n, s in series.items()}
                if any(len(p) >= 2 for p in pts.values()):
                    curves.append({"task": task, "key": k, "suite": man.get("name", ""), "series": pts,
                                   "metric": spec.primary_metric, "mode": spec.mode})
    return curves


def _sort_key(v):
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def read_tuned(root: str | Path) -> dict[tuple[str, str, str], dict]:
    """(task, model, config_hash) -> tuning budget of every finished ``cosmobench tune``
    study under ``root`` (``ROOT/tune/*.json``, written by :mod:`cosmobench.tune`)."""
    out = {}
    for p in sorted(Path(root, "tune").glob("*.json")):
        try:
            doc = json.loads(p.read_text())
            out[(doc["task"], doc["model"], doc["tuned_config_hash"])] = {
                "trials": doc["trials"], "study": doc.get("study", p.stem)}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a summary is a convenience for the leaderboard; a broken one is ignored
    return out


def load(root: str | Path, task: str | None = None) -> Board:
    """The leaderboard of every run recorded under ``root`` (all statuses; failed ones counted)."""
    from cosmobench.bench.suites import read_manifests
    return aggregate(read_rows(root, task=task), read_manifests(root), read_tuned(root))  # bad store: StoreError
