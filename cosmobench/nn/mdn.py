"""Mixture density networks (Bishop 1994) for 1-D targets.

:class:`MDN` = MLP trunk + :class:`MDNHead` predicting a K-component Gaussian mixture
``p(y|x) = sum_k w_k N(y; mu_k, sigma_k^2)``. The head works in a standardised target space
``u = (y - loc) / scale`` (``loc``/``scale`` are buffers, e.g. train-split mean/std) and
returns parameters in the original units of ``y``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cosmobench.nn import register_net
from cosmobench.settings import setting


def mixture_log_prob(y: torch.Tensor, log_w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``log p(y_n)`` (N,) of Gaussian mixtures with log-weights/means/sigmas of shape (N, K)."""
    z = (y.unsqueeze(-1) - mu) / sigma
    log_n = -0.5 * z * z - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(log_w + log_n, dim=-1)


def mixture_nll(y: torch.Tensor, log_w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (scalar) of targets ``y`` (N,)."""
    return -mixture_log_prob(y, log_w, mu, sigma).mean()


def mlp(in_features: int, hidden: Sequence[int], dropout: float = 0.0) -> tuple[nn.Sequential, int]:
    """``Linear -> SiLU (-> Dropout)`` blocks; returns the trunk and its output width."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.SiLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    return nn.Sequential(*layers), width


class MDNHead(nn.Module):
    """Linear map from features to K mixture components.

    Outputs ``(log_w, mu, sigma)`` each (N, K) in target units:
    ``log_w = log_softmax(a)``, ``mu = loc + scale * b``,
    ``sigma = scale * (softplus(c) + min_sigma)``. Means are initialised spread over
    [-1.5, 1.5] (standardised units) so components start out distinct."""

    def __init__(self, in_features: int, n_components: int, loc: float = 0.0, scale: float = 1.0,
                 min_sigma: float = 1e-3):
        super().__init__()
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.k = int(n_components)
        self.proj = nn.Linear(in_features, 3 * self.k)
        self.register_buffer("loc", torch.tensor(float(loc)))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.min_sigma = float(min_sigma)
        with torch.no_grad():
            self.proj.bias.zero_()
            self.proj.bias[self.k:2 * self.k] = torch.linspace(-1.5, 1.5, self.k) if self.k > 1 else 0.0
            self.proj.bias[2 * self.k:] = -1.0

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b, c = self.proj(h).split(self.k, dim=-1)
        log_w = F.log_softmax(a, dim=-1)
        mu = self.loc + self.scale * b
        sigma = self.scale * (F.softplus(c) + self.min_sigma)
        return log_w, mu, sigma


@dataclass
class MDNConfig:
    """Hyper-parameters of :class:`MDN`."""

    n_components: int = setting(8, "positive int", help="Gaussian components of the mixture")
    hidden: list[int] = setting([128, 128, 128], "nonempty list[positive int]", help="widths of the MLP layers")
    dropout: float = setting(0.0, "0 <= float < 1", help="dropout after each hidden layer")

    SEARCH_SPACE: ClassVar[dict] = {"optim.lr": ["log", 3e-4, 1e-2], "model.n_components": ["choice", [4, 8, 16]],
                                    "model.dropout": ["float", 0.0, 0.3]}  # cosmobench tune


@register_net("mdn", MDNConfig, kind="tabular_density")
class MDN(nn.Module):
    """MLP + :class:`MDNHead`. ``forward(x)`` with ``x`` ``(N, in_features)`` ->
    ``(log_w, mu, sigma)`` each ``(N, n_components)``; ``in_features`` and the target
    standardisation ``loc``/``scale`` (units of the target) come from the data."""

    def __init__(self, cfg: MDNConfig, *, in_features: int, loc: float = 0.0, scale: float = 1.0,
                 min_sigma: float = 1e-3):
        super().__init__()
        self.trunk, width = mlp(in_features, [int(h) for h in cfg.hidden], float(cfg.dropout))
        self.head = MDNHead(width, cfg.n_components, loc=loc, scale=scale, min_sigma=min_sigma)

    def forward(self, x: torch.Tensor):
        return self.head(self.trunk(x))
