"""Real multi-band cutouts in scarlet's HSC layout (5 bands, variance, integer bit-mask plane,
PSFs, filter names): bit semantics, filter names in predict's columns, one-line errors."""
import numpy as np
import pytest

from conftest import run_cli
from cosmobench.datamodules.deblending import AFW_MASK_PLANES, BAD_BITS, bad_pixels, read_cutout
from cosmobench.errors import InputError
from test_deblending_task import make_cutout

FILTERS = ["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"]
BIT = {name: 1 << i for i, name in enumerate(AFW_MASK_PLANES)}


def hsc_cutout(path, sc_seed=3, all_bad=False):
    """make_cutout's scene with an HSC-style integer mask (DETECTED on most pixels, a BAD
    corner, a SUSPECT stripe) and the filter names."""
    sc, unit = make_cutout(path, n_bands=5, seed=sc_seed)
    with np.load(path) as z:
        arrays = dict(z)
    h, w = arrays["images"].shape[-2:]
    mask = np.full((h, w), BIT["DETECTED"], dtype=np.int32)
    mask[:4, :4] |= BIT["BAD"]
    mask[:, -2:] |= BIT["SUSPECT"]
    if all_bad:
        mask |= BIT["NO_DATA"]
        mask[:10] |= BIT["EDGE"]
    arrays.update(mask=mask, filters=np.array(FILTERS))
    np.savez(path, **arrays)
    return sc, unit


def test_bit_mask_semantics():
    m = np.array([[BIT["DETECTED"], BIT["BAD"] | BIT["DETECTED"]], [BIT["SAT"], BIT["SUSPECT"] | (1 << 20)]])
    bad, flagged = bad_pixels(m, BAD_BITS, AFW_MASK_PLANES)
    assert bad.tolist() == [[False, True], [True, False]] and set(flagged) == {"BAD", "SAT"}
    bad, _ = bad_pixels(m, ["SUSPECT"], AFW_MASK_PLANES)
    assert bad.tolist() == [[False, False], [False, True]]
    assert bad_pixels(m != 0, BAD_BITS, AFW_MASK_PLANES)[0].all()      # a boolean mask: True = bad
    with pytest.raises(InputError, match="CLIPPED"):
        bad_pixels(m, ["CLIPPED"], AFW_MASK_PLANES)


def test_read_hsc_layout_and_fits_plane_names(tmp_path):
    hsc_cutout(tmp_path / "c.npz")
    cut = read_cutout(tmp_path / "c.npz")
    assert cut["filters"] == FILTERS and cut["images"].shape == (1, 5, 40, 40)
    assert cut["mask"][0, :4, :4].all() and cut["mask"].sum() == 16      # DETECTED, SUSPECT informational
    # FITS: plane names from the MASK header's MP_* keywords (here in another bit order)
    from astropy.io import fits
    with np.load(tmp_path / "c.npz") as z:
        images, var, psfs = z["images"], z["variance"], z["psfs"]
    mask = np.zeros((40, 40), np.int32)
    mask[:, :] = 1 << 0                       # bit 0 = DETECTED in this file
    mask[5:7, 5:9] |= 1 << 3                  # bit 3 = BAD
    hdr = fits.Header({"MP_DETECTED": 0, "MP_SAT": 1, "MP_EDGE": 2, "MP_BAD": 3, "MP_INTRP": 4, "MP_CR": 5,
                       "MP_NO_DATA": 6})
    prim = fits.PrimaryHDU(images)
    prim.header["FILTERS"] = ",".join(FILTERS)
    fits.HDUList([prim, fits.ImageHDU(var, name="VARIANCE"), fits.ImageHDU(mask, header=hdr, name="MASK"),
                  fits.ImageHDU(psfs, name="PSFS")]).writeto(tmp_path / "c.fits")
    cut = read_cutout(tmp_path / "c.fits")
    assert cut["mask"].sum() == 8 and cut["mask"][0, 5:7, 5:9].all() and cut["filters"] == FILTERS


def test_every_pixel_flagged_is_one_line_naming_the_bits(tmp_path):
    hsc_cutout(tmp_path / "c.npz", all_bad=True)
    with pytest.raises(InputError, match=r"NO_DATA \(100 %\), EDGE \(25 %\)"):
        read_cutout(tmp_path / "c.npz")
    # informational bits alone never make a pixel unusable
    cut = read_cutout(tmp_path / "c.npz", bad_bits=["BAD", "SAT"])
    assert cut["mask"].sum() == 16


def test_predict_5_band_hsc_cutout_filter_columns(tmp_path, root):
    sc, unit = hsc_cutout(tmp_path / "c.npz")
    out = run_cli(["predict", "deblending", "-m", "sep", "--input", str(tmp_path / "c.npz"),
                   "--output", str(tmp_path / "cat.csv"), "data.background=none"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    from cosmobench.io import read_table
    cols = read_table(tmp_path / "cat.csv")
    assert {f"flux_{f}" for f in FILTERS} <= set(cols) and "flux_0" not in cols
    flux = np.stack([cols[f"flux_{f}"] for f in FILTERS], 1)
    assert len(flux) >= 1 and (flux > 0).all()
    d = np.hypot(cols["x"][None] - sc.xy[:, :1], cols["y"][None] - sc.xy[:, 1:])
    assert (d.min(axis=1) < 3).sum() >= min(len(flux), 2)
    # the model-fitting baseline runs on the same file (its PSFs from the cutout)
    out = run_cli(["predict", "deblending", "-m", "modelfit", "--input", str(tmp_path / "c.npz"),
                   "--output", str(tmp_path / "fit.csv"), "data.background=none", "model.fit_steps=40"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    fit = read_table(tmp_path / "fit.csv")
    assert len(fit["x"]) == len(cols["x"]) and all(np.isfinite(fit[f"flux_{f}"]).all() for f in FILTERS)
    # a mask that flags every pixel: exit 2, one line naming the bits, nothing written
    hsc_cutout(tmp_path / "bad.npz", all_bad=True)
    out = run_cli(["predict", "deblending", "-m", "sep", "--input", str(tmp_path / "bad.npz"),
                   "--output", str(tmp_path / "bad.csv")], root)
    assert out.returncode == 2 and "NO_DATA" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.csv").exists()
