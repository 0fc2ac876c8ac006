"""``python -m bot --live`` RECEIVES funding on a held hedged position, and its reports agree with the venues.

The emulator (Bybit v5 through pybit, Hyperliquid through ccxt) settles BTC and ETH hourly on both
venues; once the bot holds its hedged position across the two dialects, the test moves the venue
clock (running, speed 1) to just past the next hour boundary, so the position is held through one
real settlement on each venue however long the bot took to start. The bot reads the
payments back through the live adapters (its reconciliation), then SIGTERM flattens and it exits 0.
``python -m bot report --live --json`` and ``postmortem --live --json`` must then agree with the
emulator's own records: every fill by trade id (size, price) and every funding payment by payment id
(amount), and the report's funding total equal to the venues' sum.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_cli import REPO, bot_command
from tests.test_e2e_live import SETTINGS, _keys

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_audit import wire_payment_id, wire_trade_id  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOUR_MS = 3_600_000
LEAD_MS = 300_000  # the emulator clock starts this long before an hour boundary (none passes during start-up)


def _env(keys: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(keys)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def _wait(predicate, timeout_s: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.2)
    return False


@pytest.fixture
def emulator(tmp_path: Path):
    from paper.emulator import start_emulator

    wall_ms = int(time.time() * 1000)
    start_ms = ((wall_ms + LEAD_MS + 60_000) // HOUR_MS + 1) * HOUR_MS - LEAD_MS  # >= 60 s ahead of the wall clock
    hourly = {"BTC": 1, "ETH": 1}
    with start_emulator(["bybit", "hyperliquid"], state_path=tmp_path / "venues.sqlite", seed=3,
                        start_ts_ms=start_ms, interval_overrides={"bybit": hourly, "hyperliquid": hourly}) as emu:
        yield emu


def test_live_receives_funding_and_report_and_postmortem_agree_with_the_venues(tmp_path: Path, emulator) -> None:
    settings = tmp_path / "live.toml"
    text = SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                           hyperliquid=emulator.base_urls["hyperliquid"])
    settings.write_text(text + "\n[reconcile]\ninterval_seconds = 1\n")
    keys = _keys(emulator)
    db = tmp_path / "live.sqlite"
    out = open(tmp_path / "bot.out", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(bot_command("--live", "--settings", str(settings)), cwd=tmp_path, env=_env(keys),
                            stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        held = _wait(lambda: bool(_rows(db, "SELECT 1 FROM positions WHERE state = 'monitoring'")), 120, proc)
        assert held, (tmp_path / "bot.out").read_text()[-3000:]
        # Both venues settle at the next boundary; the bot's reconciliation reads the payments back.
        now_ms = emulator.call(emulator.core.now_ms)
        emulator.advance_ms((now_ms // HOUR_MS + 1) * HOUR_MS - now_ms + 1_000)
        paid = _wait(lambda: {v for (v,) in _rows(db, "SELECT DISTINCT venue FROM funding_payments")}
                     == {"bybit", "hyperliquid"}, 180, proc)
        assert paid, (tmp_path / "bot.out").read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    log = (tmp_path / "bot.out").read_text()
    assert code == 0, log[-3000:]
    assert "flat on every venue" in log

    # The venues' own records, in their wire ids (what the adapters read back).
    theirs_fills, theirs_funding = {}, {}
    for venue in ("bybit", "hyperliquid"):
        for fill in emulator.call(lambda v=venue: emulator.core.executor.venue_fills(v)):
            theirs_fills[(venue, wire_trade_id(venue, fill.trade_id))] = (fill.size_base, fill.price)
        for pay in emulator.call(lambda v=venue: emulator.core.executor.venue_funding(v)):
            theirs_funding[(venue, wire_payment_id(venue, pay.payment_id))] = pay.amount_usd
    assert {v for v, _ in theirs_funding} == {"bybit", "hyperliquid"}
    assert emulator.call(lambda: [p for p in emulator.core.executor._positions.values() if p.size_base != 0]) == []

    env = _env({})
    report = subprocess.run(bot_command("report", "--live", "--db", str(db), "--settings", str(settings), "--json"),
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    position_ids = [p["position_id"] if "position_id" in p else p["id"] for p in doc["positions"]]
    assert position_ids
    ours_fills, ours_funding = {}, {}
    for pid in position_ids:
        post = subprocess.run(bot_command("postmortem", pid, "--live", "--db", str(db), "--settings", str(settings),
                                          "--json"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert post.returncode == 0, post.stderr
        for entry in json.loads(post.stdout)["timeline"]:
            data = entry["data"]
            if entry["kind"] == "fill":
                ours_fills[(data["venue"], str(data["trade_id"]))] = (Decimal(data["size_base"]), Decimal(data["price"]))
            elif entry["kind"] == "funding":
                ours_funding[(data["venue"], str(data["payment_id"]))] = Decimal(data["amount_usd"])
    assert ours_fills == theirs_fills  # every venue fill once, by trade id, with the venue's size and price
    assert ours_funding == theirs_funding  # every venue payment once, by payment id, with the venue's amount
    assert Decimal(doc["totals"]["funding_usd"]) == sum(theirs_funding.values())
