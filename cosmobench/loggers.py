"""Loggers of a run: the ``logger`` config key, a CSV log that survives ``resume=last``,
and W&B runs that are grouped, tagged and always finished.

``logger`` is a name or a list of names from :data:`cosmobench.config.LOGGERS`
(``wandb``, ``csv``, ``tensorboard``, ``none``). A CSV logger (``RUN_DIR/csv/metrics.csv``)
always runs beside the chosen ones; ``none`` (alone) turns all logging off.

W&B (offline unless ``WANDB_MODE=online``): one W&B run per cosmobench run, id = run id,
``group`` = the experiment (``<task>/<model>/<config hash>``: the seeds of one experiment
share it), ``job_type`` (``train``, ``test``), tags (``seed=N``, task, model), the resolved
config, and at the end ``best.ckpt`` + ``config.yaml`` as a ``model`` artifact. Every W&B
file, the artifact staging copy included, stays in ``RUN_DIR/wandb``. :func:`finish`
always closes the W&B run (``exit_code`` non-zero for a failed or interrupted run), so that
the next run in the same process (a bench, the Python API) never logs into it.
"""
from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from cosmobench import config as C
from cosmobench.errors import ConfigError

CSV_DIR = "csv"


def logger_kinds(cfg: dict) -> list[str]:
    """The loggers a run uses, CSV first (it always runs); ``[]`` for ``logger=none``.
    (The names were checked against ``config.LOGGERS`` when the config was resolved.)"""
    value = cfg["logger"]
    kinds = [value] if isinstance(value, str) else list(value)
    if "none" in kinds:
        if len(kinds) > 1:
            raise ConfigError(f"logger={value!r}: 'none' cannot be combined with other loggers")
        return []
    return ["csv", *dict.fromkeys(k for k in kinds if k != "csv")]


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing ``metrics.csv``; this one keeps the rows
    logged up to the checkpoint a run resumes from (``epoch <= keep_upto_epoch``) and
    appends, widening the header if new columns appear."""

    def __init__(self, log_dir: str, keep_upto_epoch: int | None):
        self._keep_upto_epoch = keep_upto_epoch
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self._keep_upto_epoch is None or not path.is_file():
            super()._check_log_dir_exists()
            return
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if _epoch_of(r) <= self._keep_upto_epoch]
        from cosmobench.io import atomic_path
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = keys


def _epoch_of(row: dict) -> float:
    try:
        return float(row.get("epoch") or "inf")
    except ValueError:
        return float("inf")


class RunCSVLogger(CSVLogger):
    """``RUN_DIR/csv/metrics.csv``, written through after every logging call (so a killed
    run keeps what it logged) and kept across ``resume=last`` (see :class:`_KeepingWriter`)."""

    def __init__(self, run_dir: Path, keep_upto_epoch: int | None = None):
        super().__init__(save_dir=str(run_dir), name=CSV_DIR, version="", flush_logs_every_n_steps=1)
        self._keep_upto_epoch = keep_upto_epoch

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self._keep_upto_epoch)
        return self._experiment


def build_loggers(cfg: dict, run_dir: Path, run_id: str, job_type: str = "train",
                  resume_epoch: int | None = None) -> list[Logger]:
    """Lightning loggers for a run (nothing is written until the Trainer logs).
    ``resume_epoch``: epoch of the checkpoint a resumed run starts from."""
    loggers: list[Logger] = []
    for kind in logger_kinds(cfg):
        if kind == "csv":
            loggers.append(RunCSVLogger(run_dir, resume_epoch))
        elif kind == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger
            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
        else:
            loggers.append(_wandb_logger(cfg, run_dir, run_id, job_type))
    return loggers


def experiment_group(cfg: dict) -> str:
    """W&B group of a run: ``<task>/<model>/<experiment hash>`` (the leaderboard's grouping)."""
    return f"{cfg['task']}/{cfg['model']['name']}/{C.config_hash(cfg, C.BOOKKEEPING_KEYS)}"


def _wandb_mode() -> str:
    mode = os.environ.get("WANDB_MODE", "offline")
    return "offline" if mode in ("offline", "dryrun") else mode


def _wandb_logger(cfg: dict, run_dir: Path, run_id: str, job_type: str):
    from pytorch_lightning.loggers import WandbLogger
    task, model = cfg["task"], cfg["model"]["name"]
    mode = _wandb_mode()
    return WandbLogger(project=os.environ.get("WANDB_PROJECT", "cosmobench"), name=run_id, id=run_id,
                       group=experiment_group(cfg), job_type=job_type,
                       tags=[f"seed={cfg['seed']}", task, model], save_dir=str(run_dir),
                       offline=(mode == "offline"), mode=mode, config=cfg, log_model=False)


_WANDB_ENV = ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_SILENT", "WANDB_MODE")


@contextmanager
def wandb_env(run_dir: Path) -> Iterator[None]:
    """W&B files (run files, artifact staging) under ``RUN_DIR/wandb``; the process
    environment is restored afterwards (Lightning also rewrites ``WANDB_MODE``)."""
    saved = {k: os.environ.get(k) for k in _WANDB_ENV}
    os.environ["WANDB_DIR"] = str(run_dir)
    os.environ["WANDB_DATA_DIR"] = str(run_dir / "wandb" / "data")
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wandb_of(loggers) -> list:
    return [lg for lg in loggers or [] if type(lg).__name__ == "WandbLogger"]


def log_images(loggers, paths: list[Path]) -> None:
    for lg in _wandb_of(loggers):
        for p in paths:
            lg.log_image(key=f"plots/{Path(p).stem}", images=[str(p)])


def log_artifact(loggers, run_id: str, files: list[Path]) -> None:
    """``best.ckpt`` and ``config.yaml`` (or any ``files``) as one W&B ``model`` artifact."""
    if _wandb_mode() == "disabled":
        return
    for lg in _wandb_of(loggers):
        import wandb
        art = wandb.Artifact(f"model-{run_id}", type="model")
        for f in files:
            if Path(f).is_file():
                art.add_file(str(f), name=Path(f).name)
        lg.experiment.log_artifact(art)


def finish(loggers, exit_code: int = 0) -> None:
    """Close the W&B run of this run (also when it failed: ``exit_code`` non-zero), so no
    later run in this process logs into it."""
    for lg in _wandb_of(loggers):
        run = lg._experiment  # None if the run never started logging
        if run is not None:
            run.finish(exit_code=exit_code)
