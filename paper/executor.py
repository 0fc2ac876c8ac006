"""The paper executor: simulated venues' matching engine and accounts behind ``bot.core.ports.Executor``.

Orders match against the current order book of a ``BookSource`` (taker fills walk the book; resting
GTC limits fill at their limit price as maker when the book crosses them).

Post-only orders are modelled conservatively: one that would cross the book when it arrives is
rejected (``post_only: ...``); once resting it fills only when the market trades THROUGH its price
(the opposite touch moves strictly beyond it: asks below a resting buy, bids above a resting sell),
never when the touch merely reaches it, and only against the depth strictly beyond its price. No
queue position is assumed: a fill at our price would need everyone queued ahead of us filled first,
which a book snapshot cannot show, so only a trade-through counts. Positions, balances,
orders, fills and funding payments live in a ``VenueStore`` of their own; every state change is
computed first, written to the store in one transaction, and only then applied in memory, so a
crash or a failed write never leaves an order half-recorded.

Latency is wall time (``sleep``, ``anyio.sleep`` by default): half before and half after the venue
acts on a request, so a caller cancelled mid-request faces the same unknown outcome as on a live
venue. Matching and settlement themselves never await, so concurrent requests cannot interleave
inside them (a duplicate client order id can never execute twice).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

import anyio

from adapters.errors import OrderRejected, TemporaryVenueError
from bot.core.domain import (
    ZERO,
    BookLevel,
    FeeSchedule,
    Fill,
    FundingPayment,
    FundingSettlement,
    Instrument,
    Liquidity,
    OrderBook,
    OrderReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    VenuePosition,
    funding_payment_usd,
    is_spot,
)
from paper.fault_injection import FaultInjector, FaultPlan, TimeoutDraw
from paper.matching import deplete, fee_usd, floor_to_lot, is_lot_multiple, net_fill, traded_through, walk_book
from paper.venue_store import BalanceState, PositionState, StoredOrder, VenueStore, VenueWrite

SleepFn = Callable[[float], Awaitable[None]]


class BookSource(Protocol):
    """Where the paper executor reads the current book and instrument of a venue/symbol."""

    def book(self, venue: str, symbol: str) -> OrderBook | None: ...

    def instrument(self, venue: str, symbol: str) -> Instrument | None: ...


DEFAULT_HISTORY_WINDOW_MS = 86_400_000  # venue history kept in memory (older: in the store)
_PRUNE_EVERY_MS = 3_600_000


def trade_id_for(venue: str, n: int) -> str:
    return f"{venue}-t{n}"


def venue_order_id_for(venue: str, n: int) -> str:
    return f"{venue}-o{n}"


def funding_payment_id(venue: str, symbol: str, ts_ms: int) -> str:
    return f"{venue}:{symbol}:{ts_ms}"


def _is_resting_type(request: OrderRequest) -> bool:
    return request.order_type is OrderType.LIMIT and request.time_in_force is TimeInForce.GTC


def _reducible_base(side: OrderSide, position_base: Decimal) -> Decimal:
    """How much an order of ``side`` may trade without increasing or flipping ``position_base``."""
    if (position_base > ZERO and side is OrderSide.SELL) or (position_base < ZERO and side is OrderSide.BUY):
        return abs(position_base)
    return ZERO


@dataclass(slots=True)
class _Consumption:
    """Liquidity already taken from one book snapshot, so two orders on it cannot both take it."""

    book: OrderBook
    taken: dict[OrderSide, dict[Decimal, Decimal]] = field(default_factory=lambda: defaultdict(dict))


class _Draft:
    """State changes of one venue event, computed against the committed state, not yet applied."""

    def __init__(self, ex: PaperExecutor) -> None:
        self._ex = ex
        self.orders: dict[tuple[str, str], StoredOrder] = {}
        self.fills: list[Fill] = []
        self.positions: dict[tuple[str, str], PositionState] = {}
        self.balances: dict[str, BalanceState] = {}
        self.funding: list[FundingPayment] = []
        self.counters: dict[str, int] = {}
        self.taken: list[tuple[OrderBook, OrderSide, Decimal, Decimal]] = []  # book, side, price, size

    def order(self, venue: str, cid: str) -> StoredOrder:
        return self.orders.get((venue, cid)) or self._ex._orders[(venue, cid)]

    def position(self, venue: str, symbol: str) -> PositionState:
        return self.positions.get((venue, symbol)) or self._ex._position(venue, symbol)

    def balance(self, venue: str) -> BalanceState:
        return self.balances.get(venue) or self._ex._balance(venue)

    def next_id(self, key: str) -> int:
        n = self.counters.get(key, self._ex._counters.get(key, 0)) + 1
        self.counters[key] = n
        return n

    def add_fill(self, fill: Fill) -> None:
        pos = self.position(fill.venue, fill.symbol)
        # A spot market's "position" is the wallet's coin balance: a base-coin fee never reaches it.
        moved = fill.size_base - fill.fee_base if fill.side is OrderSide.BUY else fill.size_base + fill.fee_base
        net = net_fill(pos.size_base, pos.entry_price, fill.side, fill.price, moved)
        self.positions[(fill.venue, fill.symbol)] = PositionState(
            venue=fill.venue,
            symbol=fill.symbol,
            size_base=net.size_base,
            entry_price=net.entry_price,
            realized_pnl_usd=pos.realized_pnl_usd + net.realized_pnl_usd,
            updated_ts_ms=fill.ts_ms,
        )
        bal = self.balance(fill.venue)
        self.balances[fill.venue] = replace(
            bal,
            balance_usd=bal.balance_usd + net.realized_pnl_usd - fill.fee_usd,
            realized_pnl_usd=bal.realized_pnl_usd + net.realized_pnl_usd,
            fees_usd=bal.fees_usd + fill.fee_usd,
        )
        self.fills.append(fill)

    def add_funding(self, payment: FundingPayment) -> None:
        bal = self.balance(payment.venue)
        self.balances[payment.venue] = replace(
            bal,
            balance_usd=bal.balance_usd + payment.amount_usd,
            funding_usd=bal.funding_usd + payment.amount_usd,
        )
        self.funding.append(payment)

    def to_write(self) -> VenueWrite:
        return VenueWrite(
            orders=tuple(self.orders.values()),
            fills=tuple(self.fills),
            positions=tuple(self.positions.values()),
            balances=tuple(self.balances.values()),
            funding=tuple(self.funding),
            counters=tuple(self.counters.items()),
        )


class PaperExecutor:
    """Simulated venues implementing ``bot.core.ports.Executor`` (plus the venue-side hooks below).

    Venue-side hooks the supervisor / simulated market call (synchronous, no latency or faults):
    ``match_resting`` / ``on_book_update`` after each market step, and ``settle_funding`` at each
    settlement instant. ``down_for`` takes a venue's API down for a while (fault drills).
    """

    def __init__(
        self,
        book_source: BookSource,
        fees: dict[str, FeeSchedule],
        *,
        store: VenueStore,
        latency_s: dict[str, float] | float = 0.0,
        clock_now_ms: Callable[[], int],
        faults: FaultPlan | None = None,
        starting_balance_usd: Decimal = Decimal(10000),
        sleep: SleepFn = anyio.sleep,
        history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
        spot_wallet_seed_base: dict[tuple[str, str], Decimal] | None = None,
    ) -> None:
        """``spot_wallet_seed_base``: coins a spot wallet holds before anything trades, per
        (spot market, symbol): the user's own coins the bot must never sell (written once, into a
        new venue store)."""
        self._spot_seed = dict(spot_wallet_seed_base or {})
        self._books = book_source
        self._fees = dict(fees)
        self._store = store
        self._latency_s = latency_s
        self._now_ms = clock_now_ms
        self._faults = FaultInjector(faults)
        self._starting_balance_usd = starting_balance_usd
        self._sleep = sleep

        self._orders: dict[tuple[str, str], StoredOrder] = {}
        self._order_fills: dict[tuple[str, str], list[Fill]] = defaultdict(list)
        self._venue_fills: dict[str, list[Fill]] = defaultdict(list)
        # (venue, symbol) -> client order ids of resting orders, in time priority (dicts keep order).
        self._resting: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
        self._positions: dict[tuple[str, str], PositionState] = {}
        self._balances: dict[str, BalanceState] = {}
        self._funding: dict[str, list[FundingPayment]] = defaultdict(list)
        self._funding_ids: set[str] = set()
        self._counters: dict[str, int] = {}
        self._consumed: dict[tuple[str, str], _Consumption] = {}
        self._funding_by_id: dict[str, FundingPayment] = {}
        # Venue history older than ``history_window_ms`` lives only in the store (a real venue's
        # history is server-side too): answered from SQLite, never kept in memory for months.
        self._history_window_ms = history_window_ms
        self._horizon_ms = 0  # everything before this instant was dropped from memory
        # venue -> (since, horizon, payments written since, answer): the store's answer to a funding
        # read reaching before the horizon, kept until this executor writes another payment there
        # (reconciliation asks every venue the same question every pass; this process is the
        # store's only writer)
        self._old_funding: dict[str, tuple[int, int, int, list[FundingPayment]]] = {}
        self._funding_writes: dict[str, int] = defaultdict(int)
        self._last_prune_ms = 0
        self._restore()

    # -- start-up ----------------------------------------------------------------------------------

    def _restore(self) -> None:
        state = self._store.load()
        for order in state.orders:
            key = (order.venue, order.client_order_id)
            self._orders[key] = order
            if not order.status.is_terminal:
                self._resting[(order.venue, order.symbol)][order.client_order_id] = None
        for fill in state.fills:
            self._order_fills[(fill.venue, fill.client_order_id)].append(fill)
            self._venue_fills[fill.venue].append(fill)
        self._positions = {(p.venue, p.symbol): p for p in state.positions}
        self._balances = {b.venue: b for b in state.balances}
        for payment in state.funding:
            self._funding[payment.venue].append(payment)
            self._funding_ids.add(payment.payment_id)
            self._funding_by_id[payment.payment_id] = payment
        self._counters = dict(state.counters)
        missing = tuple(self._balance(v) for v in sorted(self._fees) if v not in self._balances)
        seeds = tuple(
            PositionState(venue=v, symbol=sym, size_base=size, entry_price=ZERO, realized_pnl_usd=ZERO, updated_ts_ms=0)
            for (v, sym), size in sorted(self._spot_seed.items())
            if is_spot(v) and size > ZERO and v not in self._balances and (v, sym) not in self._positions
        )
        if missing or seeds:
            self._store.write(VenueWrite(balances=missing, positions=seeds))
            self._balances.update({b.venue: b for b in missing})
            self._positions.update({(p.venue, p.symbol): p for p in seeds})
        self.prune_history(self._now_ms())  # months of history stay in the store, not in memory

    # -- committed state -----------------------------------------------------------------------

    def _position(self, venue: str, symbol: str) -> PositionState:
        return self._positions.get((venue, symbol)) or PositionState(
            venue=venue, symbol=symbol, size_base=ZERO, entry_price=ZERO, realized_pnl_usd=ZERO, updated_ts_ms=0
        )

    def _balance(self, venue: str) -> BalanceState:
        return self._balances.get(venue) or BalanceState(
            venue=venue,
            balance_usd=self._starting_balance_usd,
            starting_usd=self._starting_balance_usd,
            realized_pnl_usd=ZERO,
            fees_usd=ZERO,
            funding_usd=ZERO,
        )

    def _commit(self, draft: _Draft) -> None:
        """Persist ``draft`` in one transaction, then apply it in memory (never the other way round)."""
        self._store.write(draft.to_write())
        for order in draft.orders.values():
            self._orders[(order.venue, order.client_order_id)] = order
            index = self._resting[(order.venue, order.symbol)]
            if order.status.is_terminal:
                index.pop(order.client_order_id, None)
            else:
                index.setdefault(order.client_order_id, None)
        for fill in draft.fills:
            self._order_fills[(fill.venue, fill.client_order_id)].append(fill)
            self._venue_fills[fill.venue].append(fill)
        self._positions.update(draft.positions)
        self._balances.update(draft.balances)
        self._counters.update(draft.counters)
        for payment in draft.funding:
            self._funding_writes[payment.venue] += 1
            self._funding[payment.venue].append(payment)
            self._funding_ids.add(payment.payment_id)
            self._funding_by_id[payment.payment_id] = payment
        for book, side, price, size in draft.taken:
            consumption = self._consumption(book)
            consumption.taken[side][price] = consumption.taken[side].get(price, ZERO) + size

    def _consumption(self, book: OrderBook) -> _Consumption:
        key = (book.venue, book.symbol)
        current = self._consumed.get(key)
        if current is None or not (current.book is book or current.book == book):
            current = _Consumption(book=book)
            self._consumed[key] = current
        return current

    def _levels(self, book: OrderBook, side: OrderSide, draft: _Draft) -> tuple[BookLevel, ...]:
        """The levels an order of ``side`` may take: the book minus liquidity already taken from it."""
        current = self._consumed.get((book.venue, book.symbol))
        taken: dict[Decimal, Decimal] = {}
        if current is not None and (current.book is book or current.book == book):
            taken.update(current.taken.get(side, {}))
        for b, s, price, size in draft.taken:
            if b is book and s is side:
                taken[price] = taken.get(price, ZERO) + size
        return deplete(book.levels_for(side), taken)

    def prune_history(self, now_ms: int) -> int:
        """Drop venue history older than the window from memory (it stays in the store); returns how
        many records left memory. Resting orders and open positions are never dropped."""
        cutoff = now_ms - self._history_window_ms
        if cutoff <= self._horizon_ms:
            return 0
        dropped = 0
        for key, order in list(self._orders.items()):
            if order.status.is_terminal and order.updated_ts_ms < cutoff:
                del self._orders[key]
                dropped += 1 + len(self._order_fills.pop(key, ()))
        for venue, fills in self._venue_fills.items():
            kept = [f for f in fills if f.ts_ms >= cutoff]
            dropped += len(fills) - len(kept)
            self._venue_fills[venue] = kept
        for venue, payments in self._funding.items():
            kept = []
            for payment in payments:
                if payment.ts_ms >= cutoff:
                    kept.append(payment)
                else:
                    self._funding_ids.discard(payment.payment_id)
                    self._funding_by_id.pop(payment.payment_id, None)
                    dropped += 1
            self._funding[venue] = kept
        self._horizon_ms = cutoff
        return dropped

    def _report(self, order: StoredOrder, fills_from_store: list[Fill] | None = None) -> OrderReport:
        fills = tuple(fills_from_store if fills_from_store is not None
                      else self._order_fills.get((order.venue, order.client_order_id), ()))
        filled = sum((f.size_base for f in fills), ZERO)
        avg = sum((f.price * f.size_base for f in fills), ZERO) / filled if filled else None
        return OrderReport(
            client_order_id=order.client_order_id,
            venue=order.venue,
            symbol=order.symbol,
            side=order.side,
            status=order.status,
            requested_base=order.requested_base,
            filled_base=order.filled_base,
            avg_price=avg,
            fills=fills,
            reduce_only=order.reduce_only,
            venue_order_id=order.venue_order_id,
            reason=order.reason,
            ts_ms=order.updated_ts_ms,
            fee_base=sum((f.fee_base for f in fills), ZERO),
        )

    # -- request plumbing ---------------------------------------------------------------------------

    def _latency_for(self, venue: str | None) -> float:
        if isinstance(self._latency_s, dict):
            if venue is None:
                return max(self._latency_s.values(), default=0.0)
            return self._latency_s.get(venue, 0.0)
        return self._latency_s

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            await self._sleep(seconds)

    def _check_up(self, venue: str | None) -> None:
        now_ms = self._now_ms()
        if venue is not None:
            self._faults.check_up(venue, now_ms)
            return
        for v in sorted(set(self._fees) | set(self._balances)):
            if self._faults.is_down(v, now_ms):
                raise TemporaryVenueError(v, "venue unavailable (injected outage)")

    async def _round_trip(self, venue: str | None) -> None:
        self._check_up(venue)
        await self._wait(self._latency_for(venue) + self._faults.draw_latency_spike_s())

    def down_for(self, venue: str, seconds: float) -> None:
        """Make every call to ``venue`` raise ``TemporaryVenueError`` for ``seconds`` of clock time."""
        self._faults.down_for(venue, seconds, self._now_ms())

    # -- Executor: orders ---------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> OrderReport:
        """Validate and execute ``request``; a known client order id returns the existing report.

        Raises ``OrderRejected`` (reason names the offending field; nothing executed) or
        ``TemporaryVenueError`` (outage or timeout: look the order up by client order id).
        """
        venue = request.venue
        self._check_up(venue)
        half_s = (self._latency_for(venue) + self._faults.draw_latency_spike_s()) / 2
        await self._wait(half_s)
        existing = self._orders.get((venue, request.client_order_id))
        stored = None
        if existing is None and self._horizon_ms:
            stored = self._store.order(venue, request.client_order_id)  # a known id older than the window
        timeout = TimeoutDraw(timed_out=False, executed=True)
        report: OrderReport | None = None
        if existing is not None:
            report = self._report(existing)
        elif stored is not None:
            report = self._report(stored[0], stored[1])  # idempotent by client order id, however old
        else:
            if self._faults.draw_reject():
                await self._wait(half_s)
                raise OrderRejected(venue, "order rejected by venue (injected)")
            timeout = self._faults.draw_timeout()
            if not timeout.executed:
                await self._wait(half_s)
                raise TemporaryVenueError(venue, "request timed out (injected)")
            partial = None if _is_resting_type(request) else self._faults.draw_partial_fraction()
            try:
                report = self._execute(request, partial)
            except OrderRejected:
                if not timeout.timed_out:
                    raise
                # The caller only ever sees the timeout; the order is simply not there.
        await self._wait(half_s)
        if timeout.timed_out or report is None:
            raise TemporaryVenueError(venue, "request timed out (injected)")
        return report

    def _validate(self, request: OrderRequest, inst: Instrument, book: OrderBook | None) -> None:
        venue, size = request.venue, request.size_base
        if size <= ZERO:
            raise OrderRejected(venue, f"size_base: must be positive, got {size}")
        if not is_lot_multiple(size, inst.lot_size_base):
            raise OrderRejected(venue, f"size_base: {size} is not a multiple of lot_size_base {inst.lot_size_base}")
        if size < inst.min_size_base:
            raise OrderRejected(venue, f"size_base: {size} is below min_size_base {inst.min_size_base}")
        if is_spot(venue) and request.reduce_only:
            raise OrderRejected(venue, "reduce_only: spot markets have no reduce-only orders")
        if request.order_type is OrderType.LIMIT and request.limit_price is None:
            raise OrderRejected(venue, "limit_price: required for limit orders")
        price = request.limit_price
        if price is not None:
            if price <= ZERO:
                raise OrderRejected(venue, f"limit_price: must be positive, got {price}")
            if inst.tick_size > ZERO and price % inst.tick_size != ZERO:
                raise OrderRejected(venue, f"limit_price: {price} is not a multiple of tick_size {inst.tick_size}")
        if book is None and not _is_resting_type(request):
            raise OrderRejected(venue, f"book: no order book for {request.symbol}")
        if request.post_only:
            if not _is_resting_type(request):
                raise OrderRejected(venue, "post_only: only GTC limit orders can be post-only")
            touch = None if book is None else (book.best_ask if request.side is OrderSide.BUY else book.best_bid)
            if touch is not None and price is not None and (
                    price >= touch if request.side is OrderSide.BUY else price <= touch):
                raise OrderRejected(venue, f"post_only: limit_price {price} would cross the book (touch {touch})")
        if inst.min_notional_usd > ZERO and not request.reduce_only:
            ref = price
            if ref is None and book is not None:
                ref = book.best_ask if request.side is OrderSide.BUY else book.best_bid
            if ref is not None and size * ref < inst.min_notional_usd:
                raise OrderRejected(
                    venue, f"size_base: notional {size * ref} is below min_notional_usd {inst.min_notional_usd}"
                )

    def _execute(self, request: OrderRequest, partial_fraction: Decimal | None) -> OrderReport:
        """Match ``request`` now and commit it (order + fills + position + balance in one write)."""
        venue, symbol, side = request.venue, request.symbol, request.side
        if venue not in self._fees:
            raise OrderRejected(venue, f"venue: unknown venue {venue}")
        inst = self._books.instrument(venue, symbol)
        if inst is None:
            raise OrderRejected(venue, f"symbol: unknown instrument {symbol}")
        book = self._books.book(venue, symbol)
        self._validate(request, inst, book)

        draft = _Draft(self)
        now_ms = self._now_ms()
        size = request.size_base
        reason: str | None = None
        spot = is_spot(venue)
        if spot and side is OrderSide.SELL:
            # No borrowing: a spot sell can only sell coins the wallet holds.
            held = draft.position(venue, symbol).size_base
            if size > held:
                raise OrderRejected(venue, f"size_base: insufficient balance, sell {size} but wallet holds {held}")
        if request.reduce_only:
            position_base = draft.position(venue, symbol).size_base
            reducible = _reducible_base(side, position_base)
            if reducible == ZERO:
                what = "no position to reduce" if position_base == ZERO else "order would increase the position"
                raise OrderRejected(venue, f"reduce_only: {what}")
            if reducible < size:
                reason = f"reduce_only: size clamped from {size} to {reducible}"
                size = reducible

        resting = _is_resting_type(request)
        walk_size = size
        if partial_fraction is not None and floor_to_lot(size * partial_fraction, inst.lot_size_base) < size:
            walk_size = floor_to_lot(size * partial_fraction, inst.lot_size_base)
            reason = "partial fill (injected)"
        walk = (
            None if request.post_only else walk_book(
                self._levels(book, side, draft),
                side,
                walk_size,
                limit_price=request.limit_price,
                lot_size_base=inst.lot_size_base,
            )
            if book is not None
            else None
        )
        seq = draft.next_id(f"order_seq:{venue}")
        fee_rate = self._fees[venue].rate(Liquidity.TAKER)
        for level in walk.fills if walk is not None else ():
            n = draft.next_id(f"trade_seq:{venue}")
            # Spot buys pay their fee in the coin bought (as Bybit, Binance and OKX spot do).
            fee_base = level.size_base * fee_rate if spot and side is OrderSide.BUY else ZERO
            draft.add_fill(
                Fill(
                    venue=venue,
                    symbol=symbol,
                    client_order_id=request.client_order_id,
                    trade_id=trade_id_for(venue, n),
                    side=side,
                    price=level.price,
                    size_base=level.size_base,
                    fee_usd=fee_usd(level.price, level.size_base, fee_rate),
                    liquidity=Liquidity.TAKER,
                    ts_ms=now_ms,
                    fee_base=fee_base,
                )
            )
            draft.taken.append((book, side, level.price, level.size_base))
        filled = walk.filled_base if walk is not None else ZERO

        if filled == size:
            status = OrderStatus.FILLED
        elif resting:
            status = OrderStatus.PARTIALLY_FILLED if filled > ZERO else OrderStatus.NEW
        else:
            status = OrderStatus.CANCELED
            reason = reason or (
                "ioc: remainder canceled, insufficient liquidity within limit" if filled
                else "ioc: nothing fillable within limit"
            )
        draft.orders[(venue, request.client_order_id)] = StoredOrder(
            venue=venue,
            client_order_id=request.client_order_id,
            venue_order_id=venue_order_id_for(venue, seq),
            seq=seq,
            symbol=symbol,
            side=side,
            order_type=request.order_type,
            time_in_force=request.time_in_force,
            limit_price=request.limit_price,
            requested_base=size,
            filled_base=filled,
            status=status,
            reduce_only=request.reduce_only,
            reason=reason,
            created_ts_ms=now_ms,
            updated_ts_ms=now_ms,
            post_only=request.post_only,
        )
        self._commit(draft)
        return self._report(self._orders[(venue, request.client_order_id)])

    async def cancel_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        """Cancel a resting order. None for an unknown id; a terminal order's report comes back unchanged."""
        self._check_up(venue)
        half_s = (self._latency_for(venue) + self._faults.draw_latency_spike_s()) / 2
        await self._wait(half_s)
        order = self._orders.get((venue, client_order_id))
        if order is not None and not order.status.is_terminal:
            draft = _Draft(self)
            draft.orders[(venue, client_order_id)] = replace(
                order, status=OrderStatus.CANCELED, reason="canceled by client", updated_ts_ms=self._now_ms()
            )
            self._commit(draft)
            order = self._orders[(venue, client_order_id)]
        await self._wait(half_s)
        return None if order is None else self._report(order)

    async def cancel_all_orders(self, venue: str | None = None) -> int:
        """Cancel every resting order on ``venue`` (or everywhere) in one write; returns how many."""
        self._check_up(venue)
        half_s = (self._latency_for(venue) + self._faults.draw_latency_spike_s()) / 2
        await self._wait(half_s)
        draft = _Draft(self)
        now_ms = self._now_ms()
        for (v, _symbol), index in self._resting.items():
            if venue is not None and v != venue:
                continue
            for cid in index:
                draft.orders[(v, cid)] = replace(
                    self._orders[(v, cid)], status=OrderStatus.CANCELED, reason="canceled by client",
                    updated_ts_ms=now_ms,
                )
        if draft.orders:
            self._commit(draft)
        await self._wait(half_s)
        return len(draft.orders)

    async def get_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        """The order's current report, or None when this venue never executed it."""
        await self._round_trip(venue)
        order = self._orders.get((venue, client_order_id))
        if order is None and self._horizon_ms:
            stored = self._store.order(venue, client_order_id)  # older than the in-memory window
            return None if stored is None else self._report(stored[0], stored[1])
        return None if order is None else self._report(order)

    # -- Executor: accounts -------------------------------------------------------------------------

    async def positions(self, venue: str | None = None) -> list[VenuePosition]:
        """Non-zero positions, marked at the book mid when a book is available. Spot markets hold
        wallets, not positions: they are read with ``spot_wallet_base``."""
        await self._round_trip(venue)
        out = []
        for (v, symbol), pos in sorted(self._positions.items()):
            if pos.size_base == ZERO or (venue is not None and v != venue) or is_spot(v):
                continue
            book = self._books.book(v, symbol)
            out.append(
                VenuePosition(
                    venue=v,
                    symbol=symbol,
                    size_base=pos.size_base,
                    entry_price=pos.entry_price,
                    mark_price=book.mid if book is not None else None,
                )
            )
        return out

    async def spot_wallet_base(self, market: str) -> dict[str, Decimal]:
        """``bot.core.ports.SpotWallet``: the coins the spot wallet behind ``market`` holds."""
        await self._round_trip(market)
        if not is_spot(market):
            raise OrderRejected(market, f"venue: {market} is not a spot market")
        return {sym: p.size_base for (v, sym), p in sorted(self._positions.items()) if v == market and p.size_base != 0}

    async def balances_usd(self) -> dict[str, Decimal]:
        """Cash balance per venue: starting balance + realized PnL - fees + funding (no unrealized PnL)."""
        await self._round_trip(None)
        return {v: b.balance_usd for v, b in sorted(self._balances.items())}

    async def fills_since(self, venue: str, since_ts_ms: int) -> list[Fill]:
        """Every fill on ``venue`` with ``ts_ms >= since_ts_ms``, in execution order."""
        await self._round_trip(venue)
        if since_ts_ms < self._horizon_ms:
            return self._store.fills_since(venue, since_ts_ms)
        return [f for f in self._venue_fills.get(venue, ()) if f.ts_ms >= since_ts_ms]

    async def funding_payments_since(self, venue: str, since_ts_ms: int) -> list[FundingPayment]:
        """Every funding payment on ``venue`` with ``ts_ms >= since_ts_ms``."""
        await self._round_trip(venue)
        if since_ts_ms < self._horizon_ms:
            writes = self._funding_writes[venue]
            cached = self._old_funding.get(venue)
            if cached is not None and cached[:3] == (since_ts_ms, self._horizon_ms, writes):
                return list(cached[3])
            answer = self._store.funding_since(venue, since_ts_ms)
            self._old_funding[venue] = (since_ts_ms, self._horizon_ms, writes, answer)
            return list(answer)
        return [p for p in self._funding.get(venue, ()) if p.ts_ms >= since_ts_ms]

    # -- venue-side hooks (no latency, no faults) ---------------------------------------------------

    def match_resting(self, venue: str | None = None, symbol: str | None = None) -> list[Fill]:
        """Fill resting limit orders the current books cross, at their limit price, as maker.

        Time priority within a venue/symbol; fill size is bounded by the crossing depth (whole lots)
        and, for reduce-only orders, by the position at that moment. One write for the whole pass.
        """
        draft = _Draft(self)
        now_ms = self._now_ms()
        for (v, sym), index in list(self._resting.items()):
            if not index or (venue is not None and v != venue) or (symbol is not None and sym != symbol):
                continue
            book = self._books.book(v, sym)
            if book is None:
                continue
            inst = self._books.instrument(v, sym)
            lot = inst.lot_size_base if inst is not None else None
            fee_rate = self._fees[v].rate(Liquidity.MAKER) if v in self._fees else ZERO
            for cid in list(index):
                self._match_one(draft, draft.order(v, cid), book, lot, fee_rate, now_ms)
        if draft.orders:
            self._commit(draft)
        return list(draft.fills)

    def on_book_update(self, venue: str, symbol: str) -> list[Fill]:
        """Hook for a new book on ``venue``/``symbol``: match the resting orders it may cross."""
        return self.match_resting(venue, symbol)

    def _match_one(
        self, draft: _Draft, order: StoredOrder, book: OrderBook, lot: Decimal | None, fee_rate: Decimal, now_ms: int
    ) -> None:
        key = (order.venue, order.client_order_id)
        want = order.remaining_base
        if order.reduce_only:
            want = min(want, _reducible_base(order.side, draft.position(order.venue, order.symbol).size_base))
            if want == ZERO:
                draft.orders[key] = replace(
                    order, status=OrderStatus.CANCELED, reason="reduce_only: no position left to reduce",
                    updated_ts_ms=now_ms,
                )
                return
        levels = self._levels(book, order.side, draft)
        if order.post_only and order.limit_price is not None:
            levels = traded_through(levels, order.side, order.limit_price)
        walk = walk_book(levels, order.side, want, limit_price=order.limit_price, lot_size_base=lot)
        size = walk.filled_base
        if size == ZERO:
            return
        price = order.limit_price
        if price is None:  # resting orders are always limits; validation guarantees it
            raise RuntimeError(f"resting order {order.client_order_id} has no limit price")
        n = draft.next_id(f"trade_seq:{order.venue}")
        draft.add_fill(
            Fill(
                venue=order.venue,
                symbol=order.symbol,
                client_order_id=order.client_order_id,
                trade_id=trade_id_for(order.venue, n),
                side=order.side,
                price=price,
                size_base=size,
                fee_usd=fee_usd(price, size, fee_rate),
                liquidity=Liquidity.MAKER,
                ts_ms=now_ms,
            )
        )
        draft.taken.extend((book, order.side, lf.price, lf.size_base) for lf in walk.fills)
        filled = order.filled_base + size
        if filled == order.requested_base:
            status, reason = OrderStatus.FILLED, order.reason
        elif order.reduce_only and draft.position(order.venue, order.symbol).size_base == ZERO:
            status, reason = OrderStatus.CANCELED, "reduce_only: position closed, remainder canceled"
        else:
            status, reason = OrderStatus.PARTIALLY_FILLED, order.reason
        draft.orders[key] = replace(order, filled_base=filled, status=status, reason=reason, updated_ts_ms=now_ms)

    async def advance(self, settlements: list[FundingSettlement]) -> list[FundingPayment]:
        """After a market step: settle funding at each settlement instant, then match resting orders."""
        payments: list[FundingPayment] = []
        for settlement in settlements:
            payments.extend(self.settle_funding(settlement))
        self.match_resting()
        now_ms = self._now_ms()
        if now_ms - self._last_prune_ms >= _PRUNE_EVERY_MS:
            self._last_prune_ms = now_ms
            self.prune_history(now_ms)
        return payments

    async def aclose(self) -> None:
        """Close the venues' store."""
        self._store.close()

    def settlement_keys(self) -> Collection[tuple[str, str]]:
        """The (venue, symbol) keys these venues ever held a position on (flat ones included):
        ``settle_funding`` of any other key pays nothing and finds no earlier payment (a payment
        needs a position), so a market may leave their settlements out (``SimulatedMarket.settle_only``)."""
        return self._positions.keys()

    def settle_funding(self, settlement: FundingSettlement) -> list[FundingPayment]:
        """Pay/charge funding on the position held on ``settlement``'s venue/symbol at that instant.

        Longs pay positive rates and shorts receive them (``domain.funding_payment_usd``). The
        payment id is ``venue:symbol:ts_ms``, so settling the same instant again changes nothing
        and returns the payment already made. A flat position pays nothing and returns [].
        """
        if is_spot(settlement.venue):
            return []  # spot pays no funding
        pid = funding_payment_id(settlement.venue, settlement.symbol, settlement.ts_ms)
        if pid in self._funding_ids:
            return [self._funding_by_id[pid]]
        if settlement.ts_ms < self._horizon_ms:
            stored = self._store.funding_payment(pid)  # settled before the in-memory window
            if stored is not None:
                return [stored]
        position_base = self._position(settlement.venue, settlement.symbol).size_base
        if position_base == ZERO:
            return []
        payment = FundingPayment(
            payment_id=pid,
            venue=settlement.venue,
            symbol=settlement.symbol,
            ts_ms=settlement.ts_ms,
            rate=settlement.rate,
            position_size_base=position_base,
            mark_price=settlement.mark_price,
            amount_usd=funding_payment_usd(settlement.rate, position_base, settlement.mark_price),
        )
        draft = _Draft(self)
        draft.add_funding(payment)
        self._commit(draft)
        return [payment]
