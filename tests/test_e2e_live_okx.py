"""``python -m bot --live`` with OKX (ccxt, contracts of ``ctVal`` base, key + secret + passphrase) and
Bybit (pybit) on the local venue emulator: a hedged position opens across the two dialects, closes flat
on ``--duration``, every venue fill is recorded once by trade id, and no OKX secret or passphrase
appears anywhere. A wrong passphrase exits 2 with one line."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_cli import REPO, assert_usage_error, bot_command

pytestmark = [pytest.mark.e2e]

SETTINGS = """\
[bot]
log_path = "{work}/bot.log.jsonl"
live_db_path = "{work}/live.sqlite"
status_interval_seconds = 1.0

# The live feed step (which refreshes the stale-data breakers) runs every sim.step_seconds of wall time:
# at the default 60 s a venue whose first quote poll ends after the first step stays "stale" (no
# entries) for a minute, longer than this test runs.
[sim]
step_seconds = 1

[live]
venues = ["bybit", "okx"]
symbols = ["BTC", "ETH"]

# Execution is under test, not the strategy: take the best current spread at once.
[forecast]
mode = "persistent"

[strategy]
min_expected_net_usd = "-1000"
horizon_hours = "72"
max_positions = 1

[risk]
max_breakeven_hours = "1000000"

[venues.bybit]
base_url = "{bybit}"

[venues.okx]
base_url = "{okx}"
"""


def _run(args: list[str], work: Path, env: dict[str, str], timeout_s: float = 120):
    full = dict(os.environ)
    full.update(env)
    full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run(bot_command(*args), cwd=work, env=full, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


@pytest.fixture
def emulator(tmp_path: Path):
    from paper.emulator import start_emulator

    with start_emulator(["bybit", "okx"], state_path=tmp_path / "venues.sqlite", seed=3) as emu:
        yield emu


def _keys(emu) -> dict[str, str]:
    okx = emu.credentials["okx"]
    return {"BYBIT_API_KEY": emu.credentials["bybit"].key, "BYBIT_API_SECRET": emu.credentials["bybit"].secret,
            "OKX_API_KEY": okx.key, "OKX_API_SECRET": okx.secret, "OKX_API_PASSPHRASE": okx.passphrase}


def test_live_bybit_okx_opens_hedged_closes_flat_and_agrees_with_the_venues(tmp_path: Path, emulator) -> None:
    settings = tmp_path / "live.toml"
    settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                                        okx=emulator.base_urls["okx"]))
    keys = _keys(emulator)
    proc = _run(["--live", "--settings", str(settings), "--duration", "20"], tmp_path, keys)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "flat on every venue" in proc.stderr
    db = tmp_path / "live.sqlite"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    positions = conn.execute("SELECT long_venue, short_venue, state FROM positions").fetchall()
    ours = {(venue, trade_id): (Decimal(size), Decimal(price)) for venue, trade_id, size, price in
            conn.execute("SELECT venue, trade_id, size_base, price FROM fills")}
    conn.close()
    assert positions and all(state == "closed" for _l, _s, state in positions)
    assert {(lv, sv) for lv, sv, _st in positions} <= {("bybit", "okx"), ("okx", "bybit")}
    assert any(venue == "okx" for venue, _ in ours), "no OKX fill recorded"
    from paper.emulator.core import venue_order_number

    theirs = {}
    for venue in ("bybit", "okx"):
        for fill in emulator.call(lambda v=venue: emulator.core.executor.venue_fills(v)):
            # OKX publishes numeric trade ids: the venue's wire id for its record.
            wire_id = str(venue_order_number(fill.trade_id)) if venue == "okx" else fill.trade_id
            theirs[(venue, wire_id)] = (fill.size_base, fill.price)
    assert ours == theirs  # every venue fill recorded once, by trade id, with the venue's BASE size and price
    held = emulator.call(lambda: [p for p in emulator.core.executor._positions.values() if p.size_base != 0])
    assert held == []
    texts = [proc.stdout, proc.stderr, (tmp_path / "bot.log.jsonl").read_text(errors="replace"),
             db.read_bytes().decode("latin-1")]
    for secret in (keys["OKX_API_SECRET"], keys["OKX_API_PASSPHRASE"], keys["BYBIT_API_SECRET"]):
        assert all(secret not in text for text in texts)


def test_live_okx_with_a_wrong_passphrase_is_one_line(tmp_path: Path, emulator) -> None:
    settings = tmp_path / "live.toml"
    settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                                        okx=emulator.base_urls["okx"]))
    proc = _run(["--live", "--settings", str(settings), "--duration", "5"], tmp_path,
                {**_keys(emulator), "OKX_API_PASSPHRASE": "not-the-passphrase"})
    assert_usage_error(proc, "okx", "OKX_API_PASSPHRASE")
    assert "not-the-passphrase" not in proc.stderr + proc.stdout
