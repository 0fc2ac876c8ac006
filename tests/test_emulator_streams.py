"""Private streams of every dialect through ccxt.pro: an order and its fill arrive by stream
(bybit order/execution topics, binance ORDER_TRADE_UPDATE via listenKey, hyperliquid orderUpdates/userFills)."""

from __future__ import annotations

import asyncio

import pytest

from paper.emulator import start_emulator
from paper.emulator.clients import ccxt_client, ccxt_symbol

VENUES = ("bybit", "binanceusdm", "hyperliquid")


@pytest.fixture(scope="module")
def emu():
    handle = start_emulator(VENUES, seed=8, speed=5)
    yield handle
    handle.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("venue", VENUES)
async def test_ccxt_pro_watch_orders_and_my_trades(emu, venue: str) -> None:
    ex = ccxt_client(emu, venue, pro=True)
    symbol = ccxt_symbol(venue, "BTC")
    cid = "0x" + "5e" * 16 if venue == "hyperliquid" else "stream-1"
    try:
        await ex.load_markets()
        orders_task = asyncio.ensure_future(ex.watch_orders(symbol))
        trades_task = asyncio.ensure_future(ex.watch_my_trades(symbol))
        await asyncio.sleep(1.0)  # subscriptions (and binance's listenKey) in place
        book = await ex.fetch_order_book(symbol)
        price = float(ex.price_to_precision(symbol, book["asks"][0][0] * 1.003))
        await ex.create_order(symbol, "limit", "buy", 0.01, price, {"timeInForce": "IOC", "clientOrderId": cid})
        orders = await asyncio.wait_for(orders_task, 10)
        trades = await asyncio.wait_for(trades_task, 10)
    finally:
        await ex.close()
    assert [(o["clientOrderId"], o["status"], o["filled"]) for o in orders] == [(cid, "closed", 0.01)]
    fills = emu.core.executor.order_fills(venue, cid)
    assert sum(t["amount"] for t in trades) == pytest.approx(0.01) and len(trades) == len(fills)


@pytest.mark.anyio
@pytest.mark.parametrize("venue", VENUES)
async def test_ccxt_pro_watch_tickers_covers_every_symbol_asked_for(emu, venue: str) -> None:
    ex = ccxt_client(emu, venue, pro=True, keys=False)
    wanted = [ccxt_symbol(venue, "BTC"), ccxt_symbol(venue, "ETH")]
    seen: dict[str, float] = {}
    try:
        await ex.load_markets()
        deadline = asyncio.get_running_loop().time() + 30  # each update may carry one symbol: keep reading
        while set(seen) != set(wanted) and asyncio.get_running_loop().time() < deadline:
            for symbol, ticker in (await asyncio.wait_for(ex.watch_tickers(wanted), 10)).items():
                seen[symbol] = ticker["last"]
    finally:
        await ex.close()
    assert set(seen) == set(wanted) and all(price and price > 0 for price in seen.values())
