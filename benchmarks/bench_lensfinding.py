"""Lens-image simulation speed: cosmobench's batched torch simulator vs lenstronomy (``peers`` extra).

Both make the same kind of image, in the same process and run, on the CPU: 64 x 64 px at 0.2"/px,
3 bands (g, r, i of :class:`cosmobench.sim.lensing.LensSimConfig`), an SIE + external shear lens
ray-traced to an elliptical Sérsic source, an elliptical Sérsic lens light, a Gaussian PSF per band
and noise, with the same sub-pixel sampling: ``oversample`` x ``oversample`` points per pixel,
binned, then convolved at pixel resolution (lenstronomy's ``supersampling_factor`` with its default
``supersampling_convolution=False``). Geometry priors are the simulator's (lenstronomy draws them
with numpy from the same ranges; its amplitudes are in its own units).

* **ours**: :meth:`cosmobench.sim.lensing.LensSimulator.simulate` with every sample a lens
  (``lens_fraction=1``, source clumps off), batches of 256 (float32). Per image it draws the
  parameters and the noise deviates from the sample's own ``torch.Generator``, evaluates the
  lens-light and lensed-source shapes once on the sub-pixel grid, scales them by per-band
  fluxes (colours), convolves each band with its PSF stamp (29 px, +-7 sigma of the widest band;
  banded separable matrix products that skip taps below 1e-7 of the peak, i.e. +-5.7 sigma) and
  adds Poisson (Gaussian limit) + read noise.
* **lenstronomy, per band**: one ``ImageModel`` per band (``SIE`` + ``SHEAR``,
  ``SERSIC_ELLIPSE`` source and lens light, ``PSF(GAUSSIAN, truncation=3)`` = scipy's
  ``gaussian_filter`` at +-3 sigma), ``ImageModel.image`` per band (so ray tracing and both
  profiles are evaluated per band, the way lenstronomy's multi-band simulations such as
  ``SimAPI`` are written), then ``image_util.add_poisson`` + ``add_background`` noise.
* **lenstronomy, shared shapes**: the same work arranged like ours: the lensed source and the
  lens light once per image (``ImageModel.source_surface_brightness`` /
  ``lens_surface_brightness`` with ``unconvolved=True``), then per band a colour scaling, the
  band's own lenstronomy convolution (``ImageNumerics.convolution_class``) and the same noise.
  The faster of the two lenstronomy rows is the reference of the headline ratio.

Threads: the headline rows run torch on one thread and lenstronomy in numpy (single-threaded
element-wise work), one core each. A further row runs ours on all cores, as one simulator process
of one torch thread per core started together (how DataLoader workers use them; torch's own
intra-op threads were slower than one thread on the shared machine: the work per op is small and
spinning OpenMP threads wait for busy cores).
Also printed: the largest difference between our SIE + shear deflection and lenstronomy's
(``SIE`` + ``SHEAR``) on random positions, a check that both solve the same lens equation.

The three are timed in interleaved rounds (one batch of ours, ``n_peer`` images of each
lenstronomy variant), so that they see the same load on a shared machine.

Usage: ``python -m benchmarks lensfinding`` or ``python benchmarks/bench_lensfinding.py
[--oversample 1 2 3] [--rounds 3] [--n-peer 20]``. Target: ours >= 50x lenstronomy.
``--breakdown`` prints instead the CPU time per image of each stage of ours (where the time goes).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch

BATCH = 256
TARGET = 50.0


def _our_simulator(oversample: int):
    from cosmobench.sim.lensing import LensSimConfig, LensSimulator
    return LensSimulator(LensSimConfig(image_size=64, oversample=oversample, lens_fraction=1.0, clump_prob=0.0))


def our_batch(sim, b: int) -> None:
    """One batch of 256 images (batch number ``b``: samples ``256 b .. 256 b + 255``)."""
    sim.simulate(np.arange(b * BATCH, (b + 1) * BATCH), "train", 0)


def _ours_worker(oversample: int, batches: int, first: int, barrier, queue) -> None:
    torch.set_num_threads(1)
    sim = _our_simulator(oversample)
    our_batch(sim, 0)  # warm-up
    barrier.wait()
    t0 = time.perf_counter()
    for b in range(batches):
        our_batch(sim, first + b)
    queue.put((batches * BATCH, t0, time.perf_counter()))


def ours_processes(oversample: int, batches: int, processes: int) -> float:
    """Images/s of ``processes`` simulator processes of one torch thread each, started together
    (how DataLoader workers use the cores): all images / (last end - first start)."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_ours_worker, args=(oversample, batches, 1 + p * batches, barrier, queue))
             for p in range(processes)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in results) / (max(r[2] for r in results) - min(r[1] for r in results))


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


def lenstronomy_simulator(oversample: int, shared: bool = False):
    """A function making one 3-band lenstronomy image (+ noise) from random parameters:
    ``ImageModel.image`` per band, or (``shared``) the two unconvolved shapes once and per band a
    colour scaling and the band's own convolution (module docstring)."""
    from lenstronomy.Util import image_util
    models, cfg = _lenstronomy_models(oversample)
    convs = [m.ImageNumerics.convolution_class for m in models]
    rng = np.random.default_rng(0)
    sky = cfg.sky_counts()

    def one():
        kl, ks, kll = _lenstronomy_kwargs(rng)
        if shared:
            src = models[0].source_surface_brightness(ks, kl, unconvolved=True)
            lens = models[0].lens_surface_brightness(kll, unconvolved=True)
            colours = rng.uniform(0.5, 2.0, (2, len(models)))
        for b, model in enumerate(models):
            if shared:
                img = convs[b].convolution2d(colours[0, b] * lens + colours[1, b] * src)
            else:
                img = model.image(kl, ks, kll)
            img = img + image_util.add_poisson(np.clip(img + sky[b], 0, None), 1.0) + \
                image_util.add_background(img, 5.0)
    return one


def rates(oversample: int, rounds: int, n_peer: int) -> tuple[float, float, float]:
    """Images/s of ours, lenstronomy per band and lenstronomy with shared shapes, measured in
    ``rounds`` interleaved rounds (one batch of 256 of ours, ``n_peer`` images of each
    lenstronomy variant), so that the three see the same machine load."""
    sim = _our_simulator(oversample)
    peers = [lenstronomy_simulator(oversample), lenstronomy_simulator(oversample, shared=True)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        our_batch(sim, 0)                    # warm-up (imports, allocator)
        for p in peers:
            p()
        spent = [0.0, 0.0, 0.0]
        for r in range(rounds):
            t0 = time.perf_counter()
            our_batch(sim, 1 + r)
            spent[0] += time.perf_counter() - t0
            for k, p in enumerate(peers):
                t0 = time.perf_counter()
                for _ in range(n_peer):
                    p()
                spent[1 + k] += time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    return rounds * BATCH / spent[0], rounds * n_peer / spent[1], rounds * n_peer / spent[2]


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


def rows(quick: bool = False, oversamples=(1, 2, 3), rounds: int = 3, n_peer: int = 20) -> list[dict]:
    try:
        import lenstronomy  # noqa: F401
    except ImportError:
        return [{"benchmark": "lensfinding", "case": "lens simulation vs lenstronomy", "value": "skipped",
                 "unit": "", "target": f">= {TARGET:g}x", "note": "pip install 'cosmobench[peers]' for lenstronomy"}]
    if quick:
        oversamples, rounds, n_peer = (2,), 1, 10
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in oversamples:
            a, per_band, shared = rates(s, rounds, n_peer)
            ref = max(per_band, shared)
            note = (f"ours {a:.0f} img/s (torch, 1 thread); lenstronomy {per_band:.0f} img/s per band, "
                    f"{shared:.0f} img/s shared shapes ({a / per_band:.1f}x / {a / shared:.1f}x)")
            out.append({"benchmark": "lensfinding", "case": f"64x64x3 lens images, oversample {s}",
                        "value": f"{a / ref:.1f}", "unit": "x lenstronomy", "target": f">= {TARGET:g}x", "note": note})
        cores = os.cpu_count() or 1
        if cores > 1:
            s = oversamples[-1]
            a = ours_processes(s, 2 * rounds, cores)
            out.append({"benchmark": "lensfinding", "case": f"ours on {cores} cores, oversample {s}",
                        "value": f"{a:.0f}", "unit": "img/s", "target": "",
                        "note": f"{cores} processes x 1 torch thread, like DataLoader workers; "
                                f"not comparable to the single-core lenstronomy rows"})
        out.append({"benchmark": "lensfinding", "case": "SIE+shear deflection vs lenstronomy",
                    "value": f"{deflection_difference():.1e}", "unit": "arcsec (max |d alpha|)", "target": "",
                    "note": "same lens equation"})
    return out


def breakdown(oversample: int, reps: int = 7) -> list[tuple[str, float]]:
    """CPU time per image (us, best of ``reps`` batches of 256, one torch thread) of the stages of
    our simulator (lens-only benchmark configuration), each timed on its own."""
    import math

    from cosmobench.sim import lensing as L
    from cosmobench.sim import profiles as P
    torch.set_num_threads(1)
    sim = _our_simulator(oversample)
    c, idx = sim.cfg, np.arange(BATCH, 2 * BATCH)

    def best(f) -> float:
        t = []
        for _ in range(reps):
            t0 = time.process_time()
            f()
            t.append(time.process_time() - t0)
        return min(t) / BATCH * 1e6

    u, gens, _ = sim.draw(idx, "train", 0)
    ul = u[:, L._U_LENS:L._U_LENS + 8]
    lens = (L._lerp(ul[:, 2], (0.5, 2.0)), L._lerp(ul[:, 1], (2.5, 5.5)), L._lerp(ul[:, 3], (0.5, 1.0)),
            ul[:, 4] * math.pi, (ul[:, 5] - 0.5) * c.pixel_scale, (ul[:, 6] - 0.5) * c.pixel_scale)
    g = torch.Generator().manual_seed(0)
    r = lambda lo, hi: lo + (hi - lo) * torch.rand(BATCH, generator=g, dtype=torch.float64)  # noqa: E731
    src = (r(0.8, 3.0), r(0.4, 1.0), r(0, np.pi), r(-.05, .05), r(-.05, .05), lens[4], lens[5], r(-1, 1), r(-1, 1),
           r(0.3, 1.0), r(0, np.pi))
    lplan = sim._sersic_plan(*lens)
    splan = sim._source_plan(*src) + sim._profile_plan(r(0.15, 0.6), r(0.5, 3.0), r(0.3, 1.0))
    chunks = sim._chunks(BATCH)

    def source(coords_only=False):
        for sl in chunks:
            p = sim._cut(splan, sl)
            bu, bv = sim._source_eval(p)
            if not coords_only:
                sim._bin(sim._sersic_from_r2(bu.mul_(bu).addcmul_(bv, bv), *p[16:20]))

    img = torch.rand(BATCH, c.n_bands, c.image_size, c.image_size) * 100
    t, flux = torch.rand(BATCH, c.image_size, c.image_size), torch.rand(BATCH, c.n_bands)
    z = torch.empty(sim.chunk, *img.shape[1:])

    def deviates():
        for sl in chunks:
            for i, gen in enumerate(gens[sl]):
                z[i].normal_(generator=gen)

    return [("total simulate()", best(lambda: sim.simulate(idx, "train", 0))),
            ("  parameters: sample keys, generators, 77 uniforms", best(lambda: sim.draw(idx, "train", 0))),
            ("  plans (per-sample coefficients, both profiles)",
             best(lambda: (sim._sersic_plan(*lens), sim._source_plan(*src)))),
            ("  lens light: Sersic on the sub-pixel grid, binned", best(lambda: [sim._sersic_eval(sim._cut(lplan, sl))
                                                                              for sl in chunks])),
            ("  lensed source: ray tracing + Sersic, binned", best(source)),
            ("    of which ray tracing (SIE + shear)", best(lambda: source(True))),
            ("  colours: 2 shapes x per-band fluxes", 2 * best(
                lambda: [img.index_add_(0, torch.arange(sl.start, sl.stop), flux[sl, :, None, None] * t[sl, None])
                         for sl in chunks])),
            ("  PSF: banded separable GEMMs", best(lambda: [sim.convolver(img[sl]) for sl in chunks])),
            ("  noise deviates: per-sample mt19937 randn", best(deviates)),
            ("  noise: Poisson (Gaussian limit) + read noise", best(
                lambda: [P.poisson_gaussian_noise(img[sl], sim.sky, z[:sl.stop - sl.start], c.read_noise, c.gain)
                         for sl in chunks]))]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oversample", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    ap.add_argument("--n-peer", type=int, default=20, help="lenstronomy images per round and variant "
                                                          "(ours: one batch of 256 per round)")
    ap.add_argument("--breakdown", action="store_true", help="instead: CPU time per image of each stage of ours")
    args = ap.parse_args(argv)
    if args.breakdown:
        for s in args.oversample:
            print(f"oversample {s}, one torch thread, CPU us per image (best of 7 batches of {BATCH}):")
            for name, us in breakdown(s):
                print(f"  {name:<55} {us:7.1f}")
        return
    for r in rows(False, tuple(args.oversample), args.rounds, args.n_peer):
        print(f"{r['case']:<40} {r['value']:>8} {r['unit']:<22} {r['target']:<8} {r['note']}")


if __name__ == "__main__":
    main()
