"""Data set entries of lensfinding: an external simulator (no stably hosted real labelled set was found).

Hashes: see docs/datasets.md, "Where the hashes come from"."""
from cosmobench.datasets.catalog import Dataset, bibtex, register_dataset

register_dataset(Dataset(
    name="lenstronomy-lenses", task="lensfinding", kind="external", files=(),
    description="Cutouts rendered locally by lenstronomy (power-law elliptical mass + shear, bulge+disk lens "
                "light, Sérsic source: models our simulator does not use) through our survey settings; nothing "
                "to download",
    licence="BSD-3-Clause (lenstronomy); the rendered images are yours",
    licence_url="https://github.com/lenstronomy/lenstronomy/blob/main/LICENSE",
    citation_key="Birrer2018", citation=bibtex("""
        @article{Birrer2018,
          author  = {Birrer, S. and Amara, A.},
          title   = {lenstronomy: Multi-purpose gravitational lens modelling software package},
          journal = {Physics of the Dark Universe},
          volume  = {22},
          pages   = {189--201},
          year    = {2018},
          doi     = {10.1016/j.dark.2018.11.002},
        }"""),
    loader={"source": "lenstronomy"},
    notes="No real labelled lens set with stable, hash-checkable hosting was found (the Bologna lens "
          "challenge, Metcalf+2019, is its published anchor but its files are not on a pinned host). This entry "
          "is the external-simulator track: data.source=lenstronomy renders it locally with the peers extra "
          "(pip install .[peers]) through the run's survey settings (bands, pixel scale, PSF, sky, noise): "
          "data.n_train/n_val cutouts of the run's seed, a test set of data.n_test cutouts fixed by "
          "data.render_seed. Rendered samples are cached in this data set's directory (renders/); fetch has "
          "nothing to download. Models and priors: cosmobench/sim/lenstronomy_peer.py.",
    homepage="https://github.com/lenstronomy/lenstronomy",
))
