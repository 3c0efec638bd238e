"""Image-classification base task, shared by ``morphology`` and ``lensfinding`` (and any task
that maps ``(B, C, H, W)`` images to one of ``K`` classes).

What a subclass gets:

* every network registered with kind ``image_classifier`` (:func:`cosmobench.nn.register_net`),
  built by :func:`cosmobench.nn.build_net` with ``n_bands``, ``n_classes``, ``image_size`` from
  ``data_info``;
* input normalisation ``(stretch(x / scale_b) - mean_b) / std_b`` with the train-split
  statistics of the datamodule's ``info()`` (:func:`cosmobench.images.band_statistics`:
  ``norm_scale``, ``norm_mean``, ``norm_std``, ``stretch``) held as buffers, so they live in
  the checkpoint;
* loss: cross-entropy on the hard ``label``, or on vote fractions ``votes`` ``(B, K)`` when the
  batch has them: ``-sum_k v_k log p_k``;
* metrics (:func:`cosmobench.metrics.classification.classification_metrics`): accuracy,
  balanced_accuracy, macro_f1, ece, nll; ``roc_auc`` and ``average_precision`` for ``K = 2``;
  ``rotation_invariance_error`` if :attr:`~ImageClassificationTask.invariance_metric`;
* ``predict`` columns ``p_<class>`` and ``pred_label``;
* plots: confusion matrix, reliability diagram, ROC curve (binary), and example images with
  their SmoothGrad saliency.

``data_info`` must hold ``n_bands``, ``image_size``, ``classes`` (names, ``K`` >= 2),
``norm_scale``/``norm_mean``/``norm_std`` (``C`` floats each) and ``stretch``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cosmobench.augment import N_D4, d4_transform
from cosmobench.images import apply_stretch
from cosmobench.metrics import classification as M
from cosmobench.plots import pyplot, save
from cosmobench.task import BaseTask

log = logging.getLogger(__name__)

INFO_KEYS = ("n_bands", "image_size", "classes", "norm_scale", "norm_mean", "norm_std", "stretch")


# ----------------------------------------------------------------------------- plot helpers


def confusion_figure(y: np.ndarray, pred: np.ndarray, names: list[str], title: str):
    """Confusion matrix (counts; colour = row-normalised fraction) as a matplotlib figure."""
    plt = pyplot()
    k = len(names)
    cm = M.confusion_matrix(y, pred, k)
    frac = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * k, 0.8 + 0.7 * k))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(f"{title}: accuracy {float(np.mean(pred == y)):.3f}", fontsize=9)
    fig.tight_layout()
    return fig


def roc_figure(y: np.ndarray, score: np.ndarray, title: str):
    """ROC curve (true- vs false-positive rate) of a binary classifier, AUC in the legend."""
    plt = pyplot()
    fpr, tpr, _ = M.roc_curve(y, score)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot(fpr, tpr, color="C0", label=f"AUC = {M.roc_auc(y, score):.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate", ylabel="true-positive rate", title=title)
    ax.legend(loc="lower right")
    return fig


def reliability_figure(probs: np.ndarray, y: np.ndarray, title: str, n_bins: int = 15):
    """Reliability diagram: accuracy vs mean top-class confidence in the :func:`~M.ece` bins."""
    plt = pyplot()
    r = M.reliability(probs, y, n_bins)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    centres = 0.5 * (r["edges"][1:] + r["edges"][:-1])
    ok = r["count"] > 0
    ax.bar(centres[ok], r["accuracy"][ok], width=1 / n_bins, edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top class)", ylabel="accuracy",
           title=f"{title}: ECE {M.ece(probs, y, n_bins):.3f}")
    return fig


# ----------------------------------------------------------------------------- task


def normalise_images(x: torch.Tensor, scale: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                     stretch: str) -> torch.Tensor:
    """Raw images ``(B, C, H, W)`` -> network input ``(stretch(x / scale) - mean) / std`` (per band)."""
    return (apply_stretch(x, scale, stretch) - mean) / std


class InputNormalisation(nn.Module):
    """:meth:`ImageClassificationTask.normalise` as the first layer of the inference network
    (so a compiled network fuses it): raw images ``(B, C, H, W)`` -> ``(stretch(x / scale) -
    mean) / std`` in float32, channels-last. Copies of the task's train-split statistics."""

    def __init__(self, scale: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, stretch: str):
        super().__init__()
        self.stretch = stretch
        for name, t in (("scale", scale), ("mean", mean), ("std", std)):
            self.register_buffer(name, t.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = normalise_images(x.float(), self.scale, self.mean, self.std, self.stretch)
        return z.contiguous(memory_format=torch.channels_last)


class ImageClassificationTask(BaseTask):
    """Base LightningModule of image classification (see the module docstring)."""

    #: report ``rotation_invariance_error`` (mean |p(Tx) - p(x)| over the 7 non-identity D4 elements)
    invariance_metric: bool = True
    #: test images (lowest ``idx``) kept for the example/saliency plot
    n_examples: int = 8

    def configure_model(self) -> nn.Module:
        from cosmobench.nn import build_net
        info = self.require_info(*INFO_KEYS)
        self.class_names = [str(c) for c in info["classes"]]
        self.stretch = str(info["stretch"])
        for name in ("scale", "mean", "std"):
            t = torch.tensor(info[f"norm_{name}"], dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer(f"norm_{name}", t)
        self._examples: dict[str, torch.Tensor] = {}
        return build_net(self.model_name, self.model_cfg, n_bands=int(info["n_bands"]),
                         n_classes=len(self.class_names), image_size=int(info["image_size"]))

    # --- initialisation and fine-tuning (cosmobench.transfer) ------------------------------
    #: names of the ``net`` tensors loaded by ``model.init_from``/``model.pretrained`` (frozen
    #: for ``model.freeze_epochs``), empty otherwise
    loaded_tensors: frozenset = frozenset()

    def setup(self, stage: str) -> None:
        """Before fitting: apply ``model.init_from`` / ``model.pretrained`` once
        (:func:`cosmobench.transfer.initialise`; a resumed run's checkpoint is restored after
        it), log the report and write ``init.json`` in the run dir (rank 0)."""
        super().setup(stage)
        if stage != "fit" or getattr(self, "_init_done", False):
            return
        from cosmobench.transfer import initialise, write_report
        report = initialise(self.net, self.model_cfg, self.model_name, self.class_names, self.data_info)
        self._init_done = True
        if report is None:
            return
        self.loaded_tensors = frozenset(report["loaded"])
        trainer = self._trainer
        if trainer is not None and trainer.global_rank == 0 and not trainer.fast_dev_run:
            write_report(report, trainer.default_root_dir)

    def _head_and_encoder(self) -> tuple[list, list]:
        from cosmobench.transfer import head_prefix
        head = head_prefix(self.net)
        named = list(self.net.named_parameters())
        return [p for n, p in named if n.startswith(head)], [p for n, p in named if not n.startswith(head)]

    def param_groups(self):
        """Two groups when ``model.head_lr_factor`` != 1: the head at that factor, the rest at 1."""
        factor = float(self.model_cfg["head_lr_factor"])
        if factor == 1.0:
            return super().param_groups()
        head, encoder = self._head_and_encoder()
        return [{"params": encoder, "lr_factor": 1.0}, {"params": head, "lr_factor": factor}]

    def frozen(self) -> bool:
        """Whether the loaded encoder is frozen in this epoch (``model.freeze_epochs``)."""
        return bool(self.loaded_tensors) and self.current_epoch < int(self.model_cfg["freeze_epochs"])

    def on_train_epoch_start(self) -> None:
        """Freeze (or unfreeze) the loaded encoder tensors: ``requires_grad`` off (no gradient,
        so no optimizer step or weight decay) and their batch norms in eval mode."""
        super().on_train_epoch_start()
        if not self.loaded_tensors:  # nothing was loaded: nothing to freeze
            return
        from cosmobench.transfer import head_prefix
        frozen, head = self.frozen(), head_prefix(self.net)
        for name, p in self.net.named_parameters():
            if name in self.loaded_tensors and not name.startswith(head):
                p.requires_grad_(not frozen)
        self._set_frozen_norms(frozen)

    def _set_frozen_norms(self, frozen: bool) -> None:
        if not frozen:
            return
        for name, m in self.net.named_modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and f"{name}.weight" in self.loaded_tensors:
                m.eval()

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # Lightning puts the module back in train mode after a validation inside an epoch
        if self.loaded_tensors and self.frozen():
            self._set_frozen_norms(True)

    # --- forward --------------------------------------------------------------------------
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images ``(B, C, H, W)`` -> network input ``(B, C, H, W)`` (train-split statistics)."""
        return normalise_images(x, self.norm_scale, self.norm_mean, self.norm_std, self.stretch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of raw images ``(B, C, H, W)`` (counts or pixel values)."""
        return self.net(self.normalise(x))

    def loss(self, batch):
        """Cross-entropy ``()`` of ``image`` ``(B, C, H, W)`` against ``label`` ``(B,)`` or
        ``votes`` ``(B, K)``."""
        logits = self(batch["image"])
        if "votes" in batch:
            return -(batch["votes"] * F.log_softmax(logits, dim=1)).sum(1).mean()
        return F.cross_entropy(logits, batch["label"])

    # --- test -----------------------------------------------------------------------------
    def test_outputs(self, batch):
        """``probs`` ``(B, K)``, ``label`` ``(B,)`` and, with :attr:`invariance_metric`,
        ``inv_err`` ``(B,)``."""
        x = batch["image"]
        probs = self(x).softmax(dim=1)
        out = {"probs": probs, "label": batch["label"]}
        if self.invariance_metric:
            transformed = torch.stack([self(d4_transform(x, g)).softmax(dim=1) for g in range(1, N_D4)])
            inv = M.rotation_invariance_error(probs.double().cpu().numpy(), transformed.double().cpu().numpy())
            out["inv_err"] = torch.as_tensor(inv, device=x.device)
        return out

    def test_step(self, batch, batch_idx):
        super().test_step(batch, batch_idx)
        keep = batch["idx"] < self.n_examples
        if keep.any():
            for k in ("image", "label", "idx"):
                prev = self._examples.get(k)
                new = batch[k][keep].detach().cpu()
                self._examples[k] = new if prev is None else torch.cat([prev, new])

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._examples = {}

    def compute_metrics(self, out):
        return M.classification_metrics(out["probs"], out["label"], out.get("inv_err"))

    # --- predict --------------------------------------------------------------------------
    def export_for_inference(self) -> nn.Module:
        """The network for ``cosmobench predict``, raw images in, logits out: the input
        normalisation (:class:`InputNormalisation`, float32) followed by an e2cnn network as plain
        ``torch.nn`` modules (:meth:`cosmobench.nn.equivariant.E2CNN.export`, batch norm folded
        into the convolutions), or any other network a copy with its eval-mode batch norms
        folded into the preceding convolutions (``torch.fx`` ``fuse``; unchanged if it cannot be
        traced); in eval mode, in channels-last memory format (oneDNN's fast convolution layout)."""
        net = self.net
        if callable(getattr(net, "export", None)):
            plain = net.export()
        else:
            from torch.fx.experimental.optimization import fuse
            plain = super().export_for_inference()
            try:
                plain = fuse(plain, inplace=True)
            except Exception as exc:  # noqa: BLE001 - fusing is an optimisation: keep the unfused copy
                log.info("predict: %s not fused for inference (%s: %s)", type(net).__name__, type(exc).__name__, exc)
        stretch = InputNormalisation(self.norm_scale, self.norm_mean, self.norm_std, self.stretch)
        return nn.Sequential(stretch, plain).eval().to(memory_format=torch.channels_last)

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 logits ``(B, K)`` of raw images ``(B, C, H, W)`` through
        :meth:`~cosmobench.task.BaseTask.inference_model` under
        :meth:`~cosmobench.task.BaseTask.inference_autocast` (bfloat16 by default on a CPU with
        native bfloat16; ``cosmobench predict --precision fp32`` turns it off), with
        ``torch.inference_mode``. Same as ``self(images)`` up to that precision."""
        net = self.inference_model()
        chunk = self.inference_chunk()
        with torch.inference_mode():
            x = images.to(self.device).float()
            parts = []
            for i in range(0, len(x), chunk):
                part = x[i:i + chunk]
                n = len(part)
                if self.inference_compile and n < chunk:  # one shape for the compiled network
                    part = torch.cat([part, part.new_ones((chunk - n, *part.shape[1:]))])
                with self.inference_autocast(x.device):
                    parts.append(net(part)[:n].float())
            return torch.cat(parts) if parts else x.new_zeros((0, len(self.class_names)))

    def inference_chunk(self) -> int:
        """Images per forward pass of :meth:`predict_logits` (a predict batch is run in chunks
        of this size): the network's ``inference_chunk`` attribute, else 64. Small chunks keep
        the activations in the CPU's cache: measured for e2cnn 3x64x64, bf16, 2 threads, batch
        256: 554 galaxies/s whole, 1026/s in chunks of 16 (the ReLU and pooling of the
        128-channel 64x64 maps are memory-bound)."""
        return int(getattr(self.net, "inference_chunk", 64))

    def predict_outputs(self, batch):
        """Columns ``p_<class>`` ``(B,)`` per class and ``pred_label`` ``(B,)`` (through
        :meth:`predict_logits`)."""
        probs = self.predict_logits(batch["image"]).softmax(dim=1)
        cols = {f"p_{name}": probs[:, k] for k, name in enumerate(self.class_names)}
        cols["pred_label"] = probs.argmax(dim=1)
        return cols

    # --- explanations ---------------------------------------------------------------------
    def smoothgrad(self, images: torch.Tensor, target: torch.Tensor, n_samples: int = 24,
                   noise: float = 0.15, seed: int = 0) -> torch.Tensor:
        """SmoothGrad saliency (Smilkov+2017) ``(B, H, W)`` of raw images ``(B, C, H, W)``: mean
        over ``n_samples`` noisy copies (Gaussian noise of ``noise`` x the per-image range of the
        normalised input) of the absolute gradient of the ``target`` ``(B,)`` logit w.r.t. the
        normalised input, summed over bands. Hand-written (a few lines; no extra dependency)."""
        was_training = self.training
        self.eval()
        g = torch.Generator().manual_seed(seed)
        with torch.inference_mode(False), torch.enable_grad():
            z = self.normalise(images.clone().to(self.device).float()).detach()
            span = (z.amax(dim=(1, 2, 3)) - z.amin(dim=(1, 2, 3))).view(-1, 1, 1, 1)
            sal = torch.zeros(z.shape[0], *z.shape[2:], device=z.device)
            for _ in range(n_samples):
                eps = torch.randn(z.shape, generator=g).to(z.device) * noise * span
                zi = (z + eps).requires_grad_(True)
                logit = self.net(zi).gather(1, target.view(-1, 1).to(z.device)).sum()
                (grad,) = torch.autograd.grad(logit, zi)
                sal += grad.abs().sum(dim=1)
        self.train(was_training)
        return (sal / n_samples).detach().cpu()

    def display_images(self, imgs: torch.Tensor) -> np.ndarray:
        """RGB-ish display images ``(B, H, W, 3)`` in [0, 1] from the normalised bands (reddest
        band -> R, i.e. the last band; one band -> grey)."""
        z = self.normalise(imgs.to(self.device).float()).detach().cpu().numpy()
        rgb = z[:, [-1, z.shape[1] // 2, 0]] if z.shape[1] >= 3 else np.repeat(z[:, :1], 3, axis=1)
        lo = np.percentile(rgb, 1, axis=(1, 2, 3), keepdims=True)
        hi = np.percentile(rgb, 99.5, axis=(1, 2, 3), keepdims=True)
        return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1).transpose(0, 2, 3, 1)

    # --- plots ----------------------------------------------------------------------------
    def make_plots(self, out, plot_dir: Path) -> list[Path]:
        plot_dir = Path(plot_dir)
        paths = []
        names = self.class_names
        if "probs" in out and len(out["probs"]):
            probs, y = out["probs"], out["label"]
            paths.append(save(confusion_figure(y, probs.argmax(1), names, self.model_name),
                              plot_dir / "confusion_matrix.png", dpi=100))
            paths.append(save(reliability_figure(probs, y, self.model_name), plot_dir / "reliability.png", dpi=100))
            if len(names) == 2 and len(np.unique(y)) == 2:
                paths.append(save(roc_figure(y, probs[:, 1], f"{self.model_name}: {names[1]} vs {names[0]}"),
                                  plot_dir / "roc.png", dpi=100))
        ex = self._examples
        if ex.get("image") is not None and len(ex["image"]):
            paths.append(self._examples_plot(ex, plot_dir / "examples_saliency.png"))
        return paths

    def _examples_plot(self, ex: dict[str, torch.Tensor], path: Path) -> Path:
        plt = pyplot()
        names = self.class_names
        order = torch.argsort(ex["idx"])
        imgs, labels = ex["image"][order].clone(), ex["label"][order].clone()
        with torch.no_grad():
            probs = self(imgs.to(self.device)).softmax(1).cpu()
        pred = probs.argmax(1)
        sal = self.smoothgrad(imgs, pred)
        disp = self.display_images(imgs)
        n = len(imgs)
        fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
        for i in range(n):
            axes[0, i].imshow(disp[i], origin="lower")
            axes[0, i].set_title(f"true {names[labels[i]]}\npred {names[pred[i]]} ({probs[i, pred[i]]:.2f})",
                                 fontsize=6, color="green" if pred[i] == labels[i] else "red")
            axes[1, i].imshow(sal[i], origin="lower", cmap="inferno")
            for a in axes[:, i]:
                a.set_xticks([])
                a.set_yticks([])
        axes[1, 0].set_ylabel("SmoothGrad", fontsize=7)
        fig.tight_layout()
        return save(fig, path, dpi=100)


__all__ = ["ImageClassificationTask", "INFO_KEYS", "confusion_figure", "roc_figure", "reliability_figure"]
