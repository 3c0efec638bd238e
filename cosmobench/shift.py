"""Domain shift of a trained model: its checkpoint scored on the test split of the data it was
trained on (e.g. the simulator) and on other data (e.g. a real survey), side by side.

    cosmobench shift morphology --checkpoint RUN/checkpoints/best.ckpt data.dataset=galaxy10-decals

Both scores are ordinary ``cosmobench test`` runs (:func:`cosmobench.runner.test`: run dirs and
rows, each on its own leaderboard track); the report -- every metric both runs have, on the
source and the target data, and the gap ``target - source`` in the metric's units -- is printed
and written to ``shift.json`` in the target run's dir. The source score re-runs the test split of
the checkpoint's own config (the same seed; without a ``data.test_source``, which names other
data), so it is comparable whatever the training run recorded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

SHIFT_FILE = "shift.json"


def shift(task: str, checkpoint: str | Path, overrides: Iterable[str] = (), config_file: str | Path | None = None,
          root: str | Path | None = None) -> dict[str, Any]:
    """Score ``checkpoint`` on its own data and on the data ``config_file``/``overrides`` describe;
    returns (and writes to ``shift.json`` of the target run) the report (module docstring)."""
    from cosmobench import runner
    from cosmobench.io import atomic_path
    from cosmobench.leaderboard.stats import run_track
    overrides = list(overrides)
    if not overrides and config_file is None:
        from cosmobench.errors import ConfigError
        raise ConfigError("shift needs the target data: -c LAYER and/or data.* overrides (e.g. data.dataset=NAME)")
    from cosmobench.checkpoints import checkpoint_config
    own, _ = checkpoint_config(task, checkpoint)
    other, _ = checkpoint_config(task, checkpoint, None, overrides, config_file)
    if all(own["data"].get(k) == other["data"].get(k) for k in ("source", "test_source", "dataset", "path", "test_path")):
        from cosmobench.errors import ConfigError
        raise ConfigError(f"shift: the target config describes the data the checkpoint was trained on "
                          f"(data.source={own['data'].get('source')!r}); give other data (e.g. data.dataset=NAME)")
    target = runner.test(task, checkpoint, overrides=overrides, config_file=config_file, root=root)
    # the source side scores the training data's own test split, not a data.test_source
    source = runner.test(task, checkpoint, root=root,
                         overrides=["data.test_source=null"] if own["data"].get("test_source") else [])
    names = [m for m in source.metrics if m in target.metrics]
    report = {"checkpoint": str(Path(checkpoint).expanduser().resolve()),
              "source": {"run_dir": str(source.run_dir), "track": run_track(str(source.run_dir)),
                         "metrics": {m: source.metrics[m] for m in names}},
              "target": {"run_dir": str(target.run_dir), "track": run_track(str(target.run_dir)),
                         "metrics": {m: target.metrics[m] for m in names}},
              "gap": {m: target.metrics[m] - source.metrics[m] for m in names}}
    with atomic_path(Path(target.run_dir) / SHIFT_FILE) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_report(report: dict[str, Any], primary: str | None = None) -> str:
    """The report as a fixed-width table, the primary metric first."""
    src, tgt = report["source"], report["target"]
    names = sorted(report["gap"], key=lambda m: (m != primary, m))
    w = max([len(m) for m in names] + [6])
    lines = [f"{'metric':<{w}}  {'source ' + src['track']:>24}  {'target ' + tgt['track']:>32}  "
             f"{'gap (target - source)':>22}"]
    for m in names:
        lines.append(f"{m:<{w}}  {src['metrics'][m]:>24.4g}  {tgt['metrics'][m]:>32.4g}  {report['gap'][m]:>+22.4g}")
    lines.append(f"source run: {src['run_dir']}\ntarget run: {tgt['run_dir']} ({SHIFT_FILE})")
    return "\n".join(lines) + "\n"


__all__ = ["SHIFT_FILE", "shift", "format_report"]
