"""U-Net (Ronneberger, Fischer & Brox 2015) for image-to-image tasks (deblending, mass mapping).

``UNet(in_channels, out_channels)`` maps ``(B, in_channels, H, W)`` to
``(B, out_channels, H, W)`` for **any** ``H, W``: the input is padded internally to the next
multiple of ``2**depth`` (so every 2x2 down-sampling is exact) and the output is cropped back
to the input size. The network is fully convolutional:

* encoder level ``l = 0..depth-1``: two 3x3 convolutions (``base_channels * 2**l`` channels,
  each followed by normalisation and activation), then 2x2 max pooling (stride 2);
* bottleneck: two 3x3 convolutions with ``base_channels * 2**depth`` channels;
* decoder level ``l = depth-1..0``: 2x2 up-sampling (transposed convolution, or bilinear +
  1x1 convolution), concatenation with the encoder features of level ``l`` (skip connection),
  two 3x3 convolutions;
* a final 1x1 convolution to ``out_channels`` (linear: no output activation, so the output can
  be any real number, e.g. a flux image or a convergence map; apply one outside if needed).

Translation behaviour: with ``padding_mode="circular"`` and ``H, W`` multiples of ``2**depth``,
shifting the input (``torch.roll``) by a multiple of ``2**depth`` pixels shifts the output by
the same amount exactly (up to float rounding); other shifts are equivariant only
approximately because of the stride-2 pooling. With the default zero padding the borders
break exact equivariance (as in every padded CNN).

Normalisation: ``norm="batch"`` (default), ``"group"`` (GroupNorm with up to 8 groups,
independent of the batch), ``"instance"`` or ``"none"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cosmobench.nn import register_net
from cosmobench.settings import setting

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = max(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> norm -> activation`` layers (the U-Net's basic block)."""

    def __init__(self, c_in: int, c_out: int, norm: str, activation: str, padding_mode: str, dropout: float = 0.0):
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(((c_in, c_out), (c_out, c_out))):
            layers += [nn.Conv2d(a, b, 3, padding=1, padding_mode=padding_mode, bias=norm == "none"),
                       _norm(norm, b), _ACTIVATIONS[activation]()]
            if dropout > 0 and i == 0:
                layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


@dataclass
class UNetConfig:
    """Hyper-parameters of :class:`UNet`."""

    base_channels: int = setting(16, "positive int", help="channels of level 0; level l has base_channels * 2**l")
    depth: int = setting(3, "non-negative int", help="number of 2x down-samplings (0: a plain two-block CNN)")
    norm: str = setting("batch", ["batch", "group", "instance", "none"], help="normalisation after each conv")
    activation: str = setting("relu", ["relu", "gelu", "silu", "leaky_relu"], help="activation after each conv")
    padding_mode: str = setting("zeros", ["zeros", "reflect", "replicate", "circular"],
                                help="padding of the 3x3 convs and of the size padding (circular: periodic maps)")
    upsample: str = setting("transpose", ["transpose", "bilinear"],
                            help="2x2 transposed conv, or bilinear + 1x1 conv")
    dropout: float = setting(0.0, "0 <= float < 1", help="Dropout2d after the first conv of each block")

    SEARCH_SPACE: ClassVar[dict] = {"optim.lr": ["log", 3e-4, 1e-2], "model.base_channels": ["choice", [8, 16, 32]],
                                    "model.depth": ["choice", [2, 3]]}  # cosmobench tune


@register_net("unet", UNetConfig, kind="image_to_image")
class UNet(nn.Module):
    """Fully convolutional U-Net, any input size (see the module docstring): ``in_channels``
    (bands plus any conditioning channels) -> ``out_channels``; hyper-parameters in
    :class:`UNetConfig` (any object with its attributes, e.g. a task config embedding it)."""

    def __init__(self, cfg: UNetConfig, *, in_channels: int, out_channels: int):
        super().__init__()
        base_channels, depth, norm, activation = cfg.base_channels, cfg.depth, cfg.norm, cfg.activation
        padding_mode, upsample, dropout = cfg.padding_mode, cfg.upsample, cfg.dropout
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        self.padding_mode = padding_mode
        widths = [base_channels * 2 ** level for level in range(depth + 1)]
        block = dict(norm=norm, activation=activation, padding_mode=padding_mode, dropout=float(dropout))
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths[:-1]:
            self.down.append(ConvBlock(c, w, **block))
            c = w
        self.bottleneck = ConvBlock(c, widths[-1], **block)
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level in reversed(range(depth)):
            c_deep, c_skip = widths[level + 1], widths[level]
            if upsample == "transpose":
                self.up.append(nn.ConvTranspose2d(c_deep, c_skip, 2, stride=2))
            else:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                             nn.Conv2d(c_deep, c_skip, 1)))
            self.up_blocks.append(ConvBlock(2 * c_skip, c_skip, **block))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        """Pad ``H, W`` up to multiples of ``2**depth`` (split evenly left/right, top/bottom)."""
        m = 2 ** self.depth
        H, W = x.shape[-2:]
        ph, pw = (-H) % m, (-W) % m
        pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # left, right, top, bottom
        if ph == 0 and pw == 0:
            return x, pads
        mode = {"zeros": "constant"}.get(self.padding_mode, self.padding_mode)
        if mode == "reflect" and (max(pads[:2]) >= W or max(pads[2:]) >= H):
            mode = "replicate"  # reflect padding needs pad < size
        return F.pad(x, pads, mode=mode), pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNet expects (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        x, (left, _, top, _) = self._pad(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.up_blocks, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., top:top + H, left:left + W]


__all__ = ["UNet", "UNetConfig", "ConvBlock"]
