"""Deblending figures: flux error against blendedness, and example scenes (truth / prediction /
residual per source). Called by :meth:`cosmobench.tasks.deblending.DeblendingTask.make_plots`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cosmobench.metrics.deblending import check_bins
from cosmobench.plots import pyplot, save


def plot_flux_vs_blendedness(out: dict[str, np.ndarray], bins: Sequence[float], model_name: str, path: Path) -> Path:
    """Per matched source and band the relative flux error (%) against its true blendedness
    (log axis), with the MAPE per bin of ``bins`` (edges as fractions)."""
    plt = pyplot()
    valid = out["valid"].astype(bool) & (out["matched"] > 0.5)
    beta = out["blendedness"][valid]
    delta = 100 * (out["flux_pred"][valid] - out["flux_true"][valid]) / out["flux_true"][valid]   # (n, C)
    fig, ax = plt.subplots(figsize=(6, 4))
    for b in range(delta.shape[1] if delta.ndim == 2 else 0):
        ax.scatter(np.clip(beta, 1e-4, None), delta[:, b], s=4, alpha=0.4, label=f"band {b}")
    edges = check_bins(bins)
    centres, mape = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (beta >= lo) & (beta <= hi)
        if sel.any():
            centres.append(np.sqrt(max(lo, 1e-4) * hi))
            mape.append(np.mean(np.abs(delta[sel])))
    ax.plot(centres, mape, "k-o", label="MAPE per bin")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("blendedness (fraction of footprint flux from neighbours)")
    ax.set_ylabel("flux error (%)")
    ax.set_ylim(-100, 100)
    ax.set_title(f"{model_name}: flux error vs blendedness (matched sources)")
    ax.legend(fontsize=7, markerscale=2)
    return save(fig, path)


def plot_examples(examples: list[dict[str, np.ndarray]], model_name: str, path: Path) -> Path:
    """Per example scene (``image``, ``truth``, ``true_xy``, ``det_xy``, ``pred``,
    ``det_index``, ``blendedness``): the blend, then per true source its truth / prediction /
    residual (band-summed)."""
    plt = pyplot()
    n_rows = sum(len(e["truth"]) for e in examples)
    fig, axes = plt.subplots(n_rows, 4, figsize=(9, 2.2 * n_rows), squeeze=False)
    r = 0
    for k, e in enumerate(examples):
        blend = e["image"].sum(0)
        lim = np.percentile(np.abs(blend), 99.5) or 1.0
        for i in range(len(e["truth"])):
            truth = e["truth"][i].sum(0)
            j = int(e["det_index"][i])
            pred = e["pred"][j].sum(0) if j >= 0 else np.zeros_like(truth)
            ax = axes[r]
            ax[0].imshow(blend, origin="lower", cmap="gray_r", vmin=-0.05 * lim, vmax=lim)
            ax[0].plot(*e["true_xy"].T, "c+", ms=6)
            if len(e["det_xy"]):
                ax[0].plot(*np.asarray(e["det_xy"]).T, "rx", ms=5)
            ax[0].plot(*e["true_xy"][i], "o", mfc="none", mec="yellow", ms=10)
            vmax = max(truth.max(), 1e-12)
            ax[1].imshow(truth, origin="lower", cmap="gray_r", vmin=0, vmax=vmax)
            ax[2].imshow(pred, origin="lower", cmap="gray_r", vmin=0, vmax=vmax)
            ax[3].imshow(pred - truth, origin="lower", cmap="RdBu_r", vmin=-0.3 * vmax, vmax=0.3 * vmax)
            ax[0].set_ylabel(f"scene {k} src {i}\nβ={e['blendedness'][i]:.2f}", fontsize=7)
            for a, t in zip(ax, ("blend (+ true, x detected)", "truth", "prediction" if j >= 0 else "not matched",
                                 "residual")):
                a.set_xticks([])
                a.set_yticks([])
                if r == 0:
                    a.set_title(t, fontsize=8)
            r += 1
    height = 2.2 * n_rows
    fig.subplots_adjust(top=1 - 0.55 / height, bottom=0.1 / height, hspace=0.12, wspace=0.05)
    fig.suptitle(f"{model_name}: example scenes (band-summed)", fontsize=9, y=1 - 0.15 / height)
    return save(fig, path)
