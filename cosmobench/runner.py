"""Build a Trainer from a resolved config, fit, test and record one run (DESIGN §5–§8).

Order of work in :func:`train` (so that bad input writes nothing):

1. resolve and validate the config (``ConfigError``, exit 2);
2. build the datamodule and load/simulate the data (``InputError``, exit 2);
3. only then create ``ROOT/<task>/<model>/<run_id>/`` with ``config.yaml``;
4. fit + test with Lightning; on success write ``metrics.json``, ``plots/`` and an ``ok``
   row; on failure (e.g. NaN loss) write ``failed.txt`` and a ``failed`` row, and raise
   :class:`~cosmobench.errors.RunFailure` (exit 1).

Under DDP the launcher re-executes the command line in each child process; the
parent passes the run directory and checkpoint through environment variables so that
every rank works in the same run, and only global rank 0 writes files and rows.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from cosmobench import config as C
from cosmobench.errors import ConfigError, CosmobenchError, InputError, RunFailure
from cosmobench.registry import TaskSpec, get_task

ENV_RUN_DIR = "COSMOBENCH_RUN_DIR"
ENV_CKPT = "COSMOBENCH_RESUME_CKPT"


@dataclass
class RunResult:
    """Outcome of one run: ``metrics`` (test metrics, name -> float) and ``run_dir``."""

    run_id: str
    task: str
    model: str
    seed: int
    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    config: dict[str, Any] = field(default_factory=dict)


def default_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("COSMOBENCH_HOME") or "runs")


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _launcher_rank() -> int:
    """Global rank given by an external launcher (torchrun: RANK, SLURM: SLURM_PROCID), else 0."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def _external_job_id() -> str | None:
    """Id shared by all processes of a torchrun / SLURM multi-process job, if any."""
    if int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))) <= 1:
        return None
    return os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("SLURM_JOB_ID")


def load_classes(spec: TaskSpec):
    """Import the task's datamodule and module classes; a missing package is a clear error."""
    try:
        return spec.load_datamodule_class(), spec.load_module_class()
    except ModuleNotFoundError as exc:
        raise ConfigError(f"task {spec.name!r} needs the package {exc.name!r}: pip install it") from exc


# --- run directories -------------------------------------------------------------------
def _find_resumable(root: Path, cfg: dict) -> tuple[Path, Path]:
    """Latest unfinished run of this exact config that has ``checkpoints/last.ckpt``."""
    want = C.config_hash(cfg)
    base = root / cfg["task"] / cfg["model"]["name"]
    candidates = []
    for d in base.glob("*/"):
        ckpt = d / "checkpoints" / "last.ckpt"
        if ckpt.is_file() and not (d / "metrics.json").exists() and (d / "config.yaml").is_file():
            if C.config_hash(C.load_yaml(d / "config.yaml")) == want:
                candidates.append((ckpt.stat().st_mtime, d, ckpt))
    if not candidates:
        raise ConfigError(f"resume=last: no unfinished run of this config with checkpoints/last.ckpt under {base}")
    _, d, ckpt = max(candidates)
    return d, ckpt


def _plan_run_dir(root: Path, cfg: dict) -> tuple[Path, Path | None, bool]:
    """(run_dir, checkpoint to resume from, whether this process created it)."""
    if os.environ.get(ENV_RUN_DIR):  # DDP child: the parent chose already
        ckpt = os.environ.get(ENV_CKPT) or None
        return Path(os.environ[ENV_RUN_DIR]), Path(ckpt) if ckpt else None, False
    resume = cfg.get("resume")
    if resume == "last":
        run_dir, ckpt = _find_resumable(root, cfg)
        return run_dir, ckpt, False
    if resume:
        ckpt = Path(resume)
        if not ckpt.is_file():
            raise ConfigError(f"resume={resume!r}: checkpoint not found (use resume=last or a .ckpt path)")
        run_dir = ckpt.resolve().parent.parent
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"resume={resume!r}: {run_dir} is not a cosmobench run directory")
        return run_dir, ckpt, False
    job = _external_job_id()  # every process of the job must agree on the run id
    run_id = f"job{job}-s{cfg['seed']}" if job else \
        f"{time.strftime('%Y%m%d-%H%M%S')}-s{cfg['seed']}-{uuid.uuid4().hex[:6]}"
    return root / cfg["task"] / cfg["model"]["name"] / run_id, None, True


# --- Lightning objects -----------------------------------------------------------------
def build_logger(cfg: dict, run_dir: Path, run_id: str):
    kind = cfg["logger"]
    if kind == "none":
        return False
    if kind == "csv":
        from pytorch_lightning.loggers import CSVLogger
        return CSVLogger(save_dir=str(run_dir), name="csv", version="")
    if kind == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")
    from pytorch_lightning.loggers import WandbLogger
    mode = os.environ.get("WANDB_MODE", "offline")
    os.environ["WANDB_DIR"] = str(run_dir)
    os.environ.setdefault("WANDB_SILENT", "true")
    task, model = cfg["task"], cfg["model"]["name"]
    return WandbLogger(project=os.environ.get("WANDB_PROJECT", "cosmobench"), name=run_id, id=run_id,
                       group=f"{task}/{model}", tags=[f"seed={cfg['seed']}", task, model],
                       save_dir=str(run_dir), offline=(mode == "offline"), mode=mode, config=cfg,
                       log_model=False)


def build_trainer(cfg: dict, run_dir: Path, logger):
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    ckpt_cb = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="best", monitor="val_loss",
                              mode="min", save_top_k=1, save_last=True)
    callbacks: list = [ckpt_cb]
    es = cfg["early_stopping"]
    if es["enabled"]:
        callbacks.append(EarlyStopping(monitor=es["monitor"], patience=es["patience"],
                                       min_delta=es["min_delta"], mode="min"))
    kwargs: dict[str, Any] = C.trainer_kwargs(cfg)  # every pl.Trainer argument the config may set
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    kwargs["deterministic"] = "warn" if torch.cuda.is_available() else True
    try:
        return pl.Trainer(default_root_dir=str(run_dir), logger=logger, callbacks=callbacks, **kwargs)
    except (ValueError, TypeError, MisconfigurationException) as exc:
        raise ConfigError(f"invalid trainer settings: {exc}") from exc


# --- the run ---------------------------------------------------------------------------
def train(task: str, model: str | None = None, overrides: Iterable[str] = (),
          config_file: str | Path | None = None, root: str | Path | None = None,
          cfg: dict | None = None) -> RunResult:
    """Fit, test and record one run. Raises ConfigError/InputError (nothing written) or
    RunFailure (failed row written)."""
    cfg = cfg if cfg is not None else C.resolve(task, model, config_file, overrides)
    spec = get_task(cfg["task"])
    root = default_root(root)
    dm_cls, task_cls = load_classes(spec)
    run_dir, resume_ckpt, fresh = _plan_run_dir(root, cfg)

    import warnings

    import pytorch_lightning as pl
    import torch

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning-internal noise
    _set_threads(cfg)
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    dm.setup("fit")
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)  # model init independent of data loading
    module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())

    run_id = run_dir.name
    rank0 = not os.environ.get(ENV_RUN_DIR) and _launcher_rank() == 0
    logger = build_logger(cfg, run_dir, run_id)   # nothing is written before the Trainer exists,
    trainer = build_trainer(cfg, run_dir, logger)  # so that bad trainer settings leave no trace
    if fresh:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        if rank0:
            (run_dir / "config.yaml").write_text(C.to_yaml(cfg))
    os.environ[ENV_RUN_DIR] = str(run_dir)
    os.environ[ENV_CKPT] = str(resume_ckpt or "")
    start, t0 = _utcnow(), time.time()
    row_base = dict(run_id=run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                    config_hash=C.config_hash(cfg, C.BOOKKEEPING_KEYS),
                    dataset_fingerprint=dm.fingerprint(), run_dir=str(run_dir), start_time=start)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume_ckpt) if resume_ckpt else None)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best and not cfg["trainer"]["fast_dev_run"]:
            # no validated checkpoint (a baseline takes no optimizer steps; or no val batches):
            # the final model is the one to test and to predict with
            best = str(run_dir / "checkpoints" / "best.ckpt")
            trainer.save_checkpoint(best)
        trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False)
        metrics = dict(module.test_metrics)
        if not metrics:
            raise RunFailure("the test loop produced no metrics")
        rank0 = trainer.global_rank == 0
    except (ConfigError, InputError):
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if rank0:
            (run_dir / "failed.txt").write_text(reason + "\n")
            _record(root, row_base, "failed", {}, reason, t0)
        _clear_env()
        raise RunFailure(f"run {run_id} failed: {reason}") from exc
    if rank0:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        if cfg["plots"]:
            plots = module.make_plots(module.test_arrays, run_dir / "plots")
            _log_images(logger, plots)
        _record(root, row_base, "ok", metrics, None, t0)
    _finish_logger(logger)
    _clear_env()
    return RunResult(run_id=run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                     run_dir=run_dir, metrics=metrics, config=cfg)


_DEFAULT_THREADS: int | None = None


def _set_threads(cfg: dict) -> None:
    """CPU threads per process: ``num_threads`` if set, else split the cores over local
    DDP processes (small models run much slower when processes oversubscribe cores)."""
    import torch
    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    n = cfg.get("num_threads")
    if n is None:
        devices = cfg["trainer"]["devices"]
        if isinstance(devices, int) and devices > 1 and cfg["trainer"]["accelerator"] in ("cpu", "auto") \
                and not torch.cuda.is_available():
            n = max(1, (os.cpu_count() or 1) // devices)
    if n is not None and n < 1:
        raise ConfigError(f"num_threads must be >= 1, got {n}")
    torch.set_num_threads(int(n or _DEFAULT_THREADS))  # runs in one process must not inherit it


def _clear_env() -> None:
    os.environ.pop(ENV_RUN_DIR, None)
    os.environ.pop(ENV_CKPT, None)


def _record(root: Path, base: dict, status: str, metrics: dict, error: str | None, t0: float) -> None:
    from cosmobench.results import RunRow, git_commit, hardware, package_versions, write_row
    write_row(root, RunRow(status=status, metrics=metrics, error=error, git_commit=git_commit(),
                           versions=package_versions(), hardware=hardware(), end_time=_utcnow(),
                           wall_seconds=round(time.time() - t0, 3), **base))


def _log_images(logger, paths: list[Path]) -> None:
    if not paths or logger is False or not hasattr(logger, "log_image"):
        return
    for p in paths:
        logger.log_image(key=f"plots/{Path(p).stem}", images=[str(p)])


def _finish_logger(logger) -> None:
    if logger is not False and type(logger).__name__ == "WandbLogger":
        import wandb
        if wandb.run is not None:
            wandb.finish()


# --- predict ---------------------------------------------------------------------------
def predict(task: str, checkpoint: str | Path | None, input_path: str | Path, output_path: str | Path,
            model: str | None = None, overrides: Iterable[str] = ()) -> Path:
    """Apply a trained model (or a baseline that needs no fitting) to a user file; write a table.

    The run's ``config.yaml`` next to the checkpoint supplies the data settings (column
    names ...); ``overrides`` change them. Output format follows the extension:
    ``.csv``, ``.npz`` or ``.h5``/``.hdf5``. The file is written atomically.
    """
    import numpy as np
    import torch

    spec = get_task(task)
    out = Path(output_path)
    if out.suffix.lower() not in (".csv", ".npz", ".h5", ".hdf5"):
        raise ConfigError(f"--output {out}: use a .csv, .npz or .h5 file")
    if not Path(input_path).is_file():
        raise InputError(f"input file not found: {input_path}")
    dm_cls, task_cls = load_classes(spec)
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise InputError(f"checkpoint not found: {ckpt}")
        run_cfg_path = ckpt.resolve().parent.parent / "config.yaml"
        run_cfg = C.load_yaml(run_cfg_path) if run_cfg_path.is_file() else None
        if run_cfg is not None and run_cfg.get("task") != task:
            raise ConfigError(f"checkpoint {ckpt} belongs to task {run_cfg.get('task')!r}, not {task!r}")
        model = (run_cfg or {}).get("model", {}).get("name", model)
        cfg = C.resolve(task, model, overrides=overrides,
                        extra_layers=[(str(run_cfg_path), _user_layer(run_cfg))] if run_cfg else ())
        try:
            module = task_cls.load_from_checkpoint(str(ckpt), map_location="cpu")
        except Exception as exc:
            raise InputError(f"cannot load checkpoint {ckpt} as a {task} model: {exc}") from exc
    else:
        cfg = C.resolve(task, model, overrides=overrides)
        name = cfg["model"]["name"]
        try:  # only a baseline that needs neither training nor data statistics works without one
            module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info={})
        except ConfigError:
            module = None
        if module is None or not module.is_baseline or not module.net.fitted:
            raise ConfigError(f"model {name!r} of task {task!r} is trained or fitted on a training split: "
                              f"pass --checkpoint CKPT from a `cosmobench train {task} -m {name}` run")
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    module.eval()
    columns: dict[str, list] = {}
    with torch.no_grad():
        for batch in dm.predict_loader(input_path):
            for k, v in module.predict_outputs(batch).items():
                columns.setdefault(k, []).append(v.detach().cpu().numpy())
    table = {}
    for k, parts in columns.items():
        arr = np.concatenate(parts)
        if arr.ndim == 1:
            table[k] = arr
        else:
            for j in range(arr.shape[1]):
                table[f"{k}_{j}"] = arr[:, j]
    _write_table(table, out)
    return out


def _user_layer(run_cfg: dict) -> dict:
    """A saved run config as a layer (without the keys chosen on the command line)."""
    layer = {k: v for k, v in run_cfg.items() if k not in ("task", "resume")}
    layer["model"] = {k: v for k, v in run_cfg.get("model", {}).items() if k != "name"}
    return layer


def _write_table(table: dict, out: Path) -> None:
    """CSV/ECSV/FITS/Parquet through astropy, .npz/.h5 kept (atomic; cosmobench.io.write_table)."""
    from cosmobench.io import write_table
    write_table(table, out)
