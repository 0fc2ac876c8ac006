"""Exits: both legs reduce-only and concurrently, flatness verified at the venues; the shutdown flatten."""

from __future__ import annotations

import anyio
from loguru import logger

from adapters.errors import (
    FatalVenueError,
    TemporaryVenueError,
)
from bot.core.domain import (
    ZERO,
    OrderStatus,
)
from bot.engine.core import (
    FLATTEN_ATTEMPTS,
    UNKNOWN_STATUS,
    EngineCore,
)
from machines.position import PositionFsm, PositionState
from risk.trading_state import IntentKind, OrderIntent


class ExitMixin(EngineCore):
    """Closes positions."""

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
            if pos.state == PositionState.RESTING.value:
                # A maker entry still resting: cancel its rest and hedge its fills, then close
                # what it holds (exits are taker-taker).
                await self._work_maker_locked(pos, finish=True)
                if pos.state == PositionState.RESTING.value:
                    return False
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
        await self._release_spot_dust(pos)
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
            if pos.is_flat:
                # Our fills are flat; what the venue still holds is not ours (foreign_exposure was
                # recorded): the position closes, the residual is an orphan for the policy to handle.
                pos.closed_flat(reason=f"our legs flat; venue holds size our fills do not explain ({pos.exit_reason})")
                await self._persist(pos, closed=True)
                return True
            pos.close_incomplete(reason="venue still shows exposure after close")
            await self._persist(pos)
            await self._repair_locked(pos)
            return pos.state == PositionState.CLOSED.value
        pos.closed_flat(reason=f"flat verified at {pos.long_venue} and {pos.short_venue} ({pos.exit_reason})")
        await self._persist(pos, closed=True)
        return True

    async def _venue_flat(self, pos: PositionFsm) -> bool | None:
        """True when neither venue holds the symbol (a spot leg: the wallet is back to its baseline
        within one lot); None when a venue could not be read."""
        actual, unreachable = await self._venue_positions((pos.long_venue, pos.short_venue))
        if unreachable:
            return None
        return all(actual.get((venue, pos.symbol), ZERO) == 0 for venue in (pos.long_venue, pos.short_venue))
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
        for cid, meta in list(self.orders_of(pos.position_id).items()):
            if meta.status in (UNKNOWN_STATUS, "intent"):
                report = await self._lookup(meta.venue, cid)
                if report is None:
                    await self._mark_order(cid, OrderStatus.REJECTED.value, ZERO, None, "venue has no such order")
                elif report is not UNKNOWN_STATUS:
                    await self._apply_report(pos, meta.leg, report)
