"""Blend-scene simulator (cosmobench.sim.blends): truth consistency, flux, noise,
reproducibility, overlap control, blendedness, colours; SEP helpers (cosmobench.detection)."""
import numpy as np
import pytest

from cosmobench.sim import profiles as P
from cosmobench.sim.blends import BlendSetup, blendedness, footprint_threshold, render_galaxy, simulate_scene


def setup_(mag_range=(20.0, 23.0), **kw):
    return BlendSetup(image_size=40, n_bands=3, pixel_scale=0.25, psf_fwhm=0.8, zero_point=34.0, sky_mag=21.0,
                      mag_range=mag_range, oversample=2, **{"n_min": 1, "n_max": 4, **kw})


def test_noiseless_scene_is_the_sum_of_independently_rendered_galaxies():
    st = setup_(n_min=3, n_max=3)
    sc = simulate_scene(np.random.default_rng(5), st, noise=False)
    assert sc.n == 3 and sc.isolated.shape == (3, 3, 40, 40)
    again = sum(render_galaxy(g, st)[0] for g in sc.params)      # re-render from the stored parameters
    np.testing.assert_allclose(sc.image, again, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(sc.noiseless, sc.isolated.sum(0))
    np.testing.assert_allclose(sc.flux, sc.isolated.sum((-2, -1)))
    np.testing.assert_allclose(sc.xy, [[g["x"], g["y"]] for g in sc.params])


def test_flux_is_conserved_for_a_galaxy_inside_the_stamp():
    st = setup_(n_min=1, n_max=1, disk_re_range=(0.3, 0.4))
    g = {"mag": 21.0, "bulge_to_total": 0.3, "disk_re_px": 1.4, "disk_q": 0.7, "bulge_n": 4.0, "bulge_re_px": 0.4,
         "bulge_q": 0.9, "pa": 0.3, "alpha_bulge": 1.2, "alpha_disk": -0.5, "x": 19.3, "y": 20.1}
    img, total = render_galaxy(g, st)
    np.testing.assert_allclose(img.sum((-2, -1)), total, rtol=0.02)   # < 2 % outside the stamp / rendering
    mid = st.colour(1.2)[1] * 0.3 + st.colour(-0.5)[1] * 0.7
    assert total[1] == pytest.approx(P.mag_to_counts(21.0, 34.0) * mid)
    # red bulge + blue disk: the bulge-dominated centre is redder than the outskirts
    centre, outer = img[:, 20, 19], img[:, 20, 24]
    assert centre[2] / centre[0] > outer[2] / outer[0]


def test_same_seed_same_scene_and_noise_level():
    st = setup_()
    a, b = simulate_scene(np.random.default_rng(11), st), simulate_scene(np.random.default_rng(11), st)
    np.testing.assert_array_equal(a.image, b.image)
    c = simulate_scene(np.random.default_rng(12), st)
    assert not np.array_equal(a.image.shape, c.image.shape) or not np.allclose(a.image, c.image)
    # noise in empty pixels: the background sigma of Poisson(sky) + read noise
    resid = np.concatenate([(s.image - s.noiseless)[:, s.noiseless.sum(0) < 1e-3 * s.noiseless.max()]
                            for s in (simulate_scene(np.random.default_rng(k), st) for k in range(6))], axis=1)
    assert resid.std(axis=1) == pytest.approx(np.full(3, st.band_sigma[0]), rel=0.05)
    assert abs(resid.mean()) < 0.05 * st.band_sigma[0]


def test_overlap_fraction_controls_strong_overlaps():
    def seps(frac):
        st = setup_(n_min=2, n_max=2, overlap_fraction=frac)
        out = []
        for k in range(40):
            sc = simulate_scene(np.random.default_rng(k), st, noise=False)
            beta = blendedness(sc.isolated, footprint_threshold(st.band_sigma, 1.0))
            out.append((np.hypot(*(sc.xy[0] - sc.xy[1])), beta.max(), sc.params[1]["placed_overlapping"]))
        return np.array(out)

    always, never = seps(1.0), seps(0.0)
    assert always[:, 2].all() and not never[:, 2].any()
    assert np.median(always[:, 0]) < 0.5 * np.median(never[:, 0])
    assert np.median(always[:, 1]) > np.median(never[:, 1]) + 0.1


def test_blendedness_by_hand():
    iso = np.zeros((2, 1, 4, 4))
    iso[0, 0, 1, 1], iso[0, 0, 1, 2] = 10.0, 10.0          # galaxy 0 on two pixels
    iso[1, 0, 1, 2], iso[1, 0, 3, 3] = 5.0, 30.0            # galaxy 1 overlaps one of them
    beta = blendedness(iso, threshold=1.0)
    # footprint 0 = {(1,1), (1,2)}: neighbour flux 5 of 25; footprint 1 = {(1,2), (3,3)}: 10 of 45
    np.testing.assert_allclose(beta, [5 / 25, 10 / 45])
    assert blendedness(iso[:1], 1.0)[0] == 0.0


def test_bad_setup_is_a_value_error():
    with pytest.raises(ValueError, match="n_min"):
        setup_(n_min=3, n_max=2)
    with pytest.raises(ValueError, match="overlap_fraction"):
        setup_(overlap_fraction=1.5)


# ----------------------------------------------------------------------------- detection helpers
def test_detector_finds_separated_galaxies_and_segments_partition_the_image():
    from cosmobench.detection import Detector, SEPDetection, assign_segments, segment_images, subtract_background
    st = setup_(n_min=2, n_max=2, overlap_fraction=0.0, mag_range=(20.0, 20.5))
    sc = next(s for s in (simulate_scene(np.random.default_rng(k), st) for k in range(50))
              if np.hypot(*(s.xy[0] - s.xy[1])) > 15)
    img = subtract_background(sc.image, None, 64)
    var = np.broadcast_to(sc.variance[:, None, None], img.shape)
    xy, seg = Detector(SEPDetection())(img, var)
    assert len(xy) == 2
    d = np.hypot(*(xy[:, None] - sc.xy[None]).transpose(2, 0, 1))
    assert d.min(axis=0).max() < 1.0                         # each truth has a detection within 1 px
    parts = segment_images(img, seg, len(xy))
    np.testing.assert_allclose(parts.sum(0), np.where(seg > 0, img, 0.0))
    # catalogue positions: one segment split between two positions, a background position gets an aperture
    seg2 = np.zeros((10, 10), int)
    seg2[2:6, 2:8] = 1
    out = assign_segments(seg2, np.array([[3.0, 3.0], [7.0, 3.0], [8.0, 8.5]]), radius=1.0)
    assert set(np.unique(out[seg2 == 1])) == {1, 2} and (out[3, 3], out[3, 7]) == (1, 2)
    assert out[8, 8] == 3 and out[9, 9] == 0 and (out[seg2 == 0] != 3).sum() == (seg2 == 0).sum() - (out == 3).sum()
