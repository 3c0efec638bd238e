"""Built-in science tasks, registered lazily (strings only: importing this is cheap).

Each ``register_task`` call names the task's LightningDataModule and LightningModule
(``cosmobench.datamodules.<task>`` / ``cosmobench.tasks.<task>``), its models with
their default hyper-parameters, and the metric that ranks the leaderboard.
"""
from cosmobench.registry import register_task

register_task(
    name="photoz",
    description="photometric redshift posteriors from ugriz magnitudes (MDN vs kNN)",
    datamodule="cosmobench.datamodules.photoz:PhotoZDataModule",
    module="cosmobench.tasks.photoz:PhotoZTask",
    primary_metric="crps",
    mode="min",
    baseline="knn",
    defaults={
        "data": {"n_train": 20000, "n_val": 2000, "n_test": 5000, "batch_size": 512,
                 "mag_limit": 25.3, "depth_5sigma": [26.1, 27.4, 27.5, 26.8, 26.1],
                 "mag_columns": ["mag_u", "mag_g", "mag_r", "mag_i", "mag_z"],
                 "err_columns": ["magerr_u", "magerr_g", "magerr_r", "magerr_i", "magerr_z"],
                 "z_column": "z_spec", "z_max": 3.0, "ref_band": 3,
                 "nz_alpha": 1.24, "nz_beta": 1.01, "nz_z0": 0.51,
                 # real catalogues: fixed test set, valid ranges, non-detection sentinels
                 "test_path": None, "mag_valid_range": [10.0, 40.0],
                 "nondetection_values": [99.0, -99.0], "nondetection": "limit"},
        "trainer": {"max_epochs": 25},
        "optim": {"lr": 4e-3, "scheduler": "cosine"},
        "num_threads": 1,  # a small MLP: one thread is fastest (measured 14 s vs 126 s per run on 2 busy cores)
    },
    models={
        "mdn": {"model": {"n_components": 8, "hidden": [128, 128, 128], "dropout": 0.0}},
        "knn": {"model": {"k": 30, "bandwidth": 0.02}, "trainer": {"max_epochs": 1}},
    },
    constraints={  # value ranges, checked before anything runs (syntax: cosmobench/constraints.py)
        "data.source": ["sim", "catalog"],
        "data.mag_limit": "float", "data.depth_5sigma": "nonempty list[float]",
        "data.mag_columns": "nonempty list[str]", "data.err_columns": "list[str]", "data.z_column": "str",
        "data.z_max": "positive float", "data.ref_band": "non-negative int",
        "data.nz_alpha": "positive float", "data.nz_beta": "positive float", "data.nz_z0": "positive float",
        "data.test_path": "str or null", "data.mag_valid_range": "list[float]",
        "data.nondetection_values": "list[float]", "data.nondetection": ["limit", "drop"],
        "model.n_components": "positive int", "model.hidden": "nonempty list[positive int]",
        "model.dropout": "0 <= float < 1", "model.k": "positive int", "model.bandwidth": "positive float",
    },
)

register_task(
    name="morphology",
    description="galaxy morphology classification with E(2)-equivariant CNNs vs CNN/ResNet",
    datamodule="cosmobench.datamodules.morphology:MorphologyDataModule",
    module="cosmobench.tasks.morphology:MorphologyTask",
    primary_metric="accuracy",
    mode="max",
    baseline="resnet18",
    defaults={
        "data": {
            "n_train": 5000, "n_val": 500, "n_test": 1000, "batch_size": 64,
            # simulator (data.source=sim); units in cosmobench/sim/galaxies.py
            "image_size": 64, "n_bands": 3,
            "classes": ["elliptical", "spiral", "barred_spiral", "edge_on", "irregular", "merger"],
            "pixel_scale": 0.262, "psf": "moffat", "psf_fwhm": 1.2, "moffat_beta": 3.5,
            "zero_point": 30.0, "sky_mag": 21.0, "read_noise": 5.0, "gain": 1.0,
            "mag_range": [16.0, 18.5], "oversample": 3,
            "label_type": "hard", "n_votes": 40, "vote_noise": 0.15,
            # preprocessing / augmentation
            "stretch": "asinh", "augment": False, "crop": None,
            # real data: galaxy10 (HDF5) and folder (CSV + images)
            "image_key": "images", "label_key": "ans",
            "file_column": "file", "label_column": "label", "vote_columns": [],
            "test_path": None,  # real data: a fixed test set (same layout as data.path)
        },
        "trainer": {"max_epochs": 15},
        "optim": {"lr": 1e-3},
    },
    models={
        "e2cnn": {"model": {"group": "D8", "channels": [8, 16, 32], "kernel_sizes": None,
                            "hidden": 64, "dropout": 0.0}},
        "cnn": {"model": {"channels": [24, 48, 96], "kernel_sizes": None, "hidden": 64, "dropout": 0.0}},
        "resnet18": {"model": {"stem_stride": None}},
    },
    constraints={  # value ranges, checked before anything runs (syntax: cosmobench/constraints.py)
        "data.source": ["sim", "galaxy10", "folder"],
        "data.image_size": "int >= 8", "data.n_bands": "positive int", "data.classes": "nonempty list[str]",
        "data.pixel_scale": "positive float", "data.psf": ["moffat", "gaussian"], "data.psf_fwhm": "positive float",
        "data.moffat_beta": "float > 1", "data.zero_point": "float", "data.sky_mag": "float",
        "data.read_noise": "non-negative float", "data.gain": "positive float", "data.mag_range": "list[float]",
        "data.oversample": "positive int", "data.label_type": ["hard", "soft"], "data.n_votes": "positive int",
        "data.vote_noise": "non-negative float", "data.stretch": ["asinh", "linear"], "data.augment": "bool",
        "data.crop": "positive int or null", "data.image_key": "str", "data.label_key": "str",
        "data.file_column": "str", "data.label_column": "str", "data.vote_columns": "list[str]",
        "data.test_path": "str or null",
        "model.group": "str matching (?i)[CD][1-9][0-9]*", "model.channels": "nonempty list[positive int]",
        "model.kernel_sizes": "list[positive int] or null", "model.hidden": "positive int",
        "model.dropout": "0 <= float < 1", "model.stem_stride": [1, 2, 4, None],
    },
)

register_task(
    name="lensfinding",
    description="strong-lens finding in multi-band cutouts (ResNet-18 vs compact CNN vs E(2)-equivariant CNN)",
    datamodule="cosmobench.datamodules.lensfinding:LensFindingDataModule",
    module="cosmobench.tasks.lensfinding:LensFindingTask",
    primary_metric="auroc",
    mode="max",
    baseline="cnn",
    metric_modes={"auroc": "max", "tpr_at_fpr_1e-2": "max", "tpr0": "max", "tpr10": "max",
                  "average_precision": "max", "accuracy": "max", "balanced_accuracy": "max", "macro_f1": "max",
                  "ece": "min", "nll": "min", "rotation_invariance_error": "min"},
    defaults={
        "data": {
            "n_train": 8000, "n_val": 1000, "n_test": 2000, "batch_size": 64,
            # simulator (data.source=sim); model, units and priors in cosmobench/sim/lensing.py (KiDS-like g, r, i)
            "image_size": 64, "n_bands": 3, "pixel_scale": 0.2, "zero_point": [33.5, 34.0, 33.0],
            "sky_mag": [22.0, 21.0, 20.0], "psf": "gaussian", "psf_fwhm": [0.9, 0.7, 0.8], "moffat_beta": 3.5,
            "read_noise": 5.0, "gain": 1.0, "oversample": 2,
            "lens_fraction": 0.5, "hard_negative_fraction": 0.5,
            "hard_negatives": ["ring", "companion", "spiral", "edge_on"],
            "theta_e_range": [0.8, 3.0], "lens_mag_range": [17.5, 20.0], "source_mag_range": [21.0, 24.5],
            "source_re_range": [0.15, 0.6], "shear_sigma": 0.05, "clump_prob": 0.5,
            "resample_train": False,  # fresh simulated training cutouts every epoch
            # preprocessing / augmentation
            "stretch": "asinh", "augment": False, "crop": None,
            # real data: stack (one NPY/NPZ/HDF5/FITS-cube file) or folder (table of image files)
            "image_key": "images", "label_key": "labels", "label_path": None, "label_column": "label",
            "file_column": "file", "val_fraction": 0.15, "test_fraction": 0.15, "test_path": None,
        },
        "trainer": {"max_epochs": 10},
        "optim": {"lr": 1e-3, "scheduler": "cosine"},
    },
    models={
        # stem stride 2: the 0.7-0.9" PSF spans 3.5-4.5 px at 0.2"/px, so halving the resolution in the stem
        # loses little and makes ResNet-18 4x cheaper on CPU
        "resnet18": {"model": {"stem_stride": 2}},
        "cnn": {"model": {"channels": [16, 32, 64], "kernel_sizes": None, "hidden": 64, "dropout": 0.2}},
        # D4 = the symmetry group of the pixel grid (exact rot90/flip invariance; D8 adds 45-degree
        # rotations that pixels only approximate) at a quarter of D8's convolution cost
        "e2cnn": {"model": {"group": "D4", "channels": [8, 16, 32], "kernel_sizes": None, "hidden": 64,
                            "dropout": 0.0}},
    },
    constraints={
        "data.source": ["sim", "stack", "folder"],
        "data.image_size": "int >= 8", "data.n_bands": "positive int", "data.pixel_scale": "positive float",
        "data.zero_point": "nonempty list[float]", "data.sky_mag": "nonempty list[float]",
        "data.psf": ["gaussian", "moffat"], "data.psf_fwhm": "nonempty list[positive float]",
        "data.moffat_beta": "float > 1", "data.read_noise": "non-negative float", "data.gain": "positive float",
        "data.oversample": "positive int", "data.lens_fraction": "probability",
        "data.hard_negative_fraction": "probability",
        "data.hard_negatives": "list[one of ring, companion, spiral, edge_on]",
        "data.theta_e_range": "list[positive float]", "data.lens_mag_range": "list[float]",
        "data.source_mag_range": "list[float]", "data.source_re_range": "list[positive float]",
        "data.shear_sigma": "non-negative float", "data.clump_prob": "probability", "data.resample_train": "bool",
        "data.stretch": ["asinh", "linear"], "data.augment": "bool", "data.crop": "positive int or null",
        "data.image_key": "str", "data.label_key": "str", "data.label_path": "str or null",
        "data.label_column": "str", "data.file_column": "str", "data.val_fraction": "probability",
        "data.test_fraction": "probability", "data.test_path": "str or null",
        "model.group": "str matching (?i)[CD][1-9][0-9]*", "model.channels": "nonempty list[positive int]",
        "model.kernel_sizes": "list[positive int] or null", "model.hidden": "positive int",
        "model.dropout": "0 <= float < 1", "model.stem_stride": [1, 2, 4, None],
    },
)

_DEBLEND_DETECT = {  # SEP detection, shared by both deblending models (SExtractor's usual settings)
    "detect_thresh": 1.5, "minarea": 5, "deblend_nthresh": 32, "deblend_cont": 0.005, "max_sources": 30,
}

register_task(
    name="deblending",
    description="separating blended galaxies in multi-band scenes (U-Net vs SEP segmentation)",
    datamodule="cosmobench.datamodules.deblending:DeblendingDataModule",
    module="cosmobench.tasks.deblending:DeblendingTask",
    primary_metric="flux_mape",
    mode="min",
    baseline="sep",
    metric_modes={"flux_mape": "min", "flux_bias": "zero", "ellipticity_rmse": "min", "recon_mse": "min",
                  "ssim": "max", "precision": "max", "recall": "max", "f1": "max", "flux_mape_blended": "min"},
    defaults={
        "data": {
            "n_train": 2000, "n_val": 200, "n_test": 500, "batch_size": 8,
            # simulator; units in cosmobench/sim/blends.py (LSST-like: 0.2"/px, 0.7" seeing)
            "image_size": 64, "n_bands": 3, "pixel_scale": 0.2, "psf": "moffat", "psf_fwhm": 0.7,
            "moffat_beta": 3.5, "zero_point": 34.0, "sky_mag": 21.0, "read_noise": 5.0, "gain": 1.0,
            "mag_range": [20.0, 24.5], "oversample": 3,
            "n_min": 1, "n_max": 4, "overlap_fraction": 0.5, "disk_re_range": [0.3, 1.2], "bt_range": [0.0, 0.6],
            "margin": 4.0,
            # pipeline shared by both models
            "background": "sep", "back_size": 64,
            # evaluation protocol (cosmobench/metrics/deblending.py)
            "match_radius": 3.0, "footprint_nsigma": 1.0, "moment_sigma": 3.0,
            "blend_bins": [0.0, 0.01, 0.1, 0.3, 1.0], "blended_threshold": 0.1,
            # real cutouts for predict: optional detection catalogue instead of SEP detection
            "catalog": None, "x_column": "x", "y_column": "y", "scene_column": "scene", "catalog_origin": 0,
        },
        "trainer": {"max_epochs": 10},
        "optim": {"lr": 1e-3, "scheduler": "cosine"},
        # small convolutions: measured 12 s vs 124 s CPU for the quick-suite unet run with 1 vs 2 threads
        "num_threads": 1,
    },
    models={
        "unet": {"model": {**_DEBLEND_DETECT, "base_channels": 8, "depth": 3, "norm": "none", "blob_sigma": 1.5,
                           "position_jitter": 0.5, "neighbour_dropout": 0.1, "flux_weight": 10.0,
                           "residual_scale": 0.0, "seg_prior": 3.0, "train_positions": "truth"}},
        "sep": {"model": dict(_DEBLEND_DETECT), "trainer": {"max_epochs": 1}},
    },
    constraints={
        "data.source": ["sim"],
        "data.image_size": "int >= 16", "data.n_bands": "positive int", "data.pixel_scale": "positive float",
        "data.psf": ["moffat", "gaussian"], "data.psf_fwhm": "positive float", "data.moffat_beta": "float > 1",
        "data.zero_point": "float", "data.sky_mag": "float", "data.read_noise": "non-negative float",
        "data.gain": "positive float", "data.mag_range": "list[float]", "data.oversample": "positive int",
        "data.n_min": "positive int", "data.n_max": "positive int", "data.overlap_fraction": "probability",
        "data.disk_re_range": "list[positive float]", "data.bt_range": "list[probability]",
        "data.margin": "non-negative float", "data.background": ["sep", "none"], "data.back_size": "int >= 8",
        "data.match_radius": "positive float", "data.footprint_nsigma": "positive float",
        "data.moment_sigma": "positive float", "data.blend_bins": "nonempty list[probability]",
        "data.blended_threshold": "probability", "data.catalog": "str or null", "data.x_column": "str",
        "data.y_column": "str", "data.scene_column": "str", "data.catalog_origin": [0, 1],
        "model.detect_thresh": "positive float", "model.minarea": "positive int",
        "model.deblend_nthresh": "positive int", "model.deblend_cont": "probability",
        "model.max_sources": "positive int", "model.base_channels": "positive int",
        "model.depth": "non-negative int", "model.norm": ["batch", "group", "instance", "none"],
        "model.blob_sigma": "positive float", "model.position_jitter": "non-negative float",
        "model.neighbour_dropout": "probability", "model.flux_weight": "non-negative float",
        "model.residual_scale": "non-negative float", "model.seg_prior": "non-negative float",
        "model.train_positions": ["detections", "truth"],
    },
)

register_task(
    name="massmapping",
    description="weak-lensing convergence maps from noisy shear, flat sky and HEALPix (U-Net vs Wiener vs KS)",
    datamodule="cosmobench.datamodules.massmapping:MassMappingDataModule",
    module="cosmobench.tasks.massmapping:MassMappingTask",
    primary_metric="nmse",
    mode="min",
    baseline="wiener",
    metric_modes={"nmse": "min", "pearson_r": "max", "power_ratio_dev": "min", "peak_count_err": "min",
                  "peak_err_2": "min", "peak_err_3": "min", "peak_err_4": "min"},
    defaults={
        "data": {
            "n_train": 2000, "n_val": 200, "n_test": 200, "batch_size": 16,
            # simulator (data.source=sim); physics and conventions in cosmobench/sim/cosmology.py, healpix.py
            "sky": "flat", "map_size": 128, "pixel_arcmin": 2.0, "box_factor": 2,
            "field": "lognormal", "lognormal_shift": None,
            "omega_m": 0.31, "sigma8": 0.81, "h": 0.677, "n_s": 0.965, "omega_b": 0.049,
            "nz_z0": 0.11, "nz_alpha": 0.68,
            "sigma_e": 0.26, "n_gal": 30.0, "reduced_shear": False,
            "mask_holes": 0, "mask_hole_radius": [2.0, 6.0], "mask_edge": 0,
            "nside": 64, "footprint": "band", "footprint_deg": 30.0, "patch_size": 64,
            "augment": False,
            # real data: flat shear maps (NPY/NPZ/FITS/HDF5) or HEALPix FITS
            "path": None, "kappa_path": None, "mask_path": None, "noise_path": None,
            "axis_order": "auto", "spatial_order": "yx", "gamma2_sign": 1.0,
            "val_fraction": 0.15, "test_fraction": 0.15,
            # metrics
            "peak_thresholds": [2.0, 3.0, 4.0], "peak_smoothing_pix": 2.0, "power_bins": 12,
        },
        "trainer": {"max_epochs": 20},
        "optim": {"lr": 2e-3, "scheduler": "cosine"},
    },
    models={
        "unet": {"model": {"base_channels": 16, "depth": 3, "norm": "batch", "padding_mode": "zeros",
                           "dropout": 0.0, "patches_per_map": 8},
                 "data": {"augment": True}},
        "wiener": {"model": {}, "trainer": {"max_epochs": 1}},
        "ks": {"model": {"smoothing_arcmin": None}, "trainer": {"max_epochs": 1}},
    },
    constraints={  # value ranges, checked before anything runs (syntax: cosmobench/constraints.py)
        "data.source": ["sim", "flat", "healpix"], "data.sky": ["flat", "healpix"],
        "data.map_size": "int >= 8", "data.pixel_arcmin": "positive float", "data.box_factor": "positive int",
        "data.field": ["lognormal", "gaussian"], "data.lognormal_shift": "positive float or null",
        "data.omega_m": "0 < float < 1", "data.sigma8": "positive float", "data.h": "positive float",
        "data.n_s": "positive float", "data.omega_b": "positive float", "data.nz_z0": "positive float",
        "data.nz_alpha": "positive float", "data.sigma_e": "non-negative float", "data.n_gal": "positive float",
        "data.reduced_shear": "bool", "data.mask_holes": "non-negative int",
        "data.mask_hole_radius": "list[positive float]", "data.mask_edge": "non-negative int",
        "data.nside": "int >= 8", "data.footprint": ["full", "band", "cap"],
        "data.footprint_deg": "0 <= float <= 180", "data.patch_size": "int >= 8", "data.augment": "bool",
        "data.path": "str or null", "data.kappa_path": "str or null", "data.mask_path": "str or null",
        "data.noise_path": "str or null", "data.axis_order": ["auto", "chw", "hwc"],
        "data.spatial_order": ["yx", "xy"], "data.gamma2_sign": [1.0, -1.0, 1, -1],
        "data.val_fraction": "0 <= float < 1", "data.test_fraction": "0 < float < 1",
        "data.peak_thresholds": "nonempty list[float]", "data.peak_smoothing_pix": "positive float",
        "data.power_bins": "int >= 2",
        "model.base_channels": "positive int", "model.depth": "non-negative int",
        "model.norm": ["batch", "group", "instance", "none"],
        "model.padding_mode": ["zeros", "reflect", "replicate", "circular"], "model.dropout": "0 <= float < 1",
        "model.patches_per_map": "positive int", "model.smoothing_arcmin": "non-negative float or null",
    },
)

_SBI_CNN = {"n_summaries": 8, "channels": [8, 16, 32]}  # map problems: summary CNN (cosmobench.nn.cnn)
_SBI_FLOW = {"hidden_features": 50, "num_transforms": 5, "num_bins": 10, "num_components": 10}
register_task(
    name="sbi",
    description="simulation-based inference of (Omega_m, sigma8) and sbibm problems: NPE/NLE/NRE vs ABC and MCMC",
    datamodule="cosmobench.datamodules.sbi:SBIDataModule",
    module="cosmobench.tasks.sbi:SBITask",
    primary_metric="c2st",
    mode="min",
    baseline="rejection_abc",
    metric_modes={"c2st": "min", "nltp": "min", "posterior_std": "min", "sbc_ks_pvalue": "max",
                  "tarp_atc": "zero", "time_per_posterior": "min"},
    defaults={
        "data": {
            # problem and budget (physics and definitions: cosmobench/sim/sbi_problems.py)
            "problem": "cl_gaussian", "num_simulations": 10000, "val_fraction": 0.1, "batch_size": 200,
            "num_observations": 10, "num_posterior_samples": 10000, "reference_samples": 10000,
            "num_sbc": 200, "sbc_posterior_samples": 1000, "time_posterior_samples": 10000, "cache_dir": None,
            # posterior MCMC of nle, nre and the mcmc baseline (sbi's slice sampler)
            "mcmc_method": "slice_np_vectorized", "mcmc_num_chains": 20, "mcmc_warmup_steps": 100, "mcmc_thin": 2,
            # cl_gaussian / lognormal_map survey
            "ell_min": 50, "ell_max": 3000, "n_ell_bins": 10, "area_deg2": 1000.0, "sigma_e": 0.26, "n_gal": 10.0,
            "map_size": 32, "pixel_arcmin": 4.0,
        },
        "trainer": {"max_epochs": 200},
        "optim": {"lr": 5e-4},  # sbi's default learning rate and patience
        "early_stopping": {"enabled": True, "patience": 20},
        "num_threads": 1,
    },
    models={
        "npe": {"model": {"density_estimator": "nsf", **_SBI_FLOW, **_SBI_CNN}},
        "nle": {"model": {"density_estimator": "maf", **_SBI_FLOW}},
        "nre": {"model": {"classifier": "resnet", "hidden_features": 50, "num_atoms": 10, **_SBI_CNN}},
        "rejection_abc": {"model": {"quantile": 0.01}, "trainer": {"max_epochs": 1}},
        "mcmc": {"model": {}, "trainer": {"max_epochs": 1}},
    },
    constraints={  # value ranges, checked before anything runs (syntax: cosmobench/constraints.py)
        "data.problem": "str", "data.num_simulations": "int >= 3", "data.val_fraction": "0 < float < 1",
        "data.num_observations": "positive int", "data.num_posterior_samples": "int >= 10",
        "data.reference_samples": "int >= 10", "data.num_sbc": "int >= 2", "data.sbc_posterior_samples": "positive int",
        "data.time_posterior_samples": "positive int", "data.cache_dir": "str or null",
        "data.ell_min": "int >= 2", "data.ell_max": "int >= 3", "data.n_ell_bins": "positive int",
        "data.area_deg2": "0 < float <= 41253", "data.sigma_e": "non-negative float", "data.n_gal": "positive float",
        "data.map_size": "int >= 8", "data.pixel_arcmin": "positive float",
        "model.density_estimator": ["nsf", "maf", "mdn", "made", "maf_rqs"], "model.classifier": ["resnet", "mlp", "linear"],
        "model.hidden_features": "positive int", "model.num_transforms": "positive int", "model.num_bins": "positive int",
        "model.num_components": "positive int", "model.n_summaries": "positive int",
        "model.channels": "nonempty list[positive int]", "model.num_atoms": "int >= 2",
        "data.mcmc_method": ["slice_np_vectorized", "slice_np"], "data.mcmc_num_chains": "positive int",
        "data.mcmc_warmup_steps": "non-negative int", "data.mcmc_thin": "positive int",
        "model.quantile": "0 < float <= 1",
    },
)
