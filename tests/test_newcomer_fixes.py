"""Small things a newcomer trips on: the final line on a terminal, scan's gate column, report totals,
the post-mortem order line."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from bot.report import _describe
from tests.helpers_cli import bot_command, bot_env, query, run_bot, write_settings

EASY_ENTRIES = {"strategy": {"min_expected_net_usd": '"-100"'}, "risk": {"max_breakeven_hours": '"100000"'}}


@pytest.mark.e2e
def test_on_a_terminal_the_final_message_starts_its_own_line(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, {"bot": {"status_interval_seconds": "0.2"}})
    master, slave = pty.openpty()
    proc = subprocess.Popen(bot_command("--paper", "--speed", "60", "--duration", "3", "--db", tmp_path / "p.sqlite",
                                        "--settings", settings),
                            cwd=tmp_path, env=bot_env(), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))  # no ANSI codes
    assert proc.returncode == 0, screen[-2000:]
    assert "bot=" in screen and "funding-fees=$" in screen  # the status line ran, with its honest name
    assert re.search(r"(^|\n)stopped: duration elapsed", screen), screen[-500:]
    assert not re.search(r"\$-?[0-9.]+stopped", screen)


def test_scan_marks_the_rows_the_gates_would_allow(tmp_path: Path) -> None:
    easy = write_settings(tmp_path, EASY_ENTRIES, name="easy.toml")
    proc = run_bot("scan", "--limit", "5", "--json", "--settings", easy, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows and any(r["gates_allow"] for r in rows)
    assert all(r["gates_allow"] == (r["gate_denials"] == []) for r in rows)
    strict = write_settings(tmp_path, {"strategy": {"min_expected_net_usd": '"1000000"'}}, name="strict.toml")
    table = run_bot("scan", "--limit", "3", "--settings", strict, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "symbol"])
    assert lines[at].split()[-1] == "gates"
    rows = lines[at + 2:at + 5]
    assert len(rows) == 3 and all("net_below_min" in line for line in rows)


def test_postmortem_order_line_says_status_then_filled_size_once() -> None:
    data = {"purpose": "open", "leg": "long", "side": "buy", "size_base": "1.0", "symbol": "BTC",
            "venue": "sim-8h", "order_type": "limit", "reduce_only": 0, "status": "filled", "filled_base": "1.0",
            "client_order_id": "abc"}
    summary = _describe("order", data)["summary"]
    assert "filled filled" not in summary
    assert "-> filled, 1.0 of 1.0 filled" in summary


@pytest.mark.e2e
def test_report_totals_do_not_count_an_entry_that_never_filled(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, {**EASY_ENTRIES, "paper.faults": {"reject_probability": "1.0"}})
    db = tmp_path / "p.sqlite"
    run = run_bot("--paper", "--speed", "3600", "--duration", "3", "--db", db, "--settings", settings,
                  cwd=tmp_path, timeout_s=90)
    assert run.returncode == 0, run.stderr
    attempts = len(query(db, "SELECT id FROM positions"))
    assert attempts >= 1  # every entry was rejected by the venues
    report = json.loads(run_bot("report", "--json", "--db", db, "--settings", settings, cwd=tmp_path).stdout)
    assert report["totals"]["positions"] == 0
    assert report["totals"]["failed_entries"] == attempts
    assert all(p["filled"] is False for p in report["positions"])
    text = run_bot("report", "--db", db, "--settings", settings, cwd=tmp_path).stdout
    assert f"totals: 0 positions (0 open), {attempts} failed entr" in text
