"""One SLURM array index of a suite's tuning: ``python -m cosmobench.bench.tune_job --manifest
tune_manifest.json --index I`` runs ``cosmobench tune`` for the I-th study of the manifest
(written by :func:`cosmobench.bench.launchers.write_slurm`; not run by users). The command
line is read from the manifest (inert data), never written into the script. Exit codes are
those of ``cosmobench tune`` (2: bad manifest or index; 130/143: interrupted, the study
resumes when the index runs again)."""
from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m cosmobench.bench.tune_job")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--index", required=True)
    args = ap.parse_args()
    try:
        studies = json.loads(open(args.manifest).read())["studies"]
        if not isinstance(studies, list):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        print(f"cosmobench: {args.manifest} is not a tuning manifest (tune_manifest.json)", file=sys.stderr)
        return 2
    if not args.index.isdigit() or int(args.index) >= len(studies):
        print(f"cosmobench: array index {args.index[:40]!r} is not a study of this suite (0-{len(studies) - 1})",
              file=sys.stderr)
        return 2
    argv = [str(a) for a in studies[int(args.index)]["argv"]]
    from cosmobench import cli
    sys.argv = ["cosmobench", *argv]
    return cli.main()  # as the console script: Ctrl-C / SIGTERM end the process at once


if __name__ == "__main__":
    sys.exit(main())
