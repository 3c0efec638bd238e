"""``python -m benchmarks [--quick] [NAME ...]`` (``make bench``): run every
``benchmarks/bench_*.py`` (or the named ones) and print ONE table of all their results.

A benchmark module takes part by defining ``rows(quick: bool) -> list[dict]``; each row
has ``benchmark``, ``case``, ``value``, ``unit``, ``target`` (or "") and ``note``. Modules
are found by file name (adding ``bench_<name>.py`` is all it takes). A module that only
has ``main(argv)`` is run as before and its own output printed above the table. The
table closes with the machine it was measured on.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

COLUMNS = ("benchmark", "case", "value", "unit", "target", "note")


def machine(threads: int | None = None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{cpu}, {os.cpu_count()} logical CPUs{gpu}; torch {torch.__version__}, "
            f"{threads or torch.get_num_threads()} threads by default (each row states its own); "
            f"Python {platform.python_version()}")


def _load() -> str:
    """The 1/5/15-minute load averages (how busy the machine was: ratios are measured in one
    run, absolute rates depend on it)."""
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def print_table(rows: list[dict], file=None) -> None:
    file = file or sys.stdout
    cells = [[str(r.get(c, "")) for c in COLUMNS] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))
    print(line, file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip(), file=file)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if a != "--quick"]
    here = Path(__file__).parent
    modules = sorted(p.stem for p in here.glob("bench_*.py"))
    chosen = [m for m in modules if not names or m in names or m.removeprefix("bench_") in names]
    unknown = [n for n in names if n not in modules and f"bench_{n}" not in modules]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(modules)}", file=sys.stderr)
        return 2
    import torch
    threads = torch.get_num_threads()  # benchmarks may change it (the runner sets num_threads)
    load = _load()
    rows: list[dict] = []
    t_all = time.perf_counter()
    for name in chosen:
        t0 = time.perf_counter()
        mod = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        if hasattr(mod, "rows"):
            rows.extend(mod.rows(quick))
        else:
            print(f"\n== {name} ==", flush=True)
            mod.main([])
        print(f"  ({name}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print()
    print_table(rows)
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine(threads)} "
          f"(1/5/15-min load average {load} at the start, {_load()} at the end); "
          f"{time.perf_counter() - t_all:.0f} s in total")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
