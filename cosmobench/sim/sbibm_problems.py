"""sbibm's tasks that need no Julia (Lueckmann et al. 2021, github.com/sbi-benchmark/sbibm) as
``sbi`` problems, registered in :mod:`cosmobench.sim.sbi_problems`' registry under sbibm's
names. Priors, simulators, likelihoods, parameter/data names (``parameter_1 ...``,
``data_1 ...``) and data column order are sbibm's (``sbibm/tasks/<task>/task.py`` at
``cosmobench.datasets._sbibm_files.SBIBM_COMMIT``); random streams differ (numpy generators
instead of pyro's), the distributions do not. Variances below are variances (sbibm's
``simulator_scale=0.1`` is a covariance ``0.1 I``).

``two_moons``: ``theta ~ U(-1, 1)^2``; ``a ~ U(-pi/2, pi/2)``, ``r ~ N(0.1, 0.01^2)``,
    ``x = (r cos a + 0.25, r sin a) + (-|z0|, z1)``, ``z = R(-pi/4) theta``. Reference:
    sbibm's closed-form construction.
``gaussian_linear``: prior ``N(0, 0.1 I_10)``, ``x ~ N(theta, 0.1 I_10)``; analytic posterior
    ``N(x / 2, 0.05 I)``.
``gaussian_linear_uniform``: prior ``U(-1, 1)^10``, ``x ~ N(theta, 0.1 I_10)``; posterior
    ``N(x, 0.1 I)`` truncated to the box (sbibm: rejection; here scipy's ``truncnorm`` per
    coordinate, the same distribution).
``gaussian_mixture``: prior ``U(-10, 10)^2``, ``x ~ 0.5 N(theta, I_2) + 0.5 N(theta, 0.01 I_2)``;
    posterior: the same mixture centred on x, truncated to the box (sbibm's rejection).
``slcp``: prior ``U(-3, 3)^5``; 4 iid 2-d points ``N(m, S)``, ``m = (theta_1, theta_2)``,
    ``s_i = theta_{i+2}^2``, ``rho = tanh(theta_5)``,
    ``S = [[s_1^2, rho s_1 s_2], [rho s_1 s_2, s_2^2]] + 1e-6 I``; ``x = (p1_1, p1_2, p2_1, ...)``
    (8 values). Reference: MCMC on the likelihood (sbibm: SIR + flow + rejection).
``slcp_distractors``: slcp's 8 values and 92 distractors from a 20-component mixture of
    multivariate Student-t (df 2), shuffled by a fixed permutation (100 values). The mixture
    parameters and the permutation are computed here exactly as sbibm's
    ``SLCP._generate_noise_dist_parameters`` draws them (``numpy.random.seed(42)``: locations
    ``15 N(0, 1)``, scale factors ``3 (tril(N) + diag(exp N))``, then ``permutation(100)``);
    they equal sbibm's ``files/gmm.torch`` and ``permutation_idx.torch`` (compared once, not
    read from files). The posterior is slcp's (the distractors do not depend on theta).
    sbibm's observation file is ``observation_distractors.csv``.
``bernoulli_glm`` / ``bernoulli_glm_raw``: 100 time bins of a Bernoulli GLM,
    ``y_t ~ Bernoulli(sigmoid(X_t . theta))``, design matrix ``X`` = ones | the white-noise
    stimulus ``I = RandomState(42).randn(100)`` (float32) delayed by 0..8 bins (computed as
    sbibm's ``_setup(regenerate_stimulus=True)``; equals its ``files/design_matrix.pt``). Prior
    ``N(0, B^-1)``: ``B[0, 0] = 0.5``, filter block ``F^T F`` with ``F = D^2 + diag(sqrt(i / 9))``
    (``D``: first differences), smooth filters. ``bernoulli_glm``: ``x = X^T y`` (spike count
    and the 9-lag spike-triggered sum: sbibm's ``conv1d(y, I, padding=8)[-9:]`` is exactly
    ``X[:, 1:]^T y``); ``bernoulli_glm_raw``: ``x = y`` (observation file
    ``observation_raw.csv``). Reference: Polya-Gamma Gibbs sampling as sbibm's
    (:func:`polya_gamma_gibbs`; the raw variant summarises first, ``X^T y`` is sufficient).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from cosmobench.sim.sbi_problems import BoxProblem, SBIProblem, register_problem


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i + 1}" for i in range(n)]


def _iso_gauss_loglik(theta: torch.Tensor, x: torch.Tensor, var: float) -> torch.Tensor:
    """``log N(x; theta, var I)`` for theta (n, d) and one x (1, d): (n,) float64."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    x = torch.as_tensor(x, dtype=torch.float64).reshape(1, -1)
    return -0.5 * ((x - theta) ** 2).sum(1) / var - 0.5 * theta.shape[1] * math.log(2 * math.pi * var)


class TwoMoons(BoxProblem):
    """sbibm's two moons (module docstring): 2 parameters in [-1, 1], 2-d data."""

    A_LOW, A_HIGH, BASE_OFFSET, R_LOC, R_SCALE = -math.pi / 2, math.pi / 2, 0.25, 0.1, 0.01

    def __init__(self):
        super().__init__("two_moons", _names("parameter", 2), [-1.0, -1.0], [1.0, 1.0],
                         simulator=self._simulate, x_dim=2)

    @staticmethod
    def moon_map(theta: np.ndarray, a: np.ndarray, r: np.ndarray) -> np.ndarray:
        """x for parameters (n, 2) and noise draws a, r (n,): the deterministic part of
        the simulator, so that it can be checked on fixed noise draws."""
        theta = np.asarray(theta, np.float64)
        p = np.stack([np.cos(a) * r + TwoMoons.BASE_OFFSET, np.sin(a) * r], axis=1)
        ang = -math.pi / 4
        c, s = math.cos(ang), math.sin(ang)
        z0 = c * theta[:, 0] - s * theta[:, 1]
        z1 = s * theta[:, 0] + c * theta[:, 1]
        return p + np.stack([-np.abs(z0), z1], axis=1)

    def _simulate(self, theta, rng):
        n = len(theta)
        a = rng.uniform(self.A_LOW, self.A_HIGH, size=n)
        r = rng.normal(self.R_LOC, self.R_SCALE, size=n)
        return self.moon_map(theta, a, r)

    @property
    def has_likelihood(self) -> bool:
        return True

    def log_likelihood(self, theta, x):
        """sbibm's likelihood: the density of r = |p - (0.25, 0)| under N(0.1, 0.01^2)
        (as a 2-d density this omits the Jacobian 1/(pi r), as sbibm does); -inf where
        the inverted point lies left of the moon's centre (u < 0)."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        x = torch.as_tensor(x, dtype=torch.float64).reshape(1, 2)
        ang = -math.pi / 4
        c, s = math.cos(ang), math.sin(ang)
        z0 = c * theta[:, 0] - s * theta[:, 1]
        z1 = s * theta[:, 0] + c * theta[:, 1]
        u = x[0, 0] + torch.abs(z0) - self.BASE_OFFSET
        v = x[0, 1] - z1
        r = torch.sqrt(u ** 2 + v ** 2)
        ll = -0.5 * ((r - self.R_LOC) / self.R_SCALE) ** 2 - 0.5 * math.log(2 * math.pi * self.R_SCALE ** 2)
        return torch.where(u < 0, torch.full_like(ll, -float("inf")), ll)

    def reference_posterior(self, x, n, seed):
        """sbibm's closed-form reference: simulate p at theta = 0, set
        q = (p_0 - x_0, x_1 - p_1), flip q_0's sign with probability 1/2, rotate by pi/4;
        keep samples inside the prior (vectorised; sbibm also drops exact duplicates,
        which have probability zero)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
        x = np.asarray(x, np.float64).reshape(2)
        ang = math.pi / 4
        c, s = math.cos(ang), math.sin(ang)

        def draw(m):
            p = self.moon_map(np.zeros((m, 2)), rng.uniform(self.A_LOW, self.A_HIGH, m),
                              rng.normal(self.R_LOC, self.R_SCALE, m))
            q0 = p[:, 0] - x[0]
            q1 = x[1] - p[:, 1]
            q0 = np.where(rng.random(m) < 0.5, -q0, q0)
            return np.stack([c * q0 - s * q1, s * q0 + c * q1], axis=1)
        return self.inside_prior(draw, n)


class GaussianLinear(SBIProblem):
    """sbibm's gaussian_linear: prior N(0, 0.1 I_10), x ~ N(theta, 0.1 I_10)."""

    def __init__(self, dim: int = 10, prior_var: float = 0.1, noise_var: float = 0.1):
        self.name = "gaussian_linear"
        self.param_names = _names("parameter", dim)
        self.x_shape = (dim,)
        self.prior_var, self.noise_var = float(prior_var), float(noise_var)

    def sample_prior(self, n, rng):
        return rng.normal(0.0, math.sqrt(self.prior_var), size=(int(n), self.dim_theta))

    def torch_prior(self):
        d = self.dim_theta
        return torch.distributions.MultivariateNormal(torch.zeros(d), covariance_matrix=self.prior_var * torch.eye(d))

    def simulate(self, theta, rng):
        theta = np.asarray(theta, np.float64)
        return theta + rng.normal(0.0, math.sqrt(self.noise_var), size=theta.shape)

    def log_likelihood(self, theta, x):
        return _iso_gauss_loglik(theta, x, self.noise_var)

    def posterior_moments(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Analytic posterior mean and (isotropic) variance for one observation."""
        var = 1.0 / (1.0 / self.prior_var + 1.0 / self.noise_var)
        return var * np.asarray(x, np.float64).reshape(-1) / self.noise_var, var

    def reference_posterior(self, x, n, seed):
        mean, var = self.posterior_moments(x)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
        return mean + math.sqrt(var) * rng.standard_normal((int(n), len(mean)))


class GaussianLinearUniform(BoxProblem):
    """sbibm's gaussian_linear_uniform: prior U(-1, 1)^10, x ~ N(theta, 0.1 I_10)."""

    NOISE_VAR = 0.1

    def __init__(self, dim: int = 10):
        super().__init__("gaussian_linear_uniform", _names("parameter", dim), [-1.0] * dim, [1.0] * dim,
                         simulator=self._simulate, x_dim=dim, log_likelihood=self._loglik)

    def _simulate(self, theta, rng):
        return theta + rng.normal(0.0, math.sqrt(self.NOISE_VAR), size=theta.shape)

    def _loglik(self, theta, x):
        return _iso_gauss_loglik(theta, x, self.NOISE_VAR)

    def reference_posterior(self, x, n, seed):
        """``N(x, 0.1 I)`` truncated to the box: independent truncated normals (scipy)."""
        from scipy.stats import truncnorm
        x = np.asarray(x, np.float64).reshape(-1)
        sd = math.sqrt(self.NOISE_VAR)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
        return truncnorm.rvs((self.low - x) / sd, (self.high - x) / sd, loc=x, scale=sd,
                             size=(int(n), len(x)), random_state=rng)


class GaussianMixture(BoxProblem):
    """sbibm's gaussian_mixture: prior U(-10, 10)^2, x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I)."""

    SCALES, WEIGHTS = (1.0, 0.1), (0.5, 0.5)

    def __init__(self, dim: int = 2, bound: float = 10.0):
        super().__init__("gaussian_mixture", _names("parameter", dim), [-bound] * dim, [bound] * dim,
                         simulator=self._simulate, x_dim=dim, log_likelihood=self._loglik)

    def _scales(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The component scale of each of n draws (one component per draw, shared by all dims)."""
        return np.asarray(self.SCALES)[rng.choice(len(self.SCALES), size=n, p=self.WEIGHTS)]

    def _simulate(self, theta, rng):
        return theta + self._scales(len(theta), rng)[:, None] * rng.standard_normal(theta.shape)

    def _loglik(self, theta, x):
        comps = [math.log(w) + _iso_gauss_loglik(theta, x, s ** 2) for s, w in zip(self.SCALES, self.WEIGHTS)]
        return torch.logsumexp(torch.stack(comps), dim=0)

    def reference_posterior(self, x, n, seed):
        """sbibm's: the mixture centred on x (uniform prior), draws outside the box rejected."""
        x = np.asarray(x, np.float64).reshape(1, -1)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
        return self.inside_prior(lambda m: x + self._scales(m, rng)[:, None] * rng.standard_normal(
            (m, x.shape[1])), n)


class SLCP(BoxProblem):
    """sbibm's slcp (module docstring): 5 parameters in [-3, 3], 4 2-d points."""

    N_POINTS, EPS = 4, 1e-6

    def __init__(self, name: str = "slcp", x_dim: int = 8):
        super().__init__(name, _names("parameter", 5), [-3.0] * 5, [3.0] * 5, simulator=self._simulate,
                         x_dim=x_dim, log_likelihood=self._loglik)

    reference_version = "2: MCMC, theta_3/theta_4 signs symmetrised"

    def reference_posterior(self, x, n, seed):
        """MCMC (the default) with the signs of theta_3 and theta_4 then flipped at random,
        independently per sample. The likelihood depends on them only through their squares and
        the prior is symmetric, so the posterior's four modes have equal mass; the flips restore
        that balance, which the slice sampler's chains get wrong (a 0.16 / 0.37 / 0.24 / 0.23
        split on sbibm's observation 1 instead of quarters) without changing the shape of a mode."""
        samples = super().reference_posterior(x, n, seed)
        return symmetrise_signs(samples, (2, 3), np.random.default_rng(np.random.SeedSequence([int(seed), 11])))

    def _cholesky(self, theta):
        """Mean (2 columns) and Cholesky factor (l00, l10, l11) of each theta's covariance."""
        xp = torch if isinstance(theta, torch.Tensor) else np
        s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, xp.tanh(theta[:, 4])
        l00 = xp.sqrt(s1 ** 2 + self.EPS)
        l10 = rho * s1 * s2 / l00
        l11 = xp.sqrt(s2 ** 2 + self.EPS - l10 ** 2)
        return theta[:, 0], theta[:, 1], l00, l10, l11

    def slcp_points(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """slcp's 8 values (n, 8): points (x1, y1, x2, y2, ...)."""
        m0, m1, l00, l10, l11 = (a[:, None] for a in self._cholesky(np.asarray(theta, np.float64)))
        z = rng.standard_normal((len(theta), self.N_POINTS, 2))
        return np.stack([m0 + l00 * z[..., 0], m1 + l10 * z[..., 0] + l11 * z[..., 1]], axis=2).reshape(len(theta), -1)

    def _simulate(self, theta, rng):
        return self.slcp_points(theta, rng)

    def slcp_loglik(self, theta: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
        """``sum_points log N(p; m, S)`` for theta (n, 5) and slcp's 8 values (8,)."""
        m0, m1, l00, l10, l11 = (a[:, None] for a in self._cholesky(torch.as_tensor(theta, dtype=torch.float64)))
        p = torch.as_tensor(pts, dtype=torch.float64).reshape(1, self.N_POINTS, 2)
        z0 = (p[..., 0] - m0) / l00
        z1 = (p[..., 1] - m1 - l10 * z0) / l11
        return (-0.5 * (z0 ** 2 + z1 ** 2) - torch.log(l00 * l11) - math.log(2 * math.pi)).sum(1)

    def _loglik(self, theta, x):
        return self.slcp_loglik(theta, x)


def symmetrise_signs(samples: np.ndarray, columns: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A copy of ``samples`` (n, d) with the sign of each of ``columns`` flipped independently
    with probability 1/2 per sample: exact for a density invariant under those sign flips."""
    out = np.array(samples, np.float64, copy=True)
    for c in columns:
        out[:, c] *= rng.choice([-1.0, 1.0], size=len(out))
    return out


@functools.lru_cache(maxsize=1)
def slcp_distractor_parameters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sbibm's distractor mixture and permutation, drawn as its ``_generate_noise_dist_parameters``:
    locations (20, 92), scale_tril (20, 92, 92), permutation (100,) (``out = values[perm]``,
    values = slcp's 8 then the 92 distractors)."""
    rs = np.random.RandomState(42)
    loc = np.array([15 * rs.normal(size=92) for _ in range(20)])
    tril = 3 * np.array([np.tril(rs.normal(size=(92, 92))) + np.diag(np.exp(rs.normal(size=92))) for _ in range(20)])
    return loc, tril, rs.permutation(100)


class SLCPDistractors(SLCP):
    """sbibm's slcp_distractors (module docstring): slcp + 92 Student-t mixture distractors."""

    observation_file = "observation_distractors.csv"
    DF = 2.0

    def __init__(self):
        super().__init__("slcp_distractors", x_dim=100)
        self._noise_cache: tuple[bytes, float] | None = None

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """slcp's 8 values and the 92 distractors of data (n, 100) (undoing the permutation)."""
        x = np.asarray(x, np.float64).reshape(-1, 100)
        unshuffled = x[:, np.argsort(slcp_distractor_parameters()[2])]
        return unshuffled[:, :8], unshuffled[:, 8:]

    def distractors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws (n, 92) of the equal-weight mixture of 20 multivariate Student-t (df 2)."""
        loc, tril, _ = slcp_distractor_parameters()
        comp = rng.integers(0, len(loc), size=n)
        w = np.sqrt(self.DF / rng.chisquare(self.DF, size=n))[:, None]
        z = rng.standard_normal((n, loc.shape[1]))
        out = np.empty_like(z)
        for c in range(len(loc)):
            sel = comp == c
            out[sel] = loc[c] + w[sel] * (z[sel] @ tril[c].T)
        return out

    def distractor_log_density(self, noise: np.ndarray) -> np.ndarray:
        """Log density (n,) of distractors (n, 92) under the mixture. Written out from the
        scale_tril factors (``log|det| = sum log|diag L|``): scipy's ``multivariate_t`` refuses
        some of these near-singular shape matrices."""
        from scipy.linalg import solve_triangular
        from scipy.special import gammaln, logsumexp
        loc, tril, _ = slcp_distractor_parameters()
        noise = np.atleast_2d(np.asarray(noise, np.float64))
        nu, p = self.DF, loc.shape[1]
        const = gammaln((nu + p) / 2) - gammaln(nu / 2) - 0.5 * p * math.log(nu * math.pi)
        comps = []
        for c in range(len(loc)):
            u = solve_triangular(tril[c], (noise - loc[c]).T, lower=True)
            comps.append(const - np.log(np.abs(np.diag(tril[c]))).sum()
                         - 0.5 * (nu + p) * np.log1p((u ** 2).sum(0) / nu))
        return logsumexp(np.stack(comps), axis=0) - math.log(len(loc))

    def _simulate(self, theta, rng):
        values = np.concatenate([self.slcp_points(theta, rng), self.distractors(len(theta), rng)], axis=1)
        return values[:, slcp_distractor_parameters()[2]]

    def _loglik(self, theta, x):
        """slcp's likelihood of the 8 values plus the theta-independent distractor density
        (computed once per observation)."""
        pts, noise = self.split(torch.as_tensor(x).detach().cpu().numpy())
        key = noise.tobytes()
        if self._noise_cache is None or self._noise_cache[0] != key:
            self._noise_cache = (key, float(self.distractor_log_density(noise)[0]))
        return self.slcp_loglik(theta, pts[0]) + self._noise_cache[1]


def polya_gamma_gibbs(design: np.ndarray, prior_precision: np.ndarray, xty: np.ndarray, n: int, seed: int,
                      chains: int = 100, warmup: int = 1000, thin: int = 25) -> np.ndarray:
    """``n`` samples (n, d) of the posterior of Bernoulli logistic regression,
    ``y_t ~ Bernoulli(sigmoid(X_t . theta))``, prior ``N(0, B^-1)``, given ``X^T y`` (d,):
    Polya-Gamma data augmentation (Polson, Scott & Windle 2013), the Gibbs sampler of sbibm's
    ``BernoulliGLM._sample_reference_posterior``. One sweep: ``w_t ~ PG(1, X_t . theta)``
    (the ``polyagamma`` package), then ``theta ~ N(V X^T kappa, V)``, ``V = (X^T W X + B)^-1``,
    ``kappa = y - 1/2`` (so ``X^T kappa = X^T y - X^T 1 / 2``: only ``X^T y`` enters).

    sbibm runs one chain started at the true parameters, discards 25,000 warm-up sweeps and keeps
    every 25th sweep. Here ``chains`` chains run side by side (numpy, batched over chains),
    started from prior draws (the true parameters are not an input); each discards ``warmup``
    sweeps and keeps every ``thin``-th (sbibm's thinning), ``ceil(n / chains)`` per chain; the
    first ``n`` of the kept samples (ordered by sweep, then chain) are returned. The Gibbs
    update is written here (no library runs it); deterministic for ``seed``."""
    from polyagamma import random_polyagamma

    X = np.asarray(design, np.float64)
    B = np.asarray(prior_precision, np.float64)
    d = X.shape[1]
    b = np.asarray(xty, np.float64).reshape(d) - 0.5 * X.sum(0)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    theta = rng.standard_normal((chains, d)) @ np.linalg.cholesky(np.linalg.inv(B)).T
    per_chain = -(-int(n) // chains)
    out = np.empty((per_chain, chains, d))
    for i in range(warmup + per_chain * thin):
        w = random_polyagamma(1.0, theta @ X.T, random_state=rng)
        L = np.linalg.cholesky((X.T * w[:, None, :]) @ X + B)  # X^T W X + B per chain
        u = np.linalg.solve(L, np.broadcast_to(b, (chains, d))[..., None])
        theta = np.linalg.solve(np.swapaxes(L, 1, 2), u + rng.standard_normal((chains, d, 1)))[..., 0]
        k, r = divmod(i - warmup + 1, thin)
        if i >= warmup and r == 0:
            out[k - 1] = theta
    return out.reshape(-1, d)[:int(n)]


class BernoulliGLM(SBIProblem):
    """sbibm's bernoulli_glm (``raw=False``: x = X^T y, 10 values) and bernoulli_glm_raw
    (``raw=True``: the 100 spikes) (module docstring)."""

    N_BINS, N_PARAMS, STIMULUS_SEED = 100, 10, 42
    reference_version = "2: Polya-Gamma Gibbs"
    #: reference sampler (:func:`polya_gamma_gibbs`): chains, warm-up sweeps per chain, thinning (sbibm's)
    GIBBS_CHAINS, GIBBS_WARMUP, GIBBS_THIN = 100, 1000, 25

    def __init__(self, raw: bool = False):
        self.raw = bool(raw)
        self.name = "bernoulli_glm_raw" if raw else "bernoulli_glm"
        self.observation_file = "observation_raw.csv" if raw else "observation.csv"
        self.param_names = _names("parameter", self.N_PARAMS)
        self.x_shape = (self.N_BINS if raw else self.N_PARAMS,)
        stim = np.random.RandomState(self.STIMULUS_SEED).randn(self.N_BINS).astype(np.float32)
        X = np.zeros((self.N_BINS, self.N_PARAMS - 1), np.float32)
        for j in range(self.N_PARAMS - 1):
            X[j:, j] = stim[:self.N_BINS - j]
        self.stimulus = stim.astype(np.float64)
        self.design = np.concatenate([np.ones((self.N_BINS, 1)), X.astype(np.float64)], axis=1)
        m = self.N_PARAMS - 1
        D = np.eye(m) - np.eye(m, k=-1)
        F = D @ D + np.diag(np.sqrt(np.arange(m) / m))
        self.prior_precision = np.zeros((self.N_PARAMS, self.N_PARAMS))
        self.prior_precision[0, 0] = 0.5
        self.prior_precision[1:, 1:] = F.T @ F
        self._prior_chol = np.linalg.cholesky(np.linalg.inv(self.prior_precision))

    def sample_prior(self, n, rng):
        return rng.standard_normal((int(n), self.N_PARAMS)) @ self._prior_chol.T

    def torch_prior(self):
        return torch.distributions.MultivariateNormal(
            torch.zeros(self.N_PARAMS), precision_matrix=torch.as_tensor(self.prior_precision, dtype=torch.float32))

    def spikes(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Spike trains (n, 100) of 0/1: ``y_t = 1`` with probability ``sigmoid(X_t . theta)``."""
        from scipy.special import expit
        p = expit(np.asarray(theta, np.float64) @ self.design.T)
        return (rng.random(p.shape) < p).astype(np.float64)

    def summarise(self, y: np.ndarray) -> np.ndarray:
        """sbibm's summary (n, 10): spike count and spike-triggered sums, ``X^T y``."""
        return np.asarray(y, np.float64) @ self.design

    def simulate(self, theta, rng):
        y = self.spikes(theta, rng)
        return y if self.raw else self.summarise(y)

    def log_likelihood(self, theta, x):
        """Raw: ``sum_t y_t psi_t - log(1 + e^psi_t)``, ``psi = X theta``. Summary: the same
        through ``theta . X^T y``, without the theta-independent log number of spike trains
        with that summary (so a log-likelihood up to a constant in theta)."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        x = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
        design = torch.as_tensor(self.design)
        s = design.T @ x if self.raw else x
        return theta @ s - torch.nn.functional.softplus(theta @ design.T).sum(1)

    def reference_posterior(self, x, n, seed):
        """sbibm's Polya-Gamma Gibbs reference (:func:`polya_gamma_gibbs`: ``GIBBS_CHAINS``
        chains from the prior, ``GIBBS_WARMUP`` warm-up sweeps each, sbibm's thinning
        ``GIBBS_THIN``); raw spikes are summarised first."""
        x = np.asarray(x, np.float64).reshape(1, -1)
        xty = self.summarise(x)[0] if self.raw else x[0]
        return polya_gamma_gibbs(self.design, self.prior_precision, xty, n, seed, self.GIBBS_CHAINS,
                                 self.GIBBS_WARMUP, self.GIBBS_THIN)


register_problem("two_moons", lambda cfg: TwoMoons(), "sbibm two moons (2-d, bimodal, crescent posterior)")
register_problem("gaussian_linear", lambda cfg: GaussianLinear(), "sbibm Gaussian linear (10-d)")
register_problem("gaussian_linear_uniform", lambda cfg: GaussianLinearUniform(),
                 "sbibm Gaussian linear, uniform prior (10-d, truncated Gaussian posterior)")
register_problem("gaussian_mixture", lambda cfg: GaussianMixture(), "sbibm Gaussian mixture (2-d, two scales)")
register_problem("slcp", lambda cfg: SLCP(), "sbibm simple likelihood complex posterior (5-d, 4 modes)")
register_problem("slcp_distractors", lambda cfg: SLCPDistractors(),
                 "sbibm slcp with 92 distractor values (100-d data)")
register_problem("bernoulli_glm", lambda cfg: BernoulliGLM(), "sbibm Bernoulli GLM, sufficient summary (10-d)")
register_problem("bernoulli_glm_raw", lambda cfg: BernoulliGLM(raw=True), "sbibm Bernoulli GLM, 100 raw spikes")
