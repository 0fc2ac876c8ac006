"""Bybit market data: recorded stream messages -> quotes/books; a silent stream is noticed and the
connection is re-made (local ``websockets`` server on 127.0.0.1 replaying recorded frames)."""

from __future__ import annotations

import json
from decimal import Decimal

import anyio
import pytest
from fake_bybit import FakeBybitSession
from payloads import payload

from adapters.bybit.http import BybitHttp
from adapters.bybit.market_data import BybitMarketData
from adapters.markets import VenueMarket
from bot.core.domain import Instrument

D = Decimal
NT = "nautilus/bybit/test_data/"
BTC = VenueMarket(instrument=Instrument(
    venue="bybit", symbol="BTC", venue_symbol="BTCUSDT", tick_size=D("0.5"), lot_size_base=D("0.001"),
    min_size_base=D("0.001"), funding_interval_hours=D(8)))


def make(ws_url: str = "ws://127.0.0.1:1", **kw: object) -> BybitMarketData:
    http = BybitHttp(credentials=None)
    http._session = FakeBybitSession()
    return BybitMarketData(http, {"BTC": BTC}, ws_url=ws_url, **kw)


def test_ticker_snapshot_then_delta_keeps_the_merged_quote() -> None:
    md = make()
    snap = payload(NT + "ws_ticker_linear.json")
    md.handle(snap)
    (q,) = md.quotes()
    assert (q.symbol, q.rate_per_interval, q.interval_hours, q.mark_price) == ("BTC", D("-0.000212"), D(8), D("17217.33"))
    md.handle({"topic": "tickers.BTCUSDT", "type": "delta", "ts": snap["ts"] + 100,
               "data": {"symbol": "BTCUSDT", "fundingRate": "0.0001"}})  # deltas carry changed fields only
    (q,) = md.quotes()
    assert (q.rate_per_interval, q.mark_price, q.ts_ms) == (D("0.0001"), D("17217.33"), snap["ts"] + 100)
    assert md.quote("BTC") is q and md.quote("ETH") is None  # by canonical symbol (the book mark check)


def test_books_and_gap_detection_and_absurd_data_dropped() -> None:
    md = make()
    md.handle(payload(NT + "ws_orderbook_snapshot.json"))
    md.handle(payload(NT + "ws_orderbook_delta.json"))
    book = md.book("BTC")
    assert book is not None and book.best_bid == D("27450.00") and book.best_ask == D("27451.50")
    md.handle(payload(NT + "ws_orderbook_delta.json"))  # replayed: a sequence gap
    assert md.needs_resubscribe() and md.book("BTC") is None and "after u=" in md.dropped[-1]
    md.handle(dict(payload(NT + "ws_ticker_linear.json"), data={"symbol": "BTCUSDT", "fundingRate": "NaN",
                                                              "nextFundingTime": "1673280000000", "markPrice": "1"}))
    assert md.quotes() == [] and "not finite" in md.dropped[-1]


@pytest.mark.anyio
async def test_silent_stream_triggers_reconnect_and_rest_resync() -> None:
    import websockets

    frames = [json.dumps(payload(NT + "ws_ticker_linear.json")), json.dumps(payload(NT + "ws_orderbook_snapshot.json"))]
    connections = 0

    async def venue(ws: websockets.ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()  # the subscribe request
        if connections == 1:  # later connections stay silent: only the REST resync can refresh data
            for frame in frames:
                await ws.send(frame)
        await anyio.sleep(30)  # then silent but alive

    async with websockets.serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        md = make(f"ws://127.0.0.1:{port}", stale_after_s=0.3)
        updates: list[tuple[str, str, str | None]] = []
        md.on_update = lambda venue, symbol: updates.append(
            (venue, symbol, None if md.book(symbol) is None else str(md.book(symbol).best_bid)))  # type: ignore[union-attr]
        with anyio.move_on_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(md.run)
                while md.reconnects < 1 or connections < 2:
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
    assert md.reconnects >= 1 and connections >= 2
    book = md.book("BTC")  # the REST resync (fake session) refreshed the book after the silence
    assert book is not None and book.best_bid == D("49990")
    (q,) = md.quotes()
    assert (q.symbol, q.mark_price) == ("BTC", D("50000"))
    # the listener heard of the resynced book too (the ranking and the market trigger rely on it)
    assert ("bybit", "BTC", "49990") in updates, updates
