"""Physics of the image-simulation primitives and the morphology classes."""
import numpy as np
import pytest
from scipy.ndimage import map_coordinates
from scipy.special import gammainc

from cosmobench.sim import profiles as P
from cosmobench.sim.galaxies import CLASSES, Observation, simulate_galaxy, vote_fractions


# ----------------------------------------------------------------------------- profiles

def test_sersic_bn_known_values():
    # b_n for n=1 and n=4 (Ciotti & Bertin 1999: b_n ~ 2n - 1/3 + 4/(405 n))
    assert P.sersic_bn(1.0) == pytest.approx(1.678347, abs=1e-5)
    assert P.sersic_bn(4.0) == pytest.approx(7.669249, abs=1e-5)
    assert P.sersic_bn(2.5) == pytest.approx(2 * 2.5 - 1 / 3 + 4 / (405 * 2.5), abs=1e-3)


@pytest.mark.parametrize("n,q,pa", [(0.5, 1.0, 0.0), (1.0, 0.5, 0.4), (2.0, 0.7, 2.0)])
def test_sersic_total_flux(n, q, pa):
    img = P.render(lambda x, y: P.sersic(x, y, 1000.0, 5.0, n, q, pa, 100.3, 99.8), (201, 201), 5)
    assert img.sum() == pytest.approx(1000.0, rel=2e-3)


def test_sersic_n4_flux_matches_enclosed_fraction():
    # steep n=4 profile: stamp (radius 60 px = 15 r_e) misses light; compare with the analytic
    # enclosed fraction gammainc(2n, b_n (R/r_e)^(1/n)) between inscribed and circumscribed circles
    r_e, n, flux = 4.0, 4.0, 1.0
    prof = lambda x, y: P.sersic(x, y, flux, r_e, n, 1.0, 0.0, 60.0, 60.0)  # noqa: E731
    coarse = P.render(prof, (121, 121), 5)  # a sub-pixel sample sits on the cusp: overestimate
    assert coarse.sum() > 1.1
    img = P.render(prof, (121, 121), 5, refine_at=(60.0, 60.0))
    b = P.sersic_bn(n)
    lo = gammainc(2 * n, b * (60.5 / r_e) ** (1 / n))
    hi = gammainc(2 * n, b * (60.5 * np.sqrt(2) / r_e) ** (1 / n))
    assert lo * 0.999 < img.sum() < hi * 1.001
    assert img.sum() < 0.995  # the missing wing light is real, not a normalisation error


def test_sersic_half_light_radius():
    r_e = 8.0
    img = P.render(lambda x, y: P.sersic(x, y, 1.0, r_e, 1.0, 1.0, 0.0, 100.0, 100.0), (201, 201), 5)
    x, y = P.pixel_grid((201, 201))
    assert img[np.hypot(x - 100, y - 100) < r_e].sum() == pytest.approx(0.5, abs=0.02)


def test_exponential_disk_is_sersic_n1_with_inclination():
    x, y = P.pixel_grid((41, 41))
    disk = P.exponential_disk(x, y, 10.0, 3.0, inclination=np.deg2rad(60), pa=0.3, x0=20, y0=20, q0=0.1)
    q = P.inclination_axis_ratio(np.deg2rad(60), 0.1)
    assert q == pytest.approx(np.sqrt(0.25 + 0.01 * 0.75))
    ser = P.sersic(x, y, 10.0, P.sersic_bn(1.0) * 3.0, 1.0, q, 0.3, 20, 20)
    np.testing.assert_allclose(disk, ser)
    # along the major axis the profile falls by e per scale length
    u = np.array([20 + 3.0 * np.cos(0.3), 20 + 6.0 * np.cos(0.3)])
    v = np.array([20 + 3.0 * np.sin(0.3), 20 + 6.0 * np.sin(0.3)])
    vals = P.exponential_disk(u, v, 10.0, 3.0, np.deg2rad(60), 0.3, 20, 20, 0.1)
    assert vals[0] / vals[1] == pytest.approx(np.e)


@pytest.mark.parametrize("kind", ["moffat", "gaussian"])
def test_psf_unit_sum_and_fwhm(kind):
    fwhm = 4.0
    psf = P.make_psf(kind, fwhm, beta=3.0, size=41)
    assert psf.sum() == pytest.approx(1.0, abs=1e-12)
    assert psf.shape == (41, 41) and psf.argmax() == 20 * 41 + 20
    # half maximum at r = fwhm/2 along the x axis (interpolate the pixel-integrated PSF finely)
    fine = P.make_psf(kind, fwhm * 5, beta=3.0, size=201)  # 5x finer sampling of the same shape
    row = fine[100]
    half = np.interp(0.5 * row.max(), row[100:][::-1], np.arange(101)[::-1])
    assert 2 * half / 5 == pytest.approx(fwhm, rel=0.02)


def test_fft_convolution_conserves_flux_and_reproduces_psf():
    psf = P.moffat_psf(3.0, 3.5)
    img = P.render(lambda x, y: P.sersic(x, y, 500.0, 3.0, 1.5, 0.6, 1.0, 31.7, 32.2), (64, 64), 3)
    conv = P.fft_convolve(img, psf)
    assert conv.shape == img.shape
    assert conv.sum() == pytest.approx(img.sum(), rel=1e-4)
    assert conv.max() < img.max()  # blurred
    point = np.zeros((31, 31))
    point[15, 15] = 1.0
    k = psf.shape[0] // 2
    np.testing.assert_allclose(P.fft_convolve(point, psf)[15 - k:16 + k, 15 - k:16 + k], psf, atol=1e-12)
    # one PSF per band broadcast over a band axis
    two = P.fft_convolve(np.stack([img, img]), np.stack([psf, P.gaussian_psf(3.0, psf.shape[0])]))
    assert two.shape == (2, 64, 64)
    np.testing.assert_allclose(two.sum(axis=(1, 2)), img.sum(), rtol=1e-4)


def test_noise_statistics():
    rng = np.random.default_rng(0)
    sky, rn = 300.0, 5.0
    noisy = P.add_noise(rng, np.zeros((200, 200)), sky, rn, gain=1.0)
    assert noisy.mean() == pytest.approx(0.0, abs=0.2)
    assert noisy.std() == pytest.approx(P.noise_sigma(sky, rn), rel=0.02)
    bright = P.add_noise(rng, np.full((200, 200), 1e4), sky, rn, gain=2.0)
    assert bright.mean() == pytest.approx(1e4, rel=1e-3)
    assert bright.std() == pytest.approx(np.sqrt((1e4 + sky) * 2.0 + rn ** 2) / 2.0, rel=0.03)


def test_magnitudes_and_surface_brightness():
    assert P.mag_to_counts(25.0, 30.0) == pytest.approx(100.0)
    assert P.counts_to_mag(100.0, 30.0) == pytest.approx(25.0)
    assert P.sb_to_counts_per_pixel(20.0, 0.5, 30.0) == pytest.approx(1e4 * 0.25)


# ----------------------------------------------------------------------------- galaxies

OBS = Observation(image_size=64, n_bands=3)


def _clean(cls, seed, psf=False):
    return simulate_galaxy(np.random.default_rng(seed), cls, OBS, noise=False, psf=psf)


def _moments_q(img):
    """Axis ratio from second moments of a noiseless image."""
    x, y = P.pixel_grid(img.shape)
    w = np.clip(img, 0, None)
    w = w / w.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    cxx, cyy, cxy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum(), (w * (x - mx) * (y - my)).sum()
    ev = np.linalg.eigvalsh([[cxx, cxy], [cxy, cyy]])
    return np.sqrt(ev[0] / ev[1]), 0.5 * np.arctan2(2 * cxy, cxx - cyy)


def _asymmetry(img, cx, cy):
    """Rotational asymmetry sum|I - I_180| / sum|I| about (cx, cy)."""
    x, y = P.pixel_grid(img.shape)
    rot = map_coordinates(img, [2 * cy - y, 2 * cx - x], order=1, mode="constant")
    return np.abs(img - rot).sum() / np.abs(img).sum()


def test_same_seed_same_image_and_shape():
    a, pa = simulate_galaxy(np.random.default_rng(7), "spiral", OBS)
    b, pb = simulate_galaxy(np.random.default_rng(7), "spiral", OBS)
    c, _ = simulate_galaxy(np.random.default_rng(8), "spiral", OBS)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert pa == pb
    assert not np.allclose(a, c)


def test_total_magnitude_of_reference_band():
    img, p = _clean("elliptical", 3, psf=True)
    flux = P.mag_to_counts(p["mag"], OBS.zero_point)
    # reference (middle) band holds the total flux, minus the light of the wings beyond the stamp
    assert 0.9 * flux < img[1].sum() <= 1.001 * flux
    assert img[2].sum() > img[1].sum() > img[0].sum()  # ellipticals are red (alpha > 0)


def test_edge_on_disks_are_thin_and_ellipticals_round():
    qs_edge = [_moments_q(_clean("edge_on", s)[0][1])[0] for s in range(6)]
    qs_ell = [_moments_q(_clean("elliptical", s)[0][1])[0] for s in range(6)]
    assert max(qs_edge) < 0.4
    assert min(qs_ell) > 0.5


def test_orientation_is_continuous():
    # position angles of edge-on disks are spread over all angles, not only multiples of 90 deg
    angles = np.array([_moments_q(_clean("edge_on", s)[0][1])[1] for s in range(40)])
    off_grid = np.abs(((np.rad2deg(angles) + 45) % 90) - 45)  # distance from the nearest multiple of 90
    assert np.sum(off_grid > 10) >= 20
    orient = [_clean("elliptical", s)[1]["orientation"] for s in range(200)]
    assert 0 <= min(orient) < 0.2 and 2 * np.pi - 0.2 < max(orient) < 2 * np.pi


def test_spiral_arms_have_the_documented_multiplicity():
    found = 0
    for s in range(12):
        img, p = _clean("spiral", s)
        if p["inclination_deg"] > 40:
            continue
        # sample the deprojected annulus at 2 scale lengths and Fourier-analyse in azimuth
        band = img[0]  # bluest band: arms dominate
        th = np.linspace(0, 2 * np.pi, 256, endpoint=False)
        R = 2.0 * p["r_d_px"]
        u, v = R * np.cos(th), R * np.sin(th) * p["disk_q"]
        # galaxy frame -> sky: undo disk pa, mirror and orientation
        a = p["disk_pa"]
        gu, gv = np.cos(a) * u - np.sin(a) * v, np.sin(a) * u + np.cos(a) * v
        if p["mirror"]:
            gv = -gv
        phi = p["orientation"]
        x = p["centre_x"] + np.cos(phi) * gu - np.sin(phi) * gv
        y = p["centre_y"] + np.sin(phi) * gu + np.cos(phi) * gv
        ring = map_coordinates(band, [y, x], order=1)
        power = np.abs(np.fft.rfft(ring - ring.mean()))[1:7]
        assert int(np.argmax(power)) + 1 == p["n_arms"], (s, p["n_arms"], power)
        found += 1
    assert found >= 3


def test_barred_spirals_have_a_bar():
    for s in range(4):
        _, p = _clean("barred_spiral", s)
        assert p["bar"] and 0.15 <= p["bar_q"] <= 0.3 and p["bar_fraction"] >= 0.15
        assert p["inclination_deg"] <= 50
    assert not _clean("spiral", 0)[1]["bar"]


def test_mergers_have_two_nuclei_and_irregulars_are_asymmetric():
    for s in range(5):
        img, p = _clean("merger", s)
        band = img[1]
        phi = p["orientation"]
        nuclei = []
        for gu, gv in p["nuclei_galaxy_frame"]:
            gv = -gv if p["mirror"] else gv
            nuclei.append((p["centre_x"] + np.cos(phi) * gu - np.sin(phi) * gv,
                           p["centre_y"] + np.sin(phi) * gu + np.cos(phi) * gv))
        vals = [map_coordinates(band, [[ny], [nx]], order=1)[0] for nx, ny in nuclei]
        mid = map_coordinates(band, [[(nuclei[0][1] + nuclei[1][1]) / 2], [(nuclei[0][0] + nuclei[1][0]) / 2]],
                              order=1)[0]
        assert min(vals) > mid  # a saddle between two peaks
        assert p["separation_px"] > p["r_e1_px"] + p["r_e2_px"]
    def asym(cls, seed):
        img, p = _clean(cls, seed)
        return _asymmetry(img[1], p["centre_x"], p["centre_y"])

    # (bilinear 180-degree rotation about a sub-pixel centre leaves ~0.01-0.15 for smooth cuspy profiles)
    a_ell = [asym("elliptical", s) for s in range(6)]
    a_irr = [asym("irregular", s) for s in range(6)]
    a_mrg = [asym("merger", s) for s in range(6)]
    assert np.median(a_ell) < 0.1
    assert min(a_irr) > 0.4 and min(a_mrg) > 0.3


def test_every_class_simulates_with_noise_and_psf():
    for cls in CLASSES:
        img, p = simulate_galaxy(np.random.default_rng(1), cls, OBS)
        assert np.isfinite(img).all() and p["cls"] == cls
        # the galaxy stands well above the sky noise
        assert img[1].max() > 10 * P.noise_sigma(OBS.sky[1], OBS.read_noise)


def test_vote_fractions():
    rng = np.random.default_rng(0)
    classes = list(CLASSES)
    v = np.array([vote_fractions(rng, 1, 17.0, classes, (16.0, 18.5), 0.15, 40) for _ in range(300)])
    np.testing.assert_allclose(v.sum(1), 1.0)
    assert np.mean(v.argmax(1) == 1) > 0.95
    # the most confused alternative of a spiral is a barred spiral
    assert v[:, 2].mean() > v[:, [0, 3, 4, 5]].mean(0).max()
    faint = np.array([vote_fractions(rng, 1, 18.5, classes, (16.0, 18.5), 0.15, 40) for _ in range(300)])
    assert faint[:, 1].mean() < v[:, 1].mean()
