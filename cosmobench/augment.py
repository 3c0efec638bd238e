"""Exact D4 (rot90 / flip) augmentation of scalar images and of spin-2 (shear) fields.

Pixel convention (as in :mod:`cosmobench.images`): an image is ``(..., H, W)`` with the
``y`` axis along rows (axis ``-2``) and the ``x`` axis along columns (axis ``-1``). Element
``g`` in 0..7 of D4 is ``torch.rot90`` by ``g % 4`` quarter turns in the ``(-2, -1)`` plane,
followed by a left-right flip ``x -> -x`` (``torch.flip`` of axis ``-1``) if ``g >= 4``.
No interpolation: every element is an exact permutation of pixels.

Spin-2 fields. A shear field ``gamma = gamma1 + i gamma2`` stored as ``(..., 2, H, W)``
(component 0 = ``gamma1``, 1 = ``gamma2``) is defined in the same pixel frame:
``gamma1 = (psi_xx - psi_yy) / 2``, ``gamma2 = psi_xy`` for the lensing potential ``psi``,
i.e. in Fourier space ``gamma_hat = ((k_x^2 - k_y^2) + 2i k_x k_y) / k^2 kappa_hat``
(Kaiser & Squires 1993). Moving the field by a rotation ``R_phi`` (``f'(r) = f(R^-1 r)``)
multiplies it by ``exp(2 i phi)`` (spin 2); a mirror conjugates it in the mirror's frame.
Hence, for the pixel operations above:

* a quarter turn (``phi = +-90 deg``, either direction): ``exp(2 i phi) = -1``: both
  components change sign; two quarter turns: unchanged;
* the flip ``x -> -x``: ``psi_xx``, ``psi_yy`` unchanged, ``psi_xy`` changes sign:
  ``gamma2 -> -gamma2`` (conjugation);
* (so a transpose ``x <-> y`` = flip + quarter turn gives ``gamma1 -> -gamma1``).

:func:`d4_transform_spin2` moves the pixels with :func:`d4_transform` and applies the signs
``s1 = (-1)^(g % 4)``, ``s2 = s1 * (-1 if g >= 4 else 1)``. ``tests/test_augment.py`` checks
that transforming ``kappa`` then computing ``gamma`` equals transforming ``gamma``.

Augmentation of training batches is seeded per sample: :func:`augment_elements` hashes
``(seed, epoch, idx)`` (SplitMix64, hand-written: numpy has no stateless integer hash), so
the element a sample gets is independent of workers, batch order, DDP and resumption.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

N_D4 = 8


def d4_transform(x: torch.Tensor, g: int) -> torch.Tensor:
    """Element ``g`` in 0..7 of D4 on the last two axes of a scalar image ``(..., H, W)``:
    ``rot90`` by ``g % 4`` quarter turns, then a left-right flip if ``g >= 4``. Exact."""
    g = int(g)
    if not 0 <= g < N_D4:
        raise ValueError(f"D4 element must be in 0..7, got {g}")
    y = torch.rot90(x, g % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if g >= 4 else y


def spin2_signs(g: int) -> tuple[int, int]:
    """Signs ``(s1, s2)`` multiplying ``(gamma1, gamma2)`` under D4 element ``g`` (module docstring)."""
    s1 = -1 if (int(g) % 4) % 2 else 1
    return s1, (-s1 if int(g) >= 4 else s1)


def d4_transform_spin2(gamma: torch.Tensor, g: int) -> torch.Tensor:
    """Element ``g`` of D4 applied to a spin-2 field ``(..., 2, H, W)`` (``gamma1``, ``gamma2``
    in the pixel frame of the module docstring): pixels move as in :func:`d4_transform` and the
    components change sign by :func:`spin2_signs`."""
    if gamma.ndim < 3 or gamma.shape[-3] != 2:
        raise ValueError(f"a spin-2 field must have shape (..., 2, H, W), got {tuple(gamma.shape)}")
    y = d4_transform(gamma, g)
    s1, s2 = spin2_signs(g)
    sign = torch.tensor([s1, s2], dtype=y.dtype, device=y.device).view(2, 1, 1)
    return y * sign


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014) on uint64 arrays (wrapping arithmetic)."""
    z = (z + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def augment_elements(seed: int, epoch: int, idx: np.ndarray, n_elements: int = N_D4) -> np.ndarray:
    """Group element (0..n_elements-1) of each sample: a hash of ``(seed, epoch, idx)``."""
    with np.errstate(over="ignore"):
        z = _splitmix64(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(epoch))
        z = _splitmix64(z ^ np.asarray(idx, dtype=np.uint64))
    return (z % np.uint64(n_elements)).astype(np.int64)


def apply_augmentation(images: torch.Tensor, idx: torch.Tensor, seed: int, epoch: int,
                       transform: Callable[[torch.Tensor, int], torch.Tensor] = d4_transform) -> torch.Tensor:
    """Apply each sample's D4 element (:func:`augment_elements`) to a batch ``(B, ...)``.

    ``transform`` is :func:`d4_transform` for images ``(B, C, H, W)`` or
    :func:`d4_transform_spin2` for shear fields ``(B, 2, H, W)``; several fields of one sample
    (e.g. a convergence map and its shear) get the same element when called with the same
    ``idx``, ``seed`` and ``epoch``."""
    g = augment_elements(seed, epoch, idx.detach().cpu().numpy())
    out = images.clone()
    for e in np.unique(g):
        sel = torch.as_tensor(np.nonzero(g == e)[0], device=images.device)
        out[sel] = transform(images[sel], int(e))
    return out


__all__ = ["N_D4", "d4_transform", "d4_transform_spin2", "spin2_signs", "augment_elements",
           "apply_augmentation"]
