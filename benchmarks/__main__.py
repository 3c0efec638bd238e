"""``python -m benchmarks [NAME ...]`` (``make bench``): run every ``benchmarks/bench_*.py``
(or the named ones) and print their tables. Each module exposes ``main(argv) -> None`` (called with no arguments)."""
import importlib
import sys
import time
from pathlib import Path


def main(names: list[str]) -> int:
    here = Path(__file__).parent
    modules = sorted(p.stem for p in here.glob("bench_*.py"))
    chosen = [m for m in modules if not names or m in names or m.removeprefix("bench_") in names]
    unknown = [n for n in names if n not in modules and f"bench_{n}" not in modules]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(modules)}", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main([])
        print(f"({name}: {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
