"""Image classifiers for galaxy morphology: an E(2)-equivariant CNN (e2cnn), a small plain
CNN of comparable parameter count, and torchvision's ResNet-18 adapted to small inputs.

All take ``(B, n_bands, H, W)`` float tensors (already normalised by the task) and return
``(B, n_classes)`` logits.

Exact invariance of :class:`E2CNN` (DESIGN §10). Invariance of the whole network to the
image transforms ``torch.rot90`` / ``torch.flip`` needs every layer to commute with them
*on the pixel grid*, whose rotation centre is ``(S-1)/2``:

* convolutions use odd kernels with symmetric ``padding=k//2`` (stride 1);
* a downsampling step on an **even** size uses 2x2 average pooling, stride 2 (the 2x2 blocks
  are mapped onto each other by rot90/flips); on an **odd** size ``2m+1`` it uses 3x3 average
  pooling, stride 2, padding 1 (output centres at even input indices, mapped onto each other);
  so any input size works, e.g. 64 -> 32 -> 16 -> 8 and 33 -> 17 -> 9 -> 5;
* group pooling (max over the group axis of each regular field) makes the features invariant,
  then a spatial mean and an MLP produce invariant logits.

For a ``D_N`` group with ``N`` divisible by 4 the network is then invariant to all eight
rot90/flip transforms up to float rounding (measured ~1e-7); for ``C_N`` only to rot90.
"""
from __future__ import annotations

import re
import warnings

import torch
from torch import nn

from cosmobench.errors import ConfigError


def parse_group(group: str) -> tuple[bool, int]:
    """``"D8"`` -> (flips=True, N=8); ``"C16"`` -> (False, 16). N must be a positive integer."""
    m = re.fullmatch(r"([CD])(\d+)", str(group).strip().upper())
    if not m or int(m.group(2)) < 1:
        raise ConfigError(f"model.group={group!r} is not known; use C<N> or D<N>, e.g. C8, D8, C16, D16")
    return m.group(1) == "D", int(m.group(2))


_R2CONV = None


def _r2conv_class():
    """``e2cnn.nn.R2Conv`` whose eval-mode filter cache stays out of the state_dict.

    In eval mode R2Conv caches its expanded filter as a (persistent) buffer. Lightning writes
    checkpoints after validation, i.e. in eval mode, so checkpoints would carry this derived
    tensor, loading them into a train-mode net would fail on unexpected keys, and loading new
    weights into an eval-mode net would keep a stale filter. This subclass marks the cache
    non-persistent, ignores cache keys in incoming state dicts and rebuilds the cache after
    every load."""
    global _R2CONV
    if _R2CONV is None:
        from e2cnn import nn as enn

        cache = ("filter", "expanded_bias")

        class CachedFilterR2Conv(enn.R2Conv):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)  # registers a zero ``filter`` placeholder buffer
                self._cache_non_persistent()

            def _cache_non_persistent(self) -> None:
                for name in cache:
                    if name in self._buffers:
                        self._non_persistent_buffers_set.add(name)

            def train(self, mode: bool = True):
                super().train(mode)
                self._cache_non_persistent()
                return self

            def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
                for name in cache:
                    state_dict.pop(prefix + name, None)
                super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
                if not self.training:  # rebuild the cache from the loaded weights
                    self.train(True)
                    self.train(False)

        _R2CONV = CachedFilterR2Conv
    return _R2CONV


def _pool_params(size: int) -> tuple[int, int, int]:
    """(kernel, stride, padding) of an exactly rot90/flip-equivariant 2x downsampling."""
    return (2, 2, 0) if size % 2 == 0 else (3, 2, 1)


def _pooled_size(size: int) -> int:
    k, s, p = _pool_params(size)
    return (size + 2 * p - k) // s + 1


def _block_layout(channels, kernel_sizes) -> tuple[list[int], list[int]]:
    """Validated channels and odd kernel sizes per conv block (default 5, then 3s)."""
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1:
        raise ConfigError(f"model.channels must be a non-empty list of positive ints, got {channels}")
    kernel_sizes = [int(k) for k in (kernel_sizes or [5] + [3] * (len(channels) - 1))]
    if len(kernel_sizes) != len(channels) or any(k % 2 == 0 for k in kernel_sizes):
        raise ConfigError(f"model.kernel_sizes must give one odd size per block, got {kernel_sizes}")
    return channels, kernel_sizes


class E2CNN(nn.Module):
    """E(2)-equivariant CNN (Weiler & Cesa 2019) with group-pooled, invariant output.

    Args:
        n_bands: input channels (trivial fields).
        n_classes: number of output logits.
        image_size: input height = width in pixels (sets the pooling pattern).
        group: ``C<N>`` (rotations) or ``D<N>`` (rotations + reflections).
        channels: regular fields per block (each field has ``|G|`` channels).
        kernel_sizes: odd kernel size per block (default 5 for the first block, then 3).
        hidden: width of the invariant MLP head.
        dropout: dropout before the last linear layer.
    """

    def __init__(self, n_bands: int, n_classes: int, image_size: int, group: str = "D8",
                 channels=(8, 16, 32), kernel_sizes=None, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        from cosmobench.nn.e2cnn_compat import e2cnn  # noqa: F401  (applies the numpy-2 shim)
        from e2cnn import gspaces
        from e2cnn import nn as enn

        flips, n = parse_group(group)
        self.gspace = gspaces.FlipRot2dOnR2(N=n) if flips else gspaces.Rot2dOnR2(N=n)
        channels, kernel_sizes = _block_layout(channels, kernel_sizes)
        self.in_type = enn.FieldType(self.gspace, n_bands * [self.gspace.trivial_repr])
        layers, ftype, size = [], self.in_type, int(image_size)
        for i, (c, k) in enumerate(zip(channels, kernel_sizes)):
            out = enn.FieldType(self.gspace, c * [self.gspace.regular_repr])
            with warnings.catch_warnings():  # e2cnn indexes with uint8 masks (deprecated in torch)
                warnings.simplefilter("ignore", UserWarning)
                conv = _r2conv_class()(ftype, out, kernel_size=k, padding=k // 2, bias=False)
            layers += [conv, enn.InnerBatchNorm(out), enn.ReLU(out, inplace=True)]
            if i < len(channels) - 1:  # downsample between blocks
                kk, s, p = _pool_params(size)
                layers.append(enn.PointwiseAvgPool(out, kernel_size=kk, stride=s, padding=p))
                size = _pooled_size(size)
            ftype = out
        self.features = enn.SequentialModule(*layers)
        self.gpool = enn.GroupPooling(ftype)
        n_inv = len(self.gpool.out_type)
        self.head = nn.Sequential(nn.Linear(n_inv, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_classes))
        self._enn = enn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._enn.GeometricTensor(x, self.in_type)
        h = self.gpool(self.features(h)).tensor  # (B, n_inv, h, w): invariant scalar fields
        return self.head(h.mean(dim=(2, 3)))


class SmallCNN(nn.Module):
    """Plain CNN with the same layout as :class:`E2CNN` (conv-BN-ReLU blocks, 2x pooling
    between blocks, global average pooling, MLP head). Not equivariant by construction."""

    def __init__(self, n_bands: int, n_classes: int, image_size: int, channels=(32, 64, 128),
                 kernel_sizes=None, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        channels, kernel_sizes = _block_layout(channels, kernel_sizes)
        layers, c_in, size = [], n_bands, int(image_size)
        for i, (c, k) in enumerate(zip(channels, kernel_sizes)):
            layers += [nn.Conv2d(c_in, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                kk, s, p = _pool_params(size)
                layers.append(nn.AvgPool2d(kk, s, p))
                size = _pooled_size(size)
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def resnet18(n_bands: int, n_classes: int, image_size: int, stem_stride: int | None = None) -> nn.Module:
    """torchvision ResNet-18 (``weights=None``: random init, no download) adapted to the data.

    The stem is replaced so that it takes ``n_bands`` channels and downsamples by
    ``stem_stride`` (1, 2 or 4; default: the power of two that brings the image to ~16 px
    before ``layer1``, i.e. 4 for >= 64 px, 2 for 32 px). Stride 4 keeps torchvision's
    7x7/2 conv + max-pool stem; stride 2 uses a 3x3/2 conv, stride 1 a 3x3/1 conv, no max-pool.
    """
    from torchvision.models import resnet18 as tv_resnet18

    if stem_stride is None:
        stem_stride = 4 if image_size >= 64 else (2 if image_size >= 24 else 1)
    if stem_stride not in (1, 2, 4):
        raise ConfigError(f"model.stem_stride must be 1, 2 or 4 (or null for auto), got {stem_stride}")
    net = tv_resnet18(weights=None, num_classes=n_classes)
    if stem_stride == 4:
        net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        net.conv1 = nn.Conv2d(n_bands, 64, kernel_size=3, stride=stem_stride, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def build_net(name: str, cfg: dict, n_bands: int, n_classes: int, image_size: int) -> nn.Module:
    """Network for ``model.name`` in {e2cnn, cnn, resnet18} from the model config node."""
    common = dict(n_bands=n_bands, n_classes=n_classes, image_size=image_size)
    if name == "e2cnn":
        return E2CNN(group=cfg.get("group", "D8"), channels=cfg.get("channels", (8, 16, 32)),
                     kernel_sizes=cfg.get("kernel_sizes"), hidden=int(cfg.get("hidden", 64)),
                     dropout=float(cfg.get("dropout", 0.0)), **common)
    if name == "cnn":
        return SmallCNN(channels=cfg.get("channels", (32, 64, 128)), kernel_sizes=cfg.get("kernel_sizes"),
                        hidden=int(cfg.get("hidden", 64)), dropout=float(cfg.get("dropout", 0.0)), **common)
    if name == "resnet18":
        return resnet18(stem_stride=cfg.get("stem_stride"), **common)
    raise ConfigError(f"morphology has no model {name!r}; choose e2cnn, cnn or resnet18")


__all__ = ["E2CNN", "SmallCNN", "resnet18", "build_net", "parse_group", "count_parameters"]
