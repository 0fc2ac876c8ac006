"""Scan-only venues (Lighter, Paradex, Extended, GRVT, Aster, Backpack): recorded payloads -> quotes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from payloads import ccxt_static, payload

from adapters.backpack import parsing as bp
from adapters.binanceusdm import parsing as bn
from adapters.errors import AbsurdVenueData
from adapters.extended import parsing as ex
from adapters.grvt import parsing as gv
from adapters.lighter import parsing as lt
from adapters.paradex import parsing as pd

D = Decimal
LT = "nautilus/lighter/test_data/"
GV = "perpdex-captures/grvt/"


def test_lighter_quotes_are_hourly_from_the_8h_fraction_with_marks_from_market_stats() -> None:
    marks = lt.parse_market_stats(payload(LT + "ws_market_stats_update_all.json"))
    assert marks == {"ETH": (D("2064.47"), 1774886400000)}
    quotes, dropped = lt.parse_funding_rates(ccxt_static("lighter", "fetchFundingRates"),
                                             marks={k: v[0] for k, v in marks.items()}, ts_ms=1774883844933)
    assert dropped == []
    (q,) = quotes
    assert (q.venue, q.symbol, q.interval_hours, q.mark_price) == ("lighter", "ETH", D(1), D("2064.47"))
    assert q.rate_per_interval == D(repr(9.599999999999999e-05)) / 8
    assert q.next_funding_ts_ms == 1774886400000  # the next hour boundary, as market_stats says


def test_lighter_quote_without_a_mark_is_dropped_and_instruments_parse() -> None:
    quotes, dropped = lt.parse_funding_rates(ccxt_static("lighter", "fetchFundingRates"), marks={}, ts_ms=1774883844933)
    assert quotes == [] and "mark_price unknown" in dropped[0]
    (eth,), skipped = lt.parse_order_book_details(payload(LT + "http_order_book_details.json"))
    assert skipped == [] and eth.venue_id == "0"
    assert (eth.instrument.tick_size, eth.instrument.lot_size_base, eth.instrument.min_size_base,
            eth.instrument.min_notional_usd) == (D("0.01"), D("0.0001"), D("0.0050"), D("10.000000"))


def test_lighter_funding_history_is_seconds_and_percent() -> None:
    rows = payload(LT + "http_fundings.json")["fundings"]
    assert [lt.parse_funding_history_rate(r) for r in rows] == [
        (1778702400000, D("0.000012")), (1778706000000, D("-0.000002"))]


def test_paradex_quote_needs_the_market_funding_period() -> None:
    markets_raw = ccxt_static("paradex", "fetchMarkets")
    periods = pd.funding_periods(markets_raw)
    assert periods == {"BTC-USD-PERP": None}  # the recorded testnet market has no funding_period_hours
    quotes, dropped = pd.parse_markets_summary(ccxt_static("paradex", "fetchTickers"), periods=periods)
    assert quotes == [] and "interval_hours unknown" in dropped[0]
    market = dict(markets_raw["results"][0], funding_period_hours=8)
    (btc,), _ = pd.parse_markets({"results": [market]})
    assert (btc.instrument.tick_size, btc.instrument.lot_size_base, btc.instrument.min_notional_usd) == (
        D("0.1"), D("0.001"), D("500"))
    quotes, dropped = pd.parse_markets_summary(ccxt_static("paradex", "fetchTickers"), periods=pd.funding_periods(
        {"results": [market]}))
    (q,) = quotes
    assert (q.rate_per_interval, q.interval_hours, q.mark_price, q.ts_ms) == (
        D("0.00749938923192"), D(8), D("67307.7225876"), 1718377962698)


def test_extended_markets_give_hourly_quotes_and_instruments() -> None:
    markets, quotes, skipped = ex.parse_markets(ccxt_static("extended", "fetchMarkets"), ts_ms=1777445000000)
    assert skipped == []
    (m,), (q,) = markets, quotes
    assert (m.instrument.tick_size, m.instrument.lot_size_base, m.instrument.min_size_base) == (D("1"), D("0.00001"), D("0.0001"))
    assert (q.symbol, q.rate_per_interval, q.interval_hours, q.next_funding_ts_ms) == ("BTC", D("0.000012"), D(1), 1777446000000)


def test_extended_funding_history_is_signed_by_side() -> None:
    rows = ccxt_static("extended", "fetchFundingHistory")["data"]
    p = ex.parse_funding_payment(rows[0])
    assert (p.payment_id, p.position_size_base, p.amount_usd, p.ts_ms) == ("3950", D("0.0001"), D("0"), 1778137201792)
    short = ex.parse_funding_payment(dict(rows[0], side="SHORT", fundingFee="0.0012"))
    assert short.position_size_base == D("-0.0001") and short.amount_usd == D("0.0012")


def test_grvt_percent_and_nanoseconds() -> None:
    intervals = gv.funding_interval_hours(payload(GV + "rest-funding-BTC_USDT_Perp-raw.json"))
    assert intervals == {"BTC_USDT_Perp": D(8)}
    q = gv.parse_ticker(payload(GV + "rest-ticker-BTC_USDT_Perp-raw.json"), intervals=intervals)
    assert (q.symbol, q.rate_per_interval, q.interval_hours) == ("BTC", D("0.0001"), D(8))  # "0.01" percent
    assert (q.next_funding_ts_ms, q.ts_ms) == (1781164800000, 1781147845000)
    row = payload(GV + "rest-funding-BTC_USDT_Perp-raw.json")["result"][2]
    assert gv.parse_funding_history_row(row) == (1781078400000, D("-0.000155"), D(8))


def test_grvt_ticker_without_interval_is_unusable_and_ns_read_as_ms_is_absurd() -> None:
    raw = payload(GV + "rest-ticker-BTC_USDT_Perp-raw.json")
    with pytest.raises(AbsurdVenueData, match="interval_hours unknown"):
        gv.parse_ticker(raw, intervals={})
    from adapters.wire import ts_ms
    with pytest.raises(AbsurdVenueData, match="plausible"):
        ts_ms(raw["result"]["event_time"], "event_time", "grvt")  # ns mistaken for ms


def test_aster_speaks_the_binance_dialect() -> None:
    msg = payload("nautilus/binance/test_data/futures/market_data_json/mark_price_stream.json")
    q = bn.parse_mark_price_update(msg, funding_info={"BTCUSDT": D(4)}, venue="aster")
    assert (q.venue, q.interval_hours, q.rate_per_interval) == ("aster", D(4), D("0.00038167"))


def test_backpack_documented_mark_prices_shape() -> None:
    rows = [{"symbol": "BTC_USDC_PERP", "fundingRate": "0.0000125", "markPrice": "97000.5", "indexPrice": "97001",
             "nextFundingTimestamp": 1769911200000}, {"symbol": "BTC_USDC", "markPrice": "97000"}]
    (q,), dropped = bp.parse_mark_prices(rows, ts_ms=1769908800000)
    assert dropped == [] and (q.symbol, q.interval_hours, q.rate_per_interval) == ("BTC", D(1), D("0.0000125"))
