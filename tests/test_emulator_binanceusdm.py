"""The Binance USD-M dialect of the venue emulator, driven by the UNMODIFIED ccxt async and ccxt.pro clients."""

from __future__ import annotations

import ccxt
import pytest

from paper.emulator import start_emulator
from paper.emulator.clients import ccxt_client

BTC = "BTC/USDT:USDT"


@pytest.fixture(scope="module")
def emu():
    handle = start_emulator(["binanceusdm"], seed=5, manual_clock=True, start_ts_ms=1_767_225_600_000 - 60_000)
    yield handle
    handle.stop()


@pytest.mark.anyio
async def test_ccxt_binanceusdm_trades_and_reads_back_everything(emu) -> None:
    ex = ccxt_client(emu, "binanceusdm")
    try:
        markets = await ex.load_markets()
        assert markets[BTC]["limits"]["cost"]["min"] == 5 and markets[BTC]["precision"]["price"] == 0.1
        rate = await ex.fetch_funding_rate(BTC)
        assert rate["fundingTimestamp"] % (8 * 3_600_000) == 0 and rate["markPrice"] > 0
        intervals = await ex.fetch_funding_intervals()
        assert {k: v["interval"] for k, v in intervals.items()} == {"XRP/USDT:USDT": "4h"}  # only adjusted symbols
        book = await ex.fetch_order_book(BTC, 20)
        assert book["nonce"] >= 1 and book["bids"][0][0] < book["asks"][0][0]

        price = round(book["asks"][0][0] * 1.002, 1)
        created = await ex.create_order(BTC, "limit", "buy", 0.01, price, {"timeInForce": "IOC", "clientOrderId": "cbn-1"})
        assert created["clientOrderId"] == "cbn-1"
        looked_up = await ex.fetch_order(None, BTC, {"origClientOrderId": "cbn-1"})
        assert looked_up["status"] == "closed" and looked_up["filled"] == 0.01 and looked_up["id"] == created["id"]
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order(None, BTC, {"origClientOrderId": "never-sent"})
        with pytest.raises(ccxt.OrderNotFound):  # orders are per symbol: asked under ETH, a BTC order does not exist
            await ex.fetch_order(None, "ETH/USDT:USDT", {"origClientOrderId": "cbn-1"})

        far = round(book["asks"][0][0] * 1.2, 1)  # a sell far above the book: IOC that fills nothing
        expired = await ex.create_order(BTC, "limit", "sell", 0.01, far, {"timeInForce": "IOC", "clientOrderId": "cbn-2",
                                                                            "newOrderRespType": "RESULT"})
        assert expired["status"] == "expired" and expired["filled"] == 0

        resting = await ex.create_order(BTC, "limit", "buy", 0.01, round(book["bids"][0][0] * 0.95, 1),
                                        {"clientOrderId": "cbn-3"})
        assert [o["clientOrderId"] for o in await ex.fetch_open_orders(BTC)] == ["cbn-3"]
        assert (await ex.cancel_order(resting["id"], BTC))["status"] == "canceled"
        with pytest.raises(ccxt.ExchangeError):  # -4116: ccxt 4.5.90 raises a plain ExchangeError here
            await ex.create_order(BTC, "limit", "buy", 0.01, price, {"timeInForce": "IOC", "clientOrderId": "cbn-1"})

        positions = await ex.fetch_positions([BTC])
        assert positions[0]["side"] == "long" and positions[0]["contracts"] == 0.01
        assert 0 < (await ex.fetch_balance())["USDT"]["total"] < 100_000
        trades = await ex.fetch_my_trades(BTC)
        assert [t["order"] for t in trades] == [created["id"]]
        with pytest.raises(ccxt.ExchangeError, match="-2022"):  # a reduce-only buy would increase the long;
            # ccxt 4.5.90 maps -2022 on /fapi/v1/order to a plain ExchangeError: adapters map the code themselves
            await ex.create_order(BTC, "limit", "buy", 0.01, price, {"timeInForce": "IOC", "clientOrderId": "cbn-4",
                                                                     "reduceOnly": True})

        emu.advance_ms(60_000)  # across 00:00 UTC: an 8h settlement
        history = await ex.fetch_funding_history(BTC)
        payment = emu.core.executor.venue_funding("binanceusdm")[0]
        assert len(history) == 1 and history[0]["timestamp"] == payment.ts_ms == 1_767_225_600_000
        assert history[0]["amount"] == float(payment.amount_usd)  # income: + received (same sign as ours)
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_ccxt_binanceusdm_wrong_secret_is_refused(emu) -> None:
    ex = ccxt_client(emu, "binanceusdm", secret="wrong")
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.ExchangeError, match="-1022"):
            await ex.fetch_positions([BTC])
    finally:
        await ex.close()
    ex = ccxt_client(emu, "binanceusdm", apiKey="unknown")
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError):
            await ex.fetch_balance()
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_ccxt_pro_binanceusdm_diff_book_continues_the_rest_snapshot(emu) -> None:
    ex = ccxt_client(emu, "binanceusdm", pro=True, keys=False)
    try:
        await ex.load_markets()
        task = ex.watch_order_book(BTC)
        import asyncio

        for _ in range(3):
            await asyncio.sleep(0.2)
            emu.advance_ms(1_000)  # each step publishes one diff event
        first = await asyncio.wait_for(task, 10)
        nonce = first["nonce"]
        emu.advance_ms(1_000)
        second = await asyncio.wait_for(ex.watch_order_book(BTC), 10)
        assert second["nonce"] == nonce + 1
        rest = await ex.fetch_order_book(BTC, 20)
        assert second["bids"][:5] == rest["bids"][:5] and second["asks"][:5] == rest["asks"][:5]
        emu.advance_ms(1_000)
        ticker = await asyncio.wait_for(ex.watch_ticker(BTC), 10)
        assert ticker["symbol"] == BTC and ticker["last"] > 0
    finally:
        await ex.close()
