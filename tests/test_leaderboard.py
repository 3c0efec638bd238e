"""Leaderboard statistics, ranking, baseline tests, escaping, provenance and rendering
(Markdown, CSV, per-run CSV/Parquet, HTML in a real headless browser)."""
import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess

import pytest

from cosmobench import leaderboard as L
from cosmobench.results import RunRow, write_row

PROV = dict(git_commit="0123456789abcdef-dirty", versions={"torch": "2.14.1", "numpy": "2.4"},
            hardware={"machine": "x86_64", "cpus": 2}, dataset_fingerprint="fp0123456789abcd",
            end_time="2026-11-23T10:00:00+00:00")


def row(model, seed, crps, chash="h1", t="2026", run_dir=None, status="ok", task="photoz", metrics=None, **kw):
    return RunRow(run_id=f"{task}{model}{seed}{t}{chash}", task=task, model=model, seed=seed, status=status,
                  metrics=metrics if metrics is not None else ({"crps": crps, "bias": 0.0} if status == "ok" else {}),
                  config_hash=chash, start_time=t, run_dir=run_dir, **{**PROV, **kw})


def by_model(board, task="photoz"):
    return {e.label: e for e in board[task]}


def test_mean_std_ci_rank_min():
    rows = [row("mdn", 0, 1.0), row("mdn", 1, 3.0), row("knn", 0, 1.5), row("knn", 1, 1.5)]
    board = L.aggregate(rows)
    mdn, knn = by_model(board)["mdn"], by_model(board)["knn"]
    assert mdn.mean["crps"] == 2.0 and abs(mdn.std["crps"] - 2 ** 0.5) < 1e-12  # sample std of {1, 3}
    lo, hi = mdn.ci["crps"]  # bootstrap of the mean of {1, 3}: resample means are 1, 2 or 3
    assert lo == 1.0 and hi == 3.0
    assert knn.std["crps"] == 0.0 and knn.ci["crps"] == (1.5, 1.5) and knn.seeds == [0, 1]
    assert [e.model for e in board["photoz"]] == ["knn", "mdn"]  # crps: lower is better
    assert [e.rank for e in board["photoz"]] == [1, 2]


def test_bootstrap_ci_covers_the_mean_and_narrows_with_more_seeds():
    import numpy as np
    rng = np.random.default_rng(1)
    small = list(rng.normal(0.5, 0.1, 4))
    big = list(rng.normal(0.5, 0.1, 40))
    lo_s, hi_s = L.bootstrap_ci(small)
    lo_b, hi_b = L.bootstrap_ci(big)
    assert lo_s < np.mean(small) < hi_s and lo_b < np.mean(big) < hi_b
    assert hi_b - lo_b < hi_s - lo_s
    assert L.bootstrap_ci([0.3]) is None


def test_one_seed_shows_dash_not_plus_minus_zero():
    board = L.aggregate([row("mdn", 0, 0.25)])
    e = board["photoz"][0]
    assert e.std["crps"] is None and e.ci["crps"] is None
    assert L.fmt_cell(e, "crps") == "0.25 ± — [—]"
    md = L.to_markdown(board, full=True)
    assert "± 0 " not in md and "0.25 ± — [—]" in md
    glance = L.to_markdown(board)
    assert "± 0 " not in glance and "| 0.250 ± — |" in glance


def test_latest_run_per_seed_and_separate_configs():
    rows = [row("mdn", 0, 5.0, t="1"), row("mdn", 0, 1.0, t="2"), row("mdn", 0, 3.0, chash="h2")]
    entries = L.aggregate(rows)["photoz"]
    assert len(entries) == 2
    assert entries[0].mean["crps"] == 1.0 and entries[0].label == "mdn [h1]"


def test_max_mode_ranks_descending_and_every_metric_has_an_arrow():
    rows = [RunRow(run_id=m, task="morphology", model=m, seed=0, status="ok",
                   metrics={"accuracy": a, "ece": 0.1, "nll": 1.0, "macro_f1": 0.5, "balanced_accuracy": a,
                            "rotation_invariance_error": 0.01}, config_hash="h", start_time="1")
            for m, a in [("cnn", 0.7), ("e2cnn", 0.9)]]
    board = L.aggregate(rows)
    assert [e.model for e in board["morphology"]] == ["e2cnn", "cnn"]
    md = L.to_markdown(board, full=True)
    header = next(ln for ln in md.splitlines() if ln.startswith("| rank"))
    for name, arrow in [("accuracy", "↑"), ("ece", "↓"), ("nll", "↓"), ("macro\\_f1", "↑"),
                        ("rotation\\_invariance\\_error", "↓")]:
        assert f"{name} {arrow}" in header
    from cosmobench.registry import get_task
    spec = get_task("photoz")
    assert [L.metric_mode(spec, m) for m in ("crps", "bias", "sigma_nmad", "outlier_frac", "pit_ks", "nll")] == \
        ["min", "zero", "min", "min", "min", "min"]
    # metrics in bins take their base metric's direction; names that are no metric keep none
    deb, lens = get_task("deblending"), get_task("lensfinding")
    assert [L.metric_mode(deb, m) for m in ("flux_mape_bl10_30", "flux_bias_bl00_01", "ssim_blended",
                                            "ellipticity_rmse_bl30_100", "recon_mse_blended")] == \
        ["min", "zero", "max", "min", "min"]
    assert L.metric_mode(lens, "completeness_theta_e_0.80_1.23") == "max"
    assert L.metric_mode(spec, "n_test") is None and L.metric_mode(spec, "zphot_q16") is None


def test_paired_test_against_baseline_hand_computed():
    # knn is photoz's baseline; mdn beats it on every seed by 1, 2, 3 (crps: lower is better).
    # d = (1, 2, 3): t = 2 / (1/sqrt(3)) = 3.4641, df = 2, two-sided p = 0.07418 -> indistinguishable
    rows = [row("knn", s, 10.0) for s in range(3)] + [row("mdn", s, 10.0 - d) for s, d in enumerate((1, 2, 3))]
    mdn = by_model(L.aggregate(rows))["mdn"]
    assert mdn.comparison.n_pairs == 3 and abs(mdn.comparison.p_value - 0.07418) < 1e-4
    assert mdn.comparison.verdict == "indistinguishable" and mdn.comparison.mean_diff == -2.0
    # d = (1.0, 1.1, 0.9, 1.0, 1.05): clearly better
    rows = [row("knn", s, 10.0) for s in range(5)] + \
        [row("mdn", s, 10.0 - d) for s, d in enumerate((1.0, 1.1, 0.9, 1.0, 1.05))] + \
        [row("bad", s, 11.0 + d) for s, d in enumerate((1.0, 1.1, 0.9, 1.0, 1.05))]
    board = by_model(L.aggregate(rows))
    assert board["mdn"].comparison.verdict == "better" and board["mdn"].comparison.p_value < 1e-4
    assert board["bad"].comparison.verdict == "worse"
    assert board["knn"].comparison is None
    # pairing is by seed: only shared seeds count; one shared seed gives no test
    rows = [row("knn", 0, 1.0), row("knn", 1, 1.0), row("mdn", 1, 0.5), row("mdn", 7, 0.4)]
    c = by_model(L.aggregate(rows))["mdn"].comparison
    assert c.n_pairs == 1 and c.p_value is None and c.verdict == "—"


def test_failed_runs_are_listed_and_counted():
    rows = [row("mdn", 0, 1.0), row("mdn", 1, None, status="failed", error="NonFiniteLossError: nan"),
            row("knn", 0, None, status="failed", error="boom"),
            row("mdn", 2, None, status="failed", t="1"), row("mdn", 2, 2.0, t="3")]  # seed 2: later ok
    board = L.aggregate(rows)
    e = by_model(board)
    assert e["mdn"].seeds == [0, 2] and e["mdn"].failed == {1: "NonFiniteLossError: nan"}
    assert e["knn"].seeds == [] and e["knn"].rank is None and board["photoz"][-1].model == "knn"
    md = L.to_markdown(board)
    assert "failed: mdn seed 1: NonFiniteLossError: nan" in md and "failed: knn seed 0: boom" in md
    assert "| 2 (1 failed) |" in md
    assert "failed: knn seed 0: boom" in L.to_html(board)


def test_unknown_task_rows_are_skipped_with_a_note():
    board = L.aggregate([row("mdn", 0, 1.0), row("x", 0, 1.0, task="removed_plugin")])
    assert list(board) == ["photoz"] and "removed_plugin" in board.notes[0]
    assert "removed\\_plugin" in L.to_markdown(board)


def test_markdown_escapes_user_strings():
    evil = "a|b<script>*x*"
    rows = [row(evil, 0, 1.0, metrics={"crps": 1.0, "m|x": 2.0}), row("knn", 0, 2.0, metrics={"crps": 2.0, "m|x": 1.0})]
    for md in (L.to_markdown(L.aggregate(rows)), L.to_markdown(L.aggregate(rows), full=True)):
        table = [ln for ln in md.splitlines() if ln.startswith("|")]
        n_cols = {len(re.split(r"(?<!\\)\|", ln)) for ln in table}
        assert len(n_cols) == 1, table  # no unescaped | added a column
        assert "<script>" not in md and "a\\|b\\<script\\>\\*x\\*" in md


def test_html_escapes_user_strings():
    rows = [row("<img src=x onerror=alert(1)>", 0, 1.0, error=None, metrics={"crps": 1.0, "<b>m</b>": 1.0}),
            row("knn", 0, 1.0, status="failed", error="<script>alert(2)</script>")]
    page = L.to_html(L.aggregate(rows))
    assert "<img src=x" not in page and "<script>alert" not in page and "<b>m</b>" not in page
    assert page.count("<script>") == 1  # the page's own sorting script, nothing else
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page


def test_provenance_everywhere():
    board = L.aggregate([row("mdn", 0, 1.0), row("mdn", 1, 2.0)])
    md = L.to_markdown(board, full=True)
    line = next(ln for ln in md.splitlines() if ln.startswith("| 1 "))
    assert "0123456789 (dirty)" in line and "`h1`" in line and "fp0123456789" in line and "2026-11-23" in line
    assert "torch 2.14.1" in md and "x86\\_64, 2 CPUs" in md
    rec = next(csv.DictReader(io.StringIO(L.to_csv(board))))
    assert rec["git_commit"] == "0123456789abcdef" and rec["dirty"] == "1" and rec["n_seeds"] == "2"
    assert "torch 2.14.1" in rec["versions"] and rec["config_hash"] == "h1" and rec["date"] == "2026-11-23"
    assert rec["ci_low"] and rec["p_value"] == "" and rec["direction"] == "min"
    page = L.to_html(board)
    for s in ("0123456789 (dirty)", "torch 2.14.1", "x86_64, 2 CPUs", "2026-11-23", "fp0123456789"):
        assert s in page


def test_runs_table_csv_and_parquet(tmp_path):
    rows = [row("mdn", 0, 1.0), row("mdn", 1, 2.0), row("knn", 0, None, status="failed", error="x")]
    text = L.write_runs(rows, "csv", None)
    recs = list(csv.DictReader(io.StringIO(text)))
    assert len(recs) == 3 and recs[0]["metric.crps"] == "1.0" and recs[2]["status"] == "failed"
    assert recs[0]["n_seeds"] == "2" and recs[0]["dirty"] == "True" and json.loads(recs[0]["versions"])["torch"]
    import pyarrow.parquet as pq
    out = tmp_path / "sub" / "runs.parquet"
    L.write_runs(rows, "parquet", out)
    t = pq.read_table(out).to_pydict()
    assert t["metric.crps"] == [1.0, 2.0, None] and t["git_commit"][0] == "0123456789abcdef"


def test_results_cli_writes_csv(root):
    from conftest import run_cli
    write_row(root, row("mdn", 0, 1.0))
    out = run_cli(["results", "--format", "csv"], root)
    assert out.returncode == 0, out.stderr
    (rec,) = csv.DictReader(io.StringIO(out.stdout))
    assert rec["task"] == "photoz" and rec["metric.crps"] == "1.0"
    out = run_cli(["results", "--format", "parquet"], root)
    assert out.returncode == 2 and "--out" in out.stderr


def test_learning_curve_from_manifest():
    rows, jobs = [], []
    for n, base in ((500, 0.5), (2000, 0.3), (10000, 0.2)):
        for m, off in (("mdn", 0.0), ("knn", 0.1)):
            h = f"{m}{n}"
            for s in range(3):
                rows.append(row(m, s, base + off + 0.01 * s, chash=h))
                jobs.append({"task": "photoz", "model": m, "seed": s, "config_hash": h, "grid": {"data.n_train": n}})
    man = {"name": "scaling", "grid_keys": ["data.n_train"], "jobs": jobs}
    board = L.aggregate(rows, [man])
    (curve,) = board.curves
    assert curve["key"] == "data.n_train" and set(curve["series"]) == {"mdn", "knn"}
    xs = [p[0] for p in curve["series"]["mdn"]]
    ys = [p[1] for p in curve["series"]["mdn"]]
    assert xs == [500, 2000, 10000] and abs(ys[0] - 0.51) < 1e-12
    assert all(p[2] <= p[1] <= p[3] for p in curve["series"]["mdn"])
    assert "mdn (data.n_train=500)" in by_model(board)
    # each grid point is compared with the baseline at the same grid point
    c = by_model(board)["mdn (data.n_train=2000)"].comparison
    assert c.baseline_label == "knn (data.n_train=2000)" and abs(c.mean_diff + 0.1) < 1e-12
    png = L.curve_png(curve)
    assert png.startswith(b"\x89PNG")
    assert "learning curve: crps vs data.n_train" in L.to_html(board)


def test_renderers_and_plots(tmp_path):
    plots = tmp_path / "run" / "plots"
    plots.mkdir(parents=True)
    png = b"\x89PNG\r\n\x1a\nfake"
    (plots / "pit.png").write_bytes(png)
    board = L.aggregate([row("mdn", 0, 0.25, run_dir=str(tmp_path / "run"))])
    md = L.to_markdown(board, full=True)
    assert "| 1 | mdn | — | 1 | 0.25 ± — [—] |" in md and "crps ↓" in md
    assert "| 1 | mdn | 1 | 0.250 ± — |" in L.to_markdown(board)
    html = L.to_html(board)
    assert base64.b64encode(png).decode() in html and "id='table-photoz'" in html
    assert "no runs recorded" in L.to_markdown(L.Board())


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _render(path, *extra):
    """Headless Chromium: (serialised DOM after load, console messages)."""
    out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                          "--v=0", "--window-size=1280,2000", *extra, "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    console = [ln for ln in out.stderr.splitlines() if ":CONSOLE" in ln]
    return out.stdout, console


# run after the page's own script: layout facts and a click on a header, written into the DOM
_PROBE = """<script>
window.addEventListener('load', function () {
  var b = document.body, t = document.querySelector('table.leaderboard');
  b.setAttribute('data-scroll-width', document.documentElement.scrollWidth);
  b.setAttribute('data-inner-width', window.innerWidth);
  var sticky = t.querySelector('td.sticky');
  b.setAttribute('data-sticky', getComputedStyle(sticky).position);
  var g = document.querySelector('table.glance'), th = g.tHead.rows[0].cells[1];
  th.click(); th.click();   // model column, descending
  b.setAttribute('data-sorted', Array.from(g.tBodies[0].rows).map(function (r) {
    return r.cells[1].textContent; }).join(','));
});
</script>"""


@pytest.mark.skipif(_chromium() is None and not os.environ.get("COSMOBENCH_REQUIRE_BROWSER"),
                    reason="no chromium installed (.ci/run installs it)")
def test_html_page_in_headless_chromium(tmp_path):
    assert _chromium(), "COSMOBENCH_REQUIRE_BROWSER is set but no chromium is installed"
    # the detector sees console errors (control page)
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefined_function()</script></body></html>")
    assert any("undefined_function" in c for c in _render(bad)[1])

    rows = [row("mdn", s, 0.2 + 0.01 * s) for s in range(3)] + [row("knn", s, 0.3) for s in range(3)]
    rows += [RunRow(run_id=f"m{s}", task="morphology", model="e|2<cnn>", seed=s, status="ok",
                    metrics={"accuracy": 0.8}, config_hash="h", start_time="1", **PROV) for s in range(2)]
    man = {"name": "grid", "grid_keys": ["data.n_train"],
           "jobs": [{"task": "photoz", "model": "mdn", "seed": 0, "config_hash": "h1", "grid": {"data.n_train": 1}},
                    {"task": "photoz", "model": "mdn", "seed": 0, "config_hash": "h2", "grid": {"data.n_train": 2}}]}
    rows += [row("mdn", s, 0.4, chash="h2") for s in range(2)]
    # a deblending entry with every metric a real run has: the main view must still not scroll sideways
    many = {f"{m}_{b}": 0.1 + 0.01 * i for i, (m, b) in enumerate(
        (m, b) for m in ("flux_mape", "flux_bias", "recall", "ssim", "recon_mse", "ellipticity_rmse")
        for b in ("bl00_01", "bl01_10", "bl10_30", "bl30_100", "blended"))}
    for model, off in (("unet", 0.0), ("sep", 0.05), ("a_very_long_model_name_from_a_plugin_package", 0.02)):
        rows += [row(model, s, None, task="deblending", chash="d" + model,
                     metrics={**many, "flux_mape": 0.2 + off + 0.01 * s, "recall": 0.9}) for s in range(3)]
    page = tmp_path / "lb.html"
    page.write_text(L.to_html(L.aggregate(rows, [man])))
    dom, console = _render(page)
    assert console == []
    for task, n_rows in (("photoz", 3), ("morphology", 1), ("deblending", 3)):
        m = re.search(rf"<table class=\"leaderboard sortable\" id=\"table-{task}\"[^>]*>(.*?)</table>", dom, re.S)
        assert m, f"no table for {task}"
        assert m.group(1).count("<tr") == n_rows + 1
        card = re.search(rf"<div class=\"card\" id=\"card-{task}\">(.*?)<details class=\"all\">", dom, re.S)
        assert card and "<svg" in card.group(1), f"no summary plot for {task}"
        glance = re.search(r"<table class=\"glance sortable\"[^>]*>(.*?)</table>", card.group(1), re.S).group(1)
        heads = re.findall(r"<th[^>]*>(.*?)</th>", glance)
        assert [re.sub("<[^>]+>", "", h) for h in heads[:2]] == ["rank", "model"]
    deb = re.search(r"id=\"glance-deblending\"[^>]*>(.*?)</table>", dom, re.S).group(1)
    assert re.sub("<[^>]+>", "", re.findall(r"<th[^>]*>(.*?)</th>", deb)[2]) == "vs baseline"  # next to the model
    assert "baseline" in re.search(r"<svg.*?</svg>", dom[dom.index('id="card-deblending"'):], re.S).group(0)
    assert "e|2&lt;cnn&gt;" in dom and "<cnn>" not in dom
    assert dom.count("<img src=\"data:image/png;base64,") == 1  # the learning curve

    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    dom, console = _render(probe)
    assert console == []
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert int(attrs["scroll-width"]) <= int(attrs["inner-width"]), attrs  # no horizontal scrolling
    assert attrs["sticky"] == "sticky"
    assert attrs["sorted"].split(",")[0] == "unet"  # sorted by model name, descending
    shot = os.environ.get("COSMOBENCH_SCREENSHOT")  # e.g. /tmp/leaderboard.png, to look at the page
    if shot:
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1280,2000", page.as_uri()], capture_output=True, timeout=120)


def test_uncertainty_formatting():
    f = L.fmt_uncertain
    assert f(0.1014, 0.003977) == "0.101 ± 0.004"     # never 0.003977
    assert f(12.345, 1.7) == "12.3 ± 1.7" and f(0.9, 0.15) == "0.90 ± 0.15"
    assert f(0.99871, 0.0003) == "0.9987 ± 0.0003"    # a small CI earns one more digit, no more
    assert f(0.87654, 1e-5) == "0.8765 ± 1e-05" and f(0.5, 0.3) == "0.5 ± 0.3"
    assert f(0.5) == "0.500" and f(1234.5, 56) == "1230 ± 60" and f(3.2e-7, 1e-8) == "3.2e-07 ± 1e-08"
    assert f(None) == "—"


def _many_metric_rows():
    """Deblending entries with every metric a real run records (46), long model names, 3 seeds."""
    names = [f"{m}{b}" for m in ("flux_mape", "flux_bias", "recall", "ssim", "recon_mse", "ellipticity_rmse",
                                 "n_true") for b in ("", "_bl00_01", "_bl01_10", "_bl10_30", "_bl30_100", "_blended")]
    names += ["precision", "f1", "n_det", "n_matched"]
    rows = []
    for k, model in enumerate(("unet", "sep", "modelfit", "noiseless", "a_plugin_deblender_with_a_long_name")):
        for s in range(3):
            rows.append(row(model, s, None, task="deblending", chash=f"d{k}",
                            metrics={n: 0.1003977 + 0.0371 * k + 0.000913 * s * (j + 1) for j, n in enumerate(names)}))
    return rows


def test_glance_view_fits_120_columns_with_the_verdict_after_the_model():
    board = L.aggregate(_many_metric_rows())
    md = L.to_markdown(board)
    assert max(len(ln) for ln in md.splitlines()) <= L.GLANCE_WIDTH, md
    header = next(ln for ln in md.splitlines() if ln.startswith("| rank"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[:4] == ["rank", "model", "vs baseline", "seeds"] and cols[4] == "flux_mape ↓"
    assert set(cols[5:]) <= {"flux_mape_bl00_01 ↓", "flux_mape_blended ↓", "recall ↑"}  # declared headline only
    assert "ssim" not in header and "n_true" not in header and "commit" not in header
    unet = next(ln for ln in md.splitlines() if "| unet |" in ln)
    assert re.search(r"\| unet \| (better|worse|indistinguishable) p", unet)
    assert "| 0.1013 ± 0.0009 |" in unet and "0.10131" not in md  # rounded by the CI (3 seeds)
    # --all has every metric and the provenance
    full = L.to_markdown(board, full=True)
    assert "ssim\\_bl10\\_30" in full and "commit" in full
    # a long headline list is cut from the right to fit, and says so
    narrow = L.tables.glance_table(__import__("cosmobench.registry").registry.get_task("deblending"),
                                   board["deblending"], width=90)
    assert max(len(ln) for ln in narrow[0]) <= 90 and narrow[1]


def test_tracks_are_never_ranked_together(tmp_path):
    def run_dir(name, source):
        d = tmp_path / name
        d.mkdir()
        (d / "config.yaml").write_text(f"data:\n  source: {source}\n  path: cat.fits\n")
        return str(d)
    sim, cat = run_dir("sim", "sim"), run_dir("cat", "catalog")
    rows = [row("mdn", s, 0.2, run_dir=sim) for s in range(2)] + [row("knn", s, 0.3, run_dir=sim) for s in range(2)]
    rows += [row("mdn", s, 0.1, chash="c1", run_dir=cat) for s in range(2)]
    board = L.aggregate(rows)
    ranks = sorted((e.track, e.rank, e.label) for e in board["photoz"])
    assert ranks == [("catalog:cat.fits", 1, "mdn"), ("sim", 1, "mdn"), ("sim", 2, "knn")]
    cat_entry = next(e for e in board["photoz"] if e.track != "sim")
    assert cat_entry.comparison is None  # no baseline run on that track: nothing to compare with
    md = L.to_markdown(board)
    assert "### photoz · track sim" in md and "### photoz · track catalog:cat.fits" in md


def test_tuned_entries_are_marked_with_their_budget():
    rows = [row("mdn", s, 0.2) for s in range(2)] + [row("knn", s, 0.3, chash="k") for s in range(2)]
    board = L.aggregate(rows, tuned={("photoz", "mdn", "h1"): {"trials": 8, "study": "s"}})
    md = L.to_markdown(board)
    assert "| mdn (tuned 8) |" in md and "8 trials per model" in md
    assert "8" in next(r for r in csv.DictReader(io.StringIO(L.to_csv(board))) if r["model"] == "mdn")["tuned_trials"]


def test_holm_and_paired_differences():
    assert L.holm([0.01, 0.04, 0.03, None]) == [0.03, 0.06, 0.06, None]
    from cosmobench.registry import get_task
    board = L.aggregate([row("knn", s, 1.0 + 0.1 * s, metrics={"crps": 1.0 + 0.1 * s, "bias": 0.01 * s})
                         for s in range(5)] +
                        [row("mdn", s, 0.0, metrics={"crps": 0.5 + 0.1 * s + 0.01 * (s % 2), "bias": 0.01 * s})
                         for s in range(5)])
    e = by_model(board)
    diffs = {d.metric: d for d in L.paired_differences(get_task("photoz"), e["knn"], e["mdn"])}
    assert diffs["crps"].verdict == "better" and diffs["crps"].p_holm >= diffs["crps"].p_value
    assert diffs["crps"].ci[0] < diffs["crps"].diff < diffs["crps"].ci[1] < 0
    assert diffs["bias"].verdict == "indistinguishable"
    few = L.paired_differences(get_task("photoz"), e["knn"], e["mdn"], min_pairs=6)
    assert all(d.verdict == "not enough seeds to tell" and d.p_value is None for d in few)


def test_a_verdict_names_its_baseline_when_the_track_holds_an_untuned_and_a_tuned_one():
    rows = ([row("mdn", s, 0.2, chash="m") for s in range(3)] + [row("knn", s, 0.3 + 0.01 * s, chash="k0") for s in range(3)]
            + [row("knn", s, 0.19 + 0.001 * s, chash="k1") for s in range(3)])
    tuned = {("photoz", "mdn", "m"): {"trials": 4, "study": "s"}, ("photoz", "knn", "k1"): {"trials": 4, "study": "s"}}
    board = L.aggregate(rows, tuned=tuned)
    c = by_model(board)["mdn (tuned 4)"].comparison
    assert c.baseline_label == "knn [k1] (tuned 4)" and c.several_baselines  # tuned against tuned
    mdn_line = next(ln for ln in L.to_markdown(board).splitlines() if ln.startswith("| 2 | mdn"))
    assert "| worse p=" in mdn_line and mdn_line.count("|") == 7  # the label's brackets are escaped, no new cell
    assert mdn_line.split("|")[3].strip().endswith("vs knn \\[k1\\] (tuned 4)")
    assert "vs knn [k1] (tuned 4)" in L.to_html(board)
    one = L.aggregate([r for r in rows if r.config_hash != "k1"], tuned=tuned)
    c1 = by_model(one)["mdn (tuned 4)"].comparison
    assert not c1.several_baselines and "vs knn" not in L.to_markdown(one)
