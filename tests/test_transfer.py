"""model.init_from / model.pretrained / model.freeze_epochs / model.head_lr_factor
(cosmobench.transfer): what is loaded, re-initialised and skipped; invariance kept after
fine-tuning; frozen encoder; errors exit 2 and write nothing. No network: the ImageNet file is a
fake placed in a temporary TORCH_HOME."""
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from cosmobench.config import resolve
from cosmobench.datamodules.lensfinding import LensFindingDataModule
from cosmobench.datamodules.morphology import MorphologyDataModule
from cosmobench.errors import ConfigError
from cosmobench.tasks.lensfinding import LensFindingTask
from cosmobench.tasks.morphology import MorphologyTask
from cosmobench.transfer import INIT_FILE, match_state, pretrained_file
from tests.conftest import HERE, run_cli, run_dirs

CONF = HERE / "conf"

warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)

TINY = ["data.image_size=16", "data.pixel_scale=0.8", "data.n_train=24", "data.n_val=8", "data.n_test=12",
        "data.batch_size=8", "data.oversample=2"]
CLASSES3 = "data.classes=[elliptical,edge_on,merger]"
NETS = {"e2cnn": ["model.channels=[2,4,4]"], "cnn": ["model.channels=[4,8,8]"], "resnet18": []}


def fit(model, root, *extra, epochs=1):
    cfg = resolve("morphology", model, overrides=TINY + NETS[model] + list(extra))
    pl.seed_everything(0, workers=True, verbose=False)
    dm = MorphologyDataModule(cfg["data"], seed=cfg["seed"])
    dm.setup()
    task = MorphologyTask(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(root), deterministic=True, accelerator="cpu",
                         enable_checkpointing=False)
    trainer.fit(task, datamodule=dm)
    return cfg, dm, task, trainer


def save(trainer, path):
    trainer.save_checkpoint(path)
    return path


def test_match_state_rules():
    net = {"stem.w": torch.zeros(4, 3), "body.w": torch.zeros(2), "head.w": torch.zeros(5, 2)}
    src = {"stem.w": torch.ones(4, 1), "body.w": torch.ones(2), "head.w": torch.ones(5, 2), "extra": torch.ones(1)}
    r = match_state(net, src, "head.")
    assert r["loaded"] == ["body.w", "head.w"]
    assert r["reinitialised"] == [["stem.w", "shape (4, 1) in the checkpoint, (4, 3) here"]]
    assert ["extra", "not in this network"] in r["skipped"] and r["skipped"][0][0] == "stem.w"
    r = match_state(net, src, "head.", classes_differ=True)
    assert r["loaded"] == ["body.w"] and ["head.w", "the checkpoint's classes differ from this data's"] in r["reinitialised"]


def test_init_from_other_classes_and_bands_report(tmp_path):
    """A 3-class 3-band cnn initialises a 2-class 1-band one: stem and head re-initialised, the rest loaded
    equal to the checkpoint; init.json lists them."""
    _, _, src_task, trainer = fit("cnn", tmp_path / "a", CLASSES3)
    ckpt = save(trainer, tmp_path / "src.ckpt")
    cfg, dm, task, trainer2 = fit("cnn", tmp_path / "b", "data.classes=[elliptical,spiral]", "data.n_bands=1",
                                  f"model.init_from={ckpt}", epochs=0)
    report = json.loads((tmp_path / "b" / INIT_FILE).read_text())
    reinit = dict(map(tuple, report["reinitialised"]))
    assert "features.0.weight" in reinit and "shape (24" not in reinit["features.0.weight"]  # stem: bands
    assert reinit["head.3.weight"].startswith("shape (3, 64)")  # head: classes
    assert "features.4.weight" in report["loaded"] and report["head"] == "head"
    assert not any(n.startswith("head.") for n in report["loaded"])  # the classes differ: whole head new
    torch.testing.assert_close(task.net.state_dict()["features.4.weight"], src_task.net.state_dict()["features.4.weight"])


def test_same_shape_other_class_names_reinitialise_head(tmp_path):
    _, _, _, trainer = fit("cnn", tmp_path / "a", "data.classes=[elliptical,spiral]")
    ckpt = save(trainer, tmp_path / "src.ckpt")
    _, _, task, _ = fit("cnn", tmp_path / "b", "data.classes=[elliptical,merger]", f"model.init_from={ckpt}",
                        epochs=0)
    report = json.loads((tmp_path / "b" / INIT_FILE).read_text())
    assert not any(n.startswith("head.") for n in report["loaded"])
    assert {n for n, _ in report["reinitialised"]} == {n for n, _ in task.net.named_parameters() if n.startswith("head.")}


def test_e2cnn_invariant_after_init_and_finetune(tmp_path):
    _, _, _, trainer = fit("e2cnn", tmp_path / "a", CLASSES3)
    ckpt = save(trainer, tmp_path / "src.ckpt")
    cfg, dm, task, trainer2 = fit("e2cnn", tmp_path / "b", "data.classes=[elliptical,spiral]",
                                  f"model.init_from={ckpt}", "model.freeze_epochs=1", "model.head_lr_factor=10",
                                  epochs=2)
    trainer2.test(task, datamodule=dm, verbose=False)
    assert task.test_metrics["rotation_invariance_error"] < 1e-6
    assert len(json.loads((tmp_path / "b" / INIT_FILE).read_text())["loaded"]) > 0


def test_freeze_then_unfreeze_and_head_lr(tmp_path):
    _, _, src, trainer = fit("cnn", tmp_path / "a", CLASSES3)
    ckpt = save(trainer, tmp_path / "src.ckpt")
    before = {k: v.clone() for k, v in src.net.state_dict().items()}
    _, _, task, _ = fit("cnn", tmp_path / "b", CLASSES3, f"model.init_from={ckpt}", "model.freeze_epochs=1",
                        "model.head_lr_factor=5")
    after = task.net.state_dict()
    torch.testing.assert_close(after["features.4.weight"], before["features.4.weight"])  # frozen: unchanged
    torch.testing.assert_close(after["features.1.running_mean"], before["features.1.running_mean"])  # BN eval
    assert not torch.equal(after["head.3.weight"], before["head.3.weight"])  # the head trained
    groups = task.trainer.optimizers[0].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([task.optim_cfg["lr"], 5 * task.optim_cfg["lr"]])
    _, _, task2, _ = fit("cnn", tmp_path / "c", CLASSES3, f"model.init_from={ckpt}", "model.freeze_epochs=1", epochs=2)
    assert not torch.equal(task2.net.state_dict()["features.4.weight"], before["features.4.weight"])  # unfrozen


def test_errors(tmp_path, monkeypatch):
    _, _, _, trainer = fit("cnn", tmp_path / "a", CLASSES3)
    ckpt = save(trainer, tmp_path / "src.ckpt")
    with pytest.raises(ConfigError, match="no encoder tensor"):  # another architecture
        fit("cnn", tmp_path / "b", CLASSES3, f"model.init_from={ckpt}", "model.channels=[3,5,7]")
    with pytest.raises(ConfigError, match="freeze_epochs needs"):
        fit("cnn", tmp_path / "c", CLASSES3, "model.freeze_epochs=1")
    with pytest.raises(ConfigError, match="exists for the network resnet18 only"):
        fit("cnn", tmp_path / "d", CLASSES3, "model.pretrained=imagenet")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError, match=r"not cached .*download https://download.pytorch.org/models/resnet18"):
        pretrained_file("imagenet", "resnet18")


def test_imagenet_from_fake_cache(tmp_path, monkeypatch):
    """A fake ImageNet resnet18 state_dict in a temporary TORCH_HOME: with 3 bands and stem stride 4
    the 7x7 stem loads, the 1000-class fc is re-initialised."""
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    sd = torchvision.models.resnet18(weights=None).state_dict()
    path = Path(torch.hub.get_dir()) / "checkpoints"
    path.mkdir(parents=True)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(sd, path / url.rsplit("/", 1)[-1])
    _, _, task, _ = fit("resnet18", tmp_path / "b", "data.image_size=64", "model.pretrained=imagenet",
                        "model.stem_stride=4", "data.classes=[elliptical,spiral]", epochs=0)
    report = json.loads((tmp_path / "b" / INIT_FILE).read_text())
    assert "conv1.weight" in report["loaded"] and "layer4.1.conv2.weight" in report["loaded"]
    assert {n for n, _ in report["reinitialised"]} == {"fc.weight", "fc.bias"}
    torch.testing.assert_close(task.net.state_dict()["layer2.0.conv1.weight"], sd["layer2.0.conv1.weight"])


@pytest.mark.slow
def test_cli_init_from_across_tasks_and_bad_exits_2(tmp_path):
    """lensfinding from a morphology checkpoint through the CLI: init.json in the run dir; a missing
    checkpoint exits 2 and leaves no run dir."""
    base = ["trainer.max_epochs=1", "logger=none", "data.n_train=16", "data.n_val=8", "data.n_test=8",
            "data.batch_size=8", "plots=false", "model.channels=[4,8,8]"]
    morph = ["data.image_size=16", "data.pixel_scale=0.8", "data.oversample=2", "data.n_bands=3"]
    r = run_cli(["train", "morphology", "-m", "cnn", *base, *morph], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = run_dirs(tmp_path, "morphology", "cnn")[0] / "checkpoints" / "best.ckpt"
    lens = ["-c", str(CONF / "lensfinding.yaml"), "data.image_size=16", "data.pixel_scale=0.45",
            f"model.init_from={ckpt}", "model.check_pixel_scale=false"]  # another task, another pixel scale
    r = run_cli(["train", "lensfinding", "-m", "cnn", *base, *lens], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = run_dirs(tmp_path, "lensfinding", "cnn")
    report = json.loads((run / INIT_FILE).read_text())
    assert report["loaded"] and report["source"] == str(ckpt.resolve())
    r = run_cli(["train", "lensfinding", "-m", "cnn", *base, *lens[:-2],
                 f"model.init_from={tmp_path / 'missing.ckpt'}"], tmp_path)
    assert r.returncode == 2 and "model.init_from: checkpoint not found" in r.stderr.strip().splitlines()[-1]
    assert len(run_dirs(tmp_path, "lensfinding", "cnn")) == 1
