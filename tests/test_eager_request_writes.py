"""An HTTP request's body leaves with the request on Python 3.11 (adapters/ccxt_common/eager_writes.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from adapters.ccxt_common.eager_writes import carry_on, install_eager_request_writes, start_eagerly

needs_311 = pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+: aiohttp starts the body writer eagerly itself")


async def _finishes_at_once(log: list[str]) -> str:
    log.append("ran")
    return "done"


async def _waits_on(future: asyncio.Future, log: list[str]) -> str:
    log.append("before")
    try:
        value = await future
    except ValueError as exc:
        log.append(f"raised {exc}")
        return "handled"
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    log.append(f"got {value}")
    await asyncio.sleep(0)  # a bare yield too
    log.append("after")
    return value


def _task(loop):
    return lambda coro: asyncio.Task(coro, loop=loop)


@pytest.mark.anyio
async def test_a_coroutine_that_finishes_in_its_first_step_runs_in_the_caller() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    future = start_eagerly(loop, _finishes_at_once(log), _task(loop))
    assert log == ["ran"] and future.done() and future.result() == "done"  # before any loop pass


@pytest.mark.anyio
async def test_one_that_waits_carries_on_like_a_task_with_results_errors_and_cancellation() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    gate = loop.create_future()
    task = start_eagerly(loop, _waits_on(gate, log), _task(loop))
    assert log == ["before"] and not task.done()
    await asyncio.sleep(0)
    assert not task.done()  # still waiting for the gate
    gate.set_result("value")
    assert await task == "value" and log == ["before", "got value", "after"]

    log.clear()
    gate = loop.create_future()
    task = start_eagerly(loop, _waits_on(gate, log), _task(loop))
    gate.set_exception(ValueError("boom"))
    assert await task == "handled" and log == ["before", "raised boom"]  # the coroutine read its own error

    log.clear()
    gate = loop.create_future()
    task = start_eagerly(loop, _waits_on(gate, log), _task(loop))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.cancelled() and log == ["before", "cancelled"]  # the future it waited on was cancelled


@pytest.mark.anyio
async def test_a_cancellation_after_the_wait_ended_is_thrown_into_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    gate = loop.create_future()
    coro = _waits_on(gate, log)
    awaited = coro.send(None)
    assert awaited is gate
    gate.set_result("late")
    runner = asyncio.ensure_future(carry_on(coro, awaited))
    runner.cancel()  # before it ran: the gate is already done, so the coroutine gets the cancellation
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert log == ["before", "cancelled"]


async def _post_with_other_work_queued(session, url: str) -> list[str]:
    """POST (on a kept-alive connection) right after queueing other work; what that work saw."""
    import asyncio.selector_events as selector_events

    loop = asyncio.get_running_loop()
    writes: list[bytes] = []
    seen: list[str] = []
    transport_type = selector_events._SelectorSocketTransport
    original_write = transport_type.write

    def write(this, data, _orig=original_write):
        writes.append(bytes(data))
        return _orig(this, data)

    async def other_work() -> None:  # queued before the request: it runs on the loop's next pass
        seen.append("after the body" if any(b"ORDER-BODY" in w for w in writes) else "before the body")

    transport_type.write = write
    try:
        loop.create_task(other_work())
        async with session.post(url, data=b"ORDER-BODY") as response:
            assert response.status == 200 and await response.text() == "ORDER-BODY"
    finally:
        transport_type.write = original_write
    return seen


@needs_311
@pytest.mark.anyio
async def test_aiohttp_writes_a_post_body_to_the_socket_before_the_loop_runs_anything_else() -> None:
    import aiohttp
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=(await request.read()).decode())

    app = web.Application()
    app.router.add_post("/order", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/order"
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"warm") as response:  # the connection is kept alive
                await response.read()
            assert await _post_with_other_work_queued(session, url) == ["before the body"]  # aiohttp on 3.11
            assert install_eager_request_writes() is True
            assert install_eager_request_writes() is False  # once per loop
            assert await _post_with_other_work_queued(session, url) == ["after the body"]
    finally:
        loop.set_task_factory(previous)
        await runner.cleanup()


@needs_311
@pytest.mark.anyio
async def test_building_a_ccxt_venue_installs_it_on_the_running_loop() -> None:
    pytest.importorskip("ccxt")
    from adapters.ccxt_common.client import build_exchange

    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    try:
        exchange = build_exchange("binanceusdm", credentials=None)
        assert getattr(loop.get_task_factory(), "_eager_request_writes", False) is True
        await exchange.close()
    finally:
        loop.set_task_factory(previous)
