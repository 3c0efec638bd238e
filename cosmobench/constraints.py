"""Value constraints of config keys: a small declarative language, checked at resolve time.

A setting declares its constraint beside its default (``setting(0.2, "positive float")``,
:mod:`cosmobench.settings`); the ``trainer.*`` ones are derived from the annotations of
``pytorch_lightning.Trainer.__init__``. :func:`cosmobench.config.resolve`
checks every value of every layer against them, so an out-of-range value is a one-line
``ConfigError`` (exit 2) before any constructor runs or any file is written.

A constraint is either a list/tuple of allowed values (``["sim", "catalog"]``; ``None``
may be one of them) or a string. Strings, alternatives joined by `` or ``:

=====================================  ==============================================
``int`` ``float`` ``number`` ``str``    the type (``float``/``number`` accept ints;
``bool``                                ``int`` rejects bools)
``int >= 1``, ``float > 0``,            a bounded number (``<``, ``<=``, ``>``, ``>=``)
``0 <= float < 1``
``positive int``                        ``int >= 1``
``non-negative int``                    ``int >= 0``
``positive float``                      ``float > 0``
``non-negative float``                  ``float >= 0``
``probability``                         ``0 <= float <= 1``
``one of a, b, c``                      one of these strings
``str matching REGEX``                  a string that fully matches ``REGEX``
``list[SPEC]``, ``nonempty list[SPEC]``  a list whose items all satisfy ``SPEC``
``null``                                ``None`` (a constraint without it rejects ``None``)
``any``                                 anything
=====================================  ==============================================

Examples: ``"positive int"``, ``"probability"``, ``"int >= 1 or null"``,
``"nonempty list[positive int]"``, ``"str matching [CD][1-9][0-9]*"``.
Independently of constraints, every float anywhere in a config must be finite.
Written by hand: no library validates config values against such short specs without
importing the module that declares them.
"""
from __future__ import annotations

import math
import re
from typing import Any

_ALIASES = {
    "positive int": "int >= 1",
    "non-negative int": "int >= 0",
    "positive float": "float > 0",
    "non-negative float": "float >= 0",
    "probability": "0 <= float <= 1",
}

_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
_RANGE = re.compile(rf"^(?:(?P<lo>{_NUM})\s*(?P<lop><=|<)\s*)?(?P<type>int|float|number|str|bool)"
                    rf"(?:\s*(?P<rop>>=|>|<=|<)\s*(?P<rv>{_NUM}))?$")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Constraint:
    """A check of one value. ``text`` describes the accepted values for error messages."""

    text = "any value"

    def ok(self, value: Any) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<constraint {self.text}>"


class Kind(Constraint):
    """A typed value with optional bounds."""

    def __init__(self, kind: str, lo: float | None = None, lo_incl: bool = True,
                 hi: float | None = None, hi_incl: bool = True, text: str | None = None):
        self.kind, self.lo, self.lo_incl, self.hi, self.hi_incl = kind, lo, lo_incl, hi, hi_incl
        self.text = text or kind

    def ok(self, value: Any) -> bool:
        if self.kind == "int":
            good = is_int(value)
        elif self.kind in ("float", "number"):
            good = is_number(value)
        elif self.kind == "str":
            good = isinstance(value, str)
        else:
            good = isinstance(value, bool)
        if not good:
            return False
        if self.lo is not None and not (value >= self.lo if self.lo_incl else value > self.lo):
            return False
        if self.hi is not None and not (value <= self.hi if self.hi_incl else value < self.hi):
            return False
        return True


class OneOf(Constraint):
    def __init__(self, values):
        self.values = tuple(values)
        self.text = "one of " + ", ".join("null" if v is None else str(v) for v in self.values)

    def ok(self, value: Any) -> bool:
        # equal value *and* type: True is not 1, 16.0 is not 16
        return any(value == v and type(value) is type(v) for v in self.values)


class Match(Constraint):
    def __init__(self, pattern: str):
        self.regex = re.compile(pattern)
        self.text = f"a string matching {pattern}"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


class ListOf(Constraint):
    def __init__(self, item: Constraint, nonempty: bool = False):
        self.item, self.nonempty = item, nonempty
        self.text = f"{'a non-empty' if nonempty else 'a'} list of ({item.text})"

    def ok(self, value: Any) -> bool:
        return isinstance(value, list) and (bool(value) or not self.nonempty) and all(self.item.ok(v) for v in value)


class DictOf(Constraint):
    def __init__(self, key: Constraint, value: Constraint):
        self.key, self.value = key, value
        self.text = f"a mapping ({key.text}) -> ({value.text})"

    def ok(self, value: Any) -> bool:
        return isinstance(value, dict) and all(self.key.ok(k) and self.value.ok(v) for k, v in value.items())


class Null(Constraint):
    text = "null"

    def ok(self, value: Any) -> bool:
        return value is None


class AnyOf(Constraint):
    def __init__(self, alternatives: list[Constraint]):
        self.alternatives = alternatives
        self.text = " or ".join(a.text for a in alternatives)

    def ok(self, value: Any) -> bool:
        return any(a.ok(value) for a in self.alternatives)


def _split_or(spec: str) -> list[str]:
    """Split at top-level `` or `` (not inside ``[...]``)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(spec):
        c = spec[i]
        depth += (c == "[") - (c == "]")
        if depth == 0 and spec.startswith(" or ", i):
            parts.append(spec[start:i])
            i += 4
            start = i
            continue
        i += 1
    parts.append(spec[start:])
    return [p.strip() for p in parts]


def _parse_one(spec: str) -> Constraint:
    spec = _ALIASES.get(spec, spec)
    if spec == "null":
        return Null()
    if spec == "any":
        return Constraint()
    if spec.startswith("one of "):
        return OneOf(v.strip() for v in spec[len("one of "):].split(","))
    if spec.startswith("str matching "):
        return Match(spec[len("str matching "):].strip())
    for prefix, nonempty in (("nonempty list[", True), ("list[", False)):
        if spec.startswith(prefix) and spec.endswith("]"):
            return ListOf(parse(spec[len(prefix):-1]), nonempty=nonempty)
    m = _RANGE.match(spec)
    if m:
        kind = m["type"]
        lo = hi = None
        lo_incl = hi_incl = True
        if m["lo"] is not None:
            lo, lo_incl = float(m["lo"]), m["lop"] == "<="
        if m["rop"] is not None:
            v = float(m["rv"])
            if m["rop"] in (">", ">="):
                if lo is not None:
                    raise ValueError(f"constraint {spec!r}: two lower bounds")
                lo, lo_incl = v, m["rop"] == ">="
            else:
                hi, hi_incl = v, m["rop"] == "<="
        if kind in ("str", "bool") and (lo is not None or hi is not None):
            raise ValueError(f"constraint {spec!r}: only numbers have bounds")
        return Kind(kind, lo, lo_incl, hi, hi_incl, text=spec)
    raise ValueError(f"cannot parse constraint {spec!r} (see cosmobench/constraints.py for the syntax)")


def parse(spec: Any) -> Constraint:
    """Constraint from a spec string, a list/tuple of allowed values, or a Constraint.
    Raises ValueError for a spec that does not parse (a programming error in a registration)."""
    if isinstance(spec, Constraint):
        return spec
    if isinstance(spec, (list, tuple)):
        return OneOf(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a constraint is a non-empty string or a list of values, not {spec!r}")
    alts = [_parse_one(p) for p in _split_or(spec.strip())]
    return alts[0] if len(alts) == 1 else AnyOf(alts)


def parse_all(specs: dict[str, Any] | None, where: str) -> dict[str, Constraint]:
    """``{dotted key: spec}`` -> ``{dotted key: Constraint}``; errors name ``where``."""
    out = {}
    for key, spec in (specs or {}).items():
        try:
            out[key] = parse(spec)
        except ValueError as exc:
            raise ValueError(f"{where}: constraint of {key!r}: {exc}") from None
    return out


def from_annotation(ann: Any) -> Constraint | None:
    """Constraint accepting the config-representable values of a type annotation
    (``Union``/``Optional``/``Literal``/``list``/``Iterable``/``dict`` of ``int``/``float``/
    ``str``/``bool``); ``None`` when no config value can express it (Python objects)."""
    import collections.abc
    import types
    import typing

    if ann is type(None) or ann is None:
        return Null()
    if ann in (int, float, str, bool):
        return Kind(ann.__name__)
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return OneOf(args)
    if origin in (typing.Union, types.UnionType):
        alts = [c for c in (from_annotation(a) for a in args) if c is not None]
        if not alts or all(isinstance(a, Null) for a in alts):
            return None
        choices = [v for a in alts if isinstance(a, OneOf) for v in a.values]
        if choices:  # Literal[16, 32] | Literal["16-mixed", ...]: one list of choices
            alts = [OneOf(dict.fromkeys(choices))] + [a for a in alts if not isinstance(a, OneOf)]
        return alts[0] if len(alts) == 1 else AnyOf(alts)
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence):
        item = from_annotation(args[0]) if args else Constraint()
        return ListOf(item) if item is not None else None
    if origin in (dict, collections.abc.Mapping):
        k, v = (from_annotation(a) for a in args) if args else (Constraint(), Constraint())
        return DictOf(k, v) if k is not None and v is not None else None
    return None


def non_finite(value: Any) -> bool:
    """Whether ``value`` is or contains (in lists/dicts) a NaN or infinite float."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    return False


def to_json(c: Constraint) -> Any:
    """A JSON-able description of a constraint, read back by :func:`from_json` (used to cache
    the ``trainer.*`` constraints derived from Lightning's annotations)."""
    if isinstance(c, Kind):
        return {"kind": c.kind, "lo": c.lo, "lo_incl": c.lo_incl, "hi": c.hi, "hi_incl": c.hi_incl, "text": c.text}
    if isinstance(c, OneOf):
        return {"one_of": list(c.values)}
    if isinstance(c, Match):
        return {"match": c.regex.pattern}
    if isinstance(c, ListOf):
        return {"list": to_json(c.item), "nonempty": c.nonempty}
    if isinstance(c, DictOf):
        return {"dict": [to_json(c.key), to_json(c.value)]}
    if isinstance(c, Null):
        return {"null": True}
    if isinstance(c, AnyOf):
        return {"any_of": [to_json(a) for a in c.alternatives]}
    return {"any": True}


def from_json(d: dict) -> Constraint:
    """The constraint described by :func:`to_json`."""
    if "kind" in d:
        return Kind(d["kind"], d["lo"], d["lo_incl"], d["hi"], d["hi_incl"], text=d["text"])
    if "one_of" in d:
        return OneOf(d["one_of"])
    if "match" in d:
        return Match(d["match"])
    if "list" in d:
        return ListOf(from_json(d["list"]), nonempty=d["nonempty"])
    if "dict" in d:
        return DictOf(*(from_json(x) for x in d["dict"]))
    if "null" in d:
        return Null()
    if "any_of" in d:
        return AnyOf([from_json(a) for a in d["any_of"]])
    return Constraint()
