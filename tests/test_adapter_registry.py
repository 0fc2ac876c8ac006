"""Live start-up errors are one clear line; secrets never appear in errors, reprs or logs."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

import pytest
from loguru import logger

from adapters.credentials import Credentials, load_credentials, scrub
from adapters.errors import FatalVenueError
from adapters.registry import (
    LiveConfigError,
    LiveVenueConfig,
    build_live_venue,
    fetch_scan_quotes,
)

D = Decimal
SECRET = "s3cr3t-VALUE-never-printed"


async def _build(name: str, config: LiveVenueConfig, env: dict[str, str]):
    return await build_live_venue(name, config, env, symbols=["BTC"], max_slippage_bps=D(10))


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "config", "env", "message"), [
    ("edgex", LiveVenueConfig(), {}, "venue 'edgex' cannot trade live; use one of: bybit, binanceusdm"),
    ("bybit", LiveVenueConfig(), {"BYBIT_API_KEY": "k"}, "set the environment variable(s) BYBIT_API_SECRET"),
    ("okx", LiveVenueConfig(), {"OKX_API_KEY": "k", "OKX_API_SECRET": SECRET},
     "set the environment variable(s) OKX_API_PASSPHRASE"),
    ("bybit", LiveVenueConfig(base_url="https://api.bybit.com"), {"BYBIT_API_KEY": "k", "BYBIT_API_SECRET": SECRET},
     "venues.bybit.base_url: host 'api.bybit.com' is not loopback; set venues.bybit.allow_remote_base_url = true"),
    ("binanceusdm", LiveVenueConfig(base_url="127.0.0.1:9000"), {}, "venues.binanceusdm.base_url: '127.0.0.1:9000' is not"),
    ("hyperliquid", LiveVenueConfig(leverage=D(0)), {}, "venues.hyperliquid.leverage must be positive"),
])
async def test_bad_live_configuration_is_one_line_naming_the_fix(name, config, env, message) -> None:
    with pytest.raises(LiveConfigError) as info:
        await _build(name, config, env)
    text = str(info.value)
    assert message in text and "\n" not in text and SECRET not in text


def test_credentials_hide_their_values() -> None:
    creds = load_credentials("bybit", {"BYBIT_API_KEY": "key-123456", "BYBIT_API_SECRET": SECRET})
    assert SECRET not in repr(creds) and SECRET not in str(creds) and SECRET not in f"{creds!r} {creds}"
    assert repr(creds) == "Credentials(venue='bybit', <hidden>)"
    assert scrub(f"boom {SECRET} key-123456", creds) == "boom *** ***"
    assert isinstance(creds, Credentials) and creds.get("secret") == SECRET


@pytest.mark.anyio
async def test_wrong_keys_are_fatal_and_no_secret_reaches_errors_or_logs(tmp_path) -> None:
    if importlib.util.find_spec("paper.emulator.bybit") is None:
        pytest.skip("the venue emulator is not in this checkout")
    from paper.emulator import start_emulator

    records: list[str] = []
    sink = logger.add(lambda m: records.append(str(m)), level="DEBUG", diagnose=True, backtrace=True)
    try:
        with start_emulator(["bybit", "binanceusdm"], state_path=tmp_path / "v.sqlite") as emu:
            for name, env in (("bybit", {"BYBIT_API_KEY": emu.credentials["bybit"].key, "BYBIT_API_SECRET": SECRET}),
                              ("binanceusdm", {"BINANCEUSDM_API_KEY": emu.credentials["binanceusdm"].key,
                                               "BINANCEUSDM_API_SECRET": SECRET})):
                venue = await _build(name, LiveVenueConfig(base_url=emu.base_urls[name]), env)
                with pytest.raises(FatalVenueError) as info:
                    await venue.executor.balances_usd()  # a signed call with the wrong secret
                logger.exception("expected failure: {}", info.value)
                assert SECRET not in str(info.value) and "\n" not in str(info.value)
                await venue.close()
    finally:
        logger.remove(sink)
    assert records and not any(SECRET in r for r in records)


@pytest.mark.anyio
async def test_scan_rejects_unknown_venue_and_remote_override() -> None:
    with pytest.raises(LiveConfigError, match="venue 'edgex' has no live quotes"):
        await fetch_scan_quotes("edgex")
    with pytest.raises(LiveConfigError, match="not loopback"):
        await fetch_scan_quotes("lighter", base_url="https://mainnet.zklighter.elliot.ai")
