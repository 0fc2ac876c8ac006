"""Reconciliation: venue positions against legs, unknown outcomes looked up, mismatches repaired, orphans handled."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal

from adapters.errors import (
    AbsurdVenueData,
    FatalVenueError,
    OrderRejected,
    TemporaryVenueError,
)
from bot.core.domain import (
    ZERO,
    LegSide,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    VenuePosition,
    is_spot,
)
from bot.engine.core import (
    _UNSETTLED_STATUSES,
    UNKNOWN_STATUS,
    EngineCore,
    ReconcileFinding,
)
from bot.engine.spot import SpotMixin, SpotUnavailable
from bot.engine.venue_reads import outcome, read_venues
from machines.position import PositionFsm, PositionState
from risk.trading_state import IntentKind, OrderIntent
from storage import (
    OrderIntent as StoredOrderIntent,
)
from storage import (
    OrderPurpose,
    client_order_id,
)


def is_foreign_excess(want: Decimal, have: Decimal) -> bool:
    """The venue holds more than the owning position's fills explain, in the same direction (or the
    position owns nothing there): that size is not ours. Less than ours is a shrink (repairable)."""
    if have == 0:
        return False
    if want == 0:
        return True
    return (have > 0) == (want > 0) and abs(have) > abs(want)


class ReconcileMixin(SpotMixin, EngineCore):
    """Compares the engine with the venues and repairs differences."""

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(self, *, flatten_orphans: bool | None = None) -> list[ReconcileFinding]:
        """Compare every active position with the venues; apply missed fills; repair mismatches.

        The same code runs at start-up (after ``restore``) and periodically.
        """
        findings: list[ReconcileFinding] = []
        await self._resolve_open_orders()
        # One round to every venue at once: its funding since the latest recorded, and its positions.
        venues = sorted(self._venues())
        since = await self._funding_since(venues)

        async def read(venue: str) -> tuple[object, object]:
            return (await outcome(self.executor.funding_payments_since(venue, since[venue])),
                    await outcome(self._read_positions(venue)))

        answers = [(venue, answer) for venue, answer in await read_venues(venues, read)]
        await self._record_read_funding([(venue, answer[0]) for venue, answer in answers])  # type: ignore[misc]
        actual, unreachable = self._positions_from([(venue, answer[1]) for venue, answer in answers])  # type: ignore[misc]
        for venue in unreachable:
            findings.append(ReconcileFinding("venue_unreachable", venue, "*", ZERO, None))
        expected = self._expected_exposure()
        previous = dict(self.orphaned)
        # Orphans on a venue that could not be read stay orphans until it can be read again.
        orphaned = {key: size for key, size in previous.items() if key[0] in unreachable}
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
                if finding.kind in ("orphan", "foreign_exposure"):
                    orphaned[key] = (finding.actual_base or ZERO) - finding.expected_base
            elif key in previous:
                orphaned[key] = previous[key]  # not judged this pass (unreadable, pending): still refused
        self.orphaned = orphaned
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
            if is_foreign_excess(want, have):
                # More than our own fills explain, in the same direction: someone else's size. The
                # position is never resized to absorb it; it is reported, and the entry gates refuse
                # the symbol until it is resolved (by reconcile.orphan_policy or the operator).
                await self._event("foreign_exposure", pos.position_id, "error",
                                  f"{venue} {symbol} holds {have} but position {pos.position_id} owns {want}: "
                                  f"{have - want} is foreign; not adopted, no entry on {symbol} until resolved",
                                  {"venue": venue, "symbol": symbol, "expected_base": str(want),
                                   "actual_base": str(have)})
                return ReconcileFinding("foreign_exposure", venue, symbol, want, have, pos.position_id)
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
        elif state == PositionState.RESTING.value:
            await self._work_maker_locked(pos)
        elif state == PositionState.RECOVERING.value:
            await self._repair_locked(pos)
        elif state == PositionState.ERROR.value:
            pos.recover(reason="resume after error")
            await self._persist(pos)
            await self._repair_locked(pos)
        elif state == PositionState.CLOSING.value:
            await self._drive_flat(pos, purpose="close")
            await self._finish_close(pos)

    def waiting_not_found_yet(self) -> list[PositionFsm]:
        """Active positions held back only by orders whose latest look-up said "not found YET" (an
        order persisted, perhaps sent, just before a restart: within the request's venue-side expiry,
        a few seconds, the venue cannot say yet whether it will ever execute)."""
        waiting = []
        for pos in self.active_positions():
            pending = [cid for cid, meta in self.orders_of(pos.position_id).items()
                       if meta.status in (UNKNOWN_STATUS, "intent")]
            if pending and all(cid in self.not_found_yet for cid in pending):
                waiting.append(pos)
        return waiting

    async def resume_not_found_yet(self) -> None:
        """Look those orders up again and, once every outcome is known, resume each position (a
        close in flight at the restart is finished): what the next reconciliation would do, without
        waiting ``reconcile.interval_seconds`` for it."""
        # An order answered since (by reconciliation, or a late report) waits for nothing any more.
        self.not_found_yet = {cid for cid in self.not_found_yet if (meta := self.orders.get(cid)) is not None
                              and meta.status in (UNKNOWN_STATUS, "intent")}
        for pos in self.waiting_not_found_yet():
            async with self.lock_for(pos.position_id):
                await self._resolve_position_orders(pos)  # type: ignore[attr-defined]  # ExitMixin
                if pos.state != PositionState.CLOSED.value:
                    await self._resume(pos)

    async def resume_closing(self) -> None:
        """Finish every closing position whose orders are all answered (``_resume``): a close a
        restart found in flight, without waiting for the rest of the start-up reconciliation."""
        for pos in list(self.active_positions()):
            if pos.state != PositionState.CLOSING.value or self._has_unknown_orders(pos.position_id):
                continue
            async with self.lock_for(pos.position_id):
                if pos.state == PositionState.CLOSING.value:
                    await self._resume(pos)

    async def _repair_mismatch(self, pos: PositionFsm, venue: str, want: Decimal, have: Decimal) -> None:
        details = {"venue": venue, "expected_base": str(want), "actual_base": str(have)}
        if pos.state == PositionState.RESTING.value:
            # A maker fill the engine has not applied yet looks like a mismatch: apply and hedge it
            # first. If the venue still disagrees, never repair around a working maker order: cancel
            # it and hedge what filled before anything else.
            await self._work_maker_locked(pos)
            if await self._agrees_with_venue(pos, venue):
                return
            await self._work_maker_locked(pos, finish=True)
            if pos.state in (PositionState.RESTING.value, PositionState.CLOSED.value):
                return
        if pos.state in (PositionState.MONITORING.value, PositionState.CLOSING.value,
                         PositionState.RECOVERING.value, PositionState.OPENING.value):
            pos.fault(reason="leg_mismatch", details=details)
            await self._persist(pos)
        await self._adopt_venue_truth(pos)
        if pos.state == PositionState.ERROR.value:
            pos.recover(reason="repair leg mismatch", details=details)
            await self._persist(pos)
        await self._repair_locked(pos)

    async def _agrees_with_venue(self, pos: PositionFsm, venue: str) -> bool:
        have = await self._venue_size(venue, pos.symbol)
        want = self._expected_exposure().get((venue, pos.symbol), ZERO)
        return have is not None and abs(have - want) <= pos.tolerance_base

    async def _adopt_venue_truth(self, pos: PositionFsm) -> None:
        """Shrink each leg to what its venue still holds (after every known fill has been applied).

        Adoption only ever SHRINKS a leg (a liquidation, a manual close): a venue holding more than
        our own fills explain holds someone else's size, which is reported and never absorbed.
        """
        actual, unreachable = await self._venue_positions((pos.long_venue, pos.short_venue))
        if unreachable:
            return
        for leg, venue in ((LegSide.LONG, pos.long_venue), (LegSide.SHORT, pos.short_venue)):
            have = actual.get((venue, pos.symbol), ZERO) * leg.sign
            current = pos.long_filled_base if leg is LegSide.LONG else pos.short_filled_base
            held = min(max(have, ZERO), current)
            if have > current:
                await self._event("foreign_exposure", pos.position_id, "error",
                                  f"{leg.value} leg on {venue} {pos.symbol}: venue holds {have}, our fills explain "
                                  f"{current}; the {have - current} beyond them is not ours and is not adopted",
                                  {"venue": venue, "symbol": pos.symbol, "expected_base": str(current),
                                   "actual_base": str(have)})
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
        spot = is_spot(venue)
        if spot and size_base < 0:
            return  # never buy coins for the user (spot sizes are never negative anyway)
        if spot:
            lot = self._spot_lot(venue, symbol)
            size_base = (size_base // lot) * lot if lot > 0 else size_base
            if size_base <= 0:
                return
        side = OrderSide.SELL if size_base > 0 else OrderSide.BUY
        # Each pass decides afresh from the venue's position, so each flatten gets a fresh id
        # (one per venue AND symbol: two orphans on one venue must never share an id).
        req = OrderRequest(
            client_order_id=client_order_id(f"orphan:{venue}:{symbol}:{uuid.uuid4().hex}", "flatten", None, 0),
            venue=venue, symbol=symbol, side=side, size_base=abs(size_base),
            order_type=OrderType.MARKET, time_in_force=TimeInForce.IOC, reduce_only=not spot,
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
        except (TemporaryVenueError, FatalVenueError, AbsurdVenueData) as exc:
            # Outcome unknown (or not priced: absurd data): the next pass re-reads the venue's
            # position and decides again.
            await self._event("orphan_flatten_failed", None, "error", str(exc))
            return
        await self.store.apply_order_report(report, self.clock.now_ms())

    async def look_up_pending_orders(self) -> None:
        """Look up every order whose outcome is unknown (what ``reconcile`` does first)."""
        await self._resolve_open_orders()

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
        # Every venue at once (bot.engine.venue_reads); answers handled in venue order, as before.
        return self._positions_from(await read_venues(self._venues() if wanted is None else wanted,
                                                      self._read_positions))

    async def exposure_by_venue(self) -> tuple[dict[tuple[str, str], Decimal], set[str]]:
        """Signed size per (venue, symbol) on every venue that answers, and the venues that did not
        (``venue_sizes`` raises on the first one): what a NOT FLAT shutdown reports."""
        return await self._venue_positions()

    async def _read_positions(self, venue: str) -> list[VenuePosition] | dict[tuple[str, str], Decimal]:
        # A spot market is a wallet, not a position: the bot's coins are the balance above its baseline.
        return await self.spot_sizes(venue) if is_spot(venue) else await self.executor.positions(venue)

    def _positions_from(
        self, answers: Iterable[tuple[str, list[VenuePosition] | dict[tuple[str, str], Decimal] | Exception]]
    ) -> tuple[dict[tuple[str, str], Decimal], set[str]]:
        """Signed size per (venue, symbol) and the venues that could not be read, from each venue's
        answer (in venue order); an error other than an unreachable venue is raised."""
        actual: dict[tuple[str, str], Decimal] = {}
        unreachable: set[str] = set()
        for venue, answer in answers:
            if isinstance(answer, (TemporaryVenueError, FatalVenueError)) or (
                    is_spot(venue) and isinstance(answer, SpotUnavailable)):
                self._on_venue_result(venue, False)
                unreachable.add(venue)
                continue
            if isinstance(answer, Exception):
                raise answer
            self._on_venue_result(venue, True)
            if isinstance(answer, dict):
                actual.update(answer)
                continue
            for p in answer:
                if p.size_base != 0:
                    actual[(p.venue, p.symbol)] = actual.get((p.venue, p.symbol), ZERO) + p.size_base
        return actual, unreachable

    def _venues(self) -> set[str]:
        found = {p.long_venue for p in self.positions.values()} | {p.short_venue for p in self.positions.values()}
        return self.known_venues | found | self.spot_markets()

    def _expected_exposure(self) -> dict[tuple[str, str], Decimal]:
        expected: dict[tuple[str, str], Decimal] = {}
        for pos in self.active_positions():
            for venue, signed in ((pos.long_venue, pos.long_filled_base), (pos.short_venue, -pos.short_filled_base)):
                if signed != 0:
                    key = (venue, pos.symbol)
                    expected[key] = expected.get(key, ZERO) + signed
        return expected
