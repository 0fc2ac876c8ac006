"""The trading engine: carries out opens, repairs, closes and reconciliation against an Executor.

It is the async shell around the position machines. The money-safety protocol (DESIGN.md s3):

* Entry: the position row and both order intents (deterministic client order ids) are persisted in
  one transaction BEFORE any order is sent; both legs are then dispatched concurrently as IOC limit
  orders bounded by the slippage cap. Both filled -> ``monitoring``; anything else -> ``recovering``.
* Repair (``recovering``): complete the lagging leg with widening IOC attempts; if that fails, unwind
  the excess reduce-only. A position whose exit had begun is repaired towards flat instead.
* Exit: both legs closed concurrently with reduce-only orders, then flatness is verified against the
  venue's own positions before ``closed``.
* An order whose outcome is unknown (timeout, venue down) is looked up by client order id; while it
  stays unknown the position cannot be declared hedged or flat by us: reconciliation settles it.

The unhedged window (wall time during which a position's net base exposure exceeded tolerance) is
measured for every entry and exit and reported to breakers via ``on_unhedged_window``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from loguru import logger

from adapters.errors import AbsurdVenueData, FatalVenueError, OrderRejected, TemporaryVenueError
from bot.domain import (
    ZERO,
    Fill,
    FundingPayment,
    Instrument,
    LegSide,
    Opportunity,
    OrderBook,
    OrderReport,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    VenuePosition,
)
from bot.logging_setup import log_event
from bot.order_pricing import protective_limit_price
from bot.ports import Clock, Executor
from machines.position import PositionFsm, PositionState
from risk.trading_state import GateDecision, IntentKind, OrderIntent
from storage.ids import MAX_ATTEMPT
from storage import (
    AsyncStorage,
    EventRecord,
    OrderIntent as StoredOrderIntent,
    OrderPurpose,
    PositionRecord,
    Severity,
    client_order_id,
)

UNKNOWN_STATUS = "unknown"
FLATTEN_ATTEMPTS = 20  # per position, with backoff 1, 2, 4 ... 60 clock seconds
# Order statuses whose outcome reconciliation must still look up at the venue.
_UNSETTLED_STATUSES = (UNKNOWN_STATUS, OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value, "intent")


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


@dataclass(frozen=True, slots=True)
class ReconcileFinding:
    kind: str  # "leg_mismatch" | "orphan" | "venue_unreachable" | "missed_fill"
    venue: str
    symbol: str
    expected_base: Decimal
    actual_base: Decimal | None
    position_id: str | None = None


OrderGate = Callable[[OrderIntent], GateDecision]
BookLookup = Callable[[str, str], OrderBook | None]
InstrumentLookup = Callable[[str, str], Instrument | None]


class TradingEngine:
    """Owns the live position machines and drives them through the executor and the store."""

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
        known_venues: Iterable[str] = (),
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

    # ------------------------------------------------------------------ queries
    def active_positions(self) -> list[PositionFsm]:
        return [p for p in self.positions.values() if p.state != PositionState.CLOSED.value]

    def owner_of(self, venue: str, symbol: str) -> tuple[PositionFsm, LegSide] | None:
        """The active position holding ``symbol`` on ``venue`` (one position per symbol)."""
        for pos in self.active_positions():
            if pos.symbol != symbol:
                continue
            if pos.long_venue == venue:
                return pos, LegSide.LONG
            if pos.short_venue == venue:
                return pos, LegSide.SHORT
        return None

    def lock_for(self, position_id: str) -> anyio.Lock:
        """Serialises every action on one position (strategy, reconciliation and shutdown share it)."""
        lock = self._locks.get(position_id)
        if lock is None:
            lock = self._locks[position_id] = anyio.Lock()
        return lock

    # ------------------------------------------------------------------ entry
    async def open_position(self, opp: Opportunity, size_base: Decimal, reason: str) -> PositionFsm:
        """Atomic two-leg entry. Returns the machine in monitoring, closed, or (repair pending) recovering."""
        position_id = uuid.uuid4().hex[:12]
        symbol, long_venue, short_venue = opp.symbol, opp.long_venue, opp.short_venue
        for venue in (long_venue, short_venue):
            if self.owner_of(venue, symbol) is not None:
                # One position per (venue, symbol): venues net positions, so two would corrupt both.
                raise ValueError(f"{symbol} on {venue} is already held by an active position")
        tolerance = self._tolerance_base(symbol, long_venue, short_venue)
        pos = PositionFsm(
            position_id=position_id,
            symbol=symbol,
            long_venue=long_venue,
            short_venue=short_venue,
            target_size_base=size_base,
            tolerance_base=tolerance,
        )
        self.positions[position_id] = pos
        async with self.lock_for(position_id):
            pos.begin_open(reason=reason, details={"expected_net_usd": str(opp.expected_net),
                                                   "spread_hourly": str(opp.spread_hourly)})
            legs = [
                (LegSide.LONG, self._order(pos, LegSide.LONG, "open", size_base, attempt=0)),
                (LegSide.SHORT, self._order(pos, LegSide.SHORT, "open", size_base, attempt=0)),
            ]
            now_ms = self.clock.now_ms()
            # Intent first: position row + both order intents + the transition, one transaction.
            record = replace(PositionRecord.from_opportunity(position_id, opp, size_base, pos.state, now_ms),
                             opened_at_ts_ms=now_ms)
            intents = [self._intent(pos.position_id, leg, "open", req, now_ms) for leg, req in legs]
            transitions = self._stamp(pos.drain_transitions(), now_ms)

            def write_intent(s: Any) -> None:
                # The transition first, so a post-mortem reads "scanning -> opening" before the orders.
                s.record_transitions(transitions)
                s.insert_position_with_intents(record, intents)

            try:
                await self.store.run(write_intent)
            except Exception:
                # Rolled back: nothing is on disk and nothing was sent, so there is nothing to track
                # (a phantom here would fail every later persist). Cancellation is not caught: the
                # write may have committed, and reconciliation then closes the unsent entry.
                del self.positions[position_id]
                raise
            self._log_transitions(transitions)
            for leg, req in legs:
                self._remember(req, pos.position_id, leg, "open")
            await self._dispatch_concurrently(pos, legs, "open")
            await self._settle_entry(pos)
        return pos

    async def _settle_entry(self, pos: PositionFsm) -> None:
        if self._has_unknown_orders(pos.position_id):
            # Cannot tell what filled: leave it in opening; reconciliation resolves the unknown orders.
            await self._event("entry_outcome_unknown", pos.position_id, "warning",
                              "an entry order's outcome is unknown; waiting for reconciliation")
            return
        pos.legs_settled(reason=self._legs_text(pos))
        await self._persist(pos)
        if pos.state == PositionState.RECOVERING.value:
            await self._repair_locked(pos)

    # ------------------------------------------------------------------ repair
    async def repair(self, pos: PositionFsm) -> None:
        async with self.lock_for(pos.position_id):
            await self._repair_locked(pos)

    async def _repair_locked(self, pos: PositionFsm) -> None:
        """Bring a recovering position back to hedged (entry) or flat (exit begun)."""
        if pos.state != PositionState.RECOVERING.value:
            return
        goal_flat = pos.exit_reason is not None
        if goal_flat:
            await self._drive_flat(pos, purpose="unwind")
        else:
            await self._complete_hedge(pos)
            if not self._legs_balanced(pos) and not self._has_unknown_orders(pos.position_id):
                await self._unwind_excess(pos)
        if self._has_unknown_orders(pos.position_id):
            await self._event("repair_pending", pos.position_id, "warning",
                              "an order's outcome is unknown; repair resumes after reconciliation")
            return
        if pos.is_flat:
            pos.recovered(reason="flat after repair" if not goal_flat else f"flat after unwind ({pos.exit_reason})")
            await self._persist(pos, closed=True)
        elif pos.is_hedged and not goal_flat:
            if pos.long_filled_base != pos.target_size_base or pos.short_filled_base != pos.target_size_base:
                pos.accept_hedged_size()
            pos.recovered(reason=f"hedged at {pos.long_filled_base} after repair")
            await self._persist(pos)
        else:
            await self._event("repair_incomplete", pos.position_id, "error",
                              f"still unhedged after repair: {self._legs_text(pos)}; retrying on the next pass")
            await self._persist(pos)

    async def _complete_hedge(self, pos: PositionFsm) -> None:
        for attempt in range(1, self.config.repair_attempts + 1):
            if self._legs_balanced(pos) or self._has_unknown_orders(pos.position_id):
                return
            lagging = LegSide.LONG if pos.long_filled_base < pos.short_filled_base else LegSide.SHORT
            deficit = abs(pos.long_filled_base - pos.short_filled_base)
            req = self._order(pos, lagging, "repair", deficit, attempt=attempt, emergency=True)
            await self._send_and_record(pos, lagging, req, "repair")

    async def _unwind_excess(self, pos: PositionFsm) -> None:
        for attempt in range(1, self.config.repair_attempts + 1):
            if self._legs_balanced(pos) or self._has_unknown_orders(pos.position_id):
                return
            leading = LegSide.LONG if pos.long_filled_base > pos.short_filled_base else LegSide.SHORT
            excess = abs(pos.long_filled_base - pos.short_filled_base)
            req = self._order(pos, leading, "unwind", excess, attempt=attempt, reduce_only=True, emergency=True)
            await self._send_and_record(pos, leading, req, "unwind")

    async def _drive_flat(self, pos: PositionFsm, *, purpose: str) -> None:
        """Reduce-only close of whatever each leg still holds, both legs concurrently, with widening retries."""
        for _ in range(self.config.repair_attempts):
            if self._has_unknown_orders(pos.position_id):
                return
            legs = [
                (leg, self._order(pos, leg, purpose, size, attempt=0, reduce_only=True, emergency=True))
                for leg, size in ((LegSide.LONG, pos.long_filled_base), (LegSide.SHORT, pos.short_filled_base))
                if size > 0
            ]
            if not legs:
                return
            await self._dispatch_concurrently(pos, legs, purpose)

    # ------------------------------------------------------------------ exit
    async def close_position(self, pos: PositionFsm, reason: str, detail: str = "", *, emergency: bool = False) -> bool:
        """Close both legs reduce-only, verify flat at the venues, then ``closed``. True when closed.

        ``emergency`` exits (liquidation risk, leg missing, shutdown, manual flatten...) pass the
        trading-state gate even when HALTED; ordinary exits need ACTIVE or REDUCING: a hedged
        position whose ordinary exit the gate denies is left hedged (False, event exit_deferred).
        """
        if emergency:
            self._emergency_exits.add(pos.position_id)
        async with self.lock_for(pos.position_id):
            if pos.state == PositionState.CLOSED.value:
                return True
            if pos.state == PositionState.MONITORING.value and pos.position_id not in self._emergency_exits:
                # A hedged position can wait: an ordinary exit the gate denies must not start (its
                # denied legs would otherwise end in repair, whose unwinds pass as emergencies).
                decision = self._gate(OrderIntent(kind=IntentKind.CLOSE, reduces_exposure=True))
                if not decision.allowed:
                    await self._event("exit_deferred", pos.position_id, "info",
                                      f"{reason}: exit not started, trading-state gate: {decision.reason}")
                    return False
            pos.exit_reason = pos.exit_reason or reason
            if pos.state == PositionState.MONITORING.value:
                pos.start_close(reason=reason, details={"detail": detail} if detail else None)
                await self._persist(pos)
            elif pos.state == PositionState.ERROR.value:
                pos.recover(reason=f"recover to close ({reason})")
                await self._persist(pos)
            if pos.state == PositionState.RECOVERING.value:
                pos.start_close(reason=reason, details={"detail": detail} if detail else None)
                await self._persist(pos)
            if pos.state == PositionState.OPENING.value:
                # An entry whose outcome is still unknown: only reconciliation can settle it.
                return False
            if pos.state != PositionState.CLOSING.value:
                return False
            await self._drive_flat(pos, purpose="close")
            return await self._finish_close(pos)

    async def _finish_close(self, pos: PositionFsm) -> bool:
        if self._has_unknown_orders(pos.position_id):
            return False
        if not pos.is_flat:
            pos.close_incomplete(reason=f"residual after close: {self._legs_text(pos)}")
            await self._persist(pos)
            await self._repair_locked(pos)
            return pos.state == PositionState.CLOSED.value
        verified = await self._venue_flat(pos)
        if verified is None:
            await self._event("close_unverified", pos.position_id, "warning",
                              "could not read venue positions to verify flat; will retry")
            return False
        if not verified:
            await self._adopt_venue_truth(pos)
            pos.close_incomplete(reason="venue still shows exposure after close")
            await self._persist(pos)
            await self._repair_locked(pos)
            return pos.state == PositionState.CLOSED.value
        pos.closed_flat(reason=f"flat verified at {pos.long_venue} and {pos.short_venue} ({pos.exit_reason})")
        await self._persist(pos, closed=True)
        return True

    async def _venue_flat(self, pos: PositionFsm) -> bool | None:
        try:
            for venue in (pos.long_venue, pos.short_venue):
                held = await self.executor.positions(venue)
                self._on_venue_result(venue, True)
                if any(p.symbol == pos.symbol and p.size_base != 0 for p in held):
                    return False
        except (TemporaryVenueError, FatalVenueError) as exc:
            self._on_venue_result(exc.venue, False)
            return None
        return True

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(self, *, flatten_orphans: bool | None = None) -> list[ReconcileFinding]:
        """Compare every active position with the venues; apply missed fills; repair mismatches.

        The same code runs at start-up (after ``restore``) and periodically.
        """
        findings: list[ReconcileFinding] = []
        await self._resolve_open_orders()
        await self._reconcile_funding()
        actual, unreachable = await self._venue_positions()
        for venue in unreachable:
            findings.append(ReconcileFinding("venue_unreachable", venue, "*", ZERO, None))
        expected = self._expected_exposure()
        for key in sorted(set(actual) | set(expected)):
            venue, symbol = key
            if venue in unreachable:
                continue
            owner = self.owner_of(venue, symbol)
            tolerance = owner[0].tolerance_base if owner else ZERO
            if abs(actual.get(key, ZERO) - expected.get(key, ZERO)) <= tolerance:
                continue
            # The snapshot above is not atomic with the strategy's orders: a fill may have landed at
            # the venue and not yet be applied here (or the reverse). Confirm before acting.
            finding = await self._confirm_and_repair(venue, symbol, flatten_orphans)
            if finding is not None:
                findings.append(finding)
        for pos in list(self.active_positions()):
            async with self.lock_for(pos.position_id):
                await self._resume(pos)
        return findings

    async def _confirm_and_repair(self, venue: str, symbol: str, flatten_orphans: bool | None) -> ReconcileFinding | None:
        """Re-read one (venue, symbol) under its owner's lock; repair (or handle the orphan) if the
        difference is still there. None when it was a stale read or cannot be judged yet."""
        owner = self.owner_of(venue, symbol)
        if owner is None:
            have = await self._venue_size(venue, symbol)
            if have is None or have == 0 or self.owner_of(venue, symbol) is not None:
                return None  # unreadable, already flat, or a new position took it: next pass decides
            await self._handle_orphan(venue, symbol, have, flatten_orphans)
            return ReconcileFinding("orphan", venue, symbol, ZERO, have)
        pos, _leg = owner
        async with self.lock_for(pos.position_id):
            if pos.state == PositionState.CLOSED.value or self._has_unknown_orders(pos.position_id):
                return None  # closed meanwhile, or an outcome is pending: resolved before it is judged
            have = await self._venue_size(venue, symbol)
            if have is None:
                return None
            want = self._expected_exposure().get((venue, symbol), ZERO)
            if abs(have - want) <= pos.tolerance_base:
                return None
            await self._repair_mismatch(pos, venue, want, have)
            return ReconcileFinding("leg_mismatch", venue, symbol, want, have, pos.position_id)

    async def _venue_size(self, venue: str, symbol: str) -> Decimal | None:
        actual, unreachable = await self._venue_positions((venue,))
        return None if unreachable else actual.get((venue, symbol), ZERO)

    async def _resume(self, pos: PositionFsm) -> None:
        """Drive a position stuck in a transient state forward (after restart or an unknown outcome)."""
        if self._has_unknown_orders(pos.position_id):
            return
        state = pos.state
        if state == PositionState.OPENING.value:
            await self._settle_entry(pos)
        elif state == PositionState.RECOVERING.value:
            await self._repair_locked(pos)
        elif state == PositionState.ERROR.value:
            pos.recover(reason="resume after error")
            await self._persist(pos)
            await self._repair_locked(pos)
        elif state == PositionState.CLOSING.value:
            await self._drive_flat(pos, purpose="close")
            await self._finish_close(pos)

    async def _repair_mismatch(self, pos: PositionFsm, venue: str, want: Decimal, have: Decimal) -> None:
        details = {"venue": venue, "expected_base": str(want), "actual_base": str(have)}
        if pos.state in (PositionState.MONITORING.value, PositionState.CLOSING.value,
                         PositionState.RECOVERING.value, PositionState.OPENING.value):
            pos.fault(reason="leg_mismatch", details=details)
            await self._persist(pos)
        await self._adopt_venue_truth(pos)
        if pos.state == PositionState.ERROR.value:
            pos.recover(reason="repair leg mismatch", details=details)
            await self._persist(pos)
        await self._repair_locked(pos)

    async def _adopt_venue_truth(self, pos: PositionFsm) -> None:
        """Set both legs to what the venues hold (after every known fill has been applied)."""
        actual, unreachable = await self._venue_positions((pos.long_venue, pos.short_venue))
        if unreachable:
            return
        for leg, venue in ((LegSide.LONG, pos.long_venue), (LegSide.SHORT, pos.short_venue)):
            have = actual.get((venue, pos.symbol), ZERO) * leg.sign
            current = pos.long_filled_base if leg is LegSide.LONG else pos.short_filled_base
            held = max(have, ZERO)
            if held != current:
                pos.apply_leg_delta(leg, held - current)
                await self._event("leg_adjusted", pos.position_id, "warning",
                                  f"{leg.value} leg on {venue} set to venue's {held} (was {current})")

    async def _handle_orphan(self, venue: str, symbol: str, size_base: Decimal, flatten: bool | None) -> None:
        policy_flatten = self.config.orphan_policy == "flatten" if flatten is None else flatten
        await self._event("orphan_position", None, "error",
                          f"{venue} {symbol} holds {size_base} that no position owns"
                          + ("; flattening" if policy_flatten else "; alert only (reconcile.orphan_policy)"),
                          {"venue": venue, "symbol": symbol, "size_base": str(size_base)})
        if not policy_flatten or size_base == 0:
            return
        side = OrderSide.SELL if size_base > 0 else OrderSide.BUY
        # Each pass decides afresh from the venue's position, so each flatten gets a fresh id
        # (one per venue AND symbol: two orphans on one venue must never share an id).
        req = OrderRequest(
            client_order_id=client_order_id(f"orphan:{venue}:{symbol}:{uuid.uuid4().hex}", "flatten", None, 0),
            venue=venue, symbol=symbol, side=side, size_base=abs(size_base),
            order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC, reduce_only=True,
        )
        decision = self._gate(OrderIntent(kind=IntentKind.FLATTEN, reduces_exposure=True, emergency=True))
        if not decision.allowed:
            await self._event("order_denied", None, "warning", f"orphan flatten denied: {decision.reason}")
            return
        now_ms = self.clock.now_ms()
        await self.store.insert_order_intent(StoredOrderIntent(request=req, purpose=OrderPurpose.FLATTEN,
                                                               created_at_ts_ms=now_ms, position_id=None))
        if self.owner_of(venue, symbol) is not None:
            # A new position took this venue/symbol while the intent was written: never reduce it.
            await self.store.update_order_status(req.client_order_id, OrderStatus.REJECTED, now_ms,
                                                 reason="not sent: a position now owns this venue/symbol")
            return
        try:
            report = await self.executor.place_order(req)
        except OrderRejected as exc:
            await self.store.update_order_status(req.client_order_id, OrderStatus.REJECTED, now_ms, reason=str(exc))
            await self._event("orphan_flatten_failed", None, "error", str(exc))
            return
        except (TemporaryVenueError, FatalVenueError) as exc:
            # Outcome unknown: the next pass re-reads the venue's position and decides again.
            await self._event("orphan_flatten_failed", None, "error", str(exc))
            return
        await self.store.apply_order_report(report, self.clock.now_ms())

    async def _resolve_open_orders(self) -> None:
        """Look up every order whose outcome we do not know, and apply fills we missed."""
        for cid, meta in list(self.orders.items()):
            if meta.status not in _UNSETTLED_STATUSES:
                continue
            pos = self.positions.get(meta.position_id)
            if pos is None:
                continue
            # Under the position's lock: an order of a position being worked on is in flight, and a
            # "not found" for it would only mean "not arrived yet".
            async with self.lock_for(pos.position_id):
                if meta.status not in _UNSETTLED_STATUSES:
                    continue  # answered while we waited for the lock
                report = await self._lookup(meta.venue, cid)
                if report is UNKNOWN_STATUS:
                    continue
                if report is None:
                    await self._mark_order(cid, OrderStatus.REJECTED.value, ZERO, None, "venue has no such order")
                    continue
                await self._apply_report(pos, meta.leg, report)

    async def _venue_positions(
        self, venues: Iterable[str] | None = None
    ) -> tuple[dict[tuple[str, str], Decimal], set[str]]:
        wanted = set(venues) if venues is not None else None
        actual: dict[tuple[str, str], Decimal] = {}
        unreachable: set[str] = set()
        for venue in sorted(self._venues() if wanted is None else wanted):
            try:
                held: list[VenuePosition] = await self.executor.positions(venue)
                self._on_venue_result(venue, True)
            except (TemporaryVenueError, FatalVenueError):
                self._on_venue_result(venue, False)
                unreachable.add(venue)
                continue
            for p in held:
                if p.size_base != 0:
                    actual[(p.venue, p.symbol)] = actual.get((p.venue, p.symbol), ZERO) + p.size_base
        return actual, unreachable

    def _venues(self) -> set[str]:
        found = {p.long_venue for p in self.positions.values()} | {p.short_venue for p in self.positions.values()}
        return self.known_venues | found

    def _expected_exposure(self) -> dict[tuple[str, str], Decimal]:
        expected: dict[tuple[str, str], Decimal] = {}
        for pos in self.active_positions():
            for venue, signed in ((pos.long_venue, pos.long_filled_base), (pos.short_venue, -pos.short_filled_base)):
                if signed != 0:
                    key = (venue, pos.symbol)
                    expected[key] = expected.get(key, ZERO) + signed
        return expected

    # ------------------------------------------------------------------ shutdown
    async def flatten_all(self, reason: str) -> bool:
        """Cancel resting orders and close every active position concurrently. True when all closed."""
        try:
            await self.executor.cancel_all_orders(None)
        except (TemporaryVenueError, FatalVenueError) as exc:
            await self._event("cancel_all_failed", None, "error", str(exc))
        async with anyio.create_task_group() as tg:
            for pos in self.active_positions():
                tg.start_soon(self._close_quietly, pos, reason)
        return not self.active_positions()

    async def _close_quietly(self, pos: PositionFsm, reason: str) -> None:
        """Close one position during a flatten. A failure here must not cancel the others' closes
        (they share a task group), so it is recorded as critical and the position left for the report."""
        try:
            # Keep trying (a venue may be down for a while) with backoff on the clock; the caller
            # bounds the whole flatten with its deadline.
            for attempt in range(FLATTEN_ATTEMPTS):
                if await self.close_position(pos, reason, emergency=True):
                    return
                async with self.lock_for(pos.position_id):
                    await self._resolve_position_orders(pos)
                    await self._resume(pos)
                if pos.state == PositionState.CLOSED.value:
                    return
                await self.clock.sleep(min(2.0**attempt, 60.0))
            await self._event("flatten_incomplete", pos.position_id, "critical",
                              f"{reason}: position still {pos.state.value} after {FLATTEN_ATTEMPTS} close attempts")
        except Exception as exc:  # isolate: record and carry on with the other positions
            logger.opt(exception=exc).bind(kind="flatten_failed", position_id=pos.position_id).critical(
                f"closing {pos.position_id} failed: {exc!r}")
            with anyio.CancelScope(shield=True):
                await self._event("flatten_failed", pos.position_id, "critical", f"{reason}: close failed: {exc!r}")

    async def _resolve_position_orders(self, pos: PositionFsm) -> None:
        for cid, meta in list(self.orders.items()):
            if meta.position_id == pos.position_id and meta.status in (UNKNOWN_STATUS, "intent"):
                report = await self._lookup(meta.venue, cid)
                if report is None:
                    await self._mark_order(cid, OrderStatus.REJECTED.value, ZERO, None, "venue has no such order")
                elif report is not UNKNOWN_STATUS:
                    await self._apply_report(pos, meta.leg, report)

    # ------------------------------------------------------------------ funding
    async def record_funding(self, payments: Iterable[FundingPayment]) -> int:
        """Persist funding payments against the position that owns each (venue, symbol).

        Deduplicated by payment id; returns how many were new."""
        new = 0
        for payment in payments:
            owner = self.owner_of(payment.venue, payment.symbol)
            position_id, leg = (owner[0].position_id, owner[1]) if owner else (None, None)
            if not await self.store.record_funding_payment(payment, position_id, leg.value if leg else None):
                continue
            new += 1
            if position_id is not None:
                self.funding_usd[position_id] = self.funding_usd.get(position_id, ZERO) + payment.amount_usd
            if owner is None:
                await self._event("funding_unowned", None, "warning",
                                  f"funding on {payment.venue} {payment.symbol} with no owning position")
        return new

    async def _reconcile_funding(self) -> None:
        """Record venue funding payments the bot missed (a crash between a venue's settlement and
        the bot recording it): everything at or after the latest payment recorded per venue."""
        for venue in sorted(self._venues()):
            since = await self.store.latest_funding_ts_ms(venue)
            try:
                payments = await self.executor.funding_payments_since(venue, since or 0)
            except (TemporaryVenueError, FatalVenueError):
                continue
            missed = await self.record_funding(payments)
            if missed:
                await self._event("funding_recovered", None, "warning",
                                  f"{missed} funding payment(s) on {venue} recorded from the venue's history")

    # ------------------------------------------------------------------ restore
    async def restore(self) -> int:
        """Load every non-terminal position and its orders from the store. Returns how many."""
        rows = await self.store.load_open_positions()
        for row in rows:
            orders = await self.store.list_orders(row.id)
            fills = await self.store.list_fills(row.id)
            # Leg sizes come from the row's columns: they are written in the same transaction as
            # every fill AND record venue-truth adoptions (leg_adjusted), which no fill records, so a
            # sum of the fills alone can be wrong (even negative) after an adoption.
            leg_of = {o.client_order_id: o.leg for o in orders}
            from_fills = {LegSide.LONG: ZERO, LegSide.SHORT: ZERO}
            for fill in fills:
                leg = leg_of[fill.client_order_id]
                from_fills[leg] += fill.size_base if fill.side is leg.open_side else -fill.size_base
            legs = {LegSide.LONG: row.long_size_base, LegSide.SHORT: row.short_size_base}
            if legs != from_fills:
                await self._event("restore_legs_adjusted", row.id, "info",
                                  f"legs {legs[LegSide.LONG]} / {legs[LegSide.SHORT]} include venue adjustments; "
                                  f"fills alone give {from_fills[LegSide.LONG]} / {from_fills[LegSide.SHORT]}")
            fields: dict[str, Any] = dict(
                position_id=row.id,
                symbol=row.symbol,
                long_venue=row.long_venue,
                short_venue=row.short_venue,
                target_size_base=row.target_size_base,
                tolerance_base=self._tolerance_base(row.symbol, row.long_venue, row.short_venue),
                exit_reason=row.exit_reason,
            )
            try:
                pos = PositionFsm.restore(row.state, long_filled_base=legs[LegSide.LONG],
                                          short_filled_base=legs[LegSide.SHORT], **fields)
            except ValueError as exc:
                # Never refuse to come up over one bad row: restore it as ERROR; reconciliation then
                # sets its legs from the venues' own positions and repairs it.
                pos = PositionFsm.restore(PositionState.ERROR, long_filled_base=max(legs[LegSide.LONG], ZERO),
                                          short_filled_base=max(legs[LegSide.SHORT], ZERO), **fields)
                await self._event("restore_invalid", row.id, "error", f"restored as error: {exc}")
            self.positions[pos.position_id] = pos
            self.fees_usd[pos.position_id] = sum((f.fee_usd for f in fills), ZERO)
            payments = await self.store.list_funding_payments(row.id)
            self.funding_usd[pos.position_id] = sum((p.amount_usd for p in payments), ZERO)
            for order in orders:
                self.orders[order.client_order_id] = OrderMeta(
                    position_id=pos.position_id,
                    leg=order.leg,
                    purpose=order.purpose.value,
                    venue=order.request.venue,
                    status=order.status.value if order.status is not None else UNKNOWN_STATUS,
                )
                key = (pos.position_id, order.purpose.value, order.leg)
                self._attempts[key] = max(self._attempts.get(key, -1), order.attempt)
        return len(rows)

    # ------------------------------------------------------------------ sending
    async def _dispatch_concurrently(self, pos: PositionFsm, legs: list[tuple[LegSide, OrderRequest]], purpose: str) -> None:
        """Send several legs at once. Never leg-by-leg with a wait in between."""
        if len(legs) == 1:
            leg, req = legs[0]
            await self._send_and_record(pos, leg, req, purpose)
            return
        stamps: list[int] = []
        async with anyio.create_task_group() as tg:
            for leg, req in legs:
                tg.start_soon(self._send_and_record, pos, leg, req, purpose, stamps)
        if len(stamps) == 2:
            self.metrics.dispatch_skew_ns.append(abs(stamps[0] - stamps[1]))

    async def _send_and_record(
        self, pos: PositionFsm, leg: LegSide, req: OrderRequest, purpose: str, stamps: list[int] | None = None
    ) -> None:
        if req.client_order_id not in self.orders:
            await self.store.insert_order_intent(self._intent(pos.position_id, leg, purpose, req, self.clock.now_ms()))
            self._remember(req, pos.position_id, leg, purpose)
        intent = OrderIntent(
            kind=IntentKind(purpose),
            reduces_exposure=req.reduce_only or purpose in ("repair", "unwind", "close"),
            emergency=purpose in ("repair", "unwind") or pos.position_id in self._emergency_exits,
        )
        decision = self._gate(intent)
        if not decision.allowed:
            await self._mark_order(req.client_order_id, OrderStatus.REJECTED.value, ZERO, None, f"gate: {decision.reason}")
            await self._event("order_denied", pos.position_id, "warning",
                              f"{purpose} {leg.value} on {req.venue} denied by trading-state gate: {decision.reason}")
            return
        # Shielded: once sent, an order's answer is always recorded, even if the caller is being
        # cancelled (shutdown); the executor call is bounded by leg_timeout_s inside.
        with anyio.CancelScope(shield=True):
            report = await self._place(req, stamps)
            if report is UNKNOWN_STATUS:
                await self._mark_order(req.client_order_id, UNKNOWN_STATUS, ZERO, None, "outcome unknown")
                return
            await self._apply_report(pos, leg, report)

    async def _place(self, req: OrderRequest, stamps: list[int] | None) -> OrderReport | str:
        self.metrics.orders_sent += 1
        if stamps is not None:
            stamps.append(time.perf_counter_ns())
        try:
            with anyio.fail_after(self.config.leg_timeout_s):
                report = await self.executor.place_order(req)
            self._on_venue_result(req.venue, True)
            return report
        except OrderRejected as exc:
            self._on_venue_result(req.venue, True)
            return self._synthetic(req, OrderStatus.REJECTED, str(exc))
        except (TemporaryVenueError, TimeoutError, FatalVenueError, AbsurdVenueData) as exc:
            self._on_venue_result(req.venue, False)
            logger.bind(venue=req.venue, cid=req.client_order_id).warning(f"order outcome unknown: {exc!s}")
        found = await self._lookup(req.venue, req.client_order_id)
        if found is None:
            return self._synthetic(req, OrderStatus.REJECTED, "not found at venue after error")
        return found

    async def _lookup(self, venue: str, cid: str) -> OrderReport | None | str:
        """get_order with bounded retries; UNKNOWN_STATUS when the venue never answered."""
        for attempt in range(self.config.lookup_attempts):
            try:
                with anyio.fail_after(self.config.leg_timeout_s):
                    found = await self.executor.get_order(venue, cid)
                self._on_venue_result(venue, True)
                return found
            except (TemporaryVenueError, TimeoutError, FatalVenueError):
                self._on_venue_result(venue, False)
                await anyio.sleep(self.config.lookup_backoff_s * (2**attempt))
        return UNKNOWN_STATUS

    async def _apply_report(self, pos: PositionFsm, leg: LegSide, report: OrderReport) -> None:
        # Shielded: once the fills are committed, the in-memory legs must follow them even if the
        # caller is being cancelled, or the next persist would overwrite the columns without them.
        with anyio.CancelScope(shield=True):
            await self._apply_report_now(pos, leg, report)

    async def _apply_report_now(self, pos: PositionFsm, leg: LegSide, report: OrderReport) -> None:
        now_ms = self.clock.now_ms()
        meta = self.orders.get(report.client_order_id)
        if meta is not None:
            meta.status = report.status.value
        attached = pos.is_attached
        current = pos.leg_base(leg)

        def write(s: Any) -> tuple[list[Fill], Decimal]:
            # Fills (deduplicated by venue trade id), the order's status and the legs: one transaction.
            new = [fill for fill in report.fills if s.record_fill(fill)]
            s.update_order_status(report.client_order_id, report.status, now_ms, filled_base=report.filled_base,
                                  avg_price=report.avg_price, venue_order_id=report.venue_order_id,
                                  reason=report.reason)
            delta = sum((f.size_base if f.side is leg.open_side else -f.size_base for f in new), ZERO)
            if new and attached:
                # A leg never goes negative: if our size was already wrong, reconciliation fixes it
                # from the venue's own position.
                legs = {LegSide.LONG: pos.long_filled_base, LegSide.SHORT: pos.short_filled_base,
                        leg: max(current + delta, ZERO)}
                s.update_position(pos.position_id, now_ms, long_size_base=legs[LegSide.LONG],
                                  short_size_base=legs[LegSide.SHORT])
            return new, delta

        new, delta = await self.store.run(write)
        for fill in new:
            self.fees_usd[pos.position_id] = self.fees_usd.get(pos.position_id, ZERO) + fill.fee_usd
        if not new:
            return
        if not attached:
            await self._event("fill_after_close", pos.position_id, "error",
                              f"{report.client_order_id} filled after the position closed; reconciliation "
                              "will report the venue exposure")
            return
        target = max(current + delta, ZERO)
        if target != current + delta:
            await self._event("leg_clamped", pos.position_id, "warning",
                              f"{leg.value} leg would go below zero ({current} plus fills of "
                              f"{report.client_order_id}); set to 0 until reconciliation")
        if target != current:
            pos.apply_leg_delta(leg, target - current)
        self._track_unhedged(pos)

    def _track_unhedged(self, pos: PositionFsm) -> None:
        exposed = abs(pos.long_filled_base - pos.short_filled_base) > pos.tolerance_base
        since = self._unhedged_since_ns.get(pos.position_id)
        if exposed and since is None:
            self._unhedged_since_ns[pos.position_id] = time.perf_counter_ns()
        elif not exposed and since is not None:
            window_ms = (time.perf_counter_ns() - since) / 1e6
            del self._unhedged_since_ns[pos.position_id]
            self.metrics.unhedged_windows_ms.append(window_ms)
            phase = "exit" if pos.exit_reason else "entry"
            key = (pos.position_id, phase)
            self.unhedged_ms[key] = self.unhedged_ms.get(key, 0.0) + window_ms
            self._on_unhedged_window(pos.position_id, window_ms)

    async def _mark_order(self, cid: str, status: str, filled: Decimal, avg: Decimal | None, reason: str | None) -> None:
        """Record an answer that came from us, not the venue (denied, not found, or still unknown)."""
        meta = self.orders.get(cid)
        if meta is not None:
            meta.status = status
        if status == UNKNOWN_STATUS:
            return  # stays pending in the database: a restart looks it up by client order id
        await self.store.update_order_status(cid, OrderStatus(status), self.clock.now_ms(),
                                             filled_base=filled, avg_price=avg, reason=reason)

    # ------------------------------------------------------------------ helpers
    def _order(
        self, pos: PositionFsm, leg: LegSide, purpose: str, size_base: Decimal, *,
        attempt: int, reduce_only: bool = False, emergency: bool = False,
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
        self._cid_attempt[client_order_id(pos.position_id, purpose, leg, attempt)] = attempt
        inst = self._instrument(venue, pos.symbol)
        tick = inst.tick_size if inst is not None else Decimal("0.0001")
        # Each further attempt of a purpose widens the bound, up to a cap of 10 steps.
        widen_steps = min(max(0, attempt - 1), 10) if purpose != "open" else 0
        limit = protective_limit_price(
            self._book(venue, pos.symbol), side,
            max_slippage_bps=self.config.max_slippage_bps, tick_size=tick,
            attempt=widen_steps, widen_bps=self.config.repair_widen_bps,
        )
        return OrderRequest(
            client_order_id=client_order_id(pos.position_id, purpose, leg, attempt),
            venue=venue,
            symbol=pos.symbol,
            side=side,
            size_base=size_base,
            order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
            limit_price=limit,
            time_in_force=TimeInForce.IOC,
            reduce_only=reduce_only or is_close,
        )

    def _tolerance_base(self, symbol: str, long_venue: str, short_venue: str) -> Decimal:
        lots = [i.lot_size_base for i in (self._instrument(long_venue, symbol), self._instrument(short_venue, symbol)) if i]
        return (max(lots) if lots else ZERO) * self.config.hedge_tolerance_lots

    def _remember(self, req: OrderRequest, position_id: str, leg: LegSide, purpose: str) -> None:
        self.orders[req.client_order_id] = OrderMeta(position_id, leg, purpose, req.venue, "intent")

    @staticmethod
    def _legs_balanced(pos: PositionFsm) -> bool:
        """No net exposure beyond tolerance (hedged, or both legs flat): nothing to complete or unwind."""
        return abs(pos.long_filled_base - pos.short_filled_base) <= pos.tolerance_base

    def _has_unknown_orders(self, position_id: str) -> bool:
        return any(m.position_id == position_id and m.status in (UNKNOWN_STATUS, "intent") for m in self.orders.values())

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

