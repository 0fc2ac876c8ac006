"""The contract every ``bot.core.ports.Executor`` must pass (paper now, live adapters later).

Use it by subclassing ``ExecutorContract`` in a test module (the subclass name must start with
``Test``) and providing a ``harness`` fixture that returns a ``ContractHarness`` over a FRESH account
(flat on ``symbol``, no resting orders) whose book for ``symbol`` has depth for a few ``size_base``::

    from executor_contract import ContractHarness, ExecutorContract  # tests/ is on sys.path under pytest

    class TestPaperExecutorContract(ExecutorContract):
        @pytest.fixture
        def harness(self) -> ContractHarness:
            return ContractHarness(executor=..., venue="alpha", symbol="BTC", size_base=Decimal("0.5"))

All checks are computed from what the executor itself reports (fills, positions, balances), so the
same suite works against a live adapter pointed at a local fake venue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from adapters.errors import OrderRejected
from bot.core.domain import ZERO, Fill, OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from bot.core.ports import Executor


def _new_cid() -> str:
    return f"contract-{uuid.uuid4().hex[:16]}"


@dataclass
class ContractHarness:
    """What the contract needs to know about the executor under test."""

    executor: Executor
    venue: str
    symbol: str
    size_base: Decimal  # a valid order size (lot multiple, >= minimum) the book can fill at once
    resting_buy_price: Decimal | None = None  # a valid limit price far below the market; None skips
    crossing_buy_price: Decimal | None = None  # a valid limit price at or above the best ask; None skips
    check_balances: bool = True  # False where balances include things the contract cannot see
    new_cid: Callable[[], str] = field(default=_new_cid)

    def market(self, side: OrderSide, size_base: Decimal | None = None, *, reduce_only: bool = False,
               cid: str | None = None) -> OrderRequest:
        return OrderRequest(
            client_order_id=cid or self.new_cid(),
            venue=self.venue,
            symbol=self.symbol,
            side=side,
            size_base=self.size_base if size_base is None else size_base,
            order_type=OrderType.MARKET,
            reduce_only=reduce_only,
        )


async def position_base(harness: ContractHarness) -> Decimal:
    """The executor's signed position on the harness's venue/symbol (0 when it lists none)."""
    for p in await harness.executor.positions(harness.venue):
        if p.symbol == harness.symbol:
            return p.size_base
    return ZERO


def signed_cash_usd(fills: list[Fill] | tuple[Fill, ...]) -> Decimal:
    """Cash flow of fills: sell notional - buy notional - fees."""
    total = ZERO
    for f in fills:
        notional = f.price * f.size_base
        total += (notional if f.side is OrderSide.SELL else -notional) - f.fee_usd
    return total


class ExecutorContract:
    """Behaviour every executor must show. Subclasses provide the ``harness`` fixture."""

    @pytest.mark.anyio
    async def test_market_buy_fills_and_get_order_returns_it(self, harness: ContractHarness) -> None:
        request = harness.market(OrderSide.BUY)
        report = await harness.executor.place_order(request)
        assert report.status is OrderStatus.FILLED
        assert report.client_order_id == request.client_order_id
        assert report.filled_base == harness.size_base
        assert sum(f.size_base for f in report.fills) == harness.size_base
        assert report.avg_price is not None and report.avg_price > 0

        looked_up = await harness.executor.get_order(harness.venue, request.client_order_id)
        assert looked_up is not None
        assert looked_up.status is OrderStatus.FILLED
        assert looked_up.filled_base == report.filled_base
        assert [f.trade_id for f in looked_up.fills] == [f.trade_id for f in report.fills]
        assert await position_base(harness) == harness.size_base

    @pytest.mark.anyio
    async def test_duplicate_client_order_id_never_executes_twice(self, harness: ContractHarness) -> None:
        request = harness.market(OrderSide.BUY)
        first = await harness.executor.place_order(request)
        second = await harness.executor.place_order(request)
        assert second.status is first.status
        assert second.filled_base == first.filled_base
        assert [f.trade_id for f in second.fills] == [f.trade_id for f in first.fills]
        assert await position_base(harness) == harness.size_base
        fills = await harness.executor.fills_since(harness.venue, 0)
        assert sum(f.size_base for f in fills if f.client_order_id == request.client_order_id) == harness.size_base

    @pytest.mark.anyio
    async def test_reduce_only_never_flips_or_increases(self, harness: ContractHarness) -> None:
        await harness.executor.place_order(harness.market(OrderSide.BUY))
        assert await position_base(harness) == harness.size_base

        with pytest.raises(OrderRejected, match="reduce_only"):
            await harness.executor.place_order(harness.market(OrderSide.BUY, reduce_only=True))
        assert await position_base(harness) == harness.size_base

        report = await harness.executor.place_order(
            harness.market(OrderSide.SELL, harness.size_base * 3, reduce_only=True)
        )
        assert report.filled_base == harness.size_base
        assert await position_base(harness) == ZERO

        for side in (OrderSide.SELL, OrderSide.BUY):
            with pytest.raises(OrderRejected, match="reduce_only"):
                await harness.executor.place_order(harness.market(side, reduce_only=True))
        assert await position_base(harness) == ZERO

    @pytest.mark.anyio
    async def test_round_trip_balance_change_equals_fills_cash_flow(self, harness: ContractHarness) -> None:
        before = await harness.executor.balances_usd()
        buy = await harness.executor.place_order(harness.market(OrderSide.BUY))
        sell = await harness.executor.place_order(harness.market(OrderSide.SELL))
        assert buy.status is OrderStatus.FILLED and sell.status is OrderStatus.FILLED
        assert await position_base(harness) == ZERO
        fills = buy.fills + sell.fills
        buy_notional = sum(f.price * f.size_base for f in buy.fills)
        sell_notional = sum(f.price * f.size_base for f in sell.fills)
        fees = sum(f.fee_usd for f in fills)
        assert signed_cash_usd(fills) == sell_notional - buy_notional - fees
        if harness.check_balances:
            after = await harness.executor.balances_usd()
            assert after[harness.venue] - before[harness.venue] == sell_notional - buy_notional - fees

    @pytest.mark.anyio
    async def test_unknown_client_order_id_is_none(self, harness: ContractHarness) -> None:
        assert await harness.executor.cancel_order(harness.venue, "never-sent") is None
        assert await harness.executor.get_order(harness.venue, "never-sent") is None

    @pytest.mark.anyio
    async def test_fills_since_is_dedupable_by_trade_id(self, harness: ContractHarness) -> None:
        buy = await harness.executor.place_order(harness.market(OrderSide.BUY))
        sell = await harness.executor.place_order(harness.market(OrderSide.SELL))
        first = await harness.executor.fills_since(harness.venue, 0)
        again = await harness.executor.fills_since(harness.venue, 0)
        trade_ids = [f.trade_id for f in first]
        assert len(trade_ids) == len(set(trade_ids))
        merged = {f.trade_id: f for f in first + again}
        assert set(merged) == set(trade_ids)
        assert {f.trade_id for f in buy.fills + sell.fills} <= set(merged)
        latest = max(f.ts_ms for f in first)
        assert all(f.ts_ms >= latest for f in await harness.executor.fills_since(harness.venue, latest))
        assert await harness.executor.fills_since(harness.venue, latest + 1) == []

    @pytest.mark.anyio
    async def test_invalid_size_is_rejected_naming_the_field(self, harness: ContractHarness) -> None:
        with pytest.raises(OrderRejected, match="size_base"):
            await harness.executor.place_order(harness.market(OrderSide.BUY, ZERO))
        assert await position_base(harness) == ZERO

    @pytest.mark.anyio
    async def test_resting_order_can_be_cancelled(self, harness: ContractHarness) -> None:
        if harness.resting_buy_price is None:
            pytest.skip("harness has no non-crossing limit price")
        cid = harness.new_cid()
        request = OrderRequest(
            client_order_id=cid, venue=harness.venue, symbol=harness.symbol, side=OrderSide.BUY,
            size_base=harness.size_base, order_type=OrderType.LIMIT, limit_price=harness.resting_buy_price,
            time_in_force=TimeInForce.GTC,
        )
        placed = await harness.executor.place_order(request)
        assert placed.status is OrderStatus.NEW
        cancelled = await harness.executor.cancel_order(harness.venue, cid)
        assert cancelled is not None and cancelled.status is OrderStatus.CANCELED
        again = await harness.executor.cancel_order(harness.venue, cid)
        assert again is not None and again.status is OrderStatus.CANCELED

        second = OrderRequest(
            client_order_id=harness.new_cid(), venue=harness.venue, symbol=harness.symbol, side=OrderSide.BUY,
            size_base=harness.size_base, order_type=OrderType.LIMIT, limit_price=harness.resting_buy_price,
            time_in_force=TimeInForce.GTC,
        )
        await harness.executor.place_order(second)
        assert await harness.executor.cancel_all_orders(harness.venue) == 1
        assert await harness.executor.cancel_all_orders(harness.venue) == 0
        report = await harness.executor.get_order(harness.venue, second.client_order_id)
        assert report is not None and report.status is OrderStatus.CANCELED
        assert await position_base(harness) == ZERO

    # -- post-only (maker-taker entries) -------------------------------------------------------------

    def _post_only_buy(self, harness: ContractHarness, price: Decimal) -> OrderRequest:
        return OrderRequest(
            client_order_id=harness.new_cid(), venue=harness.venue, symbol=harness.symbol, side=OrderSide.BUY,
            size_base=harness.size_base, order_type=OrderType.LIMIT, limit_price=price,
            time_in_force=TimeInForce.GTC, post_only=True,
        )

    @pytest.mark.anyio
    async def test_post_only_that_would_cross_is_rejected_and_never_takes(self, harness: ContractHarness) -> None:
        if harness.crossing_buy_price is None:
            pytest.skip("harness has no crossing limit price")
        request = self._post_only_buy(harness, harness.crossing_buy_price)
        with pytest.raises(OrderRejected, match="post_only"):
            await harness.executor.place_order(request)
        assert await harness.executor.get_order(harness.venue, request.client_order_id) is None
        assert await position_base(harness) == ZERO

    @pytest.mark.anyio
    async def test_post_only_rests_unfilled_and_cancels(self, harness: ContractHarness) -> None:
        if harness.resting_buy_price is None:
            pytest.skip("harness has no non-crossing limit price")
        request = self._post_only_buy(harness, harness.resting_buy_price)
        placed = await harness.executor.place_order(request)
        assert placed.status is OrderStatus.NEW and placed.filled_base == ZERO and placed.fills == ()
        again = await harness.executor.place_order(request)  # same client id: the same order, not a second
        assert again.client_order_id == placed.client_order_id and again.status is OrderStatus.NEW
        cancelled = await harness.executor.cancel_order(harness.venue, request.client_order_id)
        assert cancelled is not None and cancelled.status is OrderStatus.CANCELED and cancelled.filled_base == ZERO
        assert await position_base(harness) == ZERO
