"""Plain convolutional image classifier and the conv-block layout shared with
:mod:`cosmobench.nn.equivariant`.

Input ``(B, C, H, W)`` float (already normalised by the task), output ``(B, n_classes)``
logits. Downsampling between blocks is chosen so that every layer commutes with the pixel
rot90/flip transforms of :mod:`cosmobench.augment` (rotation centre ``(S-1)/2``):

* convolutions use odd kernels with symmetric ``padding=k//2`` (stride 1);
* a downsampling step on an **even** size uses 2x2 average pooling, stride 2 (the 2x2 blocks
  are mapped onto each other by rot90/flips); on an **odd** size ``2m+1`` it uses 3x3 average
  pooling, stride 2, padding 1 (output centres at even input indices, mapped onto each other);
  so any input size works, e.g. 64 -> 32 -> 16 -> 8 and 33 -> 17 -> 9 -> 5.

(:class:`SmallCNN` is not equivariant - its filters are not constrained - but it shares the
layout so that it is a like-for-like baseline of :class:`~cosmobench.nn.equivariant.E2CNN`.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import nn

from cosmobench.errors import ConfigError
from cosmobench.nn import register_net
from cosmobench.settings import setting


def pool_params(size: int) -> tuple[int, int, int]:
    """(kernel, stride, padding) of an exactly rot90/flip-equivariant 2x downsampling."""
    return (2, 2, 0) if size % 2 == 0 else (3, 2, 1)


def pooled_size(size: int) -> int:
    """Image size after :func:`pool_params` pooling of a ``size`` px image."""
    k, s, p = pool_params(size)
    return (size + 2 * p - k) // s + 1


@dataclass
class ConvHead:
    """Settings shared by the conv-block classifiers (:class:`SmallCNN`, ``E2CNN``)."""

    kernel_sizes: list[int] | None = setting(None, "list[positive int] or null", unit="px",
                                             help="odd kernel size per block (null: 5, then 3s)")
    hidden: int = setting(64, "positive int", help="width of the MLP head")
    dropout: float = setting(0.0, "0 <= float < 1", help="dropout before the last linear layer")


@dataclass
class SmallCNNConfig(ConvHead):
    """Hyper-parameters of :class:`SmallCNN`."""

    channels: list[int] = setting([24, 48, 96], "nonempty list[positive int]", help="output channels per block")

    SEARCH_SPACE: ClassVar[dict] = {"optim.lr": ["log", 3e-4, 1e-2],
                                    "model.channels": ["choice", [[16, 32, 64], [24, 48, 96], [32, 64, 128]]],
                                    "model.dropout": ["float", 0.0, 0.5]}  # cosmobench tune


def block_layout(channels: Sequence[int], kernel_sizes: Sequence[int] | None) -> tuple[list[int], list[int]]:
    """Channels and odd kernel sizes per conv block (``kernel_sizes=None``: 5 for the first
    block, then 3s); ConfigError unless there is one odd kernel size per block."""
    channels = [int(c) for c in channels]
    kernel_sizes = [int(k) for k in (kernel_sizes or [5] + [3] * (len(channels) - 1))]
    if len(kernel_sizes) != len(channels) or any(k % 2 == 0 or k < 1 for k in kernel_sizes):
        raise ConfigError(f"model.kernel_sizes must give one odd size per block, got {kernel_sizes}")
    return channels, kernel_sizes


def mlp_head(n_in: int, hidden: int, dropout: float, n_classes: int) -> nn.Sequential:
    """``Linear -> ReLU -> Dropout -> Linear`` classifier head."""
    return nn.Sequential(nn.Linear(n_in, int(hidden)), nn.ReLU(inplace=True),
                         nn.Dropout(float(dropout)), nn.Linear(int(hidden), n_classes))


@register_net("cnn", SmallCNNConfig, kind="image_classifier")
class SmallCNN(nn.Module):
    """Plain CNN: conv-BN-ReLU blocks, 2x pooling between blocks (:func:`pool_params`), global
    average pooling, MLP head. ``n_bands``: input channels; ``n_classes``: output logits;
    ``image_size``: input H = W (px); hyper-parameters in :class:`SmallCNNConfig`."""

    def __init__(self, cfg: SmallCNNConfig, *, n_bands: int, n_classes: int, image_size: int):
        super().__init__()
        channels, kernel_sizes = block_layout(cfg.channels, cfg.kernel_sizes)
        layers: list[nn.Module] = []
        c_in, size = int(n_bands), int(image_size)
        for i, (c, k) in enumerate(zip(channels, kernel_sizes)):
            layers += [nn.Conv2d(c_in, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                kk, s, p = pool_params(size)
                layers.append(nn.AvgPool2d(kk, s, p))
                size = pooled_size(size)
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = mlp_head(c_in, cfg.hidden, cfg.dropout, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_bands, H, W)`` -> logits ``(B, n_classes)``."""
        return self.head(self.features(x).mean(dim=(2, 3)))


__all__ = ["SmallCNN", "SmallCNNConfig", "ConvHead", "pool_params", "pooled_size", "block_layout", "mlp_head"]
