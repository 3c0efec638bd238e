"""The ``trainer`` node: every ``pl.Trainer`` argument a config can express, with Lightning's
defaults and accepted values read from ``Trainer.__init__``'s signature and annotations, and
where cosmobench departs from them. The signature is cached as JSON per installed Lightning
version (``$COSMOBENCH_CACHE``, default ``~/.cache/cosmobench``), so validating a config does
not import Lightning."""
from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

from cosmobench import constraints as K

log = logging.getLogger(__name__)

#: Where cosmobench departs from Lightning's ``pl.Trainer`` defaults (every other argument
#: joins with Lightning's default, :func:`trainer_schema`).
TRAINER_DEFAULTS: dict[str, Any] = {
    "devices": 1,
    "precision": "32-true",
    "max_epochs": 10,
    "log_every_n_steps": 10,
    "enable_progress_bar": True,
}

#: Ranges of ``trainer.*`` values on top of the types Lightning's annotations give.
TRAINER_RANGES: dict[str, Any] = {
    "trainer.num_nodes": "positive int",
    "trainer.max_epochs": "int >= -1 or null",
    "trainer.min_epochs": "non-negative int or null",
    "trainer.max_steps": "int >= -1",
    "trainer.min_steps": "non-negative int or null",
    "trainer.accumulate_grad_batches": "positive int",
    "trainer.check_val_every_n_epoch": "positive int or null",
    "trainer.log_every_n_steps": "non-negative int or null",
    "trainer.num_sanity_val_steps": "int >= -1 or null",
    "trainer.reload_dataloaders_every_n_epochs": "non-negative int",
    "trainer.gradient_clip_val": "non-negative float or null",
    "trainer.gradient_clip_algorithm": "one of norm, value or null",
    "trainer.fast_dev_run": "bool or non-negative int",
    "trainer.overfit_batches": "non-negative int or probability",
    "trainer.limit_train_batches": "non-negative int or probability or null",
    "trainer.limit_val_batches": "non-negative int or probability or null",
    "trainer.limit_test_batches": "non-negative int or probability or null",
    "trainer.limit_predict_batches": "non-negative int or probability or null",
}

#: ``pl.Trainer`` arguments the runner sets itself, with the reason shown to a user who sets them.
TRAINER_RESERVED = {
    "logger": "choose the logger with the top-level key logger=wandb|csv|tensorboard|none",
    "callbacks": "cosmobench adds checkpointing and early stopping itself (see early_stopping.*)",
    "default_root_dir": "run directories live under --root as ROOT/<task>/<model>/<run_id>",
    "enable_checkpointing": "cosmobench always saves best.ckpt and last.ckpt (test, predict and resume need them)",
    "deterministic": "cosmobench always enables deterministic algorithms so that runs are reproducible",
    "barebones": "it disables the logging and checkpointing cosmobench records runs with",
    "model_registry": "it uploads to Lightning's model registry, and cosmobench runs never use the network",
}

def cache_dir() -> Path:
    """cosmobench's cache folder: ``$COSMOBENCH_CACHE``, else ``$XDG_CACHE_HOME/cosmobench``,
    else ``~/.cache/cosmobench``."""
    if os.environ.get("COSMOBENCH_CACHE"):
        return Path(os.environ["COSMOBENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cosmobench"


def _lightning_signature() -> dict[str, Any]:
    """``pl.Trainer.__init__``'s arguments: ``settable`` {name: [default, constraint JSON]} for
    those a config can express, ``objects`` for those only Python objects can. Cached as JSON
    per installed Lightning version (computing it imports Lightning: ~5 s of CPU)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        pl_version = version("pytorch-lightning")
    except PackageNotFoundError:
        pl_version = "unknown"
    path = cache_dir() / "schema" / f"trainer-signature-{pl_version}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    import inspect
    import typing

    import pytorch_lightning as pl

    hints = typing.get_type_hints(pl.Trainer.__init__)
    settable, objects = {}, []
    for name, param in inspect.signature(pl.Trainer.__init__).parameters.items():
        if name == "self" or param.kind not in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD):
            continue
        check = K.from_annotation(hints.get(name, typing.Any))
        try:
            default = json.loads(json.dumps(param.default))
        except (TypeError, ValueError):
            check = None
        if check is None:
            objects.append(name)
        else:
            settable[name] = [default, K.to_json(check)]
    sig = {"version": pl_version, "settable": settable, "objects": objects}
    try:
        from cosmobench.io import atomic_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(sig), encoding="utf-8")
    except OSError as exc:  # a read-only home: validation still works, only slower
        log.debug("cannot cache the Trainer signature in %s: %s", path, exc)
    return sig


@functools.lru_cache(maxsize=1)
def trainer_schema() -> tuple[dict[str, Any], dict[str, K.Constraint]]:
    """Defaults and constraints of every settable ``pl.Trainer`` argument (so every Lightning
    argument is available as ``trainer.<arg>`` with Lightning's accepted values), with
    :data:`TRAINER_DEFAULTS` and :data:`TRAINER_RANGES` applied. Arguments the runner controls
    (:data:`TRAINER_RESERVED`) and those only Python objects can express are left out."""
    sig = _lightning_signature()
    defaults, checks = {}, {}
    for name, (default, check) in sig["settable"].items():
        if name in TRAINER_RESERVED:
            continue
        defaults[name] = TRAINER_DEFAULTS.get(name, default)
        checks[f"trainer.{name}"] = K.from_json(check)
    checks.update(K.parse_all(TRAINER_RANGES, "TRAINER_RANGES"))
    return defaults, checks


def trainer_unsettable_reason(key: str) -> str | None:
    """Why ``trainer.<key>`` is not in the schema, if it is a Trainer argument at all."""
    if key in TRAINER_RESERVED:
        return TRAINER_RESERVED[key]
    if key in _lightning_signature()["objects"]:
        return "it takes Python objects, which a config cannot express"
    return None


def trainer_kwargs(cfg: dict) -> dict[str, Any]:
    """Keyword arguments for ``pl.Trainer`` from a resolved config (the runner adds
    ``logger``, ``callbacks``, ``default_root_dir`` and ``deterministic``)."""
    return dict(cfg["trainer"])


