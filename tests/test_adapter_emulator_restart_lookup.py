"""After a restart the executor looks an order up by client id without knowing its symbol: the report
must carry the order's OWN market and its fills, on every ccxt venue, over the real wire (emulator).

Hyperliquid's ``orderStatus`` by cloid is account-wide: asked "under BTC", it answers with an ETH
order. The executor used to take that as a BTC order and read BTC trades for it, so an ETH short that
filled came back "filled 0.285, no fills": the engine counted the leg as 0 and repaired it with a
second short (the live torture's dropped-answer + restart round ended NOT FLAT).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from adapters.errors import OrderRejected
from adapters.registry import LiveVenue, LiveVenueConfig, build_live_venue
from bot.core.domain import OrderRequest, OrderSide, OrderStatus, OrderType
from tests.test_adapter_emulator_contract import _env

emulator = pytest.importorskip("paper.emulator", reason="the venue emulator is not in this checkout")

D = Decimal


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(params=["hyperliquid", "binanceusdm", "okx"])
def emulated(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[object, str]]:
    venue = request.param
    with emulator.start_emulator([venue], state_path=tmp_path / "venues.sqlite", seed=3) as emu:
        yield emu, venue


async def _venue(emu: object, name: str) -> LiveVenue:
    venue = await build_live_venue(name, LiveVenueConfig(base_url=emu.base_urls[name]), _env(emu, name),  # type: ignore[attr-defined]
                                   symbols=["BTC", "ETH"], max_slippage_bps=D(50), now_ms=_wall_ms)
    if hasattr(venue.market, "resync_rest"):
        await venue.market.resync_rest()
    else:
        for market in venue.market._markets.values():
            await venue.market.resync_book(market)
    return venue


@pytest.mark.anyio
async def test_a_restarted_executor_reports_an_order_on_its_own_market_with_its_fills(
        emulated: tuple[object, str]) -> None:
    emu, name = emulated
    first = await _venue(emu, name)
    symbols = [i.symbol for i in first.market.instruments()]
    assert symbols[0] != "ETH", f"ETH must not be the first market tried ({symbols}) for this test to bite"
    eth = next(i for i in first.market.instruments() if i.symbol == "ETH")
    size = eth.min_size_base * 10
    placed = await first.executor.place_order(OrderRequest("restart-eth-1", name, "ETH", OrderSide.SELL, size))
    assert placed.status is OrderStatus.FILLED and placed.fills
    await first.close()

    second = await _venue(emu, name)  # a new process: it does not know the order's symbol
    try:
        report = await second.executor.get_order(name, "restart-eth-1")
        assert report is not None
        assert report.symbol == "ETH"
        assert report.status is OrderStatus.FILLED and report.filled_base == size
        assert report.fills, "a filled order's report must carry its fills"
        assert sum((f.size_base for f in report.fills), D(0)) == report.filled_base
        assert {f.trade_id for f in report.fills} == {f.trade_id for f in placed.fills}
        assert all(f.symbol == "ETH" for f in report.fills)
    finally:
        await second.close()


@pytest.mark.anyio
async def test_an_ioc_that_matched_nothing_is_looked_up_as_unfilled(emulated: tuple[object, str]) -> None:
    """A never-filled IOC is reported filled 0 by lookup (Hyperliquid keeps ``sz`` = the unfilled size on
    a canceled order; the emulator used to send 0, which ccxt reads as filled in full)."""
    emu, name = emulated
    venue = await _venue(emu, name)
    try:
        btc = next(i for i in venue.market.instruments() if i.symbol == "BTC")
        book = venue.market.book("BTC")
        assert book is not None and book.best_ask is not None
        far = (book.best_bid * D("0.9")).quantize(btc.tick_size)  # a buy far below the book: nothing fills
        req = OrderRequest("ioc-nothing-1", name, "BTC", OrderSide.BUY, btc.min_size_base * 10,
                           order_type=OrderType.LIMIT, limit_price=far)
        try:
            answer = await venue.executor.place_order(req)
            assert answer.filled_base == 0
        except OrderRejected:
            pass  # Hyperliquid answers an IOC that matches nothing with an error status
        report = await venue.executor.get_order(name, "ioc-nothing-1")
        assert report is not None
        assert report.status in (OrderStatus.CANCELED, OrderStatus.REJECTED)
        assert report.filled_base == 0 and report.fills == ()
    finally:
        await venue.close()
