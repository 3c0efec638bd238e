"""Lightning's full Trainer as ``trainer.<arg>`` (schema from ``pl.Trainer.__init__``),
choice keys checked at resolve time, and the learning-rate schedules of BaseTask."""
import inspect
import json

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from conftest import HERE, db_rows, run_cli, run_dirs
from cosmobench import config as C
from cosmobench.errors import ConfigError
from cosmobench.task import BaseTask

TINY_MORPH = str(HERE / "conf" / "morphology.yaml")


def test_every_trainer_argument_is_settable_or_explained():
    cfg = C.resolve("photoz", "mdn")
    params = [p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self"]
    for name in params:
        if name in cfg["trainer"]:
            continue
        with pytest.raises(ConfigError, match=rf"'trainer.{name}' .*cannot be set: \S"):
            C.resolve("photoz", "mdn", overrides=[f"trainer.{name}=1"])
    assert set(cfg["trainer"]) <= set(params)
    # Lightning's own defaults where cosmobench has none of its own
    sig = inspect.signature(pl.Trainer.__init__).parameters
    assert cfg["trainer"]["accumulate_grad_batches"] == sig["accumulate_grad_batches"].default == 1
    assert cfg["trainer"]["strategy"] == "auto" and cfg["trainer"]["detect_anomaly"] is False
    # and a pl.Trainer accepts the whole resolved node
    trainer = pl.Trainer(**C.trainer_kwargs(cfg), logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg["trainer"]["max_epochs"]


@pytest.mark.parametrize("override,key,value", [
    ("trainer.devices=auto", "devices", "auto"),
    ("trainer.devices=[0,1]", "devices", [0, 1]),
    ("trainer.devices=2", "devices", 2),
    ("trainer.precision=16", "precision", 16),
    ("trainer.precision=bf16-mixed", "precision", "bf16-mixed"),
    ("trainer.precision='16'", "precision", "16"),
    ("trainer.accumulate_grad_batches=2", "accumulate_grad_batches", 2),
    ("trainer.fast_dev_run=3", "fast_dev_run", 3),
    ("trainer.max_time=00:00:10:00", "max_time", "00:00:10:00"),
    ("trainer.max_time={minutes: 10}", "max_time", {"minutes": 10}),
    ("trainer.val_check_interval=0.5", "val_check_interval", 0.5),
    ("trainer.limit_train_batches=0.25", "limit_train_batches", 0.25),
    ("trainer.gradient_clip_algorithm=value", "gradient_clip_algorithm", "value"),
    ("trainer.strategy=ddp_spawn", "strategy", "ddp_spawn"),
    ("trainer.profiler=simple", "profiler", "simple"),
])
def test_lightning_values_accepted(override, key, value):
    assert C.resolve("morphology", "cnn", overrides=[override])["trainer"][key] == value


@pytest.mark.parametrize("override,needle", [
    ("trainer.precision=17", r"trainer.precision=17 .*must be one of 64, 32, 16, .*bf16-mixed"),
    ("trainer.devices=1.5", "trainer.devices=1.5"),
    ("trainer.accumulate_grad_batches=0", "must be int >= 1"),
    ("trainer.gradient_clip_algorithm=clip", "one of norm, value or null"),
    ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches=1.5"),
    ("trainer.max_time=[1]", "trainer.max_time"),
    ("trainer.accumulate_grad_batchs=2", "did you mean 'trainer.accumulate_grad_batches'"),
    ("trainer.gpus=2", "did you mean 'trainer.devices'"),
    ("trainer.logger=false", "logger=wandb"),
    ("trainer.callbacks=[]", "early_stopping"),
    ("trainer.default_root_dir=/tmp/x", "--root"),
    ("trainer.enable_checkpointing=false", "best.ckpt"),
    ("trainer.deterministic=false", "reproducible"),
    ("trainer.barebones=true", "cannot be set"),
    ("trainer.model_registry=m", "network"),
    ("trainer.plugins=[]", "Python objects"),
])
def test_lightning_values_rejected_with_reason(override, needle):
    with pytest.raises(ConfigError, match=needle):
        C.resolve("morphology", "cnn", overrides=[override])


@pytest.mark.parametrize("override,needle", [
    ("optim.name=lbfgs", r"optim.name='lbfgs' .*one of adamw, adam, sgd"),
    ("optim.scheduler=exponential", "one of none, cosine, step, plateau, one-cycle"),
    ("optim.scheduler=Cosine", "one of none, cosine"),
    ("logger=mlflow", "one of wandb, csv, tensorboard, none"),
    ("logger=[csv,mlflow]", "logger"),
    ("data.source=hdf9", r"data.source='hdf9' .*one of sim, catalog"),
    ("optim.warmup_epochs=-1", "int >= 0"),
    ("optim.gamma=0", "0 < float <= 1"),
    ("early_stopping.monitor=val_accuracy", "one of val_loss, train_loss"),
])
def test_choice_keys_checked_at_resolve(override, needle):
    with pytest.raises(ConfigError, match=needle):
        C.resolve("photoz", "mdn", overrides=[override])


def test_choice_keys_of_image_task():
    with pytest.raises(ConfigError, match="model.group='X8'"):
        C.resolve("morphology", "e2cnn", overrides=["model.group=X8"])
    with pytest.raises(ConfigError, match=r"data.source='fits' .*sim, galaxy10, folder"):
        C.resolve("morphology", "cnn", overrides=["data.source=fits"])
    assert C.resolve("morphology", "e2cnn", overrides=["model.group=C16"])["model"]["group"] == "C16"


def test_schedule_cross_checks():
    with pytest.raises(ConfigError, match="warmup_epochs or optim.warmup_steps, not both"):
        C.resolve("photoz", "mdn", overrides=["optim.warmup_epochs=1", "optim.warmup_steps=10"])
    with pytest.raises(ConfigError, match="finite training length"):
        C.resolve("photoz", "mdn", overrides=["optim.scheduler=cosine", "trainer.max_epochs=-1"])
    with pytest.raises(ConfigError, match="min_lr"):
        C.resolve("photoz", "mdn", overrides=["optim.min_lr=1"])
    cfg = C.resolve("photoz", "mdn", overrides=["optim.scheduler=plateau", "trainer.max_epochs=-1",
                                                "trainer.max_steps=100"])
    assert cfg["optim"]["scheduler"] == "plateau"


# --- schedules --------------------------------------------------------------------------
class _Linear(BaseTask):
    def configure_model(self):
        return nn.Linear(2, 1)

    def loss(self, batch):
        return ((self.net(batch["x"]) - batch["y"]) ** 2).mean()

    def test_outputs(self, batch):
        return {"pred": self.net(batch["x"])}

    def compute_metrics(self, out):
        return {}

    def predict_outputs(self, batch):
        return self.test_outputs(batch)


class _LR(pl.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, module, batch, idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def _lr_curve(optim: dict, epochs=3, n=40, batch=4, accumulate=2, val_y=None):
    """Learning rate at every optimizer step of a tiny run (10 batches = 5 steps per epoch)."""
    g = torch.Generator().manual_seed(0)
    data = [{"x": torch.randn(2, generator=g), "y": torch.randn(1, generator=g), "idx": torch.tensor(i)}
            for i in range(n)]
    loader = torch.utils.data.DataLoader(data, batch_size=batch)
    cfg = C.resolve("photoz", "mdn", overrides=[f"optim.{k}={v}" for k, v in optim.items()])
    module = _Linear(model={"name": "lin"}, optim=cfg["optim"])
    cb = _LR()
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb], accumulate_grad_batches=accumulate,
                         num_sanity_val_steps=0)
    trainer.fit(module, loader, loader)
    return cb.lrs[::accumulate]  # one value per optimizer step


def test_schedules_follow_their_definitions():
    lr = 0.1
    const = _lr_curve({"lr": lr, "scheduler": "none"})
    assert const == pytest.approx([lr] * 15)

    warm = _lr_curve({"lr": lr, "scheduler": "none", "warmup_steps": 5})
    assert warm[:6] == pytest.approx([lr * (k + 1) / 6 for k in range(6)]) and warm[6:] == pytest.approx([lr] * 9)

    cos = _lr_curve({"lr": lr, "scheduler": "cosine", "min_lr": 0.01})
    assert cos[0] == pytest.approx(lr) and all(a > b for a, b in zip(cos, cos[1:]))
    import math
    assert cos[7] == pytest.approx(0.01 + (lr - 0.01) * 0.5 * (1 + math.cos(math.pi * 7 / 15)))

    cos_w = _lr_curve({"lr": lr, "scheduler": "cosine", "warmup_epochs": 1})  # 5 warm-up steps
    assert cos_w[:6] == pytest.approx([lr * (k + 1) / 6 for k in range(6)])
    assert all(a > b for a, b in zip(cos_w[5:], cos_w[6:]))

    step = _lr_curve({"lr": lr, "scheduler": "step", "step_size": 1, "gamma": 0.5})
    assert step == pytest.approx([lr] * 5 + [lr / 2] * 5 + [lr / 4] * 5)

    one = _lr_curve({"lr": lr, "scheduler": "one-cycle"})
    assert max(one) == pytest.approx(lr, rel=0.05) and one[0] < lr / 10 and one[-1] < lr / 100


def test_plateau_decays_after_patience_and_warms_up():
    # a constant target: val_loss stops improving quickly, so the plateau schedule decays
    curve = _lr_curve({"lr": 1e-6, "scheduler": "plateau", "plateau_patience": 0, "gamma": 0.5,
                       "warmup_steps": 3}, epochs=4)
    assert curve[:4] == pytest.approx([1e-6 * (k + 1) / 4 for k in range(4)])
    assert min(curve[5:]) < 1e-6  # at least one decay after warm-up, kept (not undone by the warm-up)


# --- end to end -------------------------------------------------------------------------
def test_cli_full_trainer_settings_run_on_cpu(root):
    """The issue's command: Lightning's accepted values reach the Trainer and the run works."""
    out = run_cli(["train", "morphology", "-m", "cnn", "-c", TINY_MORPH, "trainer.devices=auto",
                   "trainer.precision=bf16-mixed", "trainer.accumulate_grad_batches=2",
                   "optim.scheduler=cosine", "optim.warmup_steps=1"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = run_dirs(root, "morphology", "cnn")
    saved = C.load_yaml(run_dir / "config.yaml")["trainer"]
    assert (saved["devices"], saved["precision"], saved["accumulate_grad_batches"]) == ("auto", "bf16-mixed", 2)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    (row,) = db_rows(root)
    assert row["status"] == "ok"
