"""Our own order activity per (venue, symbol), so a cached venue read is never newer-looking than it is.

``OrderActivity`` orders every event on one counter: an order sent, an order's answer (filled,
ended, rejected, looked up), a cancel, and the START of each account read. A read of the venues'
positions tells the truth about (venue, symbol) only if it started after our last activity there
and no order of ours is in flight on it: ``unsettled_since(read_seq)`` names the keys that fail
that test (``bot.account_view`` reports them as unknown).

``ActivityTrackingExecutor`` wraps the live executor and records that activity around every call
that can change a venue position; every other call is passed through unchanged. Listeners (the
account view's refresh request) hear each end of an order call.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from bot.core.domain import OrderReport, OrderRequest
from bot.core.ports import Executor

Key = tuple[str, str]  # (venue or market name, symbol)
ANY_SYMBOL = "*"  # a venue-wide event (cancel all, a cancel of an order we never sent this run)
MAX_REMEMBERED_ORDERS = 10_000


class OrderActivity:
    """A strictly increasing sequence over order events and read starts (see the module doc)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._last: dict[Key, int] = {}
        self._in_flight: dict[Key, int] = {}
        self._listeners: list[Callable[[], None]] = []

    def next_seq(self) -> int:
        """A sequence number after every event recorded so far (stamp a read's start with it)."""
        return next(self._counter)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` is called after each order call ends (e.g. to refresh the account view)."""
        self._listeners.append(listener)

    def begin(self, key: Key) -> None:
        """An order call on ``key`` starts (sent, cancel, lookup): in flight until ``end``."""
        self._last[key] = next(self._counter)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, key: Key) -> None:
        """An order call on ``key`` returned or failed: its effect may now be on the venue."""
        self._last[key] = next(self._counter)
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)
        for listener in self._listeners:
            listener()

    def last_seq(self, key: Key) -> int:
        """The sequence of the latest event on ``key`` (0: none this run)."""
        return self._last.get(key, 0)

    def is_settled_since(self, key: Key, read_seq: int) -> bool:
        """True when a read stamped ``read_seq`` tells the truth about ``key``: it started after our
        last activity on it (or on its whole venue) and nothing of ours is in flight there."""
        venue_wide = (key[0], ANY_SYMBOL)
        for k in (key, venue_wide):
            if self._in_flight.get(k, 0) > 0 or self._last.get(k, 0) > read_seq:
                return False
        return True

    def unsettled_since(self, read_seq: int) -> set[Key]:
        """Every key (venue-wide keys use ``ANY_SYMBOL``) a read stamped ``read_seq`` cannot judge."""
        keys = {k for k, seq in self._last.items() if seq > read_seq}
        keys.update(k for k, n in self._in_flight.items() if n > 0)
        return keys


class ActivityTrackingExecutor:
    """An ``Executor`` that records order activity on the wrapped one (everything else passes through)."""

    def __init__(self, inner: Executor, activity: OrderActivity) -> None:
        self._inner = inner
        self.activity = activity
        self._keys: OrderedDict[str, Key] = OrderedDict()  # client order id -> (venue, symbol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _key_of(self, venue: str, client_order_id: str) -> Key:
        return self._keys.get(client_order_id, (venue, ANY_SYMBOL))

    async def place_order(self, request: OrderRequest) -> OrderReport:
        key = (request.venue, request.symbol)
        self._keys[request.client_order_id] = key
        self._keys.move_to_end(request.client_order_id)
        while len(self._keys) > MAX_REMEMBERED_ORDERS:
            self._keys.popitem(last=False)
        self.activity.begin(key)
        try:
            return await self._inner.place_order(request)
        finally:
            self.activity.end(key)

    async def cancel_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        key = self._key_of(venue, client_order_id)
        self.activity.begin(key)
        try:
            return await self._inner.cancel_order(venue, client_order_id)
        finally:
            self.activity.end(key)

    async def get_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        # A lookup can be how we learn that an order of unknown outcome filled.
        key = self._key_of(venue, client_order_id)
        self.activity.begin(key)
        try:
            return await self._inner.get_order(venue, client_order_id)
        finally:
            self.activity.end(key)

    async def cancel_all_orders(self, venue: str | None = None) -> int:
        keys = [(venue, ANY_SYMBOL)] if venue is not None else [(v, ANY_SYMBOL) for v in self._venues()]
        for key in keys:
            self.activity.begin(key)
        try:
            return await self._inner.cancel_all_orders(venue)
        finally:
            for key in keys:
                self.activity.end(key)

    def _venues(self) -> list[str]:
        names = getattr(self._inner, "venue_names", None)
        if callable(names):
            return list(names())
        return sorted({venue for venue, _symbol in self._keys.values()})
