"""Physics of the lens simulator (cosmobench/sim/lensing.py), the torch paths of the shared
profile primitives, and the reproducibility of simulated samples."""
import numpy as np
import pytest
import torch

from cosmobench.sim import lensing as Lz
from cosmobench.sim import profiles as P


def grid(half: float, step: float):
    """Pixel-centre coordinates (arcsec) of a square grid of half-width ``half``."""
    x = np.arange(-half + step / 2, half, step)
    return np.meshgrid(x, x)


# ----------------------------------------------------------------------------- deflection


@pytest.mark.parametrize("as_torch", [False, True])
def test_round_sie_deflects_by_theta_e_everywhere(as_torch):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-4, 4, 500), rng.uniform(-4, 4, 500)
    if as_torch:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
    ax, ay = Lz.sie_deflection(x, y, 1.7, 1.0, 0.4, 0.2, -0.1)
    mag = np.hypot(np.asarray(ax), np.asarray(ay))
    np.testing.assert_allclose(mag, 1.7, rtol=1e-10)
    # radial: pointing away from the centre
    dx, dy = np.asarray(x) - 0.2, np.asarray(y) + 0.1
    np.testing.assert_allclose(np.asarray(ax) * dy - np.asarray(ay) * dx, 0.0, atol=1e-9)


@pytest.mark.parametrize("q,phi", [(0.5, 0.0), (0.75, 1.1), (0.95, -0.4)])
def test_sie_divergence_is_twice_the_convergence(q, phi):
    """div alpha = 2 kappa with kappa = theta_E / (2 sqrt(q u^2 + v^2/q)) (Kormann+1994 SIE,
    intermediate-axis normalisation) - pins down both the formula and the convention."""
    te, h = 1.3, 1e-5
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-3, 3, 50), rng.uniform(-3, 3, 50)
    ax_p, _ = Lz.sie_deflection(x + h, y, te, q, phi)
    ax_m, _ = Lz.sie_deflection(x - h, y, te, q, phi)
    _, ay_p = Lz.sie_deflection(x, y + h, te, q, phi)
    _, ay_m = Lz.sie_deflection(x, y - h, te, q, phi)
    div = (ax_p - ax_m) / (2 * h) + (ay_p - ay_m) / (2 * h)
    u, v = P.rotate_coords(x, y, 0.0, 0.0, phi)
    kappa = te / (2 * np.sqrt(q * u * u + v * v / q))
    np.testing.assert_allclose(div, 2 * kappa, rtol=1e-5)
    # the critical curve of an SIE encloses area pi theta_E^2 (mean kappa = 1 inside the kappa=1/2 ellipse)
    xs, ys = grid(3.0, 0.01)
    uu, vv = P.rotate_coords(xs, ys, 0.0, 0.0, phi)
    inside = te / (2 * np.sqrt(q * uu * uu + vv * vv / q)) >= 0.5
    assert inside.sum() * 1e-4 == pytest.approx(np.pi * te ** 2, rel=5e-3)


def test_shear_deflection_is_gradient_of_its_potential():
    g1, g2, h = 0.05, -0.03, 1e-6
    x, y = 0.7, -1.2
    pot = lambda x, y: 0.5 * g1 * (x * x - y * y) + g2 * x * y  # noqa: E731
    ax, ay = Lz.shear_deflection(x, y, g1, g2)
    assert ax == pytest.approx((pot(x + h, y) - pot(x - h, y)) / (2 * h), abs=1e-8)
    assert ay == pytest.approx((pot(x, y + h) - pot(x, y - h)) / (2 * h), abs=1e-8)


# ----------------------------------------------------------------------------- lensed images


def lensed(source, te, step=0.01, half=3.0):
    """Lensed surface brightness S(beta(theta)) of a round SIS on a fine grid."""
    x, y = grid(half, step)
    bx, by = Lz.ray_trace(x, y, te, 1.0, 0.0)
    return x, y, source(bx, by)


def test_source_on_axis_makes_an_einstein_ring_at_theta_e():
    te, sigma = 1.5, 0.03
    x, y, img = lensed(lambda bx, by: P.gaussian_blob(bx, by, 1.0, sigma), te)
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    rbins = np.arange(0.0, 3.0, 0.01)
    prof = np.array([img[(r >= a) & (r < a + 0.01)].mean() for a in rbins])
    assert rbins[np.argmax(prof)] + 0.005 == pytest.approx(te, abs=0.011)
    ring = np.abs(r - te) < 0.02
    sectors = np.array([img[ring & (phi >= a) & (phi < a + np.pi / 8)].mean()
                        for a in np.arange(-np.pi, np.pi, np.pi / 8)])
    assert sectors.std() / sectors.mean() < 0.02          # azimuthally uniform
    assert img[r < 0.5 * te].max() < 1e-6 * img.max()    # nothing inside the ring


def test_sis_point_source_images_and_magnification():
    te, beta, sigma, step = 1.5, 0.5, 0.02, 0.005
    x, y, img = lensed(lambda bx, by: P.gaussian_blob(bx, by, 1.0, sigma, beta, 0.0), te, step, 2.5)
    # two images on the x axis at beta + theta_E and beta - theta_E
    row = img[np.argmin(np.abs(y[:, 0])), :]
    xs = x[0]
    right, left = xs[xs > 0][np.argmax(row[xs > 0])], xs[xs < 0][np.argmax(row[xs < 0])]
    assert right == pytest.approx(beta + te, abs=step)
    assert left == pytest.approx(beta - te, abs=step)
    # total magnification |mu+| + |mu-| = 2 theta_E / beta (flux ratio, source flux 1)
    total = img.sum() * step ** 2
    assert total == pytest.approx(2 * te / beta, rel=0.01)


def test_lensing_conserves_surface_brightness():
    """Peak surface brightness of the arcs equals the source's; flux grows by the magnification."""
    te, s0 = 1.2, 5.0
    src = lambda bx, by: P.sersic(bx, by, s0, 0.25, 0.5, 0.6, 0.3, 0.35, 0.1)  # noqa: E731  (n=0.5: smooth peak)
    x, y, img = lensed(src, te, 0.004, 2.2)
    peak_source = src(np.array(0.35), np.array(0.1))
    assert img.max() == pytest.approx(float(peak_source), rel=0.01)
    assert img.max() <= peak_source * (1 + 1e-9)
    assert img.sum() * 0.004 ** 2 > 2 * s0  # magnified flux (surface brightness kept, area stretched)


# ----------------------------------------------------------------------------- torch primitives


def test_profiles_torch_matches_numpy():
    x, y = P.pixel_grid((21, 23), 2)
    args = dict(flux=3.0, r_e=4.0, n=2.3, q=0.6, pa=0.7, x0=10.2, y0=9.7)
    ref = P.sersic(x, y, **args)
    got = P.sersic(torch.as_tensor(x), torch.as_tensor(y), **args)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)
    # batched: per-sample parameters (B, 1, 1) against one grid
    n = torch.tensor([1.0, 4.0], dtype=torch.float64).view(2, 1, 1)
    batch = P.sersic(torch.as_tensor(x), torch.as_tensor(y), 1.0, 4.0, n, 0.6, 0.7, 10.2, 9.7)
    np.testing.assert_allclose(batch[1].numpy(), P.sersic(x, y, 1.0, 4.0, 4.0, 0.6, 0.7, 10.2, 9.7), rtol=1e-10)
    kernel = P.gaussian_psf(2.5, 9)
    img = np.random.default_rng(0).random((2, 30, 30))
    np.testing.assert_allclose(P.fft_convolve(torch.as_tensor(img), torch.as_tensor(kernel)).numpy(),
                               P.fft_convolve(img, kernel), atol=1e-12)


def test_poisson_gaussian_noise_variance():
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = P.poisson_gaussian_noise(torch.full_like(z, 100.0), 400.0, z, read_noise=5.0, gain=2.0)
    # electrons: Poisson variance (100 + 400) x 2, read noise 25 e-^2 -> counts: / gain^2
    assert out.mean().item() == pytest.approx(100.0, abs=0.2)
    assert out.std().item() == pytest.approx(np.sqrt(500 * 2 + 25) / 2, rel=0.01)


# ----------------------------------------------------------------------------- simulator

SMALL = dict(image_size=32, pixel_scale=0.25, oversample=1, theta_e_range=(0.8, 2.0))


def test_samples_are_pure_functions_of_seed_split_index():
    sim = Lz.LensSimulator(Lz.LensSimConfig(**SMALL))
    a, ta = sim.simulate(np.arange(40), "train", 3)
    b, tb = sim.simulate(np.arange(25, 40), "train", 3)    # other batch composition
    c, _ = sim.simulate(np.arange(25, 40)[::-1], "train", 3)  # other order
    assert torch.equal(a[25:], b) and torch.equal(a[25:], c.flip(0))
    assert torch.equal(ta["label"][25:], tb["label"])
    d, _ = sim.simulate(np.arange(40), "val", 3)
    e, _ = sim.simulate(np.arange(40), "train", 4)
    assert not torch.equal(a, d) and not torch.equal(a, e)


def test_simulator_mix_truth_and_noise_level():
    cfg = Lz.LensSimConfig(**SMALL)
    sim = Lz.LensSimulator(cfg)
    img, t = sim.simulate(np.arange(300), "test", 0)
    assert img.shape == (300, 3, 32, 32) and img.dtype == torch.float32 and torch.isfinite(img).all()
    lab, kind = t["label"].numpy(), t["kind"].numpy()
    assert 0.4 < lab.mean() < 0.6
    assert set(np.unique(kind)) == set(range(len(Lz.KINDS)))  # every kind occurs
    assert np.array_equal(lab == 1, kind == 0)
    te = t["theta_e"].numpy()
    assert np.isnan(te[lab == 0]).all() and (te[lab == 1] >= 0.8).all() and (te[lab == 1] <= 2.0).all()
    # multiply-imaged sources inside 0.8 theta_E of an SIE are magnified (SIS: mu >= 2.5)
    assert np.nanmin(t["magnification"].numpy()) > 1.5
    # noise: residual w.r.t. the noiseless image of the same samples is Poisson(sky + source) + read noise
    clean, _ = sim.simulate(np.arange(300), "test", 0, noise=False)
    sky = torch.as_tensor(cfg.sky_counts(), dtype=torch.float32).view(1, -1, 1, 1)
    pull = (img - clean) / torch.sqrt((clean + sky).clamp_min(0) * cfg.gain + cfg.read_noise ** 2) * cfg.gain
    np.testing.assert_allclose(pull.transpose(0, 1).reshape(3, -1).std(dim=1).numpy(), 1.0, rtol=0.01)
    assert abs(pull.mean().item()) < 0.01
    # the sky level matches the stated sky surface brightness: counts/px = 10^(-0.4 (mu - zp)) p^2
    np.testing.assert_allclose(cfg.sky_counts(), 10 ** (-0.4 * (np.array(cfg.sky_mag) - cfg.zero_point)) * 0.25 ** 2)

def test_colours_lens_red_source_blue():
    cfg = Lz.LensSimConfig(**SMALL, lens_fraction=1.0)
    sim = Lz.LensSimulator(cfg, dtype=torch.float64)
    with_src, t = sim.simulate(np.arange(30), "train", 0, noise=False, psf=False)
    no_src, _ = Lz.LensSimulator(Lz.LensSimConfig(**{**SMALL, "source_mag_range": (40.0, 40.0)}, lens_fraction=1.0),
                                 dtype=torch.float64).simulate(np.arange(30), "train", 0, noise=False, psf=False)
    zp = torch.as_tensor(cfg.zero_point, dtype=torch.float64).view(1, 3)
    mag = lambda f: zp - 2.5 * torch.log10(f.sum(dim=(-2, -1)))  # noqa: E731
    lens_gi = (mag(no_src)[:, 0] - mag(no_src)[:, 2])
    src_gi = (mag(with_src - no_src)[:, 0] - mag(with_src - no_src)[:, 2])
    assert (lens_gi > 0.9).all() and (src_gi < 0.6).all()
    # lensed source flux = magnification x unlensed flux (no PSF/noise)
    unlensed = P.mag_to_counts(t["source_mag"], cfg.zero_point[1])
    np.testing.assert_allclose((with_src - no_src)[:, 1].sum(dim=(-2, -1)).numpy(),
                               (unlensed * t["magnification"]).numpy(), rtol=1e-6)


def test_bad_simulator_settings():
    with pytest.raises(ValueError, match="theta_e_range"):
        Lz.LensSimConfig(image_size=24, pixel_scale=0.2)
    from cosmobench.config import resolve
    with pytest.raises(ValueError, match="data.hard_negatives"):  # the declared constraint (a ConfigError)
        resolve("lensfinding", "cnn", overrides=["data.hard_negatives=[ring,blob]"])
    with pytest.raises(ValueError, match="n_bands"):
        Lz.LensSimConfig(psf_fwhm=(0.7, 0.8))


def test_dataloader_batches_identical_whatever_num_workers():
    from cosmobench.config import resolve
    from cosmobench.datamodules.lensfinding import LensFindingDataModule
    over = ["data.image_size=24", "data.pixel_scale=0.3", "data.oversample=1", "data.theta_e_range=[0.8,1.8]",
            "data.n_train=40", "data.n_val=8", "data.n_test=8", "data.batch_size=8"]
    batches = []
    for nw in (0, 2):
        cfg = resolve("lensfinding", "cnn", overrides=over + [f"data.num_workers={nw}"])
        dm = LensFindingDataModule(cfg["data"], seed=5)
        dm.setup()
        batches.append([b["image"] for b in dm.train_dataloader()])
    assert len(batches[0]) == 5
    assert all(torch.equal(a, b) for a, b in zip(*batches))


# ----------------------------------------------------------------------------- fast-path internals


def test_sample_keys_are_the_sample_seed_sequences():
    from cosmobench.datamodule import sample_seed
    idx = np.array([0, 1, 7, 255, 123456, 2 ** 31 + 5])
    for seed, split in ((0, "train"), (3, "val"), (2 ** 32 - 1, "test")):
        ref = [sample_seed(seed, split, int(i)).generate_state(1, np.uint64)[0] for i in idx]
        np.testing.assert_array_equal(Lz.sample_keys(seed, split, idx), np.array(ref, dtype=np.uint64))
    # 64-bit seeds / indices fall back to SeedSequence itself
    assert Lz.sample_keys(2 ** 40, "train", [2])[0] == sample_seed(2 ** 40, "train", 2).generate_state(1, np.uint64)[0]


@pytest.mark.parametrize("kind,fwhm", [("gaussian", (4.5, 3.5, 4.0)), ("moffat", (3.0, 3.5, 4.0))])
def test_separable_convolver_matches_fft_convolution(kind, fwhm):
    kern = np.stack([P.make_psf(kind, f, 3.5, 29) for f in fwhm])
    conv = P.SeparableConvolver(kern, (40, 36), dtype=torch.float64)
    assert conv.rank == 1 if kind == "gaussian" else conv.rank > 1
    img = torch.as_tensor(np.random.default_rng(0).random((4, 3, 40, 36)))
    np.testing.assert_allclose(conv(img).numpy(), P.fft_convolve(img, torch.as_tensor(kern)).numpy(),
                               atol=1e-6 * float(img.max()), rtol=0)
    with pytest.raises(ValueError, match="do not match"):
        conv(img[:, :2])


def _subgrid(sim, B):
    """Sub-pixel coordinates (arcsec) of the simulator's (s, s, B, H, W) layout."""
    s, n = sim.cfg.oversample, sim.cfg.image_size
    return sim.xs.expand(s, s, B, n, n).double(), sim.ys.expand(s, s, B, n, n).double()


@pytest.mark.parametrize("oversample", [1, 3])
def test_fused_ray_tracing_matches_lens_equation(oversample):
    """The simulator's folded SIE + shear + source-frame coefficients give the same source-plane
    coordinates as ray_trace (including round masses, q = 1)."""
    sim = Lz.LensSimulator(Lz.LensSimConfig(**{**SMALL, "oversample": oversample}), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    r = lambda lo, hi: lo + (hi - lo) * torch.rand(6, generator=g, dtype=torch.float64)  # noqa: E731
    te, q, phi = r(0.8, 2.0), r(0.4, 1.0), r(0, np.pi)
    q[:2] = 1.0
    g1, g2, lx0, ly0 = r(-0.1, 0.1), r(-0.1, 0.1), r(-0.1, 0.1), r(-0.1, 0.1)
    sx0, sy0, q_s, pa_s = r(-1, 1), r(-1, 1), r(0.3, 1.0), r(0, np.pi)
    us, vs = sim._source_eval(sim._source_plan(te, q, phi, g1, g2, lx0, ly0, sx0, sy0, q_s, pa_s))
    x, y = _subgrid(sim, 6)
    v = lambda t: t.view(1, 1, -1, 1, 1)  # noqa: E731
    bx, by = Lz.ray_trace(x, y, v(te), v(q), v(phi), v(g1), v(g2), v(lx0), v(ly0))
    ref_u, ref_v = P.rotate_coords(bx, by, v(sx0), v(sy0), v(pa_s))
    np.testing.assert_allclose(us.numpy(), ref_u.numpy(), atol=1e-9)
    np.testing.assert_allclose(vs.numpy(), (ref_v / v(q_s)).numpy(), atol=1e-9)


def test_fused_sersic_matches_profile_sersic():
    """Binned unit-flux Sérsic of the simulator = profiles.sersic on the same sub-pixels."""
    cfg = Lz.LensSimConfig(**{**SMALL, "oversample": 2})
    sim = Lz.LensSimulator(cfg, dtype=torch.float64)
    re, n, q, pa = (torch.tensor(v, dtype=torch.float64) for v in ([0.5, 1.7], [0.7, 5.2], [0.45, 1.0], [0.3, 2.5]))
    x0, y0 = torch.tensor([0.03, -0.4], dtype=torch.float64), torch.tensor([-0.05, 0.6], dtype=torch.float64)
    got = sim._sersic_eval(sim._sersic_plan(re, n, q, pa, x0, y0))
    x, y = _subgrid(sim, 2)
    v = lambda t: t.view(1, 1, -1, 1, 1)  # noqa: E731
    ref = P.sersic(x, y, 1.0, v(re), v(n), v(q), v(pa), v(x0), v(y0)) * sim.sub_area
    np.testing.assert_allclose(got.numpy(), ref.sum(dim=(0, 1)).numpy(), rtol=1e-9, atol=1e-15)
    flux = got.sum(dim=(-2, -1)).numpy()   # unit flux, minus the wings outside the 8" stamp (n = 5.2: ~30%)
    assert flux[0] == pytest.approx(1.0, abs=2e-3) and 0.5 < flux[1] < 0.9


def test_samples_do_not_depend_on_threads_or_chunking():
    """Bitwise the same sample whatever the torch thread count and however the batch is split into
    rendering chunks (several chunks here: 40 px at oversample 2 -> 20 samples per chunk)."""
    sim = Lz.LensSimulator(Lz.LensSimConfig(image_size=40, theta_e_range=(0.8, 2.0)))
    assert sim.chunk < 30
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a, _ = sim.simulate(np.arange(60), "train", 1)
        torch.set_num_threads(2)
        b, _ = sim.simulate(np.arange(60), "train", 1)
        c, _ = sim.simulate(np.arange(7, 60), "train", 1)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    assert torch.equal(a, b) and torch.equal(a[7:], c)
