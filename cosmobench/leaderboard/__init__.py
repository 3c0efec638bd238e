"""Leaderboards of the recorded runs: :mod:`~cosmobench.leaderboard.stats` aggregates runs
over seeds, ranks them and tests them against the baseline; :mod:`~cosmobench.leaderboard.tables`
renders Markdown and CSV (and the per-run table of ``cosmobench results``),
:mod:`~cosmobench.leaderboard.html_page` one self-contained HTML page with the PNG figures
of :mod:`~cosmobench.leaderboard.figures`.
"""
from cosmobench.leaderboard.figures import curve_png
from cosmobench.leaderboard.html_page import to_html
from cosmobench.leaderboard.stats import (ALPHA, METRIC_MODES, N_BOOT, Board, Comparison, Entry, aggregate,
                                          bootstrap_ci, load, metric_mode, paired_test)
from cosmobench.leaderboard.tables import (ARROWS, fmt_cell, md_escape, provenance, runs_table, to_csv,
                                           to_markdown, write_output, write_runs)

#: ``--format`` -> renderer of a :class:`Board`
RENDERERS = {"md": to_markdown, "csv": to_csv, "html": to_html}

__all__ = ["METRIC_MODES", "ARROWS", "ALPHA", "N_BOOT", "Board", "Entry", "Comparison", "metric_mode",
           "bootstrap_ci", "paired_test", "aggregate", "load", "fmt_cell", "md_escape", "provenance",
           "to_markdown", "to_csv", "runs_table", "write_runs", "write_output", "to_html", "curve_png",
           "RENDERERS"]
