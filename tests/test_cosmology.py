"""Physics tests of cosmobench.sim.cosmology (spectra, fields, Kaiser–Squires, estimator)."""
import numpy as np
import pytest

from cosmobench.sim import cosmology as C


def _limber_cl(ell, Omega_m, sigma8):
    """Independent Limber integral of pyccl's non-linear P(k): only P(k, z) and chi(z) come
    from pyccl, the lensing kernel and the projection are computed here."""
    import pyccl as ccl

    cosmo = C.make_cosmology(Omega_m, sigma8)
    z, n = C.default_nz()
    chi = ccl.comoving_radial_distance(cosmo, 1 / (1 + z))
    pz = n / np.trapezoid(n, z)  # n(z) dz = n(chi) dchi
    q = np.array([np.trapezoid(np.where(chi >= c, pz * (chi - c) / chi, 0.0), z) for c in chi])
    h0 = cosmo["h"] * 100 / 299792.458
    w = 1.5 * Omega_m * h0 ** 2 * chi * (1 + z) * q
    out = []
    for l in ell:
        k = (l + 0.5) / chi
        pk = np.array([ccl.nonlin_matter_power(cosmo, kk, 1 / (1 + zz)) for kk, zz in zip(k, z)])
        out.append(np.trapezoid(w ** 2 / chi ** 2 * pk, chi))
    return np.array(out)


def test_pyccl_cl_matches_independent_limber_integral():
    ell = np.array([50.0, 200.0, 1000.0, 3000.0])
    ccl_cl = C.convergence_cl(ell, 0.3, 0.8)
    mine = _limber_cl(ell, 0.3, 0.8)
    np.testing.assert_allclose(ccl_cl, mine, rtol=0.01)


def test_cl_scaling_and_caching():
    ell = np.array([100.0, 1000.0])
    a = C.convergence_cl(ell, 0.3, 0.8)
    assert C.convergence_cl(ell, 0.3, 0.8) is not a  # fresh array, cached table
    hits = C._cl_table.cache_info().hits
    C.convergence_cl([500.0], 0.3, 0.8)
    assert C._cl_table.cache_info().hits == hits + 1
    b = C.convergence_cl(ell, 0.3, 0.9)
    assert np.all(b > a * (0.9 / 0.8) ** 2 * 0.99)  # at least linear sigma8^2 growth (more with halofit)
    assert C.convergence_cl([0.0, 1.0], 0.3, 0.8).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        C.convergence_cl([100.0], 0.03, 0.8)  # Omega_m < Omega_b


def test_clgrid_interpolation_error(tmp_path):
    grid = C.ClGrid((0.2, 0.4), (0.6, 1.0), n_omega=5, n_sigma=5, cache_dir=tmp_path)
    ell = np.geomspace(30, 8000, 25)
    rng = np.random.default_rng(1)
    worst = 0.0
    for om, s8 in zip(rng.uniform(0.2, 0.4, 4), rng.uniform(0.6, 1.0, 4)):
        exact = C.convergence_cl(ell, om, s8)
        worst = max(worst, np.max(np.abs(grid(ell, om, s8) / exact - 1)))
    assert worst < 0.002, worst  # measured 3e-4
    again = C.ClGrid((0.2, 0.4), (0.6, 1.0), n_omega=5, n_sigma=5, cache_dir=tmp_path)  # from the disk cache
    np.testing.assert_array_equal(again.log_table, grid.log_table)
    assert grid(ell, np.array([0.3, 0.35]), np.array([0.8, 0.7])).shape == (2, len(ell))
    with pytest.raises(ValueError, match="outside"):
        grid(ell, 0.6, 0.8)


def test_ks_forward_inverse_roundtrip():
    rng = np.random.default_rng(0)
    for shape in [(64, 64), (48, 80), (33, 40)]:
        kappa = rng.standard_normal(shape)  # white: all modes, incl. Nyquist, carry power
        kappa -= kappa.mean()
        if shape[0] % 2 == 0 and shape[1] % 2 == 0:  # remove the checkerboard mode (carries no shear)
            checker = (-1.0) ** np.add.outer(np.arange(shape[0]), np.arange(shape[1]))
            lost = np.mean(kappa * checker) * checker
            g1, g2 = C.ks_forward(lost)
            assert np.max(np.abs(g1)) < 1e-12 and np.max(np.abs(g2)) < 1e-12
            kappa -= lost
        g1, g2 = C.ks_forward(kappa)
        k_e, k_b = C.ks_inverse(g1, g2, return_b=True)
        assert np.max(np.abs(k_e - kappa)) < 1e-6
        assert np.max(np.abs(k_b)) < 1e-6


def test_ks_sign_convention():
    # a cosine mode along x (ell_2 = 0) gives gamma1 = +kappa, gamma2 = 0; along the diagonal gamma2 = +kappa
    n = 32
    x = np.arange(n)
    kx = np.cos(2 * np.pi * 3 * x / n)[None, :].repeat(n, 0)
    g1, g2 = C.ks_forward(kx)
    np.testing.assert_allclose(g1, kx, atol=1e-12)
    np.testing.assert_allclose(g2, 0, atol=1e-12)
    kd = np.cos(2 * np.pi * 3 * (x[None, :] + x[:, None]) / n)
    g1, g2 = C.ks_forward(kd)
    np.testing.assert_allclose(g1, 0, atol=1e-12)
    np.testing.assert_allclose(g2, kd, atol=1e-12)


def test_gaussian_field_power_matches_input_within_sampling_error():
    rng = np.random.default_rng(3)
    shape, pix = (96, 96), 2.0
    cl = lambda l: C.convergence_cl(l, 0.3, 0.8)
    bins = C.default_ell_bins(shape, pix, n_bins=8)
    n_real = 8
    est = np.array([C.flat_power_spectrum(C.gaussian_field(cl, shape, pix, rng), pix, bins)[1]
                    for _ in range(n_real)])
    _, _, counts = C.flat_power_spectrum(np.zeros(shape), pix, bins)
    theory = C.binned_theory(cl, shape, pix, bins)
    # Gaussian sampling error of a bin mean: C sqrt(2 / n_modes), n_modes / 2 independent pairs
    sigma = theory * np.sqrt(2.0 / counts) / np.sqrt(n_real)
    z = (est.mean(0) - theory) / sigma
    assert np.all(np.abs(z) < 4), z
    assert abs(np.mean(z ** 2) - 1) < 1.5  # chi^2 per bin consistent with 1


def test_lognormal_field_power_skewness_and_bound():
    rng = np.random.default_rng(4)
    shape, pix = (96, 96), 2.0
    cl = lambda l: C.convergence_cl(l, 0.3, 0.8)
    shift = C.lognormal_shift(0.3)
    assert 0.01 < shift < 0.2
    bins = C.default_ell_bins(shape, pix, n_bins=8)
    maps = np.array([C.lognormal_field(cl, shape, pix, shift, rng) for _ in range(8)])
    assert maps.min() > -shift
    skew = np.mean(maps ** 3) / np.mean(maps ** 2) ** 1.5
    assert skew > 0.3  # strongly non-Gaussian at 2 arcmin
    theory = C.binned_theory(cl, shape, pix, bins)
    est = C.flat_power_spectrum(maps, pix, bins)[1].mean(0)
    np.testing.assert_allclose(est[-4:], theory[-4:], rtol=0.05)
    p = C._spectrum_on_grid(cl, shape, pix)
    assert C.lognormal_gaussian_power(p, pix, shift)[1] < 1e-3  # the transform is exact up to clipping


def test_power_spectrum_estimator_hand_value():
    # a single cosine of amplitude A: power A^2/4 in each of its two modes
    n, pix, a = 32, 1.0, 0.3
    x = np.arange(n)
    m = a * np.cos(2 * np.pi * 4 * x / n)[None, :].repeat(n, 0)
    ell0 = 2 * np.pi * 4 / (n * pix * C.ARCMIN)
    ell, cl, counts = C.flat_power_spectrum(m, pix, [ell0 * 0.99, ell0 * 1.01])
    d2 = (pix * C.ARCMIN) ** 2
    # |FFT|^2 = (A n^2/2)^2 at +-ell0; C_hat = |F|^2 d^2 / n^2, averaged over the 4 modes at |ell| = ell0
    expected = 2 * (a * n * n / 2) ** 2 * d2 / n ** 2 / counts[0]
    assert counts[0] == 4
    np.testing.assert_allclose(cl[0], expected)


def test_shape_noise():
    assert C.shape_noise_sigma(0.26, 30.0, 2.0) == pytest.approx(0.26 / np.sqrt(120.0))
    assert C.shape_noise_cl(0.26, 30.0) == pytest.approx(0.26 ** 2 / (30.0 * (180 * 60 / np.pi) ** 2))
    with pytest.raises(ValueError):
        C.shape_noise_sigma(0.26, 0.0, 2.0)
