"""Repair of a one-sided fill: complete the lagging leg with widening attempts, else unwind the excess."""

from __future__ import annotations

from bot.core.domain import (
    LegSide,
)
from bot.engine.core import (
    EngineCore,
)
from machines.position import PositionFsm, PositionState


class RepairMixin(EngineCore):
    """Brings a recovering position to hedged or flat."""

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
            if pos.short_filled_base == 0 and not self._has_unknown_orders(pos.position_id):
                await self._release_spot_dust(pos)  # a carry unwound to a sub-lot spot remainder: flat
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
            if req.size_base <= 0:
                return  # less than one lot of the lagging leg: only an unwind of the other can close it
            await self._send_and_record(pos, lagging, req, "repair")

    async def _unwind_excess(self, pos: PositionFsm) -> None:
        for attempt in range(1, self.config.repair_attempts + 1):
            if self._legs_balanced(pos) or self._has_unknown_orders(pos.position_id):
                return
            leading = LegSide.LONG if pos.long_filled_base > pos.short_filled_base else LegSide.SHORT
            excess = abs(pos.long_filled_base - pos.short_filled_base)
            req = self._order(pos, leading, "unwind", excess, attempt=attempt, reduce_only=True, emergency=True)
            if req.size_base <= 0:
                return  # less than one lot of the leading leg: nothing can be unwound
            await self._send_and_record(pos, leading, req, "unwind")

    async def _drive_flat(self, pos: PositionFsm, *, purpose: str) -> None:
        """Reduce-only close of whatever each leg still holds, both legs concurrently, with widening retries."""
        for _ in range(self.config.repair_attempts):
            if self._has_unknown_orders(pos.position_id):
                return
            await self._release_spot_dust(pos)
            legs = [
                (leg, self._order(pos, leg, purpose, size, attempt=0, reduce_only=True, emergency=True))
                for leg, size in ((LegSide.LONG, pos.long_filled_base), (LegSide.SHORT, pos.short_filled_base))
                if size > 0
            ]
            if not legs:
                return
            await self._dispatch_concurrently(pos, legs, purpose)
