"""Leaderboards: aggregate ``ok`` runs over seeds and rank them (DESIGN §5).

Runs are grouped by (task, model, config hash); the config hash leaves out the seed,
so the seeds of one experiment form one entry, while runs of the same model with
other settings form entries of their own (labelled by the first 6 hex digits of the
hash). Within an entry a seed run more than once counts once (its latest run).
Each metric is reported as mean ± sample standard deviation over seeds (std is 0
for a single seed) with the number of seeds; entries are ranked by the task's
primary metric in its direction (``min`` or ``max``).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from cosmobench.registry import get_task
from cosmobench.results import RunRow, read_rows


@dataclass
class Entry:
    task: str
    model: str
    config_hash: str
    seeds: list[int]
    mean: dict[str, float]
    std: dict[str, float]
    run_dirs: list[str] = field(default_factory=list)
    rank: int = 0
    label: str = ""


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, s


def aggregate(rows: list[RunRow]) -> dict[str, list[Entry]]:
    """``{task: [Entry, ...]}`` ranked best first by the task's primary metric."""
    groups: dict[tuple[str, str, str], dict[int, RunRow]] = {}
    for r in sorted(rows, key=lambda r: r.start_time or ""):
        if r.status == "ok":
            groups.setdefault((r.task, r.model, r.config_hash), {})[r.seed] = r  # latest per seed
    by_task: dict[str, list[Entry]] = {}
    for (task, model, chash), per_seed in groups.items():
        runs = [per_seed[s] for s in sorted(per_seed)]
        names = sorted(set().union(*(r.metrics for r in runs)))
        mean, std = {}, {}
        for name in names:
            vals = [float(r.metrics[name]) for r in runs if name in r.metrics]
            mean[name], std[name] = _mean_std(vals)
        by_task.setdefault(task, []).append(Entry(task, model, chash, sorted(per_seed), mean, std,
                                                  [r.run_dir or "" for r in runs]))
    for task, entries in by_task.items():
        spec = get_task(task)
        sign = 1.0 if spec.mode == "min" else -1.0
        entries.sort(key=lambda e: sign * e.mean.get(spec.primary_metric, math.inf * sign))
        models = [e.model for e in entries]
        for i, e in enumerate(entries, 1):
            e.rank = i
            e.label = e.model if models.count(e.model) == 1 else f"{e.model} [{e.config_hash[:6]}]"
    return dict(sorted(by_task.items()))


def load(root: str | Path, task: str | None = None) -> dict[str, list[Entry]]:
    return aggregate(read_rows(root, task=task, status="ok"))


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4g} ± {std:.2g}"


def _columns(task: str, entries: list[Entry]) -> list[str]:
    primary = get_task(task).primary_metric
    names = sorted(set().union(*(e.mean for e in entries)) - {primary})
    return [primary, *names]


def to_markdown(board: dict[str, list[Entry]]) -> str:
    if not board:
        return "_no successful runs recorded yet_\n"
    parts = []
    for task, entries in board.items():
        spec = get_task(task)
        cols = _columns(task, entries)
        arrow = "↓" if spec.mode == "min" else "↑"
        parts.append(f"### {task} (ranked by {spec.primary_metric} {arrow})\n")
        head = ["rank", "model", "seeds", *[f"{c} {arrow}" if c == spec.primary_metric else c for c in cols]]
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "|".join("---" for _ in head) + "|")
        for e in entries:
            cells = [str(e.rank), e.label, str(len(e.seeds))]
            cells += [_fmt(e.mean[c], e.std[c]) if c in e.mean else "–" for c in cols]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def to_csv(board: dict[str, list[Entry]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["task", "rank", "model", "config_hash", "n_seeds", "metric", "mean", "std", "primary"])
    for task, entries in board.items():
        primary = get_task(task).primary_metric
        for e in entries:
            for name in _columns(task, [e]):
                w.writerow([task, e.rank, e.model, e.config_hash, len(e.seeds), name,
                            repr(e.mean[name]), repr(e.std[name]), int(name == primary)])
    return buf.getvalue()


def _img_tags(entry: Entry) -> str:
    """The latest run's plots, embedded as base64 PNG so that the page is self-contained."""
    tags = []
    if entry.run_dirs and entry.run_dirs[-1]:
        for png in sorted(Path(entry.run_dirs[-1], "plots").glob("*.png")):
            data = base64.b64encode(png.read_bytes()).decode()
            tags.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(png.stem)}">'
                        f"<figcaption>{html.escape(png.stem)}</figcaption></figure>")
    return "".join(tags)


def to_html(board: dict[str, list[Entry]]) -> str:
    css = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}"
           "td:nth-child(2){text-align:left}figure{display:inline-block;margin:4px}"
           "img{max-width:360px}")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>cosmobench leaderboard</title>"
           f"<style>{css}</style></head><body><h1>cosmobench leaderboard</h1>"]
    if not board:
        out.append("<p>No successful runs recorded yet.</p>")
    for task, entries in board.items():
        spec = get_task(task)
        cols = _columns(task, entries)
        out.append(f"<h2>{html.escape(task)}</h2><p>ranked by <b>{spec.primary_metric}</b> "
                   f"({'lower' if spec.mode == 'min' else 'higher'} is better); mean ± std over seeds</p>")
        out.append("<table><tr><th>rank</th><th>model</th><th>seeds</th>"
                   + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
        for e in entries:
            out.append(f"<tr><td>{e.rank}</td><td>{html.escape(e.label)}</td><td>{len(e.seeds)}</td>"
                       + "".join(f"<td>{_fmt(e.mean[c], e.std[c]) if c in e.mean else '–'}</td>" for c in cols)
                       + "</tr>")
        out.append("</table>")
        for e in entries:
            imgs = _img_tags(e)
            if imgs:
                out.append(f"<h3>{html.escape(task)} / {html.escape(e.label)}</h3>{imgs}")
    out.append("</body></html>")
    return "\n".join(out)


RENDERERS = {"md": to_markdown, "csv": to_csv, "html": to_html}
