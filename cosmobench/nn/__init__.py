"""Networks by architecture (not by task), chosen by name through :data:`NETS`.

===============  =========================================  =====================================
name             class / factory                            inputs -> outputs
===============  =========================================  =====================================
``cnn``          :class:`cosmobench.nn.cnn.SmallCNN`         ``(B, C, H, W)`` -> logits ``(B, K)``
``e2cnn``        :class:`cosmobench.nn.equivariant.E2CNN`    ``(B, C, H, W)`` -> logits ``(B, K)``
``resnet18``     :func:`cosmobench.nn.resnet.resnet18`       ``(B, C, H, W)`` -> logits ``(B, K)``
``mdn``          :class:`cosmobench.nn.mdn.MDN`              ``(B, F)`` -> mixture ``(B, K)`` x 3
``unet``         :class:`cosmobench.nn.unet.UNet`            ``(B, C, H, W)`` -> ``(B, C', H, W)``
===============  =========================================  =====================================

Entries are ``"module:attr"`` strings, imported on first use, so importing this package is
cheap and e2cnn/torchvision load only for the models that need them. A task builds its network
with ``build_net(name, model_cfg, **shape)``: ``model_cfg`` is the resolved ``model`` config
node (its keys, except ``name``, are the constructor's keyword arguments; their defaults live
in the task's registration, not in the constructors) and ``shape`` the data-dependent
arguments (e.g. ``n_bands``, ``n_classes``, ``image_size``). A task that reuses a network under
its own model name registers the same keys; a new architecture is one new module here plus one
line in :data:`NETS`.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Iterable, Mapping

NETS: dict[str, str] = {
    "cnn": "cosmobench.nn.cnn:SmallCNN",
    "e2cnn": "cosmobench.nn.equivariant:E2CNN",
    "resnet18": "cosmobench.nn.resnet:resnet18",
    "mdn": "cosmobench.nn.mdn:MDN",
    "unet": "cosmobench.nn.unet:UNet",
}


def net_class(name: str, choices: Iterable[str] | None = None):
    """The class (or factory) registered as ``name`` in :data:`NETS`; ConfigError if unknown
    or not among ``choices`` (the task's models)."""
    from cosmobench.errors import ConfigError
    allowed = list(choices) if choices is not None else list(NETS)
    if name not in allowed or name not in NETS:
        raise ConfigError(f"no model {name!r}; choose one of {', '.join(allowed)}")
    module, attr = NETS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_net(name: str, cfg: Mapping[str, Any], choices: Iterable[str] | None = None, **shape):
    """Network ``name`` built from the model config node ``cfg`` and the data ``shape`` kwargs.

    Every keyword the constructor needs must be in ``cfg`` or ``shape``; an unknown or missing
    key is a ConfigError naming it."""
    from cosmobench.errors import ConfigError
    cls = net_class(name, choices)
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ConfigError(f"model {name!r} has no setting model.{unknown[0]}; "
                              f"settings: {', '.join(k for k in params if k not in shape)}")
    missing = [k for k, p in params.items() if p.default is p.empty and p.kind is not p.VAR_KEYWORD
               and p.kind is not p.VAR_POSITIONAL and k not in kwargs and k not in shape]
    if missing:
        raise ConfigError(f"model {name!r} needs model.{missing[0]} (set it in the task's registered defaults)")
    return cls(**shape, **kwargs)


def count_parameters(net) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["NETS", "net_class", "build_net", "count_parameters"]
