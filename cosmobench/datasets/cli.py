"""``cosmobench data list | info NAME | fetch NAME | verify [NAME ...] | path NAME``.

Hook into ``cosmobench/cli.py`` (two lines)::

    from cosmobench.datasets import cli as data_cli      # build_parser(), after `sub = ...`
    data_cli.add_subparser(sub)                           # and: COMMANDS["data"] = data_cli.run

:func:`run` returns the exit code and raises ``ConfigError``/``InputError`` (one line, exit 2)
for the caller's error handler; :func:`main` is the stand-alone entry point
(``python -m cosmobench.datasets``) with the same one-line ``cosmobench: error: ...`` format.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from cosmobench.datasets import catalog
from cosmobench.datasets import download as fetching
from cosmobench.errors import ConfigError, CosmobenchError, InputError

ACTIONS = ("list", "info", "fetch", "verify", "path")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like the rest of the CLI
        raise ConfigError(f"{self.prog}: {message}")


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add ``data`` and its actions to an argparse ``subparsers`` object; returns the parser."""
    p = subparsers.add_parser("data", help="public data sets: list, info, fetch (verified), verify, path",
                              description="Named public data sets, downloaded with pooch, checked against "
                                          "their sha256, cached under $COSMOBENCH_DATA (see docs/datasets.md).")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="{" + ",".join(ACTIONS) + "}")
    s = sub.add_parser("list", help="name, task, size, licence and cache state of every data set")
    s.add_argument("--task", help="only the data sets of this task")
    s = sub.add_parser("info", help="description, licence, citation, loader keys, files and hash provenance")
    s.add_argument("name")
    s = sub.add_parser("fetch", help="download the missing files of a data set, verified (mirrors on failure)")
    s.add_argument("name")
    s.add_argument("--force", action="store_true", help="download every file again (replaced only once checked)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = sub.add_parser("verify", help="re-hash the cached files (default: every cached data set)")
    s.add_argument("names", nargs="*", metavar="NAME")
    s = sub.add_parser("path", help="the cached data set's directory (offline; exit 2 if not fetched)")
    s.add_argument("name")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--file", help="print the path of this file of the data set instead")
    g.add_argument("--loader", action="store_true", help="print the loader keys with cached paths (JSON)")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the ``data`` action of parsed ``args``; returns the exit code."""
    return {"list": _list, "info": _info, "fetch": _fetch, "verify": _verify, "path": _path}[args.data_command](args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="cosmobench")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_subparser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["data"]:
        argv = ["data", *argv]
    try:
        return run(parser.parse_args(argv))
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except CosmobenchError as exc:
        print(f"cosmobench: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code


# --------------------------------------------------------------------------- formatting

def human_size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"


def size_text(ds: catalog.Dataset) -> str:
    if ds.size is not None:
        return human_size(ds.size) if ds.files else "-"
    unknown = [f for f in ds.files if f.size is None and f.approx_size is None]
    if unknown:
        known = sum(f.size or f.approx_size or 0 for f in ds.files)
        return f"{human_size(known)} + {len(unknown)} of ?"
    return "~" + human_size(ds.approx_size)


def licence_short(ds: catalog.Dataset) -> str:
    short = ds.licence.split(" (", 1)[0].split(";", 1)[0]
    return short + (" [restricted]" if ds.restriction else "")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# --------------------------------------------------------------------------- actions

def _list(args) -> int:
    sets = [d for d in catalog.DATASETS.values() if not args.task or d.task == args.task]
    if args.task and not sets:
        raise ConfigError(f"no data set for task {args.task!r} (tasks with data sets: "
                          f"{', '.join(sorted({d.task for d in catalog.DATASETS.values()}))})")
    rows = [["name", "task", "kind", "files", "size", "licence", "citation", "cached"]]
    for d in sorted(sets, key=lambda d: (catalog.TASKS.index(d.task) if d.task in catalog.TASKS else 99, d.name)):
        state = "n/a" if not d.files else fetching.cache_state(d)
        rows.append([d.name, d.task, d.kind, str(len(d.files)), size_text(d), licence_short(d), d.citation_key, state])
    print(_table(rows))
    print(f"\ncache: {fetching.data_home()} (${fetching.ENV_VAR} to change); "
          "`cosmobench data info NAME` for licence, citation and hash provenance")
    return 0


def _info(args) -> int:
    d = catalog.get_dataset(args.name)
    out = [f"{d.name}  ({d.task}, {d.kind})", f"  {d.description}"]
    if d.homepage:
        out.append(f"  homepage: {d.homepage}")
    out.append(f"licence: {d.licence}  <{d.licence_url}>")
    if d.restriction:
        out.append(f"  RESTRICTS USE: {d.restriction}")
    out.append(f"loader keys (data.*): {json.dumps(dict(d.loader))}")
    if d.subset:
        out.append(f"subset (data.subset): n={d.subset.n}, stratified by {d.subset.stratify or '-'}"
                   + (f"; {d.subset.note}" if d.subset.note else ""))
    if d.notes:
        out.append(f"notes: {d.notes}")
    state = "n/a (nothing to download)" if not d.files else fetching.cache_state(d)
    out.append(f"cache: {fetching.dataset_dir(d)} ({state})")
    out.append(f"files ({len(d.files)}, {size_text(d)}):")
    for f in d.files:
        size = f"{f.size} bytes" if f.size is not None else (f"~{human_size(f.approx_size)} (publisher's rounding)"
                                                              if f.approx_size else "size unknown")
        out.append(f"  {f.name}  {size}")
        out.append(f"    url: {f.urls[0]}")
        out.extend(f"    mirror: {u}" for u in f.urls[1:])
        if f.sha256:
            out.append(f"    sha256: {f.sha256}")
        if f.git_blob:
            out.append(f"    git blob: {f.git_blob}")
        out.append(f"    hash provenance: {f.provenance}")
    out.append(f"citation ({d.citation_key}):")
    out.extend("  " + line for line in d.citation.splitlines())
    print("\n".join(out))
    return 0


def _fetch(args) -> int:
    d = catalog.get_dataset(args.name)
    print(f"{d.name}: licence {d.licence}")
    if d.restriction:
        print(f"NOTE: the licence of {d.name} restricts use: {d.restriction}")
    if not d.files:
        print(f"{d.name}: nothing to download ({d.kind} data set, generated locally: `cosmobench data info {d.name}`)")
        return 0
    report = fetching.fetch(d, force=args.force, progress=not args.no_progress)
    for name, digest in report.unverified:
        print(f"UNVERIFIED: {name} has no published hash; sha256 of the fetched file {digest} "
              "(recorded: `cosmobench data verify` checks against it)")
    checks = sorted({d.file(n).check for n in report.downloaded})
    print(f"{d.name}: {len(report.downloaded)} file(s) fetched"
          + (f" and checked ({', '.join(checks)})" if report.downloaded else "")
          + (f", {len(report.already)} already cached" if report.already else "")
          + f" -> {report.directory}")
    return 0


def _verify(args) -> int:
    results = fetching.verify(args.names or None)
    if not results:
        print(f"nothing cached under {fetching.data_home()}")
        return 0
    for r in results:
        print(f"{r.status:10s} {r.dataset}/{r.file}" + (f": {r.detail}" if r.detail and r.status != "ok" else ""))
    bad = [r for r in results if r.status == "MISMATCH"]
    n_ok = sum(r.status == "ok" for r in results)
    print(f"{n_ok} ok, {len(bad)} mismatching, {sum(r.status == 'missing' for r in results)} missing")
    if bad:
        names = sorted({r.dataset for r in bad})
        raise InputError(f"{len(bad)} cached file(s) do not match their hash ({bad[0].dataset}/{bad[0].file}: "
                         f"{bad[0].detail}): re-fetch with "
                         + ", ".join(f"`cosmobench data fetch {n} --force`" for n in names))
    return 0


def _path(args) -> int:
    d = catalog.get_dataset(args.name)
    if not d.files:
        raise InputError(f"data set {d.name!r} has no files ({d.kind}: generated locally, see "
                         f"`cosmobench data info {d.name}`)")
    root = fetching.require(d)
    if args.file:
        print(fetching.local_path(d, d.file(args.file)))
    elif args.loader:
        print(json.dumps(fetching.loader_config(d), indent=1))
    else:
        print(root)
    return 0
