"""Unit tests of the massmapping task: metrics against hand values, the simulators'
physics (flat and HEALPix), spin-2 augmentation, real-data readers and bad input."""
import numpy as np
import pytest
import torch

from cosmobench.errors import InputError
from cosmobench.metrics import massmapping as mm
from cosmobench.sim import cosmology as C


# --------------------------------------------------------------------------- metrics
def test_nmse_and_pearson_hand_values():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 2.0, 3.0, 5.0])
    assert mm.nmse(pred, true) == pytest.approx(0.25 / 1.25)
    assert mm.nmse(pred, true, mask=np.array([1, 1, 1, 0])) == 0.0
    assert mm.nmse(np.zeros(4), true) == pytest.approx(np.mean(true ** 2) / 1.25)
    # r of (1,2,3,5) with (1,2,3,4): sum of products of deviations 6.5, sums of squares 8.75 and 5
    assert mm.pearson_r(pred, true) == pytest.approx(6.5 / np.sqrt(8.75 * 5.0))
    assert mm.pearson_r(-true, true) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        mm.nmse(pred, np.ones(4))


def test_power_ratio_and_peak_errors_hand_values():
    true = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    ratio, dev = mm.power_ratio(true * np.array([1.0, 0.5, 1.5]), true)
    np.testing.assert_allclose(ratio, [1.0, 0.5, 1.5])
    assert dev == pytest.approx((0 + 0.5 + 0.5) / 3)
    errs = mm.peak_count_errors(np.array([8.0, 3.0, 0.0]), np.array([10.0, 4.0, 0.0]), [2.0, 3.0, 4.0])
    assert errs["peak_err_2"] == pytest.approx(0.2) and errs["peak_err_3"] == pytest.approx(0.25)
    assert errs["peak_err_4"] == 0.0 and errs["peak_count_err"] == pytest.approx(0.45 / 3)
    assert mm.peak_count_errors(np.array([3.0]), np.array([0.0]), [5.0])["peak_err_5"] == 3.0  # / max(N, 1)
    assert mm.noise_sigma_smoothed(0.02, 2.0) == pytest.approx(0.02 / (2 * np.sqrt(np.pi) * 2.0))


def test_flat_peaks_hand_map():
    m = np.zeros((7, 7))
    m[2, 2], m[4, 5], m[0, 3] = 3.0, 1.5, 9.0  # (0, 3) is on the border: not a peak
    peaks = mm.flat_peaks(m)
    assert set(zip(*np.nonzero(peaks))) == {(2, 2), (4, 5)}
    mask = np.ones((7, 7))
    mask[5, 6] = 0  # a masked neighbour removes the peak at (4, 5)
    assert set(zip(*np.nonzero(mm.flat_peaks(m, mask)))) == {(2, 2)}
    assert mm.peak_counts(m, peaks, [1.0, 2.0, 4.0], sigma=1.0).tolist() == [2, 1, 0]


def test_healpix_peaks_single_bump():
    import healpy as hp
    nside = 8
    m = np.zeros(hp.nside2npix(nside))
    m[100] = 1.0
    m[hp.get_all_neighbours(nside, 100)] = 0.5
    peaks = mm.healpix_peaks(m)
    assert peaks[100] and peaks.sum() == 1
    mask = np.ones_like(m)
    mask[hp.get_all_neighbours(nside, 100)[0]] = 0
    assert not mm.healpix_peaks(m, mask)[100]


# --------------------------------------------------------------------------- flat simulator
def _dm(**over):
    from cosmobench import config
    from cosmobench.datamodules.massmapping import MassMappingDataModule
    cfg = config.resolve("massmapping", "wiener", overrides=[f"data.{k}={v}" for k, v in over.items()])
    return MassMappingDataModule(cfg["data"], seed=cfg["seed"])


def test_flat_simulation_noise_mask_and_determinism():
    kw = dict(n_train=4, n_val=2, n_test=2, map_size=32, pixel_arcmin=4.0, mask_holes=3, mask_edge=2)
    dm = _dm(**kw)
    dm.setup()
    tr = dm.datasets["train"].arrays
    g, k, m = tr["gamma"].numpy(), tr["kappa"].numpy(), tr["mask"].numpy()
    assert g.shape == (4, 2, 32, 32) and k.shape == (4, 1, 32, 32) and m.shape == (4, 1, 32, 32)
    assert np.all(g[np.broadcast_to(m == 0, g.shape)] == 0) and m[:, 0, :2].sum() == 0 and 0 < m.mean() < 1
    # observed shear - noise-free shear of the same sample = white noise of the stated sigma
    dm0 = _dm(**kw, sigma_e=0.0)
    dm0.setup()
    resid = (g - dm0.datasets["train"].arrays["gamma"].numpy())[np.broadcast_to(m > 0, g.shape)]
    expect = C.shape_noise_sigma(0.26, 30.0, 4.0)
    assert resid.std() == pytest.approx(expect, rel=0.05)
    np.testing.assert_array_equal(k, dm0.datasets["train"].arrays["kappa"].numpy())  # same seeds -> same kappa
    dm2 = _dm(**kw)
    dm2.setup()
    np.testing.assert_array_equal(g, dm2.datasets["train"].arrays["gamma"].numpy())
    assert not np.array_equal(g, dm.datasets["test"].arrays["gamma"].numpy()[:2].repeat(2, 0))
    info = dm.info()
    assert info["sigma_pix"] == pytest.approx(expect) and info["sky"] == "flat"


def test_noise_free_shear_is_ks_of_kappa_on_periodic_maps():
    dm = _dm(n_train=2, n_val=1, n_test=1, map_size=32, pixel_arcmin=4.0, sigma_e=0.0, box_factor=1)
    dm.setup()
    a = dm.datasets["train"].arrays
    g, k = a["gamma"].numpy().astype(float), a["kappa"].numpy().astype(float)
    g1, g2 = C.ks_forward(k[:, 0])
    np.testing.assert_allclose(g[:, 0], g1, atol=1e-6)
    np.testing.assert_allclose(g[:, 1], g2, atol=1e-6)
    assert k.min() > -dm.shift()  # lognormal bound


def test_spin2_augmentation_commutes_with_kaiser_squires():
    from cosmobench.augment import d4_transform, d4_transform_spin2
    rng = np.random.default_rng(0)
    kappa = rng.standard_normal((16, 16))
    g = torch.tensor(np.stack(C.ks_forward(kappa)))
    for e in range(8):
        kt = d4_transform(torch.tensor(kappa), e).numpy()
        np.testing.assert_allclose(d4_transform_spin2(g, e).numpy(), np.stack(C.ks_forward(kt)), atol=1e-10)


def test_datamodule_augmentation_is_spin2():
    from types import SimpleNamespace
    dm = _dm(n_train=4, n_val=1, n_test=1, map_size=16, pixel_arcmin=4.0, sigma_e=0.0, box_factor=1, augment=True)
    dm.setup()
    batch = {k: v.clone() for k, v in dm.datasets["train"].arrays.items()}
    batch["idx"] = torch.arange(4)
    dm.trainer = SimpleNamespace(training=True, current_epoch=3)
    out = dm.on_after_batch_transfer(batch, 0)
    assert not torch.equal(out["kappa"], batch["kappa"])  # some non-identity element was drawn
    g1, g2 = C.ks_forward(out["kappa"][:, 0].double().numpy())  # augmented shear = shear of augmented kappa
    np.testing.assert_allclose(out["gamma"][:, 0].numpy(), g1, atol=1e-5)
    np.testing.assert_allclose(out["gamma"][:, 1].numpy(), g2, atol=1e-5)


# --------------------------------------------------------------------------- real-data readers
def test_flat_reader_layouts_and_signs(tmp_path):
    from cosmobench.datamodules.massmapping import read_flat_shear
    rng = np.random.default_rng(1)
    g = rng.standard_normal((3, 2, 8, 8))
    np.save(tmp_path / "chw.npy", g)
    np.save(tmp_path / "hwc.npy", np.moveaxis(g, 1, -1))
    np.save(tmp_path / "one.npy", g[0])
    a, single = read_flat_shear(tmp_path / "chw.npy")
    np.testing.assert_array_equal(a, g) and not single
    np.testing.assert_array_equal(read_flat_shear(tmp_path / "hwc.npy")[0], g)
    b, single = read_flat_shear(tmp_path / "one.npy", gamma2_sign=-1)
    assert single and np.array_equal(b[0, 1], -g[0, 1])
    c, _ = read_flat_shear(tmp_path / "chw.npy", spatial_order="xy")
    np.testing.assert_array_equal(c, np.swapaxes(g, -1, -2))
    from astropy.io import fits
    fits.PrimaryHDU(g[0].astype(np.float32)).writeto(tmp_path / "one.fits")
    np.testing.assert_allclose(read_flat_shear(tmp_path / "one.fits")[0][0], g[0], rtol=1e-6)
    np.save(tmp_path / "bad.npy", rng.standard_normal((3, 8, 8)))
    with pytest.raises(InputError, match="axis of length 2"):
        read_flat_shear(tmp_path / "bad.npy")
    g_nan = g.copy()
    g_nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", g_nan)
    with pytest.raises(InputError, match="NaN"):
        read_flat_shear(tmp_path / "nan.npy")


def test_flat_real_source_needs_kappa_and_checks_shapes(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "g.npy", rng.standard_normal((10, 2, 16, 16)))
    np.save(tmp_path / "k.npy", rng.standard_normal((10, 16, 16)))
    np.save(tmp_path / "k_bad.npy", rng.standard_normal((9, 16, 16)))
    dm = _dm(source="flat", path=str(tmp_path / "g.npy"))
    with pytest.raises(InputError, match="kappa_path"):
        dm.setup()
    dm = _dm(source="flat", path=str(tmp_path / "g.npy"), kappa_path=str(tmp_path / "k_bad.npy"))
    with pytest.raises(InputError, match="expected"):
        dm.setup()
    dm = _dm(source="flat", path=str(tmp_path / "g.npy"), kappa_path=str(tmp_path / "k.npy"), pixel_arcmin=1.0,
             val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert dm.info()["sigma_pix"] == pytest.approx(C.shape_noise_sigma(0.26, 30.0, 1.0))


def test_healpix_reader_roundtrip(tmp_path):
    import healpy as hp
    from cosmobench.datamodules.massmapping import read_healpix_shear
    nside = 8
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((3, hp.nside2npix(nside)))
    maps[2] = (maps[2] > 0).astype(float)
    maps[0, 5] = hp.UNSEEN
    hp.write_map(tmp_path / "s.fits", maps, column_names=["G1", "G2", "MASK"])
    g, m = read_healpix_shear(tmp_path / "s.fits", gamma2_sign=-1)
    np.testing.assert_allclose(g[1], -maps[1], rtol=1e-6)
    assert m[5] == 0 and g[0, 5] == 0
    np.testing.assert_array_equal(m[np.arange(len(m)) != 5], maps[2][np.arange(len(m)) != 5])


# --------------------------------------------------------------------------- HEALPix physics
def test_flat_and_spherical_ks_agree_on_a_patch():
    from cosmobench.sim import healpix as H
    nside = 128
    cl = lambda l: C.convergence_cl(l) * np.exp(-(l / 120.0) ** 2)  # smooth: interpolation errors negligible
    sim = H.HealpixFieldSimulator(cl, nside, "gaussian")
    kappa, g1, g2 = sim.sample(np.random.default_rng(0))
    mask = H.footprint_mask(nside, "cap", 20.0)
    patches = H.GnomonicPatches(nside, mask, 64, H.pixel_arcmin(nside))
    assert patches.coverage == 1.0
    kp = patches.project_scalar(kappa)
    a, b = patches.project_shear(g1, g2)
    inner = slice(16, 48)  # away from the patch edges (the flat KS assumes periodicity)
    for p in range(patches.n_patches):
        f1, f2 = C.ks_forward(kp[p] - kp[p].mean())
        for flat, sph in ((f1, a[p]), (f2, b[p])):
            x, y = flat[inner, inner].ravel(), sph[inner, inner].ravel()
            assert np.corrcoef(x, y)[0, 1] > 0.98
            assert abs(np.sum(x * y) / np.sum(x * x) - 1) < 0.1  # same amplitude and sign
    k_sph = H.ks_inverse(g1, g2)  # the spherical inverse undoes the spherical forward transform
    assert np.corrcoef(k_sph, kappa)[0, 1] > 0.999


def test_healpix_lognormal_spectrum_and_patch_reassembly():
    import healpy as hp
    from cosmobench.sim import healpix as H
    nside = 64
    shift = C.lognormal_shift()
    sim = H.HealpixFieldSimulator(lambda l: C.convergence_cl(l), nside, "lognormal", shift)
    rng = np.random.default_rng(1)
    maps = [sim.kappa(rng) for _ in range(3)]
    assert min(m.min() for m in maps) > -shift
    cl = np.mean([hp.anafast(m) for m in maps], axis=0)
    ell = slice(20, 2 * nside)  # well inside the band limit
    ratio = cl[ell].sum() / sim.cl[ell].sum()
    assert abs(ratio - 1) < 0.05, ratio
    mask = H.footprint_mask(nside, "band", 30.0)
    t = H.GnomonicPatches(nside, mask, 16, H.pixel_arcmin(nside))
    assert t.coverage == 1.0
    const = t.assemble(np.ones((t.n_patches, 16, 16)))
    np.testing.assert_allclose(const[mask > 0], 1.0)
    assert np.all(const[mask == 0] == 0)


def test_healpix_real_source_glob_split_and_fingerprint(tmp_path):
    import healpy as hp
    nside = 8
    rng = np.random.default_rng(5)
    for i in range(5):
        g = rng.standard_normal((2, hp.nside2npix(nside)))
        hp.write_map(tmp_path / f"shear_{i}.fits", g, column_names=["G1", "G2"])
        hp.write_map(tmp_path / f"kappa_{i}.fits", rng.standard_normal(hp.nside2npix(nside)))
    kw = dict(source="healpix", path=str(tmp_path / "shear_*.fits"), kappa_path=str(tmp_path / "kappa_*.fits"),
              val_fraction=0.2, test_fraction=0.2)
    dm = _dm(**kw)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    info = dm.info()
    assert info["sky"] == "healpix" and info["nside"] == nside
    fp = dm.fingerprint()
    hp.write_map(tmp_path / "kappa_4.fits", np.zeros(hp.nside2npix(nside)), overwrite=True)
    assert _dm(**kw).fingerprint() != fp  # the content of every input file counts
    with pytest.raises(InputError, match="matches 5 files but"):
        _dm(**dict(kw, kappa_path=str(tmp_path / "kappa_[0-3].fits"))).setup()
