"""The glance view of every built-in task (what `make run` and `cosmobench bench` print):
at most 120 columns whatever the values and model names, the verdict right after the model."""
import re

import pytest

from cosmobench import leaderboard as L
from cosmobench.registry import list_tasks
from cosmobench.results import RunRow

# awkward values: long decimals, large and tiny magnitudes, negative numbers
VALUES = (0.1003977123, 12345.678912, -0.000123456789, 3.2e-7, 0.99871234)


def _rows(spec):
    metrics = [spec.primary_metric, *(spec.headline or []), "n_extra_count", "some_other_metric_bl10_30"]
    models = list(dict.fromkeys([*(spec.bench_models()), *([spec.baseline] if spec.baseline else []),
                                 "a_plugin_model_with_a_rather_long_name"]))
    rows = []
    for k, model in enumerate(models):
        for s in range(3):
            m = {n: VALUES[(j + k) % len(VALUES)] * (1 + 0.013 * s + 0.07 * k) for j, n in enumerate(metrics)}
            rows.append(RunRow(run_id=f"{spec.name}{model}{s}", task=spec.name, model=model, seed=s, status="ok",
                               metrics=m, config_hash=f"h{k}", start_time="2026", git_commit="0123456789ab",
                               dataset_fingerprint="fp0123456789abcd", end_time="2026-12-07T00:00:00+00:00"))
    tuned = {(spec.name, m, f"h{k}"): {"trials": 128, "study": "s"} for k, m in enumerate(models)}
    return rows, tuned


@pytest.mark.parametrize("spec", list_tasks(), ids=lambda s: s.name)
def test_every_task_fits_120_columns_with_the_verdict_visible(spec):
    rows, tuned = _rows(spec)
    md = L.to_markdown(L.aggregate(rows, tuned=tuned))
    assert max(len(ln) for ln in md.splitlines()) <= L.GLANCE_WIDTH, md
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    cols = [c.strip() for c in table[0].strip("|").split("|")]
    assert cols[:4] == ["rank", "model", "vs baseline", "seeds"] and cols[4].startswith(spec.primary_metric)
    body = table[2:]
    assert len(body) == len({r.model for r in rows})
    for ln in body:  # every row: the tuned model name (possibly shortened, never its budget), its verdict
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert "(tuned 128)" in cells[1] and cells[2], ln
    if spec.baseline:
        assert any(c.split("|")[3].strip() == "baseline" for c in body), body
        assert sum(bool(re.search(r"\| (better|worse|indistinguishable) p", ln)) for ln in body) == len(body) - 1
