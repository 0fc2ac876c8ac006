"""Atomic two-leg entry: intent persisted first, both legs dispatched concurrently (or, in maker-taker
mode, the maker leg rested: ``bot.engine.maker``)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bot.core import orders_first
from bot.core.domain import (
    ExecutionMode,
    is_spot,
    LegSide,
    Opportunity,
    OrderRequest,
)
from bot.engine.core import (
    EngineCore,
)
from bot.engine.spot import SpotMixin, SpotUnavailable
from machines.position import PositionFsm, PositionState
from storage import (
    PositionRecord,
)


class EntryMixin(SpotMixin, EngineCore):
    """Opens positions."""

    # ------------------------------------------------------------------ entry
    async def open_position(self, opp: Opportunity, size_base: Decimal, reason: str) -> PositionFsm:
        """Atomic two-leg entry. Returns the machine in monitoring, closed, or (repair pending) recovering.

        A carry entry (long leg on a spot market) first records the spot wallet's baseline; if the
        wallet cannot be read nothing is sent and the machine comes back CLOSED (never persisted).
        Carry entries are always taker-taker. ``size_base`` is the perp size; the spot buy is grossed
        up for its base-coin fee (``EngineCore._carry_order_size``)."""
        position_id = uuid.uuid4().hex[:12]
        symbol, long_venue, short_venue = opp.symbol, opp.long_venue, opp.short_venue
        if is_spot(short_venue):
            raise ValueError(f"{short_venue} is a spot market: a spot leg cannot be shorted (no borrowing)")
        carry = is_spot(long_venue)
        for venue in (long_venue, short_venue):
            if self.owner_of(venue, symbol) is not None:
                # One position per (venue, symbol): venues net positions, so two would corrupt both.
                raise ValueError(f"{symbol} on {venue} is already held by an active position")
        tolerance = self._tolerance_for(symbol, long_venue, short_venue, size_base)
        pos = PositionFsm.new(  # a spare machine model when one is ready (prepared after each entry)
            position_id=position_id,
            symbol=symbol,
            long_venue=long_venue,
            short_venue=short_venue,
            target_size_base=size_base,
            tolerance_base=tolerance,
        )
        self._register(pos)
        if carry:
            try:
                await self.record_spot_baseline(long_venue, symbol)
            except SpotUnavailable as exc:
                self._unregister(position_id)
                pos.abandon(reason=f"carry entry not made: {exc}")
                pos.drain_transitions()
                await self._event("entry_refused", position_id, "warning", f"carry entry on {symbol} not made: {exc}")
                return pos
        if self.config.execution is ExecutionMode.MAKER_TAKER and not carry:
            plan = self._maker_plan(pos)
            if plan is not None:
                await self._open_maker_taker(pos, opp, plan, reason)
                return pos
            # No price for the maker order (its side of the book is empty): enter taker-taker.
        # Decided: market data waits behind this entry's intent and orders (``orders_first``).
        window = orders_first.Window()
        try:
            await self._open_taker_taker(pos, opp, size_base, reason, window)
        finally:
            window.close()
        return pos

    async def _open_taker_taker(self, pos: PositionFsm, opp: Opportunity, size_base: Decimal, reason: str,
                                window: orders_first.Window) -> None:
        async with self.lock_for(pos.position_id):
            pos.begin_open(reason=reason, details={
                "expected_net_usd": str(opp.expected_net), "spread_hourly": str(opp.spread_hourly),
                "current_spread_hourly": str(opp.current_spread_hourly), "costs_usd": str(opp.costs),
                "horizon_hours": str(opp.horizon_hours), "notional_usd": str(opp.notional_usd)})
            legs = [
                (LegSide.LONG, self._order(pos, LegSide.LONG, "open", size_base, attempt=0)),
                (LegSide.SHORT, self._order(pos, LegSide.SHORT, "open", size_base, attempt=0)),
            ]
            transitions = await self._persist_entry_intent(pos, opp, legs, journal=True)
            try:
                await self._dispatch_concurrently(pos, legs, "open", window)
            finally:
                # (written once the legs were away; this catches a dispatch that ended before that)
                await self._settle_entry_journal(pos.position_id)
            self._log_transitions(transitions)  # on disk before the send; the log line can follow it
            PositionFsm.prepare_spare()  # for the next entry, now that these orders are answered
            await self._settle_entry(pos)

    async def _persist_entry_intent(self, pos: PositionFsm, opp: Opportunity,
                                    legs: list[tuple[LegSide, OrderRequest]], *, journal: bool = False) -> list[Any]:
        """Intent first: position row + the entry order intents + the transition, one transaction.

        With ``journal`` (taker-taker entries) that transaction is one journal row holding the same
        encoded rows (``Storage.journal_entry_intent``: far fewer pages to commit while the orders
        wait); ``_settle_entry_journal`` writes the normal rows once the orders are on their way,
        before any answer about them is recorded, and a restart materialises a row a kill left."""
        now_ms = self.clock.now_ms()
        record = replace(PositionRecord.from_opportunity(pos.position_id, opp, pos.target_size_base, pos.state,
                                                         now_ms), opened_at_ts_ms=now_ms)
        intents = [self._intent(pos.position_id, leg, "open", req, now_ms) for leg, req in legs]
        transitions = self._stamp(pos.drain_transitions(), now_ms)

        try:
            # Small and on the entry's critical path: written on the loop's thread, one transaction
            # (the transition first, so a post-mortem reads "scanning -> opening" before the orders).
            if journal:
                self._entry_journal[pos.position_id] = await self.store.journal_entry_intent(
                    transitions, record, intents)
            else:
                await self.store.insert_entry_intent(transitions, record, intents)
        except Exception:
            # Rolled back: nothing is on disk and nothing was sent, so there is nothing to track
            # (a phantom here would fail every later persist). Cancellation is not caught: the
            # write may have committed, and reconciliation then closes the unsent entry.
            self._unregister(pos.position_id)
            raise
        for leg, req in legs:
            self._remember(req, pos.position_id, leg, "open")
        return transitions  # the caller logs them once the orders are on their way

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
