"""Bybit parsers on recorded real payloads (vendor docs + NautilusTrader captures) and book upkeep."""

from __future__ import annotations

from decimal import Decimal

import pytest
from payloads import ccxt_static, payload

from adapters.bybit import parsing as by
from adapters.bybit.book import BookGap, BybitBook
from adapters.errors import AbsurdVenueData, IncompleteVenueData
from bot.core.domain import Liquidity, OrderSide, OrderStatus

D = Decimal
DOCS = "bybit-v5-docs/"
NT = "nautilus/bybit/test_data/"


def test_instrument_interval_is_minutes_and_filters_map_to_lot_tick_min_notional() -> None:
    markets, skipped = by.parse_instruments(
        payload(DOCS + "market_instrument__01_response-example-linear_-official-usdt-perpetual-instrument-structure.json"))
    assert skipped == []
    (btc,) = markets
    inst = btc.instrument
    assert (inst.symbol, inst.venue_symbol) == ("BTC", "BTCUSDT")
    assert inst.funding_interval_hours == D(8)  # fundingInterval 480 minutes
    assert (inst.tick_size, inst.lot_size_base, inst.min_size_base, inst.min_notional_usd) == (
        D("0.10"), D("0.001"), D("0.001"), D("5"))
    assert btc.contract_size_base == 1


def test_instrument_interval_in_hours_is_refused_as_a_unit_mistake() -> None:
    # NautilusTrader's sample writes fundingInterval 8: Bybit publishes minutes, so 8 is absurd
    markets, skipped = by.parse_instruments(payload(NT + "http_get_instruments_linear.json"))
    assert markets == []
    assert len(skipped) == 2 and all("fundingInterval" in s and "below one hour" in s for s in skipped)


def test_ticker_quote_uses_funding_interval_hour_and_next_funding_time() -> None:
    msg = payload(DOCS + "websocket_public_ticker__01_response-example-linear_linearperpetual.json")
    q = by.parse_ticker_quote(msg["data"], ts_ms=msg["ts"])
    assert (q.venue, q.symbol) == ("bybit", "BTC")
    assert q.rate_per_interval == D("-0.005") and q.interval_hours == D(8)
    assert q.next_funding_ts_ms == 1760342400000 and q.ts_ms == 1760325052630
    assert q.mark_price == D("66666.60")
    assert q.hourly_rate == D("-0.000625")


def test_ticker_without_interval_is_unusable_unless_the_instrument_knows_it() -> None:
    raw = ccxt_static("bybit", "fetchFundingRates")  # ccxt's recorded /v5/market/tickers: no fundingIntervalHour
    quotes, dropped = by.parse_rest_tickers(raw)
    assert quotes == [] and "interval_hours unknown" in dropped[0]
    quotes, dropped = by.parse_rest_tickers(raw, intervals={"BTCUSDT": D(4)})
    assert dropped == [] and quotes[0].interval_hours == D(4) and quotes[0].rate_per_interval == D("0.0001")
    assert quotes[0].next_funding_ts_ms == 1730736000000


def test_absurd_ticker_rate_is_rejected() -> None:
    msg = payload(NT + "ws_ticker_linear.json")
    item = dict(msg["data"], fundingRate="1.79e9")
    with pytest.raises(AbsurdVenueData, match="beyond the cap"):
        by.parse_ticker_quote(item, ts_ms=msg["ts"])
    with pytest.raises(AbsurdVenueData, match="plausible"):
        by.parse_ticker_quote(dict(msg["data"], nextFundingTime="1673280000"), ts_ms=msg["ts"])  # seconds


def test_funding_execution_sign_is_normalised_to_received_positive() -> None:
    rows = ccxt_static("bybit", "fetchFundingHistory")["result"]["list"]
    first, second = (by.parse_funding_execution(r, symbol="LTC") for r in rows[:2])
    # long 0.1 LTC, rate -0.000881: longs RECEIVE; Bybit's execFee -0.00708126 is fee-signed
    assert first.position_size_base == D("0.1") and first.rate == D("-0.000881")
    assert first.amount_usd == D("0.00708126") and first.ts_ms == 1710921600000
    # rate +0.0001: the long PAYS 0.0001 x 0.1 x 77.97
    assert second.amount_usd == D("-0.0007797") == -second.rate * second.position_size_base * second.mark_price


def test_executions_parse_to_fills_by_trade_id_with_fee_paid_positive() -> None:
    rows = by.result_list(payload(NT + "http_get_executions.json"))
    fills = [by.parse_execution(r, symbol="BTC", client_order_id="ours") for r in rows]
    assert fills[0].trade_id == "e0cbe81d-0f18-5866-9415-cf319b5dab3b"
    assert (fills[0].side, fills[0].price, fills[0].size_base, fills[0].fee_usd) == (
        OrderSide.BUY, D("50000.00"), D("0.100"), D("0.0150"))
    assert fills[0].liquidity is Liquidity.MAKER and fills[0].ts_ms == 1672282722429
    assert fills[1].side is OrderSide.SELL and fills[1].liquidity is Liquidity.TAKER
    with pytest.raises(IncompleteVenueData, match="not a trade"):
        by.parse_execution(ccxt_static("bybit", "fetchFundingHistory")["result"]["list"][0], symbol="LTC",
                           client_order_id="x")


def test_orders_map_statuses_and_partial_fill_then_reject_keeps_the_fill() -> None:
    (item,) = by.result_list(payload(NT + "http_get_order_partially_filled_rejected.json"))
    report = by.parse_order(item, symbol="BTC", client_order_id="ours")
    assert report.status is OrderStatus.CANCELED  # not REJECTED: 0.005 really executed
    assert (report.requested_base, report.filled_base, report.avg_price) == (D("0.010"), D("0.005"), D("30000"))
    assert report.reason == "INSUFFICIENT_MARGIN"
    realtime = [by.parse_order(i, symbol="BTC", client_order_id=i["orderLinkId"])
                for i in by.result_list(payload(NT + "http_get_orders_realtime.json"))]
    assert [r.status for r in realtime] == [OrderStatus.NEW, OrderStatus.NEW]
    assert [r.client_order_id for r in realtime] == ["client-open-1", "client-open-2"]


def test_positions_are_signed_and_flat_ones_dropped() -> None:
    positions = [by.parse_position(i, symbol="X") for i in by.result_list(payload(NT + "http_get_positions.json"))]
    assert [p.size_base if p else None for p in positions] == [D("0.5"), D("-5.0"), None]
    docs = [by.parse_position(i, symbol="X") for i in by.result_list(payload(DOCS + "position_position__01_response-example.json"))]
    assert [(p.size_base, p.entry_price, p.liquidation_price) for p in docs if p] == [(D("-300"), D("27464.50441675"), None)]


def test_wallet_equity_and_rest_book() -> None:
    assert by.parse_wallet_equity_usd(payload(DOCS + "account_wallet-balance__01_response-example.json")) == D("3.31216591")
    book = by.parse_rest_orderbook(payload(NT + "http_get_orderbook.json"), "BTC")
    assert book.best_bid == D("27450.50") and book.best_ask == D("27451.00") and book.ts_ms == 1709891679000


def test_stream_book_snapshot_then_delta_upserts_and_deletes() -> None:
    book = BybitBook("BTC")
    book.apply(payload(NT + "ws_orderbook_snapshot.json"))
    book.apply(payload(NT + "ws_orderbook_delta.json"))  # bid 27450 -> 0.400, ask 27451 deleted
    view = book.snapshot()
    assert [(lv.price, lv.size_base) for lv in view.bids] == [(D("27450.00"), D("0.400")), (D("27449.50"), D("1.000"))]
    assert [(lv.price, lv.size_base) for lv in view.asks] == [(D("27451.50"), D("0.900"))]
    assert view.ts_ms == 1709891679500


def test_stream_book_gap_and_delta_before_snapshot_raise() -> None:
    book = BybitBook("BTC")
    with pytest.raises(BookGap, match="before any snapshot"):
        book.apply(payload(NT + "ws_orderbook_delta.json"))
    book.apply(payload(NT + "ws_orderbook_snapshot.json"))
    delta = payload(NT + "ws_orderbook_delta.json")
    book.apply(delta)
    with pytest.raises(BookGap, match="after u="):
        book.apply(delta)  # replayed update id (not previous + 1)


def test_docs_delta_keeps_levels_sorted_after_unsorted_inserts() -> None:
    book = BybitBook("BTC")
    book.apply({"type": "snapshot", "ts": 1687940967000, "data": {
        "s": "BTCUSDT", "b": [["30240.00", "1"], ["30230.00", "2"]], "a": [["30260.00", "1"]], "u": 177400506}})
    delta = payload(DOCS + "websocket_public_orderbook__02_response-example-delta.json")
    book.apply(delta)
    view = book.snapshot()
    prices = [lv.price for lv in view.bids]
    assert prices == sorted(prices, reverse=True) and D("30240.00") not in prices  # "0" deleted it
    assert view.asks[0].price == D("30249.30") and [lv.price for lv in view.asks] == sorted(lv.price for lv in view.asks)
