"""Benchmark registry: which tasks exist, their models, defaults and primary metric.

Tasks are registered lazily with ``"module:attr"`` strings so that ``cosmobench list``
imports neither torch-heavy task code nor optional packages (e2cnn, sbi).

Built-in tasks register in :mod:`cosmobench.tasks` (a light module). Third-party
packages add tasks or models through the entry-point group ``cosmobench.plugins``:
each entry point names a zero-argument callable that calls :func:`register_task`
or :func:`register_model`.
"""
from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from cosmobench.errors import ConfigError

PLUGIN_GROUP = "cosmobench.plugins"


@dataclass
class TaskSpec:
    """One science task.

    Attributes:
        name: task name used on the command line.
        datamodule: ``"module:Class"`` of the task's LightningDataModule.
        module: ``"module:Class"`` of the task's LightningModule.
        models: model name -> partial config tree applied on top of ``defaults``;
            its ``model`` node holds the model's hyper-parameters.
        defaults: partial config tree (``data``, ``trainer``, ``optim`` ...) shared by all models.
        primary_metric: metric that ranks the leaderboard.
        mode: ``"min"`` or ``"max"``: whether smaller or larger ``primary_metric`` is better.
        default_models: models run by ``make run`` / ``cosmobench bench`` (default: all).
        description: one line for ``cosmobench list``.
        baseline: the task's classical baseline model; the leaderboard tests every other
            model against it, paired by seed.
        metric_modes: metric name -> ``"min"``, ``"max"`` or ``"zero"`` (best at 0, e.g. a
            bias): the leaderboard's direction arrows; common names have built-in directions
            (:data:`cosmobench.leaderboard.METRIC_MODES`).
        constraints: dotted key -> value constraint (``"positive int"``, ``"probability"``,
            ``["sim", "catalog"]`` ...; syntax in :mod:`cosmobench.constraints`) for any
            key of any model of the task; a key a model does not have is skipped.
        model_constraints: model name -> {dotted key: constraint}, for keys whose meaning
            differs between models (these win over ``constraints``).
    """

    name: str
    datamodule: str
    module: str
    models: dict[str, dict[str, Any]]
    primary_metric: str
    mode: str = "min"
    defaults: dict[str, Any] = field(default_factory=dict)
    default_models: list[str] | None = None
    description: str = ""
    baseline: str | None = None
    metric_modes: dict[str, str] = field(default_factory=dict)
    constraints: dict[str, Any] = field(default_factory=dict)
    model_constraints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"task {self.name!r}: mode must be 'min' or 'max', got {self.mode!r}")
        if not self.models:
            raise ValueError(f"task {self.name!r} registers no models")
        for ref in (self.datamodule, self.module):
            if ":" not in ref:
                raise ValueError(f"task {self.name!r}: {ref!r} is not of the form 'module:attr'")
        if self.baseline is not None and self.baseline not in self.models:
            raise ValueError(f"task {self.name!r}: baseline {self.baseline!r} is not one of its models")
        bad = {k: v for k, v in self.metric_modes.items() if v not in ("min", "max", "zero")}
        if bad:
            raise ValueError(f"task {self.name!r}: metric_modes must be 'min', 'max' or 'zero', got {bad}")
        from cosmobench.constraints import parse_all  # a malformed constraint fails at registration
        self.constraints = parse_all(self.constraints, f"task {self.name!r}")
        self.model_constraints = {m: parse_all(c, f"task {self.name!r} model {m!r}")
                                  for m, c in self.model_constraints.items()}

    def constraints_for(self, model: str) -> dict:
        """Dotted key -> :class:`~cosmobench.constraints.Constraint` for one model."""
        return {**self.constraints, **self.model_constraints.get(model, {})}

    @property
    def default_model(self) -> str:
        return (self.default_models or list(self.models))[0]

    def bench_models(self) -> list[str]:
        return list(self.default_models or self.models)

    def load_module_class(self):
        return load_ref(self.module)

    def load_datamodule_class(self):
        return load_ref(self.datamodule)


_TASKS: dict[str, TaskSpec] = {}
_LOADED = False


def load_ref(ref: str):
    """Import ``"package.module:attr"`` and return the attribute."""
    mod_name, _, attr = ref.partition(":")
    module = importlib.import_module(mod_name)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ImportError(f"{mod_name!r} has no attribute {attr!r}") from exc


def register_task(name: str, datamodule: str, module: str, models: dict[str, dict],
                  primary_metric: str, mode: str = "min", defaults: dict | None = None,
                  default_models: list[str] | None = None, description: str = "",
                  baseline: str | None = None, metric_modes: dict[str, str] | None = None,
                  constraints: dict[str, Any] | None = None,
                  model_constraints: dict[str, dict[str, Any]] | None = None,
                  replace: bool = False) -> TaskSpec:
    """Register a task. Registering an existing name is an error unless ``replace``.
    ``constraints``/``model_constraints``: value constraints of config keys (see :class:`TaskSpec`)."""
    if name in _TASKS and not replace:
        raise ValueError(f"task {name!r} is already registered")
    spec = TaskSpec(name=name, datamodule=datamodule, module=module,
                    models=copy.deepcopy(models), primary_metric=primary_metric, mode=mode,
                    defaults=copy.deepcopy(defaults or {}), default_models=default_models,
                    description=description, baseline=baseline, metric_modes=dict(metric_modes or {}),
                    constraints=dict(constraints or {}),
                    model_constraints=copy.deepcopy(model_constraints or {}))
    _TASKS[name] = spec
    return spec


def register_model(task: str, name: str, config: dict, replace: bool = False,
                   constraints: dict[str, Any] | None = None) -> None:
    """Add a model (partial config tree with a ``model`` node) to a registered task;
    ``constraints``: value constraints of its keys (see :class:`TaskSpec`)."""
    spec = _TASKS.get(task)
    if spec is None:
        raise ValueError(f"cannot add model {name!r}: unknown task {task!r}")
    if name in spec.models and not replace:
        raise ValueError(f"model {name!r} is already registered for task {task!r}")
    from cosmobench.constraints import parse_all
    parsed = parse_all(constraints, f"task {task!r} model {name!r}")
    spec.models[name] = copy.deepcopy(config)
    spec.model_constraints[name] = parsed


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    importlib.import_module("cosmobench.tasks")  # built-ins register themselves
    for ep in entry_points(group=PLUGIN_GROUP):
        hook = ep.load()
        hook()


def list_tasks() -> list[TaskSpec]:
    _load()
    return [_TASKS[k] for k in sorted(_TASKS)]


def get_task(name: str) -> TaskSpec:
    _load()
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(_TASKS))}") from None
