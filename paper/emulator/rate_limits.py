"""Optional enforcement of each venue's documented REST rate limits (sliding windows, per venue).

Off by default (tests and rehearsals fire requests back to back); ``start_emulator(rate_limits=True)``
or ``python -m bot emulate --rate-limits`` turns it on, so an adapter's own limiter can be proven to
stay under the venue's. An over-limit request is answered with the venue's rate-limit answer and not
executed. Limits (as documented by the venues; one emulated account, one IP):

- bybit: 600 requests per 5 s per IP; ``/v5/order/create`` 10 per second per account;
- binanceusdm: 2400 request weight per minute (weight 1, 5 for ``exchangeInfo`` and full ``depth``),
  orders 300 per 10 s and 1200 per minute;
- hyperliquid: 1200 weight per minute; ``/exchange`` weight 1 per action, ``/info`` weight 2 for
  l2Book / allMids / clearinghouseState / orderStatus / spotClearinghouseState / exchangeStatus, 20 otherwise;
- okx: 20 requests per 2 s per endpoint (most REST endpoints; public ones by IP, private ones by
  account), order placement 60 per 2 s.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` units within any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: deque[tuple[float, int]] = deque()
        self._used = 0

    def fits(self, units: int) -> bool:
        now = self._clock()
        while self._events and self._events[0][0] <= now - self.window_s:
            self._used -= self._events.popleft()[1]
        return self._used + units <= self.limit

    def take(self, units: int) -> None:
        self._events.append((self._clock(), units))
        self._used += units


_HL_LIGHT_INFO = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}


class VenueRateLimits:
    """The documented limits of one venue; ``admit(path, scope, info_type)`` says whether a request may pass."""

    def __init__(self, venue: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.venue = venue
        if venue == "bybit":
            self._general = [SlidingWindow(600, 5.0, clock)]
            self._orders = [SlidingWindow(10, 1.0, clock)]
        elif venue == "binanceusdm":
            self._general = [SlidingWindow(2400, 60.0, clock)]
            self._orders = [SlidingWindow(300, 10.0, clock), SlidingWindow(1200, 60.0, clock)]
        elif venue == "hyperliquid":
            self._general = [SlidingWindow(1200, 60.0, clock)]
            self._orders = []
        elif venue == "okx":  # per endpoint: 20 requests / 2 s; orders 60 / 2 s
            self._general = []
            self._orders = [SlidingWindow(60, 2.0, clock)]
        else:
            raise ValueError(f"no documented rate limits for {venue}")
        self.refused = 0
        self._clock = clock
        self._per_path: dict[str, SlidingWindow] = {}

    def weight(self, path: str, info_type: str | None, query: dict[str, str]) -> int:
        if self.venue == "binanceusdm":
            if path.endswith("/exchangeInfo") or (path.endswith("/depth") and int(query.get("limit", 500)) > 100):
                return 5
            return 1
        if self.venue == "hyperliquid" and path == "/info":
            return 2 if info_type in _HL_LIGHT_INFO else 20
        return 1

    def admit(self, path: str, scope: str, info_type: str | None = None, query: dict[str, str] | None = None) -> bool:
        """Count the request against every window it belongs to; False (nothing counted) when one is full."""
        weight = self.weight(path, info_type, query or {})
        needs = [(w, weight) for w in self._general] + ([(w, 1) for w in self._orders] if scope == "order" else [])
        if self.venue == "okx" and scope != "order":
            needs.append((self._per_path.setdefault(path, SlidingWindow(20, 2.0, self._clock)), 1))
        if not all(w.fits(units) for w, units in needs):
            self.refused += 1
            return False
        for w, units in needs:
            w.take(units)
        return True
