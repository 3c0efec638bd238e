"""Benchmark registry: which tasks exist, their models, defaults and primary metric.

Tasks are registered lazily with ``"module:attr"`` strings so that ``cosmobench list``
imports neither torch-heavy task code nor optional packages (e2cnn, sbi).

Built-in tasks register in :mod:`cosmobench.tasks` (a light module). Third-party
packages add tasks, models or networks through the entry-point group ``cosmobench.plugins``:
each entry point names a zero-argument callable that calls :func:`register_task`,
:func:`register_model` or imports a module using :func:`cosmobench.nn.register_net`.
"""
from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from cosmobench.errors import ConfigError

PLUGIN_GROUP = "cosmobench.plugins"


@dataclass
class TaskSpec:
    """One science task: names, classes and the metric that ranks it. Its settings are not
    here: they are declared once, beside the code that owns them (:mod:`cosmobench.settings`),
    and named by ``"module:Class"`` references.

    Attributes:
        name: task name used on the command line.
        datamodule, module: ``"module:Class"`` of the task's LightningDataModule and LightningModule.
        data: ``"module:Class"`` of the settings dataclass of the ``data`` node (the datamodule's;
            it embeds its simulator's settings by inheritance).
        evaluation: ``"module:Class"`` of the ``eval`` node's settings (the metric protocol), or None.
        nets: a network kind of :mod:`cosmobench.nn` (``"image_classifier"`` ...): every network
            registered with that kind is a model of the task.
        net_settings: ``"module:Class"`` of settings the task adds to the ``model`` node of each
            of its networks (e.g. its training recipe), or None.
        own_models: model name -> ``"module:Class"`` of its settings (None: no settings), for
            models that are not networks of ``nets`` (classical baselines, sbi's estimators).
        primary_metric, mode: the leaderboard's ranking metric and whether ``"min"`` or ``"max"`` is better.
        default_model: model of ``cosmobench train TASK`` without ``-m`` (default: the first).
        default_models: models run by ``cosmobench bench`` without a model list (default: all).
        description: one line for ``cosmobench list``.
        baseline: the classical baseline model every other model is tested against, paired by seed.
        metric_modes: metric name -> ``"min"``, ``"max"`` or ``"zero"`` (best at 0, e.g. a bias)
            for names without a built-in direction (:data:`cosmobench.leaderboard.METRIC_MODES`).
        headline: up to four metrics shown next to the primary one in the leaderboard's glance view.
        renamed: old dotted key -> new dotted key (None: removed), so that configs of finished runs still load.
        experiments: package whose folder holds ``<task>/defaults.yaml`` and ``<task>/<model>.yaml``
            (the task's choices of values, applied over the declared defaults); None: cosmobench's
            ``experiments/``. For plugins.
    """

    name: str
    datamodule: str
    module: str
    data: str
    primary_metric: str
    mode: str = "min"
    evaluation: str | None = None
    nets: str | None = None
    net_settings: str | None = None
    own_models: dict[str, str | None] = field(default_factory=dict)
    default_model: str | None = None
    default_models: list[str] | None = None
    description: str = ""
    baseline: str | None = None
    metric_modes: dict[str, str] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    experiments: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"task {self.name!r}: mode must be 'min' or 'max', got {self.mode!r}")
        if self.nets is None and not self.own_models:
            raise ValueError(f"task {self.name!r} registers no models")
        for ref in (self.datamodule, self.module, self.data):
            if ":" not in ref:
                raise ValueError(f"task {self.name!r}: {ref!r} is not of the form 'module:attr'")
        bad = {k: v for k, v in self.metric_modes.items() if v not in ("min", "max", "zero")}
        if bad:
            raise ValueError(f"task {self.name!r}: metric_modes must be 'min', 'max' or 'zero', got {bad}")
        if len(self.headline) > 4:
            raise ValueError(f"task {self.name!r}: at most 4 headline metrics, got {self.headline}")

    @property
    def models(self) -> dict[str, list[str]]:
        """Model name -> ``"module:Class"`` refs of the settings of its ``model`` node, in order:
        the networks of kind ``nets``, then the task's own models."""
        from cosmobench.nn import registered_nets
        out: dict[str, list[str]] = {}
        if self.nets is not None:
            for name, entry in registered_nets(self.nets).items():
                out[name] = [entry.config] + ([self.net_settings] if self.net_settings else [])
        for name, ref in self.own_models.items():
            out[name] = [ref] if ref else []
        return out

    def model_or_default(self, model: str | None) -> str:
        """``model``, or the task's default model; ConfigError for an unknown one."""
        models = self.models
        model = model or self.default_model or next(iter(self.default_models or models))
        if model not in models:
            raise ConfigError(f"task {self.name!r} has no model {model!r}; choose one of {', '.join(models)}")
        return model

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


def register_task(name: str, datamodule: str, module: str, data: str, primary_metric: str,
                  replace: bool = False, **kwargs) -> TaskSpec:
    """Register a task (keyword arguments: the :class:`TaskSpec` attributes; ``models`` is
    accepted for ``own_models``). Registering an existing name is an error unless ``replace``."""
    if name in _TASKS and not replace:
        raise ValueError(f"task {name!r} is already registered")
    if "models" in kwargs:
        kwargs["own_models"] = kwargs.pop("models")
    spec = TaskSpec(name=name, datamodule=datamodule, module=module, data=data,
                    primary_metric=primary_metric, **copy.deepcopy(kwargs))
    _TASKS[name] = spec
    return spec


def register_model(task: str, name: str, settings: str | None = None, replace: bool = False) -> None:
    """Add a model to a registered task; ``settings``: ``"module:Class"`` of its settings dataclass
    (a network usable by several tasks is registered in :mod:`cosmobench.nn` instead)."""
    spec = _TASKS.get(task)
    if spec is None:
        raise ValueError(f"cannot add model {name!r}: unknown task {task!r}")
    if name in spec.models and not replace:
        raise ValueError(f"model {name!r} is already registered for task {task!r}")
    spec.own_models[name] = settings


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
