"""The leaderboard as one self-contained HTML page: a table per task, learning curves,
each entry's latest plots and provenance. No external resources and no scripts: images are
embedded as base64 PNG, and every user-supplied string is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cosmobench.leaderboard.figures import curve_png
from cosmobench.leaderboard.stats import Board, Entry, metric_mode
from cosmobench.leaderboard.tables import ARROWS, columns, fmt_cell, fmt_comparison, provenance


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


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
        cols = columns(spec, entries)
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
            tds.append(f"<td class='{_esc(verdict)}'>{_esc(fmt_comparison(e.comparison, e.model == base))}</td>")
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
