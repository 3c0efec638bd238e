"""Build a Trainer from a resolved config, fit, test and record one run (docs/ARCHITECTURE.md:
"Runs, results and errors", "Seeds and reproducibility", "Distributed runs").

Order of work in :func:`train` (so that bad input writes nothing):

1. resolve and validate the config (``ConfigError``, exit 2), reject runs that would
   train nothing (``trainer.max_epochs=0`` ...);
2. find the run dir to resume (it must lie under ROOT), read its checkpoint safely and
   lock the run dir; check that the results store can take a row (``StoreError``, exit 2);
3. build the datamodule and load/simulate the data (``InputError``, exit 2), the model
   and the Trainer;
4. only then create ``ROOT/<task>/<model>/<run_id>/`` with ``config.yaml`` and ``run.json``;
5. fit + test with Lightning; on success write ``metrics.json``, ``plots/`` and an ``ok``
   row; on failure (e.g. NaN loss, a non-finite test metric) write ``failed.txt`` and a
   ``failed`` row, and raise :class:`~cosmobench.errors.RunFailure` (exit 1). Bad input
   found only while running (a ConfigError/InputError from inside fit) removes a fresh
   run dir again (exit 2, nothing written). Ctrl-C raises :class:`RunInterrupted` (exit
   130) and records nothing: the run dir stays, ``resume=last`` continues it.
   ``trainer.fast_dev_run`` (a few batches) is a smoke test of the pipeline: its metrics
   are returned and printed, but nothing is recorded and its run dir is removed.

Every checkpoint is loaded with an explicit ``weights_only=True`` (ours and Lightning's),
so protection does not depend on torch's default (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
cannot relax an explicit argument). A run dir is locked (``fcntl.flock``) while a process
trains in it: a second ``resume=last`` of the same run exits 2 instead of running twice.

Under DDP the launcher re-executes the command line in each child process; the
parent passes the run directory and checkpoint through environment variables so that
every rank works in the same run, and only global rank 0 writes files and rows.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from cosmobench import config as C
from cosmobench.errors import ConfigError, InputError, RunFailure
from cosmobench.registry import TaskSpec, get_task

ENV_RUN_DIR = "COSMOBENCH_RUN_DIR"
ENV_CKPT = "COSMOBENCH_RESUME_CKPT"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: nothing is recorded, the run dir stays resumable
    (``resume=last`` continues from ``checkpoints/last.ckpt``). The CLI exits 130."""


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


# --- checkpoints -----------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, read with an explicit ``weights_only=True`` (tensors and
    plain containers only: a pickled object that would run code is refused). An unreadable,
    truncated or unsafe file is an InputError with a one-line reason."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is bad input
        unsafe = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        if unsafe:
            raise InputError(f"refusing to load checkpoint {path}: it holds the Python object {unsafe.group(1)}, "
                             f"not just tensors (cosmobench loads checkpoints with weights_only=True)") from None
        raise InputError(f"cannot read checkpoint {path} (truncated or not a checkpoint?): {_one_line(exc)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise InputError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def _saved_identity(run_cfg: dict) -> tuple[str | None, str | None]:
    """(task, model name) of a saved run ``config.yaml`` (a file that may be foreign)."""
    model = run_cfg.get("model")
    return run_cfg.get("task"), model.get("name") if isinstance(model, dict) else None


def _checkpoint_model(ckpt: dict) -> str | None:
    """Model name stored in a checkpoint's hyper-parameters, if any."""
    hp = ckpt.get("hyper_parameters")
    model = hp.get("model") if isinstance(hp, dict) else None
    return model.get("name") if isinstance(model, dict) else None


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
    resume = cfg["resume"]
    if resume == "last":
        run_dir, ckpt = _find_resumable(root, cfg)
        return run_dir, ckpt, False
    if resume:
        ckpt = Path(resume).expanduser()
        if not ckpt.is_file():
            raise ConfigError(f"resume={resume!r}: checkpoint not found (use resume=last or a .ckpt path)")
        run_dir = ckpt.resolve().parent.parent
        if not run_dir.is_relative_to(root.resolve()):
            raise ConfigError(f"resume={resume!r} lies outside --root {root}: runs write only under their root "
                              f"(pass --root {run_dir.parent.parent.parent} or copy the run dir under {root})")
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"resume={resume!r}: {run_dir} is not a cosmobench run directory")
        saved = _saved_identity(C.load_yaml(run_dir / "config.yaml"))
        if saved != (cfg["task"], cfg["model"]["name"]):
            raise ConfigError(f"resume={resume!r} is a run of {saved[0]}/{saved[1]}, "
                              f"not {cfg['task']}/{cfg['model']['name']}")
        return run_dir, ckpt, False
    job = _external_job_id()  # every process of the job must agree on the run id
    run_id = f"job{job}-s{cfg['seed']}" if job else \
        f"{time.strftime('%Y%m%d-%H%M%S')}-s{cfg['seed']}-{uuid.uuid4().hex[:6]}"
    return root / cfg["task"] / cfg["model"]["name"] / run_id, None, True


def _lock_run_dir(run_dir: Path) -> int:
    """Exclusive ``flock`` on the run directory (released when the fd is closed, also
    when the process dies). Another process holding it is a ConfigError (exit 2)."""
    import fcntl
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"run dir {run_dir} is in use by another cosmobench process (a run or a resume of it "
                          f"is going on): wait for it to end") from None
    return fd


def check_trains(cfg: dict) -> None:
    """Reject settings under which the model is never trained (or a baseline never fitted):
    such a run would record an untrained model as a result."""
    t = cfg["trainer"]
    for key in ("max_epochs", "max_steps", "limit_train_batches"):
        if t[key] == 0 and not isinstance(t[key], bool):
            raise ConfigError(f"trainer.{key}=0 trains nothing, and the untrained model would be recorded "
                              f"as a result: set it >= 1 (or leave it at its default)")


# --- Lightning objects -----------------------------------------------------------------
def build_logger(cfg: dict, run_dir: Path, run_id: str, job_type: str = "train",
                 resume_epoch: int | None = None) -> list:
    """Loggers of a run (see :mod:`cosmobench.loggers`): CSV beside the chosen ones."""
    from cosmobench.loggers import build_loggers
    return build_loggers(cfg, run_dir, run_id, job_type=job_type, resume_epoch=resume_epoch)


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
    """Fit, test and record one run. Raises ConfigError/InputError (exit 2, nothing
    written), RunFailure (exit 1, failed row written) or RunInterrupted (Ctrl-C, exit 130,
    nothing recorded, run dir resumable). See the module docstring for the order of work."""
    from cosmobench.loggers import logger_kinds
    from cosmobench.results import check_store

    cfg = cfg if cfg is not None else C.resolve(task, model, config_file, overrides)
    spec = get_task(cfg["task"])
    root = default_root(root)
    dm_cls, task_cls = load_classes(spec)
    check_trains(cfg)
    logger_kinds(cfg)
    child = bool(os.environ.get(ENV_RUN_DIR))  # a DDP child: the parent checked, locked and writes
    rank0 = not child and _launcher_rank() == 0
    if rank0:
        check_store(root)
    run_dir, resume_ckpt, fresh = _plan_run_dir(root, cfg)
    resume_epoch = None
    if resume_ckpt is not None and not child:
        state = load_checkpoint(resume_ckpt)
        if _checkpoint_model(state) not in (None, cfg["model"]["name"]):
            raise ConfigError(f"resume: checkpoint {resume_ckpt} holds model {_checkpoint_model(state)!r}, "
                              f"not {cfg['model']['name']!r}")
        resume_epoch = int(state.get("epoch", -1))
    lock = _lock_run_dir(run_dir) if rank0 and not fresh else None
    try:
        return _run(cfg, root, dm_cls, task_cls, run_dir, resume_ckpt, resume_epoch, fresh, rank0)
    finally:
        if lock is not None:
            os.close(lock)


def _run(cfg, root, dm_cls, task_cls, run_dir, resume_ckpt, resume_epoch, fresh, rank0) -> RunResult:
    import warnings

    import pytorch_lightning as pl
    import torch

    from cosmobench import loggers as L
    from cosmobench.results import (FAILED_FILE, METRICS_FILE, StoreError, git_commit, hardware,
                                    package_versions, write_run_file)

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning-internal noise
    _set_threads(cfg)
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    dm.setup("fit")
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)  # model init independent of data loading
    module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info=dm.info())

    run_id = run_dir.name
    loggers = build_logger(cfg, run_dir, run_id, resume_epoch=resume_epoch)  # nothing is written before
    trainer = build_trainer(cfg, run_dir, loggers or False)  # the Trainer exists: bad settings leave no trace
    row_base = dict(run_id=run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                    config_hash=C.config_hash(cfg, C.BOOKKEEPING_KEYS),
                    dataset_fingerprint=dm.fingerprint(), run_dir=str(run_dir), start_time=_utcnow(),
                    git_commit=git_commit(), versions=package_versions(), hardware=hardware())
    lock = None
    new_dirs = [p for p in run_dir.parents if not p.exists()]  # removed again if the input turns out bad
    smoke = bool(cfg["trainer"]["fast_dev_run"])  # a few batches: a test of the pipeline, not a result
    main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        if fresh:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            if rank0:
                lock = _lock_run_dir(run_dir)
                (run_dir / "config.yaml").write_text(C.to_yaml(cfg))
        if rank0:
            write_run_file(run_dir, row_base)
        os.environ[ENV_RUN_DIR] = str(run_dir)
        os.environ[ENV_CKPT] = str(resume_ckpt or "")
        t0 = time.time()
        with L.wandb_env(run_dir):
            try:
                trainer.fit(module, datamodule=dm, ckpt_path=str(resume_ckpt) if resume_ckpt else None,
                            weights_only=True)
                if not module.is_baseline and trainer.global_step == 0:
                    raise RunFailure("training took no optimizer step (check trainer.limit_train_batches, "
                                     "trainer.max_steps, trainer.max_time)")
                best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
                if not best and not cfg["trainer"]["fast_dev_run"]:
                    # no validated checkpoint (a baseline takes no optimizer steps; or no val batches):
                    # the final model is the one to test and to predict with
                    best = str(run_dir / "checkpoints" / "best.ckpt")
                    trainer.save_checkpoint(best, weights_only=False)  # the full checkpoint
                trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False, weights_only=True)
                metrics = dict(module.test_metrics)
                _check_metrics(metrics)
                rank0 = trainer.global_rank == 0
                if rank0 and not smoke:
                    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
                    (run_dir / FAILED_FILE).unlink(missing_ok=True)  # of an earlier attempt of this run
                    if cfg["plots"]:
                        L.log_images(loggers, module.make_plots(module.test_arrays, run_dir / "plots"))
                    L.log_artifact(loggers, run_id, [Path(best), run_dir / "config.yaml"] if best else [])
            except (ConfigError, InputError):  # bad input found only while running: leave no trace
                L.finish(loggers, exit_code=2)
                if fresh and rank0:
                    _remove_run_dir(run_dir, new_dirs)
                raise
            except (KeyboardInterrupt, SystemExit) as exc:
                # Lightning turns Ctrl-C into sys.exit(1) and ignores SIGINT from then on
                if isinstance(exc, SystemExit) and not isinstance(exc.__context__, KeyboardInterrupt):
                    raise
                L.finish(loggers, exit_code=130)
                raise RunInterrupted(_interrupted_message(run_dir)) from None
            except Exception as exc:
                reason = f"{type(exc).__name__}: {_one_line(exc)}"
                L.finish(loggers, exit_code=1)
                if rank0 and smoke and fresh:
                    _remove_run_dir(run_dir, new_dirs)
                elif rank0:
                    (run_dir / FAILED_FILE).write_text(reason + "\n")
                    try:
                        _record(root, row_base, "failed", {}, reason, t0)
                    except StoreError as store_exc:
                        reason += f" (and the failed row was not recorded: {store_exc})"
                raise RunFailure(f"run {run_id} failed: {reason}") from exc
            L.finish(loggers, exit_code=0)
        if rank0 and smoke:
            if fresh:
                _remove_run_dir(run_dir, new_dirs)
        elif rank0:
            _record_ok(root, row_base, metrics, t0)
    finally:
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)
        if lock is not None:
            os.close(lock)
        _clear_env()
    return RunResult(run_id=run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                     run_dir=run_dir, metrics=metrics, status="smoke" if smoke else "ok", config=cfg)


def _remove_run_dir(run_dir: Path, new_dirs: list[Path]) -> None:
    """Remove a run dir this process created, and the parents it created if still empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for p in new_dirs:  # nearest first
        try:
            p.rmdir()
        except OSError:
            break


def _check_metrics(metrics: dict[str, float]) -> None:
    """A run whose test metrics are missing or not finite is a failed run, never ``ok``."""
    if not metrics:
        raise RunFailure("the test loop produced no metrics")
    bad = [k for k, v in sorted(metrics.items()) if not math.isfinite(v)]
    if bad:
        raise RunFailure("test metric " + ", ".join(f"{k}={metrics[k]}" for k in bad)
                         + " is not finite (non-finite inputs or predictions in the test split?)")


def _interrupted_message(run_dir: Path) -> str:
    if (run_dir / "metrics.json").is_file():
        return (f"run {run_dir.name} finished but was stopped before its row was recorded: "
                f"`cosmobench results --rescan {run_dir.parent.parent.parent}` records it")
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return (f"run {run_dir.name} stopped and not recorded; {run_dir} is kept: the same command with "
                f"resume=last continues it from its last completed epoch")
    return f"run {run_dir.name} stopped before its first checkpoint and was not recorded (nothing to resume)"


_DEFAULT_THREADS: int | None = None


def _set_threads(cfg: dict) -> None:
    """CPU threads per process: ``num_threads`` if set, else split the cores over local
    DDP processes (small models run much slower when processes oversubscribe cores)."""
    import torch
    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    n = cfg["num_threads"]
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
    """One row of the results store; ``base`` holds the fields fixed when the run started."""
    from cosmobench.results import RunRow, write_row
    write_row(root, RunRow(status=status, metrics=metrics, error=error, end_time=_utcnow(),
                           wall_seconds=round(time.time() - t0, 3), **base))


def _record_ok(root: Path, base: dict, metrics: dict, t0: float) -> None:
    """The ``ok`` row of a finished run whose ``metrics.json`` is written. If the store
    fails now, the result is not lost: RunFailure says how to record it later."""
    from cosmobench.results import METRICS_FILE, StoreError
    try:
        _record(root, base, "ok", metrics, None, t0)
    except StoreError as exc:
        raise RunFailure(f"run {base['run_id']} finished (metrics in {Path(base['run_dir']) / METRICS_FILE}) but "
                         f"its row was not recorded: {exc}; record it later with "
                         f"`cosmobench results --rescan {root}`") from exc


# --- predict ---------------------------------------------------------------------------
def predict(task: str, checkpoint: str | Path | None, input_path: str | Path, output_path: str | Path,
            model: str | None = None, overrides: Iterable[str] = (), overwrite: bool = False,
            precision: str = "auto", compile: bool = False) -> Path:
    """Apply a trained model (or a baseline that needs no fitting) to a user file; write a table.

    The run's ``config.yaml`` next to the checkpoint supplies the data settings (column
    names ...); ``overrides`` change them. Output format follows the extension (see
    :mod:`cosmobench.io`: CSV, ECSV, FITS, Parquet, NPZ, HDF5). The file is written
    atomically; an existing file is replaced only with ``overwrite=True``. The checkpoint
    is read with ``weights_only=True``. ``precision`` (``auto``, ``bf16``, ``fp32``) is the
    network's compute precision where the task implements a fast inference path
    (:meth:`cosmobench.task.BaseTask.inference_autocast`; ``auto``: bfloat16 on a CPU with
    native bfloat16). ``compile`` compiles that network with ``torch.compile``
    (:meth:`cosmobench.task.BaseTask.set_inference_compile`; worth it for large inputs).
    """
    import numpy as np
    import torch

    from cosmobench.io import WRITE_SUFFIXES
    from cosmobench.task import INFERENCE_PRECISIONS

    if precision not in INFERENCE_PRECISIONS:
        raise ConfigError(f"--precision {precision!r} is not known; choose one of {', '.join(INFERENCE_PRECISIONS)}")

    spec = get_task(task)
    out = Path(output_path).expanduser()
    if out.is_dir():
        raise ConfigError(f"--output {out} is a directory: name the output file")
    if out.exists() and not overwrite:
        raise ConfigError(f"--output {out} exists: pass --overwrite to replace it")
    if not Path(input_path).is_file():
        raise InputError(f"input file not found: {input_path}")
    dm_cls, task_cls = load_classes(spec)
    suffixes = WRITE_SUFFIXES + tuple(task_cls.extra_predict_suffixes)
    if not out.name.lower().endswith(suffixes):
        raise ConfigError(f"--output {out}: use a file ending in one of {', '.join(suffixes)}")
    if checkpoint is not None:
        cfg, ckpt = checkpoint_config(task, checkpoint, model, overrides)
        module = _load_module(task_cls, task, ckpt)
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
    module.set_inference_precision(precision)
    module.set_inference_compile(compile)
    loader = dm.predict_loader(input_path)
    with torch.no_grad():  # a task may write its own outputs (BaseTask.write_predictions)
        if module.write_predictions(loader, out) is not None:
            return out
    columns: dict[str, list] = {}
    with torch.no_grad():
        for batch in loader:
            for k, v in module.predict_outputs(batch).items():
                columns.setdefault(k, []).append(v.detach().cpu().numpy())
    if not columns:
        raise InputError(f"input {input_path} holds no rows to predict")
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


# --- test ------------------------------------------------------------------------------
def checkpoint_config(task: str, checkpoint: str | Path, model: str | None = None, overrides: Iterable[str] = (),
                      config_file: str | Path | None = None) -> tuple[dict, Path]:
    """Resolved config for applying a trained checkpoint: the defaults of its model, then
    the run's ``config.yaml`` beside it (``RUN/checkpoints/x.ckpt`` -> ``RUN/config.yaml``,
    if there is one), ``config_file`` and ``overrides``. The model is the run's (or the one
    in the checkpoint's hyper-parameters, or ``model``); a conflicting ``model`` is an error."""
    ckpt = Path(checkpoint).expanduser()
    if not ckpt.is_file():
        raise InputError(f"checkpoint not found: {ckpt}")
    run_cfg_path = ckpt.resolve().parent.parent / "config.yaml"
    run_cfg = C.load_yaml(run_cfg_path) if run_cfg_path.is_file() else None
    saved_task, saved = _saved_identity(run_cfg) if run_cfg is not None else (task, None)
    if saved_task != task:
        raise ConfigError(f"checkpoint {ckpt} belongs to task {saved_task!r}, not {task!r}")
    saved = saved or _checkpoint_model(load_checkpoint(ckpt))
    if saved and model and saved != model:
        raise ConfigError(f"checkpoint {ckpt} holds model {saved!r}, not {model!r} (leave -m out)")
    if not (saved or model):
        raise ConfigError(f"checkpoint {ckpt} does not name its model: give -m MODEL")
    layers = [(str(run_cfg_path), _user_layer(run_cfg))] if run_cfg else []
    cfg = C.resolve(task, saved or model, config_file=config_file, overrides=overrides, extra_layers=layers)
    return cfg, ckpt


def test(task: str, checkpoint: str | Path, model: str | None = None, overrides: Iterable[str] = (),
         config_file: str | Path | None = None, root: str | Path | None = None) -> RunResult:
    """Score a trained checkpoint on the test split of the datamodule its config describes
    (e.g. ``data.source=catalog data.path=cat.fits``, or the same simulation) and record it.

    Writes a new run dir ``ROOT/<task>/<model>/<run_id>-test/`` with ``config.yaml``,
    ``checkpoint.txt`` (the scored checkpoint), ``metrics.json`` and ``plots/``, and an ``ok``
    row (its experiment hash follows the config, so a test on another dataset is its own
    leaderboard entry). Runs in one process (``trainer.devices=1``). Like :func:`train`:
    ConfigError/InputError before anything is written (exit 2), RunFailure for a test that
    fails or gives non-finite metrics (failed row, exit 1).
    """
    import pytorch_lightning as pl
    import torch

    from cosmobench import loggers as L
    from cosmobench.results import (FAILED_FILE, METRICS_FILE, check_store, git_commit, hardware, package_versions,
                                    write_run_file)

    cfg, ckpt = checkpoint_config(task, checkpoint, model, overrides, config_file)
    cfg["trainer"].update(devices=1, num_nodes=1, strategy="auto")  # the test metrics are DDP-correct anyway
    spec = get_task(cfg["task"])
    root = default_root(root)
    dm_cls, task_cls = load_classes(spec)
    L.logger_kinds(cfg)
    check_store(root)
    module = _load_module(task_cls, task, ckpt)
    _set_threads(cfg)
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    dm.setup("test")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-s{cfg['seed']}-{uuid.uuid4().hex[:6]}-test"
    run_dir = root / cfg["task"] / cfg["model"]["name"] / run_id
    loggers = build_logger(cfg, run_dir, run_id, job_type="test")
    trainer = build_trainer(cfg, run_dir, loggers or False)
    new_dirs = [p for p in run_dir.parents if not p.exists()]
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(C.to_yaml(cfg))
    (run_dir / "checkpoint.txt").write_text(f"{ckpt.resolve()}\n")
    row_base = dict(run_id=run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                    config_hash=C.config_hash(cfg, C.BOOKKEEPING_KEYS), dataset_fingerprint=dm.fingerprint(),
                    run_dir=str(run_dir), start_time=_utcnow(), git_commit=git_commit(),
                    versions=package_versions(), hardware=hardware())
    write_run_file(run_dir, row_base)
    t0 = time.time()
    with L.wandb_env(run_dir):
        try:
            trainer.test(module, datamodule=dm, verbose=False)
            metrics = dict(module.test_metrics)
            _check_metrics(metrics)
        except (ConfigError, InputError):  # bad input found only while testing: leave no trace
            L.finish(loggers, exit_code=2)
            _remove_run_dir(run_dir, new_dirs)
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {_one_line(exc)}"
            L.finish(loggers, exit_code=1)
            (run_dir / FAILED_FILE).write_text(reason + "\n")
            _record(root, row_base, "failed", {}, reason, t0)
            raise RunFailure(f"test run {run_id} failed: {reason}") from exc
        (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        if cfg["plots"]:
            L.log_images(loggers, module.make_plots(module.test_arrays, run_dir / "plots"))
        L.finish(loggers, exit_code=0)
    _record_ok(root, row_base, metrics, t0)
    return RunResult(run_id=run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                     run_dir=run_dir, metrics=metrics, config=cfg)


def _load_module(task_cls, task: str, ckpt: Path):
    """The task's LightningModule from a checkpoint: a safe read first (refuses pickled
    code, truncated files; one-line errors), then Lightning's load, also weights_only."""
    load_checkpoint(ckpt)
    try:
        return task_cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a checkpoint of another model/task is bad input
        raise InputError(f"cannot load checkpoint {ckpt} as a {task} model: {_one_line(exc)}") from None


def _user_layer(run_cfg: dict) -> dict:
    """A saved run config as a layer (without the keys chosen on the command line)."""
    layer = {k: v for k, v in run_cfg.items() if k not in ("task", "resume")}
    layer["model"] = {k: v for k, v in (run_cfg.get("model") or {}).items() if k != "name"}
    return layer


def _write_table(table: dict, out: Path) -> None:
    """CSV/ECSV/FITS/Parquet through astropy, .npz/.h5 kept (atomic; cosmobench.io.write_table)."""
    from cosmobench.io import write_table
    write_table(table, out)
