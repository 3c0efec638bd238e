"""Every call into the ``sbi`` package (written against sbi 0.27) lives in this module.

``sbi``'s API moves between releases (trainer classes renamed, posterior constructors
re-organised, diagnostics added); keeping all calls here means an upgrade touches one
file. The rest of cosmobench sees plain ``torch.nn.Module`` estimators, loss tensors,
posterior objects with ``sample`` and numpy diagnostics.

What comes from ``sbi`` (nothing here re-implements it):

* density estimators: :func:`sbi.neural_nets.posterior_nn` (NPE),
  :func:`~sbi.neural_nets.likelihood_nn` (NLE), :func:`~sbi.neural_nets.classifier_nn`
  (NRE), with sbi's own z-scoring of theta and x (``"independent"``) built in;
* losses: the estimator's ``loss`` (NPE: ``-log q(theta|x)``; NLE: ``-log q(x|theta)``)
  and NRE-B's 1-out-of-``num_atoms`` contrastive loss (``sbi.inference.NRE_B._loss``,
  called with our network as ``_neural_net``: sbi has no free function for it);
* posteriors: :class:`~sbi.inference.DirectPosterior` (NPE; samples outside the prior
  support are rejected), :class:`~sbi.inference.MCMCPosterior` on sbi's likelihood- and
  ratio-based potentials (NLE, NRE) and on a user potential (the true likelihood);
* diagnostics: :func:`sbi.diagnostics.run_sbc` + ``check_uniformity_frequentist``
  (KS p-value of the SBC ranks per parameter) and :func:`~sbi.diagnostics.run_tarp` +
  :func:`~sbi.diagnostics.check_tarp` (TARP expected coverage and its area to curve).

Training-time statistics: sbi's builders compute the z-scoring mean/std from a batch of
training data. A cosmobench model is rebuilt from its ``data_info`` (json) when a
checkpoint is loaded, so the builders get a two-row *statistics batch*
``mean +- std / sqrt(2)`` whose mean and (unbiased) std equal the train-split values.

The ``model`` settings of the sbi task's models are declared here (:class:`NPESettings`,
:class:`NLESettings`, :class:`NRESettings`, :class:`RejectionABCSettings`,
:class:`MCMCSettings`), from shared pieces: the estimator width, the flow, the summary CNN of
map problems (:class:`~cosmobench.nn.cnn.SmallCNN`'s settings plus ``n_summaries``) and the
MCMC sampler of the models that sample by MCMC (nle, nre, mcmc).
"""
from __future__ import annotations

import math
import types
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from cosmobench.errors import ConfigError, RunFailure
from cosmobench.nn.cnn import SmallCNNConfig
from cosmobench.settings import setting

# library-internal deprecation noise of sbi's dependencies (nflows), not actionable by users
warnings.filterwarnings("ignore", message=r".*torch\.triangular_solve is deprecated.*")
warnings.filterwarnings("ignore", message=r"Capping max_sampling_batch_size.*")

METHODS = ("npe", "nle", "nre")
NPE_ESTIMATORS = ["nsf", "maf", "mdn", "made", "maf_rqs"]
NRE_CLASSIFIERS = ["resnet", "mlp", "linear"]
MCMC_METHODS = ["slice_np_vectorized", "slice_np"]


# --- settings ----------------------------------------------------------------------------
@dataclass
class EstimatorWidth:
    """Width of an sbi estimator's layers."""

    hidden_features: int = setting(50, "positive int", help="hidden units per layer of the sbi estimator")


@dataclass
class FlowSettings(EstimatorWidth):
    """sbi conditional density estimator (NPE: of theta given x; NLE: of x given theta)."""

    density_estimator: str = setting("maf", NPE_ESTIMATORS, help="sbi density estimator")
    num_transforms: int = setting(5, "positive int", help="flow transforms (maf, nsf, maf_rqs)")
    num_bins: int = setting(10, "positive int", help="spline bins per transform (nsf, maf_rqs)")
    num_components: int = setting(10, "positive int", help="Gaussian components (mdn)")

    # cosmobench tune (a plain class attribute, not annotated: NPESettings also inherits SmallCNNConfig's)
    SEARCH_SPACE = {"optim.lr": ["log", 1e-4, 3e-3], "model.num_transforms": ["int", 2, 8],
                    "model.hidden_features": ["choice", [32, 50, 100]]}


@dataclass
class SummaryCNN(SmallCNNConfig):
    """Summary network of map problems, learned with the estimator: a ``cnn``
    (:class:`~cosmobench.nn.cnn.SmallCNN`) with ``n_summaries`` outputs."""

    n_summaries: int = setting(8, "positive int", help="summary statistics the CNN learns from a map")


@dataclass
class MCMCSettings:
    """sbi's slice sampler drawing posterior samples (nle, nre; the mcmc baseline on the true
    likelihood). Chains start from prior draws resampled by their potential."""

    mcmc_method: str = setting("slice_np_vectorized", MCMC_METHODS, help="sbi MCMC sampler")
    mcmc_num_chains: int = setting(20, "positive int", help="parallel chains")
    mcmc_warmup_steps: int = setting(100, "non-negative int", unit="steps", help="discarded steps per chain")
    mcmc_thin: int = setting(2, "positive int", help="keep every mcmc_thin-th step")


@dataclass
class NPESettings(SummaryCNN, FlowSettings):
    """``npe``: a flow q(theta | x), sampled directly."""

    SEARCH_SPACE = FlowSettings.SEARCH_SPACE  # the flow's (the summary CNN's only matters for maps); cosmobench tune


@dataclass
class NLESettings(MCMCSettings, FlowSettings):
    """``nle``: a flow q(x | theta), sampled by MCMC."""


@dataclass
class NRESettings(MCMCSettings, SummaryCNN, EstimatorWidth):
    """``nre``: NRE-B classifier of (theta, x) pairs, sampled by MCMC."""

    classifier: str = setting("resnet", NRE_CLASSIFIERS, help="sbi classifier")
    num_atoms: int = setting(10, "int >= 2", help="NRE-B contrastive pairs per joint pair")


@dataclass
class RejectionABCSettings:
    """``rejection_abc``: the accepted fraction of the training simulations."""

    quantile: float = setting(0.01, "0 < float <= 1", help="fraction of simulations closest to the observation kept")

    SEARCH_SPACE: ClassVar[dict] = {"model.quantile": ["log", 0.002, 0.1]}  # cosmobench tune


def stat_batch(mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Two rows whose column mean and unbiased std equal ``mean`` and ``std``."""
    m = torch.as_tensor(np.asarray(mean, np.float64), dtype=torch.float32)
    s = torch.as_tensor(np.asarray(std, np.float64), dtype=torch.float32)
    return torch.stack([m - s / math.sqrt(2.0), m + s / math.sqrt(2.0)])


def box_uniform(low: Sequence[float], high: Sequence[float]):
    """sbi's ``BoxUniform`` prior (independent uniforms, event dim 1)."""
    from sbi.utils import BoxUniform
    return BoxUniform(low=torch.as_tensor(low, dtype=torch.float32), high=torch.as_tensor(high, dtype=torch.float32))


# --- estimators --------------------------------------------------------------------------
class ScalarStandardize(nn.Module):
    """``(x - mean) / std`` with scalar train-split statistics: the input scaling of a map
    summary network (sbi's own z-scoring of x is off for maps)."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x):
        return (x - self.mean) / self.std


def build_estimator(method: str, cfg: dict[str, Any], theta_stats: tuple, x_stats: tuple | None,
                    embedding_net: nn.Module | None = None, x_example: torch.Tensor | None = None) -> nn.Module:
    """The sbi network of ``method`` (``npe`` | ``nle`` | ``nre``).

    Args:
        cfg: the ``model`` config node (:class:`NPESettings`, :class:`NLESettings` or
            :class:`NRESettings`).
        theta_stats: ``(mean, std)`` of theta on the train split.
        x_stats: ``(mean, std)`` of the (flat) data on the train split, z-scored by sbi;
            ``None`` when ``embedding_net`` does its own input scaling (maps).
        embedding_net: summary network applied to x (NPE, NRE only).
        x_example: one-row batch of x of the right shape when ``x_stats`` is None.
    """
    from sbi.neural_nets import classifier_nn, likelihood_nn, posterior_nn

    batch_theta = stat_batch(*theta_stats)
    if x_stats is not None:
        batch_x, z_x = stat_batch(*x_stats), "independent"
    else:
        if x_example is None:
            raise ValueError("build_estimator needs x_stats or x_example")
        batch_x, z_x = torch.cat([x_example, x_example]).float(), "none"
    hidden = int(cfg["hidden_features"])
    emb = embedding_net if embedding_net is not None else nn.Identity()
    if method == "npe":
        build = posterior_nn(model=str(cfg["density_estimator"]), z_score_theta="independent", z_score_x=z_x,
                             hidden_features=hidden, num_transforms=int(cfg["num_transforms"]),
                             num_bins=int(cfg["num_bins"]), num_components=int(cfg["num_components"]), embedding_net=emb)
    elif method == "nle":
        if embedding_net is not None:
            raise ConfigError("nle models the density of x itself and takes no embedding net: use npe or nre")
        build = likelihood_nn(model=str(cfg["density_estimator"]), z_score_theta="independent", z_score_x=z_x,
                              hidden_features=hidden, num_transforms=int(cfg["num_transforms"]),
                              num_bins=int(cfg["num_bins"]), num_components=int(cfg["num_components"]))
    elif method == "nre":
        build = classifier_nn(model=str(cfg["classifier"]), z_score_theta="independent", z_score_x=z_x,
                              hidden_features=hidden, embedding_net_x=emb)
    else:
        raise ConfigError(f"unknown sbi method {method!r}; choose one of {', '.join(METHODS)}")
    return build(batch_theta, batch_x)


class _NREBLossHost:
    """Minimal stand-in for ``self`` when calling sbi's ``NRE_B._loss`` on our network.

    Constructing a real ``NRE_B`` trainer would open a TensorBoard writer in ``./sbi-logs``;
    the loss only needs ``_neural_net`` and ``_classifier_logits``."""

    def __init__(self, net: nn.Module):
        from sbi.inference import NRE_B
        self._neural_net = net
        self._classifier_logits = types.MethodType(NRE_B._classifier_logits, self)
        self._loss = types.MethodType(NRE_B._loss, self)


def loss(method: str, net: nn.Module, theta: torch.Tensor, x: torch.Tensor,
         num_atoms: int | None = None) -> torch.Tensor:
    """Mean training loss of a batch: NPE ``-log q(theta|x)``, NLE ``-log q(x|theta)``,
    NRE-B the cross-entropy of picking the joint pair among ``num_atoms`` (>= 2; NRE only) pairs."""
    theta = theta.float()
    x = x.float()
    if method == "npe":
        return net.loss(theta, condition=x).mean()
    if method == "nle":
        return net.loss(x, condition=theta).mean()
    if method == "nre":
        atoms = int(min(num_atoms, len(theta)))
        if atoms < 2:  # a one-simulation remainder batch has no contrasting pair: it contributes nothing
            return sum(p.sum() for p in net.parameters()) * 0.0
        return _NREBLossHost(net)._loss(theta, x, atoms)
    raise ConfigError(f"unknown sbi method {method!r}")


# --- posteriors --------------------------------------------------------------------------
def build_posterior(method: str, net: nn.Module, prior, mcmc: MCMCSettings | None = None):
    """sbi posterior object for a trained network: DirectPosterior (NPE) or an
    MCMCPosterior on the likelihood/ratio potential (NLE/NRE; ``mcmc`` required), sampled
    in the unconstrained space of the prior (``mcmc_transform``)."""
    from sbi.inference import DirectPosterior, MCMCPosterior
    from sbi.inference.potentials import likelihood_estimator_based_potential, ratio_estimator_based_potential

    net.eval()
    if method == "npe":
        return DirectPosterior(posterior_estimator=net, prior=prior)
    if method == "nle":
        potential, transform = likelihood_estimator_based_potential(net, prior, x_o=None)
    elif method == "nre":
        potential, transform = ratio_estimator_based_potential(net, prior, x_o=None)
    else:
        raise ConfigError(f"unknown sbi method {method!r}")
    return MCMCPosterior(potential, proposal=prior, theta_transform=transform, **mcmc_kwargs(mcmc))


def mcmc_kwargs(mcmc: MCMCSettings) -> dict:
    """sbi MCMCPosterior arguments of :class:`MCMCSettings`. Chains start from prior draws
    resampled by their potential (1000 candidates per chain; sbibm's "sir"-like
    initialisation)."""
    return dict(method=str(mcmc.mcmc_method), num_chains=int(mcmc.mcmc_num_chains), thin=int(mcmc.mcmc_thin),
                warmup_steps=int(mcmc.mcmc_warmup_steps), init_strategy="resample",
                init_strategy_parameters={"num_candidate_samples": 1000})


def potential_posterior(log_prob_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], prior,
                        mcmc: MCMCSettings):
    """MCMCPosterior on a user potential ``log_prob_fn(theta (N, d), x_o (1, D)) -> (N,)``,
    the unnormalised log posterior (e.g. true log-likelihood + log prior)."""
    from sbi.inference import MCMCPosterior
    from sbi.utils import mcmc_transform

    def potential(theta, x_o):
        return log_prob_fn(theta, x_o)

    return MCMCPosterior(potential, proposal=prior, theta_transform=mcmc_transform(prior), **mcmc_kwargs(mcmc))


class SamplingLimit(RunFailure):
    """Drawing posterior samples by rejection hit its limit (``eval.max_sampling_time`` or an
    acceptance floor): almost every draw falls outside the prior, typically for an observation
    far from anything the prior simulates. A run ends failed (exit 1); ``predict`` turns it
    into an input error (exit 2) naming the observation."""


def sample(posterior, x: torch.Tensor, n: int, max_time: float | None = None) -> torch.Tensor:
    """``n`` posterior samples for every observation in ``x`` (B, ...): (n, B, d). A direct
    (NPE) posterior rejects draws outside the prior for at most ``max_time`` seconds, then
    raises :class:`SamplingLimit` (sbi would otherwise loop at "0.000 % accepted")."""
    from sbi.inference import DirectPosterior
    x = x.float()
    kw = {"max_sampling_time": max_time} if max_time is not None and isinstance(posterior, DirectPosterior) else {}
    try:
        if len(x) == 1:
            return posterior.sample((n,), x=x, show_progress_bars=False, **kw)[:, None, :]
        if x.dim() > 2 and not isinstance(posterior, DirectPosterior):
            # sbi 0.27's batched MCMC initialisation passes each map without its batch axis to
            # the potential, which then reads the channel axis as the batch (a shape error in
            # NRE): sample map observations one at a time
            return torch.cat([posterior.sample((n,), x=x[b:b + 1], show_progress_bars=False)[:, None, :]
                              for b in range(len(x))], dim=1)
        return posterior.sample_batched((n,), x=x, show_progress_bars=False, **kw)
    except RuntimeError as exc:
        if "max_sampling_time" not in str(exc):
            raise
        raise SamplingLimit(f"npe: fewer than {n} of the flow's posterior draws fell inside the prior within "
                            f"eval.max_sampling_time={max_time:g} s (almost all draws are rejected); the "
                            f"observation is probably far outside what the prior can simulate") from None


# --- diagnostics -------------------------------------------------------------------------
class _SamplesPosterior:
    """Precomputed posterior samples (n, B, d) seen through sbi's posterior interface, so
    that every model (including baselines without an sbi posterior) goes through the same
    public ``run_sbc`` / ``run_tarp``."""

    def __init__(self, samples: torch.Tensor):
        self.samples = samples

    def sample_batched(self, sample_shape, x, show_progress_bars=False, **_):
        if tuple(sample_shape) != (self.samples.shape[0],) or len(x) != self.samples.shape[1]:
            raise ValueError("precomputed samples do not match the requested shape")
        return self.samples


def sbc(thetas: np.ndarray, xs: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SBC (Talts+2018) with ``samples`` (n, N, d) of the N posteriors: returns the ranks
    (N, d) and the KS p-values of their uniformity per parameter (sbi's frequentist check)."""
    from sbi.diagnostics import run_sbc
    from sbi.diagnostics.sbc import check_uniformity_frequentist

    s = torch.as_tensor(samples, dtype=torch.float32)
    ranks, _ = run_sbc(torch.as_tensor(thetas, dtype=torch.float32), torch.as_tensor(xs, dtype=torch.float32).reshape(len(thetas), -1),
                       _SamplesPosterior(s), num_posterior_samples=s.shape[0], show_progress_bar=False)
    pvals = check_uniformity_frequentist(ranks, s.shape[0])
    return ranks.numpy(), pvals.numpy()


def tarp(thetas: np.ndarray, samples: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """TARP (Lemos+2023) expected coverage ``ecp`` over credibility ``alpha`` and sbi's
    area-to-curve ``atc`` (> 0: over-dispersed, < 0: over-confident; 0 ideal). Parameters
    are rescaled to [0, 1] by their range (sbi's ``z_score_theta``); reference points are
    uniform in that box, drawn with ``seed``."""
    from sbi.diagnostics import check_tarp, run_tarp

    th = torch.as_tensor(thetas, dtype=torch.float32)
    s = torch.as_tensor(samples, dtype=torch.float32)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        ecp, alpha = run_tarp(th, torch.zeros(len(th), 1), _SamplesPosterior(s), num_posterior_samples=s.shape[0],
                              show_progress_bar=False, num_bins=max(2, min(len(th) // 10, 30)))
    finally:
        torch.random.set_rng_state(state)
    atc, _ = check_tarp(ecp, alpha)
    return ecp.numpy(), alpha.numpy(), float(atc)
