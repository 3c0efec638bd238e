"""Data set entries of photoz: Teddy and Happy (Beck et al. 2017), COINtoolbox/photoz_catalogues.

Hashes: see docs/datasets.md, "Where the hashes come from"."""
from cosmobench.datasets.catalog import DataFile, Dataset, Subset, bibtex, github_file, register_dataset

_COIN = ("COINtoolbox", "photoz_catalogues", "b6c40f318feb5eb4bb6bc592ca2592f0f05586c8")
_BECK2017 = bibtex("""
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
