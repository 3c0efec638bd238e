"""Data set entries of massmapping: kappaTNG maps with COSMOS-like noise and mask (the tiled track and the
published validation field of Remy+2023); COSMOS HST shear (jax-lensing).

Hashes: see docs/datasets.md, "Where the hashes come from"."""
from cosmobench.datasets.catalog import Dataset, bibtex, github_file, register_dataset

_JAXL = ("CosmoStat", "jax-lensing", "81da74205678401591fe2d0312ffa7e4902dccb7")
_REMY = bibtex("""
    @article{Remy2023,
      author  = {Remy, B. and Lanusse, F. and Jeffrey, N. and Liu, J. and Starck, J.-L. and Osato, K. and
                 Schrabback, T.},
      title   = {Probabilistic mass-mapping with neural score estimation},
      journal = {Astronomy \\& Astrophysics},
      volume  = {672},
      pages   = {A51},
      year    = {2023},
      doi     = {10.1051/0004-6361/202243054},
      eprint  = {2011.08271},
    }""")
_COSMOS_MASK = github_file(*_JAXL, "data/COSMOS/cosmos_full_mask_0.29arcmin360.fits", size=521280,
                           sha256="d39429caf2a033c2083c176c8c197dcc03fb33464f657af4ed78cacace6d164f")
_COSMOS_STD1 = github_file(*_JAXL, "data/COSMOS/std1.fits", size=1039680,
                           sha256="feaa05d8987ea31177dffffc0f674cf0da1f679cc22c68c3761a431a2a471429")

register_dataset(Dataset(
    name="kappatng-cosmos", task="massmapping", kind="external",
    description="kappaTNG convergence map (360x360, 0.29 arcmin px) with COSMOS-like shape noise and the "
                "COSMOS mask, from the jax-lensing repository (Remy+2023; kappaTNG: Osato+2021)",
    files=(
        github_file(*_JAXL, "data/ktng/ktng_cosmos_e360.fits", size=1039680,
                    sha256="63ecffbf0c8319bb5118182c9a548d07ad596fd7a3c4afd2118fca41098d4ec3"),
        github_file(*_JAXL, "data/ktng/ktng_cosmos_kappa360.fits", size=521280,
                    sha256="e4b94cf70527eebda60054168f0e0081cad7fb8e19a327eb95eb96d69746f0d2"),
        _COSMOS_MASK,
        github_file(*_JAXL, "data/ktng/ktng_PS_theory.npy", size=928,
                    sha256="87c4b5a821d5105cd0c2bda4e5658b5ae3b88f22730e057c64de7e503399f0f6"),
    ),
    licence="MIT (licence of the publisher's repository)",
    licence_url="https://github.com/CosmoStat/jax-lensing/blob/master/LICENSE",
    citation_key="Remy2023", citation=_REMY,
    loader={"source": "flat", "path": "ktng_cosmos_e360.fits", "kappa_path": "ktng_cosmos_kappa360.fits",
            "mask_path": "cosmos_full_mask_0.29arcmin360.fits", "axis_order": "hwc", "spatial_order": "yx",
            "gamma2_sign": 1.0, "pixel_arcmin": 0.29, "tile": 120, "n_gal": 36.7},
    notes="One map: shear (360, 360, 2) float32 with noise (zero outside the mask), convergence (360, 360), "
          "mask (360, 360) (1 = observed, 53 %); ktng_PS_theory.npy is the (2, 50) theory power spectrum "
          "(ell, C_ell) matching the simulation. data.tile=120 cuts the field into 9 maps of 120 px (35 arcmin) "
          "split into train/val/test (data.val_fraction/test_fraction); `cosmobench predict --input` takes the "
          "whole field. Conventions checked on this map (2026-12-06): rows = y, gamma2 sign +1 (our KS of the "
          "noisy shear, 1 arcmin smoothing, correlates with the true convergence at r = 0.57 inside the mask; "
          "the transposed or sign-flipped layouts give |r| < 0.03). The shape-noise level is not in the files: "
          "the loader sets n_gal = 36.7 arcmin^-2, so that sigma_e / sqrt(n_gal A_pix) with the default sigma_e "
          "0.26 is the 0.148 per pixel the field was made with (below), the level Wiener and the models are "
          "told (the observed shear's rms inside the mask is 0.150, signal included). How the shear was made (jax-lensing "
          "notebooks/KappaTNG_COSMOS_emulation.ipynb, cells 61-64, the saving cell commented out): a 360 px "
          "crop of a kappaTNG map, reduced shear g = gamma / (1 - kappa), plus Gaussian noise of 0.148 per "
          "pixel and component, times the COSMOS mask; the shear minus our KS-forward of this kappa has "
          "std 0.1483 / 0.1480 inside the mask. This is not the field of the published scores: see "
          "kappatng-remy23.",
    homepage="https://github.com/CosmoStat/jax-lensing/tree/master/data/ktng",
))

register_dataset(Dataset(
    name="kappatng-remy23", task="massmapping", kind="external",
    description="the kappaTNG validation field of Remy+2023 (ktng_kappa360v2: 360x360, 0.29 arcmin px) with the "
                "COSMOS mask and per-pixel COSMOS noise std: a test set, observed with our shear operator",
    files=(
        github_file(*_JAXL, "data/ktng/ktng_kappa360v2.fits", size=521280,
                    sha256="4a71d2f19569c4b98159c247f0e50fad9a9aa7920dafc0554e28a9a37355ed24"),
        _COSMOS_MASK,
        _COSMOS_STD1,
    ),
    licence="MIT (licence of the publisher's repository)",
    licence_url="https://github.com/CosmoStat/jax-lensing/blob/master/LICENSE",
    citation_key="Remy2023", citation=_REMY,
    loader={"source": "kappa", "kappa_path": "ktng_kappa360v2.fits", "mask_path": "cosmos_full_mask_0.29arcmin360.fits",
            "noise_path": "std1.fits", "spatial_order": "yx", "pixel_arcmin": 0.29},
    notes="The map the published scores are measured on (jax-lensing papers/Remy2021/DeepMass.ipynb and "
          "HMCSampling.ipynb: DeepMass RMSE 0.0218, r 0.677; HMC posterior mean 0.02251 / 0.6487). It is a "
          "different kappaTNG map from kappatng-cosmos' ktng_cosmos_kappa360.fits (Pearson r = 0.017 between "
          "the two arrays). Its noisy shear (their scripts/input_shear.fits) is not published: "
          "data.source=kappa observes the convergence as their scripts/sample_hmc.py does (shear = KS-forward "
          "of the map, FFT, no reduced shear; Gaussian noise of std std1.fits per pixel; times the COSMOS mask; "
          "std2.fits = std1.fits / 0.99847 everywhere, so gamma2's noise is 0.15 % low here) with our seed "
          "data.render_seed, not their JAX PRNG. A test set only: train on the simulator (data.source=sim with "
          "this entry's mask and noise) and score with data.source=kappa (experiments/massmapping/"
          "external_field.yaml). std1 in the mask: rms 0.145, median 0.125, 0.064-0.305 per pixel.",
    homepage="https://github.com/CosmoStat/jax-lensing/tree/master/data/ktng",
))

register_dataset(Dataset(
    name="cosmos-shear", task="massmapping",
    description="COSMOS HST weak-lensing shear field binned on 360x360 px of 0.29 arcmin (e1, e2, mask, "
                "per-pixel noise std), with jax-lensing's Kaiser-Squires map: predict-only (no true kappa)",
    files=(
        github_file(*_JAXL, "data/COSMOS/cosmos_full_e1_0.29arcmin360.fits", size=521280,
                    sha256="f580435b2e5c63337e0f8f09d199ef03a37790c3c05d5eb96b767fc2645fe424"),
        github_file(*_JAXL, "data/COSMOS/cosmos_full_e2_0.29arcmin360.fits", size=521280,
                    sha256="02456254d95d5363f1ca3445144cdbbcaa01180f2b7a1cc0d8171341cd55429b"),
        _COSMOS_MASK,
        _COSMOS_STD1,
        github_file(*_JAXL, "data/COSMOS/std2.fits", size=1039680,
                    sha256="f136edd3293b4f4623a0da34c9bda71374bab4a1f3450dc833ab252f5d296ae3"),
        github_file(*_JAXL, "data/COSMOS/ks_e_0.29arcmin360.fits", size=1039680,
                    sha256="0a23b9c7508591895460a0cdc63297a9d1b0c861fc5de860857964cb8cf727ed"),
    ),
    licence="MIT (licence of the publisher's repository); shape catalogue: Schrabback et al. 2010",
    licence_url="https://github.com/CosmoStat/jax-lensing/blob/master/LICENSE",
    citation_key="Remy2023", citation=_REMY + "\n" + bibtex("""
        @article{Schrabback2010,
          author  = {Schrabback, T. and Hartlap, J. and Joachimi, B. and others},
          title   = {Evidence of the accelerated expansion of the Universe from weak lensing tomography
                     with COSMOS},
          journal = {Astronomy \\& Astrophysics},
          volume  = {516},
          pages   = {A63},
          year    = {2010},
          doi     = {10.1051/0004-6361/200913577},
        }"""),
    loader={"source": "flat", "mask_path": "cosmos_full_mask_0.29arcmin360.fits", "pixel_arcmin": 0.29,
            "axis_order": "hwc", "spatial_order": "yx", "gamma2_sign": 1.0},
    notes="Predict-only (there is no true convergence). e1, e2 and the mask are separate (360, 360) float32 "
          "FITS images; `cosmobench predict` reads one shear file, so stack them once into the (360, 360, 2) "
          "layout of kappatng-cosmos' shear file: "
          "python -c \"import numpy as np; from astropy.io import fits; d='$(cosmobench data path cosmos-shear)/'; "
          "np.save('cosmos_shear.npy', np.stack([fits.getdata(d + f'cosmos_full_e{i}_0.29arcmin360.fits') "
          "for i in (1, 2)], -1))\" then `cosmobench predict massmapping --checkpoint CKPT --input cosmos_shear.npy "
          "data.dataset=cosmos-shear` (the mask of this entry is applied). std1/std2 (360, 360) float64 are the "
          "per-component noise std (zero outside the mask). ks_e_0.29arcmin360.fits (360, 360) float64 is "
          "jax-lensing's Kaiser-Squires map: our KS of the stacked e1/e2 (rows = y, gamma2 sign +1, 2 arcmin "
          "smoothing) correlates with it at r = 0.60 after a left-right flip of their map (r = 0.09 without), "
          "i.e. their map is displayed with x (RA) increasing to the left.",
    homepage="https://github.com/CosmoStat/jax-lensing/tree/master/data/COSMOS",
))
