"""Leaderboard renderers: Markdown and CSV of a :class:`~cosmobench.leaderboard.stats.Board`,
one row per run for ``cosmobench results --format csv|parquet``, and the cell formats the
HTML page shares.

*Glance view* (the default Markdown, :func:`to_markdown`): per task and data track one table
of rank, model, the verdict against the baseline (right after the model), seeds, the primary
metric as ``mean ± u`` and the task's headline metrics (``register_task(headline=...)``, at most
4) as means; at most :data:`GLANCE_WIDTH` characters wide (headline columns are dropped from
the right, then long model names shortened, until it fits). ``u`` is the half-width of the
95% bootstrap CI of the mean; numbers are rounded by their uncertainty
(:func:`fmt_uncertain`): 3 significant digits, fewer when the CI says the last ones are noise.
Everything else (every metric, bins, counts, provenance) is in ``--all``
(``to_markdown(board, full=True)``), CSV and HTML.

Full cells are ``mean ± std [95% CI]`` over seeds ("—" where one seed gives no spread); every
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
import math
import re
import textwrap
from pathlib import Path
from typing import Any, Callable

from cosmobench.errors import ConfigError
from cosmobench.io import atomic_path
from cosmobench.leaderboard.stats import Board, Comparison, Entry, metric_mode, track_order
from cosmobench.results import RunRow

ARROWS = {"min": "↓", "max": "↑", "zero": "→0", None: "·"}


# --- cells ---------------------------------------------------------------------------
def _num(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}"


def _last_digit(x: float, sig: int) -> int:
    """Decimal exponent of the last of ``sig`` significant digits of ``x``."""
    return math.floor(math.log10(abs(x))) - sig + 1


def _fixed(x: float, last: int) -> str:
    x = round(x, -last)
    return f"{x:.{max(0, -last)}f}" if last <= 0 else f"{x:.0f}"


def fmt_uncertain(mean: float | None, u: float | None = None, sig: int = 3) -> str:
    """``mean ± u`` rounded by the uncertainty ``u``: ``u`` to one significant digit (two when
    it starts with a 1), the mean to the same decimal place, but to at most one digit more
    than ``sig`` significant digits: ``0.1014, 0.003977 -> "0.101 ± 0.004"``, ``12.345, 1.7 ->
    "12.3 ± 1.7"``, ``0.99871, 0.0003 -> "0.9987 ± 0.0003"``. Without ``u``: ``sig``
    significant digits. Very small or large numbers in ``g`` notation."""
    if mean is None or not math.isfinite(mean):
        return "—" if mean is None else str(mean)
    if mean != 0 and not 1e-3 <= abs(mean) < 1e5:
        return f"{mean:.{sig}g}" + (f" ± {u:.1g}" if u else "")
    last = _last_digit(mean, sig) if mean != 0 else -sig
    if u is not None and u > 0 and math.isfinite(u):
        u_last = _last_digit(u, 2 if f"{u:e}".startswith("1") else 1)
        last = max(u_last, last - 1)
        u_text = _fixed(u, u_last) if u_last >= last and u >= 1e-3 else f"{u:.1g}"
        return f"{_fixed(mean, last)} ± {u_text}"
    return _fixed(mean, last) if last < 5 else f"{mean:.{sig}g}"


def fmt_rounded(x: float | None, u: float | None) -> str:
    """``x`` alone, rounded by the uncertainty ``u`` as in :func:`fmt_uncertain`."""
    return fmt_uncertain(x, u).split(" ± ")[0]


def ci_half_width(e: Entry, name: str) -> float | None:
    """Half the width of the 95% bootstrap CI of the mean (None for one seed)."""
    ci = e.ci.get(name)
    return None if ci is None else (ci[1] - ci[0]) / 2


def fmt_primary(e: Entry, name: str) -> str:
    """The glance view's ``mean ± u`` (``u``: CI half-width); ``mean ± —`` for one seed."""
    if name not in e.mean:
        return "—"
    u = ci_half_width(e, name)
    return fmt_uncertain(e.mean[name], u) + (" ± —" if e.ci.get(name) is None else "")


def fmt_cell(e: Entry, name: str) -> str:
    """``mean ± std [CI lo, hi]``; spread and CI are "—" for one seed."""
    if name not in e.mean:
        return "—"
    std, ci = e.std.get(name), e.ci.get(name)
    ci_s = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "[—]"
    return f"{_num(e.mean[name])} ± {_num(std) if std is not None else '—'} {ci_s}"


def fmt_p(p: float) -> str:
    """Two significant digits; three near the 5% threshold, so that rounding never shows
    ``p=0.05`` for a significant result."""
    if p < 1e-3:
        return "<0.001"
    return f"{p:.3g}" if 0.04 <= p < 0.06 else f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def _no_test(c: Comparison | None, is_baseline: bool) -> str | None:
    """The cell of an entry without a paired test (the baseline, none, too few seeds), else None."""
    if is_baseline:
        return "baseline"
    if c is None:
        return "—"
    if c.p_value is None:
        return f"— (n={c.n_pairs})"
    return None


def _which_baseline(c: Comparison, esc: Callable[[str], str] = str) -> str:
    """`` vs LABEL`` when the track holds several baseline entries (untuned and tuned), else ''."""
    return f" vs {esc(c.baseline_label)}" if c.several_baselines else ""


def fmt_verdict(c: Comparison | None, is_baseline: bool = False, esc: Callable[[str], str] = str) -> str:
    """The glance view's verdict: ``better p=0.003``, ``indistinguishable p=0.41``, ``baseline``,
    ``— (n=1)`` (fewer than 2 shared seeds); ``... vs sep (tuned 4)`` when several baseline
    entries share the track (``esc`` escapes that label for the output format)."""
    cell = _no_test(c, is_baseline)
    if cell is not None:
        return cell
    p = fmt_p(c.p_value)
    return (f"{c.verdict} p{p}" if p.startswith("<") else f"{c.verdict} p={p}") + _which_baseline(c, esc)


def fmt_comparison(c: Comparison | None, is_baseline: bool = False) -> str:
    cell = _no_test(c, is_baseline)
    return cell if cell is not None else f"{c.verdict}, p={c.p_value:.2g} (n={c.n_pairs}){_which_baseline(c)}"


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
#: the glance view fits a terminal of this many columns (per task)
GLANCE_WIDTH = 120
_SAFE_NAME = re.compile(r"^[A-Za-z0-9]+(?:[_.\-][A-Za-z0-9]+)*$")


def md_name(name: str) -> str:
    """A metric or model name for a Markdown cell: as is when it is letters and digits joined
    by single ``_ . -`` (no Markdown can start inside it), else :func:`md_escape` d."""
    return name if _SAFE_NAME.match(name) else md_escape(name)


def headline(spec, entries: list[Entry]) -> list[str]:
    """The task's declared headline metrics that its entries have (at most 4)."""
    have = set().union(*(e.mean for e in entries)) if entries else set()
    return [m for m in (getattr(spec, "headline", None) or [])[:4] if m in have and m != spec.primary_metric]


def _section_title(spec, track: str, n_tracks: int) -> str:
    base = getattr(spec, "baseline", None)
    return (f"### {md_escape(spec.name)} · track {md_escape(track)} · ranked by {md_name(spec.primary_metric)} "
            f"{ARROWS[spec.mode]}" + (f" · baseline {md_name(base)}" if base else ""))


def _glance_rows(spec, entries: list[Entry], heads: list[str], label_width: int | None) -> list[str]:
    pm, base = spec.primary_metric, getattr(spec, "baseline", None)
    has_base = bool(base) and any(e.model == base for e in entries)
    head = ["rank", "model", *(["vs baseline"] if has_base else []), "seeds",
            f"{md_name(pm)} {ARROWS[spec.mode]}", *[f"{md_name(h)} {ARROWS[metric_mode(spec, h)]}" for h in heads]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for e in entries:
        label = e.label
        if label_width is not None and len(label) > label_width:
            label = label[:max(1, label_width - 1)] + "…"
        seeds = str(e.n_seeds) + (f" ({len(e.failed)} failed)" if e.failed else "")
        cells = [str(e.rank) if e.rank else "—", md_name(label),
                 *([fmt_verdict(e.comparison, e.model == base, md_name)] if has_base else []), seeds,
                 fmt_primary(e, pm),
                 *[_headline_cell(e, h) for h in heads]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _headline_cell(e: Entry, name: str) -> str:
    if name not in e.mean:
        return "—"
    return fmt_rounded(e.mean[name], ci_half_width(e, name))  # the mean, rounded by its uncertainty


def glance_table(spec, entries: list[Entry], width: int = GLANCE_WIDTH) -> tuple[list[str], list[str]]:
    """(table lines, headline metrics left out to fit ``width``)."""
    heads = headline(spec, entries)
    dropped: list[str] = []
    label_width = None
    while True:
        lines = _glance_rows(spec, entries, heads, label_width)
        too_wide = max(len(ln) for ln in lines) > width
        if not too_wide:
            return lines, dropped
        if heads:
            dropped.insert(0, heads.pop())
            continue
        longest = max((len(e.label) for e in entries), default=0)
        label_width = min(label_width or longest, longest) - 4
        if label_width < 8:
            return lines, dropped


def _wrap(text: str, width: int = GLANCE_WIDTH, prefix: str = "") -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent="  " if prefix else "",
                         break_on_hyphens=False, break_long_words=True)


def to_markdown(board: Board, full: bool = False) -> str:
    """The glance view (see the module docstring); ``full``: every metric and the provenance
    columns (``cosmobench leaderboard --all``)."""
    from cosmobench.registry import get_task
    if full:
        return _full_markdown(board)
    parts = []
    if not any(board.values()):
        parts.append("_no runs recorded yet_\n")
    for task, entries in board.items():
        spec = get_task(task)
        tracks = track_order(entries)
        for track in tracks:
            group = [e for e in entries if e.track == track]
            parts.append(_section_title(spec, track, len(tracks)) + "\n")
            lines, dropped = glance_table(spec, group)
            parts += lines
            parts.append("")
            tuned = sorted({e.tuned.get("trials") for e in group if e.tuned}, key=str)
            legend = ("mean ± half-width of the 95% bootstrap CI over seeds, rounded by it; vs baseline: paired "
                      "t-test over shared seeds at 5%"
                      + (f"; (tuned N): the best of N Optuna trials on train/val ({', '.join(map(str, tuned))} "
                         f"trials per model)" if tuned else "")
                      + (f"; left out to fit {GLANCE_WIDTH} columns: {', '.join(dropped)}" if dropped else "")
                      + ". Every metric: --all, --format csv|html.")
            parts += _wrap(legend)
            for e in group:
                for s, why in sorted(e.failed.items()):
                    parts += _wrap(f"failed: {md_escape(e.label)} seed {s}: {md_escape(why)}", prefix="- ")
            parts.append("")
    for n in getattr(board, "notes", []):
        parts += _wrap(f"_note: {md_escape(n)}_")
    return "\n".join(parts).rstrip("\n") + "\n"


def _full_markdown(board: Board) -> str:
    from cosmobench.registry import get_task
    parts = []
    if not any(board.values()):
        parts.append("_no runs recorded yet_\n")
    for task, entries in board.items():
        spec = get_task(task)
        pm = spec.primary_metric
        base = f"; baseline: {md_escape(spec.baseline)}" if getattr(spec, "baseline", None) else ""
        tracks = track_order(entries)
        for track in tracks:
            group = [e for e in entries if e.track == track]
            cols = columns(spec, group)
            parts.append(f"### {md_escape(task)} (track {md_escape(track)}; ranked by {md_escape(pm)} "
                         f"{ARROWS[spec.mode]}{base})\n")
            parts.append("mean ± std [95% bootstrap CI] over seeds (— for one seed); "
                         "vs baseline: paired t-test over shared seeds at 5%.\n")
            head = ["rank", "model", "vs baseline", "seeds",
                    *[f"{md_escape(c)} {ARROWS[metric_mode(spec, c)]}" for c in cols],
                    "failed", "tuned", "commit", "config", "data", "date"]
            parts.append("| " + " | ".join(head) + " |")
            parts.append("|" + "|".join("---" for _ in head) + "|")
            for e in group:
                prov = provenance(e)
                cells = [str(e.rank) if e.rank else "—", md_escape(e.label),
                         md_escape(fmt_comparison(e.comparison, e.model == spec.baseline)), str(e.n_seeds),
                         *[fmt_cell(e, c) for c in cols], str(len(e.failed)),
                         f"{e.tuned.get('trials')} trials" if e.tuned else "—",
                         md_escape(prov["commit"]), f"`{e.config_hash[:8]}`", md_escape(prov["dataset"]),
                         md_escape(prov["date"])]
                parts.append("| " + " | ".join(cells) + " |")
            parts.append("")
            for e in group:
                for s, why in sorted(e.failed.items()):
                    parts.append(f"- failed: {md_escape(e.label)} seed {s}: {md_escape(why)}")
            prov = {(p["versions"], p["hardware"]) for p in map(provenance, group) if p["versions"] != "—"}
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
    w.writerow(["task", "track", "rank", "model", "label", "tuned_trials", "metric", "direction", "primary", "mean", "std", "ci_low",
                "ci_high", "n_failed", "baseline", "p_value", "verdict", *PROV_COLUMNS])
    for task, entries in board.items():
        spec = get_task(task)
        for e in entries:
            commits = sorted({r.git_commit or "" for r in e.rows})
            prov = provenance(e)
            for name in columns(spec, [e]) if e.mean else []:
                c = e.comparison if name == spec.primary_metric else None
                ci = e.ci.get(name)
                w.writerow([task, e.track, e.rank or "", e.model, e.label, (e.tuned or {}).get("trials", ""), name, metric_mode(spec, name) or "",
                            int(name == spec.primary_metric), repr(e.mean[name]),
                            "" if e.std.get(name) is None else repr(e.std[name]),
                            repr(ci[0]) if ci else "", repr(ci[1]) if ci else "", len(e.failed),
                            c.baseline_label if c else "", "" if c is None or c.p_value is None else repr(c.p_value),
                            c.verdict if c else "", ";".join(x.removesuffix("-dirty") for x in commits),
                            int(any(x.endswith("-dirty") for x in commits)), prov["versions"], prov["hardware"],
                            prov["date"], e.config_hash, prov["dataset"], e.n_seeds])
            if not e.mean:
                w.writerow([task, e.track, "", e.model, e.label, (e.tuned or {}).get("trials", ""), "", "", "", "", "",
                            "", "", len(e.failed), "", "", "",
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
