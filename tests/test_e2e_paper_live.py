"""``python -m bot --paper --market live``: the dry run on live data, against the local emulator.

The emulator serves Bybit v5 (pybit) and Hyperliquid (ccxt) on 127.0.0.1. The bot runs as a
subprocess with NO key variable in its environment, reads only the venues' public data, and trades
on the paper venues: it must open a hedged paper position priced from the emulator's books, while
the emulator itself never sees an order. SIGTERM flattens the paper positions and exits 0; ``report``
reads the mode's own database.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers_cli import REPO, assert_usage_error, bot_command

pytestmark = [pytest.mark.e2e]

SETTINGS = """\
[bot]
log_path = "{work}/bot.log.jsonl"
paper_live_db_path = "{work}/paper-live.sqlite"
status_interval_seconds = 1.0

[live]
venues = ["bybit", "hyperliquid"]
symbols = ["BTC", "ETH"]

# The dry run's wiring is under test, not the strategy: take the best current spread at once.
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

KEY_HINTS = ("API_KEY", "API_SECRET", "SECRET", "PRIVATE_KEY", "WALLET_ADDRESS", "PASSWORD", "PASSPHRASE")


def _keyless_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(h in k.upper() for h in KEY_HINTS)}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def emulator(tmp_path: Path):
    from paper.emulator import start_emulator

    with start_emulator(["bybit", "hyperliquid"], state_path=tmp_path / "venues.sqlite", seed=3) as emu:
        yield emu


def _settings(tmp_path: Path, emu) -> Path:
    path = tmp_path / "paper-live.toml"
    path.write_text(SETTINGS.format(work=tmp_path.as_posix(), bybit=emu.base_urls["bybit"],
                                    hyperliquid=emu.base_urls["hyperliquid"]))
    return path


def _positions(db: Path) -> list[tuple[str, str, str, str]]:
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT id, long_venue, short_venue, state FROM positions").fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet
        return []


def test_paper_on_live_data_opens_hedged_on_paper_sends_nothing_and_flattens(tmp_path: Path, emulator) -> None:
    settings = _settings(tmp_path, emulator)
    db = tmp_path / "paper-live.sqlite"
    env = _keyless_env()
    assert not any("BYBIT_API" in k or "HYPERLIQUID_" in k for k in env)
    proc = subprocess.Popen(bot_command("--paper", "--market", "live", "--settings", settings), cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if any(state == "monitoring" for *_rest, state in _positions(db)):
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        opened = _positions(db)
        assert any(state == "monitoring" for *_r, state in opened), f"no hedged paper position: {opened}"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "no keys read" in err
    positions = _positions(db)
    assert positions and all(state == "closed" for *_r, state in positions)
    assert {(lv, sv) for _i, lv, sv, _s in positions} <= {("bybit", "hyperliquid"), ("hyperliquid", "bybit")}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    fills = conn.execute("SELECT venue, price FROM fills").fetchall()
    filled_ids = {row[0] for row in conn.execute("SELECT DISTINCT position_id FROM fills")}
    conn.close()
    assert {v for v, _p in fills} == {"bybit", "hyperliquid"}  # both legs filled, on paper
    # Nothing reached the emulator: no order, no fill, no position in its own records.
    assert emulator.call(lambda: dict(emulator.core.executor._orders)) == {}
    for venue in ("bybit", "hyperliquid"):
        assert emulator.call(lambda v=venue: emulator.core.executor.venue_fills(v)) == []
    assert emulator.call(lambda: [p for p in emulator.core.executor._positions.values() if p.size_base != 0]) == []
    # The mode's own database; the paper and live defaults were never created.
    assert not (tmp_path / "data").exists()
    report = subprocess.run(bot_command("report", "--db", db, "--json", "--settings", settings), cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    data = json.loads(report.stdout)
    assert data["totals"]["open_positions"] == 0
    assert {p["id"] for p in data["positions"] if p["filled"]} == filled_ids
    post = subprocess.run(bot_command("postmortem", positions[0][0], "--db", db, "--json", "--settings", settings),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert post.returncode == 0, post.stderr[-2000:]
    assert positions[0][0] in post.stdout


@pytest.mark.parametrize(("args", "named"), [
    (["--market", "live"], "--paper --market live"),
    (["--live", "--market", "live"], "--paper --market live"),
    (["--paper", "--market", "live", "--speed", "10"], "--speed"),
    (["--paper", "--market", "live"], "live.venues"),  # the shipped default lists no venue
])
def test_bad_market_live_combinations_are_one_line(tmp_path: Path, args: list[str], named: str) -> None:
    proc = subprocess.run(bot_command(*args), cwd=tmp_path, env=_keyless_env(), capture_output=True, text=True,
                          timeout=120)
    assert_usage_error(proc, named)


def test_paper_live_refuses_the_paper_or_live_database(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text('[live]\nvenues = ["bybit", "hyperliquid"]\n')
    for db in ("data/paper.sqlite", "data/live.sqlite"):
        proc = subprocess.run(bot_command("--paper", "--market", "live", "--settings", settings, "--db", db),
                              cwd=tmp_path, env=_keyless_env(), capture_output=True, text=True, timeout=120)
        assert_usage_error(proc, "bot.paper_live_db_path")


def test_the_public_session_reads_no_key_and_builds_no_executor(emulator, monkeypatch) -> None:
    import anyio

    import adapters.credentials
    import adapters.registry as registry

    def no_keys(*_a, **_k):
        raise AssertionError("a key was looked up in --paper --market live")

    monkeypatch.setattr(registry, "load_credentials", no_keys)
    monkeypatch.setattr(adapters.credentials, "load_credentials", no_keys)
    for name in [k for k in os.environ if any(h in k.upper() for h in KEY_HINTS)]:
        monkeypatch.delenv(name)
    configs = {v: registry.LiveVenueConfig(base_url=emulator.base_urls[v]) for v in ("bybit", "hyperliquid")}

    async def main() -> tuple[set[str], set[str], list[object]]:
        session = await registry.build_public_session(configs, symbols=["BTC", "ETH"])
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.feed.run)
                with anyio.move_on_after(90):
                    while not ({q.venue for q in session.feed.quotes()} == {"bybit", "hyperliquid"}
                               and {b.venue for b in session.feed.books()} == {"bybit", "hyperliquid"}):
                        await anyio.sleep(0.2)
                tg.cancel_scope.cancel()
            return ({q.venue for q in session.feed.quotes()}, {b.venue for b in session.feed.books()},
                    [v.executor for v in session.venues])
        finally:
            await session.close()

    quotes, books, executors = anyio.run(main)
    assert quotes == {"bybit", "hyperliquid"} and books == {"bybit", "hyperliquid"}
    assert executors == [None, None]
    assert emulator.call(lambda: dict(emulator.core.executor._orders)) == {}
