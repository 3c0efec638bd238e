"""``cosmobench compare TASK A B [...]``: two or more entries of a task, paired over seeds.

Each selector names one leaderboard entry (a set of runs of one experiment over seeds):

- a model name (``mdn``): its only experiment in the store (several: an error listing them);
- a config hash or its prefix (``3fa2c1``, as the leaderboard's ``--all`` view shows it);
- ``MODEL@COMMIT``: the runs of a model made at a git commit (prefix), e.g. two versions of
  the code (``unet@7513e01 unet@a1b2c3d``).

The first selector is the reference ``A``; every other one ``B`` is compared with it, per
metric, over the seeds both share: the mean of ``B - A`` with its 95% percentile-bootstrap
CI, the two-sided paired t-test's p-value and Holm's correction across the compared metrics
(:func:`cosmobench.leaderboard.stats.paired_differences`, the statistics of the leaderboard).
With fewer than :data:`~cosmobench.leaderboard.stats.MIN_PAIRS` shared seeds the answer is
"not enough seeds to tell". Metrics: the primary and the task's headline metrics, ``--all``
every metric both have, or ``--metrics a,b``. Output: Markdown or one HTML page.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from cosmobench.errors import ConfigError


@dataclass
class Pair:
    """``b`` against the reference ``a``: one :class:`~cosmobench.leaderboard.stats.MetricDiff` per metric."""

    a: object
    b: object
    diffs: list = field(default_factory=list)

    @property
    def n_pairs(self) -> int:
        return len(set(self.a.seeds) & set(self.b.seeds))


@dataclass
class Comparison:
    task: str
    selectors: list[str]
    entries: list
    pairs: list[Pair]
    min_pairs: int


def _entries_for(rows, selector: str, task: str):
    from cosmobench.leaderboard.stats import aggregate
    model, _, commit = selector.partition("@")
    if commit:
        picked = [r for r in rows if r.model == model and (r.git_commit or "").startswith(commit)]
        what = f"runs of model {model!r} at commit {commit!r}"
    else:
        picked = [r for r in rows if r.model == selector]
        what = f"runs of model {selector!r} (nor of a config hash starting so)"
        if not picked and len(selector) >= 2:
            picked = [r for r in rows if r.config_hash.startswith(selector)]
    if not picked:
        models = sorted({r.model for r in rows})
        raise ConfigError(f"compare: no {what} of task {task!r} in the store (models with runs: "
                          f"{', '.join(models) or 'none'}; or give a config hash or MODEL@COMMIT)")
    board = aggregate(picked)
    entries = [e for e in board.get(task, []) if e.seeds]
    if len(entries) != 1:  # e.g. one model run with several configs, or at one commit
        choices = ", ".join(f"{e.config_hash[:8]} ({e.n_seeds} seeds, track {e.track})" for e in entries) or "none ok"
        raise ConfigError(f"compare: {selector!r} matches {len(entries)} experiments of task {task!r}: {choices}; "
                          f"name one by its config hash")
    return entries[0]


def compare(task: str, selectors: list[str], root: str | Path | None = None, metrics: list[str] | None = None,
            all_metrics: bool = False, min_pairs: int | None = None) -> Comparison:
    """Resolve the selectors against the results store under ``root`` and compare (see the module docstring)."""
    from cosmobench.leaderboard.stats import MIN_PAIRS, paired_differences
    from cosmobench.registry import get_task
    from cosmobench.results import default_root, read_rows
    spec = get_task(task)
    if len(selectors) < 2:
        raise ConfigError("compare needs at least two entries (models, config hashes or MODEL@COMMIT)")
    rows = read_rows(default_root(root), task=task, status="ok")
    entries = [_entries_for(rows, s, task) for s in selectors]
    tracks = {e.track for e in entries}
    if len(tracks) > 1:
        raise ConfigError(f"compare: the entries are on different data tracks ({', '.join(sorted(tracks))}): "
                          f"results on different data are not compared")
    ref = entries[0]
    if metrics:
        unknown = [m for m in metrics if not any(m in e.values for e in entries)]
        if unknown:
            have = sorted(set().union(*(e.values for e in entries)))
            raise ConfigError(f"compare: no metric {', '.join(unknown)} in these runs; they have {', '.join(have)}")
        names = metrics
    elif all_metrics:
        names = None
    else:
        names = [spec.primary_metric, *[h for h in (spec.headline or []) if h != spec.primary_metric]]
    pairs = []
    for e in entries[1:]:
        use = names if names is None else [m for m in names if m in ref.values and m in e.values]
        pairs.append(Pair(ref, e, paired_differences(spec, ref, e, use, min_pairs=min_pairs or MIN_PAIRS)))
    return Comparison(task, list(selectors), entries, pairs, min_pairs or MIN_PAIRS)


# --- rendering -------------------------------------------------------------------------
def _label(entry, selector: str) -> str:
    return selector if selector == entry.model else f"{selector} ({entry.model})"


def _rows(pair: Pair) -> list[list[str]]:
    from cosmobench.leaderboard.tables import ARROWS, fmt_p, fmt_rounded, fmt_uncertain
    out = []
    for d in pair.diffs:
        u = None if d.ci is None else (d.ci[1] - d.ci[0]) / 2
        diff = "—" if d.diff is None else fmt_uncertain(d.diff, u)
        ci = "—" if d.ci is None else f"[{fmt_rounded(d.ci[0], u)}, {fmt_rounded(d.ci[1], u)}]"
        out.append([d.metric, ARROWS[d.mode], fmt_rounded(d.mean_a, u), fmt_rounded(d.mean_b, u), diff, ci,
                    "—" if d.p_value is None else fmt_p(d.p_value), "—" if d.p_holm is None else fmt_p(d.p_holm),
                    d.verdict])
    return out


_HEAD = ["metric", "dir", "A", "B", "B − A", "95% CI", "p", "p (Holm)", "B is"]


def _summary(cmp: Comparison, pair: Pair, i: int) -> str:
    a, b = _label(pair.a, cmp.selectors[0]), _label(pair.b, cmp.selectors[i + 1])
    n = pair.n_pairs
    text = (f"A = {a} ({pair.a.n_seeds} seeds), B = {b} ({pair.b.n_seeds} seeds); paired over {n} shared seed"
            f"{'s' if n != 1 else ''}, track {pair.a.track}.")
    if n < cmp.min_pairs:
        text += (f" Not enough seeds to tell: a paired comparison needs at least {cmp.min_pairs} shared seeds "
                 f"(run more seeds of both, e.g. `cosmobench bench --seeds {max(cmp.min_pairs, 5)}`).")
    return text


def to_markdown(cmp: Comparison) -> str:
    from cosmobench.leaderboard.tables import md_escape
    parts = [f"### compare {md_escape(cmp.task)}: " + " vs ".join(md_escape(s) for s in cmp.selectors), ""]
    for i, pair in enumerate(cmp.pairs):
        parts += [md_escape(_summary(cmp, pair, i)), "", "| " + " | ".join(_HEAD) + " |",
                  "|" + "|".join("---" for _ in _HEAD) + "|"]
        for r in _rows(pair):
            parts.append("| " + " | ".join([md_escape(r[0]), *r[1:]]) + " |")
        parts.append("")
    parts.append("B − A: mean paired difference over the shared seeds, rounded by its 95% bootstrap CI; p: "
                 "two-sided paired t-test; p (Holm): corrected across the metrics of the table; B is better / worse "
                 "/ indistinguishable at 5% after the correction (differs: a metric without a direction).")
    return "\n".join(parts) + "\n"


def to_html(cmp: Comparison) -> str:
    from cosmobench.leaderboard.html_page import _CSS

    def esc(x):
        return html.escape(str(x), quote=True)
    title = f"compare {cmp.task}: " + " vs ".join(cmp.selectors)
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    for i, pair in enumerate(cmp.pairs):
        out.append(f"<div class='card'><p>{esc(_summary(cmp, pair, i))}</p><div class='scroll'>"
                   "<table class='compare'><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in _HEAD)
                   + "</tr></thead><tbody>")
        for r in _rows(pair):
            verdict = r[-1]
            out.append("<tr>" + "".join(f"<td class='{'l' if j == 0 else ''}'>{esc(c)}</td>" for j, c in
                                        enumerate(r[:-1]))
                       + f"<td class='{esc(verdict)}'>{esc(verdict)}</td></tr>")
        out.append("</tbody></table></div></div>")
    out.append("<p class='prov'>B − A: mean paired difference over the shared seeds with its 95% percentile-"
               "bootstrap CI; p: two-sided paired t-test; p (Holm): Holm-corrected across the metrics of the table; "
               "the verdict is at 5% after the correction.</p></body></html>")
    return "\n".join(out) + "\n"


RENDERERS = {"md": to_markdown, "html": to_html}
