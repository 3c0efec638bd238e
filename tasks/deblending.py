"""Deblending: separate the light of overlapping galaxies in multi-band scenes.

Both models share the detector, the matching and the metrics
(:mod:`cosmobench.metrics.deblending`), so they differ only in how each detected source's
isolated image is estimated:

* **Detection** (both): SEP on the band-summed, background-subtracted image
  (:class:`cosmobench.detection.Detector`: ``model.detect_thresh`` sigma, ``model.minarea``,
  multi-threshold deblending ``model.deblend_nthresh`` / ``model.deblend_cont``, matched
  filter = the band-mean PSF), or the positions of a user catalogue (``data.catalog``).
* ``unet`` (:class:`UNetDeblender`): a learned refinement of segmentation photometry. Per
  detected source a :class:`~cosmobench.nn.unet.UNet` (no normalisation layers) gets
  ``asinh(image / s)`` (``C`` bands), a unit Gaussian blob (sigma ``model.blob_sigma`` px) at the
  source's position, blobs at all other detections, and the SEP segmentation as two masks
  (the source's own segment; the other sources' segments), and outputs per band a logit map
  ``l``. Every pixel of the observed blend is shared between the sources of the scene and the
  background: ``share_k = exp(L_k) / (1 + sum_j exp(L_j))`` with
  ``L_k = l_k + model.seg_prior * (2 own_k - 1)`` (:func:`scene_softmax`), and source ``k``'s
  isolated image is ``share_k * image`` (+ ``model.residual_scale * r_k * s``, an optional
  unconstrained residual output, 0 by default). The shares are flux-conserving (they sum to at
  most 1 in every pixel) and, with the zero-initialised output layer, start as SEP's
  segmentation photometry (``share ~ 0.95`` in the own segment); training learns where to move
  light between neighbours and how far to follow the wings. ``s`` = the mean pixel value (over
  bands) in the 5x5 px box at the position, at least the background noise per pixel, so the
  inputs are O(1) near the source whatever its brightness and the flux units. The net sees
  only the observed scene and what the detector derived from it; the truth enters only the
  loss. Applied to every detection.
  Trained on whole scenes (``model.train_positions``): ``truth`` (default) at the true
  positions, jittered by ``model.position_jitter`` px, each source but one per scene dropped
  with probability ``model.neighbour_dropout`` (a missed detection: its light stays in the
  blend), the SEP segments split between the kept positions; or ``detections``: the SEP
  detections as at test time, each with the truth it is matched to as target. Loss per source
  (:func:`source_loss`): the bounded image error ``sum (p - t)^2 / (sum t^2 + sum p^2)`` plus
  ``model.flux_weight`` times ``mean_b |F_p,b - F_t,b| / F_t,b``. Measured on
  ``experiments/deblending/cpu.yaml`` (seed 0, 8 epochs of 1,200 scenes): the unconstrained
  residual (``residual_scale`` 0.1) took over from the shares (their flux fell to ~10 % of the
  truth; isolated flux_mape 18 %); ``detections`` training learns to take less light from any
  segment that might hide a second galaxy (blended flux_mape 56 % but isolated 19 %, vs SEP's
  108 % / 8 %); ``flux_weight`` 3 -> 10 moved the isolated flux_mape from 11 % to SEP's 8 %; 20 (full
  cpu.yaml) collapsed every share to 0 in the first epoch in 1 of 3 seeds (an absorbing state
  of the softmax), so 10 is kept.
* ``sep`` (:class:`SepDeblender`, a :class:`~cosmobench.task.FittedBaseline` with nothing to
  fit): SEP's segmentation map; each source's isolated image is the blend masked to its
  segment (segmentation-map photometry, every pixel to one source). With a catalogue, each
  segment is split between the catalogue positions inside it (nearest position).

Test metrics: :mod:`cosmobench.metrics.deblending` (primary ``flux_mape``, percent).
``cosmobench predict deblending`` writes a catalogue (one row per source: ``scene``, ``id``,
``x``, ``y`` (0-based px), ``flux_<b>`` per band, counts of the input) as CSV/FITS/... and the
deblended images (``images`` ``(N_sources, C, H, W)`` + ``scene``/``id``) next to it as
``<stem>_images.npz`` (``<stem>_images.fits`` for a FITS catalogue).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from cosmobench.detection import Detector, assign_segments, segment_images
from cosmobench.errors import InputError
from cosmobench.metrics.deblending import deblending_metrics, measure_scene
from cosmobench.nn.unet import UNet
from cosmobench.plots import pyplot, save
from cosmobench.task import BaseTask, FittedBaseline

N_EXAMPLES = 4   # scenes kept for the example plot


def blobs(xy: torch.Tensor, shape: tuple[int, int], sigma: float) -> torch.Tensor:
    """Unit-peak Gaussian blobs at positions ``xy`` ``(..., K, 2)`` (NaN = absent) summed over
    ``K``: ``(..., H, W)``."""
    h, w = shape
    ys = torch.arange(h, dtype=xy.dtype, device=xy.device)
    xs = torch.arange(w, dtype=xy.dtype, device=xy.device)
    ok = torch.isfinite(xy).all(-1)
    p = torch.where(ok[..., None], xy, torch.full_like(xy, -1e4))
    gx = torch.exp(-0.5 * ((xs - p[..., 0:1]) / sigma) ** 2)            # (..., K, W)
    gy = torch.exp(-0.5 * ((ys - p[..., 1:2]) / sigma) ** 2)            # (..., K, H)
    return torch.einsum("...kh,...kw->...hw", gy, gx)


def segment_channels(seg: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``(S, 2, H, W)`` float: per source ``index`` ``(S,)`` (0-based) of its scene's
    segmentation map ``seg`` ``(S, H, W)`` (label ``k + 1`` = source ``k``, 0 = background),
    1 in its own segment, and 1 in the other sources' segments."""
    own = seg == (index + 1).view(-1, 1, 1)
    return torch.stack([own, (seg > 0) & ~own], dim=1).float()


def scene_softmax(logits: torch.Tensor, scene: torch.Tensor, n_scenes: int) -> torch.Tensor:
    """Per-pixel shares ``(S, ...)`` of the sources of each scene: a softmax over the sources
    with the same ``scene`` index ``(S,)`` (long, ``0..n_scenes-1``) and a background whose
    logit is 0, ``exp(l_k) / (1 + sum_{j in scene} exp(l_j))``; the shares of one scene sum to
    at most 1 in every pixel (flux conservation)."""
    idx = scene.view(-1, *([1] * (logits.ndim - 1))).expand_as(logits)
    top = torch.zeros((n_scenes,) + tuple(logits.shape[1:]), dtype=logits.dtype, device=logits.device)
    top = top.scatter_reduce(0, idx, logits.detach(), reduce="amax", include_self=True)   # >= 0 (background)
    e = torch.exp(logits - top[scene])
    denom = torch.exp(-top).index_add(0, scene, e)
    return e / denom[scene]


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


class UNetDeblender(nn.Module):
    """Isolated images of the detected sources of a scene from (blend, positions) (module
    docstring): per source a U-Net gives per-band share logits and a residual; the shares are a
    softmax over the sources of the scene (+ background)."""

    def __init__(self, n_bands: int, base_channels: int, depth: int, norm: str, blob_sigma: float,
                 residual_scale: float = 0.0, seg_prior: float = 3.0):
        super().__init__()
        self.n_bands, self.blob_sigma, self.residual_scale = n_bands, float(blob_sigma), float(residual_scale)
        self.seg_prior = float(seg_prior)
        self.unet = UNet(n_bands + 4, 2 * n_bands, base_channels=base_channels, depth=depth, norm=norm)
        nn.init.zeros_(self.unet.head.weight)    # start from the segmentation-map shares and no residual
        nn.init.zeros_(self.unet.head.bias)

    @staticmethod
    def scale(image: torch.Tensor, variance: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """Per-source scale ``s`` ``(S,)`` (module docstring) of scenes ``image`` ``(S, C, H, W)``:
        the mean pixel value over the bands and the 5x5 px box at ``xy``, at least the
        background noise per pixel (root of the band-mean median variance)."""
        s, _, h, w = image.shape
        box = torch.nn.functional.avg_pool2d(image.mean(1)[:, None], 5, stride=1, padding=2,
                                             count_include_pad=False)[:, 0]
        ix = xy[:, 0].round().long().clamp(0, w - 1)
        iy = xy[:, 1].round().long().clamp(0, h - 1)
        level = box[torch.arange(s), iy, ix]
        # contiguous: torch's median returns NaN on a flattened broadcast (stride-0) variance
        noise = variance.contiguous().flatten(2).median(-1).values.mean(1).clamp_min(1e-30).sqrt()
        return torch.maximum(level, noise)

    def forward(self, image: torch.Tensor, variance: torch.Tensor, xy: torch.Tensor, others: torch.Tensor,
                segments: torch.Tensor, scene: torch.Tensor | None = None) -> torch.Tensor:
        """``image``/``variance`` ``(S, C, H, W)`` (the scene of each source), ``xy`` ``(S, 2)``,
        ``others`` ``(S, K, 2)`` (the other sources of its scene, NaN padding), ``segments``
        ``(S, 2, H, W)`` (1 in the source's own segment / in the other sources' segments, else
        0), ``scene`` ``(S,)`` the scene index of each source (shares are normalised within a
        scene; ``None``: all sources belong to one scene) -> isolated images ``(S, C, H, W)`` in
        the units of ``image``."""
        if scene is None:
            scene = torch.zeros(len(xy), dtype=torch.long, device=xy.device)
        s = self.scale(image, variance, xy)[:, None, None, None]
        shape = tuple(image.shape[-2:])
        segments = segments.to(image.dtype)
        out = self.unet(torch.cat([torch.asinh(image / s), blobs(xy[:, None], shape, self.blob_sigma)[:, None],
                                   blobs(others, shape, self.blob_sigma)[:, None], segments], dim=1))
        logits = out[:, :self.n_bands] + self.seg_prior * (2 * segments[:, :1] - 1)
        share = scene_softmax(logits, scene, int(scene.max()) + 1 if len(scene) else 1)
        return share * image + self.residual_scale * out[:, self.n_bands:] * s


class SepDeblender(FittedBaseline):
    """Segmentation-map deblending with SEP (module docstring); nothing to fit."""

    def __init__(self):
        super().__init__()
        self.fitted = True

    def fit(self, data: dict[str, np.ndarray]) -> None:
        return None

    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        return None


class DeblendingTask(BaseTask):
    """Deblending task (module docstring). ``data_info`` (:meth:`DeblendingDataModule.info`)
    supplies ``n_bands``, the detection filter and the evaluation protocol; ``sep`` also runs
    without it (``cosmobench predict -m sep`` on any number of bands)."""

    def configure_model(self) -> nn.Module:
        cfg = self.model_cfg
        self.detector = Detector(thresh=float(cfg["detect_thresh"]), minarea=int(cfg["minarea"]),
                                 deblend_nthresh=int(cfg["deblend_nthresh"]),
                                 deblend_cont=float(cfg["deblend_cont"]), max_sources=int(cfg["max_sources"]))
        self.examples: list[dict[str, np.ndarray]] = []
        if self.model_name == "sep":
            return SepDeblender()
        if self.model_name == "unet":
            info = self.require_info("n_bands")
            return UNetDeblender(int(info["n_bands"]), int(cfg["base_channels"]), int(cfg["depth"]), cfg["norm"],
                                 float(cfg["blob_sigma"]), float(cfg["residual_scale"]), float(cfg["seg_prior"]))
        raise self.unknown_model()

    # --- training (unet) --------------------------------------------------------------
    def _training_sources(self, batch: dict[str, torch.Tensor]):
        """The sources of a batch as the net sees them, with their targets.

        ``model.train_positions=detections`` (default): the SEP detections of every scene, as
        at test time; a detection's target is the true isolated image of the true source it
        is matched to (:func:`~cosmobench.metrics.deblending.match_sources`, ``data.match_radius``);
        unmatched detections take their share of the light but carry no loss (``has_target``
        False). ``truth``: the true positions (jittered by ``model.position_jitter`` px while
        training; each source but one per scene dropped with probability
        ``model.neighbour_dropout``, a missed detection whose light stays in the blend), the
        SEP segments split between them (:func:`~cosmobench.detection.assign_segments`).
        Returns ``image``, ``variance`` ``(S, C, H, W)``, ``xy`` ``(S, 2)``, ``others``
        ``(S, K, 2)``, ``segments`` ``(S, 2, H, W)``, ``scene`` ``(S,)``, ``target``
        ``(S, C, H, W)`` and ``has_target`` ``(S,)`` bool."""
        from cosmobench.metrics.deblending import match_sources

        mode = self.model_cfg["train_positions"]
        radius = float(self.require_info("match_radius")["match_radius"])
        n_true = batch["n_true"].cpu()
        rows: dict[str, list] = {k: [] for k in ("b", "xy", "seg", "t", "has")}
        jitter = float(self.model_cfg["position_jitter"]) if self.training else 0.0
        dropout = float(self.model_cfg["neighbour_dropout"]) if self.training else 0.0
        for b in range(len(n_true)):
            n = int(n_true[b])
            true_xy = batch["truth_xy"][b, :n].double().cpu().numpy()
            if mode == "truth":
                xy = true_xy + jitter * np.random.standard_normal(true_xy.shape)
                keep = np.random.random(n) >= dropout
                keep[np.random.randint(n)] = True
                xy, t = xy[keep], np.flatnonzero(keep)
                xy_seg, seg = self.segmentation(batch["image"][b], batch["variance"][b], batch["mask"][b], xy)
                has = np.ones(len(xy), bool)
            else:
                xy, seg = self.segmentation(batch["image"][b], batch["variance"][b], batch["mask"][b])
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

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.is_baseline:  # nothing is trained: val_loss = 0 keeps the checkpoint logic uniform
            return torch.zeros((), device=batch["image"].device)
        image, variance, xy, others, segments, scene, target, has = self._training_sources(batch)
        pred = self.net(image, variance, xy, others, segments, scene)[has]
        target = target[has]
        if len(target) == 0:   # no detection matched in the whole batch
            return pred.sum() * 0.0
        return source_loss(pred, target, float(self.model_cfg["flux_weight"])).mean()

    # --- deblending one scene (both models) --------------------------------------------
    def _kernel(self, psfs: np.ndarray | None = None) -> np.ndarray | None:
        if psfs is not None:
            from cosmobench.datamodules.deblending import mean_psf_kernel
            return mean_psf_kernel(psfs)
        k = self.data_info.get("psf_kernel")
        return None if k is None else np.asarray(k, dtype=np.float64)

    def segmentation(self, image: torch.Tensor, variance: torch.Tensor, mask: torch.Tensor,
                     positions: np.ndarray | None = None, psfs: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """SEP detection of one ``(C, H, W)`` scene: positions ``(M, 2)`` and the segmentation
        map ``(H, W)`` (label ``k + 1`` = source ``k``); with ``positions`` given, those and the
        SEP segments split between them (:func:`~cosmobench.detection.assign_segments`)."""
        img = image.detach().cpu().double().numpy()
        var = variance.detach().cpu().double().numpy()
        m = mask.detach().cpu().numpy().astype(bool)
        det_xy, seg = self.detector(img, var, m if m.any() else None, self._kernel(psfs))
        if positions is not None:
            det_xy = np.asarray(positions, dtype=float).reshape(-1, 2)
            seg = assign_segments(seg, det_xy)
        return det_xy, seg

    def deblend_scene(self, image: torch.Tensor, variance: torch.Tensor, mask: torch.Tensor,
                      positions: np.ndarray | None = None, psfs: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(M, 2)`` and isolated images ``(M, C, H, W)`` (numpy, units of ``image``)
        of the sources of one ``(C, H, W)`` scene: SEP detections, or ``positions`` if given."""
        det_xy, seg = self.segmentation(image, variance, mask, positions, psfs)
        if self.is_baseline:
            return det_xy, segment_images(image.detach().cpu().double().numpy(), seg, len(det_xy))
        n = len(det_xy)
        if n == 0:
            return det_xy, np.zeros((0,) + tuple(image.shape))
        xy = torch.as_tensor(det_xy, dtype=torch.float32, device=self.device)
        others = xy[None].repeat(n, 1, 1)
        others[torch.arange(n), torch.arange(n)] = float("nan")
        x = image.float().to(self.device)[None].expand(n, -1, -1, -1)
        v = variance.float().to(self.device)[None].expand(n, -1, -1, -1)
        segments = segment_channels(torch.as_tensor(seg, device=self.device)[None].expand(n, -1, -1),
                                    torch.arange(n, device=self.device))
        with torch.no_grad():
            pred = self.net(x, v, xy, others, segments)
        return det_xy, pred.double().cpu().numpy()

    # --- test -------------------------------------------------------------------------
    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.examples = []

    def test_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        info = self.require_info("match_radius", "moment_sigma")
        n_max, c = batch["truth_flux"].shape[1:]
        rows: dict[str, list] = {k: [] for k in ("matched", "flux_true", "flux_pred", "e_true", "e_pred",
                                                 "recon_mse", "ssim", "n_det")}
        for s in range(len(batch["idx"])):
            n = int(batch["n_true"][s])
            det_xy, pred = self.deblend_scene(batch["image"][s], batch["variance"][s], batch["mask"][s])
            truth = batch["truth_images"][s, :n].double().cpu().numpy()
            true_xy = batch["truth_xy"][s, :n].double().cpu().numpy()
            res = measure_scene(truth, true_xy, det_xy, pred, float(info["match_radius"]), float(info["moment_sigma"]))
            pad = n_max - n
            for k in rows:
                if k == "n_det":
                    rows[k].append(np.asarray(res[k]))
                    continue
                v = np.asarray(res[k], dtype=np.float64)
                rows[k].append(np.concatenate([v, np.full((pad,) + v.shape[1:], np.nan)]))
            if len(self.examples) < N_EXAMPLES:
                self.examples.append({"image": batch["image"][s].cpu().numpy(), "truth": truth, "true_xy": true_xy,
                                      "det_xy": det_xy, "pred": pred.astype(np.float32), "det_index": res["det_index"],
                                      "blendedness": batch["blendedness"][s, :n].cpu().numpy()})
        out = {k: torch.as_tensor(np.stack(v)) for k, v in rows.items()}
        out["blendedness"] = batch["blendedness"].double()
        out["valid"] = torch.arange(n_max)[None] < batch["n_true"].cpu()[:, None]
        return {k: v.to(self.device) for k, v in out.items()}

    def compute_metrics(self, out: dict[str, np.ndarray]) -> dict[str, float]:
        info = self.require_info("blend_bins", "blended_threshold")
        valid = out["valid"].astype(bool)
        per_source = {k: out[k][valid] for k in ("flux_true", "flux_pred", "e_true", "e_pred", "recon_mse", "ssim",
                                                 "blendedness")}
        per_source["matched"] = out["matched"][valid] > 0.5
        return deblending_metrics(per_source, int(out["n_det"].sum()), info["blend_bins"],
                                  float(info["blended_threshold"]))

    # --- predict ----------------------------------------------------------------------
    def predict_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per scene: the number of sources found (the full output is :meth:`write_predictions`)."""
        return {"n_sources": torch.tensor([len(self._predict_scene(batch, s)[0]) for s in range(len(batch["idx"]))])}

    def _predict_scene(self, batch: dict[str, torch.Tensor], s: int, psfs: np.ndarray | None = None):
        n_bands = int(self.data_info.get("n_bands", batch["image"].shape[1]))
        if not self.is_baseline and batch["image"].shape[1] != n_bands:
            raise InputError(f"the input has {batch['image'].shape[1]} bands but this model was trained on {n_bands}")
        positions = None
        if "cat_xy" in batch:
            positions = batch["cat_xy"][s, :int(batch["n_cat"][s])].double().cpu().numpy()
        return self.deblend_scene(batch["image"][s], batch["variance"][s], batch["mask"][s], positions, psfs)

    def write_predictions(self, loader: Iterable[dict[str, torch.Tensor]], output: Path) -> list[Path]:
        """Catalogue (one row per source) at ``output`` and the deblended images beside it
        (module docstring). Both files are written only after every scene succeeded."""
        from cosmobench.io import write_table

        output = Path(output)
        psfs = getattr(getattr(loader, "dataset", None), "psfs", None)
        cols: dict[str, list] = {"scene": [], "id": [], "x": [], "y": []}
        fluxes, images = [], []
        for batch in loader:
            for s in range(len(batch["idx"])):
                xy, iso = self._predict_scene(batch, s, psfs)
                scene = int(batch["idx"][s])
                cols["scene"] += [scene] * len(xy)
                cols["id"] += list(range(len(xy)))
                cols["x"] += list(xy[:, 0])
                cols["y"] += list(xy[:, 1])
                fluxes.append(iso.sum(axis=(-2, -1)))
                images.append(iso.astype(np.float32))
        if not cols["scene"]:
            raise InputError("no sources were detected in the input (or the catalogue is empty)")
        flux = np.concatenate(fluxes)
        table = {k: np.asarray(v) for k, v in cols.items()}
        table.update({f"flux_{b}": flux[:, b] for b in range(flux.shape[1])})
        stack = np.concatenate(images)
        fits_out = output.name.lower().endswith((".fits", ".fit", ".fits.gz"))
        img_path = output.with_name(output.name.split(".")[0] + ("_images.fits" if fits_out else "_images.npz"))
        tmp = img_path.with_name(img_path.name + ".tmp")
        try:
            if fits_out:
                from astropy.io import fits
                fits.HDUList([fits.PrimaryHDU(stack), fits.BinTableHDU.from_columns(
                    [fits.Column(name="scene", format="K", array=table["scene"]),
                     fits.Column(name="id", format="K", array=table["id"])], name="SOURCES")]).writeto(tmp)
            else:
                with open(tmp, "wb") as fh:
                    np.savez(fh, images=stack, scene=table["scene"], id=table["id"])
            write_table(table, output)
            os.replace(tmp, img_path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return [output, img_path]

    # --- plots ------------------------------------------------------------------------
    def make_plots(self, out: dict[str, np.ndarray], plot_dir: Path) -> list[Path]:
        plot_dir = Path(plot_dir)
        paths = [self._plot_flux_vs_blendedness(out, plot_dir / "flux_error_vs_blendedness.png")]
        if self.examples:
            paths.append(self._plot_examples(plot_dir / "examples.png"))
        return paths

    def _plot_flux_vs_blendedness(self, out: dict[str, np.ndarray], path: Path) -> Path:
        plt = pyplot()
        valid = out["valid"].astype(bool) & (out["matched"] > 0.5)
        beta = out["blendedness"][valid]
        delta = 100 * (out["flux_pred"][valid] - out["flux_true"][valid]) / out["flux_true"][valid]   # (n, C)
        fig, ax = plt.subplots(figsize=(6, 4))
        for b in range(delta.shape[1] if delta.ndim == 2 else 0):
            ax.scatter(np.clip(beta, 1e-4, None), delta[:, b], s=4, alpha=0.4, label=f"band {b}")
        edges = np.asarray(self.data_info.get("blend_bins", [0, 0.01, 0.1, 0.3, 1.0]), dtype=float)
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
        ax.set_title(f"{self.model_name}: flux error vs blendedness (matched sources)")
        ax.legend(fontsize=7, markerscale=2)
        return save(fig, path)

    def _plot_examples(self, path: Path) -> Path:
        """Per example scene: the blend, then per true source its truth / prediction / residual
        (band-summed)."""
        plt = pyplot()
        n_rows = sum(len(e["truth"]) for e in self.examples)
        fig, axes = plt.subplots(n_rows, 4, figsize=(9, 2.2 * n_rows), squeeze=False)
        r = 0
        for k, e in enumerate(self.examples):
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
        fig.suptitle(f"{self.model_name}: example scenes (band-summed)", fontsize=9, y=1 - 0.15 / height)
        return save(fig, path)


__all__ = ["DeblendingTask", "UNetDeblender", "SepDeblender", "blobs", "scene_softmax", "segment_channels", "source_loss"]
