"""``python -m bot --live`` against the local venue emulator, as a user rehearses going live.

The emulator serves Bybit v5 (through pybit) and Hyperliquid (through ccxt) on 127.0.0.1 with its own
venue state; the bot runs as a subprocess with keys only in its environment, opens a hedged position
across the two dialects, and on ``--duration`` closes it and verifies flat. The bot's database must
agree with the emulator's own records (fills by trade id), and no key may appear in any output.
"""

from __future__ import annotations

import os
import sqlite3
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

[live]
venues = ["bybit", "hyperliquid"]
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

[venues.hyperliquid]
base_url = "{hyperliquid}"
"""


def _run(args: list[str], work: Path, env: dict[str, str], timeout_s: float = 120):
    import subprocess

    full = dict(os.environ)
    full.update(env)
    full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run(bot_command(*args), cwd=work, env=full, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture
def emulator(tmp_path: Path):
    from paper.emulator import start_emulator

    with start_emulator(["bybit", "hyperliquid"], state_path=tmp_path / "venues.sqlite", seed=3) as emu:
        yield emu


def _keys(emu) -> dict[str, str]:
    return {
        "BYBIT_API_KEY": emu.credentials["bybit"].key, "BYBIT_API_SECRET": emu.credentials["bybit"].secret,
        "HYPERLIQUID_WALLET_ADDRESS": emu.credentials["hyperliquid"].key,
        "HYPERLIQUID_PRIVATE_KEY": emu.credentials["hyperliquid"].secret,
    }


def test_live_against_emulator_opens_hedged_closes_flat_and_agrees_with_the_venues(tmp_path: Path, emulator) -> None:
    settings = tmp_path / "live.toml"
    settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                                        hyperliquid=emulator.base_urls["hyperliquid"]))
    keys = _keys(emulator)
    proc = _run(["--live", "--settings", str(settings), "--duration", "20"], tmp_path, keys)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "flat on every venue" in proc.stderr
    db = tmp_path / "live.sqlite"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    positions = conn.execute("SELECT id, long_venue, short_venue, state FROM positions").fetchall()
    assert positions and all(state == "closed" for _id, _l, _s, state in positions)
    assert {(lv, sv) for _id, lv, sv, _st in positions} <= {("bybit", "hyperliquid"), ("hyperliquid", "bybit")}
    ours = {(venue, trade_id): (Decimal(size), Decimal(price)) for venue, trade_id, size, price in
            conn.execute("SELECT venue, trade_id, size_base, price FROM fills")}
    conn.close()
    assert ours, "no fill recorded"
    from paper.emulator.core import venue_order_number

    theirs = {}
    for venue in ("bybit", "hyperliquid"):
        for fill in emulator.call(lambda v=venue: emulator.core.executor.venue_fills(v)):
            # Hyperliquid publishes numeric trade ids ("tid"): the venue's wire id for its record.
            wire_id = str(500_000_000 + venue_order_number(fill.trade_id)) if venue == "hyperliquid" else fill.trade_id
            theirs[(venue, wire_id)] = (fill.size_base, fill.price)
    assert ours == theirs  # every venue fill recorded once, by trade id, with the venue's size and price
    # Flat at the venues, by the emulator's own books.
    held = emulator.call(lambda: [p for p in emulator.core.executor._positions.values() if p.size_base != 0])
    assert held == []
    # No secret in any output or file the bot wrote.
    texts = [proc.stdout, proc.stderr, (tmp_path / "bot.log.jsonl").read_text(errors="replace"),
             db.read_bytes().decode("latin-1")]
    for secret in (keys["BYBIT_API_SECRET"], keys["HYPERLIQUID_PRIVATE_KEY"]):
        assert all(secret not in text for text in texts)


def test_live_without_keys_or_with_a_remote_url_is_one_line(tmp_path: Path, emulator) -> None:
    settings = tmp_path / "live.toml"
    settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                                        hyperliquid=emulator.base_urls["hyperliquid"]))
    missing = {k: v for k, v in _keys(emulator).items() if k != "BYBIT_API_SECRET"}
    env_clean = {k: "" for k in ("BYBIT_API_SECRET",)}
    proc = _run(["--live", "--settings", str(settings), "--duration", "5"], tmp_path, {**missing, **env_clean})
    assert_usage_error(proc, "BYBIT_API_SECRET")
    remote = tmp_path / "remote.toml"
    remote.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit="http://203.0.113.7:8000",
                                      hyperliquid=emulator.base_urls["hyperliquid"]))
    proc = _run(["--live", "--settings", str(remote), "--duration", "5"], tmp_path, _keys(emulator))
    assert_usage_error(proc, "203.0.113.7")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                                       hyperliquid=emulator.base_urls["hyperliquid"]).replace(
        'venues = ["bybit", "hyperliquid"]', 'venues = ["bybit", "notavenue"]'))
    proc = _run(["--live", "--settings", str(unknown)], tmp_path, _keys(emulator))
    assert_usage_error(proc, "notavenue")


def _closed_local_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("down", ["bybit", "hyperliquid"])
def test_live_with_a_venue_down_at_start_is_one_line(tmp_path: Path, emulator, down: str) -> None:
    """A venue that does not answer while the bot reads its markets (pybit for Bybit, ccxt for
    Hyperliquid): one line naming the fix, exit 2, no traceback, and no order anywhere."""
    urls = {**emulator.base_urls, down: _closed_local_url()}
    settings = tmp_path / "live.toml"
    settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=urls["bybit"], hyperliquid=urls["hyperliquid"]))
    def venue_orders() -> int:
        with sqlite3.connect(emulator.core.store.path) as conn:
            return conn.execute("SELECT COUNT(*) FROM venue_orders").fetchone()[0]

    before = venue_orders()
    proc = _run(["--live", "--settings", str(settings), "--duration", "5"], tmp_path, _keys(emulator))
    assert_usage_error(proc, "base_url")
    assert "did not answer during start-up" in proc.stderr and "no order was sent" in proc.stderr
    assert venue_orders() == before


def test_live_refuses_a_hyperliquid_key_that_trades_another_account(tmp_path: Path, emulator) -> None:
    """A well-formed address that is not the key's account: the bot would read one account while its
    orders trade the key's. It used to start (exit 0); now one line before any order."""
    settings = tmp_path / "live.toml"
    settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                                        hyperliquid=emulator.base_urls["hyperliquid"]))
    with sqlite3.connect(emulator.core.store.path) as conn:
        before = conn.execute("SELECT COUNT(*) FROM venue_orders").fetchone()[0]
    other_address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    keys = {**_keys(emulator), "HYPERLIQUID_WALLET_ADDRESS": other_address}
    proc = _run(["--live", "--settings", str(settings), "--duration", "5"], tmp_path, keys)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after the banner: the account set-up refused it
    assert last.startswith("error: venue set-up refused: hyperliquid: HYPERLIQUID_PRIVATE_KEY is the key of "
                           "another account"), last
    assert other_address not in proc.stderr
    assert keys["HYPERLIQUID_PRIVATE_KEY"][2:] not in proc.stderr
    with sqlite3.connect(emulator.core.store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM venue_orders").fetchone()[0] == before


def test_live_refuses_a_foreign_database_and_an_unwritable_log_in_one_line(tmp_path: Path, emulator) -> None:
    """Both found by trying ``--live`` as a new user: a corrupt database file ended in a traceback
    from inside the supervisor, a ``bot.log_path`` that is a directory in one from loguru."""
    settings = tmp_path / "live.toml"
    text = SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                           hyperliquid=emulator.base_urls["hyperliquid"])
    settings.write_text(text)
    (tmp_path / "live.sqlite").write_bytes(b"this is not a database" * 100)
    proc = _run(["--live", "--settings", str(settings), "--duration", "5"], tmp_path, _keys(emulator))
    assert_usage_error(proc, "live.sqlite")
    (tmp_path / "live.sqlite").unlink()
    (tmp_path / "logs").mkdir()
    settings.write_text(text.replace(f'log_path = "{tmp_path.as_posix()}/bot.log.jsonl"',
                                     f'log_path = "{tmp_path.as_posix()}/logs"'))
    proc = _run(["--live", "--settings", str(settings), "--duration", "5"], tmp_path, _keys(emulator))
    assert_usage_error(proc, "bot.log_path")


def test_a_second_live_bot_on_the_same_database_is_refused(tmp_path: Path, emulator) -> None:
    """One bot per database: a second ``--live`` on the first one's database would trade the same
    positions twice. It exits 2 naming the running bot's pid, and the first goes on."""
    import subprocess
    import time

    settings = tmp_path / "live.toml"
    settings.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                                        hyperliquid=emulator.base_urls["hyperliquid"]))
    env = {**os.environ, **_keys(emulator), "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    first = subprocess.Popen(bot_command("--live", "--settings", str(settings), "--duration", "25"), cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "live.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the first bot holds the lock from before it opens the database
        second = _run(["--live", "--settings", str(settings), "--duration", "5"], tmp_path, _keys(emulator))
        assert_usage_error(second, f"pid {first.pid}")
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err[-2000:]
