"""Full-sky mass-mapping cost vs HEALPix resolution (nside 64-512), measured in one run.

* ``KS``: smoothed spherical Kaiser–Squires of one shear map (healpy ``map2alm_spin`` +
  ``alm2map``, ``lmax = 3 nside - 1``; the Wiener filter costs the same: only the harmonic
  filter differs);
* ``U-Net patches``: the registry-default U-Net (untrained, eval mode, batch 32) on every
  64 x 64 gnomonic patch at the HEALPix pixel scale that tiles a |b| > 30 deg footprint,
  re-assembled into the HEALPix map (:meth:`MassMappingTask.unet_healpix`); the one-off tiling
  set-up (projection tables, cached per mask in a run) is reported separately.

``python -m benchmarks massmapping`` (``--quick``: nside 64 and 128 only). Threads: torch's
default for this process. No assertions.
"""
from __future__ import annotations

import time

import numpy as np
import torch


def _timed(fn, repeat: int = 1) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def rows(quick: bool) -> list[dict]:
    from cosmobench import config
    from cosmobench.sim import healpix as H
    from cosmobench.tasks.massmapping import MassMappingTask

    out = []
    nsides = (64, 128) if quick else (64, 128, 256, 512)
    cfg = config.resolve("massmapping", "unet")
    for nside in nsides:
        npix = 12 * nside * nside
        rng = np.random.default_rng(0)
        mask = H.footprint_mask(nside, "band", 30.0)
        g1, g2 = rng.normal(0, 0.02, npix) * mask, rng.normal(0, 0.02, npix) * mask
        t_ks = _timed(lambda: H.ks_inverse(g1, g2, mask, smoothing_arcmin=2 * H.pixel_arcmin(nside)))
        out.append(dict(benchmark="massmapping", case=f"full-sky KS, nside {nside}", value=f"{t_ks:.3f}",
                        unit="s/map", target="", note=f"lmax {3 * nside - 1}, {npix:,} px"))
        info = {"sky": "healpix", "pixel_arcmin": H.pixel_arcmin(nside), "sigma_pix": 0.02, "kappa_std": 0.01,
                "gamma_std": 0.02, "patch_size": 64}
        task = MassMappingTask(model=cfg["model"], optim=cfg["optim"], data_info=info).eval()
        t0 = time.perf_counter()
        tiling = task.tiling(mask)
        t_tile = time.perf_counter() - t0
        gamma = torch.tensor(np.stack([g1, g2])[None], dtype=torch.float32)
        m = torch.tensor(mask[None, None], dtype=torch.float32)
        with torch.no_grad():
            t0 = time.perf_counter()
            task.unet_healpix(gamma, m)
            t_unet = time.perf_counter() - t0
        out.append(dict(benchmark="massmapping", case=f"U-Net on patches, nside {nside}", value=f"{t_unet:.2f}",
                        unit="s/map", target="", note=f"{tiling.n_patches} patches of 64^2; ratio to KS "
                                                      f"{t_unet / t_ks:.0f}x"))
        out.append(dict(benchmark="massmapping", case=f"patch tiling set-up, nside {nside}", value=f"{t_tile:.2f}",
                        unit="s", target="", note="once per mask"))
    return out


def main(argv=None) -> None:
    from benchmarks.__main__ import print_table
    print_table(rows(quick=False))


if __name__ == "__main__":
    main()
