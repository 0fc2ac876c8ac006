"""Reconciliation asks every venue at once, and a quiet pass rewrites no funding.

A pass reads each venue's positions and funding. Asked one venue after another it waits for the
sum of their round trips (and in a busy process each round trip can wait behind the other loops):
the venues are asked concurrently, their answers handled in venue order. The latest recorded
funding time per venue is read from the database once and then kept in memory, so a pass with
nothing new neither reads nor writes funding rows; a payment settled later (or while the bot was
down) is still recorded.
"""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import anyio.lowlevel
import pytest
from engine_harness import T0_MS, VENUES, make_harness, opportunity

from bot.core.domain import FundingSettlement
from bot.engine.venue_reads import read_venues
from machines.position import PositionState

pytestmark = pytest.mark.anyio
HOUR_MS = 3_600_000


class CountingExecutor:
    """Delegates to the paper executor; counts how many position / funding reads are in flight
    at once (each read yields a few times before it answers, as a network round trip would)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.in_flight = {"positions": 0, "funding": 0}
        self.most_in_flight = {"positions": 0, "funding": 0}
        self.asked: list[tuple[str, str]] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def _round_trip(self, kind: str, venue: str) -> None:
        self.asked.append((kind, venue))
        self.in_flight[kind] += 1
        self.most_in_flight[kind] = max(self.most_in_flight[kind], self.in_flight[kind])
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        self.in_flight[kind] -= 1

    async def positions(self, venue=None):
        await self._round_trip("positions", venue)
        return await self._inner.positions(venue)

    async def funding_payments_since(self, venue, since_ts_ms):
        await self._round_trip("funding", venue)
        return await self._inner.funding_payments_since(venue, since_ts_ms)


def settle(h, venue: str, symbol: str, ts_ms: int):
    return h.executor.settle_funding(FundingSettlement(venue=venue, symbol=symbol, ts_ms=ts_ms, rate=D("0.0001"),
                                                       interval_hours=D(1), mark_price=D(100)))


async def test_every_venue_is_read_at_once_and_answers_are_handled_in_venue_order(tmp_path):
    h = await make_harness(tmp_path)
    try:
        pos = await h.engine.open_position(opportunity("AAA"), D(1), "test")
        assert pos.state == PositionState.MONITORING.value
        counting = CountingExecutor(h.engine.executor)
        h.engine.executor = counting
        results: list[tuple[str, bool]] = []
        h.engine._on_venue_result = lambda venue, ok: results.append((venue, ok))
        h.executor.down_for("gamma", 60)

        findings = await h.engine.reconcile()

        # all venues in flight together (one after another would never exceed 1)
        assert counting.most_in_flight == {"positions": len(VENUES), "funding": len(VENUES)}
        assert sorted(v for kind, v in counting.asked if kind == "positions") == sorted(VENUES)
        # answers handled as a sequential pass would: venue order, the unreachable one reported
        assert results == [("alpha", True), ("beta", True), ("gamma", False)]
        assert [(f.kind, f.venue) for f in findings] == [("venue_unreachable", "gamma")]
        assert pos.state == PositionState.MONITORING.value  # legs agree with the venues that answered
    finally:
        await h.aclose()


async def test_read_venues_returns_exceptions_in_venue_order_and_reraises_nothing():
    async def read(venue: str) -> str:
        await anyio.lowlevel.checkpoint()
        if venue == "b":
            raise ValueError("no")
        return venue.upper()

    outcomes = await read_venues(["c", "a", "b"], read)
    assert [v for v, _ in outcomes] == ["a", "b", "c"]
    assert outcomes[0][1] == "A" and outcomes[2][1] == "C"
    assert isinstance(outcomes[1][1], ValueError)


async def test_a_quiet_pass_reads_and_writes_no_funding_rows_and_new_payments_are_still_recorded(tmp_path):
    h = await make_harness(tmp_path)
    try:
        pos = await h.engine.open_position(opportunity("AAA"), D(1), "test")
        h.clock.advance(3600)
        paid = settle(h, "alpha", "AAA", T0_MS + HOUR_MS) + settle(h, "beta", "AAA", T0_MS + HOUR_MS)
        assert len(paid) == 2
        latest_reads: list[list[str]] = []
        funding_writes: list[str] = []
        store_latest, store_run = h.store.latest_funding_ts_by_venue, h.store.run

        async def counted_latest(venues):
            latest_reads.append(list(venues))
            return await store_latest(venues)

        async def counted_run(fn, *args):
            if "record_funding" in getattr(fn, "__qualname__", ""):
                funding_writes.append(fn.__qualname__)
            return await store_run(fn, *args)

        h.store.latest_funding_ts_by_venue = counted_latest
        h.store.run = counted_run

        await h.engine.reconcile()  # the bot had not recorded the payments: recovered from the venues
        assert len(await h.store.list_funding_payments(pos.position_id)) == 2
        assert len(await h.store.list_events(kind="funding_recovered")) == 2  # one per venue
        assert h.engine.funding_usd[pos.position_id] == sum((p.amount_usd for p in paid), D(0))
        assert len(latest_reads) == 1 and len(funding_writes) == 1

        for _ in range(3):  # nothing new: no read of the latest times, no write
            h.clock.advance(30)
            await h.engine.reconcile()
        assert len(latest_reads) == 1 and len(funding_writes) == 1
        assert len(await h.store.list_funding_payments(pos.position_id)) == 2

        h.clock.advance(3600)  # the next settlement: read and recorded by the next pass
        later = settle(h, "alpha", "AAA", T0_MS + 2 * HOUR_MS)
        await h.engine.reconcile()
        assert len(await h.store.list_funding_payments(pos.position_id)) == 3
        assert h.engine.funding_usd[pos.position_id] == sum((p.amount_usd for p in paid + later), D(0))
        assert len(funding_writes) == 2

        # recorded through the feed (record_funding) first: the pass after finds it known
        h.clock.advance(3600)
        fed = settle(h, "beta", "AAA", T0_MS + 3 * HOUR_MS)
        assert await h.engine.record_funding(fed) == 1
        await h.engine.reconcile()
        assert len(funding_writes) == 3  # the feed's write only
        assert len(await h.store.list_funding_payments(pos.position_id)) == 4
    finally:
        await h.aclose()


async def test_payments_settled_while_the_bot_was_down_are_recorded_after_a_restart(tmp_path):
    h = await make_harness(tmp_path)
    pos = await h.engine.open_position(opportunity("AAA"), D(1), "test")
    h.clock.advance(3600)
    first = settle(h, "alpha", "AAA", T0_MS + HOUR_MS)
    await h.engine.reconcile()
    assert len(await h.store.list_funding_payments(pos.position_id)) == 1
    h.clock.advance(3600)
    missed = settle(h, "alpha", "AAA", T0_MS + 2 * HOUR_MS) + settle(h, "beta", "AAA", T0_MS + 2 * HOUR_MS)
    await h.aclose()  # down before the bot read them

    h2 = await make_harness(tmp_path, clock=h.clock)
    try:
        assert await h2.engine.restore() == 1
        await h2.engine.reconcile()
        stored = await h2.store.list_funding_payments(pos.position_id)
        assert sorted(p.payment_id for p in stored) == sorted(p.payment_id for p in first + missed)
        assert len(await h2.store.list_events(kind="funding_recovered")) == 2 + 1  # before the restart: 1
        assert h2.engine.funding_usd[pos.position_id] == sum((p.amount_usd for p in first + missed), D(0))
    finally:
        await h2.aclose()
