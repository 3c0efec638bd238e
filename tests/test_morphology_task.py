"""MorphologyTask end to end with a tiny Lightning run: training, test metrics, invariance,
checkpoint round trip, predict columns and plots."""
import logging
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from cosmobench.config import resolve
from cosmobench.datamodules.morphology import MorphologyDataModule
from cosmobench.tasks.morphology import MorphologyTask

warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)

TINY = ["data.image_size=16", "data.pixel_scale=0.8", "data.n_train=24", "data.n_val=8", "data.n_test=12",
        "data.batch_size=8", "data.oversample=2", "data.classes=[elliptical,edge_on,merger]"]
MODELS = {"e2cnn": ["model.channels=[2,4,4]"], "cnn": ["model.channels=[4,8,8]"], "resnet18": []}


def fit_and_test(model, tmp_path, *extra, epochs=1):
    cfg = resolve("morphology", model, overrides=TINY + MODELS[model] + list(extra))
    pl.seed_everything(0, workers=True, verbose=False)
    dm = MorphologyDataModule(cfg["data"], seed=cfg["seed"])
    dm.setup()
    task = MorphologyTask(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), deterministic=True, accelerator="cpu")
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    return cfg, dm, task, trainer


@pytest.mark.parametrize("model", ["e2cnn", "cnn", "resnet18"])
def test_train_test_predict_roundtrip(model, tmp_path):
    cfg, dm, task, trainer = fit_and_test(model, tmp_path)
    m = task.test_metrics
    assert set(m) == {"accuracy", "balanced_accuracy", "macro_f1", "ece", "nll", "rotation_invariance_error"}
    assert all(np.isfinite(v) for v in m.values())
    arr = task.test_arrays
    assert arr["probs"].shape == (12, 3) and np.array_equal(arr["idx"], np.arange(12))
    if model == "e2cnn":
        assert m["rotation_invariance_error"] < 1e-4
    else:
        assert m["rotation_invariance_error"] > 1e-6
    # checkpoint round trip: normalisation buffers and classes travel with the weights
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = MorphologyTask.load_from_checkpoint(str(ckpt), map_location="cpu").eval()
    torch.testing.assert_close(loaded.norm_scale, task.norm_scale)
    x = dm.datasets["test"].arrays["image"][:5]
    np.save(tmp_path / "in.npy", x.permute(0, 2, 3, 1).numpy())
    pdm = MorphologyDataModule(cfg["data"], seed=0)
    batch = next(iter(pdm.predict_loader(tmp_path / "in.npy")))
    loaded.set_inference_precision("fp32")  # the default may be bf16 (predict --precision); compared at 1e-5
    with torch.no_grad():
        cols = loaded.predict_outputs(batch)
    assert list(cols) == ["p_elliptical", "p_edge_on", "p_merger", "pred_label"]
    probs = torch.stack([cols[f"p_{c}"] for c in ("elliptical", "edge_on", "merger")], 1).numpy()
    np.testing.assert_allclose(probs, arr["probs"][:5], atol=1e-5)
    np.testing.assert_array_equal(cols["pred_label"].numpy(), probs.argmax(1))


def test_plots_soft_labels_and_augmentation(tmp_path):
    _, dm, task, _ = fit_and_test("cnn", tmp_path, "data.label_type=soft", "data.augment=true")
    assert "votes" in dm.datasets["train"][0]
    paths = task.make_plots(task.test_arrays, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == ["confusion_matrix.png", "examples_saliency.png", "reliability.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    sal = task.smoothgrad(dm.datasets["test"].arrays["image"][:2], torch.tensor([0, 1]), n_samples=4)
    assert sal.shape == (2, 16, 16) and torch.isfinite(sal).all() and sal.sum() > 0


def test_soft_loss_equals_hard_loss_for_one_hot_votes():
    cfg = resolve("morphology", "cnn", overrides=TINY + MODELS["cnn"])
    info = {"image_size": 16, "n_bands": 3, "classes": ["a", "b", "c"], "norm_scale": [1.0] * 3,
            "norm_mean": [0.0] * 3, "norm_std": [1.0] * 3, "stretch": "asinh"}
    task = MorphologyTask(model=cfg["model"], optim=cfg["optim"], data_info=info)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 2, 1, 1])
    hard = task.loss({"image": x, "label": y})
    soft = task.loss({"image": x, "label": y, "votes": torch.eye(3)[y]})
    torch.testing.assert_close(hard, soft)
    half = task.loss({"image": x, "label": y, "votes": torch.full((4, 3), 1 / 3)})
    assert not torch.isclose(half, hard)


def test_augmentation_only_while_training(tmp_path):
    dm = MorphologyDataModule(resolve("morphology", "cnn", overrides=TINY + ["data.augment=true"])["data"], seed=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))

    class FakeTrainer:
        training, current_epoch = True, 0

    dm.trainer = FakeTrainer()
    out = dm.on_after_batch_transfer(batch, 0)
    assert not torch.equal(out["image"], batch["image"])
    FakeTrainer.training = False
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)["image"], batch["image"])


def test_binary_task_gets_roc_metrics_and_plot(tmp_path):
    """Two classes: the shared image-classification base adds roc_auc/average_precision
    (scikit-learn) and a ROC plot -- what lensfinding reuses."""
    from cosmobench.metrics.classification import average_precision, roc_auc
    _, dm, task, _ = fit_and_test("cnn", tmp_path, "data.classes=[elliptical,edge_on]", "data.n_test=16")
    m, arr = task.test_metrics, task.test_arrays
    assert m["roc_auc"] == pytest.approx(roc_auc(arr["label"], arr["probs"][:, 1]))
    assert m["average_precision"] == pytest.approx(average_precision(arr["label"], arr["probs"][:, 1]))
    assert len(np.unique(arr["label"])) == 2 and 0.0 <= m["roc_auc"] <= 1.0
    names = sorted(p.name for p in task.make_plots(arr, tmp_path / "plots"))
    assert "roc.png" in names
