"""Order rehearsals (``live.rehearse_orders``; adapters/rehearsal.py, bot/rehearsals.py):
an order built and signed by the sending code, never sent, in the busy-polling loop's idle time."""

from __future__ import annotations

import asyncio
import importlib.util
import selectors
import socket
import time
from decimal import Decimal as D

import anyio
import pytest

from adapters.rehearsal import (
    REHEARSING,
    Rehearsed,
    guard_requests_session,
    install_rehearsal_guard,
    rehearse,
    rehearse_call,
)
from adapters.registry import LiveVenueConfig, build_live_venue
from bot.core.busy_poll import BusyPollSelector, attach_idle_task, busy_poll_loop, detach_idle_task
from bot.core.domain import OrderRequest, OrderSide
from bot.rehearsals import OrderRehearsals
from tests.test_adapter_emulator_contract import _env

pytest.importorskip("ccxt")


class FakeExchange:
    """A ccxt-like instance whose ``fetch`` records what it would have sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def fetch(self, url: str, *_args: object) -> dict:
        self.sent.append(url)
        return {"id": "1"}

    async def create_order(self, *, suspend_first: bool = False) -> dict:
        if suspend_first:
            await asyncio.sleep(0)
        return await self.fetch("https://venue.example/order")


def test_a_guarded_fetch_sends_nothing_while_rehearsing_and_everything_otherwise() -> None:
    exchange = FakeExchange()
    install_rehearsal_guard(exchange)
    install_rehearsal_guard(exchange)  # once is enough: not wrapped twice
    assert rehearse(exchange.create_order) is True
    assert exchange.sent == []
    assert REHEARSING.get() is False  # reset after the rehearsal
    assert asyncio.run(exchange.create_order()) == {"id": "1"}
    assert exchange.sent == ["https://venue.example/order"]


def test_a_rehearsal_that_suspends_before_its_request_is_closed_there() -> None:
    exchange = FakeExchange()
    install_rehearsal_guard(exchange)
    reached: list[str] = []

    async def create_order() -> None:
        await exchange.create_order(suspend_first=True)
        reached.append("after")

    async def main() -> bool:
        ok = rehearse(create_order)
        await asyncio.sleep(0.01)  # nothing of it runs later on the loop
        return ok

    assert asyncio.run(main()) is False
    assert exchange.sent == [] and reached == []


class FakeRequestsSession:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, request: str, **_kwargs: object) -> str:
        self.sent.append(request)
        return "response"


def test_a_guarded_requests_session_sends_nothing_while_rehearsing() -> None:
    session = FakeRequestsSession()
    guard_requests_session(session)
    guard_requests_session(session)
    assert rehearse_call(lambda: session.send("order")) is True
    assert rehearse_call(lambda: None) is False  # no request on the path: not a rehearsal of one
    assert session.sent == [] and REHEARSING.get() is False
    assert session.send("order") == "response" and session.sent == ["order"]


def test_a_rehearsal_is_invisible_to_a_worker_thread_sending_meanwhile() -> None:
    session = FakeRequestsSession()
    guard_requests_session(session)

    async def main() -> None:
        # the context a worker gets is copied from the task, where no rehearsal is ever set
        await anyio.to_thread.run_sync(session.send, "real")

    anyio.run(main)
    assert session.sent == ["real"]


def test_rehearsed_is_not_an_error_anything_catches() -> None:
    assert not issubclass(Rehearsed, Exception)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["binanceusdm", "hyperliquid", "okx"])
async def test_rehearsals_reach_the_request_on_the_real_path_and_the_venue_gets_no_order(name: str, tmp_path) -> None:
    if importlib.util.find_spec(f"paper.emulator.{name}") is None:
        pytest.skip(f"the emulator in this checkout does not speak {name} yet")
    from paper.emulator import start_emulator

    with start_emulator([name], state_path=tmp_path / "v.sqlite", manual_clock=True) as emu:
        venue = await build_live_venue(name, LiveVenueConfig(base_url=emu.base_urls[name]), _env(emu, name),
                                       symbols=["BTC"], max_slippage_bps=D(50))
        try:
            await venue.market.resync_book(venue.market._markets["BTC"])
            exchange = venue.market._ex
            tokens = exchange.throttler.config.get("tokens")
            inner = exchange.fetch  # the guard: a request it lets through is stamped
            sent_urls: list[str] = []
            exchange.fetch = lambda url, *a, **k: (sent_urls.append(url), inner(url, *a, **k))[1]
            results = [venue.executor.rehearse_order("BTC") for _ in range(25)]
            assert results == [True] * 25  # the whole path ran, up to the request...
            assert sent_urls and all(url for url in sent_urls)  # ...which reached the guard...
            assert emu.call(lambda: emu.core.executor.orders(name)) == []  # ...and never the venue
            assert exchange.throttler.config.get("tokens") == tokens  # no rate budget spent
            assert venue.executor.rehearse_order("NOPE") is None  # unknown symbol: nothing to do
            size = venue.market.instruments()[0].min_size_base * 10
            report = await venue.executor.place_order(OrderRequest("real-1", name, "BTC", OrderSide.BUY, size))
            assert report.filled_base == size  # a real order after rehearsals goes out as usual
            assert len(emu.call(lambda: emu.core.executor.orders(name))) == 1
        finally:
            await venue.close()


@pytest.mark.anyio
async def test_bybit_rehearsals_reach_pybits_send_and_the_venue_gets_no_order(tmp_path) -> None:
    pytest.importorskip("pybit")
    from paper.emulator import start_emulator

    with start_emulator(["bybit"], state_path=tmp_path / "v.sqlite", manual_clock=True) as emu:
        venue = await build_live_venue("bybit", LiveVenueConfig(base_url=emu.base_urls["bybit"]), _env(emu, "bybit"),
                                       symbols=["BTC"], max_slippage_bps=D(50))
        try:
            await venue.market.resync_rest()
            client = venue.executor._http._session.client
            guard = client.send
            bodies: list[str] = []
            signed: list[bool] = []
            client.send = lambda request, **kw: (bodies.append(str(request.body)),
                                                 signed.append(bool(request.headers.get("X-BAPI-SIGN"))),
                                                 guard(request, **kw))[2]
            assert [venue.executor.rehearse_order("BTC") for _ in range(10)] == [True] * 10
            assert len(bodies) == 10 and all("orderLinkId" in body for body in bodies)  # built...
            assert signed == [True] * 10  # ...and signed...
            assert emu.call(lambda: emu.core.executor.orders("bybit")) == []  # ...never sent
            assert venue.executor.rehearse_order("NOPE") is None
            size = venue.market.instruments()[0].min_size_base * 10
            report = await venue.executor.place_order(OrderRequest("real-1", "bybit", "BTC", OrderSide.BUY, size))
            assert report.filled_base == size  # a real order after rehearsals goes out as usual
            assert len(emu.call(lambda: emu.core.executor.orders("bybit"))) == 1
        finally:
            await venue.close()


def test_the_idle_task_runs_between_empty_polls_at_its_cadence_and_stops_when_it_raises() -> None:
    selector = BusyPollSelector()
    left, right = socket.socketpair()
    selector.register(left, selectors.EVENT_READ)
    try:
        runs: list[float] = []
        selector.idle_task, selector.idle_interval_s = lambda: runs.append(time.monotonic()), 0.01
        selector.select(0.1)
        assert 5 <= len(runs) <= 11  # every 10 ms at most over 100 ms
        assert all(b - a >= 0.0099 for a, b in zip(runs, runs[1:]))
        right.send(b"x")
        count = len(runs)
        assert selector.select(5.0)  # something ready: returned at once
        left.recv(1)
        selector.idle_task = lambda: 1 / 0
        selector.select(0.03)
        assert selector.idle_task is None  # stopped, and the loop went on
        assert len(runs) >= count
    finally:
        selector.close()
        left.close()
        right.close()


def test_attach_works_only_on_a_busy_polling_loop() -> None:
    def task() -> None:
        return None

    async def attached() -> tuple[bool, object, object]:
        ok = attach_idle_task(task)
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        before = getattr(selector, "idle_task", None)
        detach_idle_task(task)
        return ok, before, getattr(selector, "idle_task", None)

    loop = busy_poll_loop()
    try:
        assert loop.run_until_complete(attached()) == (True, task, None)
    finally:
        loop.close()
    assert asyncio.run(attached())[0] is False  # the default loop sleeps when idle: nothing attached


class FakeExecutor:
    def __init__(self, venue: str, outcome: bool | None = True) -> None:
        self.venue, self.outcome, self.calls = venue, outcome, []

    def rehearse_order(self, symbol: str) -> bool | None:
        self.calls.append(symbol)
        return self.outcome


def test_rehearsals_take_each_venue_and_symbol_in_turn() -> None:
    a, b = FakeExecutor("a"), FakeExecutor("b", outcome=None)
    rehearsals = OrderRehearsals([a, object(), b], ["BTC", "ETH"])  # an executor without rehearse_order: skipped
    assert rehearsals.targets == 4
    for _ in range(6):
        rehearsals.step()
    assert a.calls == ["BTC", "ETH", "BTC", "ETH"] and b.calls == ["BTC", "ETH"]
    assert (rehearsals.runs, rehearsals.misses, rehearsals.dropped) == (4, 2, 0)


def test_a_target_whose_path_suspends_is_dropped() -> None:
    a, b = FakeExecutor("a"), FakeExecutor("b", outcome=False)
    rehearsals = OrderRehearsals([a, b], ["BTC"])
    for _ in range(5):
        rehearsals.step()
    assert b.calls == ["BTC"] and a.calls == ["BTC"] * 4
    assert (rehearsals.targets, rehearsals.dropped, rehearsals.runs) == (1, 1, 4)


def test_a_target_that_raises_is_dropped_and_the_others_go_on() -> None:
    class Broken(FakeExecutor):
        def rehearse_order(self, symbol: str) -> bool | None:
            raise RuntimeError("boom")

    a = FakeExecutor("a")
    rehearsals = OrderRehearsals([Broken("b"), a], ["BTC"])
    for _ in range(3):
        rehearsals.step()
    assert a.calls == ["BTC"] * 2 and (rehearsals.targets, rehearsals.dropped) == (1, 1)


def test_rehearsals_run_in_the_loops_idle_time_until_cancelled() -> None:
    executor = FakeExecutor("a")
    rehearsals = OrderRehearsals([executor], ["BTC"])

    async def main() -> tuple[int, object]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(rehearsals.run)
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        return len(executor.calls), asyncio.get_running_loop()._selector.idle_task  # type: ignore[attr-defined]

    calls, left_attached = anyio.run(main, backend_options={"loop_factory": busy_poll_loop})
    assert 10 <= calls <= 51  # every 2 ms at most
    assert left_attached is None
    assert anyio.run(OrderRehearsals([executor], ["BTC"]).run) is None  # a sleeping loop: returns at once


def test_rehearsal_terms_are_none_while_the_book_is_absurd_or_missing() -> None:
    """Found by the live torture with busy_poll: an absurd-book fault dropped rehearsals for good."""
    from adapters.errors import AbsurdVenueData
    from adapters.markets import VenueMarket
    from adapters.rehearsal import REHEARSAL_CLIENT_ID, rehearsal_terms
    from bot.core.domain import BookLevel, Instrument, OrderBook

    inst = Instrument(venue="v", symbol="BTC", venue_symbol="BTCUSDT", tick_size=D("0.1"), lot_size_base=D("0.001"),
                      min_size_base=D("0.001"), funding_interval_hours=D(8), min_notional_usd=D(100))
    market = VenueMarket(instrument=inst)
    book = OrderBook("v", "BTC", (BookLevel(D("49999.9"), D(1)),), (BookLevel(D("50000"), D(1)),), 0)

    def absurd(symbol: str) -> OrderBook:
        raise AbsurdVenueData("v", "book mid far from the mark")

    assert rehearsal_terms("v", {"BTC": market}, absurd, "BTC", D(10)) is None
    assert rehearsal_terms("v", {"BTC": market}, lambda s: None, "BTC", D(10)) is None
    assert rehearsal_terms("v", {"BTC": market}, lambda s: book, "ETH", D(10)) is None
    _market, request, price = rehearsal_terms("v", {"BTC": market}, lambda s: book, "BTC", D(10))
    assert request.client_order_id == REHEARSAL_CLIENT_ID and request.side is OrderSide.BUY
    assert request.size_base == D("0.002")  # the 100 USD minimum notional at 50000, in whole lots
    assert price == D("50000")  # its own limit: the best ask
