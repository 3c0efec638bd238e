"""Weak-lensing mass-mapping data: noisy shear maps -> convergence, flat sky and HEALPix.

Dataset items (dicts of tensors, :class:`~cosmobench.datamodule.ArrayDataset`):

* flat sky (``data.sky=flat``): ``gamma`` ``(2, H, W)`` float32 observed shear (gamma1, gamma2;
  zero in masked pixels), ``kappa`` ``(1, H, W)`` float32 true convergence, ``mask``
  ``(1, H, W)`` float32 (1 = observed); real data may add ``noise`` ``(1, H, W)`` (per-pixel
  shear noise standard deviation). Conventions (axes, gamma sign) as in
  :mod:`cosmobench.sim.cosmology`: axis -1 = x, axis -2 = y, ``gamma1 + i gamma2 = D kappa``.
* HEALPix (``data.sky=healpix``): the same keys with a pixel axis instead of ``(H, W)``:
  ``gamma`` ``(2, npix)``, ``kappa`` ``(1, npix)``, ``mask`` ``(1, npix)`` (RING order; conventions
  in :mod:`cosmobench.sim.healpix`).

Sources
-------
* ``sim`` (default). Convergence from the pyccl spectrum of ``data.omega_m, sigma8, h, n_s,
  omega_b`` and the Smail n(z) (``data.nz_z0``, ``data.nz_alpha``; LSST SRD Y10 defaults) —
  :mod:`cosmobench.sim.cosmology`. ``data.field``: ``lognormal`` (default; shift
  ``data.lognormal_shift``, null = the empty-beam value of
  :func:`~cosmobench.sim.cosmology.lognormal_shift`) or ``gaussian``.
  Flat: ``data.map_size`` px of ``data.pixel_arcmin``; each map is the centre of a periodic box
  ``data.box_factor`` times larger (shear computed on the box, so maps are not periodic).
  HEALPix: full-sky maps at ``data.nside`` (``lmax = 3 nside - 1``), footprint
  ``data.footprint`` (``full``/``band``/``cap`` with ``data.footprint_deg``).
  Shear noise: independent Gaussian per pixel and component with standard deviation
  ``sigma_e / sqrt(n_gal A_pix)`` (``data.sigma_e`` per component, ``data.n_gal`` per arcmin^2).
  ``data.reduced_shear=true`` observes ``g = gamma / (1 - kappa)`` instead of ``gamma``.
  Flat masks: ``data.mask_holes`` circular holes per map (radii uniform in
  ``data.mask_hole_radius`` arcmin; bright-star masks) and a ``data.mask_edge`` px border.
  A survey (flat): ``data.mask_path`` (a square mask, 1 = observed) and/or ``data.noise_path``
  (per-pixel shear noise std, same shape) are applied to every map: each map takes a random
  ``data.map_size`` crop of them (the same crop for both; the whole maps at their own size), so
  the shape noise is Gaussian with that per-pixel std instead of ``sigma_e / sqrt(n_gal A_pix)``.
  Sample i of split s is drawn from ``sample_rng(seed, s, i)``.
* ``kappa``: a test set made of true convergence maps ``data.kappa_path`` (``(N, N)`` or
  ``(M, N, N)``; ``data.spatial_order``) observed through the simulator's own shear operator
  (:func:`cosmobench.sim.cosmology.ks_forward`, periodic on the map; reduced shear if
  ``data.reduced_shear``) with Gaussian shape noise of per-pixel std ``data.noise_path`` (else
  ``sigma_e / sqrt(n_gal A_pix)``) drawn from ``sample_rng(data.render_seed, "test", i)`` and the
  mask ``data.mask_path``: a published field scored as a whole (kappaTNG with the COSMOS mask,
  data set ``kappatng-remy23``). Every map is a test map: a ``test``/``predict`` run only (the
  train/val splits are the same maps, unused); train on the simulator and score its checkpoint
  with ``cosmobench test``/``shift`` and ``data.source=kappa`` -- or, in one run,
  ``data.source=sim data.test_source=kappa``: train/val simulated, the test split these maps
  (the run's leaderboard track is then the data set's, e.g. ``external:kappatng-remy23``).
* ``flat``: ``data.path`` = shear maps (.npy/.npz/.fits/.h5): one map ``(2, N, N)`` / ``(N, N, 2)``
  or a stack ``(M, 2, N, N)`` / ``(M, N, N, 2)`` (``data.axis_order``: ``auto``, ``chw``
  component axis first, ``hwc`` last); ``data.spatial_order`` ``yx`` (rows = y, default) or
  ``xy`` (rows = x: transposed); ``data.gamma2_sign`` (+1, or -1 for catalogues whose x axis
  runs the other way, e.g. RA increasing to the left); ``data.kappa_path`` true convergence
  ``(N, N)``/``(M, N, N)`` (needed to train or score; predict needs only the shear);
  optional ``data.mask_path`` (1 = observed) and ``data.noise_path`` (per-pixel noise std)
  with one map for all or one per map; pixel side ``data.pixel_arcmin``. Maps are split
  into train/val/test by ``data.val_fraction``/``data.test_fraction``; ``data.tile`` first
  cuts every map into non-overlapping ``tile x tile`` maps (:func:`tile_maps`; a single large
  field such as kappaTNG's). ``predict`` reads whole maps.
* ``healpix``: ``data.path`` = HEALPix FITS maps with fields (gamma1, gamma2[, mask]) — a file
  or a glob pattern (several maps); ``data.kappa_path`` the matching convergence files;
  ``data.mask_path`` optional; ``data.gamma2_sign`` as above. Split by file.

Augmentation (``data.augment=true``; on for the ``unet`` model in
``experiments/massmapping/unet.yaml``): each flat training map gets one of the eight D4
elements (:class:`~cosmobench.datamodule.ImageDataModule`'s augmentation), the shear as a
spin-2 field (:func:`~cosmobench.augment.d4_transform_spin2`), convergence, mask and noise
as scalars; HEALPix maps are not augmented.

Settings: :class:`MassMappingData` (the ``data`` node) inherits those of the simulators
(:mod:`cosmobench.sim.cosmology`, :mod:`cosmobench.sim.healpix`) and of the loaders
(:mod:`cosmobench.datamodule`); the metric protocol is the ``eval`` node
(:class:`cosmobench.metrics.massmapping.MassMappingEval`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cosmobench.datamodule import (ArrayDataset, DataSettings, ExternalRenders, FileSplits, ImageAugment,
                                   ImageDataModule, SimSplits, progress, sample_rng, split_indices)
from cosmobench.datamodules.massmapping_files import (check_noise, check_observed, expand_pattern, is_healpix_fits,
                                                     read_flat_kappa, read_flat_scalar, read_flat_shear,
                                                     read_healpix_scalar, read_healpix_shear, read_survey_maps,
                                                     tile_maps)
from cosmobench.errors import ConfigError, InputError
from cosmobench.settings import build, setting
from cosmobench.sim import cosmology as cosmo
from cosmobench.sim.cosmology import ConvergenceField, Cosmology, FlatMask, FlatMaps, ShearNoise
from cosmobench.sim.healpix import HealpixFootprint, PatchSettings


@dataclass
class MassMappingData(ImageAugment, PatchSettings, HealpixFootprint, FlatMask, ShearNoise, FlatMaps, ConvergenceField,
                      Cosmology, ExternalRenders, FileSplits, SimSplits, DataSettings):
    """The ``data`` node of massmapping (module docstring): the loaders', the simulators',
    the augmentation's (flat maps only) and the real-data readers' settings (keys listed from
    the last base to this class)."""

    source: str = setting("sim", ["sim", "flat", "healpix", "kappa"],
                          help="sim (built-in simulator), flat shear maps, HEALPix FITS maps, or kappa (a test set: "
                               "convergence maps observed with simulated shape noise)")
    sky: str = setting("flat", ["flat", "healpix"], help="data.source=sim: flat maps or full-sky HEALPix maps")
    test_source: str | None = setting(None, ["kappa", None],
                                      help="data.source=sim: take the test split from this source instead (kappa: "
                                           "train on the simulator, score the maps of data.kappa_path in the same run)")
    kappa_path: str | None = setting(None, "str or null",
                                     help="true convergence file (healpix: a glob pattern) matching data.path")
    mask_path: str | None = setting(None, "str or null",
                                    help="optional mask file (1 = observed); data.source=sim (flat): a survey mask "
                                         "applied to every map (a random data.map_size crop)")
    noise_path: str | None = setting(None, "str or null",
                                     help="optional per-pixel shear noise std file (flat); data.source=sim/kappa: the "
                                          "std of the simulated shape noise (sim: cropped with data.mask_path)")
    axis_order: str = setting("auto", ["auto", "chw", "hwc"],
                              help="flat shear files: component axis first (chw), last (hwc) or detected")
    spatial_order: str = setting("yx", ["yx", "xy"], help="flat files: rows are y (yx) or x (xy, transposed)")
    gamma2_sign: float = setting(1.0, [1.0, -1.0, 1, -1],
                                 help="-1 for catalogues whose x axis runs the other way (RA to the left)")
    tile: int | None = setting(None, "int >= 8 or null", unit="px",
                               help="flat files: cut every map into non-overlapping tile x tile maps before the "
                                    "train/val/test split (one large field, e.g. kappaTNG's 360 px -> 9 of 120); "
                                    "null: whole maps")


# --------------------------------------------------------------------------- datamodule


class MassMappingDataModule(ImageDataModule):
    """Shear maps -> convergence (module docstring). ``cfg`` is the ``data`` config node
    (:class:`MassMappingData`)."""

    augment_fields = {"gamma": "spin2", "kappa": "scalar", "mask": "scalar", "noise": "scalar"}

    @classmethod
    def preflight(cls, cfg) -> None:
        """As the base; ``data.source=kappa`` (or ``data.test_source=kappa``) reads ``data.kappa_path``."""
        if "kappa" in (cfg["source"], cfg["test_source"]) and not cfg["kappa_path"]:
            key = "source" if cfg["source"] == "kappa" else "test_source"
            raise InputError(f"data.{key}='kappa' needs data.kappa_path=FILE (true convergence maps)")
        if cfg["source"] != "kappa":
            super().preflight(cfg)

    @classmethod
    def memory_estimate(cls, cfg) -> dict[str, float]:
        """Simulated maps (float32 gamma, kappa, mask: 4 planes per map, every split in memory)
        and the simulator's complex128 work arrays (flat: the periodic box of ``data.box_factor``
        times the map side; HEALPix: a few full-sky maps and their alm)."""
        if cfg["source"] != "sim":
            return {}
        n = sum(int(cfg[f"n_{s}"]) for s in ("train", "val", "test") if s != "test" or not cfg["test_source"])
        if cfg["sky"] == "healpix":
            nside = int(cfg["nside"])
            npix = 12 * nside ** 2
            return {f"data.nside={nside} with {n} simulated maps": 16.0 * npix * n,
                    f"data.nside={nside}: the simulator's work arrays": 8 * 16.0 * npix}
        m, box = int(cfg["map_size"]), int(cfg["map_size"]) * int(cfg["box_factor"])
        return {f"data.map_size={m} with {n} simulated maps": 16.0 * m * m * n,
                f"data.map_size={m}, data.box_factor={cfg['box_factor']}: the simulation box": 8 * 16.0 * box * box}

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0):
        super().__init__(cfg, seed)
        self.settings = build(MassMappingData, self.cfg)
        source = self.settings.source
        self.sky = "healpix" if source == "healpix" or (source == "sim" and self.settings.sky == "healpix") else "flat"
        self.stats: dict[str, Any] = {}
        self.single_input = False
        self._stage: str | None = None

    def setup(self, stage: str | None = None) -> None:
        """As the base; remembers the stage (``data.source=kappa`` is a test set only)."""
        if not self.datasets:
            self._stage = stage
        super().setup(stage)

    def augments(self) -> bool:
        """``data.augment``, for flat maps only (D4 acts on the pixel grid)."""
        return self.settings.augment and self.sky == "flat"

    @property
    def export_suffix(self) -> str:  # type: ignore[override]
        return ".fits" if self.sky == "healpix" else ".npy"

    # --- geometry / noise -------------------------------------------------------------
    def pixel_arcmin(self) -> float:
        if self.sky == "healpix":
            from cosmobench.sim.healpix import pixel_arcmin
            return pixel_arcmin(self.nside())
        return float(self.settings.pixel_arcmin)

    def nside(self) -> int:
        return int(self.stats.get("nside") or self.settings.nside)

    def sigma_pix(self) -> float:
        return cosmo.shape_noise_sigma(self.settings.sigma_e, self.settings.n_gal, self.pixel_arcmin())

    def shift(self) -> float:
        s = self.settings
        return float(s.lognormal_shift) if s.lognormal_shift is not None else s.shift()

    def _cl(self):
        kw, nz = self.settings.ccl_params(), self.settings.nz()
        return lambda ell: cosmo.convergence_cl(ell, nz=nz, **kw)

    # --- simulation -------------------------------------------------------------------
    def _observe(self, rng, kappa, g1, g2, mask, sigma):
        if self.settings.reduced_shear:
            if np.any(kappa >= 1):
                raise InputError("reduced shear undefined where kappa >= 1 (strong lensing)")
            g1, g2 = g1 / (1 - kappa), g2 / (1 - kappa)
        noise = rng.standard_normal((2,) + kappa.shape) * sigma
        return (np.stack([g1, g2]) + noise) * mask

    def simulate_flat(self, split: str, n: int) -> dict[str, np.ndarray]:
        s = self.settings
        size, pix = s.map_size, float(s.pixel_arcmin)
        sim = cosmo.FlatFieldSimulator(self._cl(), (size, size), pix, s.field,
                                       self.shift() if s.field == "lognormal" else None, s.box_factor)
        survey_mask, survey_noise = read_survey_maps(s.mask_path, s.noise_path, size, s.spatial_order)
        sigma = self.sigma_pix()
        out = {"gamma": np.empty((n, 2, size, size), np.float32), "kappa": np.empty((n, 1, size, size), np.float32),
               "mask": np.empty((n, 1, size, size), np.float32)}
        if survey_noise is not None:
            out["noise"] = np.empty((n, 1, size, size), np.float32)
        for i in progress(range(n), n, f"simulating {split} shear maps", min_total=200):
            rng = sample_rng(self.seed, split, i)
            kappa, g1, g2 = sim.sample(rng)
            mask = cosmo.flat_mask(rng, size, pix, s.mask_holes, list(s.mask_hole_radius), s.mask_edge)
            if survey_mask is not None or survey_noise is not None:  # one random crop of the survey
                full = (survey_mask if survey_mask is not None else survey_noise).shape[0]
                y, x = rng.integers(0, full - size + 1, 2)
                if survey_mask is not None:
                    mask = mask * survey_mask[y:y + size, x:x + size]
                if survey_noise is not None:
                    sigma = out["noise"][i, 0] = survey_noise[y:y + size, x:x + size]
            out["gamma"][i] = self._observe(rng, kappa, g1, g2, mask, sigma)
            out["kappa"][i, 0], out["mask"][i, 0] = kappa, mask
        return out

    def observe_kappa(self) -> dict[str, np.ndarray]:
        """``data.source=kappa``: the maps of ``data.kappa_path`` observed with simulated noise
        (module docstring) -> ``gamma``, ``kappa``, ``mask`` (and ``noise`` given a noise file)."""
        s = self.settings
        if not s.kappa_path:
            raise InputError("data.source=kappa needs data.kappa_path (true convergence maps)")
        kappa = read_flat_kappa(s.kappa_path, s.spatial_order)
        m, shape = len(kappa), kappa.shape[1:]
        mask = np.ones(kappa.shape)
        if s.mask_path:
            mask = (read_flat_scalar(s.mask_path, m, shape, s.spatial_order, "mask") > 0).astype(float)
        check_observed(mask, str(s.mask_path))
        out = {"kappa": kappa[:, None], "mask": mask[:, None], "gamma": np.empty((m, 2) + shape)}
        sigma = np.full(kappa.shape, self.sigma_pix())
        if s.noise_path:
            sigma = read_flat_scalar(s.noise_path, m, shape, s.spatial_order, "noise map")
            check_noise(sigma, mask, s.noise_path)
            out["noise"] = sigma[:, None]
        for i in range(m):
            g1, g2 = cosmo.ks_forward(kappa[i])
            out["gamma"][i] = self._observe(sample_rng(s.render_seed, "test", i), kappa[i], g1, g2, mask[i], sigma[i])
        return {k: v.astype(np.float32) for k, v in out.items()}

    def simulate_healpix(self, split: str, n: int) -> dict[str, np.ndarray]:
        from cosmobench.sim import healpix as hpx

        s = self.settings
        sim = hpx.HealpixFieldSimulator(self._cl(), s.nside, s.field,
                                        self.shift() if s.field == "lognormal" else None)
        mask = hpx.footprint_mask(s.nside, s.footprint, float(s.footprint_deg))
        sigma = self.sigma_pix()
        npix = len(mask)
        out = {"gamma": np.empty((n, 2, npix), np.float32), "kappa": np.empty((n, 1, npix), np.float32),
               "mask": np.broadcast_to(mask.astype(np.float32), (n, 1, npix)).copy()}
        for i in progress(range(n), n, f"simulating {split} HEALPix maps", min_total=20):
            rng = sample_rng(self.seed, split, i)
            kappa, g1, g2 = sim.sample(rng)
            out["gamma"][i] = self._observe(rng, kappa, g1, g2, mask, sigma)
            out["kappa"][i, 0] = kappa
        return out

    # --- real data --------------------------------------------------------------------
    def _load_flat(self, need_kappa: bool, path: str | Path | None = None) -> dict[str, np.ndarray]:
        s = self.settings
        gamma, self.single_input = read_flat_shear(path or self.require_path(), s.axis_order, s.spatial_order,
                                                   s.gamma2_sign)
        m, shape = len(gamma), gamma.shape[-2:]
        if shape[0] != shape[1]:
            raise InputError(f"shear maps must be square, got {shape[0]}x{shape[1]}")
        out = {"gamma": gamma}
        mask = np.ones((m,) + shape)
        if s.mask_path:
            mask = (read_flat_scalar(s.mask_path, m, shape, s.spatial_order, "mask") > 0).astype(float)
        check_observed(mask, str(s.mask_path))
        out["gamma"] = gamma * mask[:, None]
        out["mask"] = mask[:, None]
        if s.noise_path:
            noise = read_flat_scalar(s.noise_path, m, shape, s.spatial_order, "noise map")
            check_noise(noise, mask, s.noise_path)
            out["noise"] = noise[:, None]
        if need_kappa:
            if not s.kappa_path:
                raise InputError("data.source=flat needs data.kappa_path (true convergence maps) to train or score")
            out["kappa"] = read_flat_scalar(s.kappa_path, m, shape, s.spatial_order, "convergence")[:, None]
        return {k: v.astype(np.float32) for k, v in out.items()}

    def _load_healpix_files(self, shear_files: list[Path], kappa_files: list[Path] | None) -> dict[str, np.ndarray]:
        s = self.settings
        gammas, masks, kappas = [], [], []
        extra_mask = read_healpix_scalar(Path(s.mask_path).expanduser(), "mask") if s.mask_path else None
        for i, f in enumerate(shear_files):
            g, m = read_healpix_shear(f, s.gamma2_sign)
            m = np.ones(g.shape[1]) if m is None else m
            if extra_mask is not None:
                if len(extra_mask) != g.shape[1]:
                    raise InputError(f"{s.mask_path}: mask has {len(extra_mask)} pixels, the shear map {g.shape[1]}")
                m = m * (extra_mask > 0)
            m = (m > 0).astype(float)
            check_observed(m[None], f"{f} (mask field, data.mask_path and UNSEEN/NaN pixels)")
            gammas.append(g * m), masks.append(m[None])
            if kappa_files is not None:
                k = read_healpix_scalar(kappa_files[i], "convergence")
                if len(k) != g.shape[1]:
                    raise InputError(f"{kappa_files[i]}: {len(k)} pixels, but its shear map has {g.shape[1]}")
                kappas.append(k[None])
        sizes = {len(m[0]) for m in masks}
        if len(sizes) != 1:
            raise InputError(f"HEALPix maps of different nside: {sorted(sizes)} pixels")
        import healpy as hp
        self.stats["nside"] = int(hp.npix2nside(sizes.pop()))
        out = {"gamma": np.stack(gammas), "mask": np.stack(masks)}
        if kappas:
            out["kappa"] = np.stack(kappas)
        return {k: v.astype(np.float32) for k, v in out.items()}

    def _load_healpix(self) -> dict[str, np.ndarray]:
        s = self.settings
        if not s.path:
            raise InputError("data.source=healpix needs data.path=FILE (or a glob pattern)")
        shear = expand_pattern(s.path, "data.path")
        if not s.kappa_path:
            raise InputError("data.source=healpix needs data.kappa_path (true convergence maps) to train or score")
        kappa = expand_pattern(s.kappa_path, "data.kappa_path")
        if len(kappa) != len(shear):
            raise InputError(f"data.path matches {len(shear)} files but data.kappa_path {len(kappa)}")
        return self._load_healpix_files(shear, kappa)

    # --- BaseDataModule API -----------------------------------------------------------
    def fingerprint(self) -> str:
        """Data config + seed, and for real data the content of every input file (shear,
        convergence, mask, noise; glob patterns expanded)."""
        if self.settings.source == "sim":
            return super().fingerprint()
        import hashlib
        import json

        from cosmobench.datamodule import file_sha256
        files = {k: [file_sha256(f) for f in expand_pattern(self.cfg[k], f"data.{k}")]
                 for k in ("path", "kappa_path", "mask_path", "noise_path") if self.cfg[k]}
        cfg = {k: v for k, v in self.cfg.items() if k not in ("batch_size", "num_workers")}
        text = json.dumps({"cfg": cfg, "seed": self.seed, "files": files}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _check_cfg(self) -> None:
        """What single-key constraints cannot say (they were checked when the config was resolved)."""
        s = self.settings
        if s.test_source and s.source not in ("sim", s.test_source):
            raise ConfigError(f"data.test_source={s.test_source} is for data.source=sim, got data.source={s.source}")
        if s.test_source == "kappa" and self.sky != "flat":
            raise ConfigError("data.test_source=kappa needs flat maps (data.sky=flat)")
        if len(s.mask_hole_radius) != 2 or s.mask_hole_radius[0] > s.mask_hole_radius[1]:
            raise ConfigError(f"data.mask_hole_radius must be [r_min, r_max] arcmin with 0 < r_min <= r_max, "
                              f"got {list(s.mask_hole_radius)}")
        if s.mask_edge * 2 >= s.map_size:
            raise ConfigError(f"data.mask_edge={s.mask_edge} masks the whole {s.map_size} px map")
        if not s.omega_b < s.omega_m:
            raise ConfigError(f"data.omega_b={s.omega_b} must be < data.omega_m={s.omega_m}")
        if self.sky == "healpix" and s.nside & (s.nside - 1):
            raise ConfigError(f"data.nside must be a power of 2, got {s.nside}")

    def build(self):
        self._check_cfg()
        s = self.settings
        if s.source == "sim":
            sim = self.simulate_healpix if self.sky == "healpix" else self.simulate_flat
            sizes = (("train", s.n_train), ("val", s.n_val)) + ((("test", s.n_test),) if not s.test_source else ())
            splits = {split: sim(split, n) for split, n in sizes}
            if s.test_source == "kappa":
                splits["test"] = self.observe_kappa()
        elif s.source == "kappa":
            if self._stage not in ("test", "predict"):
                raise ConfigError("data.source=kappa is a test set (every map is scored): train on the simulator "
                                  "(data.source=sim) and score the checkpoint with `cosmobench test` or `cosmobench "
                                  "shift` and data.source=kappa")
            splits = dict.fromkeys(("train", "val", "test"), self.observe_kappa())
        else:
            data = self._load_healpix() if self.sky == "healpix" else self._load_flat(need_kappa=True)
            if s.tile and self.sky == "flat":
                data = tile_maps(data, s.tile)
            idx = split_indices(len(data["gamma"]), s.val_fraction, s.test_fraction, self.seed)
            splits = {split: {k: v[i] for k, v in data.items()} for split, i in idx.items()}
        train = splits["train"]
        m = train["mask"] > 0
        kin = train["kappa"][m]
        self.stats.update({
            "kappa_std": float(kin.std()) if kin.size else 1.0,
            "gamma_std": float(np.sqrt(np.mean(train["gamma"][np.broadcast_to(m, train["gamma"].shape)] ** 2))),
            "sigma_pix": (float(np.sqrt(np.mean(train["noise"][m] ** 2))) if "noise" in train else self.sigma_pix()),
            "shape": list(train["gamma"].shape[2:]),
        })
        if not self.stats["kappa_std"] > 0:
            raise InputError("the training convergence maps are constant inside the mask")
        return {split: ArrayDataset(d) for split, d in splits.items()}

    def info(self) -> dict[str, Any]:
        self.setup()
        out = {"sky": self.sky, "pixel_arcmin": self.pixel_arcmin(), "sigma_pix": self.stats["sigma_pix"],
               "kappa_std": self.stats["kappa_std"], "gamma_std": self.stats["gamma_std"],
               "shape": self.stats["shape"], "patch_size": self.settings.patch_size}
        if self.sky == "healpix":
            out["nside"] = self.nside()
        return out

    # --- predict ------------------------------------------------------------------------
    def read_input(self, path):
        """Shear maps for ``predict``: flat (any layout of ``data.source=flat``) or, for a
        ``.fits`` file with a binary table, a HEALPix map (fields gamma1, gamma2[, mask])."""
        p = Path(path)
        if is_healpix_fits(p):
            self.sky = "healpix"
            data = self._load_healpix_files([p], None)
            self.single_input = True
        else:
            self.sky = "flat"
            data = self._load_flat(need_kappa=False, path=p)
        ds = ArrayDataset(data)
        # how MassMappingTask.write_predictions writes the maps back in the input's layout
        ds.meta = {"sky": self.sky, "single": self.single_input, "spatial_order": self.settings.spatial_order}
        return ds

    def export(self, split: str, path) -> Path:
        """Write the shear maps of ``split`` as a ``predict`` input: flat ``.npy`` stack
        ``(M, 2, N, N)``; HEALPix: the first map as a FITS file (gamma1, gamma2, mask)."""
        self.setup()
        arr = self.datasets[split].arrays
        p = Path(path)
        if self.sky == "healpix":
            import healpy as hp
            maps = np.concatenate([arr["gamma"][0].numpy(), arr["mask"][0].numpy()]).astype(np.float32)
            hp.write_map(p, maps, overwrite=True, column_names=["GAMMA1", "GAMMA2", "MASK"])
        else:
            np.save(p, arr["gamma"].numpy())
        return p
