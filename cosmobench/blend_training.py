"""How the deblending networks see a training batch (:func:`training_sources`) and their loss
(:func:`source_loss`); the recipe's settings are
:class:`cosmobench.tasks.deblending.DeblenderTraining`. Positions are 0-based pixels
``(x, y)``; images ``(C, H, W)`` in the units of the scene."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from cosmobench.metrics.deblending import match_sources

Segmentation = Callable[..., tuple[np.ndarray, np.ndarray]]


def segment_channels(seg: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(S, 2, H, W)`` float: per source ``index`` ``(S,)`` (0-based) of its scene's
    segmentation map ``seg`` ``(S, H, W)`` (label ``k + 1`` = source ``k``, 0 = background),
    1 in its own segment, and 1 in the other sources' segments."""
    own = seg == (index + 1).view(-1, 1, 1)
    return torch.stack([own, (seg > 0) & ~own], dim=1).float()


def source_loss(pred: torch.Tensor, target: torch.Tensor, flux_weight: float) -> torch.Tensor:
    """Per-source training loss ``(S,)`` of isolated images ``(S, C, H, W)``: the symmetric
    normalised squared error ``sum (p - t)^2 / (sum t^2 + sum p^2)`` (in [0, 2]) plus
    ``flux_weight`` times the relative flux error ``mean_b |F_p - F_t| / F_t`` (the test
    metric ``flux_mape``, as a fraction). The image term is bounded, so that detections that
    merge two galaxies (whose target is only one of them: no deblender can avoid a large error
    there) do not outweigh everything else; with the plain ``/ sum t^2`` the mean was lowest
    for an all-zero prediction (measured: every share collapsed to 0)."""
    eps = 1e-12 * target.abs().amax().clamp_min(1e-30)
    num = (pred - target).square().flatten(1).sum(1)
    den = target.square().flatten(1).sum(1) + pred.square().flatten(1).sum(1)
    f_true, f_pred = target.sum((-2, -1)), pred.sum((-2, -1))
    rel = ((f_pred - f_true).abs() / f_true.abs().clamp_min(eps)).mean(1)
    return num / den.clamp_min(eps ** 2) + flux_weight * rel


def training_sources(batch: dict[str, torch.Tensor], segmentation: Segmentation, mode: str, radius: float,
                     jitter: float = 0.0, dropout: float = 0.0,
                     detect: Callable[[torch.Tensor, torch.Tensor], np.ndarray] | None = None):
    """The sources of a batch as the net sees them, with their targets.

    ``mode="truth"``: the true positions (jittered by ``jitter`` px; each source but one per
    scene dropped with probability ``dropout``, a missed detection whose light stays in the
    blend), the SEP segments split between them (``segmentation(image, variance, mask,
    positions)``, :meth:`cosmobench.tasks.deblending.DeblendingTask.segmentation`).
    ``"detections"``: the detections of every scene as at test time (``detect(image, variance)``
    of one scene ``(1, C, H, W)``, else SEP's); a detection's target is the true isolated image
    of the true source it is matched to (:func:`~cosmobench.metrics.deblending.match_sources`
    within ``radius`` px); unmatched detections take their share of the light but carry no loss
    (``has_target`` False). Returns ``image``, ``variance`` ``(S, C, H, W)``, ``xy``
    ``(S, 2)``, ``others`` ``(S, K, 2)`` (NaN-padded, the source itself NaN), ``segments``
    ``(S, 2, H, W)``, ``scene`` ``(S,)``, ``target`` ``(S, C, H, W)`` and ``has_target``
    ``(S,)`` bool. Random draws use numpy's global generator (seeded by the run)."""
    n_true = batch["n_true"].cpu()
    rows: dict[str, list] = {k: [] for k in ("b", "xy", "seg", "t", "has")}
    for b in range(len(n_true)):
        n = int(n_true[b])
        true_xy = batch["truth_xy"][b, :n].double().cpu().numpy()
        if mode == "truth":
            xy = true_xy + jitter * np.random.standard_normal(true_xy.shape)
            keep = np.random.random(n) >= dropout
            keep[np.random.randint(n)] = True
            xy, t = xy[keep], np.flatnonzero(keep)
            _, seg = segmentation(batch["image"][b], batch["variance"][b], batch["mask"][b], xy)
            has = np.ones(len(xy), bool)
        else:
            given = detect(batch["image"][b:b + 1], batch["variance"][b:b + 1]) if detect is not None else None
            xy, seg = segmentation(batch["image"][b], batch["variance"][b], batch["mask"][b], given)
            ti, di = match_sources(true_xy, xy, radius)
            t = np.zeros(len(xy), int)
            t[di] = ti
            has = np.zeros(len(xy), bool)
            has[di] = True
        rows["b"] += [b] * len(xy)
        rows["xy"].append(xy)
        rows["seg"] += [seg] * len(xy)
        rows["t"].append(t)
        rows["has"].append(has)
    dev = batch["image"].device
    b = torch.as_tensor(rows["b"], dtype=torch.long, device=dev)
    xy = torch.as_tensor(np.concatenate(rows["xy"]), dtype=torch.float32, device=dev).reshape(-1, 2)
    t = torch.as_tensor(np.concatenate(rows["t"]), dtype=torch.long, device=dev)
    has = torch.as_tensor(np.concatenate(rows["has"]), dtype=torch.bool, device=dev)
    _, scene = torch.unique(b, return_inverse=True)
    counts = torch.bincount(scene)
    k = int(counts.max()) if len(counts) else 0
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(b), device=dev) - start[scene]                        # index within its scene
    table = torch.full((len(counts), k, 2), float("nan"), device=dev)
    table[scene, slot] = xy
    others = table[scene].clone()
    others[torch.arange(len(b), device=dev), slot] = float("nan")
    seg = torch.as_tensor(np.stack(rows["seg"]) if rows["seg"] else np.zeros((0,) + tuple(batch["image"].shape[-2:])),
                          device=dev)
    segments = segment_channels(seg, slot)
    return (batch["image"][b].float(), batch["variance"][b].float(), xy, others, segments, scene,
            batch["truth_images"][b, t].float(), has)
