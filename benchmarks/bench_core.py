"""Core performance: Lightning overhead, data-pipeline wait, inference throughput (issue 12).

Every ratio is measured in one process run, on this machine, one after the other:

* **Lightning overhead** — training throughput (samples per second over the training batches
  of epochs 2..E, after a warm-up epoch) of a task's default model run through
  :func:`cosmobench.runner.train` (our Trainer: checkpointing, ``self.log`` per step,
  deterministic algorithms; logger and progress bar off) divided by the throughput of a
  hand-written PyTorch loop (``loss.backward(); opt.step()``) over the *same* DataLoader,
  model (same init), optimizer, scheduler and batch size. The hand loop runs before and after
  the runner and the ratio uses both (drift of a shared machine's load cancels to first
  order). Both run on :data:`TRAIN_THREADS` thread(s). The value is the ratio of samples per
  **CPU second** of the process (insensitive to other processes on a busy machine); the
  note gives the wall-clock ratio too. Target >= 0.9.
* **Data wait** — fraction of the runner's training step time spent inside the train
  DataLoader's ``next`` (sampling, fetching and collating a batch with the default
  ``data.num_workers``), in CPU time (wall time in the note, and the whole gap between one
  batch's end and the next one's start, which adds Lightning's per-batch bookkeeping: an
  upper bound). Target < 10%.
* **Inference throughput** — galaxies/s of what ``cosmobench predict`` runs for a task's
  default network (:meth:`cosmobench.image_classification.ImageClassificationTask.predict_outputs`:
  normalisation, the network exported for inference -- e2cnn as plain ``torch.nn`` via
  :meth:`cosmobench.nn.equivariant.E2CNN.export`, batch norm folded into the convolutions,
  channels-last, run in chunks of ``inference_chunk`` images -- under ``torch.inference_mode``),
  batch 256, on all cores of this CPU (``torch.set_num_threads(os.cpu_count())``), at the
  default precision ``auto`` (bfloat16 autocast where the CPU has native bfloat16), at ``fp32``,
  and with ``predict --compile`` (``torch.compile``, rate after the compiling first call, whose
  time the note gives). The note gives the network's
  GFLOP per galaxy (``torch.utils.flop_counter``) and the sustained GFLOP/s. Printed beside
  GaLNet's published 0.04 s/galaxy on CPU (25 galaxies/s; Li et al. 2020, ApJ 899, 30).
  Target >= 1000 galaxies/s.
* **Inference precision** — for the morphology model trained in the overhead case: the
  largest |p_bf16 - p_fp32| over all classes and the agreement of the predicted labels on
  :data:`PRECISION_N_TEST` simulated test galaxies (:func:`precision_check`; also
  ``python -m benchmarks.bench_core --precision-check TASK CKPT [KEY=VALUE ...]`` for any
  trained checkpoint).

``rows(quick)`` returns the table rows for ``python -m benchmarks``; ``main`` prints them.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings

GALNET_S_PER_GALAXY = 0.04

#: torch threads of the training measurements (runner and hand loop alike)
TRAIN_THREADS = 1
#: (task, model, overrides) of the training measurements: each task's default model at its
#: resolved settings (declared defaults and the task's experiments/ layers), with a run length
#: that keeps `make bench` to a few minutes.
TRAIN_CASES = [
    ("photoz", None, ["trainer.max_epochs=9"]),
    ("morphology", None, ["data.image_size=32", "data.pixel_scale=0.4", "data.n_train=1024",
                          "data.n_val=64", "data.n_test=64", "trainer.max_epochs=3"]),
]
INFER_TASKS = ("morphology", "lensfinding")
#: tasks whose trained overhead-case model gets the bf16-vs-fp32 prediction check
PRECISION_TASKS = ("morphology",)
PRECISION_N_TEST = 1000


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class _StepTimer:
    """Lightning callback: wall and CPU time of training batches and of the gaps between them."""

    def __new__(cls):
        import pytorch_lightning as pl

        class Timer(pl.Callback):
            def __init__(self):
                self.epochs: list[dict] = []
                self._end = (0.0, 0.0)
                self._start = (0.0, 0.0)

            def on_train_epoch_start(self, trainer, module):
                self.epochs.append({"wall": 0.0, "cpu": 0.0, "wait_wall": 0.0, "wait_cpu": 0.0, "samples": 0,
                                    "fetch_wall": 0.0, "fetch_cpu": 0.0})
                self._end = _clocks()

            def fetch_started(self):
                self._fetch = _clocks()

            def fetch_ended(self):
                if self.epochs:
                    now = _clocks()
                    self.epochs[-1]["fetch_wall"] += now[0] - self._fetch[0]
                    self.epochs[-1]["fetch_cpu"] += now[1] - self._fetch[1]

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                now = _clocks()
                e = self.epochs[-1]
                e["wait_wall"] += now[0] - self._end[0]
                e["wait_cpu"] += now[1] - self._end[1]
                self._start = now

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                now = _clocks()
                e = self.epochs[-1]
                e["wall"] += now[0] - self._start[0]
                e["cpu"] += now[1] - self._start[1]
                e["samples"] += len(batch["idx"])
                self._end = now

        return Timer()


def _rates(epochs: list[dict]) -> dict:
    """Samples per wall / CPU second (compute + wait), the fractions of that time between
    batches (``wait_*``) and inside the DataLoader's ``next`` (``fetch_*``) of ``epochs``."""
    keys = ("wall", "cpu", "wait_wall", "wait_cpu", "fetch_wall", "fetch_cpu", "samples")
    tot = {k: sum(e.get(k, 0.0) for e in epochs) for k in keys}
    wall, cpu = tot["wall"] + tot["wait_wall"], tot["cpu"] + tot["wait_cpu"]
    return {"wall": tot["samples"] / wall, "cpu": tot["samples"] / cpu,
            "wait_wall": tot["wait_wall"] / wall, "wait_cpu": tot["wait_cpu"] / cpu,
            "fetch_wall": tot["fetch_wall"] / wall, "fetch_cpu": tot["fetch_cpu"] / cpu, "samples": tot["samples"]}


def _case_cfg(task: str, model: str | None, overrides: list[str]) -> dict:
    from cosmobench import config as C
    return C.resolve(task, model, overrides=[*overrides, f"num_threads={TRAIN_THREADS}", "logger=none",
                                             "plots=false", "trainer.enable_progress_bar=false",
                                             "trainer.enable_model_summary=false"])


def _runner_throughput(cfg: dict, after=None) -> dict:
    """Train through cosmobench.runner.train with a timing callback added to its Trainer;
    ``after(run_result)`` runs while the run dir still exists. The time inside the train
    DataLoader's ``next`` is taken from the hooks Lightning's training loop calls around each
    fetch (for its profiler: ``_TrainingEpochLoop._on_before_fetch``/``_on_after_fetch``)."""
    from pytorch_lightning.loops.training_epoch_loop import _TrainingEpochLoop

    from cosmobench import runner
    timer = _StepTimer()
    orig = runner.build_trainer
    hooks = {name: getattr(_TrainingEpochLoop, name, None) for name in ("_on_before_fetch", "_on_after_fetch")}

    def build_trainer(*args, **kwargs):
        trainer = orig(*args, **kwargs)
        trainer.callbacks.append(timer)
        return trainer

    def before_fetch(loop):
        timer.fetch_started()
        hooks["_on_before_fetch"](loop)

    def after_fetch(loop):
        hooks["_on_after_fetch"](loop)
        timer.fetch_ended()

    runner.build_trainer = build_trainer
    if all(hooks.values()):
        _TrainingEpochLoop._on_before_fetch, _TrainingEpochLoop._on_after_fetch = before_fetch, after_fetch
    extra = None
    try:
        with tempfile.TemporaryDirectory() as root:
            res = runner.train(cfg["task"], cfg=cfg, root=root)
            if after is not None:
                extra = after(res)
    finally:
        runner.build_trainer = orig
        for name, fn in hooks.items():
            if fn is not None:
                setattr(_TrainingEpochLoop, name, fn)
    out = _rates(timer.epochs[1:])  # epoch 0 warms up (lazy filter bases, allocator)
    out["extra"] = extra
    return out


def _hand_loop_throughput(cfg: dict) -> dict:
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
    timed = []
    for epoch in range(epochs):
        n, t0 = 0, _clocks()
        for batch in loader:
            loss = module.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            n += len(batch["idx"])
        t1 = _clocks()
        if epoch > 0:
            timed.append({"wall": t1[0] - t0[0], "cpu": t1[1] - t0[1], "wait_wall": 0.0, "wait_cpu": 0.0,
                          "samples": n})
    return _rates(timed)


def precision_check(task: str, checkpoint, overrides=(), n_test: int | None = None) -> dict:
    """bf16 vs fp32 predictions of a trained checkpoint on its config's test split
    (``predict_logits`` at both precisions): ``max_dp`` (largest |Δp| over galaxies and classes),
    ``agreement`` (fraction of equal predicted labels), ``n_differ``, ``n``, the accuracies
    ``acc_bf16``/``acc_fp32`` and the model name."""
    import torch

    from cosmobench import runner
    from cosmobench.registry import get_task
    dm_cls, task_cls = runner.load_classes(get_task(task))
    ov = list(overrides) + ([f"data.n_test={n_test}"] if n_test else [])
    cfg, ckpt = runner.checkpoint_config(task, checkpoint, overrides=ov)
    module = runner._load_module(task_cls, task, ckpt).eval()
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    dm.setup()
    x, y = dm.split_images("test"), dm.datasets["test"].arrays["label"]
    probs = {}
    for p in ("fp32", "bf16"):
        module.set_inference_precision(p)
        probs[p] = module.predict_logits(x).softmax(dim=1)
    lab = {p: v.argmax(dim=1) for p, v in probs.items()}
    return {"model": cfg["model"]["name"], "n": len(x), "size": tuple(x.shape[1:]),
            "max_dp": float((probs["bf16"] - probs["fp32"]).abs().max()),
            "agreement": float((lab["bf16"] == lab["fp32"]).float().mean()),
            "n_differ": int((lab["bf16"] != lab["fp32"]).sum()),
            "acc_fp32": float((lab["fp32"] == y).float().mean()), "acc_bf16": float((lab["bf16"] == y).float().mean())}


def _precision_row(task: str, r: dict, origin: str = "trained in the overhead case") -> dict:
    c, h, w = r["size"]
    return {"benchmark": "inference precision", "case": f"{task}/{r['model']} bf16 vs fp32, {r['n']} test galaxies "
                                                        f"{c}x{h}^2 ({origin})",
            "value": f"{r['max_dp']:.1e}", "unit": "max |dp|", "target": "",
            "note": f"labels agree {100 * r['agreement']:.2f}% ({r['n_differ']} differ); "
                    f"accuracy {r['acc_bf16']:.3f} bf16 vs {r['acc_fp32']:.3f} fp32"}


def _gflop_per_item(net, x) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x[:1])
    return fc.get_total_flops() / 1e9


def _inference(task: str, batch: int, seconds: float) -> dict:
    """Galaxies/s of ``predict_outputs`` on ``batch`` raw images, at precision auto and fp32."""
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
    train = dm.split_images("train")
    x = train[torch.arange(batch) % len(train)]  # simulated galaxies (raw counts), as predict reads them
    items = {"image": x, "idx": torch.arange(batch)}
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    out = {"model": cfg["model"]["name"], "size": cfg["data"]["image_size"], "bands": cfg["data"]["n_bands"],
           "threads": torch.get_num_threads(), "gflop": _gflop_per_item(module.net, module.normalise(x))}
    def rate(fn) -> dict:
        with torch.no_grad():
            fn()  # warm-up
            n, t0 = 0, _clocks()
            while n == 0 or time.perf_counter() - t0[0] < seconds:
                fn()
                n += 1
            t1 = _clocks()
        return {"wall": n * batch / (t1[0] - t0[0]), "cpu": n * batch / (t1[1] - t0[1])}

    try:
        with torch.no_grad():  # the exported network gives the training network's logits (float32)
            module.set_inference_precision("fp32")
            z = module.normalise(x[:16])
            out["export_diff"] = float((module.predict_logits(x[:16]) - module.net(z)).abs().max())
            module.train().eval()  # drops the inference cache
            module.predict_outputs(items)
        # a task whose own predict_outputs bypasses predict_logits never builds the inference model
        out["fast_path"] = "_inference_cache" in module.__dict__
        for p in ("auto", "fp32") if out["fast_path"] else ("auto",):  # else both are the same forward
            module.set_inference_precision(p)
            out[f"dtype_{p}"] = str(module.inference_dtype()).removeprefix("torch.") if out["fast_path"] \
                else "float32 (training forward)"
            out[p] = rate(lambda: module.predict_outputs(items))
        if out["fast_path"]:  # predict --compile: torch.compile of the same network, compile time apart
            module.set_inference_precision("auto")
            module.set_inference_compile(True)
            t0 = time.perf_counter()
            module.predict_outputs(items)
            out["compile_seconds"] = time.perf_counter() - t0
            out["compiled"] = rate(lambda: module.predict_outputs(items))
            module.set_inference_compile(False)
        out.setdefault("fp32", out["auto"])
        out.setdefault("dtype_fp32", out["dtype_auto"])
        if not out["fast_path"]:  # what predict_logits would give
            module.set_inference_precision("auto")
            out["dtype_logits"] = str(module.inference_dtype()).removeprefix("torch.")
            out["logits"] = rate(lambda: module.predict_logits(x).softmax(dim=1))
    finally:
        torch.set_num_threads(threads)
    return out


def _error_row(bench: str, task: str, exc: Exception) -> dict:
    return {"benchmark": bench, "case": task, "value": "error", "unit": "", "target": "",
            "note": f"{type(exc).__name__}: {exc}".splitlines()[0][:120]}


def rows(quick: bool = False) -> list[dict]:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("WANDB_MODE", "disabled")
    out = []
    from cosmobench.registry import get_task
    precision_rows = []
    for task, model, ov in TRAIN_CASES:
        try:
            get_task(task)
        except Exception:  # noqa: BLE001 - a task not installed is left out of the table
            continue
        try:
            cfg = _case_cfg(task, model, ov)
            check = None
            if task in PRECISION_TASKS:
                def check(res, task=task):
                    return precision_check(task, res.run_dir / "checkpoints" / "best.ckpt",
                                           n_test=PRECISION_N_TEST // (4 if quick else 1))
            hand_a = _hand_loop_throughput(cfg)
            r = _runner_throughput(cfg, after=check)
            hand_b = _hand_loop_throughput(cfg)
        except Exception as exc:  # noqa: BLE001 - one broken task must not hide the other rows
            out.append(_error_row("lightning overhead", task, exc))
            continue
        # hand loop before and after the runner: total samples over total time of both
        hand = {k: (hand_a["samples"] + hand_b["samples"]) /
                (hand_a["samples"] / hand_a[k] + hand_b["samples"] / hand_b[k]) for k in ("wall", "cpu")}
        name = f"{task}/{cfg['model']['name']}"
        bs = cfg["data"]["batch_size"]
        out.append({"benchmark": "lightning overhead", "case": f"{name} batch {bs}, {TRAIN_THREADS} thread",
                    "value": f"{r['cpu'] / hand['cpu']:.2f}",
                    "unit": "runner / hand loop", "target": ">= 0.9",
                    "note": f"{r['cpu']:.0f} vs {hand['cpu']:.0f} samples/CPU-s; wall clock "
                            f"{r['wall'] / hand['wall']:.2f} ({r['wall']:.0f} vs {hand['wall']:.0f}/s)"})
        out.append({"benchmark": "data wait", "case": f"{name} num_workers={cfg['data']['num_workers']}",
                    # with worker processes the main process only waits (no CPU time): use the wall clock
                    "value": f"{100 * r['fetch_cpu' if cfg['data']['num_workers'] == 0 else 'fetch_wall']:.1f}%",
                    "unit": "of step time", "target": "< 10%",
                    "note": f"inside the DataLoader's next (wall clock {100 * r['fetch_wall']:.1f}%); whole gap "
                            f"between batches incl. Lightning's bookkeeping {100 * r['wait_cpu']:.1f}%"})
        if r["extra"] is not None:
            precision_rows.append(_precision_row(task, r["extra"]))
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
        auto, fp32 = r["auto"], r["fp32"]
        export = f"export max |logit diff| {r['export_diff']:.0e}; " if r["model"] == "e2cnn" else ""
        if not r["fast_path"]:
            export += (f"NB the task's predict_outputs does not call predict_logits: through it "
                       f"{r['logits']['wall']:.0f}/s ({r['dtype_logits']}, {r['logits']['cpu']:.0f} per CPU-s); ")
        out.append({"benchmark": "inference",
                    "case": f"{task}/{r['model']} {r['bands']}x{r['size']}^2 batch 256, {r['dtype_auto']}, "
                            f"{r['threads']} threads",
                    "value": f"{auto['wall']:.0f}", "unit": "galaxies/s", "target": ">= 1000",
                    "note": f"fp32 {fp32['wall']:.0f}/s; per CPU-s {auto['cpu']:.0f} ({r['dtype_auto']}), "
                            f"{fp32['cpu']:.0f} (fp32); {r['gflop']:.2f} GFLOP/galaxy = "
                            f"{auto['wall'] * r['gflop']:.0f} GFLOP/s; {export}"
                            f"GaLNet: {1 / GALNET_S_PER_GALAXY:.0f}/s (0.04 s/galaxy): "
                            f"x{auto['wall'] * GALNET_S_PER_GALAXY:.0f}"})
        if "compiled" in r:
            c = r["compiled"]
            out.append({"benchmark": "inference --compile",
                        "case": f"{task}/{r['model']} as above, torch.compile (predict --compile)",
                        "value": f"{c['wall']:.0f}", "unit": "galaxies/s", "target": ">= 1000",
                        "note": f"per CPU-s {c['cpu']:.0f}; x{c['wall'] / auto['wall']:.2f} the default; "
                                f"first call (compiling) {r['compile_seconds']:.1f} s; "
                                f"{c['wall'] * r['gflop']:.0f} GFLOP/s"})
    return out + precision_rows


def main(argv=None) -> None:
    from benchmarks.__main__ import print_table
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--precision-check"]:
        if len(argv) < 3:
            raise SystemExit("usage: python -m benchmarks.bench_core --precision-check TASK CKPT [KEY=VALUE ...]")
        warnings.filterwarnings("ignore")
        print_table([_precision_row(argv[1], precision_check(argv[1], argv[2], argv[3:]), f"checkpoint {argv[2]}")])
        return
    print_table(rows("--quick" in argv))


if __name__ == "__main__":
    main()
