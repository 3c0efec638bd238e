"""Leaderboards of the recorded runs: :mod:`~cosmobench.leaderboard.stats` aggregates runs
over seeds, ranks them and tests them against the baseline; :mod:`~cosmobench.leaderboard.tables`
renders the Markdown glance view (``--all``: every metric), CSV (and the per-run table of
``cosmobench results``), :mod:`~cosmobench.leaderboard.html_page` one self-contained HTML
report with the figures of :mod:`~cosmobench.leaderboard.figures` (dot-and-CI SVG per task,
learning-curve PNGs). ``cosmobench compare`` (:mod:`cosmobench.compare`) uses the same
statistics (:func:`~cosmobench.leaderboard.stats.paired_differences`).
"""
from cosmobench.leaderboard.figures import curve_png, dot_ci_svg
from cosmobench.leaderboard.html_page import to_html
from cosmobench.leaderboard.stats import (ALPHA, METRIC_MODES, MIN_PAIRS, N_BOOT, Board, Comparison, Entry,
                                          MetricDiff, aggregate, bootstrap_ci, holm, load, metric_mode,
                                          paired_differences, paired_test, read_tuned, run_track, track_order)
from cosmobench.leaderboard.tables import (ARROWS, GLANCE_WIDTH, fmt_cell, fmt_p, fmt_uncertain, fmt_verdict,
                                           glance_table, md_escape, provenance, runs_table, to_csv, to_markdown,
                                           write_output, write_runs)

#: ``--format`` -> renderer of a :class:`Board`
RENDERERS = {"md": to_markdown, "csv": to_csv, "html": to_html}

__all__ = ["METRIC_MODES", "ARROWS", "ALPHA", "N_BOOT", "MIN_PAIRS", "GLANCE_WIDTH", "Board", "Entry",
           "Comparison", "MetricDiff", "metric_mode", "bootstrap_ci", "paired_test", "paired_differences", "holm",
           "aggregate", "load", "read_tuned", "run_track", "track_order", "fmt_cell", "fmt_uncertain", "fmt_p",
           "fmt_verdict", "glance_table", "md_escape", "provenance", "to_markdown", "to_csv", "runs_table",
           "write_runs", "write_output", "to_html", "curve_png", "dot_ci_svg", "RENDERERS"]
