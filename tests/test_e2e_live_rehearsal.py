"""The README's rehearsal of going live, exactly as a new user runs it: ``python -m bot emulate`` in one
process, ``python -m bot --live`` in another with the SHIPPED strategy settings (only venues, symbols
and base URLs set). The emulator starts with a public funding history as a real venue has, so the
live bot's forecast warms up and the strategy trades on its own terms; the status line says why
nothing is entered while nothing qualifies. Also: the emulator's history backfill itself."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
from helpers_cli import bot_command, bot_env

from paper.emulator import HYPERLIQUID_TEST_ADDRESS, HYPERLIQUID_TEST_PRIVATE_KEY
from paper.emulator.core import MS_PER_HOUR, RATE_HISTORY_KEPT, EmulatorCore

pytestmark = [pytest.mark.e2e]

VENUES = ("bybit", "okx", "binanceusdm", "hyperliquid")
SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB")
KEYS = {
    "BYBIT_API_KEY": "emu-bybit-key", "BYBIT_API_SECRET": "emu-bybit-secret",
    "OKX_API_KEY": "emu-okx-key", "OKX_API_SECRET": "emu-okx-secret", "OKX_API_PASSPHRASE": "emu-okx-passphrase",
    "BINANCEUSDM_API_KEY": "emu-binanceusdm-key", "BINANCEUSDM_API_SECRET": "emu-binanceusdm-secret",
    "HYPERLIQUID_WALLET_ADDRESS": HYPERLIQUID_TEST_ADDRESS, "HYPERLIQUID_PRIVATE_KEY": HYPERLIQUID_TEST_PRIVATE_KEY,
}


def _rehearsal_settings(work: Path, urls: dict[str, str]) -> Path:
    """What the README tells a user to write: venues, symbols, base URLs (plus files kept in ``work``)."""
    lines = ["[bot]", f'log_path = "{work.as_posix()}/bot.log.jsonl"', f'live_db_path = "{work.as_posix()}/live.sqlite"',
             "status_interval_seconds = 1.0", "", "[live]", f"venues = {json.dumps(list(VENUES))}",
             f"symbols = {json.dumps(list(SYMBOLS))}"]
    for venue in VENUES:
        lines += ["", f"[venues.{venue}]", f'base_url = "{urls[venue]}"']
    path = work / "live.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_readme_rehearsal_trades_with_the_shipped_strategy_and_ends_flat(tmp_path: Path) -> None:
    emulator = subprocess.Popen(bot_command("emulate", "--venues", ",".join(VENUES), "--state", tmp_path / "venues.sqlite"),
                                cwd=tmp_path, env=bot_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner_line = emulator.stdout.readline()
        assert banner_line, emulator.stderr.read()
        banner = json.loads(banner_line)
        settings = _rehearsal_settings(tmp_path, {v: banner["venues"][v]["rest"] for v in VENUES})
        env = {**bot_env(), **KEYS}
        bot = subprocess.Popen(bot_command("--live", "--settings", settings), cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        db = tmp_path / "live.sqlite"
        deadline = time.monotonic() + 150
        opened = 0
        while time.monotonic() < deadline and bot.poll() is None and not opened:
            time.sleep(1)
            if db.exists():
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
                    try:
                        opened = conn.execute(
                            "SELECT COUNT(*) FROM positions WHERE state IN ('monitoring', 'closed')").fetchone()[0]
                    except sqlite3.OperationalError:  # tables not created yet
                        opened = 0
        bot.send_signal(signal.SIGTERM)
        out, err = bot.communicate(timeout=120)
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.communicate(timeout=30)
    assert bot.returncode == 0, err[-3000:]
    assert opened >= 1, f"no position opened with the shipped strategy settings; last status: {out[-1500:]}"
    assert "flat on every venue" in err
    history_lines = [line for line in err.splitlines() if line.startswith("live history:")]
    assert len(history_lines) == len(VENUES) and all(" 0 settlement" not in line for line in history_lines)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    states = {state for (state,) in conn.execute("SELECT state FROM positions")}
    conn.close()
    assert states == {"closed"}
    for secret in (KEYS["BYBIT_API_SECRET"], KEYS["OKX_API_SECRET"], KEYS["OKX_API_PASSPHRASE"],
                   KEYS["BINANCEUSDM_API_SECRET"], KEYS["HYPERLIQUID_PRIVATE_KEY"]):
        assert secret not in out and secret not in err
        assert secret not in (tmp_path / "bot.log.jsonl").read_text(errors="replace")


def test_backfilled_history_is_settled_at_each_venues_interval_with_its_live_rate_rules(tmp_path: Path) -> None:
    now = 1_790_000_000_000 // MS_PER_HOUR * MS_PER_HOUR + 1_234
    state = tmp_path / "venues.sqlite"
    core = EmulatorCore(VENUES, seed=5, state_path=state, manual_clock=True, start_ts_ms=now, step_seconds=60)
    try:
        assert core.backfill_rate_history(48) > 0
        for (venue, symbol), hours in core.intervals.items():
            history = core.settled_rates[(venue, symbol)]
            stamps = [ts for ts, _rate, _mark in history]
            assert stamps == sorted(stamps) and stamps[-1] < now and stamps[0] >= now - 48 * MS_PER_HOUR
            assert all(ts % (hours * MS_PER_HOUR) == 0 for ts in stamps)
            assert len(stamps) == min(48 // hours, RATE_HISTORY_KEPT)
            quantum = Decimal(1).scaleb(-core.dialects[venue].rate_decimals)
            assert all(rate == rate.quantize(quantum) and abs(rate) < Decimal("0.05") for _t, rate, _m in history)
            assert all(mark > 0 for _t, _r, mark in history)
        first = {key: list(rows) for key, rows in core.settled_rates.items()}
        assert core.backfill_rate_history(48) == 0  # a venue's history is never rewritten
    finally:
        core.close()
    again = EmulatorCore(VENUES, seed=5, state_path=state, manual_clock=True, start_ts_ms=now, step_seconds=60)
    try:
        assert again.settled_rates == first  # kept with the state across an emulator restart
        assert again.backfill_rate_history(48) == 0
    finally:
        again.close()
