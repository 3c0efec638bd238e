"""Initialising a network from another run's checkpoint or from published weights, and the
fine-tuning controls (frozen encoder, separate head learning rate).

Settings (:class:`TransferSettings`, added to the ``model`` node of every ``image_classifier``
network of ``morphology`` and ``lensfinding`` through the registration's ``net_settings``):

* ``model.init_from=CKPT``: any cosmobench checkpoint (same or other task; read with
  ``weights_only=True``) or a plain ``state_dict`` file. Tensors of ``net.*`` that match this
  network by **name and shape** are loaded; the others keep their fresh (seeded) initialisation.
  Rules (:func:`match_state`):

  - the classifier head (``head.*`` of ``cnn``/``e2cnn``, ``fc.*`` of ``resnet18``) is
    re-initialised when the shapes differ (another number of classes) **or** when the
    checkpoint's class names differ from this data's (same count, other meaning);
  - the stem (first convolution) is re-initialised when the number of bands differs (its
    weight has another input-channel count), so a 3-band simulator network can start a
    1-band or 5-band survey; every deeper layer is loaded;
  - image size never changes a tensor's shape (global pooling); images are centre-cropped
    (``data.crop``) and resized to ``data.image_size`` by the datamodule, so pretrain on the
    size you fine-tune at;
  - a checkpoint from which no encoder tensor loads (another architecture, or another
    ``model.channels``/``model.group``) cannot be bridged: ``ConfigError`` (exit 2).

* ``model.pretrained=imagenet``: torchvision's ``ResNet18_Weights.IMAGENET1K_V1`` for
  ``resnet18``, read from torch hub's cache (``$TORCH_HOME/hub/checkpoints``). It is never
  downloaded during a run: a missing file is ``ConfigError`` naming the URL and the path to
  put it at. The same name/shape rules apply (the 7x7 ImageNet stem loads only with 3 bands and
  ``model.stem_stride=4``; the 1000-class ``fc`` is always re-initialised).

* ``model.freeze_epochs=N``: the loaded encoder tensors take no optimizer step (and its batch
  norms keep their running statistics) for the first N epochs; the head and every
  re-initialised tensor train from the start.
* ``model.head_lr_factor=F``: the head's learning rate is ``F x optim.lr`` (the schedule
  scales both groups alike).

The outcome is logged and written to ``init.json`` in the run directory: ``loaded``,
``reinitialised`` (name, reason) and ``skipped`` (checkpoint tensors not used, with reason).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmobench.errors import ConfigError, InputError
from cosmobench.settings import setting

log = logging.getLogger(__name__)

INIT_FILE = "init.json"

#: published weights: name -> (network, torchvision weights enum, member)
PRETRAINED = {"imagenet": ("resnet18", "ResNet18_Weights", "IMAGENET1K_V1")}


@dataclass
class TransferSettings:
    """Initialisation and fine-tuning settings of an image classifier (module docstring)."""

    init_from: str | None = setting(None, "str or null",
                                    help="checkpoint (any run, any task) to initialise the network from "
                                         "(tensors matching by name and shape)")
    pretrained: str | None = setting(None, ["imagenet", None],
                                     help="published weights (imagenet: resnet18, torchvision's IMAGENET1K_V1, "
                                          "from torch hub's cache)")
    freeze_epochs: int = setting(0, "non-negative int", unit="epochs",
                                 help="epochs during which the loaded encoder is frozen (needs init_from or "
                                      "pretrained)")
    head_lr_factor: float = setting(1.0, "positive float", help="learning rate of the classifier head / optim.lr")


def head_prefix(net) -> str:
    """Parameter-name prefix of the classifier head: ``fc.`` (torchvision ResNet) or ``head.``."""
    if hasattr(net, "head"):
        return "head."
    if hasattr(net, "fc"):
        return "fc."
    raise ConfigError(f"{type(net).__name__} has no classifier head named 'head' or 'fc'")


def read_source(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``net`` tensors by name without the ``net.`` prefix, the checkpoint's ``data_info``)
    of a cosmobench checkpoint or a plain state_dict file, read with ``weights_only=True``."""
    import torch

    from cosmobench.checkpoints import one_line
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"model.init_from: checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is bad input
        raise InputError(f"model.init_from: cannot read {path} with weights_only=True: {one_line(exc)}") from None
    if not isinstance(obj, dict):
        raise InputError(f"model.init_from: {path} is not a checkpoint or a state_dict")
    info = {}
    if isinstance(obj.get("state_dict"), dict):  # a Lightning checkpoint of a cosmobench task
        info = dict((obj.get("hyper_parameters") or {}).get("data_info") or {})
        state = {k[4:]: v for k, v in obj["state_dict"].items() if k.startswith("net.")}
    else:
        state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError(f"model.init_from: {path} holds no network tensors")
    return state, info


def match_state(net_state: dict[str, Any], source: dict[str, Any], head: str,
                classes_differ: bool = False) -> dict[str, list]:
    """Which tensors of ``source`` initialise ``net_state`` (both name -> tensor): returns
    ``{"loaded": [name], "reinitialised": [[name, reason]], "skipped": [[name, reason]]}``."""
    loaded, reinit, skipped = [], [], []
    for name, t in net_state.items():
        if name not in source:
            reinit.append([name, "not in the checkpoint"])
        elif tuple(source[name].shape) != tuple(t.shape):
            reinit.append([name, f"shape {tuple(source[name].shape)} in the checkpoint, {tuple(t.shape)} here"])
        elif classes_differ and name.startswith(head):
            reinit.append([name, "the checkpoint's classes differ from this data's"])
        else:
            loaded.append(name)
    for name, t in source.items():
        if name not in net_state:
            skipped.append([name, "not in this network"])
        elif name not in loaded:
            skipped.append([name, next(r for n, r in reinit if n == name)])
    return {"loaded": loaded, "reinitialised": reinit, "skipped": skipped}


def pretrained_file(name: str, model_name: str) -> Path:
    """The cached file of published weights ``name`` for network ``model_name`` (never downloads):
    ConfigError if the network has no such weights or the file is not cached."""
    if name not in PRETRAINED:
        raise ConfigError(f"model.pretrained={name!r} is not known; choose one of {', '.join(PRETRAINED)}")
    net, enum, member = PRETRAINED[name]
    if model_name != net:
        raise ConfigError(f"model.pretrained={name} exists for the network {net} only, not {model_name!r}")
    import torch
    import torchvision.models as tvm
    url = getattr(tvm, enum)[member].url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise ConfigError(f"model.pretrained={name}: {path} is not cached (offline runs never download): fetch it with "
                          f"`python -c \"import torchvision.models as m; m.{enum}.{member}.get_state_dict()\"` "
                          f"or download {url} to that path")
    return path


def initialise(net, cfg: dict[str, Any], model_name: str, classes: list[str]) -> dict[str, Any] | None:
    """Apply ``model.init_from`` / ``model.pretrained`` of ``cfg`` (the ``model`` node) to ``net``
    in place; return the report (:func:`match_state` lists + ``source``), or None if neither is
    set. ConfigError for both set or a checkpoint from which no encoder tensor loads."""
    init_from, pretrained = cfg["init_from"], cfg["pretrained"]
    if init_from and pretrained:
        raise ConfigError("model.init_from and model.pretrained are exclusive: set one")
    if not (init_from or pretrained):
        if cfg["freeze_epochs"]:
            raise ConfigError("model.freeze_epochs needs pretrained weights: set model.init_from or model.pretrained")
        return None
    src_path = Path(init_from).expanduser() if init_from else pretrained_file(pretrained, model_name)
    source, info = read_source(src_path)
    head = head_prefix(net)
    src_classes = info.get("classes")
    classes_differ = src_classes is not None and [str(c) for c in src_classes] != [str(c) for c in classes]
    state = net.state_dict()
    report = match_state(state, source, head, classes_differ)
    params = {n for n, _ in net.named_parameters()}
    if not any(n in params and not n.startswith(head) for n in report["loaded"]):
        raise ConfigError(f"model.init_from: no encoder tensor of {src_path} matches the {model_name} network by name "
                          f"and shape (another architecture or other channel/group settings?)")
    net.load_state_dict({n: source[n] for n in report["loaded"]}, strict=False)
    report = {"source": str(src_path.resolve()), "pretrained": pretrained, "head": head.rstrip("."), **report}
    log.info("init: %d tensors loaded from %s, %d re-initialised%s, %d checkpoint tensors skipped",
             len(report["loaded"]), src_path, len(report["reinitialised"]),
             "".join(f"; {n} ({r})" for n, r in report["reinitialised"][:6]), len(report["skipped"]))
    return report


def write_report(report: dict[str, Any], run_dir: str | Path) -> Path:
    """``init.json`` in ``run_dir`` (atomically)."""
    from cosmobench.io import atomic_path
    path = Path(run_dir) / INIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
    return path


__all__ = ["TransferSettings", "INIT_FILE", "PRETRAINED", "head_prefix", "read_source", "match_state",
           "pretrained_file", "initialise", "write_report"]
