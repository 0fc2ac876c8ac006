"""Live market data over the emulator's real stream dialects: books and quotes arrive, a silent
stream is noticed by our watchdog (REST resync), a sequence gap forces fresh snapshots."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import anyio
import pytest

from adapters.registry import LiveVenueConfig, build_live_venue

D = Decimal


def _need(venue: str) -> None:
    if importlib.util.find_spec(f"paper.emulator.{venue}") is None:
        pytest.skip(f"the emulator in this checkout does not speak {venue} yet")


async def _venue(emu, name: str, **config):
    cred = emu.credentials[name]
    env = {"bybit": {"BYBIT_API_KEY": cred.key, "BYBIT_API_SECRET": cred.secret},
           "binanceusdm": {"BINANCEUSDM_API_KEY": cred.key, "BINANCEUSDM_API_SECRET": cred.secret},
           "hyperliquid": {"HYPERLIQUID_WALLET_ADDRESS": cred.key, "HYPERLIQUID_PRIVATE_KEY": cred.secret}}[name]
    return await build_live_venue(name, LiveVenueConfig(base_url=emu.base_urls[name], **config), env,
                                  symbols=["BTC", "ETH"], max_slippage_bps=D(10))


async def _wait(predicate, timeout_s: float = 10.0) -> bool:
    with anyio.move_on_after(timeout_s):
        while not predicate():
            await anyio.sleep(0.05)
        return True
    return False


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["bybit", "binanceusdm", "hyperliquid"])
async def test_stream_books_and_quotes_arrive(name: str, tmp_path) -> None:
    _need(name)
    from paper.emulator import start_emulator

    with start_emulator([name], state_path=tmp_path / "v.sqlite") as emu:
        venue = await _venue(emu, name, quote_every_s=0.5)
        async with anyio.create_task_group() as tg:
            tg.start_soon(venue.market.run)
            ok = await _wait(lambda: len(venue.market.books()) == 2 and len(venue.market.quotes()) == 2)
            tg.cancel_scope.cancel()
        await venue.close()
    assert ok, (venue.market.books(), venue.market.quotes(), venue.market.dropped)
    for book in venue.market.books():
        assert book.best_bid is not None and book.best_ask is not None and book.best_bid < book.best_ask
    assert {q.symbol for q in venue.market.quotes()} == {"BTC", "ETH"}


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["bybit", "binanceusdm"])
async def test_silent_stream_is_noticed_by_the_watchdog(name: str, tmp_path) -> None:
    _need(name)
    from paper.emulator import start_emulator

    with start_emulator([name], state_path=tmp_path / "v.sqlite") as emu:
        venue = await _venue(emu, name, stale_after_s=0.5)
        market = venue.market
        async with anyio.create_task_group() as tg:
            tg.start_soon(market.run)
            assert await _wait(lambda: len(market.books()) == 2)
            before = (getattr(market, "reconnects", 0), getattr(market, "resyncs", 0))
            emu.faults.arm("ws_silent", venue=name, duration_s=3)
            noticed = await _wait(lambda: (getattr(market, "reconnects", 0), getattr(market, "resyncs", 0)) != before,
                                  timeout_s=5)
            tg.cancel_scope.cancel()
        await venue.close()
    assert noticed


@pytest.mark.anyio
async def test_bybit_sequence_gap_forces_fresh_snapshots(tmp_path) -> None:
    _need("bybit")
    from paper.emulator import start_emulator

    with start_emulator(["bybit"], state_path=tmp_path / "v.sqlite") as emu:
        venue = await _venue(emu, "bybit")
        market = venue.market
        async with anyio.create_task_group() as tg:
            tg.start_soon(market.run)
            assert await _wait(lambda: len(market.books()) == 2)
            emu.faults.arm("ws_sequence_gap", venue="bybit")
            recovered = await _wait(lambda: market.reconnects >= 1 and len(market.books()) == 2, timeout_s=10)
            tg.cancel_scope.cancel()
    assert recovered and any("after u=" in d or "before any snapshot" in d for d in market.dropped)


@pytest.mark.anyio
async def test_bybit_private_stream_reports_terminal_orders(tmp_path) -> None:
    _need("bybit")
    from bot.core.domain import OrderRequest, OrderSide, OrderStatus
    from paper.emulator import start_emulator

    with start_emulator(["bybit"], state_path=tmp_path / "v.sqlite") as emu:
        venue = await _venue(emu, "bybit")
        private = venue.executor._stream
        async with anyio.create_task_group() as tg:
            tg.start_soon(venue.market.run)
            assert await _wait(lambda: private.connected and len(venue.market.books()) == 2)
            report = await venue.executor.place_order(OrderRequest("ps-1", "bybit", "BTC", OrderSide.BUY, D("0.01")))
            tg.cancel_scope.cancel()
    assert report.status is OrderStatus.FILLED
    assert private.terminal_status("ps-1") == "Filled"
    assert "secret" not in repr(private).lower()


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["hyperliquid"])
async def test_ccxt_order_stream_reports_terminal_orders(name: str, tmp_path) -> None:
    _need(name)
    from bot.core.domain import OrderRequest, OrderSide, OrderStatus
    from paper.emulator import start_emulator

    with start_emulator([name], state_path=tmp_path / "v.sqlite") as emu:
        venue = await _venue(emu, name)
        stream = venue.executor._stream
        async with anyio.create_task_group() as tg:
            tg.start_soon(venue.market.run)
            assert await _wait(lambda: stream.connected and len(venue.market.books()) == 2)
            await anyio.sleep(0.5)  # let the private subscription settle
            size = venue.market.instruments()[0].min_size_base * 10
            report = await venue.executor.place_order(OrderRequest("os-1", name, "BTC", OrderSide.BUY, size))
            seen = await _wait(lambda: stream.terminal_status(str(venue.executor._codec.encode("os-1"))) is not None, 5)
            tg.cancel_scope.cancel()
        await venue.close()
    assert report.status is OrderStatus.FILLED and seen
