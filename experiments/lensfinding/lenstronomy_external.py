"""Render an external lens-finding test set with lenstronomy (the ``peers`` extra): a mass and
light model that cosmobench's own simulator (:mod:`cosmobench.sim.lensing`) does not use.

* lens mass: elliptical power law (``EPL``, slope gamma ~ U(1.8, 2.2), Tessore & Metcalf 2015)
  + external shear (|gamma_ext| < 0.05);
* lens light: bulge + disk (two ``SERSIC_ELLIPSE``: n = 4 and n = 1, shared centre);
* source: ``SERSIC_ELLIPSE`` (n ~ U(0.7, 2.5), R ~ U(0.1, 0.4)") at an offset < 0.6 theta_E;
* non-lenses: the same lens galaxies, no lensed source;
* 3 bands (g/r/i-like: redder lens, bluer source), Gaussian PSF 1.0" FWHM, Gaussian sky
  noise + Poisson noise of the galaxy counts.

Output: ``.npz`` with ``image`` ``(N, 3, S, S)`` float32 (counts) and ``label`` ``(N,)`` 0/1,
read by ``data.source=stack`` (``data.image_key=image``, ``data.label_key=label``).

Usage: ``python experiments/lensfinding/lenstronomy_external.py OUT.npz [N] [SIZE] [PIXEL_SCALE] [SEED]``
"""
from __future__ import annotations

import sys

import numpy as np


def render(n: int = 400, size: int = 32, pixel_scale: float = 0.3, seed: int = 7):
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util import param_util, simulation_util

    rng = np.random.default_rng(seed)
    kw_data = simulation_util.data_configure_simple(size, pixel_scale, exposure_time=1.0, background_rms=1.0)
    data = ImageData(**kw_data)
    psf = PSF(psf_type="GAUSSIAN", fwhm=1.0, pixel_size=pixel_scale, truncation=5)
    lens_model = LensModel(["EPL", "SHEAR"])
    lens_light = LightModel(["SERSIC_ELLIPSE", "SERSIC_ELLIPSE"])
    source_light = LightModel(["SERSIC_ELLIPSE"])
    model = ImageModel(data, psf, lens_model, source_light, lens_light, kwargs_numerics={"supersampling_factor": 2})
    lens_colour = np.array([0.4, 1.0, 1.6])   # g, r, i relative to r
    source_colour = np.array([1.3, 1.0, 0.8])
    sky_rms, gain = 4.0, 0.2
    images = np.empty((n, 3, size, size), np.float32)
    labels = (rng.random(n) < 0.5).astype(np.int64)
    for i in range(n):
        cx, cy = rng.uniform(-0.15, 0.15, 2)
        theta_e = rng.uniform(0.8, 1.8)
        e1, e2 = param_util.phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.6, 0.95))
        kw_lens = [{"theta_E": theta_e, "gamma": rng.uniform(1.8, 2.2), "e1": e1, "e2": e2, "center_x": cx,
                    "center_y": cy},
                   {"gamma1": rng.uniform(-0.05, 0.05), "gamma2": rng.uniform(-0.05, 0.05)}]
        amp_b, amp_d = 10 ** rng.uniform(1.6, 2.2), 10 ** rng.uniform(0.8, 1.5)
        kw_ll = [{"amp": amp_b, "R_sersic": rng.uniform(0.3, 0.8), "n_sersic": 4.0, "e1": e1 * 0.6, "e2": e2 * 0.6,
                  "center_x": cx, "center_y": cy},
                 {"amp": amp_d, "R_sersic": rng.uniform(1.0, 2.0), "n_sersic": 1.0, "e1": e1, "e2": e2,
                  "center_x": cx, "center_y": cy}]
        r, phi = rng.uniform(0, 0.6 * theta_e), rng.uniform(0, 2 * np.pi)
        se1, se2 = param_util.phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.4, 0.9))
        kw_src = [{"amp": 10 ** rng.uniform(1.8, 2.6), "R_sersic": rng.uniform(0.1, 0.4),
                   "n_sersic": rng.uniform(0.7, 2.5), "e1": se1, "e2": se2,
                   "center_x": cx + r * np.cos(phi), "center_y": cy + r * np.sin(phi)}]
        lens_img = model.image(kwargs_lens=kw_lens, kwargs_lens_light=kw_ll, source_add=False,
                               lens_light_add=True)
        src_img = model.image(kwargs_lens=kw_lens, kwargs_source=kw_src, source_add=True,
                              lens_light_add=False) if labels[i] else 0.0
        for b in range(3):
            clean = np.clip(lens_colour[b] * lens_img + source_colour[b] * src_img, 0, None)
            images[i, b] = clean + rng.normal(0, np.sqrt(sky_rms ** 2 + clean / gain))
    return images, labels


def main(out: str, n: int = 400, size: int = 32, pixel_scale: float = 0.3, seed: int = 7) -> None:
    images, labels = render(int(n), int(size), float(pixel_scale), int(seed))
    np.savez(out, image=images, label=labels)
    print(f"wrote {out}: image {images.shape}, label {labels.shape} ({int(labels.sum())} lenses)")


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:])
