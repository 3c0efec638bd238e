"""Networks by architecture (not by task), registered once with :func:`register_net`.

A network module declares its hyper-parameters as a settings dataclass
(:mod:`cosmobench.settings`) and registers the class (or factory) beside it::

    @dataclass
    class SmallCNNConfig:
        channels: list[int] = setting([24, 48, 96], "nonempty list[positive int]", help="...")

    @register_net("cnn", SmallCNNConfig, kind="image_classifier")
    class SmallCNN(nn.Module):
        def __init__(self, cfg: SmallCNNConfig, *, n_bands: int, n_classes: int, image_size: int): ...

The constructor takes the config object and the data-dependent ``shape`` keywords of its
``kind``. Every task that asks for a kind (``register_task(nets=KIND)``) offers every network
of that kind as a model, so a new architecture is one new file here (plus its test).

Kinds and their shape keywords:

======================  ===========================================  =================================
kind                    shape keywords                               input -> output
======================  ===========================================  =================================
``image_classifier``    ``n_bands``, ``n_classes``, ``image_size``   ``(B, C, H, W)`` -> logits ``(B, K)``
``tabular_density``     ``in_features``, ``loc``, ``scale``          ``(B, F)`` -> mixture ``(B, K)`` x 3
``image_to_image``      ``in_channels``, ``out_channels``            ``(B, C, H, W)`` -> ``(B, C', H, W)``
``deblender``           ``n_bands``                                  see :mod:`cosmobench.nn.deblender`
``detector``            ``n_bands``                                  scene -> centre heat map (:mod:`cosmobench.nn.detector`)
======================  ===========================================  =================================

Listing the networks does not import them: the ``@register_net`` decorators of this
package's modules are read from their source (:func:`registered_nets`), and torch, e2cnn and
torchvision load only when a network is built. Plugins call :func:`register_net` at import.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

KINDS = ("image_classifier", "tabular_density", "image_to_image", "deblender", "detector")


@dataclass(frozen=True)
class NetEntry:
    """A registered network: ``ref`` and ``config`` are ``"module:attr"`` of the class (or
    factory) and of its settings dataclass."""

    name: str
    ref: str
    config: str
    kind: str


_RUNTIME: dict[tuple[str, str], NetEntry] = {}  # (kind, name) -> entry: kinds separate equal names


def register_net(name: str, config: type, *, kind: str):
    """Class decorator registering a network ``name`` of ``kind`` with its settings dataclass."""
    if kind not in KINDS:
        raise ValueError(f"network {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def deco(obj):
        _RUNTIME[(kind, name)] = NetEntry(name, f"{obj.__module__}:{obj.__qualname__}",
                                  f"{config.__module__}:{config.__qualname__}", kind)
        return obj
    return deco


def _literal(node: ast.AST) -> Any:
    return ast.literal_eval(node)


@functools.lru_cache(maxsize=1)
def _scanned() -> dict[tuple[str, str], NetEntry]:
    """``@register_net`` entries of this package's modules, read from their source."""
    out: dict[tuple[str, str], NetEntry] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = f"{__name__}.{path.stem}"
        text = path.read_text(encoding="utf-8")
        if "@register_net(" not in text:
            continue
        for node in ast.parse(text, filename=str(path)).body:
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "register_net":
                    name, cfg = _literal(dec.args[0]), dec.args[1]
                    kind = _literal(next(k.value for k in dec.keywords if k.arg == "kind"))
                    out[(kind, name)] = NetEntry(name, f"{module}:{node.name}", f"{module}:{ast.unparse(cfg)}", kind)
    return out


def registered_nets(kind: str | None = None) -> dict[str, NetEntry]:
    """Registered networks of ``kind`` by name, in registration order: this package's, then
    plugins'. Networks of different kinds may share a name (``unet``); ``kind=None`` lists
    every entry, a shared name as ``kind:name``."""
    nets = {**_scanned(), **_RUNTIME}
    if kind is not None:
        return {n: e for (k, n), e in nets.items() if k == kind}
    names = [n for _, n in nets]
    return {(n if names.count(n) == 1 else f"{k}:{n}"): e for (k, n), e in nets.items()}


def _entry(name: str, kind: str | None) -> NetEntry:
    from cosmobench.errors import ConfigError
    nets = registered_nets(kind)
    if kind is None and name not in nets:
        shared = [e for e in nets.values() if e.name == name]
        if shared:
            raise ConfigError(f"network {name!r} exists in kinds {', '.join(e.kind for e in shared)}: pass kind=")
    if name not in nets:
        raise ConfigError(f"no network {name!r}; registered: {', '.join(nets)}")
    return nets[name]


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def net_config_class(name: str, kind: str | None = None) -> type:
    return _load(_entry(name, kind).config)


def build_net(name: str, cfg: Mapping[str, Any], *, kind: str | None = None, **shape):
    """Network ``name`` (of ``kind``; needed when networks of two kinds share the name) from
    the resolved ``model`` config node ``cfg`` (its keys that the network's settings dataclass
    declares; other keys belong to the task) and the data ``shape`` keywords of its kind."""
    from cosmobench.settings import build
    entry = _entry(name, kind)
    return _load(entry.ref)(build(_load(entry.config), cfg), **shape)


def config_dict(cfg) -> dict[str, Any]:
    """A settings dataclass as a plain dict (for logging and hyper-parameters)."""
    return dataclasses.asdict(cfg)


def count_parameters(net) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["KINDS", "NetEntry", "register_net", "registered_nets", "net_config_class", "build_net",
           "config_dict", "count_parameters"]
