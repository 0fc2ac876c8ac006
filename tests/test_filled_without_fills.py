"""A venue answer that says "filled" without the fills to show for it is never taken as a zero leg.

The engine moves a leg only by fills (deduplicated by trade id). An order looked up as filled 0.285
with no fill rows used to count that leg as 0, and the repair then sent the leg AGAIN (the live
torture's doubled Hyperliquid short, NOT FLAT at the end). Now such an answer is refused: the order's
outcome stays unknown, it is read again (bounded, then on every reconciliation), the venue's error
breaker hears about it, entries on the symbol are refused, and no repair is decided until a consistent
answer arrives.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from engine_harness import make_harness, opportunity, venue_exposure

from adapters.errors import TemporaryVenueError
from bot.core.domain import OrderReport, OrderRequest
from bot.engine.core import UNKNOWN_STATUS
from bot.engine.report_check import report_problem
from machines.position import PositionState

D = Decimal


class FillsWithheld:
    """The paper venues, except that while ``lying_venue`` is set, every answer from that venue comes
    without its fills (the order really filled there). ``drop_answers``: place_order executes, then
    raises as if the connection dropped. Records every order sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lying_venue: str | None = None
        self.drop_answers = False
        self.sent: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _strip(self, report: OrderReport | None) -> OrderReport | None:
        if report is not None and report.venue == self.lying_venue:
            return replace(report, fills=())
        return report

    async def place_order(self, request: OrderRequest) -> OrderReport:
        self.sent.append((request.venue, request.client_order_id))
        report = await self.inner.place_order(request)
        if self.drop_answers:
            raise TemporaryVenueError(request.venue, "connection dropped after execution (test)")
        return self._strip(report)

    async def get_order(self, venue: str, client_order_id: str) -> OrderReport | None:
        return self._strip(await self.inner.get_order(venue, client_order_id))

    def sent_to(self, venue: str) -> list[str]:
        return [cid for v, cid in self.sent if v == venue]


def _event_kinds(db_path) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        return [row[0] for row in conn.execute("SELECT kind FROM events ORDER BY id")]
    finally:
        conn.close()


@pytest.mark.anyio
async def test_a_filled_answer_without_fills_keeps_the_leg_unknown_and_sends_no_repair(tmp_path) -> None:
    h = await make_harness(tmp_path)
    venue = FillsWithheld(h.executor)
    venue.lying_venue = "beta"
    h.engine.executor = venue
    results: list[tuple[str, bool]] = []
    h.engine._on_venue_result = lambda name, ok: results.append((name, ok))

    pos = await h.engine.open_position(opportunity("AAA"), D(1), "test")
    (short_cid,) = venue.sent_to("beta")
    assert h.engine.orders[short_cid].status == UNKNOWN_STATUS  # never "filled with nothing"
    assert pos.state == PositionState.OPENING.value and pos.short_filled_base == 0
    assert ("beta", False) in results  # the venue-error breaker hears about the inconsistent answer

    await h.engine.reconcile()  # still inconsistent: still no decision, and certainly no second short
    assert venue.sent_to("beta") == [short_cid]
    assert h.engine.orders[short_cid].status == UNKNOWN_STATUS
    assert "AAA" in h.engine.orphaned_symbols()  # entries on the symbol are refused meanwhile
    assert "order_report_inconsistent" in _event_kinds(h.db_path)

    venue.lying_venue = None  # the venue's answer is whole again
    await h.engine.reconcile()
    assert h.engine.orders[short_cid].status == "filled"
    assert pos.state == PositionState.MONITORING.value and pos.long_filled_base == pos.short_filled_base == D(1)
    assert venue.sent_to("beta") == [short_cid] and len(venue.sent_to("alpha")) == 1  # nothing sent twice
    assert venue_exposure(h.executor) == {("alpha", "AAA"): D(1), ("beta", "AAA"): D(-1)}
    assert "AAA" not in h.engine.orphaned_symbols()
    await h.aclose()


@pytest.mark.anyio
async def test_after_a_restart_a_filled_answer_without_fills_never_triggers_a_second_leg(tmp_path) -> None:
    """The torture's sequence: the short's answer is dropped, the bot dies, and the restarted bot's
    look-up says "filled" with no fills."""
    first = await make_harness(tmp_path)
    venue = FillsWithheld(first.executor)
    venue.drop_answers = True
    venue.lying_venue = "beta"
    first.engine.executor = venue
    pos = await first.engine.open_position(opportunity("AAA"), D(1), "test")
    assert pos.state == PositionState.OPENING.value  # both answers unknown
    position_id = pos.position_id
    await first.aclose()  # killed

    second = await make_harness(tmp_path, clock=first.clock)
    venue = FillsWithheld(second.executor)
    venue.lying_venue = "beta"
    second.engine.executor = venue
    await second.engine.restore()
    await second.engine.reconcile()
    await second.engine.reconcile()
    assert venue.sent_to("beta") == []  # no repair short on the basis of a missing fill
    restored = second.engine.positions[position_id]
    assert restored.state == PositionState.OPENING.value
    assert venue_exposure(second.executor) == {("alpha", "AAA"): D(1), ("beta", "AAA"): D(-1)}

    venue.lying_venue = None
    await second.engine.reconcile()
    assert restored.state == PositionState.MONITORING.value
    assert restored.long_filled_base == restored.short_filled_base == D(1)
    assert venue.sent == []  # resolved by look-ups alone
    assert venue_exposure(second.executor) == {("alpha", "AAA"): D(1), ("beta", "AAA"): D(-1)}
    await second.aclose()


def _report(**changes: Any) -> OrderReport:
    from bot.core.domain import Fill, Liquidity, OrderSide, OrderStatus

    fill = Fill(venue="beta", symbol="AAA", client_order_id="c1", trade_id="t1", side=OrderSide.SELL,
                price=D(100), size_base=D("0.5"), fee_usd=D("0.01"), liquidity=Liquidity.TAKER, ts_ms=1)
    base = OrderReport(client_order_id="c1", venue="beta", symbol="AAA", side=OrderSide.SELL,
                       status=OrderStatus.FILLED, requested_base=D(1), filled_base=D(1), avg_price=D(100),
                       fills=(fill, replace(fill, trade_id="t2")))
    return replace(base, **changes)


def test_report_problem_names_each_inconsistency() -> None:
    ok = _report()
    assert report_problem(ok, venue="beta", client_order_id="c1", symbol="AAA") is None
    assert "no fill rows" in report_problem(replace(ok, fills=()), venue="beta", client_order_id="c1")
    assert "add up to 0.5" in report_problem(replace(ok, fills=ok.fills[:1]), venue="beta", client_order_id="c1")
    assert "sent on AAA" in report_problem(replace(ok, symbol="BBB", fills=()), venue="beta", client_order_id="c1",
                                           symbol="AAA")
    assert "not c1" in report_problem(replace(ok, client_order_id="c2"), venue="beta", client_order_id="c1")
    assert "not alpha" in report_problem(ok, venue="alpha", client_order_id="c1")
    stray = replace(ok.fills[0], symbol="BBB", trade_id="t3")
    assert "trades of beta BBB" in report_problem(replace(ok, fills=ok.fills + (stray,)), venue="beta",
                                                  client_order_id="c1")
    # More fills than the order read said: a resting order that filled further in between; fine.
    assert report_problem(replace(ok, filled_base=D("0.5")), venue="beta", client_order_id="c1") is None
    # Nothing filled, nothing to show: fine.
    assert report_problem(replace(ok, filled_base=D(0), fills=()), venue="beta", client_order_id="c1") is None
