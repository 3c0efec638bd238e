"""Benchmark suites (``cosmobench bench``): a suite file expanded into jobs, run locally or
on SLURM, resumed, verified.

- :mod:`~cosmobench.bench.suites`: the suite file format, :func:`expand` into
  :class:`Job` s (all validated before the first job runs), the manifests;
- :mod:`~cosmobench.bench.run`: :func:`run_suite`, skipping jobs that have an ``ok`` row and
  resuming interrupted ones;
- :mod:`~cosmobench.bench.launchers`: :class:`LocalLauncher` (worker processes,
  :mod:`~cosmobench.bench.worker`) and :func:`write_slurm` (a SLURM job-array script);
- :mod:`~cosmobench.bench.verify`: :func:`verify`, re-running stored jobs and comparing
  every metric exactly.
"""
from cosmobench.bench.launchers import LocalLauncher, write_slurm
from cosmobench.bench.run import BenchReport, run_suite
from cosmobench.bench.suites import (MANIFEST_DIR, Job, default_suite, done_keys, expand, fmt_value, load_suite,
                                     read_manifests, write_manifest)
from cosmobench.bench.verify import VerifyResult, verify

__all__ = ["Job", "MANIFEST_DIR", "default_suite", "load_suite", "expand", "fmt_value", "write_manifest",
           "read_manifests", "done_keys", "run_suite", "BenchReport", "LocalLauncher", "write_slurm",
           "verify", "VerifyResult"]
