"""bernoulli_glm's reference posterior (Polya-Gamma Gibbs, cosmobench.sim.sbibm_problems.
polya_gamma_gibbs) against brute-force quadrature on a 2-parameter logistic regression, and
its determinism. The moment check is shown to be discriminative: the sampler fed the inputs
that a wrong conditional amounts to (``kappa = y`` instead of ``y - 1/2``; no prior precision)
fails it. CPU, no network, a few seconds."""
from __future__ import annotations

import numpy as np
import pytest

from cosmobench.sim.sbibm_problems import BernoulliGLM, polya_gamma_gibbs

N_BINS = 30
PRIOR_PRECISION = np.diag([1.0, 2.0])  # comparable to the data's precision (~ N_BINS / 4)


def tiny_problem() -> tuple[np.ndarray, np.ndarray]:
    """Design (30, 2) = ones | white noise, and X^T y of spikes drawn at theta = (-0.5, 1)."""
    rng = np.random.default_rng(3)
    X = np.stack([np.ones(N_BINS), rng.standard_normal(N_BINS)], axis=1)
    y = (rng.random(N_BINS) < 1.0 / (1.0 + np.exp(-X @ np.array([-0.5, 1.0])))).astype(float)
    return X, X.T @ y


def quadrature_moments(X: np.ndarray, xty: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and covariance by summing the density over a 0.02-spaced grid on [-5, 5]^2
    (~20 points per posterior sd; the density at the edges is checked to be negligible)."""
    g = np.linspace(-5.0, 5.0, 501)
    th = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    logp = th @ xty - np.logaddexp(0.0, th @ X.T).sum(1) - 0.5 * np.einsum("ni,ij,nj->n", th, B, th)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = w @ th
    cov = (th - mean).T @ ((th - mean) * w[:, None])
    w2 = w.reshape(len(g), len(g))
    assert max(w2[[0, -1]].max(), w2[:, [0, -1]].max()) < 1e-12
    return mean, cov


def moment_error(samples: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """Largest of: |mean difference| / sd, |sd ratio - 1|, |correlation difference|."""
    sd = np.sqrt(np.diag(cov))
    s_sd = samples.std(0)
    corr = cov[0, 1] / (sd[0] * sd[1])
    s_corr = np.corrcoef(samples.T)[0, 1]
    return float(max(np.max(np.abs(samples.mean(0) - mean) / sd), np.max(np.abs(s_sd / sd - 1)),
                     abs(s_corr - corr)))


TOL = 0.08  # Monte Carlo error of 4000 nearly independent draws: ~0.016 sd (mean), ~0.011 (sd ratio)


def gibbs(X, xty, B, seed=0):
    """4000 draws, 20 chains, thinning 5 (lag-5 autocorrelation < 0.01 on this problem)."""
    return polya_gamma_gibbs(X, B, xty, 4000, seed, chains=20, warmup=100, thin=5)


def test_gibbs_matches_quadrature_and_a_wrong_conditional_does_not():
    X, xty = tiny_problem()
    mean, cov = quadrature_moments(X, xty, PRIOR_PRECISION)
    assert moment_error(gibbs(X, xty, PRIOR_PRECISION), mean, cov) < TOL
    # kappa = y: the sampler uses X^T y - X^T 1/2, so feeding X^T y + X^T 1/2 is that mutation
    assert moment_error(gibbs(X, xty + 0.5 * X.sum(0), PRIOR_PRECISION), mean, cov) > 3 * TOL
    # prior precision left out of V = (X^T W X + B)^-1 (a tiny B keeps the Cholesky defined)
    assert moment_error(gibbs(X, xty, 1e-9 * np.eye(2)), mean, cov) > 3 * TOL


def test_reference_is_deterministic_and_raw_equals_summary():
    summary, raw = BernoulliGLM(), BernoulliGLM(raw=True)
    for p in (summary, raw):  # a short run: the sampler's settings are checked above
        p.GIBBS_CHAINS, p.GIBBS_WARMUP, p.GIBBS_THIN = 10, 20, 2
    y = summary.spikes(np.zeros((1, 10)), np.random.default_rng(0))
    a = summary.reference_posterior(summary.summarise(y)[0], 150, seed=5)
    assert a.shape == (150, 10) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, summary.reference_posterior(summary.summarise(y), 150, seed=5))
    np.testing.assert_array_equal(a, raw.reference_posterior(y[0], 150, seed=5))
    assert not np.allclose(a, summary.reference_posterior(summary.summarise(y)[0], 150, seed=6))


@pytest.mark.parametrize("n", [1, 7, 40])
def test_sample_count_not_a_multiple_of_chains(n):
    X, xty = tiny_problem()
    out = polya_gamma_gibbs(X, PRIOR_PRECISION, xty, n, 0, chains=3, warmup=5, thin=2)
    assert out.shape == (n, 2) and len(np.unique(out[:, 0])) == n
