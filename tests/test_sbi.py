"""sbi task: problems (physics and sbibm definitions), C2ST, reference MCMC, SBC/TARP
adapter, user problems, and the CLI on every problem (tiny budgets: tests/conf/sbi.yaml).
The generic train -> record -> predict test of every model on cl_gaussian is in test_e2e.py."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import HERE, run_cli, run_dirs
from cosmobench.metrics.sbi import c2st, nltp, posterior_std
from cosmobench.sim import sbi_problems as P
from cosmobench.sim import sbibm_problems as SP

TINY = HERE / "conf" / "sbi.yaml"
CL_CFG = dict(ell_min=50, ell_max=3000, n_ell_bins=10, area_deg2=1000.0, sigma_e=0.26, n_gal=10.0, cache_dir=None)


# --- problems ---------------------------------------------------------------------------
def test_cl_gaussian_likelihood_by_hand():
    p = P.get_problem("cl_gaussian", CL_CFG)
    theta = np.array([[0.2, 0.7], [0.31, 0.81], [0.44, 0.95]])
    ell = np.arange(50, 3000)
    edges = np.unique(np.round(np.geomspace(50, 3000, 11)).astype(int))
    bins = [(ell >= lo) & (ell < hi) for lo, hi in zip(edges[:-1], edges[1:])]

    def bandpower(c):  # (2 ell + 1)-weighted mean of C_ell over each bin's integer multipoles
        return np.array([np.sum((2 * ell[m] + 1) * c[m]) / np.sum(2 * ell[m] + 1) for m in bins])

    cl = p.grid(ell, theta[:, 0], theta[:, 1])                 # the shared pyccl ClGrid, per multipole
    noise = 0.26 ** 2 / (10.0 * (180 * 60 / math.pi) ** 2)     # sigma_e^2 / n_gal per steradian
    mu = np.stack([bandpower(c) for c in cl]) + noise
    fid = bandpower(p.grid(ell, 0.31, 0.81)) + noise
    f_sky = 1000.0 / (4 * math.pi * (180 / math.pi) ** 2)
    n_modes = np.array([np.sum(2 * ell[m] + 1) for m in bins])
    sigma = np.sqrt(2 * fid ** 2 / (f_sky * n_modes))           # Knox: cosmic variance + shape noise
    np.testing.assert_allclose(p.mean(theta) * 1e-9, mu, rtol=1e-5)
    x = p.simulate(np.array([[0.3, 0.8]]), np.random.default_rng(3))   # data in units of 1e-9
    by_hand = np.sum(-0.5 * ((x * 1e-9 - mu) / sigma) ** 2 - np.log(sigma * 1e9) - 0.5 * np.log(2 * np.pi), axis=1)
    got = p.log_likelihood(torch.as_tensor(theta), torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, by_hand, rtol=1e-6, atol=1e-4)
    assert np.argmax(got) == 1  # the truth (0.3, 0.8) is closest to the fiducial point
    # the simulated noise has the stated covariance
    xs = p.simulate(np.tile([[0.31, 0.81]], (4000, 1)), np.random.default_rng(4)) * 1e-9
    np.testing.assert_allclose(xs.std(0), sigma, rtol=0.08)
    np.testing.assert_allclose(xs.mean(0), fid, rtol=0, atol=4 * sigma.max() / np.sqrt(4000))


def test_two_moons_matches_sbibm_definition_on_fixed_noise():
    rng = np.random.default_rng(0)
    theta = rng.uniform(-1, 1, size=(50, 2))
    a = rng.uniform(-np.pi / 2, np.pi / 2, 50)
    r = rng.normal(0.1, 0.01, 50)
    # sbibm: p = (r cos a + 0.25, r sin a); x = p + (-|theta1 + theta2| / sqrt 2, (-theta1 + theta2) / sqrt 2)
    expected = np.stack([r * np.cos(a) + 0.25 - np.abs(theta[:, 0] + theta[:, 1]) / np.sqrt(2),
                         r * np.sin(a) + (-theta[:, 0] + theta[:, 1]) / np.sqrt(2)], axis=1)
    np.testing.assert_allclose(SP.TwoMoons.moon_map(theta, a, r), expected, atol=1e-12)
    tm = P.get_problem("two_moons")
    # simulate() draws a then r from the generator, in that order
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    x = tm.simulate(theta, g1)
    np.testing.assert_allclose(x, SP.TwoMoons.moon_map(theta, g2.uniform(-np.pi / 2, np.pi / 2, 50),
                                                      g2.normal(0.1, 0.01, 50)))
    # the reference posterior lies on the likelihood's support and contains the truth's mirror pair
    ref = tm.reference_posterior(x[0], 2000, seed=1)
    assert ref.shape == (2000, 2) and np.all(np.abs(ref) <= 1)
    ll = tm.log_likelihood(torch.as_tensor(ref), torch.as_tensor(x[:1])).numpy()
    assert np.all(np.isfinite(ll)) and np.median(ll) > 1.0     # r within a few sigma of 0.1


def test_gaussian_linear_reference_is_analytic():
    g = P.get_problem("gaussian_linear")
    assert g.dim_theta == 10 and g.x_shape == (10,)
    th = g.sample_prior(20000, np.random.default_rng(0))
    np.testing.assert_allclose(th.var(0), 0.1, rtol=0.05)
    x = g.simulate(th[:1], np.random.default_rng(1))[0]
    ref = g.reference_posterior(x, 20000, seed=0)
    np.testing.assert_allclose(ref.mean(0), x / 2, atol=0.01)  # N(x/2, 0.05 I)
    np.testing.assert_allclose(ref.var(0), 0.05, rtol=0.05)


def test_reference_mcmc_recovers_a_gaussian_posterior():
    g = SP.GaussianLinear(dim=2)
    x = np.array([0.3, -0.2])
    from cosmobench.sbi_adapter import MCMCSettings
    mcmc = MCMCSettings(mcmc_num_chains=10, mcmc_warmup_steps=50, mcmc_thin=2)
    s = P.mcmc_posterior_samples(g, x, 2000, seed=0, mcmc=mcmc)
    mean, var = g.posterior_moments(x)
    np.testing.assert_allclose(s.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(s.var(0), var, rtol=0.15)
    assert abs(np.corrcoef(s.T)[0, 1]) < 0.1
    # seeded: the same samples again
    np.testing.assert_array_equal(P.mcmc_posterior_samples(g, x, 50, seed=1, mcmc=mcmc),
                                  P.mcmc_posterior_samples(g, x, 50, seed=1, mcmc=mcmc))


def test_lognormal_map_problem():
    p = P.get_problem("lognormal_map", dict(CL_CFG, map_size=16, pixel_arcmin=4.0))
    rng = np.random.default_rng(0)
    x_lo = p.simulate(np.array([[0.3, 0.6]] * 20), rng)
    x_hi = p.simulate(np.array([[0.3, 1.0]] * 20), rng)
    assert x_lo.shape == (20, 1, 16, 16) and np.all(np.isfinite(x_lo))
    assert x_hi.var() > x_lo.var()                       # more clustering, more variance above the noise
    assert p.summary(x_lo).shape == (20, 8)


def test_user_problem_registry():
    def sim(theta, rng):
        return np.concatenate([theta, theta.sum(1, keepdims=True)], 1) + 0.05 * rng.standard_normal((len(theta), 3))
    P.register_problem("_test_user", lambda cfg: P.BoxProblem("_test_user", ["a", "b"], [0, 0], [1, 1], sim),
                       replace=True)
    prob = P.get_problem("_test_user")
    assert prob.x_shape == (3,) and not prob.has_likelihood
    assert prob.reference_posterior(np.zeros(3), 10, 0) is None
    with pytest.raises(ValueError):
        P.register_problem("_test_user", lambda cfg: prob)
    from cosmobench.errors import ConfigError
    with pytest.raises(ConfigError, match="did you mean 'two_moons'"):
        P.get_problem("two_moon")


# --- metrics ------------------------------------------------------------------------------
def test_c2st_same_and_disjoint():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    assert abs(c2st(a, b) - 0.5) < 0.06
    assert c2st(a, b + np.array([8.0, 0.0])) > 0.97
    assert 0.6 < c2st(a, b * 2.5) < 1.0                   # a wider distribution is partly separable


def test_nltp_and_std():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(4000, 2)) * 0.5
    # by hand: Gaussian KDE with Scott's bandwidth, kernel covariance = sample covariance * n^(-2/(d+4))
    h_cov = np.cov(s.T) * 4000 ** (-2 / 6)
    d = s - np.array([0.1, -0.2])
    quad = np.einsum("ni,ij,nj->n", d, np.linalg.inv(h_cov), d)
    dens = np.mean(np.exp(-0.5 * quad)) / (2 * np.pi * np.sqrt(np.linalg.det(h_cov)))
    assert abs(nltp(s, np.array([0.1, -0.2])) + np.log(dens)) < 1e-9
    assert abs(nltp(s, np.zeros(2)) - np.log(2 * np.pi * 0.25 * (1 + 4000 ** (-1 / 3)))) < 0.15  # ~ -log N(0; 0, .27 I)
    assert abs(posterior_std(s) - 0.5) < 0.02


def test_sbc_and_tarp_detect_overconfidence():
    from cosmobench import sbi_adapter
    rng = np.random.default_rng(0)
    n, m = 300, 200
    theta = rng.normal(size=(n, 2))
    x = theta + rng.normal(size=(n, 2))                   # posterior N(x/2, 1/2)
    good = x / 2 + np.sqrt(0.5) * rng.normal(size=(m, n, 2))
    narrow = x / 2 + 0.2 * np.sqrt(0.5) * rng.normal(size=(m, n, 2))
    _, p_good = sbi_adapter.sbc(theta, x, good)
    _, p_bad = sbi_adapter.sbc(theta, x, narrow)
    assert p_good.min() > 0.01 and p_bad.max() < 1e-4
    _, _, atc_good = sbi_adapter.tarp(theta, good)
    _, _, atc_bad = sbi_adapter.tarp(theta, narrow)
    assert abs(atc_good) < 0.05 and atc_bad < -0.1


# --- command line -------------------------------------------------------------------------
@pytest.mark.parametrize("problem", ["two_moons",
                                     # sbibm's C2ST MLP (100x100 units in 10-d, max_iter 10000) takes minutes
                                     pytest.param("gaussian_linear", marks=pytest.mark.slow)])
def test_cli_sbibm_problems_predict_csv_and_npy(problem, root, tmp_path):
    out = run_cli(["train", "sbi", "-c", str(TINY), f"data.problem={problem}"], root)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(root, "sbi", "npe")
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"c2st", "nltp", "sbc_ks_pvalue", "tarp_atc", "posterior_std", "time_per_posterior"} <= set(metrics)
    assert 0.4 < metrics["c2st"] <= 1.0
    for png in ("corner.png", "sbc_ranks.png", "tarp.png"):
        assert (run / "plots" / png).is_file()
    dim = 2 if problem == "two_moons" else 10
    obs = tmp_path / "observation.csv"                     # sbibm's layout: data_1..data_D, one row
    obs.write_text(",".join(f"data_{i + 1}" for i in range(dim)) + "\n" + ",".join(["0.1"] * dim) + "\n")
    pred = tmp_path / "samples.csv"
    out = run_cli(["predict", "sbi", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--input", str(obs),
                   "--output", str(pred)], root)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = pred.read_text().splitlines()
    assert lines[0].split(",")[:dim] == [f"parameter_{i + 1}" for i in range(dim)]
    assert len(lines) == 1 + 200                           # eval.num_posterior_samples of the tiny config
    assert (tmp_path / "samples_corner.png").is_file()
    npy = tmp_path / "obs.npy"
    np.save(npy, np.full((2, dim), 0.1))
    out = run_cli(["predict", "sbi", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--input", str(npy),
                   "--output", str(tmp_path / "s2.csv")], root)
    assert out.returncode == 0 and len((tmp_path / "s2.csv").read_text().splitlines()) == 1 + 2 * 200
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n" if dim != 3 else "a\n1\n")
    out = run_cli(["predict", "sbi", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--input", str(bad),
                   "--output", str(tmp_path / "s3.csv")], root)
    assert out.returncode == 2 and "data_1" in out.stderr and not (tmp_path / "s3.csv").exists()


def test_cli_lognormal_map_npe_fits_predict_and_refusals(root, tmp_path):
    args = ["-c", str(TINY), "data.problem=lognormal_map", "data.map_size=16", "model.channels=[4,8]"]
    out = run_cli(["train", "sbi", *args], root)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(root, "sbi", "npe")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "c2st" not in metrics and math.isfinite(metrics["sbc_ks_pvalue"])  # no reference posterior
    from astropy.io import fits
    fmap = tmp_path / "kappa.fits"
    fits.PrimaryHDU(np.random.default_rng(0).normal(0, 0.03, (16, 16)).astype(np.float32)).writeto(fmap)
    pred = tmp_path / "samples.csv"
    out = run_cli(["predict", "sbi", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--input", str(fmap),
                   "--output", str(pred)], root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert pred.read_text().splitlines()[0].startswith("Omega_m,sigma8")
    wrong = tmp_path / "big.npy"
    np.save(wrong, np.zeros((32, 32)))
    out = run_cli(["predict", "sbi", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--input", str(wrong),
                   "--output", str(tmp_path / "x.csv")], root)
    assert out.returncode == 2 and "data.map_size" in out.stderr
    for model, msg in (("nle", "use npe or nre"), ("mcmc", "known likelihood")):
        out = run_cli(["train", "sbi", "-m", model, *args[:-1]], root)
        assert out.returncode == 2 and msg in out.stderr, out.stderr[-2000:]


def test_python_api_user_problem(tmp_path, monkeypatch):
    import cosmobench

    def sim(theta, rng):
        return np.concatenate([theta, theta.prod(1, keepdims=True)], 1) + 0.05 * rng.standard_normal((len(theta), 3))
    P.register_problem("_api_user", lambda cfg: P.BoxProblem("_api_user", ["a", "b"], [0, 0], [1, 1], sim),
                       replace=True)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    res = cosmobench.train("sbi", model="rejection_abc", config_file=TINY, root=tmp_path,
                           overrides=["data.problem=_api_user"])
    assert res.metrics["posterior_std"] < 0.3            # much narrower than the U(0, 1) prior (0.29)
    assert "c2st" not in res.metrics                      # no likelihood: no reference posterior
