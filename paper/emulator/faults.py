"""The fault switchboard: misbehaviours armed at run time, per venue, through Python or the control port.

A fault is armed with ``FaultSwitchboard.arm(kind, venue=None, count=1, scope=None, **params)``
(``count=None``: until cleared) and fires on matching requests until its count is used up.
Kinds (``FAULT_KINDS``):

HTTP (one request each time it fires)
- ``drop_after_execute``: the request is executed, then the connection is closed with no answer.
- ``timeout``: the request waits ``delay_s`` (default 30) and the connection is closed; NOT executed,
  unless ``execute=True``: then it is executed after the wait (the client has long given up).
- ``http_5xx``: status ``status`` (default 503) with an HTML body; not executed.
- ``non_json_200``: HTTP 200 with an HTML body; executed unless ``execute=False``.
- ``duplicate_client_id``: an order is executed, then answered with the venue's duplicate-client-id error.
- ``rate_limit``: the venue's rate-limit answer (bybit retCode 10006, binance HTTP 429 code -1003,
  hyperliquid HTTP 429); not executed.

Streams
- ``ws_disconnect``: every open stream of the venue is closed now (count ignored).
- ``ws_silent``: streams stay connected and answer pings but publish nothing (books, tickers, private
  order/fill/position/wallet updates) for ``duration_s`` (default 60).
- ``ws_sequence_gap``: the next book delta skips ``skip`` update ids (default 1).

Clock / schedule (applied at once, not per request)
- ``clock_skew``: the venue's own clock is off by ``offset_ms`` (time endpoints and signature checks).
- ``interval_change``: ``symbol``'s funding interval becomes ``hours`` (see ``EmulatorCore.set_interval``).

Data
- ``absurd_book``: the venue publishes (REST and streams) ``symbol``'s book (every symbol when none is
  given) with every price multiplied by ``factor`` (default 1000) until armed again with factor 1;
  its matching engine keeps trading at the true prices (a corrupt feed, not a moved market).

``scope`` limits HTTP faults to ``"order"`` (order placement), ``"private"``, ``"public"`` or ``"all"``;
the default is ``"order"`` for drop_after_execute / duplicate_client_id and ``"all"`` otherwise.
Thread-safe: tests arm faults from their own thread while the server runs in another.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

HTTP_FAULTS = ("drop_after_execute", "timeout", "http_5xx", "non_json_200", "duplicate_client_id", "rate_limit")
STREAM_FAULTS = ("ws_disconnect", "ws_silent", "ws_sequence_gap")
IMMEDIATE_FAULTS = ("clock_skew", "interval_change", "absurd_book")
FAULT_KINDS = HTTP_FAULTS + STREAM_FAULTS + IMMEDIATE_FAULTS
SCOPES = ("order", "private", "public", "all")
_ORDER_DEFAULT = ("drop_after_execute", "duplicate_client_id")


class FaultError(ValueError):
    """A fault request names an unknown kind, venue, scope or a bad parameter."""


@dataclass(slots=True)
class ArmedFault:
    """One armed fault; ``remaining`` None means until cleared."""

    kind: str
    venue: str | None
    scope: str
    remaining: int | None
    params: dict[str, Any] = field(default_factory=dict)
    fired: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "venue": self.venue, "scope": self.scope, "remaining": self.remaining,
                "fired": self.fired, "params": dict(self.params)}


class FaultSwitchboard:
    """Armed faults and the log of fired ones. ``on_immediate(kind, venue, params)`` applies clock
    skew / interval changes / disconnects; the server sets it."""

    def __init__(self, venues: tuple[str, ...], symbols: tuple[str, ...] = ()) -> None:
        self.venues = venues
        self.symbols = symbols
        self._lock = threading.Lock()
        self._armed: list[ArmedFault] = []
        self.fired: list[dict[str, Any]] = []
        self.on_immediate: Any = None
        self._silent_until: dict[str, float] = {}

    def arm(self, kind: str, venue: str | None = None, count: int | None = 1, scope: str | None = None,
            **params: Any) -> ArmedFault | None:
        """Arm ``kind`` on ``venue`` (None: every venue). Returns the armed fault (None for immediate ones)."""
        if kind not in FAULT_KINDS:
            raise FaultError(f"kind: unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if venue is not None and venue not in self.venues:
            raise FaultError(f"venue: {venue!r} is not emulated here; emulated: {', '.join(self.venues)}")
        scope = scope or ("order" if kind in _ORDER_DEFAULT else "all")
        if scope not in SCOPES:
            raise FaultError(f"scope: unknown scope {scope!r}; known: {', '.join(SCOPES)}")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise FaultError(f"count: must be a whole number >= 1 or null, got {count!r}")
        self._check_params(kind, params)
        if kind in IMMEDIATE_FAULTS or kind == "ws_disconnect" or kind == "ws_silent":
            if kind == "ws_silent":
                duration = float(params.get("duration_s", 60))
                for v in ([venue] if venue else self.venues):
                    self._silent_until[v] = time.monotonic() + duration
            self._log(kind, venue, params)
            if self.on_immediate is not None:
                self.on_immediate(kind, venue, params)
            return None
        fault = ArmedFault(kind, venue, scope, count, dict(params))
        with self._lock:
            self._armed.append(fault)
        return fault

    def _check_params(self, kind: str, params: dict[str, Any]) -> None:
        def number(name: str, low: float, high: float) -> None:
            value = params.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not low <= value <= high):
                raise FaultError(f"{name}: must be a number in [{low}, {high}], got {value!r}")

        number("delay_s", 0, 3600)
        number("duration_s", 0, 86_400)
        number("status", 500, 599)
        number("skip", 1, 1000)
        number("offset_ms", -30 * 86_400_000, 30 * 86_400_000)
        number("factor", 1e-6, 1e6)
        if kind == "absurd_book" and params.get("symbol") is not None and self.symbols \
                and params["symbol"] not in self.symbols:
            raise FaultError(f"symbol: {params.get('symbol')!r} is not listed; listed: {', '.join(self.symbols)}")
        if kind == "interval_change":
            if self.symbols and params.get("symbol") not in self.symbols:
                raise FaultError(f"symbol: {params.get('symbol')!r} is not listed; listed: {', '.join(self.symbols)}")
            if params.get("hours") not in (1, 2, 4, 8):
                raise FaultError(f"hours: must be 1, 2, 4 or 8, got {params.get('hours')!r}")
        if kind == "clock_skew" and "offset_ms" not in params:
            raise FaultError("offset_ms: required for clock_skew")

    def clear(self, venue: str | None = None) -> None:
        """Disarm every fault (of ``venue``, or all) and end silences."""
        with self._lock:
            self._armed = [f for f in self._armed if venue is not None and f.venue not in (None, venue)]
            for v in ([venue] if venue else list(self._silent_until)):
                self._silent_until.pop(v, None)

    def take(self, venue: str, kinds: tuple[str, ...], scope: str) -> ArmedFault | None:
        """The first armed fault of ``kinds`` matching this request; uses up one count."""
        with self._lock:
            for fault in self._armed:
                if fault.kind not in kinds or fault.venue not in (None, venue):
                    continue
                if not _scope_matches(fault.scope, scope):
                    continue
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._armed.remove(fault)
                self.fired.append({"kind": fault.kind, "venue": venue, "scope": scope})
                return fault
        return None

    def is_silent(self, venue: str) -> bool:
        return self._silent_until.get(venue, 0.0) > time.monotonic()

    def armed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._armed]

    def _log(self, kind: str, venue: str | None, params: dict[str, Any]) -> None:
        with self._lock:
            self.fired.append({"kind": kind, "venue": venue, "params": dict(params)})


def _scope_matches(armed: str, request: str) -> bool:
    """Request scopes are "order", "private" or "public"; an order is also private."""
    if armed == "all":
        return True
    if armed == "private":
        return request in ("order", "private")
    return armed == request
