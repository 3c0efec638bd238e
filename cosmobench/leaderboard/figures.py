"""Figures of the leaderboard page: learning curves (PNG bytes, headless matplotlib through
:mod:`cosmobench.plots`) and the per-task dot-and-CI plot (inline SVG: crisp, tiny, no matplotlib)."""
from __future__ import annotations

import io
import json


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def curve_png(curve: dict) -> bytes:
    """Primary metric vs a grid variable per series (model, or strategy of a transfer suite), with
    the 95% CI as a band. A numeric axis may hold null (e.g. ``data.subset=null``: every row):
    drawn right of the largest value and labelled "all"."""
    from cosmobench.plots import pyplot
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs_all = [p[0] for pts in curve["series"].values() for p in pts]
    numeric = any(_is_number(x) for x in xs_all) and all(_is_number(x) or x is None for x in xs_all)
    cats = sorted({json.dumps(x) for x in xs_all}) if not numeric else []
    nums = [x for x in xs_all if _is_number(x)]
    log = numeric and min(nums) > 0 and max(nums) / min(nums) >= 4 and (None in xs_all or max(nums) / min(nums) >= 20)
    at_all = (max(nums) * 2 if log else max(nums) + 0.25 * ((max(nums) - min(nums)) or 1)) if numeric else None

    def pos(x):
        return (at_all if x is None else x) if numeric else cats.index(json.dumps(x))
    for name, pts in sorted(curve["series"].items()):
        pts = sorted(pts, key=lambda p: pos(p[0]))
        xs = [pos(p[0]) for p in pts]
        ys = [p[1] for p in pts]
        line, = ax.plot(xs, ys, "o-", label=name)
        if all(p[2] is not None for p in pts):
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], color=line.get_color(), alpha=0.2)
    if log:
        ax.set_xscale("log")
    if numeric and None in xs_all:
        ticks = sorted(set(nums)) + [at_all]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks[:-1]] + ["all"])
        ax.minorticks_off()
    elif not numeric:
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


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    import math
    span = hi - lo
    if span <= 0:
        return [lo]
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (m * step) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def dot_ci_svg(metric: str, mode: str, entries, baseline: str | None) -> str:
    """Inline SVG: one row per entry (in rank order), the mean as a dot and the 95% bootstrap
    CI as a bar; the baseline in orange with a dashed line at its mean. Text is escaped."""
    import html
    import math
    rows = [e for e in entries if metric in e.mean and math.isfinite(e.mean[metric])]
    if not rows:
        return "<p class='legend'>no finished run to plot</p>"
    vals = [v for e in rows for v in (e.mean[metric], *(e.ci.get(metric) or ()))]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    labels = [(e.label if len(e.label) <= 24 else e.label[:23] + "…") + (" (baseline)" if e.model == baseline else "")
              for e in rows]
    # the label column grows with the longest label (~6.5 px per character at font-size 11)
    left, width, row_h, top = max(150, 12 + round(6.5 * max(map(len, labels)))), 270, 22, 26
    height = top + row_h * len(rows) + 30

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * width

    esc = html.escape
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {left + width + 20} {height}' "
           f"role='img' aria-label='{esc(metric)} per model: mean and 95% CI' class='dotci'>",
           f"<text x='{left}' y='14' font-size='12' fill='#333'>{esc(metric)} "
           f"({'lower' if mode == 'min' else 'higher'} is better), mean and 95% CI</text>"]
    for t in _nice_ticks(lo, hi):
        out.append(f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top - 4}' y2='{height - 24}' stroke='#eee'/>"
                   f"<text x='{x(t):.1f}' y='{height - 10}' font-size='10' text-anchor='middle' fill='#555'>"
                   f"{t:.4g}</text>")
    base = next((e for e in rows if e.model == baseline), None)
    if base is not None:
        bx = x(base.mean[metric])
        out.append(f"<line x1='{bx:.1f}' x2='{bx:.1f}' y1='{top - 4}' y2='{height - 24}' stroke='#e07000' "
                   f"stroke-dasharray='4 3'/>")
    for i, e in enumerate(rows):
        y = top + row_h * i + row_h / 2
        is_base = e.model == baseline
        color = "#e07000" if is_base else "#1f5fa8"
        out.append(f"<text x='{left - 8}' y='{y + 4:.1f}' font-size='11' text-anchor='end' fill='#222'>"
                   f"{esc(labels[i])}</text>")
        ci = e.ci.get(metric)
        if ci:
            out.append(f"<line x1='{x(ci[0]):.1f}' x2='{x(ci[1]):.1f}' y1='{y:.1f}' y2='{y:.1f}' "
                       f"stroke='{color}' stroke-width='2.5'/>")
        tip = (f"<title>{esc(e.label)}: {e.mean[metric]:.6g}" + (f" [{ci[0]:.6g}, {ci[1]:.6g}]" if ci else "")
               + f" ({e.n_seeds} seeds)</title>")
        out.append(f"<rect x='{x(e.mean[metric]) - 5:.1f}' y='{y - 5:.1f}' width='10' height='10' fill='{color}'>"
                   f"{tip}</rect>" if is_base else
                   f"<circle cx='{x(e.mean[metric]):.1f}' cy='{y:.1f}' r='5' fill='{color}'>{tip}</circle>")
    out.append("</svg>")
    return "".join(out)
