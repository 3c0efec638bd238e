"""Data set entries of deblending: HSC blends in COSMOS (scarlet's example data) and GalSim-rendered blends.

Hashes: see docs/datasets.md, "Where the hashes come from"."""
from cosmobench.datasets.catalog import Dataset, bibtex, github_file, register_dataset

_SCARLET = ("pmelchior", "scarlet", "998ca34cf7441bc372280302178de2568990babb")
register_dataset(Dataset(
    name="hsc-blends", task="deblending",
    description="Real HSC-SSP blends in the COSMOS field from scarlet's example data: 5 bands (grizy) with "
                "variance, bit-mask, PSFs and a detection catalogue (predict-only: no truth)",
    files=(
        github_file(*_SCARLET, "data/hsc_cosmos_35.npz", size=242498,
                    sha256="d829803f7896698e394cbc7ab78b54d8845587243154d09420c44bb1425c754e"),
        github_file(*_SCARLET, "data/hsc_cosmos.npz", size=148838,
                    sha256="6c2ed70f28e4cf14de6d27552a16476f37fae0e30f2a61e47a69c6a5894e1efc"),
    ),
    licence="MIT (licence of the publisher's repository); pixels: HSC-SSP public data release "
            "(acknowledge HSC-SSP, Aihara et al. 2018)",
    licence_url="https://github.com/pmelchior/scarlet/blob/master/LICENSE.md",
    citation_key="Melchior2018", citation=bibtex("""
        @article{Melchior2018,
          author  = {Melchior, P. and Moolekamp, F. and Jerdee, M. and Armstrong, R. and Sun, A.-L. and
                     Bosch, J. and Lupton, R.},
          title   = {SCARLET: Source separation in multi-band images by Constrained Matrix Factorization},
          journal = {Astronomy and Computing},
          volume  = {24},
          pages   = {129--142},
          year    = {2018},
          doi     = {10.1016/j.ascom.2018.07.001},
        }
        @article{Aihara2018,
          author  = {Aihara, H. and others},
          title   = {The Hyper Suprime-Cam SSP Survey: Overview and survey design},
          journal = {Publications of the Astronomical Society of Japan},
          volume  = {70},
          pages   = {S4},
          year    = {2018},
          doi     = {10.1093/pasj/psx066},
        }"""),
    loader={"input": "hsc_cosmos_35.npz", "catalog": "npz", "background": "none"},
    notes="predict-only (real blends have no truth; train/test refuse it): `cosmobench predict deblending "
          "--checkpoint CKPT --input \"$(cosmobench data path hsc-blends --file hsc_cosmos_35.npz)\" "
          "data.dataset=hsc-blends --output cat.csv` reads that file (also in data.input), its own detection "
          "catalogue (data.catalog=npz) and no background re-estimate (data.background=none: HSC coadds are "
          "sky-subtracted); the checkpoint must be trained on 5 bands (data.n_bands=5). Layout, checked on the "
          "files: hsc_cosmos_35.npz: images and variance (5, 58, 48) float32, mask (5, 58, 48) int32 (an HSC "
          "bit-mask plane without plane names: bits 2, 3, 5, 10, 12, 14, 15 occur; bits 0-8 read as the afw base "
          "planes BAD..NO_DATA, bits 9+ unnamed and informational), psfs (5, 43, 43) float64 of unit sum, "
          "filters g r i z y, catalog record array (x, y) float64 of 7 sources, 0-based pixel centres. "
          "hsc_cosmos.npz: images (5, 69, 57) float32, psfs (5, 41, 41), filters, a SEP catalogue of 6 sources "
          "(fields x, y among 31), no variance (SEP estimates it) and no mask: "
          "`--input \"$(cosmobench data path hsc-blends --file hsc_cosmos.npz)\"`.",
    homepage="https://github.com/pmelchior/scarlet/tree/master/data",
))

register_dataset(Dataset(
    name="galsim-blends", task="deblending", kind="external", files=(),
    description="Blend scenes rendered locally by GalSim (de Vaucouleurs bulge + sheared exponential disk + "
                "RandomKnots star-forming knots: profiles our simulator does not make) through our survey and "
                "scene settings, with full truth; nothing to download",
    licence="BSD-style, 2 clauses (GalSim's licence); the rendered images are yours",
    licence_url="https://github.com/GalSim-developers/GalSim/blob/main/LICENSE",
    citation_key="Rowe2015", citation=bibtex("""
        @article{Rowe2015,
          author  = {Rowe, B. T. P. and Jarvis, M. and Mandelbaum, R. and Bernstein, G. M. and Bosch, J. and
                     Simet, M. and Meyers, J. E. and Kacprzak, T. and Nakajima, R. and Zuntz, J. and
                     Miyatake, H. and Dietrich, J. P. and Armstrong, R. and Melchior, P. and Gill, M. S. S.},
          title   = {GalSim: The modular galaxy image simulation toolkit},
          journal = {Astronomy and Computing},
          volume  = {10},
          pages   = {121--150},
          year    = {2015},
          doi     = {10.1016/j.ascom.2015.02.002},
        }"""),
    loader={"source": "galsim"},
    notes="The external-simulator track of deblending (real blends, hsc-blends, have no truth): data.source=galsim "
          "renders it locally with the peers extra (pip install .[peers]) through the run's survey and scene "
          "settings (bands, pixel scale, PSF FWHM, sky, noise, stamp size, galaxy count, placement, magnitudes): "
          "data.n_train/n_val scenes of the run's seed, a test set of data.n_test scenes fixed by "
          "data.render_seed. Truth as our simulator's (isolated noiseless images, centroids, fluxes), so a "
          "simulator checkpoint is scored on it with `cosmobench test deblending --checkpoint CKPT "
          "data.dataset=galsim-blends`. Rendered scenes are cached in this data set's directory (renders/); "
          "fetch has nothing to download. Profiles and what differs: cosmobench/sim/galsim_blends.py. Published "
          "anchor (another protocol: CANDELS pairs): COIN flux error ~7 % vs SExtractor 33 % (Boucaud+2020).",
    homepage="https://github.com/GalSim-developers/GalSim",
))
