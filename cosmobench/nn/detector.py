"""Learned source detection: a centre heat map (CenterNet, Zhou, Wang & Krähenbühl 2019) of a
multi-band scene.

:class:`CenterNetDetector` maps a scene ``(B, C, H, W)`` with its per-pixel variance to three
maps ``(B, 3, H, W)``: the logit of the centre heat map and the sub-pixel offset ``(dx, dy)``
of a centre from its pixel. Input: ``asinh(image / sqrt(variance))`` per band (signal-to-noise,
so the flux units and the depth of a survey do not matter), through a
:class:`~cosmobench.nn.unet.UNet` of ``detector_channels`` base channels and
``detector_depth`` levels (no normalisation layers). Training targets (:func:`centre_targets`):
per true centroid a Gaussian bump ``exp(-r^2 / 2 heatmap_sigma^2)`` (the maximum over
sources), 1 at the centroid's pixel; loss (:func:`detector_loss`): CenterNet's
penalty-reduced focal loss (alpha 2, beta 4) normalised by the number of sources, plus the L1
error of the offsets at the centroid pixels. Peaks (:func:`heatmap_peaks`): local maxima of
``sigmoid(logit)`` in 3x3 windows (max-pool non-maximum suppression) above ``threshold``,
at most ``max_sources`` per scene, at ``pixel + offset``.

Conventions: positions ``(x, y)`` in px, pixel centres at integer 0-based coordinates, NaN =
absent. Written by hand: torchvision has no CenterNet head; the U-Net is cosmobench's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cosmobench.nn import register_net
from cosmobench.nn.unet import UNet, UNetConfig
from cosmobench.settings import setting


@dataclass
class CenterNetConfig:
    """Hyper-parameters of :class:`CenterNetDetector` (prefixed: they share the ``model`` node
    with the deblender's)."""

    detector_channels: int = setting(8, "positive int", help="learned detector: base channels of its U-Net")
    detector_depth: int = setting(2, "non-negative int", help="learned detector: down-samplings of its U-Net")
    heatmap_sigma: float = setting(1.0, "positive float", unit="px",
                                   help="learned detector: sigma of the Gaussian centre targets")
    detector_threshold: float = setting(0.3, "probability",
                                        help="learned detector: smallest heat-map peak kept as a detection")


@register_net("centernet", CenterNetConfig, kind="detector")
class CenterNetDetector(nn.Module):
    """Centre heat map and offsets of a multi-band scene (module docstring)."""

    def __init__(self, cfg: CenterNetConfig, *, n_bands: int):
        super().__init__()
        unet_cfg = UNetConfig(base_channels=cfg.detector_channels, depth=cfg.detector_depth, norm="none",
                              activation="relu", padding_mode="zeros", upsample="transpose", dropout=0.0)
        self.n_bands = n_bands
        self.unet = UNet(unet_cfg, in_channels=n_bands, out_channels=3)
        nn.init.zeros_(self.unet.head.weight)
        with torch.no_grad():   # CenterNet's prior: every pixel starts at p = 0.1
            self.unet.head.bias.copy_(torch.tensor([-2.19, 0.0, 0.0]))

    def forward(self, image: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        """``image``, ``variance`` ``(B, C, H, W)`` -> ``(B, 3, H, W)``: heat-map logit, offsets."""
        snr = image / variance.clamp_min(1e-30).sqrt()
        return self.unet(torch.asinh(snr))


def centre_targets(xy: torch.Tensor, shape: tuple[int, int], sigma: float) -> tuple[torch.Tensor, ...]:
    """Targets of true centroids ``xy`` ``(B, K, 2)`` (NaN padding) on an ``(H, W)`` grid:
    heat map ``(B, H, W)`` (module docstring), the centroid pixels ``(B, K, 2)`` long (row,
    col; clamped into the image), their offsets ``(B, K, 2)`` and validity ``(B, K)`` bool."""
    h, w = shape
    ok = torch.isfinite(xy).all(-1)
    p = torch.where(ok[..., None], xy, torch.full_like(xy, -1e4))
    ys = torch.arange(h, dtype=xy.dtype, device=xy.device)
    xs = torch.arange(w, dtype=xy.dtype, device=xy.device)
    gx = torch.exp(-0.5 * ((xs - p[..., 0:1]) / sigma) ** 2)           # (B, K, W)
    gy = torch.exp(-0.5 * ((ys - p[..., 1:2]) / sigma) ** 2)           # (B, K, H)
    heat = (gy[..., :, None] * gx[..., None, :]).amax(1) if xy.shape[1] else torch.zeros(len(xy), h, w)
    col = p[..., 0].round().clamp(0, w - 1).long()
    row = p[..., 1].round().clamp(0, h - 1).long()
    b = torch.arange(len(xy), device=xy.device)[:, None].expand_as(col)
    heat = heat.clone()
    heat[b[ok], row[ok], col[ok]] = 1.0
    offset = torch.stack([p[..., 0] - col, p[..., 1] - row], -1)
    return heat, torch.stack([row, col], -1), offset, ok


def detector_loss(out: torch.Tensor, xy: torch.Tensor, sigma: float, alpha: float = 2.0,
                  beta: float = 4.0) -> torch.Tensor:
    """CenterNet loss ``()`` of network outputs ``(B, 3, H, W)`` for true centroids ``xy``
    ``(B, K, 2)``: penalty-reduced focal loss of the heat map, normalised by the number of
    sources, plus the mean L1 error of the offsets at the centroid pixels."""
    heat, pix, offset, ok = centre_targets(xy.to(out.dtype), tuple(out.shape[-2:]), sigma)
    logit = out[:, 0]
    p = torch.sigmoid(logit)
    pos = heat >= 1.0
    log_p, log_1p = F.logsigmoid(logit), F.logsigmoid(-logit)
    focal = torch.where(pos, (1 - p) ** alpha * log_p, (1 - heat) ** beta * p ** alpha * log_1p)
    n = ok.sum().clamp_min(1)
    b = torch.arange(len(xy), device=out.device)[:, None].expand_as(ok)
    pred_off = out[:, 1:3].permute(0, 2, 3, 1)[b[ok], pix[..., 0][ok], pix[..., 1][ok]]   # (n, 2)
    off_loss = (pred_off - offset[ok]).abs().sum() / n
    return -focal.sum() / n + off_loss


def heatmap_peaks(out: torch.Tensor, threshold: float, max_sources: int) -> list[torch.Tensor]:
    """Per scene the detected positions ``(M, 2)`` (x, y) of network outputs ``(B, 3, H, W)``:
    3x3 max-pool non-maximum suppression of ``sigmoid(logit)``, peaks ``>= threshold``, the
    ``max_sources`` highest kept, each at its pixel plus the predicted offset (clamped to
    half a pixel)."""
    p = torch.sigmoid(out[:, 0])
    keep = (p == F.max_pool2d(p[:, None], 3, stride=1, padding=1)[:, 0]) & (p >= threshold)
    res = []
    for b in range(len(p)):
        rows, cols = torch.nonzero(keep[b], as_tuple=True)
        if len(rows) > max_sources:
            top = torch.argsort(p[b, rows, cols], descending=True)[:max_sources]
            rows, cols = rows[top], cols[top]
        off = out[b, 1:3, rows, cols].clamp(-0.5, 0.5)                  # (2, M)
        res.append(torch.stack([cols + off[0], rows + off[1]], -1).to(out.dtype))
    return res


__all__ = ["CenterNetConfig", "CenterNetDetector", "centre_targets", "detector_loss", "heatmap_peaks"]
