"""An HTTP request's body written when the request is sent, not one event-loop pass later (Python 3.11).

aiohttp sends a request's headers at once but hands its body to a task of its own
(``ClientRequest.write_bytes``). From Python 3.12 it starts that task eagerly, so a small body goes
to the socket inside the same call; on 3.11 the task only runs on the loop's next pass, behind every
callback already queued there. On an entry that is the other leg's whole preparation and the
entry's journal rows: bench/live.py measured an entry order's bytes reaching the socket ~2 ms after
ccxt handed the request to aiohttp (Binance USD-M and Hyperliquid orders, all POSTs with a body).

``install_eager_request_writes`` gives the running loop a task factory that starts exactly that
coroutine (identified by its code object) the way 3.12's eager tasks do: its first step runs in the
caller; finished there (the usual case: the body fits the socket buffer), the caller gets a finished
future; if it must wait (back-pressure), a task drives it on from that wait (``carry_on``). Every other coroutine gets the loop's usual task. Nothing is installed
on 3.12 or later, where aiohttp does this itself. (As with 3.12's eager tasks the first step runs
in the caller's context; aiohttp's body writer sets no context variables.)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any


def _write_bytes_code() -> Any:
    from aiohttp.client_reqrep import ClientRequest

    return ClientRequest.write_bytes.__code__


def install_eager_request_writes(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Install the factory on ``loop`` (default: the running one); True when installed now, False
    on Python 3.12+, when it is already there, or when there is no running loop."""
    if sys.version_info >= (3, 12):
        return False
    try:
        loop = loop or asyncio.get_running_loop()
    except RuntimeError:
        return False
    previous = loop.get_task_factory()
    if getattr(previous, "_eager_request_writes", False):
        return False
    code = _write_bytes_code()

    def make(the_loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], kwargs: dict[str, Any]) -> Any:
        return previous(the_loop, coro, **kwargs) if previous is not None else asyncio.Task(coro, loop=the_loop, **kwargs)

    def factory(the_loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
        # (every task of the loop passes here: one attribute read, no closure, for all but the body writer)
        if getattr(coro, "cr_code", None) is code:
            return start_eagerly(the_loop, coro, lambda rest: make(the_loop, rest, kwargs))
        return make(the_loop, coro, kwargs)

    factory._eager_request_writes = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)
    return True


def start_eagerly(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                  make_task: Callable[[Coroutine[Any, Any, Any]], Any]) -> "asyncio.Future[Any]":
    """Run ``coro``'s first step now; a finished future when it ends there, else ``make_task`` of
    ``carry_on`` from what it waits for."""
    try:
        awaited = coro.send(None)
    except StopIteration as stop:
        done = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as exc:  # noqa: BLE001  (delivered to whoever awaits the future, as a task would)
        failed = loop.create_future()
        failed.set_exception(exc)
        return failed
    return make_task(carry_on(coro, awaited))


def carry_on(coro: Coroutine[Any, Any, Any], awaited: Any) -> Coroutine[Any, Any, Any]:
    """``coro``, which has run up to a wait on ``awaited`` (the future it yielded, or None for a bare
    yield), as a coroutine a task can drive from there: its first step hands the task that same
    future to wait on, every later step and every exception (a cancellation included) goes to
    ``coro`` itself, exactly as if the task had run it from the start."""
    return _Resumed(coro, awaited)


class _Resumed(Coroutine):
    def __init__(self, coro: Coroutine[Any, Any, Any], awaited: Any) -> None:
        self._coro = coro
        self._awaited = awaited
        self._first = True

    def send(self, value: Any) -> Any:
        if self._first:
            self._first = False
            return self._awaited  # (its _asyncio_future_blocking is still set: the task waits on it)
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self._first = False
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Any:
        return self._coro.__await__()
