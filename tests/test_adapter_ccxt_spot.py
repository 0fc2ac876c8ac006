"""ccxt spot markets (``adapters.ccxt_common.spot``) on recorded and hand-made payloads: OKX's real
spot instruments through ccxt's own parser, trades with the fee in the base / quote / another coin,
and order parameters that never carry ``reduceOnly``. (Binance spot runs over the wire against the
emulator in tests/test_adapter_emulator_spot.py.)"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from adapters.ccxt_common.spot import (
    SPOT_CCXT,
    parse_spot_market,
    parse_spot_trade,
    spot_dialect,
)
from adapters.errors import AbsurdVenueData
from adapters.markets import VenueMarket
from bot.core.domain import Instrument, InstrumentKind, Liquidity, OrderSide
from tests.shared_data import shared_data_dir

D = Decimal


def test_okx_recorded_spot_instruments_parse_through_ccxt() -> None:
    ccxt = pytest.importorskip("ccxt")
    path = shared_data_dir() / "payloads" / "nautilus" / "okx" / "test_data" / "http_get_instruments_spot.json"
    okx = ccxt.okx()
    rows = json.loads(path.read_text())["data"]
    parsed = {m.symbol: m for m in (parse_spot_market(okx.parse_market(r), "okx:spot") for r in rows)}
    btc = parsed["BTC"]
    assert btc.instrument.kind is InstrumentKind.SPOT and btc.venue == "okx:spot"
    assert btc.instrument.tick_size == D("0.1") and btc.instrument.lot_size_base == D("0.00000001")
    assert btc.instrument.min_size_base == D("0.00001") and btc.ccxt_symbol == "BTC/USD"


def _market() -> VenueMarket:
    inst = Instrument("binanceusdm:spot", "BTC", "BTCUSDT", D("0.1"), D("0.00001"), D("0.00001"), D(1), D(5),
                      InstrumentKind.SPOT)
    return VenueMarket(instrument=inst, settle="USDT", ccxt_symbol="BTC/USDT")


def _trade(**over: object) -> dict:
    trade = {"id": "7", "order": "1", "symbol": "BTC/USDT", "side": "buy", "price": 100000.0, "amount": 0.01,
             "timestamp": 1_700_000_000_000, "takerOrMaker": "taker", "fee": {"cost": 1e-05, "currency": "BTC"}}
    trade.update(over)
    return trade


def test_spot_trade_fee_goes_where_the_currency_says() -> None:
    buy = parse_spot_trade(_trade(), market=_market(), client_order_id="c")
    assert buy.fee_base == D("0.00001") and buy.fee_usd == D("1.00000") and buy.net_base == D("0.00999")
    assert buy.side is OrderSide.BUY and buy.liquidity is Liquidity.TAKER and buy.venue == "binanceusdm:spot"
    sell = parse_spot_trade(_trade(side="sell", fee={"cost": 1.0, "currency": "USDT"}), market=_market(),
                            client_order_id="c")
    assert sell.fee_base == 0 and sell.fee_usd == D("1.0")


@pytest.mark.parametrize("fee, match", [
    ({"cost": 0.001, "currency": "BNB"}, "neither BTC nor USDT"),  # fee paid in another token
    ({"cost": 0.005, "currency": "BTC"}, "fee_base"),  # half the size: a unit mistake
    ({"cost": float("nan"), "currency": "BTC"}, "not finite"),
])
def test_absurd_spot_trade_fees_are_rejected(fee: dict, match: str) -> None:
    with pytest.raises(AbsurdVenueData, match=match):
        parse_spot_trade(_trade(fee=fee), market=_market(), client_order_id="c")


@pytest.mark.parametrize("market", list(SPOT_CCXT))
def test_spot_order_params_never_carry_reduce_only(market: str) -> None:
    params = spot_dialect(market).order_params("0xabc", "IOC", True, 0)
    assert "reduceOnly" not in params and params["timeInForce"] == "IOC"
    if market == "okx:spot":
        assert params["tdMode"] == "cash"  # never on margin: the bot never borrows
