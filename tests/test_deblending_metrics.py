"""Deblending metrics against hand-computed values: matching, detection scores, flux,
ellipticity, reconstruction, SSIM, blendedness bins."""
import numpy as np
import pytest

from cosmobench.metrics import deblending as D


# ----------------------------------------------------------------------------- matching
def test_match_one_to_one_within_radius():
    ti, di = D.match_sources([[10, 10], [20, 20]], [[20.5, 20], [10, 11]], radius=2.0)
    assert ti.tolist() == [0, 1] and di.tolist() == [1, 0]


def test_match_more_detections_than_truths():
    # two spurious detections: one far away, one a bit farther than the right one
    ti, di = D.match_sources([[5, 5]], [[30, 30], [5.5, 5], [6.5, 5]], radius=2.0)
    assert ti.tolist() == [0] and di.tolist() == [1]


def test_match_more_truths_than_detections():
    ti, di = D.match_sources([[5, 5], [6, 5], [40, 40]], [[5.8, 5]], radius=2.0)
    assert ti.tolist() == [1] and di.tolist() == [0]   # the nearer truth gets the only detection


def test_match_respects_radius_and_empty_inputs():
    assert D.match_sources([[0, 0]], [[3, 0]], radius=2.9)[0].size == 0
    assert D.match_sources([[0, 0]], [[3, 0]], radius=3.0)[0].tolist() == [0]
    assert D.match_sources(np.zeros((0, 2)), [[1, 1]], radius=1)[0].size == 0
    assert D.match_sources([[1, 1]], np.zeros((0, 2)), radius=1)[0].size == 0
    with pytest.raises(ValueError, match="radius"):
        D.match_sources([[0, 0]], [[0, 0]], radius=0)


def test_match_maximises_pairs_where_greedy_fails():
    """Greedy nearest-pair matching takes (T0, D0) at 0.6 px first and leaves T1 unmatched;
    the assignment matches both truths (T0-D1 at 0.95 px, T1-D0 at 0.9 px)."""
    ti, di = D.match_sources([[0, 0], [1.5, 0]], [[0.6, 0], [-0.95, 0]], radius=1.0)
    assert ti.tolist() == [0, 1] and di.tolist() == [1, 0]


def test_detection_scores_by_hand():
    s = D.detection_scores(n_true=10, n_det=8, n_matched=6)
    assert s["precision"] == pytest.approx(0.75) and s["recall"] == pytest.approx(0.6)
    assert s["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert D.detection_scores(3, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


# ----------------------------------------------------------------------------- per source
def _gauss(shape, x0, y0, sx, sy, theta=0.0):
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    dx, dy = x - x0, y - y0
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))


def test_ellipticity_of_gaussians_by_hand():
    # weighted moments of a Gaussian (a^2, b^2) with a Gaussian weight sigma_w^2:
    # Q = (1/a^2 + 1/s^2)^-1 -> a=3, b=1.5, s=3: Qxx = 4.5, Qyy = 1.8, e1 = 2.7 / 6.3
    img = _gauss((64, 64), 32.0, 31.0, 3.0, 1.5)
    e = D.ellipticity(img, (32.0, 31.0), sigma=3.0)
    assert e == pytest.approx([2.7 / 6.3, 0.0], abs=1e-4)
    # rotated by 45 degrees: all of it in e2
    e45 = D.ellipticity(_gauss((64, 64), 32.0, 31.0, 3.0, 1.5, np.pi / 4), (32.0, 31.0), sigma=3.0)
    assert e45 == pytest.approx([0.0, 2.7 / 6.3], abs=1e-4)
    # unweighted limit: the distortion (1 - q^2) / (1 + q^2) with q = 0.5 -> 0.6
    assert D.ellipticity(img, (32.0, 31.0), sigma=1e4)[0] == pytest.approx(0.6, abs=1e-4)
    assert np.isnan(D.ellipticity(np.zeros((8, 8)), (4, 4), 2.0)).all()


def test_recon_mse_and_flux_error_by_hand():
    t = np.zeros((2, 5, 5))
    t[0, 2, 2], t[1, 2, 2], t[1, 1, 2] = 3.0, 4.0, 0.0
    assert D.recon_mse(2 * t, t) == pytest.approx(1.0)
    assert D.recon_mse(np.zeros_like(t), t) == pytest.approx(1.0)
    p = t.copy()
    p[1, 2, 2] = 5.0                     # (5-4)^2 / (9 + 16)
    assert D.recon_mse(p, t) == pytest.approx(1 / 25)
    np.testing.assert_allclose(D.relative_flux_error([[110.0, 45.0]], [[100.0, 50.0]]), [[0.1, -0.1]])


def _ssim_zero_prediction(t, data_range):
    """SSIM of an all-zero prediction by hand: per 7x7 window l = C1 / (mu^2 + C1),
    cs = C2 / (var + C2) (sample variance, N/(N-1)), averaged over windows inside the image."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, w = t.shape
    vals = []
    for i in range(3, h - 3):
        for j in range(3, w - 3):
            win = t[i - 3:i + 4, j - 3:j + 4]
            mu, var = win.mean(), win.var(ddof=1)
            vals.append(c1 / (mu ** 2 + c1) * c2 / (var + c2))
    return float(np.mean(vals))


def test_ssim_by_hand():
    t = _gauss((20, 20), 9.0, 10.0, 2.0, 3.0)[None] * np.array([1.0, 2.0])[:, None, None]   # (2, 20, 20)
    assert D.ssim(t, t) == pytest.approx(1.0)
    want = np.mean([_ssim_zero_prediction(t[b], t[b].max() - t[b].min()) for b in range(2)])
    assert D.ssim(np.zeros_like(t), t) == pytest.approx(want, rel=1e-6)


# ----------------------------------------------------------------------------- scene + aggregate
def test_measure_scene_and_metrics_by_hand():
    truth = np.stack([_gauss((32, 32), 8, 8, 2, 2), _gauss((32, 32), 22, 20, 3, 1.5)])[:, None] * \
        np.array([100.0, 50.0])[None, :, None, None]                     # (2 sources, 2 bands, H, W)
    true_xy = np.array([[8.0, 8.0], [22.0, 20.0]])
    # detections in another order, plus a spurious one; source 0 over-estimated by 10 %,
    # source 1 under by 20 %
    det_xy = np.array([[22.5, 20.0], [50.0, 50.0], [8.0, 8.5]])
    pred = np.stack([0.8 * truth[1], np.zeros_like(truth[0]), 1.1 * truth[0]])
    res = D.measure_scene(truth, true_xy, det_xy, pred, radius=2.0, moment_sigma=3.0)
    assert res["matched"].tolist() == [True, True] and res["det_index"].tolist() == [2, 0]
    assert res["n_det"] == 3
    assert res["recon_mse"] == pytest.approx([0.01, 0.04])
    np.testing.assert_allclose(res["e_pred"], res["e_true"], atol=1e-12)   # a scaled image has the same shape
    res["blendedness"] = np.array([0.05, 0.5])
    m = D.deblending_metrics(res, n_det=3, bins=[0, 0.1, 1.0], blended_threshold=0.1)
    assert m["flux_mape"] == pytest.approx(15.0) and m["flux_bias"] == pytest.approx(-5.0)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(1.0)
    assert m["recon_mse"] == pytest.approx(0.025) and m["ellipticity_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert m["flux_mape_bl00_10"] == pytest.approx(10.0) and m["flux_mape_bl10_100"] == pytest.approx(20.0)
    assert m["flux_mape_blended"] == pytest.approx(20.0) and m["n_true_blended"] == 1
    assert 0 < m["ssim"] < 1


def test_metrics_bins_recall_and_empty_bins():
    n = 4
    per = {"matched": np.array([True, False, True, False]), "blendedness": np.array([0.0, 0.05, 0.5, 1.0]),
           "flux_true": np.ones((n, 1)), "flux_pred": np.array([[1.5], [np.nan], [0.5], [np.nan]]),
           "e_true": np.zeros((n, 2)), "e_pred": np.array([[0.3, 0.4], [np.nan] * 2, [0.0, 0.0], [np.nan] * 2]),
           "recon_mse": np.array([0.1, np.nan, 0.3, np.nan]), "ssim": np.array([0.9, np.nan, 0.7, np.nan])}
    m = D.deblending_metrics(per, n_det=2, bins=[0, 0.01, 0.1, 0.3, 1.0], blended_threshold=0.1)
    assert m["ellipticity_rmse"] == pytest.approx(np.sqrt(0.25 / 2))   # |de|^2 = 0.25 and 0
    assert m["recall_bl00_01"] == 1.0 and m["recall_bl01_10"] == 0.0 and m["recall_bl30_100"] == 0.5
    assert m["n_true_bl30_100"] == 2                                   # 1.0 falls in the last, closed bin
    assert m["n_true_bl10_30"] == 0 and "recall_bl10_30" not in m and "flux_mape_bl10_30" not in m
    assert "flux_mape_bl01_10" not in m                                 # a bin without matches has no flux metric
    assert m["flux_mape_bl30_100"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="increasing"):
        D.deblending_metrics(per, 2, bins=[0.5, 0.1], blended_threshold=0.1)
