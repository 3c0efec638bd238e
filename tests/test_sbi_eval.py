"""sbi evaluation: the reference C2ST (scikit-learn's) reproducible whatever the thread pools
and equal to sbibm's ``cross_val_score`` definition (the fast one: tests/test_c2st.py), ``bench --verify`` reports timings apart, and the sbi
bad-input classes of the reliability issue: another problem's observation, a simulation
budget beyond memory, rejection sampling that accepts (almost) nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cosmobench.errors import ConfigError, InputError
from cosmobench.metrics.sbi import c2st_sklearn


def _pair(n=60, shift=5.0):  # separable: the MLP converges in a few seconds
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + shift


def test_c2st_identical_under_any_thread_pool_and_equal_to_cross_val_score():
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    a, b = _pair()
    values = []
    for threads in (1, 2, 4):
        with threadpool_limits(limits=threads):
            values.append(c2st_sklearn(a, b))
    assert len({repr(v) for v in values}) == 1, values
    # the definition: sbibm's z-scored MLP scored by cross_val_score over 5 shuffled folds
    m, s = a.mean(0), a.std(0, ddof=1)
    data = np.concatenate([(a - m) / s, (b - m) / s]).astype(np.float32)
    target = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=(20, 20), max_iter=10000, solver="adam", random_state=1)
    with threadpool_limits(limits=1):
        ref = float(np.mean(cross_val_score(clf, data, target, cv=KFold(5, shuffle=True, random_state=1),
                                            scoring="accuracy")))
    assert values[0] == ref


def test_timing_rule():
    from cosmobench.bench.verify import is_timing
    assert is_timing("time_per_posterior") and is_timing("fit_seconds") and is_timing("train_time")
    assert not is_timing("c2st") and not is_timing("nltp") and not is_timing("lifetime_ratio")


def test_verify_reports_timings_apart(monkeypatch, tmp_path):
    import importlib
    V = importlib.import_module("cosmobench.bench.verify")  # the package exports a function of that name

    key = ("sbi", "npe", "h", 0)
    fake_job = type("J", (), {"task": "sbi", "model": "npe", "key": key, "name": "sbi/npe s0"})()
    monkeypatch.setattr(V, "expand", lambda *a, **k: (None, [fake_job]))
    row = type("R", (), {"task": "sbi", "model": "npe", "config_hash": "h", "seed": 0,
                         "metrics": {"c2st": 0.58775, "time_per_posterior": 0.0979}, "hardware": {}})()
    monkeypatch.setattr("cosmobench.results.read_rows", lambda root, status=None: [row])

    def launcher(metrics):
        class L:
            n_jobs = 1  # verify reports the worker count it re-ran with

            def __init__(self, *a):
                pass

            def run(self, jobs, on_done):
                for j in jobs:
                    on_done(j, {"status": "ok", "metrics": metrics})
        return L

    lines = []
    monkeypatch.setattr(V, "LocalLauncher", launcher({"c2st": 0.58775, "time_per_posterior": 0.1052}))
    (res,) = V.verify("x.yaml", root=tmp_path, log=lines.append)
    assert res.status == "same" and res.timings == {"time_per_posterior": (0.0979, 0.1052)}
    assert any("timing, not compared: time_per_posterior" in ln for ln in lines)
    monkeypatch.setattr(V, "LocalLauncher", launcher({"c2st": 0.588375, "time_per_posterior": 0.0979}))
    (res,) = V.verify("x.yaml", root=tmp_path, log=lines.append)
    assert res.status == "differs" and list(res.diffs) == ["c2st"]


def _dm(**data):
    from cosmobench import config as C
    from cosmobench.datamodules.sbi import SBIDataModule
    cfg = C.resolve("sbi", "npe", None, [f"data.{k}={v}" for k, v in data.items()])
    return SBIDataModule(cfg["data"], seed=0)


@pytest.mark.parametrize("n_cols", [2, 12, 11])
def test_observation_of_another_problem_is_an_input_error(tmp_path, n_cols):
    dm = _dm(problem="gaussian_linear", cache_dir=str(tmp_path))   # 10 data values
    p = tmp_path / "obs.csv"
    p.write_text(",".join(f"data_{i + 1}" for i in range(n_cols)) + "\n" + ",".join(["0.5"] * n_cols) + "\n")
    with pytest.raises(InputError, match="another problem"):
        dm.read_input(p)
    np.save(tmp_path / "obs.npy", np.zeros((3, n_cols)))
    with pytest.raises(InputError, match="10 values"):
        dm.read_input(tmp_path / "obs.npy")


@pytest.mark.parametrize("n", ["3000000000", "900000000000"])
def test_simulation_budget_beyond_memory_is_refused_before_simulating(tmp_path, n):
    with pytest.raises(ConfigError, match=r"data.num_simulations=\d+ .* GiB"):
        _dm(problem="gaussian_linear", num_simulations=n, cache_dir=str(tmp_path))


def test_rejection_abc_with_no_draw_inside_the_prior_stops_with_a_clear_error():
    from cosmobench.sbi_adapter import SamplingLimit
    from cosmobench.sim.sbi_problems import get_problem
    import sys

    from cosmobench.registry import get_task
    from cosmobench.runner import load_classes
    _, task_cls = load_classes(get_task("sbi"))   # the task module as the registry loads it
    RejectionABC = sys.modules[task_cls.__module__].RejectionABC
    problem = get_problem("two_moons")
    rng = np.random.default_rng(0)
    theta = problem.sample_prior(300, rng)
    abc = RejectionABC(problem, type("S", (), {"quantile": 0.1})())
    abc.fit({"theta": theta, "x": problem.simulate(theta, rng)})
    abc.max_time = 0.5
    problem.log_prior = lambda t: torch.full((len(t),), -torch.inf)  # nothing is ever accepted
    with pytest.raises(SamplingLimit, match=r"observation 0: only 0\.000% .* eval.max_sampling_time=0.5"):
        abc.sample(np.array([[50.0, 50.0]]), 100, rng)


def test_npe_posterior_outside_the_prior_stops_with_a_clear_error():
    from cosmobench import sbi_adapter as A
    from cosmobench.sim.sbi_problems import get_problem
    problem = get_problem("two_moons")                     # uniform prior on [-1, 1]^2
    cfg = {"density_estimator": "mdn", "hidden_features": 8, "num_components": 1, "num_transforms": 1, "num_bins": 2}
    net = A.build_estimator("npe", cfg, ([50.0, 50.0], [0.01, 0.01]), ([0.0, 0.0], [1.0, 1.0]))
    post = A.build_posterior("npe", net, problem.torch_prior())
    with pytest.raises(A.SamplingLimit, match="max_sampling_time=1 s"):
        A.sample(post, torch.zeros(1, 2), 100, max_time=1.0)


def test_nre_on_map_problems_samples_a_batch_of_maps():
    """sbi 0.27's batched MCMC initialisation mis-shapes map observations (the channel axis
    read as the batch): NRE on lognormal_map failed at test time; maps are sampled one by one."""
    from torch import nn

    from cosmobench import sbi_adapter
    from cosmobench.config import resolve
    from cosmobench.nn import build_net
    from cosmobench.sim.sbi_problems import get_problem

    cfg = resolve("sbi", "nre", overrides=["data.problem=lognormal_map", "data.map_size=8", "model.channels=[4,8]",
                                           "model.mcmc_num_chains=2", "model.mcmc_warmup_steps=2"])
    p = get_problem("lognormal_map", {k: cfg["data"][k] for k in ("problem", "cache_dir", "map_size", "pixel_arcmin",
                                                                   "sigma_e", "n_gal", "ell_min", "ell_max",
                                                                   "n_ell_bins", "area_deg2")})
    m = cfg["model"]
    emb = nn.Sequential(sbi_adapter.ScalarStandardize(0.0, 1.0),
                        build_net("cnn", m, n_bands=1, n_classes=int(m["n_summaries"]), image_size=8))
    net = sbi_adapter.build_estimator("nre", m, ([0.3, 0.8], [0.1, 0.1]), None, embedding_net=emb,
                                      x_example=torch.zeros((1,) + p.x_shape))
    post = sbi_adapter.build_posterior("nre", net, p.torch_prior(), sbi_adapter.MCMCSettings(
        mcmc_num_chains=2, mcmc_warmup_steps=2))
    torch.manual_seed(0)
    s = sbi_adapter.sample(post, torch.randn((3,) + p.x_shape) * 0.03, 6)
    assert s.shape == (6, 3, 2) and torch.isfinite(s).all()
    assert bool(((s[..., 0] >= 0.15) & (s[..., 0] <= 0.45)).all())  # inside the prior


def test_a_reference_posterior_belongs_to_its_observation(tmp_path):
    # validation observation k is not test observation k: each gets the reference of its own x
    # (the cache was keyed by k alone, so tuning scored validation posteriors against test references)
    from cosmobench.datamodules.sbi import reference_posterior
    from cosmobench.sim.sbi_problems import get_problem
    problem = get_problem("two_moons")
    cfg = {"problem": "two_moons", "cache_dir": str(tmp_path)}
    theta = np.zeros(2)
    a = reference_posterior(problem, cfg, 0, 0, theta, np.array([0.3, 0.1]), 500)
    b = reference_posterior(problem, cfg, 0, 0, theta, np.array([-0.4, 0.2]), 500)
    assert not np.allclose(a, b)                        # its own posterior (before: b was read from a's cache entry)
    again = reference_posterior(problem, cfg, 0, 0, theta, np.array([0.3, 0.1]), 500)
    np.testing.assert_allclose(again, a, rtol=1e-7)                      # read back from its own cache entry
    assert len(list(tmp_path.rglob("reference_posterior_samples.csv.bz2"))) == 2


def test_a_changed_reference_sampler_does_not_reuse_cached_references(tmp_path):
    from cosmobench.datamodules.sbi import reference_posterior
    from cosmobench.sim.sbi_problems import get_problem
    problem = get_problem("two_moons")
    cfg = {"problem": "two_moons", "cache_dir": str(tmp_path)}
    x = np.array([0.3, 0.1])
    reference_posterior(problem, cfg, 0, 0, np.zeros(2), x, 200)
    problem.reference_version = "test: another sampler"          # instance attribute: this problem object only
    reference_posterior(problem, cfg, 0, 0, np.zeros(2), x, 200)
    assert len(list(tmp_path.rglob("reference_posterior_samples.csv.bz2"))) == 2   # drawn again, not read back
