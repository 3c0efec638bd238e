"""Photo-z point metrics and Gaussian-mixture metrics against hand-computed values."""
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from cosmobench.metrics import mixture as mx
from cosmobench.metrics import photoz as pm
from cosmobench.nn.mdn import mixture_nll

Z_SPEC = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
Z_PHOT = np.array([0.01, -0.02, 0.2, 1.1, 0.9])
# dz = [0.01, -0.02, 0.2, 0.05, -0.05]; median 0.01; |dz - 0.01| = [0, .03, .19, .04, .06] -> median .04


def test_point_metrics_by_hand():
    np.testing.assert_allclose(pm.delta_z(Z_PHOT, Z_SPEC), [0.01, -0.02, 0.2, 0.05, -0.05])
    m = pm.point_metrics(Z_PHOT, Z_SPEC)
    assert m["bias"] == pytest.approx(0.01)
    assert m["sigma_nmad"] == pytest.approx(1.4826 * 0.04)
    assert m["outlier_frac"] == pytest.approx(0.2)     # only dz = 0.2 exceeds 0.15
    assert pm.outlier_fraction([0.0], [0.0]) == 0.0


def test_sigma_nmad_of_gaussian_scatter_is_its_sigma():
    rng = np.random.default_rng(0)
    zs = rng.uniform(0, 2, 200000)
    zp = zs + 0.03 * (1 + zs) * rng.standard_normal(zs.size)
    assert pm.sigma_nmad(zp, zs) == pytest.approx(0.03, rel=0.01)


W = np.array([[0.3, 0.7]])
MU = np.array([[0.2, 1.0]])
SIG = np.array([[0.1, 0.3]])


def test_logpdf_cdf_by_hand():
    y = 0.5
    pdf = 0.3 * stats.norm.pdf(y, 0.2, 0.1) + 0.7 * stats.norm.pdf(y, 1.0, 0.3)
    assert mx.mixture_logpdf([y], W, MU, SIG)[0] == pytest.approx(np.log(pdf))
    cdf = 0.3 * stats.norm.cdf(y, 0.2, 0.1) + 0.7 * stats.norm.cdf(y, 1.0, 0.3)
    assert mx.mixture_cdf([y], W, MU, SIG)[0] == pytest.approx(cdf)
    assert mx.pit([0.0], [[1.0]], [[0.0]], [[2.0]])[0] == pytest.approx(0.5)
    # torch NLL used for training agrees with the numpy metric
    nll = mixture_nll(torch.tensor([y], dtype=torch.float64), torch.tensor(np.log(W)), torch.tensor(MU), torch.tensor(SIG))
    assert float(nll) == pytest.approx(-np.log(pdf))


def test_quantiles_invert_the_cdf():
    assert mx.mixture_quantile(0.5, [[1.0]], [[0.3]], [[0.1]])[0] == pytest.approx(0.3, abs=1e-6)
    assert mx.mixture_quantile(stats.norm.cdf(1.0), [[1.0]], [[0.3]], [[0.1]])[0] == pytest.approx(0.4, abs=1e-6)
    # symmetric bimodal mixture: median at the centre
    assert mx.mixture_quantile(0.5, [[0.5, 0.5]], [[0.0, 2.0]], [[0.2, 0.2]])[0] == pytest.approx(1.0, abs=1e-6)
    qs = np.array([0.16, 0.5, 0.84])
    z = mx.mixture_quantile(qs, np.repeat(W, 3, 0), np.repeat(MU, 3, 0), np.repeat(SIG, 3, 0))
    np.testing.assert_allclose(mx.mixture_cdf(z, np.repeat(W, 3, 0), np.repeat(MU, 3, 0), np.repeat(SIG, 3, 0)), qs, atol=1e-6)
    assert np.isnan(mx.mixture_quantile(0.5, [[1.0]], [[np.nan]], [[0.1]])[0])


def test_crps_closed_form():
    # standard normal at its mean: 2 phi(0) - 1/sqrt(pi) = sqrt(2/pi) - 1/sqrt(pi)
    assert mx.mixture_crps([0.0], [[1.0]], [[0.0]], [[1.0]])[0] == pytest.approx(np.sqrt(2 / np.pi) - 1 / np.sqrt(np.pi))
    # a (nearly) point mass: CRPS = |y - mu|
    assert mx.mixture_crps([1.0], [[1.0]], [[0.25]], [[1e-9]])[0] == pytest.approx(0.75, abs=1e-8)
    # bimodal mixture vs numerical integration of (F(x) - 1[x >= y])^2
    for y in (-0.3, 0.5, 1.7):
        F = lambda x: mx.mixture_cdf([x], W, MU, SIG)[0]
        num = integrate.quad(lambda x: F(x) ** 2, -5, y, limit=200)[0] + \
            integrate.quad(lambda x: (1 - F(x)) ** 2, y, 6, limit=200)[0]
        assert mx.mixture_crps([y], W, MU, SIG)[0] == pytest.approx(num, rel=1e-6)
    # batched rows are independent
    got = mx.mixture_crps([0.0, 0.5], np.vstack([[[1.0, 0.0]], W]), np.vstack([[[0.0, 9.0]], MU]), np.vstack([[[1.0, 1.0]], SIG]))
    assert got[0] == pytest.approx(np.sqrt(2 / np.pi) - 1 / np.sqrt(np.pi))


def test_ks_uniform_by_hand():
    # sorted u = .1, .5, .9: max(i/n - u) = 1/3 - .1; max(u - (i-1)/n) = .9 - 2/3  -> both 0.2333
    assert mx.ks_uniform([0.9, 0.1, 0.5]) == pytest.approx(0.7 / 3)
    assert mx.ks_uniform([0.5]) == pytest.approx(0.5)
    u = np.random.default_rng(2).random(300) ** 1.3
    assert mx.ks_uniform(u) == pytest.approx(stats.kstest(u, "uniform").statistic)
