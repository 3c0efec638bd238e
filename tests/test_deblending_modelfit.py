"""Model-fitting deblender (cosmobench.modelfit): recovers injected Sérsic parameters."""
import numpy as np
import pytest
import torch

from cosmobench.modelfit import ModelFitSettings, PSFConvolution, fit_scenes, sersic_images
from cosmobench.sim import profiles as P


def _scene(galaxies, size=40, psf_fwhm=2.5, noise=0.0, seed=0):
    psf = P.make_psf("moffat", psf_fwhm)
    psfs = np.stack([psf, psf])
    img = np.zeros((2, size, size))
    for g in galaxies:
        prof = P.render(lambda x, y: P.sersic(x, y, 1.0, g["re"], g["n"], g["q"], g["pa"], g["x"], g["y"]),
                        (size, size), 4, refine_at=(g["x"], g["y"]))
        img += np.asarray(g["flux"])[:, None, None] * prof[None]
    img = P.fft_convolve(img, psfs)
    rng = np.random.default_rng(seed)
    var = np.full_like(img, max(noise, 1e-6) ** 2)
    return img + noise * rng.normal(size=img.shape), var, psfs


def test_sersic_images_unit_flux_and_psf_convolution_conserves_flux():
    xy = torch.tensor([[30.0, 31.0]], dtype=torch.float64)
    img = sersic_images(xy, torch.tensor([3.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64),
                        torch.tensor([[0.2, -0.1]], dtype=torch.float64), (64, 64), 4)
    assert float(img.sum()) == pytest.approx(1.0, abs=0.01)
    psf = torch.as_tensor(P.make_psf("gaussian", 3.0))
    conv = PSFConvolution(psf[None], (64, 64))(img)
    assert conv.shape == (1, 1, 64, 64) and float(conv.sum()) == pytest.approx(float(img.sum()), rel=1e-6)
    # centred: the convolved centroid stays at the profile centre
    yy, xx = np.mgrid[:64, :64]
    c = conv[0, 0].numpy()
    assert (c * xx).sum() / c.sum() == pytest.approx(30.0, abs=0.02)


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_modelfit_recovers_injected_sersic_parameters(noise):
    gals = [dict(x=15.3, y=18.6, re=4.0, n=2.0, q=0.6, pa=0.5, flux=[3000.0, 1500.0]),
            dict(x=25.8, y=21.2, re=3.0, n=1.0, q=0.8, pa=2.0, flux=[1000.0, 2000.0])]
    img, var, psfs = _scene(gals, noise=noise)
    settings = ModelFitSettings(profile="sersic", fit_steps=250, fit_lr=0.05, fit_oversample=3)
    start = [[g["x"] + 0.7, g["y"] - 0.6] for g in gals]   # detections off by ~1 px
    models, p = fit_scenes(settings, torch.as_tensor(img)[None], torch.as_tensor(var)[None], None, [start], psfs)
    assert models[0].shape == (2, 2, 40, 40)
    for k, g in enumerate(gals):
        assert p["xy"][0, k].numpy() == pytest.approx([g["x"], g["y"]], abs=0.1)
        assert float(p["r_e"][0, k]) == pytest.approx(g["re"], rel=0.08)
        assert float(p["n"][0, k]) == pytest.approx(g["n"], abs=0.25)
        gm = float(p["g"][0, k].norm())
        assert (1 - gm) / (1 + gm) == pytest.approx(g["q"], abs=0.05)
        pa = 0.5 * float(torch.atan2(p["g"][0, k, 1], p["g"][0, k, 0])) % np.pi
        assert min(abs(pa - g["pa"]), np.pi - abs(pa - g["pa"])) < 0.1
        # in-stamp fluxes of the deblended (model) images vs the injected ones, per band
        assert models[0][k].sum((-2, -1)) == pytest.approx(g["flux"], rel=0.03)
    # the models explain the scene: residual at the noise level
    resid = img - models[0].sum(0)
    assert np.sqrt(np.mean(resid ** 2)) < max(3 * noise, 0.02 * img.max())
