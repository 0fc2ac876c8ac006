"""BybitExecutor: the executor contract and the unknown-outcome protocol, on a fake pybit session.

The same contract runs against the local venue emulator over the real wire in
tests/test_adapter_emulator_contract.py (when the emulator is available).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from executor_contract import ContractHarness, ExecutorContract
from fake_bybit import FakeBybitSession

from adapters.bybit.execution import BybitExecutor
from adapters.bybit.http import BybitHttp
from adapters.errors import TemporaryVenueError
from adapters.markets import VenueMarket
from bot.core.domain import Instrument, OrderRequest, OrderSide, OrderStatus, OrderType

D = Decimal
BTC = VenueMarket(instrument=Instrument(
    venue="bybit", symbol="BTC", venue_symbol="BTCUSDT", tick_size=D("0.1"), lot_size_base=D("0.001"),
    min_size_base=D("0.001"), funding_interval_hours=D(8), min_notional_usd=D(5)))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def make_executor(fake: FakeBybitSession, clock: Clock | None = None) -> BybitExecutor:
    http = BybitHttp(credentials=None, base_url=None)
    http._session = fake  # the fake stands in for pybit's HTTP session
    return BybitExecutor(http, markets={"BTC": BTC}, max_slippage_bps=D(10), now_ms=clock or Clock())


class TestBybitExecutorContract(ExecutorContract):
    @pytest.fixture
    def harness(self) -> ContractHarness:
        fake = FakeBybitSession()
        clock = Clock()
        executor = make_executor(fake, clock)
        clock.now += 60_000  # running for a minute: no pre-restart send can still be in flight
        return ContractHarness(executor=executor, venue="bybit", symbol="BTC", size_base=D("0.5"),
                               resting_buy_price=D("40000"))


@pytest.mark.anyio
async def test_market_order_is_an_ioc_limit_bounded_by_the_slippage_cap() -> None:
    fake = FakeBybitSession(asks=[(D("50010"), D("0.2")), (D("50100"), D("5"))])
    ex = make_executor(fake)
    report = await ex.place_order(OrderRequest("c1", "bybit", "BTC", OrderSide.BUY, D("1")))
    sent = fake.orders["c1"]
    assert (sent["timeInForce"], sent["price"]) == ("IOC", "50060.0")  # 50010 x 1.001 = 50060.01, rounded DOWN
    assert report.status is OrderStatus.CANCELED and report.filled_base == D("0.2")  # 50100 is beyond the cap


@pytest.mark.anyio
async def test_timeout_after_execution_is_resolved_by_lookup_not_resent() -> None:
    fake = FakeBybitSession(faults=["timeout_after_execute"])
    ex = make_executor(fake)
    report = await ex.place_order(OrderRequest("c2", "bybit", "BTC", OrderSide.BUY, D("0.5")))
    assert report.status is OrderStatus.FILLED and report.filled_base == D("0.5")
    assert fake.calls.count("place_order") == 1 and fake.position == D("0.5")


@pytest.mark.anyio
async def test_success_without_order_id_is_looked_up() -> None:
    fake = FakeBybitSession(faults=["no_order_id"])
    report = await make_executor(fake).place_order(OrderRequest("c3", "bybit", "BTC", OrderSide.SELL, D("0.5")))
    assert report.status is OrderStatus.FILLED and fake.position == D("-0.5")


@pytest.mark.anyio
async def test_not_found_is_unknown_until_the_recv_window_has_passed() -> None:
    clock = Clock()
    fake = FakeBybitSession()
    ex = make_executor(fake, clock)
    with pytest.raises(TemporaryVenueError, match="may still arrive"):
        await ex.get_order("bybit", "never-sent")  # process just started: a pre-restart send may be in flight
    clock.now += 7_001  # recv window 5 s + 2 s skew allowance
    assert await ex.get_order("bybit", "never-sent") is None


@pytest.mark.anyio
async def test_duplicate_link_id_from_the_venue_is_looked_up() -> None:
    fake = FakeBybitSession()
    first = await make_executor(fake).place_order(OrderRequest("c4", "bybit", "BTC", OrderSide.BUY, D("0.5")))
    # a fresh executor (a restart) re-sends the same id: the venue says 110072, we look it up
    again = await make_executor(fake).place_order(OrderRequest("c4", "bybit", "BTC", OrderSide.BUY, D("0.5")))
    assert again.filled_base == first.filled_base and fake.position == D("0.5")
    assert [f.trade_id for f in again.fills] == [f.trade_id for f in first.fills]


@pytest.mark.anyio
async def test_limit_price_rounded_conservatively() -> None:
    fake = FakeBybitSession()
    ex = make_executor(fake)
    await ex.place_order(OrderRequest("c5", "bybit", "BTC", OrderSide.SELL, D("0.5"), OrderType.LIMIT,
                                      limit_price=D("49980.05")))
    assert fake.orders["c5"]["price"] == "49980.1"  # a sell bound rounds UP, never past the cap


@pytest.mark.anyio
async def test_a_priced_limit_order_reads_no_book_a_market_order_does() -> None:
    """A LIMIT order is bounded by its own price: no book read (here the feed has none, so the read
    would be a REST round trip before the order); a MARKET order still needs the book."""
    fake = FakeBybitSession()
    reads: list[dict] = []
    original = fake.get_orderbook

    def get_orderbook(**p):
        reads.append(p)
        return original(**p)

    fake.get_orderbook = get_orderbook  # type: ignore[method-assign]
    ex = make_executor(fake)
    await ex.place_order(OrderRequest("c7", "bybit", "BTC", OrderSide.BUY, D("0.5"), OrderType.LIMIT,
                                      limit_price=D("50050.05")))
    assert fake.orders["c7"]["price"] == "50050.0" and reads == []
    await ex.place_order(OrderRequest("c8", "bybit", "BTC", OrderSide.BUY, D("0.5")))
    assert len(reads) == 1


@pytest.mark.anyio
async def test_an_order_with_more_executions_than_one_page_reports_all_of_them() -> None:
    """Bybit pages executions (at most 100 a page): an IOC that swept 150 small levels must come back
    with 150 fills, or the engine would see "filled 0.15, fills 0.1" (an answer it refuses)."""
    fake = FakeBybitSession(asks=[(D("50010") + D("0.1") * i, D("0.001")) for i in range(150)])
    ex = make_executor(fake)
    report = await ex.place_order(OrderRequest("many-1", "bybit", "BTC", OrderSide.BUY, D("0.15")))
    assert report.status is OrderStatus.FILLED and report.filled_base == D("0.15")
    assert len(report.fills) == 150 and len({f.trade_id for f in report.fills}) == 150
    assert sum((f.size_base for f in report.fills), D(0)) == report.filled_base


@pytest.mark.anyio
async def test_an_order_request_is_begun_in_its_worker_before_the_loop_runs_anything_else() -> None:
    """An order's worker thread starts the request before the event loop goes on to other work (the
    other leg, stream messages): queued to a worker that waits for the loop to sleep, a Bybit order
    sat 3-6 ms behind the other leg's preparation (bench/live.py)."""
    import functools
    import time

    import anyio

    from adapters.bybit.http import OrderHandoff

    fake = FakeBybitSession()
    started_at: list[float] = []

    def place_order(**params):
        started_at.append(time.perf_counter())
        return {"retCode": 0, "result": {"orderId": "1"}}

    fake.place_order = place_order  # type: ignore[method-assign]
    ex = make_executor(fake)
    ex._http._orders = OrderHandoff(wait_s=30.0)  # the bound only; it returns once the worker began
    other_work_at: list[float] = []

    async def other_work() -> None:
        other_work_at.append(time.perf_counter())

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(ex._http.call, "place_order", order=True, category="linear"))
        tg.start_soon(other_work)
    assert started_at and other_work_at
    assert started_at[0] < other_work_at[0]


@pytest.mark.anyio
async def test_the_loop_goes_on_only_once_the_order_request_is_written() -> None:
    """The loop waits (releasing the GIL) until the worker's request is written, not only begun: it
    took the GIL back at the next switch interval and the two threads traded it until pybit's
    request was out (bench/live.py: a Bybit leg up to 3.6 ms from handed to its socket write)."""
    import functools
    import time

    import anyio

    from adapters.bybit import http

    written_at: list[float] = []

    def place_order(**params):
        time.sleep(0.02)  # building and writing the request (GIL released here: the loop could run)
        written_at.append(time.perf_counter())
        http._written.callback()  # what the session's connection does once the request is written
        time.sleep(0.05)  # waiting for the venue's answer
        return {"retCode": 0, "result": {"orderId": "1"}}

    fake = FakeBybitSession()
    fake.place_order = place_order  # type: ignore[method-assign]
    ex = make_executor(fake)
    handoff = http.OrderHandoff(wait_s=30.0, write_wait_s=30.0)  # the bounds only
    ex._http._orders = handoff
    other_work_at: list[float] = []

    async def other_work() -> None:
        other_work_at.append(time.perf_counter())

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(ex._http.call, "place_order", order=True, category="linear"))
        tg.start_soon(other_work)
    assert written_at[0] < other_work_at[0] < written_at[0] + 0.04  # after the write, before the answer
    assert time.perf_counter() - started >= 0.07 and handoff.write_waits_timed_out == 0


@pytest.mark.anyio
async def test_a_request_not_written_in_time_lets_the_loop_go_on_at_the_bound() -> None:
    import time

    from adapters.bybit.http import OrderHandoff

    handoff = OrderHandoff(wait_s=1.0, write_wait_s=0.005)
    started = time.perf_counter()
    assert await handoff.run(lambda: time.sleep(0.05) or "answer") == "answer"
    assert handoff.write_waits_timed_out == 1 and time.perf_counter() - started >= 0.05


def test_pybits_session_connections_say_when_a_request_is_written() -> None:
    """The signal comes from urllib3's connection (requests' adapter extension point), on a real
    socket: a request to a local server, answered after the signal."""
    import http.server
    import threading

    from adapters.bybit.http import _written, signalling_adapter_class

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import requests

    session = requests.Session()
    session.mount("http://", signalling_adapter_class()())
    told: list[str] = []
    _written.callback = lambda: told.append("written")
    try:
        answer = session.post(f"http://127.0.0.1:{server.server_port}/v5/order/create", data=b'{"qty":"1"}')
    finally:
        _written.callback = None
        server.shutdown()
    assert answer.status_code == 200 and told == ["written"]
