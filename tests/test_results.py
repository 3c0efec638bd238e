"""SQLite results store: schema round trip and concurrent writers."""
import multiprocessing as mp
import sqlite3

from cosmobench.results import RunRow, read_rows, write_row


def _writer(root, worker, n):
    for i in range(n):
        write_row(root, RunRow(run_id=f"w{worker}-{i}", task="toy", model="m", seed=i, status="ok",
                               metrics={"mse": worker + i / 100}, config_hash="h", start_time=f"{i:04d}"))


def test_round_trip(tmp_path):
    row = RunRow(run_id="a", task="t", model="m", seed=3, status="failed", error="boom",
                 metrics={}, versions={"torch": "x"}, hardware={"cpus": 2}, config_hash="h")
    write_row(tmp_path, row)
    (back,) = read_rows(tmp_path)
    assert back == row
    assert read_rows(tmp_path, status="ok") == []


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = read_rows(tmp_path)
    assert len(rows) == 100 and len({r.run_id for r in rows}) == 100
    con = sqlite3.connect(tmp_path / "results.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
