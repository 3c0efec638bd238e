"""The example plugin task of docs/ARCHITECTURE.md ("Adding a task"), written out of the
document itself, installed through its entry point and run end to end: train a network and
the classical baseline, check that both learn, predict from a checkpoint, leaderboard."""
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path

import numpy as np
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"
FAST = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def doc_plugin(dest: Path) -> list[str]:
    """Write the ``# blobsize/...`` python blocks and the entry point of the ``ini`` block."""
    text = DOC.read_text()
    files = re.findall(r"```python\n# (blobsize/[\w/]+\.py)\n(.*?)```", text, flags=re.S)
    for name, body in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(body)
    for name, body in re.findall(r"```yaml\n# (blobsize/[\w/]+\.yaml)\n(.*?)```", text, flags=re.S):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(body)
    (ini,) = re.findall(r"```ini\n(.*?)```", text, flags=re.S)
    entry = re.search(r"cosmobench\.plugins =\s*\n\s+(\S+ = \S+)", ini).group(1)
    info = dest / "blobsize-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: blobsize\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[cosmobench.plugins]\n{entry}\n")
    return [name for name, _ in files]


@pytest.fixture
def blobsize(tmp_path, monkeypatch):
    from cosmobench import registry
    registry.list_tasks()
    src = tmp_path / "src"
    src.mkdir()
    names = doc_plugin(src)
    assert sorted(names) == ["blobsize/__init__.py", "blobsize/data.py", "blobsize/task.py"]
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    monkeypatch.setattr(registry, "_LOADED", False)
    importlib.invalidate_caches()
    yield registry
    for mod in [m for m in sys.modules if m == "blobsize" or m.startswith("blobsize.")]:
        del sys.modules[mod]


def test_plugin_from_architecture_doc_trains_tests_and_predicts(blobsize, tmp_path):
    import cosmobench
    from cosmobench.leaderboard import aggregate
    from cosmobench.results import read_rows
    from cosmobench.runner import load_classes, predict
    root = tmp_path / "runs"
    assert "blobsize" in [t.name for t in blobsize.list_tasks()]
    cnn = cosmobench.train("blobsize", "cnn", [*FAST, "trainer.max_epochs=5"], root=root)
    flux = cosmobench.train("blobsize", "flux", FAST, root=root)
    assert cnn.status == flux.status == "ok"
    spread = 2.0 / np.sqrt(12)  # rmse of always predicting the mean width of U(1, 3)
    assert flux.metrics["rmse"] < 0.2 * spread  # the classical estimator works
    assert cnn.metrics["rmse"] < 0.6 * spread   # the network learns in 8 epochs
    assert (cnn.run_dir / "checkpoints" / "best.ckpt").is_file() and (cnn.run_dir / "metrics.json").is_file()
    # predict from the checkpoint on an exported split, through the datamodule's read_input
    from cosmobench.config import resolve
    dm_cls, _ = load_classes(blobsize.get_task("blobsize"))
    dm = dm_cls(resolve("blobsize", "cnn")["data"], seed=0)
    x = dm.export("test", tmp_path / "x.npy")
    out = predict("blobsize", cnn.run_dir / "checkpoints" / "best.ckpt", x, tmp_path / "widths.ecsv")
    from cosmobench.io import read_table
    pred = read_table(out)["sigma_pred"]
    true = dm.datasets["test"].arrays["sigma"].numpy()
    assert len(pred) == 256 and np.sqrt(np.mean((pred - true) ** 2)) == pytest.approx(cnn.metrics["rmse"], rel=1e-3)
    board = dict(aggregate(read_rows(root, task="blobsize")))
    entries = sorted(board["blobsize"], key=lambda e: e.rank)
    assert [e.model for e in entries] == ["flux", "cnn"]  # ranked by rmse (mode min)
