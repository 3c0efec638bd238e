"""Simulation-based inference: neural posterior / likelihood / ratio estimation (``sbi``)
against rejection ABC and MCMC on the true likelihood, on the problems of
:mod:`cosmobench.sim.sbi_problems`.

Models (``-m``):

* ``npe`` (default), ``nle``, ``nre``: ``sbi``'s density estimators and losses
  (:mod:`cosmobench.sbi_adapter`) trained by **our** Lightning loop (Adam(W), batches of
  ``data.batch_size``, validation loss for checkpointing/early stopping, DDP, resume), so
  nothing goes through ``sbi``'s own trainer. NPE: a flow q(theta | x) (``model.density_estimator``),
  sampled directly (sbi's ``DirectPosterior``, draws outside the prior rejected). NLE: a flow
  q(x | theta), NRE: NRE-B (contrastive, ``model.num_atoms``) classifier; both sampled by sbi's
  slice-sampling MCMC (``model.mcmc_*``). On map problems NPE and NRE learn a CNN summary
  (the ``cnn`` network, :class:`cosmobench.nn.cnn.SmallCNN`, with ``model.n_summaries``
  outputs) jointly with the estimator; NLE, which models the density of x itself, is refused
  there. Settings: :mod:`cosmobench.sbi_adapter`; the choices per model in
  ``experiments/sbi/<model>.yaml``.
* ``rejection_abc`` (:class:`RejectionABC`): the same simulation budget (the train split);
  keeps the ``model.quantile`` fraction of simulations whose standardised summaries are
  closest (Euclidean) to the observation, and samples a Gaussian KDE (Scott's rule) of the
  accepted parameters, truncated to the prior (as sbibm's REJ-ABC with KDE).
* ``mcmc`` (:class:`LikelihoodMCMC`): sbi's slice sampler (``model.mcmc_*``) on the problem's
  true likelihood (problems with a known likelihood only) — the cost/accuracy yardstick.

Metrics (see :mod:`cosmobench.metrics.sbi`; protocol settings :class:`SBIEval`, the ``eval``
node): ``c2st`` (primary; ``eval.num_posterior_samples`` vs ``eval.reference_samples``
reference posterior samples (:func:`cosmobench.datamodules.sbi.reference_posterior`), mean
over the ``data.num_observations`` observations; problems without a reference posterior do
not report it), ``nltp``, ``posterior_std``, ``sbc_ks_pvalue`` (min over parameters; SBC and
TARP with ``eval.sbc_posterior_samples`` samples for each of the ``data.num_sbc`` test pairs),
``tarp_atc``, ``time_per_posterior`` (seconds to draw ``eval.time_posterior_samples`` samples
for one new observation, incl. MCMC warm-up).
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cosmobench import sbi_adapter
from cosmobench.datamodules.sbi import reference_posterior
from cosmobench.errors import ConfigError, InputError
from cosmobench.metrics import sbi as M
from cosmobench.nn import build_net
from cosmobench.plots import pyplot, save
from cosmobench.sbi_adapter import MCMCSettings, RejectionABCSettings, SamplingLimit
from cosmobench.settings import build, setting
from cosmobench.sim.sbi_problems import SBIProblem, get_problem
from cosmobench.task import BaseTask, FittedBaseline

NEURAL = ("npe", "nle", "nre")

log = logging.getLogger(__name__)
MCMC_MODELS = ("nle", "nre", "mcmc")  #: models that sample by MCMC (their model node has the MCMC settings)


@dataclass
class SBIEval:
    """The ``eval`` node: how many posterior samples the metrics draw (module docstring)."""

    num_posterior_samples: int = setting(10000, "int >= 10",
                                         help="posterior samples per benchmark observation (C2ST, nltp, width; "
                                              "predict: per input observation)")
    reference_samples: int = setting(10000, "int >= 10", help="reference posterior samples per observation (C2ST)")
    sbc_posterior_samples: int = setting(1000, "positive int", help="posterior samples per SBC/TARP test pair")
    time_posterior_samples: int = setting(10000, "positive int",
                                          help="samples drawn for one new observation to measure time_per_posterior")
    c2st_impl: str = setting("fast", ["fast", "sklearn"],
                             help="C2ST classifier: fast (cosmobench.metrics.c2st's re-implementation of sbibm's MLP, "
                                  "all folds of all observations trained as one batch) or sklearn (sbibm's own "
                                  "MLPClassifier per fold, one after the other: the reference, slower)")
    max_sampling_time: float = setting(600.0, "positive float", unit="s",
                                       help="limit on drawing one set of posterior samples by rejection (NPE draws "
                                            "outside the prior, rejection ABC's KDE): beyond it the run stops "
                                            "with an error naming the observation")


class RejectionABC(FittedBaseline):
    """Rejection ABC on the training simulations (module docstring). Summaries: the
    problem's :meth:`~cosmobench.sim.sbi_problems.SBIProblem.summary`, standardised by their
    train-split std."""

    def __init__(self, problem: SBIProblem, cfg: RejectionABCSettings):
        super().__init__()
        self.problem, self.quantile = problem, float(cfg.quantile)
        self.max_time = 600.0  #: eval.max_sampling_time, set by the task
        self.s_train = torch.empty(0)
        self.theta_train = torch.empty(0)
        self.s_std = torch.empty(0)

    def fit(self, data: dict[str, np.ndarray]) -> None:
        s = self.problem.summary(data["x"])
        std = s.std(0)
        self.s_std = torch.as_tensor(np.where(std > 0, std, 1.0))
        self.s_train = torch.as_tensor(s) / self.s_std
        self.theta_train = torch.as_tensor(np.asarray(data["theta"], np.float64))

    def state(self):
        return {"s": self.s_train, "theta": self.theta_train, "std": self.s_std}

    def load_state(self, state):
        self.s_train, self.theta_train, self.s_std = state["s"], state["theta"], state["std"]

    def sample(self, x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, B, d) samples for observations ``x`` (B, *x_shape)."""
        from scipy.stats import gaussian_kde

        s_obs = torch.as_tensor(self.problem.summary(x)) / self.s_std
        k = max(self.theta_train.shape[1] + 2, int(round(self.quantile * len(self.s_train))))
        k = min(k, len(self.s_train))
        out = np.empty((n, len(x), self.theta_train.shape[1]))
        for b in range(len(x)):
            dist = torch.cdist(s_obs[b:b + 1], self.s_train)[0]
            accepted = self.theta_train[dist.topk(k, largest=False).indices].numpy()
            kde = gaussian_kde(accepted.T)
            got: list[np.ndarray] = []
            have, drawn, t0 = 0, 0, time.monotonic()
            while have < n:
                cand = kde.resample(max(n, 1000), seed=rng).T
                ok = torch.isfinite(self.problem.log_prior(torch.as_tensor(cand))).numpy()
                got.append(cand[ok])
                have += int(ok.sum())
                drawn += len(cand)
                if have < n and (time.monotonic() - t0 > self.max_time or drawn >= 1000 * max(n, 1000)):
                    raise SamplingLimit(f"rejection_abc: observation {b}: only {have / drawn:.3%} of {drawn} draws "
                                        f"of the KDE of accepted parameters lie inside the prior (limits: "
                                        f"{1000 * max(n, 1000)} draws, eval.max_sampling_time={self.max_time:g} s); "
                                        f"the observation is probably far outside what the prior can simulate")
            out[:, b] = np.concatenate(got)[:n]
        return out


class LikelihoodMCMC(FittedBaseline):
    """MCMC on the true likelihood (nothing to fit; the train split is not used)."""

    def __init__(self, problem: SBIProblem, mcmc: MCMCSettings):
        super().__init__()
        if not problem.has_likelihood:
            raise ConfigError(f"model mcmc needs a known likelihood; problem {problem.name!r} has none "
                              f"(use npe, nle, nre or rejection_abc)")
        self.problem, self.mcmc = problem, mcmc

    def fit(self, data):
        pass

    def state(self):
        return {}

    def load_state(self, state):
        pass

    def sample(self, x: np.ndarray, n: int, seed: int) -> np.ndarray:
        from cosmobench.sim.sbi_problems import mcmc_posterior_samples
        return np.stack([mcmc_posterior_samples(self.problem, xb, n, seed + b, self.mcmc) for b, xb in enumerate(x)],
                        axis=1)


class SBITask(BaseTask):
    """Posterior estimation task (module docstring). ``data_info`` comes from
    :meth:`datamodules.sbi.SBIDataModule.info`."""

    def configure_model(self) -> nn.Module:
        info = self.require_info("problem", "problem_cfg", "param_names", "x_shape", "theta_mean", "theta_std",
                                 "x_mean", "x_std")
        self.problem = get_problem(info["problem"], info["problem_cfg"])
        self.param_names = list(info["param_names"])
        self.x_shape = tuple(int(s) for s in info["x_shape"])
        self.prior = self.problem.torch_prior()
        self._posterior = None
        cfg = self.model_cfg
        #: the sampler of the models that sample by MCMC
        self.mcmc = build(MCMCSettings, cfg) if self.model_name in MCMC_MODELS else None
        if self.model_name in NEURAL:
            theta_stats = (info["theta_mean"], info["theta_std"])
            if info["is_map"]:
                if self.model_name == "nle":
                    raise ConfigError("nle models the density of the data and cannot learn map summaries; "
                                      f"problem {self.problem.name!r} has map data: use npe or nre")
                summary = build_net("cnn", cfg, n_bands=self.x_shape[0], n_classes=int(cfg["n_summaries"]),
                                    image_size=self.x_shape[-1])
                emb = nn.Sequential(sbi_adapter.ScalarStandardize(info["x_mean"][0], info["x_std"][0]), summary)
                return sbi_adapter.build_estimator(self.model_name, cfg, theta_stats, None, embedding_net=emb,
                                                   x_example=torch.zeros((1,) + self.x_shape))
            return sbi_adapter.build_estimator(self.model_name, cfg, theta_stats, (info["x_mean"], info["x_std"]))
        if self.model_name == "rejection_abc":
            return RejectionABC(self.problem, build(RejectionABCSettings, cfg))
        if self.model_name == "mcmc":
            return LikelihoodMCMC(self.problem, self.mcmc)
        raise self.unknown_model()

    # --- training ---------------------------------------------------------------------
    def loss(self, batch):
        if self.is_baseline:  # no training objective: a constant keeps the checkpoint callback fed
            return torch.zeros((), device=batch["theta"].device)
        self._posterior = None
        num_atoms = int(self.model_cfg["num_atoms"]) if self.model_name == "nre" else None
        return sbi_adapter.loss(self.model_name, self.net, batch["theta"], batch["x"], num_atoms=num_atoms)

    # --- sampling ---------------------------------------------------------------------
    def posterior(self):
        """sbi posterior object of a neural model (rebuilt after training steps)."""
        if self._posterior is None:
            self._posterior = sbi_adapter.build_posterior(self.model_name, self.net, self.prior, self.mcmc)
        return self._posterior

    def sample_posterior(self, x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
        """``n`` posterior samples (n, B, d) for observations ``x`` (B, *x_shape), seeded."""
        x = np.asarray(x, np.float64).reshape((-1,) + self.x_shape)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        np_state = np.random.get_state()
        np.random.seed(seed % (2 ** 32))
        try:
            if self.model_name in NEURAL:
                was_training = self.net.training
                self.net.eval()
                with torch.no_grad():
                    s = sbi_adapter.sample(self.posterior(), torch.as_tensor(x, dtype=torch.float32), n,
                                           max_time=self._max_sampling_time())
                self.net.train(was_training)
                return s.detach().cpu().numpy().astype(np.float64)
            if self.model_name == "rejection_abc":
                self.net.max_time = self._max_sampling_time()
                return self.net.sample(x, n, np.random.default_rng(seed))
            return self.net.sample(x, n, seed)
        finally:
            torch.random.set_rng_state(state)
            np.random.set_state(np_state)

    def _max_sampling_time(self) -> float:
        return float(self.eval_cfg["max_sampling_time"])

    # --- test -------------------------------------------------------------------------
    def on_test_start(self) -> None:
        super().on_test_start()
        self._posterior = None

    def test_outputs(self, batch):
        return {"theta": batch["theta"].float(), "x": batch["x"].float()}

    def compute_metrics(self, out: dict[str, np.ndarray]) -> dict[str, float]:
        info, ev = self.data_info, self.eval_cfg
        theta, x = out["theta"].astype(np.float64), out["x"].astype(np.float64)
        n_obs = min(int(info["num_observations"]), len(theta))
        n_post = int(ev["num_posterior_samples"])
        seed = int(info["seed"])
        nltps, stds, refs, posts = [], [], [], []
        t_first = None
        _say(f"{n_obs} observations: {n_post} posterior samples each; C2ST (sbibm's 5-fold MLP, "
             f"eval.c2st_impl={ev['c2st_impl']}) against {int(ev['reference_samples'])} reference samples")
        for k in range(n_obs):
            t0 = time.perf_counter()
            post = self.sample_posterior(x[k:k + 1], n_post, seed=1000 + k)[:, 0]
            if k == 0:
                t_first = time.perf_counter() - t0
            ref = reference_posterior(self.problem, info["problem_cfg"], seed, k, theta[k], x[k],
                                      int(ev["reference_samples"]), reference_dir=info.get("reference_dir"))  # absent in checkpoints older than it
            _say(f"observation {k + 1}/{n_obs} " + ("samples drawn" if ref is not None else "done")
                 + f" ({time.perf_counter() - t0:.1f} s)")
            nltps.append(M.nltp(post, theta[k]))
            stds.append(M.posterior_std(post))
            posts.append(post)
            refs.append(ref)
        c2sts = self._c2st([(r, p) for r, p in zip(refs, posts) if r is not None], str(ev["c2st_impl"]))
        n_time = int(ev["time_posterior_samples"])
        if n_time == n_post and t_first is not None:
            t_post = t_first
        else:
            t0 = time.perf_counter()
            self.sample_posterior(x[:1], n_time, seed=999)
            t_post = time.perf_counter() - t0
        _say(f"SBC/TARP: {int(ev['sbc_posterior_samples'])} posterior samples for each of {len(x)} test pairs")
        t0 = time.perf_counter()
        sbc_samples = self.sample_posterior(x, int(ev["sbc_posterior_samples"]), seed=2000)
        _say(f"SBC/TARP samples drawn ({time.perf_counter() - t0:.1f} s)")
        ranks, pvals = sbi_adapter.sbc(theta, x, sbc_samples)
        ecp, alpha, atc = sbi_adapter.tarp(theta, sbc_samples, seed=seed)
        out.update(post0=posts[0], ranks=ranks, ecp=ecp, alpha=alpha, theta0=theta[0],
                   sbc_n=np.array([sbc_samples.shape[0]]))
        if refs[0] is not None:
            out["ref0"] = refs[0]
        metrics = {"nltp": float(np.mean(nltps)), "posterior_std": float(np.mean(stds)),
                   "sbc_ks_pvalue": float(np.min(pvals)), "tarp_atc": float(atc), "time_per_posterior": float(t_post)}
        if c2sts:
            metrics["c2st"] = float(np.mean(c2sts))
        return metrics

    @staticmethod
    def _c2st(pairs: list[tuple[np.ndarray, np.ndarray]], impl: str) -> list[float]:
        """C2ST of each (reference, posterior) pair, one progress line per finished observation
        (and one a minute while the batched classifiers train)."""
        if not pairs:
            return []
        t0, last = time.perf_counter(), [time.perf_counter()]

        def done(k: int, value: float) -> None:
            _say(f"observation {k + 1}/{len(pairs)} done: c2st {value:.4f} ({time.perf_counter() - t0:.1f} s)")

        def epoch(e: int, training: int) -> None:
            if training and time.perf_counter() - last[0] > 60:
                last[0] = time.perf_counter()
                _say(f"C2ST epoch {e}: {training} of {5 * len(pairs)} classifiers still training "
                     f"({last[0] - t0:.0f} s)")

        if impl == "fast":
            return M.c2st_many(pairs, seed=1, on_done=done, on_epoch=epoch)
        values = []
        for k, (ref, post) in enumerate(pairs):
            values.append(M.c2st_sklearn(ref, post, seed=1))
            done(k, values[-1])
        return values

    # --- predict ----------------------------------------------------------------------
    def predict_outputs(self, batch):
        n = int(self.eval_cfg["num_posterior_samples"])
        try:
            s = self.sample_posterior(batch["x"].cpu().numpy(), n, seed=0)        # (n, B, d)
        except SamplingLimit as exc:
            first = int(batch["idx"][0])
            raise InputError(f"observations {first}..{first + len(batch['idx']) - 1} of the input: {exc}") from None
        cols = {name: torch.as_tensor(s[:, :, j].T.reshape(-1)) for j, name in enumerate(self.param_names)}
        cols["observation"] = batch["idx"].cpu().repeat_interleave(n)
        return cols

    @classmethod
    def predict_files(cls, output: Path) -> list[Path]:
        """The samples table and the corner plot beside it (``<full output stem>_corner.png``)."""
        from cosmobench.io import side_path
        return [Path(output), side_path(output, "_corner.png")]

    def write_predictions(self, loader, output: Path) -> list[Path] | None:
        """``eval.num_posterior_samples`` samples per observation of the input: one column per
        parameter (the problem's names) and ``observation`` (0-based row/map index); a corner
        plot of the first observation's posterior beside it (``<output stem>_corner.png``).
        Both go through ``atomic_path`` (one write set in ``predict``): nothing half-written."""
        from cosmobench.io import atomic_path, write_table
        parts: dict[str, list[np.ndarray]] = {}
        for batch in loader:
            for k, v in self.predict_outputs(batch).items():
                parts.setdefault(k, []).append(v.numpy())
        if not parts:
            raise InputError("the predict input holds no observations")
        table = {k: np.concatenate(v) for k, v in parts.items()}
        first = table["observation"] == table["observation"].min()
        plot = self.predict_files(output)[1]
        fig = corner_figure([("posterior", np.stack([table[p][first] for p in self.param_names], 1))],
                            self.param_names, title=f"sbi {self.model_name}: observation 0")
        try:
            with atomic_path(plot) as tmp:
                fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        finally:
            pyplot().close(fig)
        return [write_table(table, output), plot]

    # --- plots ------------------------------------------------------------------------
    def make_plots(self, out: dict[str, np.ndarray], plot_dir: Path) -> list[Path]:
        plt = pyplot()
        plot_dir = Path(plot_dir)
        paths = []
        sets = [(self.model_name, out["post0"])]
        if "ref0" in out:
            sets.append(("reference", out["ref0"]))
        paths.append(corner_plot(sets, self.param_names, plot_dir / "corner.png", truth=out["theta0"],
                                 title=f"{self.problem.name}: observation 1"))
        ranks, n = out["ranks"], int(out["sbc_n"][0])
        d = ranks.shape[1]
        fig, axes = plt.subplots(1, d, figsize=(3.2 * d, 2.8), squeeze=False)
        bins = min(20, max(5, len(ranks) // 10))
        for j in range(d):
            ax = axes[0, j]
            ax.hist(ranks[:, j], bins=bins, range=(0, n), color="C0", alpha=0.8)
            ax.axhline(len(ranks) / bins, color="k", ls="--", lw=1)
            ax.set(xlabel=f"SBC rank of {self.param_names[j]}", ylabel="count" if j == 0 else None)
        fig.suptitle(f"SBC rank histograms ({self.model_name}, {len(ranks)} simulations)")
        paths.append(save(fig, plot_dir / "sbc_ranks.png"))
        fig, ax = plt.subplots(figsize=(3.8, 3.8))
        ax.plot(out["alpha"], out["ecp"], "C0-", label=self.model_name)
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
        ax.set(xlabel="credibility level", ylabel="expected coverage", title="TARP")
        ax.legend()
        paths.append(save(fig, plot_dir / "tarp.png"))
        return paths


def _say(msg: str) -> None:
    """One progress line of the evaluation on stderr (terminal and batch logs alike)."""
    print(f"sbi evaluation: {msg}", file=sys.stderr, flush=True)


def corner_plot(sets: list[tuple[str, np.ndarray]], names: list[str], path: Path, truth: np.ndarray | None = None,
                title: str = "", max_dims: int = 6) -> Path:
    """:func:`corner_figure` saved as PNG at ``path``."""
    return save(corner_figure(sets, names, truth, title, max_dims), path)


def corner_figure(sets: list[tuple[str, np.ndarray]], names: list[str], truth: np.ndarray | None = None,
                  title: str = "", max_dims: int = 6):
    """Corner plot of one or more sample sets (n, d): 1-d histograms on the diagonal, 2-d
    68/95% highest-density contours (from 2-d histograms) below; at most ``max_dims``
    parameters (the first ones). Returns the matplotlib figure."""
    plt = pyplot()
    d = min(len(names), max_dims)
    fig, axes = plt.subplots(d, d, figsize=(2.3 * d + 0.6, 2.3 * d + 0.6), squeeze=False)
    allv = np.concatenate([s[:, :d] for _, s in sets])
    lo, hi = np.percentile(allv, 0.5, axis=0), np.percentile(allv, 99.5, axis=0)
    pad = 0.05 * (hi - lo + 1e-12)
    lo, hi = lo - pad, hi + pad
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            for c, (label, s) in enumerate(sets):
                if i == j:
                    ax.hist(s[:, i], bins=40, range=(lo[i], hi[i]), density=True, histtype="step", color=f"C{c}",
                            label=label)
                else:
                    h, xe, ye = np.histogram2d(s[:, j], s[:, i], bins=30, range=[[lo[j], hi[j]], [lo[i], hi[i]]])
                    levels = _hdr_levels(h, (0.95, 0.68))
                    if levels is not None:
                        ax.contour(0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1]), h.T, levels=levels,
                                   colors=f"C{c}", linewidths=1)
            if truth is not None:
                if i == j:
                    ax.axvline(truth[i], color="k", lw=0.8)
                else:
                    ax.plot(truth[j], truth[i], "k+", ms=8)
            ax.set_xlim(lo[j], hi[j])
            if i != j:
                ax.set_ylim(lo[i], hi[i])
            if i == d - 1:
                ax.set_xlabel(names[j])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _hdr_levels(h: np.ndarray, masses) -> list[float] | None:
    """Histogram heights enclosing the given probability masses (increasing levels)."""
    flat = np.sort(h.ravel())[::-1]
    if flat.sum() <= 0:
        return None
    cum = np.cumsum(flat) / flat.sum()
    levels = sorted({float(flat[min(np.searchsorted(cum, m), len(flat) - 1)]) for m in masses})
    levels = [lv for lv in levels if lv > 0]
    return levels if levels and len(levels) == len(set(levels)) and levels[-1] < flat[0] else None
