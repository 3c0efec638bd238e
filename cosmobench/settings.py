"""Settings: every config key is declared once, as a dataclass field beside the code that owns it.

A setting is a field of a plain ``@dataclass`` whose default is a literal, usually written
with :func:`setting` to add its constraint, unit and help::

    @dataclass
    class LensSurvey:                                   # cosmobench/sim/lensing.py
        pixel_scale: float = setting(0.2, "positive float", unit="arcsec/px", help="pixel size")
        psf: str = setting("gaussian", ["gaussian", "moffat"], help="PSF profile")

Everything else is derived from these declarations: the schema that
:func:`cosmobench.config.resolve` validates against (defaults and constraints), the
registry's model lists, ``--print-config`` and the key tables of ``docs/tasks/*.md``
(:func:`markdown_table`). A field without an explicit constraint is checked against its
annotation (``int``, ``float``, ``str``, ``bool``, ``list[...]``, ``X | None``,
``Literal[...]``; syntax of constraints in :mod:`cosmobench.constraints`).

Reading a declaration never imports its module: :func:`declared` parses the module's source
with :mod:`ast` (so validating a config does not import torch). The rules that makes
necessary, checked for every registered class by ``tests/test_settings.py`` against the
runtime dataclass (:func:`runtime_declared`):

* defaults and :func:`setting` arguments are literals (numbers, strings, lists, tuples,
  ``None``) or names of module-level literal constants;
* a base class is defined in the same module or imported with ``from MODULE import NAME``;
* fields that are not settings use ``field(init=False)`` or a ``ClassVar`` annotation; a
  model's tuning search space is the ``ClassVar`` literal dict ``SEARCH_SPACE``
  (:func:`search_space`).

Written by hand: dataclass-based config libraries (Hydra's structured configs, pydantic)
import the module to read a class, which is what cheap validation must avoid.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cosmobench.errors import ConfigError


def setting(default: Any, check: Any = None, *, unit: str | None = None, help: str | None = None):
    """A dataclass field declaring one config key: its ``default`` (a literal), value
    constraint ``check`` (a :mod:`cosmobench.constraints` spec or a list of allowed values;
    ``None``: from the annotation), ``unit`` and one-line ``help``."""
    meta = {"check": check, "unit": unit, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=functools.partial(copy.deepcopy, default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    """One declared key: ``name``, literal ``default``, constraint spec ``check`` (``None``:
    the type of the default), ``unit``, ``help``, ``annotation`` (source text) and ``owner``
    (``"module:Class"`` of the declaring class)."""

    name: str
    default: Any
    check: Any
    unit: str | None
    help: str | None
    annotation: str
    owner: str


# --- the static reader ------------------------------------------------------------------

_SIMPLE = {"int": "int", "float": "float", "str": "str", "bool": "bool"}


def check_from_annotation(annotation: str) -> Any:
    """Constraint spec accepting the config values of a type annotation (source text), or
    ``None`` when it says nothing a config value can be checked against (e.g. ``Any``)."""
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    return _ann(node)


def _ann(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and node.value is None:
        return "null"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted annotation
        return check_from_annotation(node.value)
    if isinstance(node, ast.Name):
        return _SIMPLE.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _ann(node.left), _ann(node.right)
        if left is None or right is None:
            return None
        if isinstance(left, list) or isinstance(right, list):
            return None
        return f"{left} or {right}"
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        head, arg = node.value.id, node.slice
        if head == "Literal":
            values = arg.elts if isinstance(arg, ast.Tuple) else [arg]
            return [ast.literal_eval(v) for v in values]
        if head == "Optional":
            inner = _ann(arg)
            return None if inner is None or isinstance(inner, list) else f"{inner} or null"
        if head in ("list", "tuple"):
            item = arg.elts[0] if isinstance(arg, ast.Tuple) else arg
            inner = _ann(item)
            return "list[any]" if inner is None or isinstance(inner, list) else f"list[{inner}]"
    return None


@functools.lru_cache(maxsize=None)
def _module_source(module: str) -> tuple[Path, ast.Module]:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ConfigError(f"cannot find the source of module {module!r} (settings are read from .py files)")
    path = Path(spec.origin)
    return path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _resolve_module(module: str, level: int, name: str | None) -> str:
    if not level:
        return name or ""
    base = module.split(".")
    pkg = base[:-level] if not _is_package(module) else base[:len(base) - level + 1]
    return ".".join(pkg + ([name] if name else []))


def _is_package(module: str) -> bool:
    return _module_source(module)[0].name == "__init__.py"


_MISSING = object()


def _constant(module: str, name: str, seen: frozenset = frozenset()) -> Any:
    """The value of the module-level literal constant ``name`` of ``module`` (defined there or
    imported by name), or ``_MISSING``."""
    if (module, name) in seen:
        return _MISSING
    _, tree = _module_source(module)
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            try:
                return ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return _MISSING
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    try:
                        return _constant(_resolve_module(module, node.level, node.module), alias.name,
                                         seen | {(module, name)})
                    except (ConfigError, SyntaxError):
                        return _MISSING
    return _MISSING


def _literal(node: ast.AST, module: str, where: str) -> Any:
    value = _constant(module, node.id) if isinstance(node, ast.Name) else _MISSING
    if value is not _MISSING:
        value = copy.deepcopy(value)
    else:
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError) as exc:
            raise ValueError(f"{where}: a setting's default and arguments must be literals "
                             f"(got {ast.unparse(node)!r})") from exc
    return list(value) if isinstance(value, tuple) else value


def _locate(module: str, name: str) -> tuple[str, ast.ClassDef]:
    """The module and class node of ``name`` as seen from ``module`` (defined or imported there)."""
    _, tree = _module_source(module)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _locate(_resolve_module(module, node.level, node.module), alias.name)
    raise ValueError(f"class {name!r} is neither defined in nor imported by {module!r}")


def _is_setting_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setting"


@functools.lru_cache(maxsize=None)
def _declared(module: str, name: str) -> tuple[Setting, ...]:
    module, cls = _locate(module, name)
    owner = f"{module}:{name}"
    out: dict[str, Setting] = {}
    for base in reversed(cls.bases):  # dataclass order: later bases first, then the class itself
        if isinstance(base, ast.Name) and base.id not in ("object", "Generic"):
            out.update({s.name: s for s in _declared(module, base.id)})
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        annotation = ast.unparse(node.annotation)
        if annotation.startswith(("ClassVar", "typing.ClassVar")):
            continue
        key, where = node.target.id, f"{owner}.{node.target.id}"
        value = node.value
        if value is None:
            raise ValueError(f"{where}: a setting needs a default")
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "field":
            if any(k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                   for k in value.keywords):
                out.pop(key, None)
                continue
            raise ValueError(f"{where}: declare settings with setting(...), not field(...)")
        check = unit = help_ = None
        if _is_setting_call(value):
            args = [_literal(a, module, where) for a in value.args]
            kw = {k.arg: _literal(k.value, module, where) for k in value.keywords}
            default = args[0] if args else kw.pop("default")
            check = args[1] if len(args) > 1 else kw.get("check")
            unit, help_ = kw.get("unit"), kw.get("help")
        else:
            default = _literal(value, module, where)
        if check is None:
            check = check_from_annotation(annotation)
        out[key] = Setting(key, default, check, unit, help_, annotation, owner)
    return tuple(out.values())


def declared(ref: str) -> dict[str, Setting]:
    """The settings of the dataclass ``"module:Class"`` (with those of its bases), read from
    its source without importing it. ``{}`` for ``ref=None``."""
    if ref is None:
        return {}
    module, sep, name = ref.partition(":")
    if not sep:
        raise ValueError(f"{ref!r} is not of the form 'module:Class'")
    return {s.name: s for s in _declared(module, name)}


def runtime_declared(cls: type) -> dict[str, Setting]:
    """The settings of an imported dataclass, read through :mod:`dataclasses` (the reference
    that :func:`declared` must agree with)."""
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        annotation = f.type if isinstance(f.type, str) else \
            f.type.__name__ if isinstance(f.type, type) else str(f.type).replace("typing.", "")
        check = f.metadata.get("check")
        if check is None:
            check = check_from_annotation(annotation)
        owner = next(f"{c.__module__}:{c.__qualname__}" for c in cls.__mro__
                     if f.name in c.__dict__.get("__annotations__", {}))
        out[f.name] = Setting(f.name, list(default) if isinstance(default, tuple) else default, check,
                              f.metadata.get("unit"), f.metadata.get("help"), annotation, owner)
    return out


def defaults(ref: str | None) -> dict[str, Any]:
    """``{key: default}`` of a declared class."""
    return {k: copy.deepcopy(s.default) for k, s in declared(ref).items()}


def checks(ref: str | None, prefix: str) -> dict[str, Any]:
    """``{prefix.key: constraint spec}`` of a declared class (keys without a constraint left out)."""
    return {f"{prefix}.{k}": s.check for k, s in declared(ref).items() if s.check is not None}


def build(cls: type, node: Mapping[str, Any], **extra):
    """An instance of the settings dataclass ``cls`` from a resolved config node (keys the
    class does not declare are ignored: a node may hold several owners' settings)."""
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in extra]
    missing = [k for k in names if k not in node]
    if missing:
        raise ConfigError(f"{cls.__qualname__} needs the setting {missing[0]!r}, which the config node lacks "
                          f"(a config resolved for another task or model?)")
    return cls(**{k: node[k] for k in names}, **extra)


def search_space(ref: str | None) -> dict[str, list]:
    """The tuning search space a settings class declares (or inherits), read from source:
    a ``ClassVar`` literal dict ``SEARCH_SPACE = {"optim.lr": ["log", 1e-4, 1e-2],
    "model.base_channels": ["choice", [8, 16, 32]]}`` (dotted config keys; kinds ``log``,
    ``float``, ``int`` with bounds, ``choice`` with a list). ``{}`` without one (or ``ref=None``).
    Used by :mod:`cosmobench.tune`, which checks every key and value against the schema."""
    if ref is None:
        return {}
    module, sep, name = ref.partition(":")
    if not sep:
        raise ValueError(f"{ref!r} is not of the form 'module:Class'")
    return _search_space(module, name)


@functools.lru_cache(maxsize=None)
def _search_space(module: str, name: str) -> dict[str, list]:
    """The class's own ``SEARCH_SPACE`` (a ``ClassVar`` annotation, or a plain assignment in a
    subclass that replaces an inherited one: a class may annotate it only once in its MRO),
    else that of its first base that has one, as Python's attribute lookup finds it."""
    module, cls = _locate(module, name)
    for node in cls.body:
        target = node.target if isinstance(node, ast.AnnAssign) else \
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id == "SEARCH_SPACE" and node.value is not None:
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr == "SEARCH_SPACE" and isinstance(value.value, ast.Name):
                return _search_space(module, value.value.id)  # SEARCH_SPACE = Base.SEARCH_SPACE
            value = _literal(value, module, f"{module}:{name}.SEARCH_SPACE")
            if not isinstance(value, dict):
                raise ValueError(f"{module}:{name}.SEARCH_SPACE must be a dict literal")
            return copy.deepcopy(value)
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id not in ("object", "Generic"):
            found = _search_space(module, base.id)
            if found:
                return found
    return {}


def markdown_table(rows: list[tuple[str, Setting]]) -> str:
    """A Markdown table of ``(dotted key, setting)`` rows: key, default, unit, constraint, help."""
    def fmt(v):
        return "null" if v is None else str(v).replace("|", "\\|")

    def check_text(c):
        if c is None:
            return ""
        if isinstance(c, list):
            return "one of " + ", ".join(fmt(v) for v in c)
        return str(c).replace("|", "\\|")

    lines = ["| key | default | unit | allowed | meaning |", "|---|---|---|---|---|"]
    for key, s in rows:
        lines.append(f"| `{key}` | `{fmt(s.default)}` | {s.unit or ''} | {check_text(s.check)} | {s.help or ''} |")
    return "\n".join(lines)


__all__ = ["setting", "Setting", "declared", "runtime_declared", "defaults", "checks", "build",
           "check_from_annotation", "markdown_table", "search_space"]
