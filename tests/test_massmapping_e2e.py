"""massmapping end to end through the CLI on tiny configs: HEALPix training and predict for every
model, flat predict formats and conventions, a flat-trained U-Net on a HEALPix map, bad input.
(The flat train -> predict path of every model also runs in tests/test_e2e.py.)"""
import json
import math

import numpy as np
import pytest

from conftest import HERE, run_cli, run_dirs

TINY = str(HERE / "conf" / "massmapping.yaml")
HEALPIX = ["data.sky=healpix", "data.nside=16", "data.n_train=2", "data.n_val=1", "data.n_test=1",
           "data.batch_size=1", "data.patch_size=16", "data.footprint=cap", "data.footprint_deg=70",
           "model.patches_per_map=4"]


def _train(root, model, extra=()):
    extra = [o for o in extra if model == "unet" or not o.startswith("model.")]
    out = run_cli(["train", "massmapping", "-m", model, "-c", TINY, *extra], root)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = run_dirs(root, "massmapping", model)[-1]
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def _export(run_dir, path):
    from cosmobench import config as C
    from cosmobench.datamodules.massmapping import MassMappingDataModule
    cfg = C.load_yaml(run_dir / "config.yaml")
    dm = MassMappingDataModule(cfg["data"], seed=cfg["seed"])
    dm.setup()
    return dm, dm.export("test", path)


# each CLI call costs ~15 CPU-s: the wiener HEALPix run and the bad-input checks run by default,
# the rest with `make test-slow`
@pytest.mark.parametrize("model", [pytest.param("unet", marks=pytest.mark.slow), "wiener",
                                   pytest.param("ks", marks=pytest.mark.slow)])
def test_healpix_train_and_predict(model, root):
    import healpy as hp
    run_dir, metrics = _train(root, model, HEALPIX)
    assert all(math.isfinite(v) for v in metrics.values())
    assert (run_dir / "plots" / "maps_mollweide.png").is_file()
    _, inp = _export(run_dir, root / "shear.fits")
    out = root / "kappa.fits"
    res = run_cli(["predict", "massmapping", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
                   "--input", str(inp), "--output", str(out)], root)
    assert res.returncode == 0, res.stderr[-3000:]
    kappa = hp.read_map(out)
    mask = hp.read_map(inp, field=2)
    assert len(kappa) == hp.nside2npix(16)
    assert np.all(kappa[mask == 0] == hp.UNSEEN) and np.all(np.isfinite(kappa[mask > 0]))
    if model != "unet":  # a fitted linear filter reconstructs structure (1 epoch of U-Net may not)
        assert metrics["pearson_r"] > 0.3


@pytest.mark.slow
def test_flat_predict_formats_and_conventions(root, tmp_path):
    run_dir, _ = _train(root, "ks")
    dm, inp = _export(run_dir, tmp_path / "stack.npy")
    ckpt = str(run_dir / "checkpoints" / "best.ckpt")
    stack = np.load(inp)
    one = tmp_path / "one.npy"
    np.save(one, np.moveaxis(stack[0], 0, -1))  # a single (N, N, 2) map

    def predict(inp_path, out_path, *over):
        r = run_cli(["predict", "massmapping", "--checkpoint", ckpt, "--input", str(inp_path),
                     "--output", str(out_path), *over], root)
        assert r.returncode == 0, r.stderr[-3000:]
        return out_path

    k_stack = np.load(predict(inp, tmp_path / "k.npz"))["kappa"]
    assert k_stack.shape == (len(stack),) + stack.shape[-2:]
    from astropy.io import fits
    k_one = fits.getdata(predict(one, tmp_path / "k.fits"))
    np.testing.assert_allclose(k_one, k_stack[0], rtol=1e-5, atol=1e-7)  # single (N, N) image, same answer
    # the same map stored transposed (rows = x) with the opposite gamma2 sign gives the transposed kappa
    np.save(tmp_path / "t.npy", np.swapaxes(stack[:1] * np.array([1, -1])[None, :, None, None], -1, -2))
    k_t = np.load(predict(tmp_path / "t.npy", tmp_path / "kt.npz", "data.spatial_order=xy",
                          "data.gamma2_sign=-1"))["kappa"]
    np.testing.assert_allclose(k_t[0], k_stack[0].T, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.load(predict(one, tmp_path / "k.npy")), k_stack[0], rtol=1e-5, atol=1e-7)
    table = predict(one, tmp_path / "k.csv").read_text().splitlines()
    assert table[0].split(",") == ["map", "row", "col", "kappa"] and len(table) == 1 + stack.shape[-1] ** 2


@pytest.mark.slow
def test_flat_trained_unet_serves_a_healpix_map(root, tmp_path):
    import healpy as hp
    from cosmobench.sim import healpix as H
    run_dir, _ = _train(root, "unet", ["data.pixel_arcmin=55.0", "data.patch_size=16"])
    nside = 64  # 55 arcmin pixels, as the flat training maps
    rng = np.random.default_rng(0)
    mask = H.footprint_mask(nside, "cap", 25.0)
    maps = np.stack([rng.normal(0, 0.01, len(mask)) * mask, rng.normal(0, 0.01, len(mask)) * mask, mask])
    hp.write_map(tmp_path / "sky.fits", maps, column_names=["G1", "G2", "MASK"])
    out = tmp_path / "sky_kappa.fits"
    r = run_cli(["predict", "massmapping", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
                 "--input", str(tmp_path / "sky.fits"), "--output", str(out)], root)
    assert r.returncode == 0, r.stderr[-3000:]
    k = hp.read_map(out)
    assert np.all(np.isfinite(k[mask > 0])) and np.all(k[mask == 0] == hp.UNSEEN)


def test_bad_inputs_exit_2_and_write_nothing(root, tmp_path):
    run_dir, _ = _train(root, "wiener")
    ckpt = str(run_dir / "checkpoints" / "best.ckpt")
    np.save(tmp_path / "bad.npy", np.zeros((3, 5, 5)))
    out = tmp_path / "k.npz"
    r = run_cli(["predict", "massmapping", "--checkpoint", ckpt, "--input", str(tmp_path / "bad.npy"),
                 "--output", str(out)], root)
    assert r.returncode == 2 and "axis of length 2" in r.stderr and not out.exists()
    r = run_cli(["train", "massmapping", "-m", "wiener", "-c", TINY, "data.source=flat"], root)
    assert r.returncode == 2 and "data.path" in r.stderr
    r = run_cli(["train", "massmapping", "-m", "wiener", "-c", TINY, "data.nside=48", "data.sky=healpix"], root)
    assert r.returncode == 2 and "power of 2" in r.stderr
    r = run_cli(["train", "massmapping", "-m", "unet", "-c", TINY, "data.mask_hole_radius=[3.0]"], root)
    assert r.returncode == 2 and "mask_hole_radius" in r.stderr
    assert len(run_dirs(root, "massmapping", "wiener")) == 1 and not run_dirs(root, "massmapping", "unet")
