"""SQLite results store: schema round trip and concurrent writers."""
import multiprocessing as mp
import sqlite3

from cosmobench.errors import InputError
from cosmobench.results import RunRow, read_rows, write_row


def _writer(root, worker, n):
    for i in range(n):
        write_row(root, RunRow(run_id=f"w{worker}-{i}", task="toy", model="m", seed=i, status="ok",
                               metrics={"mse": worker + i / 100}, config_hash="h", start_time=f"{i:04d}"))


def test_round_trip(tmp_path):
    row = RunRow(run_id="a", task="t", model="m", seed=3, status="failed", error="boom",
                 metrics={}, versions={"torch": "x"}, hardware={"cpus": 2}, config_hash="h")
    write_row(tmp_path, row)
    (back,) = read_rows(tmp_path, installed_only=False)  # task "t" is not installed
    assert back == row
    assert read_rows(tmp_path, status="ok", installed_only=False) == []


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = read_rows(tmp_path, installed_only=False)
    assert len(rows) == 100 and len({r.run_id for r in rows}) == 100
    con = sqlite3.connect(tmp_path / "results.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- the store is checked before a run, and its errors are one clear line ---------------------
import json  # noqa: E402
import logging  # noqa: E402

import pytest  # noqa: E402

from cosmobench import results as R  # noqa: E402


def _ok_row(run_id="a", task="photoz", **kw):
    return RunRow(run_id=run_id, task=task, model="mdn", seed=0, status="ok", metrics={"crps": 0.1},
                  config_hash="h", **kw)


def test_check_store_writes_nothing_for_a_new_root(tmp_path):
    R.check_store(tmp_path / "new" / "runs")
    assert list(tmp_path.iterdir()) == []


def test_check_store_accepts_a_healthy_store_and_changes_nothing(tmp_path):
    write_row(tmp_path, _ok_row())
    before = read_rows(tmp_path)
    R.check_store(tmp_path)
    assert read_rows(tmp_path) == before


def _garbage(root):
    (root / R.DB_NAME).write_bytes(b"\x00garbage" * 512)


def _truncated(root):
    write_row(root, _ok_row())
    con = sqlite3.connect(root / R.DB_NAME)  # move the WAL into the file first
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = (root / R.DB_NAME).read_bytes()
    (root / R.DB_NAME).write_bytes(data[:100] + b"\xff" * (len(data) - 100))


def _directory(root):
    (root / R.DB_NAME).mkdir()


@pytest.mark.parametrize("breakage,needle", [(_garbage, "corrupt"), (_truncated, "corrupt"),
                                             (_directory, "not a file")])
def test_broken_store_is_a_store_error_everywhere(tmp_path, breakage, needle):
    breakage(tmp_path)
    for call in (lambda: R.check_store(tmp_path), lambda: write_row(tmp_path, _ok_row("b")),
                 lambda: read_rows(tmp_path)):
        with pytest.raises(R.StoreError, match=needle) as err:
            call()
        assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_locked_store(tmp_path):
    write_row(tmp_path, _ok_row())
    holder = sqlite3.connect(tmp_path / R.DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(R.StoreError, match="locked by another process"):
            R.check_store(tmp_path, timeout=0.2)
    finally:
        holder.close()
    R.check_store(tmp_path, timeout=0.2)  # free again


def test_root_that_is_not_a_directory(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    for root in (f, f / "sub"):
        with pytest.raises(R.StoreError, match="directory"):
            R.check_store(root)
    with pytest.raises(R.StoreError, match="not a directory"):
        write_row(f, _ok_row())


def test_corrupt_json_field_is_a_store_error(tmp_path):
    write_row(tmp_path, _ok_row())
    con = sqlite3.connect(tmp_path / R.DB_NAME)
    con.execute("UPDATE runs SET metrics = '{not json'")
    con.commit()
    con.close()
    with pytest.raises(R.StoreError, match="row 'a' has a corrupt metrics field"):
        read_rows(tmp_path)


def test_rows_of_uninstalled_tasks_are_skipped_with_a_note(tmp_path, caplog):
    write_row(tmp_path, _ok_row("a"))
    write_row(tmp_path, _ok_row("b", task="removed_plugin"))
    with caplog.at_level(logging.WARNING, logger="cosmobench.results"):
        rows = read_rows(tmp_path)
    assert [r.run_id for r in rows] == ["a"]
    assert "1 recorded run(s) of tasks that are not installed: removed_plugin" in caplog.text
    assert {r.run_id for r in read_rows(tmp_path, installed_only=False)} == {"a", "b"}


# --- rescan: every run dir holds what its row needs ---------------------------------------------
def _run_dir(root, name, files, base=True, task="photoz", model="mdn"):
    d = root / task / model / name
    (d / "checkpoints").mkdir(parents=True)
    (d / "config.yaml").write_text(f"task: {task}\nseed: 3\nmodel: {{name: {model}}}\ndata: {{n_train: 5}}\n")
    if base:
        R.write_run_file(d, dict(run_id=name, task=task, model=model, seed=3, config_hash="abc",
                                 dataset_fingerprint="fp", run_dir=str(d), start_time="2026-01-01T00:00:00+00:00",
                                 git_commit="g", versions={"torch": "x"}, hardware={"cpus": 2}))
    for fname, text in files.items():
        (d / fname).write_text(text)
    return d


def test_rescan_records_finished_runs_only(tmp_path):
    _run_dir(tmp_path, "ok1", {"metrics.json": json.dumps({"crps": 0.25, "bias": -0.01})})
    _run_dir(tmp_path, "bad1", {"failed.txt": "NonFiniteLossError: training loss became nan\n"})
    _run_dir(tmp_path, "unfinished", {})
    legacy = _run_dir(tmp_path, "legacy", {"metrics.json": json.dumps({"crps": 0.5})}, base=False)
    added, unfinished = R.rescan(tmp_path)
    assert sorted(added) == ["bad1", "legacy", "ok1"] and unfinished == 1
    rows = {r.run_id: r for r in read_rows(tmp_path)}
    assert rows["ok1"].status == "ok" and rows["ok1"].metrics == {"crps": 0.25, "bias": -0.01}
    assert rows["ok1"].seed == 3 and rows["ok1"].git_commit == "g" and rows["ok1"].wall_seconds > 0
    assert rows["bad1"].status == "failed" and rows["bad1"].error.startswith("NonFiniteLossError")
    from cosmobench import config as C
    assert rows["legacy"].config_hash == C.config_hash(C.load_yaml(legacy / "config.yaml"), C.BOOKKEEPING_KEYS)
    assert R.rescan(tmp_path) == ([], 1)


def test_rescan_turns_a_failed_row_ok_but_never_touches_an_ok_row(tmp_path):
    d = _run_dir(tmp_path, "r1", {"failed.txt": "boom\n"})
    R.rescan(tmp_path)
    (d / "failed.txt").unlink()
    (d / "metrics.json").write_text(json.dumps({"crps": 0.3}))  # a resume finished, its row was lost
    assert R.rescan(tmp_path)[0] == ["r1"]
    (row,) = read_rows(tmp_path)
    assert row.status == "ok" and row.metrics == {"crps": 0.3}
    (d / "metrics.json").write_text(json.dumps({"crps": 9.9}))
    assert R.rescan(tmp_path)[0] == []
    assert read_rows(tmp_path)[0].metrics == {"crps": 0.3}


@pytest.mark.parametrize("metrics", ['{"crps": NaN}', '{"crps": Infinity}', '{"crps": "0.1"}'])
def test_rescan_never_records_a_non_finite_metric(tmp_path, metrics):
    _run_dir(tmp_path, "x", {"metrics.json": metrics})
    with pytest.raises(InputError, match="metric 'crps' is not a finite number"):
        R.rescan(tmp_path)
    assert read_rows(tmp_path) == []
