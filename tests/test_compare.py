"""cosmobench compare: entries by model, config hash and MODEL@COMMIT, paired over shared
seeds, per-metric differences with CI and p-value, Holm across metrics, not enough seeds."""
import re

import pytest

from cosmobench import compare as CMP
from cosmobench.errors import ConfigError
from cosmobench.results import RunRow, write_row

PROV = dict(versions={"torch": "2.14.1"}, hardware={"machine": "x86_64", "cpus": 2}, end_time="2026-11-23T10:00:00")


def put(root, model, seed, metrics, chash="h1", commit="aaaaaaaa11", task="photoz"):
    write_row(root, RunRow(run_id=f"{model}{seed}{chash}{commit}", task=task, model=model, seed=seed, status="ok",
                           metrics=metrics, config_hash=chash, start_time=f"2026-{seed:02d}", git_commit=commit,
                           **PROV))


def fill(root, n_seeds=5):
    for s in range(n_seeds):
        put(root, "knn", s, {"crps": 0.30 + 0.01 * s, "nll": 1.0 + 0.1 * s, "bias": 0.001 * s,
                             "sigma_nmad": 0.05, "outlier_frac": 0.1})
        put(root, "mdn", s, {"crps": 0.20 + 0.01 * s + 0.002 * (s % 2), "nll": 1.0 + 0.1 * s + 0.03 * (s % 2 - .5),
                             "bias": 0.001 * s, "sigma_nmad": 0.05, "outlier_frac": 0.1 - 0.004 * (1 + s % 3)},
            chash="m1")


def test_paired_differences_holm_and_markdown(root):
    fill(root)
    cmp = CMP.compare("photoz", ["knn", "mdn"], root=root)
    (pair,) = cmp.pairs
    d = {x.metric: x for x in pair.diffs}
    assert list(d)[0] == "crps" and set(d) == {"crps", "nll", "bias", "sigma_nmad", "outlier_frac"}
    assert d["crps"].verdict == "better" and abs(d["crps"].diff + 0.0992) < 1e-9
    assert d["crps"].ci[0] <= d["crps"].diff <= d["crps"].ci[1]
    assert d["nll"].verdict == "indistinguishable" and d["bias"].verdict == "indistinguishable"
    ps = sorted(x.p_value for x in pair.diffs)
    holm = sorted(x.p_holm for x in pair.diffs)
    assert holm[0] == pytest.approx(min(1, 5 * ps[0])) and all(h >= p for h, p in zip(holm, ps))
    md = CMP.to_markdown(cmp)
    assert "paired over 5 shared seeds" in md and "| crps | ↓ |" in md and "better" in md
    assert "| 0.3200 | 0.2208 | -0.0992 ± 0.0008 | [-0.1000, -0.0984] |" in md  # rounded by the CI
    html = CMP.to_html(cmp)
    assert "<table class='compare'>" in html and "Holm" in html


def test_not_enough_seeds_to_tell(root):
    fill(root, n_seeds=2)
    cmp = CMP.compare("photoz", ["knn", "mdn"], root=root)
    md = CMP.to_markdown(cmp)
    assert "Not enough seeds to tell" in md
    assert all(x.verdict == "not enough seeds to tell" and x.p_value is None for x in cmp.pairs[0].diffs)


def test_selectors_by_hash_and_commit_and_errors(root):
    fill(root)
    for s in range(3):  # mdn at a second commit, same config
        put(root, "mdn", s, {"crps": 0.25, "nll": 1.0}, chash="m1", commit="bbbbbbbb22")
    cmp = CMP.compare("photoz", ["mdn@aaaa", "mdn@bbbb"], root=root, metrics=["crps"])
    assert [e.n_seeds for e in cmp.entries] == [5, 3] and cmp.pairs[0].n_pairs == 3
    cmp = CMP.compare("photoz", ["knn", "m1"], root=root, all_metrics=True)  # the config hash of mdn
    assert cmp.entries[1].model == "mdn"
    put(root, "mdn", 0, {"crps": 0.2}, chash="m2")  # mdn now has two configs: the name is ambiguous
    with pytest.raises(ConfigError, match="matches 2 experiments"):
        CMP.compare("photoz", ["knn", "mdn"], root=root)
    with pytest.raises(ConfigError, match="no runs of model 'nope'"):
        CMP.compare("photoz", ["knn", "nope"], root=root)
    with pytest.raises(ConfigError, match="no metric zzz"):
        CMP.compare("photoz", ["knn", "m1"], root=root, metrics=["zzz"])


def test_compare_cli(root):
    from conftest import run_cli
    fill(root)
    out = run_cli(["compare", "photoz", "knn", "mdn"], root)
    assert out.returncode == 0, out.stderr
    assert re.search(r"\| crps \| ↓ \| 0\.3\d* \| 0\.2\d* \|", out.stdout)
    out = run_cli(["compare", "photoz", "knn", "mdn", "--format", "html", "--out", "c.html"], root)
    assert out.returncode == 0 and (root / "c.html").read_text().startswith("<!doctype html>")
    out = run_cli(["compare", "photoz", "knn"], root)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "at least two" in out.stderr
