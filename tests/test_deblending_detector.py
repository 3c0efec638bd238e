"""Learned detector (cosmobench.nn.detector) and the detection stage of the deblending task:
targets, loss and non-maximum suppression on hand-made heat maps; a detector trained on the
simulator separates two touching galaxies that it finds as well as two well-separated ones."""
import numpy as np
import pytest
import torch

from conftest import HERE
from cosmobench import config as C
from cosmobench.datamodules.deblending import DeblendingDataModule
from cosmobench.nn.detector import centre_targets, detector_loss, heatmap_peaks
from cosmobench.sim import profiles as P
from cosmobench.sim.blends import BlendSetup, render_galaxy
from cosmobench.tasks.deblending import DeblendingTask

TINY = HERE / "conf" / "deblending.yaml"
SEPARATED = [[8.3, 9.6], [22.7, 20.2]]
TOUCHING = [[14.2, 15.1], [17.6, 16.9]]     # 3.8 px apart: one SEP segment at 0.3"/px


def _perfect_output(xy, shape=(32, 32), sigma=1.0):
    """Network output whose heat map is the target and whose offsets are the true ones."""
    xy = torch.tensor([xy], dtype=torch.float64)
    heat, pix, offset, ok = centre_targets(xy, shape, sigma)
    out = torch.zeros(1, 3, *shape, dtype=torch.float64)
    out[:, 0] = torch.logit(heat.clamp(1e-6, 1 - 1e-6))
    out[0, 1:3, pix[0, :, 0], pix[0, :, 1]] = offset[0].T
    return out, heat


@pytest.mark.parametrize("xy", [SEPARATED, TOUCHING])
def test_peaks_of_target_heatmaps_are_the_true_positions(xy):
    out, heat = _perfect_output(xy)
    assert heat.max() == 1.0 and (heat >= 1.0).sum() == 2
    found = heatmap_peaks(out, threshold=0.5, max_sources=10)[0].numpy()
    assert found.shape == (2, 2)
    assert found[np.argsort(found[:, 0])] == pytest.approx(np.array(xy), abs=1e-6)
    assert len(heatmap_peaks(out, threshold=0.5, max_sources=1)[0]) == 1


def test_loss_is_lowest_for_the_true_heatmap():
    xy = torch.tensor([SEPARATED], dtype=torch.float64)
    good, _ = _perfect_output(SEPARATED)
    shifted, _ = _perfect_output([[x + 3, y] for x, y in SEPARATED])
    flat = torch.full_like(good, -2.19)
    lg, ls, lf = (float(detector_loss(o, xy, 1.0)) for o in (good, shifted, flat))
    assert lg < 0.1 < ls and lg < lf
    # a padded (NaN) source changes nothing
    padded = torch.cat([xy, torch.full((1, 1, 2), float("nan"), dtype=xy.dtype)], 1)
    assert float(detector_loss(good, padded, 1.0)) == pytest.approx(lg)


def _scene(xy, setup, rng):
    """Two bright exponential-disk galaxies (middle-band magnitude 21) at ``xy``, rendered and
    noised by the simulator."""
    img = 0
    for (x, y), pa in zip(xy, (0.3, 1.9)):
        g = dict(x=x, y=y, pa=pa, mag=21.0, bulge_to_total=0.0, disk_re_px=1.5, disk_q=0.7, bulge_n=3.0,
                 bulge_re_px=0.5, bulge_q=0.9, alpha_bulge=1.0, alpha_disk=0.0)
        img = img + render_galaxy(g, setup)[0]
    noisy = P.add_noise(rng, img, setup.sky[:, None, None], setup.read_noise, setup.gain)
    var = np.broadcast_to(setup.background_variance[:, None, None], noisy.shape)
    return torch.as_tensor(noisy, dtype=torch.float32)[None], torch.as_tensor(var.copy(), dtype=torch.float32)[None]


@pytest.mark.slow  # trains the detector: ~20 s of CPU
def test_trained_detector_separates_touching_galaxies():
    cfg = C.resolve("deblending", "sep", config_file=TINY,
                    overrides=["model.detector=learned", "model.detector_epochs=8", "data.n_train=300",
                               "data.overlap_fraction=0.7"])
    dm = DeblendingDataModule(cfg["data"], seed=0)
    dm.setup()
    torch.manual_seed(0)
    task = DeblendingTask(cfg["model"], cfg["optim"], dm.info(), cfg["eval"])
    history = task.train_detector(dm.datasets["train"])
    assert history[-1] < 0.6 * history[0]
    assert bool(task.detector_trained) and not any(p.requires_grad for p in task.center_net.parameters())
    setup = dm.setup_
    rng = np.random.default_rng(1)
    for xy in (SEPARATED, TOUCHING):
        image, var = _scene(xy, setup, rng)
        found = task.learned_positions(image, var)[0]
        assert len(found) == 2, (xy, found)
        found = found[np.argsort(found[:, 0])]
        assert np.hypot(*(found - np.array(xy)).T).max() < 1.0
        # the deblending stage gets those positions (SEP's segment split between them)
        det_xy, seg = task.segmentation(image[0], var[0], torch.zeros(32, 32, dtype=torch.bool), found)
        assert set(np.unique(seg)) >= {1, 2}


def test_learned_detector_travels_in_the_checkpoint(tmp_path, root):
    """train (the detector, then the model), test and predict with model.detector=learned."""
    import json
    from conftest import run_cli, run_dirs
    from test_deblending_task import make_cutout
    out = run_cli(["train", "deblending", "-m", "sep", "-c", str(TINY), "model.detector=learned",
                   "model.detector_epochs=2", "model.detector_threshold=0.05"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = run_dirs(root, "deblending", "sep")
    assert {"recall", "precision", "flux_mape"} <= set(json.loads((run_dir / "metrics.json").read_text()))
    state = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert bool(state["detector_trained"]) and any(k.startswith("center_net.") for k in state)
    make_cutout(tmp_path / "c.npz", n_bands=3, size=32)
    out = run_cli(["predict", "deblending", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
                   "--input", str(tmp_path / "c.npz"), "--output", str(tmp_path / "cat.csv")], root)
    assert out.returncode == 0, out.stderr[-2000:]
    make_cutout(tmp_path / "five.npz", n_bands=5, size=32)
    out = run_cli(["predict", "deblending", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
                   "--input", str(tmp_path / "five.npz"), "--output", str(tmp_path / "cat5.csv")], root)
    assert out.returncode == 2 and "bands" in out.stderr
