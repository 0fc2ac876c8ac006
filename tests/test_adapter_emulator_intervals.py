"""A venue changing a symbol's funding interval at run time is picked up by the live feeds (the
interval is read from the venue every time, never cached as a default)."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import pytest

from adapters.registry import LiveVenueConfig, build_live_venue

D = Decimal
ENV = {"bybit": ("BYBIT_API_KEY", "BYBIT_API_SECRET"), "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET"),
       "okx": ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE")}


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["bybit", "binanceusdm", "okx"])
async def test_interval_change_reaches_the_quote(name: str, tmp_path) -> None:
    if importlib.util.find_spec(f"paper.emulator.{name}") is None:
        pytest.skip(f"the emulator in this checkout does not speak {name} yet")
    from paper.emulator import start_emulator

    with start_emulator([name], state_path=tmp_path / "v.sqlite", interval_overrides={name: {}}) as emu:
        cred = emu.credentials[name]
        key_var, secret_var, *passphrase_var = ENV[name]
        venue = await build_live_venue(name, LiveVenueConfig(base_url=emu.base_urls[name]),
                                       {key_var: cred.key, secret_var: cred.secret,
                                        **{v: cred.passphrase for v in passphrase_var}}, symbols=["ETH"],
                                       max_slippage_bps=D(10))
        refresh = venue.market.resync_rest if name == "bybit" else venue.market.refresh_quotes
        await refresh()
        (before,) = venue.market.quotes()
        emu.faults.arm("interval_change", venue=name, symbol="ETH", hours=1)
        await refresh()
        (after,) = venue.market.quotes()
        await venue.close()
    assert before.interval_hours == D(8) and after.interval_hours == D(1)
    assert after.next_funding_ts_ms - after.ts_ms <= 3_600_000
