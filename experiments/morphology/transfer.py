"""Morphology transfer study: simulator-pretrained + fine-tuned vs from scratch on a few real labels.

    python experiments/morphology/transfer.py REAL.h5 PRETRAIN.ckpt ROOT [N ...] [--seeds 0 1 2] [--jobs 2]

For each N_real (default 50 100 200) and seed, two ``cosmobench train morphology -m cnn`` runs on
``data.source=galaxy10 data.path=REAL.h5 data.subset=N`` (experiments/morphology/real.yaml):

* ``scratch``: random initialisation;
* ``sim+ft``: ``model.init_from=PRETRAIN.ckpt`` (a run of experiments/morphology/transfer_pretrain.yaml;
  the head is re-initialised because the classes differ), ``model.freeze_epochs=3``,
  ``model.head_lr_factor=5``.

Not run, and why: ``sim-only`` zero-shot (the simulator's six classes are not Galaxy10's ten:
there is no head to score with) and ``imagenet`` (resnet18 weights not in torch hub's cache here).

Prints per strategy and N the mean test accuracy +- the 95% t interval over seeds, and the
paired (same seed, same subset) difference sim+ft - scratch with its 95% t interval.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent / "cosmobench"
STRATEGIES = {"scratch": [], "sim+ft": ["model.freeze_epochs=3", "model.head_lr_factor=5"]}


def run(real: str, ckpt: str, root: str, n: int, seed: int, strategy: str) -> float:
    extra = list(STRATEGIES[strategy]) + ([f"model.init_from={ckpt}"] if strategy != "scratch" else [])
    args = [str(BIN), "train", "morphology", "-m", "cnn", "-c", str(HERE / "real.yaml"), "--root", root,
            "data.dataset=null", "data.source=galaxy10", f"data.path={real}", f"data.subset={n}", f"seed={seed}",
            "logger=none", "plots=false", "num_threads=1", *extra]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip().splitlines()[-1]}")
    run_dir = next(line.split()[-1] for line in r.stdout.splitlines() + r.stderr.splitlines() if "run dir" in line) \
        if "run dir" in r.stdout + r.stderr else None
    if run_dir is None:
        raise RuntimeError("no run dir in the output")
    return json.loads((Path(run_dir) / "metrics.json").read_text())["accuracy"]


def ci(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return float(x.mean()), float(half)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("real")
    p.add_argument("ckpt")
    p.add_argument("root")
    p.add_argument("n", nargs="*", type=int, default=[50, 100, 200])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    jobs = [(n, s, st) for n in a.n for s in a.seeds for st in STRATEGIES]
    with ThreadPoolExecutor(a.jobs) as ex:
        acc = dict(zip(jobs, ex.map(lambda j: run(a.real, a.ckpt, a.root, *j), jobs)))
    print("| N_real | strategy | accuracy (mean ± 95% CI, seeds " + ",".join(map(str, a.seeds)) + ") |")
    print("|---|---|---|")
    for n in a.n:
        for st in STRATEGIES:
            m, h = ci([acc[(n, s, st)] for s in a.seeds])
            print(f"| {n} | {st} | {m:.3f} ± {h:.3f} |")
    for n in a.n:
        d = [acc[(n, s, "sim+ft")] - acc[(n, s, "scratch")] for s in a.seeds]
        m, h = ci(d)
        print(f"paired sim+ft - scratch at N_real={n}: {m:+.3f} ± {h:.3f} (per seed: {', '.join(f'{x:+.3f}' for x in d)})")
    print(json.dumps({f"{n}/{s}/{st}": v for (n, s, st), v in acc.items()}))


if __name__ == "__main__":
    main()
