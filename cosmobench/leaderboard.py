"""Leaderboards: aggregate runs over seeds, rank them, test them against the baseline, render.

*Entries.* Runs are grouped by (task, model, experiment hash); the hash leaves out the seed
and bookkeeping keys (:data:`cosmobench.config.BOOKKEEPING_KEYS`), so the seeds of one
experiment form one entry, while runs of the same model with other settings form entries
of their own. Within an entry a seed run more than once counts once (its latest ``ok``
run). A seed whose runs all failed counts as *failed*; an entry whose seeds all failed is
listed below the ranked entries.

*Statistics* (over the n seeds of an entry, for every metric):

- mean ± sample standard deviation (ddof=1); for one seed the spread is shown as "—"
  (unknown), never "± 0";
- a 95% percentile-bootstrap confidence interval of the mean (:func:`scipy.stats.bootstrap`,
  9,999 resamples, fixed random state so the page is reproducible); "—" for one seed;
- rank by the task's primary metric in its direction;
- against the task's classical baseline (``register_task(baseline=...)``): a two-sided
  paired t-test (:func:`scipy.stats.ttest_rel`) of the primary metric over the seeds both
  entries share (pairing by seed removes the variance the seed puts into the simulated
  data, which both models see); *better* / *worse* when p < 0.05 in the good / bad
  direction, else *indistinguishable*; "—" with fewer than 2 shared seeds. The baseline
  entry compared with is the one at the same grid point of a suite (or the only one).

*Directions.* Every metric carries an arrow: ↓ lower is better, ↑ higher is better, →0
closest to zero is best (a bias). The task's ``metric_modes`` win; else
:data:`METRIC_MODES` and suffix rules name the common ones; a metric in bins
(``flux_mape_bl10_30``, ``completeness_theta_e_0.80_1.23``, ``ssim_blended``) takes the direction
of its longest prefix that has one; a metric matched by none gets "·" (no declared direction).

*Outputs.* Markdown, CSV (one row per entry and metric) and one self-contained HTML page
(a table per task, learning curves, each entry's latest plots, provenance; no external
resources, no scripts). :func:`runs_table` gives one row per run for
``cosmobench results --format csv|parquet``. Every user-supplied string (task, model,
metric and grid names, errors, provenance) is escaped for the output format.

*Provenance* on every entry and run row: git commit and dirty flag, package versions,
hardware, date, experiment hash, dataset fingerprint, number of seeds.

*Learning curves.* For suites with an override grid, ``cosmobench bench`` writes the
suite's jobs to ``ROOT/suites/<suite>.json``; the page then plots the primary metric
against each grid variable per model, with the bootstrap CI as a band.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
ARROWS = {"min": "↓", "max": "↑", "zero": "→0", None: "·"}
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

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


class Board(dict):
    """``{task: [Entry, ...]}`` (ranked entries first, then all-failed ones) plus ``notes``."""

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


def aggregate(rows: list[RunRow], manifests: list[dict] = ()) -> Board:
    """Group, summarise, rank and compare (see the module docstring)."""
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
    ok: dict[tuple, dict[int, RunRow]] = {}
    bad: dict[tuple, dict[int, RunRow]] = {}
    for r in sorted(rows, key=lambda r: r.start_time or ""):
        if specs.get(r.task) is None:
            continue
        key = (r.task, r.model, r.config_hash)
        (ok if r.status == "ok" else bad).setdefault(key, {})[r.seed] = r  # latest per seed
    board = Board(notes=notes)
    for key in sorted(set(ok) | set(bad)):
        task, model, chash = key
        per_seed = ok.get(key, {})
        runs = [per_seed[s] for s in sorted(per_seed)]
        failed = {s: (r.error or "failed") for s, r in bad.get(key, {}).items() if s not in per_seed}
        names = sorted(set().union(*(r.metrics for r in runs))) if runs else []
        e = Entry(task, model, chash, sorted(per_seed), {}, {}, run_dirs=[r.run_dir or "" for r in runs],
                  rows=runs, failed=failed, grid=grid_of.get(key, ({}, ""))[0])
        for name in names:
            vals = {r.seed: float(r.metrics[name]) for r in runs if name in r.metrics}
            e.values[name] = vals
            e.mean[name], e.std[name] = _mean_std(list(vals.values()))
            e.ci[name] = bootstrap_ci(list(vals.values()))
        board.setdefault(task, []).append(e)
    for task, entries in board.items():
        spec = specs[task]
        _rank(spec, entries)
        _compare(spec, entries)
    board.curves = _curves(board, manifests, specs)
    return Board(sorted(board.items()), notes=board.notes, curves=board.curves)


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
        point = ", ".join(f"{k}={_fmt_val(v)}" for k, v in e.grid.items())
        e.label = f"{e.model} ({point})" if point else (
            e.model if counts[e.model] == 1 else f"{e.model} [{e.config_hash[:6]}]")


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
            b = max(bases, key=lambda b: len(set(b.seeds) & set(e.seeds)))
        e.comparison = paired_test(e.values[pm], b.values[pm], spec.mode)
        e.comparison.baseline_label = b.label


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
                    others = ", ".join(f"{kk}={_fmt_val(v)}" for kk, v in j["grid"].items() if kk != k)
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


def load(root: str | Path, task: str | None = None) -> Board:
    """The leaderboard of every run recorded under ``root`` (all statuses; failed ones counted)."""
    from cosmobench.bench import read_manifests
    return aggregate(read_rows(root, task=task), read_manifests(root))  # a bad store is a StoreError


# --- formatting ------------------------------------------------------------------------
def _num(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}"


def _fmt_val(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def fmt_cell(e: Entry, name: str) -> str:
    """``mean ± std [CI lo, hi]``; spread and CI are "—" for one seed."""
    if name not in e.mean:
        return "—"
    std, ci = e.std.get(name), e.ci.get(name)
    ci_s = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "[—]"
    return f"{_num(e.mean[name])} ± {_num(std) if std is not None else '—'} {ci_s}"


def _fmt_p(c: Comparison | None, is_baseline: bool = False) -> str:
    if is_baseline:
        return "baseline"
    if c is None:
        return "—"
    if c.p_value is None:
        return f"— (n={c.n_pairs})"
    return f"{c.verdict}, p={c.p_value:.2g} (n={c.n_pairs})"


def _columns(spec, entries: list[Entry]) -> list[str]:
    names = sorted(set().union(*(e.mean for e in entries)) - {spec.primary_metric}) if entries else []
    return [spec.primary_metric, *names]


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#~!])")


def md_escape(text: Any) -> str:
    """A user-supplied string safe in a Markdown table cell: one line, Markdown and HTML
    punctuation backslash-escaped (``|`` cannot end the cell, ``<b>`` is no tag), ``&`` as an entity."""
    s = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", s.replace("&", "&amp;"))


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _short_commit(commits: set[str]) -> str:
    out = []
    for c in sorted(commits):
        dirty = c.endswith("-dirty")
        out.append(c[:10] + (" (dirty)" if dirty else ""))
    return ", ".join(out) or "unknown"


def provenance(e: Entry) -> dict[str, str]:
    """One entry's provenance as display strings."""
    rows = e.rows
    commits = {r.git_commit or "unknown" for r in rows}
    versions: dict[str, set] = {}
    for r in rows:
        for k, v in (r.versions or {}).items():
            versions.setdefault(k, set()).add(str(v))
    hw = set()
    for r in rows:
        h = r.hardware or {}
        gpus = h.get("gpus")
        hw.add(f"{h.get('machine', '?')}, {h.get('cpus', '?')} CPUs" + (f", GPUs: {', '.join(gpus)}" if gpus else ""))
    dates = sorted(d[:10] for d in (r.end_time or r.start_time for r in rows) if d)
    fps = sorted({(r.dataset_fingerprint or "unknown")[:12] for r in rows})
    return {
        "commit": _short_commit(commits) if rows else "—",
        "versions": "; ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(versions.items())) or "—",
        "hardware": " | ".join(sorted(hw)) or "—",
        "date": (dates[0] if dates and dates[0] == dates[-1] else f"{dates[0]} – {dates[-1]}") if dates else "—",
        "config_hash": e.config_hash,
        "dataset": ", ".join(fps) or "—",
        "n_seeds": str(e.n_seeds),
    }


# --- Markdown --------------------------------------------------------------------------
def to_markdown(board: Board) -> str:
    from cosmobench.registry import get_task
    parts = []
    if not any(board.values()):
        parts.append("_no runs recorded yet_\n")
    for task, entries in board.items():
        spec = get_task(task)
        cols = _columns(spec, entries)
        pm = spec.primary_metric
        base = f"; baseline: {md_escape(spec.baseline)}" if getattr(spec, "baseline", None) else ""
        parts.append(f"### {md_escape(task)} (ranked by {md_escape(pm)} {ARROWS[spec.mode]}{base})\n")
        parts.append("mean ± std [95% bootstrap CI] over seeds (— for one seed); "
                     "vs baseline: paired t-test over shared seeds at 5%.\n")
        head = ["rank", "model", "seeds", *[f"{md_escape(c)} {ARROWS[metric_mode(spec, c)]}" for c in cols],
                "vs baseline", "failed", "commit", "config", "data", "date"]
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "|".join("---" for _ in head) + "|")
        for e in entries:
            prov = provenance(e)
            cells = [str(e.rank) if e.rank else "—", md_escape(e.label), str(e.n_seeds),
                     *[fmt_cell(e, c) for c in cols], md_escape(_fmt_p(e.comparison, e.model == spec.baseline)),
                     str(len(e.failed)),
                     md_escape(prov["commit"]), f"`{e.config_hash[:8]}`", md_escape(prov["dataset"]),
                     md_escape(prov["date"])]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
        for e in entries:
            for s, why in sorted(e.failed.items()):
                parts.append(f"- failed: {md_escape(e.label)} seed {s}: {md_escape(why)}")
        prov = {(p["versions"], p["hardware"]) for p in map(provenance, entries) if p["versions"] != "—"}
        for versions, hw in sorted(prov):
            parts.append(f"- environment: {md_escape(versions)}; hardware: {md_escape(hw)}")
        parts.append("")
    for n in getattr(board, "notes", []):
        parts.append(f"_note: {md_escape(n)}_")
    return "\n".join(parts).rstrip("\n") + "\n"


# --- CSV -------------------------------------------------------------------------------
PROV_COLUMNS = ["git_commit", "dirty", "versions", "hardware", "date", "config_hash", "dataset_fingerprint",
                "n_seeds"]


def to_csv(board: Board) -> str:
    """One row per (entry, metric) with its statistics, comparison and provenance."""
    from cosmobench.registry import get_task
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["task", "rank", "model", "label", "metric", "direction", "primary", "mean", "std", "ci_low",
                "ci_high", "n_failed", "baseline", "p_value", "verdict", *PROV_COLUMNS])
    for task, entries in board.items():
        spec = get_task(task)
        for e in entries:
            commits = sorted({r.git_commit or "" for r in e.rows})
            prov = provenance(e)
            for name in _columns(spec, [e]) if e.mean else []:
                c = e.comparison if name == spec.primary_metric else None
                ci = e.ci.get(name)
                w.writerow([task, e.rank or "", e.model, e.label, name, metric_mode(spec, name) or "",
                            int(name == spec.primary_metric), repr(e.mean[name]),
                            "" if e.std.get(name) is None else repr(e.std[name]),
                            repr(ci[0]) if ci else "", repr(ci[1]) if ci else "", len(e.failed),
                            c.baseline_label if c else "", "" if c is None or c.p_value is None else repr(c.p_value),
                            c.verdict if c else "", ";".join(x.removesuffix("-dirty") for x in commits),
                            int(any(x.endswith("-dirty") for x in commits)), prov["versions"], prov["hardware"],
                            prov["date"], e.config_hash, prov["dataset"], e.n_seeds])
            if not e.mean:
                w.writerow([task, "", e.model, e.label, "", "", "", "", "", "", "", len(e.failed), "", "", "",
                            "", "", "", "", "", e.config_hash, "", 0])
    return buf.getvalue()


def runs_table(rows: list[RunRow]) -> list[dict[str, Any]]:
    """One flat record per run: identity, status, provenance, ``n_seeds`` of its experiment
    (ok seeds), and one ``metric.<name>`` column per metric."""
    seeds: dict[tuple, set] = {}
    for r in rows:
        if r.status == "ok":
            seeds.setdefault((r.task, r.model, r.config_hash), set()).add(r.seed)
    names = sorted(set().union(*(r.metrics for r in rows))) if rows else []
    out = []
    for r in rows:
        commit = r.git_commit or ""
        rec = {"run_id": r.run_id, "task": r.task, "model": r.model, "seed": r.seed, "status": r.status,
               "error": r.error or "", "git_commit": commit.removesuffix("-dirty"),
               "dirty": commit.endswith("-dirty"), "versions": json.dumps(r.versions, sort_keys=True),
               "hardware": json.dumps(r.hardware, sort_keys=True), "date": (r.end_time or r.start_time or ""),
               "start_time": r.start_time or "", "end_time": r.end_time or "",
               "wall_seconds": r.wall_seconds, "config_hash": r.config_hash,
               "dataset_fingerprint": r.dataset_fingerprint or "",
               "n_seeds": len(seeds.get((r.task, r.model, r.config_hash), ())), "run_dir": r.run_dir or ""}
        for n in names:
            rec[f"metric.{n}"] = r.metrics.get(n)
        out.append(rec)
    return out


def write_runs(rows: list[RunRow], fmt: str, out: str | Path | None) -> str | None:
    """``results --format csv|parquet``: CSV text (to ``out`` or returned) or a Parquet file."""
    table = runs_table(rows)
    cols = list(table[0]) if table else ["run_id", "task", "model", "seed", "status"]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for rec in table:
            w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in rec.items()})
        if out is None:
            return buf.getvalue()
        write_output(Path(out), buf.getvalue().encode())
        return None
    if fmt == "parquet":
        if out is None:
            raise ConfigError("--format parquet needs --out FILE.parquet")
        import pyarrow as pa
        import pyarrow.parquet as pq
        arrays = {c: [rec.get(c) for rec in table] for c in cols}
        tmp = Path(out).with_name(Path(out).name + ".tmp")
        _check_out(Path(out))
        pq.write_table(pa.table(arrays), tmp)
        tmp.replace(out)
        return None
    raise ConfigError(f"unknown results format {fmt!r}; choose csv or parquet")


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)


def write_output(out: Path, data: bytes) -> None:
    _check_out(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)


# --- HTML ------------------------------------------------------------------------------
def _slug(text: str, used: set) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"
    s, i = base, 2
    while s in used:
        s, i = f"{base}-{i}", i + 1
    used.add(s)
    return s


def _png_tag(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode()
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(alt)}</figcaption></figure>")


def _img_tags(entry: Entry) -> str:
    """The latest run's plots, embedded as base64 PNG so that the page is self-contained."""
    tags = []
    if entry.run_dirs and entry.run_dirs[-1]:
        for png in sorted(Path(entry.run_dirs[-1], "plots").glob("*.png")):
            data = png.read_bytes()
            if data.startswith(b"\x89PNG"):
                tags.append(_png_tag(data, png.stem))
    return "".join(tags)


def curve_png(curve: dict) -> bytes:
    """Primary metric vs a grid variable per model, with the 95% CI as a band."""
    from cosmobench.plots import pyplot
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    numeric = all(isinstance(p[0], (int, float)) and not isinstance(p[0], bool)
                  for pts in curve["series"].values() for p in pts)
    cats = sorted({json.dumps(p[0]) for pts in curve["series"].values() for p in pts}) if not numeric else []
    for name, pts in sorted(curve["series"].items()):
        xs = [p[0] if numeric else cats.index(json.dumps(p[0])) for p in pts]
        ys = [p[1] for p in pts]
        line, = ax.plot(xs, ys, "o-", label=name)
        if all(p[2] is not None for p in pts):
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], color=line.get_color(), alpha=0.2)
    if numeric:
        vals = [p[0] for pts in curve["series"].values() for p in pts]
        if min(vals) > 0 and max(vals) / min(vals) >= 20:
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(cats)), [json.loads(c) if isinstance(json.loads(c), str) else c for c in cats])
    ax.set_xlabel(curve["key"])
    ax.set_ylabel(f"{curve['metric']} ({'lower' if curve['mode'] == 'min' else 'higher'} is better)")
    ax.set_title(f"{curve['task']}: {curve['metric']} vs {curve['key']} (mean, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1300px;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}"
        "th{background:#f0f0f0}td.l,th.l{text-align:left}tr.failed td{color:#a00}"
        ".better{color:#060}.worse{color:#a00}figure{display:inline-block;margin:4px;vertical-align:top}"
        "img{max-width:420px}figcaption{font-size:.8em;text-align:center}.prov{font-size:.8em;color:#555}"
        "code{font-size:.95em}.scroll{overflow-x:auto;max-width:100%}")


def to_html(board: Board, title: str = "cosmobench leaderboard") -> str:
    from cosmobench.registry import get_task
    from cosmobench.results import git_commit
    used: set = set()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{_esc(title)}</h1>"
           f"<p class='prov'>generated {_esc(now)} by cosmobench at commit {_esc(git_commit() or 'unknown')}. "
           "Cells: mean ± sample std [95% percentile-bootstrap CI of the mean] over seeds; — where one seed "
           "gives no spread. ↓ lower is better, ↑ higher is better, →0 closest to zero is best. "
           "vs baseline: two-sided paired t-test of the primary metric over shared seeds, at 5%.</p>"]
    if not any(board.values()):
        out.append("<p>No runs recorded yet.</p>")
    if board:
        out.append("<nav><b>tasks:</b> " + " · ".join(
            f"<a href='#task-{_esc(re.sub(r'[^A-Za-z0-9_-]+', '-', t))}'>{_esc(t)}</a>" for t in board) + "</nav>")
    for task, entries in board.items():
        spec = get_task(task)
        cols = _columns(spec, entries)
        slug = _slug(task, used)
        base = getattr(spec, "baseline", None)
        out.append(f"<section id='task-{_esc(slug)}'><h2>{_esc(task)}</h2>"
                   f"<p>ranked by <b>{_esc(spec.primary_metric)}</b> {ARROWS[spec.mode]} "
                   f"({'lower' if spec.mode == 'min' else 'higher'} is better)"
                   f"{'; baseline: <b>' + _esc(base) + '</b>' if base else ''}</p>")
        head = ["rank", "model", "seeds", *[f"{c} {ARROWS[metric_mode(spec, c)]}" for c in cols], "vs baseline",
                "failed", "commit", "config hash", "dataset", "date"]
        out.append(f"<div class='scroll'><table class='leaderboard' id='table-{_esc(slug)}' "
                   f"data-task='{_esc(task)}'><thead><tr>"
                   + "".join(f"<th class='{'l' if h == 'model' else ''}'>{_esc(h)}</th>" for h in head)
                   + "</tr></thead><tbody>")
        for e in entries:
            prov = provenance(e)
            verdict = e.comparison.verdict if e.comparison else ""
            cells = [str(e.rank) if e.rank else "—", e.label, str(e.n_seeds), *[fmt_cell(e, c) for c in cols]]
            tds = [f"<td class='{'l' if i == 1 else ''}'>{_esc(c)}</td>" for i, c in enumerate(cells)]
            tds.append(f"<td class='{_esc(verdict)}'>{_esc(_fmt_p(e.comparison, e.model == base))}</td>")
            tds += [f"<td>{_esc(x)}</td>" for x in (len(e.failed), prov["commit"])]
            tds += [f"<td><code>{_esc(e.config_hash[:8])}</code></td>", f"<td>{_esc(prov['dataset'])}</td>",
                    f"<td>{_esc(prov['date'])}</td>"]
            out.append(f"<tr class='{'failed' if not e.seeds else ''}'>" + "".join(tds) + "</tr>")
        out.append("</tbody></table></div>")
        fails = [(e, s, why) for e in entries for s, why in sorted(e.failed.items())]
        if fails:
            out.append("<ul class='failed'>" + "".join(
                f"<li>failed: {_esc(e.label)} seed {s}: {_esc(why)}</li>" for e, s, why in fails) + "</ul>")
        out.append("<details class='prov'><summary>provenance</summary><table><tr><th class='l'>model</th>"
                   "<th class='l'>commit</th><th class='l'>package versions</th><th class='l'>hardware</th>"
                   "<th>date</th><th>config hash</th><th>dataset fingerprint</th><th>seeds</th></tr>")
        for e in entries:
            p = provenance(e)
            out.append(f"<tr><td class='l'>{_esc(e.label)}</td><td class='l'>{_esc(p['commit'])}</td>"
                       f"<td class='l'>{_esc(p['versions'])}</td><td class='l'>{_esc(p['hardware'])}</td>"
                       f"<td>{_esc(p['date'])}</td><td><code>{_esc(e.config_hash)}</code></td>"
                       f"<td>{_esc(p['dataset'])}</td><td>{_esc(p['n_seeds'])}</td></tr>")
        out.append("</table></details>")
        for curve in (c for c in getattr(board, "curves", []) if c["task"] == task):
            out.append(f"<h3>learning curve: {_esc(curve['metric'])} vs {_esc(curve['key'])} "
                       f"(suite {_esc(curve['suite'])})</h3>")
            out.append(_png_tag(curve_png(curve), f"{task} {curve['metric']} vs {curve['key']}"))
        for e in entries:
            imgs = _img_tags(e)
            if imgs:
                out.append(f"<details><summary>plots: {_esc(e.label)} (latest seed)</summary>{imgs}</details>")
        out.append("</section>")
    for n in getattr(board, "notes", []):
        out.append(f"<p class='prov'>note: {_esc(n)}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


RENDERERS = {"md": to_markdown, "csv": to_csv, "html": to_html}
