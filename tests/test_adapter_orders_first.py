"""ccxt.pro stream messages step behind an entry's orders being started (``install_orders_first``),
in their arrival order; without a dispatch in progress they are handled at once."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from adapters.ccxt_common.client import install_orders_first
from bot.core import orders_first


class FakeExchange:
    """Just the part of a ccxt.pro exchange the hook touches: ``handle_message(client, message)``."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    def handle_message(self, client, message) -> None:
        if message == "boom":
            raise ValueError("bad message")
        self.handled.append(message)


@pytest.mark.anyio
async def test_messages_wait_behind_the_legs_in_arrival_order() -> None:
    ex = FakeExchange()
    install_orders_first(ex)
    ex.handle_message("client", "m0")
    assert ex.handled == ["m0"]  # no dispatch: at once
    order: list[str] = []
    with anyio.fail_after(10):
        orders_first.begin()
        try:
            ex.handle_message("client", "m1")  # delivered while the pass was deciding
            ex.handle_message("client", "m2")
            assert ex.handled == ["m0"]

            async def leg() -> None:
                order.append(f"leg saw {len(ex.handled)} handled")
                orders_first.end()

            async with anyio.create_task_group() as tg:
                tg.start_soon(leg)
            ex.handle_message("client", "m3")  # while m1, m2 wait: joins them, never overtakes
            while len(ex.handled) < 4:
                await anyio.lowlevel.checkpoint()
        finally:
            if orders_first.in_progress():
                orders_first.end()
    assert order == ["leg saw 1 handled"]
    assert ex.handled == ["m0", "m1", "m2", "m3"]


@pytest.mark.anyio
async def test_a_dispatch_that_never_ends_delays_messages_a_few_loop_passes_only() -> None:
    ex = FakeExchange()
    install_orders_first(ex)
    orders_first.begin()
    try:
        ex.handle_message("client", "m1")
        with anyio.fail_after(10):
            while not ex.handled:
                await anyio.lowlevel.checkpoint()
        assert ex.handled == ["m1"]
    finally:
        orders_first.end()


def test_a_handler_error_is_raised_after_the_other_waiting_messages() -> None:
    ex = FakeExchange()
    install_orders_first(ex)
    errors: list[BaseException] = []

    async def main() -> None:
        import asyncio

        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))
        orders_first.begin()
        ex.handle_message("client", "boom")
        ex.handle_message("client", "after")
        orders_first.end()
        with anyio.fail_after(10):
            while not ex.handled:
                await anyio.lowlevel.checkpoint()

    anyio.run(main)
    assert ex.handled == ["after"]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert not orders_first.in_progress()
