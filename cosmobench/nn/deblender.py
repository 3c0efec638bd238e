"""Deblender networks (kind ``deblender``): isolated images of the detected sources of a scene.

:class:`UNetDeblender` (registered as ``unet``) is a learned refinement of segmentation
photometry. Per source a :class:`~cosmobench.nn.unet.UNet` gets ``asinh(image / s)`` (``C``
bands), a unit-peak Gaussian blob (sigma ``blob_sigma`` px) at the source's position, blobs at
all other sources of its scene, and the segmentation as two masks (the source's own segment;
the other sources' segments), and outputs per band a logit map ``l`` and a residual ``r``.
Every pixel of the observed blend is shared between the sources of the scene and the
background: ``share_k = exp(L_k) / (1 + sum_j exp(L_j))`` with
``L_k = l_k + seg_prior * (2 own_k - 1)`` (:func:`scene_softmax`), and source ``k``'s isolated
image is ``share_k * image + residual_scale * r_k * s``. The shares are flux-conserving (they
sum to at most 1 in every pixel) and, with the zero-initialised output layer, start as the
segmentation photometry (``share ~ sigmoid(seg_prior)``, 0.95 at the default, in the own segment). ``s``
(:meth:`UNetDeblender.scale`) = the mean pixel value (over bands) in the 5x5 px box at the
position, at least the background noise per pixel, so the inputs are O(1) near the source
whatever its brightness and the flux units.

:class:`NoiselessDeblender` (registered as ``noiseless``) outputs each source's isolated,
noise-free, PSF-convolved image (the simulator's truth), so its flux includes the wings below
the segmentation isophote and carries no pixel noise. Same inputs as ``unet``; the U-Net's
output ``o`` (per band) is an additive correction in asinh space of the segmentation
photometry: ``isolated = s * sinh(own * asinh(image / s) + o)`` (zero-initialised output
layer: it starts as segmentation photometry; ``asinh`` makes both the bright core and the
faint wings O(1) corrections).

Conventions: images ``(S, C, H, W)`` (one row per source, its scene's image), positions
``(x, y)`` in px with pixel centres at integer 0-based coordinates, NaN for an absent source.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cosmobench.nn import register_net
from cosmobench.nn.unet import UNet, UNetConfig
from cosmobench.settings import setting


def blobs(xy: torch.Tensor, shape: tuple[int, int], sigma: float) -> torch.Tensor:
    """Unit-peak Gaussian blobs at positions ``xy`` ``(..., K, 2)`` (NaN = absent) summed over
    ``K``: ``(..., H, W)``."""
    h, w = shape
    ys = torch.arange(h, dtype=xy.dtype, device=xy.device)
    xs = torch.arange(w, dtype=xy.dtype, device=xy.device)
    ok = torch.isfinite(xy).all(-1)
    p = torch.where(ok[..., None], xy, torch.full_like(xy, -1e4))
    gx = torch.exp(-0.5 * ((xs - p[..., 0:1]) / sigma) ** 2)            # (..., K, W)
    gy = torch.exp(-0.5 * ((ys - p[..., 1:2]) / sigma) ** 2)            # (..., K, H)
    return torch.einsum("...kh,...kw->...hw", gy, gx)


def scene_softmax(logits: torch.Tensor, scene: torch.Tensor, n_scenes: int) -> torch.Tensor:
    """Per-pixel shares ``(S, ...)`` of the sources of each scene: a softmax over the sources
    with the same ``scene`` index ``(S,)`` (long, ``0..n_scenes-1``) and a background whose
    logit is 0, ``exp(l_k) / (1 + sum_{j in scene} exp(l_j))``; the shares of one scene sum to
    at most 1 in every pixel (flux conservation)."""
    idx = scene.view(-1, *([1] * (logits.ndim - 1))).expand_as(logits)
    top = torch.zeros((n_scenes,) + tuple(logits.shape[1:]), dtype=logits.dtype, device=logits.device)
    top = top.scatter_reduce(0, idx, logits.detach(), reduce="amax", include_self=True)   # >= 0 (background)
    e = torch.exp(logits - top[scene])
    denom = torch.exp(-top).index_add(0, scene, e)
    return e / denom[scene]


@dataclass
class UNetDeblenderConfig(UNetConfig):
    """Hyper-parameters of :class:`UNetDeblender`: its U-Net's (:class:`UNetConfig`) and the
    input encoding and output of the shares."""

    blob_sigma: float = setting(1.5, "positive float", unit="px", help="sigma of the Gaussian position blobs")
    residual_scale: float = setting(0.0, "non-negative float",
                                    help="weight of the unconstrained residual output (0: shares only)")
    seg_prior: float = setting(3.0, "non-negative float",
                               help="logit bonus in the source's own segment (malus outside it)")


@register_net("unet", UNetDeblenderConfig, kind="deblender")
class UNetDeblender(nn.Module):
    """Isolated images of the sources of scenes from (blend, positions, segments) (module
    docstring): per source a U-Net gives per-band share logits and a residual; the shares are
    a softmax over the sources of the scene (+ background)."""

    def __init__(self, cfg: UNetDeblenderConfig, *, n_bands: int):
        super().__init__()
        self.n_bands, self.blob_sigma = n_bands, cfg.blob_sigma
        self.residual_scale, self.seg_prior = cfg.residual_scale, cfg.seg_prior
        self.unet = UNet(cfg, in_channels=n_bands + 4, out_channels=2 * n_bands)
        nn.init.zeros_(self.unet.head.weight)    # start from the segmentation-map shares and no residual
        nn.init.zeros_(self.unet.head.bias)

    @staticmethod
    def scale(image: torch.Tensor, variance: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """Per-source scale ``s`` ``(S,)`` (module docstring) of scenes ``image`` ``(S, C, H, W)``:
        the mean pixel value over the bands and the 5x5 px box at ``xy``, at least the
        background noise per pixel (root of the band-mean median variance)."""
        s, _, h, w = image.shape
        box = torch.nn.functional.avg_pool2d(image.mean(1)[:, None], 5, stride=1, padding=2,
                                             count_include_pad=False)[:, 0]
        ix = xy[:, 0].round().long().clamp(0, w - 1)
        iy = xy[:, 1].round().long().clamp(0, h - 1)
        level = box[torch.arange(s), iy, ix]
        # contiguous: torch's median returns NaN on a flattened broadcast (stride-0) variance
        noise = variance.contiguous().flatten(2).median(-1).values.mean(1).clamp_min(1e-30).sqrt()
        return torch.maximum(level, noise)

    def forward(self, image: torch.Tensor, variance: torch.Tensor, xy: torch.Tensor, others: torch.Tensor,
                segments: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        """``image``/``variance`` ``(S, C, H, W)`` (the scene of each source), ``xy`` ``(S, 2)``,
        ``others`` ``(S, K, 2)`` (the other sources of its scene, NaN padding), ``segments``
        ``(S, 2, H, W)`` (1 in the source's own segment / in the other sources' segments, else
        0), ``scene`` ``(S,)`` the scene index of each source (shares are normalised within a
        scene; ``None``: all sources belong to one scene) -> isolated images ``(S, C, H, W)`` in
        the units of ``image``."""
        if scene is None:
            scene = torch.zeros(len(xy), dtype=torch.long, device=xy.device)
        s = self.scale(image, variance, xy)[:, None, None, None]
        shape = tuple(image.shape[-2:])
        segments = segments.to(image.dtype)
        out = self.unet(torch.cat([torch.asinh(image / s), blobs(xy[:, None], shape, self.blob_sigma)[:, None],
                                   blobs(others, shape, self.blob_sigma)[:, None], segments], dim=1))
        logits = out[:, :self.n_bands] + self.seg_prior * (2 * segments[:, :1] - 1)
        share = scene_softmax(logits, scene, int(scene.max()) + 1 if len(scene) else 1)
        return share * image + self.residual_scale * out[:, self.n_bands:] * s


@dataclass
class NoiselessDeblenderConfig(UNetConfig):
    """Hyper-parameters of :class:`NoiselessDeblender`: its U-Net's and the position blobs."""

    blob_sigma: float = setting(1.5, "positive float", unit="px", help="sigma of the Gaussian position blobs")


@register_net("noiseless", NoiselessDeblenderConfig, kind="deblender")
class NoiselessDeblender(nn.Module):
    """Noise-free isolated images of the sources of scenes (module docstring); inputs and
    outputs as :meth:`UNetDeblender.forward` (``scene`` is accepted and unused: each source's
    image is predicted on its own, conditioned on the positions and segments of the others)."""

    def __init__(self, cfg: NoiselessDeblenderConfig, *, n_bands: int):
        super().__init__()
        self.n_bands, self.blob_sigma = n_bands, cfg.blob_sigma
        self.unet = UNet(cfg, in_channels=n_bands + 4, out_channels=n_bands)
        nn.init.zeros_(self.unet.head.weight)    # start from segmentation photometry
        nn.init.zeros_(self.unet.head.bias)

    def forward(self, image: torch.Tensor, variance: torch.Tensor, xy: torch.Tensor, others: torch.Tensor,
                segments: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        s = UNetDeblender.scale(image, variance, xy)[:, None, None, None]
        shape = tuple(image.shape[-2:])
        segments = segments.to(image.dtype)
        a = torch.asinh(image / s)
        out = self.unet(torch.cat([a, blobs(xy[:, None], shape, self.blob_sigma)[:, None],
                                   blobs(others, shape, self.blob_sigma)[:, None], segments], dim=1))
        return s * torch.sinh((segments[:, :1] * a + out).clamp(-20.0, 20.0))


__all__ = ["UNetDeblender", "UNetDeblenderConfig", "NoiselessDeblender", "NoiselessDeblenderConfig", "blobs",
           "scene_softmax"]
