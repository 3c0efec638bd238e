"""Leaderboard aggregation, ranking and rendering against hand-computed values."""
import base64

from cosmobench import leaderboard as L
from cosmobench.results import RunRow


def row(model, seed, crps, chash="h1", t="2026", run_dir=None, status="ok"):
    return RunRow(run_id=f"{model}{seed}{t}", task="photoz", model=model, seed=seed, status=status,
                  metrics={"crps": crps, "bias": 0.0}, config_hash=chash, start_time=t, run_dir=run_dir)


def test_mean_std_rank_min():
    rows = [row("mdn", 0, 1.0), row("mdn", 1, 3.0), row("knn", 0, 1.5), row("knn", 1, 1.5),
            row("knn", 2, 99.0, status="failed")]
    board = L.aggregate(rows)
    mdn, knn = {e.model: e for e in board["photoz"]}["mdn"], {e.model: e for e in board["photoz"]}["knn"]
    assert mdn.mean["crps"] == 2.0 and abs(mdn.std["crps"] - 2 ** 0.5) < 1e-12  # sample std of {1, 3}
    assert knn.mean["crps"] == 1.5 and knn.std["crps"] == 0.0 and knn.seeds == [0, 1]
    assert [e.model for e in board["photoz"]] == ["knn", "mdn"]  # crps: lower is better


def test_latest_run_per_seed_and_separate_configs():
    rows = [row("mdn", 0, 5.0, t="1"), row("mdn", 0, 1.0, t="2"), row("mdn", 0, 3.0, chash="h2")]
    entries = L.aggregate(rows)["photoz"]
    assert len(entries) == 2
    assert entries[0].mean["crps"] == 1.0 and entries[0].label == "mdn [h1]"


def test_max_mode_ranks_descending():
    rows = [RunRow(run_id=m, task="morphology", model=m, seed=0, status="ok", metrics={"accuracy": a},
                   config_hash="h", start_time="1") for m, a in [("cnn", 0.7), ("e2cnn", 0.9)]]
    assert [e.model for e in L.aggregate(rows)["morphology"]] == ["e2cnn", "cnn"]


def test_renderers(tmp_path):
    plots = tmp_path / "run" / "plots"
    plots.mkdir(parents=True)
    png = b"\x89PNG\r\n\x1a\nfake"
    (plots / "pit.png").write_bytes(png)
    board = L.aggregate([row("mdn", 0, 0.25, run_dir=str(tmp_path / "run"))])
    md = L.to_markdown(board)
    assert "| 1 | mdn | 1 | 0.25 ± 0 |" in md and "crps ↓" in md
    csv = L.to_csv(board)
    assert "photoz,1,mdn,h1,1,crps,0.25,0.0,1" in csv
    html = L.to_html(board)
    assert base64.b64encode(png).decode() in html and "<table>" in html
    assert "no successful runs" in L.to_markdown({})
