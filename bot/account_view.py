"""What the strategy pass knows about the account: equity per venue and the venues' own sizes.

Two implementations of one small interface (``AccountSource``), chosen in ``bot.wiring``:

- ``DirectAccount`` (paper, backtest): asks the executor and the engine on every pass, exactly as
  the application always did (the backtest's results do not move).
- ``CachedAccount`` (live): a background task reads every venue's balances and positions every
  ``live.account_refresh_seconds`` and right after each of our order calls ends, so a pass never
  waits on venue REST round trips. Each reading carries the clock time its read STARTED and its
  place in the order-activity sequence (``bot.order_activity``). Money first:

  * equity is used only while the balance reading is younger than ``live.account_max_age_seconds``;
    an older or failed reading raises ``AccountUnknown`` (the entry gates then deny every entry,
    exactly as when the venues cannot report balances);
  * a venue size for (venue, symbol) is given only if the reading started after our last order
    activity there and nothing of ours is in flight there; otherwise it is ``None`` (unknown: the
    leg-missing and delta-drift exits skip that position this pass). An older or failed size
    reading raises ``AccountUnknown`` (every size unknown, as when the venues cannot be asked).

Reconciliation, orphan detection and start-up checks never use this view: they keep reading
venue truth themselves (``TradingEngine.reconcile``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

import anyio
from loguru import logger

from bot.core.ports import Clock, Executor
from bot.order_activity import ANY_SYMBOL, OrderActivity

T = TypeVar("T")
SizesReader = Callable[[], Awaitable[dict[tuple[str, str], Decimal]]]


class AccountUnknown(Exception):
    """The account view cannot vouch for this figure now (stale, failed, or not read yet)."""


class AccountSource(Protocol):
    """Balances and venue sizes for one strategy pass."""

    async def attach(self, executor: Executor, venue_sizes: SizesReader) -> None:
        """Bind to the opened executor and the engine's size reader (``TradingEngine.venue_sizes``)."""

    async def balances_usd(self) -> dict[str, Decimal]:
        """Equity per venue; raises when it is not known."""

    async def venue_sizes(self) -> Mapping[tuple[str, str], Decimal | None]:
        """The venues' signed sizes (absent = 0, ``None`` = unknown); raises when none is known."""


class DirectAccount:
    """Paper and backtest: every pass asks the executor and the engine (the behaviour of old)."""

    def __init__(self) -> None:
        self._executor: Executor | None = None
        self._sizes: SizesReader | None = None

    async def attach(self, executor: Executor, venue_sizes: SizesReader) -> None:
        self._executor = executor
        self._sizes = venue_sizes

    async def balances_usd(self) -> dict[str, Decimal]:
        assert self._executor is not None
        return await self._executor.balances_usd()

    async def venue_sizes(self) -> Mapping[tuple[str, str], Decimal | None]:
        assert self._sizes is not None
        return await self._sizes()


@dataclass(frozen=True, slots=True)
class Reading(Generic[T]):
    """One completed read: its value (None when it failed), when it STARTED (clock ms) and its
    place in the order-activity sequence."""

    started_ts_ms: int
    started_seq: int
    value: T | None
    error: str | None = None


class CachedAccount:
    """Live: balances and venue sizes kept current by ``run()`` (see the module doc)."""

    def __init__(self, clock: Clock, activity: OrderActivity, *, refresh_s: float, max_age_s: float) -> None:
        if refresh_s <= 0 or max_age_s <= 0:
            raise ValueError("account refresh interval and maximum age must be positive")
        self.clock = clock
        self.activity = activity
        self.refresh_s = refresh_s
        self.max_age_ms = round(max_age_s * 1000)
        self.balances_reading: Reading[dict[str, Decimal]] | None = None
        self.sizes_reading: Reading[dict[tuple[str, str], Decimal]] | None = None
        self.reads = 0
        self.refreshing = False  # a read is in flight (status, benchmarks)
        self._executor: Executor | None = None
        self._sizes: SizesReader | None = None
        self._attached = anyio.Event()
        self._wake = anyio.Event()
        activity.add_listener(self.request_refresh)

    # ------------------------------------------------------------------ lifecycle
    async def attach(self, executor: Executor, venue_sizes: SizesReader) -> None:
        """Bind and read once (the first pass already has a view); ``run()`` then keeps it current."""
        self._executor = executor
        self._sizes = venue_sizes
        await self.refresh()
        self._attached.set()

    def request_refresh(self) -> None:
        """Read again as soon as the current read (if any) is done (called after our order calls)."""
        self._wake.set()

    async def run(self) -> None:
        """Refresh every ``refresh_s`` wall seconds or on request, until cancelled."""
        await self._attached.wait()
        while True:
            if not self._wake.is_set():
                with anyio.move_on_after(self.refresh_s):
                    await self._wake.wait()
            self._wake = anyio.Event()  # a request arriving during the read below wakes the next one
            await self.refresh()

    async def refresh(self) -> None:
        """Read balances and sizes concurrently, each stamped when it starts; bounded by the max age
        (a read that takes longer is a failed one)."""
        assert self._executor is not None and self._sizes is not None
        executor, sizes = self._executor, self._sizes
        self.reads += 1
        self.refreshing = True

        async def read_balances() -> None:
            self.balances_reading = await self._read("balances", executor.balances_usd)

        async def read_sizes() -> None:
            self.sizes_reading = await self._read("positions", sizes)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(read_balances)
                tg.start_soon(read_sizes)
        finally:
            self.refreshing = False

    async def _read(self, what: str, read: Callable[[], Awaitable[T]]) -> Reading[T]:
        started_ms, started_seq = self.clock.now_ms(), self.activity.next_seq()
        error = f"no answer within {self.max_age_ms / 1000:g} s"
        with anyio.move_on_after(self.max_age_ms / 1000):
            try:
                return Reading(started_ms, started_seq, dict(await read()))  # type: ignore[call-overload]
            except Exception as exc:  # the reading is failed: figures unknown until a read succeeds
                error = repr(exc)
        logger.bind(kind="account_read_failed", what=what).warning(f"account {what} unavailable: {error}")
        return Reading(started_ms, started_seq, None, error)

    # ------------------------------------------------------------------ reads for a pass
    def _fresh(self, what: str, reading: Reading[T] | None) -> Reading[T]:
        if reading is None:
            raise AccountUnknown(f"{what} not read yet")
        if reading.value is None:
            raise AccountUnknown(f"{what} read failed: {reading.error}")
        age_ms = self.clock.now_ms() - reading.started_ts_ms
        if age_ms > self.max_age_ms:
            raise AccountUnknown(f"{what} read is {age_ms / 1000:g} s old (live.account_max_age_seconds "
                                 f"{self.max_age_ms / 1000:g})")
        return reading

    async def balances_usd(self) -> dict[str, Decimal]:
        reading = self._fresh("balances", self.balances_reading)
        assert reading.value is not None
        return dict(reading.value)

    async def venue_sizes(self) -> Mapping[tuple[str, str], Decimal | None]:
        reading = self._fresh("positions", self.sizes_reading)
        assert reading.value is not None
        sizes: dict[tuple[str, str], Decimal | None] = dict(reading.value)
        unsettled = self.activity.unsettled_since(reading.started_seq)
        venue_wide = {venue for venue, symbol in unsettled if symbol == ANY_SYMBOL}
        for key in list(sizes):
            if key[0] in venue_wide:
                sizes[key] = None
        for key in unsettled:
            if key[1] != ANY_SYMBOL:
                sizes[key] = None
        return VenueSizes(sizes, venue_wide)


class VenueSizes(dict):
    """Sizes per (venue, symbol); a key of a venue-wide unsettled venue reads as ``None`` even when
    absent (``.get(key, default)`` included), so nothing absent is mistaken for a zero."""

    def __init__(self, sizes: Mapping[tuple[str, str], Decimal | None], unknown_venues: set[str]) -> None:
        super().__init__(sizes)
        self.unknown_venues = frozenset(unknown_venues)

    def get(self, key, default=None):  # type: ignore[override]
        if key in self:
            return self[key]
        return None if key[0] in self.unknown_venues else default
