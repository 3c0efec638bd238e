"""A task's classes and trained checkpoints: loaded safely, with the config they were trained with.

Every checkpoint is loaded with an explicit ``weights_only=True`` (ours and Lightning's),
so protection does not depend on torch's default (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
cannot relax an explicit argument): a checkpoint that holds a pickled Python object is
refused with a one-line :class:`~cosmobench.errors.InputError`. A checkpoint of a run lives
in ``RUN/checkpoints/``; the run's ``config.yaml`` beside it supplies the settings it was
trained with (:func:`checkpoint_config`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from cosmobench import config as C
from cosmobench.errors import ConfigError, InputError
from cosmobench.registry import TaskSpec


def load_classes(spec: TaskSpec):
    """Import the task's datamodule and module classes; a missing package is a clear error."""
    try:
        return spec.load_datamodule_class(), spec.load_module_class()
    except ModuleNotFoundError as exc:
        raise ConfigError(f"task {spec.name!r} needs the package {exc.name!r}: pip install it") from exc


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, terminal colours removed."""
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
        raise InputError(f"cannot read checkpoint {path} (truncated or not a checkpoint?): {one_line(exc)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise InputError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def load_module(task_cls, task: str, ckpt: Path, cfg: dict):
    """The task's LightningModule from a checkpoint: a safe read first (refuses pickled
    code, truncated files; one-line errors), then Lightning's load, also weights_only. The
    metric protocol is the one of ``cfg`` (the config the checkpoint is applied with: its
    ``eval`` node, absent from checkpoints saved before there was one)."""
    load_checkpoint(ckpt)
    try:
        return task_cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True,
                                             evaluation=cfg.get("eval"))
    except Exception as exc:  # noqa: BLE001 - a checkpoint of another model/task is bad input
        raise InputError(f"cannot load checkpoint {ckpt} as a {task} model: {one_line(exc)}") from None


def saved_identity(run_cfg: dict) -> tuple[str | None, str | None]:
    """(task, model name) of a saved run ``config.yaml`` (a file that may be foreign)."""
    model = run_cfg.get("model")
    return run_cfg.get("task"), model.get("name") if isinstance(model, dict) else None


def checkpoint_model(ckpt: dict) -> str | None:
    """Model name stored in a checkpoint's hyper-parameters, if any."""
    hp = ckpt.get("hyper_parameters")
    model = hp.get("model") if isinstance(hp, dict) else None
    return model.get("name") if isinstance(model, dict) else None


#: config nodes a trained checkpoint fixes: an override of them at test/predict would be ignored
FIXED_BY_CHECKPOINT = ("model.", "optim.")


def checkpoint_task(ckpt: dict) -> str | None:
    """Task name recorded in a checkpoint (:meth:`cosmobench.task.BaseTask.on_save_checkpoint`)."""
    meta = ckpt.get("cosmobench")
    task = meta.get("task") if isinstance(meta, dict) else None
    return task if isinstance(task, str) else None


def check_data_matches(dm_cls, cfg: dict, data_info: dict, ckpt: Path, info: dict | None = None) -> None:
    """Data a checkpoint is applied to must have the shape it was trained on: every key of the
    datamodule's ``shape_keys`` (bands, image size, classes, features ...) that the checkpoint's
    ``data_info`` holds must equal the value of the config's ``data`` node (checked before any
    data is read: ConfigError naming the key) and, given ``info`` (the datamodule's facts after
    reading the data), the data's (InputError). Both before any run dir or row exists."""
    config_keys = getattr(dm_cls, "config_shape_keys", None)  # keys whose data.KEY setting means the same
    for key in getattr(dm_cls, "shape_keys", ()):
        if key not in data_info:
            continue
        want = data_info[key]
        if key in cfg["data"] and (config_keys is None or key in config_keys) and cfg["data"][key] != want:
            raise ConfigError(f"checkpoint {ckpt} expects data.{key}={want!r}, the config gives "
                              f"{cfg['data'][key]!r} (set data.{key}={want!r} or use a matching checkpoint)")
        if info is not None and key in info and info[key] != want:
            raise InputError(f"the data do not match checkpoint {ckpt}: {key} is {info[key]!r}, the model was "
                             f"trained with {want!r}")


def checkpoint_config(task: str, checkpoint: str | Path, model: str | None = None, overrides: Iterable[str] = (),
                      config_file: str | Path | None = None) -> tuple[dict, Path]:
    """Resolved config for applying a trained checkpoint: the defaults of its model, then
    the run's ``config.yaml`` beside it (``RUN/checkpoints/x.ckpt`` -> ``RUN/config.yaml``,
    if there is one), ``config_file`` and ``overrides``. The model is the run's (or the one
    in the checkpoint's hyper-parameters, or ``model``); a conflicting ``model`` is an error."""
    ckpt = Path(checkpoint).expanduser()
    if not ckpt.is_file():
        raise InputError(f"checkpoint not found: {ckpt}")
    overrides = list(overrides)
    fixed = [o for o in overrides if o.split("=", 1)[0].strip().startswith(FIXED_BY_CHECKPOINT)]
    if fixed:
        raise ConfigError(f"{fixed[0]}: the model and its training are fixed by the checkpoint "
                          f"{ckpt}; this override would be ignored (train a new model to change it)")
    run_cfg_path = ckpt.resolve().parent.parent / "config.yaml"
    run_cfg = C.load_yaml(run_cfg_path) if run_cfg_path.is_file() else None
    state = load_checkpoint(ckpt)
    ckpt_task = checkpoint_task(state)
    saved_task, saved = saved_identity(run_cfg) if run_cfg is not None else (ckpt_task, None)
    if saved_task is None:
        raise ConfigError(f"checkpoint {ckpt} does not say which task it belongs to (saved away from its run "
                          f"dir by an older cosmobench): use it from its run dir RUN/checkpoints/")
    for owner in {saved_task, ckpt_task} - {None}:
        if owner != task:
            raise ConfigError(f"checkpoint {ckpt} belongs to task {owner!r}, not {task!r}")
    saved = saved or checkpoint_model(state)
    if saved and model and saved != model:
        raise ConfigError(f"checkpoint {ckpt} holds model {saved!r}, not {model!r} (leave -m out)")
    if not (saved or model):
        raise ConfigError(f"checkpoint {ckpt} does not name its model: give -m MODEL")
    layers = [(str(run_cfg_path), _user_layer(run_cfg, _requested_dataset(overrides, config_file)))] if run_cfg else []
    cfg = C.resolve(task, saved or model, config_file=config_file, overrides=overrides, extra_layers=layers)
    return cfg, ckpt


def _requested_dataset(overrides: list[str], config_file: str | Path | None) -> str | None:
    """The ``data.dataset`` that the command line (or else the config file) asks for, if any."""
    for layer in (C.parse_overrides(overrides), C.load_yaml(config_file) if config_file is not None else {}):
        data = layer.get("data") if isinstance(layer, dict) else None
        if isinstance(data, dict) and "dataset" in data:
            return data["dataset"]
    return None


def _user_layer(run_cfg: dict, dataset: str | None = None) -> dict:
    """A saved run config as a layer (without the keys chosen on the command line). With a
    named ``dataset`` asked for, the run's values of the data keys that data set fills
    (``data.source``, its files) are left out, so that the data set's loader keys apply."""
    layer = {k: v for k, v in run_cfg.items() if k not in ("task", "resume")}
    layer["model"] = {k: v for k, v in (run_cfg.get("model") or {}).items() if k != "name"}
    if dataset and isinstance(layer.get("data"), dict):
        from cosmobench.datasets.catalog import get_dataset
        filled = set(get_dataset(dataset).loader)
        layer["data"] = {k: v for k, v in layer["data"].items() if k not in filled}
    return layer
