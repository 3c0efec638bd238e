"""Built-in science tasks, registered lazily (strings only: importing this is cheap).

A registration names classes and the metric that ranks the leaderboard; it states no
setting. Settings are declared beside their owners (``data``: the datamodule's settings
class; ``eval``: the metric protocol's; ``model``: the network's in :mod:`cosmobench.nn`,
or the task's own model's) and the task's choices of common keys (epochs, learning rate,
split sizes) are the YAML layer ``experiments/<task>/defaults.yaml``.
"""
from cosmobench.registry import register_task

register_task(
    name="photoz",
    description="photometric redshift posteriors from ugriz magnitudes (MDN vs kNN)",
    datamodule="cosmobench.datamodules.photoz:PhotoZDataModule",
    module="cosmobench.tasks.photoz:PhotoZTask",
    data="cosmobench.datamodules.photoz:PhotoZData",
    nets="tabular_density",
    models={"knn": "cosmobench.tasks.photoz:KNNSettings"},
    default_model="mdn",
    baseline="knn",
    primary_metric="crps",
    mode="min",
    headline=["nll", "sigma_nmad", "outlier_frac", "bias"],
)

register_task(
    name="morphology",
    description="galaxy morphology classification with E(2)-equivariant CNNs vs CNN/ResNet",
    datamodule="cosmobench.datamodules.morphology:MorphologyDataModule",
    module="cosmobench.tasks.morphology:MorphologyTask",
    data="cosmobench.datamodules.morphology:MorphologyData",
    nets="image_classifier",
    net_settings="cosmobench.transfer:TransferSettings",
    default_model="e2cnn",
    baseline="resnet18",
    primary_metric="accuracy",
    mode="max",
    headline=["balanced_accuracy", "macro_f1", "ece", "rotation_invariance_error"],
)

register_task(
    name="lensfinding",
    description="strong-lens finding in multi-band cutouts (ResNet-18 vs compact CNN vs E(2)-equivariant CNN)",
    datamodule="cosmobench.datamodules.lensfinding:LensFindingDataModule",
    module="cosmobench.tasks.lensfinding:LensFindingTask",
    data="cosmobench.datamodules.lensfinding:LensFindingData",
    nets="image_classifier",
    net_settings="cosmobench.transfer:TransferSettings",
    default_model="resnet18",
    baseline="cnn",
    primary_metric="auroc",
    mode="max",
    headline=["tpr_at_fpr_1e-2", "average_precision", "ece"],
    metric_modes={"auroc": "max", "tpr_at_fpr_1e-2": "max", "tpr0": "max", "tpr10": "max",
                  "average_precision": "max", "accuracy": "max", "balanced_accuracy": "max", "macro_f1": "max",
                  "ece": "min", "nll": "min", "rotation_invariance_error": "min"},
)

register_task(
    name="deblending",
    description="separating blended galaxies in multi-band scenes (U-Nets vs model fitting vs SEP segmentation)",
    datamodule="cosmobench.datamodules.deblending:DeblendingDataModule",
    module="cosmobench.tasks.deblending:DeblendingTask",
    data="cosmobench.datamodules.deblending:DeblendingData",
    evaluation="cosmobench.metrics.deblending:DeblendingEval",
    nets="deblender",
    net_settings="cosmobench.tasks.deblending:DeblenderTraining",
    models={"sep": "cosmobench.detection:DetectionSettings", "modelfit": "cosmobench.modelfit:ModelFitSettings"},
    default_model="unet",
    baseline="sep",
    primary_metric="flux_mape",
    mode="min",
    headline=["flux_mape_bl00_01", "flux_mape_blended", "recall"],
    metric_modes={"flux_mape": "min", "flux_bias": "zero", "ellipticity_rmse": "min", "recon_mse": "min",
                  "ssim": "max", "precision": "max", "recall": "max", "f1": "max", "flux_mape_blended": "min"},
    renamed={"data.match_radius": "eval.match_radius", "data.footprint_nsigma": "eval.footprint_nsigma",
             "data.moment_sigma": "eval.moment_sigma", "data.blend_bins": "eval.blend_bins",
             "data.blended_threshold": "eval.blended_threshold",
             # simulator only: the common real-data keys of every task before the refactor
             "data.path": None, "data.val_fraction": None, "data.test_fraction": None},
)

register_task(
    name="massmapping",
    description="weak-lensing convergence maps from noisy shear, flat sky and HEALPix (U-Net vs Wiener vs KS)",
    datamodule="cosmobench.datamodules.massmapping:MassMappingDataModule",
    module="cosmobench.tasks.massmapping:MassMappingTask",
    data="cosmobench.datamodules.massmapping:MassMappingData",
    evaluation="cosmobench.metrics.massmapping:MassMappingEval",
    nets="image_to_image",
    net_settings="cosmobench.tasks.massmapping:PatchTraining",
    models={"wiener": None, "ks": "cosmobench.tasks.massmapping_baselines:KSSettings"},
    default_model="unet",
    baseline="wiener",
    primary_metric="nmse",
    mode="min",
    headline=["pearson_r", "power_ratio_dev", "peak_count_err"],
    metric_modes={"nmse": "min", "pearson_r": "max", "rmse": "min", "r_zero_filled": "max", "power_ratio_dev": "min",
                  "peak_count_err": "min",
                  "peak_err_2": "min", "peak_err_3": "min", "peak_err_4": "min"},
    renamed={"data.peak_thresholds": "eval.peak_thresholds", "data.peak_smoothing_pix": "eval.peak_smoothing_pix",
             "data.power_bins": "eval.power_bins"},
)

register_task(
    name="sbi",
    description="simulation-based inference of (Omega_m, sigma8) and sbibm problems: NPE/NLE/NRE vs ABC and MCMC",
    datamodule="cosmobench.datamodules.sbi:SBIDataModule",
    module="cosmobench.tasks.sbi:SBITask",
    data="cosmobench.datamodules.sbi:SBIData",
    evaluation="cosmobench.tasks.sbi:SBIEval",
    models={"npe": "cosmobench.sbi_adapter:NPESettings", "nle": "cosmobench.sbi_adapter:NLESettings",
            "nre": "cosmobench.sbi_adapter:NRESettings", "rejection_abc": "cosmobench.sbi_adapter:RejectionABCSettings",
            "mcmc": "cosmobench.sbi_adapter:MCMCSettings"},
    default_model="npe",
    baseline="rejection_abc",
    primary_metric="c2st",
    mode="min",
    headline=["nltp", "tarp_atc", "sbc_ks_pvalue", "time_per_posterior"],
    metric_modes={"c2st": "min", "nltp": "min", "posterior_std": "min", "sbc_ks_pvalue": "max",
                  "tarp_atc": "zero", "time_per_posterior": "min"},
    renamed={"data.mcmc_method": "model.mcmc_method", "data.mcmc_num_chains": "model.mcmc_num_chains",
             "data.mcmc_warmup_steps": "model.mcmc_warmup_steps", "data.mcmc_thin": "model.mcmc_thin",
             "data.num_posterior_samples": "eval.num_posterior_samples",
             "data.reference_samples": "eval.reference_samples",
             "data.sbc_posterior_samples": "eval.sbc_posterior_samples",
             "data.time_posterior_samples": "eval.time_posterior_samples",
             # the budget is data.num_simulations: the split keys every task had before the refactor
             "data.n_train": None, "data.n_val": None, "data.n_test": None, "data.path": None,
             "data.test_fraction": None},
)
