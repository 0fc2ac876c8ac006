"""Account set-up is idempotent on every emulated dialect: a second run succeeds ("not modified"
answers are success) and the clock-skew check reads the venue's time."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import pytest

from adapters.errors import FatalVenueError
from adapters.registry import LiveVenueConfig, build_live_venue

ENV = {"bybit": ("BYBIT_API_KEY", "BYBIT_API_SECRET"), "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET"),
       "hyperliquid": ("HYPERLIQUID_WALLET_ADDRESS", "HYPERLIQUID_PRIVATE_KEY"),
       "okx": ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE")}


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["bybit", "binanceusdm", "hyperliquid", "okx"])
async def test_setup_twice_succeeds(name: str, tmp_path) -> None:
    if importlib.util.find_spec(f"paper.emulator.{name}") is None:
        pytest.skip(f"the emulator in this checkout does not speak {name} yet")
    from paper.emulator import start_emulator

    with start_emulator([name], state_path=tmp_path / "v.sqlite") as emu:
        cred = emu.credentials[name]
        key_var, secret_var, *passphrase_var = ENV[name]
        venue = await build_live_venue(name, LiveVenueConfig(base_url=emu.base_urls[name], leverage=Decimal(3)),
                                       {key_var: cred.key, secret_var: cred.secret,
                                        **{v: cred.passphrase for v in passphrase_var}}, symbols=["BTC", "ETH"],
                                       max_slippage_bps=Decimal(10))
        first = await venue.setup()
        second = await venue.setup()
        await venue.close()
    assert any("leverage 3x" in line for line in first) and len(first) == len(second)
    assert all(line.endswith(("set", "unchanged")) for line in first + second)


@pytest.mark.anyio
async def test_bybit_clock_skew_beyond_the_limit_is_fatal(tmp_path) -> None:
    if importlib.util.find_spec("paper.emulator.bybit") is None:
        pytest.skip("the emulator in this checkout does not speak bybit yet")
    from paper.emulator import start_emulator

    with start_emulator(["bybit"], state_path=tmp_path / "v.sqlite") as emu:
        cred = emu.credentials["bybit"]
        venue = await build_live_venue("bybit", LiveVenueConfig(base_url=emu.base_urls["bybit"]),
                                       {"BYBIT_API_KEY": cred.key, "BYBIT_API_SECRET": cred.secret}, symbols=["BTC"],
                                       max_slippage_bps=Decimal(10))
        emu.faults.arm("clock_skew", venue="bybit", offset_ms=-30_000)
        with pytest.raises(FatalVenueError, match="sync the system clock"):
            await venue.setup()


def _okx_env(emu) -> dict[str, str]:
    cred = emu.credentials["okx"]
    return {"OKX_API_KEY": cred.key, "OKX_API_SECRET": cred.secret, "OKX_API_PASSPHRASE": cred.passphrase}


_CCXT_ENV = {"okx": ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE"),
             "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET")}


@pytest.mark.anyio
@pytest.mark.parametrize(("venue", "offset_ms"), [("okx", 20_000), ("binanceusdm", -3_000)])
async def test_ccxt_clock_skew_beyond_the_limit_is_fatal(tmp_path, venue: str, offset_ms: int) -> None:
    """OKX accepts requests signed within 30 s of its clock and Binance within its 5 s recvWindow, so
    such a skew would pass every call while the bot's timestamps (funding attribution, expiries) are
    wrong: the set-up refuses it."""
    from paper.emulator import start_emulator

    with start_emulator([venue], state_path=tmp_path / "v.sqlite") as emu:
        cred = emu.credentials[venue]
        env = dict(zip(_CCXT_ENV[venue], (cred.key, cred.secret, cred.passphrase)))
        venue_ = await build_live_venue(venue, LiveVenueConfig(base_url=emu.base_urls[venue]), env,
                                        symbols=["BTC"], max_slippage_bps=Decimal(10))
        emu.faults.arm("clock_skew", venue=venue, offset_ms=offset_ms)
        try:
            with pytest.raises(FatalVenueError, match="sync the system clock"):
                await venue_.setup()
        finally:
            await venue_.close()


@pytest.mark.anyio
@pytest.mark.parametrize(("hedged", "outcome"), [(False, "unchanged"), (True, "fatal")])
async def test_okx_position_mode_with_open_position(tmp_path, hedged: bool, outcome: str) -> None:
    """OKX answers 59000 to any position-mode switch while a position is open: one-way (net) mode is then
    "unchanged", but an account left in hedge mode must stop the start, not pass as "unchanged"."""
    from paper.emulator import start_emulator
    from paper.emulator.clients import ccxt_client

    with start_emulator(["okx"], state_path=tmp_path / "v.sqlite") as emu:
        raw = ccxt_client(emu, "okx")
        try:
            await raw.set_position_mode(hedged)
            book = await raw.fetch_order_book("BTC/USDT:USDT", 5)
            price = float((Decimal(str(book["asks"][0][0])) * Decimal("1.001")).quantize(Decimal("0.1")))
            params = {"clientOrderId": "open1", "timeInForce": "IOC", "tdMode": "cross"}
            if hedged:
                params["posSide"] = "long"
            await raw.create_order("BTC/USDT:USDT", "limit", "buy", 1, price, params)
        finally:
            await raw.close()
        venue = await build_live_venue("okx", LiveVenueConfig(base_url=emu.base_urls["okx"]), _okx_env(emu),
                                       symbols=["BTC"], max_slippage_bps=Decimal(10))
        try:
            if outcome == "fatal":
                with pytest.raises(FatalVenueError, match="hedge"):
                    await venue.setup()
            else:
                lines = await venue.setup()
                assert "position mode one-way: unchanged" in lines
        finally:
            await venue.close()
