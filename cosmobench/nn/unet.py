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

import torch
import torch.nn.functional as F
from torch import nn

from cosmobench.errors import ConfigError

_NORMS = ("batch", "group", "instance", "none")
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_UPSAMPLE = ("transpose", "bilinear")
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


class UNet(nn.Module):
    """Fully convolutional U-Net, any input size (see the module docstring).

    Args:
        in_channels: input channels (e.g. bands, plus any conditioning channels).
        out_channels: output channels.
        base_channels: channels of the first level; level ``l`` has ``base_channels * 2**l``.
        depth: number of 2x down-samplings (``0`` gives a plain two-block CNN).
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        activation: ``"relu"``, ``"gelu"``, ``"silu"`` or ``"leaky_relu"``.
        padding_mode: padding of the 3x3 convolutions and of the internal size padding:
            ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"`` (periodic maps).
        upsample: ``"transpose"`` (2x2 transposed convolution) or ``"bilinear"`` (+ 1x1 conv).
        dropout: ``Dropout2d`` probability after the first convolution of each block.
    """

    def __init__(self, in_channels: int, out_channels: int, base_channels: int = 32, depth: int = 3,
                 norm: str = "batch", activation: str = "relu", padding_mode: str = "zeros",
                 upsample: str = "transpose", dropout: float = 0.0):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("base_channels", base_channels, 1), ("depth", depth, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"UNet {name} must be an integer >= {low}, got {value!r}")
        for name, value, choices in (("norm", norm, _NORMS), ("activation", activation, tuple(_ACTIVATIONS)),
                                     ("padding_mode", padding_mode, _PADDING_MODES),
                                     ("upsample", upsample, _UPSAMPLE)):
            if value not in choices:
                raise ConfigError(f"UNet {name}={value!r} is not known; choose one of {', '.join(choices)}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"UNet dropout must be in [0, 1), got {dropout!r}")
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


__all__ = ["UNet", "ConvBlock"]
