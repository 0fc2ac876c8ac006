"""Maker-taker entry: one leg rests as a post-only maker order, each of its fills hedged at once.

Protocol (``strategy.execution = "maker_taker"``; pure choices in ``bot.core.maker_taker``):

1. Intent first: the position row (state ``resting``) and the maker order's intent (purpose
   ``open``, GTC, post-only, deterministic client order id) in one transaction; then the order is
   sent. A post-only order that would cross is rejected by the venue: the entry ends flat.
2. ``work_makers`` runs right after every market step (the venues match resting orders there) and on
   every reconciliation pass: it reads the maker order by client order id, applies its new fills and
   at once sends the hedge, a taker IOC on the other leg for the difference (purpose ``repair``: it
   completes the lagging leg, so it passes the trading-state gate as a repair, even when HALTED),
   priced within ``risk.max_slippage_bps`` like any entry leg. The unhedged window of every maker
   fill is measured from the moment the fill is applied to the moment the hedge fill is, by the
   same ``_track_unhedged`` as every entry and exit, and fed to the ``risk.max_unhedged_ms`` breaker.
3. The maker phase ends when the maker order is filled, rejected, or has rested
   ``maker_timeout_s`` clock seconds (the rest is then cancelled, and fills that raced the cancel
   are hedged too), or at once when a hedge falls short (no liquidity within the cap, rejected,
   outcome unknown). Then ``legs_settled``: hedged -> ``monitoring`` (a partial maker fill becomes a
   smaller position), flat -> ``closed``, otherwise ``recovering``, whose repair completes the hedge
   with widening IOCs or unwinds the excess, as for any one-sided entry.

Crash safety: the maker order is never left working outside ``resting``. Every path out of
``resting`` (timeout, close, shutdown flatten, a reconciliation mismatch) cancels it first and
hedges what filled. After a restart ``restore`` rebuilds the work from the stored post-only order,
reconciliation applies fills it missed, and ``_resume`` continues the same loop, so the position ends
hedged or flat whatever await point the crash hit.

Exits stay taker-taker (both legs IOC, concurrently).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import anyio

from adapters.errors import AbsurdVenueData, FatalVenueError, TemporaryVenueError
from bot.core.domain import (
    ZERO,
    LegSide,
    Opportunity,
    OrderReport,
    OrderRequest,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from bot.core.maker_taker import choose_maker_leg, maker_limit_price
from bot.engine.core import UNKNOWN_STATUS, EngineCore, MakerWork
from machines.position import PositionFsm, PositionState
from risk.trading_state import IntentKind, OrderIntent
from storage import client_order_id

_TERMINAL = {s.value for s in OrderStatus if s.is_terminal}


def _other(leg: LegSide) -> LegSide:
    return LegSide.SHORT if leg is LegSide.LONG else LegSide.LONG


class MakerTakerMixin(EngineCore):
    """Rests the maker leg, hedges each of its fills, ends the rest."""

    # ------------------------------------------------------------------ planning
    def _maker_plan(self, pos: PositionFsm) -> tuple[LegSide, Decimal] | None:
        """(maker leg, post-only price), or None when its side of the book has no price."""
        long_fees, short_fees = self._fees(pos.long_venue), self._fees(pos.short_venue)
        leg = choose_maker_leg(long_fees, short_fees) if long_fees and short_fees else LegSide.LONG
        venue = pos.long_venue if leg is LegSide.LONG else pos.short_venue
        inst = self._instrument(venue, pos.symbol)
        tick = inst.tick_size if inst is not None else Decimal("0.0001")
        price = maker_limit_price(self._book(venue, pos.symbol), leg.open_side, tick_size=tick,
                                  offset_ticks=self.config.maker_offset_ticks)
        return None if price is None else (leg, price)

    def _maker_request(self, pos: PositionFsm, leg: LegSide, price: Decimal) -> OrderRequest:
        key = (pos.position_id, "open", leg)
        attempt = self._attempts.get(key, -1) + 1
        self._attempts[key] = attempt
        cid = client_order_id(pos.position_id, "open", leg, attempt)
        self._cid_attempt[cid] = attempt
        return OrderRequest(
            client_order_id=cid,
            venue=pos.long_venue if leg is LegSide.LONG else pos.short_venue,
            symbol=pos.symbol,
            side=leg.open_side,
            size_base=pos.target_size_base,
            order_type=OrderType.LIMIT,
            limit_price=price,
            time_in_force=TimeInForce.GTC,
            post_only=True,
        )

    # ------------------------------------------------------------------ entry
    async def _open_maker_taker(self, pos: PositionFsm, opp: Opportunity, plan: tuple[LegSide, Decimal],
                                reason: str) -> None:
        leg, price = plan
        async with self.lock_for(pos.position_id):
            pos.begin_rest(reason=reason, details={
                "expected_net_usd": str(opp.expected_net), "spread_hourly": str(opp.spread_hourly),
                "maker_leg": leg.value, "maker_price": str(price)})
            req = self._maker_request(pos, leg, price)
            self._log_transitions(await self._persist_entry_intent(pos, opp, [(leg, req)]))  # type: ignore[attr-defined]
            self._makers[pos.position_id] = MakerWork(req.client_order_id, leg, req.venue, self.clock.now_ms())
            self.metrics.maker_orders += 1
            await self._send_and_record(pos, leg, req, "open")  # type: ignore[attr-defined]
            await self._work_maker_locked(pos)

    # ------------------------------------------------------------------ working the rest
    async def work_makers(self) -> None:
        """Hedge new maker fills and end rests that are done or timed out (after every market step)."""
        for pos in list(self.active_positions()):
            if pos.state != PositionState.RESTING.value:
                continue
            async with self.lock_for(pos.position_id):
                await self._work_maker_locked(pos)

    async def _work_maker_locked(self, pos: PositionFsm, *, finish: bool = False) -> None:
        """One pass over a resting maker entry; with ``finish`` the rest is cancelled now."""
        if pos.state != PositionState.RESTING.value:
            return
        work = self._makers.get(pos.position_id)
        if work is None:
            # No maker order on record (cannot happen: restore rebuilds it); settle what is held.
            await self._settle_rest(pos)
            return
        if await self._refresh_maker(pos, work) is UNKNOWN_STATUS:
            return
        short = await self._hedge_maker_fills(pos, work)
        status = self.orders[work.client_order_id].status
        timed_out = self.clock.now_ms() - work.started_ts_ms >= self.config.maker_timeout_s * 1000
        # A resting maker order is an entry still in progress: once the trading state no longer
        # allows entries (REDUCING, HALTED, shutting down), its rest is cancelled.
        entries_denied = not self._gate(OrderIntent(kind=IntentKind.OPEN, reduces_exposure=False)).allowed
        if not (finish or short or timed_out or entries_denied or status in _TERMINAL):
            return
        if status not in _TERMINAL:
            if not await self._cancel_maker(pos, work):
                await self._event("maker_cancel_pending", pos.position_id, "warning",
                                  f"could not cancel maker order {work.client_order_id} on {work.venue}; "
                                  "its fills keep being hedged, cancel retried on the next pass")
                return
            await self._hedge_maker_fills(pos, work)
        if self._has_unknown_orders(pos.position_id):
            await self._event("maker_hedge_pending", pos.position_id, "warning",
                              "a hedge's outcome is unknown; the entry settles after reconciliation")
            return
        await self._settle_rest(pos)

    async def _refresh_maker(self, pos: PositionFsm, work: MakerWork) -> OrderReport | str | None:
        """Read the maker order by client order id and apply fills not seen yet."""
        if self.orders[work.client_order_id].status in _TERMINAL:
            return None
        report = await self._lookup(work.venue, work.client_order_id)  # type: ignore[attr-defined]
        if report is UNKNOWN_STATUS:
            return UNKNOWN_STATUS
        if report is None:
            # The venue never saw it (get_order's contract: it can no longer execute).
            await self._mark_order(work.client_order_id, OrderStatus.REJECTED.value, ZERO, None,  # type: ignore[attr-defined]
                                   "venue has no such order")
            return None
        await self._apply_report(pos, work.leg, report)  # type: ignore[attr-defined]
        return report

    async def _hedge_maker_fills(self, pos: PositionFsm, work: MakerWork) -> bool:
        """Send a taker IOC for the maker leg's unhedged fills. True when a hedge fell short (a whole
        lot of the hedge venue is still unhedged, or an outcome is unknown): the rest must end."""
        hedge_leg = _other(work.leg)
        hedge_venue = pos.long_venue if hedge_leg is LegSide.LONG else pos.short_venue
        inst = self._instrument(hedge_venue, pos.symbol)
        lot = inst.lot_size_base if inst is not None else ZERO

        def hedgeable() -> Decimal:
            deficit = pos.leg_base(work.leg) - pos.leg_base(hedge_leg)
            if deficit <= pos.tolerance_base:
                return ZERO
            if lot <= ZERO:
                return deficit
            return (deficit / lot).to_integral_value(rounding=ROUND_FLOOR) * lot

        size = hedgeable()
        if size <= ZERO:
            return pos.leg_base(hedge_leg) > pos.leg_base(work.leg) + pos.tolerance_base
        # Priced within the slippage cap like an entry leg (no widening: a shortfall ends the rest
        # and repair takes over with its widening attempts).
        req = self._order(pos, hedge_leg, "repair", size, attempt=0, emergency=True, widen_steps=0)
        await self._send_and_record(pos, hedge_leg, req, "repair")  # type: ignore[attr-defined]
        if self.orders[req.client_order_id].status == OrderStatus.FILLED.value:
            self.metrics.maker_fills_hedged += 1
        return self._has_unknown_orders(pos.position_id) or hedgeable() > ZERO

    async def _cancel_maker(self, pos: PositionFsm, work: MakerWork) -> bool:
        """Cancel the rest of the maker order and apply its final report. False when the venue did
        not answer (the order may still be working)."""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(self.config.leg_timeout_s):
                    report = await self.executor.cancel_order(work.venue, work.client_order_id)
                self._on_venue_result(work.venue, True)
            except (TemporaryVenueError, TimeoutError, FatalVenueError, AbsurdVenueData):
                self._on_venue_result(work.venue, False)
                return False
            if report is None:
                found = await self._refresh_maker(pos, work)
                return found is not UNKNOWN_STATUS and self.orders[work.client_order_id].status in _TERMINAL
            if not await self._apply_report(pos, work.leg, report):  # type: ignore[attr-defined]
                return False  # an answer that cannot be acted on: the order's state is unknown
            return report.status.is_terminal

    async def _settle_rest(self, pos: PositionFsm) -> None:
        """The maker order is terminal and every hedge answered: leave ``resting``."""
        if pos.is_hedged and not pos.is_full_and_hedged:
            pos.accept_hedged_size()  # a partial maker fill, fully hedged: a smaller position
        pos.legs_settled(reason=f"maker entry done: {self._legs_text(pos)}")
        self._makers.pop(pos.position_id, None)
        await self._persist(pos, closed=pos.state == PositionState.CLOSED.value)
        if pos.state == PositionState.RECOVERING.value:
            await self._repair_locked(pos)  # type: ignore[attr-defined]
