"""Issue 21, the deblending inputs: hostile cutouts and detection catalogues given to
``cosmobench predict deblending``. The rule of each class (datamodules/deblending_cutouts.py):

* malformed files, catalogue positions outside the cutout, scene ids that are not integers,
  sizes that do not fit in memory: exit 2, ONE line naming the file (and row/column), nothing
  written;
* NaN/inf pixels: masked like a flagged pixel, with the count logged; a scene with no usable
  pixel is exit 2.
Each class is tried with several members."""
from __future__ import annotations

import io
import logging
import time
import zipfile

import numpy as np
import pytest

from conftest import run_cli
from cosmobench import cli

SIZE = 32
SOURCES = [(10.0, 12.0, 2.0, 100.0), (21.0, 19.0, 2.5, 60.0)]  # x, y, sigma (px), peak


def arrays(n_bands=5, stack=1):
    """Two Gaussian galaxies on noise, 5 bands, scarlet's layout (images, variance, psfs, filters)."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    img = sum(f * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s)) for x, y, s, f in SOURCES)
    rng = np.random.default_rng(0)
    images = np.stack([img * (1 + 0.2 * b) for b in range(n_bands)]) + rng.normal(0, 0.5, (n_bands, SIZE, SIZE))
    k = np.exp(-np.add.outer(np.arange(-5, 6) ** 2, np.arange(-5, 6) ** 2) / (2 * 1.2 ** 2))
    out = {"images": images.astype(np.float32), "variance": np.full(images.shape, 0.25, np.float32),
           "psfs": np.stack([k / k.sum()] * n_bands), "filters": np.array(list("grizy"[:n_bands]))}
    if stack > 1:
        out["images"] = np.stack([out["images"]] * stack)
        out["variance"] = np.stack([out["variance"]] * stack)
    return out


def cutout(path, **change):
    a = {**arrays(), **change}
    np.savez(path, **{k: v for k, v in a.items() if v is not None})
    return str(path)


def predict(root, capsys, monkeypatch, inp, *extra, out="cat.csv"):
    """``cosmobench predict deblending -m sep`` in this process: (exit code, stderr, output path)."""
    monkeypatch.setenv("COSMOBENCH_HOME", str(root))
    monkeypatch.chdir(root)
    code = cli.main(["predict", "deblending", "-m", "sep", "--input", str(inp), "--output", str(root / out),
                     "data.background=none", *extra])
    return code, capsys.readouterr().err, root / out


def refused(code, err, out, *needles):
    assert code == 2, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("cosmobench: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    stem = out.name.split(".")[0]
    assert not any(p.name.startswith(stem) for p in out.parent.iterdir()), "something was written"


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    return d


# --- 3. malformed cutouts: one InputError line ---------------------------------------------
def _truncated_fits(path):
    from astropy.io import fits
    fits.PrimaryHDU(arrays()["images"]).writeto(path)
    data = path.read_bytes()
    path.write_bytes(data[:4000])
    return str(path)


MALFORMED = {
    "truncated npz": (lambda d: (d / "t.npz").write_bytes(open(cutout(d / "ok.npz"), "rb").read()[:700]) and
                      str(d / "t.npz"), "not a .npz file"),
    "empty npz": (lambda d: (d / "e.npz").write_bytes(b"") or str(d / "e.npz"), "not a .npz file"),
    "text named npz": (lambda d: (d / "x.npz").write_text("images,1,2\n") and str(d / "x.npz"), "not a .npz file"),
    "truncated fits": (lambda d: _truncated_fits(d / "t.fits"), "not a readable FITS file"),
    "text named fits": (lambda d: (d / "x.fits").write_text("SIMPLE = T\n") and str(d / "x.fits"), "FITS"),
    "no images": (lambda d: cutout(d / "n.npz", images=None, variance=None, psfs=None, filters=None,
                                   pixels=np.ones((5, 8, 8))), "no 'images'"),
    "string images": (lambda d: cutout(d / "s.npz", images=np.full((5, SIZE, SIZE), "a")), "not numeric"),
    "complex images": (lambda d: cutout(d / "c.npz", images=arrays()["images"] + 1j), "complex"),
    "boolean images": (lambda d: cutout(d / "b.npz", images=arrays()["images"] > 0), "boolean"),
    "scalar images": (lambda d: cutout(d / "sc.npz", images=np.float32(3)), "scalar"),
    "5-d images": (lambda d: cutout(d / "5d.npz", images=arrays()["images"][None, None]), "(C, H, W)"),
    "variance of other shape": (lambda d: cutout(d / "v.npz", variance=np.ones((5, SIZE, SIZE - 1))), "'variance'"),
    "negative variance": (lambda d: cutout(d / "nv.npz", variance=-arrays()["variance"]), "non-negative"),
    "negative weights": (lambda d: cutout(d / "nw.npz", variance=None, weights=-np.ones((5, SIZE, SIZE))),
                         "'weights'"),
    "string mask": (lambda d: cutout(d / "sm.npz", mask=np.full((SIZE, SIZE), "BAD")), "'mask' is not numeric"),
    "fractional mask": (lambda d: cutout(d / "fm.npz", mask=np.full((SIZE, SIZE), 0.5)), "bit-mask"),
    "mask of other shape": (lambda d: cutout(d / "ms.npz", mask=np.zeros((SIZE + 1, SIZE), np.int32)), "'mask'"),
    "numeric mask_planes": (lambda d: cutout(d / "mp.npz", mask=np.zeros((SIZE, SIZE), np.int32),
                                             mask_planes=np.arange(9)), "mask_planes"),
    "NaN psfs": (lambda d: cutout(d / "np.npz", psfs=arrays()["psfs"] * np.nan), "'psfs'"),
    "psfs of other bands": (lambda d: cutout(d / "pb.npz", psfs=arrays()["psfs"][:3]), "'psfs'"),
    "numeric filters": (lambda d: cutout(d / "nf.npz", filters=np.arange(5)), "'filters'"),
    "filter name with a comma": (lambda d: cutout(d / "fc.npz", filters=np.array(["g,x", "r", "i", "z", "y"])),
                                 "not a plain name"),
    "filter name with a newline": (lambda d: cutout(d / "fn.npz", filters=np.array(["g\nx", "r", "i", "z", "y"])),
                                   "not a plain name"),
    "duplicate filters": (lambda d: cutout(d / "fd.npz", filters=np.array(["g", "g", "i", "z", "y"])), "once"),
    "unsupported suffix": (lambda d: cutout(d / "u.npz") and (d / "u.npz").rename(d / "u.png") or str(d / "u.png"),
                           "unsupported cutout format"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_cutouts_one_line(case, root, inputs, capsys, monkeypatch):
    make, needle = MALFORMED[case]
    path = make(inputs)
    refused(*predict(root, capsys, monkeypatch, path), needle)


# --- 5. catalogue positions outside the cutout, bad scene ids: rejected --------------------
def _csv(d, text, name="cat.csv"):
    (d / name).write_text(text)
    return str(d / name)


@pytest.mark.parametrize("rows,extra,needle", [
    ("x,y\n10,12\n500,20\n", [], "row 1, column 'x' = 500 is outside the cutout"),
    ("x,y\n10,12\n20,-3\n", [], "row 1, column 'y' = -3 is outside"),
    ("x,y\n31.5,12\n", [], "column 'x' = 31.5 is outside"),              # the far edge of the last pixel
    ("x,y\n-0.6,12\n", [], "column 'x' = -0.6 is outside"),
    ("x,y\n0,12\n", ["data.catalog_origin=1"], "column 'x' = 0 is outside"),  # FITS convention: first pixel is 1
    ("x,y\n10,\n", [], "column 'y' = nan is missing"),
    ("x,y\nnan,12\n", [], "is missing"),
    ("x,y\n10,abc\n", [], "column 'y' is not numeric: row 0 holds 'abc'"),
    ("x,y\ninf,12\n", [], "is outside"),
    ("ra,dec\n1,2\n", [], "'x'"),
])
def test_catalogue_positions_outside_or_missing(rows, extra, needle, root, inputs, capsys, monkeypatch):
    path = cutout(inputs / "c.npz")
    refused(*predict(root, capsys, monkeypatch, path, f"data.catalog={_csv(inputs, rows)}", *extra), needle)


def test_npz_catalogue_outside(root, inputs, capsys, monkeypatch):
    rec = np.array([(10.0, 12.0), (21.0, 40.0)], dtype=[("x", "f8"), ("y", "f8")])
    refused(*predict(root, capsys, monkeypatch, cutout(inputs / "c.npz", catalog=rec), "data.catalog=npz"),
            "c.npz: row 1, column 'y' = 40 is outside")
    rec = np.array([("a", "b")], dtype=[("x", "U3"), ("y", "U3")])
    refused(*predict(root, capsys, monkeypatch, cutout(inputs / "s.npz", catalog=rec), "data.catalog=npz"),
            "column 'x' is not numeric")


def test_positions_inside_are_used_as_given(root, inputs, capsys, monkeypatch):
    """The valid range is inclusive of the first pixel's near edge: positions on both
    conventions land on the same pixels, and the output rows are the catalogue's."""
    from cosmobench.io import read_table
    path = cutout(inputs / "c.npz")
    code, err, out = predict(root, capsys, monkeypatch, path, "data.catalog=" + _csv(inputs, "x,y\n10,12\n21,19\n"))
    assert code == 0, err
    a = read_table(out)
    code, err, out1 = predict(root, capsys, monkeypatch, path, "data.catalog=" + _csv(inputs, "x,y\n11,13\n22,20\n",
                                                                                       "one.csv"),
                              "data.catalog_origin=1", out="cat1.csv")
    assert code == 0, err
    b = read_table(out1)
    assert a["x"].tolist() == b["x"].tolist() == [10.0, 21.0] and a["y"].tolist() == [12.0, 19.0]
    assert np.allclose(a["flux_g"], b["flux_g"]) and (a["flux_g"] > 0).all()


@pytest.mark.parametrize("scene,needle", [
    ("0.5", "column 'scene' = 0.5 is not a scene index"),
    ("1.0001", "= 1.0001 is not a scene index"),
    ("-1", "= -1 is not a scene index"),
    ("2", "= 2 is not a scene index (an integer in 0..1"),
    ("nan", "= nan is not a scene index"),
    ("1e300", "is not a scene index"),
    ("one", "column 'scene' is not numeric"),
])
def test_scene_ids_must_be_integers_of_the_stack(scene, needle, root, inputs, capsys, monkeypatch):
    np.savez(inputs / "stack.npz", **arrays(stack=2))
    cat = _csv(inputs, f"x,y,scene\n10,12,0\n21,19,{scene}\n")
    refused(*predict(root, capsys, monkeypatch, inputs / "stack.npz", f"data.catalog={cat}"), needle)


def test_scene_ids_whole_floats_accepted_and_a_stack_needs_the_column(root, inputs, capsys, monkeypatch):
    from cosmobench.io import read_table
    np.savez(inputs / "stack.npz", **arrays(stack=2))
    code, err, out = predict(root, capsys, monkeypatch, inputs / "stack.npz",
                             "data.catalog=" + _csv(inputs, "x,y,scene\n10,12,0.0\n21,19,1.0\n"))
    assert code == 0, err
    assert read_table(out)["scene"].tolist() == [0, 1]
    refused(*predict(root, capsys, monkeypatch, inputs / "stack.npz",
                     "data.catalog=" + _csv(inputs, "x,y\n10,12\n", "noscene.csv"), out="b.csv"),
            "2 scenes", "no 'scene' column")


# --- 5. NaN/inf pixels: masked with a logged count (the documented rule) --------------------
@pytest.mark.parametrize("plane,value", [("images", np.nan), ("images", np.inf), ("images", -np.inf),
                                         ("variance", np.nan)])
def test_nonfinite_pixels_are_masked_and_counted(plane, value, root, inputs, capsys, monkeypatch, caplog):
    """A non-finite pixel is treated exactly as a pixel flagged by the mask, and counted."""
    from cosmobench.io import read_table
    a = arrays()
    a[plane][2, 9:11, 11:14] = value                      # 6 pixels on the first galaxy, one band
    np.savez(inputs / "bad.npz", **a)
    flagged = arrays()
    flagged["mask"] = np.zeros((SIZE, SIZE), bool)
    flagged["mask"][9:11, 11:14] = True
    np.savez(inputs / "flagged.npz", **flagged)
    cat = "data.catalog=" + _csv(inputs, "x,y\n10,12\n21,19\n")
    with caplog.at_level(logging.WARNING):
        code, err, out = predict(root, capsys, monkeypatch, inputs / "bad.npz", cat)
    assert code == 0, err
    assert [r.getMessage() for r in caplog.records] == [
        f"{inputs / 'bad.npz'}: 6 pixel(s) with NaN/inf image or variance values masked as unusable "
        f"(0 of them flagged by the mask already)"]
    code, err, ref = predict(root, capsys, monkeypatch, inputs / "flagged.npz", cat, out="ref.csv")
    assert code == 0, err
    got, want = read_table(out), read_table(ref)
    for b in "grizy":
        assert np.allclose(got[f"flux_{b}"], want[f"flux_{b}"]) and np.isfinite(got[f"flux_{b}"]).all()


def test_nonfinite_pixels_already_flagged_are_counted_as_such(inputs, caplog):
    from cosmobench.datamodules.deblending import AFW_MASK_PLANES, read_cutout
    a = arrays()
    a["images"][:, :3, :] = np.nan                         # a NO_DATA strip, as LSST/HSC coadds store it
    a["variance"][:, :3, :] = np.nan
    mask = np.zeros((SIZE, SIZE), np.int32)
    mask[:2, :] = 1 << AFW_MASK_PLANES.index("NO_DATA")
    np.savez(inputs / "c.npz", **a, mask=mask)
    with caplog.at_level(logging.WARNING):
        cut = read_cutout(inputs / "c.npz")
    assert "96 pixel(s) with NaN/inf" in caplog.text and "64 of them flagged by the mask already" in caplog.text
    assert cut["mask"][0, :3].all() and not cut["mask"][0, 3:].any()
    assert np.isfinite(cut["images"]).all() and np.isfinite(cut["variance"]).all() and (cut["variance"] > 0).all()


def test_nonfinite_pixels_one_warning_line_as_a_user_sees_it(root, inputs):
    a = arrays()
    a["images"][0, 0, 0] = np.nan
    np.savez(inputs / "c.npz", **a)
    out = run_cli(["predict", "deblending", "-m", "sep", "--input", str(inputs / "c.npz"), "--output",
                   str(root / "cat.csv"), "data.background=none"], root)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith("predict: deblending/sep on ")]
    assert lines == [f"{inputs / 'c.npz'}: 1 pixel(s) with NaN/inf image or variance values masked as unusable "
                     f"(0 of them flagged by the mask already)"]


@pytest.mark.parametrize("change", [
    {"images": np.full((5, SIZE, SIZE), np.nan, np.float32)},
    {"variance": np.full((5, SIZE, SIZE), np.nan, np.float32)},
    {"variance": np.zeros((5, SIZE, SIZE), np.float32)},
    {"variance": None, "weights": np.zeros((5, SIZE, SIZE), np.float32)},
    {"mask": np.ones((SIZE, SIZE), bool)},
])
def test_scene_without_a_usable_pixel_is_refused(change, root, inputs, capsys, monkeypatch):
    refused(*predict(root, capsys, monkeypatch, cutout(inputs / "c.npz", **change)), "c.npz")


# --- 6. sizes: refused from the file's header, before anything is allocated ----------------
def _huge_npz(path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (5, 300000, 300000)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", buf.getvalue() + b"\0" * 64)
    return path


def _huge_fits(path):
    from astropy.io import fits
    h = fits.Header()
    for k, v in (("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 3), ("NAXIS1", 300000), ("NAXIS2", 300000),
                 ("NAXIS3", 5)):
        h[k] = v
    path.write_bytes(h.tostring().encode() + b"\0" * 2880)
    return path


@pytest.mark.parametrize("make", [_huge_npz, _huge_fits])
def test_huge_declared_sizes_refused_before_reading(make, root, inputs, capsys, monkeypatch):
    path = make(inputs / ("huge.npz" if make is _huge_npz else "huge.fits"))
    t0 = time.perf_counter()
    refused(*predict(root, capsys, monkeypatch, path), "'images' of shape (5, 300000, 300000)", "memory")
    assert time.perf_counter() - t0 < 30


def test_catalogue_too_large_for_memory_refused(root, inputs, capsys, monkeypatch):
    """Each catalogue position costs a network input and an output image: a catalogue whose
    scene would not fit in memory is refused before any of it is deblended."""
    import cosmobench.datamodule as dmod
    monkeypatch.setattr(dmod, "available_memory", lambda: 1 << 30)
    xy = np.random.default_rng(0).uniform(0, SIZE - 1, (20000, 2))
    cat = inputs / "many.csv"
    cat.write_text("x,y\n" + "\n".join(f"{x:.2f},{y:.2f}" for x, y in xy) + "\n")
    refused(*predict(root, capsys, monkeypatch, cutout(inputs / "c.npz"), f"data.catalog={cat}"),
            "20000 positions in one scene", "memory")
