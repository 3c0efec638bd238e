"""Shared LightningModule logic for all tasks (training loop, baselines, metric gathering).

A task subclasses :class:`BaseTask` and implements

* :meth:`configure_model` -> the network (``nn.Module``) or a :class:`FittedBaseline`,
  chosen by ``self.model_name`` / ``self.model_cfg``;
* :meth:`loss` -> scalar loss of a batch (neural models);
* :meth:`test_outputs` -> per-sample tensors needed by the metrics;
* :meth:`compute_metrics` -> ``{name: float}`` from the gathered test outputs (numpy);
* :meth:`predict_outputs` -> per-sample columns written by ``cosmobench predict``;
* optionally :meth:`make_plots`.

Classical baselines are :class:`FittedBaseline` modules: during the first training
epoch the task collects the training split (gathered over DDP ranks) and calls
``baseline.fit``; their state goes into the checkpoint through ``get_extra_state``.
So baselines run through the same Trainer, checkpoint, test loop and leaderboard.
"""
from __future__ import annotations

import dataclasses
import logging
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from cosmobench.errors import ConfigError, NonFiniteLossError
from cosmobench.settings import setting


@dataclass
class OptimSettings:
    """The ``optim`` node: optimiser and learning-rate schedule (:meth:`BaseTask.configure_optimizers`)."""

    name: str = setting("adamw", ["adamw", "adam", "sgd"], help="optimiser")
    lr: float = setting(1e-3, "positive float", help="peak learning rate (one-cycle: its maximum)")
    weight_decay: float = setting(0.0, "non-negative float", help="decoupled (adamw) or L2 weight decay")
    momentum: float = setting(0.9, "0 <= float < 1", help="sgd only")
    scheduler: str = setting("none", ["none", "cosine", "step", "plateau", "one-cycle"], help="learning-rate schedule")
    min_lr: float = setting(0.0, "non-negative float", help="cosine: final learning rate")
    step_size: int = setting(10, "positive int", unit="epochs", help="step: epochs between decays")
    gamma: float = setting(0.1, "0 < float <= 1", help="step and plateau: decay factor")
    plateau_patience: int = setting(3, "non-negative int", unit="epochs",
                                    help="plateau: epochs without a lower val_loss before a decay")
    warmup_epochs: int = setting(0, "non-negative int", unit="epochs", help="linear warm-up length ...")
    warmup_steps: int = setting(0, "non-negative int", unit="steps", help="... or in optimizer steps (not both)")


#: ``cosmobench predict --precision``: ``auto`` is ``bf16`` on a CPU that computes bfloat16 natively
#: (AVX512-BF16 or AMX), else ``fp32``
INFERENCE_PRECISIONS = ("auto", "bf16", "fp32")


def native_bf16_cpu() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX) for oneDNN's kernels."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and (cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported()))
    except AttributeError:  # a torch without these probes: stay in float32
        return False


def default_optim() -> dict[str, Any]:
    """The declared defaults of the ``optim`` node (:class:`OptimSettings`)."""
    return dataclasses.asdict(OptimSettings())


class FittedBaseline(nn.Module):
    """A non-neural model fitted once on the training split.

    Subclasses implement :meth:`fit` (numpy arrays of the whole train split) and keep
    their fitted state in tensors returned by :meth:`state` / restored by :meth:`load_state`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fitted = False

    def fit(self, data: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def get_extra_state(self) -> dict[str, Any]:
        return {"fitted": self.fitted, "state": self.state() if self.fitted else {}}

    def set_extra_state(self, extra: dict[str, Any]) -> None:
        self.fitted = bool(extra.get("fitted"))
        if self.fitted:
            self.load_state(extra["state"])


def gather_outputs(module: pl.LightningModule, chunks: list[dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """Concatenate per-batch outputs, gather them from all ranks, drop DDP padding
    duplicates by ``idx`` and sort by ``idx``. Returns numpy arrays."""
    if not chunks:
        return {}
    local = {k: torch.cat([c[k].detach() for c in chunks]) for k in chunks[0]}
    # half-precision outputs (trainer.precision=16-mixed/bf16-mixed) as float32: numpy has no bfloat16
    local = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in local.items()}
    world = module.trainer.world_size if module._trainer is not None else 1
    if world > 1:
        n_local = torch.tensor([len(local["idx"])], device=module.device)
        n_max = int(module.all_gather(n_local).max())
        gathered = {}
        for k, v in local.items():
            pad = torch.zeros((n_max - len(v),) + tuple(v.shape[1:]), dtype=v.dtype, device=v.device)
            allv = module.all_gather(torch.cat([v, pad]))  # (world, n_max, ...)
            gathered[k] = allv
        counts = module.all_gather(n_local).reshape(-1).tolist()
        local = {k: torch.cat([v[r, :int(counts[r])] for r in range(world)]) for k, v in gathered.items()}
    idx = local["idx"].cpu().numpy()
    _, first = np.unique(idx, return_index=True)  # sorted unique indices
    return {k: v.cpu().numpy()[first] for k, v in local.items()}


def registered_task_name(cls: type) -> str | None:
    """The name of the registered task whose module class is ``cls`` (None if none or several)."""
    from cosmobench.registry import list_tasks
    ref = f"{cls.__module__}:{cls.__qualname__}"
    names = [spec.name for spec in list_tasks() if spec.module == ref]
    return names[0] if len(names) == 1 else None


class BaseTask(pl.LightningModule, metaclass=ABCMeta):
    """Base LightningModule. ``model`` is the resolved ``model`` config node (with ``name``),
    ``optim`` the ``optim`` node, ``data_info`` the datamodule's :meth:`info`."""

    def __init__(self, model: dict[str, Any], optim: dict[str, Any] | None = None,
                 data_info: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.model_name: str = model["name"]
        self.model_cfg: dict[str, Any] = dict(model)
        # without an optim node (a module built outside a run): the declared defaults
        self.optim_cfg: dict[str, Any] = dict(optim if optim is not None else default_optim())
        self.data_info: dict[str, Any] = dict(data_info or {})
        #: the ``eval`` node (the task's metric protocol, :attr:`TaskSpec.evaluation`)
        self.eval_cfg: dict[str, Any] = dict(evaluation or {})
        self.net = self.configure_model()
        self.is_baseline = isinstance(self.net, FittedBaseline)
        self.automatic_optimization = not self.is_baseline
        if self.is_baseline:  # DDP refuses to wrap a module without trainable parameters
            self.ddp_anchor = nn.Parameter(torch.zeros(()))
        self._fit_buffer: list[dict[str, torch.Tensor]] = []
        self._train_loss_sum: torch.Tensor | None = None  # this epoch's sum of loss x batch size
        self._train_n = 0
        self._test_buffer: list[dict[str, torch.Tensor]] = []
        self.test_metrics: dict[str, float] = {}
        self.test_arrays: dict[str, np.ndarray] = {}

    # --- to implement (docs/ARCHITECTURE.md, "The task contract") -----------------------
    @abstractmethod
    def configure_model(self) -> nn.Module:
        """The network for ``self.model_name`` (an ``nn.Module``, usually
        ``cosmobench.nn.build_net(self.model_name, self.model_cfg, **shapes)``) or a
        :class:`FittedBaseline`. Called once from ``__init__``; ``self.data_info`` (the
        datamodule's :meth:`~cosmobench.datamodule.BaseDataModule.info`) holds the shapes and
        train-split statistics, which the task may register as buffers (they then travel in
        the checkpoint). Unknown model name: ``raise self.unknown_model()``."""

    @abstractmethod
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar loss ``()`` of a batch: a dict of tensors with a leading batch axis ``B``
        (the dataset items collated, incl. ``idx`` ``(B,)``). Used for training (neural
        models) and as ``val_loss`` (all models, baselines included)."""

    @abstractmethod
    def test_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-sample tensors ``{name: (B, ...)}`` the metrics need (predictions and targets).
        The base class adds ``idx``, gathers them over DDP ranks, drops duplicates and passes
        them as numpy arrays ``(N, ...)``, sorted by ``idx``, to :meth:`compute_metrics`."""

    @abstractmethod
    def compute_metrics(self, out: dict[str, np.ndarray]) -> dict[str, float]:
        """``{metric: float}`` over the whole test split from the gathered :meth:`test_outputs`
        (numpy ``(N, ...)``; may add derived arrays to ``out`` for :meth:`make_plots`). Must
        contain the task's registered ``primary_metric``."""

    def predict_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Columns ``{name: (B,) or (B, K)}`` of ``cosmobench predict`` for a batch of
        unlabelled items (from the datamodule's ``read_input``); ``(B, K)`` columns are written
        as ``name_0 .. name_{K-1}``. Optional: without it a task has no ``predict``."""
        raise NotImplementedError(f"{type(self).__name__} does not support predict")

    def make_plots(self, out: dict[str, np.ndarray], plot_dir: Path) -> list[Path]:
        """Optional: write PNGs of the test outputs ``out`` (as in :meth:`compute_metrics`)
        below ``plot_dir``; return their paths."""
        return []

    # --- inference (``cosmobench predict``) ------------------------------------------------
    #: precision of :meth:`inference_autocast` (one of :data:`INFERENCE_PRECISIONS`)
    inference_precision: str = "auto"

    def set_inference_precision(self, precision: str) -> None:
        """Set :attr:`inference_precision` (``auto``, ``bf16`` or ``fp32``); ConfigError otherwise."""
        if precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"inference precision {precision!r} is not known; choose one of "
                              f"{', '.join(INFERENCE_PRECISIONS)}")
        self.inference_precision = precision

    def inference_dtype(self, device: torch.device | str = "cpu") -> torch.dtype:
        """Compute dtype of inference on ``device``: ``torch.bfloat16`` for ``bf16`` (and for
        ``auto`` on a CPU with native bfloat16, :func:`native_bf16_cpu`), else ``torch.float32``."""
        p = self.inference_precision
        if p == "auto":
            p = "bf16" if torch.device(device).type == "cpu" and native_bf16_cpu() else "fp32"
        return torch.bfloat16 if p == "bf16" else torch.float32

    def inference_autocast(self, device: torch.device | str = "cpu"):
        """Context of a predict forward pass: ``torch.autocast`` to :meth:`inference_dtype`
        (convolutions and matmuls in bfloat16 with float32 accumulation; other ops in float32),
        or a no-op in float32."""
        dtype = self.inference_dtype(device)
        return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32)

    def export_for_inference(self) -> nn.Module:
        """A copy of ``self.net`` in eval mode for :meth:`inference_model` (override to export a
        faster, equivalent module). It must not share parameters that training would change."""
        import copy
        return copy.deepcopy(self.net).eval()

    #: compile the inference model with ``torch.compile`` (``cosmobench predict --compile``)
    inference_compile: bool = False

    def set_inference_compile(self, on: bool) -> None:
        """Compile :meth:`inference_model` with ``torch.compile`` (TorchInductor, weights frozen
        as constants: convolutions with prepacked oneDNN weights and their activation fused).
        The first forward pass compiles (seconds to tens of seconds, needs a C++ compiler;
        cached on disk by PyTorch), so it pays off on large inputs."""
        self.inference_compile = bool(on)
        self.__dict__.pop("_inference_cache", None)
        if on:  # its "No CUDA runtime is found" warning on a CPU-only build is noise here
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

    def inference_model(self) -> nn.Module:
        """:meth:`export_for_inference` (compiled if :attr:`inference_compile`), built once and
        cached (outside the module tree: not in the state_dict). The cache is dropped by
        ``train()``/``eval()`` and by ``load_state_dict``, so it never holds stale weights."""
        cache = self.__dict__.setdefault("_inference_cache", {})
        if "net" not in cache:
            net = self.export_for_inference()
            cache["net"] = torch.compile(net, options={"freezing": True}) if self.inference_compile else net
        return cache["net"]

    def train(self, mode: bool = True):
        self.__dict__.pop("_inference_cache", None)
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self.__dict__.pop("_inference_cache", None)
        return super().load_state_dict(*args, **kwargs)

    #: output extensions besides the table formats that :meth:`write_predictions` writes (e.g. ``.npy``)
    extra_predict_suffixes: tuple[str, ...] = ()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Every checkpoint names its task and model (``checkpoint["cosmobench"]``; the data shape
        it expects is ``hyper_parameters.data_info``), so that ``test``/``predict`` refuse
        another task's checkpoint even away from its run dir
        (:func:`cosmobench.checkpoints.checkpoint_config`)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["cosmobench"] = {"task": registered_task_name(type(self)), "model": self.model_name}

    @classmethod
    def predict_files(cls, output: Path) -> list[Path]:
        """Every file ``cosmobench predict`` writes for ``output``: ``output`` and the companion
        files :meth:`write_predictions` writes, named from the full output stem with
        :func:`cosmobench.io.side_path` (``run.v1.csv`` -> ``run.v1_images.npz``). ``predict``
        checks them all before anything is written and writes them as one set
        (:func:`cosmobench.io.write_set`: writes through ``atomic_path``/``write_table`` are
        staged and moved into place together). Override to add companions."""
        return [Path(output)]

    def write_predictions(self, loader: torch.utils.data.DataLoader, output: Path) -> list[Path] | None:
        """Optional ``cosmobench predict`` hook for tasks whose input items do not map to one
        output row each (e.g. a scene yields a variable number of deblended sources).

        The default returns ``None`` without touching ``loader``: the runner then writes one
        table row per input item from :meth:`predict_outputs`. An override consumes the
        batches of ``loader`` (called in eval mode under ``torch.no_grad``), writes ``output``
        (any :func:`cosmobench.io.write_table` format) and any companion files named after it,
        atomically and only once every item succeeded, and returns the paths it wrote."""
        return None

    def require_info(self, *keys: str) -> dict[str, Any]:
        """``data_info``, checked to hold ``keys`` (the datamodule's train-split facts)."""
        missing = [k for k in keys if k not in self.data_info]
        if missing:
            raise ConfigError(f"{type(self).__name__} needs data_info {missing} (the datamodule's shapes and "
                              f"train-split statistics): build it from a datamodule or a checkpoint")
        return self.data_info

    def unknown_model(self) -> ConfigError:
        """Error for a model name this task does not implement."""
        return ConfigError(f"{type(self).__name__} has no model {self.model_name!r}")

    # --- training -----------------------------------------------------------------------
    def _check_finite(self, loss: torch.Tensor, stage: str) -> None:
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"{stage} loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"(lower optim.lr or set trainer.gradient_clip_val)")

    def training_step(self, batch, batch_idx):
        if self.is_baseline:
            if not self.net.fitted:
                self._fit_buffer.append({k: v.detach() for k, v in batch.items()})
            return None
        loss = self.loss(batch)
        self._check_finite(loss, "training")
        n = len(batch["idx"])
        detached = loss.detach()
        self._train_loss_sum = detached * n if self._train_n == 0 else self._train_loss_sum + detached * n
        self._train_n += n
        if self._logs_this_step():
            self.log("train_loss_step", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)
        return loss

    def _logs_this_step(self) -> bool:
        """Whether the Trainer writes step metrics after this step (Lightning's own rule:
        every ``trainer.log_every_n_steps`` optimizer steps, when it is stopping, and every
        step of ``fast_dev_run``). ``self.log`` costs ~0.4 ms, 10-15% of a small model's step
        (photoz/mdn: Lightning overhead ratio 0.73 -> 0.78-0.81), so the per-step loss is logged only
        when it is written; the epoch mean is kept by :meth:`training_step` itself and logged
        in :meth:`on_train_epoch_end`."""
        trainer = self._trainer
        if trainer is None:
            return True
        return bool(trainer.fast_dev_run) or trainer._logger_connector.should_update_logs

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum, self._train_n = None, 0

    def _fit_baseline(self) -> None:
        """Fit the baseline on the collected training split (collective under DDP)."""
        if not self.is_baseline or self.net.fitted or not self._fit_buffer:
            return
        data = gather_outputs(self, self._fit_buffer)
        self._fit_buffer = []
        self.net.fit(data)
        self.net.fitted = True

    def on_validation_start(self) -> None:
        if not self.trainer.sanity_checking:
            self._fit_baseline()

    def on_train_epoch_end(self) -> None:
        if self._train_n:  # the sample-weighted mean training loss of the epoch (this rank's batches)
            mean = self._train_loss_sum / self._train_n
            self.log("train_loss_epoch", mean, on_step=False, on_epoch=True)
            self.log("train_loss", mean, prog_bar=True, logger=False, on_step=False, on_epoch=True)
        self._fit_baseline()

    def on_test_start(self) -> None:
        self._fit_baseline()
        if self.is_baseline and not self.net.fitted:
            raise RuntimeError(f"baseline {self.model_name!r} was never fitted on the training split")

    def validation_step(self, batch, batch_idx):
        if self.is_baseline and not self.net.fitted:
            return None
        loss = self.loss(batch)
        self._check_finite(loss, "validation")
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=len(batch["idx"]))
        return loss

    # --- test / predict -----------------------------------------------------------------
    def on_test_epoch_start(self) -> None:
        self._test_buffer = []

    def test_step(self, batch, batch_idx):
        out = {k: v.detach() for k, v in self.test_outputs(batch).items()}
        out["idx"] = batch["idx"]
        self._test_buffer.append(out)

    def on_test_epoch_end(self) -> None:
        arrays = gather_outputs(self, self._test_buffer)
        self._test_buffer = []
        metrics = {k: float(v) for k, v in self.compute_metrics(arrays).items()}
        self.test_metrics, self.test_arrays = metrics, arrays
        for k, v in metrics.items():  # identical on every rank: syncing averages equal values
            self.log(f"test_{k}", v, sync_dist=True)

    def predict_step(self, batch, batch_idx):
        return self.predict_outputs(batch)

    # --- optimisation -------------------------------------------------------------------
    def configure_optimizers(self):
        """Optimizer ``optim.name`` (adamw | adam | sgd) and schedule ``optim.scheduler``:

        * ``none``: constant ``optim.lr``;
        * ``cosine``: cosine decay from ``lr`` to ``optim.min_lr`` over the whole run (per step);
        * ``step``: multiply by ``optim.gamma`` every ``optim.step_size`` epochs (per step);
        * ``plateau``: multiply by ``gamma`` after ``optim.plateau_patience`` epochs without a
          lower ``val_loss`` (``ReduceLROnPlateau``);
        * ``one-cycle``: ``OneCycleLR`` with maximum ``lr`` over the whole run.

        Optional linear warm-up over ``optim.warmup_epochs`` epochs or ``optim.warmup_steps``
        optimizer steps, from ``lr / (W + 1)`` to ``lr`` (for ``one-cycle`` it sets the
        rising fraction of the cycle). All schedules are torch's, stepped per optimizer step
        (``plateau``: per validation epoch), so that a resumed run restores them exactly.
        The config was validated at resolve time (choices, ranges, a finite run length).
        """
        if self.is_baseline:
            return None
        from torch.optim import lr_scheduler as S

        cfg = self.optim_cfg
        lr, wd = float(cfg["lr"]), float(cfg["weight_decay"])
        params = [{"params": g["params"], "lr": lr * float(g.get("lr_factor", 1.0))} for g in self.param_groups()]
        optimizers = {"adamw": lambda: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
                      "adam": lambda: torch.optim.Adam(params, lr=lr, weight_decay=wd),
                      "sgd": lambda: torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=float(cfg["momentum"]))}
        if cfg["name"] not in optimizers:
            raise ConfigError(f"optim.name={cfg['name']!r} is not known; choose one of {', '.join(optimizers)}")
        opt = optimizers[cfg["name"]]()
        sched = cfg["scheduler"]
        if sched == "none" and not (cfg["warmup_epochs"] or cfg["warmup_steps"]):
            return opt
        total, per_epoch = self._schedule_lengths()
        warmup = int(cfg["warmup_steps"]) or int(cfg["warmup_epochs"]) * per_epoch
        warmup = min(warmup, max(total - 1, 0))
        main_steps = max(1, total - warmup)
        if sched == "one-cycle":
            pct = warmup / total if warmup else 0.3
            return {"optimizer": opt, "lr_scheduler": {
                "scheduler": S.OneCycleLR(opt, max_lr=[g["lr"] for g in params], total_steps=max(total, 2), pct_start=min(max(pct, 1e-3), 0.999)),
                "interval": "step"}}
        main = {"none": lambda: S.ConstantLR(opt, factor=1.0, total_iters=0),
                "cosine": lambda: S.CosineAnnealingLR(opt, T_max=main_steps, eta_min=float(cfg["min_lr"])),
                "step": lambda: S.StepLR(opt, step_size=int(cfg["step_size"]) * per_epoch, gamma=float(cfg["gamma"])),
                "plateau": lambda: None}
        if sched not in main:
            raise ConfigError(f"optim.scheduler={sched!r} is not known; choose one of {', '.join(main)}, one-cycle")
        warm = S.LinearLR(opt, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup) if warmup else None
        if sched == "plateau":  # LinearLR is chainable: after warm-up it leaves the plateau's decays alone
            schedulers = [{"scheduler": S.ReduceLROnPlateau(opt, mode="min", factor=float(cfg["gamma"]),
                                                            patience=int(cfg["plateau_patience"])),
                           "interval": "epoch", "monitor": "val_loss", "strict": True}]
            if warm is not None:
                schedulers.append({"scheduler": warm, "interval": "step"})
            return [opt], schedulers
        scheduler = main[sched]()
        if warm is not None:
            scheduler = S.SequentialLR(opt, [warm, scheduler], milestones=[warmup])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups ``[{"params": [...], "lr_factor": f}]``: each group's
        learning rate is ``f x optim.lr`` (schedules scale all groups alike). Default: every
        trainable parameter at ``optim.lr``; image classifiers give the head its own factor
        (:mod:`cosmobench.transfer`)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr_factor": 1.0}]

    def _schedule_lengths(self) -> tuple[int, int]:
        """(optimizer steps of the whole run, optimizer steps per epoch) from the Trainer."""
        import math
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError("this learning-rate schedule needs a finite trainer.max_epochs or trainer.max_steps")
        batches = trainer.num_training_batches
        accumulate = max(1, int(trainer.accumulate_grad_batches))
        per_epoch = math.ceil(batches / accumulate) if math.isfinite(batches) and batches > 0 else int(total)
        return max(1, int(total)), max(1, per_epoch)
