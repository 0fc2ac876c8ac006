"""Two venues of different dialects composed into one feed and one executor over the emulator: a
hedged pair opens and closes, books of both arrive through one ``MarketFeed``."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import anyio
import pytest

from adapters.registry import LiveVenueConfig, build_live_session
from bot.core.domain import OrderRequest, OrderSide, OrderStatus

D = Decimal


@pytest.mark.anyio
async def test_hedged_pair_across_bybit_and_hyperliquid(tmp_path) -> None:
    for venue in ("bybit", "hyperliquid"):
        if importlib.util.find_spec(f"paper.emulator.{venue}") is None:
            pytest.skip(f"the emulator in this checkout does not speak {venue} yet")
    from paper.emulator import start_emulator

    with start_emulator(["bybit", "hyperliquid"], state_path=tmp_path / "v.sqlite") as emu:
        env = {"BYBIT_API_KEY": emu.credentials["bybit"].key, "BYBIT_API_SECRET": emu.credentials["bybit"].secret,
               "HYPERLIQUID_WALLET_ADDRESS": emu.credentials["hyperliquid"].key,
               "HYPERLIQUID_PRIVATE_KEY": emu.credentials["hyperliquid"].secret}
        session = await build_live_session({v: LiveVenueConfig(base_url=emu.base_urls[v]) for v in ("bybit", "hyperliquid")},
                                           env, symbols=["BTC"], max_slippage_bps=D(30))
        assert [line.split()[0] for line in session.banner()] == ["bybit", "hyperliquid"]
        await session.setup()
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.feed.run)
            with anyio.fail_after(15):
                while session.feed.book("bybit", "BTC") is None or session.feed.book("hyperliquid", "BTC") is None:
                    await anyio.sleep(0.05)
            size = D("0.01")
            long_leg, short_leg = await _both(session.executor, [
                OrderRequest("pair-l", "bybit", "BTC", OrderSide.BUY, size),
                OrderRequest("pair-s", "hyperliquid", "BTC", OrderSide.SELL, size)])
            assert long_leg.status is OrderStatus.FILLED and short_leg.status is OrderStatus.FILLED
            positions = {(p.venue, p.size_base) for p in await session.executor.positions()}
            assert positions == {("bybit", size), ("hyperliquid", -size)}
            await _both(session.executor, [
                OrderRequest("pair-lc", "bybit", "BTC", OrderSide.SELL, size, reduce_only=True),
                OrderRequest("pair-sc", "hyperliquid", "BTC", OrderSide.BUY, size, reduce_only=True)])
            assert await session.executor.positions() == []
            assert set(await session.executor.balances_usd()) == {"bybit", "hyperliquid"}
            tg.cancel_scope.cancel()
        await session.close()


@pytest.mark.anyio
async def test_hedged_pair_across_binanceusdm_and_okx_over_streams(tmp_path) -> None:
    """OKX (contracts of 0.01 BTC, books by the ``books`` channel, order outcomes by the ``orders``
    channel) against Binance USD-M: both legs open and close through the composed session."""
    for venue in ("binanceusdm", "okx"):
        if importlib.util.find_spec(f"paper.emulator.{venue}") is None:
            pytest.skip(f"the emulator in this checkout does not speak {venue} yet")
    from paper.emulator import start_emulator

    venues = ("binanceusdm", "okx")
    with start_emulator(list(venues), state_path=tmp_path / "v.sqlite") as emu:
        okx = emu.credentials["okx"]
        env = {"BINANCEUSDM_API_KEY": emu.credentials["binanceusdm"].key,
               "BINANCEUSDM_API_SECRET": emu.credentials["binanceusdm"].secret,
               "OKX_API_KEY": okx.key, "OKX_API_SECRET": okx.secret, "OKX_API_PASSPHRASE": okx.passphrase}
        session = await build_live_session({v: LiveVenueConfig(base_url=emu.base_urls[v]) for v in venues},
                                           env, symbols=["BTC"], max_slippage_bps=D(30))
        await session.setup()
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.feed.run)
            with anyio.fail_after(30):
                while session.feed.book("okx", "BTC") is None or session.feed.book("binanceusdm", "BTC") is None:
                    await anyio.sleep(0.05)
                first = session.feed.book("okx", "BTC")
                while session.feed.book("okx", "BTC") is first:  # a streamed update, not only the first book
                    await anyio.sleep(0.05)
            size = D("0.01")
            long_leg, short_leg = await _both(session.executor, [
                OrderRequest("pairbl", "binanceusdm", "BTC", OrderSide.BUY, size),
                OrderRequest("pairos", "okx", "BTC", OrderSide.SELL, size)])
            assert long_leg.status is OrderStatus.FILLED and short_leg.status is OrderStatus.FILLED
            assert short_leg.filled_base == size and sum(f.size_base for f in short_leg.fills) == size
            positions = {(p.venue, p.size_base) for p in await session.executor.positions()}
            assert positions == {("binanceusdm", size), ("okx", -size)}
            okx_position = emu.call(lambda: emu.core.executor.position_state("okx", "BTC"))
            assert okx_position.size_base == -size  # the venue's own book: one contract of 0.01 BTC
            await _both(session.executor, [
                OrderRequest("pairblc", "binanceusdm", "BTC", OrderSide.SELL, size, reduce_only=True),
                OrderRequest("pairosc", "okx", "BTC", OrderSide.BUY, size, reduce_only=True)])
            assert await session.executor.positions() == []
            tg.cancel_scope.cancel()
        await session.close()


async def _both(executor, requests):
    results: dict[int, object] = {}

    async def one(i: int, request: OrderRequest) -> None:
        results[i] = await executor.place_order(request)

    async with anyio.create_task_group() as tg:
        for i, request in enumerate(requests):
            tg.start_soon(one, i, request)
    return [results[i] for i in range(len(requests))]
