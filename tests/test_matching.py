"""Pure execution math: book walking, fees, position netting (hand-computed cases + properties)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.domain import BookLevel, OrderSide
from paper.matching import (
    LevelFill,
    crossing_depth_base,
    deplete,
    fee_usd,
    floor_to_lot,
    net_fill,
    walk_book,
)

ASKS = (BookLevel(D("100"), D("1")), BookLevel(D("101"), D("2")), BookLevel(D("102"), D("3")))
BIDS = (BookLevel(D("99"), D("1")), BookLevel(D("98"), D("2")), BookLevel(D("97"), D("3")))


def test_buy_within_first_two_levels_vwap_by_hand() -> None:
    walk = walk_book(ASKS, OrderSide.BUY, D("2.5"))
    assert walk.fills == (LevelFill(D("100"), D("1")), LevelFill(D("101"), D("1.5")))
    assert walk.filled_base == D("2.5")
    assert walk.notional_usd == D("251.5")  # 100 + 151.5
    assert walk.vwap == D("100.6")  # 251.5 / 2.5
    assert walk.is_complete


def test_sell_walks_bids_downwards() -> None:
    walk = walk_book(BIDS, OrderSide.SELL, D("4"))
    assert walk.fills == (LevelFill(D("99"), D("1")), LevelFill(D("98"), D("2")), LevelFill(D("97"), D("1")))
    assert walk.notional_usd == D("392")  # 99 + 196 + 97
    assert walk.vwap == D("98")


def test_partial_when_depth_runs_out() -> None:
    walk = walk_book(ASKS, OrderSide.BUY, D("10"))
    assert walk.filled_base == D("6")
    assert walk.remaining_base == D("4")
    assert not walk.is_complete
    assert walk.notional_usd == D("608")  # 100 + 202 + 306
    assert walk.vwap == D("608") / D("6")


def test_limit_price_caps_the_walk() -> None:
    buy = walk_book(ASKS, OrderSide.BUY, D("5"), limit_price=D("101"))
    assert buy.fills == (LevelFill(D("100"), D("1")), LevelFill(D("101"), D("2")))
    sell = walk_book(BIDS, OrderSide.SELL, D("5"), limit_price=D("98.5"))
    assert sell.fills == (LevelFill(D("99"), D("1")),)
    nothing = walk_book(ASKS, OrderSide.BUY, D("1"), limit_price=D("99.9"))
    assert nothing.fills == () and nothing.vwap is None and nothing.remaining_base == D("1")


def test_lot_size_rounds_partial_fill_down_to_whole_lots() -> None:
    asks = (BookLevel(D("100"), D("0.37")),)
    walk = walk_book(asks, OrderSide.BUY, D("1"), lot_size_base=D("0.1"))
    assert walk.filled_base == D("0.3")


def test_empty_book_and_non_positive_size_fill_nothing() -> None:
    assert walk_book((), OrderSide.BUY, D("1")).fills == ()
    assert walk_book(ASKS, OrderSide.BUY, D("0")).fills == ()


def test_crossing_depth_and_deplete() -> None:
    assert crossing_depth_base(ASKS, OrderSide.BUY, D("101")) == D("3")
    assert crossing_depth_base(ASKS, OrderSide.BUY, None) == D("6")
    assert crossing_depth_base(BIDS, OrderSide.SELL, D("99.5")) == D("0")
    left = deplete(ASKS, {D("100"): D("1"), D("101"): D("0.5")})
    assert left == (BookLevel(D("101"), D("1.5")), BookLevel(D("102"), D("3")))


def test_floor_to_lot() -> None:
    assert floor_to_lot(D("0.37"), D("0.1")) == D("0.3")
    assert floor_to_lot(D("0.37"), None) == D("0.37")
    assert floor_to_lot(D("5"), D("2")) == D("4")


@pytest.mark.parametrize(
    ("price", "size", "rate", "expected"),
    [
        (D("100"), D("2"), D("0.0005"), D("0.1")),  # 5 bps taker
        (D("101"), D("1.5"), D("0.0005"), D("0.07575")),
        (D("100"), D("1"), D("-0.0001"), D("-0.01")),  # -1 bp maker rebate
        (D("100"), D("1"), D("0"), D("0")),
    ],
)
def test_fee_usd(price: D, size: D, rate: D, expected: D) -> None:
    assert fee_usd(price, size, rate) == expected


@pytest.mark.parametrize(
    ("size", "entry", "side", "price", "qty", "new_size", "new_entry", "realized"),
    [
        ("0", "0", OrderSide.BUY, "100", "1", "1", "100", "0"),  # open long
        ("0", "0", OrderSide.SELL, "100", "2", "-2", "100", "0"),  # open short
        ("1", "100", OrderSide.BUY, "110", "1", "2", "105", "0"),  # add: average entry
        ("2", "105", OrderSide.SELL, "110", "1", "1", "105", "5"),  # reduce long at a profit
        ("-2", "100", OrderSide.BUY, "90", "2", "0", "0", "20"),  # close short at a profit
        ("-2", "100", OrderSide.BUY, "110", "1", "-1", "100", "-10"),  # reduce short at a loss
        ("1", "100", OrderSide.SELL, "110", "3", "-2", "110", "10"),  # flip: close 1, open 2 short at 110
    ],
)
def test_net_fill_table(size: str, entry: str, side: OrderSide, price: str, qty: str, new_size: str,
                        new_entry: str, realized: str) -> None:
    out = net_fill(D(size), D(entry), side, D(price), D(qty))
    assert (out.size_base, out.entry_price, out.realized_pnl_usd) == (D(new_size), D(new_entry), D(realized))


_levels = st.lists(
    st.tuples(st.integers(1, 500), st.integers(1, 50)), min_size=0, max_size=6, unique_by=lambda t: t[0]
)


@given(levels=_levels, size=st.integers(1, 400), limit=st.one_of(st.none(), st.integers(1, 500)))
def test_walk_never_overfills_and_respects_the_limit(levels: list[tuple[int, int]], size: int,
                                                     limit: int | None) -> None:
    asks = tuple(BookLevel(D(p), D(s) / 10) for p, s in sorted(levels))
    lim = None if limit is None else D(limit)
    walk = walk_book(asks, OrderSide.BUY, D(size) / 10, limit_price=lim)
    assert walk.filled_base <= D(size) / 10
    assert walk.filled_base <= sum((lv.size_base for lv in asks), D(0))
    assert all(lim is None or f.price <= lim for f in walk.fills)
    if walk.fills:
        assert asks[0].price <= walk.vwap <= walk.fills[-1].price
    depth = crossing_depth_base(asks, OrderSide.BUY, lim)
    assert walk.filled_base == min(D(size) / 10, depth)


@given(st.lists(st.tuples(st.sampled_from([OrderSide.BUY, OrderSide.SELL]), st.integers(1, 1000),
                          st.integers(1, 20)), min_size=1, max_size=12))
def test_netting_realizes_the_cash_flow_once_flat(trades: list[tuple[OrderSide, int, int]]) -> None:
    size, entry, realized = D(0), D(0), D(0)
    cash = D(0)
    for side, price, qty in trades:
        out = net_fill(size, entry, side, D(price), D(qty))
        size, entry, realized = out.size_base, out.entry_price, realized + out.realized_pnl_usd
        cash += D(price) * D(qty) * (1 if side is OrderSide.SELL else -1)
    assert size == sum((D(q) if s is OrderSide.BUY else -D(q) for s, _, q in trades), D(0))
    # Mark-to-market identity: realized + unrealized at the entry price equals the cash flow
    # plus the value of the open position at that price (exact up to Decimal division rounding).
    assert abs((realized) - (cash + size * entry)) < D("1e-18")
