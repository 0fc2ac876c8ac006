"""After a restart, an order the bot persisted but the venue does not know YET (its request may still
arrive: the venue-side expiry has not passed) is an unknown outcome, not a venue failure: looking it
up must not count towards the venue-error breaker (which would pause entries for its cool-down),
and the order stays unknown until the venue finds it or the expiry passes."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from engine_harness import make_harness, opportunity

from adapters.errors import OrderNotFoundYet, TemporaryVenueError
from bot.core.domain import LegSide, OrderRequest, OrderSide, OrderStatus
from bot.engine.core import UNKNOWN_STATUS
from storage.records import OrderPurpose

D = Decimal


class NotYetVenue:
    """The paper executor, except that look-ups of ``unknown`` ids answer "not found yet"."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.unknown: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_order(self, venue: str, client_order_id: str):
        if client_order_id in self.unknown:
            raise OrderNotFoundYet(venue, f"order {client_order_id} not found yet; it may still arrive")
        return await self.inner.get_order(venue, client_order_id)


@pytest.mark.anyio
async def test_not_found_yet_after_restart_is_unknown_not_a_venue_failure(tmp_path) -> None:
    first = await make_harness(tmp_path)
    pos = await first.engine.open_position(opportunity("AAA"), D(1), "test")
    # An unwind order persisted just before the crash, never seen by the venue (yet).
    req = OrderRequest("pending-unwind-1", "beta", "AAA", OrderSide.BUY, D("0.1"), reduce_only=True)
    await first.store.insert_order_intent(first.engine._intent(pos.position_id, LegSide.SHORT, OrderPurpose.UNWIND.value,
                                                                req, first.clock.now_ms()))
    await first.aclose()

    second = await make_harness(tmp_path, clock=first.clock)
    venue = NotYetVenue(second.executor)
    venue.unknown.add(req.client_order_id)
    second.engine.executor = venue
    results: list[tuple[str, bool]] = []
    second.engine._on_venue_result = lambda name, ok: results.append((name, ok))
    await second.engine.restore()
    assert second.engine.orders[req.client_order_id].status == UNKNOWN_STATUS

    await second.engine.reconcile()
    assert ("beta", False) not in results  # the venue answered: no failure towards its breaker
    assert ("beta", True) in results
    assert second.engine.orders[req.client_order_id].status == UNKNOWN_STATUS  # still unknown, never "rejected"

    venue.unknown.clear()  # past the venue-side expiry the executor answers None: it can never execute
    await second.engine.reconcile()
    assert second.engine.orders[req.client_order_id].status == OrderStatus.REJECTED.value
    await second.aclose()


@pytest.mark.anyio
async def test_other_temporary_errors_still_count_as_failures(tmp_path) -> None:
    """The breaker still hears about a venue that does not answer (the fix only exempts "not found yet")."""
    h = await make_harness(tmp_path)
    results: list[tuple[str, bool]] = []
    h.engine._on_venue_result = lambda name, ok: results.append((name, ok))

    class Down:
        def __getattr__(self, name: str) -> Any:
            return getattr(h.executor, name)

        async def get_order(self, venue: str, client_order_id: str):
            raise TemporaryVenueError(venue, "503")

    h.engine.executor = Down()
    assert await h.engine._lookup("beta", "x-1") == UNKNOWN_STATUS
    assert results == [("beta", False)] * h.engine.config.lookup_attempts
    await h.aclose()


@pytest.mark.anyio
async def test_ccxt_executor_after_restart_says_not_found_yet_then_none(tmp_path) -> None:
    """The live ccxt executor (OKX over the emulator) just after a restart: an id it never sent is
    "not found yet" (``OrderNotFoundYet``) within the venue-side expiry, None after it."""
    from adapters.registry import LiveVenueConfig, build_live_venue
    from paper.emulator import start_emulator

    now = {"ms": time.time_ns() // 1_000_000}
    with start_emulator(["okx"], state_path=tmp_path / "v.sqlite") as emu:
        cred = emu.credentials["okx"]
        env = {"OKX_API_KEY": cred.key, "OKX_API_SECRET": cred.secret, "OKX_API_PASSPHRASE": cred.passphrase}
        venue = await build_live_venue("okx", LiveVenueConfig(base_url=emu.base_urls["okx"]), env, symbols=["BTC"],
                                       max_slippage_bps=D(10), now_ms=lambda: now["ms"])
        try:
            with pytest.raises(OrderNotFoundYet):
                await venue.executor.get_order("okx", "persistedbeforecrash")
            now["ms"] += 61_000  # past OKX's grace
            assert await venue.executor.get_order("okx", "persistedbeforecrash") is None
        finally:
            await venue.close()
