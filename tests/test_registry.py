"""Registry contract and the ``cosmobench.plugins`` entry-point group."""
import sys

import pytest

from conftest import run_cli
from cosmobench import registry


def test_builtin_tasks_registered_lazily():
    names = [t.name for t in registry.list_tasks()]
    assert {"photoz", "morphology"} <= set(names)
    spec = registry.get_task("photoz")
    assert spec.primary_metric == "crps" and spec.mode == "min" and "mdn" in spec.models


def test_list_does_not_import_heavy_packages(root):
    code = ("import sys; from cosmobench.cli import main; main(['list']); "
            "heavy = [m for m in ('torch', 'e2cnn', 'sbi', 'pytorch_lightning') if m in sys.modules]; "
            "assert not heavy, heavy")
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "photoz" in out.stdout


def test_spec_validation():
    with pytest.raises(ValueError, match="mode"):
        registry.TaskSpec("x", "a:b", "a:b", "a:b", "acc", mode="up", own_models={"m": None})
    with pytest.raises(ValueError, match="module:attr"):
        registry.TaskSpec("x", "ab", "a:b", "a:b", "acc", own_models={"m": None})
    with pytest.raises(ValueError, match="no models"):
        registry.TaskSpec("x", "a:b", "a:b", "a:b", "acc")


def test_plugin_entry_point_in_process(toy_plugin):
    spec = registry.get_task("toy")
    assert spec.models.keys() == {"linear", "mean"}
    with pytest.raises(ValueError, match="already registered"):
        registry.register_task("toy", "a:b", "a:b", "a:b", "mse", models={"m": None})
    registry.register_model("toy", "other")
    assert "other" in registry.get_task("toy").models


def test_tasks_get_every_network_of_their_kind():
    """A network registered in cosmobench.nn is a model of every task asking for its kind."""
    from cosmobench.nn import registered_nets
    image = set(registered_nets("image_classifier"))
    assert {"cnn", "e2cnn", "resnet18"} <= image
    for name in ("morphology", "lensfinding"):
        assert image <= set(registry.get_task(name).models)
    assert "mdn" in registry.get_task("photoz").models and "mdn" not in registry.get_task("morphology").models


def test_plugin_task_trains_through_cli(root):
    out = run_cli(["list"], root, plugin=True)
    assert out.returncode == 0 and "toy" in out.stdout and "linear, mean" in out.stdout
    out = run_cli(["train", "toy", "-m", "mean", "logger=none", "trainer.enable_progress_bar=false"],
                  root, plugin=True)
    assert out.returncode == 0, out.stderr
    assert (root / "toy" / "mean").is_dir() and "mse" in out.stdout
