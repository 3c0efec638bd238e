"""Leaderboard renderers: Markdown and CSV of a :class:`~cosmobench.leaderboard.stats.Board`,
one row per run for ``cosmobench results --format csv|parquet``, and the cell formats the
HTML page shares.

Cells are ``mean ± std [95% CI]`` over seeds ("—" where one seed gives no spread); every
metric carries its direction: ↓ lower is better, ↑ higher is better, →0 closest to zero is
best, · no declared direction. *Provenance* on every entry and run row: git commit and
dirty flag, package versions, hardware, date, experiment hash, dataset fingerprint, number
of seeds. Every user-supplied string (task, model, metric and grid names, errors,
provenance) is escaped for the output format. Files are written atomically
(:func:`cosmobench.io.atomic_path`).
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from cosmobench.errors import ConfigError
from cosmobench.io import atomic_path
from cosmobench.leaderboard.stats import Board, Comparison, Entry, metric_mode
from cosmobench.results import RunRow

ARROWS = {"min": "↓", "max": "↑", "zero": "→0", None: "·"}


# --- cells ---------------------------------------------------------------------------
def _num(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}"


def fmt_cell(e: Entry, name: str) -> str:
    """``mean ± std [CI lo, hi]``; spread and CI are "—" for one seed."""
    if name not in e.mean:
        return "—"
    std, ci = e.std.get(name), e.ci.get(name)
    ci_s = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "[—]"
    return f"{_num(e.mean[name])} ± {_num(std) if std is not None else '—'} {ci_s}"


def fmt_comparison(c: Comparison | None, is_baseline: bool = False) -> str:
    if is_baseline:
        return "baseline"
    if c is None:
        return "—"
    if c.p_value is None:
        return f"— (n={c.n_pairs})"
    return f"{c.verdict}, p={c.p_value:.2g} (n={c.n_pairs})"


def columns(spec, entries: list[Entry]) -> list[str]:
    names = sorted(set().union(*(e.mean for e in entries)) - {spec.primary_metric}) if entries else []
    return [spec.primary_metric, *names]


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#~!])")


def md_escape(text: Any) -> str:
    """A user-supplied string safe in a Markdown table cell: one line, Markdown and HTML
    punctuation backslash-escaped (``|`` cannot end the cell, ``<b>`` is no tag), ``&`` as an entity."""
    s = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", s.replace("&", "&amp;"))


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
        cols = columns(spec, entries)
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
                     *[fmt_cell(e, c) for c in cols], md_escape(fmt_comparison(e.comparison, e.model == spec.baseline)),
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
            for name in columns(spec, [e]) if e.mean else []:
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
        _check_out(Path(out))
        with atomic_path(Path(out)) as tmp:
            pq.write_table(pa.table(arrays), tmp)
        return None
    raise ConfigError(f"unknown results format {fmt!r}; choose csv or parquet")


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)


def write_output(out: Path, data: bytes) -> None:
    """``data`` to the file ``out``, atomically."""
    _check_out(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
