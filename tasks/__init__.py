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
                 "nz_alpha": 1.24, "nz_beta": 1.01, "nz_z0": 0.51},
        "trainer": {"max_epochs": 25},
        "optim": {"lr": 4e-3, "scheduler": "cosine"},
        "num_threads": 1,  # a small MLP: one thread is fastest (measured 14 s vs 126 s per run on 2 busy cores)
    },
    models={
        "mdn": {"model": {"n_components": 8, "hidden": [128, 128, 128], "dropout": 0.0}},
        "knn": {"model": {"k": 30, "bandwidth": 0.02}, "trainer": {"max_epochs": 1}},
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
)
