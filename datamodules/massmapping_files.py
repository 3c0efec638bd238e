"""Readers of real mass-mapping files for :mod:`cosmobench.datamodules.massmapping`: flat shear
stacks (NPY/NPZ/FITS/HDF5, axis and sign conventions in that module's docstring), HEALPix
shear/scalar FITS maps (RING; ``hp.UNSEEN``/NaN pixels count as unobserved), tiling of one
large field, and the check that every map has an observed pixel."""
from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from cosmobench.errors import ConfigError, InputError

#: smallest side (px) of a flat shear map: below it the Fourier inversion has no scale to recover
#: (a 2x2 map has one non-zero mode) and the U-Net's pooling runs out of pixels (data.tile >= 8 too)
MIN_MAP_PX = 8


def check_observed(mask: np.ndarray, where: str) -> None:
    """Every map of ``mask`` ``(M, ...)`` (1 = observed) has an observed pixel; else an
    InputError: a map with no data would get a convergence map made of nothing."""
    empty = np.flatnonzero(~(np.asarray(mask).reshape(len(mask), -1) > 0).any(1))
    if len(empty):
        raise InputError(f"{where}: map {int(empty[0])} has no observed pixel (its mask is all zero"
                         f"{f'; {len(empty)} such maps' if len(empty) > 1 else ''})")



def load_raw(path: Path, what: str) -> np.ndarray:
    from cosmobench.images import load_array  # the shared NPY/NPZ/HDF5/FITS reader
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    return np.asarray(load_array(path, None), dtype=np.float64)


def read_flat_shear(path: str | Path, axis_order: str = "auto", spatial_order: str = "yx",
                    gamma2_sign: float = 1.0) -> tuple[np.ndarray, bool]:
    """Shear maps from a file -> ``((M, 2, N, N) float64, was_single_map)`` in the pixel frame of
    :mod:`cosmobench.sim.cosmology` (layouts in the module docstring)."""
    p = Path(path).expanduser()
    a = load_raw(p, "shear map")
    single = a.ndim == 3
    if single:
        a = a[None]
    if a.ndim != 4:
        raise InputError(f"{p}: expected a shear map (2, N, N)/(N, N, 2) or a stack (M, 2, N, N)/(M, N, N, 2), "
                         f"got shape {a.shape[1:] if single else a.shape}")
    if axis_order == "auto":
        if a.shape[1] == 2 and a.shape[-1] != 2:
            axis_order = "chw"
        elif a.shape[-1] == 2 and a.shape[1] != 2:
            axis_order = "hwc"
        elif a.shape[1] == 2:
            axis_order = "chw"
        else:
            raise InputError(f"{p}: no axis of length 2 (gamma1, gamma2) in shape {a.shape}")
    if axis_order == "hwc":
        a = np.moveaxis(a, -1, 1)
    if a.shape[1] != 2:
        raise InputError(f"{p}: data.axis_order={axis_order} but the component axis has length {a.shape[1]}, not 2")
    if min(a.shape[-2:]) < MIN_MAP_PX:
        raise InputError(f"{p}: shear maps of {a.shape[-2]}x{a.shape[-1]} px are too small for a convergence "
                         f"map (at least {MIN_MAP_PX}x{MIN_MAP_PX} px)")
    if spatial_order == "xy":
        a = np.swapaxes(a, -1, -2)
    a = a.copy()
    a[:, 1] *= float(gamma2_sign)
    if not np.isfinite(a).all():
        raise InputError(f"{p}: shear maps contain NaN or inf (set unobserved pixels to 0 and give a mask)")
    return a, single


def read_flat_scalar(path: str | Path, n_maps: int, shape: tuple[int, int], spatial_order: str,
                      what: str) -> np.ndarray:
    p = Path(path).expanduser()
    a = load_raw(p, what)
    if a.ndim == 2:
        a = np.broadcast_to(a, (n_maps,) + a.shape)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if spatial_order == "xy":
        a = np.swapaxes(a, -1, -2)
    if a.shape != (n_maps,) + tuple(shape):
        raise InputError(f"{p}: {what} has shape {a.shape}, expected {(n_maps,) + tuple(shape)} "
                         f"(or one {tuple(shape)} map for all)")
    if not np.isfinite(a).all():
        raise InputError(f"{p}: {what} contains NaN or inf")
    return np.array(a, dtype=np.float64)


def check_noise(noise: np.ndarray, mask: np.ndarray, where: str) -> None:
    """A per-pixel noise std map is > 0 wherever ``mask`` observes; else an InputError."""
    if np.any(np.asarray(noise)[np.asarray(mask) > 0] <= 0):
        raise InputError(f"{where}: the noise map must be > 0 in observed pixels")


def read_flat_kappa(path: str | Path, spatial_order: str) -> np.ndarray:
    """Convergence maps ``(N, N)`` or ``(M, N, N)`` -> ``(M, N, N)`` float64 (``data.source=kappa``)."""
    p = Path(path).expanduser()
    a = load_raw(p, "convergence")
    a = a[None] if a.ndim == 2 else a
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[1] < MIN_MAP_PX:
        raise InputError(f"{p}: expected square convergence maps (N, N) or (M, N, N) with N >= {MIN_MAP_PX}, "
                         f"got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{p}: convergence contains NaN or inf")
    return np.swapaxes(a, -1, -2).copy() if spatial_order == "xy" else a


def read_survey_maps(mask_path: str | None, noise_path: str | None, map_size: int,
                     spatial_order: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A simulated survey's mask (0/1) and per-pixel noise std: one square ``(N, N)`` map each (or
    None when its path is not set), of the same shape, with ``N >= map_size`` (the maps are crops)."""
    maps = []
    for path, what in ((mask_path, "survey mask (data.mask_path)"), (noise_path, "survey noise (data.noise_path)")):
        if not path:
            maps.append(None)
            continue
        p = Path(path).expanduser()
        a = load_raw(p, what)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise InputError(f"{p}: the {what} must be one square map (N, N), got shape {a.shape}")
        if a.shape[0] < map_size:
            raise InputError(f"{p}: the {what} has {a.shape[0]} px, fewer than data.map_size={map_size}")
        if not np.isfinite(a).all():
            raise InputError(f"{p}: the {what} contains NaN or inf")
        maps.append(np.swapaxes(a, 0, 1) if spatial_order == "xy" else a)
    mask, noise = maps
    if mask is not None and noise is not None:
        if mask.shape != noise.shape:
            raise InputError(f"the survey mask {mask.shape} and noise map {noise.shape} differ in shape")
        check_noise(noise, mask, str(noise_path))
    return (None if mask is None else (mask > 0).astype(np.float64)), noise


def tile_maps(data: dict[str, np.ndarray], tile: int) -> dict[str, np.ndarray]:
    """Cut every ``(M, C, N, N)`` array of ``data`` into non-overlapping ``tile x tile``
    maps -> ``(M * (N // tile)^2, C, tile, tile)``, row-major over the tiles of each map
    (a remainder of ``N % tile`` px at the high edges is dropped)."""
    n = next(iter(data.values())).shape[-1]
    k = n // tile
    if k < 1:
        raise ConfigError(f"data.tile={tile} is larger than the {n} px maps")
    out = {}
    for key, a in data.items():
        a = a[..., :k * tile, :k * tile]
        m, c = a.shape[:2]
        out[key] = a.reshape(m, c, k, tile, k, tile).transpose(0, 2, 4, 1, 3, 5).reshape(m * k * k, c, tile, tile)
    return out


def expand_pattern(pattern: str, what: str) -> list[Path]:
    files = sorted(Path(f) for f in glob.glob(str(Path(pattern).expanduser())))
    if not files:
        raise InputError(f"{what}: no file matches {pattern}")
    return files


def read_healpix_shear(path: str | Path, gamma2_sign: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """``(gamma (2, npix), mask or None)`` from a HEALPix FITS file with fields gamma1, gamma2
    [, mask] (header ORDERING RING or NESTED, converted to RING; anything else is refused:
    :func:`cosmobench.sim.healpix.read_healpix_fits`)."""
    import healpy as hp

    from cosmobench.sim.healpix import read_healpix_fits
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"HEALPix map file not found: {p}")
    maps = read_healpix_fits(p, None, "HEALPix shear map (fields gamma1, gamma2 [, mask])", min_fields=2)
    maps = np.atleast_2d(np.asarray(maps, dtype=np.float64))
    bad = (maps == hp.UNSEEN) | ~np.isfinite(maps)
    gamma = np.where(bad[:2], 0.0, maps[:2])
    gamma[1] *= float(gamma2_sign)
    mask = None
    if len(maps) >= 3:
        mask = np.where(bad[2], 0.0, maps[2])
    if bad[:2].any():
        unseen = (bad[0] | bad[1]).astype(float)
        mask = (1.0 - unseen) if mask is None else mask * (1.0 - unseen)
    return gamma, mask


def read_healpix_scalar(path: Path, what: str) -> np.ndarray:
    import healpy as hp

    from cosmobench.sim.healpix import read_healpix_fits
    m = read_healpix_fits(path, (0,), f"HEALPix {what}")[0]
    return np.where((m == hp.UNSEEN) | ~np.isfinite(m), 0.0, m)


def is_healpix_fits(p: Path) -> bool:
    if p.suffix.lower() not in (".fits", ".fit", ".fits.gz"):
        return False
    from astropy.io import fits
    try:
        with fits.open(p) as hdul:
            return len(hdul) > 1 and isinstance(hdul[1], fits.BinTableHDU) and "NSIDE" in hdul[1].header
    except Exception:
        return False
