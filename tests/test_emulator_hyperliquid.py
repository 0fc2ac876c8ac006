"""The Hyperliquid dialect of the venue emulator, driven by the UNMODIFIED ccxt async and ccxt.pro clients.

Orders are EIP-712 signed by ccxt's own signer; the emulator recovers the signer's address."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from paper.emulator import start_emulator
from paper.emulator.clients import ccxt_client

BTC = "BTC/USDC:USDC"
HOUR_MS = 3_600_000
START_MS = 1_767_225_600_000 - 60_000  # one minute before a UTC hour
# Hardhat test account #1: a well-known key that is NOT an account on the emulator.
OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OTHER_ADDRESS = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"


def cloid(n: int) -> str:
    return f"0x{n:032x}"


@pytest.fixture(scope="module")
def emu():
    handle = start_emulator(["hyperliquid"], seed=11, manual_clock=True, start_ts_ms=START_MS)
    yield handle
    handle.stop()


@pytest.mark.anyio
async def test_ccxt_hyperliquid_trades_and_reads_back_everything(emu) -> None:
    ex = ccxt_client(emu, "hyperliquid")
    try:
        markets = await ex.load_markets()
        assert markets[BTC]["id"] == "0" and markets["SOL/USDC:USDC"]["id"] == "2"  # asset index
        rate = await ex.fetch_funding_rate(BTC)
        assert rate["interval"] == "1h" and rate["fundingRate"] is not None
        book = await ex.fetch_order_book(BTC)
        assert book["bids"][0][0] < book["asks"][0][0]

        created = await ex.create_order(BTC, "limit", "buy", 0.01, book["asks"][0][0] * 1.002,
                                        {"timeInForce": "IOC", "clientOrderId": cloid(1)})
        assert created["id"] and created["filled"] == 0.01
        looked_up = await ex.fetch_order(None, BTC, {"clientOrderId": cloid(1)})
        assert looked_up["status"] == "closed" and looked_up["clientOrderId"] == cloid(1)
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order(None, BTC, {"clientOrderId": cloid(99)})

        with pytest.raises(ccxt.ExchangeError, match="could not immediately match"):
            await ex.create_order(BTC, "limit", "sell", 0.01, book["asks"][0][0] * 1.2,
                                  {"timeInForce": "IOC", "clientOrderId": cloid(2)})
        resting = await ex.create_order(BTC, "limit", "buy", 0.01, round(book["bids"][0][0] * 0.95),
                                        {"clientOrderId": cloid(3)})
        assert [o["clientOrderId"] for o in await ex.fetch_open_orders(BTC)] == [cloid(3)]
        assert (await ex.cancel_order(resting["id"], BTC))["status"] == "success"
        assert await ex.fetch_open_orders(BTC) == []
        with pytest.raises(ccxt.ExchangeError, match="duplicate"):
            await ex.create_order(BTC, "limit", "buy", 0.01, book["asks"][0][0] * 1.002,
                                  {"timeInForce": "IOC", "clientOrderId": cloid(1)})

        positions = await ex.fetch_positions([BTC])
        assert positions[0]["side"] == "long" and positions[0]["contracts"] == 0.01
        assert 0 < (await ex.fetch_balance())["USDC"]["total"] < 100_000
        trades = await ex.fetch_my_trades(BTC)
        assert [t["order"] for t in trades] == [created["id"]]

        emu.advance_ms(60_000)  # across the hour: hourly funding settles
        history = await ex.fetch_funding_history(BTC, since=START_MS)
        payment = emu.core.executor.venue_funding("hyperliquid")[0]
        assert [h["timestamp"] for h in history] == [payment.ts_ms] and payment.ts_ms % HOUR_MS == 0
        assert history[0]["amount"] == float(payment.amount_usd)  # delta.usdc: + received
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_a_signature_by_an_unknown_key_is_refused_and_nothing_executes(emu) -> None:
    ex = ccxt_client(emu, "hyperliquid", walletAddress=OTHER_ADDRESS, privateKey=OTHER_KEY)
    try:
        await ex.load_markets()
        book = await ex.fetch_order_book(BTC)
        with pytest.raises(ccxt.ExchangeError, match="does not exist"):
            await ex.create_order(BTC, "limit", "buy", 0.01, book["asks"][0][0] * 1.002,
                                  {"timeInForce": "IOC", "clientOrderId": cloid(50)})
    finally:
        await ex.close()
    assert emu.core.executor.stored_order("hyperliquid", cloid(50)) is None


@pytest.mark.anyio
async def test_ccxt_pro_hyperliquid_book_and_ticker_streams(emu) -> None:
    ex = ccxt_client(emu, "hyperliquid", pro=True, keys=False)
    try:
        await ex.load_markets()
        task = asyncio.ensure_future(ex.watch_order_book(BTC))
        await asyncio.sleep(0.3)
        emu.advance_ms(1_000)
        book = await asyncio.wait_for(task, 10)
        assert book["bids"][0][0] < book["asks"][0][0]
        ticker_task = asyncio.ensure_future(ex.watch_ticker(BTC))
        await asyncio.sleep(0.3)
        emu.advance_ms(1_000)
        ticker = await asyncio.wait_for(ticker_task, 10)
        assert ticker["symbol"] == BTC and ticker["info"]["funding"]
    finally:
        await ex.close()
