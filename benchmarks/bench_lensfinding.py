"""Lens-image simulation speed: cosmobench's batched torch simulator vs lenstronomy (``peers`` extra).

Both make the same kind of image: 64 x 64 px at 0.2"/px, 3 bands, an SIE + external shear lens
ray-traced to an elliptical Sérsic source, an elliptical Sérsic lens light, a Gaussian PSF
(per band) and noise, with the same sub-pixel sampling (``oversample`` = lenstronomy's
``supersampling_factor``). Ours: :class:`cosmobench.sim.lensing.LensSimulator` with every sample
a lens (``lens_fraction=1``, source clumps off), batches of 256, parameters and noise from
per-sample generators. lenstronomy: one ``ImageModel`` per band call (it ray-traces per call),
random parameters from the same priors, Poisson + Gaussian background noise
(``image_util.add_poisson`` / ``add_background``). Both run in this process, in one run, on the
CPU, on one core each: torch with one thread, lenstronomy in numpy
(single-threaded elementwise work).

Also printed: the largest difference between our SIE + shear deflection and lenstronomy's
(``SIE`` + ``SHEAR``) on random positions, a check that both solve the same lens equation.

Usage: ``python -m benchmarks lensfinding`` or ``python benchmarks/bench_lensfinding.py
[--oversample 1 2 3] [--batches 2] [--n-peer 30]``. Target: ours >= 50x lenstronomy.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

BATCH = 256
TARGET = 50.0


def ours(oversample: int, batches: int, threads: int = 1) -> float:
    """Images/s of the batched torch simulator (3 bands, 64 x 64 px) on ``threads`` torch threads."""
    from cosmobench.sim.lensing import LensSimConfig, LensSimulator
    sim = LensSimulator(LensSimConfig(image_size=64, oversample=oversample, lens_fraction=1.0, clump_prob=0.0))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        sim.simulate(np.arange(BATCH), "train", 0)  # warm-up (imports, allocator)
        t0 = time.perf_counter()
        for b in range(batches):
            sim.simulate(np.arange((b + 1) * BATCH, (b + 2) * BATCH), "train", 0)
        return batches * BATCH / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)


def _lenstronomy_models(oversample: int):
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util import simulation_util as sim_util

    from cosmobench.sim.lensing import LensSimConfig
    cfg = LensSimConfig(image_size=64)
    models = []
    for fwhm, sky in zip(cfg.psf_fwhm, cfg.sky_counts()):
        data = ImageData(**sim_util.data_configure_simple(64, cfg.pixel_scale, 1.0, float(np.sqrt(sky))))
        psf = PSF(psf_type="GAUSSIAN", fwhm=fwhm, pixel_size=cfg.pixel_scale, truncation=3)
        models.append(ImageModel(data, psf, lens_model_class=LensModel(["SIE", "SHEAR"]),
                                 source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                                 lens_light_model_class=LightModel(["SERSIC_ELLIPSE"]),
                                 kwargs_numerics={"supersampling_factor": oversample}))
    return models, cfg


def _lenstronomy_kwargs(rng: np.random.Generator):
    from lenstronomy.Util import param_util
    phi, q = rng.uniform(0, np.pi), rng.uniform(0.5, 1.0)
    e1, e2 = param_util.phi_q2_ellipticity(phi, q)
    le1, le2 = param_util.phi_q2_ellipticity(phi + rng.normal(0, 0.17), np.clip(q + rng.normal(0, 0.05), 0.4, 1.0))
    se1, se2 = param_util.phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.3, 1.0))
    te = rng.uniform(0.8, 3.0)
    r, a = 0.8 * te * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
    kl = [dict(theta_E=te, e1=le1, e2=le2, center_x=0.0, center_y=0.0),
          dict(gamma1=rng.normal(0, 0.05), gamma2=rng.normal(0, 0.05), ra_0=0.0, dec_0=0.0)]
    ks = [dict(amp=rng.uniform(5, 50), R_sersic=rng.uniform(0.15, 0.6), n_sersic=rng.uniform(0.5, 3.0), e1=se1,
               e2=se2, center_x=r * np.cos(a), center_y=r * np.sin(a))]
    kll = [dict(amp=rng.uniform(50, 500), R_sersic=rng.uniform(0.5, 2.0), n_sersic=rng.uniform(2.5, 5.5), e1=e1,
                e2=e2, center_x=0.0, center_y=0.0)]
    return kl, ks, kll


def lenstronomy_rate(oversample: int, n: int) -> float:
    """3-band images/s of lenstronomy's ImageModel (+ noise), random parameters per image."""
    from lenstronomy.Util import image_util
    models, cfg = _lenstronomy_models(oversample)
    rng = np.random.default_rng(0)
    sky = cfg.sky_counts()
    models[0].image(*_lenstronomy_kwargs(rng))  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        kw = _lenstronomy_kwargs(rng)
        for b, model in enumerate(models):
            img = model.image(*kw)
            img = img + image_util.add_poisson(np.clip(img + sky[b], 0, None), 1.0) + \
                image_util.add_background(img, 5.0)
    return n / (time.perf_counter() - t0)


def deflection_difference() -> float:
    """Largest |alpha_ours - alpha_lenstronomy| (arcsec) of SIE + shear on random positions."""
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.Util import param_util

    from cosmobench.sim.lensing import shear_deflection, sie_deflection
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-6, 6, 2000), rng.uniform(-6, 6, 2000)
    worst = 0.0
    for _ in range(20):
        te, q, phi = rng.uniform(0.8, 3.0), rng.uniform(0.3, 1.0), rng.uniform(0, np.pi)
        g1, g2, x0, y0 = rng.normal(0, 0.05), rng.normal(0, 0.05), rng.normal(0, 0.1), rng.normal(0, 0.1)
        e1, e2 = param_util.phi_q2_ellipticity(phi, q)
        ax, ay = LensModel(["SIE", "SHEAR"]).alpha(x, y, [dict(theta_E=te, e1=e1, e2=e2, center_x=x0, center_y=y0),
                                                          dict(gamma1=g1, gamma2=g2, ra_0=x0, dec_0=y0)])
        sx, sy = sie_deflection(x, y, te, q, phi, x0, y0)
        hx, hy = shear_deflection(x, y, g1, g2, x0, y0)
        worst = max(worst, float(np.max(np.hypot(sx + hx - ax, sy + hy - ay))))
    return worst


def rows(quick: bool = False, oversamples=(1, 2, 3), batches: int = 2, n_peer: int = 30) -> list[dict]:
    try:
        import lenstronomy  # noqa: F401
    except ImportError:
        return [{"benchmark": "lensfinding", "case": "lens simulation vs lenstronomy", "value": "skipped",
                 "unit": "", "target": f">= {TARGET:g}x", "note": "pip install 'cosmobench[peers]' for lenstronomy"}]
    if quick:
        oversamples, batches, n_peer = (2,), 1, 10
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in oversamples:
            a, b = ours(s, batches), lenstronomy_rate(s, n_peer)
            note = f"ours {a:.0f} img/s (torch, 1 thread), lenstronomy {b:.1f} img/s"
            out.append({"benchmark": "lensfinding", "case": f"64x64x3 lens images, oversample {s}",
                        "value": f"{a / b:.1f}", "unit": "x lenstronomy", "target": f">= {TARGET:g}x", "note": note})
        out.append({"benchmark": "lensfinding", "case": "SIE+shear deflection vs lenstronomy",
                    "value": f"{deflection_difference():.1e}", "unit": "arcsec (max |d alpha|)", "target": "",
                    "note": "same lens equation"})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oversample", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--batches", type=int, default=2, help="timed batches of 256 of ours")
    ap.add_argument("--n-peer", type=int, default=30, help="timed lenstronomy images")
    args = ap.parse_args(argv)
    for r in rows(False, tuple(args.oversample), args.batches, args.n_peer):
        print(f"{r['case']:<40} {r['value']:>8} {r['unit']:<22} {r['target']:<8} {r['note']}")


if __name__ == "__main__":
    main()
