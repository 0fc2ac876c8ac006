"""Every emulator fault, observed through the UNMODIFIED clients: what ccxt / pybit raise, and whether
the venue executed the order anyway (what an adapter must then find by client order id)."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from decimal import Decimal

import aiohttp
import ccxt
import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from paper.emulator import FaultError, start_emulator
from paper.emulator.clients import ccxt_client, ccxt_symbol, pybit_http

VENUES = ("bybit", "binanceusdm", "hyperliquid")
_ids = itertools.count(1)

# fault -> venue -> (what the client raises, or None when create_order RETURNS; did the venue execute?)
HTTP_FAULT_TABLE = {
    "drop_after_execute": {v: (ccxt.ExchangeNotAvailable, True) for v in VENUES},
    "timeout": {v: (ccxt.RequestTimeout, False) for v in VENUES},
    "http_5xx": {v: (ccxt.ExchangeNotAvailable, False) for v in VENUES},
    # bybit / binance RETURN an order with id None; ccxt hyperliquid returns None itself (or, depending on
    # the price argument's type, leaks a raw TypeError): "unknown" accepts any of these
    "non_json_200": {"bybit": (None, True), "binanceusdm": (None, True), "hyperliquid": ("unknown", True)},
    # bybit 110072 arrives as plain InvalidOrder, binance -4116 and hyperliquid as ExchangeError
    "duplicate_client_id": {"bybit": (ccxt.InvalidOrder, True), "binanceusdm": (ccxt.ExchangeError, True),
                            "hyperliquid": (ccxt.ExchangeError, True)},
    "rate_limit": {"bybit": (ccxt.RateLimitExceeded, False), "binanceusdm": (ccxt.DDoSProtection, False),
                   "hyperliquid": (ccxt.RateLimitExceeded, False)},
}


@pytest.fixture(scope="module")
def emu():
    handle = start_emulator(VENUES, seed=21, speed=5)  # five book updates a second
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def clean_faults(emu):
    emu.faults.clear()
    yield
    emu.faults.clear()
    for venue in VENUES:
        emu.core.skew_ms.pop(venue, None)


def client_id(venue: str) -> str:
    n = next(_ids)
    return f"0x{n:032x}" if venue == "hyperliquid" else f"fault-{n}"


async def _buy(ex, venue: str, cid: str) -> dict:
    symbol = ccxt_symbol(venue, "BTC")
    book = await ex.fetch_order_book(symbol, 5)
    price = float(ex.price_to_precision(symbol, book["asks"][0][0] * 1.002))
    return await ex.create_order(symbol, "limit", "buy", 0.01, price, {"timeInForce": "IOC", "clientOrderId": cid})


@pytest.mark.anyio
@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("kind", list(HTTP_FAULT_TABLE))
async def test_http_fault_through_ccxt(emu, venue: str, kind: str) -> None:
    raises, executed = HTTP_FAULT_TABLE[kind][venue]
    ex = ccxt_client(emu, venue, timeout=1_000)
    try:
        await ex.load_markets()
        cid = client_id(venue)
        emu.faults.arm(kind, venue=venue, scope="order", delay_s=2)
        if raises is None:
            answer = await _buy(ex, venue, cid)
            assert answer["id"] is None  # "success" without an order id: the outcome is unknown
        elif raises == "unknown":
            try:
                answer = await _buy(ex, venue, cid)
            except TypeError:
                answer = None
            assert answer is None or answer["id"] is None
        else:
            with pytest.raises(raises):
                await _buy(ex, venue, cid)
        stored = emu.core.executor.stored_order(venue, cid)
        assert (stored is not None) is executed
        assert emu.faults.fired[-1]["kind"] == kind and emu.faults.armed() == []
        if executed:  # the adapter's way out: look the order up by client order id
            symbol = ccxt_symbol(venue, "BTC")
            if venue == "bybit":
                found = (await ex.privateGetV5OrderRealtime({"category": "linear", "orderLinkId": cid}))["result"]["list"]
                assert found[0]["orderStatus"] == "Filled"
            elif venue == "binanceusdm":
                assert (await ex.fetch_order(None, symbol, {"origClientOrderId": cid}))["status"] == "closed"
            else:
                assert (await ex.fetch_order(None, symbol, {"clientOrderId": cid}))["status"] == "closed"
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_timeout_then_executed_late_is_found_only_after_the_delay(emu) -> None:
    ex = ccxt_client(emu, "bybit", timeout=500)
    try:
        await ex.load_markets()
        cid = client_id("bybit")
        emu.faults.arm("timeout", venue="bybit", scope="order", delay_s=1.5, execute=True)
        with pytest.raises(ccxt.RequestTimeout):
            await _buy(ex, "bybit", cid)
        assert emu.core.executor.stored_order("bybit", cid) is None  # not yet: a lookup now says "not found"
        await asyncio.sleep(1.5)
        found = (await ex.privateGetV5OrderRealtime({"category": "linear", "orderLinkId": cid}))["result"]["list"]
        assert found and found[0]["orderStatus"] == "Filled"  # why "not found" is final only after the expiry
    finally:
        await ex.close()


@pytest.mark.anyio
@pytest.mark.parametrize("venue", ["bybit", "binanceusdm"])
async def test_a_request_delayed_past_its_recv_window_never_executes(emu, venue: str) -> None:
    ex = ccxt_client(emu, venue, timeout=500, options={"recvWindow": 1_000})
    try:
        await ex.load_markets()
        cid = client_id(venue)
        emu.faults.arm("timeout", venue=venue, scope="order", delay_s=1.5, execute=True)
        with pytest.raises(ccxt.RequestTimeout):
            await _buy(ex, venue, cid)
        await asyncio.sleep(1.5)  # the late request has reached the venue by now, and was refused there
        assert emu.core.executor.stored_order(venue, cid) is None
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_hyperliquid_signed_expiry_refuses_a_late_action(emu) -> None:
    signer = ccxt_client(emu, "hyperliquid")
    try:
        await signer.load_markets()
        book = await signer.fetch_order_book("BTC/USDC:USDC", 5)
        price = signer.price_to_precision("BTC/USDC:USDC", book["asks"][0][0] * 1.002)
        action = {"type": "order", "orders": [{"a": 0, "b": True, "p": price, "s": "0.01", "r": False,
                                               "t": {"limit": {"tif": "Ioc"}}, "c": "0x" + "e1" * 16}],
                  "grouping": "na"}
        async with aiohttp.ClientSession() as http:
            for expires_in_ms, cloid in ((1_000, "0x" + "e1" * 16), (60_000, "0x" + "e2" * 16)):
                action["orders"][0]["c"] = cloid
                nonce = signer.milliseconds()
                body = {"action": action, "nonce": nonce, "vaultAddress": None, "expiresAfter": nonce + expires_in_ms,
                        "signature": signer.sign_l1_action(action, nonce, None, nonce + expires_in_ms)}
                emu.faults.arm("timeout", venue="hyperliquid", scope="order", delay_s=1.5, execute=True)
                with pytest.raises(asyncio.TimeoutError):  # the client gives up after 0.5 s
                    async with http.post(emu.base_urls["hyperliquid"] + "/exchange", json=body,
                                         timeout=aiohttp.ClientTimeout(total=0.5)) as answer:
                        await answer.read()
        await asyncio.sleep(1.6)
    finally:
        await signer.close()
    assert emu.core.executor.stored_order("hyperliquid", "0x" + "e1" * 16) is None  # expired on arrival
    assert emu.core.executor.stored_order("hyperliquid", "0x" + "e2" * 16) is not None  # still valid: executed late


PYBIT_TABLE = {
    "drop_after_execute": (requests.exceptions.ConnectionError, True),
    "timeout": (requests.exceptions.ReadTimeout, False),
    "http_5xx": (FailedRequestError, False),
    "non_json_200": (FailedRequestError, True),
    "duplicate_client_id": (InvalidRequestError, True),
    "rate_limit": (InvalidRequestError, False),
}


@pytest.mark.parametrize("kind", list(PYBIT_TABLE))
def test_http_fault_through_pybit(emu, kind: str) -> None:
    raises, executed = PYBIT_TABLE[kind]
    session = pybit_http(emu, timeout=1)
    ask = Decimal(session.get_orderbook(category="linear", symbol="BTCUSDT")["result"]["a"][0][0])
    cid = client_id("bybit")
    emu.faults.arm(kind, venue="bybit", scope="order", delay_s=2)
    with pytest.raises(raises) as caught:
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.001",
                            price=str((ask * Decimal("1.002")).quantize(Decimal("0.1"))), timeInForce="IOC",
                            orderLinkId=cid)
    if kind in ("duplicate_client_id", "rate_limit"):
        assert caught.value.status_code == {"duplicate_client_id": 110072, "rate_limit": 10006}[kind]
    assert (emu.core.executor.stored_order("bybit", cid) is not None) is executed


@pytest.mark.anyio
@pytest.mark.parametrize("venue,offset_ms,raises", [
    ("bybit", 30_000, ccxt.InvalidNonce),  # retCode 10002: outside the recv window
    ("binanceusdm", -30_000, ccxt.InvalidNonce),  # -1021
    ("hyperliquid", -3 * 86_400_000, ccxt.ExchangeError),  # nonces may be up to 2 days old there
])
async def test_clock_skew_refuses_signed_requests(emu, venue: str, offset_ms: int, raises) -> None:
    ex = ccxt_client(emu, venue)
    try:
        await ex.load_markets()
        emu.faults.arm("clock_skew", venue=venue, offset_ms=offset_ms)
        await asyncio.sleep(0.05)  # applied in the emulator's loop
        cid = client_id(venue)
        with pytest.raises(raises):
            await _buy(ex, venue, cid)
        assert emu.core.executor.stored_order(venue, cid) is None
        if venue != "hyperliquid":  # the venue's time endpoint shows the skew
            assert abs(await ex.fetch_time() - ex.milliseconds() - offset_ms) < 2_000
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_interval_change_shows_in_payloads_and_settles_on_the_new_grid(emu) -> None:
    ex = ccxt_client(emu, "bybit")
    try:
        await ex.load_markets()
        emu.faults.arm("interval_change", venue="bybit", symbol="ETH", hours=1)
        await asyncio.sleep(0.05)
        ticker = (await ex.publicGetV5MarketTickers({"category": "linear", "symbol": "ETHUSDT"}))["result"]["list"][0]
        assert ticker["fundingIntervalHour"] == "1" and int(ticker["nextFundingTime"]) % 3_600_000 == 0
        info = await ex.publicGetV5MarketInstrumentsInfo({"category": "linear", "symbol": "ETHUSDT"})
        assert info["result"]["list"][0]["fundingInterval"] == 60
        # ccxt caches the interval of load time (LIVE.md): the parsed quote still says 8h
        assert (await ex.fetch_funding_rate("ETH/USDT:USDT"))["interval"] == "8h"
    finally:
        await ex.close()
    assert emu.core.intervals[("bybit", "ETH")] == 1
    with pytest.raises(FaultError, match="kind"):
        emu.faults.arm("no_such_fault")
    with pytest.raises(FaultError, match="symbol"):
        emu.faults.arm("interval_change", venue="bybit", symbol="NOPE", hours=4)
    with pytest.raises(FaultError, match="hours"):
        emu.faults.arm("interval_change", venue="bybit", symbol="ETH", hours=3)
    with pytest.raises(FaultError, match="status"):
        emu.faults.arm("http_5xx", status=200)


@pytest.mark.anyio
@pytest.mark.parametrize("venue", VENUES)
async def test_stream_disconnect_raises_network_error_then_reconnects(emu, venue: str) -> None:
    ex = ccxt_client(emu, venue, pro=True, keys=False)
    symbol = ccxt_symbol(venue, "BTC")
    try:
        await ex.load_markets()
        await asyncio.wait_for(ex.watch_order_book(symbol), 10)
        emu.faults.arm("ws_disconnect", venue=venue)

        async def watch_until_the_stream_fails() -> None:
            # a book update already on its way may still resolve a watch or two before the close lands
            while True:
                await ex.watch_order_book(symbol)

        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(watch_until_the_stream_fails(), 10)
        book = await asyncio.wait_for(ex.watch_order_book(symbol), 10)  # ccxt reconnects
        assert book["bids"] and book["asks"]
    finally:
        await ex.close()


@pytest.mark.anyio
@pytest.mark.parametrize("venue", VENUES)
async def test_silent_stream_keeps_the_connection_but_sends_no_books(emu, venue: str) -> None:
    ex = ccxt_client(emu, venue, pro=True, keys=False)
    symbol = ccxt_symbol(venue, "BTC")
    try:
        await ex.load_markets()
        await asyncio.wait_for(ex.watch_order_book(symbol), 10)
        emu.faults.arm("ws_silent", venue=venue, duration_s=1.5)
        await asyncio.sleep(0.3)  # let anything already in flight arrive
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ex.watch_order_book(symbol), 0.8)
        assert emu.core.venues and any(c.venue == venue for c in emu._running.dialects[venue].hub)  # still connected
        book = await asyncio.wait_for(ex.watch_order_book(symbol), 10)  # updates resume after the silence
        assert book["bids"]
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_sequence_gap_binance_ccxt_notices(emu) -> None:
    ex = ccxt_client(emu, "binanceusdm", pro=True, keys=False)
    symbol = ccxt_symbol("binanceusdm", "BTC")
    try:
        await ex.load_markets()
        await asyncio.wait_for(ex.watch_order_book(symbol), 10)
        emu.faults.arm("ws_sequence_gap", venue="binanceusdm")
        with pytest.raises(ccxt.ChecksumError):  # pu != previous u: ccxt refuses the book
            for _ in range(5):
                await asyncio.wait_for(ex.watch_order_book(symbol), 10)
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_sequence_gap_bybit_update_id_jumps_and_a_delta_is_lost(emu) -> None:
    url = emu.ws_urls["bybit"] + "/v5/public/linear"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"], "req_id": "1"})
        ids: list[int] = []
        while len(ids) < 2:
            msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            if msg.get("topic"):
                ids.append(msg["data"]["u"])
        emu.faults.arm("ws_sequence_gap", venue="bybit")
        while len(ids) < 5:
            msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            if msg.get("topic"):
                ids.append(msg["data"]["u"])
    steps = [b - a for a, b in itertools.pairwise(ids)]
    assert steps.count(2) == 1 and steps.count(1) == len(steps) - 1


def test_control_port_arms_lists_and_clears_faults(emu) -> None:
    def call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(emu.control_url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, armed = call("POST", "/_emulator/faults", {"kind": "http_5xx", "venue": "bybit", "count": 2, "status": 502})
    assert status == 200 and armed["armed"]["remaining"] == 2 and armed["armed"]["params"] == {"status": 502}
    answer = requests.get(emu.base_urls["bybit"] + "/v5/market/time", timeout=5)
    assert answer.status_code == 502
    status, state = call("GET", "/_emulator/state")
    assert state["armed_faults"][0]["remaining"] == 1 and state["ports"]["bybit"] == emu.ports["bybit"]
    status, cleared = call("DELETE", "/_emulator/faults")
    assert cleared["armed"] == []
    status, error = call("POST", "/_emulator/faults", {"kind": "meteor"})
    assert status == 400 and "kind" in error["error"]
    status, error = call("POST", "/_emulator/faults", {"kind": "http_5xx", "venue": "okx"})
    assert status == 400 and "venue" in error["error"]


@pytest.mark.anyio
async def test_documented_rate_limits_when_enforced() -> None:
    with start_emulator(["bybit", "hyperliquid"], rate_limits=True) as limited:
        ex = ccxt_client(limited, "bybit")
        try:
            await ex.load_markets()
            book = await ex.fetch_order_book("BTC/USDT:USDT", 5)
            price = float(ex.price_to_precision("BTC/USDT:USDT", book["bids"][0][0] * 0.9))
            sent = [ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.001, price, {"clientOrderId": f"rl-{i}"})
                    for i in range(14)]  # 10 orders a second per account
            answers = await asyncio.gather(*sent, return_exceptions=True)
        finally:
            await ex.close()
        refused = [a for a in answers if isinstance(a, ccxt.RateLimitExceeded)]
        assert len(refused) == 4 and len(limited.core.executor.orders("bybit")) == 10
        hl = ccxt_client(limited, "hyperliquid")
        try:
            weights = 0
            with pytest.raises(ccxt.RateLimitExceeded):  # 1200 weight a minute; meta weighs 20
                while weights <= 1200:
                    await hl.publicPostInfo({"type": "meta"})
                    weights += 20
            assert weights == 1200
        finally:
            await hl.close()
