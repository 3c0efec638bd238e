"""Task ``morphology``: galaxy morphology classification (LightningModule).

Models (``model.name``): ``e2cnn`` (E(2)-equivariant CNN, group ``model.group``, invariant by
group pooling), ``cnn`` (plain CNN of comparable size), ``resnet18`` (torchvision, random
init) -- see :mod:`cosmobench.nn.morphology_nets`.

Input normalisation ``(stretch(x / scale_b) - mean_b) / std_b`` uses the train-split
statistics from the datamodule's ``info()``; they are buffers, so they live in the checkpoint.

Loss: cross-entropy on the hard label, or on the vote fractions when the batch has ``votes``
(``data.label_type=soft``): ``-sum_k v_k log p_k``. Metrics always use the hard labels:
accuracy (primary), balanced_accuracy, macro_f1, ece (15 bins), nll and
rotation_invariance_error (mean |p(Tx) - p(x)| over the 7 non-identity rot90/flip transforms,
classes and test images; definitions in :mod:`cosmobench.metrics.classification`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cosmobench.augment import d4_transform
from cosmobench.metrics.classification import (classification_metrics, confusion_matrix,
                                               rotation_invariance_error)
from cosmobench.plots import pyplot, save
from cosmobench.task import BaseTask

N_EXAMPLES = 8


class MorphologyTask(BaseTask):
    def configure_model(self) -> nn.Module:
        from cosmobench.nn.morphology_nets import build_net
        info = self.require_info("n_bands", "image_size", "classes", "norm_scale", "norm_mean", "norm_std")
        self.class_names = list(info["classes"])
        self.stretch = info.get("stretch", "asinh")
        for name in ("scale", "mean", "std"):
            t = torch.tensor(info[f"norm_{name}"], dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer(f"norm_{name}", t)
        self._examples: dict[str, torch.Tensor] = {}
        return build_net(self.model_name, self.model_cfg, int(info["n_bands"]), len(self.class_names),
                         int(info["image_size"]))

    # --- forward --------------------------------------------------------------------------
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        z = x / self.norm_scale
        if self.stretch == "asinh":
            z = torch.asinh(z)
        return (z - self.norm_mean) / self.norm_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of raw images ``(B, C, H, W)`` (counts or pixel values)."""
        return self.net(self.normalise(x))

    def loss(self, batch):
        logits = self(batch["image"])
        if "votes" in batch:
            return -(batch["votes"] * F.log_softmax(logits, dim=1)).sum(1).mean()
        return F.cross_entropy(logits, batch["label"])

    # --- test -----------------------------------------------------------------------------
    def test_outputs(self, batch):
        x = batch["image"]
        probs = self(x).softmax(dim=1)
        transformed = torch.stack([self(d4_transform(x, g)).softmax(dim=1) for g in range(1, 8)])
        inv = rotation_invariance_error(probs.double().cpu().numpy(), transformed.double().cpu().numpy())
        return {"probs": probs, "label": batch["label"], "inv_err": torch.as_tensor(inv, device=x.device)}

    def test_step(self, batch, batch_idx):
        super().test_step(batch, batch_idx)
        keep = batch["idx"] < N_EXAMPLES
        if keep.any():
            for k in ("image", "label", "idx"):
                prev = self._examples.get(k)
                new = batch[k][keep].detach().cpu()
                self._examples[k] = new if prev is None else torch.cat([prev, new])

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._examples = {}

    def compute_metrics(self, out):
        return classification_metrics(out["probs"], out["label"], out["inv_err"])

    # --- predict --------------------------------------------------------------------------
    def predict_outputs(self, batch):
        probs = self(batch["image"].to(self.device)).softmax(dim=1)
        cols = {f"p_{name}": probs[:, k] for k, name in enumerate(self.class_names)}
        cols["pred_label"] = probs.argmax(dim=1)
        return cols

    # --- plots ----------------------------------------------------------------------------
    def smoothgrad(self, images: torch.Tensor, target: torch.Tensor, n_samples: int = 24,
                   noise: float = 0.15, seed: int = 0) -> torch.Tensor:
        """SmoothGrad saliency (Smilkov+2017) ``(B, H, W)``: mean over ``n_samples`` noisy copies
        (Gaussian noise of ``noise`` x the per-image range of the normalised input) of the
        absolute gradient of the target logit w.r.t. the normalised input, summed over bands."""
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

    def make_plots(self, out, plot_dir: Path) -> list[Path]:
        plt = pyplot()

        plot_dir = Path(plot_dir)
        paths = []
        names = self.class_names
        k = len(names)
        if "probs" in out and len(out["probs"]):
            pred = out["probs"].argmax(1)
            cm = confusion_matrix(out["label"], pred, k)
            frac = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
            fig, ax = plt.subplots(figsize=(1.0 + 0.7 * k, 0.8 + 0.7 * k))
            ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if frac[i, j] > 0.5 else "black")
            ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(k), names, fontsize=7)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            acc = float(np.mean(pred == out["label"]))
            ax.set_title(f"{self.model_name}: accuracy {acc:.3f}", fontsize=9)
            fig.tight_layout()
            paths.append(save(fig, plot_dir / "confusion_matrix.png", dpi=100))
        ex = self._examples
        if ex.get("image") is not None and len(ex["image"]):
            order = torch.argsort(ex["idx"])
            imgs, labels = ex["image"][order].clone(), ex["label"][order].clone()
            with torch.no_grad():
                probs = self(imgs.to(self.device)).softmax(1).cpu()
            pred = probs.argmax(1)
            sal = self.smoothgrad(imgs, pred)
            disp = self._display(imgs)
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
            paths.append(save(fig, plot_dir / "examples_saliency.png", dpi=100))
        return paths

    def _display(self, imgs: torch.Tensor) -> np.ndarray:
        """RGB-ish display images in [0, 1] from the normalised bands (reddest band -> R)."""
        z = self.normalise(imgs.to(self.device).float()).detach().cpu().numpy()
        if z.shape[1] >= 3:
            rgb = z[:, [-1, z.shape[1] // 2, 0]]
        else:
            rgb = np.repeat(z[:, :1], 3, axis=1)
        lo = np.percentile(rgb, 1, axis=(1, 2, 3), keepdims=True)
        hi = np.percentile(rgb, 99.5, axis=(1, 2, 3), keepdims=True)
        return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1).transpose(0, 2, 3, 1)
