"""Data set entries of sbi: sbibm reference observations and posteriors (Lueckmann+2021), no-Julia tasks.

Hashes: see docs/datasets.md, "Where the hashes come from"."""
from cosmobench.datasets._sbibm_files import SBIBM_COMMIT, SBIBM_FILES
from cosmobench.datasets.catalog import Dataset, bibtex, github_file, register_dataset


_SBIBM_BIB = bibtex("""
    @inproceedings{Lueckmann2021,
      author    = {Lueckmann, Jan-Matthis and Boelts, Jan and Greenberg, David and Goncalves, Pedro and
                   Macke, Jakob},
      title     = {Benchmarking Simulation-Based Inference},
      booktitle = {Proceedings of The 24th International Conference on Artificial Intelligence and Statistics},
      series    = {Proceedings of Machine Learning Research},
      volume    = {130},
      pages     = {343--351},
      year      = {2021},
      publisher = {PMLR},
    }""")
_SBIBM_DIMS = {"gaussian_linear": (10, 10), "gaussian_linear_uniform": (10, 10), "slcp": (5, 8),
               "slcp_distractors": (5, 100), "bernoulli_glm": (10, 10), "bernoulli_glm_raw": (10, 100),
               "gaussian_mixture": (2, 2), "two_moons": (2, 2)}

for _task, _files in SBIBM_FILES.items():
    _dt, _dx = _SBIBM_DIMS[_task]
    register_dataset(Dataset(
        name=f"sbibm-{_task.replace('_', '-')}", task="sbi",
        description=f"sbibm {_task}: 10 benchmark observations (x in R^{_dx}), their true parameters "
                    f"(theta in R^{_dt}) and 10,000 reference posterior samples each",
        files=tuple(github_file("sbi-benchmark", "sbibm", SBIBM_COMMIT, p, size=s, sha256=h,
                                name="/".join(p.split("/")[-2:]))
                    for p, s, h in _files),
        licence="MIT (licence of the publisher's repository)",
        licence_url="https://github.com/sbi-benchmark/sbibm/blob/main/LICENSE",
        citation_key="Lueckmann2021", citation=_SBIBM_BIB,
        loader={"problem": _task, "num_observations": 10, "reference_dir": ".", "num_simulations": 10000},
        notes="Layout as sbibm's tasks/<task>/files/: num_observation_<k>/{observation*.csv, "
              "true_parameters.csv, reference_posterior_samples.csv.bz2}, k = 1..10"
              + ("; the observation file is observation_distractors.csv (100 values: 8 informative + 92 distractors)"
                 if _task == "slcp_distractors" else
                 "; the observation file is observation_raw.csv (100 raw spike counts)"
                 if _task == "bernoulli_glm_raw" else "")
              + ". Simulator, prior and likelihood: data.problem=" + _task + " (cosmobench.sim.sbibm_problems, "
                "sbibm's definitions). Published anchor: sbibm's C2ST table (github.com/sbi-benchmark/results).",
        homepage=f"https://github.com/sbi-benchmark/sbibm/tree/{SBIBM_COMMIT}/sbibm/tasks",
    ))
