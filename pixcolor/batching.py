"""Batches of images of any sizes: the images of one shape go through a network together."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence


def batches_by_shape(shapes: Sequence[Hashable], batch_size: int | None = None
                     ) -> Iterator[tuple[Hashable, list[int]]]:
    """Indices into ``shapes`` grouped by equal shape (groups in order of first appearance,
    indices in input order), in chunks of at most ``batch_size`` (None: whole groups).

    Yields:
        (shape, indices) per batch.
    """
    groups: dict[Hashable, list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(i)
    for shape, idxs in groups.items():
        step = batch_size or len(idxs)
        for start in range(0, len(idxs), step):
            yield shape, idxs[start:start + step]
