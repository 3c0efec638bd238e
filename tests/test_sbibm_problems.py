"""sbibm's no-Julia problems (cosmobench.sim.sbibm_problems) checked against sbibm's published
observations (tests/data/sbibm/, copied from sbibm's repository; README there): the names and
column order, and the simulator: the log-likelihood of each published observation at its true
parameters must be typical of our simulations at those parameters (a probability integral
transform over the 10 observations; a misread simulator fails it, tested). No network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from cosmobench.datamodules.sbi import SBIDataModule
from cosmobench.sim import sbibm_problems as S
from cosmobench.sim.sbi_problems import get_problem, list_problems

DATA = Path(__file__).parent / "data" / "sbibm"
SBIBM = ("two_moons", "gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "slcp", "slcp_distractors",
         "bernoulli_glm", "bernoulli_glm_raw")


def published(task: str, problem) -> tuple[np.ndarray, np.ndarray]:
    """sbibm's true parameters (k, d) and observations (k, D) of ``task``, names checked."""
    table = pd.read_csv(DATA / f"{task}.csv")
    assert list(table.columns) == ["num_observation", *problem.param_names, *problem.data_names()]
    return table[problem.param_names].to_numpy(), table[problem.data_names()].to_numpy()


def loglik_pit(problem, theta: np.ndarray, x: np.ndarray, n_sim: int = 1000, seed: int = 0,
               transform=lambda x: x) -> np.ndarray:
    """For each (theta_k, x_k): the fraction of ``n_sim`` simulations at theta_k whose
    log-likelihood is below that of x_k (uniform if x_k comes from the simulator)."""
    rng = np.random.default_rng(seed)
    out = []
    for th, xo in zip(theta, x):
        th_t = torch.as_tensor(th[None])
        sims = transform(problem.simulate(np.repeat(th[None], n_sim, 0), rng))
        ll_sim = np.array([float(problem.log_likelihood(th_t, torch.as_tensor(xs[None]))[0]) for xs in sims])
        ll_obs = float(problem.log_likelihood(th_t, torch.as_tensor(xo[None]))[0])
        out.append(float(np.mean(ll_sim < ll_obs)))
    return np.array(out)


def typical(pit: np.ndarray) -> bool:
    return bool(pit.min() > 0 and pit.max() < 1 and stats.kstest(pit, "uniform").pvalue > 1e-3)


def test_all_sbibm_tasks_registered_with_names_and_shapes():
    dims = {"two_moons": (2, 2), "gaussian_linear": (10, 10), "gaussian_linear_uniform": (10, 10),
            "gaussian_mixture": (2, 2), "slcp": (5, 8), "slcp_distractors": (5, 100), "bernoulli_glm": (10, 10),
            "bernoulli_glm_raw": (10, 100)}
    assert set(SBIBM) <= set(list_problems())
    rng = np.random.default_rng(0)
    for name in SBIBM:
        p = get_problem(name)
        assert (p.dim_theta, p.dim_x) == dims[name]
        assert p.param_names == [f"parameter_{i + 1}" for i in range(p.dim_theta)]
        theta = p.sample_prior(50, rng)
        assert torch.isfinite(p.log_prior(torch.as_tensor(theta))).all()
        x = p.simulate(theta, rng)
        assert x.shape == (50, p.dim_x) and np.all(np.isfinite(x))
        assert p.has_likelihood
        for i in range(5):     # finite at the parameters that simulated x
            assert torch.isfinite(p.log_likelihood(torch.as_tensor(theta[i:i + 1]), torch.as_tensor(x[i:i + 1]))).all()


@pytest.mark.parametrize("task", ["gaussian_linear_uniform", "gaussian_mixture", "slcp", "bernoulli_glm",
                                  "bernoulli_glm_raw"])
def test_sbibm_observations_are_typical_of_our_simulator(task):
    p = get_problem(task)
    theta, x = published(task, p)
    assert len(x) == 10
    assert typical(loglik_pit(p, theta, x))


def test_a_misread_simulator_fails_the_check():
    """sbibm's simulator_scale=0.1 is a covariance; read as a standard deviation, or slcp's
    s_i = theta^2 read as variances instead of scales, the published observations are atypical."""
    class StdNotVar(S.GaussianLinearUniform):
        NOISE_VAR = 0.01

    class SlcpVariances(S.SLCP):
        def _cholesky(self, theta):
            m0, m1, _, _, _ = super()._cholesky(theta)
            xp = torch if isinstance(theta, torch.Tensor) else np
            s1, s2, rho = xp.abs(theta[:, 2]), xp.abs(theta[:, 3]), xp.tanh(theta[:, 4])
            l00 = xp.sqrt(s1 ** 2 + self.EPS)
            l10 = rho * s1 * s2 / l00
            return m0, m1, l00, l10, xp.sqrt(s2 ** 2 + self.EPS - l10 ** 2)

    for wrong, task in ((StdNotVar(), "gaussian_linear_uniform"), (SlcpVariances(), "slcp")):
        theta, x = published(task, wrong)
        assert not typical(loglik_pit(wrong, theta, x, n_sim=300))


def test_slcp_distractors_permutation_and_mixture_match_sbibm():
    """The 8 informative values sit where sbibm's permutation puts them (equal to slcp's
    observation.csv) and the 92 distractors are typical of our Student-t mixture. sbibm stored
    float32 values: the mixture's shape matrices have eigenvalues down to ~1e-14, so the
    density of float32-rounded draws is far below that of exact draws; compared alike."""
    p = get_problem("slcp_distractors")
    theta, x = published("slcp_distractors", p)
    _, x_slcp = published("slcp", get_problem("slcp"))
    pts, noise = p.split(x)
    np.testing.assert_array_equal(pts, x_slcp[:len(x)])
    assert sorted(S.slcp_distractor_parameters()[2]) == list(range(100))
    rng = np.random.default_rng(1)
    sims = p.distractor_log_density(p.distractors(1000, rng).astype(np.float32).astype(np.float64))
    pit = np.array([np.mean(sims < v) for v in p.distractor_log_density(noise)])
    assert np.all((pit > 0.01) & (pit < 0.99))
    simulated = p.simulate(theta[:1].repeat(4, 0), rng)           # our simulator keeps the permutation
    assert torch.isfinite(p.log_likelihood(torch.as_tensor(theta[:1]), torch.as_tensor(simulated[:1]))).all()
    assert np.allclose(p.split(simulated)[0].reshape(4, 4, 2)[..., 0].mean(), theta[0, 0], atol=30)


def test_bernoulli_glm_summary_is_sbibms_conv1d_and_reproduces_published_summaries():
    p = get_problem("bernoulli_glm")
    raw = get_problem("bernoulli_glm_raw")
    _, x = published("bernoulli_glm", p)
    theta_raw, y = published("bernoulli_glm_raw", raw)
    np.testing.assert_allclose(p.summarise(y), x, rtol=1e-5, atol=1e-4)    # sbibm stores 8 digits
    y_t = torch.as_tensor(y[:3], dtype=torch.float32)
    stim = torch.as_tensor(p.stimulus, dtype=torch.float32)
    sta = torch.stack([torch.nn.functional.conv1d(yy.reshape(1, 1, -1), stim.reshape(1, 1, -1), padding=8).squeeze()[-9:]
                       for yy in y_t])                                  # sbibm's simulator, verbatim
    np.testing.assert_allclose(p.summarise(y[:3])[:, 1:], sta.numpy(), rtol=1e-5, atol=1e-4)
    # raw and summary likelihoods agree (the summary is sufficient)
    th = torch.as_tensor(p.sample_prior(20, np.random.default_rng(0)))
    np.testing.assert_allclose(p.log_likelihood(th, torch.as_tensor(x[:1])), raw.log_likelihood(th, torch.as_tensor(y[:1])),
                               rtol=1e-6)


def test_closed_form_references_match_sbibms_rejection():
    """gaussian_linear_uniform (scipy truncnorm) against sbibm's method, rejection from
    N(x, 0.1 I); gaussian_mixture's reference against importance-weighted prior draws."""
    glu = get_problem("gaussian_linear_uniform")
    _, x = published("gaussian_linear_uniform", glu)
    ref = glu.reference_posterior(x[0], 4000, seed=0)
    rng = np.random.default_rng(1)
    draws = x[0] + np.sqrt(0.1) * rng.standard_normal((400000, 10))
    rej = draws[np.all(np.abs(draws) <= 1, axis=1)][:4000]
    assert len(rej) == 4000 and np.all(np.abs(ref) <= 1)
    assert min(stats.ks_2samp(ref[:, j], rej[:, j]).pvalue for j in range(10)) > 1e-3
    gm = get_problem("gaussian_mixture")
    _, x = published("gaussian_mixture", gm)                  # observation 1 lies 0.5 from the prior's edge
    ref = gm.reference_posterior(x[0], 20000, seed=0)
    axes = [np.arange(max(-10, c - 6), min(10, c + 6), 0.01) + 0.005 for c in x[0]]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)   # the posterior on a 0.01 grid
    w = np.exp(gm.log_likelihood(torch.as_tensor(grid), torch.as_tensor(x[:1])).numpy())
    w /= w.sum()
    assert np.all(np.abs(ref) <= 10)
    np.testing.assert_allclose(ref.mean(0), w @ grid, atol=0.02)
    np.testing.assert_allclose(ref.std(0), np.sqrt(w @ (grid - w @ grid) ** 2), rtol=0.02)


def test_reference_dir_reads_the_problems_observation_file(tmp_path):
    """slcp_distractors / bernoulli_glm_raw read sbibm's observation_distractors.csv /
    observation_raw.csv from an sbibm-layout directory."""
    from cosmobench.config import resolve
    for task, n in (("slcp_distractors", 3), ("bernoulli_glm_raw", 3)):
        p = get_problem(task)
        theta, x = published(task, p)
        for k in range(n):
            d = tmp_path / task / f"num_observation_{k + 1}"
            d.mkdir(parents=True)
            pd.DataFrame(theta[k:k + 1], columns=p.param_names).to_csv(d / "true_parameters.csv", index=False)
            pd.DataFrame(x[k:k + 1], columns=p.data_names()).to_csv(d / p.observation_file, index=False)
            pd.DataFrame(theta[k:k + 1].repeat(20, 0), columns=p.param_names).to_csv(
                d / "reference_posterior_samples.csv.bz2", index=False, compression="bz2")
        cfg = resolve("sbi", "npe", overrides=[f"data.problem={task}", f"data.reference_dir={tmp_path / task}",
                                               "data.num_simulations=20", f"data.num_observations={n}",
                                               "data.num_sbc=5"])["data"]
        dm = SBIDataModule(cfg, seed=0)
        dm.setup()
        np.testing.assert_allclose(dm.datasets["test"].arrays["x"][:n].numpy(), x[:n], rtol=1e-6)


def test_slcp_reference_has_four_equal_modes():
    """slcp's likelihood sees theta_3 and theta_4 only through their squares: the reference's
    four sign orthants hold a quarter each (the raw slice-sampler chains do not, see
    SLCP.reference_posterior), and symmetrising leaves |theta| unchanged."""
    rng = np.random.default_rng(0)
    lopsided = np.abs(rng.normal(size=(4000, 5))) + 0.1             # every sample in one orthant
    sym = S.symmetrise_signs(lopsided, (2, 3), np.random.default_rng(1))
    np.testing.assert_array_equal(np.abs(sym), lopsided)
    np.testing.assert_array_equal(sym[:, [0, 1, 4]], lopsided[:, [0, 1, 4]])
    for s3 in (1, -1):
        for s4 in (1, -1):
            frac = np.mean((np.sign(sym[:, 2]) == s3) & (np.sign(sym[:, 3]) == s4))
            assert abs(frac - 0.25) < 0.03
    p = get_problem("slcp")
    theta, x = published("slcp", p)
    ref = p.reference_posterior(x[0], 400, seed=0)
    assert ref.shape == (400, 5) and np.all(np.abs(ref) <= 3)
    assert 0.3 < np.mean(ref[:, 2] > 0) < 0.7 and 0.3 < np.mean(ref[:, 3] > 0) < 0.7
