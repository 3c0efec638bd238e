"""Where a run lives: its directory under ``ROOT/<task>/<model>/<run_id>/``, the choice
between a fresh dir and one to resume (``resume=last``, a checkpoint path, a requeued SLURM
job, a DDP child told by its parent), the ``flock`` that keeps two processes out of one run
dir, the files every run dir starts with, and the clean-up of a dir this process created.
Used by :mod:`cosmobench.runner`."""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from cosmobench import config as C
from cosmobench.checkpoints import saved_identity
from cosmobench.errors import ConfigError
from cosmobench.results import METRICS_FILE

ENV_RUN_DIR = "COSMOBENCH_RUN_DIR"
ENV_CKPT = "COSMOBENCH_RESUME_CKPT"


def launcher_rank() -> int:
    """Global rank given by an external launcher (torchrun: RANK, SLURM: SLURM_PROCID), else 0."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def external_job_id() -> str | None:
    """Id shared by all processes of a torchrun / SLURM multi-process job, if any."""
    if int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))) <= 1:
        return None
    return os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("SLURM_JOB_ID")


def new_run_id(cfg: dict) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-s{cfg['seed']}-{uuid.uuid4().hex[:6]}"


def find_resumable(root: Path, cfg: dict) -> tuple[Path, Path]:
    """Latest unfinished run of this exact config that has ``checkpoints/last.ckpt``."""
    want = C.config_hash(cfg)
    base = root / cfg["task"] / cfg["model"]["name"]
    candidates = []
    for d in base.glob("*/"):
        ckpt = d / "checkpoints" / "last.ckpt"
        if ckpt.is_file() and not (d / METRICS_FILE).exists() and (d / "config.yaml").is_file():
            if C.config_hash(C.load_yaml(d / "config.yaml")) == want:
                candidates.append((ckpt.stat().st_mtime, d, ckpt))
    if not candidates:
        raise ConfigError(f"resume=last: no unfinished run of this config with checkpoints/last.ckpt under {base}")
    _, d, ckpt = max(candidates)
    return d, ckpt


def plan_run_dir(root: Path, cfg: dict) -> tuple[Path, Path | None, bool]:
    """(run_dir, checkpoint to resume from, whether this process creates it)."""
    if os.environ.get(ENV_RUN_DIR):  # DDP child: the parent chose already
        ckpt = os.environ.get(ENV_CKPT) or None
        return Path(os.environ[ENV_RUN_DIR]), Path(ckpt) if ckpt else None, False
    resume = cfg["resume"]
    if resume == "last":
        run_dir, ckpt = find_resumable(root, cfg)
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
        saved = saved_identity(C.load_yaml(run_dir / "config.yaml"))
        if saved != (cfg["task"], cfg["model"]["name"]):
            raise ConfigError(f"resume={resume!r} is a run of {saved[0]}/{saved[1]}, "
                              f"not {cfg['task']}/{cfg['model']['name']}")
        return run_dir, ckpt, False
    job = external_job_id()  # every process of the job must agree on the run id
    requeued = None if job else slurm_requeued_run(root, cfg)
    if requeued is not None:
        return requeued
    slurm = None if job else slurm_job_id()
    run_id = (f"job{job}-s{cfg['seed']}" if job else
              f"slurm{slurm}-{C.config_hash(cfg)[:8]}-s{cfg['seed']}" if slurm else new_run_id(cfg))
    return root / cfg["task"] / cfg["model"]["name"] / run_id, None, True


def slurm_job_id() -> str | None:
    """``<job>`` or ``<array job>_<task>`` of a SLURM batch job (Lightning's own rule), else None."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or None


def slurm_requeued_run(root: Path, cfg: dict) -> tuple[Path, Path | None, bool] | None:
    """A SLURM job requeued by Lightning's auto-requeue (SIGUSR1: ``hpc_ckpt_N.ckpt`` saved in
    the run dir, ``scontrol requeue``) starts again with ``SLURM_RESTART_COUNT`` >= 1: it
    continues its own unfinished run dir (named from the job id) from the newest of its HPC
    checkpoint and ``checkpoints/last.ckpt``."""
    slurm = slurm_job_id()
    if not slurm or int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) < 1:
        return None
    run_dir = root / cfg["task"] / cfg["model"]["name"] / f"slurm{slurm}-{C.config_hash(cfg)[:8]}-s{cfg['seed']}"
    if not run_dir.is_dir() or (run_dir / METRICS_FILE).exists():
        return None
    ckpts = [*run_dir.glob("hpc_ckpt_*.ckpt"), run_dir / "checkpoints" / "last.ckpt"]
    ckpts = [c for c in ckpts if c.is_file()]
    return run_dir, max(ckpts, key=lambda c: c.stat().st_mtime) if ckpts else None, False


def lock_run_dir(run_dir: Path) -> int:
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


def run_files(cfg: dict, dm) -> dict[str, str]:
    """The files every run directory starts with: ``config.yaml``, and ``data.json`` (the named
    data set and the sha256 of each of its files) when the run reads a registered data set."""
    files = {"config.yaml": C.to_yaml(cfg)}
    provenance = dm.provenance()
    if provenance is not None:
        files["data.json"] = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
    return files


def remove_run_dir(run_dir: Path, new_dirs: list[Path]) -> None:
    """Remove a run dir this process created, and the parents it created if still empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for p in new_dirs:  # nearest first
        try:
            p.rmdir()
        except OSError:
            break
