"""Both a regular and an editable install import every task (docs/ARCHITECTURE.md, "Layers")."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECK = """
import importlib, sys
import cosmobench, cosmobench.config as C
from cosmobench.registry import list_tasks
specs = list_tasks()
assert {"photoz", "morphology"} <= {s.name for s in specs}, [s.name for s in specs]
for s in specs:
    s.load_module_class(); s.load_datamodule_class()
assert (C.experiments_dir() / "suites" / "quick.yaml").is_file()
print(cosmobench.__file__)
"""


def test_editable_install_points_at_the_source_tree():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve().is_relative_to(REPO)


@pytest.mark.timeout(600)
def test_regular_install_imports_every_task(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(REPO)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    assert (target / "cosmobench" / "tasks" / "photoz.py").is_file()
    assert not (target / "tasks").exists()  # not a generic top-level package name
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "WANDB_MODE": "disabled"}
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve().is_relative_to(target)
