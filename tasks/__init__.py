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
    defaults={
        "data": {"n_train": 20000, "n_val": 2000, "n_test": 5000, "batch_size": 256,
                 "mag_limit": 25.3, "depth_5sigma": [26.1, 27.4, 27.5, 26.8, 26.1],
                 "mag_columns": ["mag_u", "mag_g", "mag_r", "mag_i", "mag_z"],
                 "err_columns": ["magerr_u", "magerr_g", "magerr_r", "magerr_i", "magerr_z"],
                 "z_column": "z_spec", "z_max": 3.0, "ref_band": 3,
                 "nz_alpha": 1.24, "nz_beta": 1.01, "nz_z0": 0.51},
        "trainer": {"max_epochs": 30},
        "optim": {"lr": 2e-3, "scheduler": "cosine"},
    },
    models={
        "mdn": {"model": {"n_components": 5, "hidden": [128, 128, 128], "dropout": 0.0}},
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
    defaults={
        "data": {"n_train": 5000, "n_val": 500, "n_test": 1000, "batch_size": 64},
        "trainer": {"max_epochs": 15},
        "optim": {"lr": 1e-3},
    },
    models={
        "e2cnn": {"model": {"group": "D8", "channels": [8, 16, 32]}},
        "cnn": {"model": {"channels": [16, 32, 64]}},
        "resnet18": {"model": {}},
    },
)
