"""CcxtExecutor (Binance USD-M dialect): the executor contract and the unknown-outcome protocol on a
unified-level fake exchange. The wire protocol is exercised against the venue emulator."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

pytest.importorskip("ccxt")

from executor_contract import ContractHarness, ExecutorContract
from fake_ccxt import FakeCcxtExchange

from adapters.binanceusdm.dialect import DIALECT
from adapters.ccxt_common.execution import CcxtExecutor
from adapters.errors import TemporaryVenueError
from adapters.markets import VenueMarket
from bot.core.domain import Instrument, OrderRequest, OrderSide, OrderStatus

D = Decimal
BTC = VenueMarket(instrument=Instrument(
    venue="binanceusdm", symbol="BTC", venue_symbol="BTCUSDT", tick_size=D("0.1"), lot_size_base=D("0.001"),
    min_size_base=D("0.001"), funding_interval_hours=D(8)), ccxt_symbol="BTC/USDT:USDT")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def make(fake: FakeCcxtExchange, clock: Clock | None = None, market: VenueMarket = BTC) -> CcxtExecutor:
    return CcxtExecutor(fake, DIALECT, markets={"BTC": market}, max_slippage_bps=D(10), now_ms=clock or Clock())


class TestCcxtExecutorContract(ExecutorContract):
    @pytest.fixture
    def harness(self) -> ContractHarness:
        clock = Clock()
        executor = make(FakeCcxtExchange(), clock)
        clock.now += 60_000
        return ContractHarness(executor=executor, venue="binanceusdm", symbol="BTC", size_base=D("0.5"),
                               resting_buy_price=D("40000"))


@pytest.mark.anyio
async def test_timeout_after_execution_and_missing_id_are_looked_up_not_resent() -> None:
    fake = FakeCcxtExchange(faults=["timeout_after_execute", "no_id"])
    ex = make(fake)
    first = await ex.place_order(OrderRequest("c1", "binanceusdm", "BTC", OrderSide.BUY, D("0.5")))
    second = await ex.place_order(OrderRequest("c2", "binanceusdm", "BTC", OrderSide.BUY, D("0.5")))
    assert first.status is OrderStatus.FILLED and second.status is OrderStatus.FILLED
    assert fake.sends == 2 and fake.position == 1.0


@pytest.mark.anyio
async def test_duplicate_after_restart_is_looked_up() -> None:
    fake = FakeCcxtExchange()
    first = await make(fake).place_order(OrderRequest("c3", "binanceusdm", "BTC", OrderSide.SELL, D("0.5")))
    again = await make(fake).place_order(OrderRequest("c3", "binanceusdm", "BTC", OrderSide.SELL, D("0.5")))
    assert again.filled_base == first.filled_base == D("0.5") and fake.position == -0.5
    assert [f.trade_id for f in again.fills] == [f.trade_id for f in first.fills]


@pytest.mark.anyio
async def test_contract_sizes_are_converted_and_not_found_waits_for_expiry() -> None:
    fake = FakeCcxtExchange(contract_size=0.01)
    clock = Clock()
    okx_like = replace(BTC, contract_size_base=D("0.01"), instrument=replace(BTC.instrument, lot_size_base=D("0.01"),
                                                                            min_size_base=D("0.01")))
    ex = make(fake, clock, okx_like)
    report = await ex.place_order(OrderRequest("c4", "binanceusdm", "BTC", OrderSide.BUY, D("0.03")))
    assert fake.orders["c4"]["amount"] == 3.0  # 0.03 BTC = 3 contracts of 0.01
    assert report.filled_base == D("0.03") and report.fills[0].size_base == D("0.03")
    with pytest.raises(TemporaryVenueError, match="may still arrive"):
        await ex.get_order("binanceusdm", "not-yet")
    clock.now += DIALECT.expiry_ms + 1
    assert await ex.get_order("binanceusdm", "not-yet") is None


@pytest.mark.anyio
async def test_funding_payments_use_the_venue_sign_rule() -> None:
    fake = FakeCcxtExchange(funding_rows=[
        {"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "-0.04618913", "asset": "USDT",
         "time": "1707465600000", "tranId": "8082457372019390060"}])
    (p,) = await make(fake).funding_payments_since("binanceusdm", 0)
    assert (p.payment_id, p.amount_usd, p.ts_ms) == ("8082457372019390060", D("-0.04618913"), 1707465600000)


@pytest.mark.anyio
async def test_a_priced_limit_order_reads_no_book_a_market_order_does() -> None:
    """A LIMIT order is bounded by its own price: no book read (here the feed has none, so the read
    would be a REST round trip before the order); a MARKET order still needs the book."""
    from bot.core.domain import OrderType

    fake = FakeCcxtExchange()
    reads: list[str] = []
    original = fake.fetch_order_book

    async def fetch_order_book(symbol, limit):
        reads.append(symbol)
        return await original(symbol, limit)

    fake.fetch_order_book = fetch_order_book  # type: ignore[method-assign]
    ex = make(fake)
    await ex.place_order(OrderRequest("c7", "binanceusdm", "BTC", OrderSide.BUY, D("0.5"), OrderType.LIMIT,
                                      limit_price=D("50050.05")))
    assert reads == []
    await ex.place_order(OrderRequest("c8", "binanceusdm", "BTC", OrderSide.BUY, D("0.5")))
    assert reads == ["BTC/USDT:USDT"]
