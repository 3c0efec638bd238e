"""Data set entries of morphology: Galaxy10 DECaLS (Leung & Bovy), Zenodo record 10845026; FR-DEEP
(Tang, Scaife & Leahy 2019), FIRST and NVSS radio galaxies labelled FRI/FRII, the publisher's GitHub repository.

Hashes: see docs/datasets.md, "Where the hashes come from"."""
from dataclasses import replace

from cosmobench.datasets.catalog import HASHED_ON, DataFile, Dataset, Subset, bibtex, github_file, register_dataset

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


# --- FR-DEEP (Tang, Scaife & Leahy 2019): github.com/HongmingTang060313/FR-DEEP ---------------------------------
_FRDEEP = ("HongmingTang060313", "FR-DEEP", "b01744e102c61a63cc76211f98b65e3531ffb5c7")
#: the FR-DEEP files were hashed a day after HASHED_ON
_FRDEEP_HASHED_ON = "2026-12-07"
_FIRST_FILES = (  # name, bytes, sha256 computed here, md5 (equal to FRDEEP.py's)
    ("batches.meta", 97, "5ee1128760b3f70068955baf3781d72aa48ab656f743cbbba1203b18ea05fa8e",
     "655493bdee948954f3939727b3f9e735"),
    ("data_batch_1", 1135218, "55bd5e01514b43d9d0a679f6989a408b05bdbaf75bf8cd66bb0c0b24b4d81f08",
     "f34da44757c7fa3f6e6cd3d0839a4634"),
    ("data_batch_2", 1135154, "8d75f907fb9d85dbfb9686b40774b6ed65276ca03447f02b6bcf3e48918d1c8f",
     "f56cda0d9a99305fee2bad7de0560f95"),
    ("data_batch_3", 1135158, "347593463dc16aa809b19a9c85a8d5becb72bc54cb3912c01b84c2df0d410a83",
     "93265dd849331af4e1b092f74b06450b"),
    ("data_batch_4", 1135262, "0596663f9d74524d15ae76e4bb6b0096c58818a5a34d2ea5f06a3225f0c384e3",
     "0de8f4c18b775251f4e553e2990cd446"),
    ("data_batch_5", 1135166, "110e609f83d83fe863347b0ff1c68740473df011ac2cf4e4d9c3f640e4a9ea27",
     "c6aa87400a1be6007da7cfcefd2c3e5c"),
    ("data_batch_6", 1135158, "e6b01fa039131c69ae9b283c93e3e060e8c3c21c4b93799a9e1a33c631dc3262",
     "cebd3fdea93abbc048a3a4d5e58528e0"),
    ("data_batch_7", 1135250, "6b03e954b4648d5bcacd2cf2acac686e345ec4f56e5ea81dd1ada1b21ad8002f",
     "49497445e9380f157e78cf8d74fca1eb"),
    ("data_batch_8", 1135334, "7bd3b071e5cfb168fb20cb91cb6dba6fc699ed7b239c0a0faa8a641910b0ec57",
     "88e298eed2d87bbdddad83fef1482723"),
    ("data_batch_9", 1135162, "52e316423b0a5561c14d6769ebced991173708455526758c940d2564264f1875",
     "8c40117dbf4d456e63a8a665b245aa63"),
    ("data_batch_10", 1135183, "7f196efef34eac61b03fbd245c8b614345acb562b361f0468ff2feaf17c96d4b",
     "f24d110cc5811ba4651630b9ee9b2989"),
    ("data_batch_11", 1135155, "7717dcc4675fc276bd8b883c3049b7f93525f2cd5a0e7061120914051e5dd2d7",
     "b843dc3b7f48606235029f135d41c85e"),
    ("test_batch", 1135200, "1e06887b7c498aaa0b32be7d2c4e259e5960f9687ca15dd5749035bf91084558",
     "4e06889b1e7713deb46e62887eb37727"),
)
_NVSS_FILES = (  # name, bytes, sha256 computed here, md5 (equal to FRDEEP.py's)
    ("batches.meta", 97, "5ee1128760b3f70068955baf3781d72aa48ab656f743cbbba1203b18ea05fa8e",
     "655493bdee948954f3939727b3f9e735"),
    ("data_batch_1", 1133950, "9fe32b572ff892d233b08159dde186b8b2e727d07a91b5d1b5ce3b9ac3abd942",
     "3a2a15d88756ba61c796378fc8574540"),
    ("data_batch_2", 1133966, "e86eb80e4860c4550d0924d29ec3c5cdd8d92d9dd6d64d9ed177e0b603a2ce21",
     "6a04e3985397e1f67f0ad42153dca64e"),
    ("data_batch_3", 1133958, "9b69555ca9f32715f1b9a81e037f06312c537019a730d8f0684092262ed58522",
     "d852c8200f3bbb63beacf31f3e954f9a"),
    ("data_batch_4", 1133942, "0b6e07c74560ab42dfbb0d62c3a31105a72f08a4836ba87444cf13b9bd65da16",
     "a5739996ca44a1a1841f2d0e6b844dd6"),
    ("data_batch_5", 1133974, "b71b15a9d8011dd10de2b8a60eea3ca6efd7c1280be7e8660651b8e41a535504",
     "8e2fdb3f60bf7541ca135fc8e2407f7a"),
    ("data_batch_6", 1133946, "b7e4c3c1865e296543c6344a3224c57534b665800479e645d18533e4c5d24919",
     "9e5a82500bd9742f8fefe412ada95336"),
    ("data_batch_7", 1133966, "53ff9febdf1c2144df0cec5ba51de7e502a91425968fc449d5c7c6564629961d",
     "f66af7795265fbe24376f669200412c4"),
    ("data_batch_8", 1133946, "cfb659862579ec0214ac422de995bc0dc2bf13198613d4b1058e39769f740635",
     "75982afc09bf480ecc521acdb39cbe46"),
    ("data_batch_9", 1133942, "ee765192b28b578d854591d743576717a01a7d0413396c4c0449150544753cc6",
     "72aee306fef9acee21a0e5537bb681e4"),
    ("data_batch_10", 1133967, "3b8662c415ae41f9ef754ed36757eef94c4c6d465dcb4b1fbf4fcc42a2952a18",
     "7a039ce8062a533b23b401a612c5f9b7"),
    ("data_batch_11", 1133955, "d95cccbe04b341d584fd6076c0c5a195d8b67b20863132727ec90bb5f36b9c8e",
     "c0013314098c96ca4c7c20c0f17abcd3"),
    ("test_batch", 1133936, "63a3d5d4b105ffcbe71a04b4d254f7a7ec7f921d23db31bd365155df1ce8e2e0",
     "39fd167b9a7df12cee1ef9a804f9fa86"),
)

_FRDEEP_CITATION = bibtex("""
    @article{Tang2019FRDEEP,
      author  = {Tang, Hongming and Scaife, Anna M. M. and Leahy, J. Patrick},
      title   = {Transfer learning for radio galaxy classification},
      journal = {Monthly Notices of the Royal Astronomical Society},
      volume  = {488},
      number  = {3},
      pages   = {3358--3375},
      year    = {2019},
      doi     = {10.1093/mnras/stz1883},
      eprint  = {1903.11921},
    }""")


def _frdeep_files(survey: str, files: tuple, publisher_class: str) -> tuple[DataFile, ...]:
    """The 13 uncompressed batch files of ``SURVEY_data/SURVEY_PNG_dataset/`` at the pinned commit."""
    out = []
    for name, size, sha256, md5 in files:
        f = github_file(*_FRDEEP, f"{survey}_data/{survey}_PNG_dataset/{name}", size=size, sha256=sha256)
        prov = (f.provenance.replace(HASHED_ON, _FRDEEP_HASHED_ON)
                + f"; its md5 {md5} equals the one the publisher lists for {name} in class {publisher_class} of "
                  f"FRDEEP.py at the same commit")
        out.append(replace(f, provenance=prov))
    return tuple(out)


def _frdeep(name: str, survey: str, files: tuple, publisher_class: str, pixel_scale: float, extra: str) -> Dataset:
    return Dataset(
        name=name, task="morphology",
        description=f"FRDEEP-{publisher_class[-1]} ({survey}): 600 radio galaxies labelled FRI / FRII (FRICAT and "
                    f"CoNFIG catalogues), 150x150 px {survey} cutouts at {pixel_scale:g}\"/px, one band, "
                    "CIFAR-style pickled batches (11 training batches + 1 test batch of 50)",
        files=_frdeep_files(survey, files, publisher_class),
        licence="none given: the publisher's repository has no licence file (checked at commit b01744e); its "
                "README asks users of the data set to cite Tang, Scaife & Leahy 2019. Images: the NRAO VLA "
                f"{survey} survey, taken from SkyView",
        licence_url="https://github.com/HongmingTang060313/FR-DEEP",
        restriction="no licence is granted (default copyright applies): cite Tang, Scaife & Leahy 2019 and ask "
                    "the authors before redistributing the files",
        citation_key="Tang2019FRDEEP", citation=_FRDEEP_CITATION,
        loader={"source": "batches", "path": ".", "test_path": "test_batch",
                "meta_path": "batches.meta", "n_bands": 1, "label_type": "hard",
                "native_pixel_scale": pixel_scale},
        notes="Layout, checked on the files: each batch a pickled dict (protocol 3, numpy arrays): data uint8 "
              "(50, 22500) = 50 images of 150x150 px, one band, row-major; labels 0 = FRI, 1 = FRII (batches.meta: "
              "label_names); filenames. Sigma-clipped images (most pixels 0), sources centred. 264 FRI / 336 FRII "
              "in all, 22 FRI / 28 FRII in every batch (publisher's README); the published split is 550 training "
              "images (data_batch_1..11: data.path is the data set's directory) and 50 test images (test_batch), which "
              "data.test_path keeps; validation "
              "is the seeded data.val_fraction of the 550. " + extra,
        homepage="https://github.com/HongmingTang060313/FR-DEEP",
    )


register_dataset(_frdeep(
    "frdeep-first", "FIRST", _FIRST_FILES, "FRDEEPF", 1.8,
    "FIRST, 1.8\"/px: the sources are compact (a 96 px centre crop keeps a median 98.8 % of a training image's "
    "flux, computed on the 550 training images); experiments/morphology/real_frdeep.yaml crops the centre "
    "96 px before the resize. One training image is all zeros (data_batch_11, image 9 counting from 0: an FRI of "
    "the published set; kept)."))
register_dataset(_frdeep(
    "frdeep-nvss", "NVSS", _NVSS_FILES, "FRDEEPN", 15.0,
    "NVSS, 15\"/px: the same objects as frdeep-first at lower resolution (a 150 px FIRST image "
    "covers the area of 18 NVSS px, publisher's README); use it with data.crop=null."))
