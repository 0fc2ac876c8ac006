"""The Bybit v5 dialect of the venue emulator, driven by the UNMODIFIED ccxt (async + pro) and pybit clients."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import ccxt
import pytest
from pybit.exceptions import InvalidRequestError

from paper.emulator import start_emulator
from paper.emulator.clients import ccxt_client, pybit_http, pybit_websocket

BTC = "BTC/USDT:USDT"


@pytest.fixture(scope="module")
def emu():
    handle = start_emulator(["bybit"], seed=3)
    yield handle
    handle.stop()


@pytest.mark.anyio
async def test_ccxt_bybit_trades_and_reads_back_everything(emu) -> None:
    ex = ccxt_client(emu, "bybit")
    try:
        markets = await ex.load_markets()
        assert {BTC, "SOL/USDT:USDT"} <= set(markets)
        assert markets[BTC]["precision"]["amount"] == 0.001 and markets[BTC]["limits"]["cost"]["min"] == 5
        rate = await ex.fetch_funding_rate(BTC)
        assert rate["interval"] == "8h" and rate["fundingTimestamp"] % (8 * 3_600_000) == 0
        assert (await ex.fetch_funding_rate("SOL/USDT:USDT"))["interval"] == "4h"  # a per-symbol 4h interval
        tickers = await ex.fetch_tickers([BTC, "ETH/USDT:USDT"])
        assert tickers[BTC]["bid"] < tickers[BTC]["ask"]
        book = await ex.fetch_order_book(BTC, 25)
        assert len(book["bids"]) == 20 and book["bids"][0][0] < book["asks"][0][0]

        price = round(book["asks"][0][0] * 1.002, 1)
        created = await ex.create_order(BTC, "limit", "buy", 0.01, price, {"timeInForce": "IOC", "clientOrderId": "cb-1"})
        assert created["id"] and created["status"] is None  # bybit answers ids only (LIVE.md)
        raw = await ex.privateGetV5OrderRealtime({"category": "linear", "orderLinkId": "cb-1"})
        row = raw["result"]["list"][0]
        assert (row["orderStatus"], row["cumExecQty"], row["orderLinkId"]) == ("Filled", "0.01", "cb-1")
        order = await ex.fetch_order(created["id"], BTC, {"acknowledged": True})
        assert order["status"] == "closed" and order["filled"] == 0.01 and order["clientOrderId"] == "cb-1"

        resting = await ex.create_order(BTC, "limit", "buy", 0.01, round(book["bids"][0][0] * 0.95, 1),
                                        {"clientOrderId": "cb-2"})
        open_orders = await ex.fetch_open_orders(BTC)
        assert [o["clientOrderId"] for o in open_orders] == ["cb-2"]
        canceled = await ex.cancel_order(resting["id"], BTC)
        assert canceled["id"] == resting["id"]
        assert (await ex.fetch_open_orders(BTC)) == []
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order(resting["id"], BTC)

        positions = await ex.fetch_positions([BTC])
        assert positions[0]["side"] == "long" and positions[0]["contracts"] == 0.01
        balance = await ex.fetch_balance()
        assert 0 < balance["USDT"]["total"] < 100_000  # paid a taker fee
        trades = await ex.fetch_my_trades(BTC)
        assert trades[0]["order"] == created["id"] and trades[0]["fee"]["cost"] > 0
        assert await ex.fetch_funding_history(BTC) == []  # nothing settled yet
    finally:
        await ex.close()


@pytest.mark.anyio
async def test_ccxt_bybit_wrong_secret_and_key_are_authentication_errors(emu) -> None:
    for config in ({"secret": "not-the-secret"}, {"apiKey": "unknown-key"}):
        ex = ccxt_client(emu, "bybit", **config)
        try:
            await ex.load_markets()  # public: fine
            with pytest.raises(ccxt.AuthenticationError):
                await ex.fetch_positions([BTC])
        finally:
            await ex.close()


@pytest.mark.anyio
async def test_ccxt_bybit_account_setup_not_modified_answers(emu) -> None:
    ex = ccxt_client(emu, "bybit")
    try:
        await ex.load_markets()
        await ex.set_leverage(5, BTC)
        with pytest.raises(ccxt.BadRequest):  # 110043 leverage not modified: the adapter treats it as success
            await ex.set_leverage(5, BTC)
        with pytest.raises(ccxt.ExchangeError, match="110025"):
            await ex.set_position_mode(False, BTC)  # already one-way
    finally:
        await ex.close()


def test_pybit_http_orders_positions_and_refusals(emu) -> None:
    session = pybit_http(emu)
    ticker = session.get_tickers(category="linear", symbol="ETHUSDT")["result"]["list"][0]
    assert ticker["fundingIntervalHour"] == "8" and "openInterestValue" in ticker
    ask = Decimal(ticker["ask1Price"])
    answer = session.place_order(category="linear", symbol="ETHUSDT", side="Buy", orderType="Limit", qty="0.5",
                                 price=str((ask * Decimal("1.002")).quantize(Decimal("0.01"))), timeInForce="IOC",
                                 orderLinkId="pb-1")
    assert answer["retCode"] == 0 and answer["result"]["orderLinkId"] == "pb-1"
    with pytest.raises(InvalidRequestError) as dup:
        session.place_order(category="linear", symbol="ETHUSDT", side="Buy", orderType="Limit", qty="0.5",
                            price=str(ask), timeInForce="IOC", orderLinkId="pb-1")
    assert dup.value.status_code == 110072
    history = session.get_order_history(category="linear", orderLinkId="pb-1")["result"]["list"]
    assert history[0]["orderStatus"] == "Filled" and history[0]["tpslMode"] == ""
    position = session.get_positions(category="linear", symbol="ETHUSDT")["result"]["list"][0]
    assert (position["side"], position["size"]) == ("Buy", "0.5")
    with pytest.raises(InvalidRequestError) as reduce_only:
        session.place_order(category="linear", symbol="ETHUSDT", side="Buy", orderType="Limit", qty="0.5",
                            price=str(ask), timeInForce="IOC", orderLinkId="pb-2", reduceOnly=True)
    assert reduce_only.value.status_code == 110017
    executions = session.get_executions(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert executions and executions[0]["orderLinkId"] == "pb-1" and executions[0]["execType"] == "Trade"
    wallet = session.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
    assert Decimal(wallet["totalWalletBalance"]) < Decimal(100_000)
    bad = pybit_http(emu, api_secret="wrong")
    with pytest.raises(InvalidRequestError) as sign:
        bad.get_positions(category="linear", symbol="ETHUSDT")
    assert sign.value.status_code == 10004


def _connected(ws, name: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ws.is_connected():
        if time.monotonic() > deadline:
            pytest.fail(f"pybit's {name} websocket to the emulator is not connected after {timeout_s} s")
        time.sleep(0.05)


def test_pybit_websocket_book_ticker_and_private_order_topics(emu) -> None:
    got: list[dict] = []
    lock = threading.Lock()

    def keep(message: dict) -> None:
        with lock:
            got.append(message)

    public = pybit_websocket(emu, "linear")
    private = pybit_websocket(emu, "private")
    try:
        # pybit's subscribe waits forever for a dropped connection: fail with a message instead of hanging.
        _connected(public, "public")
        public.orderbook_stream(50, "BTCUSDT", keep)
        _connected(public, "public")
        public.ticker_stream("BTCUSDT", keep)
        _connected(private, "private")
        private.order_stream(keep)
        _connected(private, "private")
        private.wallet_stream(keep)
        # pybit's *_stream() returns once the request is sent: wait until the emulator holds both
        # private topics, or an order placed at once may find no subscriber yet (a loaded machine)
        hub = emu._running.dialects["bybit"].hub
        registered = time.monotonic() + 30
        while not any(c.kind == "private" and {"order", "wallet"} <= c.topics for c in list(hub)):
            if time.monotonic() > registered:
                pytest.fail("the emulator never registered the private order/wallet subscriptions")
            time.sleep(0.05)
        session = pybit_http(emu)
        deadline = time.monotonic() + 30  # generous: a loaded CI machine starts the streams slowly
        while time.monotonic() < deadline:
            with lock:
                topics = {m.get("topic") for m in got}
            if {"orderbook.50.BTCUSDT", "tickers.BTCUSDT"} <= topics:
                break
            time.sleep(0.1)
        bid = Decimal(session.get_orderbook(category="linear", symbol="BTCUSDT")["result"]["b"][0][0])
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.001",
                            price=str((bid * Decimal("0.9")).quantize(Decimal("0.1"))), timeInForce="GTC", orderLinkId="ws-1")
        deadline = time.monotonic() + 30  # its own wait: the order's topics, however long the first took
        while time.monotonic() < deadline:
            with lock:
                if {"order", "wallet"} <= {m.get("topic") for m in got}:
                    break
            time.sleep(0.1)
    finally:
        public.exit()
        private.exit()
    with lock:
        books = [m for m in got if m.get("topic") == "orderbook.50.BTCUSDT"]
        orders = [m for m in got if m.get("topic") == "order"]
    assert books and books[0]["data"]["b"] and books[0]["data"]["a"]
    assert any(m.get("topic") == "tickers.BTCUSDT" and m["data"]["fundingRate"] for m in got)
    assert orders and orders[0]["data"][0]["orderLinkId"] == "ws-1" and orders[0]["data"][0]["orderStatus"] == "New"
    assert any(m.get("topic") == "wallet" and m["data"][0]["accountType"] == "UNIFIED" for m in got)


def test_pybit_websocket_survives_an_answer_before_subscribe_recorded_it(emu) -> None:
    """pybit's subscribe() sends, then records the req_id and callback: an answer handled in between
    killed the socket (KeyError in pybit's receive thread, no reconnect). Widen that window to 0.3 s."""
    got: list[dict] = []
    public = pybit_websocket(emu, "linear")
    try:
        _connected(public, "public")
        send = public.ws.send

        def send_then_stall(data, *args, **kwargs):
            sent = send(data, *args, **kwargs)
            if '"op": "subscribe"' in data:
                time.sleep(0.3)  # the emulator answers and pushes the snapshot meanwhile
            return sent

        public.ws.send = send_then_stall
        public.orderbook_stream(50, "BTCUSDT", got.append)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline and public.is_connected():
            time.sleep(0.05)
        assert public.is_connected(), "pybit's socket closed after the subscription was answered"
        assert got and got[0]["topic"] == "orderbook.50.BTCUSDT" and got[0]["data"]["b"]
    finally:
        public.exit()


@pytest.mark.anyio
async def test_ccxt_pro_bybit_order_book_and_ticker_streams(emu) -> None:
    ex = ccxt_client(emu, "bybit", pro=True, keys=False)
    try:
        await ex.load_markets()
        first = await ex.watch_order_book(BTC)
        second = await ex.watch_order_book(BTC)
        assert second["bids"][0][0] < second["asks"][0][0] and len(first["bids"]) >= 20
        ticker = await ex.watch_ticker(BTC)
        assert ticker["symbol"] == BTC and ticker["info"]["fundingRate"]
    finally:
        await ex.close()
