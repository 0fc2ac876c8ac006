"""Venue state across emulator restarts, funding settlement at interval boundaries, the venue clock."""

from __future__ import annotations

import asyncio
from decimal import ROUND_UP, Decimal

import ccxt
import pytest

from bot.core.domain import OrderRequest, OrderSide, OrderType, funding_payment_usd
from paper.emulator import start_emulator
from paper.emulator.clients import ccxt_client, ccxt_symbol
from paper.emulator.core import EmulatorCore

HOUR_MS = 3_600_000
MIDNIGHT_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
START_MS = MIDNIGHT_MS - 60_000


async def _ioc(ex, venue: str, symbol: str, side: str, amount: float, cid: str) -> None:
    market = ccxt_symbol(venue, symbol)
    book = await ex.fetch_order_book(market, 5)
    price = book["asks"][0][0] * 1.003 if side == "buy" else book["bids"][0][0] * 0.997
    await ex.create_order(market, "limit", side, amount, float(ex.price_to_precision(market, price)),
                          {"timeInForce": "IOC", "clientOrderId": cid})


@pytest.mark.anyio
async def test_positions_orders_fills_funding_and_client_ids_survive_a_restart(tmp_path) -> None:
    state = tmp_path / "venues.sqlite"
    emu = start_emulator(["bybit", "hyperliquid"], state_path=state, manual_clock=True, start_ts_ms=START_MS)
    try:
        bybit, hl = ccxt_client(emu, "bybit"), ccxt_client(emu, "hyperliquid")
        await bybit.load_markets()
        await hl.load_markets()
        await _ioc(bybit, "bybit", "BTC", "sell", 0.02, "keep-1")
        await _ioc(hl, "hyperliquid", "BTC", "buy", 0.02, "0x" + "a1" * 16)
        book = await bybit.fetch_order_book("ETH/USDT:USDT", 5)
        await bybit.create_order("ETH/USDT:USDT", "limit", "buy", 0.1, round(book["bids"][0][0] * 0.9, 2),
                                 {"clientOrderId": "rest-1"})
        emu.advance_ms(2 * 60_000)  # settle funding at midnight on both venues
        before = {
            "bybit_pos": [(p["side"], p["contracts"], p["entryPrice"]) for p in await bybit.fetch_positions(["BTC/USDT:USDT"])],
            "hl_pos": [(p["side"], p["contracts"], p["entryPrice"]) for p in await hl.fetch_positions(["BTC/USDC:USDC"])],
            "bybit_trades": [t["id"] for t in await bybit.fetch_my_trades("BTC/USDT:USDT")],
            "bybit_funding": [(f["timestamp"], f["amount"]) for f in await bybit.fetch_funding_history("BTC/USDT:USDT")],
            "hl_funding": [(f["timestamp"], f["amount"]) for f in await hl.fetch_funding_history("BTC/USDC:USDC", since=START_MS)],
            "open": [o["clientOrderId"] for o in await bybit.fetch_open_orders("ETH/USDT:USDT")],
            "balance": (await bybit.fetch_balance())["USDT"]["total"],
            "rates": [(r["timestamp"], r["fundingRate"]) for r in await bybit.fetch_funding_rate_history("ETH/USDT:USDT")],
        }
        assert [ts for ts, _ in before["rates"]] == [MIDNIGHT_MS]  # the venue's public settled-rate history
        clock_before = emu.core.now_ms()
        bybit_paid = emu.core.executor.venue_funding("bybit")[0]
        hl_paid = emu.core.executor.venue_funding("hyperliquid")[0]
        # per-venue signs as ccxt hands them over (LIVE.md section 4): bybit execFee has the FEE sign
        # (+ = paid), hyperliquid delta.usdc the cash sign (+ = received); ours is + = received
        assert before["bybit_funding"][0] == (MIDNIGHT_MS, float(-bybit_paid.amount_usd))
        assert before["hl_funding"][0] == (MIDNIGHT_MS, float(hl_paid.amount_usd))
        assert bybit_paid.position_size_base < 0 < hl_paid.position_size_base
        await bybit.close()
        await hl.close()
    finally:
        emu.stop()
    assert len(before["bybit_funding"]) == 1 and len(before["hl_funding"]) == 1 and before["open"] == ["rest-1"]

    # restart: asked to start earlier than it stopped, the venue clock resumes where it was
    emu = start_emulator(["bybit", "hyperliquid"], state_path=state, manual_clock=True, start_ts_ms=START_MS)
    try:
        assert emu.core.now_ms() == clock_before
        bybit, hl = ccxt_client(emu, "bybit"), ccxt_client(emu, "hyperliquid")
        await bybit.load_markets()
        await hl.load_markets()
        after = {
            "bybit_pos": [(p["side"], p["contracts"], p["entryPrice"]) for p in await bybit.fetch_positions(["BTC/USDT:USDT"])],
            "hl_pos": [(p["side"], p["contracts"], p["entryPrice"]) for p in await hl.fetch_positions(["BTC/USDC:USDC"])],
            "bybit_trades": [t["id"] for t in await bybit.fetch_my_trades("BTC/USDT:USDT")],
            "bybit_funding": [(f["timestamp"], f["amount"]) for f in await bybit.fetch_funding_history("BTC/USDT:USDT")],
            "hl_funding": [(f["timestamp"], f["amount"]) for f in await hl.fetch_funding_history("BTC/USDC:USDC", since=START_MS)],
            "open": [o["clientOrderId"] for o in await bybit.fetch_open_orders("ETH/USDT:USDT")],
            "balance": (await bybit.fetch_balance())["USDT"]["total"],
            "rates": [(r["timestamp"], r["fundingRate"]) for r in await bybit.fetch_funding_rate_history("ETH/USDT:USDT")],
        }
        with pytest.raises(ccxt.InvalidOrder, match="110072"):  # a resend after a restart is still a duplicate
            await _ioc(bybit, "bybit", "BTC", "sell", 0.02, "keep-1")
        await bybit.close()
        await hl.close()
    finally:
        emu.stop()
    assert after == before


def test_funding_settles_at_each_symbols_own_interval_boundaries_with_venue_signs() -> None:
    core = EmulatorCore(("bybit", "binanceusdm", "hyperliquid"), manual_clock=True, start_ts_ms=START_MS, seed=4,
                        step_seconds=60)
    try:
        async def open_positions() -> None:
            for venue, symbol, side in (("bybit", "BTC", OrderSide.SELL), ("bybit", "SOL", OrderSide.BUY),
                                        ("binanceusdm", "XRP", OrderSide.SELL), ("hyperliquid", "BTC", OrderSide.BUY)):
                book, inst = core.book(venue, symbol), core.instrument(venue, symbol)
                size = (Decimal(100) / book.mid / inst.lot_size_base).to_integral_value(ROUND_UP) * inst.lot_size_base
                price = book.best_ask * Decimal("1.01") if side is OrderSide.BUY else book.best_bid * Decimal("0.99")
                await core.executor.place_order(OrderRequest(
                    f"{venue}-{symbol}", venue, symbol, side, size, OrderType.LIMIT,
                    (price / inst.tick_size).to_integral_value() * inst.tick_size))

        asyncio.run(open_positions())
        for _ in range(9 * 60):  # 9 hours in one-minute steps
            core.advance_ms(60_000)
        payments: dict[tuple[str, str], list] = {}
        for venue in ("bybit", "binanceusdm", "hyperliquid"):
            for p in core.executor.venue_funding(venue):
                payments.setdefault((venue, p.symbol), []).append(p)
        hours = {key: [(p.ts_ms - MIDNIGHT_MS) // HOUR_MS for p in ps] for key, ps in payments.items()}
        assert hours == {
            ("bybit", "BTC"): [0, 8],  # 8h
            ("bybit", "SOL"): [0, 4, 8],  # a 4h symbol
            ("binanceusdm", "XRP"): [0, 4, 8],  # 4h on binance too
            ("hyperliquid", "BTC"): list(range(9)),  # hourly
        }
        for ps in payments.values():
            for p in ps:  # longs pay positive rates, shorts receive them
                assert p.amount_usd == funding_payment_usd(p.rate, p.position_size_base, p.mark_price)
                assert (p.position_size_base < 0) == ((p.venue, p.symbol) in (("bybit", "BTC"), ("binanceusdm", "XRP")))
        rates = core.settled_rates[("hyperliquid", "BTC")]
        assert [ts for ts, _, _ in rates] == [p.ts_ms for p in payments[("hyperliquid", "BTC")]]
    finally:
        core.close()


def test_interval_change_moves_the_settlement_grid() -> None:
    core = EmulatorCore(("bybit",), manual_clock=True, start_ts_ms=MIDNIGHT_MS + 60_000, seed=4)
    try:
        assert core.quote("bybit", "ETH").interval_hours == 8
        core.set_interval("bybit", "ETH", 1)
        quote = core.quote("bybit", "ETH")
        assert quote.interval_hours == 1 and quote.next_funding_ts_ms == MIDNIGHT_MS + HOUR_MS
        settlements = core.advance_ms(HOUR_MS)
        assert [(s.symbol, s.ts_ms, s.interval_hours) for s in settlements if s.symbol == "ETH"] == [
            ("ETH", MIDNIGHT_MS + HOUR_MS, Decimal(1))]
        with pytest.raises(ValueError):
            core.set_interval("bybit", "ETH", 3)
    finally:
        core.close()


def test_the_venue_clock_runs_speed_times_the_wall_clock_and_never_backwards(tmp_path) -> None:
    wall = [1_767_225_600_000]
    core = EmulatorCore(("hyperliquid",), speed=60, state_path=tmp_path / "s.sqlite", wall_ms=lambda: wall[0])
    start = core.now_ms()
    wall[0] += 1_000
    assert core.now_ms() == start + 60_000
    core.step()
    settled_at = core.now_ms()
    core.close()
    wall[0] -= 10_000  # the wall clock jumped back; the venue clock must not
    again = EmulatorCore(("hyperliquid",), speed=60, state_path=tmp_path / "s.sqlite", wall_ms=lambda: wall[0])
    try:
        assert again.now_ms() == settled_at
        assert again.server_time_ms() == wall[0]  # signatures are checked against the wall clock
    finally:
        again.close()


@pytest.mark.anyio
async def test_bybit_realtime_forgets_closed_orders_after_a_restart_history_keeps_them(tmp_path) -> None:
    state = tmp_path / "venues.sqlite"
    with start_emulator(["bybit"], state_path=state) as emu:
        ex = ccxt_client(emu, "bybit")
        try:
            await ex.load_markets()
            await _ioc(ex, "bybit", "BTC", "buy", 0.01, "forget-1")
            realtime = await ex.privateGetV5OrderRealtime({"category": "linear", "orderLinkId": "forget-1"})
            assert realtime["result"]["list"][0]["orderStatus"] == "Filled"
        finally:
            await ex.close()
    with start_emulator(["bybit"], state_path=state) as emu:
        ex = ccxt_client(emu, "bybit")
        try:
            realtime = await ex.privateGetV5OrderRealtime({"category": "linear", "orderLinkId": "forget-1"})
            history = await ex.privateGetV5OrderHistory({"category": "linear", "orderLinkId": "forget-1"})
        finally:
            await ex.close()
    assert realtime["result"]["list"] == []
    assert history["result"]["list"][0]["orderStatus"] == "Filled"


@pytest.mark.anyio
async def test_binance_archives_unfilled_expired_orders_after_three_days() -> None:
    with start_emulator(["binanceusdm"], manual_clock=True, start_ts_ms=START_MS, step_seconds=60) as emu:
        ex = ccxt_client(emu, "binanceusdm")
        try:
            await ex.load_markets()
            book = await ex.fetch_order_book("BTC/USDT:USDT", 5)
            await ex.create_order("BTC/USDT:USDT", "limit", "sell", 0.01, round(book["asks"][0][0] * 1.2, 1),
                                  {"timeInForce": "IOC", "clientOrderId": "arch-1"})
            await _ioc(ex, "binanceusdm", "BTC", "buy", 0.01, "arch-2")
            assert (await ex.fetch_order(None, "BTC/USDT:USDT", {"origClientOrderId": "arch-1"}))["status"] == "expired"
            emu.advance_ms(3 * 86_400_000 + 60_000)
            with pytest.raises(ccxt.OrderNotFound):
                await ex.fetch_order(None, "BTC/USDT:USDT", {"origClientOrderId": "arch-1"})
            filled = await ex.fetch_order(None, "BTC/USDT:USDT", {"origClientOrderId": "arch-2"})
            assert filled["status"] == "closed"  # orders with fills stay queryable
        finally:
            await ex.close()
