"""numpy-2 compatibility shim for e2cnn 0.2.3 (docs/ARCHITECTURE.md, "Dependencies").
Import e2cnn through this module.

e2cnn 0.2.3 uses two numpy APIs removed in numpy 2:

* ``np.float`` (``e2cnn/group/groups/o2group.py``) -> we add ``np.float = float`` if missing;
* ``ndarray.tostring()`` in the ``__hash__`` methods of the kernel-basis classes in
  ``e2cnn/kernels/irreps_basis.py`` (used by ``FlipRot2dOnR2`` and continuous groups)
  -> we replace every such ``__hash__`` with an equivalent one built on ``tobytes()``;
* ``np.array(x, copy=False)`` in ``e2cnn/kernels/utils.py`` (numpy 2 raises when a copy is
  needed, e.g. for a Python float ``gamma`` when building trivial->regular D_N kernels)
  -> that module's ``np`` is replaced by a proxy whose ``array(..., copy=False)`` is
  ``np.asarray`` (the numpy-1 meaning: copy only if needed). Everything else is numpy.

Nothing is forked or vendored: the installed package is patched in memory, idempotently.
Usage::

    from cosmobench.nn.e2cnn_compat import e2cnn   # patched package
    from e2cnn import gspaces, nn as enn             # also fine after the import above
"""
from __future__ import annotations

import inspect

import numpy as np

if not hasattr(np, "float"):  # removed in numpy 1.24; e2cnn's O(2) code still uses it
    np.float = float  # type: ignore[attr-defined]

import e2cnn  # noqa: E402
import e2cnn.kernels.irreps_basis as _irreps_basis  # noqa: E402
import e2cnn.kernels.utils as _kernel_utils  # noqa: E402


class _NumpyCopyFalseCompat:
    """Stand-in for the ``numpy`` module inside ``e2cnn.kernels.utils``."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def array(obj, *args, copy=True, **kwargs):
        if copy is False:  # numpy-1 semantics: avoid a copy when possible
            return np.asarray(obj, *args, **kwargs)
        return np.array(obj, *args, copy=copy, **kwargs)


def _bytes_or_value(value):
    """Hashable stand-in for an attribute: raw bytes for arrays, the value otherwise."""
    if isinstance(value, np.ndarray):
        return value.tobytes()
    return value


def _irrep_basis_hash(self) -> int:
    """Same hash as e2cnn's ``__hash__`` with ``tobytes()`` in place of ``tostring()``."""
    return (hash(self.in_irrep) + hash(self.out_irrep) + hash(_bytes_or_value(self.mu))
            + hash(_bytes_or_value(self.gamma)))


def _uses_tostring(func) -> bool:
    try:
        return "tostring" in inspect.getsource(func)
    except (OSError, TypeError):  # no source available: patch to be safe
        return True


def apply() -> list[str]:
    """Patch e2cnn in place (idempotent). Returns the names of the classes patched this call."""
    patched = []
    if not isinstance(_kernel_utils.np, _NumpyCopyFalseCompat):
        _kernel_utils.np = _NumpyCopyFalseCompat()
        patched.append("kernels.utils.np")
    for name, cls in vars(_irreps_basis).items():
        if not (inspect.isclass(cls) and cls.__module__ == _irreps_basis.__name__):
            continue
        own_hash = cls.__dict__.get("__hash__")
        if own_hash is None or own_hash is _irrep_basis_hash:
            continue
        if _uses_tostring(own_hash):
            cls.__hash__ = _irrep_basis_hash
            patched.append(name)
    return patched


PATCHED = apply()

__all__ = ["e2cnn", "apply", "PATCHED"]
