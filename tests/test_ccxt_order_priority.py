"""Order placements, the reads they need before they leave, and the look-ups of their outcome skip
ccxt's serial client-side throttle (their cost still charged to it); every other request keeps it.

ccxt makes each request wait until the previous requests' cost has drained: an order queued behind
the background account reads left one leg seconds after the other. Here the throttle never drains,
as if a long read were ahead in the queue.
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ccxt")

from adapters.ccxt_common.client import build_exchange, order_priority  # noqa: E402


class _NeverDrains:
    """ccxt's leaky-bucket throttler (called with a cost, returns the future a request waits on) whose
    queue ahead never empties; ``config["tokens"]`` is its bucket, as in ccxt."""

    def __init__(self) -> None:
        self.config = {"algorithm": "leakyBucket", "tokens": 0, "cost": 1.0}

    def __call__(self, cost=None) -> asyncio.Future:
        return asyncio.get_running_loop().create_future()


@pytest.mark.parametrize("venue", ["hyperliquid", "binanceusdm", "okx"])
def test_an_order_request_skips_the_throttle_and_a_read_waits_in_it(venue: str) -> None:
    async def main() -> tuple[bool, bool]:
        exchange = build_exchange(venue, credentials=None, base_url="http://127.0.0.1:9")
        try:
            exchange.throttler = throttler = _NeverDrains()
            with order_priority():
                order_passed = await asyncio.wait_for(exchange.throttle(7), timeout=30) is None
            assert throttler.config["tokens"] == -7, "an order skips the queue but its cost is still charged"
            read = asyncio.ensure_future(exchange.throttle(1))
            await asyncio.sleep(0.05)
            read_waits = not read.done()
            read.cancel()
            return order_passed, read_waits
        finally:
            await exchange.close()

    order_passed, read_waits = asyncio.run(main())
    assert order_passed, "an order must not queue behind reads in ccxt's throttle"
    assert read_waits, "reads keep ccxt's throttle"




def test_the_executor_sends_its_orders_with_priority_and_reads_without() -> None:
    from decimal import Decimal

    from fake_ccxt import FakeCcxtExchange

    from adapters.binanceusdm.dialect import DIALECT
    from adapters.ccxt_common import client
    from adapters.ccxt_common.execution import CcxtExecutor
    from adapters.markets import VenueMarket
    from bot.core.domain import Instrument, OrderRequest, OrderSide, OrderStatus

    seen: dict[str, list[bool]] = {"create_order": [], "fetch_order_book": [], "fetch_positions": [],
                                   "fetch_order": [], "fetch_my_trades": []}

    class RecordingExchange(FakeCcxtExchange):
        """Records, per call, whether ccxt's throttle would have been skipped."""

        async def create_order(self, *args, **kwargs):
            seen["create_order"].append(client._ORDER_PRIORITY.get())
            return await super().create_order(*args, **kwargs)

        async def fetch_order_book(self, *args, **kwargs):
            seen["fetch_order_book"].append(client._ORDER_PRIORITY.get())
            return await super().fetch_order_book(*args, **kwargs)

        async def fetch_positions(self, *args, **kwargs):
            seen["fetch_positions"].append(client._ORDER_PRIORITY.get())
            return await super().fetch_positions(*args, **kwargs)

        async def fetch_order(self, *args, **kwargs):
            seen["fetch_order"].append(client._ORDER_PRIORITY.get())
            return await super().fetch_order(*args, **kwargs)

        async def fetch_my_trades(self, *args, **kwargs):
            seen["fetch_my_trades"].append(client._ORDER_PRIORITY.get())
            return await super().fetch_my_trades(*args, **kwargs)

    market = VenueMarket(instrument=Instrument(
        venue="binanceusdm", symbol="BTC", venue_symbol="BTCUSDT", tick_size=Decimal("0.1"),
        lot_size_base=Decimal("0.001"), min_size_base=Decimal("0.001"), funding_interval_hours=Decimal(8)),
        ccxt_symbol="BTC/USDT:USDT")

    async def main() -> OrderStatus:
        executor = CcxtExecutor(RecordingExchange(), DIALECT, markets={"BTC": market}, max_slippage_bps=Decimal(10))
        report = await executor.place_order(OrderRequest("p1", "binanceusdm", "BTC", OrderSide.BUY, Decimal("0.5")))
        await executor.positions()
        # A close: its position read (reduce-only sizing) is part of sending it.
        await executor.place_order(OrderRequest("p2", "binanceusdm", "BTC", OrderSide.SELL, Decimal("0.5"),
                                                reduce_only=True))
        await executor.get_order("binanceusdm", "p1")  # a later look-up (reconciliation) is an ordinary read
        return report.status

    assert asyncio.run(main()) is OrderStatus.FILLED
    assert seen["create_order"] == [True, True], "the orders themselves skip ccxt's throttle"
    # The order's own pre-send reads (the REST book when the feed has none; a close's position) go
    # with it; a reconciliation read (positions()) keeps the throttle.
    assert seen["fetch_order_book"] and all(seen["fetch_order_book"]), "an order's own book read goes with it"
    assert seen["fetch_positions"] == [False, True], "positions() keeps it; a close's position read does not"
    # The order's own outcome (its status, then its trades) is looked up with the order's priority.
    assert seen["fetch_order"][0] is True and seen["fetch_my_trades"][0] is True
    assert seen["fetch_order"][-1] is False and seen["fetch_my_trades"][-1] is False


def test_precision_formatting_is_memoised_exactly_and_computed_once_per_order_value() -> None:
    """An order's price and amount are formatted by our "would ccxt alter it" check and again by
    ccxt building the request: the second time comes from the instance's memo (``build_exchange``
    installs it), with exactly the plain function's text; zero, NaN and Decimals are not kept."""
    import math
    import random
    from decimal import Decimal

    from ccxt.base.decimal_to_precision import (DECIMAL_PLACES, NO_PADDING, ROUND, TICK_SIZE, TRUNCATE,
                                                decimal_to_precision as plain)

    exchange = build_exchange("binanceusdm", credentials=None, base_url="http://127.0.0.1:9")
    calls: list[tuple] = []
    memoised = exchange.decimal_to_precision
    assert memoised is not plain and getattr(memoised, "_memoised", False)

    rng = random.Random(7)
    for _ in range(400):
        value = rng.choice([rng.uniform(0.0001, 100000), rng.randint(1, 10**6), f"{rng.uniform(0, 999):.6f}"])
        mode, counting = rng.choice([ROUND, TRUNCATE]), rng.choice([TICK_SIZE, DECIMAL_PLACES])
        precision = rng.choice([0.1, 0.001, 1e-05, 2, 3, "0.01"]) if counting == TICK_SIZE else rng.choice([0, 2, 3, 8])
        for _ in range(2):
            assert memoised(value, mode, precision, counting, NO_PADDING) == plain(value, mode, precision, counting, NO_PADDING)

    def counting_plain(*args):
        calls.append(args)
        return plain(*args)

    exchange.decimal_to_precision = counting_plain
    from adapters.ccxt_common.client import install_precision_memo

    install_precision_memo(exchange)
    price = 50050.1
    for _ in range(3):  # the check, ccxt's request building, a resend: one computation
        exchange.decimal_to_precision(price, ROUND, 0.1, TICK_SIZE, NO_PADDING)
    assert len([c for c in calls if c[0] == price]) == 1
    for value in (0.0, -0.0, math.nan, Decimal("1.5")):  # never kept: computed on every call
        before = len(calls)
        for _ in range(2):
            try:
                exchange.decimal_to_precision(value, ROUND, 0.1, TICK_SIZE, NO_PADDING)
            except Exception:  # noqa: BLE001 - ccxt refuses some of them; only the call count matters
                pass
        assert len(calls) == before + 2
