"""Funding payments read back through each live adapter equal the emulator's own records (amount,
sign: + = received, settlement time), for a venue-normalised sign on every dialect."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import pytest

from adapters.registry import LiveVenueConfig, build_live_venue
from bot.core.domain import OrderRequest, OrderSide

D = Decimal
ENV = {"bybit": ("BYBIT_API_KEY", "BYBIT_API_SECRET"), "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET"),
       "hyperliquid": ("HYPERLIQUID_WALLET_ADDRESS", "HYPERLIQUID_PRIVATE_KEY"),
       "okx": ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE")}


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "side"), [("bybit", OrderSide.BUY), ("binanceusdm", OrderSide.SELL),
                                            ("hyperliquid", OrderSide.BUY), ("okx", OrderSide.SELL)])
async def test_funding_payments_match_the_venue_records(name: str, side: OrderSide, tmp_path) -> None:
    if importlib.util.find_spec(f"paper.emulator.{name}") is None:
        pytest.skip(f"the emulator in this checkout does not speak {name} yet")
    from paper.emulator import start_emulator

    with start_emulator([name], state_path=tmp_path / "v.sqlite", manual_clock=True) as emu:
        cred = emu.credentials[name]
        key_var, secret_var, *passphrase_var = ENV[name]
        venue = await build_live_venue(name, LiveVenueConfig(base_url=emu.base_urls[name]),
                                       {key_var: cred.key, secret_var: cred.secret,
                                        **{v: cred.passphrase for v in passphrase_var}}, symbols=["BTC"],
                                       max_slippage_bps=D(50))
        await venue.market.resync_book(venue.market._markets["BTC"]) if hasattr(venue.market, "resync_book") \
            else await venue.market.resync_rest()
        size = venue.market.instruments()[0].min_size_base * 10
        report = await venue.executor.place_order(OrderRequest("fund-1", name, "BTC", side, size))
        assert report.filled_base == size
        interval_h = int(venue.market.instruments()[0].funding_interval_hours)
        emu.advance_ms(interval_h * 3_600_000 + 1_000)
        ours = await venue.executor.funding_payments_since(name, 0)
        theirs = emu.call(lambda: emu.core.executor.venue_funding(name))
        await venue.close()
    assert theirs, "the emulator settled no funding"
    assert [(p.ts_ms, p.amount_usd) for p in ours] == [(p.ts_ms, p.amount_usd) for p in theirs]
    signed = size if side is OrderSide.BUY else -size
    for p in theirs:  # the venue's own rule: longs pay positive rates
        assert p.amount_usd == -p.rate * signed * p.mark_price
