"""Venue emulator benchmark: what the emulator costs a client, measured through the real clients.

Starts ``python -m bot emulate`` (three venues, speed 1, a fresh state file) as a subprocess and measures:

- order round trip: ccxt ``create_order`` (signed IOC limit, matched, persisted) per dialect, against a
  reference measured on the same client in the same run: the venue's cheapest public call (bybit/binance
  server time, hyperliquid ``meta``). The ratio is the emulator's signing + matching + durable write cost;
- book fan-out: from the venue clock stamp on a Bybit ``orderbook.50`` delta to its arrival on a raw
  WebSocket client, against the ping/pong round trip on the same socket (reference);
- peak RSS of the emulator process (VmHWM), three venues, after the run;
- ccxt's client-side cost of signing one Hyperliquid order (no network), which dominates that dialect.

    python bench/emulator.py [--orders 100] [--books 30] > emulator.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paper.emulator import default_credentials, rewrite_urls
from paper.emulator.clients import ccxt_options, ccxt_symbol

VENUES = ("bybit", "binanceusdm", "hyperliquid")


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))], 3)


def _client(venue: str, rest: str, ws: str):
    import ccxt.async_support as ccxt_async

    cred = default_credentials(venue)
    config = {**ccxt_options(venue), "enableRateLimit": False}
    if venue == "hyperliquid":
        config.update(walletAddress=cred.key, privateKey=cred.secret)
    else:
        config.update(apiKey=cred.key, secret=cred.secret)
    ex = getattr(ccxt_async, venue)(config)
    ex.urls["api"] = rewrite_urls(ex.urls["api"], rest, ws)
    return ex


async def _reference_call(ex, venue: str) -> None:
    if venue == "hyperliquid":
        await ex.publicPostInfo({"type": "meta"})
    else:
        await ex.fetch_time()


async def order_round_trips(venue: str, rest: str, ws: str, n: int) -> dict:
    ex = _client(venue, rest, ws)
    symbol = ccxt_symbol(venue, "ETH")
    orders, refs = [], []
    try:
        await ex.load_markets()
        for i in range(n):
            t0 = time.perf_counter()
            await _reference_call(ex, venue)
            refs.append((time.perf_counter() - t0) * 1000)
            book = await ex.fetch_order_book(symbol, 5)
            side = "buy" if i % 2 == 0 else "sell"  # alternate: the position stays small
            edge = book["asks"][0][0] * 1.002 if side == "buy" else book["bids"][0][0] * 0.998
            price = float(ex.price_to_precision(symbol, edge))
            cid = f"0x{(1 << 120) + i + int(time.time()):032x}" if venue == "hyperliquid" else f"bench-{os.getpid()}-{i}"
            t0 = time.perf_counter()
            await ex.create_order(symbol, "limit", side, 0.01, price, {"timeInForce": "IOC", "clientOrderId": cid})
            orders.append((time.perf_counter() - t0) * 1000)
    finally:
        await ex.close()
    p50, ref50 = percentile(orders, 50), percentile(refs, 50)
    return {"orders": n, "order_ms_p50": p50, "order_ms_p99": percentile(orders, 99),
            "reference_ms_p50": ref50, "reference_ms_p99": percentile(refs, 99),
            "ratio_p50": round(p50 / ref50, 2) if p50 and ref50 else None}


async def book_fanout(ws_base: str, n: int) -> dict:
    lags, pongs = [], []
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_base + "/v5/public/linear") as ws:
        await ws.send_json({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"], "req_id": "b"})
        while len(lags) < n:
            msg = json.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            if msg.get("type") == "delta":
                lags.append(time.time() * 1000 - msg["ts"])
                t0 = time.perf_counter()
                await ws.send_json({"op": "ping", "req_id": "p"})
                while True:
                    answer = json.loads((await asyncio.wait_for(ws.receive(), 30)).data)
                    if answer.get("op") == "ping":
                        pongs.append((time.perf_counter() - t0) * 1000)
                        break
    p50, ref50 = percentile(lags, 50), percentile(pongs, 50)
    return {"deltas": n, "book_delta_lag_ms_p50": p50, "book_delta_lag_ms_p99": percentile(lags, 99),
            "reference_pong_rtt_ms_p50": ref50, "reference_pong_rtt_ms_p99": percentile(pongs, 99),
            "ratio_p50": round(p50 / ref50, 2) if p50 and ref50 else None,
            "note": "lag = arrival wall ms - the delta's venue-clock ts (ms resolution, same host clock)"}


def hyperliquid_client_signing_ms(n: int = 20) -> dict:
    """ccxt's own cost of signing one Hyperliquid order (client side, no network): explains that dialect's ratio."""
    import ccxt

    cred = default_credentials("hyperliquid")
    ex = ccxt.hyperliquid({"privateKey": cred.secret, "walletAddress": cred.key})
    action = {"type": "order", "orders": [{"a": 1, "b": True, "p": "3500", "s": "0.01", "r": False,
                                           "t": {"limit": {"tif": "Ioc"}}}], "grouping": "na"}
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        ex.sign_l1_action(action, 1_767_225_600_000 + i)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": percentile(times, 50), "p99": percentile(times, 99),
            "note": "ccxt's pure-Python Keccak when OpenSSL lacks KECCAK-256; adapters pay this per order"}


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--books", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen([sys.executable, "-m", "bot", "emulate", "--venues", ",".join(VENUES),
                                 "--state", str(Path(tmp) / "bench.sqlite")], cwd=tmp, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            banner = json.loads(proc.stdout.readline())
            result: dict = {"benchmark": "venue emulator", "venues": list(VENUES)}

            async def run() -> None:
                for venue in VENUES:
                    urls = banner["venues"][venue]
                    result[f"order_{venue}"] = await order_round_trips(venue, urls["rest"], urls["ws"], args.orders)
                result["book_fanout_bybit"] = await book_fanout(banner["venues"]["bybit"]["ws"], args.books)

            asyncio.run(run())
            result["emulator_peak_rss_mb"] = peak_rss_mb(proc.pid)
            result["hyperliquid_ccxt_signing_ms"] = hyperliquid_client_signing_ms()
        finally:
            proc.send_signal(signal.SIGTERM)
            result_code = proc.wait(timeout=30)
        result["emulator_exit_code"] = result_code
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
