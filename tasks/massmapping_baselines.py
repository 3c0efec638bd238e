"""The classical mass-mapping baselines (models ``ks`` and ``wiener``; definitions in
:mod:`cosmobench.tasks.massmapping`'s docstring), on flat ``(B, 2, H, W)`` and HEALPix
``(B, 2, npix)`` shear; pixel sides in arcmin."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cosmobench.settings import setting
from cosmobench.sim import cosmology as cosmo
from cosmobench.task import FittedBaseline

KS_GRID_PIX = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)  #: KS smoothing candidates (pixels) for smoothing=null
N_FIT_MAPS = 64  #: training maps used to choose the KS smoothing

@dataclass
class KSSettings:
    """The ``model`` node of the ``ks`` baseline."""

    smoothing_arcmin: float | None = setting(None, "non-negative float or null", unit="arcmin",
                                             help="Gaussian smoothing (standard deviation); null: chosen on the "
                                                  "training maps")


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def nside_of(npix: int) -> int:
    import healpy as hp
    return int(hp.npix2nside(int(npix)))


# --------------------------------------------------------------------------- baselines


class KSBaseline(FittedBaseline):
    """Smoothed Kaiser–Squires (module docstring). Works on flat ``(B, 2, H, W)`` and HEALPix
    ``(B, 2, npix)`` shear."""

    def __init__(self, smoothing_arcmin: float | None, pixel_arcmin: float):
        super().__init__()
        self.pixel_arcmin = float(pixel_arcmin)
        self.smoothing = None if smoothing_arcmin is None else float(smoothing_arcmin)

    def reconstruct(self, gamma: np.ndarray, mask: np.ndarray, smoothing: float, pixel_arcmin: float) -> np.ndarray:
        if gamma.ndim == 4:  # flat
            k = cosmo.ks_inverse(gamma[:, 0] * mask[:, 0], gamma[:, 1] * mask[:, 0])
            return cosmo.gaussian_smooth(k, smoothing, pixel_arcmin)[:, None]
        from cosmobench.sim import healpix as hpx
        return np.stack([hpx.ks_inverse(g[0], g[1], m[0], smoothing) for g, m in zip(gamma, mask)])[:, None]

    def fit(self, data):
        if self.smoothing is not None:
            return
        g, k, m = (data[x][:N_FIT_MAPS].astype(np.float64) for x in ("gamma", "kappa", "mask"))
        pix = self.pixel_arcmin if g.ndim == 4 else pixel_arcmin_of(g.shape[-1])
        errs = [np.mean(((self.reconstruct(g, m, s * pix, pix) - k) ** 2)[m > 0]) for s in KS_GRID_PIX]
        self.smoothing = float(KS_GRID_PIX[int(np.argmin(errs))] * pix)

    def state(self):
        return {"smoothing": torch.tensor(float(self.smoothing if self.smoothing is not None else -1.0))}

    def load_state(self, state):
        s = float(state["smoothing"])
        self.smoothing = None if s < 0 else s

    def forward(self, gamma: torch.Tensor, mask: torch.Tensor, pixel_arcmin: float, noise=None) -> torch.Tensor:
        out = self.reconstruct(as_numpy(gamma), as_numpy(mask), float(self.smoothing or 0.0), pixel_arcmin)
        return torch.as_tensor(out, dtype=torch.float32, device=gamma.device)


def pixel_arcmin_of(npix: int) -> float:
    from cosmobench.sim.healpix import pixel_arcmin
    return pixel_arcmin(nside_of(npix))


class WienerBaseline(FittedBaseline):
    """Fourier/harmonic-space Wiener filter with the signal spectrum fitted on the training
    maps (module docstring)."""

    def __init__(self, sigma_pix: float, pixel_arcmin: float):
        super().__init__()
        self.sigma_pix, self.pixel_arcmin = float(sigma_pix), float(pixel_arcmin)
        self.ell = torch.zeros(0)
        self.power = torch.zeros(0)

    def fit(self, data):
        k = data["kappa"].astype(np.float64)
        m = data["mask"].astype(np.float64)
        if k.ndim == 4:  # flat: 2-D power in fine |ell| bins (width = the fundamental mode)
            shape = k.shape[-2:]
            l1, l2 = cosmo.ell_grid(shape, self.pixel_arcmin)
            ell = np.hypot(l1, l2)
            kk = k[:, 0] - k[:, 0].mean(axis=(-2, -1), keepdims=True)
            p = np.mean(np.abs(np.fft.fft2(kk)) ** 2, axis=0) * (self.pixel_arcmin * cosmo.ARCMIN) ** 2 / kk[0].size
            step = ell[0, 1] if shape[1] > 1 else ell[1, 0]
            edges = np.arange(0.5 * step, ell.max() + step, step)
            which = np.digitize(ell.ravel(), edges) - 1
            ok = which >= 0
            cnt = np.bincount(which[ok], minlength=len(edges))
            s = np.bincount(which[ok], weights=p.ravel()[ok], minlength=len(edges))
            keep = cnt > 0
            centres = np.bincount(which[ok], weights=ell.ravel()[ok], minlength=len(edges))[keep] / cnt[keep]
            self.ell = torch.tensor(centres)
            self.power = torch.tensor(s[keep] / cnt[keep])
        else:
            import healpy as hp
            fsky = np.mean(m[:, 0] > 0, axis=1)
            cls = [hp.anafast(ki[0] * mi[0]) / max(f, 1e-6) for ki, mi, f in zip(k, m, fsky)]
            self.power = torch.tensor(np.mean(cls, axis=0))
            self.ell = torch.arange(len(self.power), dtype=torch.float64)

    def state(self):
        return {"ell": self.ell, "power": self.power}

    def load_state(self, state):
        self.ell, self.power = state["ell"].double(), state["power"].double()

    def signal(self, ell: np.ndarray) -> np.ndarray:
        return np.interp(ell, self.ell.numpy(), self.power.numpy(), left=float(self.power[0]), right=0.0)

    def forward(self, gamma: torch.Tensor, mask: torch.Tensor, pixel_arcmin: float, noise=None) -> torch.Tensor:
        g, m = as_numpy(gamma), as_numpy(mask)
        sig2 = np.full(len(g), self.sigma_pix ** 2)
        if noise is not None:  # per-pixel noise maps: their mean variance inside the mask
            nz = as_numpy(noise)
            sig2 = np.array([np.mean(n[mm_ > 0] ** 2) for n, mm_ in zip(nz, m)])
        if g.ndim == 4:
            # kappa_hat = S D* gamma_hat / (S |D|^2 + N): the per-mode Wiener estimate from both
            # shear components (|D| < 1 on the Nyquist lines of even grids, where dividing by D
            # first would amplify the noise)
            l1, l2 = cosmo.ell_grid(g.shape[-2:], pixel_arcmin)
            s = self.signal(np.hypot(l1, l2))
            c, sn = cosmo.ks_kernel(g.shape[-2:])
            out = []
            for gi, mi, v in zip(g, m, sig2):
                n = v * (pixel_arcmin * cosmo.ARCMIN) ** 2
                num = s * (c * np.fft.fft2(gi[0] * mi[0]) + sn * np.fft.fft2(gi[1] * mi[0]))
                out.append(np.fft.ifft2(num / np.maximum(s * (c ** 2 + sn ** 2) + n, 1e-300)).real[None])
            res = np.stack(out)
        else:
            from cosmobench.sim import healpix as hpx
            nside = nside_of(g.shape[-1])
            lmax = hpx.default_lmax(nside)
            s = self.signal(np.arange(lmax + 1, dtype=float))
            f2 = hpx.ks_factor(lmax) ** 2  # gamma_E = f kappa: F = S f^2 / (S f^2 + N) on E / f
            res = np.stack([hpx.harmonic_filter(s * f2 / np.maximum(s * f2 + hpx.white_noise_cl(np.sqrt(v), nside),
                                                                     1e-300), gi[0], gi[1], mi[0], lmax)[None]
                            for gi, mi, v in zip(g, m, sig2)])
        return torch.as_tensor(res, dtype=torch.float32, device=gamma.device)
