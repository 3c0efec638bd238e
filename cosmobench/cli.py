"""``cosmobench`` command line (exit codes: docs/ARCHITECTURE.md, "Runs, results and errors").

Exit codes: 0 success, 2 bad usage / config / input (nothing written), 1 run failure
(e.g. NaN loss; a ``failed`` row is recorded), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM, e.g. a scheduler's time limit: stopped like Ctrl-C, resumable). Every error prints exactly
one line on stderr, ``cosmobench: error: <reason>``: :func:`main` is the one place that
turns exceptions into that line (:func:`one_line`). Set ``COSMOBENCH_DEBUG=1`` to see the
traceback as well.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from pathlib import Path

from cosmobench.errors import ConfigError, CosmobenchError
from cosmobench.signals import INTERRUPTS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 too; keep our one-line format
        raise ConfigError(f"{self.prog}: {message}")


def _root_option() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--root", default=argparse.SUPPRESS,
                   help="directory for run dirs and results.sqlite (default: $COSMOBENCH_HOME or ./runs)")
    return p


def build_parser() -> argparse.ArgumentParser:
    root = _root_option()
    parser = _Parser(prog="cosmobench", description="Benchmarks for machine learning in cosmology.",
                     parents=[root])
    from cosmobench import __version__
    parser.add_argument("--version", action="version", version=f"cosmobench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", parents=[root], help="tasks, models and primary metrics")

    p = sub.add_parser("train", parents=[root], help="fit + test + record one run")
    p.add_argument("task")
    p.add_argument("-m", "--model", help="model name (default: the task's first model)")
    p.add_argument("-c", "--config", help="YAML file layered over the defaults")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p = sub.add_parser("predict", parents=[root], help="apply a trained model to a file")
    p.add_argument("task")
    p.add_argument("--checkpoint", help="checkpoint of a training run (checkpoints/best.ckpt)")
    p.add_argument("-m", "--model", help="baseline model to use without a checkpoint")
    p.add_argument("--input", help="input file (task-specific format); default: the config's data.input "
                   "(e.g. deblending with data.dataset=hsc-blends)")
    p.add_argument("--output", required=True, help="output table: .csv, .ecsv, .fits, .parquet, .npz or .h5")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="network precision of image classifiers (default auto: bf16 on a CPU with native "
                        "bfloat16, else fp32; fp32 turns reduced precision off)")
    p.add_argument("--compile", action="store_true",
                   help="compile the image classifier's network with torch.compile first (2-20 s once, "
                        "then ~1.3-1.5x faster on the CPU: for large inputs)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p = sub.add_parser("test", parents=[root], help="score a trained checkpoint on a datamodule and record a row")
    p.add_argument("task")
    p.add_argument("--checkpoint", required=True, help="checkpoint of a training run (checkpoints/best.ckpt)")
    p.add_argument("-m", "--model", help="model of a checkpoint whose run dir has no config.yaml")
    p.add_argument("-c", "--config", help="YAML file layered over the run's config")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p = sub.add_parser("shift", parents=[root],
                       help="a checkpoint scored on its own test data and on other data, side by side (the gap)")
    p.add_argument("task")
    p.add_argument("--checkpoint", required=True, help="checkpoint of a training run (e.g. on the simulator)")
    p.add_argument("-c", "--config", help="YAML layer of the target data, over the run's config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the target data, e.g. data.dataset=NAME")

    p = sub.add_parser("bench", parents=[root], help="grid of runs (task x model x seed), then the leaderboard")
    p.add_argument("suite", nargs="?", help="suite YAML (default: experiments/suites/quick.yaml)")
    p.add_argument("--tasks", help="comma-separated subset of tasks")
    p.add_argument("--seeds", type=int, help="number of seeds (0..N-1), overrides the suite")
    p.add_argument("--print-config", action="store_true", help="print the resolved configs and exit")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local worker processes (default) or a SLURM job-array script")
    p.add_argument("--jobs", type=int, help="local worker processes (default: one per GPU, else 1)")
    p.add_argument("--rerun", action="store_true", help="run jobs that already have an ok row again")
    p.add_argument("--verify", action="store_true",
                   help="re-run one stored seed per (task, model); fail if any metric differs")
    p.add_argument("--out", help="slurm: folder for bench.sbatch and manifest.json (default ROOT/slurm/SUITE)")
    p.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="slurm: extra #SBATCH line, e.g. --sbatch=--gres=gpu:1 (repeatable)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p = sub.add_parser("results", parents=[root], help="one row per recorded run, as CSV or Parquet")
    p.add_argument("--task")
    p.add_argument("--status", choices=["ok", "failed"])
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--out", help="write to this file (required for parquet) instead of stdout")
    p.add_argument("--rescan", nargs="?", const="", metavar="ROOT",
                   help="record the finished runs under ROOT (default: --root) that the store lacks, then exit")

    p = sub.add_parser("leaderboard", parents=[root], help="render the leaderboard of recorded runs")
    p.add_argument("--task")
    p.add_argument("--format", choices=["md", "csv", "html"], default="md",
                   help="md: the glance view (rank, model, verdict, primary and headline metrics; 120 columns); "
                        "csv: every metric and the provenance; html: the report page")
    p.add_argument("--all", action="store_true", help="md: every metric and the provenance columns")
    p.add_argument("--out", help="write to this file instead of stdout")

    p = sub.add_parser("compare", parents=[root],
                       help="two or more models / configs / commits of a task, paired over seeds, per metric")
    p.add_argument("task")
    p.add_argument("entries", nargs="+", metavar="ENTRY",
                   help="model name, config hash (prefix) or MODEL@COMMIT; the first is the reference")
    p.add_argument("--metrics", help="comma-separated metrics (default: the primary and headline metrics)")
    p.add_argument("--all", action="store_true", help="every metric both entries have")
    p.add_argument("--format", choices=["md", "html"], default="md")
    p.add_argument("--out", help="write to this file instead of stdout")

    p = sub.add_parser("tune", parents=[root],
                       help="Optuna search of a model's declared search space on the train/validation splits")
    p.add_argument("task")
    p.add_argument("-m", "--model", help="model name (default: the task's default model)")
    p.add_argument("-c", "--config", help="YAML file layered over the defaults (the base of every trial)")
    p.add_argument("--trials", type=int, required=True, help="trials in the study (a resumed study runs the rest)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study (default 1)")
    p.add_argument("--objective", choices=["metric", "val_loss"], default="metric",
                   help="metric: the task's primary metric on the validation split (default); val_loss: the "
                        "best validation loss")
    p.add_argument("--study", help="study name (default: derived from task, model and base config)")
    p.add_argument("--space", action="append", default=[], metavar="KEY=SPEC",
                   help="add or replace a search-space key: KEY=log:LO:HI, float:LO:HI, int:LO:HI, choice:A,B,...")
    p.add_argument("--print-space", action="store_true", help="print the model's search space and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    from cosmobench.datasets import cli as data_cli
    data_cli.add_subparser(sub)
    return parser


def _cmd_list(args) -> int:
    from cosmobench.registry import list_tasks
    for spec in list_tasks():
        arrow = "lower" if spec.mode == "min" else "higher"
        print(f"{spec.name:<12} {spec.description}")
        print(f"{'':<12} models: {', '.join(spec.models)}   primary metric: {spec.primary_metric} ({arrow} is better)")
    return 0


def _cmd_train(args) -> int:
    from cosmobench import config as C
    cfg = C.resolve(args.task, args.model, args.config, args.overrides)
    if args.print_config:
        print(C.to_yaml(cfg), end="")
        return 0
    from cosmobench.runner import train
    res = train(args.task, cfg=cfg, root=args.root)
    if os.environ.get("LOCAL_RANK", "0") != "0":  # DDP child process: rank 0 reports
        return 0
    print("fast_dev_run: the pipeline works; a smoke test is not recorded" if res.status == "smoke"
          else f"run dir: {res.run_dir}")
    for k, v in sorted(res.metrics.items()):
        print(f"  {k:<28} {v:.6g}")
    return 0


def _cmd_predict(args) -> int:
    from cosmobench import config as C
    if args.checkpoint is None and args.model is None:
        raise ConfigError("predict needs --checkpoint CKPT (or -m MODEL for a baseline that needs no training)")
    if args.print_config:  # with a checkpoint: its run's config, as predict uses it
        from cosmobench.checkpoints import checkpoint_config
        cfg = checkpoint_config(args.task, args.checkpoint, args.model, args.overrides)[0] if args.checkpoint \
            else C.resolve(args.task, args.model, overrides=args.overrides)
        print(C.to_yaml(cfg), end="")
        return 0
    from cosmobench.predict import predict
    out = predict(args.task, args.checkpoint, args.input, args.output, model=args.model, overrides=args.overrides,
                  overwrite=args.overwrite, precision=args.precision, compile=args.compile)
    print(f"wrote {out}")
    return 0


def _cmd_test(args) -> int:
    if args.print_config:
        from cosmobench import config as C
        from cosmobench.checkpoints import checkpoint_config
        print(C.to_yaml(checkpoint_config(args.task, args.checkpoint, args.model, args.overrides,
                                          args.config)[0]), end="")
        return 0
    from cosmobench import runner
    res = runner.test(args.task, args.checkpoint, args.model, args.overrides, args.config, root=args.root)
    print(f"run dir: {res.run_dir}")
    for k, v in sorted(res.metrics.items()):
        print(f"  {k:<28} {v:.6g}")
    return 0


def _cmd_shift(args) -> int:
    from cosmobench.registry import get_task
    from cosmobench.shift import format_report, shift
    report = shift(args.task, args.checkpoint, args.overrides, args.config, root=args.root)
    print(format_report(report, get_task(args.task).primary_metric), end="")
    return 0


def _cmd_bench(args) -> int:
    from cosmobench import bench, leaderboard
    from cosmobench.results import default_root
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    if args.suite and "=" in args.suite and not Path(args.suite).exists():  # an override, not a suite
        args.overrides, args.suite = [args.suite, *args.overrides], None
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    from cosmobench.bench.transfer import is_transfer_suite, run_transfer
    if is_transfer_suite(args.suite):  # a pretraining step, then strategy stages (cosmobench.bench.transfer)
        if tasks or args.verify or args.launcher != "local":
            raise ConfigError("a transfer suite runs locally as a whole: --tasks, --verify and --launcher slurm "
                              "do not apply")
        return run_transfer(args.suite, args.root, args.jobs, args.rerun, args.seeds, args.overrides,
                            args.print_config)
    sel = (args.suite, tasks, args.seeds, args.overrides)
    if args.print_config:
        from cosmobench import config as C
        for job in bench.expand(*sel, root=args.root)[1]:
            print(f"# {job.name}\n{C.to_yaml(C.resolve(job.task, job.model, job.config, job.overrides))}---")
        return 0
    if args.verify:
        res = bench.verify(*sel, root=args.root, n_jobs=args.jobs)
        bad = [r for r in res if r.status != "same"]
        print(f"verify: {len(res) - len(bad)} of {len(res)} re-runs reproduce their stored metrics exactly")
        return 1 if bad else 0
    if args.launcher == "slurm":
        script, manifest, todo = bench.write_slurm(*sel, root=args.root, out=args.out,
                                                   sbatch_options=args.sbatch, rerun=args.rerun)
        print(f"wrote {script} ({len(todo)} array jobs) and {manifest}")
        print(f"submit with: sbatch {script}" if todo else "nothing to run: every job has an ok row")
        return 0
    report = bench.run_suite(*sel, root=args.root, n_jobs=args.jobs, rerun=args.rerun)
    board = leaderboard.load(default_root(args.root))
    print(leaderboard.to_markdown(leaderboard.Board({t: e for t, e in board.items() if t in
                                                     {j.task for j in report.jobs}}, notes=board.notes)))
    if report.failed:
        print(f"{len(report.failed)} of {len(report.jobs)} jobs failed", file=sys.stderr)
        return 1
    return 0


def _cmd_results(args) -> int:
    from cosmobench import leaderboard
    from cosmobench.results import default_root, read_rows, rescan
    if args.rescan is not None:
        root = default_root(args.rescan or args.root)
        added, unfinished = rescan(root)
        print(f"recorded {len(added)} run(s) from {root}" + (f": {', '.join(added)}" if added else "")
              + (f"; {unfinished} unfinished run dir(s) left alone" if unfinished else ""))
        return 0
    text = leaderboard.write_runs(read_rows(default_root(args.root), task=args.task, status=args.status),
                                  args.format, args.out)
    if args.out:
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _cmd_leaderboard(args) -> int:
    from cosmobench import leaderboard
    from cosmobench.results import default_root
    root = default_root(args.root)
    if args.task:
        from cosmobench.registry import get_task
        get_task(args.task)
    board = leaderboard.load(root, task=args.task)
    text = leaderboard.to_markdown(board, full=True) if args.format == "md" and args.all \
        else leaderboard.RENDERERS[args.format](board)
    if args.out:
        leaderboard.write_output(Path(args.out), text.encode())
        print(f"wrote {args.out}")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _cmd_compare(args) -> int:
    from cosmobench import compare
    from cosmobench.leaderboard import write_output
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    cmp = compare.compare(args.task, args.entries, root=args.root, metrics=metrics, all_metrics=args.all)
    text = compare.RENDERERS[args.format](cmp)
    if args.out:
        write_output(Path(args.out), text.encode())
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _cmd_tune(args) -> int:
    from cosmobench import tune
    if args.print_space:
        print(tune.describe_space(args.task, args.model), end="")
        return 0
    space = dict(tune.parse_space_option(s) for s in args.space)
    res = tune.tune(args.task, args.model, trials=args.trials, jobs=args.jobs, config_file=args.config,
                    overrides=args.overrides, root=args.root, objective=args.objective, study=args.study,
                    space=space)
    print(res.summary())
    return 0


def _cmd_data(args) -> int:
    from cosmobench.datasets import cli as data_cli
    return data_cli.run(args)


COMMANDS = {"list": _cmd_list, "train": _cmd_train, "predict": _cmd_predict, "test": _cmd_test, "shift": _cmd_shift,
            "bench": _cmd_bench,
            "leaderboard": _cmd_leaderboard, "results": _cmd_results, "compare": _cmd_compare, "tune": _cmd_tune,
            "data": _cmd_data}


def main(argv: list[str] | None = None) -> int:
    try:
        from cosmobench.signals import handle_sigterm
        handle_sigterm()  # SIGTERM stops every phase like Ctrl-C; exit 143
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:  # KEY=VALUE overrides may follow options such as -m MODEL
            bad = [e for e in extra if "=" not in e or e.startswith("-")]
            if bad or not hasattr(args, "overrides"):
                raise ConfigError(f"unrecognized arguments: {' '.join(bad or extra)}")
            args.overrides = [*args.overrides, *extra]
        if not hasattr(args, "root"):
            args.root = None
        _check_paths(args)
        return COMMANDS[args.command](args)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except INTERRUPTS as exc:  # runner.RunInterrupted says what happened to the run
        reason = one_line(str(exc))
        from cosmobench.signals import acknowledge
        acknowledge()
        code = getattr(exc, "exit_code", 130)
        what = "terminated (SIGTERM)" if code == 143 else "interrupted"
        print(f"cosmobench: {what}{': ' + reason if reason else ''}", file=sys.stderr)
        if argv is None:  # the console script: end now (before SLURM's SIGKILL after SIGTERM); the run is
            import logging  # already marked and resumable, and the interpreter's clean-up of torch, W&B
            #                 and Optuna after an interrupt takes seconds or, in a tune, hung
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except BaseException as exc:  # noqa: BLE001 - the one place that reports every error
        if os.environ.get("COSMOBENCH_DEBUG"):
            traceback.print_exc()
        code, reason = _error_line(exc)
        print(f"cosmobench: error: {reason}", file=sys.stderr)
        return code


def one_line(text: str, limit: int = 1000) -> str:
    """``text`` as one printable line: terminal escapes dropped, line breaks and other
    control characters collapsed into single spaces, at most ``limit`` characters."""
    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", str(text))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " ..."


def _error_line(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line reason) of an exception; never an empty reason."""
    if isinstance(exc, CosmobenchError):
        code, reason = exc.exit_code, one_line(str(exc))
    elif isinstance(exc, OSError):  # a path the user gave cannot be read or written
        code = 2
        where = f": {exc.filename}" if exc.filename else ""
        reason = one_line(f"{exc.strerror or type(exc).__name__}{where}")
    else:  # a bug, not bad input: still one line, with the way to the traceback
        code = 1
        reason = one_line(f"internal error {type(exc).__name__}: {exc}") + \
            " (please report it; COSMOBENCH_DEBUG=1 shows the traceback)"
    if not reason:
        reason = f"{type(exc).__name__} (no details given)"
    elif reason.endswith(":"):
        reason += " (no details given)"
    return code, reason


def _check_paths(args) -> None:
    """Paths named on the command line that can be checked before any work."""
    from cosmobench.results import default_root
    root = default_root(args.root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory (runs and results.sqlite go in a directory)")
    for option in ("out", "output"):
        path = getattr(args, option, None)
        if path is not None and Path(path).is_dir():
            raise ConfigError(f"--{option} {path} is a directory: give a file name")


if __name__ == "__main__":
    sys.exit(main())
