"""A Bybit order book maintained from the ``orderbook.{depth}.{symbol}`` stream.

pybit's own merge appends delta levels unsorted (pybit issue 369), so we keep the book here:
levels live in dicts keyed by price, a ``snapshot`` replaces everything, a ``delta`` upserts
(size "0" deletes), and the update id ``u`` must increase; a delta before any snapshot or with
a ``u`` other than the previous + 1 (Bybit: "u is a sequence") is a sequence gap and raises ``BookGap`` so the caller resubscribes (or
resyncs over REST). ``u == 1`` in a snapshot is Bybit's service-restart reset and is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.errors import AbsurdVenueData
from adapters.validation import decimal_from_wire, validate_book
from bot.core.domain import BookLevel, OrderBook

VENUE = "bybit"


class BookGap(AbsurdVenueData):
    """The stream skipped or reordered updates: the local book is no longer trustworthy."""


class BybitBook:
    """Local book for one symbol. ``apply(message)`` then ``snapshot(depth)`` for the domain view."""

    def __init__(self, symbol: str, *, venue: str = VENUE) -> None:
        self.symbol = symbol
        self.venue = venue
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        self.update_id: int | None = None
        self.ts_ms = 0

    @property
    def ready(self) -> bool:
        return self.update_id is not None

    def reset(self) -> None:
        """Forget everything (after a gap or a reconnect: ghost levels must not survive)."""
        self._bids.clear()
        self._asks.clear()
        self.update_id = None

    def apply(self, message: Mapping[str, Any]) -> None:
        """Apply one ``snapshot`` or ``delta`` message. Raises ``BookGap`` / ``AbsurdVenueData``."""
        kind = message.get("type")
        data = message.get("data")
        if not isinstance(data, Mapping):
            raise AbsurdVenueData(self.venue, "orderbook message without data")
        update_id = data.get("u")
        if isinstance(update_id, bool) or not isinstance(update_id, int):
            raise AbsurdVenueData(self.venue, f"orderbook u: expected an int, got {update_id!r}")
        if kind == "snapshot":
            self._bids.clear()
            self._asks.clear()
        elif kind == "delta":
            if self.update_id is None:
                raise BookGap(self.venue, f"{self.symbol}: delta u={update_id} before any snapshot")
            if update_id != self.update_id + 1:
                raise BookGap(self.venue, f"{self.symbol}: delta u={update_id} after u={self.update_id}")
        else:
            raise AbsurdVenueData(self.venue, f"orderbook type: unknown value {kind!r}")
        self._merge(self._bids, data.get("b", []), "b")
        self._merge(self._asks, data.get("a", []), "a")
        self.update_id = update_id
        ts = message.get("ts")
        if isinstance(ts, int) and not isinstance(ts, bool):
            self.ts_ms = ts

    def _merge(self, side: dict[Decimal, Decimal], levels: Any, key: str) -> None:
        if not isinstance(levels, list):
            raise AbsurdVenueData(self.venue, f"orderbook {key}: expected a list")
        for level in levels:
            if not isinstance(level, (list, tuple)) or len(level) < 2:
                raise AbsurdVenueData(self.venue, f"orderbook {key}: bad level {level!r}")
            price = decimal_from_wire(level[0], f"{key}.price", self.venue)
            size = decimal_from_wire(level[1], f"{key}.size", self.venue)
            if price <= 0 or size < 0:
                raise AbsurdVenueData(self.venue, f"orderbook {key}: level {level!r} is not a price/size")
            if size == 0:
                side.pop(price, None)
            else:
                side[price] = size

    def snapshot(self, depth: int = 50) -> OrderBook:
        """The top ``depth`` levels as a validated domain ``OrderBook`` (crossed => AbsurdVenueData)."""
        bids = sorted(self._bids.items(), reverse=True)[:depth]
        asks = sorted(self._asks.items())[:depth]
        return validate_book(OrderBook(
            venue=self.venue, symbol=self.symbol,
            bids=tuple(BookLevel(p, s) for p, s in bids), asks=tuple(BookLevel(p, s) for p, s in asks),
            ts_ms=self.ts_ms,
        ))
