"""Spot legs over the REAL wire: unmodified pybit inside ``adapters.bybit.spot`` (Bybit v5
``category=spot``) and unmodified ccxt ``binance`` inside ``adapters.ccxt_common.spot`` (Binance
``/api/v3``), talking to the local venue emulator on 127.0.0.1 (signatures checked).

Proves: spot buy/sell by IOC limit in base units, the buy fee charged in the BASE coin reduces what
the wallet holds (``Fill.fee_base`` / ``OrderReport.net_filled_base`` equal the wallet's change), the
wallet read (``SpotWallet.spot_wallet_base``) counts coins the bot does not own, no reduce-only and no
position on spot, unknown outcomes looked up by client id, and absurd spot payloads rejected at the
adapter boundary.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from adapters.bybit import spot_parsing
from adapters.errors import AbsurdVenueData, IncompleteVenueData, OrderRejected
from adapters.registry import LiveVenue, LiveVenueConfig, build_live_venue
from bot.core.domain import (
    InstrumentKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
)
from bot.core.ports import SpotWallet

emulator = pytest.importorskip("paper.emulator", reason="the venue emulator is not in this checkout")

D = Decimal
FOREIGN_BTC = D("0.25")  # coins the account held before the bot: never the bot's
MARKETS = {"bybit:spot": "bybit", "binanceusdm:spot": "binanceusdm"}  # spot market -> emulated exchange
ENV = {"bybit": ("BYBIT_API_KEY", "BYBIT_API_SECRET"), "binanceusdm": ("BINANCEUSDM_API_KEY", "BINANCEUSDM_API_SECRET")}


def _clock() -> int:
    return time.time_ns() // 1_000_000 + 60_000  # the executor has "run a minute": no send in flight


@pytest.fixture(params=list(MARKETS))
def market(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def exchange(market: str) -> str:
    return MARKETS[market]


@pytest.fixture
def emu(tmp_path, exchange: str):
    with emulator.start_emulator([exchange], state_path=tmp_path / "venues.sqlite", seed=5,
                                 spot_starting_coins={exchange: {"BTC": FOREIGN_BTC}}) as handle:
        yield handle


def _env(emu, exchange: str) -> dict[str, str]:
    cred = emu.credentials[exchange]
    key, secret = ENV[exchange]
    return {key: cred.key, secret: cred.secret}


@pytest.fixture
async def spot(emu, market: str, exchange: str) -> AsyncIterator[LiveVenue]:
    venue = await build_live_venue(market, LiveVenueConfig(base_url=emu.base_urls[exchange]), _env(emu, exchange),
                                   symbols=["BTC", "ETH"], max_slippage_bps=D(50), now_ms=_clock)
    await venue.market.resync_rest()
    yield venue
    await venue.close()


def _buy(market: str, cid: str, size: Decimal) -> OrderRequest:
    return OrderRequest(cid, market, "BTC", OrderSide.BUY, size)


@pytest.mark.anyio
async def test_spot_market_loads_as_spot_instruments_with_zero_funding_quotes(spot: LiveVenue, market: str) -> None:
    inst = {i.symbol: i for i in spot.market.instruments()}
    assert set(inst) == {"BTC", "ETH"}
    assert inst["BTC"].kind is InstrumentKind.SPOT and inst["BTC"].venue == market
    assert inst["BTC"].min_notional_usd == D(5)
    book = spot.market.book("BTC")
    assert book is not None and book.venue == market and book.best_bid < book.best_ask
    (quote,) = [q for q in spot.market.quotes() if q.symbol == "BTC"]
    assert quote.venue == market and quote.rate_per_interval == 0 and quote.interval_hours == 1
    assert quote.mark_price == book.mid
    assert isinstance(spot.executor, SpotWallet)
    assert "spot" in spot.description


@pytest.mark.anyio
async def test_buy_fee_in_base_coin_reduces_the_held_amount(spot: LiveVenue, emu, market: str, exchange: str) -> None:
    before = await spot.executor.spot_wallet_base(market)
    assert before == {"BTC": FOREIGN_BTC}  # the foreign coins are visible (the engine's baseline)
    size = D("0.05")
    report = await spot.executor.place_order(_buy(market, "spot-buy-1", size))
    assert report.status is OrderStatus.FILLED and report.filled_base == size and report.venue == market
    fee_rate = emu.core.spot[exchange].fees.taker_bps / 10_000
    assert report.fee_base == size * fee_rate > 0
    assert report.net_filled_base == size - report.fee_base
    assert all(f.fee_base > 0 and f.venue == market for f in report.fills)
    assert sum(f.fee_usd for f in report.fills) == sum(f.fee_base * f.price for f in report.fills)
    after = await spot.executor.spot_wallet_base(market)
    assert after["BTC"] - before["BTC"] == report.net_filled_base  # exactly what the wallet received
    fills = await spot.executor.fills_since(market, 0)
    assert [f.trade_id for f in fills] == [f.trade_id for f in report.fills]
    assert fills[0].client_order_id == "spot-buy-1" and fills[0].fee_base == report.fills[0].fee_base


@pytest.mark.anyio
async def test_sell_fee_is_in_quote_and_the_wallet_returns_to_its_baseline(spot: LiveVenue, market: str) -> None:
    baseline = (await spot.executor.spot_wallet_base(market))["BTC"]
    bought = await spot.executor.place_order(_buy(market, "spot-rt-buy", D("0.02")))
    held = (await spot.executor.spot_wallet_base(market))["BTC"] - baseline
    assert held == bought.net_filled_base
    lot = spot.market.instruments()[0].lot_size_base
    sellable = (held // lot) * lot  # the net holding rounded down to the spot lot
    sold = await spot.executor.place_order(OrderRequest("spot-rt-sell", market, "BTC", OrderSide.SELL, sellable))
    assert sold.status is OrderStatus.FILLED and sold.fee_base == 0
    assert all(f.fee_usd > 0 and f.fee_base == 0 for f in sold.fills)
    left = (await spot.executor.spot_wallet_base(market))["BTC"] - baseline
    assert 0 <= left < lot  # back to the baseline within dust
    assert left == bought.net_filled_base - sellable


@pytest.mark.anyio
async def test_spot_has_no_positions_no_funding_and_ignores_reduce_only(spot: LiveVenue, market: str) -> None:
    await spot.executor.place_order(_buy(market, "spot-np", D("0.01")))
    assert await spot.executor.positions(market) == []
    assert await spot.executor.funding_payments_since(market, 0) == []
    (equity,) = (await spot.executor.balances_usd()).values()  # the gates size the spot leg against it
    assert list(await spot.executor.balances_usd()) == [market] and equity > 10_000
    # reduce_only is meaningless on spot: the flag is not sent (the emulator refuses it, like a
    # client that would believe it honoured) and the sell goes through
    sell = OrderRequest("spot-ro", market, "BTC", OrderSide.SELL, D("0.005"), reduce_only=True)
    report = await spot.executor.place_order(sell)
    assert report.status is OrderStatus.FILLED and report.reduce_only is False


@pytest.mark.anyio
async def test_selling_more_than_the_wallet_holds_is_rejected_and_nothing_trades(spot: LiveVenue, market: str) -> None:
    with pytest.raises(OrderRejected, match="170131|insufficient balance"):
        await spot.executor.place_order(OrderRequest("spot-over", market, "BTC", OrderSide.SELL, D(5)))
    assert (await spot.executor.spot_wallet_base(market))["BTC"] == FOREIGN_BTC
    assert await spot.executor.fills_since(market, 0) == []


@pytest.mark.anyio
async def test_resting_spot_limit_can_be_cancelled(spot: LiveVenue, market: str) -> None:
    book = spot.market.book("BTC")
    tick = spot.market.instruments()[0].tick_size
    price = (book.best_bid * D("0.8")).quantize(tick)
    from bot.core.domain import TimeInForce

    req = OrderRequest("spot-rest", market, "BTC", OrderSide.BUY, D("0.01"), order_type=OrderType.LIMIT,
                       limit_price=price, time_in_force=TimeInForce.GTC)
    resting = await spot.executor.place_order(req)
    assert resting.status is OrderStatus.NEW and resting.filled_base == 0
    cancelled = await spot.executor.cancel_order(market, "spot-rest")
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELED and cancelled.filled_base == 0


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["drop_after_execute", "duplicate_client_id", "non_json_200"])
async def test_executed_but_unanswered_spot_orders_are_found_not_resent(spot: LiveVenue, emu, fault: str,
                                                                       market: str, exchange: str) -> None:
    before = (await spot.executor.spot_wallet_base(market))["BTC"]
    emu.faults.arm(fault, venue=exchange, scope="order")
    report = await spot.executor.place_order(_buy(market, f"spot-{fault[:6]}", D("0.01")))
    assert report.status is OrderStatus.FILLED and report.fee_base > 0
    after = (await spot.executor.spot_wallet_base(market))["BTC"]
    assert after - before == report.net_filled_base  # executed exactly once


@pytest.mark.anyio
async def test_wallet_read_failure_is_never_a_zero(spot: LiveVenue, emu, market: str, exchange: str) -> None:
    from adapters.errors import TemporaryVenueError

    emu.faults.arm("http_5xx", venue=exchange, scope="private")
    with pytest.raises(TemporaryVenueError):
        await spot.executor.spot_wallet_base(market)


# --- absurd spot payloads are rejected at the boundary (recorded shapes, altered) ---------------

def _execution(**over: object) -> dict:
    row = {"symbol": "BTCUSDT", "orderId": "1", "orderLinkId": "x", "side": "Buy", "execFee": "0.00001",
           "feeCurrency": "BTC", "execId": "e1", "execPrice": "100000", "execQty": "0.01", "execType": "Trade",
           "execTime": "1700000000000", "isMaker": False}
    row.update(over)
    return row


def test_spot_execution_parses_base_and_quote_fees() -> None:
    buy = spot_parsing.parse_spot_execution(_execution(), symbol="BTC", client_order_id="c")
    assert buy.fee_base == D("0.00001") and buy.fee_usd == D("1.00000") and buy.net_base == D("0.00999")
    sell = spot_parsing.parse_spot_execution(_execution(side="Sell", feeCurrency="USDT", execFee="1"), symbol="BTC",
                                             client_order_id="c")
    assert sell.fee_base == 0 and sell.fee_usd == 1


@pytest.mark.parametrize("over, match", [
    ({"execFee": "0.5"}, "fee_base"),  # a fee of half the size: a unit mistake
    ({"execFee": "-0.001"}, "fee_base"),
    ({"execFee": "NaN"}, "not finite"),
    ({"feeCurrency": "MNT"}, "feeCurrency"),  # fee deducted in another token: what reached the wallet is unknown
    ({"execQty": "0"}, "execQty"),
    ({"execPrice": "-1"}, "execPrice"),
    ({"execTime": "1700000000"}, "execTime"),  # seconds, not ms
])
def test_absurd_spot_executions_are_rejected(over: dict, match: str) -> None:
    with pytest.raises(AbsurdVenueData, match=match):
        spot_parsing.parse_spot_execution(_execution(**over), symbol="BTC", client_order_id="c")


def _wallet(*coins: dict) -> dict:
    return {"retCode": 0, "retMsg": "OK", "time": 1700000000000,
            "result": {"list": [{"accountType": "UNIFIED", "totalEquity": "1", "coin": list(coins)}]}}


def test_wallet_parse_and_absurd_wallets() -> None:
    wallet = _wallet({"coin": "USDT", "walletBalance": "100"}, {"coin": "BTC", "walletBalance": "0.5"},
                     {"coin": "SOL", "walletBalance": "3"})
    assert spot_parsing.parse_spot_wallet(wallet, symbols=["BTC", "ETH"]) == {"BTC": D("0.5")}
    with pytest.raises(AbsurdVenueData, match="negative"):
        spot_parsing.parse_spot_wallet(_wallet({"coin": "BTC", "walletBalance": "-0.1"}))
    with pytest.raises(AbsurdVenueData, match="not finite"):
        spot_parsing.parse_spot_wallet(_wallet({"coin": "BTC", "walletBalance": "Infinity"}))
    with pytest.raises(IncompleteVenueData, match="walletBalance"):
        spot_parsing.parse_spot_wallet(_wallet({"coin": "BTC"}))


def test_absurd_spot_instrument_is_skipped_not_listed() -> None:
    good = {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading",
            "lotSizeFilter": {"basePrecision": "0.000001", "minOrderQty": "0.000011", "minOrderAmt": "5"},
            "priceFilter": {"tickSize": "0.1"}}
    bad = dict(good, symbol="ETHUSDT", baseCoin="ETH", priceFilter={"tickSize": "0"})
    markets, skipped = spot_parsing.parse_spot_instruments({"retCode": 0, "result": {"list": [good, bad]}})
    assert [m.symbol for m in markets] == ["BTC"] and len(skipped) == 1 and "tickSize" in skipped[0]
