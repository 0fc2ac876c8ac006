"""Funding read after a position closed still belongs to it.

A live venue's funding history is read on the reconciliation cadence, so a settlement that lands
between the last read and the close is only seen afterwards (or at the next start). It must be
recorded against the position that held the leg at the payment's time, not as unowned funding."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from engine_harness import T0_MS, make_harness, opportunity
from bot.core.domain import FundingPayment, FundingSettlement
from machines.position import PositionState

pytestmark = pytest.mark.anyio
HOUR_MS = 3_600_000


def settle(h, venue: str, symbol: str, ts_ms: int):
    return h.executor.settle_funding(FundingSettlement(venue=venue, symbol=symbol, ts_ms=ts_ms, rate=D("0.0001"),
                                                       interval_hours=D(1), mark_price=D(100)))


@pytest.mark.parametrize("retired", [False, True], ids=["closed", "closed_and_retired"])
async def test_funding_read_after_the_close_is_recorded_against_the_closed_position(tmp_path, retired):
    h = await make_harness(tmp_path)
    try:
        pos = await h.engine.open_position(opportunity("AAA"), D(1), "test")
        assert pos.state == PositionState.MONITORING.value
        h.clock.advance(3600)
        paid = settle(h, "alpha", "AAA", T0_MS + HOUR_MS) + settle(h, "beta", "AAA", T0_MS + HOUR_MS)
        assert len(paid) == 2  # both legs settled at the venues, but the bot has not read them yet
        h.clock.advance(60)
        assert await h.engine.close_position(pos, "test_exit")
        if retired:
            assert h.engine.evict_closed() == [pos.position_id]
        funding_before = h.engine.total_funding_usd()

        assert await h.engine.record_funding(paid) == 2

        stored = await h.store.list_funding_payments(pos.position_id)
        assert sorted(p.payment_id for p in stored) == sorted(p.payment_id for p in paid)
        totals = await h.store.run(lambda s: s.position_totals(pos.position_id))
        assert totals.funding_usd == sum((p.amount_usd for p in paid), D(0))
        assert h.engine.total_funding_usd() == funding_before + totals.funding_usd
        assert await h.store.list_events(kind="funding_unowned") == []
    finally:
        await h.aclose()


async def test_funding_on_a_symbol_no_position_held_at_that_time_stays_unowned(tmp_path):
    h = await make_harness(tmp_path)
    try:
        pos = await h.engine.open_position(opportunity("AAA"), D(1), "test")
        h.clock.advance(3600)
        assert await h.engine.close_position(pos, "test_exit")
        later = T0_MS + 5 * HOUR_MS  # after the close: not the closed position's
        h.clock.advance((later - h.clock.now_ms()) / 1000)
        orphan = settle(h, "alpha", "AAA", later)
        assert orphan == []  # the paper venue is flat, so it pays nothing; build the venue's word by hand
        payment = FundingPayment(venue="alpha", symbol="AAA", payment_id="alpha:AAA:late", ts_ms=later,
                                 rate=D("0.0001"), position_size_base=D(1), mark_price=D(100),
                                 amount_usd=D("-0.01"))
        assert await h.engine.record_funding([payment]) == 1
        assert await h.store.list_funding_payments(pos.position_id) == []
        assert len(await h.store.list_events(kind="funding_unowned")) == 1
    finally:
        await h.aclose()


async def test_a_payment_stamped_just_after_the_close_by_a_venue_clock_ahead_of_ours_is_still_owned(tmp_path):
    h = await make_harness(tmp_path)
    try:
        pos = await h.engine.open_position(opportunity("AAA"), D(1), "test")
        h.clock.advance(3600)
        assert await h.engine.close_position(pos, "test_exit")
        # The venue's clock runs 2 s ahead of ours: its settlement stamp is after our recorded close.
        stamped = h.clock.now_ms() + 2_000
        payment = FundingPayment(venue="beta", symbol="AAA", payment_id=f"beta:AAA:{stamped}", ts_ms=stamped,
                                 rate=D("0.0001"), position_size_base=D(-1), mark_price=D(100), amount_usd=D("0.01"))
        assert await h.engine.record_funding([payment]) == 1
        assert [p.payment_id for p in await h.store.list_funding_payments(pos.position_id)] == [payment.payment_id]
        assert await h.store.list_events(kind="funding_unowned") == []
    finally:
        await h.aclose()
