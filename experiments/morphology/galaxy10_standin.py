"""Write a generated stand-in for Galaxy10 DECaLS with the real file's HDF5 layout.

The real file (``cosmobench data fetch galaxy10-decals``, 2.54 GB) cannot be downloaded in the
environment where the transfer numbers of docs/tasks/morphology.md were measured, so the
transfer study runs on this stand-in: ``images`` ``(N, 256, 256, 3)`` uint8 (g/r/z as RGB) and
``ans`` ``(N,)`` uint8 in 0..9, as in ``Galaxy10_DECals.h5``. The galaxies are drawn by
cosmobench's own simulator (:mod:`cosmobench.sim.galaxies`) rendered as the real cutouts are:
256 px at DECaLS's 0.262"/px (67"), Gaussian PSF of 1.3", sky 20.5 mag/arcsec^2, galaxies of
16.5-18.5 mag, then asinh-stretched to uint8 per image (as the published JPEG-like cutouts) --
the pretraining survey (experiments/morphology/transfer_pretrain.yaml) differs in depth,
PSF model and preprocessing (counts, no uint8 stretch). Six simulator classes carry the six
Galaxy10 labels of ``SIM_TO_GALAXY10`` (cosmobench.datamodules.morphology); the other four
labels do not occur. It is a domain shift of survey and preprocessing, not of
galaxy physics: it exercises the pipeline, it does not measure what the simulator is worth on
real DECaLS images.

Usage: ``python experiments/morphology/galaxy10_standin.py OUT.h5 [N] [SEED]``
"""
from __future__ import annotations

import sys

import numpy as np



def main(out: str, n: int = 700, seed: int = 1234) -> None:
    import h5py

    from cosmobench.datamodules.morphology import GALAXY10_CLASSES, SIM_TO_GALAXY10
    from cosmobench.sim.galaxies import Observation, simulate_galaxy
    MAP = {c: GALAXY10_CLASSES.index(g) for c, g in SIM_TO_GALAXY10.items()}
    obs = Observation(n_bands=3, image_size=256, pixel_scale=0.262, psf="gaussian", psf_fwhm=1.3, sky_mag=20.5,
                      mag_range=[16.5, 18.5], oversample=2)
    rng = np.random.default_rng(seed)
    names = list(MAP)
    images = np.empty((n, 256, 256, 3), np.uint8)
    ans = np.empty(n, np.uint8)
    for i in range(n):
        cls = names[rng.integers(len(names))]
        img, _ = simulate_galaxy(rng, cls, obs)  # (3, 256, 256) counts
        x = img - np.median(img, axis=(1, 2), keepdims=True)
        x = np.arcsinh(x / (3 * x.std(axis=(1, 2), keepdims=True).clip(1e-6)))
        x = (x - x.min()) / max(x.max() - x.min(), 1e-6)
        images[i] = (np.clip(x, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
        ans[i] = MAP[cls]
    with h5py.File(out, "w") as fh:
        fh.create_dataset("images", data=images, chunks=(1, 256, 256, 3), compression="gzip", compression_opts=1)
        fh.create_dataset("ans", data=ans)
    print(f"wrote {out}: images {images.shape} uint8, ans {ans.shape} (labels {sorted(set(ans.tolist()))})")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
