"""Physics and reproducibility of the photo-z simulator (cosmobench.sim.photometry)."""
import numpy as np
import pytest
from scipy import integrate

from cosmobench.datamodules.photoz import CHUNK, PhotoZDataModule
from cosmobench.config import resolve
from cosmobench.errors import ConfigError
from cosmobench.sim import photometry as ph

SIM_CFG = resolve("photoz", "mdn", overrides=["data.n_train=1500", "data.n_val=300", "data.n_test=400",
                                               "data.batch_size=256"])["data"]


def test_ab_mag_of_flat_fnu_source():
    lam = np.arange(2500.0, 11000.0, 2.0)
    np.testing.assert_allclose(ph.ab_mag(lam, np.full_like(lam, 3631.0)), 0.0, atol=1e-10)
    # 1 microJansky is AB 23.90 in every band
    np.testing.assert_allclose(ph.ab_mag(lam, np.full_like(lam, 1e-6)), 23.9 - 0.0001, atol=2e-4)
    assert ph.njy_to_mag(ph.mag_to_njy(24.0)) == pytest.approx(24.0)
    assert ph.njy_to_mag(3631e9) == pytest.approx(0.0, abs=1e-3)


def test_band_average_weights_photons_by_dlam_over_lam():
    # f_nu ∝ lam: band average = int lam T dlam/lam / int T dlam/lam, checked by quadrature
    lam = np.arange(2500.0, 11000.0, 1.0)
    got = ph.band_average_fnu(lam, lam)
    for b, want_band in zip(ph.BANDS, got):
        lo, hi = ph.FILTERS[b]
        num = integrate.quad(lambda x: ph.bandpass(x, lo, hi), 2500, 11000, limit=200)[0]
        den = integrate.quad(lambda x: ph.bandpass(x, lo, hi) / x, 2500, 11000, limit=200)[0]
        assert want_band == pytest.approx(num / den, rel=1e-4)


def _elliptical_colours(zs):
    coef = ph.mixture_coefficients(np.zeros(len(zs)), np.zeros(len(zs)), np.ones(len(zs)))
    k = ph.k_corrections(zs, coef, np.zeros(len(zs)))
    return k[:, :-1] - k[:, 1:]  # u-g, g-r, r-i, i-z


@pytest.mark.parametrize("pair", [1, 2, 3])
def test_4000A_break_reddens_the_colour_of_the_bands_it_separates(pair):
    """The E template's colour m_b - m_{b+1} peaks when 4000(1+z) Å sits at the edge between the bands."""
    zs = np.linspace(0.02, 1.6, 400)
    colour = _elliptical_colours(zs)[:, pair]
    edge = ph.FILTERS[ph.BANDS[pair]][1]
    assert zs[np.argmax(colour)] == pytest.approx(edge / 4000.0 - 1.0, abs=0.1)


def test_lyman_break_makes_u_dropouts_at_z3():
    zs = np.array([1.0, 3.0])
    coef = ph.mixture_coefficients(np.full(2, 3.0), np.zeros(2), np.ones(2))
    k = ph.k_corrections(zs, coef, np.zeros(2))
    ug = k[:, 0] - k[:, 1]
    assert abs(ug[0]) < 0.1 and ug[1] > 1.0   # flat-f_nu UV continuum vs Lyman-limit dropout


def test_igm_and_lines():
    assert ph.igm_transmission(900.0 * 4, 3.0) == 0.0
    assert 0 < ph.igm_transmission(1100.0 * 4, 3.0) < 1
    assert ph.igm_transmission(1300.0 * 4, 3.0) == 1.0
    lam = np.arange(6400.0, 6700.0, 0.5)
    fnu = ph.lines_fnu(lam, {"Ha": (6563.0, 1.0)})
    flam = fnu * (5500.0 / lam) ** 2      # back to f_lambda: unit line flux
    assert np.trapezoid(flam, lam) == pytest.approx(1.0, rel=1e-6)


def test_distance_modulus_matches_astropy():
    from astropy.cosmology import FlatLambdaCDM
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3, Tcmb0=0)
    zs = np.array([0.1, 1.0, 3.0])
    np.testing.assert_allclose(ph.distance_modulus(zs), cosmo.distmod(zs).value, atol=2e-3)


def test_magnitude_errors_follow_depth_formula():
    rng = np.random.default_rng(0)
    depth = np.array([26.1, 27.4, 27.5, 26.8, 26.1])
    mag_true = np.tile([23.0, 24.0, 25.0, 26.0, 27.0], (20000, 1))
    mag, err = ph.add_flux_noise(rng, mag_true, depth)
    sigma_f = ph.mag_to_njy(depth) / 5
    flux = ph.mag_to_njy(mag)
    np.testing.assert_allclose(err, 1.0857362 * sigma_f / flux, rtol=1e-6)
    # bright band (u: 3.1 mag above the 5 sigma depth, S/N = 5*10^(0.4*3.1) ≈ 87): flux noise std = sigma_F
    f_true = ph.mag_to_njy(23.0)
    assert np.std(flux[:, 0] - f_true) == pytest.approx(sigma_f[0], rel=0.03)
    assert np.median(err[:, 0]) == pytest.approx(1.0857 / (5 * 10 ** (0.4 * 3.1)), rel=0.02)
    # far below the depth: clipped at S/N = 1 -> m = depth + 2.5 log10(5), err = 1.0857
    mag, err = ph.add_flux_noise(rng, np.full((5000, 5), 35.0), depth)
    lim = depth + 2.5 * np.log10(5)
    assert np.all(mag <= lim[None] + 1e-9) and np.all(err <= 1.0858)
    assert np.mean(np.isclose(mag, lim[None])) > 0.45  # ~half the noise draws are below sigma_F


def test_smail_sampler_and_truncated_schechter():
    rng = np.random.default_rng(1)
    z = ph.sample_smail(rng, 50000, 2.0, 1.5, 0.5, z_max=3.0)
    pdf = lambda x: ph.smail_pdf(x, 2.0, 1.5, 0.5)
    mean = integrate.quad(lambda x: x * pdf(x), 0.005, 3)[0] / integrate.quad(pdf, 0.005, 3)[0]
    assert z.min() >= 0.005 and z.max() <= 3.0
    assert z.mean() == pytest.approx(mean, abs=0.01)
    # Schechter (alpha=-1.2) truncated at M*+2: compare the sample median with quadrature
    m_star, alpha = -20.5, -1.2
    u = rng.random(40000)
    mags = ph.sample_schechter_truncated(u, np.full(40000, m_star), alpha, np.full(40000, m_star + 2.0))
    assert mags.max() <= m_star + 2.0 + 1e-9
    phi = lambda m: np.exp(ph.schechter_log_phi(m, m_star, alpha))
    total = integrate.quad(phi, m_star - 9, m_star + 2)[0]
    frac_below_mstar = integrate.quad(phi, m_star - 9, m_star)[0] / total
    assert np.mean(mags < m_star) == pytest.approx(frac_below_mstar, abs=0.01)


def test_catalog_respects_mag_limit_and_is_fast_enough_to_vectorise():
    cat = ph.simulate_catalog(np.random.default_rng(3), 3000, ph.PhotometrySurvey(mag_limit=24.0))
    assert np.all(cat["mag_true"][:, 3] <= 24.0 + 1e-6)
    assert np.all(np.isfinite(cat["mag"])) and np.all(cat["magerr"] > 0)
    assert 0 < cat["z"].min() and cat["z"].max() <= 3.0
    assert set(np.unique(cat["type"] >= 0.35)) == {False, True}   # red and blue galaxies


def _dm(**over):
    cfg = dict(SIM_CFG, **{k: v for k, v in over.items() if k != "seed"})
    dm = PhotoZDataModule(cfg, seed=over.get("seed", 0))
    dm.setup()
    return dm


def test_datamodule_reproducible_chunked_and_disjoint():
    a, b, c = _dm(), _dm(), _dm(seed=1)
    za = {s: a.datasets[s].arrays["z"].numpy() for s in ("train", "val", "test")}
    np.testing.assert_array_equal(za["train"], b.datasets["train"].arrays["z"].numpy())
    np.testing.assert_array_equal(a.datasets["test"].arrays["mag"].numpy(), b.datasets["test"].arrays["mag"].numpy())
    assert not np.array_equal(za["train"], c.datasets["train"].arrays["z"].numpy())
    # sample i of a split does not depend on the split size (chunks of CHUNK)
    bigger = _dm(n_train=CHUNK * 2 + 700)
    np.testing.assert_array_equal(bigger.datasets["train"].arrays["x"].numpy()[:1500],
                                  a.datasets["train"].arrays["x"].numpy())
    assert len(bigger.datasets["train"]) == CHUNK * 2 + 700
    # splits share no galaxy
    for s, t in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(za[s].tolist()) & set(za[t].tolist())
    # normalisation statistics are those of the train split
    info = a.info()
    x = a.datasets["train"].arrays["x"].numpy().astype(np.float64)
    np.testing.assert_allclose(info["x_mean"], x.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(info["x_std"], x.std(0), rtol=1e-6)
    assert info["n_features"] == 10 and len(info["feature_names"]) == 10


def test_datamodule_rejects_bad_config():
    with pytest.raises(ConfigError, match="depth_5sigma"):
        _dm(depth_5sigma=[26.0, 27.0])
    with pytest.raises(ConfigError, match="ref_band"):
        _dm(ref_band=7)
    with pytest.raises(ConfigError, match="data.source"):
        resolve("photoz", "mdn", overrides=["data.source=hdf5"])


@pytest.mark.parametrize("model", ["mdn", "knn"])
def test_cpu_config_resolves_to_the_reported_settings(model):
    from cosmobench.config import experiments_dir
    cfg = resolve("photoz", model, config_file=experiments_dir() / "photoz" / "cpu.yaml")
    assert (cfg["data"]["n_train"], cfg["data"]["n_test"], cfg["num_threads"]) == (20000, 5000, 1)
    assert cfg["trainer"]["max_epochs"] == (1 if model == "knn" else 25)  # the baseline is fitted in one epoch
