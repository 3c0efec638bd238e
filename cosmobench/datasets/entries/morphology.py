"""Data set entries of morphology: Galaxy10 DECaLS (Leung & Bovy), Zenodo record 10845026.

Hashes: see docs/datasets.md, "Where the hashes come from"."""
from cosmobench.datasets.catalog import HASHED_ON, DataFile, Dataset, Subset, bibtex, register_dataset

register_dataset(Dataset(
    name="galaxy10-decals", task="morphology",
    description="Galaxy10 DECaLS: 17,736 galaxies, 256x256 g/r/z cutouts from the DESI Legacy Surveys, "
                "10 classes from Galaxy Zoo votes (HDF5: images, ans, ra, dec, redshift, pxscale)",
    files=(DataFile(
        "Galaxy10_DECals.h5",
        ("https://zenodo.org/records/10845026/files/Galaxy10_DECals.h5",
         "https://astro.utoronto.ca/~hleung/shared/Galaxy10/Galaxy10_DECals.h5"),
        sha256="19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571", size=None,
        approx_size=2_540_000_000,
        provenance=("sha256 copied from the publisher's page https://github.com/henrysky/Galaxy10/blob/"
                    f"677b3265c051561223e8cda0cb3a7ae4a588ac5b/README.rst on {HASHED_ON} (the same value is "
                    "astroNN's file_hash); not computed here: the file (2.54 GB per the publisher, exact byte "
                    "count not published) was not downloaded. Mirror: the URL the publisher's README gave "
                    "before the Zenodo record"),
    ),),
    licence="MIT (licence of the publisher's repository henrysky/Galaxy10); images: DESI Legacy Imaging "
            "Surveys, labels: Galaxy Zoo (acknowledge both, see the README)",
    licence_url="https://github.com/henrysky/Galaxy10/blob/master/LICENSE",
    citation_key="Leung2024Galaxy10", citation=bibtex("""
        @misc{Leung2024Galaxy10,
          author       = {Leung, Henry W. and Bovy, Jo},
          title        = {Galaxy10 DECaLS},
          year         = {2024},
          publisher    = {Zenodo},
          howpublished = {\\url{https://zenodo.org/records/10845026}},
          note         = {Images: DESI Legacy Imaging Surveys (Dey et al. 2019, AJ 157, 168); labels: Galaxy Zoo
                          DECaLS (Walmsley et al. 2022, MNRAS 509, 3966) and Galaxy Zoo 2 (Lintott et al. 2011)},
        }"""),
    loader={"source": "galaxy10", "path": "Galaxy10_DECals.h5", "image_key": "images", "label_key": "ans",
            "label_type": "hard", "bands": ["g", "r", "z"], "native_pixel_scale": 0.262},
    subset=Subset(2000, "label", "2000 galaxies stratified by class (seeded), then the usual splits"),
    notes="Images are (17736, 256, 256, 3) uint8 (channel last); the published anchor is Pandya+2023 "
          "(D16-equivariant CNN, 95.52 +- 0.18 % accuracy) on the full set.",
    homepage="https://github.com/henrysky/Galaxy10",
))
