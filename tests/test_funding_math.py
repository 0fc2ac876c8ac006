"""Pure funding math: hand-computed tables plus Hypothesis properties."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.domain import BookLevel, FeeSchedule, Liquidity, OrderBook, OrderSide
from bot.core.funding_math import (
    CostBreakdown,
    adverse_basis_usd,
    apr_from_hourly,
    book_costs,
    breakeven_hours,
    common_lot_step,
    estimated_costs,
    expected_net,
    fee_usd,
    fill_notional_usd,
    floor_to_step,
    hourly_rate,
    pair_spread_hourly,
    slippage_usd,
    vwap,
)


def book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], venue: str = "v") -> OrderBook:
    return OrderBook(
        venue, "BTC", tuple(BookLevel(D(p), D(s)) for p, s in bids), tuple(BookLevel(D(p), D(s)) for p, s in asks), 0
    )


# Two levels a side, mid (99 + 100) / 2 = 99.5.
TWO_LEVEL = book(bids=[("99", "1.5"), ("98", "3")], asks=[("100", "1"), ("101", "2")])


@pytest.mark.parametrize(
    ("rate", "interval", "hourly"),
    [
        ("0.0001", "8", "0.0000125"),  # 1 bp per 8 h
        ("0.0001", "4", "0.000025"),  # the same number on a 4 h symbol is twice as much per hour
        ("0.0001", "1", "0.0001"),  # and eight times as much on a 1 h venue
        ("-0.0008", "8", "-0.0001"),  # negative: longs receive
        ("0", "8", "0"),
    ],
)
def test_hourly_rate(rate: str, interval: str, hourly: str) -> None:
    assert hourly_rate(D(rate), D(interval)) == D(hourly)


@pytest.mark.parametrize("interval", ["0", "-8"])
def test_hourly_rate_rejects_non_positive_interval(interval: str) -> None:
    with pytest.raises(ValueError):
        hourly_rate(D("0.0001"), D(interval))


def test_apr_from_hourly() -> None:
    assert apr_from_hourly(D("0.0000125")) == D("0.1095")  # 0.0000125 x 8760
    assert apr_from_hourly(D("-0.00001")) == D("-0.0876")


@pytest.mark.parametrize(
    ("long_rate", "long_h", "short_rate", "short_h", "spread"),
    [
        # 1 h vs 8 h: 0.0001/8 - 0.00001/1 = 0.0000125 - 0.00001
        ("0.00001", "1", "0.0001", "8", "0.0000025"),
        # 8 h vs 4 h with the SAME per-interval number: 0.0001/4 - 0.0001/8 (naive comparison says 0)
        ("0.0001", "8", "0.0001", "4", "0.0000125"),
        # 4 h vs 1 h: 0.00003/1 - 0.0002/4 = 0.00003 - 0.00005 -> this direction loses
        ("0.0002", "4", "0.00003", "1", "-0.00002"),
        # long a NEGATIVE 8 h rate (longs receive 0.00005/h), short a positive 1 h one (0.00001/h)
        ("-0.0004", "8", "0.00001", "1", "0.00006"),
        # both negative: the short pays 0.00001/h, the long receives 0.00005/h
        ("-0.0004", "8", "-0.00001", "1", "0.00004"),
    ],
)
def test_pair_spread_hourly(long_rate: str, long_h: str, short_rate: str, short_h: str, spread: str) -> None:
    assert pair_spread_hourly(D(long_rate), D(long_h), D(short_rate), D(short_h)) == D(spread)


def test_walk_two_level_book_by_hand() -> None:
    # BUY 2: 1 @ 100 + 1 @ 101 = 201 -> VWAP 100.5; vs mid: 201 - 2 x 99.5 = 2
    assert fill_notional_usd(TWO_LEVEL, OrderSide.BUY, D(2)) == D(201)
    assert vwap(TWO_LEVEL, OrderSide.BUY, D(2)) == D("100.5")
    assert slippage_usd(TWO_LEVEL, OrderSide.BUY, D(2)) == D(2)
    # SELL 2: 1.5 @ 99 + 0.5 @ 98 = 148.5 + 49 = 197.5 -> VWAP 98.75; vs mid: 199 - 197.5 = 1.5
    assert fill_notional_usd(TWO_LEVEL, OrderSide.SELL, D(2)) == D("197.5")
    assert vwap(TWO_LEVEL, OrderSide.SELL, D(2)) == D("98.75")
    assert slippage_usd(TWO_LEVEL, OrderSide.SELL, D(2)) == D("1.5")
    # exactly the whole ask side (3) fills: 100 + 2 x 101 = 302
    assert fill_notional_usd(TWO_LEVEL, OrderSide.BUY, D(3)) == D(302)


@pytest.mark.parametrize(("side", "size"), [(OrderSide.BUY, "3.0001"), (OrderSide.SELL, "4.6")])
def test_insufficient_depth_is_none(side: OrderSide, size: str) -> None:
    assert fill_notional_usd(TWO_LEVEL, side, D(size)) is None
    assert vwap(TWO_LEVEL, side, D(size)) is None
    assert slippage_usd(TWO_LEVEL, side, D(size)) is None


def test_slippage_without_mid_is_none() -> None:
    one_sided = book(bids=[], asks=[("100", "5")])
    assert slippage_usd(one_sided, OrderSide.BUY, D(1)) is None


# Short venue: bid 100.5 / ask 100.7, mid 100.6, deep.
SHORT_BOOK = book(bids=[("100.5", "5")], asks=[("100.7", "5")], venue="s")
FEES_5 = FeeSchedule(maker_bps=D("1"), taker_bps=D("5"))
FEES_2 = FeeSchedule(maker_bps=D("-1"), taker_bps=D("2"))


def test_book_costs_round_trip_by_hand() -> None:
    # LONG 2 on TWO_LEVEL (mid 99.5), SHORT 2 on SHORT_BOOK (mid 100.6).
    # long entry  = buy 2 on TWO_LEVEL  = 201      long exit  = sell 2 on TWO_LEVEL = 197.5
    # short entry = sell 2 on SHORT_BOOK = 201.0   short exit = buy 2 on SHORT_BOOK = 201.4
    costs = book_costs(TWO_LEVEL, SHORT_BOOK, FEES_5, FEES_2, D(2), Liquidity.TAKER)
    assert costs is not None
    assert costs.entry_fees_usd == D("0.1407")  # 0.0005 x 201 + 0.0002 x 201.0 = 0.1005 + 0.0402
    assert costs.exit_fees_usd == D("0.13903")  # 0.0005 x 197.5 + 0.0002 x 201.4 = 0.09875 + 0.04028
    assert costs.entry_slippage_usd == D("2.2")  # (201 - 199) + (201.2 - 201.0)
    assert costs.exit_slippage_usd == D("1.7")  # (199 - 197.5) + (201.4 - 201.2)
    assert costs.basis_usd == 0  # long mid 99.5 BELOW short mid 100.6: favourable, not counted
    assert costs.total_usd == D("4.17973")
    assert (costs.long_entry_price, costs.short_entry_price) == (D("100.5"), D("100.5"))
    assert costs.fees_usd == D("0.27973") and costs.slippage_usd == D("3.9")


def test_book_costs_adverse_basis_and_maker_fees() -> None:
    # LONG on SHORT_BOOK (mid 100.6) / SHORT on TWO_LEVEL (mid 99.5): adverse basis
    # (100.6 - 99.5) / 100.6 x (2 x 100.6) = 1.1 x 2 = 2.2. Maker fees: 1 bp and -1 bp (rebate).
    costs = book_costs(SHORT_BOOK, TWO_LEVEL, FEES_5, FEES_2, D(2), Liquidity.MAKER)
    assert costs is not None
    assert costs.basis_usd == D("2.2")
    # long: buy 201.4 / sell 201.0 at 1 bp; short: sell 197.5 / buy 201 at -1 bp
    assert costs.entry_fees_usd == D("0.0001") * D("201.4") - D("0.0001") * D("197.5")
    assert costs.exit_fees_usd == D("0.0001") * D("201.0") - D("0.0001") * D("201")


@pytest.mark.parametrize(
    "broken",
    [
        book(bids=[("101", "5")], asks=[("100", "5")]),  # crossed
        book(bids=[("99", "5")], asks=[("100", "0.1"), ("99.5", "5")]),  # asks out of order
        book(bids=[], asks=[("100", "5")]),  # one-sided
        book(bids=[("99", "1")], asks=[("100", "5")]),  # the exit (sell 2) lacks depth
    ],
)
def test_book_costs_rejects_bad_or_thin_books(broken: OrderBook) -> None:
    assert book_costs(broken, SHORT_BOOK, FEES_5, FEES_2, D(2)) is None


def test_estimated_costs_by_hand() -> None:
    # long 2 @ 100 = 200, short 2 @ 101 = 202; fees per execution pair 200 x 0.0005 + 202 x 0.0002 = 0.1404
    # slippage 2 bp per execution: (200 + 202) x 0.0002 = 0.0804; basis favourable -> 0
    costs = estimated_costs(D(100), D(101), D(2), FEES_5, FEES_2, Liquidity.TAKER, D(2))
    assert costs == CostBreakdown(D("0.1404"), D("0.1404"), D("0.0804"), D("0.0804"), D(0), D(100), D(101))
    assert costs.total_usd == D("0.4416")
    adverse = estimated_costs(D(101), D(100), D(2), FEES_5, FEES_2, Liquidity.TAKER, D(2))
    assert adverse.basis_usd == D(2)  # (101 - 100) / 101 x 202


@pytest.mark.parametrize(
    ("long_price", "short_price", "notional", "basis"),
    [("100", "101", "1000", "0"), ("101", "100", "1010", "10"), ("100", "100", "5", "0"), ("200", "150", "400", "100")],
)
def test_adverse_basis_only(long_price: str, short_price: str, notional: str, basis: str) -> None:
    assert adverse_basis_usd(D(long_price), D(short_price), D(notional)) == D(basis)


@pytest.mark.parametrize(
    ("liquidity", "fees", "fee"),
    [(Liquidity.TAKER, FEES_5, "0.5"), (Liquidity.MAKER, FEES_5, "0.1"), (Liquidity.MAKER, FEES_2, "-0.1")],
)
def test_fee_usd_picks_liquidity(liquidity: Liquidity, fees: FeeSchedule, fee: str) -> None:
    assert fee_usd(D(1000), fees, liquidity) == D(fee)


@pytest.mark.parametrize(
    ("spread", "horizon", "notional", "costs", "net", "breakeven"),
    [
        ("0.0000125", "24", "10000", "3", "0", "24"),  # 0.0000125 x 24 x 10000 = 3; 3 / 0.125 = 24 h
        ("0.00005", "24", "10000", "19", "-7", "38"),  # 12 - 19; 19 / 0.5 = 38 h
        ("0.00005", "168", "10000", "19", "65", "38"),
        ("0", "24", "10000", "5", "-5", None),  # never breaks even
        ("-0.00001", "24", "10000", "5", "-7.4", None),
        ("0.00001", "24", "10000", "-1", "3.4", "0"),  # rebates exceed costs: profitable from the start
    ],
)
def test_expected_net_and_breakeven(
    spread: str, horizon: str, notional: str, costs: str, net: str, breakeven: str | None
) -> None:
    assert expected_net(D(spread), D(horizon), D(notional), D(costs)) == D(net)
    expected = None if breakeven is None else D(breakeven)
    assert breakeven_hours(D(costs), D(spread), D(notional)) == expected


@pytest.mark.parametrize(
    ("a", "b", "step"),
    [("0.001", "0.01", "0.01"), ("0.01", "0.001", "0.01"), ("0.02", "0.03", "0.06"), ("1", "0.1", "1"),
     ("5", "2", "10"), ("0.5", "0.5", "0.5")],
)
def test_common_lot_step(a: str, b: str, step: str) -> None:
    assert common_lot_step(D(a), D(b)) == D(step)


@pytest.mark.parametrize(
    ("value", "step", "floored"),
    [("33.3333", "0.1", "33.3"), ("33.3333", "0.001", "33.333"), ("0.05", "0.1", "0"), ("12", "5", "10")],
)
def test_floor_to_step(value: str, step: str, floored: str) -> None:
    assert floor_to_step(D(value), D(step)) == D(floored)


# ---------------------------------------------------------------- properties

rates = st.decimals(min_value=D("-0.01"), max_value=D("0.01"), places=8)
intervals = st.sampled_from([D(1), D(2), D(4), D(8)])
money = st.decimals(min_value=D("0.01"), max_value=D(1_000_000), places=2)
hours = st.decimals(min_value=D("0.01"), max_value=D(10_000), places=2)
spreads = st.decimals(min_value=D("0.0000001"), max_value=D("0.01"), places=8)
fee_bps = st.decimals(min_value=D(-2), max_value=D(20), places=2)


@given(rates, intervals, rates, intervals)
def test_swapping_legs_flips_the_spread_sign(r_a: D, h_a: D, r_b: D, h_b: D) -> None:
    assert pair_spread_hourly(r_a, h_a, r_b, h_b) == -pair_spread_hourly(r_b, h_b, r_a, h_a)


@st.composite
def books(draw: st.DrawFn) -> OrderBook:
    mid_ticks = draw(st.integers(1_000, 100_000))
    half = draw(st.integers(0, 20))
    levels = draw(st.integers(1, 5))
    bids, asks = [], []
    bid, ask = mid_ticks - half, mid_ticks + half
    for _ in range(levels):
        bids.append(BookLevel(D(bid) / 100, D(draw(st.integers(1, 500))) / 10))
        asks.append(BookLevel(D(ask) / 100, D(draw(st.integers(1, 500))) / 10))
        bid -= draw(st.integers(1, 30))
        ask += draw(st.integers(1, 30))
    return OrderBook("v", "X", tuple(bids), tuple(asks), 0)


@settings(max_examples=150)
@given(books(), books(), fee_bps, fee_bps, st.decimals(min_value=D(0), max_value=D(5), places=2),
       st.decimals(min_value=D("0.1"), max_value=D(5), places=1), spreads, hours)
def test_higher_fees_never_raise_net(
    long_book: OrderBook, short_book: OrderBook, long_bps: D, short_bps: D, extra_bps: D, size: D, spread: D,
    horizon: D,
) -> None:
    cheap = book_costs(long_book, short_book, FeeSchedule(long_bps, long_bps), FeeSchedule(short_bps, short_bps), size)
    dear = book_costs(long_book, short_book, FeeSchedule(long_bps + extra_bps, long_bps + extra_bps),
                      FeeSchedule(short_bps, short_bps), size)
    assert (cheap is None) == (dear is None)
    if cheap is None or dear is None:
        return
    notional = size * long_book.asks[0].price
    assert expected_net(spread, horizon, notional, dear.total_usd) <= expected_net(spread, horizon, notional,
                                                                                    cheap.total_usd)
    # and the costs themselves are never negative unless rebates pay for them
    if long_bps >= 0 and short_bps >= 0:
        assert cheap.total_usd >= 0


@given(spreads, hours, hours, money, money)
def test_longer_horizon_never_lowers_net_when_spread_positive(
    spread: D, h1: D, h2: D, notional: D, costs: D
) -> None:
    short, long_ = min(h1, h2), max(h1, h2)
    assert expected_net(spread, short, notional, costs) <= expected_net(spread, long_, notional, costs)


@given(spreads, money, money)
def test_net_at_breakeven_is_zero(spread: D, notional: D, costs: D) -> None:
    be = breakeven_hours(costs, spread, notional)
    assert be is not None and be > 0
    # Decimal keeps 28 significant digits; the residue is far below a millionth of a cent.
    assert abs(expected_net(spread, be, notional, costs)) <= costs * D("1e-20")


@given(st.decimals(min_value=D(-1), max_value=D(0), places=8), money, money)
def test_no_breakeven_without_positive_spread(spread: D, notional: D, costs: D) -> None:
    assert breakeven_hours(costs, spread, notional) is None
