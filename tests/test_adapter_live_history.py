"""Start-up funding history for the live forecast: read through each live adapter from the emulator,
equal to the venue's own settled rates, validated at the boundary (absurd rows dropped and named)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.funding_history import settlements_from_rows
from adapters.registry import LiveVenueConfig, build_live_session

D = Decimal
HOUR_MS = 3_600_000
ENV_NAMES = {"bybit": ("BYBIT_API_KEY", "BYBIT_API_SECRET"),
             "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET"),
             "hyperliquid": ("HYPERLIQUID_WALLET_ADDRESS", "HYPERLIQUID_PRIVATE_KEY")}


@pytest.mark.anyio
async def test_history_through_every_dialect_equals_the_venues_settled_rates(tmp_path) -> None:
    from paper.emulator import start_emulator

    venues = ["bybit", "binanceusdm", "hyperliquid"]
    with start_emulator(venues, state_path=tmp_path / "v.sqlite", manual_clock=True, step_seconds=60, seed=5) as emu:
        emu.advance_ms(17 * HOUR_MS)  # hourly, 4-hourly and 8-hourly symbols all settle on the way
        env = {}
        for venue in venues:
            key_var, secret_var = ENV_NAMES[venue]
            env[key_var], env[secret_var] = emu.credentials[venue].key, emu.credentials[venue].secret
        session = await build_live_session({v: LiveVenueConfig(base_url=emu.base_urls[v]) for v in venues}, env,
                                           symbols=["BTC", "SOL"], max_slippage_bps=D(10),
                                           now_ms=emu.core.now_ms)
        try:
            lines = await session.feed.load_history(24, emu.core.now_ms())
            ours = session.feed.history_settlements(24)
        finally:
            await session.close()
        theirs = {(v, s): [(ts, rate) for ts, rate, _mark in emu.call(lambda v=v, s=s: list(emu.core.settled_rates.get((v, s), [])))]
                  for v in venues for s in ("BTC", "SOL")}
        intervals = {k: D(h) for k, h in emu.core.intervals.items()}
    assert all("unavailable" not in line and "dropped" not in line for line in lines), lines
    got: dict[tuple[str, str], list[tuple[int, Decimal]]] = {}
    for s in ours:
        got.setdefault((s.venue, s.symbol), []).append((s.ts_ms, s.rate))
        assert s.interval_hours == intervals[(s.venue, s.symbol)]  # the instrument's own interval, never a default
    for key, rows in theirs.items():
        assert rows, f"the emulator settled nothing for {key}"
        assert got.get(key) == rows, key  # every settlement once, oldest first, the venue's rate exactly
    assert len(got[("hyperliquid", "BTC")]) == 17 and len(got[("binanceusdm", "BTC")]) >= 2  # 1 h and 8 h intervals


def test_absurd_history_rows_are_dropped_and_named() -> None:
    rows = [(1_000, "0.0001"), (2_000, "NaN"), (3_000, None), ("x", "0.0001"), (4_000, "5"), (5_000, "-0.0002"),
            (5_000, "-0.0002")]
    settlements, dropped = settlements_from_rows("bybit", "BTC", rows, interval_hours=D(8), mark_price=D(100),
                                                 since_ts_ms=0)
    assert [(s.ts_ms, s.rate) for s in settlements] == [(1_000, D("0.0001")), (5_000, D("-0.0002"))]
    assert len(dropped) == 4 and any("beyond" in d for d in dropped) and any("NaN" in d for d in dropped)
    none, why = settlements_from_rows("bybit", "BTC", rows, interval_hours=D(0), mark_price=D(100), since_ts_ms=0)
    assert none == [] and "interval unknown" in why[0]
    recent, _ = settlements_from_rows("bybit", "BTC", rows, interval_hours=D(8), mark_price=D(100), since_ts_ms=2_000)
    assert [s.ts_ms for s in recent] == [5_000]


@pytest.mark.e2e
def test_live_start_up_warms_the_forecast_on_the_venues_history(tmp_path) -> None:
    """``python -m bot --live`` on a fresh database loads the venues' recent settlements at start-up
    and the spread forecast starts from them (event ``forecast_history``), not from zero levels."""
    import sqlite3

    from paper.emulator import start_emulator
    from tests.test_e2e_live import SETTINGS, _keys, _run

    with start_emulator(["bybit", "hyperliquid"], state_path=tmp_path / "v.sqlite", manual_clock=True,
                        step_seconds=60, seed=3) as emu:
        emu.advance_ms(9 * HOUR_MS)
        settings = tmp_path / "live.toml"
        settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emu.base_urls["bybit"],
                                            hyperliquid=emu.base_urls["hyperliquid"]))
        proc = _run(["--live", "--settings", str(settings), "--duration", "3"], tmp_path, _keys(emu))
        settled = sum(len(emu.call(lambda v=v, s=s: list(emu.core.settled_rates.get((v, s), []))))
                      for v in ("bybit", "hyperliquid") for s in ("BTC", "ETH"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "live history: hyperliquid: 18 settlement(s)" in proc.stderr  # 9 hourly settlements x 2 symbols
    conn = sqlite3.connect(f"file:{tmp_path / 'live.sqlite'}?mode=ro", uri=True)
    messages = [m for (m,) in conn.execute("SELECT message FROM events WHERE kind = 'forecast_history'")]
    conn.close()
    assert messages and f"on {settled} settlement(s)" in messages[0], messages
