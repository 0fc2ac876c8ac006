"""``python -m bot emulate`` as a user runs it: a banner with the URLs, venues served, SIGTERM exits 0,
state kept in the --state file, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests
from helpers_cli import bot_command, bot_env, run_bot

from paper.venue_store import VenueStore


def _read_banner(proc: subprocess.Popen[str]) -> dict:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return json.loads(line)


def test_emulate_serves_the_venues_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "emu.sqlite"
    proc = subprocess.Popen(bot_command("emulate", "--venues", "bybit,hyperliquid", "--state", state, "--seed", "3",
                                        "--speed", "10"),
                            cwd=tmp_path, env=bot_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = _read_banner(proc)
        assert banner["emulator"] == "ready" and set(banner["venues"]) == {"bybit", "hyperliquid"}
        bybit = banner["venues"]["bybit"]["rest"]
        assert bybit.startswith("http://127.0.0.1:") and banner["venues"]["bybit"]["test_key"] == "emu-bybit-key"
        answer = requests.get(bybit + "/v5/market/tickers", params={"category": "linear", "symbol": "BTCUSDT"}, timeout=5)
        assert answer.json()["result"]["list"][0]["symbol"] == "BTCUSDT"
        meta = requests.post(banner["venues"]["hyperliquid"]["rest"] + "/info", json={"type": "meta"}, timeout=5)
        assert meta.json()["universe"][0]["name"] == "BTC"
        armed = requests.post(banner["control"], json={"kind": "http_5xx", "venue": "bybit"}, timeout=5)
        assert armed.status_code == 200
        assert requests.get(bybit + "/v5/market/time", timeout=5).status_code == 503
        time.sleep(1.2)  # at speed 10 the venue clock is persisted at least once
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with VenueStore.open(state) as store:
        assert store.load().counters["emulator_clock_ms"] > 0


def test_emulate_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    for args, fragment in ((["--venues", "bybit,kraken"], "--venues: unknown venue kraken"),
                           (["--venues", "bybit", "--speed", "0"], "--speed"),
                           (["--venues", "bybit", "--port-base", "70000"], "--port-base"),
                           (["--venues", "bybit", "--history-hours", "-1"], "--history-hours"),
                           (["--venues", "bybit", "--history-hours", "x"], "--history-hours"),
                           (["--venues", "bybit", "--network-delay-ms", "5000"], "--network-delay-ms"),
                           (["--venues", "bybit", "--network-delay-ms", "-1"], "--network-delay-ms"),
                           (["--venues", "bybit", "--network-delay-ms", "soon"], "--network-delay-ms")):
        result = run_bot("emulate", *args, cwd=tmp_path, timeout_s=30)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
        assert "Traceback" not in result.stderr


def test_emulate_reports_a_taken_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_bot("emulate", "--venues", "bybit", "--port-base", str(port), "--state", tmp_path / "s.sqlite",
                         cwd=tmp_path, timeout_s=30)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --port-base: cannot listen on 127.0.0.1")
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no state file left for a run that never served


def test_one_emulator_per_state_file(tmp_path: Path) -> None:
    # Two emulators on one state file would each keep their own copy of the venues and overwrite
    # each other's orders and balances.
    state = tmp_path / "emu.sqlite"
    proc = subprocess.Popen(bot_command("emulate", "--venues", "bybit", "--state", state),
                            cwd=tmp_path, env=bot_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _read_banner(proc)
        second = run_bot("emulate", "--venues", "bybit", "--state", state, cwd=tmp_path, timeout_s=30)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == (f"error: --state: {state} is in use by a running emulator (pid {proc.pid}); "
                                         "stop it or choose another --state")
        assert state.exists()  # the first one's file is untouched
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    again = subprocess.Popen(bot_command("emulate", "--venues", "bybit", "--state", state),
                             cwd=tmp_path, env=bot_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _read_banner(again)["state"] == str(state)  # free again once the first one stopped
    finally:
        again.kill()
        again.wait()


def test_emulate_network_delay_holds_each_rest_request(tmp_path: Path) -> None:
    def rest_ms(*extra: str) -> float:
        proc = subprocess.Popen(bot_command("emulate", "--venues", "bybit", "--state", tmp_path / f"s{len(extra)}.sqlite",
                                            *extra),
                                cwd=tmp_path, env=bot_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = _read_banner(proc)["venues"]["bybit"]["rest"] + "/v5/market/time"
            with requests.Session() as session:
                session.get(url, timeout=5)  # connected
                took = []
                for _ in range(5):
                    started = time.perf_counter()
                    assert session.get(url, timeout=5).status_code == 200
                    took.append((time.perf_counter() - started) * 1000)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            return min(took)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert rest_ms("--network-delay-ms", "150") >= 150  # every request waits its travel
    assert rest_ms() < 150
