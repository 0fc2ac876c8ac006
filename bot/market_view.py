"""Immutable market snapshots taken from a MarketSource (the sim market, a replay or live feeds).

Books and instruments are looked at lazily: a snapshot of a feed that can answer one book at a
time (``MarketFeed.book``) builds and validates a book only when something reads it (the ranker's
few candidate legs, an order's price bound, a held position's exit cost), once per snapshot. With
500 symbols on 10 venues a strategy pass reads a few dozen of the 5,000 books.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from bot.core.domain import MarketSnapshot
from bot.core.ports import MarketSource

K = tuple[str, str]
V = TypeVar("V")
_MISSING = object()


class LazyMapping(Mapping[K, V], Generic[V]):
    """A read-only (venue, symbol) -> value mapping whose values are fetched one at a time on first read.

    ``fetch(venue, symbol)`` answers one key (None, or an unknown-key ``KeyError``, means absent);
    each answer is kept for the life of the mapping, so a snapshot stays one consistent view.
    ``probe_keys`` are the keys tried first when only emptiness is asked (``bool``), so an
    ``if snapshot.books`` reads one book, not all. Iteration and ``len`` need every key: they
    materialise the whole mapping once through ``fetch_all`` (never on the hot path).
    """

    __slots__ = ("_all", "_cache", "_fetch", "_fetch_all", "_probe_keys")

    def __init__(self, fetch: Callable[[str, str], V | None], fetch_all: Callable[[], dict[K, V]],
                 probe_keys: Callable[[], list[K]] | None = None) -> None:
        self._fetch = fetch
        self._fetch_all = fetch_all
        self._probe_keys = probe_keys
        self._cache: dict[K, object] = {}
        self._all: dict[K, V] | None = None

    def get(self, key: K, default=None):  # type: ignore[override]
        found = self._lookup(key)
        return default if found is _MISSING else found

    def __getitem__(self, key: K) -> V:
        found = self._lookup(key)
        if found is _MISSING:
            raise KeyError(key)
        return found  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self._lookup(key) is not _MISSING  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        if self._all is not None:
            return bool(self._all)
        if self._probe_keys is not None and any(self._lookup(key) is not _MISSING for key in self._probe_keys()):
            return True
        return bool(self._materialised())

    def __iter__(self) -> Iterator[K]:
        return iter(self._materialised())

    def __len__(self) -> int:
        return len(self._materialised())

    def peek(self, key: K) -> V | None:
        """The value if it was already fetched (never fetches)."""
        source = self._all if self._all is not None else self._cache
        found = source.get(key, _MISSING)
        return None if found is _MISSING else found  # type: ignore[return-value]

    @property
    def fetched(self) -> int:
        """How many keys were looked at one at a time (for benchmarks and tests)."""
        return len(self._cache)

    def _lookup(self, key: K) -> object:
        if self._all is not None:
            return self._all.get(key, _MISSING)
        found = self._cache.get(key, _MISSING)
        if found is _MISSING:
            try:
                value = self._fetch(*key)
            except (KeyError, TypeError, ValueError):  # an unknown instrument or a malformed key: absent
                value = None
            found = self._cache[key] = _MISSING if value is None else value
        return found

    def _materialised(self) -> dict[K, V]:
        if self._all is None:
            self._all = self._fetch_all()
        return self._all


def take_snapshot(source: MarketSource, now_ts_ms: int) -> MarketSnapshot:
    """Everything the strategy may look at, frozen at ``now_ts_ms``.

    Quotes are copied (the ranker's first pass reads every one); books and instruments are read
    lazily when the source can answer one at a time (``book``/``instrument``), else copied.
    """
    quotes = {(q.venue, q.symbol): q for q in source.quotes()}
    book = getattr(source, "book", None)
    instrument = getattr(source, "instrument", None)
    books: Mapping = (
        LazyMapping(book, lambda: {(b.venue, b.symbol): b for b in source.books()}, lambda: list(quotes))
        if callable(book) else {(b.venue, b.symbol): b for b in source.books()}
    )
    instruments: Mapping = (
        LazyMapping(instrument, lambda: {(i.venue, i.symbol): i for i in source.instruments()}, lambda: list(quotes))
        if callable(instrument) else {(i.venue, i.symbol): i for i in source.instruments()}
    )
    return MarketSnapshot(
        now_ts_ms=now_ts_ms,
        quotes=quotes,
        books=books,  # type: ignore[arg-type]
        instruments=instruments,  # type: ignore[arg-type]
        fees=dict(source.fee_schedules()),
    )
