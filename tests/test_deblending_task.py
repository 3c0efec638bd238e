"""Deblending task: data pipeline, real-cutout reader, U-Net training sources and shares, and
`cosmobench predict deblending` on a 5-band real-format cutout (CLI, as a user runs it)."""
import json

import numpy as np
import pytest
import torch

from conftest import HERE, run_cli, run_dirs
from cosmobench import config as C
from cosmobench.datamodules.deblending import DeblendingDataModule, read_cutout
from cosmobench.errors import InputError
from cosmobench.sim.blends import BlendSetup, simulate_scene

TINY = HERE / "conf" / "deblending.yaml"


def tiny_cfg(model="unet", *overrides):
    return C.resolve("deblending", model, config_file=TINY, overrides=list(overrides))


def make_cutout(path, n_bands=5, seed=3, size=40, key_variance="variance", mask=False):
    """A scarlet-layout NPZ: images (C, H, W), variance, psfs (C, h, w) [, mask], in other flux
    units than the simulator's counts (x 0.01) to check that nothing depends on them."""
    st = BlendSetup(image_size=size, n_bands=n_bands, pixel_scale=0.2, psf_fwhm=0.7, zero_point=34.0,
                    sky_mag=21.0, mag_range=[20.0, 21.5], oversample=2, n_min=3, n_max=3, overlap_fraction=0.5)
    sc = simulate_scene(np.random.default_rng(seed), st)
    unit = 0.01
    var = np.broadcast_to(st.background_variance[:, None, None], sc.image.shape) * unit ** 2
    arrays = {"images": sc.image * unit, key_variance: var if key_variance == "variance" else 1 / var,
              "psfs": np.stack(st.psfs)}
    if mask:
        m = np.zeros((size, size), bool)
        m[0:3, 0:3] = True
        arrays["mask"] = m
    np.savez(path, **arrays)
    return sc, unit


# ----------------------------------------------------------------------------- data
def test_datamodule_items_truth_padding_and_reproducibility():
    cfg = tiny_cfg()
    dm = DeblendingDataModule(cfg["data"], seed=0)
    dm.setup()
    item = dm.datasets["test"][0]
    n, n_max = int(item["n_true"]), cfg["data"]["n_max"]
    assert item["image"].shape == (3, 32, 32) and item["variance"].shape == (3, 32, 32)
    assert item["truth_images"].shape == (n_max, 3, 32, 32) and 1 <= n <= n_max
    assert torch.isnan(item["truth_xy"][n:]).all() and torch.isfinite(item["truth_xy"][:n]).all()
    assert torch.allclose(item["truth_flux"][:n], item["truth_images"][:n].sum((-2, -1)), rtol=1e-5)
    again = DeblendingDataModule(cfg["data"], seed=0)
    again.setup()
    assert torch.equal(again.datasets["test"][3]["image"], dm.datasets["test"][3]["image"])
    other = DeblendingDataModule(cfg["data"], seed=1)
    other.setup()
    assert not torch.equal(other.datasets["test"][3]["image"], dm.datasets["test"][3]["image"])
    assert not torch.equal(dm.datasets["train"][0]["image"], dm.datasets["test"][0]["image"])
    info = dm.info()
    assert info["n_bands"] == 3 and np.asarray(info["psf_kernel"]).sum() == pytest.approx(1.0, rel=1e-3)


def test_read_cutout_weights_mask_and_bad_input(tmp_path):
    make_cutout(tmp_path / "w.npz", key_variance="weights", mask=True)
    cut = read_cutout(tmp_path / "w.npz")
    assert cut["images"].shape == (1, 5, 40, 40) and cut["psfs"].shape[0] == 5
    assert cut["mask"][0, :3, :3].all() and not cut["mask"][0, 5:, 5:].any()
    assert (cut["images"][0, :, :3, :3] == 0).all()               # masked pixels carry no flux
    assert np.isfinite(cut["variance"]).all() and (cut["variance"] > 0).all()
    np.savez(tmp_path / "noimg.npz", data=np.zeros((3, 8, 8)))
    with pytest.raises(InputError, match="no 'images'"):
        read_cutout(tmp_path / "noimg.npz")
    np.savez(tmp_path / "badvar.npz", images=np.zeros((3, 8, 8)), variance=np.ones((2, 8, 8)))
    with pytest.raises(InputError, match="'variance' has shape"):
        read_cutout(tmp_path / "badvar.npz")
    np.savez(tmp_path / "badpsf.npz", images=np.ones((3, 8, 8)), variance=np.ones((3, 8, 8)),
             psfs=np.zeros((3, 5, 5)))
    with pytest.raises(InputError, match="psfs"):
        read_cutout(tmp_path / "badpsf.npz")


def test_fits_cutout_reads_like_npz(tmp_path):
    from astropy.io import fits
    make_cutout(tmp_path / "c.npz")
    z = np.load(tmp_path / "c.npz")
    fits.HDUList([fits.PrimaryHDU(z["images"]), fits.ImageHDU(z["variance"], name="VARIANCE"),
                  fits.ImageHDU(z["psfs"], name="PSFS")]).writeto(tmp_path / "c.fits")
    a, b = read_cutout(tmp_path / "c.npz"), read_cutout(tmp_path / "c.fits")
    np.testing.assert_allclose(a["images"], b["images"])
    np.testing.assert_allclose(a["variance"], b["variance"])
    np.testing.assert_allclose(a["psfs"], b["psfs"])


def test_scene_softmax_shares_are_flux_conserving_per_scene():
    from cosmobench.nn.deblender import scene_softmax
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [50.0, 0.0]])        # sources 0, 1 in scene 0; 2 alone
    share = scene_softmax(logits, torch.tensor([0, 0, 1]), 2)
    e = np.exp([[0.0, 2.0], [0.0, -1.0]])
    np.testing.assert_allclose(share[:2].numpy(), e / (1 + e.sum(0)), rtol=1e-6)   # background logit 0
    np.testing.assert_allclose(share[2].numpy(), [1.0, 0.5], rtol=1e-6)            # no overflow at logit 50
    assert (share[:2].sum(0) < 1).all()


def test_source_loss_hand_computed_and_bounded():
    from cosmobench.tasks.deblending import source_loss
    t = torch.zeros(1, 1, 2, 2)
    t[0, 0, 0, 0], t[0, 0, 1, 1] = 3.0, 1.0                            # F_t = 4, sum t^2 = 10
    p = torch.zeros(1, 1, 2, 2)
    p[0, 0, 0, 0] = 2.0                                                # F_p = 2, sum p^2 = 4
    # image term (1 + 1) / (10 + 4), flux term |2 - 4| / 4
    torch.testing.assert_close(source_loss(p, t, 2.0), torch.tensor([2 / 14 + 2 * 0.5]))
    # an all-zero prediction costs 1 + flux_weight; a merged neighbour 10x brighter costs < 2 in the image term
    torch.testing.assert_close(source_loss(torch.zeros_like(t), t, 1.0), torch.tensor([2.0]))
    assert source_loss(t + 10 * t.flip(-1), t, 0.0) < 2


def test_training_sources_and_initial_shares():
    """Training on detections: every SEP detection of a batch becomes one row with its scene's
    image, its position, the other detections of its scene and its own / the others' segments;
    its target is the matched truth. At initialisation (zero head) each source takes
    ~sigmoid(2 seg_prior) of its own segment and ~nothing elsewhere: segmentation photometry."""
    from cosmobench.tasks.deblending import DeblendingTask
    cfg = tiny_cfg("unet", "model.train_positions=detections")
    dm = DeblendingDataModule(cfg["data"], seed=0)
    dm.setup()
    task = DeblendingTask(model=cfg["model"], optim=cfg["optim"], data_info=dm.info(), evaluation=cfg["eval"])
    batch = next(iter(dm.val_dataloader()))
    task.eval()
    image, variance, xy, others, segments, scene, target, has = task._training_sources(batch)
    assert len(xy) >= len(batch["n_true"]) // 2 and has.sum() >= 1 and len(torch.unique(scene)) <= len(batch["n_true"])
    for i in range(len(xy)):
        own = segments[i, 0].bool()
        assert own.any() and not (own & segments[i, 1].bool()).any()
        assert torch.isfinite(others[i]).all(-1).sum() == (scene == scene[i]).sum() - 1      # all but itself
        if has[i]:                    # the target is a true source within the matching radius
            b = int(torch.nonzero((batch["image"] == image[i]).flatten(1).all(1))[0])   # its scene
            true_xy = batch["truth_xy"][b, :int(batch["n_true"][b])].numpy()
            d = np.hypot(*(true_xy - xy[i].numpy()).T)
            assert any(torch.allclose(target[i], batch["truth_images"][b, j]) for j in np.flatnonzero(d <= 3.0))
    with torch.no_grad():
        pred = task.net(image, variance, xy, others, segments, scene)
    sep_like = image * segments[:, :1]
    assert (pred - sep_like).abs().sum() <= 0.1 * image.abs().sum() + 1e-6
    assert torch.isfinite(task.loss(batch))
    task.model_cfg["train_positions"] = "truth"                     # truth mode: one row per true source
    *_, scene, target, has = task._training_sources(batch)
    assert len(scene) == int(batch["n_true"].sum()) and has.all()


# ----------------------------------------------------------------------------- predict (CLI)
def _check_catalogue(path, n_bands):
    from cosmobench.io import read_table
    cols = read_table(path)
    assert {"scene", "id", "x", "y", *(f"flux_{b}" for b in range(n_bands))} <= set(cols)
    return cols


def test_predict_sep_on_a_5_band_npz_cutout(tmp_path, root):
    sc, unit = make_cutout(tmp_path / "cutout.npz")
    out = run_cli(["predict", "deblending", "-m", "sep", "--input", str(tmp_path / "cutout.npz"),
                   "--output", str(tmp_path / "cat.csv")], root)
    assert out.returncode == 0, out.stderr[-2000:]
    cols = _check_catalogue(tmp_path / "cat.csv", 5)
    assert 1 <= len(cols["x"]) <= 5
    flux = np.stack([cols[f"flux_{b}"] for b in range(5)], axis=1)
    assert (flux > 0).all()
    # every true galaxy (all bright) has a detection within 3 px
    d = np.hypot(cols["x"][None] - sc.xy[:, :1], cols["y"][None] - sc.xy[:, 1:])
    assert (d.min(axis=1) < 3).sum() >= min(len(cols["x"]), 2)
    with np.load(tmp_path / "cat_images.npz") as z:
        assert z["images"].shape == (len(cols["x"]), 5, 40, 40)
        np.testing.assert_allclose(z["images"].sum((-2, -1)), flux, rtol=1e-4)
    # the total segment flux is at most the sum of the true fluxes (+ noise), in the input's units
    assert flux.sum() < 1.2 * sc.flux.sum() * unit

    # a detection catalogue replaces SEP detection: one row per catalogue entry, at its position
    cat = tmp_path / "det.csv"
    cat.write_text("x,y\n" + "\n".join(f"{x + 1},{y + 1}" for x, y in sc.xy) + "\n")   # 1-based
    out = run_cli(["predict", "deblending", "-m", "sep", "--input", str(tmp_path / "cutout.npz"),
                   "--output", str(tmp_path / "cat2.fits"), f"data.catalog={cat}", "data.catalog_origin=1"], root)
    assert out.returncode == 0, out.stderr[-2000:]
    cols = _check_catalogue(tmp_path / "cat2.fits", 5)
    np.testing.assert_allclose(np.stack([cols["x"], cols["y"]], 1), sc.xy, atol=1e-9)
    from astropy.io import fits
    with fits.open(tmp_path / "cat2_images.fits") as hdul:
        assert hdul[0].data.shape == (3, 5, 40, 40)


def test_predict_side_file_is_named_from_the_full_stem_and_never_overwritten(tmp_path, root):
    """run.v1.csv and run.v2.csv get their own images files; an existing images file stops the
    predict before anything is written (without --overwrite)."""
    make_cutout(tmp_path / "cutout.npz")
    base = ["predict", "deblending", "-m", "sep", "--input", str(tmp_path / "cutout.npz")]
    for name in ("run.v1.csv", "run.v2.csv"):
        out = run_cli([*base, "--output", str(tmp_path / name)], root)
        assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run.v1_images.npz").is_file() and (tmp_path / "run.v2_images.npz").is_file()
    assert not (tmp_path / "run_images.npz").exists()
    (tmp_path / "new_images.npz").write_bytes(b"mine")
    out = run_cli([*base, "--output", str(tmp_path / "new.csv")], root)
    assert out.returncode == 2 and "new_images.npz" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new.csv").exists() and (tmp_path / "new_images.npz").read_bytes() == b"mine"


def test_predict_bad_input_exits_2_and_writes_nothing(tmp_path, root):
    np.savez(tmp_path / "bad.npz", images=np.zeros((5, 20, 20)), variance=np.ones((4, 20, 20)))
    out = run_cli(["predict", "deblending", "-m", "sep", "--input", str(tmp_path / "bad.npz"),
                   "--output", str(tmp_path / "cat.csv")], root)
    assert out.returncode == 2 and "variance" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cat.csv").exists() and not (tmp_path / "cat_images.npz").exists()


@pytest.mark.slow  # train + two predicts through the CLI; unet predict itself is in test_e2e's generic case
def test_train_unet_5_bands_then_predict_cutout(tmp_path, root):
    out = run_cli(["train", "deblending", "-m", "unet", "-c", str(TINY), "data.n_bands=5"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = run_dirs(root, "deblending", "unet")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"flux_mape", "flux_bias", "ellipticity_rmse", "recon_mse", "ssim", "precision", "recall", "f1",
            "flux_mape_blended"} <= set(metrics)
    assert {p.name for p in (run_dir / "plots").glob("*.png")} == {"examples.png", "flux_error_vs_blendedness.png"}
    make_cutout(tmp_path / "cutout.npz")
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    out = run_cli(["predict", "deblending", "--checkpoint", str(ckpt), "--input", str(tmp_path / "cutout.npz"),
                   "--output", str(tmp_path / "cat.csv")], root)
    assert out.returncode == 0, out.stderr[-2000:]
    cols = _check_catalogue(tmp_path / "cat.csv", 5)
    flux = np.stack([cols[f"flux_{b}"] for b in range(5)], axis=1)
    assert len(flux) >= 1 and np.isfinite(flux).all()
    # a 3-band cutout does not fit a 5-band model
    make_cutout(tmp_path / "three.npz", n_bands=3)
    out = run_cli(["predict", "deblending", "--checkpoint", str(ckpt), "--input", str(tmp_path / "three.npz"),
                   "--output", str(tmp_path / "cat3.csv")], root)
    assert out.returncode == 2 and "bands" in out.stderr and not (tmp_path / "cat3.csv").exists()
