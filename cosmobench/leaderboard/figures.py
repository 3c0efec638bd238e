"""Figures of the leaderboard page (PNG bytes, headless matplotlib through :mod:`cosmobench.plots`)."""
from __future__ import annotations

import io
import json


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
