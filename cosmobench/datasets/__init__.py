"""Named public data sets: a registry (:mod:`.catalog`), verified downloads through pooch with
mirror fallback and an offline cache (:mod:`.download`), and the ``cosmobench data`` commands
(:mod:`.cli`). Reference: ``docs/datasets.md``.

Importing this package is cheap (no pooch, no torch): pooch is imported on first download.
"""
from cosmobench.datasets.catalog import (DATASETS, HASHED_ON, DataFile, Dataset, Subset, get_dataset,
                                         github_file, register_dataset, unregister_dataset)
from cosmobench.datasets.download import (ENV_VAR, FetchReport, VerifyResult, cache_state, data_home, dataset_dir,
                                       fetch, fetch_command, git_blob_id, loader_config, local_path, provenance,
                                       require, sha256_file, verify)

__all__ = ["DATASETS", "HASHED_ON", "DataFile", "Dataset", "Subset", "get_dataset", "github_file",
           "register_dataset", "unregister_dataset", "ENV_VAR", "FetchReport", "VerifyResult", "cache_state",
           "data_home", "dataset_dir", "fetch", "fetch_command", "git_blob_id", "loader_config", "local_path",
           "provenance", "require", "sha256_file", "verify"]
