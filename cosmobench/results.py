"""Run records and the SQLite results store (docs/ARCHITECTURE.md, "Runs, results and errors").

``ROOT/results.sqlite`` holds one row per run. It uses stdlib ``sqlite3`` in WAL mode
with one ``BEGIN IMMEDIATE`` transaction per row and a generous busy timeout, so that
concurrent runs (a bench grid, several DDP jobs) never lose or corrupt rows.

No result is lost: :func:`check_store` tries a write transaction on the store *before* a
run trains (an unwritable, corrupt or locked store is a :class:`StoreError`, exit 2), and
every run directory holds what its row needs (``run.json``, ``metrics.json`` or
``failed.txt``), so :func:`rescan` (``cosmobench results --rescan ROOT``) records runs whose
row could not be written, or rebuilds a store that had to be moved aside.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import sqlite3
import time
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cosmobench.errors import InputError

log = logging.getLogger(__name__)

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


def default_root(root: str | Path | None = None) -> Path:
    """ROOT of run dirs and the store: ``root`` (``--root``), else ``$COSMOBENCH_HOME``, else ``./runs``."""
    return Path(root or os.environ.get("COSMOBENCH_HOME") or "runs")


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


class StoreError(InputError):
    """The results store cannot be used (not a directory, unwritable, corrupt, locked). Exit 2."""


#: seconds :func:`check_store` waits for another writer before calling the store locked
PREFLIGHT_TIMEOUT = 10.0
#: seconds a row write waits for other writers
WRITE_TIMEOUT = 60.0

_PROBE_ROW = ("INSERT OR REPLACE INTO runs (run_id, task, model, seed, status, metrics, config_hash) "
              "VALUES ('__cosmobench_probe__', '', '', 0, 'ok', '{}', '')")
_MOVE_ASIDE = "move it aside; `cosmobench results --rescan ROOT` rebuilds the rows from the run directories"


def _db_error(db: Path, exc: BaseException) -> StoreError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return StoreError(f"results store {db} is corrupt ({text}): {_MOVE_ASIDE}")
    if "locked" in text or "busy" in text:
        return StoreError(f"results store {db} is locked by another process ({text}); try again later")
    return StoreError(f"results store {db} cannot be written ({text}): check its permissions")


def connect(root: str | Path, timeout: float = WRITE_TIMEOUT) -> sqlite3.Connection:
    """Open (creating if needed) ``ROOT/results.sqlite``. sqlite errors become StoreError."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise StoreError(f"--root {root} is not a directory")
    db = root / DB_NAME
    if db.exists() and not db.is_file():
        raise StoreError(f"results store {db} is not a file")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create --root {root}: {exc.strerror or exc}") from None
    con = None
    try:
        con = sqlite3.connect(db, timeout=timeout, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        deadline = time.monotonic() + timeout
        while True:  # switching to WAL returns "locked" at once, without the busy handler, when
            try:     # several processes create the store together: wait for it like for a write
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
                return con
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except sqlite3.Error as exc:
        if con is not None:
            con.close()
        raise _db_error(db, exc) from None


def check_store(root: str | Path, timeout: float | None = None) -> None:
    """Fail now, not after training, if a row could not be recorded in ``root``: the root
    must be (or be creatable as) a directory, and an existing store must pass
    ``PRAGMA quick_check`` and accept a write transaction within ``timeout`` seconds
    (rolled back). Writes nothing when the store does not exist yet."""
    root = Path(root)
    timeout = PREFLIGHT_TIMEOUT if timeout is None else timeout
    if root.exists() and not root.is_dir():
        raise StoreError(f"--root {root} is not a directory")
    db = root / DB_NAME
    if not db.exists():
        parent = root
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create --root {root}: {parent} is not a writable directory")
        return
    if not db.is_file():
        raise StoreError(f"results store {db} is not a file")
    try:
        con = sqlite3.connect(db, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise _db_error(db, exc) from None
    try:
        con.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        check = con.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"results store {db} is corrupt (quick_check: {check}): {_MOVE_ASIDE}")
        con.execute("BEGIN IMMEDIATE")  # the write lock: fails if another writer holds it
        try:  # a real write (rolled back): a read-only file passes BEGIN IMMEDIATE
            for statement in filter(str.strip, SCHEMA.split(";")):
                con.execute(statement)
            con.execute(_PROBE_ROW)
        finally:
            con.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise _db_error(db, exc) from None
    finally:
        con.close()


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
    except sqlite3.Error as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise _db_error(Path(root) / DB_NAME, exc) from None
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def read_rows(root: str | Path, task: str | None = None, status: str | None = None,
              installed_only: bool = True) -> list[RunRow]:
    """Rows of the store, oldest first. ``installed_only``: leave out rows of tasks that are
    not installed (e.g. a removed plugin), with a logged note. A corrupt store is a StoreError."""
    db = Path(root) / DB_NAME
    if not db.exists():
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
    except sqlite3.Error as exc:
        raise _db_error(db, exc) from None
    finally:
        con.close()
    out = []
    for r in rows:
        d = dict(r)
        try:
            for k in _JSON_FIELDS:
                d[k] = json.loads(d[k]) if d[k] else {}
        except ValueError:
            raise StoreError(f"results store {db}: row {d['run_id']!r} has a corrupt {k} field: "
                             f"{_MOVE_ASIDE}") from None
        out.append(RunRow(**d))
    if installed_only and out:
        from cosmobench.registry import list_tasks
        known = {spec.name for spec in list_tasks()}
        missing = sorted({r.task for r in out} - known)
        if missing:
            n = sum(r.task in missing for r in out)
            log.warning("note: skipped %d recorded run(s) of tasks that are not installed: %s",
                        n, ", ".join(missing))
            out = [r for r in out if r.task in known]
    return out


# --- run directories -------------------------------------------------------------------
RUN_FILE = "run.json"          # the row's fixed fields, written when the run dir is created
METRICS_FILE = "metrics.json"  # test metrics of a finished run
FAILED_FILE = "failed.txt"     # one-line reason of a failed run


def write_run_file(run_dir: Path, base: dict) -> None:
    (run_dir / RUN_FILE).write_text(json.dumps(base, indent=2, sort_keys=True) + "\n")


def _iso_mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


def row_from_run_dir(run_dir: Path) -> RunRow | None:
    """The row a run directory stands for (``ok`` with ``metrics.json``, ``failed`` with
    ``failed.txt``), or None for an unfinished run. Directories without ``run.json``
    (older runs) get their fields from ``config.yaml``."""
    from cosmobench import config as C
    metrics_path, failed_path = run_dir / METRICS_FILE, run_dir / FAILED_FILE
    if not metrics_path.is_file() and not failed_path.is_file():
        return None
    if (run_dir / RUN_FILE).is_file():
        base = json.loads((run_dir / RUN_FILE).read_text())
    else:
        cfg = C.load_yaml(run_dir / "config.yaml")
        base = dict(run_id=run_dir.name, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                    config_hash=C.config_hash(cfg, C.BOOKKEEPING_KEYS), run_dir=str(run_dir))
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            raise InputError(f"{metrics_path}: metric {bad[0]!r} is not a finite number")
        status, error, end = "ok", None, metrics_path
    else:
        metrics, status, end = {}, "failed", failed_path
        error = failed_path.read_text().strip() or "failed (no reason recorded)"
    row = RunRow(status=status, metrics=metrics, error=error, end_time=_iso_mtime(end), **base)
    if row.start_time:
        start = datetime.fromisoformat(row.start_time)
        row.wall_seconds = round(end.stat().st_mtime - start.timestamp(), 3)
    return row


def rescan(root: str | Path) -> tuple[list[str], int]:
    """Record the finished runs under ``root`` that the store lacks (or holds as ``failed``
    although they finished). Returns (run ids recorded, number of unfinished run dirs)."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"--root {root} is not a directory")
    check_store(root)
    have = {r.run_id: r.status for r in read_rows(root, installed_only=False)}
    added, unfinished = [], 0
    for cfg_path in sorted(root.glob("*/*/*/config.yaml")):
        run_dir = cfg_path.parent
        row = row_from_run_dir(run_dir)
        if row is None:
            unfinished += 1
            continue
        if row.run_id not in have or (have[row.run_id] == "failed" and row.status == "ok"):
            write_row(root, row)
            added.append(row.run_id)
    return added, unfinished


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
    import torch
    info: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count(),
                            "platform": platform.platform(),
                            "torch_threads": torch.get_num_threads()}  # the run's CPU threads (verify re-uses it)
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
