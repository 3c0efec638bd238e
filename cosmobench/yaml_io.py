"""Safe, bounded YAML for configs and suites: PyYAML's safe loader with YAML 1.2 floats
(``1e-3`` is a number), at most :data:`MAX_YAML_BYTES` of UTF-8 text and
:data:`MAX_YAML_NODES` nodes once aliases are expanded (an alias bomb is an error, not a
hang), plain data types only; every problem is a one-line ConfigError."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cosmobench.errors import ConfigError

#: YAML bounds: bytes of text, and nodes after alias expansion (a real config has < 1000)
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a (multi-line) PyYAML error: the problem and where."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _expanded_size(node: yaml.Node, memo: dict, active: set, what: str) -> int:
    """Number of nodes of the document once aliases are expanded (memoised: linear time)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ConfigError(f"{what} has a recursive YAML alias")
    active.add(key)
    n = 1
    if isinstance(node, yaml.SequenceNode):
        n += sum(_expanded_size(c, memo, active, what) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n += sum(_expanded_size(k, memo, active, what) + _expanded_size(v, memo, active, what)
                 for k, v in node.value)
    active.discard(key)
    if n > MAX_YAML_NODES:
        raise ConfigError(f"{what} expands to more than {MAX_YAML_NODES} YAML nodes (nested aliases?)")
    memo[key] = n
    return n


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2 floats: ``1e-3`` is a number, not a string."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml_text(text: str, what: str) -> Any:
    """Safe, bounded YAML: at most :data:`MAX_YAML_BYTES` of text and :data:`MAX_YAML_NODES`
    nodes after alias expansion; plain data types only (no Python tags). ConfigError otherwise."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{what} is larger than {MAX_YAML_BYTES} bytes")
    try:
        node = yaml.compose(text, Loader=_Loader)
        if node is None:
            return None
        _expanded_size(node, {}, set(), what)
        loader = _Loader("")
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply") from None


def load_yaml(path: str | Path) -> dict:
    """A YAML file holding a mapping (UTF-8 text, bounded: see :func:`load_yaml_text`)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"config file {p} is not a regular file")
    try:
        if p.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"config file {p} is larger than {MAX_YAML_BYTES} bytes")
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start})") from None
    data = load_yaml_text(text, f"config file {p}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys, not {type(data).__name__}")
    return data


