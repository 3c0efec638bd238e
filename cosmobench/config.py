"""Configuration: layering and validation (DESIGN §3).

Layers, later wins::

    COMMON_DEFAULTS <- task.defaults <- task.models[MODEL] <- experiments/<task>/<model>.yaml
                    <- user YAML (-c) <- dotlist overrides (key=value ...)

The first three layers define the schema: every key a later layer sets must already
exist there, and its value must have a compatible type (``int`` is accepted where a
``float`` is expected; a ``None`` default accepts any value). An unknown key is a
:class:`~cosmobench.errors.ConfigError` that names the key and suggests the closest
valid one. Values may use OmegaConf interpolation (``${data.n_test}``), resolved after
merging. Configs are data only: no code is ever evaluated.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import yaml

from cosmobench.errors import ConfigError
from cosmobench.registry import TaskSpec, get_task

#: Keys every task's ``data`` node has (tasks add their own in ``TaskSpec.defaults``).
COMMON_DATA_DEFAULTS: dict[str, Any] = {
    "source": "sim",        # "sim" (built-in simulator) or a real-data source name
    "path": None,           # file for real-data sources
    "n_train": 2000,        # simulated samples per split
    "n_val": 500,
    "n_test": 1000,
    "val_fraction": 0.15,   # real data: fractions of rows held out for val and test
    "test_fraction": 0.15,
    "batch_size": 128,
    "num_workers": 0,
}

COMMON_DEFAULTS: dict[str, Any] = {
    "task": None,
    "seed": 0,
    "resume": None,           # "last" (latest unfinished run of this config) or a .ckpt path
    "logger": "wandb",        # wandb | csv | tensorboard | none
    "plots": True,
    "num_threads": None,      # torch CPU threads per process (None: torch's default, split over DDP ranks)
    "model": {"name": None},
    "data": COMMON_DATA_DEFAULTS,
    "trainer": {
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",
        "num_nodes": 1,
        "precision": "32-true",
        "max_epochs": 10,
        "max_steps": -1,
        "gradient_clip_val": None,
        "fast_dev_run": False,
        "limit_train_batches": None,
        "limit_val_batches": None,
        "limit_test_batches": None,
        "check_val_every_n_epoch": 1,
        "log_every_n_steps": 10,
        "enable_progress_bar": True,
    },
    "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "none"},
    "early_stopping": {"enabled": False, "monitor": "val_loss", "patience": 5, "min_delta": 0.0},
}

LOGGERS = ("wandb", "csv", "tensorboard", "none")

#: keys whose value may not be set by a user layer (they are chosen by the CLI)
_RESERVED = ("task", "model.name")


def experiments_dir() -> Path:
    """Folder of the shipped experiment configs (``experiments/`` in the source tree)."""
    import cosmobench.experiments as pkg
    return Path(pkg.__file__).parent


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _flat_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        path = f"{prefix}{k}"
        keys.append(path)
        if isinstance(v, dict):
            keys.extend(_flat_keys(v, path + "."))
    return keys


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(value, str) and value.startswith("${"):  # interpolation: checked once resolved
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


#: common names from other tools, suggested when they are used as keys
_ALIASES = {"learning_rate": "lr", "epochs": "max_epochs", "gpus": "devices", "batchsize": "batch_size",
            "n_epochs": "max_epochs", "workers": "num_workers", "optimizer": "name"}


def _validate_layer(schema: dict, layer: dict, source: str, prefix: str = "") -> None:
    for k, v in layer.items():
        path = f"{prefix}{k}"
        if k not in schema:
            valid = list(schema)
            close = [_ALIASES[k]] if _ALIASES.get(k) in schema else difflib.get_close_matches(str(k), valid, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{path}' (from {source}){hint} "
                              f"valid keys here: {', '.join(sorted(valid))}")
        d = schema[k]
        if isinstance(d, dict) and isinstance(v, dict):
            _validate_layer(d, v, source, path + ".")
        elif not _type_ok(d, v):
            raise ConfigError(f"config key '{path}' (from {source}) expects {type(d).__name__}, "
                              f"got {type(v).__name__} {v!r}")


def parse_value(text: str) -> Any:
    """Parse the value of a ``key=value`` override: numbers (``1e-3`` too), bools, null,
    lists and mappings as YAML; anything else stays a string."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        if text.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity"):
            return float(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_overrides(overrides: Iterable[str]) -> dict:
    """``["a.b=1", "c=[x,y]"]`` -> nested dict. Raises ConfigError on malformed items."""
    tree: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override")
        node[parts[-1]] = parse_value(value)
    return tree


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _check_reserved(layer: dict, source: str) -> None:
    if "task" in layer:
        raise ConfigError(f"'task' cannot be set in {source}: give the task on the command line")
    if isinstance(layer.get("model"), dict) and "name" in layer["model"]:
        raise ConfigError(f"'model.name' cannot be set in {source}: choose the model with -m MODEL")


def schema_for(spec: TaskSpec, model: str) -> dict:
    """Default config tree of (task, model): the first three layers."""
    if model not in spec.models:
        raise ConfigError(f"task {spec.name!r} has no model {model!r}; choose one of {', '.join(spec.models)}")
    base = deep_merge(COMMON_DEFAULTS, spec.defaults)
    _validate_layer(base, {k: v for k, v in spec.models[model].items() if k != "model"},
                    f"registry model {model!r}")
    # a model may add its own keys under ``model``: merge without validating that node
    tree = deep_merge(base, spec.models[model])
    tree["task"], tree["model"]["name"] = spec.name, model
    return tree


def resolve(task: str, model: str | None = None, config_file: str | Path | None = None,
            overrides: Iterable[str] = (), extra_layers: Iterable[tuple[str, dict]] = ()) -> dict:
    """Resolve the full config of one run as a plain nested dict (see module docstring)."""
    spec = get_task(task)
    model = model or spec.default_model
    tree = schema_for(spec, model)
    schema = copy.deepcopy(tree)
    layers: list[tuple[str, dict]] = []
    exp = experiments_dir() / spec.name / f"{model}.yaml"
    if exp.is_file():
        layers.append((str(exp), load_yaml(exp)))
    layers.extend(extra_layers)
    if config_file is not None:
        layers.append((str(config_file), load_yaml(config_file)))
    layers.append(("command line", parse_overrides(overrides)))
    for source, layer in layers:
        _check_reserved(layer, source)
        _validate_layer(tree, layer, source)
        tree = deep_merge(tree, layer)
    tree = _interpolate(tree)
    _validate_layer(schema, tree, "interpolation")
    check_values(tree)
    return tree


def _interpolate(tree: dict) -> dict:
    """Resolve OmegaConf interpolations such as ``data.n_val: ${data.n_test}`` (data only:
    custom resolvers are not registered, so nothing is executed)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    try:
        return OmegaConf.to_container(OmegaConf.create(tree), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot resolve config interpolation: {str(exc).splitlines()[0]}") from None


def check_values(cfg: dict) -> None:
    if cfg["logger"] not in LOGGERS:
        raise ConfigError(f"logger={cfg['logger']!r} is not known; choose one of {', '.join(LOGGERS)}")
    if not isinstance(cfg["seed"], int) or cfg["seed"] < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg['seed']!r}")
    for k in ("n_train", "n_val", "n_test", "batch_size"):
        v = cfg["data"].get(k)
        if isinstance(v, int) and v < 1:
            raise ConfigError(f"data.{k} must be >= 1, got {v}")
    if cfg["optim"]["lr"] <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg['optim']['lr']}")


#: keys that do not change what a run computes: left out of the experiment hash
BOOKKEEPING_KEYS = ("seed", "resume", "logger", "plots", "num_threads", "trainer.enable_progress_bar",
                    "trainer.log_every_n_steps", "data.num_workers")


def config_hash(cfg: dict, ignore: Iterable[str] = ("resume",)) -> str:
    """Stable hash of a resolved config without the dotted keys in ``ignore``.

    ``config_hash(cfg, BOOKKEEPING_KEYS)`` identifies an *experiment*: the runs of all
    its seeds share it (the results store and leaderboard group by it).
    """
    body = copy.deepcopy(cfg)
    for key in ignore:
        *parents, leaf = key.split(".")
        node = body
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def to_yaml(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
