"""Source detection and segmentation with SEP (Source Extractor as a library; Barbary 2016,
Bertin & Arnouts 1996), shared by the deblending task's models and its data pipeline.

Conventions: images are ``(C, H, W)`` (bands first), positions ``(x, y)`` in px with pixel
centres at integer 0-based coordinates (SEP's convention; SExtractor's ``X_IMAGE`` is 1-based),
``mask`` is ``(H, W)`` bool with ``True`` = bad pixel. SEP needs native-endian, C-contiguous
float arrays; the wrappers convert.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from cosmobench.nn.detector import CenterNetConfig
from cosmobench.settings import setting


def _c64(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64))


def subtract_background(image: np.ndarray, mask: np.ndarray | None, box: int, filter_size: int = 3) -> np.ndarray:
    """``image - background`` per band, the background from ``sep.Background`` (SExtractor's
    sigma-clipped mode estimator on a mesh of ``box`` px cells, median-filtered over
    ``filter_size`` cells, bicubic interpolation); ``box`` is capped at the image size."""
    import sep

    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape[-2:]
    m = None if mask is None else np.ascontiguousarray(mask, dtype=bool)
    out = np.empty_like(img)
    for b in range(img.shape[0]):
        bkg = sep.Background(_c64(img[b]), mask=m, bw=min(int(box), w), bh=min(int(box), h),
                             fw=filter_size, fh=filter_size)
        out[b] = img[b] - bkg.back()
    return out


@dataclass
class SEPDetection:
    """Settings of SEP detection (the ``model`` node of both deblending models): SExtractor's
    usual values."""

    detect_thresh: float = setting(1.5, "positive float", unit="sigma",
                                   help="detection threshold, in units of the band-summed per-pixel noise")
    minarea: int = setting(5, "positive int", unit="px", help="smallest number of pixels above the threshold")
    deblend_nthresh: int = setting(32, "positive int", help="SExtractor's DEBLEND_NTHRESH (multi-threshold levels)")
    deblend_cont: float = setting(0.005, "probability", help="SExtractor's DEBLEND_MINCONT (contrast to split a source)")
    max_sources: int = setting(30, "positive int", help="sources kept per scene (the brightest by SEP flux)")


class Detector:
    """SEP detection on the band-summed image with multi-threshold deblending
    (:class:`SEPDetection` settings).

    The detection image is ``D = sum_b I_b`` with per-pixel error ``sqrt(sum_b var_b)``;
    ``detect_thresh`` is in units of that error; the matched filter is ``kernel`` (e.g. the
    mean PSF; SEP's default 3x3 kernel if ``None``)."""

    def __init__(self, settings: SEPDetection):
        self.settings = settings

    def __call__(self, image: np.ndarray, variance: np.ndarray, mask: np.ndarray | None = None,
                 kernel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(M, 2)`` (SEP's isophotal barycentres) and the segmentation map
        ``(H, W)`` int (0 = background, ``k + 1`` = source ``k``) of one ``(C, H, W)`` scene.
        At most ``max_sources`` (the brightest by SEP flux) are kept."""
        import sep

        cfg = self.settings
        det = _c64(np.asarray(image, dtype=np.float64).sum(axis=0))
        err = _c64(np.sqrt(np.clip(np.asarray(variance, dtype=np.float64).sum(axis=0), 1e-30, None)))
        m = None if mask is None else np.ascontiguousarray(mask, dtype=bool)
        kw = {} if kernel is None else {"filter_kernel": _c64(kernel)}
        try:
            objs, seg = sep.extract(det, cfg.detect_thresh, err=err, mask=m, minarea=cfg.minarea,
                                    deblend_nthresh=cfg.deblend_nthresh, deblend_cont=cfg.deblend_cont,
                                    segmentation_map=True, **kw)
        except Exception as exc:  # sep raises plain Exceptions (e.g. object/pixel stack overflow)
            raise RuntimeError(f"SEP detection failed: {exc}") from exc
        xy = np.stack([objs["x"], objs["y"]], axis=1) if len(objs) else np.zeros((0, 2))
        seg = np.asarray(seg, dtype=np.int64)
        if len(objs) > cfg.max_sources:
            keep = np.sort(np.argsort(-objs["flux"])[:cfg.max_sources])
            relabel = np.zeros(len(objs) + 1, dtype=np.int64)
            relabel[keep + 1] = np.arange(1, len(keep) + 1)
            xy, seg = xy[keep], relabel[seg]
        return xy, seg


@dataclass
class DetectionSettings(SEPDetection, CenterNetConfig):
    """The detection stage of every deblending model (``model`` node): ``detector=sep``
    (:class:`Detector`, settings :class:`SEPDetection`) or ``learned`` (the centre heat map of
    :class:`~cosmobench.nn.detector.CenterNetDetector`, settings
    :class:`~cosmobench.nn.detector.CenterNetConfig`, trained on the simulator's true centroids
    for ``detector_epochs`` epochs before the model's own training). SEP's segmentation map is
    computed either way; learned positions split its segments
    (:func:`assign_segments`).

    ``SEARCH_SPACE`` (the ``sep`` model's, for ``cosmobench tune``): SEP's detection and
    deblending parameters; the networks' recipe (:class:`cosmobench.tasks.deblending.DeblenderTraining`)
    and ``modelfit`` replace it by their own."""

    SEARCH_SPACE: ClassVar[dict] = {"model.detect_thresh": ["log", 0.8, 5.0], "model.minarea": ["int", 3, 12],
                                    "model.deblend_nthresh": ["choice", [16, 32, 64]],
                                    "model.deblend_cont": ["log", 1.0e-4, 0.1]}

    detector: str = setting("sep", ["sep", "learned"], help="detection stage: SEP, or the learned centre heat map")
    detector_epochs: int = setting(10, "positive int", help="learned detector: training epochs over the train split")
    detector_lr: float = setting(3.0e-3, "positive float", help="learned detector: Adam learning rate")


def segment_images(image: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """``(n, C, H, W)``: the image masked to each segment ``k + 1`` (segmentation-map
    deblending: every pixel goes wholly to one source)."""
    image = np.asarray(image)
    labels = np.arange(1, n + 1)[:, None, None]
    return (seg[None] == labels)[:, None].astype(image.dtype) * image[None]


def assign_segments(seg: np.ndarray, xy: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """Segmentation map relabelled for given positions ``xy`` ``(K, 2)`` (a detection catalogue):
    the pixels of each SEP segment go to the nearest position inside that segment (Voronoi
    split when several positions share one); a position on the background gets the background
    pixels within ``radius`` px that no other position claims. Returns ``(H, W)`` int with
    ``k + 1`` = position ``k``."""
    h, w = seg.shape
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    out = np.zeros_like(seg)
    if len(xy) == 0:
        return out
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = (xx[None] - xy[:, 0, None, None]) ** 2 + (yy[None] - xy[:, 1, None, None]) ** 2   # (K, H, W)
    ix = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    home = seg[iy, ix]                                       # segment of each position (0 = background)
    for s in np.unique(home[home > 0]):
        ks = np.flatnonzero(home == s)
        pix = seg == s
        nearest = ks[np.argmin(d2[ks][:, pix], axis=0)]
        out[pix] = nearest + 1
    bg = np.flatnonzero(home == 0)
    if len(bg):
        free = seg == 0
        nearest = bg[np.argmin(d2[bg], axis=0)]
        own = free & (d2[nearest, yy, xx] <= radius ** 2)
        out[own] = nearest[own] + 1
    return out


__all__ = ["subtract_background", "SEPDetection", "DetectionSettings", "Detector", "segment_images", "assign_segments"]
