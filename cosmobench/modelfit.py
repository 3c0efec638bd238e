"""Model-fitting deblending: a simultaneous, variance-weighted fit of PSF-convolved parametric
galaxy profiles to every detection of a scene (the approach of The Tractor, Lang, Hogg &
Mykytyn 2016, and SourceExtractor++, Bertin et al. 2020), in torch and batched over scenes.

Model of a scene (``C`` bands, ``K`` detections): ``M_b = sum_k sum_c f_kcb (P_b * S_kc)``, with
``S_kc`` a unit-flux Sérsic profile (component ``c`` of source ``k``), ``P_b`` the band's PSF
(unit sum, FFT convolution with zero padding: flux leaving the stamp is lost, as in the
simulator) and ``f_kcb >= 0`` the component's flux in band ``b``. Profiles
(``model.profile``): ``sersic`` (one component per source, index ``n`` in [0.5, 6]) or
``bulge_disk`` (an exponential disk, ``n = 1``, plus a bulge of index in [1.5, 6] and
half-light radius a fraction in [0.05, 1] of the disk's, sharing the centre; each with its own
axis ratio and orientation, and each its own fluxes per band: colour gradients are allowed).
Shapes are the half-light semi-major axis ``r_e`` (px, in [0.3, H/2]), and the reduced shear
``(g1, g2)`` (``|g| < 0.85``; axis ratio ``q = (1 - |g|)/(1 + |g|)``, position angle
``atan2(g2, g1) / 2``); centres move at most 2 px from the detection.

Fit: the fluxes are the weighted linear least-squares solution given the shapes (per band,
weights ``1/variance``, masked pixels 0; negative fluxes clipped to 0), so only the
non-linear shape parameters are optimised, by Adam (``model.fit_steps`` steps of learning
rate ``model.fit_lr``) on ``chi^2 = sum (image - M)^2 / variance`` per scene. Profiles are
integrated on an ``model.fit_oversample``² sub-pixel grid and normalised analytically
(``F = 2 pi q r_e^2 I_e n e^{b_n} b_n^{-2n} Gamma(2n)``; ``b_n`` from Ciotti & Bertin 1999's
expansion, differentiable). Each source's deblended image is its own PSF-convolved model
(noise-free, wings included). Nothing is learned from the training split.

Written in torch (no scarlet2/JAX dependency): the fit is ~100 lines, runs batched on the
same device as the networks, and needs no extra package.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cosmobench.detection import DetectionSettings
from cosmobench.settings import setting


@dataclass
class ModelFitSettings(DetectionSettings):
    """The ``modelfit`` model's settings: its detection stage and the fit (module docstring).
    No search space (a test pass costs minutes of CPU)."""

    SEARCH_SPACE = {}

    profile: str = setting("bulge_disk", ["sersic", "bulge_disk"], help="parametric profile of every source")
    fit_steps: int = setting(150, "positive int", help="Adam steps of the shape parameters")
    fit_lr: float = setting(0.05, "positive float", help="Adam learning rate of the (unbounded) shape parameters")
    fit_oversample: int = setting(2, "positive int", help="sub-pixels per pixel side of the profile integration")


def sersic_bn(n: torch.Tensor) -> torch.Tensor:
    """``b_n`` (half light inside ``r_e``), Ciotti & Bertin (1999)'s asymptotic expansion
    (relative error < 1e-4 for ``n >= 0.36``), differentiable in ``n``."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n ** 2) + 131 / (1148175 * n ** 3)


def sersic_images(xy: torch.Tensor, r_e: torch.Tensor, n: torch.Tensor, g: torch.Tensor, shape: tuple[int, int],
                  oversample: int) -> torch.Tensor:
    """Unit-total-flux Sérsic profiles integrated over pixels: centres ``xy`` ``(..., 2)`` px,
    half-light semi-major axes ``r_e`` ``(...)`` px, indices ``n`` ``(...)``, reduced shears
    ``g`` ``(..., 2)`` (module docstring) -> ``(..., H, W)``. Flux outside the stamp is lost."""
    h, w = shape
    o = int(oversample)
    sub = (torch.arange(o, dtype=xy.dtype, device=xy.device) + 0.5) / o - 0.5
    ys = (torch.arange(h, dtype=xy.dtype, device=xy.device)[:, None] + sub).reshape(-1)    # (h o)
    xs = (torch.arange(w, dtype=xy.dtype, device=xy.device)[:, None] + sub).reshape(-1)
    dx = xs - xy[..., 0:1]                                              # (..., W o)
    dy = ys - xy[..., 1:2]                                              # (..., H o)
    gm = g.square().sum(-1).clamp_min(1e-12).sqrt()
    a = 0.5 * (1 + ((1 + gm) / (1 - gm)) ** 2)
    c = -2 / (1 - gm) ** 2
    m11, m22, m12 = a + c * g[..., 0], a - c * g[..., 0], c * g[..., 1]  # r^2 = d^T M d (major-axis radius)
    r2 = (m11[..., None, None] * dx[..., None, :] ** 2 + m22[..., None, None] * dy[..., :, None] ** 2
          + 2 * m12[..., None, None] * dx[..., None, :] * dy[..., :, None])
    q = (1 - gm) / (1 + gm)
    b = sersic_bn(n)
    log_norm = (math.log(2 * math.pi) + torch.log(q) + 2 * torch.log(r_e) + torch.log(n) + b
                - 2 * n * torch.log(b) + torch.lgamma(2 * n))
    rr = (r2.clamp_min(1e-12).sqrt() / r_e[..., None, None]) ** (1 / n[..., None, None])
    img = torch.exp(-b[..., None, None] * (rr - 1) - log_norm[..., None, None])
    lead = img.shape[:-2]
    return img.reshape(*lead, h, o, w, o).mean((-3, -1))


class PSFConvolution:
    """Linear (zero-padded) FFT convolution of ``(..., H, W)`` images with per-band PSFs
    ``(C, h, w)`` (unit sum), centred: ``(..., H, W) -> (..., C, H, W)``."""

    def __init__(self, psfs: torch.Tensor, shape: tuple[int, int]):
        psfs = psfs / psfs.sum((-2, -1), keepdim=True)
        self.shape, self.kshape = shape, tuple(psfs.shape[-2:])
        self.full = (shape[0] + self.kshape[0] - 1, shape[1] + self.kshape[1] - 1)
        self.kf = torch.fft.rfft2(psfs, s=self.full)                    # (C, ., .)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        f = torch.fft.rfft2(images, s=self.full)[..., None, :, :] * self.kf
        out = torch.fft.irfft2(f, s=self.full)
        i0, j0 = (self.kshape[0] - 1) // 2, (self.kshape[1] - 1) // 2
        return out[..., i0:i0 + self.shape[0], j0:j0 + self.shape[1]]


def _squash(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.sigmoid(u)


def _unsquash(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    f = ((v - lo) / (hi - lo)).clamp(1e-4, 1 - 1e-4)
    return torch.log(f / (1 - f))


def _shear(u: torch.Tensor) -> torch.Tensor:
    norm = u.square().sum(-1, keepdim=True).add(1e-12).sqrt()
    return u * (0.85 * torch.tanh(norm) / norm)


class SceneFit:
    """The simultaneous fit of one batch of scenes (module docstring). ``image``, ``variance``
    ``(B, C, H, W)``, ``mask`` ``(B, H, W)`` bool (True = bad) or None, detections ``xy``
    ``(B, K, 2)`` with NaN padding, initial half-light radii ``r_init`` ``(B, K)`` px (or None:
    2 px), PSFs ``(C, h, w)``."""

    def __init__(self, settings: ModelFitSettings, image: torch.Tensor, variance: torch.Tensor,
                 mask: torch.Tensor | None, xy: torch.Tensor, psfs: torch.Tensor, r_init: torch.Tensor | None = None):
        self.cfg = settings
        dt = torch.float64
        self.image = image.to(dt)
        self.weight = 1.0 / variance.to(dt).clamp_min(1e-30)
        if mask is not None:
            self.weight = self.weight * (~mask.bool())[:, None].to(dt)
        self.valid = torch.isfinite(xy).all(-1)                             # (B, K)
        self.xy0 = torch.where(self.valid[..., None], xy.to(dt), torch.zeros((), dtype=dt))
        self.shape = tuple(image.shape[-2:])
        self.conv = PSFConvolution(psfs.to(dt).to(image.device), self.shape)
        b, k = self.valid.shape
        r0 = torch.full((b, k), 2.0, dtype=dt) if r_init is None else r_init.to(dt).clamp(1.0, 8.0)
        r0 = r0.to(image.device)
        self.r_hi = max(self.shape) / 2
        zeros = torch.zeros((b, k), dtype=dt, device=image.device)
        self.params = {"dxy": torch.zeros((b, k, 2), dtype=dt, device=image.device),
                       "r": _unsquash(r0, 0.3, self.r_hi), "g": torch.zeros((b, k, 2), dtype=dt, device=image.device)
                       + 1e-3, "n": _unsquash(zeros + 1.0, 0.5, 6.0)}
        if settings.profile == "bulge_disk":
            self.params.update(bulge_frac=_unsquash(zeros + 0.3, 0.05, 1.0), bulge_n=_unsquash(zeros + 3.0, 1.5, 6.0),
                               bulge_g=torch.zeros((b, k, 2), dtype=dt, device=image.device) + 1e-3)
        for p in self.params.values():
            p.requires_grad_(True)

    def shapes(self) -> dict[str, torch.Tensor]:
        """Physical shape parameters of every source (and of its bulge with ``bulge_disk``)."""
        p = self.params
        out = {"xy": self.xy0 + 2.0 * torch.tanh(p["dxy"]), "r_e": _squash(p["r"], 0.3, self.r_hi),
               "g": _shear(p["g"])}
        if self.cfg.profile == "sersic":
            out["n"] = _squash(p["n"], 0.5, 6.0)
        else:
            out["n"] = torch.ones_like(out["r_e"])
            out["bulge_r_e"] = out["r_e"] * _squash(p["bulge_frac"], 0.05, 1.0)
            out["bulge_n"] = _squash(p["bulge_n"], 1.5, 6.0)
            out["bulge_g"] = _shear(p["bulge_g"])
        return out

    def templates(self, sh: dict[str, torch.Tensor]) -> torch.Tensor:
        """PSF-convolved unit-flux components ``(B, K, J, C, H, W)`` (``J`` = 1 or 2)."""
        o = self.cfg.fit_oversample
        comps = [sersic_images(sh["xy"], sh["r_e"], sh["n"], sh["g"], self.shape, o)]
        if self.cfg.profile == "bulge_disk":
            comps.append(sersic_images(sh["xy"], sh["bulge_r_e"], sh["bulge_n"], sh["bulge_g"], self.shape, o))
        t = self.conv(torch.stack(comps, 2))
        return t * self.valid[..., None, None, None, None].to(t.dtype)

    def fluxes(self, t: torch.Tensor) -> torch.Tensor:
        """Weighted least-squares fluxes ``(B, K, J, C)`` (clipped at 0) of templates ``t``."""
        b, k, j, c = t.shape[:4]
        a = t.reshape(b, k * j, c, -1).transpose(1, 2)                       # (B, C, KJ, P)
        w = self.weight.reshape(b, c, 1, -1)
        d = self.image.reshape(b, c, -1, 1)
        ata = (a * w) @ a.transpose(-1, -2)
        atb = (a * w) @ d
        diag = torch.diagonal(ata, dim1=-2, dim2=-1)
        ridge = 1e-9 * diag.amax(-1, keepdim=True).clamp_min(1e-30) + (diag <= 0) * 1.0
        f = torch.linalg.solve(ata + torch.diag_embed(ridge), atb)[..., 0]   # (B, C, KJ)
        return f.clamp_min(0).transpose(1, 2).reshape(b, k, j, c)

    def models(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-source model images ``(B, K, C, H, W)`` and the shapes and fluxes."""
        sh = self.shapes()
        t = self.templates(sh)
        f = self.fluxes(t)
        sh["flux"] = f
        return (f[..., None, None] * t).sum(2), sh

    def chi2(self) -> torch.Tensor:
        model, _ = self.models()
        return ((self.image - model.sum(1)) ** 2 * self.weight).sum((1, 2, 3))

    def run(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Optimise; returns the final models and parameters (detached)."""
        if self.valid.any():
            opt = torch.optim.Adam(list(self.params.values()), lr=self.cfg.fit_lr)
            with torch.enable_grad():
                for _ in range(self.cfg.fit_steps):
                    opt.zero_grad()
                    loss = self.chi2()
                    scale = (self.weight > 0).sum((1, 2, 3)).clamp_min(1)      # per-scene chi2 per pixel
                    (loss / scale).sum().backward()
                    opt.step()
        with torch.no_grad():
            model, sh = self.models()
        return model, {k: v.detach() for k, v in sh.items()}


def fit_scenes(settings: ModelFitSettings, image: torch.Tensor, variance: torch.Tensor, mask: torch.Tensor | None,
               positions: list, psfs, r_init: list | None = None) -> tuple[list, dict[str, torch.Tensor]]:
    """Fit a batch of scenes ``(B, C, H, W)`` with their detections (a list of ``(M_b, 2)``
    arrays) -> per scene the model images ``(M_b, C, H, W)`` (numpy float64) and the padded
    parameters (:meth:`SceneFit.models`)."""
    import numpy as np
    b = len(positions)
    k = max((len(p) for p in positions), default=0)
    if k == 0:
        return [np.zeros((0,) + tuple(image.shape[1:])) for _ in range(b)], {}
    xy = torch.full((b, k, 2), float("nan"), dtype=torch.float64)
    r0 = torch.full((b, k), 2.0, dtype=torch.float64)
    for i, p in enumerate(positions):
        xy[i, :len(p)] = torch.as_tensor(np.asarray(p, dtype=float).reshape(-1, 2))
        if r_init is not None:
            r0[i, :len(p)] = torch.as_tensor(np.asarray(r_init[i], dtype=float))
    # Lightning tests and predicts under inference mode: the fit needs autograd on fresh tensors
    with torch.inference_mode(False), torch.enable_grad():
        fit = SceneFit(settings, image.clone(), variance.clone(), None if mask is None else mask.clone(),
                       xy.to(image.device), torch.tensor(np.asarray(psfs, dtype=float)), r0)
        model, params = fit.run()
    return [model[i, :len(p)].cpu().numpy() for i, p in enumerate(positions)], params


__all__ = ["ModelFitSettings", "SceneFit", "PSFConvolution", "fit_scenes", "sersic_bn", "sersic_images"]
