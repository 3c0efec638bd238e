"""The key tables of the documentation, generated from the declared settings (so they cannot drift).

``python -m cosmobench.docgen`` rewrites the text between ``<!-- settings:begin -->`` and
``<!-- settings:end -->`` in ``docs/tasks/<task>.md`` (the task's ``data``, ``eval`` and
``model`` keys) and in ``docs/guide.md`` (the keys every task has); ``--check`` exits 1 if a
file is out of date. The default shown is the task's: the declared default with the task's
``experiments/<task>/defaults.yaml`` layer (for ``model.*``, also ``<model>.yaml``) applied.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cosmobench import config as C
from cosmobench.registry import get_task, list_tasks
from cosmobench.settings import Setting, markdown_table

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _value(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree


def _rows(settings: dict[str, Setting], tree: dict, prefix: str) -> list[tuple[str, Setting]]:
    out = []
    for key, s in sorted(settings.items(), key=lambda kv: kv[0] != f"{prefix}source"):  # the source first
        if key.startswith(prefix):
            v = _value(tree, key)
            out.append((key, s if v == s.default else Setting(s.name, v, s.check, s.unit, s.help, s.annotation,
                                                               s.owner)))
    return out


def task_section(task: str) -> str:
    """Markdown: the ``data``/``eval`` keys, then each model's ``model`` keys, of one task."""
    spec = get_task(task)
    first = spec.model_or_default(None)
    settings = C.declared_settings(spec, first)
    base = C.resolve(task, first)
    parts = ["Generated from the code by `python -m cosmobench.docgen`; defaults as this task sets them. "
             "Keys every task has (`seed`, `optim.*`, `trainer.*`, ...) are in [the guide](../guide.md#settings).",
             "", "#### data", "", markdown_table(_rows(settings, base, "data."))]
    if spec.evaluation:
        parts += ["", "#### eval (the metric protocol)", "", markdown_table(_rows(settings, base, "eval."))]
    for model in spec.models:
        rows = _rows(C.declared_settings(spec, model), C.resolve(task, model), "model.")
        parts += ["", f"#### model `{model}`", ""]
        parts.append(markdown_table(rows) if rows else "No settings.")
    return "\n".join(parts)


def common_section() -> str:
    """Markdown: the keys every task has (run, optim, early stopping), declared defaults."""
    rows = []
    for node, ref in C.COMMON_SETTINGS.items():
        from cosmobench.settings import declared
        rows += [(f"{node}.{k}" if node else k, s) for k, s in declared(ref).items()]
    return ("Generated from the code by `python -m cosmobench.docgen`. Every `pl.Trainer` argument a "
            "config can express is also a key (`trainer.<argument>`, Lightning's default unless "
            f"cosmobench departs from it: {', '.join(f'`{k}={v}`' for k, v in C.TRAINER_DEFAULTS.items())}).\n\n"
            + markdown_table(rows))


def _replace(text: str, body: str, path: Path) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def generated() -> dict[Path, str]:
    """Path -> the file's text with its settings section generated."""
    out = {}
    targets = [(DOCS / "guide.md", common_section())]
    targets += [(DOCS / "tasks" / f"{spec.name}.md", task_section(spec.name))
                for spec in list_tasks() if (DOCS / "tasks" / f"{spec.name}.md").is_file()]
    for path, body in targets:
        out[path] = _replace(path.read_text(encoding="utf-8"), body, path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosmobench.docgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated section is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run python -m cosmobench.docgen): " + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
