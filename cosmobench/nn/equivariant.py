"""E(2)-equivariant image classifier (e2cnn, Weiler & Cesa 2019).

Importing this module imports e2cnn (through the numpy-2 shim
:mod:`cosmobench.nn.e2cnn_compat`); :func:`cosmobench.nn.build_net` imports it only when an
equivariant model is chosen, so ``cosmobench list`` and the other models never pay for it.

Exact invariance of :class:`E2CNN` (``docs/ARCHITECTURE.md``, "Models"). Invariance of the
whole network to the image transforms ``torch.rot90`` / ``torch.flip``
(:func:`cosmobench.augment.d4_transform`) needs every layer to commute with them *on the pixel
grid*: odd kernels with symmetric padding and the downsampling of
:func:`cosmobench.nn.cnn.pool_params` (see :mod:`cosmobench.nn.cnn`); group pooling (max over
the group axis of each regular field) makes the features invariant, then a spatial mean and an
MLP produce invariant logits. For a ``D_N`` group with ``N`` divisible by 4 the network is then
invariant to all eight rot90/flip transforms up to float rounding (measured ~1e-7); for
``C_N`` only to rot90.
"""
from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from cosmobench.errors import ConfigError
from cosmobench.nn.e2cnn_compat import e2cnn  # noqa: F401  (applies the numpy-2 shim first)
from cosmobench.nn import register_net
from cosmobench.nn.cnn import ConvHead, block_layout, mlp_head, pool_params, pooled_size
from cosmobench.settings import setting
from e2cnn import gspaces  # noqa: E402
from e2cnn import nn as enn  # noqa: E402

_CACHE_BUFFERS = ("filter", "expanded_bias")


def parse_group(group: str) -> tuple[bool, int]:
    """``"D8"`` -> (flips=True, N=8); ``"C16"`` -> (False, 16). N must be a positive integer."""
    m = re.fullmatch(r"([CD])(\d+)", str(group).strip().upper())
    if not m or int(m.group(2)) < 1:
        raise ConfigError(f"model.group={group!r} is not known; use C<N> or D<N>, e.g. C8, D8, C16, D16")
    return m.group(1) == "D", int(m.group(2))


class CachedFilterR2Conv(enn.R2Conv):
    """``e2cnn.nn.R2Conv`` whose eval-mode filter cache stays out of the state_dict.

    In eval mode R2Conv caches its expanded filter as a (persistent) buffer. Lightning writes
    checkpoints after validation, i.e. in eval mode, so checkpoints would carry this derived
    tensor, loading them into a train-mode net would fail on unexpected keys, and loading new
    weights into an eval-mode net would keep a stale filter. This subclass marks the cache
    non-persistent, ignores cache keys in incoming state dicts and rebuilds the cache after
    every load."""

    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():  # e2cnn indexes with uint8 masks (deprecated in torch)
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(*args, **kwargs)  # registers a zero ``filter`` placeholder buffer
        self._cache_non_persistent()

    def _cache_non_persistent(self) -> None:
        for name in _CACHE_BUFFERS:
            if name in self._buffers:
                self._non_persistent_buffers_set.add(name)

    def train(self, mode: bool = True):
        super().train(mode)
        self._cache_non_persistent()
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in _CACHE_BUFFERS:
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if not self.training:  # rebuild the cache from the loaded weights
            self.train(True)
            self.train(False)


@dataclass
class E2CNNConfig(ConvHead):
    """Hyper-parameters of :class:`E2CNN`."""

    group: str = setting("D8", "str matching (?i)[CD][1-9][0-9]*",
                         help="C<N> (N rotations) or D<N> (rotations and reflections)")
    channels: list[int] = setting([8, 16, 32], "nonempty list[positive int]",
                                  help="regular fields per block (each has |G| channels)")

    SEARCH_SPACE: ClassVar[dict] = {"optim.lr": ["log", 3e-4, 1e-2],
                                    "model.group": ["choice", ["C4", "D4", "D8"]]}  # cosmobench tune


@register_net("e2cnn", E2CNNConfig, kind="image_classifier")
class E2CNN(nn.Module):
    """E(2)-equivariant CNN with group-pooled, invariant output.

    Input ``(B, n_bands, H, W)`` float, output logits ``(B, n_classes)``; ``n_bands`` trivial
    input fields, ``image_size`` = H = W in pixels (sets the pooling pattern); hyper-parameters
    in :class:`E2CNNConfig`.
    """

    #: images per inference forward pass (``ImageClassificationTask.inference_chunk``): the
    #: |G|-times wider feature maps fit the CPU cache in chunks of 16 (measured: 1026 vs 554
    #: galaxies/s for the whole batch of 256 at 3x64x64, bf16, 2 threads)
    inference_chunk = 16

    def __init__(self, cfg: E2CNNConfig, *, n_bands: int, n_classes: int, image_size: int):
        super().__init__()
        flips, n = parse_group(cfg.group)
        self.gspace = gspaces.FlipRot2dOnR2(N=n) if flips else gspaces.Rot2dOnR2(N=n)
        channels, kernel_sizes = block_layout(cfg.channels, cfg.kernel_sizes)
        self.in_type = enn.FieldType(self.gspace, int(n_bands) * [self.gspace.trivial_repr])
        layers, ftype, size = [], self.in_type, int(image_size)
        for i, (c, k) in enumerate(zip(channels, kernel_sizes)):
            out = enn.FieldType(self.gspace, c * [self.gspace.regular_repr])
            layers += [CachedFilterR2Conv(ftype, out, kernel_size=k, padding=k // 2, bias=False),
                       enn.InnerBatchNorm(out), enn.ReLU(out, inplace=True)]
            if i < len(channels) - 1:  # downsample between blocks
                kk, s, p = pool_params(size)
                layers.append(enn.PointwiseAvgPool(out, kernel_size=kk, stride=s, padding=p))
                size = pooled_size(size)
            ftype = out
        self.features = enn.SequentialModule(*layers)
        self.gpool = enn.GroupPooling(ftype)
        self.head = mlp_head(len(self.gpool.out_type), cfg.hidden, cfg.dropout, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_bands, H, W)`` -> invariant logits ``(B, n_classes)``."""
        h = enn.GeometricTensor(x, self.in_type)
        h = self.gpool(self.features(h)).tensor  # (B, n_inv, h, w): invariant scalar fields
        return self.head(h.mean(dim=(2, 3)))

    @torch.no_grad()
    def export(self) -> "ExportedE2CNN":
        """The network in eval mode as plain ``torch.nn`` modules, for inference: same logits
        up to float rounding (``tests/test_inference_export.py``), no e2cnn at run time.

        Each ``R2Conv`` becomes the ``Conv2d`` of its expanded filter (e2cnn's ``export()``),
        with the following ``InnerBatchNorm`` (its running statistics, e2cnn's ``export()`` to
        ``BatchNorm2d``) folded into the conv's weight and bias; ``PointwiseAvgPool`` is
        ``AvgPool2d`` (e2cnn 0.2 has no export for it); group pooling is the max over the
        ``|G|`` channels of each regular field. The copy shares no tensor with this module
        (training it further does not change the export); this module's train/eval mode is
        left as it was."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval
        was_training = self.training
        layers: list[nn.Module] = []
        mods = list(self.features.children())
        try:
            i = 0
            while i < len(mods):
                m = mods[i]
                if isinstance(m, enn.R2Conv):
                    conv = m.export()
                    conv.weight = nn.Parameter(conv.weight.detach().clone())
                    if i + 1 < len(mods) and isinstance(mods[i + 1], enn.InnerBatchNorm):
                        conv = fuse_conv_bn_eval(conv.eval(), mods[i + 1].export())
                        i += 1
                    layers.append(conv)
                elif isinstance(m, enn.InnerBatchNorm):
                    layers.append(m.export())
                elif isinstance(m, enn.ReLU):
                    layers.append(nn.ReLU(inplace=True))
                elif isinstance(m, enn.PointwiseAvgPool):
                    layers.append(nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode))
                else:
                    raise NotImplementedError(f"E2CNN.export: no plain-torch export of {type(m).__name__}")
                i += 1
        finally:
            self.train(was_training)
        group_size = self.gspace.fibergroup.order()
        head = copy.deepcopy(self.head)
        return ExportedE2CNN(nn.Sequential(*layers), group_size, head).eval()


class ExportedE2CNN(nn.Module):
    """Plain-torch inference copy of an :class:`E2CNN` (:meth:`E2CNN.export`): conv stack ->
    max over the ``group_size`` channels of each regular field -> spatial mean -> ``head``.
    ``(B, n_bands, H, W)`` -> logits ``(B, n_classes)``; works in any memory format."""

    def __init__(self, features: nn.Sequential, group_size: int, head: nn.Module):
        super().__init__()
        self.features, self.group_size, self.head = features, int(group_size), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        b, c, hh, ww = h.shape
        h = h.unflatten(1, (c // self.group_size, self.group_size)).amax(dim=2)  # group pooling
        return self.head(h.mean(dim=(2, 3)))


__all__ = ["E2CNN", "E2CNNConfig", "ExportedE2CNN", "CachedFilterR2Conv", "parse_group"]
