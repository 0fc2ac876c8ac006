"""A ranking whose entries are searched for only when read (``LazyRanking``).

A live strategy pass ranks every pair to give the entry planner its fallbacks (the best pair may be
refused by a gate), yet usually enters the best one or nothing: taking only the first entry saves
the exact evaluation of the other pairs (book walks, fees), which sat on the path between a market
update and the entry orders. The entries are what the eager ranking of the same snapshot gives, in
the same order (``bot.scanner.iter_opportunities``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from bot.core.domain import Opportunity


class LazyRanking(Sequence[Opportunity]):
    """A read-only sequence over an iterator of opportunities, filled as far as it is read.

    Indexing, slicing (lazy too), iteration, truth, ``len`` and ``==`` (with any sequence) behave as
    on the list the iterator would give; ``len`` and negative indexes read it to the end."""

    __slots__ = ("_items", "_source")

    def __init__(self, source: Iterable[Opportunity]) -> None:
        self._items: list[Opportunity] = []
        self._source: Iterator[Opportunity] | None = iter(source)

    def _fill(self, count: int | None) -> None:
        """Read the source until ``count`` entries are held (None: to its end)."""
        source = self._source
        if source is None:
            return
        wanted = None if count is None else count - len(self._items)
        if wanted is not None and wanted <= 0:
            return
        before = len(self._items)
        self._items.extend(itertools.islice(source, wanted))
        if wanted is None or len(self._items) - before < wanted:
            self._source = None  # exhausted: the search state is released

    @overload
    def __getitem__(self, index: int) -> Opportunity: ...

    @overload
    def __getitem__(self, index: slice) -> LazyRanking: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.start, index.stop, index.step
            if any(v is not None and v < 0 for v in (start, stop)) or (step is not None and step < 1):
                self._fill(None)
                return LazyRanking(self._items[index])
            return LazyRanking(itertools.islice(iter(self), start, stop, step))
        self._fill(None if index < 0 else index + 1)
        return self._items[index]

    def __iter__(self) -> Iterator[Opportunity]:
        position = 0
        while True:
            if position >= len(self._items):
                self._fill(position + 1)
                if position >= len(self._items):
                    return
            yield self._items[position]
            position += 1

    def __len__(self) -> int:
        self._fill(None)
        return len(self._items)

    def __bool__(self) -> bool:
        self._fill(1)
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  (mutable contents, like a list)

    def __repr__(self) -> str:
        held = ", ".join(repr(item) for item in self._items)
        return f"LazyRanking([{held}{', ...' if self._source is not None else ''}])"
