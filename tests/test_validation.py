"""adapters/validation.py: absurd venue data is rejected with the field named."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from adapters.errors import AbsurdVenueData
from adapters.validation import DEFAULT_MAX_ABS_RATE_PER_HOUR, decimal_from_wire, validate_book, validate_quote
from bot.core.domain import BookLevel, FundingQuote, OrderBook

QUOTE = FundingQuote(
    venue="v",
    symbol="BTC",
    rate_per_interval=Decimal("0.0001"),
    interval_hours=Decimal(8),
    next_funding_ts_ms=1_772_352_000_000,
    mark_price=Decimal("66952.9"),
    ts_ms=1_772_323_200_000,
)
BOOK = OrderBook(
    venue="v",
    symbol="BTC",
    bids=(BookLevel(Decimal("100.0"), Decimal("1")), BookLevel(Decimal("99.9"), Decimal("2"))),
    asks=(BookLevel(Decimal("100.1"), Decimal("1.5")), BookLevel(Decimal("100.2"), Decimal("3"))),
    ts_ms=1,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.0001", Decimal("0.0001")), (" -1.5e-05 ", Decimal("-0.000015")), (0.1, Decimal("0.1")),
     (7, Decimal(7)), (Decimal("2.5"), Decimal("2.5")), (1e-05, Decimal("0.00001"))],
)
def test_decimal_from_wire_accepts_json_numbers(value: object, expected: Decimal) -> None:
    got = decimal_from_wire(value, "fundingRate", "bybit")
    assert got == expected and isinstance(got, Decimal)


def test_decimal_from_wire_float_goes_through_shortest_repr() -> None:
    assert str(decimal_from_wire(0.1, "price", "x")) == "0.1"  # not 0.1000000000000000055...


@pytest.mark.parametrize(
    "value", ["NaN", "nan", "sNaN", "Infinity", "-inf", float("nan"), float("inf"), True, False, None, "", "abc", [1], {}]
)
def test_decimal_from_wire_rejects_non_numbers_naming_the_field(value: object) -> None:
    with pytest.raises(AbsurdVenueData) as err:
        decimal_from_wire(value, "fundingRate", "bybit")
    assert "fundingRate" in str(err.value)
    assert err.value.venue == "bybit"


def test_valid_quote_is_returned_unchanged() -> None:
    assert validate_quote(QUOTE) is QUOTE


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rate_per_interval": Decimal("NaN")}, "rate_per_interval"),
        ({"rate_per_interval": Decimal("Infinity")}, "rate_per_interval"),
        ({"rate_per_interval": Decimal("-Infinity")}, "rate_per_interval"),
        ({"rate_per_interval": Decimal("1.79E+9")}, "rate_per_interval"),  # 1.79e+11 %, seen live
        ({"rate_per_interval": Decimal("-0.0801")}, "rate_per_interval"),  # just beyond 1 %/h over 8h
        ({"rate_per_interval": 0.0001}, "rate_per_interval"),  # a float slipped through
        ({"mark_price": Decimal(0)}, "mark_price"),
        ({"mark_price": Decimal("-66952.9")}, "mark_price"),
        ({"mark_price": Decimal("NaN")}, "mark_price"),
        ({"interval_hours": Decimal(0)}, "interval_hours"),
        ({"interval_hours": Decimal(-8)}, "interval_hours"),
        ({"interval_hours": Decimal("NaN")}, "interval_hours"),
        ({"ts_ms": -1}, "ts_ms"),
        ({"ts_ms": True}, "ts_ms"),
        ({"next_funding_ts_ms": 1.5}, "next_funding_ts_ms"),
    ],
)
def test_absurd_quote_is_rejected_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(AbsurdVenueData) as err:
        validate_quote(dataclasses.replace(QUOTE, **changes))
    assert field in str(err.value)
    assert err.value.venue == "v"


def test_rate_cap_is_on_the_hourly_normalised_rate() -> None:
    assert DEFAULT_MAX_ABS_RATE_PER_HOUR == Decimal("0.01")
    at_cap = dataclasses.replace(QUOTE, rate_per_interval=Decimal("0.08"))  # 0.08 / 8h = 0.01 /h
    assert validate_quote(at_cap) is at_cap
    hourly = dataclasses.replace(QUOTE, rate_per_interval=Decimal("0.0101"), interval_hours=Decimal(1))
    with pytest.raises(AbsurdVenueData, match="beyond the cap"):
        validate_quote(hourly)
    with pytest.raises(AbsurdVenueData):
        validate_quote(QUOTE, max_abs_rate_per_hour=Decimal("0.00001"))  # 0.0000125/h > custom cap


def test_valid_book_is_returned_unchanged_and_empty_sides_allowed() -> None:
    assert validate_book(BOOK) is BOOK
    one_sided = dataclasses.replace(BOOK, asks=())
    assert validate_book(one_sided) is one_sided


def _with(side: str, index: int, price: str | None = None, size: str | None = None) -> OrderBook:
    levels = list(getattr(BOOK, side))
    level = levels[index]
    levels[index] = BookLevel(
        Decimal(price) if price is not None else level.price, Decimal(size) if size is not None else level.size_base
    )
    return dataclasses.replace(BOOK, **{side: tuple(levels)})


@pytest.mark.parametrize(
    ("book", "needle"),
    [
        (_with("bids", 0, price="100.1"), "crossed"),  # bid == ask
        (_with("bids", 0, price="100.5"), "crossed"),  # bid > ask
        (_with("asks", 0, size="0"), "asks[0].size_base"),
        (_with("bids", 1, size="-2"), "bids[1].size_base"),
        (_with("bids", 1, price="0"), "bids[1].price"),
        (_with("asks", 1, price="NaN"), "asks[1].price"),
        (_with("asks", 0, price="Infinity"), "asks[0].price"),
        (_with("bids", 1, price="100.05"), "bids[1].price"),  # bids not descending
        (_with("bids", 1, price="100.0"), "bids[1].price"),  # duplicate level
        (_with("asks", 1, price="100.0"), "asks[1].price"),  # asks not ascending
    ],
)
def test_absurd_book_is_rejected_naming_the_field(book: OrderBook, needle: str) -> None:
    with pytest.raises(AbsurdVenueData) as err:
        validate_book(book)
    assert needle in str(err.value)


def test_book_with_float_price_is_rejected() -> None:
    book = dataclasses.replace(BOOK, bids=(BookLevel(100.0, Decimal(1)),))  # type: ignore[arg-type]
    with pytest.raises(AbsurdVenueData, match=r"bids\[0\].price: expected Decimal"):
        validate_book(book)
