"""Paper executor: matching, accounts, funding, durability, faults and latency, against hand-built books."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path

import anyio
import pytest

from adapters.errors import OrderRejected, TemporaryVenueError
from bot.core.domain import (
    BookLevel,
    FeeSchedule,
    FundingSettlement,
    Instrument,
    Liquidity,
    OrderBook,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from bot.core.ports import Executor
from paper.executor import PaperExecutor
from paper.fault_injection import FaultInjector, FaultPlan
from paper.venue_store import VenueStore, VenueWrite, read_open_positions, venue_store_path_for
from executor_contract import ContractHarness, ExecutorContract

T0 = 1_700_000_000_000
FEES = {
    "alpha": FeeSchedule(maker_bps=D("2"), taker_bps=D("5")),
    "beta": FeeSchedule(maker_bps=D("-1"), taker_bps=D("5.5")),
}


def instrument(venue: str, symbol: str = "BTC", min_notional: D = D(0)) -> Instrument:
    return Instrument(
        venue=venue, symbol=symbol, venue_symbol=f"{symbol}USDT", tick_size=D("0.5"), lot_size_base=D("0.1"),
        min_size_base=D("0.2"), funding_interval_hours=D(8), min_notional_usd=min_notional,
    )


def book(venue: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts_ms: int = T0,
         symbol: str = "BTC") -> OrderBook:
    return OrderBook(
        venue=venue, symbol=symbol,
        bids=tuple(BookLevel(D(p), D(s)) for p, s in bids),
        asks=tuple(BookLevel(D(p), D(s)) for p, s in asks),
        ts_ms=ts_ms,
    )


THREE_LEVELS_BIDS = [("99", "1"), ("98", "2"), ("97", "3")]
THREE_LEVELS_ASKS = [("100", "1"), ("101", "2"), ("102", "3")]


class FakeBooks:
    """In-test BookSource: hand-built books and instruments."""

    def __init__(self) -> None:
        self.books: dict[tuple[str, str], OrderBook] = {}
        self.instruments: dict[tuple[str, str], Instrument] = {}

    def set(self, b: OrderBook, inst: Instrument | None = None) -> None:
        self.books[(b.venue, b.symbol)] = b
        self.instruments.setdefault((b.venue, b.symbol), inst or instrument(b.venue, b.symbol))

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        return self.books.get((venue, symbol))

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self.instruments.get((venue, symbol))


@dataclass
class FakeClock:
    now: int = T0

    def now_ms(self) -> int:
        return self.now


@dataclass
class RecordingSleep:
    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await anyio.lowlevel.checkpoint()


@dataclass
class Env:
    ex: PaperExecutor
    books: FakeBooks
    clock: FakeClock
    sleep: RecordingSleep
    store: VenueStore


def make_env(store: VenueStore | None = None, *, books: FakeBooks | None = None, faults: FaultPlan | None = None,
             latency_s: dict[str, float] | float = 0.0, clock: FakeClock | None = None) -> Env:
    if books is None:
        books = FakeBooks()
        books.set(book("alpha", THREE_LEVELS_BIDS, THREE_LEVELS_ASKS))
        books.set(book("beta", THREE_LEVELS_BIDS, THREE_LEVELS_ASKS))
    store = store or VenueStore.in_memory()
    clock = clock or FakeClock()
    sleep = RecordingSleep()
    ex = PaperExecutor(books, FEES, store=store, latency_s=latency_s, clock_now_ms=clock.now_ms, faults=faults,
                       sleep=sleep)
    return Env(ex=ex, books=books, clock=clock, sleep=sleep, store=store)


_cid_counter = iter(range(1, 1_000_000))


def order(side: OrderSide, size: str, *, venue: str = "alpha", cid: str | None = None, limit: str | None = None,
          tif: TimeInForce = TimeInForce.IOC, reduce_only: bool = False, symbol: str = "BTC",
          post_only: bool = False) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid or f"cid-{next(_cid_counter)}", venue=venue, symbol=symbol, side=side,
        size_base=D(size), order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=None if limit is None else D(limit), time_in_force=tif, reduce_only=reduce_only,
        post_only=post_only,
    )


async def pos(ex: PaperExecutor, venue: str = "alpha") -> tuple[D, D] | None:
    found = [p for p in await ex.positions(venue) if p.symbol == "BTC"]
    return (found[0].size_base, found[0].entry_price) if found else None


# -- the shared contract ------------------------------------------------------------------------------


class TestPaperExecutorContract(ExecutorContract):
    @pytest.fixture
    def harness(self) -> ContractHarness:
        env = make_env()
        return ContractHarness(executor=env.ex, venue="alpha", symbol="BTC", size_base=D("0.5"),
                               resting_buy_price=D("50"), crossing_buy_price=D("100"))


def test_paper_executor_satisfies_the_protocol() -> None:
    assert isinstance(make_env().ex, Executor)


# -- taker matching -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_market_buy_walks_three_levels_by_hand() -> None:
    env = make_env()
    report = await env.ex.place_order(order(OrderSide.BUY, "2.5"))
    assert report.status is OrderStatus.FILLED
    assert [(f.price, f.size_base) for f in report.fills] == [(D("100"), D("1")), (D("101"), D("1.5"))]
    assert report.avg_price == D("100.6")  # (100 + 151.5) / 2.5
    # taker 5 bps: 100 x 1 x 0.0005 = 0.05 ; 101 x 1.5 x 0.0005 = 0.07575
    assert [f.fee_usd for f in report.fills] == [D("0.05"), D("0.07575")]
    assert all(f.liquidity is Liquidity.TAKER for f in report.fills)
    assert await pos(env.ex) == (D("2.5"), D("100.6"))
    assert (await env.ex.balances_usd())["alpha"] == D("10000") - D("0.12575")


@pytest.mark.anyio
async def test_market_order_beyond_depth_is_canceled_with_partial_fills() -> None:
    env = make_env()
    report = await env.ex.place_order(order(OrderSide.BUY, "7"))
    assert report.status is OrderStatus.CANCELED
    assert report.filled_base == D("6")
    assert report.requested_base == D("7")
    assert report.avg_price == D("608") / D("6")
    assert "liquidity" in (report.reason or "")


@pytest.mark.anyio
async def test_ioc_limit_stops_at_its_price() -> None:
    env = make_env()
    report = await env.ex.place_order(order(OrderSide.SELL, "5", limit="98"))
    assert report.status is OrderStatus.CANCELED
    assert [(f.price, f.size_base) for f in report.fills] == [(D("99"), D("1")), (D("98"), D("2"))]
    none_fill = await env.ex.place_order(order(OrderSide.BUY, "1", limit="99.5"))
    assert none_fill.status is OrderStatus.CANCELED and none_fill.filled_base == 0 and none_fill.avg_price is None


@pytest.mark.anyio
async def test_two_orders_on_one_book_snapshot_cannot_take_the_same_liquidity() -> None:
    env = make_env()
    first = await env.ex.place_order(order(OrderSide.BUY, "1"))
    second = await env.ex.place_order(order(OrderSide.BUY, "1"))
    assert first.avg_price == D("100")
    assert second.avg_price == D("101")  # level 100 was consumed by the first order
    env.books.set(book("alpha", THREE_LEVELS_BIDS, THREE_LEVELS_ASKS, ts_ms=T0 + 1000))
    third = await env.ex.place_order(order(OrderSide.BUY, "1"))
    assert third.avg_price == D("100")  # a new snapshot restores the liquidity


@pytest.mark.anyio
async def test_round_trip_pnl_by_hand() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.BUY, "1"))  # 1 @ 100, fee 0.05
    await env.ex.place_order(order(OrderSide.SELL, "1"))  # 1 @ 99, fee 0.0495
    assert await pos(env.ex) is None
    # sell notional 99 - buy notional 100 - fees 0.0995
    assert (await env.ex.balances_usd())["alpha"] == D("10000") + D("99") - D("100") - D("0.0995")


@pytest.mark.anyio
async def test_flip_realizes_pnl_and_reopens_at_the_fill_price() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.BUY, "1"))  # long 1 @ 100, fee 0.05
    env.books.set(book("alpha", [("110", "5")], [("111", "5")], ts_ms=T0 + 1))
    await env.ex.place_order(order(OrderSide.SELL, "3"))  # sell 3 @ 110: +10 realized, short 2 @ 110
    assert await pos(env.ex) == (D("-2"), D("110"))
    fees = D("0.05") + D("110") * 3 * D("0.0005")
    assert (await env.ex.balances_usd())["alpha"] == D("10000") + D("10") - fees


@pytest.mark.anyio
async def test_balances_list_every_configured_venue_from_the_start() -> None:
    env = make_env()
    assert await env.ex.balances_usd() == {"alpha": D("10000"), "beta": D("10000")}


@pytest.mark.anyio
async def test_positions_are_marked_at_the_book_mid() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.SELL, "0.5", venue="beta"))
    [p] = await env.ex.positions()
    assert (p.venue, p.size_base, p.entry_price, p.mark_price) == ("beta", D("-0.5"), D("99"), D("99.5"))
    assert await env.ex.positions("alpha") == []


# -- validation and reduce-only --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("request_", "field_name"),
    [
        (order(OrderSide.BUY, "0.25"), "size_base"),  # not a lot multiple
        (order(OrderSide.BUY, "0.1"), "size_base"),  # below min size
        (order(OrderSide.BUY, "-1"), "size_base"),
        (order(OrderSide.BUY, "1", limit="100.2"), "limit_price"),  # off tick
        (OrderRequest("x", "alpha", "BTC", OrderSide.BUY, D("1"), OrderType.LIMIT), "limit_price"),  # missing
        (order(OrderSide.BUY, "1", symbol="DOGE"), "symbol"),
        (order(OrderSide.BUY, "1", venue="gamma"), "venue"),
    ],
)
async def test_invalid_orders_are_rejected_naming_the_field(request_: OrderRequest, field_name: str) -> None:
    env = make_env()
    with pytest.raises(OrderRejected, match=field_name):
        await env.ex.place_order(request_)
    assert await env.ex.get_order(request_.venue, request_.client_order_id) is None
    assert await env.ex.positions() == []


@pytest.mark.anyio
async def test_min_notional_is_enforced_but_not_on_reduce_only() -> None:
    books = FakeBooks()
    books.set(book("alpha", THREE_LEVELS_BIDS, THREE_LEVELS_ASKS), instrument("alpha", min_notional=D("50")))
    env = make_env(books=books)
    with pytest.raises(OrderRejected, match="min_notional_usd"):
        await env.ex.place_order(order(OrderSide.BUY, "0.4"))  # 0.4 x 100 = 40 < 50
    await env.ex.place_order(order(OrderSide.BUY, "0.6"))
    report = await env.ex.place_order(order(OrderSide.SELL, "0.3", reduce_only=True))  # 29.7 < 50, allowed
    assert report.status is OrderStatus.FILLED
    assert await pos(env.ex) == (D("0.3"), D("100"))


@pytest.mark.anyio
async def test_reduce_only_is_clamped_to_the_position() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.SELL, "1"))  # short 1 @ 99
    report = await env.ex.place_order(order(OrderSide.BUY, "3", reduce_only=True))
    assert report.status is OrderStatus.FILLED
    assert report.requested_base == D("1") and report.filled_base == D("1")
    assert "clamped from 3 to 1" in (report.reason or "")
    assert report.reduce_only
    assert await pos(env.ex) is None
    with pytest.raises(OrderRejected, match="no position to reduce"):
        await env.ex.place_order(order(OrderSide.BUY, "1", reduce_only=True))


@pytest.mark.anyio
async def test_reduce_only_that_would_increase_is_rejected() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.BUY, "1"))
    with pytest.raises(OrderRejected, match="would increase"):
        await env.ex.place_order(order(OrderSide.BUY, "1", reduce_only=True))
    assert await pos(env.ex) == (D("1"), D("100"))


@pytest.mark.anyio
async def test_concurrent_duplicates_execute_once() -> None:
    env = make_env(latency_s=0.2)
    request = order(OrderSide.BUY, "1")
    reports = []

    async def send() -> None:
        reports.append(await env.ex.place_order(request))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(send)
    assert len({tuple(f.trade_id for f in r.fills) for r in reports}) == 1
    assert await pos(env.ex) == (D("1"), D("100"))
    assert len(await env.ex.fills_since("alpha", 0)) == 1


# -- resting orders --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_resting_limit_fills_as_maker_when_the_book_crosses() -> None:
    env = make_env()
    placed = await env.ex.place_order(order(OrderSide.BUY, "1", limit="99", tif=TimeInForce.GTC))
    assert placed.status is OrderStatus.NEW and placed.fills == ()
    assert env.ex.on_book_update("alpha", "BTC") == []  # best ask 100 does not cross 99

    env.clock.now = T0 + 5000
    env.books.set(book("alpha", [("98", "1")], [("98.5", "0.5"), ("99", "1"), ("99.5", "4")], ts_ms=T0 + 5000))
    [fill] = env.ex.on_book_update("alpha", "BTC")
    assert (fill.price, fill.size_base, fill.liquidity, fill.ts_ms) == (D("99"), D("1"), Liquidity.MAKER, T0 + 5000)
    assert fill.fee_usd == D("0.0198")  # maker 2 bps: 99 x 1 x 0.0002
    report = await env.ex.get_order("alpha", placed.client_order_id)
    assert report is not None and report.status is OrderStatus.FILLED and report.avg_price == D("99")
    assert await pos(env.ex) == (D("1"), D("99"))
    assert env.ex.match_resting() == []  # nothing left resting


@pytest.mark.anyio
async def test_post_only_fills_only_when_the_market_trades_through_it() -> None:
    env = make_env()
    placed = await env.ex.place_order(order(OrderSide.BUY, "1", limit="99", tif=TimeInForce.GTC, post_only=True))
    assert placed.status is OrderStatus.NEW
    # The ask reaches our price (touch): a plain GTC would fill here; a post-only order does not,
    # because we cannot know our place in the queue at 99.
    env.books.set(book("alpha", [("98", "5")], [("99", "5"), ("99.5", "4")], ts_ms=T0 + 1))
    assert env.ex.match_resting() == []
    # The ask moves THROUGH 99: fills at our price, as maker, only against the depth below 99.
    env.clock.now = T0 + 2
    env.books.set(book("alpha", [("97", "5")], [("98.5", "0.3"), ("99", "5")], ts_ms=T0 + 2))
    [fill] = env.ex.match_resting()
    assert (fill.price, fill.size_base, fill.liquidity) == (D("99"), D("0.3"), Liquidity.MAKER)
    report = await env.ex.get_order("alpha", placed.client_order_id)
    assert report is not None and report.status is OrderStatus.PARTIALLY_FILLED and report.filled_base == D("0.3")
    env.books.set(book("alpha", [("97", "5")], [("98", "3")], ts_ms=T0 + 3))
    [rest] = env.ex.match_resting()
    assert rest.size_base == D("0.7") and rest.price == D("99")
    assert await pos(env.ex) == (D("1"), D("99"))


@pytest.mark.anyio
async def test_post_only_sell_that_would_cross_is_rejected_and_its_flag_survives_a_reopen(tmp_path: Path) -> None:
    env = make_env(VenueStore.open(tmp_path / "v.sqlite"))
    with pytest.raises(OrderRejected, match="post_only: limit_price 99 would cross"):
        await env.ex.place_order(order(OrderSide.SELL, "1", limit="99", tif=TimeInForce.GTC, post_only=True))
    with pytest.raises(OrderRejected, match="post_only: only GTC"):
        await env.ex.place_order(order(OrderSide.SELL, "1", limit="100", post_only=True))
    resting = await env.ex.place_order(order(OrderSide.SELL, "1", limit="100", tif=TimeInForce.GTC, post_only=True))
    assert resting.status is OrderStatus.NEW  # at the best ask: joins it without crossing
    env.store.close()
    reopened = make_env(VenueStore.open(tmp_path / "v.sqlite"), books=env.books, clock=env.clock)
    reopened.books.set(book("alpha", [("100", "5")], [("101", "5")], ts_ms=T0 + 1))
    assert reopened.ex.match_resting() == []  # bid at our 100 is a touch, not a trade-through
    reopened.books.set(book("alpha", [("100.5", "5")], [("101", "5")], ts_ms=T0 + 2))
    [fill] = reopened.ex.match_resting()
    assert (fill.price, fill.size_base, fill.liquidity) == (D("100"), D("1"), Liquidity.MAKER)
    reopened.store.close()


@pytest.mark.anyio
async def test_fully_marketable_gtc_fills_at_once_as_taker() -> None:
    env = make_env()
    placed = await env.ex.place_order(order(OrderSide.SELL, "3", venue="beta", limit="98", tif=TimeInForce.GTC))
    assert placed.status is OrderStatus.FILLED  # bids 99 x 1 + 98 x 2 cover it within the limit
    assert [(f.price, f.size_base, f.liquidity) for f in placed.fills] == [
        (D("99"), D("1"), Liquidity.TAKER), (D("98"), D("2"), Liquidity.TAKER)
    ]


@pytest.mark.anyio
async def test_partially_marketable_gtc_rests_its_remainder() -> None:
    env = make_env()
    placed = await env.ex.place_order(order(OrderSide.SELL, "4", venue="beta", limit="98", tif=TimeInForce.GTC))
    assert placed.status is OrderStatus.PARTIALLY_FILLED
    assert placed.filled_base == D("3") and all(f.liquidity is Liquidity.TAKER for f in placed.fills)
    env.books.set(book("beta", [("98.5", "0.4"), ("98", "2")], [("99", "1")], ts_ms=T0 + 1), instrument("beta"))
    [fill] = env.ex.match_resting("beta")
    assert (fill.price, fill.size_base, fill.liquidity) == (D("98"), D("1"), Liquidity.MAKER)
    assert fill.fee_usd == D("-0.0098")  # maker rebate -1 bp: 98 x 1 x -0.0001
    report = await env.ex.get_order("beta", placed.client_order_id)
    assert report is not None and report.status is OrderStatus.FILLED and report.filled_base == D("4")


@pytest.mark.anyio
async def test_resting_fill_is_bounded_by_crossing_depth_and_time_priority() -> None:
    env = make_env()
    first = await env.ex.place_order(order(OrderSide.BUY, "1", limit="99", tif=TimeInForce.GTC))
    second = await env.ex.place_order(order(OrderSide.BUY, "1", limit="99", tif=TimeInForce.GTC))
    env.books.set(book("alpha", [("97", "1")], [("99", "1.3"), ("100", "5")], ts_ms=T0 + 1))
    fills = env.ex.match_resting()
    assert [(f.client_order_id, f.size_base) for f in fills] == [(first.client_order_id, D("1")),
                                                                 (second.client_order_id, D("0.3"))]
    r2 = await env.ex.get_order("alpha", second.client_order_id)
    assert r2 is not None and r2.status is OrderStatus.PARTIALLY_FILLED and r2.filled_base == D("0.3")
    assert env.ex.match_resting() == []  # same snapshot: its crossing depth is used up


@pytest.mark.anyio
async def test_resting_reduce_only_is_canceled_when_the_position_is_gone() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.BUY, "1"))
    take_profit = await env.ex.place_order(
        order(OrderSide.SELL, "1", limit="105", tif=TimeInForce.GTC, reduce_only=True)
    )
    assert take_profit.status is OrderStatus.NEW
    await env.ex.place_order(order(OrderSide.SELL, "1"))  # flat by other means
    env.books.set(book("alpha", [("106", "5")], [("107", "5")], ts_ms=T0 + 1))
    assert env.ex.match_resting() == []
    report = await env.ex.get_order("alpha", take_profit.client_order_id)
    assert report is not None and report.status is OrderStatus.CANCELED and "reduce_only" in (report.reason or "")
    assert await pos(env.ex) is None


@pytest.mark.anyio
async def test_cancel_resting_and_terminal_orders() -> None:
    env = make_env()
    filled = await env.ex.place_order(order(OrderSide.BUY, "1"))
    again = await env.ex.cancel_order("alpha", filled.client_order_id)
    assert again is not None and again.status is OrderStatus.FILLED  # terminal: unchanged
    resting = [await env.ex.place_order(order(OrderSide.BUY, "1", limit="90", tif=TimeInForce.GTC, venue=v))
               for v in ("alpha", "beta", "beta")]
    assert await env.ex.cancel_all_orders("beta") == 2
    assert await env.ex.cancel_all_orders() == 1
    for r in resting:
        got = await env.ex.get_order(r.venue, r.client_order_id)
        assert got is not None and got.status is OrderStatus.CANCELED
    env.books.set(book("alpha", [("80", "1")], [("85", "9")], ts_ms=T0 + 1))
    assert env.ex.match_resting() == []


# -- fills and funding ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fills_since_filters_by_timestamp_and_trade_ids_are_unique() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.BUY, "2"))
    env.clock.now = T0 + 60_000
    later = await env.ex.place_order(order(OrderSide.SELL, "1"))
    assert [f.trade_id for f in await env.ex.fills_since("alpha", T0 + 60_000)] == [f.trade_id for f in later.fills]
    all_fills = await env.ex.fills_since("alpha", 0)
    assert [f.trade_id for f in all_fills] == ["alpha-t1", "alpha-t2", "alpha-t3"]
    assert await env.ex.fills_since("beta", 0) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("side", "rate", "expected_usd"),
    [
        (OrderSide.BUY, "0.0001", "-0.02"),  # long pays a positive rate: -(0.0001 x 2 x 100)
        (OrderSide.SELL, "0.0001", "0.02"),  # short receives it
        (OrderSide.BUY, "-0.0003", "0.06"),  # negative rate: long receives
        (OrderSide.SELL, "-0.0003", "-0.06"),  # and short pays
    ],
)
async def test_funding_settlement_signs(side: OrderSide, rate: str, expected_usd: str) -> None:
    env = make_env()
    filled = await env.ex.place_order(order(side, "2"))
    balance_after_trade = (await env.ex.balances_usd())["alpha"]
    settlement = FundingSettlement(venue="alpha", symbol="BTC", ts_ms=T0 + 3_600_000, rate=D(rate),
                                   interval_hours=D(8), mark_price=D("100"))
    assert ("alpha", "BTC") in env.ex.settlement_keys() and ("beta", "BTC") not in env.ex.settlement_keys()
    [payment] = env.ex.settle_funding(settlement)
    assert payment.amount_usd == D(expected_usd)
    assert payment.payment_id == f"alpha:BTC:{T0 + 3_600_000}"
    assert payment.position_size_base == (filled.filled_base if side is OrderSide.BUY else -filled.filled_base)
    assert (await env.ex.balances_usd())["alpha"] == balance_after_trade + D(expected_usd)
    assert env.ex.settle_funding(settlement) == [payment]  # idempotent: paid once
    assert (await env.ex.balances_usd())["alpha"] == balance_after_trade + D(expected_usd)
    assert await env.ex.funding_payments_since("alpha", T0 + 3_600_000) == [payment]
    assert await env.ex.funding_payments_since("alpha", T0 + 3_600_001) == []


@pytest.mark.anyio
async def test_flat_position_pays_no_funding() -> None:
    env = make_env()
    settlement = FundingSettlement("alpha", "BTC", T0, D("0.001"), D(8), D("100"))
    assert set(env.ex.settlement_keys()) == set()  # never held anything: no settlement can pay
    assert env.ex.settle_funding(settlement) == []
    assert await env.ex.funding_payments_since("alpha", 0) == []
    assert (await env.ex.balances_usd())["alpha"] == D("10000")


# -- durability -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_state_survives_reopening_the_store_file(tmp_path: Path) -> None:
    path = venue_store_path_for(tmp_path / "bot.sqlite")
    assert path == tmp_path / "bot.venues.sqlite"
    env = make_env(VenueStore.open(path))
    await env.ex.place_order(order(OrderSide.BUY, "2.5"))
    await env.ex.place_order(order(OrderSide.SELL, "0.5", venue="beta"))
    resting = await env.ex.place_order(order(OrderSide.SELL, "1", limit="110", tif=TimeInForce.GTC))
    env.ex.settle_funding(FundingSettlement("alpha", "BTC", T0 + 1, D("0.0001"), D(8), D("100")))
    positions_before = await env.ex.positions()
    balances_before = await env.ex.balances_usd()
    trade_ids_before = {f.trade_id for v in ("alpha", "beta") for f in await env.ex.fills_since(v, 0)}
    env.store.close()

    assert [(p.venue, p.size_base) for p in read_open_positions(path)] == [("alpha", D("2.5")), ("beta", D("-0.5"))]

    reopened = make_env(VenueStore.open(path), books=env.books, clock=env.clock)
    assert await reopened.ex.positions() == positions_before
    assert await reopened.ex.balances_usd() == balances_before
    got = await reopened.ex.get_order("alpha", resting.client_order_id)
    assert got is not None and got.status is OrderStatus.NEW
    assert len(await reopened.ex.funding_payments_since("alpha", 0)) == 1

    # The resting order still rests and fills; the trade-id counter continues without reuse.
    reopened.books.set(book("alpha", [("111", "3")], [("112", "3")], ts_ms=T0 + 10))
    [maker] = reopened.ex.match_resting()
    new = await reopened.ex.place_order(order(OrderSide.BUY, "0.2", venue="beta"))
    assert maker.trade_id == "alpha-t3" and new.fills[0].trade_id == "beta-t2"
    assert not {maker.trade_id, new.fills[0].trade_id} & trade_ids_before
    reopened.store.close()


def test_read_open_positions_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_open_positions(tmp_path / "nope.venues.sqlite") == []


def test_store_file_uses_wal(tmp_path: Path) -> None:
    store = VenueStore.open(tmp_path / "v.sqlite")
    try:
        mode = sqlite3.connect(tmp_path / "v.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        store.close()


class ExplodingStore(VenueStore):
    """Fails after writing every row of the transaction, before COMMIT."""

    explode = False

    def _write_rows(self, cur: sqlite3.Cursor, batch: VenueWrite) -> None:
        super()._write_rows(cur, batch)
        if self.explode:
            raise sqlite3.OperationalError("disk I/O error (injected)")


@pytest.mark.anyio
async def test_a_failed_write_leaves_nothing_half_recorded(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite"
    store = ExplodingStore(sqlite3.connect(path, check_same_thread=False, isolation_level=None), path)
    env = make_env(store)
    await env.ex.place_order(order(OrderSide.BUY, "1"))
    store.explode = True
    request = order(OrderSide.BUY, "2")
    with pytest.raises(sqlite3.OperationalError):
        await env.ex.place_order(request)
    store.explode = False
    assert await env.ex.get_order("alpha", request.client_order_id) is None
    assert await pos(env.ex) == (D("1"), D("100"))
    store.close()
    reopened = make_env(VenueStore.open(path), books=env.books)
    assert await reopened.ex.get_order("alpha", request.client_order_id) is None
    assert await pos(reopened.ex) == (D("1"), D("100"))
    assert [f.trade_id for f in await reopened.ex.fills_since("alpha", 0)] == ["alpha-t1"]
    # The counter did not advance for the lost transaction either.
    retry = await reopened.ex.place_order(request)
    assert retry.fills[0].trade_id == "alpha-t2"
    reopened.store.close()


# -- faults ---------------------------------------------------------------------------------------------


def test_fault_plan_validates_probabilities() -> None:
    with pytest.raises(ValueError, match="reject_probability"):
        FaultPlan(reject_probability=1.5)
    with pytest.raises(ValueError, match="latency_spike_s"):
        FaultPlan(latency_spike_s=-1)


def test_fault_draws_are_deterministic_per_seed() -> None:
    plan = FaultPlan(seed=7, timeout_probability=0.5, partial_fill_probability=0.5)
    a, b = FaultInjector(plan), FaultInjector(plan)
    draws_a = [(a.draw_timeout(), a.draw_partial_fraction()) for _ in range(20)]
    draws_b = [(b.draw_timeout(), b.draw_partial_fraction()) for _ in range(20)]
    assert draws_a == draws_b
    assert FaultInjector().draw_timeout().timed_out is False


@pytest.mark.anyio
async def test_injected_reject_executes_nothing() -> None:
    env = make_env(faults=FaultPlan(reject_probability=1.0))
    request = order(OrderSide.BUY, "1")
    with pytest.raises(OrderRejected, match="injected"):
        await env.ex.place_order(request)
    assert await env.ex.get_order("alpha", request.client_order_id) is None
    assert await env.ex.positions() == []


@pytest.mark.anyio
async def test_ambiguous_timeout_either_executed_fully_or_not_at_all() -> None:
    env = make_env(faults=FaultPlan(seed=3, timeout_probability=1.0))
    executed, missing = 0, 0
    expected_position = D(0)
    for i in range(16):
        env.books.set(book("alpha", THREE_LEVELS_BIDS, THREE_LEVELS_ASKS, ts_ms=T0 + i))
        request = order(OrderSide.BUY, "0.5")
        with pytest.raises(TemporaryVenueError, match="timed out"):
            await env.ex.place_order(request)
        report = await env.ex.get_order("alpha", request.client_order_id)
        if report is None:
            missing += 1
        else:
            executed += 1
            assert report.status is OrderStatus.FILLED and sum(f.size_base for f in report.fills) == D("0.5")
            expected_position += D("0.5")
        current = await pos(env.ex)
        assert (current[0] if current else D(0)) == expected_position
    assert executed > 0 and missing > 0  # seed 3 produces both outcomes
    fills = await env.ex.fills_since("alpha", 0)
    assert sum(f.size_base for f in fills) == expected_position


@pytest.mark.anyio
async def test_retrying_a_timed_out_order_with_its_client_order_id_never_duplicates() -> None:
    env = make_env(faults=FaultPlan(seed=3, timeout_probability=1.0))
    request = order(OrderSide.BUY, "0.5")
    outcomes = []
    for _ in range(10):  # every fresh attempt times out; one of them executes behind the timeout
        try:
            outcomes.append(await env.ex.place_order(request))
        except TemporaryVenueError:
            outcomes.append(None)
    first_answer = next(i for i, r in enumerate(outcomes) if r is not None)
    assert first_answer > 0 and all(r is not None for r in outcomes[first_answer:])
    assert len({tuple(f.trade_id for f in r.fills) for r in outcomes if r is not None}) == 1
    assert await pos(env.ex) == (D("0.5"), D("100"))
    assert len(await env.ex.fills_since("alpha", 0)) == 1


@pytest.mark.anyio
async def test_injected_partial_fill_of_an_ioc() -> None:
    env = make_env(faults=FaultPlan(seed=11, partial_fill_probability=1.0))
    report = await env.ex.place_order(order(OrderSide.BUY, "3"))
    assert report.status is OrderStatus.CANCELED
    assert report.filled_base < D("3")
    assert report.filled_base % D("0.1") == 0
    assert report.reason == "partial fill (injected)"
    current = await pos(env.ex)
    assert (current[0] if current else D(0)) == report.filled_base
    resting = await env.ex.place_order(order(OrderSide.BUY, "1", limit="90", tif=TimeInForce.GTC))
    assert resting.status is OrderStatus.NEW  # GTC orders are not partial-filled by the fault


@pytest.mark.anyio
async def test_latency_spike_adds_to_the_wall_time_delay() -> None:
    env = make_env(faults=FaultPlan(latency_spike_probability=1.0, latency_spike_s=2.0), latency_s=0.1)
    await env.ex.place_order(order(OrderSide.BUY, "1"))
    assert env.sleep.calls == [1.05, 1.05]


@pytest.mark.anyio
async def test_venue_down_window() -> None:
    env = make_env()
    env.ex.down_for("alpha", 5)
    request = order(OrderSide.BUY, "1")
    for call in (
        env.ex.place_order(request),
        env.ex.get_order("alpha", "x"),
        env.ex.cancel_order("alpha", "x"),
        env.ex.cancel_all_orders("alpha"),
        env.ex.positions("alpha"),
        env.ex.fills_since("alpha", 0),
        env.ex.funding_payments_since("alpha", 0),
        env.ex.balances_usd(),
        env.ex.positions(),
    ):
        with pytest.raises(TemporaryVenueError, match="alpha"):
            await call
    assert (await env.ex.place_order(order(OrderSide.BUY, "1", venue="beta"))).status is OrderStatus.FILLED
    env.clock.now = T0 + 5000
    assert (await env.ex.place_order(request)).status is OrderStatus.FILLED


@pytest.mark.anyio
async def test_random_outage_takes_the_venue_down_for_its_duration() -> None:
    env = make_env(faults=FaultPlan(venue_down_probability=1.0, venue_down_s=30))
    with pytest.raises(TemporaryVenueError):
        await env.ex.get_order("alpha", "x")
    assert env.ex.settle_funding(FundingSettlement("alpha", "BTC", T0, D("0.01"), D(8), D("100"))) == []


# -- latency ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_latency_is_awaited_per_request_and_per_venue() -> None:
    env = make_env(latency_s={"alpha": 0.2, "beta": 0.05})
    await env.ex.place_order(order(OrderSide.BUY, "1"))
    assert env.sleep.calls == [0.1, 0.1]  # half before matching, half after
    env.sleep.calls.clear()
    await env.ex.get_order("alpha", "x")
    await env.ex.fills_since("beta", 0)
    await env.ex.balances_usd()  # all venues: the slowest one
    assert env.sleep.calls == [0.2, 0.05, 0.2]
    env.sleep.calls.clear()
    env.ex.match_resting()
    env.ex.settle_funding(FundingSettlement("alpha", "BTC", T0, D("0.01"), D(8), D("100")))
    assert env.sleep.calls == []  # venue-internal events carry no network latency


@pytest.mark.anyio
async def test_zero_latency_does_not_sleep() -> None:
    env = make_env()
    await env.ex.place_order(order(OrderSide.BUY, "1"))
    await env.ex.positions()
    assert env.sleep.calls == []
