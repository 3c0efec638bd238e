"""Deblending: separate the light of overlapping galaxies in multi-band scenes.

All models share the detection stage, the matching and the metrics
(:mod:`cosmobench.metrics.deblending`, protocol in the ``eval`` node), so they differ only in
how each detected source's isolated image is estimated:

* **Detection** (every model, ``model.detector``, settings
  :class:`~cosmobench.detection.DetectionSettings`): ``sep``, SEP on the band-summed,
  background-subtracted image (:class:`cosmobench.detection.Detector`: ``model.detect_thresh``
  sigma, ``model.minarea``, multi-threshold deblending ``model.deblend_nthresh`` /
  ``model.deblend_cont``, matched filter = the band-mean PSF); or ``learned``, the peaks of a
  centre heat map (:class:`cosmobench.nn.detector.CenterNetDetector`), trained on the true
  centroids of the training split before the model's own training
  (:meth:`DeblendingTask.train_detector`), SEP's segments split between its positions; or the
  positions of a user catalogue (``data.catalog``, predict).
* ``noiseless`` (:class:`cosmobench.nn.deblender.NoiselessDeblender`, kind ``deblender``):
  per detection the isolated, noise-free, PSF-convolved image; same inputs, training and loss
  as ``unet`` (below), whose targets are the simulator's noiseless isolated images.
* ``modelfit`` (:class:`ModelFitDeblender`, :mod:`cosmobench.modelfit`): a simultaneous,
  variance-weighted fit of PSF-convolved Sérsic / bulge+disk profiles to all detections of a
  scene, batched over the scenes of a test batch; nothing to fit on the training split.
* ``unet`` (:class:`cosmobench.nn.deblender.UNetDeblender`, a network of kind ``deblender``):
  a learned refinement of segmentation photometry; per detected source it shares every pixel
  of the blend between the sources of the scene and the background (flux-conserving shares
  that start as SEP's segmentation photometry). It sees only the observed scene and what the
  detector derived from it; the truth enters only the loss. Applied to every detection.
  Trained on whole scenes (:class:`DeblenderTraining`, ``model.train_positions``,
  :mod:`cosmobench.blend_training`): ``truth``
  (default) at the true positions, jittered by ``model.position_jitter`` px, each source but
  one per scene dropped with probability ``model.neighbour_dropout`` (a missed detection: its
  light stays in the blend), the SEP segments split between the kept positions; or
  ``detections``: the SEP detections as at test time, each with the truth it is matched to as
  target. Loss per source (:func:`cosmobench.blend_training.source_loss`): the bounded image error
  ``sum (p - t)^2 / (sum t^2 + sum p^2)`` plus ``model.flux_weight`` times
  ``mean_b |F_p,b - F_t,b| / F_t,b``.
* ``sep`` (:class:`SepDeblender`, a :class:`~cosmobench.task.FittedBaseline` with nothing to
  fit): SEP's segmentation map; each source's isolated image is the blend masked to its
  segment (segmentation-map photometry, every pixel to one source). With a catalogue, each
  segment is split between the catalogue positions inside it (nearest position).

Test metrics: :mod:`cosmobench.metrics.deblending` (primary ``flux_mape``, percent); the
truth blendedness of each source is measured at test time from its isolated image
(footprint threshold ``eval.footprint_nsigma`` band-summed noise sigmas).
``cosmobench predict deblending`` writes a catalogue (one row per source: ``scene``, ``id``,
``x``, ``y`` (0-based px), ``flux_<filter>`` per band (the cutout's filter names, else
``flux_0``..), in the units of the input) as CSV/FITS/... and the
deblended images (``images`` ``(N_sources, C, H, W)`` + ``scene``/``id``) next to it as
``<stem>_images.npz`` (``<stem>_images.fits`` for a FITS catalogue).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from cosmobench.detection import DetectionSettings, Detector, SEPDetection, assign_segments, segment_images
from cosmobench.errors import ConfigError, InputError
from cosmobench.io import side_path
from cosmobench.blend_training import segment_channels, source_loss, training_sources
from cosmobench.metrics.deblending import check_bins, deblending_metrics, measure_scene
from cosmobench.nn import build_net
from cosmobench.settings import build, setting
from cosmobench.sim.blends import blendedness, footprint_threshold
from cosmobench.task import BaseTask, FittedBaseline

N_EXAMPLES = 4   # scenes kept for the example plot


@dataclass
class DeblenderTraining(DetectionSettings):
    """The ``model`` settings the task adds to each of its networks: the detection
    (:class:`~cosmobench.detection.SEPDetection`, shared with ``sep``) and the training recipe
    (module docstring). SEP's search space is not inherited: the networks' is their own."""

    SEARCH_SPACE = {}

    position_jitter: float = setting(0.5, "non-negative float", unit="px",
                                     help="truth training: Gaussian jitter of the true positions")
    neighbour_dropout: float = setting(0.1, "probability",
                                       help="truth training: P(a source, but one per scene, is dropped)")
    flux_weight: float = setting(10.0, "non-negative float", help="weight of the relative flux error in the loss")
    train_positions: str = setting("truth", ["detections", "truth"],
                                   help="train at the true positions or at the SEP detections")


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


class ModelFitDeblender(SepDeblender):
    """Simultaneous fit of PSF-convolved parametric profiles to all detections of a scene
    (:mod:`cosmobench.modelfit`); nothing to fit on the training split."""

    def __init__(self, settings):
        super().__init__()
        self.settings = settings


def _fits_output(output: Path) -> bool:
    return Path(output).name.lower().endswith((".fits", ".fit", ".fits.gz"))


class DeblendingTask(BaseTask):
    """Deblending task (module docstring). ``data_info`` (:meth:`DeblendingDataModule.info`)
    supplies ``n_bands``, the detection filter and the per-band noise; ``sep`` also runs
    without it (``cosmobench predict -m sep`` on any number of bands). The evaluation protocol
    is the ``eval`` node (:class:`~cosmobench.metrics.deblending.DeblendingEval`)."""

    def configure_model(self) -> nn.Module:
        if self.eval_cfg:  # a module built for predict alone has no evaluation protocol
            try:
                check_bins(self.eval_cfg["blend_bins"])
            except ValueError as exc:
                raise ConfigError(f"eval.blend_bins: {exc}") from None
        self.detector = Detector(build(SEPDetection, self.model_cfg))
        self.examples: list[dict[str, np.ndarray]] = []
        # Lightning calls this hook again at the start of every trainer.test/fit: a trained (or
        # loaded) detector is kept, else `cosmobench test CKPT` would score a re-initialised one
        if getattr(self, "center_net", None) is None or not bool(self.detector_trained):
            self.center_net = None
            if self.model_cfg["detector"] == "learned":
                self.center_net = build_net("centernet", self.model_cfg, kind="detector",
                                            n_bands=int(self.require_info("n_bands")["n_bands"]))
                self.register_buffer("detector_trained", torch.zeros((), dtype=torch.bool))
        if self.model_name == "sep":
            return SepDeblender()
        if self.model_name == "modelfit":
            from cosmobench.modelfit import ModelFitSettings
            return ModelFitDeblender(build(ModelFitSettings, self.model_cfg))
        return build_net(self.model_name, self.model_cfg, kind="deblender",
                         n_bands=int(self.require_info("n_bands")["n_bands"]))

    # --- the learned detector ----------------------------------------------------------
    def on_train_start(self) -> None:
        if self.center_net is not None and not bool(self.detector_trained):
            self.train_detector()

    def train_detector(self, dataset=None) -> list[float]:
        """Train the centre heat-map detector on the true centroids of the training split
        (``model.detector_epochs`` epochs of Adam, learning rate ``model.detector_lr`` with a
        cosine decay, batches of ``data.batch_size`` scenes in an order drawn from the seeded
        global generator), before the model's own training; its weights are then frozen and
        travel in the checkpoint. Returns the mean loss of each epoch."""
        from torch.utils.data import DataLoader
        from cosmobench.nn.detector import detector_loss

        if dataset is None:
            dm = self.trainer.datamodule
            if dm is None:
                raise ConfigError("model.detector=learned trains on the datamodule's train split: run through "
                                  "cosmobench train")
            dataset, batch_size = dm.datasets["train"], int(dm.cfg["batch_size"])
        else:
            batch_size = 8
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 31 - 1, ())))
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=gen, num_workers=0)
        net = self.center_net
        net.train()
        for p in net.parameters():
            p.requires_grad_(True)
        epochs = int(self.model_cfg["detector_epochs"])
        opt = torch.optim.Adam(net.parameters(), lr=float(self.model_cfg["detector_lr"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(loader)))
        sigma = float(self.model_cfg["heatmap_sigma"])
        history = []
        with torch.enable_grad():
            for _ in range(epochs):
                total, n = 0.0, 0
                for batch in loader:
                    out = net(batch["image"].to(self.device), batch["variance"].to(self.device))
                    loss = detector_loss(out, batch["truth_xy"].to(self.device), sigma)
                    self._check_finite(loss, "detector training")
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    total, n = total + float(loss.detach()) * len(out), n + len(out)
                history.append(total / max(n, 1))
        for p in net.parameters():
            p.requires_grad_(False)
        net.eval()
        self.detector_trained.fill_(True)
        return history

    def learned_positions(self, image: torch.Tensor, variance: torch.Tensor) -> list[np.ndarray]:
        """Positions ``(M, 2)`` per scene of a batch ``(B, C, H, W)`` found by the learned detector."""
        from cosmobench.nn.detector import heatmap_peaks
        with torch.no_grad():
            out = self.center_net(image.float().to(self.device), variance.float().to(self.device))
        peaks = heatmap_peaks(out, float(self.model_cfg["detector_threshold"]), int(self.model_cfg["max_sources"]))
        return [p.double().cpu().numpy() for p in peaks]

    def batch_positions(self, batch: dict[str, torch.Tensor]) -> list[np.ndarray | None]:
        """Per scene of a batch the positions given to the deblender: the catalogue's (predict with
        ``data.catalog``), the learned detector's, or None (SEP detection)."""
        n = len(batch["idx"])
        if "cat_xy" in batch:
            return [batch["cat_xy"][s, :int(batch["n_cat"][s])].double().cpu().numpy() for s in range(n)]
        if self.center_net is not None:
            return self.learned_positions(batch["image"], batch["variance"])
        return [None] * n

    # --- training (the networks) -----------------------------------------------------
    def _training_sources(self, batch: dict[str, torch.Tensor]):
        """:func:`cosmobench.blend_training.training_sources` of a batch with this run's recipe
        (``model.train_positions``; jitter and drop-out only while training) and detector."""
        def detect(image: torch.Tensor, variance: torch.Tensor) -> np.ndarray:
            return self.learned_positions(image, variance)[0]

        training = self.training
        return training_sources(batch, self.segmentation, self.model_cfg["train_positions"],
                                self.eval_cfg["match_radius"],
                                float(self.model_cfg["position_jitter"]) if training else 0.0,
                                float(self.model_cfg["neighbour_dropout"]) if training else 0.0,
                                detect if self.center_net is not None else None)

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
        if "psf_kernel" not in self.data_info:   # sep without a datamodule: SEP's default filter
            return None
        return np.asarray(self.data_info["psf_kernel"], dtype=np.float64)

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

    def deblend_batch(self, image: torch.Tensor, variance: torch.Tensor, mask: torch.Tensor,
                      positions: list[np.ndarray | None], psfs: np.ndarray | None = None
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`deblend_scene` of every scene of a batch ``(B, C, H, W)``; ``modelfit`` fits
        all scenes of the batch at once (:func:`cosmobench.modelfit.fit_scenes`)."""
        if self.model_name != "modelfit":
            return [self.deblend_scene(image[s], variance[s], mask[s], positions[s], psfs) for s in range(len(image))]
        from cosmobench.modelfit import fit_scenes
        if psfs is None and "psfs" not in self.data_info:
            raise InputError("modelfit needs the PSF of every band: give 'psfs' in the cutout")
        kernels = np.asarray(psfs if psfs is not None else self.data_info["psfs"], dtype=float)
        if len(kernels) not in (1, image.shape[1]):
            raise InputError(f"modelfit: {len(kernels)} PSFs for {image.shape[1]} bands")
        found = [self.segmentation(image[s], variance[s], mask[s], positions[s], psfs) for s in range(len(image))]
        r_init = [[0.4 * np.sqrt((seg == k + 1).sum() / np.pi) for k in range(len(xy))] for xy, seg in found]
        models, _ = fit_scenes(self.net.settings, image.detach().double().cpu(), variance.detach().double().cpu(),
                               mask.detach().cpu().bool(), [xy for xy, _ in found],
                               np.broadcast_to(kernels, (image.shape[1],) + kernels.shape[1:]), r_init)
        return [(xy, m) for (xy, _), m in zip(found, models)]

    # --- test -------------------------------------------------------------------------
    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.examples = []

    def test_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ev = self.eval_cfg
        threshold = footprint_threshold(self.require_info("band_sigma")["band_sigma"], ev["footprint_nsigma"])
        n_max, c = batch["truth_flux"].shape[1:]
        rows: dict[str, list] = {k: [] for k in ("matched", "flux_true", "flux_pred", "e_true", "e_pred",
                                                 "recon_mse", "ssim", "blendedness", "n_det")}
        found = self.deblend_batch(batch["image"], batch["variance"], batch["mask"], self.batch_positions(batch))
        for s in range(len(batch["idx"])):
            n = int(batch["n_true"][s])
            det_xy, pred = found[s]
            truth = batch["truth_images"][s, :n].double().cpu().numpy()
            true_xy = batch["truth_xy"][s, :n].double().cpu().numpy()
            res = measure_scene(truth, true_xy, det_xy, pred, ev["match_radius"], ev["moment_sigma"])
            res["blendedness"] = blendedness(truth, threshold)
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
                                      "blendedness": res["blendedness"]})
        out = {k: torch.as_tensor(np.stack(v)) for k, v in rows.items()}
        out["valid"] = torch.arange(n_max)[None] < batch["n_true"].cpu()[:, None]
        return {k: v.to(self.device) for k, v in out.items()}

    def compute_metrics(self, out: dict[str, np.ndarray]) -> dict[str, float]:
        valid = out["valid"].astype(bool)
        per_source = {k: out[k][valid] for k in ("flux_true", "flux_pred", "e_true", "e_pred", "recon_mse", "ssim",
                                                 "blendedness")}
        per_source["matched"] = out["matched"][valid] > 0.5
        return deblending_metrics(per_source, int(out["n_det"].sum()), self.eval_cfg["blend_bins"],
                                  self.eval_cfg["blended_threshold"])

    # --- predict ----------------------------------------------------------------------
    def predict_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per scene: the number of sources found (the full output is :meth:`write_predictions`)."""
        return {"n_sources": torch.tensor([len(xy) for xy, _ in self._predict_batch(batch)])}

    def _predict_batch(self, batch: dict[str, torch.Tensor], psfs: np.ndarray | None = None):
        trained = not self.is_baseline or self.center_net is not None
        if trained and batch["image"].shape[1] != self.data_info["n_bands"]:
            raise InputError(f"the input has {batch['image'].shape[1]} bands but this model was trained on "
                             f"{self.data_info['n_bands']}")
        return self.deblend_batch(batch["image"], batch["variance"], batch["mask"], self.batch_positions(batch), psfs)

    def write_predictions(self, loader: Iterable[dict[str, torch.Tensor]], output: Path) -> list[Path]:
        """Catalogue (one row per source) at ``output`` and the deblended images beside it
        (module docstring). Both files are written only after every scene succeeded."""
        from cosmobench.io import atomic_path, write_table

        output = Path(output)
        psfs = getattr(getattr(loader, "dataset", None), "psfs", None)
        cols: dict[str, list] = {"scene": [], "id": [], "x": [], "y": []}
        fluxes, images = [], []
        for batch in loader:
            for s, (xy, iso) in enumerate(self._predict_batch(batch, psfs)):
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
        filters = getattr(getattr(loader, "dataset", None), "filters", None) or list(range(flux.shape[1]))
        table.update({f"flux_{f}": flux[:, b] for b, f in enumerate(filters)})
        stack = np.concatenate(images)
        fits_out = _fits_output(output)
        img_path = self.predict_files(output)[1]
        write_table(table, output)
        with atomic_path(img_path) as tmp:  # predict writes both files as one set (io.write_set)
            if fits_out:
                from astropy.io import fits
                fits.HDUList([fits.PrimaryHDU(stack), fits.BinTableHDU.from_columns(
                    [fits.Column(name="scene", format="K", array=table["scene"]),
                     fits.Column(name="id", format="K", array=table["id"])], name="SOURCES")]).writeto(tmp)
            else:
                with open(tmp, "wb") as fh:
                    np.savez(fh, images=stack, scene=table["scene"], id=table["id"])
        return [output, img_path]

    @classmethod
    def predict_files(cls, output: Path) -> list[Path]:
        """The source catalogue and the deblended images beside it (``run.v1.csv`` ->
        ``run.v1_images.npz``; a FITS catalogue gets ``_images.fits``)."""
        output = Path(output)
        return [output, side_path(output, "_images.fits" if _fits_output(output) else "_images.npz")]

    # --- plots ------------------------------------------------------------------------
    def make_plots(self, out: dict[str, np.ndarray], plot_dir: Path) -> list[Path]:
        from cosmobench.blend_plots import plot_examples, plot_flux_vs_blendedness

        plot_dir = Path(plot_dir)
        paths = [plot_flux_vs_blendedness(out, self.eval_cfg["blend_bins"], self.model_name,
                                          plot_dir / "flux_error_vs_blendedness.png")]
        if self.examples:
            paths.append(plot_examples(self.examples, self.model_name, plot_dir / "examples.png"))
        return paths


__all__ = ["DeblendingTask", "DeblenderTraining", "SepDeblender", "ModelFitDeblender", "segment_channels", "source_loss"]
