"""Core performance: Lightning overhead, data-pipeline wait, inference throughput (issue 12).

Every ratio is measured in one process run, on this machine, one after the other:

* **Lightning overhead** — training throughput (samples/s over the training batches of
  epochs 2..E, after a warm-up epoch) of a task's default model run through
  :func:`cosmobench.runner.train` (our Trainer: checkpointing, CSV logger, ``self.log`` per
  step, deterministic algorithms, progress bar off) divided by the throughput of a
  hand-written PyTorch loop (``loss.backward(); opt.step()``) over the *same* DataLoader,
  model (same init), optimizer, scheduler and batch size. Target >= 0.9.
* **Data wait** — fraction of the training step time spent between the end of one batch
  and the start of the next (fetching and collating the batch with the default
  ``data.num_workers``; Lightning's per-batch bookkeeping is included, so this is an upper
  bound of the pure data wait). Target < 10%.
* **Inference throughput** — galaxies/s of a task's default network in eval mode on random
  unit-variance images at batch 256, ``torch.no_grad``; an e2cnn network is first exported
  to plain ``torch.nn`` modules with e2cnn's ``export()`` (checked to give the same logits).
  Printed beside GaLNet's published 0.04 s/galaxy on CPU (25 galaxies/s; Li et al. 2020,
  ApJ 899, 30). Target >= 1000 galaxies/s.

``rows(quick)`` returns the table rows for ``python -m benchmarks``; ``main`` prints them.
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings

GALNET_S_PER_GALAXY = 0.04

#: (task, model, overrides) of the training measurements: each task's default model at its
#: registry settings, with a run length that keeps `make bench` to a few minutes.
TRAIN_CASES = [
    ("photoz", None, ["trainer.max_epochs=4"]),
    ("morphology", None, ["data.image_size=32", "data.pixel_scale=0.4", "data.n_train=1024",
                          "data.n_val=64", "data.n_test=64", "trainer.max_epochs=3"]),
]
INFER_TASKS = ("morphology", "lensfinding")


class _StepTimer:
    """Lightning callback: time of training batches and of the gaps between them."""

    def __new__(cls):
        import pytorch_lightning as pl

        class Timer(pl.Callback):
            def __init__(self):
                self.epochs: list[dict] = []
                self._end = None

            def on_train_epoch_start(self, trainer, module):
                self.epochs.append({"compute": 0.0, "wait": 0.0, "samples": 0, "t0": time.perf_counter()})
                self._end = time.perf_counter()

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                now = time.perf_counter()
                self.epochs[-1]["wait"] += now - self._end
                self._start = now

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                now = time.perf_counter()
                e = self.epochs[-1]
                e["compute"] += now - self._start
                e["samples"] += len(batch["idx"])
                self._end = now

        return Timer()


def _runner_throughput(task: str, model: str | None, overrides: list[str]) -> dict:
    """Train through cosmobench.runner.train with a timing callback added to its Trainer."""
    from cosmobench import config as C
    from cosmobench import runner
    timer = _StepTimer()
    orig = runner.build_trainer

    def build_trainer(*args, **kwargs):
        trainer = orig(*args, **kwargs)
        trainer.callbacks.append(timer)
        return trainer

    cfg = C.resolve(task, model, overrides=[*overrides, "logger=none", "plots=false",
                                            "trainer.enable_progress_bar=false",
                                            "trainer.enable_model_summary=false"])
    runner.build_trainer = build_trainer
    try:
        with tempfile.TemporaryDirectory() as root:
            runner.train(task, cfg=cfg, root=root)
    finally:
        runner.build_trainer = orig
    eps = timer.epochs[1:]  # epoch 0 warms up (lazy filter bases, allocator)
    compute = sum(e["compute"] for e in eps)
    wait = sum(e["wait"] for e in eps)
    samples = sum(e["samples"] for e in eps)
    return {"cfg": cfg, "samples_per_s": samples / (compute + wait), "wait_fraction": wait / (compute + wait)}


def _hand_loop_throughput(cfg: dict) -> float:
    """The same model, data, optimizer and schedule in a plain PyTorch loop."""
    import pytorch_lightning as pl
    import torch

    from cosmobench.registry import get_task
    from cosmobench.runner import _set_threads, load_classes
    spec = get_task(cfg["task"])
    dm_cls, task_cls = load_classes(spec)
    _set_threads(cfg)
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    torch.use_deterministic_algorithms(True)
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    dm.setup("fit")
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())
    module.train()
    loader = dm.train_dataloader()
    o = cfg["optim"]
    params = [p for p in module.parameters() if p.requires_grad]
    opt = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[o["name"]](params, lr=o["lr"],
                                                                            weight_decay=o["weight_decay"])
    epochs = cfg["trainer"]["max_epochs"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader)) \
        if o["scheduler"] == "cosine" else None
    samples, seconds = 0, 0.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        n = 0
        for batch in loader:
            loss = module.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            n += len(batch["idx"])
        if epoch > 0:
            seconds += time.perf_counter() - t0
            samples += n
    return samples / seconds


def export_plain(net):
    """An e2cnn :class:`~cosmobench.nn.equivariant.E2CNN` as plain torch modules (e2cnn's
    ``export()`` of its feature stack and group pooling); other networks unchanged."""
    import torch
    from torch import nn
    if not (hasattr(net, "features") and hasattr(net, "gpool") and hasattr(net.features, "export")):
        return net

    def export_module(m):
        # e2cnn 0.2.3 has no export() for PointwiseAvgPool: it is a plain avg_pool2d on the tensor
        if type(m).__name__ == "PointwiseAvgPool":
            return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        return m.export()

    class Exported(nn.Module):
        def __init__(self, src):
            super().__init__()
            self.features = nn.Sequential(*(export_module(m) for _, m in src.features.named_children()))
            self.gpool = src.gpool.export()
            self.head = copy.deepcopy(src.head)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.gpool(self.features(x)).mean(dim=(2, 3)))

    net.eval()
    return Exported(net).eval()


def _inference(task: str, batch: int, seconds: float) -> dict:
    import pytorch_lightning as pl
    import torch

    from cosmobench import config as C
    from cosmobench.registry import get_task
    from cosmobench.runner import load_classes
    spec = get_task(task)
    cfg = C.resolve(task, None, overrides=["data.n_train=32", "data.n_val=8", "data.n_test=8"])
    dm_cls, task_cls = load_classes(spec)
    pl.seed_everything(0, verbose=False)
    dm = dm_cls(cfg["data"], seed=0)
    dm.setup("fit")
    module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info=dm.info()).eval()
    net = module.net.eval()
    x = torch.randn(batch, int(cfg["data"]["n_bands"]), int(cfg["data"]["image_size"]), int(cfg["data"]["image_size"]))
    plain = export_plain(net)
    note = ""
    with torch.no_grad():
        if plain is not net:
            diff = float((plain(x[:16]) - net(x[:16])).abs().max())
            note = f"e2cnn export(): max |logit diff| {diff:.1e}; "
        plain(x)  # warm-up
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while n == 0 or time.perf_counter() - t0 < seconds:
            plain(x)
            n += 1
        rate = n * batch / (time.perf_counter() - t0)
        cpu_rate = n * batch / (time.process_time() - c0)  # per CPU-second: less sensitive to a busy machine
    return {"model": cfg["model"]["name"], "rate": rate, "size": cfg["data"]["image_size"],
            "bands": cfg["data"]["n_bands"], "note": note + f"{cpu_rate:.0f} per CPU-s "
                                                          f"({torch.get_num_threads()} threads); "}


def _error_row(bench: str, task: str, exc: Exception) -> dict:
    return {"benchmark": bench, "case": task, "value": "error", "unit": "", "target": "",
            "note": f"{type(exc).__name__}: {exc}".splitlines()[0][:120]}


def rows(quick: bool = False) -> list[dict]:
    import torch
    warnings.filterwarnings("ignore")
    os.environ.setdefault("WANDB_MODE", "disabled")
    out = []
    from cosmobench.registry import get_task
    for task, model, ov in TRAIN_CASES:
        try:
            get_task(task)
        except Exception:  # noqa: BLE001 - a task not installed is left out of the table
            continue
        try:
            r = _runner_throughput(task, model, ov)
            hand = _hand_loop_throughput(r["cfg"])
        except Exception as exc:  # noqa: BLE001 - one broken task must not hide the other rows
            out.append(_error_row("lightning overhead", task, exc))
            continue
        name = f"{task}/{r['cfg']['model']['name']}"
        bs = r["cfg"]["data"]["batch_size"]
        out.append({"benchmark": "lightning overhead", "case": f"{name} batch {bs}",
                    "value": f"{r['samples_per_s'] / hand:.2f}",
                    "unit": "runner / hand loop", "target": ">= 0.9",
                    "note": f"{r['samples_per_s']:.0f} vs {hand:.0f} samples/s"})
        out.append({"benchmark": "data wait", "case": f"{name} num_workers={r['cfg']['data']['num_workers']}",
                    "value": f"{100 * r['wait_fraction']:.1f}%", "unit": "of step time", "target": "< 10%",
                    "note": "gap between batches (upper bound)"})
    for task in INFER_TASKS:
        try:
            get_task(task)
        except Exception:  # noqa: BLE001
            continue
        try:
            r = _inference(task, 256, 3.0 if quick else 8.0)
        except Exception as exc:  # noqa: BLE001
            out.append(_error_row("inference", task, exc))
            continue
        out.append({"benchmark": "inference", "case": f"{task}/{r['model']} {r['bands']}x{r['size']}^2 batch 256",
                    "value": f"{r['rate']:.0f}", "unit": "galaxies/s", "target": ">= 1000",
                    "note": f"{r['note']}GaLNet: {1 / GALNET_S_PER_GALAXY:.0f}/s (0.04 s/galaxy); "
                            f"x{r['rate'] * GALNET_S_PER_GALAXY:.0f}"})
    return out


def main(argv=None) -> None:
    from benchmarks.__main__ import print_table
    print_table(rows())


if __name__ == "__main__":
    main()
