"""Binance USD-M, OKX and Hyperliquid parsers on recorded real payloads (units, signs, intervals)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from payloads import ccxt_static, payload

from adapters.binanceusdm import parsing as bn
from adapters.errors import AbsurdVenueData, IncompleteVenueData
from adapters.hyperliquid import parsing as hl
from adapters.okx import parsing as ok
from bot.core.domain import Liquidity, OrderSide, OrderStatus

D = Decimal
BN = "nautilus/binance/test_data/futures/"
OK = "nautilus/okx/test_data/"
HL = "nautilus/hyperliquid/test_data/"


# --- Binance USD-M -----------------------------------------------------------------------------

def test_binance_mark_price_stream_interval_from_funding_info_else_8h_only_when_known() -> None:
    msg = payload(BN + "market_data_json/mark_price_stream.json")
    with pytest.raises(IncompleteVenueData, match="interval_hours unknown"):
        bn.parse_mark_price_update(msg, funding_info=None)  # fundingInfo never fetched: unusable
    q = bn.parse_mark_price_update(msg, funding_info={})  # fetched, BTCUSDT not adjusted: 8 h
    assert (q.symbol, q.rate_per_interval, q.interval_hours) == ("BTC", D("0.00038167"), D(8))
    assert (q.next_funding_ts_ms, q.ts_ms, q.mark_price) == (1562306400000, 1562305380000, D("11794.15000000"))
    adjusted = bn.parse_funding_info([{"symbol": "BTCUSDT", "fundingIntervalHours": 4}])
    assert bn.parse_mark_price_update(msg, funding_info=adjusted).interval_hours == D(4)


def test_binance_funding_income_is_received_positive() -> None:
    (row,) = ccxt_static("binance", "fetchFundingHistory")
    p = bn.parse_funding_income(row, symbol="BTC")
    assert (p.payment_id, p.amount_usd, p.ts_ms) == ("8082457372019390060", D("-0.04618913"), 1707465600000)


def test_binance_user_trade_and_order_update_fill() -> None:
    (row,) = ccxt_static("binance", "fetchMyTrades", 1)
    f = bn.parse_user_trade(row, symbol="BTC", client_order_id="ours")
    assert (f.trade_id, f.side, f.price, f.size_base, f.fee_usd, f.liquidity) == (
        "272536245", OrderSide.BUY, D("36567.10"), D("0.010"), D("0.14626840"), Liquidity.TAKER)
    upd = bn.parse_order_trade_update(payload(BN + "user_data_json/order_update_trade.json"), symbol="BTC",
                                      client_order_id="ours")
    assert upd is not None and (upd.trade_id, upd.price, upd.size_base, upd.fee_usd, upd.liquidity) == (
        "12345678", D("7100.50"), D("0.001"), D("0.01000000"), Liquidity.MAKER)
    assert bn.parse_order_trade_update(payload(BN + "user_data_json/order_update_new.json"), symbol="BTC",
                                       client_order_id="ours") is None


def test_binance_order_position_equity_and_depth() -> None:
    order = bn.parse_order(payload(BN + "http_json/order_response.json"), symbol="BTC", client_order_id="ours")
    assert (order.status, order.requested_base, order.filled_base, order.avg_price, order.venue_order_id) == (
        OrderStatus.NEW, D("0.001"), D("0.000"), None, "12345678")
    pos = bn.parse_position(ccxt_static("binance", "fetchPositions")[0], symbol="BTC")
    assert pos is not None and (pos.size_base, pos.entry_price) == (D("0.009"), D("67445.9"))
    assert bn.parse_account_equity_usd(ccxt_static("binance", "fetchBalance")) == D("31.02261200")
    book = bn.parse_depth(ccxt_static("binance", "fetchOrderBook"), "BTC")
    assert (book.best_bid, book.best_ask, book.ts_ms) == (D("42651.10"), D("42878.00"), 1706803917258)


def test_binance_hedge_mode_position_is_refused() -> None:
    row = dict(payload(BN + "http_json/position_risk.json")[0], positionSide="LONG")
    with pytest.raises(AbsurdVenueData, match="hedge mode"):
        bn.parse_position(row, symbol="BTC")


# --- OKX ---------------------------------------------------------------------------------------

def _okx_btc():
    swaps = [i for i in ok.data_list(payload(OK + "http_get_instruments_swap.json")) if i["ctType"] == "linear"]
    markets = {m.venue_symbol: m for m in (ok.parse_instrument(i, funding_interval_hours=D(8)) for i in swaps)}
    return markets["BTC-USDT-SWAP"]


def test_okx_funding_interval_is_the_gap_between_settlements_and_mark_comes_separately() -> None:
    item = payload(OK + "ws_funding_rate.json")["data"][0]
    marks = ok.parse_mark_prices(payload(OK + "http_get_mark_price.json"))
    q = ok.parse_funding_rate(item, mark_price=marks["BTC-USDT-SWAP"])
    assert (q.symbol, q.rate_per_interval, q.interval_hours) == ("BTC", D("0.0001"), D(8))
    assert q.next_funding_ts_ms == 1744590349506 and q.mark_price == D("84660.1")
    with pytest.raises(IncompleteVenueData, match="mark_price"):
        ok.parse_funding_rate(item, mark_price=None)
    with pytest.raises(AbsurdVenueData, match="settlement gap"):
        ok.parse_funding_rate(dict(item, nextFundingTime=item["fundingTime"]), mark_price=D(1))


def test_okx_instruments_convert_contracts_to_base_units() -> None:
    btc = _okx_btc()
    assert btc.contract_size_base == D("0.01")
    assert (btc.instrument.lot_size_base, btc.instrument.min_size_base, btc.instrument.tick_size) == (
        D("0.0001"), D("0.0001"), D("0.1"))
    assert btc.contracts(D("0.05")) == D(5)
    with pytest.raises(ValueError, match="whole number of lots"):
        btc.contracts(D("0.00005"))


def test_okx_order_fill_position_and_book_in_base_units() -> None:
    btc = _okx_btc()
    (item,) = ok.data_list(payload(OK + "http_get_orders_history.json"))
    report = ok.parse_order(item, market=btc, client_order_id="ours")
    assert (report.status, report.requested_base, report.filled_base, report.avg_price) == (
        OrderStatus.FILLED, D("0.0003"), D("0.0003"), D("103698.9"))
    fill = ok.parse_fill(item, market=btc, client_order_id="ours")
    assert (fill.trade_id, fill.size_base, fill.fee_usd) == ("1518905529", D("0.0003"), D("0.021776769"))
    with pytest.raises(IncompleteVenueData, match="SWAP"):
        ok.parse_fill(payload(OK + "http_transaction_detail.json"), market=btc, client_order_id="ours")
    pos = ok.parse_position(ok.data_list(payload(OK + "http_get_positions.json"))[0], market=btc)
    assert pos is not None and pos.size_base == D("0.005")  # 0.5 contracts x 0.01 BTC
    book = ok.parse_order_book(payload(OK + "http_get_order_book.json"), btc)
    assert book.bids[0].size_base == D("0.48792100") * D("0.01")
    assert ok.parse_equity_usd(payload(OK + "http_get_account_balance.json")) > 0


def test_okx_funding_bill_sign() -> None:
    # documented /account/bills shape (no recorded sample): balChg is + = received
    bill = {"billId": "b1", "type": "8", "balChg": "-0.0123", "ts": "1744590349506", "px": "84660.1"}
    p = ok.parse_funding_bill(bill, symbol="BTC")
    assert (p.payment_id, p.amount_usd, p.ts_ms) == ("b1", D("-0.0123"), 1744590349506)


# --- Hyperliquid -------------------------------------------------------------------------------

def test_hyperliquid_meta_gives_lots_ticks_and_asset_index() -> None:
    markets, skipped = hl.parse_meta(payload(HL + "http_meta_perp_sample.json"))
    assert skipped == []
    by_name = {m.venue_symbol: m for m in markets}
    assert by_name["BTC"].instrument.lot_size_base == D("0.00001")  # szDecimals 5
    assert by_name["BTC"].instrument.tick_size == D("0.1")  # 6 - 5 decimals
    assert by_name["ATOM"].venue_id == "2" and by_name["ATOM"].instrument.funding_interval_hours == D(1)


def test_hyperliquid_asset_ctx_is_hourly_with_next_hour_settlement() -> None:
    msg = payload(HL + "ws_all_dexs_asset_ctxs.json")
    ctx = msg["data"]["ctxs"][0][1][0]
    q = hl.parse_asset_ctx("BTC", ctx, ts_ms=1769908800123)
    assert (q.rate_per_interval, q.interval_hours, q.mark_price) == (D("-0.0000015186"), D(1), D("77562.0"))
    assert q.next_funding_ts_ms == 1769911200000  # the next whole hour


def test_hyperliquid_meta_and_ctxs_must_align() -> None:
    meta = payload(HL + "http_meta_perp_sample.json")
    ctxs = payload(HL + "ws_all_dexs_asset_ctxs.json")["data"]["ctxs"][0][1]
    quotes, dropped = hl.parse_meta_and_asset_ctxs([meta, ctxs[:3]], ts_ms=1769908800000)
    assert [q.symbol for q in quotes] == ["BTC", "ETH", "ATOM"] and dropped == []
    with pytest.raises(AbsurdVenueData, match="3 assets but 2 contexts"):
        hl.parse_meta_and_asset_ctxs([meta, ctxs[:2]], ts_ms=1769908800000)


def test_hyperliquid_fills_fees_order_status_positions() -> None:
    rows = ccxt_static("hyperliquid", "fetchMyTrades")
    first = hl.parse_user_fill(rows[0], client_order_id="ours")
    assert (first.trade_id, first.side, first.price, first.size_base) == ("882779857052503", OrderSide.BUY, D("33.209"), D("0.73"))
    assert first.fee_usd == D("0.012896") + D("0.002424")  # builder fee counted
    assert first.liquidity is Liquidity.TAKER
    report = hl.parse_order_status(ccxt_static("hyperliquid", "fetchOrder"), client_order_id="ours")
    assert report is not None and (report.status, report.requested_base, report.filled_base) == (
        OrderStatus.NEW, D("2.0"), D("0.0"))
    assert hl.parse_order_status({"status": "unknownOid"}, client_order_id="ours") is None
    positions, equity = hl.parse_clearinghouse_state(ccxt_static("hyperliquid", "fetchPositions"))
    assert [(p.symbol, p.size_base) for p in positions] == [("FLX:CRCL", D("0.13"))] and equity == D("6.889701")


def test_hyperliquid_user_funding_sign_and_book() -> None:
    row = {"time": 1769908800000, "hash": "0xabc", "delta": {"type": "funding", "coin": "BTC", "usdc": "-0.5",
                                                             "szi": "0.1", "fundingRate": "0.0000625"}}
    p = hl.parse_user_funding(row)  # documented shape: long paid a positive rate
    assert (p.amount_usd, p.position_size_base, p.mark_price) == (D("-0.5"), D("0.1"), D(80000))
    book = hl.parse_l2_book(payload(HL + "http_l2_book_btc.json"))
    assert (book.best_bid, book.best_ask) == (D("110427.0"), D("110428.0"))


@pytest.mark.parametrize(("price", "sz_decimals", "side", "expected"), [
    (D("110427.37"), 5, OrderSide.BUY, D("110427")),
    (D("110427.37"), 5, OrderSide.SELL, D("110428")),
    (D("33.20987"), 2, OrderSide.BUY, D("33.209")),
    (D("33.20911"), 2, OrderSide.SELL, D("33.210")),
    (D("0.0123456"), 0, OrderSide.BUY, D("0.012345")),
])
def test_hyperliquid_price_rounding_is_conservative(price: D, sz_decimals: int, side: OrderSide, expected: D) -> None:
    assert hl.round_price(price, sz_decimals=sz_decimals, side=side) == expected
