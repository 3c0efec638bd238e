"""Shared image layer: layouts, readers of every format, finiteness checks on every split,
train-split band statistics."""
import h5py
import numpy as np
import pytest
import torch
from astropy.io import fits
from PIL import Image

from cosmobench.datamodule import ArrayDataset
from cosmobench.errors import InputError
from cosmobench.images import (FileImages, LazyImageDataset, apply_stretch, background_sigma, band_statistics,
                               check_finite_images, crop_resize, read_folder_catalog, read_image_file,
                               read_image_stack, to_chw, train_band_statistics)
from cosmobench.io import write_table

RNG = np.random.default_rng(0)
STACK = RNG.normal(size=(4, 3, 10, 10)).astype(np.float32)  # (N, C, H, W)


def test_to_chw_layouts_and_errors():
    np.testing.assert_array_equal(to_chw(np.moveaxis(STACK, 1, -1), 3, "x"), STACK)
    np.testing.assert_array_equal(to_chw(STACK, 3, "x"), STACK)
    assert to_chw(STACK[:, 0], 1, "x").shape == (4, 1, 10, 10)
    with pytest.raises(InputError, match=r"x: expected .*n_bands=2"):
        to_chw(STACK, 2, "x")
    with pytest.raises(InputError, match="square"):
        to_chw(STACK[..., :8], 3, "x")


def test_crop_resize():
    x = torch.arange(100.0).view(1, 10, 10)
    torch.testing.assert_close(crop_resize(x, 4, 4), x[:, 3:7, 3:7])
    assert crop_resize(x[None], None, 5).shape == (1, 1, 5, 5)
    torch.testing.assert_close(crop_resize(x, 2, 4).mean(), x[:, 4:6, 4:6].mean())  # bilinear upsampling
    with pytest.raises(InputError, match="data.crop=11"):
        crop_resize(x, 11, 4)


@pytest.mark.parametrize("fmt", ["npy", "npz", "h5", "fits", "npy_hwc"])
def test_read_image_stack_formats(tmp_path, fmt):
    p = tmp_path / f"s.{fmt.split('_')[0]}"
    if fmt == "npy":
        np.save(p, STACK)
    elif fmt == "npy_hwc":
        np.save(p, np.moveaxis(STACK, 1, -1))
    elif fmt == "npz":
        np.savez(p, other=np.zeros(3), images=STACK)
    elif fmt == "h5":
        with h5py.File(p, "w") as fh:
            fh["images"] = STACK
            fh["labels"] = np.zeros(4)
    else:
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(STACK, name="SCI")]).writeto(p)
    out = read_image_stack(p)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, STACK)
    np.testing.assert_array_equal(read_image_stack(p, n_bands=3), STACK)


def test_read_image_stack_keys_cubes_and_errors(tmp_path):
    # a FITS cube of NAXIS3 = N single-band planes reads as (N, 1, H, W)
    p = tmp_path / "cube.fits"
    fits.PrimaryHDU(STACK[:, 0]).writeto(p)
    np.testing.assert_array_equal(read_image_stack(p), STACK[:, :1])
    q = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(STACK[:, 0]), fits.ImageHDU(STACK[:, 1], name="ERR")]).writeto(q)
    np.testing.assert_array_equal(read_image_stack(q, key="ERR")[:, 0], STACK[:, 1])
    np.testing.assert_array_equal(read_image_stack(q, key="1")[:, 0], STACK[:, 1])
    with pytest.raises(InputError, match="no HDU 'NOPE'"):
        read_image_stack(q, key="NOPE")
    h = tmp_path / "s.h5"
    with h5py.File(h, "w") as fh:
        fh["a"], fh["b"] = STACK, STACK
    with pytest.raises(InputError, match=r"no dataset 'images' \(has: a, b\)"):
        read_image_stack(h)
    np.testing.assert_array_equal(read_image_stack(h, key="b"), STACK)
    bad_cases = {"t.fits": "SIMPLE = nonsense\nmore text\n", "t.h5": "text", "t.npy": "text", "t.npz": "x",
                 "t.txt": "1"}
    for name, text in bad_cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError) as e:
            read_image_stack(tmp_path / name)
        assert "\n" not in str(e.value) and name in str(e.value)
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(InputError, match="image stack"):
        read_image_stack(tmp_path / "v.npy")
    with pytest.raises(InputError, match="not found"):
        read_image_stack(tmp_path / "absent.npy")


def test_read_image_file_png_fits_npy_and_not_an_image(tmp_path):
    rgb = RNG.integers(0, 255, size=(12, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image_file(tmp_path / "a.png", 3), np.moveaxis(rgb, -1, 0))
    assert read_image_file(tmp_path / "a.png", 1).shape == (1, 12, 12)
    fits.PrimaryHDU(STACK[0]).writeto(tmp_path / "a.fits")
    np.testing.assert_array_equal(read_image_file(tmp_path / "a.fits", 3), STACK[0])
    np.save(tmp_path / "a.npy", STACK[0, 0])
    np.testing.assert_array_equal(read_image_file(tmp_path / "a.npy", 1), STACK[0, :1])
    (tmp_path / "b.png").write_text("not an image")
    with pytest.raises(InputError, match="b.png is not a readable image"):
        read_image_file(tmp_path / "b.png", 3)
    with pytest.raises(InputError, match="not found"):
        read_image_file(tmp_path / "c.png", 3)


def test_check_finite_images_on_every_split(tmp_path):
    good = {"image": STACK, "label": np.zeros(4)}
    bad = dict(good, image=STACK.copy())
    bad["image"][2, 1, 3, 3] = np.inf
    check_finite_images({"train": ArrayDataset(good), "test": ArrayDataset(good)})
    with pytest.raises(InputError, match="test split images: 1 image"):
        check_finite_images({"train": ArrayDataset(good), "val": ArrayDataset(good), "test": ArrayDataset(bad)})
    # lazy datasets: the image is checked when read, the file is named
    files = []
    for i in range(3):
        a = STACK[i].copy()
        if i == 1:
            a[0, 0, 0] = np.nan
        np.save(tmp_path / f"{i}.npy", a)
        files.append(tmp_path / f"{i}.npy")
    ds = LazyImageDataset(np.arange(3), FileImages(files, 3), np.zeros(3), None, None, 10, check_finite=False)
    check_finite_images({"test": ds})
    assert ds.check_finite
    ds[0]
    with pytest.raises(InputError, match=r"1.npy: image contains NaN"):
        ds[1]


def test_band_statistics_by_hand():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(0, [[[[2.0]], [[5.0]]]], size=(40, 2, 16, 16)))
    x[:, :, 6:10, 6:10] += 100.0  # a bright source inside the frame does not change the noise estimate
    s = band_statistics(x, "asinh")
    np.testing.assert_allclose(s["scale"], [2.0, 5.0], rtol=0.08)
    np.testing.assert_allclose(s["scale"], background_sigma(x).numpy())
    z = torch.asinh(x / torch.tensor(s["scale"]).view(1, 2, 1, 1))
    np.testing.assert_allclose(s["mean"], z.mean(dim=(0, 2, 3)).numpy(), rtol=1e-7)
    np.testing.assert_allclose(s["std"], z.std(dim=(0, 2, 3)).numpy(), rtol=1e-7)
    lin = band_statistics(x, "linear")
    assert lin["scale"] == [1.0, 1.0]
    np.testing.assert_allclose(lin["mean"], x.mean(dim=(0, 2, 3)).numpy(), rtol=1e-7)
    const = torch.zeros(3, 1, 16, 16)
    const[:, :, 8, 8] = torch.tensor([10.0, 20.0, 30.0]).view(3, 1)
    assert band_statistics(const)["scale"][0] > 0  # constant background: finite fallback scale
    torch.testing.assert_close(apply_stretch(x, torch.tensor(2.0), "linear"), x / 2)
    ds = ArrayDataset({"image": x.float().numpy()})
    t = train_band_statistics(ds, "linear", max_images=10)
    np.testing.assert_allclose(t["mean"], x[np.unique(np.linspace(0, 39, 10).astype(int))].mean(dim=(0, 2, 3)),
                               rtol=1e-5)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="training images"):
        band_statistics(x)


@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".fits"])
def test_read_folder_catalog(tmp_path, suffix):
    (tmp_path / "img").mkdir()
    names = []
    for i in range(4):
        np.save(tmp_path / "img" / f"{i}.npy", STACK[i])
        names.append(f"img/{i}.npy")
    write_table({"file": np.array(names), "kind": np.array(["spiral", "elliptical", "spiral", "merger"]),
                 "code": np.array([0, 2, 1, 0]), "v1": np.array([1.0, 0, 2, 1]), "v2": np.array([0, 1.0, 2, 3])},
                tmp_path / f"cat{suffix}")
    cat = read_folder_catalog(tmp_path / f"cat{suffix}", "file", "kind")
    assert cat["class_names"] == ["elliptical", "merger", "spiral"]
    assert cat["labels"].tolist() == [2, 0, 2, 1] and cat["votes"] is None
    assert cat["files"][1] == tmp_path / "img" / "1.npy"
    ints = read_folder_catalog(tmp_path / f"cat{suffix}", "file", "code")
    assert ints["class_names"] == ["class_0", "class_1", "class_2"] and ints["labels"].tolist() == [0, 2, 1, 0]
    v = read_folder_catalog(tmp_path / f"cat{suffix}", "file", vote_columns=["v1", "v2"])
    np.testing.assert_allclose(v["votes"][2], [0.5, 0.5])
    assert v["class_names"] == ["v1", "v2"] and v["labels"].tolist() == [0, 1, 0, 1]
    with pytest.raises(InputError, match="'label' not found"):
        read_folder_catalog(tmp_path / f"cat{suffix}", "file", "label")


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".h5", ".fits"])
def test_write_image_stack_round_trips_in_every_format(tmp_path, suffix):
    from cosmobench.images import write_image_stack
    x = torch.rand(5, 3, 8, 8) * 100
    path = write_image_stack(tmp_path / f"stack{suffix}", x)
    assert path == tmp_path / f"stack{suffix}" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    back = read_image_stack(path)
    assert back.dtype == np.float32 and np.array_equal(back, x.numpy())


def test_write_image_stack_rejects_unknown_extension_and_bad_shape(tmp_path):
    from cosmobench.images import write_image_stack
    with pytest.raises(InputError, match="use .npy"):
        write_image_stack(tmp_path / "stack.png", torch.zeros(2, 1, 4, 4))
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        write_image_stack(tmp_path / "stack.npy", torch.zeros(4, 4))
    assert list(tmp_path.iterdir()) == []
