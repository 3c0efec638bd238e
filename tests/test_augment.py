"""D4 transforms of scalar images and spin-2 (shear) fields, and seeded augmentation."""
import numpy as np
import pytest
import torch

from cosmobench.augment import (apply_augmentation, augment_elements, d4_transform, d4_transform_spin2,
                                spin2_signs)


def kaiser_squires_forward(kappa: np.ndarray) -> np.ndarray:
    """Shear (2, H, W) of a convergence map (H, W) on a periodic grid, x = last axis, y = rows:
    gamma_hat = ((kx^2 - ky^2) + 2i kx ky) / k^2 kappa_hat (Kaiser & Squires 1993)."""
    ky = np.fft.fftfreq(kappa.shape[0])[:, None]
    kx = np.fft.fftfreq(kappa.shape[1])[None, :]
    k2 = kx ** 2 + ky ** 2
    k2[0, 0] = 1.0
    kh = np.fft.fft2(kappa)
    kh[0, 0] = 0.0
    g1 = np.fft.ifft2((kx ** 2 - ky ** 2) / k2 * kh).real
    g2 = np.fft.ifft2(2 * kx * ky / k2 * kh).real
    return np.stack([g1, g2])


def smooth_field(n: int, seed: int) -> np.ndarray:
    """An asymmetric Gaussian random field with a red spectrum (no symmetry to hide sign errors).
    On an even grid the Nyquist modes are removed: k = -1/2 is its own mirror image there, so
    the discrete k_x k_y term of the operator cannot change sign under a flip."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n)
    k = np.hypot(f[:, None], f[None, :])
    amp = 1.0 / (1e-2 + k) ** 1.5
    amp[:, f == -0.5] = 0.0
    amp[f == -0.5, :] = 0.0
    return np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) * amp).real


@pytest.mark.parametrize("n", [32, 33])
def test_spin2_rule_matches_kaiser_squires(n):
    kappa = smooth_field(n, 0)
    gamma = torch.from_numpy(kaiser_squires_forward(kappa))
    for g in range(8):
        kappa_g = d4_transform(torch.from_numpy(kappa), g).numpy()
        expected = torch.from_numpy(kaiser_squires_forward(kappa_g))
        torch.testing.assert_close(d4_transform_spin2(gamma, g), expected, rtol=0, atol=1e-10)
    # the spin-2 signs matter: moving the components like scalars is wrong for a quarter turn
    # (both flip), the x-flip (gamma2 flips) and the transpose-like element g=5 (gamma1 flips)
    for g, comp in ((1, 0), (1, 1), (4, 1), (5, 0)):
        naive = d4_transform(gamma, g)
        true = torch.from_numpy(kaiser_squires_forward(d4_transform(torch.from_numpy(kappa), g).numpy()))
        assert not torch.allclose(naive[comp], true[comp], atol=1e-6)


def test_spin2_signs_and_batches():
    assert [spin2_signs(g) for g in range(8)] == [(1, 1), (-1, -1), (1, 1), (-1, -1),
                                                  (1, -1), (-1, 1), (1, -1), (-1, 1)]
    gamma = torch.randn(3, 2, 9, 9)
    for g in range(8):  # batched == per sample; group action: g then its inverse is the identity
        out = d4_transform_spin2(gamma, g)
        torch.testing.assert_close(out[1], d4_transform_spin2(gamma[1], g))
    torch.testing.assert_close(d4_transform_spin2(d4_transform_spin2(gamma, 1), 3), gamma)
    torch.testing.assert_close(d4_transform_spin2(d4_transform_spin2(gamma, 5), 5), gamma)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        d4_transform_spin2(torch.zeros(3, 9, 9), 1)
    with pytest.raises(ValueError, match="0..7"):
        d4_transform(gamma, 8)


def test_seeded_augmentation_of_scalar_and_spin2_fields():
    idx = torch.arange(20, 36)
    g = augment_elements(3, 1, idx.numpy())
    np.testing.assert_array_equal(g, augment_elements(3, 1, idx.numpy()))
    assert not np.array_equal(g, augment_elements(3, 2, idx.numpy()))
    kappa = torch.randn(16, 1, 8, 8)
    gamma = torch.randn(16, 2, 8, 8)
    ka = apply_augmentation(kappa, idx, seed=3, epoch=1)
    ga = apply_augmentation(gamma, idx, seed=3, epoch=1, transform=d4_transform_spin2)
    for i, e in enumerate(g):  # both fields of a sample get the same element
        torch.testing.assert_close(ka[i], d4_transform(kappa[i], int(e)), rtol=0, atol=0)
        torch.testing.assert_close(ga[i], d4_transform_spin2(gamma[i], int(e)), rtol=0, atol=0)


def test_spin2_rule_matches_the_shared_kaiser_squires_operator():
    """Same check with the library's flat-sky KS operator (cosmobench.sim.cosmology), whose
    Nyquist handling keeps it exactly D4-equivariant on even grids: the conventions agree."""
    from cosmobench.sim.cosmology import ks_forward
    kappa = np.random.default_rng(4).normal(size=(24, 24))
    gamma = torch.from_numpy(np.stack(ks_forward(kappa)))
    for g in range(8):
        expected = torch.from_numpy(np.stack(ks_forward(d4_transform(torch.from_numpy(kappa), g).numpy())))
        torch.testing.assert_close(d4_transform_spin2(gamma, g), expected, rtol=0, atol=1e-10)


def test_image_datamodule_augments_declared_fields_with_one_element_per_sample():
    from cosmobench.datamodule import ImageDataModule

    class Maps(ImageDataModule):
        augment_fields = {"kappa": "scalar", "gamma": "spin2"}

        def build(self):
            return {}

        def info(self):
            return {}

    dm = Maps({"source": "sim", "augment": True}, seed=5)

    class FakeTrainer:
        training, current_epoch = True, 2

    dm.trainer = FakeTrainer()
    kappa = torch.from_numpy(np.stack([smooth_field(12, s) for s in range(6)]))[:, None]
    gamma = torch.from_numpy(np.stack([kaiser_squires_forward(k[0].numpy()) for k in kappa]))
    idx = torch.arange(6)
    out = dm.on_after_batch_transfer({"kappa": kappa, "gamma": gamma, "idx": idx}, 0)
    assert not torch.equal(out["kappa"], kappa)
    for i in range(6):  # the augmented shear is still the shear of the augmented convergence
        expected = torch.from_numpy(kaiser_squires_forward(out["kappa"][i, 0].numpy()))
        torch.testing.assert_close(out["gamma"][i], expected, rtol=0, atol=1e-10)
    FakeTrainer.training = False
    assert dm.on_after_batch_transfer({"kappa": kappa, "idx": idx}, 0)["kappa"] is kappa
