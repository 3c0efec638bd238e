"""Task ``lensfinding``: strong-lens finding in multi-band cutouts (binary image classification).

A :class:`~cosmobench.image_classification.ImageClassificationTask` with the classes
``non_lens`` (0) and ``lens`` (1); the lens score is ``p(lens)`` (softmax). Normalisation,
cross-entropy, SmoothGrad, calibration metrics and the confusion/reliability/ROC plots come
from the base class.

Models (``model.name``): every network registered with kind ``image_classifier``
(:mod:`cosmobench.nn`); lensfinding's own choices of their settings are in
``experiments/lensfinding/<model>.yaml``: ``resnet18`` (default; torchvision ResNet-18, random
init, adapted to small inputs, stem stride 2), ``cnn`` (compact CNN in the style of
Petrillo+2019 / Li+2020: a few conv-pool blocks and a small dense head), ``e2cnn`` (the
equivariant CNN shared with ``morphology``, group D4 - exactly invariant to the pixel grid's
rot90/flips: lenses have no preferred orientation).

Metrics (definitions in :mod:`cosmobench.metrics.lensfinding`): ``auroc`` (primary),
``tpr_at_fpr_1e-2``, ``tpr0``, ``tpr10``, ``average_precision``; on simulated data also the
completeness (at the FPR = 1e-2 threshold) in bins of Einstein radius
(``completeness_theta_e_<lo>_<hi>``, arcsec) and of unlensed source magnitude
(``completeness_source_mag_<lo>_<hi>``); from the base class ``accuracy``, ``balanced_accuracy``,
``macro_f1``, ``ece``, ``nll`` and ``rotation_invariance_error``.

Plots: ROC curve, reliability diagram, confusion matrix, score histograms (lenses, plain
non-lenses and each hard-negative kind), completeness vs Einstein radius and source magnitude,
a gallery of the top-scoring non-lenses and the lowest-scoring lenses, SmoothGrad examples.

Predict: one row per cutout with ``index`` (position in the input stack/table), ``score``
(p(lens)) and ``pred_label`` (``score >= 0.5``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cosmobench.image_classification import ImageClassificationTask
from cosmobench.metrics.lensfinding import completeness_binned, completeness_metrics, lensfinding_metrics, \
    threshold_at_fpr
from cosmobench.plots import pyplot, save

TRUTH_KEYS = ("theta_e", "source_mag", "magnification", "kind")
FPR_THRESHOLD = 1e-2
N_GALLERY = 8
PROPERTY_LABELS = {"theta_e": "Einstein radius θ_E [arcsec]", "source_mag": "unlensed source magnitude (ref. band)"}


class LensFindingTask(ImageClassificationTask):
    """Lens finder (see the module docstring)."""

    invariance_metric = True

    # --- test -----------------------------------------------------------------------------
    def test_outputs(self, batch):
        """Base outputs (``probs`` ``(B, 2)``, ``label``, ``inv_err``) plus the simulator's truth
        ``theta_e``/``source_mag``/``magnification``/``kind`` ``(B,)`` when the batch has it."""
        out = super().test_outputs(batch)
        out.update({k: batch[k] for k in TRUTH_KEYS if k in batch})
        return out

    def compute_metrics(self, out):
        y, score = out["label"], out["probs"][:, 1]
        metrics = lensfinding_metrics(y, score)
        base = super().compute_metrics(out)
        base.pop("roc_auc", None)  # identical to auroc
        metrics.update({k: v for k, v in base.items() if k not in metrics})
        edges = self.data_info.get("completeness_edges") or {}
        props = {name: (out[name], np.asarray(e)) for name, e in edges.items() if name in out}
        if props:
            metrics.update(completeness_metrics(y, score, props, FPR_THRESHOLD))
        return metrics

    # --- predict --------------------------------------------------------------------------
    def predict_outputs(self, batch):
        """Columns ``index`` ``(B,)`` (input position), ``score`` = p(lens) ``(B,)`` and ``pred_label``
        (through the exported inference network, :meth:`predict_logits`)."""
        score = self.predict_logits(batch["image"]).softmax(dim=1)[:, 1]
        return {"index": batch["idx"], "score": score, "pred_label": (score >= 0.5).long()}

    # --- plots ----------------------------------------------------------------------------
    def make_plots(self, out, plot_dir: Path) -> list[Path]:
        paths = super().make_plots(out, plot_dir)
        if "probs" not in out or not len(out["probs"]):
            return paths
        plot_dir = Path(plot_dir)
        y, score = out["label"], out["probs"][:, 1]
        paths.append(save(self._histogram_figure(y, score, out.get("kind")), plot_dir / "score_histograms.png", dpi=100))
        edges = self.data_info.get("completeness_edges") or {}
        if len(np.unique(y)) == 2 and any(k in out for k in edges):
            paths.append(save(self._completeness_figure(out, edges), plot_dir / "completeness.png", dpi=100))
        gallery = self._gallery_figure(out)
        if gallery is not None:
            paths.append(save(gallery, plot_dir / "gallery.png", dpi=100))
        return paths

    def _histogram_figure(self, y, score, kind):
        from cosmobench.sim.lensing import KINDS
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        bins = np.linspace(0, 1, 26)
        if kind is not None:
            groups = [(KINDS[k], kind == k) for k in np.unique(kind) if k >= 0]
        else:
            groups = [("lens", y == 1), ("non_lens", y == 0)]
        for name, sel in groups:
            ax.hist(score[sel], bins=bins, histtype="step", lw=1.5 if name == "lens" else 1.0,
                    label=f"{name} ({int(sel.sum())})", density=False)
        ax.set(yscale="log", xlabel="score p(lens)", ylabel="cutouts", title=f"{self.model_name}: score distributions")
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig

    def _completeness_figure(self, out, edges):
        plt = pyplot()
        y, score = out["label"], out["probs"][:, 1]
        thr = threshold_at_fpr(y, score, FPR_THRESHOLD)
        names = [k for k in edges if k in out]
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
        for ax, name in zip(axes[0], names):
            rows = completeness_binned(y, score, out[name], edges[name], thr)
            for lo, hi, n, comp in rows:
                ax.plot([lo, hi], [comp, comp], color="C0", lw=2)
                ax.text(0.5 * (lo + hi), comp + 0.02, str(n), ha="center", fontsize=7)
            ax.set(ylim=(0, 1.08), xlabel=PROPERTY_LABELS.get(name, name), ylabel="completeness")
        fig.suptitle(f"{self.model_name}: completeness at FPR = {FPR_THRESHOLD:g} (score ≥ {thr:.3g}); "
                     f"numbers = lenses per bin", fontsize=8)
        fig.tight_layout()
        return fig

    def _gallery_figure(self, out):
        """Top-scoring non-lenses and lowest-scoring lenses, from the test split of the trainer's
        datamodule (None when no datamodule with in-memory images is attached)."""
        trainer = self._trainer
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        ds = getattr(dm, "datasets", {}).get("test") if dm is not None else None
        arrays = getattr(ds, "arrays", None)
        if arrays is None or "image" not in arrays:
            return None
        from cosmobench.sim.lensing import KINDS
        y, score, idx = out["label"], out["probs"][:, 1], out["idx"]
        neg, pos = np.nonzero(y == 0)[0], np.nonzero(y == 1)[0]
        rows = [("top-scoring non-lenses", neg[np.argsort(-score[neg], kind="stable")[:N_GALLERY]]),
                ("lowest-scoring lenses", pos[np.argsort(score[pos], kind="stable")[:N_GALLERY]])]
        n = max(len(r) for _, r in rows)
        if n == 0:
            return None
        plt = pyplot()
        fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.6), squeeze=False)
        for r, (title, sel) in enumerate(rows):
            imgs = arrays["image"][torch.as_tensor(idx[sel], dtype=torch.long)] if len(sel) else None
            disp = self.display_images(imgs) if imgs is not None else []
            for j in range(n):
                ax = axes[r, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= len(sel):
                    ax.axis("off")
                    continue
                ax.imshow(disp[j], origin="lower")
                k = sel[j]
                label = KINDS[int(out["kind"][k])] if "kind" in out and out["kind"][k] >= 0 else \
                    ("lens" if y[k] else "non-lens")
                extra = f"\nθE {out['theta_e'][k]:.2f}\" m {out['source_mag'][k]:.1f}" \
                    if y[k] == 1 and "theta_e" in out else ""
                ax.set_title(f"{label} p={score[k]:.2f}{extra}", fontsize=6)
            axes[r, 0].set_ylabel(title, fontsize=7)
        fig.tight_layout()
        return fig
