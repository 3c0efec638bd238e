"""The registry of named public data sets: plain data, one frozen :class:`Dataset` per entry.

Every entry states its files (local name, URLs = primary then mirrors, sha256, size), where
each hash came from (:attr:`DataFile.provenance`), its licence and whether that restricts
use, its citation (BibTeX), the loader keys it fills for its task (:attr:`Dataset.loader`,
file names as values: :func:`cosmobench.datasets.loader_config` turns them into cached
paths) and an optional CPU-sized subset rule. Downloads, caching and hash checks are in
:mod:`cosmobench.datasets.download`; the list of entries and their hash provenance is in
``docs/datasets.md``.

Rules for a new entry: every hash is either computed from the real file or copied from the
publisher's own page, and :attr:`DataFile.provenance` says which (with the URL and date);
where neither was possible the file has no hash and its provenance starts with
``UNVERIFIED:`` — never invent one. GitHub-hosted files are pinned to a commit
(:func:`github_file`): the primary URL is raw.githubusercontent.com, the mirror jsDelivr's
GitHub CDN, which serves the same bytes of the same commit.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from cosmobench.errors import ConfigError

#: the day the hashes of this file were computed or copied
HASHED_ON = "2026-12-06"

TASKS = ("photoz", "morphology", "lensfinding", "deblending", "massmapping", "sbi")
KINDS = ("real", "external")  # external: made by another code than ours (an external simulator)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class DataFile:
    """One file of a data set.

    ``name`` is its path inside the data set's cache directory (``/``-separated; may have
    sub-directories). ``urls``: the primary URL first, then mirrors serving the same bytes.
    ``sha256``/``size``: of the whole file, or None when unknown. ``git_blob``: the git
    object id (SHA-1 of ``b"blob <size>\\0" + content``) from the publisher's repository
    tree, a content hash used when the file itself could not be obtained to compute its
    sha256. ``approx_size``: bytes, for display only, when the publisher gives a rounded size.
    """

    name: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None
    provenance: str
    git_blob: str | None = None
    approx_size: int | None = None

    def __post_init__(self):
        if not self.urls:
            raise ValueError(f"{self.name}: no URL")
        if self.sha256 is not None and not _HEX64.match(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lower-case hex digits")
        if self.git_blob is not None and not _HEX40.match(self.git_blob):
            raise ValueError(f"{self.name}: git_blob must be 40 lower-case hex digits")
        if self.name.startswith("/") or ".." in self.name.split("/"):
            raise ValueError(f"{self.name}: must be a relative path inside the data set's directory")
        if (self.sha256 is None and self.git_blob is None) != self.provenance.startswith("UNVERIFIED"):
            raise ValueError(f"{self.name}: a file without a hash has provenance 'UNVERIFIED: <why>', "
                             "and only such a file")

    @property
    def known_hash(self) -> str | None:
        """pooch's ``known_hash`` (``"sha256:<hex>"``), None without a sha256."""
        return f"sha256:{self.sha256}" if self.sha256 else None

    @property
    def check(self) -> str:
        """How a download is checked: ``sha256``, ``git-blob`` or ``none``."""
        return "sha256" if self.sha256 else "git-blob" if self.git_blob else "none"


@dataclass(frozen=True)
class Subset:
    """A seeded CPU-sized subset (``data.subset=N``): ``n`` items by default, drawn with the
    run's seed, stratified by ``stratify`` (a loader field, or None for a plain draw)."""

    n: int
    stratify: str | None
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    """A named data set. ``loader``: the task's data keys it fills (file names as values);
    ``restriction``: None, or one line saying how the licence restricts use (printed on
    fetch); ``kind``: ``real`` (observed data or a published data set) or ``external``
    (made by a simulator other than ours); ``notes``: what a user must know (layout, gaps)."""

    name: str
    task: str
    description: str
    files: tuple[DataFile, ...]
    licence: str
    licence_url: str
    citation_key: str
    citation: str
    loader: Mapping[str, Any]
    kind: str = "real"
    restriction: str | None = None
    subset: Subset | None = None
    notes: str = ""
    homepage: str = ""

    def __post_init__(self):
        if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", self.name):
            raise ValueError(f"data set name {self.name!r}: lower-case letters, digits, '_', '-', '.'")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate file names")
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "loader", MappingProxyType(dict(self.loader)))

    @property
    def size(self) -> int | None:
        """Total bytes (None if a file's size is unknown)."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(sizes)

    @property
    def approx_size(self) -> int:
        """Total bytes for display: exact sizes, the publisher's rounded ones otherwise."""
        return sum(f.size if f.size is not None else (f.approx_size or 0) for f in self.files)

    def file(self, name: str) -> DataFile:
        for f in self.files:
            if f.name == name:
                return f
        raise ConfigError(f"data set {self.name!r} has no file {name!r} "
                          f"(files: {', '.join(f.name for f in self.files[:5])}{' ...' if len(self.files) > 5 else ''})")


# --------------------------------------------------------------------------- registry

DATASETS: dict[str, Dataset] = {}


def register_dataset(ds: Dataset, *, replace: bool = False) -> Dataset:
    """Add ``ds`` to :data:`DATASETS` (plugins and tests add their own entries)."""
    if ds.name in DATASETS and not replace:
        raise ValueError(f"data set {ds.name!r} is already registered")
    DATASETS[ds.name] = ds
    return ds


def unregister_dataset(name: str) -> None:
    DATASETS.pop(name, None)


def get_dataset(name: str) -> Dataset:
    """The registered data set ``name``; a one-line :class:`ConfigError` (with a suggestion)
    if there is none."""
    if isinstance(name, Dataset):
        return name
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown data set {name!r}{hint} (`cosmobench data list` shows them)") from None


# --------------------------------------------------------------------------- helpers for entries

def github_file(owner: str, repo: str, commit: str, path: str, *, name: str | None = None,
                sha256: str | None = None, size: int | None = None, git_blob: str | None = None) -> DataFile:
    """A file of a public GitHub repository pinned to ``commit``: raw.githubusercontent.com
    first, jsDelivr's GitHub CDN (same commit, same bytes) as mirror. ``sha256``/``size``
    were computed from the file of a git snapshot of that commit; ``git_blob`` alone: the
    file was absent from the snapshot (GitHub-sized files, >= 4 MiB), only its tree entry."""
    urls = (f"https://raw.githubusercontent.com/{owner}/{repo}/{commit}/{path}",
            f"https://cdn.jsdelivr.net/gh/{owner}/{repo}@{commit}/{path}")
    where = f"https://github.com/{owner}/{repo}/blob/{commit}/{path}"
    if sha256:
        prov = f"sha256 computed from the file fetched from {where} (git snapshot of commit {commit[:7]}) on {HASHED_ON}"
    elif git_blob:
        prov = (f"git blob id {git_blob} read from the publisher's tree at {where} on {HASHED_ON}; "
                "the file (>= 4 MiB) could not be obtained here, so its sha256 and size are not known yet: "
                "a download is checked against the git blob id (SHA-1 of 'blob <size>\\0' + content)")
    else:
        prov = f"UNVERIFIED: no hash could be obtained for {where}"
    return DataFile(name or path.rsplit("/", 1)[-1], urls, sha256, size, prov, git_blob=git_blob)


def _bib(text: str) -> str:
    return "\n".join(line[4:] if line.startswith("    ") else line for line in text.strip("\n").splitlines())


# --------------------------------------------------------------------------- entries
# Hashes below: see docs/datasets.md, "Where the hashes come from".

# ---- photoz: Teddy and Happy (Beck et al. 2017), COINtoolbox/photoz_catalogues
_COIN = ("COINtoolbox", "photoz_catalogues", "b6c40f318feb5eb4bb6bc592ca2592f0f05586c8")
_BECK2017 = _bib("""
    @article{Beck2017,
      author  = {Beck, R. and Lin, C.-A. and Ishida, E. E. O. and Gieseke, F. and de Souza, R. S. and
                 Costa-Duarte, M. V. and Hattab, M. W. and Krone-Martins, A.},
      title   = {On the realistic validation of photometric redshifts},
      journal = {Monthly Notices of the Royal Astronomical Society},
      volume  = {468},
      number  = {4},
      pages   = {4323--4339},
      year    = {2017},
      doi     = {10.1093/mnras/stx687},
      eprint  = {1701.08748},
    }""")
_BECK_COLUMNS = ["ID", "u", "g", "r", "i", "z", "uErr", "gErr", "rErr", "iErr", "zErr", "redshift", "redshiftErr"]
_PHOTOZ_LOADER = {"source": "catalog", "mag_columns": ["u", "g", "r", "i", "z"],
                  "err_columns": ["uErr", "gErr", "rErr", "iErr", "zErr"], "z_column": "redshift",
                  "text_columns": _BECK_COLUMNS}
_PHOTOZ_FORMAT = ("The catalogue files are whitespace-separated text with the 13 columns of columns.txt "
                  "(ID u g r i z uErr gErr rErr iErr zErr redshift redshiftErr; SDSS DR12 dereddened modelMag "
                  "and modelMagErr, spectroscopic redshift); data.text_columns names them ('#' lines are "
                  "comments, a header line repeating the names is skipped). The layout is the one documented "
                  "in the publisher's README and read the same way by public users of the files "
                  "(pandas read_csv(delim_whitespace=True, comment='#', names=...)); the catalogues themselves "
                  "(>= 4 MiB) were not obtainable here, so the track was exercised on generated stand-ins "
                  "with this layout. Sets: A (74,309 Teddy / 74,950 Happy galaxies: the line count of "
                  "weights_for_B) is data.path (train/val), B (same distribution) is data.test_path; C and D "
                  "(shifted coverage/errors) are the mismatch tests: `cosmobench test photoz --checkpoint CKPT "
                  "data.test_path=$(cosmobench data path NAME --file <C file>)`. The weights_for_[BCD] files "
                  "are the paper's density-ratio weights of the A galaxies, in order.")


def _beck2017(name: str, description: str, catalogues: dict[str, str], weights: dict[str, str], size: int,
              extra: tuple[DataFile, ...] = (), **loader) -> Dataset:
    """A Beck+2017 catalogue set: the template-fitting catalogues A-D (``catalogues``: path ->
    git blob id) and the density-ratio weights for B-D (``weights``: path -> sha256, each ``size`` bytes)."""
    sets = [p.rsplit("/", 1)[-1] for p in catalogues]
    return Dataset(
        name=name, task="photoz", description=description,
        files=(*(github_file(*_COIN, p, git_blob=b) for p, b in catalogues.items()), *extra,
               *(github_file(*_COIN, p, size=size, sha256=h) for p, h in weights.items())),
        licence="GPL-3.0 (licence of the publisher's repository)",
        licence_url="https://github.com/COINtoolbox/photoz_catalogues/blob/master/LICENSE",
        citation_key="Beck2017", citation=_BECK2017,
        loader={**_PHOTOZ_LOADER, "path": sets[0], "test_path": sets[1], **loader},
        subset=Subset(5000, "redshift", "5000 galaxies of A, stratified in redshift deciles; test sets whole"),
        notes=_PHOTOZ_FORMAT if extra else _PHOTOZ_FORMAT.replace(
            "columns of columns.txt", "columns listed in Happy/README.md (as Teddy's columns.txt)"),
        homepage=f"https://github.com/COINtoolbox/photoz_catalogues/tree/master/{name.capitalize()}",
    )


register_dataset(_beck2017(
    "teddy", "Teddy photo-z catalogues (SDSS DR12 ugriz + spec-z): training set A, test sets B-D "
             "built to probe incomplete colour/magnitude coverage (Beck+2017)",
    {"Teddy/forTemplateBased/teddyT_A.cat": "001ab8228ece31463c67f57a9dad05c631778d84",
     "Teddy/forTemplateBased/teddyT_B.cat": "f83aad7553f5a4749477921478ad7a71b1c86ab5",
     "Teddy/forTemplateBased/teddyT_C.cat": "c6112a0169d96c6fb643c46a2c45113a620c84c3",
     "Teddy/forTemplateBased/teddyT_D.cat": "ae5f0d597412f5cb5d74c8d53a460c9f8098158e"},
    {"Teddy/weights_for_B": "2a508aa1855bab12598f48a2408eedde980a113082a5c981e17548881c221f01",
     "Teddy/weights_for_C": "b230349f5aafc38152729e49d782bf2d94e05bc0b3f17c2df2fe8465c09229dc",
     "Teddy/weights_for_D": "fbbfa76dc2faf02f45ca2e5141887d0f97c28a1d87c405635b232061d99565e1"}, 1857725,
    extra=(github_file(*_COIN, "Teddy/forTemplateBased/columns.txt", size=58,
                       sha256="7d2128bb5f38f75f79692b14a0164433bcff129654674dc9ca032354293822e3"),),
))

register_dataset(_beck2017(
    "happy", "Happy photo-z catalogues (SDSS DR12 ugriz + spec-z): training set A, test sets B-D "
             "with a shifted photometric-error distribution (Beck+2017)",
    {"Happy/forTemplateBased/happyT_A": "e8ef321fcc74362cda953a82718fe31631ab8d0f",
     "Happy/forTemplateBased/happyT_B": "608ba00e21c560408c1bb1eb7f27621c217691d2",
     "Happy/forTemplateBased/happyT_C": "9c4b7191d2f10c6419610f52a3a98c4d1825a896",
     "Happy/forTemplateBased/happyT_D": "e6a2b41eaa61f2ac1575d59b98e23533b521b59b"},
    {"Happy/weights_for_B": "23d7a8b9dd216fc3301959ae670bd3b8960f92b7d9e2912c777e581cadcb1022",
     "Happy/weights_for_C": "360ff5eee9bc236856008faa30a3c3747685b92904415d4f07ce4a4b5cbd00b9",
     "Happy/weights_for_D": "1ef93fa40ab4af4a733fd7187ec89d2720cfdfc7fb8ea88383408fd725ec29c8"}, 1873750,
))

# ---- morphology: Galaxy10 DECaLS (Leung & Bovy), Zenodo record 10845026
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
    citation_key="Leung2024Galaxy10", citation=_bib("""
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
            "label_type": "hard"},
    subset=Subset(2000, "label", "2000 galaxies stratified by class (seeded), then the usual splits"),
    notes="Images are (17736, 256, 256, 3) uint8 (channel last); the published anchor is Pandya+2023 "
          "(D16-equivariant CNN, 95.52 +- 0.18 % accuracy) on the full set.",
    homepage="https://github.com/henrysky/Galaxy10",
))

# ---- massmapping: kappaTNG map with COSMOS-like noise and mask; COSMOS HST shear (jax-lensing)
_JAXL = ("CosmoStat", "jax-lensing", "81da74205678401591fe2d0312ffa7e4902dccb7")
_REMY = _bib("""
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
            "gamma2_sign": 1.0, "pixel_arcmin": 0.29, "tile": 120},
    notes="One map: shear (360, 360, 2) float32 with noise (zero outside the mask), convergence (360, 360), "
          "mask (360, 360) (1 = observed, 53 %); ktng_PS_theory.npy is the (2, 50) theory power spectrum "
          "(ell, C_ell) matching the simulation. data.tile=120 cuts the field into 9 maps of 120 px (35 arcmin) "
          "split into train/val/test (data.val_fraction/test_fraction); `cosmobench predict --input` takes the "
          "whole field. Conventions checked on this map (2026-12-06): rows = y, gamma2 sign +1 (our KS of the "
          "noisy shear, 1 arcmin smoothing, correlates with the true convergence at r = 0.57 inside the mask; "
          "the transposed or sign-flipped layouts give |r| < 0.03). The shape-noise level is not in the files: "
          "Wiener uses data.sigma_e/n_gal (0.164 per pixel with the defaults; the observed shear's rms inside "
          "the mask is 0.150, signal included).",
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
        github_file(*_JAXL, "data/COSMOS/std1.fits", size=1039680,
                    sha256="feaa05d8987ea31177dffffc0f674cf0da1f679cc22c68c3761a431a2a471429"),
        github_file(*_JAXL, "data/COSMOS/std2.fits", size=1039680,
                    sha256="f136edd3293b4f4623a0da34c9bda71374bab4a1f3450dc833ab252f5d296ae3"),
        github_file(*_JAXL, "data/COSMOS/ks_e_0.29arcmin360.fits", size=1039680,
                    sha256="0a23b9c7508591895460a0cdc63297a9d1b0c861fc5de860857964cb8cf727ed"),
    ),
    licence="MIT (licence of the publisher's repository); shape catalogue: Schrabback et al. 2010",
    licence_url="https://github.com/CosmoStat/jax-lensing/blob/master/LICENSE",
    citation_key="Remy2023", citation=_REMY + "\n" + _bib("""
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

# ---- deblending: HSC blends in COSMOS (scarlet's example data)
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
    citation_key="Melchior2018", citation=_bib("""
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
    loader={"input": "hsc_cosmos_35.npz", "catalog": "npz", "extra_inputs": ["hsc_cosmos.npz"]},
    notes="hsc_cosmos_35.npz: images, variance (5, 58, 48) float32, mask (5, 58, 48) int32, psfs (5, 43, 43), "
          "filters, catalog (x, y) of 7 sources: `cosmobench predict deblending --input <path> data.catalog=npz`. "
          "hsc_cosmos.npz: images (5, 69, 57), psfs (5, 41, 41) and a SEP catalogue, no variance (SEP estimates "
          "it). Real blends have no truth: predict-only.",
    homepage="https://github.com/pmelchior/scarlet/tree/master/data",
))

# ---- lensfinding: an external simulator (no stably hosted real labelled set was found)
register_dataset(Dataset(
    name="lenstronomy-lenses", task="lensfinding", kind="external", files=(),
    description="Test cutouts rendered locally by lenstronomy (power-law elliptical mass, bulge+disk lens "
                "light: models our simulator does not use); nothing to download",
    licence="BSD-3-Clause (lenstronomy); the rendered images are yours",
    licence_url="https://github.com/lenstronomy/lenstronomy/blob/main/LICENSE",
    citation_key="Birrer2018", citation=_bib("""
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
          "stands for the external-simulator track: data.source=lenstronomy (to be wired) renders the set with "
          "the peers extra; fetch has nothing to download.",
    homepage="https://github.com/lenstronomy/lenstronomy",
))

# ---- sbi: sbibm reference observations and posteriors (Lueckmann+2021), no-Julia tasks
from cosmobench.datasets._sbibm_files import SBIBM_COMMIT, SBIBM_FILES  # noqa: E402

_SBIBM_BIB = _bib("""
    @inproceedings{Lueckmann2021,
      author    = {Lueckmann, Jan-Matthis and Boelts, Jan and Greenberg, David and Goncalves, Pedro and
                   Macke, Jakob},
      title     = {Benchmarking Simulation-Based Inference},
      booktitle = {Proceedings of The 24th International Conference on Artificial Intelligence and Statistics},
      series    = {Proceedings of Machine Learning Research},
      volume    = {130},
      pages     = {343--351},
      year      = {2021},
      publisher = {PMLR},
    }""")
_SBIBM_DIMS = {"gaussian_linear": (10, 10), "gaussian_linear_uniform": (10, 10), "slcp": (5, 8),
               "slcp_distractors": (5, 100), "bernoulli_glm": (10, 10), "bernoulli_glm_raw": (10, 100),
               "gaussian_mixture": (2, 2), "two_moons": (2, 2)}

for _task, _files in SBIBM_FILES.items():
    _dt, _dx = _SBIBM_DIMS[_task]
    register_dataset(Dataset(
        name=f"sbibm-{_task.replace('_', '-')}", task="sbi",
        description=f"sbibm {_task}: 10 benchmark observations (x in R^{_dx}), their true parameters "
                    f"(theta in R^{_dt}) and 10,000 reference posterior samples each",
        files=tuple(github_file("sbi-benchmark", "sbibm", SBIBM_COMMIT, p, size=s, sha256=h,
                                name="/".join(p.split("/")[-2:]))
                    for p, s, h in _files),
        licence="MIT (licence of the publisher's repository)",
        licence_url="https://github.com/sbi-benchmark/sbibm/blob/main/LICENSE",
        citation_key="Lueckmann2021", citation=_SBIBM_BIB,
        loader={"problem": _task, "num_observations": 10, "reference_dir": ".",
                "num_simulations": [1000, 10000, 100000]},
        notes="Layout as sbibm's tasks/<task>/files/: num_observation_<k>/{observation*.csv, "
              "true_parameters.csv, reference_posterior_samples.csv.bz2}, k = 1..10"
              + ("; the observation file is observation_distractors.csv (100 values: 8 informative + 92 distractors)"
                 if _task == "slcp_distractors" else
                 "; the observation file is observation_raw.csv (100 raw spike counts)"
                 if _task == "bernoulli_glm_raw" else "")
              + ". Published anchor: sbibm's C2ST table (github.com/sbi-benchmark/results). Our sbi problems "
                "implement two_moons and gaussian_linear; the other simulators are still to be added.",
        homepage=f"https://github.com/sbi-benchmark/sbibm/tree/{SBIBM_COMMIT}/sbibm/tasks",
    ))
