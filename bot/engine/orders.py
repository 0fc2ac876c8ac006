"""Order flow: persist intent, gate, send (shielded), look up unknown outcomes, apply reports, measure the unhedged window."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import anyio
from loguru import logger

from adapters.errors import (
    AbsurdVenueData,
    FatalVenueError,
    OrderNotFoundYet,
    OrderRejected,
    TemporaryVenueError,
)
from bot.core import orders_first
from bot.core.domain import (
    ZERO,
    Fill,
    LegSide,
    OrderReport,
    OrderRequest,
    OrderStatus,
)
from bot.engine.core import (
    UNKNOWN_STATUS,
    EngineCore,
)
from bot.engine.report_check import report_problem
from machines.position import PositionFsm, PositionState
from risk.trading_state import IntentKind, OrderIntent


class OrderFlowMixin(EngineCore):
    """Sends orders and applies their answers."""

    # ------------------------------------------------------------------ sending
    async def _dispatch_concurrently(self, pos: PositionFsm, legs: list[tuple[LegSide, OrderRequest]], purpose: str,
                                     window: orders_first.Window | None = None) -> None:
        """Send several legs at once. Never leg-by-leg with a wait in between. ``window``: the
        caller's open ``orders_first.Window`` (closed here once the legs have started), else one
        is opened now."""
        if len(legs) == 1:
            if window is not None:
                window.close()
            leg, req = legs[0]
            await self._send_and_record(pos, leg, req, purpose)
            return
        stamps: list[int] = []
        window = window or orders_first.Window()  # market-data handlers queued meanwhile step behind the legs
        try:
            async with anyio.create_task_group() as tg:
                for leg, req in legs:
                    tg.start_soon(self._send_and_record, pos, leg, req, purpose, stamps)
                # Started after the legs, so it runs once each leg has reached its first wait.
                tg.start_soon(self._orders_away, window, pos.position_id)
        finally:
            window.close()
        if len(stamps) == 2:
            self.metrics.dispatch_skew_ns.append(abs(stamps[0] - stamps[1]))

    async def _orders_away(self, window: orders_first.Window, position_id: str) -> None:
        window.close()
        self._on_orders_away()
        try:
            # A journalled entry's normal rows, written while its orders travel (before either
            # leg records an answer: each leg also settles it first, see ``_send_and_record``).
            await self._settle_entry_journal(position_id)
        except Exception as exc:  # the legs must not be cancelled by it: their own settle raises it
            logger.bind(position_id=position_id).error(f"entry journal not written out yet: {exc!r}")

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
            await self._settle_entry_journal(pos.position_id)  # its order row first (a journalled entry)
            await self._mark_order(req.client_order_id, OrderStatus.REJECTED.value, ZERO, None, f"gate: {decision.reason}")
            await self._event("order_denied", pos.position_id, "warning",
                              f"{purpose} {leg.value} on {req.venue} denied by trading-state gate: {decision.reason}")
            return
        # Shielded: once sent, an order's answer is always recorded, even if the caller is being
        # cancelled (shutdown); the executor call is bounded by leg_timeout_s inside.
        with anyio.CancelScope(shield=True):
            report = await self._place(req, stamps)
            await self._settle_entry_journal(pos.position_id)  # its order row before its answer
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
            problem = self._report_problem(req.venue, req.client_order_id, report)
            if problem is None:
                self._on_venue_result(req.venue, True)
                return report
            await self._inconsistent(req.venue, req.client_order_id, problem)
            # The venue said it traded: a later "not found" must not turn that into "never sent".
            found = await self._lookup(req.venue, req.client_order_id)
            return UNKNOWN_STATUS if found is None else found
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
        """get_order with bounded retries; UNKNOWN_STATUS when the venue never answered, or answered
        that it does not know the order YET (``OrderNotFoundYet``: the request may still arrive, e.g.
        an order persisted just before a restart). That answer is a working venue, not a failure: it
        never counts towards the venue-error breaker. An answer that cannot be acted on
        (``report_problem``: e.g. filled without the fills) is read again, counts as a venue failure,
        and after the last attempt leaves the outcome unknown (reconciliation reads it again)."""
        self.not_found_yet.discard(cid)
        not_yet = False
        for attempt in range(self.config.lookup_attempts):
            not_yet = False
            try:
                with anyio.fail_after(self.config.leg_timeout_s):
                    found = await self.executor.get_order(venue, cid)
                problem = None if found is None else self._report_problem(venue, cid, found)
                if problem is None:
                    self._on_venue_result(venue, True)
                    self._settle_inconsistent(cid)
                    return found
                await self._inconsistent(venue, cid, problem)
                await anyio.sleep(self.config.lookup_backoff_s * (2**attempt))
            except OrderNotFoundYet:
                not_yet = True
                self._on_venue_result(venue, True)
                await anyio.sleep(self.config.lookup_backoff_s * (2**attempt))
            except (TemporaryVenueError, TimeoutError, FatalVenueError):
                self._on_venue_result(venue, False)
                await anyio.sleep(self.config.lookup_backoff_s * (2**attempt))
        if not_yet:  # the venue answers; its answer is final within seconds (``resume_not_found_yet``)
            self.not_found_yet.add(cid)
        return UNKNOWN_STATUS

    def _report_problem(self, venue: str, cid: str, report: OrderReport) -> str | None:
        """Why ``report`` cannot be applied to our order ``cid`` (``report_check``), or None."""
        meta = self.orders.get(cid)
        pos = self.positions.get(meta.position_id) if meta is not None else None
        return report_problem(report, venue=venue, client_order_id=cid, symbol=pos.symbol if pos else None)

    async def _inconsistent(self, venue: str, cid: str, problem: str) -> None:
        """An answer about ``cid`` that cannot be acted on: a venue failure (its error breaker), the
        symbol refused for entries until a consistent answer, and one error event per order."""
        self._on_venue_result(venue, False)
        meta = self.orders.get(cid)
        pos = self.positions.get(meta.position_id) if meta is not None else None
        symbol = pos.symbol if pos is not None else "?"
        logger.bind(venue=venue, cid=cid).warning(f"inconsistent order answer: {problem}")
        if cid in self.inconsistent_orders:
            return
        self.inconsistent_orders[cid] = (venue, symbol)
        await self._event("order_report_inconsistent", meta.position_id if meta else None, "error",
                          f"{venue} {symbol} order {cid}: {problem}; its outcome stays unknown and is read again "
                          f"on every reconciliation; no repair is sent on it and no entry on {symbol} meanwhile",
                          {"venue": venue, "symbol": symbol, "client_order_id": cid, "problem": problem})

    def _settle_inconsistent(self, cid: str) -> None:
        if self.inconsistent_orders.pop(cid, None) is not None:
            logger.bind(cid=cid).info(f"order {cid}: the venue's answer is consistent again")

    async def _apply_report(self, pos: PositionFsm, leg: LegSide, report: OrderReport) -> bool:
        """Apply a venue's report (fills, status, legs). False when it was refused as inconsistent
        (``report_problem``): the order is then left unknown for reconciliation to read again."""
        problem = self._report_problem(report.venue, report.client_order_id, report)
        if problem is not None:
            await self._inconsistent(report.venue, report.client_order_id, problem)
            meta = self.orders.get(report.client_order_id)
            if meta is not None:
                meta.status = UNKNOWN_STATUS
            return False
        # Shielded: once the fills are committed, the in-memory legs must follow them even if the
        # caller is being cancelled, or the next persist would overwrite the columns without them.
        with anyio.CancelScope(shield=True):
            await self._apply_report_now(pos, leg, report)
        self._settle_inconsistent(report.client_order_id)
        return True

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
            # The base that actually moved: a base-coin fee (spot buys) never reaches the wallet.
            delta = sum(((f.size_base if f.side is leg.open_side else -f.size_base) - leg.sign * f.fee_base
                         for f in new), ZERO)
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
            if pos.state == PositionState.RESTING.value:
                self.metrics.maker_fill_windows_ms.append(window_ms)  # a maker fill, detected -> hedged
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
