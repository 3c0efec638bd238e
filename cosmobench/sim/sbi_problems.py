"""Inference problems for the ``sbi`` task: prior, simulator, (optional) true likelihood and
reference posterior, plus a registry through which users add their own.

A problem is an :class:`SBIProblem`. Built in (``data.problem=...``):

``cl_gaussian`` (default) — :class:`ClGaussian`
    Parameters ``(Omega_m, sigma8)``, box prior ``Omega_m ~ U(0.15, 0.45)``,
    ``sigma8 ~ U(0.6, 1.0)`` (other cosmological parameters fixed at
    :data:`cosmobench.sim.cosmology.FIDUCIAL`). Data: the convergence band powers of a
    survey of ``data.area_deg2`` square degrees in ``data.n_ell_bins`` log-spaced bins over
    ``data.ell_min <= ell < data.ell_max`` (integer multipoles),
    ``C_b = sum_ell (2 ell + 1) C_ell / sum_ell (2 ell + 1)``, plus the shape-noise power
    ``N = sigma_e^2 / n_gal`` (per steradian; ``data.sigma_e`` per component,
    ``data.n_gal`` in arcmin^-2). ``C_ell`` is pyccl's (Eisenstein-Hu + halofit) through the
    shared :class:`cosmobench.sim.cosmology.ClGrid` interpolation on the LSST-SRD-like n(z).
    Noise: Gaussian with the Knox cosmic-variance + shape-noise covariance, diagonal,
    ``Var(C_b) = 2 (C_b + N)^2 / (f_sky sum_ell (2 ell + 1))``, **evaluated at the fiducial
    cosmology** (Omega_m = 0.31, sigma8 = 0.81), as survey analyses do. So the likelihood is
    exactly ``N(d; C_b(theta) + N, Sigma_fid)`` and the reference posterior is MCMC on it.
    The data vector is stored in units of 1e-9 (``data_k = 1e9 * (C_b + N + noise)``).

``lognormal_map`` — :class:`LognormalMap`
    Same parameters and prior. Data: a ``data.map_size``^2 flat convergence map with
    ``data.pixel_arcmin`` pixels: a shifted lognormal field (shift = empty-beam convergence,
    :func:`~cosmobench.sim.cosmology.lognormal_shift`, tabulated in Omega_m) with the pyccl
    power spectrum, plus white shape noise ``sigma_e / sqrt(n_gal A_pix)`` per pixel (the
    mass-mapping simulator's fields; :mod:`cosmobench.sim.cosmology`). The likelihood is
    intractable: no reference posterior; the metrics are the calibration ones (SBC, TARP).
    Its summary for ``rejection_abc`` is the log binned power spectrum of the map.

sbibm's tasks that need no Julia — ``two_moons``, ``gaussian_linear``,
``gaussian_linear_uniform``, ``gaussian_mixture``, ``slcp``, ``slcp_distractors``,
``bernoulli_glm``, ``bernoulli_glm_raw`` — as defined by sbibm (Lueckmann et al. 2021), with its
reference posteriors where they are closed-form (MCMC on the likelihood otherwise):
:mod:`cosmobench.sim.sbibm_problems`, registered here.

Conventions: ``simulate(theta, rng)`` takes numpy ``theta`` (n, d) and a
``numpy.random.Generator`` and returns ``x`` (n, *x_shape) float64; ``log_likelihood``
takes torch ``theta`` (n, d) and one observation ``x`` (1, *x_shape) and returns (n,).
Column names follow sbibm: ``data_1 ... data_D`` for flat data, and the problem's
``param_names`` for parameters (sbibm's problems: ``parameter_1 ...``).

Registering your own problem (Python API)::

    from cosmobench.sim.sbi_problems import BoxProblem, register_problem

    def my_simulator(theta, rng):                    # numpy (n, 2) -> (n, 3)
        return theta @ A.T + 0.1 * rng.standard_normal((len(theta), 3))

    register_problem("my_problem", lambda cfg: BoxProblem(
        "my_problem", ["a", "b"], low=[0, 0], high=[1, 1], simulator=my_simulator))
    cosmobench.train("sbi", overrides=["data.problem=my_problem"])

A factory receives the problem's part of the resolved ``data`` config (dict: ``problem``,
``cache_dir`` and the :class:`CosmoSurvey` keys). Pass ``log_likelihood=`` to get an
MCMC reference posterior and the ``mcmc`` baseline; or subclass :class:`SBIProblem`. To use
the problem from the command line, register it from a ``cosmobench.plugins`` entry point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from cosmobench.errors import ConfigError
from cosmobench.sbi_adapter import MCMCSettings
from cosmobench.settings import setting


@dataclass
class CosmoSurvey:
    """Survey of the cosmology problems (``data`` keys; module docstring): the band powers of
    ``cl_gaussian`` and the maps of ``lognormal_map``. The sbibm problems ignore them."""

    ell_min: int = setting(50, "int >= 2", help="cl_gaussian: lowest multipole of the band powers")
    ell_max: int = setting(3000, "int >= 3", help="cl_gaussian: band powers cover ell_min <= ell < ell_max")
    n_ell_bins: int = setting(10, "positive int", help="cl_gaussian: log-spaced band-power bins")
    area_deg2: float = setting(1000.0, "0 < float <= 41253", unit="deg^2",
                               help="cl_gaussian: survey area (f_sky of the Knox covariance)")
    sigma_e: float = setting(0.26, "non-negative float", help="shape noise: ellipticity dispersion per component")
    n_gal: float = setting(10.0, "positive float", unit="arcmin^-2", help="shape noise: source galaxy density")
    map_size: int = setting(32, "int >= 8", unit="px", help="lognormal_map: side of the square map")
    pixel_arcmin: float = setting(4.0, "positive float", unit="arcmin", help="lognormal_map: pixel size")


class SBIProblem:
    """One inference problem. Subclasses set ``name``, ``param_names``, ``x_shape`` and
    implement :meth:`sample_prior`, :meth:`simulate`, :meth:`torch_prior` and optionally
    :meth:`log_likelihood` / :meth:`reference_posterior` / :meth:`summary`."""

    name: str = ""
    #: version of the problem's reference-posterior sampler, part of the reference cache key:
    #: raised when the sampler changes, so that references cached by the old one are not reused
    reference_version: str = "1"
    param_names: list[str] = []
    x_shape: tuple[int, ...] = ()
    #: the data are images (embedding CNN) rather than a flat vector
    is_map: bool = False
    description: str = ""
    #: the observation's file name in an sbibm ``num_observation_<k>/`` directory (data.reference_dir)
    observation_file: str = "observation.csv"

    @property
    def dim_theta(self) -> int:
        return len(self.param_names)

    @property
    def dim_x(self) -> int:
        return int(np.prod(self.x_shape))

    def data_names(self) -> list[str]:
        return [f"data_{i + 1}" for i in range(self.dim_x)]

    def sample_prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def torch_prior(self) -> torch.distributions.Distribution:
        """The prior as a torch distribution (event shape (d,)), used by sbi's posteriors."""
        raise NotImplementedError

    def simulate(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """``log p(x | theta)`` for theta (n, d) and one x (1, *x_shape); ``None`` if intractable."""
        return None

    @property
    def has_likelihood(self) -> bool:
        return type(self).log_likelihood is not SBIProblem.log_likelihood

    def log_prior(self, theta: torch.Tensor) -> torch.Tensor:
        """``log p(theta)``, ``-inf`` outside the prior's support."""
        prior = self.torch_prior()
        theta = torch.as_tensor(theta, dtype=torch.float32)
        inside = prior.support.check(theta)
        out = torch.full(theta.shape[:1], -float("inf"))
        if inside.any():
            out[inside] = prior.log_prob(theta[inside])
        return out

    def reference_posterior(self, x: np.ndarray, n: int, seed: int) -> np.ndarray | None:
        """``n`` reference posterior samples for one observation ``x`` (*x_shape), or None.
        Default: MCMC (sbi's slice sampler, :data:`REFERENCE_MCMC`) on the true likelihood,
        if there is one."""
        if not self.has_likelihood:
            return None
        return mcmc_posterior_samples(self, x, n, seed, REFERENCE_MCMC)

    def summary(self, x: np.ndarray) -> np.ndarray:
        """Summary statistics (n, k) used by ``rejection_abc`` (default: the flat data)."""
        return np.asarray(x, np.float64).reshape(len(x), -1)


#: sbi slice-sampler settings of MCMC reference posteriors: part of the benchmark's definition,
#: so spelled out in full (not the models' MCMC defaults)
REFERENCE_MCMC = MCMCSettings(mcmc_method="slice_np_vectorized", mcmc_num_chains=20, mcmc_warmup_steps=200,
                              mcmc_thin=2)


def mcmc_posterior_samples(problem: SBIProblem, x: np.ndarray, n: int, seed: int, mcmc: MCMCSettings) -> np.ndarray:
    """``n`` samples of ``p(theta | x) ∝ p(x | theta) p(theta)`` by sbi's slice sampler
    (``mcmc``: chains initialised from the prior by importance resampling, warm-up steps
    discarded, thinning), seeded by ``seed``."""
    from cosmobench import sbi_adapter

    x_o = torch.as_tensor(np.asarray(x, np.float64), dtype=torch.float32).reshape((1,) + tuple(problem.x_shape))

    def log_post(theta, x_o):
        theta = torch.as_tensor(theta, dtype=torch.float32)
        lp = problem.log_prior(theta)
        ok = torch.isfinite(lp)
        out = torch.full_like(lp, -float("inf"))
        if ok.any():
            out[ok] = problem.log_likelihood(theta[ok], x_o).float() + lp[ok]
        return out

    state = torch.random.get_rng_state()
    np_state = np.random.get_state()
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % (2 ** 32))
    try:
        post = sbi_adapter.potential_posterior(log_post, problem.torch_prior(), mcmc)
        return sbi_adapter.sample(post, x_o, int(n))[:, 0, :].numpy().astype(np.float64)
    finally:
        torch.random.set_rng_state(state)
        np.random.set_state(np_state)


class BoxProblem(SBIProblem):
    """A problem with a box-uniform prior ``low <= theta <= high`` and a user simulator
    ``simulator(theta (n, d) numpy, rng) -> x (n, D)``; optional
    ``log_likelihood(theta torch (n, d), x torch (1, D)) -> (n,)``."""

    def __init__(self, name: str, param_names: Sequence[str], low: Sequence[float], high: Sequence[float],
                 simulator: Callable[[np.ndarray, np.random.Generator], np.ndarray], x_dim: int | None = None,
                 log_likelihood: Callable | None = None):
        self.name = name
        self.param_names = list(param_names)
        self.low = np.asarray(low, np.float64)
        self.high = np.asarray(high, np.float64)
        if self.low.shape != (len(self.param_names),) or self.high.shape != self.low.shape or np.any(self.high <= self.low):
            raise ConfigError(f"problem {name!r}: low/high must give one interval low < high per parameter")
        self._simulator = simulator
        self._loglik = log_likelihood
        if x_dim is None:
            x_dim = int(np.asarray(simulator(self.sample_prior(2, np.random.default_rng(0)),
                                             np.random.default_rng(1))).reshape(2, -1).shape[1])
        self.x_shape = (int(x_dim),)

    def sample_prior(self, n, rng):
        return rng.uniform(self.low, self.high, size=(int(n), len(self.low)))

    def inside_prior(self, draw: Callable[[int], np.ndarray], n: int) -> np.ndarray:
        """``n`` draws of ``draw(m) -> (m, d)`` that lie inside the box (rejection sampling)."""
        out, have = [], 0
        while have < n:
            sample = draw(max(2 * (n - have), 1000))
            inside = np.all((sample >= self.low) & (sample <= self.high), axis=1)
            out.append(sample[inside])
            have += int(inside.sum())
        return np.concatenate(out)[:n]

    def torch_prior(self):
        low = torch.as_tensor(self.low, dtype=torch.float32)
        high = torch.as_tensor(self.high, dtype=torch.float32)
        return torch.distributions.Independent(torch.distributions.Uniform(low, high), 1)

    def simulate(self, theta, rng):
        x = np.asarray(self._simulator(np.asarray(theta, np.float64), rng), np.float64)
        return x.reshape((len(theta),) + self.x_shape)

    @property
    def has_likelihood(self) -> bool:
        return self._loglik is not None

    def log_likelihood(self, theta, x):
        return None if self._loglik is None else self._loglik(theta, x)


# --- cosmology problems ----------------------------------------------------------------------
COSMO_PARAMS = ["Omega_m", "sigma8"]
COSMO_LOW, COSMO_HIGH = [0.15, 0.6], [0.45, 1.0]
DATA_UNIT = 1e-9  #: cl_gaussian data are band powers in units of 1e-9


def _grid(cfg: dict):
    from cosmobench.sim.cosmology import ClGrid
    return ClGrid(cache_dir=cfg["cache_dir"])


class ClGaussian(BoxProblem):
    """Binned convergence power spectrum with a Gaussian likelihood (module docstring)."""

    def __init__(self, cfg: dict):
        from cosmobench.sim.cosmology import FIDUCIAL, shape_noise_cl

        lmin, lmax, nb = int(cfg["ell_min"]), int(cfg["ell_max"]), int(cfg["n_ell_bins"])
        area, sigma_e, n_gal = float(cfg["area_deg2"]), float(cfg["sigma_e"]), float(cfg["n_gal"])
        if not lmin < lmax or nb > lmax - lmin:
            raise ConfigError(f"cl_gaussian needs data.ell_min < data.ell_max and data.n_ell_bins <= "
                              f"ell_max - ell_min; got {lmin}, {lmax}, {nb}")
        self.ell = np.arange(lmin, lmax)
        edges = np.unique(np.round(np.geomspace(lmin, lmax, nb + 1)).astype(int))
        if len(edges) != nb + 1:
            raise ConfigError(f"data.n_ell_bins={nb} is too many for ell in [{lmin}, {lmax}): bins would be empty")
        self.edges = edges
        which = np.digitize(self.ell, edges) - 1
        w = 2 * self.ell + 1.0
        self.weights = np.zeros((nb, len(self.ell)))
        self.weights[which, np.arange(len(self.ell))] = w
        self.n_modes_full = self.weights.sum(1)                       # sum (2 ell + 1) per bin
        self.weights /= self.n_modes_full[:, None]
        self.ell_eff = self.weights @ self.ell
        self.f_sky = area / (4 * np.pi * (180 / np.pi) ** 2)
        self.noise = shape_noise_cl(sigma_e, n_gal)
        self.grid = _grid(cfg)
        fid = self.band_powers(np.array([[FIDUCIAL["Omega_m"], FIDUCIAL["sigma8"]]]))[0]
        self.sigma = np.sqrt(2.0 * (fid + self.noise) ** 2 / (self.f_sky * self.n_modes_full))
        super().__init__("cl_gaussian", COSMO_PARAMS, COSMO_LOW, COSMO_HIGH, simulator=self._simulate, x_dim=nb)

    def _band_interp(self):
        """Cubic interpolator of log C_b on the ClGrid nodes in (Omega_m, ln sigma8): the
        binning is linear, so binning each node's C_ell and interpolating the band powers
        costs one small spline per call instead of one C_ell table per parameter point."""
        if getattr(self, "_bp_interp", None) is None:
            from scipy.interpolate import RegularGridInterpolator

            from cosmobench.sim.cosmology import interp_loglog
            g = self.grid
            nodes = np.stack([[np.log(self.weights @ interp_loglog(self.ell, g.log_table[i, j]))
                               for j in range(len(g.sigma8))] for i in range(len(g.omega_m))])
            self._bp_interp = RegularGridInterpolator((g.omega_m, np.log(g.sigma8)), nodes, method="cubic",
                                                      bounds_error=True)
        return self._bp_interp

    def band_powers(self, theta: np.ndarray) -> np.ndarray:
        """Noise-free band powers C_b(theta) (n, n_bins), dimensionless."""
        theta = np.atleast_2d(np.asarray(theta, np.float64))
        if np.any(theta[:, 1] <= 0):
            raise ValueError("sigma8 must be positive")
        return np.exp(self._band_interp()(np.stack([theta[:, 0], np.log(theta[:, 1])], axis=1)))

    def mean(self, theta: np.ndarray) -> np.ndarray:
        """Expected data vector (band powers + shape noise) in units of :data:`DATA_UNIT`."""
        return (self.band_powers(theta) + self.noise) / DATA_UNIT

    def _simulate(self, theta, rng):
        mu = self.mean(theta)
        return mu + rng.standard_normal(mu.shape) * (self.sigma / DATA_UNIT)

    @property
    def has_likelihood(self) -> bool:
        return True

    def log_likelihood(self, theta, x):
        """``sum_b log N(x_b; mu_b(theta), sigma_b^2)`` in data units (1e-9)."""
        th = np.asarray(torch.as_tensor(theta).detach().cpu().numpy(), np.float64)
        mu = torch.as_tensor(self.mean(th))
        x = torch.as_tensor(x, dtype=torch.float64).reshape(1, -1)
        sig = torch.as_tensor(self.sigma / DATA_UNIT)
        return (-0.5 * ((x - mu) / sig) ** 2 - torch.log(sig) - 0.5 * math.log(2 * math.pi)).sum(1)

    def summary(self, x):
        return np.asarray(x, np.float64).reshape(len(x), -1)


class LognormalMap(BoxProblem):
    """Lognormal convergence maps with shape noise (module docstring)."""

    is_map = True

    def __init__(self, cfg: dict):
        from cosmobench.sim import cosmology as cc

        self.size, self.pixel = int(cfg["map_size"]), float(cfg["pixel_arcmin"])
        self.noise_sigma = cc.shape_noise_sigma(float(cfg["sigma_e"]), float(cfg["n_gal"]), self.pixel)
        self.grid = _grid(cfg)
        om = np.linspace(COSMO_LOW[0], COSMO_HIGH[0], 13)             # shift depends on Omega_m only
        self._shift_om, self._shift = om, np.array([cc.lognormal_shift(o) for o in om])
        self.ell_bins = cc.default_ell_bins((self.size, self.size), self.pixel, n_bins=8)
        super().__init__("lognormal_map", COSMO_PARAMS, COSMO_LOW, COSMO_HIGH, simulator=self._simulate,
                         x_dim=self.size * self.size)
        self.x_shape = (1, self.size, self.size)

    def data_names(self) -> list[str]:
        return [f"pixel_{i}" for i in range(self.dim_x)]

    def shift(self, omega_m: float) -> float:
        return float(np.interp(omega_m, self._shift_om, self._shift))

    def _simulate(self, theta, rng):
        from cosmobench.sim import cosmology as cc

        out = np.empty((len(theta), 1, self.size, self.size))
        for i, (om, s8) in enumerate(np.asarray(theta, np.float64)):
            log_table = self.grid.log_cl_table(om, s8)

            def cl(ell, lt=log_table):
                return cc.interp_loglog(ell, lt)
            kappa = cc.lognormal_field(cl, (self.size, self.size), self.pixel, self.shift(om), rng)
            out[i, 0] = kappa + self.noise_sigma * rng.standard_normal(kappa.shape)
        return out

    def summary(self, x):
        from cosmobench.sim.cosmology import flat_power_spectrum
        maps = np.asarray(x, np.float64).reshape(len(x), self.size, self.size)
        _, cl, _ = flat_power_spectrum(maps, self.pixel, self.ell_bins)
        return np.log(np.clip(cl, 1e-30, None))


# --- registry ----------------------------------------------------------------------------------
_PROBLEMS: dict[str, tuple[Callable[[dict], SBIProblem], str]] = {}


def register_problem(name: str, factory: Callable[[dict], SBIProblem], description: str = "",
                     replace: bool = False) -> None:
    """Make ``data.problem=name`` available. ``factory(data_cfg: dict) -> SBIProblem``."""
    if name in _PROBLEMS and not replace:
        raise ValueError(f"sbi problem {name!r} is already registered")
    _PROBLEMS[name] = (factory, description)


def list_problems() -> dict[str, str]:
    return {k: d for k, (_, d) in _PROBLEMS.items()}


def get_problem(name: str, cfg: dict[str, Any] | None = None) -> SBIProblem:
    """Build problem ``name`` from the ``data`` config."""
    if name not in _PROBLEMS:
        import difflib
        close = difflib.get_close_matches(str(name), list(_PROBLEMS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"data.problem={name!r} is not known (choose one of {', '.join(_PROBLEMS)}){hint}")
    problem = _PROBLEMS[name][0](dict(cfg or {}))
    if not isinstance(problem, SBIProblem):
        raise ConfigError(f"sbi problem {name!r}: its factory returned {type(problem).__name__}, not an SBIProblem")
    return problem


register_problem("cl_gaussian", ClGaussian, "binned convergence C_ell with a Gaussian likelihood (Omega_m, sigma8)")
register_problem("lognormal_map", LognormalMap, "lognormal convergence maps with shape noise (Omega_m, sigma8)")
from cosmobench.sim import sbibm_problems  # noqa: E402,F401  (registers sbibm's tasks)
