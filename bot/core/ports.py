"""Ports: the Protocols the application shell depends on and the edges implement.

The paper and live executors implement ``Executor``; the simulated market and live adapters
implement ``MarketSource``; time is read only through ``Clock`` so paper runs can be sped up.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

from bot.core.domain import (
    FeeSchedule,
    Fill,
    FundingPayment,
    FundingQuote,
    FundingSettlement,
    Instrument,
    OrderBook,
    OrderReport,
    OrderRequest,
    VenuePosition,
)


@runtime_checkable
class Clock(Protocol):
    """Source of (possibly simulated) UTC time."""

    def now_ms(self) -> int:
        """Current time, ms since the epoch, UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time (wall time divided by the speed for a scaled clock)."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Places and inspects orders on venues. Paper and live share this contract.

    Errors are raised as ``adapters.errors`` classes: ``TemporaryVenueError`` (retry with backoff;
    for an order this means the outcome is UNKNOWN and must be looked up by client order id),
    ``OrderRejected`` (do not retry), ``FatalVenueError`` (halt).
    """

    async def place_order(self, request: OrderRequest) -> OrderReport:
        """Submit an order and return the venue's report once the venue has answered.

        ``request.post_only`` (GTC limits only): the order must never take liquidity; one that would
        cross raises ``OrderRejected`` whose reason starts with ``post_only``. A resting post-only
        order answers NEW and its later fills are read with ``get_order`` (maker-taker entries).
        """
        ...

    async def cancel_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        """Cancel a resting order; None when the venue does not know the id."""
        ...

    async def cancel_all_orders(self, venue: str | None = None) -> int:
        """Cancel every resting order (on one venue or all); returns how many were cancelled."""
        ...

    async def get_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        """Look an order up by its client order id; None when the venue never saw it.

        Contract: None must mean the order can no longer execute. A live executor guarantees it
        by sending every order with a short venue-side expiry (recvWindow / expiry timestamp, so
        a request that arrives late is refused by the venue) and by answering None only after
        that window has passed; otherwise the engine could re-send a repair and double-fill.
        """
        ...

    async def positions(self, venue: str | None = None) -> list[VenuePosition]:
        """The venue's own positions (non-zero only)."""
        ...

    async def balances_usd(self) -> dict[str, Decimal]:
        """Account equity per venue in USD."""
        ...

    async def fills_since(self, venue: str, since_ts_ms: int) -> list[Fill]:
        """Every fill on ``venue`` at or after ``since_ts_ms`` (for reconciliation)."""
        ...

    async def funding_payments_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        """Every funding payment on ``venue`` at or after ``since_ts_ms``."""
        ...

    async def advance(self, settlements: list[FundingSettlement]) -> list[FundingPayment]:
        """The venues' own work after a market step: for simulated venues, settle ``settlements``
        on the positions held and match resting orders against the new books; returns the funding
        payments made. Real venues do this themselves: a live executor returns [] and the payments
        arrive through ``funding_payments_since`` (reconciliation)."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class SpotWallet(Protocol):
    """What an executor adds to trade spot markets (carry legs); see docs/carry.md.

    A spot market is addressed by its market name ``"<venue>:spot"`` (``bot.core.domain.spot_market``)
    in every ``Executor`` call: ``place_order`` buys/sells the coin (never ``reduce_only``; a BUY's
    ``size_base`` is gross and a base-coin fee is reported in ``Fill.fee_base`` /
    ``OrderReport.fee_base``), ``get_order``/``cancel_order``/``fills_since`` work as for perps,
    ``positions(market)`` returns [] (a wallet has no position: the engine derives the bot's spot
    holding as wallet balance minus the baseline it recorded), ``funding_payments_since`` returns [].
    An executor that implements this Protocol can trade carry; the engine refuses spot legs otherwise.
    """

    async def spot_wallet_base(self, market: str) -> dict[str, Decimal]:
        """Total (free + locked in orders) base-coin balances of the spot wallet behind ``market``
        ("bybit:spot"), keyed by canonical symbol ("BTC"), in base units; coins with a zero balance may
        be omitted (absent = 0). Raises ``TemporaryVenueError`` when the venue cannot be asked now:
        never a guess (an unknown balance must not be read as 0)."""
        ...


class MarketSource(Protocol):
    """Where market data comes from: the simulated market, a historical replay or live venue feeds."""

    def venues(self) -> list[str]: ...

    def instruments(self) -> list[Instrument]: ...

    def fee_schedules(self) -> dict[str, FeeSchedule]: ...

    def quotes(self) -> list[FundingQuote]:
        """Latest funding quote per (venue, symbol)."""
        ...

    def books(self) -> list[OrderBook]:
        """Latest order book per (venue, symbol)."""
        ...


class MarketFeed(MarketSource, Protocol):
    """A market source the application drives forward in time (chosen once at start-up)."""

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        """Current book of one instrument (None when unknown or stale)."""
        ...

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """Trading rules of one instrument (None when unknown)."""
        ...

    def advance_to(self, ts_ms: int) -> list[FundingSettlement]:
        """Move the data to ``ts_ms``; returns the funding settlements that happened on the way
        (simulated and replayed markets; a live feed returns [] because venues settle themselves)."""
        ...

    def history_settlements(self, hours: int) -> list[FundingSettlement]:
        """Settlements of the ``hours`` before now, for the spread forecast's start-up history
        (``mark_price`` may be 0: only rates and intervals are used)."""
        ...
