"""Run records and the SQLite results store (DESIGN §5).

``ROOT/results.sqlite`` holds one row per run. It uses stdlib ``sqlite3`` in WAL mode
with one ``BEGIN IMMEDIATE`` transaction per row and a generous busy timeout, so that
concurrent runs (a bench grid, several DDP jobs) never lose or corrupt rows.
"""
from __future__ import annotations

import json
import platform
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    metrics TEXT NOT NULL,
    error TEXT,
    config_hash TEXT NOT NULL,
    dataset_fingerprint TEXT,
    git_commit TEXT,
    versions TEXT,
    hardware TEXT,
    run_dir TEXT,
    start_time TEXT,
    end_time TEXT,
    wall_seconds REAL
);
CREATE INDEX IF NOT EXISTS runs_task_model ON runs (task, model);
"""

DB_NAME = "results.sqlite"


@dataclass
class RunRow:
    """One row of the results store."""

    run_id: str
    task: str
    model: str
    seed: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    config_hash: str = ""
    dataset_fingerprint: str | None = None
    git_commit: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    wall_seconds: float | None = None


def connect(root: str | Path) -> sqlite3.Connection:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(root / DB_NAME, timeout=60.0, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA busy_timeout=60000")
    con.executescript(SCHEMA)
    return con


_JSON_FIELDS = ("metrics", "versions", "hardware")


def write_row(root: str | Path, row: RunRow) -> None:
    """Insert (or replace, for a resumed run) one row in its own transaction."""
    values = dict(row.__dict__)
    for k in _JSON_FIELDS:
        values[k] = json.dumps(values[k], sort_keys=True)
    cols = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    con = connect(root)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute(f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})", values)
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def read_rows(root: str | Path, task: str | None = None, status: str | None = None) -> list[RunRow]:
    db = Path(root) / DB_NAME
    if not db.is_file():
        return []
    con = connect(root)
    con.row_factory = sqlite3.Row
    try:
        query, args = "SELECT * FROM runs", []
        conds = []
        if task:
            conds.append("task = ?")
            args.append(task)
        if status:
            conds.append("status = ?")
            args.append(status)
        if conds:
            query += " WHERE " + " AND ".join(conds)
        rows = con.execute(query + " ORDER BY start_time", args).fetchall()
    finally:
        con.close()
    out = []
    for r in rows:
        d = dict(r)
        for k in _JSON_FIELDS:
            d[k] = json.loads(d[k]) if d[k] else {}
        out.append(RunRow(**d))
    return out


def git_commit() -> str | None:
    """Commit of the cosmobench source tree, with ``-dirty`` if it has local changes."""
    src = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("cosmobench", "torch", "pytorch-lightning", "numpy", "e2cnn", "sbi", "healpy", "wandb"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def hardware() -> dict[str, Any]:
    import os

    import torch
    info: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count(),
                            "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
