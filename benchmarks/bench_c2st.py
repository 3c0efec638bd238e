"""C2ST speed: the batched re-implementation (:mod:`cosmobench.metrics.c2st`, ``eval.c2st_impl=fast``)
vs scikit-learn's ``MLPClassifier`` per fold (sbibm's definition, ``eval.c2st_impl=sklearn``).

Both score the same sample pairs, in the same process, one after the other, single-threaded:
``OBS`` observations of the sbi default budget shape (d = 10, ``N`` reference vs ``N`` "posterior"
samples, the posterior a Gaussian shifted by 0.1-0.3 sigma so that C2ST is 0.5-0.6 as for a good
NPE). scikit-learn fits the 5 folds of each observation one after the other (as the test phase
did); the fast one trains all 5 x ``OBS`` folds as one batch (as the test phase does now).
Times are CPU seconds of this process (``time.process_time``: on a shared machine the wall time
depends on the other jobs; both run on one core). Also printed: the largest difference between
the two C2ST values over the observations (the agreement ``tests/test_c2st.py`` checks).

Usage: ``python -m benchmarks c2st`` (``--quick``: N = 2000) or ``python benchmarks/bench_c2st.py
[--n 10000] [--obs 2]``. Target: fast >= 1.5x scikit-learn (CPU time; both single-threaded, so the same ratio in wall time
on an idle core). The gain is bounded: float32 matrix products are about half of scikit-learn's
time per mini-batch step, and the batch removes only the rest (Python and per-step overhead).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

TARGET = 1.5
OBS = 2


def _pairs(n: int, n_obs: int, d: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(n, d)), rng.normal(size=(n, d)) + rng.uniform(0.1, 0.3, d) * (k % 2))
            for k in range(n_obs)]


def measure(n: int, n_obs: int) -> dict:
    """CPU seconds and C2ST values of both implementations on the same pairs."""
    from cosmobench.metrics.c2st import c2st_many, c2st_sklearn

    pairs = _pairs(n, n_obs)
    t0 = time.process_time()
    fast = c2st_many(pairs)
    t_fast = time.process_time() - t0
    t0 = time.process_time()
    ref = [c2st_sklearn(r, s) for r, s in pairs]
    t_ref = time.process_time() - t0
    return {"fast": fast, "sklearn": ref, "t_fast": t_fast, "t_sklearn": t_ref}


def rows(quick: bool, n: int | None = None, n_obs: int = OBS) -> list[dict]:
    n = n or (2000 if quick else 10000)
    r = measure(n, n_obs)
    diff = max(abs(a - b) for a, b in zip(r["fast"], r["sklearn"]))
    note = (f"{n_obs} observations, d=10, {n} vs {n} samples, 5 folds each; CPU s: fast {r['t_fast']:.0f}, "
            f"sklearn {r['t_sklearn']:.0f}; c2st fast {', '.join(f'{v:.4f}' for v in r['fast'])} vs sklearn "
            f"{', '.join(f'{v:.4f}' for v in r['sklearn'])} (max |diff| {diff:.4f})")
    return [{"benchmark": "c2st", "case": "batched C2ST vs sklearn MLPClassifier", "value": f"{r['t_sklearn'] / r['t_fast']:.1f}",
             "unit": "x sklearn (CPU time)", "target": f">= {TARGET:g}x", "note": note}]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="samples per side and observation")
    p.add_argument("--obs", type=int, default=OBS, help="observations (sample pairs)")
    a = p.parse_args(argv)
    for r in rows(False, a.n, a.obs):
        print(f"{r['case']}: {r['value']} {r['unit']} (target {r['target']}); {r['note']}")


if __name__ == "__main__":
    main()
