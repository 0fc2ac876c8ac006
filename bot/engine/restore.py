"""Restart and funding: reload non-terminal positions from the store; record funding payments (deduplicated)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from adapters.errors import (
    FatalVenueError,
    TemporaryVenueError,
)
from bot.core.domain import (
    ZERO,
    FundingPayment,
    LegSide,
)
from bot.engine.core import (
    UNKNOWN_STATUS,
    EngineCore,
    MakerWork,
    OrderMeta,
)
from bot.engine.spot import SpotMixin
from machines.position import PositionFsm, PositionState

# A venue stamps a payment on its own clock (start-up refuses one more than 1 s off ours): a payment
# stamped up to this long after a position's close (or before its creation) is still that position's.
FUNDING_CLOCK_SLACK_MS = 5_000


class RestoreMixin(SpotMixin, EngineCore):
    """Reloads state and records funding."""

    # ------------------------------------------------------------------ funding
    async def record_funding(self, payments: Iterable[FundingPayment],
                             new_by_venue: dict[str, int] | None = None) -> int:
        """Persist funding payments against the position that owns each (venue, symbol).

        Deduplicated by payment id; returns how many were new. A payment read after its position
        closed (the venue settled between the last funding read and the close; a live venue's
        history is read later) belongs to the position that held the leg at the payment's time."""
        rows: list[tuple[FundingPayment, LegSide | None, str | None]] = []
        for payment in payments:
            owner = self.owner_of(payment.venue, payment.symbol)
            if owner is not None:
                rows.append((payment, owner[1], owner[0].position_id))
                continue
            held = await self.store.position_holding_at(payment.venue, payment.symbol, payment.ts_ms,
                                                        FUNDING_CLOCK_SLACK_MS)
            rows.append((payment, held[1] if held else None, held[0] if held else None))
        if not rows:
            return 0

        def write(s: Any) -> list[bool]:
            # One transaction for the whole batch (one settlement instant pays many legs at once).
            with s.transaction():
                return [s.record_funding_payment(p, pid, leg.value if leg else None) for p, leg, pid in rows]

        recorded = await self.store.run(write)
        self._note_funding_recorded(payment for payment, _leg, _pid in rows)
        new = 0
        for (payment, _leg, position_id), is_new in zip(rows, recorded):
            if not is_new:
                continue
            new += 1
            if new_by_venue is not None:
                new_by_venue[payment.venue] = new_by_venue.get(payment.venue, 0) + 1
            if position_id is not None and position_id in self.positions:
                self.funding_usd[position_id] = self.funding_usd.get(position_id, ZERO) + payment.amount_usd
            elif position_id is not None:  # a position already retired from memory
                self.retired_funding_usd += payment.amount_usd
            if position_id is None:
                await self._event("funding_unowned", None, "warning",
                                  f"funding on {payment.venue} {payment.symbol} with no owning position")
        return new

    async def _funding_since(self, venues: Iterable[str]) -> dict[str, int]:
        """Per venue, the time to read its funding from: its latest recorded payment (0: none). Read
        from the store once per venue, then kept by ``record_funding`` (this process is the
        database's only writer of payments). Reconciliation reads every venue's funding from there
        each pass (missed payments: a crash between a venue's settlement and the bot recording it)
        and records the answers with ``_record_read_funding``."""
        seen = self._funding_seen
        if unknown := [venue for venue in venues if venue not in seen]:
            latest = await self.store.latest_funding_ts_by_venue(unknown)  # one read for those venues
            for venue in unknown:
                seen.setdefault(venue, (latest[venue], set()))
        return {venue: seen[venue][0] or 0 for venue in venues}

    async def _record_read_funding(self, answers: Iterable[tuple[str, list[FundingPayment] | Exception]]) -> None:
        """Record what the venues answered (``_funding_since``), in venue order. A payment already
        recorded at a venue's latest time is not written again: a pass with nothing new writes
        nothing. An unreachable venue is asked again next pass; any other error is raised."""
        fetched: list[FundingPayment] = []
        venues = []
        for venue, answer in answers:
            venues.append(venue)
            if isinstance(answer, (TemporaryVenueError, FatalVenueError)):
                continue
            if isinstance(answer, Exception):
                raise answer
            latest_ts, ids_at_latest = self._funding_seen.get(venue, (None, set()))
            fetched.extend(p for p in answer if not (p.ts_ms == latest_ts and p.payment_id in ids_at_latest))
        missed_by_venue: dict[str, int] = {}
        await self.record_funding(fetched, missed_by_venue)  # one write for every venue (deduplicated by id)
        for venue in venues:
            if missed := missed_by_venue.get(venue, 0):
                await self._event("funding_recovered", None, "warning",
                                  f"{missed} funding payment(s) on {venue} recorded from the venue's history")

    def _note_funding_recorded(self, payments: Iterable[FundingPayment]) -> None:
        """Payments now in the database (new or already there): advance each known venue's
        latest recorded time (``_funding_since``). A venue not read from the store yet is
        left to that read."""
        seen = self._funding_seen
        for payment in payments:
            known = seen.get(payment.venue)
            if known is None:
                continue
            latest_ts, ids = known
            if latest_ts is None or payment.ts_ms > latest_ts:
                seen[payment.venue] = (payment.ts_ms, {payment.payment_id})
            elif payment.ts_ms == latest_ts:
                ids.add(payment.payment_id)

    # ------------------------------------------------------------------ restore
    async def restore(self) -> int:
        """Load every non-terminal position and its orders from the store. Returns how many."""
        rows = await self.store.load_open_positions()
        await self.load_spot_baselines()
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
                from_fills[leg] += ((fill.size_base if fill.side is leg.open_side else -fill.size_base)
                                    - leg.sign * fill.fee_base)
            # Spot dust released by this position left its long leg without a fill saying so.
            for released in (await self.store.kv_with_prefix(f"spot_dust:{row.id}:")).values():
                from_fills[LegSide.LONG] -= Decimal(released)
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
                tolerance_base=self._tolerance_for(row.symbol, row.long_venue, row.short_venue,
                                                   row.target_size_base),
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
            self._register(pos)
            self.fees_usd[pos.position_id] = sum((f.fee_usd for f in fills), ZERO)
            payments = await self.store.list_funding_payments(row.id)
            self.funding_usd[pos.position_id] = sum((p.amount_usd for p in payments), ZERO)
            for order in orders:
                self._track_order(order.client_order_id, OrderMeta(
                    position_id=pos.position_id,
                    leg=order.leg,
                    purpose=order.purpose.value,
                    venue=order.request.venue,
                    status=order.status.value if order.status is not None else UNKNOWN_STATUS,
                ))
                self._cids_of.setdefault(pos.position_id, set()).add(order.client_order_id)
                key = (pos.position_id, order.purpose.value, order.leg)
                self._attempts[key] = max(self._attempts.get(key, -1), order.attempt)
                if pos.state == PositionState.RESTING.value and order.request.post_only and order.leg is not None:
                    # The maker entry order: reconciliation applies what it missed, ``_resume``
                    # goes on hedging its fills and cancels its rest at the timeout.
                    self._makers[pos.position_id] = MakerWork(order.client_order_id, order.leg,
                                                              order.request.venue, order.created_at_ts_ms)
        return len(rows)
