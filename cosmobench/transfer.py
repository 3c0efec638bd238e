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
  - bands by name (:func:`map_bands`): when the checkpoint and this data both name their bands
    (``data.bands``) and the lists differ, the first layer's filters are re-indexed by band name
    (a band of this data that the checkpoint lacks gets a zero filter: it contributes nothing until
    trained); no band in common, or a network whose first layer is not a plain convolution
    (``e2cnn``'s is a steerable one), cannot be bridged: ``ConfigError`` (exit 2). Unnamed bands on
    either side are taken as the same bands in the same order when the counts agree;
  - pixel scale: no tensor depends on the image size (global pooling), but the network has only
    seen its own pixel scale. When both the checkpoint's and this data's input pixel scale are
    known (``info()["input_pixel_scale"]``, :mod:`cosmobench.image_data`) and differ by more than
    5 %, ``ConfigError`` naming the ``data.crop`` (real data) or ``data.pixel_scale`` (simulator)
    that matches; ``model.check_pixel_scale=false`` turns the check off (e.g. a lens finder
    started from a morphology network), as does an unknown scale (``data.native_pixel_scale=null``);
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
    check_pixel_scale: bool = setting(True, "bool",
                                      help="refuse a checkpoint trained at another input pixel scale (> 5 %; false: "
                                           "load it anyway, e.g. across tasks)")


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


def stem_name(state: dict[str, Any], n_bands: int) -> str | None:
    """Name of the first 4-D tensor of ``state`` (in order) with ``n_bands`` input channels: the
    first convolution's weight ``(out, bands, k, k)``; None if there is none (e2cnn)."""
    return next((n for n, t in state.items() if t.ndim == 4 and t.shape[1] == n_bands), None)


def map_bands(source: dict[str, Any], net_state: dict[str, Any], src_bands: list[str] | None,
              bands: list[str] | None, where: str) -> dict[str, Any] | None:
    """Re-index the first layer of ``source`` (in place) from the checkpoint's bands to this
    data's, by name (module docstring). Returns ``{"checkpoint", "data", "stem", "zero"}`` when
    a mapping was made, None when nothing needs mapping; ConfigError when it cannot be bridged."""
    if not src_bands or not bands or list(src_bands) == list(bands):
        return None
    src_bands, bands = [str(b) for b in src_bands], [str(b) for b in bands]
    shared = [b for b in bands if b in src_bands]
    if not shared:
        raise ConfigError(f"{where}: the checkpoint's bands {src_bands} and data.bands={bands} have no band in "
                          f"common: nothing of its first layer applies (train from scratch or use a checkpoint "
                          f"of these bands)")
    stem = stem_name(source, len(src_bands))
    if stem is None or stem not in net_state or net_state[stem].ndim != 4 or net_state[stem].shape[1] != len(bands):
        raise ConfigError(f"{where}: the checkpoint's bands {src_bands} differ from data.bands={bands} and this "
                          f"network's first layer is not a plain convolution that can be re-indexed by band "
                          f"(use data of the checkpoint's bands in its order)")
    import torch
    w = source[stem]
    source[stem] = torch.stack([w[:, src_bands.index(b)] if b in src_bands else torch.zeros_like(w[:, 0])
                                for b in bands], dim=1)
    return {"checkpoint": src_bands, "data": bands, "stem": stem, "zero": [b for b in bands if b not in src_bands]}


#: relative pixel-scale difference above which model.init_from refuses the data
SCALE_TOLERANCE = 0.05


def check_pixel_scale(src_scale: float | None, info: dict[str, Any], where: str) -> None:
    """ConfigError when the checkpoint's and the data's input pixel scales (arcsec/px) are both
    known and differ by more than :data:`SCALE_TOLERANCE` (module docstring)."""
    scale = info.get("input_pixel_scale")
    if not src_scale or not scale or abs(scale / src_scale - 1) <= SCALE_TOLERANCE:
        return
    size = int(info.get("image_size") or 0)
    if info.get("source") == "sim":
        fix = f"set data.pixel_scale={src_scale:.4g}"
    else:
        native = info.get("native_pixel_scale")
        fix = (f"set data.crop={round(src_scale * size / native)} (native {native:g}\"/px x crop / "
               f"data.image_size={size})" if native and size else "change data.crop or data.image_size")
    raise ConfigError(f"{where}: the checkpoint was trained on {src_scale:.4g}\"/px images, these are "
                      f"{scale:.4g}\"/px: {fix} (or model.check_pixel_scale=false to load it anyway)")


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


def initialise(net, cfg: dict[str, Any], model_name: str, classes: list[str],
               info: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Apply ``model.init_from`` / ``model.pretrained`` of ``cfg`` (the ``model`` node) to ``net``
    in place; return the report (:func:`match_state` lists + ``source``, ``bands`` if the first
    layer was re-indexed), or None if neither is set. ``info``: this data's ``info()`` (bands,
    input pixel scale). ConfigError for both set, a checkpoint from which no encoder tensor loads,
    bands or a pixel scale that cannot be bridged."""
    init_from, pretrained = cfg["init_from"], cfg["pretrained"]
    if init_from and pretrained:
        raise ConfigError("model.init_from and model.pretrained are exclusive: set one")
    if not (init_from or pretrained):
        if cfg["freeze_epochs"]:
            raise ConfigError("model.freeze_epochs needs pretrained weights: set model.init_from or model.pretrained")
        return None
    src_path = Path(init_from).expanduser() if init_from else pretrained_file(pretrained, model_name)
    source, src_info = read_source(src_path)
    info = dict(info or {})
    where = f"model.init_from={init_from}" if init_from else f"model.pretrained={pretrained}"
    if cfg["check_pixel_scale"]:
        check_pixel_scale(src_info.get("input_pixel_scale"), info, where)
    head = head_prefix(net)
    src_classes = src_info.get("classes")
    classes_differ = src_classes is not None and [str(c) for c in src_classes] != [str(c) for c in classes]
    state = net.state_dict()
    bands = map_bands(source, state, src_info.get("bands"), info.get("bands"), where)
    report = match_state(state, source, head, classes_differ)
    params = {n for n, _ in net.named_parameters()}
    if not any(n in params and not n.startswith(head) for n in report["loaded"]):
        raise ConfigError(f"model.init_from: no encoder tensor of {src_path} matches the {model_name} network by name "
                          f"and shape (another architecture or other channel/group settings?)")
    net.load_state_dict({n: source[n] for n in report["loaded"]}, strict=False)
    report = {"source": str(src_path.resolve()), "pretrained": pretrained, "head": head.rstrip("."), **report}
    if bands is not None:
        report["bands"] = bands
        log.info("init: first layer %s re-indexed from bands %s to %s%s", bands["stem"], bands["checkpoint"],
                 bands["data"], f" (zero filters for {bands['zero']})" if bands["zero"] else "")
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


__all__ = ["TransferSettings", "INIT_FILE", "PRETRAINED", "SCALE_TOLERANCE", "head_prefix", "read_source",
           "match_state", "stem_name", "map_bands", "check_pixel_scale", "pretrained_file", "initialise",
           "write_report"]
