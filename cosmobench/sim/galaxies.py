"""Multi-band galaxy-image simulator with morphological classes (used by the morphology task;
reusable by deblending/lens finding for realistic sources).

Every galaxy is a sum of *components* (Sersic bulges, exponential disks with logarithmic
spiral arms, bars, star-forming clumps, tidal tails), each with a power-law colour
``flux_b ∝ (lambda_b / lambda_ref)^alpha`` (alpha > 0: red, old stars; alpha < 0: blue,
star-forming). Components are rendered on a sub-pixel grid (``oversample``), summed per band,
convolved with the band's PSF (unit sum) and given sky + Poisson + read noise
(:mod:`cosmobench.sim.profiles`). The whole galaxy has a random orientation, uniform in
``[0, 2 pi)``, and a random mirror image (spiral winding sense), and a sub-pixel centre offset.

Units: sizes below are in **arcsec** (converted with ``pixel_scale`` arcsec/px), angles in
degrees, fluxes in counts with ``m = zero_point - 2.5 log10(counts)``; the total magnitude
``mag`` (uniform in ``mag_range``) is that of the reference band (the middle band).

Classes and parameter ranges (``U(a, b)`` uniform):

``elliptical``
    one Sersic, ``n ~ U(2.5, 5.5)``, ``r_e ~ U(0.8, 2.2)``", ``q ~ U(0.55, 1)``; red (alpha 1.2).
    Smooth and point-symmetric.
``spiral``
    Sersic bulge (``n ~ U(1, 2.5)``, ``r_e = U(0.15, 0.3) r_e,disk``, B/T ``~ U(0.05, 0.35)``, red)
    + exponential disk (scale length ``r_d ~ U(0.8, 1.8)``", inclination ``~ U(0, 60)`` deg,
    intrinsic thickness 0.15) whose light is partly (``U(0.3, 0.55)``) in logarithmic spiral arms
    ``theta = w ln(R) / tan(pitch) + 2 pi k / m`` in the disk plane: ``m`` arms in {2, 3, 4}
    (p = 0.6, 0.25, 0.15), pitch ``~ U(12, 30)`` deg, winding sense ``w = ±1``; blue arms (alpha -0.8).
``barred_spiral``
    as ``spiral`` (inclination ``~ U(0, 50)`` deg) plus a bar: Sersic ``n = 0.5``,
    ``q ~ U(0.15, 0.3)``, half-length ``r_e,bar ~ U(0.9, 1.5) r_d``, light fraction ``U(0.15, 0.3)``,
    at a random angle in the disk plane; the arms start at the bar ends.
``edge_on``
    exponential disk at inclination ``~ U(82, 90)`` deg, thickness ``q0 ~ U(0.08, 0.18)``,
    ``r_d ~ U(1.0, 2.0)``", optional bulge (B/T ``~ U(0, 0.3)``, ``q ~ U(0.6, 0.9)``) and a
    mid-plane dust lane (optical depth ``tau ~ U(0, 0.7)`` at the reference band, ``∝ 1/lambda``).
``irregular``
    faint, lopsided exponential disk (``r_d ~ U(0.8, 1.8)``", ``q ~ U(0.4, 1)``, offset by up to
    0.5 ``r_d``) with 4-12 Gaussian star-forming clumps (``sigma ~ U(0.25, 0.6)``", positions
    ``~ N(0, 1.2 r_d)``) holding ``U(0.35, 0.7)`` of the light; blue (alpha -1.0).
``merger``
    close pair of two galaxies (Sersic ``n ~ U(1, 4)``, ``r_e ~ U(0.6, 1.4)``", flux ratio
    ``U(0.3, 1)``) separated by ``U(1.2, 2.5) (r_e1 + r_e2)`` (at most 35% of the stamp) plus 1-2
    curved tidal tails (chains of Gaussians along a curved arc of length ``U(2, 4)`` r_e,
    light fraction ``U(0.10, 0.25)``).

Soft labels: :func:`vote_fractions` models volunteers' votes as draws from a noisy
classifier of the truth (confusions between similar classes, more for faint galaxies).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cosmobench.settings import setting
from cosmobench.sim import profiles as P
from cosmobench.sim.profiles import Camera

CLASSES = ("elliptical", "spiral", "barred_spiral", "edge_on", "irregular", "merger")

#: how easily volunteers confuse two classes (symmetric, diagonal unused)
_CONFUSION = {
    ("spiral", "barred_spiral"): 1.0, ("irregular", "merger"): 1.0, ("spiral", "edge_on"): 0.3,
    ("elliptical", "spiral"): 0.3, ("elliptical", "edge_on"): 0.2, ("spiral", "irregular"): 0.3,
    ("barred_spiral", "edge_on"): 0.2, ("elliptical", "merger"): 0.2,
}


def band_wavelengths(n_bands: int) -> np.ndarray:
    """Effective wavelengths (nm) of the simulated bands: ``n`` bands evenly spaced from
    480 nm (g) to 920 nm (z); one band sits at 620 nm (r)."""
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    return np.array([620.0]) if n_bands == 1 else np.linspace(480.0, 920.0, n_bands)


@dataclass
class Observation(Camera):
    """Survey set-up shared by all galaxies of a dataset (see module docstring for units)."""

    pixel_scale: float = setting(0.262, "positive float", unit="arcsec/px", help="pixel size")
    psf: str = setting("moffat", ["moffat", "gaussian"], help="PSF profile")
    psf_fwhm: float = setting(1.2, "positive float", unit="arcsec",
                              help="PSF FWHM in the reference band; scales as lambda^-0.2")
    zero_point: float = setting(30.0, "float", unit="mag", help="magnitude of 1 count: m = zp - 2.5 log10(counts)")
    sky_mag: float = setting(21.0, "float", unit="mag/arcsec^2", help="sky surface brightness (all bands)")
    mag_range: list[float] = setting([16.0, 18.5], "list[float]", unit="mag",
                                     help="[bright, faint]: total magnitude (reference band), uniform")
    oversample: int = setting(3, "positive int", help="sub-pixels per pixel side when rendering")
    wavelengths: np.ndarray = field(init=False)
    psfs: list[np.ndarray] = field(init=False)
    sky: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if len(self.mag_range) != 2 or self.mag_range[0] > self.mag_range[1]:
            raise ValueError(f"mag_range must be [bright, faint], got {list(self.mag_range)}")
        self.wavelengths = band_wavelengths(self.n_bands)
        self.lambda_ref = float(self.wavelengths[len(self.wavelengths) // 2])
        fwhm_px = self.psf_fwhm / self.pixel_scale * (self.wavelengths / self.lambda_ref) ** -0.2
        self.psf_fwhm_px = fwhm_px
        size = 2 * int(np.ceil(3 * fwhm_px.max())) + 1
        self.psfs = [P.make_psf(self.psf, f, self.moffat_beta, size) for f in fwhm_px]
        self.sky = np.full(self.n_bands, float(P.sb_to_counts_per_pixel(self.sky_mag, self.pixel_scale,
                                                                          self.zero_point)))
        shape = (self.image_size, self.image_size)
        self._grid = P.pixel_grid(shape, self.oversample)

    def colour(self, alpha: float) -> np.ndarray:
        """Relative band fluxes of a component of colour slope ``alpha`` (1 at the reference band)."""
        return (self.wavelengths / self.lambda_ref) ** alpha


@dataclass
class GalaxySample:
    """Which classes a simulated dataset draws (with equal probability) and the volunteer-vote
    model of its soft labels (:func:`vote_fractions`)."""

    classes: list[str] = setting(["elliptical", "spiral", "barred_spiral", "edge_on", "irregular", "merger"],
                                 "nonempty list[one of elliptical, spiral, barred_spiral, edge_on, irregular, merger]",
                                 help="at least two distinct classes of CLASSES")
    n_votes: int = setting(40, "positive int", help="simulated volunteers per galaxy (soft labels)")
    vote_noise: float = setting(0.15, "non-negative float",
                                help="volunteers' error rate at the bright end of mag_range (doubles at the faint end)")


class _Builder:
    """Accumulates unit-flux component templates (H, W) and their band fluxes."""

    def __init__(self, obs: Observation, rng: np.random.Generator):
        self.obs, self.rng = obs, rng
        s = obs.image_size
        centre = (s - 1) / 2 + rng.uniform(-0.5, 0.5, size=2)
        phi = rng.uniform(0.0, 2 * np.pi)
        mirror = rng.random() < 0.5
        self.centre, self.phi, self.mirror = centre, phi, mirror
        self.u, self.v = self.to_galaxy(*obs._grid)
        self.params = {"centre_x": float(centre[0]), "centre_y": float(centre[1]),
                       "orientation": float(phi), "mirror": bool(mirror)}
        self.templates: list[np.ndarray] = []
        self.band_flux: list[np.ndarray] = []
        self.attenuation = np.ones((obs.n_bands, 1, 1))

    def to_galaxy(self, x, y):
        """Sky pixel coordinates -> galaxy frame (rotate by -phi about the centre, then mirror)."""
        dx, dy = x - self.centre[0], y - self.centre[1]
        u = np.cos(self.phi) * dx + np.sin(self.phi) * dy
        v = -np.sin(self.phi) * dx + np.cos(self.phi) * dy
        return u, (-v if self.mirror else v)

    def to_sky(self, u, v):
        """Galaxy frame -> sky pixel coordinates (inverse of :meth:`to_galaxy`)."""
        v = -v if self.mirror else v
        return (self.centre[0] + np.cos(self.phi) * u - np.sin(self.phi) * v,
                self.centre[1] + np.sin(self.phi) * u + np.cos(self.phi) * v)

    def px(self, arcsec):
        return arcsec / self.obs.pixel_scale

    def add(self, sb, flux_fraction: float, alpha: float, cusp: tuple[float, float] | None = None) -> None:
        """Add a component: surface brightness on the sub-pixel grid (any normalisation), or a
        function ``f(u, v)`` of galaxy-frame coordinates; ``cusp`` = galaxy-frame centre of a
        cuspy profile, whose central pixels are then integrated finely (:func:`P.refine_pixels`)."""
        fn = sb if callable(sb) else None
        if fn is not None:
            sb = fn(self.u, self.v)
        img = P.bin_oversampled(sb, self.obs.oversample) / self.obs.oversample ** 2
        if cusp is not None and fn is not None:
            img = P.refine_pixels(img, lambda x, y: fn(*self.to_galaxy(x, y)), *self.to_sky(*cusp))
        total = img.sum()
        if total <= 0 or flux_fraction <= 0:
            return
        self.templates.append(img / total)
        self.band_flux.append(flux_fraction * self.obs.colour(alpha))

    def image(self, total_flux: float) -> np.ndarray:
        """Noiseless, unconvolved ``(n_bands, H, W)`` image with reference-band flux ``total_flux``."""
        T = np.stack(self.templates)                  # (n_comp, H, W)
        Fb = np.stack(self.band_flux)                  # (n_comp, n_bands)
        norm = Fb[:, len(self.obs.wavelengths) // 2].sum()
        img = np.einsum("cb,chw->bhw", Fb / norm, T) * total_flux
        return img * self.attenuation


def _choice(rng, values, p):
    return values[int(rng.choice(len(values), p=p))]


def _disk_with_arms(b: _Builder, r_d: float, incl: float, pa: float, flux: float, arm_frac: float,
                    r_in: float, bar: bool) -> dict:
    """Exponential disk (px units) whose arm light follows m-armed log spirals in the disk plane."""
    rng = b.rng
    q = float(P.inclination_axis_ratio(incl, 0.15))
    du, dv = P.rotate_coords(b.u, b.v, 0.0, 0.0, pa)      # disk major-axis frame
    xd, yd = du, dv / q                                     # deprojected disk-plane coordinates
    R = np.hypot(xd, yd) + 1e-9
    theta = np.arctan2(yd, xd)
    m = int(_choice(rng, [2, 3, 4], [0.6, 0.25, 0.15]))
    pitch = np.deg2rad(rng.uniform(12.0, 30.0))
    wind = 1.0 if rng.random() < 0.5 else -1.0
    theta0 = rng.uniform(0, 2 * np.pi)
    disk = np.exp(-R / r_d)
    phase = m * (theta - wind * np.log(R / r_d) / np.tan(pitch) - theta0)
    sharp = ((1 + np.cos(phase)) / 2) ** 4                 # narrow arms
    taper = 1 - np.exp(-(R / max(r_in, 0.5)) ** 4)          # arms start outside r_in
    b.add(disk, flux * (1 - arm_frac), 0.2)
    b.add(disk * sharp * taper, flux * arm_frac, -0.8)
    return {"n_arms": m, "pitch_deg": float(np.rad2deg(pitch)), "winding": wind, "arm_fraction": arm_frac,
            "disk_q": q, "disk_pa": pa, "r_d_px": r_d, "inclination_deg": float(np.rad2deg(incl)), "bar": bar}


def _spiral(b: _Builder, barred: bool) -> None:
    rng = b.rng
    r_d = b.px(rng.uniform(0.8, 1.8))
    incl = np.deg2rad(rng.uniform(0, 50 if barred else 60))
    pa = rng.uniform(0, np.pi)
    bt = rng.uniform(0.05, 0.35)
    q = float(P.inclination_axis_ratio(incl, 0.15))
    n_b = rng.uniform(1.0, 2.5)
    r_b = rng.uniform(0.15, 0.3) * 1.678 * r_d
    b.add(lambda u, v: P.sersic(u, v, 1.0, r_b, n_b, max(q, 0.6), pa), bt, 1.0, cusp=(0.0, 0.0))
    bar_frac, r_in = 0.0, 0.6 * r_d
    extra = {}
    if barred:
        bar_frac = rng.uniform(0.15, 0.3)
        bar_len = rng.uniform(0.9, 1.5) * r_d
        psi = rng.uniform(0, np.pi)                         # bar angle in the disk plane
        # project the bar's major axis onto the sky (disk frame -> sky frame)
        ex, ey = np.cos(psi), np.sin(psi) * q
        bar_pa = pa + np.arctan2(ey, ex)
        proj = np.hypot(ex, ey)
        bar_q = rng.uniform(0.15, 0.3)
        b.add(P.sersic(b.u, b.v, 1.0, bar_len * proj, 0.5, bar_q / max(proj, bar_q), bar_pa), bar_frac, 0.8)
        r_in = bar_len
        extra = {"bar_fraction": bar_frac, "bar_q": bar_q, "bar_half_length_px": bar_len}
    arm_frac = rng.uniform(0.3, 0.55)
    info = _disk_with_arms(b, r_d, incl, pa, 1 - bt - bar_frac, arm_frac, r_in, barred)
    b.params.update(info, bulge_to_total=bt, **extra)


def _elliptical(b: _Builder) -> None:
    rng = b.rng
    n, r_e, q = rng.uniform(2.5, 5.5), b.px(rng.uniform(0.8, 2.2)), rng.uniform(0.55, 1.0)
    pa = rng.uniform(0, np.pi)
    b.add(lambda u, v: P.sersic(u, v, 1.0, r_e, n, q, pa), 1.0, 1.2, cusp=(0.0, 0.0))
    b.params.update(sersic_n=n, r_e_px=r_e, q=q)


def _edge_on(b: _Builder) -> None:
    rng = b.rng
    r_d = b.px(rng.uniform(1.0, 2.0))
    incl = np.deg2rad(rng.uniform(82, 90))
    q0 = rng.uniform(0.08, 0.18)
    pa = rng.uniform(0, np.pi)
    bt = rng.uniform(0.0, 0.3)
    q = float(P.inclination_axis_ratio(incl, q0))
    if bt > 0.02:
        r_b, n_b, q_b = rng.uniform(0.2, 0.4) * 1.678 * r_d, rng.uniform(1.5, 3.5), rng.uniform(0.6, 0.9)
        b.add(lambda u, v: P.sersic(u, v, 1.0, r_b, n_b, q_b, pa), bt, 1.0, cusp=(0.0, 0.0))
    b.add(P.sersic(b.u, b.v, 1.0, 1.678 * r_d, 1.0, q, pa), 1 - bt if bt > 0.02 else 1.0, 0.3)
    tau = rng.uniform(0.0, 0.7)
    _, dv = P.rotate_coords(b.u, b.v, 0.0, 0.0, pa)
    h = max(0.35 * q * 1.678 * r_d, 0.5)
    lane = P.bin_oversampled(np.exp(-0.5 * (dv / h) ** 2), b.obs.oversample) / b.obs.oversample ** 2
    tau_b = tau * (b.obs.wavelengths / b.obs.lambda_ref) ** -1.0
    b.attenuation = np.exp(-tau_b[:, None, None] * lane[None])
    b.params.update(inclination_deg=float(np.rad2deg(incl)), disk_q=q, q0=q0, r_d_px=r_d,
                    bulge_to_total=bt, dust_tau=tau, disk_pa=pa)


def _irregular(b: _Builder) -> None:
    rng = b.rng
    r_d = b.px(rng.uniform(0.8, 1.8))
    off = rng.normal(0, 0.25 * r_d, size=2)
    clump_frac = rng.uniform(0.35, 0.7)
    b.add(P.sersic(b.u, b.v, 1.0, 1.678 * r_d, 1.0, rng.uniform(0.4, 1.0), rng.uniform(0, np.pi),
                   off[0], off[1]), 1 - clump_frac, -0.3)
    n_clumps = int(rng.integers(4, 13))
    fr = rng.dirichlet(np.ones(n_clumps))
    pos = rng.normal(0, 1.2 * r_d, size=(n_clumps, 2)) + off
    sig = b.px(rng.uniform(0.25, 0.6, size=n_clumps))
    sb = sum(P.gaussian_blob(b.u, b.v, f, s, x0, y0) for f, s, (x0, y0) in zip(fr, sig, pos))
    b.add(sb, clump_frac, -1.0)
    b.params.update(n_clumps=n_clumps, clump_fraction=clump_frac, r_d_px=r_d)


def _merger(b: _Builder) -> None:
    rng = b.rng
    s = b.obs.image_size
    r1, r2 = b.px(rng.uniform(0.6, 1.4, size=2))
    sep = min(rng.uniform(1.2, 2.5) * (r1 + r2), 0.35 * s)
    ratio = rng.uniform(0.3, 1.0)
    f1, f2 = 1 / (1 + ratio), ratio / (1 + ratio)
    tail_frac = rng.uniform(0.10, 0.25)
    centres = np.array([[-sep * f2, 0.0], [sep * f1, 0.0]])  # centre of light at the origin
    for (x0, y0), f, r in zip(centres, (f1, f2), (r1, r2)):
        n, q, pa = rng.uniform(1.0, 4.0), rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
        b.add(lambda u, v, r=r, n=n, q=q, pa=pa, x0=x0, y0=y0: P.sersic(u, v, 1.0, r, n, q, pa, x0, y0),
              (1 - tail_frac) * f, rng.uniform(0.0, 1.2), cusp=(x0, y0))
    n_tails = int(rng.integers(1, 3))
    sense = 1.0 if rng.random() < 0.5 else -1.0
    tails = 0.0
    for k in range(n_tails):
        x0, y0 = centres[k]
        r = (r1, r2)[k]
        length = rng.uniform(2.0, 4.0) * r
        t = np.linspace(0, 1, 24)
        start = np.arctan2(-y0, -x0) + np.pi + rng.uniform(-0.6, 0.6)   # pointing away from the companion
        curv = sense * rng.uniform(0.8, 1.6)                                # radians turned along the tail
        ang = start + curv * t
        rad = r * 0.8 + length * t
        px_, py_ = x0 + rad * np.cos(ang), y0 + rad * np.sin(ang)
        w = np.exp(-1.5 * t)
        sig = 0.25 * r + 0.35 * r * t
        tails = tails + sum(P.gaussian_blob(b.u, b.v, wi, si, xi, yi) for wi, si, xi, yi in zip(w, sig, px_, py_))
    b.add(tails, tail_frac, 0.3)
    b.params.update(separation_px=float(sep), flux_ratio=ratio, n_tails=n_tails, tail_fraction=tail_frac,
                    r_e1_px=r1, r_e2_px=r2,
                    nuclei_galaxy_frame=centres.tolist())


_MAKERS = {
    "elliptical": _elliptical, "spiral": lambda b: _spiral(b, False), "barred_spiral": lambda b: _spiral(b, True),
    "edge_on": _edge_on, "irregular": _irregular, "merger": _merger,
}


def simulate_galaxy(rng: np.random.Generator, cls: str, obs: Observation, noise: bool = True,
                    psf: bool = True) -> tuple[np.ndarray, dict]:
    """One ``(n_bands, H, W)`` float32 image (counts, sky-subtracted) of class ``cls`` and its
    true parameters (incl. ``mag``, ``orientation``, centre). ``noise``/``psf`` can be switched
    off for tests. The result depends only on the state of ``rng``."""
    if cls not in _MAKERS:
        raise ValueError(f"unknown galaxy class {cls!r}; choose from {', '.join(CLASSES)}")
    b = _Builder(obs, rng)
    mag = rng.uniform(*obs.mag_range)
    _MAKERS[cls](b)
    img = b.image(float(P.mag_to_counts(mag, obs.zero_point)))
    if psf:
        img = np.stack([P.fft_convolve(img[i], obs.psfs[i]) for i in range(obs.n_bands)])
    if noise:
        img = P.add_noise(rng, img, obs.sky[:, None, None], obs.read_noise, obs.gain)
    b.params.update(cls=cls, mag=float(mag))
    return img.astype(np.float32), b.params


def confusion_matrix_prior(classes: list[str] | tuple[str, ...]) -> np.ndarray:
    """Row-normalised matrix of how votes spread to *other* classes (zero diagonal)."""
    k = len(classes)
    S = np.full((k, k), 0.05)
    for (a, c), w in _CONFUSION.items():
        if a in classes and c in classes:
            S[classes.index(a), classes.index(c)] = S[classes.index(c), classes.index(a)] = w
    np.fill_diagonal(S, 0.0)
    rows = S.sum(1, keepdims=True)
    return np.divide(S, rows, out=np.zeros_like(S), where=rows > 0)


def vote_fractions(rng: np.random.Generator, label: int, mag: float, classes, mag_range, vote_noise: float,
                   n_votes: int) -> np.ndarray:
    """Vote fractions of ``n_votes`` volunteers who each pick the true class with probability
    ``1 - eps`` and otherwise a confusable class (:func:`confusion_matrix_prior`), with
    ``eps = vote_noise * (1 + (mag - m_lo) / (m_hi - m_lo))`` (fainter -> noisier), capped at 0.9."""
    k = len(classes)
    lo, hi = mag_range
    eps = min(0.9, vote_noise * (1.0 + (mag - lo) / max(hi - lo, 1e-9)))
    p = (1 - eps) * np.eye(k)[label] + eps * confusion_matrix_prior(list(classes))[label]
    if k == 1:
        p = np.ones(1)
    return rng.multinomial(n_votes, p / p.sum()) / n_votes


__all__ = ["CLASSES", "Observation", "GalaxySample", "simulate_galaxy", "vote_fractions", "band_wavelengths",
           "confusion_matrix_prior"]
