"""The engine's state and its shared helpers: position and order maps, locks, persistence, events.

The trading engine is split by job: ``entry`` (atomic two-leg open), ``repair`` (complete or unwind a
one-sided fill), ``exit`` (close, verify flat, shutdown flatten), ``reconcile`` (venue truth,
orphans, unknown outcomes), ``restore`` (reload after a restart, funding records) and ``orders``
(sending, lookups, applying reports). ``TradingEngine`` in ``bot.engine`` composes them over this core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from loguru import logger

from bot.core.domain import (
    ZERO,
    ExecutionMode,
    Liquidity,
    OrderSide,
    is_spot,
    FeeSchedule,
    Instrument,
    LegSide,
    OrderBook,
    OrderReport,
    OrderRequest,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from bot.core.funding_math import floor_to_step
from bot.core.order_pricing import protective_limit_price
from bot.core.ports import Clock, Executor
from bot.logging_setup import log_event
from machines.position import PositionFsm, PositionState
from risk.trading_state import GateDecision, OrderIntent
from storage import (
    AsyncStorage,
    EventRecord,
    OrderPurpose,
    Severity,
    client_order_id,
)
from storage import (
    OrderIntent as StoredOrderIntent,
)
from storage.ids import MAX_ATTEMPT

UNKNOWN_STATUS = "unknown"
FLATTEN_ATTEMPTS = 20  # per position, with backoff 1, 2, 4 ... 60 clock seconds
# Order statuses whose outcome reconciliation must still look up at the venue.
_UNSETTLED_STATUSES = (UNKNOWN_STATUS, OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value, "intent")
_PURPOSES = ("open", "repair", "unwind", "close", "flatten")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Execution parameters (from settings [execution], [risk], [reconcile])."""

    leg_timeout_s: float = 5.0
    repair_attempts: int = 3
    repair_widen_bps: Decimal = Decimal(10)
    max_slippage_bps: Decimal = Decimal(10)
    hedge_tolerance_lots: int = 0
    lookup_attempts: int = 3
    lookup_backoff_s: float = 0.05
    orphan_policy: str = "alert"
    # Entry execution (settings strategy.execution, [execution] maker_*): see bot.engine.maker.
    execution: ExecutionMode = ExecutionMode.TAKER
    maker_timeout_s: float = 60.0  # clock seconds a maker order may rest before the rest is cancelled
    maker_offset_ticks: int = 0  # ticks behind our own side's touch (0 = join the best bid/ask)


@dataclass(slots=True)
class OrderMeta:
    position_id: str
    leg: LegSide
    purpose: str
    venue: str
    status: str


@dataclass(slots=True)
class EngineMetrics:
    """Measurements for benchmarks, breakers and the report (wall-clock based)."""

    dispatch_skew_ns: list[int] = field(default_factory=list)
    unhedged_windows_ms: list[float] = field(default_factory=list)
    orders_sent: int = 0
    # Maker-taker entries: the unhedged window of each maker fill (detected -> hedged), and counts.
    maker_fill_windows_ms: list[float] = field(default_factory=list)
    maker_orders: int = 0
    maker_fills_hedged: int = 0


@dataclass(frozen=True, slots=True)
class MakerWork:
    """A resting maker entry order being worked: its id, leg, venue and when it was placed."""

    client_order_id: str
    leg: LegSide
    venue: str
    started_ts_ms: int


@dataclass(frozen=True, slots=True)
class ReconcileFinding:
    kind: str  # "leg_mismatch" | "orphan" | "foreign_exposure" | "venue_unreachable" | "missed_fill"
    venue: str
    symbol: str
    expected_base: Decimal
    actual_base: Decimal | None
    position_id: str | None = None


OrderGate = Callable[[OrderIntent], GateDecision]
BookLookup = Callable[[str, str], OrderBook | None]
InstrumentLookup = Callable[[str, str], Instrument | None]



class EngineCore:
    """State shared by every part of the engine, and the helpers they all use."""

    def __init__(
        self,
        *,
        executor: Executor,
        store: AsyncStorage,
        clock: Clock,
        config: EngineConfig,
        book: BookLookup,
        instrument: InstrumentLookup,
        gate: OrderGate,
        on_unhedged_window: Callable[[str, float], None] | None = None,
        on_venue_result: Callable[[str, bool], None] | None = None,
        on_orders_away: Callable[[], None] | None = None,
        known_venues: Iterable[str] = (),
        fees: Callable[[str], FeeSchedule | None] | None = None,
    ) -> None:
        self.executor = executor
        self.store = store
        self.clock = clock
        self.config = config
        self._book = book
        self._instrument = instrument
        self._gate = gate
        self._on_unhedged_window = on_unhedged_window or (lambda _pid, _ms: None)
        self._on_venue_result = on_venue_result or (lambda _venue, _ok: None)
        # Called once the legs of a concurrent dispatch have all started (each ran up to its first
        # wait: its request is with the venue's client), e.g. to let the collector run again.
        self._on_orders_away = on_orders_away or (lambda: None)
        self.positions: dict[str, PositionFsm] = {}
        self.orders: dict[str, OrderMeta] = {}
        self.metrics = EngineMetrics()
        self._unhedged_since_ns: dict[str, int] = {}
        self.unhedged_ms: dict[tuple[str, str], float] = {}
        self.fees_usd: dict[str, Decimal] = {}
        self._emergency_exits: set[str] = set()
        self.funding_usd: dict[str, Decimal] = {}
        self.known_venues: set[str] = set(known_venues)
        self._attempts: dict[tuple[str, str, LegSide], int] = {}
        self._cid_attempt: dict[str, int] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._fees = fees or (lambda _venue: None)
        self._makers: dict[str, MakerWork] = {}  # position id -> its resting maker entry order
        # Indexes (kept in step with ``positions`` and ``orders``; closed positions leave them when
        # ``evict_closed`` retires them): position ids per (venue, symbol) in registration order,
        # and each position's orders and client order ids.
        self._by_leg: dict[tuple[str, str], list[str]] = {}
        self._orders_of: dict[str, dict[str, OrderMeta]] = {}
        self._cids_of: dict[str, set[str]] = {}
        # Money and counts of positions retired from memory (the database keeps every detail).
        self.retired_funding_usd = ZERO
        self.retired_fees_usd = ZERO
        self.retired_count = 0
        # (venue, symbol) -> signed size no position owns, as of the latest reconciliation.
        self.orphaned: dict[tuple[str, str], Decimal] = {}
        # client order id -> (venue, symbol) of orders whose latest venue answer could not be acted on
        # (``bot.engine.report_check``): outcome unknown, entries on the symbol refused.
        self.inconsistent_orders: dict[str, tuple[str, str]] = {}
        # client order ids whose latest look-up said "not found YET" (``OrderNotFoundYet``: the venue
        # is answering, and the answer becomes final once the request's venue-side expiry passes).
        self.not_found_yet: set[str] = set()
        # Per venue: the latest funding payment time recorded (None: none) and the ids recorded at
        # that time; read from the store once per venue, then kept by ``record_funding``.
        self._funding_seen: dict[str, tuple[int | None, set[str]]] = {}
        # (spot market, symbol) -> wallet balance that is not the bot's (``bot.engine.spot``).
        self.spot_baselines: dict[tuple[str, str], Decimal] = {}
        # position id -> (journal row id, encoded rows) of an entry whose intent is journalled and
        # whose normal rows are not written yet (``EntryMixin._persist_entry_intent``).
        self._entry_journal: dict[str, tuple[int, Any]] = {}
        self._entry_journal_settling: dict[str, anyio.Event] = {}  # a settle in flight, per position
        PositionFsm.prepare_spare()  # the first entry's machine model, built before any entry

    # ------------------------------------------------------------------ queries
    def orphaned_symbols(self) -> frozenset[str]:
        """Symbols where a venue holds size no position owns, or where an order's venue answer could
        not be acted on (entries are refused on them)."""
        return (frozenset(symbol for (_venue, symbol), size in self.orphaned.items() if size != 0)
                | frozenset(symbol for _venue, symbol in self.inconsistent_orders.values()))

    def active_positions(self) -> list[PositionFsm]:
        return [p for p in self.positions.values() if p.state != PositionState.CLOSED.value]

    def owner_of(self, venue: str, symbol: str) -> tuple[PositionFsm, LegSide] | None:
        """The active position holding ``symbol`` on ``venue`` (one position per symbol); indexed."""
        for position_id in self._by_leg.get((venue, symbol), ()):
            pos = self.positions[position_id]
            if pos.state == PositionState.CLOSED.value:
                continue
            if pos.long_venue == venue:
                return pos, LegSide.LONG
            if pos.short_venue == venue:
                return pos, LegSide.SHORT
        return None

    def total_funding_usd(self) -> Decimal:
        """Funding recorded against positions this run (in memory or retired)."""
        return self.retired_funding_usd + sum(self.funding_usd.values(), ZERO)

    def total_fees_usd(self) -> Decimal:
        """Fees of the fills of positions this run (in memory or retired)."""
        return self.retired_fees_usd + sum(self.fees_usd.values(), ZERO)

    def closed_count(self) -> int:
        """Positions closed this run (in memory or retired)."""
        return self.retired_count + sum(1 for p in self.positions.values() if p.state == PositionState.CLOSED.value)

    # ------------------------------------------------------------------ registration
    def _register(self, pos: PositionFsm) -> None:
        """Track a position and index its legs."""
        self.positions[pos.position_id] = pos
        for venue in (pos.long_venue, pos.short_venue):
            self._by_leg.setdefault((venue, pos.symbol), []).append(pos.position_id)

    def _unregister(self, position_id: str) -> PositionFsm | None:
        """Forget a position and every index entry of it (its orders included)."""
        pos = self.positions.pop(position_id, None)
        if pos is None:
            return None
        for venue in (pos.long_venue, pos.short_venue):
            ids = self._by_leg.get((venue, pos.symbol))
            if ids is not None:
                if position_id in ids:
                    ids.remove(position_id)
                if not ids:
                    del self._by_leg[(venue, pos.symbol)]
        for cid in self._orders_of.pop(position_id, {}):
            self.orders.pop(cid, None)
            self.not_found_yet.discard(cid)
        for cid in self._cids_of.pop(position_id, ()):
            self._cid_attempt.pop(cid, None)
        for purpose in _PURPOSES:
            for leg in LegSide:
                self._attempts.pop((position_id, purpose, leg), None)
        self._locks.pop(position_id, None)
        self._emergency_exits.discard(position_id)
        self._unhedged_since_ns.pop(position_id, None)
        for phase in ("entry", "exit"):
            self.unhedged_ms.pop((position_id, phase), None)
        return pos

    def evict_closed(self) -> list[str]:
        """Retire closed positions from memory; returns their ids. The database stays the record.

        A closed position leaves only when nothing can still change it: its close was persisted
        (it is CLOSED and nobody holds its lock), and no order of it is unsettled (an unknown,
        resting or unsent order keeps it, so a late fill is still applied and reported through
        ``fill_after_close``). Its funding and fees move into the retired totals.
        """
        retired = []
        for position_id, pos in list(self.positions.items()):
            if pos.state != PositionState.CLOSED.value:
                continue
            lock = self._locks.get(position_id)
            if lock is not None and lock.locked():
                continue
            if any(m.status in _UNSETTLED_STATUSES for m in self._orders_of.get(position_id, {}).values()):
                continue
            self.retired_funding_usd += self.funding_usd.pop(position_id, ZERO)
            self.retired_fees_usd += self.fees_usd.pop(position_id, ZERO)
            self.retired_count += 1
            self._unregister(position_id)
            retired.append(position_id)
        return retired

    def lock_for(self, position_id: str) -> anyio.Lock:
        """Serialises every action on one position (strategy, reconciliation and shutdown share it)."""
        lock = self._locks.get(position_id)
        if lock is None:
            # fast_acquire: an uncontended acquire does not yield to the event loop (an entry's
            # path from decision to orders would otherwise wait behind every ready stream handler);
            # a contended one waits in line exactly as before.
            lock = self._locks[position_id] = anyio.Lock(fast_acquire=True)
        return lock

    # ------------------------------------------------------------------ helpers
    def _order(
        self, pos: PositionFsm, leg: LegSide, purpose: str, size_base: Decimal, *,
        attempt: int, reduce_only: bool = False, emergency: bool = False, widen_steps: int | None = None,
    ) -> OrderRequest:
        is_close = purpose in ("close", "unwind")
        side = leg.close_side if is_close else leg.open_side
        venue = pos.long_venue if leg is LegSide.LONG else pos.short_venue
        key = (pos.position_id, purpose, leg)
        attempt = max(attempt, self._attempts.get(key, -1) + 1)
        if attempt > MAX_ATTEMPT:
            # Thousands of failed attempts: re-using the last id makes every further send a
            # harmless idempotent lookup instead of crashing the loop; a human must step in.
            logger.bind(kind="attempts_exhausted", position_id=pos.position_id).critical(
                f"{purpose} {leg.value} on {venue} exhausted {MAX_ATTEMPT} attempts: manual intervention needed")
            attempt = MAX_ATTEMPT
        self._attempts[key] = attempt
        cid = client_order_id(pos.position_id, purpose, leg, attempt)
        self._cid_attempt[cid] = attempt
        self._cids_of.setdefault(pos.position_id, set()).add(cid)
        inst = self._instrument(venue, pos.symbol)
        tick = inst.tick_size if inst is not None else Decimal("0.0001")
        # Each further attempt of a purpose widens the bound, up to a cap of 10 steps.
        if widen_steps is None:
            widen_steps = min(max(0, attempt - 1), 10) if purpose != "open" else 0
        if is_spot(pos.long_venue):
            size_base = self._carry_order_size(venue, pos.symbol, side, size_base, inst)
            if is_spot(venue):
                reduce_only = False  # spot has no reduce-only: sells are bounded by the leg (wallet - baseline)
        limit = protective_limit_price(
            self._book(venue, pos.symbol), side,
            max_slippage_bps=self.config.max_slippage_bps, tick_size=tick,
            attempt=widen_steps, widen_bps=self.config.repair_widen_bps,
        )
        return OrderRequest(
            client_order_id=cid,
            venue=venue,
            symbol=pos.symbol,
            side=side,
            size_base=size_base,
            order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
            limit_price=limit,
            time_in_force=TimeInForce.IOC,
            reduce_only=(reduce_only or is_close) and not is_spot(venue),
        )

    def spot_buy_fee_rate(self, market: str) -> Decimal:
        """The taker fee fraction a spot buy on ``market`` is expected to pay in the base coin."""
        schedule = self._fees(market)
        return schedule.rate(Liquidity.TAKER) if schedule is not None and schedule.taker_bps > 0 else ZERO

    def _carry_order_size(self, venue: str, symbol: str, side: OrderSide, size_base: Decimal,
                          inst: Instrument | None) -> Decimal:
        """Sizes of a carry position's orders. ``size_base`` is the NET base a leg must change by.

        A spot BUY is grossed up for the base-coin fee (``net / (1 - fee)``) and rounded UP to the spot
        lot, so what reaches the wallet covers the perp hedge; a spot SELL and every perp order are
        rounded DOWN to their lot (a base-coin fee leaves sub-lot sizes; what cannot be traded is
        within the carry tolerance, or released as dust at the close)."""
        lot = inst.lot_size_base if inst is not None else ZERO
        if lot <= 0:
            return size_base
        if is_spot(venue) and side is OrderSide.BUY:
            gross = size_base / (1 - self.spot_buy_fee_rate(venue))
            floored = floor_to_step(gross, lot)
            return floored if floored == gross else floored + lot
        return floor_to_step(size_base, lot)

    def _tolerance_for(self, symbol: str, long_venue: str, short_venue: str, target_base: Decimal) -> Decimal:
        """``_tolerance_base``, kept below the target (a position machine needs tolerance < target): a
        carry of one perp lot, or one whose hedged size was accepted smaller, gets half its target."""
        tolerance = self._tolerance_base(symbol, long_venue, short_venue)
        return tolerance if tolerance < target_base or target_base <= 0 else target_base / 2

    def _tolerance_base(self, symbol: str, long_venue: str, short_venue: str) -> Decimal:
        lots = [i.lot_size_base for i in (self._instrument(long_venue, symbol), self._instrument(short_venue, symbol)) if i]
        largest = max(lots) if lots else ZERO
        if is_spot(long_venue):
            # Carry: a base-coin fee makes the spot leg a non-lot size, so the legs match only to
            # within one lot; but to one lot of the FINER instrument (usually spot), since that leg
            # can always be bought or sold to close any larger gap. (One lot of the coarser perp
            # accepted a perp short of 0.1 against 0.000999 of spot as "hedged".)
            return min(lots) * max(1, self.config.hedge_tolerance_lots) if lots else ZERO
        return largest * self.config.hedge_tolerance_lots

    def _remember(self, req: OrderRequest, position_id: str, leg: LegSide, purpose: str) -> None:
        self._track_order(req.client_order_id, OrderMeta(position_id, leg, purpose, req.venue, "intent"))

    def _track_order(self, cid: str, meta: OrderMeta) -> None:
        """Keep an order's meta, indexed by client order id and by position."""
        self.orders[cid] = meta
        self._orders_of.setdefault(meta.position_id, {})[cid] = meta

    def orders_of(self, position_id: str) -> dict[str, OrderMeta]:
        """The orders of one position by client order id (indexed, not scanned)."""
        return self._orders_of.get(position_id, {})

    def _legs_balanced(self, pos: PositionFsm) -> bool:
        """No net exposure beyond tolerance (hedged, or both legs flat): nothing to complete or unwind.

        With a non-zero tolerance (carry), one leg open and the other empty is never balanced: it is a
        naked leg however small, except a spot remainder below one spot lot with no perp left (dust,
        released by ``bot.engine.spot`` rather than traded)."""
        long_base, short_base = pos.long_filled_base, pos.short_filled_base
        if abs(long_base - short_base) > pos.tolerance_base:
            return False
        if (long_base > 0) == (short_base > 0):
            return True
        if short_base == 0 and is_spot(pos.long_venue):
            inst = self._instrument(pos.long_venue, pos.symbol)
            return inst is not None and long_base < inst.lot_size_base
        return False

    def _has_unknown_orders(self, position_id: str) -> bool:
        return any(m.status in (UNKNOWN_STATUS, "intent") for m in self._orders_of.get(position_id, {}).values())

    @staticmethod
    def _synthetic(req: OrderRequest, status: OrderStatus, reason: str) -> OrderReport:
        return OrderReport(
            client_order_id=req.client_order_id, venue=req.venue, symbol=req.symbol, side=req.side,
            status=status, requested_base=req.size_base, filled_base=ZERO, avg_price=None,
            reduce_only=req.reduce_only, reason=reason,
        )

    @staticmethod
    def _legs_text(pos: PositionFsm) -> str:
        return f"long {pos.long_filled_base} / short {pos.short_filled_base} of {pos.target_size_base}"

    def _intent(self, position_id: str, leg: LegSide, purpose: str, req: OrderRequest, now_ms: int) -> StoredOrderIntent:
        return StoredOrderIntent(
            request=req,
            purpose=OrderPurpose(purpose),
            created_at_ts_ms=now_ms,
            position_id=position_id,
            leg=leg,
            attempt=self._cid_attempt.get(req.client_order_id, 0),
        )

    async def _persist(self, pos: PositionFsm, *, closed: bool = False) -> None:
        now_ms = self.clock.now_ms()
        fields: dict[str, Any] = {
            "state": str(pos.state.value if hasattr(pos.state, "value") else pos.state),
            "target_size_base": pos.target_size_base,
            "long_size_base": pos.long_filled_base,
            "short_size_base": pos.short_filled_base,
            "exit_reason": pos.exit_reason,
        }
        if closed:
            fields["closed_at_ts_ms"] = now_ms
        for phase in ("entry", "exit"):
            if (pos.position_id, phase) in self.unhedged_ms:
                fields[f"unhedged_ms_{phase}"] = round(self.unhedged_ms[(pos.position_id, phase)])
        transitions = self._stamp(pos.drain_transitions(), now_ms)
        await self.store.update_position_with_transitions(pos.position_id, now_ms, transitions, **fields)
        self._log_transitions(transitions)

    async def _settle_entry_journal(self, position_id: str) -> None:
        """Write a journalled entry's normal rows (position, order intents, transition) now, if still
        pending: called once its orders are away and before anything about them is recorded. On a
        failure the journal row stays on disk (a restart writes it) and the next call tries again.

        A call while another task's settle of the same entry is in flight waits for it, and settles
        itself if that one failed or was cancelled: returning at once (the rows "being written")
        let a leg record its fill before its order row existed when the other settle was cancelled
        (tests/test_engine_journal_settle.py)."""
        while (in_flight := self._entry_journal_settling.get(position_id)) is not None:
            await in_flight.wait()
        pending = self._entry_journal.pop(position_id, None)
        if pending is None:
            return
        done = self._entry_journal_settling[position_id] = anyio.Event()
        try:
            await self.store.settle_entry_journal(*pending)
        except BaseException:
            self._entry_journal[position_id] = pending
            raise
        finally:
            del self._entry_journal_settling[position_id]
            done.set()

    @staticmethod
    def _stamp(records: list[Any], now_ms: int) -> list[Any]:
        return [r if r.ts_ms is not None else r.stamped(now_ms) for r in records]

    @staticmethod
    def _log_transitions(records: list[Any]) -> None:
        for r in records:
            logger.bind(kind="transition", machine=r.entity, entity_id=r.entity_id, source=r.source, dest=r.dest,
                        trigger=r.trigger, reason=r.reason, ts_ms=r.ts_ms).info(
                f"{r.entity} {r.entity_id}: {r.source} -> {r.dest} ({r.trigger}: {r.reason})")

    async def _event(self, kind: str, entity_id: str | None, severity: str, message: str,
                     details: dict[str, Any] | None = None) -> None:
        log_event(kind, severity, message, entity_id)
        await self.store.record_event(EventRecord(self.clock.now_ms(), kind, Severity(severity), message,
                                                  entity_id, details or None))

