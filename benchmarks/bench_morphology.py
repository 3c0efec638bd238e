"""Throughput of the morphology task on this machine (ratios measured in one run).

* simulator: images/s of :func:`cosmobench.sim.galaxies.simulate_galaxy` (all classes in turn,
  bands x size x size px with PSF convolution and noise);
* training: images/s of forward + backward + optimiser step of e2cnn, cnn and resnet18 with
  morphology's resolved hyper-parameters (the networks' declared defaults), and the ratio to
  the plain CNN.

Usage: ``python benchmarks/bench_morphology.py [--size 64] [--bands 3] [--batch 32]
[--n-sim 200] [--seconds 8]``. Prints a table; no assertions.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch


def bench_simulator(size: int, bands: int, n: int) -> float:
    from cosmobench.sim.galaxies import CLASSES, Observation, simulate_galaxy
    obs = Observation(image_size=size, n_bands=bands)
    simulate_galaxy(np.random.default_rng(0), CLASSES[0], obs)  # warm-up
    t0 = time.perf_counter()
    for i in range(n):
        simulate_galaxy(np.random.default_rng(i), CLASSES[i % len(CLASSES)], obs)
    return n / (time.perf_counter() - t0)


def bench_training(name: str, size: int, bands: int, batch: int, seconds: float) -> tuple[float, int]:
    from cosmobench.config import resolve
    from cosmobench.nn import build_net, count_parameters
    torch.manual_seed(0)
    net = build_net(name, resolve("morphology", name)["model"], n_bands=bands, n_classes=6, image_size=size)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x, y = torch.randn(batch, bands, size, size), torch.randint(0, 6, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (e2cnn builds its filter basis lazily)
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - t0), count_parameters(net)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--bands", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-sim", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=8.0, help="timed training seconds per model")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    print(f"morphology throughput: {args.bands} bands x {args.size}x{args.size} px, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    sim = bench_simulator(args.size, args.bands, args.n_sim)
    print(f"\n{'simulator':<28}{sim:>10.1f} images/s  ({1000 / sim:.2f} ms/image; 2,000 images in {2000 / sim:.1f} s)")
    rows = []
    for name in ("cnn", "e2cnn", "resnet18"):
        ips, n_params = bench_training(name, args.size, args.bands, args.batch, args.seconds)
        rows.append((name, n_params, ips))
    base = dict((r[0], r[2]) for r in rows)["cnn"]
    print(f"\n{'training (fwd+bwd+step)':<24}{'params':>12}{'images/s':>12}{'vs cnn':>10}")
    for name, n_params, ips in rows:
        print(f"{name:<24}{n_params:>12,}{ips:>12.1f}{ips / base:>9.2f}x")
    e2 = dict((r[0], r[2]) for r in rows)["e2cnn"]
    print(f"\nratio e2cnn / cnn training throughput: {e2 / base:.3f} (cnn is {base / e2:.1f}x faster)")


if __name__ == "__main__":
    main()
