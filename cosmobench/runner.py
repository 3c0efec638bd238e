"""Build a Trainer from a resolved config, fit, test and record one run (docs/ARCHITECTURE.md:
"Runs, results and errors", "Seeds and reproducibility", "Distributed runs").

:func:`train` (fit + test) and :func:`test` (score a trained checkpoint) share one run
lifecycle (:class:`_Run`, :func:`_execute`), so that bad input writes nothing:

1. everything that can be checked comes first: the config (``ConfigError``, exit 2), runs
   that would train nothing (``trainer.max_epochs=0`` ...), the run dir to resume (it must
   lie under ROOT), its checkpoint (read safely) and the lock on it, whether the results
   store can take a row (``StoreError``, exit 2), then the data (``InputError``, exit 2),
   the model and the Trainer;
2. only then is ``ROOT/<task>/<model>/<run_id>/`` created, locked (``fcntl.flock``: a second
   ``resume=last`` of the same run exits 2 instead of running twice), with ``config.yaml``
   and ``run.json`` (the row's fixed fields);
3. the Lightning work; on success ``metrics.json``, ``plots/`` and an ``ok`` row; on failure
   (e.g. NaN loss, a non-finite test metric) ``failed.txt`` and a ``failed`` row, and
   :class:`~cosmobench.errors.RunFailure` (exit 1). Bad input found only while running (a
   ConfigError/InputError from inside fit/test) removes a fresh run dir again (exit 2,
   nothing written). Ctrl-C raises :class:`RunInterrupted` (exit 130) and records
   nothing: the run dir stays, and a training run continues with ``resume=last``.
   ``trainer.fast_dev_run`` (a few batches) is a smoke test of the pipeline: its metrics
   are returned and printed, but nothing is recorded and its run dir is removed.

Under DDP the launcher re-executes the command line in each child process; the parent
passes the run directory and checkpoint through environment variables so that every rank
works in the same run, and only global rank 0 writes files and rows.
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from cosmobench import config as C
from cosmobench.checkpoints import (check_data_matches, checkpoint_config, checkpoint_model, load_checkpoint,
                                    load_classes, load_module, one_line)
from cosmobench.errors import ConfigError, InputError, RunFailure
from cosmobench.signals import INTERRUPTS, interrupt_code
from cosmobench.predict import predict
from cosmobench.registry import get_task
from cosmobench.results import METRICS_FILE, default_root
from cosmobench.run_dirs import (ENV_CKPT, ENV_RUN_DIR, launcher_rank, lock_run_dir, new_run_id, plan_run_dir,
                                 remove_run_dir, run_files)

INTERRUPTED_FILE = "interrupted.txt"  #: in a run dir stopped by Ctrl-C/SIGTERM: when and by which signal


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: nothing is recorded, the run dir stays resumable
    (``resume=last`` continues from ``checkpoints/last.ckpt``). The CLI exits 130
    (``exit_code``; 143 for SIGTERM, :class:`Terminated`)."""

    def __init__(self, message: str = "", exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


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


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def build_trainer(cfg: dict, run_dir: Path, logger, extra_callbacks: Iterable = ()):
    import pytorch_lightning as pl
    import torch
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    ckpt_cb = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="best", monitor="val_loss",
                              mode="min", save_top_k=1, save_last=True)
    callbacks: list = [ckpt_cb, *extra_callbacks]
    es = cfg["early_stopping"]
    if es["enabled"]:
        callbacks.append(EarlyStopping(monitor=es["monitor"], patience=es["patience"],
                                       min_delta=es["min_delta"], mode="min"))
    kwargs: dict[str, Any] = C.trainer_kwargs(cfg)  # every pl.Trainer argument the config may set
    kwargs["deterministic"] = "warn" if torch.cuda.is_available() else True
    try:
        return pl.Trainer(default_root_dir=str(run_dir), logger=logger, callbacks=callbacks, **kwargs)
    except (ValueError, TypeError, MisconfigurationException) as exc:
        raise ConfigError(f"invalid trainer settings: {exc}") from exc


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


def _checked_classes(cfg: dict):
    """The task's datamodule and module classes, after the checks every run makes first."""
    from cosmobench.loggers import logger_kinds
    classes = load_classes(get_task(cfg["task"]))
    logger_kinds(cfg)
    return classes


def _datamodule(cfg: dict, dm_cls, stage: str):
    """Threads, seed and deterministic algorithms of the run, then its datamodule, set up."""
    import warnings

    import pytorch_lightning as pl
    import torch

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning-internal noise
    _set_threads(cfg)
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    dm = dm_cls(cfg["data"], seed=cfg["seed"])
    dm.setup(stage)
    return dm


# --- the run lifecycle -----------------------------------------------------------------
@dataclass
class _Run:
    """One run dir and what this process does in it (see the module docstring)."""

    cfg: dict
    root: Path
    run_dir: Path
    fresh: bool             # this process creates run_dir (not a resume, not a DDP child)
    rank0: bool             # this process writes files and rows
    files: dict[str, str]   # name -> text, written into a fresh run dir
    label: str = "run"      # "run" or "test run", in messages
    trains: bool = True     # writes checkpoints/ (and can be resumed from them)
    smoke: bool = False     # trainer.fast_dev_run: nothing is recorded, a fresh run dir is removed

    @property
    def run_id(self) -> str:
        return self.run_dir.name


def _execute(run: _Run, dm, module, loggers, work: Callable[[], list[Path] | None]) -> RunResult:
    """Create the run dir, do ``work()`` (the Lightning part, which leaves the test metrics
    in ``module.test_metrics`` and returns the files of the W&B model artifact, or None),
    then write the outputs and record the row: the steps 2-3 of the module docstring."""
    from cosmobench import loggers as L
    from cosmobench.results import (FAILED_FILE, StoreError, git_commit, hardware, package_versions,
                                    write_run_file)

    cfg, run_dir = run.cfg, run.run_dir
    row_base = dict(run_id=run.run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                    config_hash=C.config_hash(cfg, C.BOOKKEEPING_KEYS), dataset_fingerprint=dm.fingerprint(),
                    run_dir=str(run_dir), start_time=_utcnow(), git_commit=git_commit(),
                    versions=package_versions(), hardware=hardware())
    new_dirs = [p for p in run_dir.parents if not p.exists()]  # removed again if the input turns out bad
    lock = None
    main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        if run.fresh:
            (run_dir / "checkpoints" if run.trains else run_dir).mkdir(parents=True, exist_ok=True)
            if run.rank0:
                lock = lock_run_dir(run_dir)
                for name, text in run.files.items():
                    (run_dir / name).write_text(text)
        if run.rank0:
            write_run_file(run_dir, row_base)
        t0 = time.time()
        with L.wandb_env(run_dir):
            try:
                artifacts = work()
                metrics = dict(module.test_metrics)
                _check_metrics(metrics)
                if run.rank0 and not run.smoke:
                    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
                    (run_dir / FAILED_FILE).unlink(missing_ok=True)  # of an earlier attempt of this run
                    (run_dir / INTERRUPTED_FILE).unlink(missing_ok=True)
                    if cfg["plots"]:
                        L.log_images(loggers, module.make_plots(module.test_arrays, run_dir / "plots"))
                    if artifacts is not None:
                        L.log_artifact(loggers, run.run_id, artifacts)
            except (ConfigError, InputError):  # bad input found only while running: leave no trace
                L.finish(loggers, exit_code=2)
                if run.fresh and run.rank0:
                    remove_run_dir(run_dir, new_dirs)
                raise
            except (*INTERRUPTS, SystemExit) as exc:
                # Lightning turns Ctrl-C into sys.exit(1) and ignores SIGINT from then on
                if isinstance(exc, SystemExit) and not isinstance(exc.__context__, INTERRUPTS):
                    raise
                code = interrupt_code(exc)
                L.finish(loggers, exit_code=code)
                if run.rank0 and run_dir.is_dir() and not run.smoke:  # marked; removed when it completes
                    (run_dir / INTERRUPTED_FILE).write_text(f"{_utcnow()} {'SIGTERM' if code == 143 else 'SIGINT'}\n")
                raise RunInterrupted(_interrupted_message(run), exit_code=code) from None
            except Exception as exc:
                reason = f"{type(exc).__name__}: {one_line(exc)}"
                L.finish(loggers, exit_code=1)
                if run.rank0 and run.smoke and run.fresh:
                    remove_run_dir(run_dir, new_dirs)
                elif run.rank0:
                    (run_dir / FAILED_FILE).write_text(reason + "\n")
                    try:
                        _record(run.root, row_base, "failed", {}, reason, t0)
                    except StoreError as store_exc:
                        reason += f" (and the failed row was not recorded: {store_exc})"
                raise RunFailure(f"{run.label} {run.run_id} failed: {reason}") from exc
            L.finish(loggers, exit_code=0)
        if run.rank0 and run.smoke:
            if run.fresh:
                remove_run_dir(run_dir, new_dirs)
        elif run.rank0:
            _record_ok(run.root, row_base, metrics, t0)
    finally:
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)
        if lock is not None:
            os.close(lock)
        _clear_env()
    return RunResult(run_id=run.run_id, task=cfg["task"], model=cfg["model"]["name"], seed=cfg["seed"],
                     run_dir=run_dir, metrics=metrics, status="smoke" if run.smoke else "ok", config=cfg)


def _check_metrics(metrics: dict[str, float]) -> None:
    """A run whose test metrics are missing or not finite is a failed run, never ``ok``."""
    if not metrics:
        raise RunFailure("the test loop produced no metrics")
    bad = [k for k, v in sorted(metrics.items()) if not math.isfinite(v)]
    if bad:
        raise RunFailure("test metric " + ", ".join(f"{k}={metrics[k]}" for k in bad)
                         + " is not finite (non-finite inputs or predictions in the test split?)")


def _interrupted_message(run: _Run) -> str:
    run_dir, name = run.run_dir, f"{run.label} {run.run_id}"
    if (run_dir / METRICS_FILE).is_file():
        return (f"{name} finished but was stopped before its row was recorded: "
                f"`cosmobench results --rescan {run.root}` records it")
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return (f"{name} stopped and not recorded; {run_dir} is kept: the same command with "
                f"resume=last continues it from its last completed epoch")
    if run.trains:
        return f"{name} stopped before its first checkpoint and was not recorded (nothing to resume)"
    return f"{name} stopped and was not recorded"


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
    from cosmobench.results import StoreError
    try:
        _record(root, base, "ok", metrics, None, t0)
    except StoreError as exc:
        raise RunFailure(f"run {base['run_id']} finished (metrics in {Path(base['run_dir']) / METRICS_FILE}) but "
                         f"its row was not recorded: {exc}; record it later with "
                         f"`cosmobench results --rescan {root}`") from exc


# --- train and test --------------------------------------------------------------------
def train(task: str, model: str | None = None, overrides: Iterable[str] = (),
          config_file: str | Path | None = None, root: str | Path | None = None,
          cfg: dict | None = None) -> RunResult:
    """Fit, test and record one run. Raises ConfigError/InputError (exit 2, nothing
    written), RunFailure (exit 1, failed row written) or RunInterrupted (Ctrl-C, exit 130,
    nothing recorded, run dir resumable). See the module docstring for the order of work."""
    import pytorch_lightning as pl

    from cosmobench.results import check_store

    cfg = cfg if cfg is not None else C.resolve(task, model, config_file, overrides)
    root = default_root(root)
    dm_cls, task_cls = _checked_classes(cfg)
    check_trains(cfg)
    child = bool(os.environ.get(ENV_RUN_DIR))  # a DDP child: the parent checked, locked and writes
    rank0 = not child and launcher_rank() == 0
    if rank0:
        check_store(root)
    run_dir, resume_ckpt, fresh = plan_run_dir(root, cfg)
    resume_epoch = None
    if resume_ckpt is not None and not child:
        state = load_checkpoint(resume_ckpt)
        if checkpoint_model(state) not in (None, cfg["model"]["name"]):
            raise ConfigError(f"resume: checkpoint {resume_ckpt} holds model {checkpoint_model(state)!r}, "
                              f"not {cfg['model']['name']!r}")
        resume_epoch = int(state.get("epoch", -1))
    lock = lock_run_dir(run_dir) if rank0 and not fresh else None
    try:
        dm = _datamodule(cfg, dm_cls, "fit")
        pl.seed_everything(cfg["seed"], workers=True, verbose=False)  # model init independent of data loading
        module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info=dm.info(),
                          evaluation=cfg.get("eval"))  # only tasks with a metric protocol have an eval node
        loggers = build_logger(cfg, run_dir, run_dir.name, resume_epoch=resume_epoch)  # nothing is written before
        trainer = build_trainer(cfg, run_dir, loggers or False)  # the Trainer exists: bad settings leave no trace
        run = _Run(cfg, root, run_dir, fresh=fresh, rank0=rank0, files=run_files(cfg, dm),
                   smoke=bool(cfg["trainer"]["fast_dev_run"]))

        def fit_and_test() -> list[Path]:
            os.environ[ENV_RUN_DIR] = str(run_dir)  # for the DDP children Lightning starts
            os.environ[ENV_CKPT] = str(resume_ckpt or "")
            trainer.fit(module, datamodule=dm, ckpt_path=str(resume_ckpt) if resume_ckpt else None,
                        weights_only=True)
            if not module.is_baseline and trainer.global_step == 0:
                raise RunFailure("training took no optimizer step (check trainer.limit_train_batches, "
                                 "trainer.max_steps, trainer.max_time)")
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            if not best and not run.smoke:
                # no validated checkpoint (a baseline takes no optimizer steps; or no val batches):
                # the final model is the one to test and to predict with
                best = str(run_dir / "checkpoints" / "best.ckpt")
                trainer.save_checkpoint(best, weights_only=False)  # the full checkpoint
            trainer.test(module, datamodule=dm, ckpt_path=best or None, verbose=False, weights_only=True)
            run.rank0 = trainer.global_rank == 0
            return [Path(best), run_dir / "config.yaml"] if best else []

        return _execute(run, dm, module, loggers, fit_and_test)
    finally:
        if lock is not None:
            os.close(lock)


def test(task: str, checkpoint: str | Path, model: str | None = None, overrides: Iterable[str] = (),
         config_file: str | Path | None = None, root: str | Path | None = None) -> RunResult:
    """Score a trained checkpoint on the test split of the datamodule its config describes
    (e.g. ``data.source=catalog data.path=cat.fits``, or the same simulation) and record it.

    Writes a new run dir ``ROOT/<task>/<model>/<run_id>-test/`` with ``config.yaml``,
    ``checkpoint.txt`` (the scored checkpoint), ``metrics.json`` and ``plots/``, and an ``ok``
    row (its experiment hash follows the config, so a test on another dataset is its own
    leaderboard entry). Runs in one process (``trainer.devices=1``). Like :func:`train`:
    ConfigError/InputError before anything is written (exit 2), RunFailure for a test that
    fails or gives non-finite metrics (failed row, exit 1), RunInterrupted on Ctrl-C (exit 130).
    """
    from cosmobench.results import check_store

    cfg, ckpt = checkpoint_config(task, checkpoint, model, overrides, config_file)
    cfg["trainer"].update(devices=1, num_nodes=1, strategy="auto")  # the test metrics are DDP-correct anyway
    root = default_root(root)
    dm_cls, task_cls = _checked_classes(cfg)
    check_store(root)
    module = load_module(task_cls, task, ckpt, cfg)
    check_data_matches(dm_cls, cfg, module.data_info, ckpt)  # bands, size ... before any data is read
    dm = _datamodule(cfg, dm_cls, "test")
    check_data_matches(dm_cls, cfg, module.data_info, ckpt, dm.info())  # classes, features of the data read
    run_dir = root / cfg["task"] / cfg["model"]["name"] / f"{new_run_id(cfg)}-test"
    loggers = build_logger(cfg, run_dir, run_dir.name, job_type="test")
    trainer = build_trainer(cfg, run_dir, loggers or False)
    run = _Run(cfg, root, run_dir, fresh=True, rank0=True, label="test run", trains=False,
               files={**run_files(cfg, dm), "checkpoint.txt": f"{ckpt.resolve()}\n"})

    def score() -> None:
        trainer.test(module, datamodule=dm, verbose=False)

    return _execute(run, dm, module, loggers, score)


# --- tuning: fit and score on the validation split ----------------------------------------
class TestSplitUsed(RuntimeError):
    """Raised when code reads the test split during tuning (:func:`fit_validate`): a bug."""


class _NoTestSplit:
    """Stands in for the test split while tuning: any read of an item raises."""

    def __init__(self, ds):
        self._n = len(ds)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        raise TestSplitUsed("the test split was read while tuning (tuning uses only train/validation)")

    __getitems__ = __getitem__


def fit_validate(cfg: dict, run_dir: Path, callbacks: Iterable = (), objective: str = "metric") -> dict[str, Any]:
    """Tuning (:mod:`cosmobench.tune`): fit on the train split, keep the best checkpoint by
    ``val_loss``, and score it on the **validation** split: ``{"val_loss": best val_loss,
    "metrics": the task's metrics on the validation split (objective "metric")}``. The test
    split is replaced by a stand-in that raises :class:`TestSplitUsed` on any read, and its
    loader is never built. Records nothing in the results store; checkpoints go to
    ``run_dir/checkpoints`` (the caller removes them)."""
    import pytorch_lightning as pl
    dm_cls, task_cls = _checked_classes(cfg)
    check_trains(cfg)
    dm = _datamodule(cfg, dm_cls, "fit")
    dm.datasets["test"] = _NoTestSplit(dm.datasets["test"])

    def no_test_loader():
        raise TestSplitUsed("the test loader was asked for while tuning (tuning uses only train/validation)")
    dm.test_dataloader = no_test_loader
    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    module = task_cls(model=cfg["model"], optim=cfg["optim"], data_info=dm.info(), evaluation=cfg.get("eval"))
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cfg, run_dir, False, extra_callbacks=callbacks)
    trainer.fit(module, datamodule=dm, weights_only=True)
    if not module.is_baseline and trainer.global_step == 0:
        raise RunFailure("training took no optimizer step")
    ckpt = trainer.checkpoint_callback
    score = ckpt.best_model_score if ckpt is not None else None
    out: dict[str, Any] = {"val_loss": float(score) if score is not None else
                           float(trainer.callback_metrics.get("val_loss", float("nan")))}
    if objective == "metric":
        best = ckpt.best_model_path if ckpt is not None else ""
        trainer.test(module, dataloaders=dm.val_dataloader(), ckpt_path=best or None, verbose=False,
                     weights_only=True)
        out["metrics"] = dict(module.test_metrics)
    return out


__all__ = ["RunResult", "fit_validate", "TestSplitUsed", "RunInterrupted", "train", "test", "predict", "checkpoint_config", "load_checkpoint",
           "load_classes", "check_trains", "build_logger", "build_trainer", "default_root"]
