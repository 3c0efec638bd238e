"""Disk cache of an external renderer's samples (lenstronomy, GalSim): rendering takes seconds
per sample, so samples are stored in ``block_<b>.npz`` files of ``block`` samples under a folder
keyed by everything they depend on (the caller's cache key). A block is extended when a larger
``n`` asks for more of it, and written through :func:`cosmobench.io.atomic_path` (concurrent
renderers write the same bytes; the last rename wins). Written by hand: pooch caches downloads,
not computed arrays."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cosmobench.io import atomic_path

Arrays = dict[str, np.ndarray]


def cached_blocks(render: Callable[[range], Arrays], n: int, folder: Path | None, block: int, *,
                  count: Callable[[Arrays], int], head: Callable[[Arrays, int], Arrays],
                  concat: Callable[[list[Arrays]], Arrays], desc: str, progress=None) -> Arrays:
    """Samples ``0 .. n-1``: ``render(indices)`` gives the arrays of those samples, ``count``
    how many samples a block's arrays hold, ``head(arrays, k)`` their first ``k`` samples,
    ``concat`` joins consecutive parts; ``folder=None``: no cache. ``progress(iterable, total,
    desc)`` wraps the block loop."""
    blocks = range(math.ceil(n / block))
    if progress is not None:
        blocks = progress(blocks, len(blocks), desc)
    parts = []
    for b in blocks:
        lo, hi = b * block, min((b + 1) * block, n)
        path = folder / f"block_{b:05d}.npz" if folder is not None else None
        part = None
        if path is not None and path.is_file():
            with np.load(path) as f:
                part = {k: f[k] for k in f.files}
        have = count(part) if part is not None else 0
        if have < hi - lo:  # render what the cached block lacks
            tail = render(range(lo + have, hi))
            part = tail if part is None else concat([part, tail])
            if path is not None:
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                    np.savez(fh, **part)
        parts.append(head(part, hi - lo))
    return concat(parts) if parts else render(range(0))


__all__ = ["cached_blocks"]
