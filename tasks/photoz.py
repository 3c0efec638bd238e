"""Photometric redshift posteriors p(z | photometry): MDN vs kNN.

Both models output a Gaussian mixture over z (weights, means, sigmas; not truncated at
z = 0), so all metrics are defined for both:

* ``mdn``: :class:`~cosmobench.nn.mdn.MDN` on the standardised features ``x`` (colours,
  reference magnitude, log errors), ``model.n_components`` Gaussians, MLP ``model.hidden``,
  trained by the mean negative log-likelihood of z.
* ``knn``: :class:`KNNPhotoZ`, a :class:`~cosmobench.task.FittedBaseline`: the ``model.k``
  nearest training galaxies in standardised (colours, reference magnitude) space (Euclidean;
  no magnitude errors); p(z) = equal-weight mixture of N(z_j, (bandwidth (1 + z_j))^2)
  over the neighbours j. Its loss (val_loss) is the same NLL.

Metrics (``cosmobench.metrics.photoz`` / ``.mixture``; z_phot = posterior median,
dz = (z_phot - z_spec)/(1 + z_spec)): ``bias`` = median dz, ``sigma_nmad``,
``outlier_frac`` (|dz| > 0.15), ``crps`` (mean CRPS in z units), ``pit_ks`` (KS statistic of
the PIT values vs U(0, 1)), ``nll`` (mean -log p(z_spec)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cosmobench.errors import InputError
from cosmobench.metrics import mixture as mx
from cosmobench.metrics.photoz import OUTLIER_CUT, point_metrics
from cosmobench.nn import build_net
from cosmobench.nn.mdn import mixture_nll
from cosmobench.plots import pyplot, save
from cosmobench.settings import build, setting
from cosmobench.task import BaseTask, FittedBaseline


@dataclass
class KNNSettings:
    """The ``model`` node of the ``knn`` baseline (:class:`KNNPhotoZ`)."""

    k: int = setting(30, "positive int", help="nearest training galaxies per posterior")
    bandwidth: float = setting(0.02, "positive float",
                               help="width of each neighbour's Gaussian in units of (1 + z_j)")

    SEARCH_SPACE: ClassVar[dict] = {"model.k": ["int", 5, 100], "model.bandwidth": ["log", 0.005, 0.1]}  # tune


class KNNPhotoZ(FittedBaseline):
    """k-nearest-neighbour p(z): equal-weight Gaussian mixture of the neighbours' redshifts
    with widths ``bandwidth * (1 + z_j)``. Distances: Euclidean in the first ``n_dims``
    standardised features (colours + reference magnitude)."""

    def __init__(self, cfg: KNNSettings, x_mean: torch.Tensor, x_std: torch.Tensor, n_dims: int,
                 chunk: int = 2048):
        super().__init__()
        self.k, self.bandwidth, self.n_dims, self.chunk = int(cfg.k), float(cfg.bandwidth), int(n_dims), int(chunk)
        self.register_buffer("x_mean", x_mean[:n_dims].clone())
        self.register_buffer("x_std", x_std[:n_dims].clone())
        self.train_x = torch.empty(0, n_dims)
        self.train_z = torch.empty(0)

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :self.n_dims].float() - self.x_mean) / self.x_std

    def fit(self, data: dict[str, np.ndarray]) -> None:
        x, z = torch.as_tensor(data["x"]), torch.as_tensor(data["z"]).float()
        if len(z) < self.k:
            raise InputError(f"knn: model.k={self.k} exceeds the {len(z)} training galaxies")
        self.train_x, self.train_z = self._scale(x).contiguous(), z.contiguous()

    def state(self) -> dict[str, torch.Tensor]:
        return {"x": self.train_x, "z": self.train_z}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.train_x, self.train_z = state["x"].float(), state["z"].float()

    def forward(self, x: torch.Tensor):
        """``(log_w, mu, sigma)`` each (N, k)."""
        q = self._scale(x)
        ref = self.train_x.to(q.device)
        idx = torch.cat([torch.cdist(q[i:i + self.chunk], ref).topk(self.k, largest=False).indices
                         for i in range(0, len(q), self.chunk)]) if len(q) else torch.empty(0, self.k, dtype=torch.long)
        mu = self.train_z.to(q.device)[idx]
        sigma = self.bandwidth * (1 + mu)
        log_w = torch.full_like(mu, -float(np.log(self.k)))
        return log_w, mu, sigma


class PhotoZTask(BaseTask):
    """Photo-z posterior task (see module docstring). ``data_info`` must hold the train-split
    feature statistics from :meth:`PhotoZDataModule.info`."""

    def configure_model(self) -> nn.Module:
        info = self.require_info("x_mean", "x_std", "z_mean", "z_std", "n_features")
        x_mean = torch.tensor(info["x_mean"], dtype=torch.float32)
        x_std = torch.tensor(info["x_std"], dtype=torch.float32)
        self.n_features = int(info["n_features"])
        if self.model_name == "mdn":
            self.register_buffer("x_mean", x_mean)
            self.register_buffer("x_std", x_std)
            return build_net("mdn", self.model_cfg, in_features=self.n_features, loc=float(info["z_mean"]),
                             scale=float(info["z_std"]))
        if self.model_name == "knn":
            # distances in the colours and the reference magnitude: the first n_bands of the 2 n_bands features
            return KNNPhotoZ(build(KNNSettings, self.model_cfg), x_mean, x_std, n_dims=self.n_features // 2)
        raise self.unknown_model()

    # --- model outputs ----------------------------------------------------------------
    def mixture(self, batch: dict[str, torch.Tensor]):
        """``(log_w, mu, sigma)`` (N, K) of p(z | photometry) for a batch."""
        x = batch["x"]
        if x.shape[-1] != self.n_features:
            raise InputError(f"inputs have {x.shape[-1]} features but the model expects {self.n_features} "
                             f"({self.n_features // 2} bands)")
        if self.is_baseline:
            return self.net(x)
        return self.net((x.float() - self.x_mean) / self.x_std)

    def loss(self, batch):
        log_w, mu, sigma = self.mixture(batch)
        return mixture_nll(batch["z"].float(), log_w, mu, sigma)

    def test_outputs(self, batch):
        log_w, mu, sigma = self.mixture(batch)
        return {"z": batch["z"].float(), "w": log_w.exp(), "mu": mu, "sigma": sigma}

    def compute_metrics(self, out: dict[str, np.ndarray]) -> dict[str, float]:
        z, w, mu, sigma = out["z"], out["w"], out["mu"], out["sigma"]
        z_phot = mx.mixture_quantile(0.5, w, mu, sigma, tol=1e-5)
        out["z_phot"] = z_phot
        out["pit"] = mx.pit(z, w, mu, sigma)
        return {**point_metrics(z_phot, z),
                "crps": float(np.mean(mx.mixture_crps(z, w, mu, sigma))),
                "pit_ks": mx.ks_uniform(out["pit"]),
                "nll": float(-np.mean(mx.mixture_logpdf(z, w, mu, sigma)))}

    def predict_outputs(self, batch):
        """Per row: ``z_phot`` (median), ``z_lo``/``z_hi`` (16th/84th percentiles) and the
        mixture ``weights``/``means``/``sigmas`` (N, K). Rows with non-finite inputs -> NaN."""
        with torch.no_grad():
            ok = torch.isfinite(batch["x"]).all(dim=1)
            x = torch.where(ok[:, None], batch["x"], torch.zeros_like(batch["x"]))
            log_w, mu, sigma = self.mixture({"x": x})
        w, mu, sigma = (torch.where(ok[:, None], t, torch.full_like(t, float("nan")))
                        for t in (log_w.exp(), mu, sigma))
        wn, mun, sn = (t.double().cpu().numpy() for t in (w, mu, sigma))
        q = {name: torch.as_tensor(mx.mixture_quantile(p, wn, mun, sn, tol=1e-5), dtype=torch.float32)
             for name, p in (("z_phot", 0.5), ("z_lo", 0.16), ("z_hi", 0.84))}
        return {**q, "weights": w.float().cpu(), "means": mu.float().cpu(), "sigmas": sigma.float().cpu()}

    # --- plots ------------------------------------------------------------------------
    def make_plots(self, out: dict[str, np.ndarray], plot_dir: Path) -> list[Path]:
        plt = pyplot()

        plot_dir = Path(plot_dir)
        z = out["z"]
        z_phot = out["z_phot"] if "z_phot" in out else mx.mixture_quantile(0.5, out["w"], out["mu"], out["sigma"], tol=1e-5)
        pit = out["pit"] if "pit" in out else mx.pit(z, out["w"], out["mu"], out["sigma"])
        paths = []
        zmax = float(max(np.max(z), np.nanmax(z_phot), 0.1)) * 1.05
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.hexbin(z, z_phot, gridsize=80, extent=(0, zmax, 0, zmax), bins="log", cmap="viridis", mincnt=1)
        zz = np.linspace(0, zmax, 2)
        ax.plot(zz, zz, "w-", lw=1)
        for s in (1, -1):
            ax.plot(zz, zz + s * OUTLIER_CUT * (1 + zz), "r--", lw=1)
        ax.set(xlim=(0, zmax), ylim=(0, zmax), xlabel="z_spec", ylabel="z_phot (posterior median)",
               title=f"photoz {self.model_name}")
        paths.append(save(fig, plot_dir / "zphot_vs_zspec.png"))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(pit, bins=25, range=(0, 1), density=True, color="C0", alpha=0.8)
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set(xlabel="PIT = CDF(z_spec)", ylabel="density", title=f"PIT ({self.model_name})")
        paths.append(save(fig, plot_dir / "pit_hist.png"))
        return paths
