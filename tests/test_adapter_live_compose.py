"""adapters/live.py composition: absurd books never priced on; venues asked concurrently.

A live venue book whose mid is far from the same venue's mark price is never priced on.

Found by the live torture (bench/live_torture.py, ``absurd_book`` fault): a Hyperliquid book published
at 1000x the price was well formed, passed the boundary checks, and an exit order went out priced
from it. ``LiveMarketFeed.book`` (the engine's source) and the executors' price bound now refuse it.

``MultiVenueExecutor`` asks the venues for balances and positions concurrently (bench/live.py: asked
one after another, a strategy pass waited for the sum of every venue's rate-limited reads).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.live import LiveMarketFeed, mark_checked_book
from bot.core.domain import BookLevel, FundingQuote, OrderBook

D = Decimal


class FakePart:
    """A venue market-data part with one book and one quote."""

    venue = "hyperliquid"

    def __init__(self, mid: Decimal, mark: Decimal) -> None:
        self.dropped: list[str] = []
        self._book = OrderBook("hyperliquid", "BTC", (BookLevel(mid - 1, D(1)),), (BookLevel(mid + 1, D(1)),), 1)
        self._quote = FundingQuote("hyperliquid", "BTC", D("0.0001"), D(1), 3_600_000, mark, 1)

    def _drop(self, reason: str) -> None:
        self.dropped.append(reason)

    def book(self, symbol: str):
        return self._book if symbol == "BTC" else None

    def books(self):
        return [self._book]

    def quotes(self):
        return [self._quote]


def test_a_book_near_the_mark_is_served() -> None:
    part = FakePart(D(100_000), D(100_050))
    feed = LiveMarketFeed([part])
    assert feed.book("hyperliquid", "BTC") is part._book
    assert mark_checked_book(part, "BTC") is part._book
    assert feed.books() == [part._book]
    assert part.dropped == []


class KeyedPart(FakePart):
    """A part that keeps its quotes by symbol, as the real ones do (``quote``: no scan)."""

    def quote(self, symbol: str):
        return self._quote if symbol == "BTC" else None


def test_a_book_is_checked_once_per_book_and_mark_and_again_when_either_changes() -> None:
    """``LiveMarketFeed.book`` remembers its mark check while the part's book and the mark are the
    same (a strategy pass reads the books of the legs it ranks on every pass: a refused book is
    logged once, not on every read), and checks again as soon as either changes."""
    part = KeyedPart(D(100_000), D(100_050))
    feed = LiveMarketFeed([part])
    assert feed.book("hyperliquid", "BTC") is part._book
    part._quote = FundingQuote("hyperliquid", "BTC", D("0.0001"), D(1), 3_600_000, D(100), 2)  # the mark jumps
    assert feed.book("hyperliquid", "BTC") is None, "the same book against a new mark is checked again"
    assert feed.book("hyperliquid", "BTC") is None
    assert len(part.dropped) == 1 and "far from the mark price 100" in part.dropped[0]
    part._book = OrderBook("hyperliquid", "BTC", (BookLevel(D(99), D(1)),), (BookLevel(D(101), D(1)),), 3)
    assert feed.book("hyperliquid", "BTC") is part._book, "a new book near the mark is served"
    part._book = OrderBook("hyperliquid", "BTC", (BookLevel(D(99_999), D(1)),), (BookLevel(D(100_001), D(1)),), 4)
    assert feed.book("hyperliquid", "BTC") is None, "a new absurd book is refused at once"
    assert len(part.dropped) == 2


def test_a_book_at_1000x_the_mark_is_refused_and_named() -> None:
    part = FakePart(D(100_000_000), D(100_000))
    feed = LiveMarketFeed([part])
    assert feed.book("hyperliquid", "BTC") is None
    assert mark_checked_book(part, "BTC") is None
    assert feed.books() == []
    assert part.dropped and "far from the mark price" in part.dropped[0]


class SlowVenue:
    """An executor whose reads take a while (a venue's rate limit) or fail."""

    def __init__(self, name: str, fail: Exception | None = None) -> None:
        self.name = name
        self.fail = fail
        self.active = 0
        self.peak = 0

    async def _read(self, value):
        import anyio

        self.active += 1
        SlowVenue.together = max(getattr(SlowVenue, "together", 0), sum(v.active for v in VENUES_SEEN))
        await anyio.sleep(0.05)
        self.active -= 1
        if self.fail is not None:
            raise self.fail
        return value

    async def balances_usd(self):
        return await self._read({self.name: D(100)})

    async def positions(self, venue):
        return await self._read([])


VENUES_SEEN: list[SlowVenue] = []


@pytest.mark.anyio
async def test_venues_are_asked_concurrently_and_a_failure_is_raised_as_itself() -> None:
    from adapters.errors import TemporaryVenueError
    from adapters.live import MultiVenueExecutor

    VENUES_SEEN[:] = [SlowVenue("a"), SlowVenue("b"), SlowVenue("c")]
    SlowVenue.together = 0
    ex = MultiVenueExecutor({v.name: v for v in VENUES_SEEN})
    assert await ex.balances_usd() == {"a": D(100), "b": D(100), "c": D(100)}
    assert SlowVenue.together == 3  # all three in flight at once (a pass waits for the slowest, not the sum)
    assert await ex.positions(None) == []
    VENUES_SEEN[1].fail = TemporaryVenueError("b", "rate limited")
    with pytest.raises(TemporaryVenueError):  # the venue error class itself, never an exception group
        await ex.balances_usd()


def test_an_executor_is_refused_an_absurd_book_instead_of_being_sent_to_rest() -> None:
    """``None`` tells an executor "no book yet, read one by REST": an absurd feed book must not, or the
    executor reads the same corrupt data again and bounds a market order with it (the live torture's
    exit orders at 1000x went out this way: the engine had no book, the executor priced from REST)."""
    from adapters.errors import AbsurdVenueData
    from adapters.live import executor_book, refuse_absurd_book

    sane = FakePart(D(100_000), D(100_050))
    assert executor_book(sane, "BTC") is sane._book
    assert executor_book(sane, "ETH") is None  # none yet: the executor may read one by REST
    absurd = FakePart(D(100_000_000), D(100_000))
    with pytest.raises(AbsurdVenueData, match="far from the mark price"):
        executor_book(absurd, "BTC")
    with pytest.raises(AbsurdVenueData, match="far from the mark price"):
        refuse_absurd_book(sane, "BTC", absurd._book)  # a REST book checked against the feed's mark
    assert refuse_absurd_book(sane, "BTC", sane._book) is sane._book


@pytest.mark.anyio
@pytest.mark.parametrize("feed_book", ["absurd", "absent"])
async def test_the_ccxt_executor_never_bounds_a_market_order_with_an_absurd_book(feed_book: str) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_ccxt import FakeCcxtExchange

    from adapters.binanceusdm.dialect import DIALECT
    from adapters.ccxt_common.execution import CcxtExecutor
    from adapters.errors import AbsurdVenueData
    from adapters.live import executor_book, refuse_absurd_book
    from adapters.markets import VenueMarket
    from bot.core.domain import Instrument, OrderRequest, OrderSide

    # The venue publishes (stream and REST) at 1000x while its mark is 50 000.
    exchange = FakeCcxtExchange(bids=[(49_990_000.0, 5.0)], asks=[(50_010_000.0, 5.0)])
    part = FakePart(D(50_000_000), D(50_000))
    if feed_book == "absent":
        part._book = None
    part.venue = "binanceusdm"
    part._quote = FundingQuote("binanceusdm", "BTC", D("0.0001"), D(8), 3_600_000, D(50_000), 1)
    market = VenueMarket(instrument=Instrument(
        venue="binanceusdm", symbol="BTC", venue_symbol="BTCUSDT", tick_size=D("0.1"),
        lot_size_base=D("0.001"), min_size_base=D("0.001"), funding_interval_hours=D(8)),
        ccxt_symbol="BTC/USDT:USDT")
    executor = CcxtExecutor(exchange, DIALECT, markets={"BTC": market}, max_slippage_bps=D(10),
                            book_for=lambda symbol: executor_book(part, symbol),
                            check_book=lambda symbol, book: refuse_absurd_book(part, symbol, book))
    with pytest.raises(AbsurdVenueData):
        await executor.place_order(OrderRequest("absurd-1", "binanceusdm", "BTC", OrderSide.BUY, D("0.5")))
    assert exchange.sends == 0  # nothing priced on it, nothing sent


class FakeSpotPart(FakePart):
    """A spot market-data part: its quote's 'mark' is its own book's mid (spot has no mark price)."""

    def __init__(self, venue: str, mid: Decimal) -> None:
        super().__init__(mid, mid)
        self.venue = venue
        self._book = OrderBook(venue, "BTC", (BookLevel(mid - 1, D(1)),), (BookLevel(mid + 1, D(1)),), 1)
        self._quote = FundingQuote(venue, "BTC", D(0), D(1), 3_600_000, mid, 1)


def _perp(venue: str, mark: Decimal) -> FakePart:
    part = FakePart(mark, mark)
    part.venue = venue
    part._quote = FundingQuote(venue, "BTC", D("0.0001"), D(8), 3_600_000, mark, 1)
    return part


@pytest.mark.parametrize("perp_venue", ["okx", "bybit"])
def test_a_spot_book_is_checked_against_the_perpetuals_mark_not_against_itself(perp_venue: str) -> None:
    """A spot market has no mark price: its quote's price is its own book's mid, so checking the book
    against it proves nothing (an absurd spot book passed and priced the carry's spot leg). The feed
    checks spot books against the perpetual's mark of the coin: on the same exchange, else on another
    perp venue of the session."""
    from adapters.errors import AbsurdVenueData
    from adapters.live import executor_book, refuse_absurd_book

    absurd, sane = FakeSpotPart("okx:spot", D(50_000_000)), FakeSpotPart("okx:spot", D(50_010))
    LiveMarketFeed([_perp(perp_venue, D(50_000)), absurd])
    feed = LiveMarketFeed([_perp(perp_venue, D(50_000)), sane])
    assert feed.book("okx:spot", "BTC") is sane._book
    assert executor_book(sane, "BTC") is sane._book
    feed = LiveMarketFeed([_perp(perp_venue, D(50_000)), absurd])
    assert feed.book("okx:spot", "BTC") is None and feed.books() == [feed._parts[perp_venue]._book]
    with pytest.raises(AbsurdVenueData, match="far from the mark price 50000"):
        executor_book(absurd, "BTC")
    with pytest.raises(AbsurdVenueData, match="far from the mark price"):
        refuse_absurd_book(sane, "BTC", absurd._book)  # a REST spot book, checked like the feed's


def test_a_spot_book_with_no_perpetual_quoting_the_coin_is_served_unchecked() -> None:
    """Nothing to compare with (no perp venue quotes the coin yet): served as before (the carry needs a
    perp of the coin to enter at all, and its first quote arms the check)."""
    spot = FakeSpotPart("okx:spot", D(50_000_000))
    feed = LiveMarketFeed([spot])
    assert feed.book("okx:spot", "BTC") is spot._book


@pytest.mark.anyio
async def test_the_ccxt_spot_executor_sends_nothing_on_an_absurd_spot_book() -> None:
    """The composed spot executor (as adapters/registry.py builds it) refuses a feed book or a REST book
    far from the perpetual's mark: nothing is sent."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_ccxt import FakeCcxtExchange

    from adapters.ccxt_common.spot import CcxtSpotExecutor, spot_dialect
    from adapters.errors import AbsurdVenueData
    from adapters.live import executor_book, refuse_absurd_book
    from adapters.markets import VenueMarket
    from bot.core.domain import Instrument, InstrumentKind, OrderRequest, OrderSide

    exchange = FakeCcxtExchange(bids=[(49_990_000.0, 5.0)], asks=[(50_010_000.0, 5.0)])
    for feed_book in ("absurd", "absent"):
        spot = FakeSpotPart("okx:spot", D(50_000_000))
        if feed_book == "absent":
            spot._book = None
        LiveMarketFeed([_perp("okx", D(50_000)), spot])
        market = VenueMarket(instrument=Instrument(
            venue="okx:spot", symbol="BTC", venue_symbol="BTC-USDT", tick_size=D("0.1"), lot_size_base=D("0.0001"),
            min_size_base=D("0.0001"), funding_interval_hours=D(1), kind=InstrumentKind.SPOT), ccxt_symbol="BTC/USDT")
        executor = CcxtSpotExecutor(exchange, spot_dialect("okx:spot"), markets={"BTC": market}, max_slippage_bps=D(10),
                                    book_for=lambda symbol, part=spot: executor_book(part, symbol),
                                    check_book=lambda symbol, book, part=spot: refuse_absurd_book(part, symbol, book))
        with pytest.raises(AbsurdVenueData):
            await executor.place_order(OrderRequest(f"spot-{feed_book}", "okx:spot", "BTC", OrderSide.BUY, D("0.5")))
    assert exchange.sends == 0
