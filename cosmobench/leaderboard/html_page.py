"""The leaderboard as one self-contained HTML report (no external resources, no network).

Per task and data track a *summary card*: a dot-and-CI plot of the primary metric per
model (inline SVG, :func:`cosmobench.leaderboard.figures.dot_ci_svg`; the baseline marked)
beside the glance table (rank, model, verdict against the baseline right after the model,
seeds, primary metric, headline metrics). On demand (``<details>``): every metric in a
sortable table with a sticky model column (it scrolls inside its own box, so the page itself
never scrolls sideways), the provenance of every entry, learning curves of grid suites and
each entry's latest plots (base64 PNG). One small inline script makes the table columns
sortable (click a header); without it the page reads the same. Every user-supplied string
is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cosmobench.leaderboard.figures import curve_png, dot_ci_svg
from cosmobench.leaderboard.stats import Board, Entry, metric_mode, track_order
from cosmobench.leaderboard.tables import (ARROWS, ci_half_width, columns, fmt_cell, fmt_comparison, fmt_primary,
                                           fmt_rounded, fmt_verdict, headline, provenance)


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


_CSS = ("*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1240px;"
        "padding:0 1em;color:#222;overflow-wrap:anywhere}"
        "h1{font-size:1.5em}h2{margin:0 0 .2em;font-size:1.25em}.track{font-size:.7em;color:#555;font-weight:normal;"
        "border:1px solid #bbb;border-radius:9px;padding:1px 7px;margin-left:.4em}"
        ".card{border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;margin:1.2em 0;box-shadow:0 1px 3px #0001}"
        ".card-body{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}.plot{flex:0 1 380px;min-width:0}"
        ".plot svg{width:100%;height:auto}.glance-box{flex:1 1 560px;min-width:0;overflow-x:auto}"
        "table.glance th{white-space:normal;vertical-align:bottom;max-width:7em}td,th{overflow-wrap:normal}"
        "table.glance td.l{white-space:normal;min-width:6em}"
        "table{border-collapse:collapse;margin:.3em 0 .8em;font-size:.88em}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}"
        "th{background:#f0f0f0;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:' ▲'}"
        "th[aria-sort=descending]::after{content:' ▼'}td.l,th.l{text-align:left}tr.failed td{color:#a00}"
        "td.better{color:#060;font-weight:600}td.worse{color:#a00;font-weight:600}"
        "tr.baseline td{background:#f6f6ff}.scroll{overflow-x:auto;max-width:100%}"
        ".scroll .sticky{position:sticky;left:0;background:#fff;z-index:1;box-shadow:1px 0 0 #ccc}"
        ".scroll th.sticky{background:#f0f0f0}"
        "figure{display:inline-block;margin:4px;vertical-align:top;max-width:100%}img{max-width:min(420px,100%)}"
        "figcaption{font-size:.8em;text-align:center}.prov{font-size:.8em;color:#555}details{margin:.35em 0}"
        "summary{cursor:pointer;color:#035}code{font-size:.95em}.legend{font-size:.8em;color:#555;margin:.2em 0}")

# Sort a table by a column on a click on its header: numbers by the cell's data-v, else by text.
_JS = """
document.addEventListener('click', function (ev) {
  var th = ev.target.closest('th');
  if (!th || !th.closest('table.sortable')) return;
  var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  var asc = th.getAttribute('aria-sort') !== 'ascending';
  table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
  th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
  var key = function (tr) {
    var td = tr.cells[col];
    if (!td) return [1, ''];
    var v = td.getAttribute('data-v');
    return v !== null && v !== '' ? [0, parseFloat(v)] : [0, td.textContent.trim().toLowerCase()];
  };
  Array.from(body.rows).sort(function (a, b) {
    var x = key(a), y = key(b);
    if (x[0] !== y[0]) return x[0] - y[0];
    var c = x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
    return asc ? c : -c;
  }).forEach(function (tr) { body.appendChild(tr); });
});
"""


def _num_td(value: float | None, text: str, cls: str = "") -> str:
    v = "" if value is None else repr(float(value))
    return f"<td class='{cls}' data-v='{_esc(v)}'>{_esc(text)}</td>"


def _breakable(name: str) -> str:
    """An escaped header that may wrap after its underscores (long metric names)."""
    return "_<wbr>".join(_esc(part) for part in str(name).split("_"))


def _glance_table(spec, entries: list[Entry], slug: str) -> str:
    pm, base = spec.primary_metric, getattr(spec, "baseline", None)
    heads = headline(spec, entries)
    head = ["rank", "model", "vs baseline", "seeds", f"{pm} {ARROWS[spec.mode]} (± 95% CI)",
            *[f"{h} {ARROWS[metric_mode(spec, h)]}" for h in heads]]
    out = [f"<table class='glance sortable' id='glance-{_esc(slug)}'><thead><tr>"
           + "".join(f"<th class='{'l' if h in ('model', 'vs baseline') else ''}' scope='col'>{_breakable(h)}</th>"
                     for h in head) + "</tr></thead><tbody>"]
    for e in entries:
        verdict = e.comparison.verdict if e.comparison else ""
        p = e.comparison.p_value if e.comparison else None
        tds = [_num_td(e.rank, e.rank or "—"), f"<td class='l'><b>{_esc(e.label)}</b></td>",
               f"<td class='l {_esc(verdict)}' data-v='{_esc('' if p is None else repr(p))}'>"
               f"{_esc(fmt_verdict(e.comparison, e.model == base))}</td>",
               _num_td(e.n_seeds, f"{e.n_seeds}" + (f" ({len(e.failed)} failed)" if e.failed else "")),
               _num_td(e.mean.get(pm), fmt_primary(e, pm))]
        tds += [_num_td(e.mean.get(h), fmt_rounded(e.mean[h], ci_half_width(e, h)) if h in e.mean else "—")
                for h in heads]
        cls = "failed" if not e.seeds else ("baseline" if e.model == base else "")
        out.append(f"<tr class='{cls}'>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _full_table(spec, entries: list[Entry], slug: str, task: str) -> str:
    cols = columns(spec, entries)
    base = getattr(spec, "baseline", None)
    head = ["rank", "model", "vs baseline", "seeds", *[f"{c} {ARROWS[metric_mode(spec, c)]}" for c in cols],
            "failed", "tuned", "commit", "config hash", "dataset", "date"]
    out = [f"<div class='scroll'><table class='leaderboard sortable' id='table-{_esc(slug)}' "
           f"data-task='{_esc(task)}'><thead><tr>"
           + "".join(f"<th class='{'l sticky' if h == 'model' else ''}' scope='col'>{_esc(h)}</th>" for h in head)
           + "</tr></thead><tbody>"]
    for e in entries:
        prov = provenance(e)
        verdict = e.comparison.verdict if e.comparison else ""
        tds = [_num_td(e.rank, e.rank or "—"), f"<td class='l sticky'>{_esc(e.label)}</td>",
               f"<td class='{_esc(verdict)}'>{_esc(fmt_comparison(e.comparison, e.model == base))}</td>",
               _num_td(e.n_seeds, e.n_seeds)]
        tds += [_num_td(e.mean.get(c), fmt_cell(e, c)) for c in cols]
        tds += [_num_td(len(e.failed), len(e.failed)), _num_td((e.tuned or {}).get("trials"),
                                                               (e.tuned or {}).get("trials", "—")),
                f"<td>{_esc(prov['commit'])}</td>", f"<td><code>{_esc(e.config_hash[:8])}</code></td>",
                f"<td>{_esc(prov['dataset'])}</td>", f"<td>{_esc(prov['date'])}</td>"]
        out.append(f"<tr class='{'failed' if not e.seeds else ''}'>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _provenance_table(entries: list[Entry]) -> str:
    out = ["<div class='scroll'><table class='sortable'><thead><tr><th class='l'>model</th>"
           "<th class='l'>commit</th><th class='l'>package versions</th><th class='l'>hardware</th>"
           "<th>date</th><th>config hash</th><th>dataset fingerprint</th><th>seeds</th><th>tuned</th></tr></thead>"
           "<tbody>"]
    for e in entries:
        p = provenance(e)
        out.append(f"<tr><td class='l'>{_esc(e.label)}</td><td class='l'>{_esc(p['commit'])}</td>"
                   f"<td class='l'>{_esc(p['versions'])}</td><td class='l'>{_esc(p['hardware'])}</td>"
                   f"<td>{_esc(p['date'])}</td><td><code>{_esc(e.config_hash)}</code></td>"
                   f"<td>{_esc(p['dataset'])}</td><td>{_esc(p['n_seeds'])}</td>"
                   f"<td>{_esc((e.tuned or {}).get('trials', '—'))}</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _curve_track(curve: dict, entries) -> str:
    """The track whose entries a learning curve draws (a transfer suite's are on the real
    track): the first one with an entry on the curve's grid key, else the first track."""
    tracks = track_order(entries)
    return next((t for t in tracks if any(e.track == t and curve["key"] in e.grid for e in entries)), tracks[0])


def to_html(board: Board, title: str = "cosmobench leaderboard") -> str:
    from cosmobench.registry import get_task
    from cosmobench.results import git_commit
    used: set = set()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{_esc(title)}</h1>"
           f"<p class='prov'>generated {_esc(now)} by cosmobench at commit {_esc(git_commit() or 'unknown')}. "
           "Summary: mean ± half-width of the 95% percentile-bootstrap CI of the mean over seeds, rounded by it; "
           "the plot shows the mean (dot) and that CI (bar) per model, the baseline in orange. vs baseline: "
           "two-sided paired t-test of the primary metric over shared seeds, at 5%. All metrics: mean ± sample "
           "std [95% CI]; — where one seed gives no spread. ↓ lower is better, ↑ higher is better, →0 closest "
           "to zero is best. Click a column header to sort. (tuned N): the best configuration of N Optuna trials "
           "on the train/validation splits.</p>"]
    if not any(board.values()):
        out.append("<p>No runs recorded yet.</p>")
    if board:
        out.append("<nav><b>tasks:</b> " + " · ".join(
            f"<a href='#task-{_esc(re.sub(r'[^A-Za-z0-9_-]+', '-', t))}'>{_esc(t)}</a>" for t in board) + "</nav>")
    for task, entries in board.items():
        spec = get_task(task)
        base = getattr(spec, "baseline", None)
        task_slug = _slug(task, used)
        out.append(f"<section id='task-{_esc(task_slug)}'>")
        for i, track in enumerate(track_order(entries)):
            group = [e for e in entries if e.track == track]
            slug = task_slug if i == 0 else _slug(f"{task}-{track}", used)
            out.append(f"<div class='card' id='card-{_esc(slug)}'><h2>{_esc(task)}<span class='track'>track "
                       f"{_esc(track)}</span></h2>"
                       f"<p class='legend'>ranked by <b>{_esc(spec.primary_metric)}</b> {ARROWS[spec.mode]} "
                       f"({'lower' if spec.mode == 'min' else 'higher'} is better)"
                       f"{'; baseline: <b>' + _esc(base) + '</b>' if base else ''}</p>")
            out.append("<div class='card-body'><div class='plot'>"
                       + dot_ci_svg(spec.primary_metric, spec.mode, group, base) + "</div><div class='glance-box'>"
                       + _glance_table(spec, group, slug) + "</div></div>")
            fails = [(e, s, why) for e in group for s, why in sorted(e.failed.items())]
            if fails:
                out.append("<ul class='failed'>" + "".join(
                    f"<li>failed: {_esc(e.label)} seed {s}: {_esc(why)}</li>" for e, s, why in fails) + "</ul>")
            n_cols = len(columns(spec, group))
            out.append(f"<details class='all'><summary>all {n_cols} metrics</summary>"
                       + _full_table(spec, group, slug, task) + "</details>")
            out.append("<details class='prov'><summary>provenance</summary>" + _provenance_table(group)
                       + "</details>")
            for curve in (c for c in getattr(board, "curves", []) if c["task"] == task
                          and _curve_track(c, entries) == track):
                out.append(f"<details open><summary>learning curve: {_esc(curve['metric'])} vs "
                           f"{_esc(curve['key'])} (suite {_esc(curve['suite'])})</summary>")
                out.append(_png_tag(curve_png(curve), f"{task} {curve['metric']} vs {curve['key']}") + "</details>")
            for e in group:
                imgs = _img_tags(e)
                if imgs:
                    out.append(f"<details><summary>plots: {_esc(e.label)} (latest seed)</summary>{imgs}</details>")
            out.append("</div>")
        out.append("</section>")
    for n in getattr(board, "notes", []):
        out.append(f"<p class='prov'>note: {_esc(n)}</p>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"
