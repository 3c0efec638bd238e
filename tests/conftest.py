"""Shared fixtures. Tests never touch the network: W&B is disabled unless a test enables
offline mode itself, and every run writes below pytest's tmp_path."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PLUGIN_SRC = HERE / "plugin_src"
BIN = Path(sys.executable).parent

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` of the Ctrl-C tests' subprocesses: SIGINT back to its default action.
    A shell's background job (``make test &`` without job control, nohup'd CI wrappers) starts
    with SIGINT ignored, children inherit that, and Python then never raises
    KeyboardInterrupt; a user's terminal Ctrl-C is what these tests mean."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(args: list[str], root: Path, env: dict | None = None, timeout: float = 600,
            plugin: bool = False) -> subprocess.CompletedProcess:
    """Run the ``cosmobench`` console script in a subprocess (as a user would)."""
    full_env = {**os.environ, "COSMOBENCH_HOME": str(root), "WANDB_MODE": "disabled",
                "PYTHONHASHSEED": "0", **(env or {})}
    if plugin:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_SRC), full_env.get("PYTHONPATH")]))
    return subprocess.run([str(BIN / "cosmobench"), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=root)


def db_rows(root: Path) -> list[dict]:
    db = root / "results.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY start_time")]
    con.close()
    for r in rows:
        r["metrics"] = json.loads(r["metrics"])
    return rows


def run_dirs(root: Path, task: str, model: str) -> list[Path]:
    return sorted(p for p in (root / task / model).glob("*") if p.is_dir())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture
def toy_plugin(monkeypatch):
    """Register the throwaway ``toy`` plugin task in this process (via its entry point)."""
    from cosmobench import registry
    registry.list_tasks()  # built-ins into the real table first (their module is imported once)
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    monkeypatch.setattr(registry, "_LOADED", False)
    import importlib
    import importlib.metadata
    importlib.invalidate_caches()
    yield registry
