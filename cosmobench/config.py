"""Configuration: layering and validation (see ``docs/ARCHITECTURE.md``, "Configuration").

The schema of a (task, model) run is derived from the declared settings
(:mod:`cosmobench.settings`) of its owners: the run itself (:class:`RunSettings`,
:class:`EarlyStopping`), the optimiser (:class:`cosmobench.task.OptimSettings`), the task's
``data`` and ``eval`` settings and the model's (its network's, plus the task's recipe for its
networks), and every settable ``pl.Trainer`` argument. Layers, later wins::

    declared defaults <- experiments/<task>/defaults.yaml <- experiments/<task>/<model>.yaml
        <- user YAML (-c) <- dotlist overrides (key=value ...)

Every key a layer sets must be declared (an unknown key is a :class:`~cosmobench.errors.ConfigError`
that names the key and suggests the closest valid one). Values are checked against the key's
constraint (for ``trainer.*`` the annotations of ``pl.Trainer.__init__``); keys without a
constraint must have the type of their default (``int`` is accepted where a ``float`` is
expected; a ``None`` default accepts any value). Every float must be finite. Resolving reads
the declarations from source and the Trainer's signature from a cache (one per installed
Lightning version), so it imports neither torch nor Lightning.

Values may use plain OmegaConf interpolation (``${data.n_test}``), resolved after merging.
Configs are data only: no code is evaluated, no resolver runs (``${oc.env:...}`` and any
other ``${name:...}`` are rejected: configs never read the environment), and YAML input is
bounded in size and in alias expansion.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import importlib.util
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from cosmobench import constraints as K
from cosmobench.errors import ConfigError
from cosmobench.registry import TaskSpec, get_task
from cosmobench.settings import Setting, declared, setting
from cosmobench.trainer_settings import (TRAINER_DEFAULTS, TRAINER_RESERVED, trainer_kwargs,  # noqa: F401
                                         trainer_schema, trainer_unsettable_reason)
from cosmobench.yaml_io import MAX_YAML_BYTES, MAX_YAML_NODES, load_yaml, load_yaml_text  # noqa: F401

log = logging.getLogger(__name__)

LOGGERS = ("wandb", "csv", "tensorboard", "none")


@dataclass
class RunSettings:
    """Top-level settings of a run (owned by :mod:`cosmobench.runner`)."""

    seed: int = setting(0, "non-negative int", help="drives the simulators, splits, initialisation and augmentation")
    resume: str | None = setting(None, "str or null",
                                 help="'last' (latest unfinished run of this config) or a .ckpt path")
    logger: Any = setting("wandb", "one of wandb, csv, tensorboard, none or "
                                   "nonempty list[one of wandb, csv, tensorboard, none]",
                          help="experiment logger(s); W&B runs offline unless WANDB_MODE says otherwise")
    plots: bool = setting(True, "bool", help="write the task's test plots (PNG) into the run directory")
    num_threads: int | None = setting(None, "positive int or null",
                                      help="torch CPU threads per process (null: torch's default, split over DDP ranks)")


@dataclass
class EarlyStopping:
    """Early stopping of the training loop (Lightning's ``EarlyStopping`` callback)."""

    enabled: bool = setting(False, "bool", help="stop when the monitored loss stops improving")
    monitor: str = setting("val_loss", ["val_loss", "train_loss"], help="the loss to watch (BaseTask logs both)")
    patience: int = setting(5, "non-negative int", unit="epochs", help="epochs without improvement before stopping")
    min_delta: float = setting(0.0, "non-negative float", help="smallest change that counts as an improvement")


#: the owners of the settings every task has: node -> "module:Class"
COMMON_SETTINGS = {"": "cosmobench.config:RunSettings", "optim": "cosmobench.task:OptimSettings",
                   "early_stopping": "cosmobench.config:EarlyStopping"}

#: Logger -> (packages any of which provides it, install hint).
LOGGER_PACKAGES = {"wandb": (("wandb",), "pip install wandb"),
                   "tensorboard": (("tensorboard", "tensorboardX"), "pip install tensorboard")}

#: keys whose value may not be set by a user layer (they are chosen by the CLI)
_RESERVED = ("task", "model.name")

def experiments_dir(spec: TaskSpec | None = None) -> Path:
    """Folder of experiment configs: cosmobench's shipped ``experiments/`` (suites and the
    built-in tasks' ``<task>/*.yaml``), or the package a plugin task names in
    :attr:`TaskSpec.experiments`."""
    package = spec.experiments if spec is not None and spec.experiments else "cosmobench.experiments"
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"experiment folder {package!r} of task {spec.name if spec else ''!r} is not a package")
    return Path(list(found.submodule_search_locations)[0])


def declared_settings(spec: TaskSpec, model: str) -> dict[str, Setting]:
    """Dotted key -> declared :class:`~cosmobench.settings.Setting` of a (task, model) run,
    without the ``trainer.*`` keys. A key declared by two owners is an error of the code."""
    nodes = [(node, [ref]) for node, ref in COMMON_SETTINGS.items()]
    nodes += [("data", [spec.data]), ("eval", [spec.evaluation] if spec.evaluation else []),
              ("model", spec.models[model])]
    out: dict[str, Setting] = {}
    for node, refs in nodes:
        for ref in refs:
            for name, s in declared(ref).items():
                key = f"{node}.{name}" if node else name
                if key in out:
                    raise ValueError(f"{spec.name}/{model}: {key} is declared twice, by {out[key].owner} "
                                     f"and {s.owner}")
                out[key] = s
    return out


def default_tree(spec: TaskSpec, model: str) -> dict:
    """Declared defaults of a (task, model) run as a nested dict (``trainer`` included)."""
    tree: dict[str, Any] = {"task": spec.name, "model": {"name": model}, "data": {}}
    if spec.evaluation:
        tree["eval"] = {}
    for key, s in declared_settings(spec, model).items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = copy.deepcopy(s.default)
    tree["trainer"] = dict(trainer_schema()[0])
    return tree


def constraints_for(spec: TaskSpec, model: str) -> dict[str, K.Constraint]:
    """Dotted key -> constraint for (task, model): declared settings and the Trainer's."""
    checks = dict(trainer_schema()[1])
    for key, s in declared_settings(spec, model).items():
        if s.check is not None:
            try:
                checks[key] = K.parse(s.check)
            except ValueError as exc:
                raise ValueError(f"{s.owner}: constraint of {key!r}: {exc}") from None
    return checks


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return K.is_number(value)
    if isinstance(default, int):
        return K.is_int(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "..."


#: common names from other tools, suggested when they are used as keys
_ALIASES = {"learning_rate": "lr", "epochs": "max_epochs", "gpus": "devices", "batchsize": "batch_size",
            "n_epochs": "max_epochs", "workers": "num_workers", "optimizer": "name"}

#: a plain interpolation: ``${key.path}``, ``${.sibling}``, ``${list_key[0]}``
_PLAIN_INTERP = re.compile(r"\$\{\.*[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\d+\])*\}")


def _check_interpolation(path: str, value: str, source: str) -> None:
    if "${" in _PLAIN_INTERP.sub("", value) or "\\" in value:
        raise ConfigError(f"{path}={_short(value)} (from {source}): only plain ${{key.path}} interpolation "
                          f"is allowed; resolvers such as ${{oc.env:...}} are rejected (configs never read the "
                          f"environment or run code)")


def _scan_interpolations(path: str, value: Any, source: str) -> bool:
    """Reject resolver calls anywhere in ``value`` (keys of mappings too); whether it holds
    a plain interpolation (then its value is checked once resolved)."""
    if isinstance(value, str):
        if "${" in value:
            _check_interpolation(path, value, source)
            return True
        return False
    found = False
    if isinstance(value, list):
        for i, v in enumerate(value):
            found |= _scan_interpolations(f"{path}[{i}]", v, source)
    elif isinstance(value, dict):
        for k, v in value.items():
            found |= _scan_interpolations(f"{path}.{k}", k, source) | _scan_interpolations(f"{path}.{k}", v, source)
    return found


def _check_leaf(path: str, default: Any, value: Any, check: K.Constraint | None, source: str) -> None:
    if _scan_interpolations(path, value, source):
        return  # checked after interpolation
    if K.non_finite(value):
        raise ConfigError(f"invalid value {path}={_short(value)} (from {source}): configs hold finite numbers only")
    if check is not None:
        if not check.ok(value):
            raise ConfigError(f"invalid value {path}={_short(value)} (from {source}): must be {check.text}")
    elif not _type_ok(default, value):
        raise ConfigError(f"config key '{path}' (from {source}) expects {type(default).__name__}, "
                          f"got {type(value).__name__} {_short(value)}")


def _validate_layer(schema: dict, layer: dict, source: str, checks: dict[str, K.Constraint] | None = None,
                    prefix: str = "") -> None:
    checks = checks or {}
    for k, v in layer.items():
        path = f"{prefix}{k}"
        if k not in schema:
            if prefix == "trainer." and isinstance(k, str):
                reason = trainer_unsettable_reason(k)
                if reason:
                    raise ConfigError(f"'{path}' (from {source}) cannot be set: {reason}")
            valid = [str(x) for x in schema]
            close = [_ALIASES[k]] if _ALIASES.get(k) in schema else difflib.get_close_matches(str(k), valid, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            listing = ", ".join(sorted(valid))
            raise ConfigError(f"unknown config key '{path}' (from {source}){hint} valid keys here: "
                              f"{listing if len(listing) < 600 else listing[:600] + ' ...'}")
        d = schema[k]
        if isinstance(d, dict) and isinstance(v, dict):
            _validate_layer(d, v, source, checks, path + ".")
        else:
            _check_leaf(path, d, v, checks.get(path), source)


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
    if text == "":
        return ""
    try:
        return load_yaml_text(text, "override value")
    except ConfigError:
        return text


def parse_overrides(overrides: Iterable[str]) -> dict:
    """``["a.b=1", "c=[x,y]"]`` -> nested dict. Raises ConfigError on malformed items."""
    tree: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {_short(item)} is not of the form key=value")
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {_short(item)} conflicts with an earlier override")
        node[parts[-1]] = parse_value(value)
    return tree


def _check_reserved(layer: dict, source: str) -> None:
    if "task" in layer:
        raise ConfigError(f"'task' cannot be set in {source}: give the task on the command line")
    if isinstance(layer.get("model"), dict) and "name" in layer["model"]:
        raise ConfigError(f"'model.name' cannot be set in {source}: choose the model with -m MODEL")


def apply_renames(spec: TaskSpec, layer: dict, source: str, schema: dict) -> dict:
    """A layer with the task's renamed keys (:attr:`TaskSpec.renamed`) moved to their new
    place, or dropped where the key was removed (``None``) or its new place does not exist for
    this model; one warning per key (configs of runs finished before a rename still load)."""
    if not spec.renamed:
        return layer
    layer = copy.deepcopy(layer)
    for old, new in spec.renamed.items():
        *parents, leaf = old.split(".")
        node = layer
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        if new is None:
            log.warning("%s: config key %s was removed; its value %s is ignored", source, old, _short(value))
            continue
        *new_parents, new_leaf = new.split(".")
        place = schema
        for p in new_parents:
            place = place.get(p, {}) if isinstance(place, dict) else {}
        if new_leaf not in place:
            log.warning("%s: config key %s is now %s, which model %s does not have; ignored", source, old, new,
                        schema["model"]["name"])
            continue
        target = layer
        for p in new_parents:
            target = target.setdefault(p, {})
        target[new_leaf] = value
        log.warning("%s: config key %s is now %s", source, old, new)
    return layer


def resolve(task: str, model: str | None = None, config_file: str | Path | None = None,
            overrides: Iterable[str] = (), extra_layers: Iterable[tuple[str, dict]] = ()) -> dict:
    """Resolve the full config of one run as a plain nested dict (see module docstring)."""
    spec = get_task(task)
    model = spec.model_or_default(model)
    auto: list[tuple[str, dict]] = []  # read first: a bad file fails before anything else
    for name in ("defaults", model):
        exp = experiments_dir(spec) / spec.name / f"{name}.yaml"
        if exp.is_file():
            auto.append((str(exp), load_yaml(exp)))
    under = list(extra_layers)  # a checkpoint's run config: user layers, but under a data set named later
    user = list(under)
    if config_file is not None:
        user.append((str(config_file), load_yaml(config_file)))
    user.append(("command line", parse_overrides(overrides)))
    schema = default_tree(spec, model)
    checks = constraints_for(spec, model)
    tree = _merge_layers(spec, schema, auto + user, checks)
    dataset = tree["data"]["dataset"] if "dataset" in tree["data"] else None
    if dataset:  # the data set's loader keys: over the task's choices, under the user's (and a checkpoint's
        # run config, unless the data set is not the run's: then over it)
        if under and _merge_layers(spec, schema, auto + under, checks)["data"].get("dataset") == dataset:
            under = []
        tree = _merge_layers(spec, schema, auto + under + [dataset_layer(spec, dataset)] + user[len(under):], checks)
    tree = _interpolate(tree)
    _validate_layer(schema, tree, "resolved config", checks)
    check_values(tree)
    return tree


def _merge_layers(spec: TaskSpec, schema: dict, layers: list[tuple[str, dict]], checks: dict) -> dict:
    tree = copy.deepcopy(schema)
    for source, layer in layers:
        _check_reserved(layer, source)
        layer = apply_renames(spec, layer, source, schema)
        _validate_layer(tree, layer, source, checks)
        tree = deep_merge(tree, layer)
    return tree


def dataset_layer(spec: TaskSpec, name: str) -> tuple[str, dict]:
    """The layer a named data set contributes (``data.dataset=NAME``): its loader keys with its
    files' cached paths. Not cached: a one-line InputError naming ``cosmobench data fetch NAME``."""
    from cosmobench.datasets.catalog import get_dataset
    from cosmobench.datasets.download import loader_config
    ds = get_dataset(name)
    if ds.task != spec.name:
        raise ConfigError(f"data.dataset={name!r} is a data set of task {ds.task!r}, not {spec.name!r} "
                          f"(`cosmobench data list`)")
    return f"data set {name}", {"data": loader_config(ds)}


def _interpolate(tree: dict) -> dict:
    """Resolve plain OmegaConf interpolations such as ``data.n_val: ${data.n_test}``
    (resolver calls were rejected per layer, so nothing is executed or read)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    try:
        return OmegaConf.to_container(OmegaConf.create(tree), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot resolve config interpolation: {str(exc).splitlines()[0]}") from None


def _have_package(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_values(cfg: dict) -> None:
    """Checks that involve several keys or the environment (single values were checked
    against their constraints already)."""
    loggers = cfg["logger"] if isinstance(cfg["logger"], list) else [cfg["logger"]]
    for kind in loggers:
        packages, hint = LOGGER_PACKAGES.get(kind, ((), ""))
        if packages and not any(_have_package(p) for p in packages):
            raise ConfigError(f"logger={kind} needs the package {packages[0]!r}, which is not installed: {hint}")
    o, t = cfg["optim"], cfg["trainer"]
    if o["warmup_epochs"] and o["warmup_steps"]:
        raise ConfigError("set optim.warmup_epochs or optim.warmup_steps, not both")
    if o["scheduler"] in ("cosine", "one-cycle", "step") and t["max_epochs"] == -1 and t["max_steps"] == -1:
        raise ConfigError(f"optim.scheduler={o['scheduler']} needs a finite training length: "
                          f"set trainer.max_epochs or trainer.max_steps")
    if o["scheduler"] == "cosine" and o["min_lr"] >= o["lr"]:
        raise ConfigError(f"optim.min_lr={o['min_lr']} must be below optim.lr={o['lr']} for the cosine schedule")


#: keys that do not change what a run computes: left out of the experiment hash
BOOKKEEPING_KEYS = ("seed", "resume", "logger", "plots", "num_threads", "trainer.enable_progress_bar",
                    "trainer.log_every_n_steps", "trainer.enable_model_summary", "trainer.enable_autolog_hparams",
                    "data.num_workers")


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
