"""Order rehearsals: an order built and signed by the very code that sends one, and never sent.

An entry is rare; between two, the bot's other work (streams, reads, the strategy's passes) pushes
the order path's code and data out of the CPU caches, and the next entry's orders run it cold.
Measured on the bench VM, a Binance USD-M order from ``place_order`` to its request took ~0.09 ms
run back to back and ~0.42 ms after other work had evicted the caches; a Hyperliquid one 0.14 and
0.52 ms. Low-latency trading systems keep such a path warm by exercising it with orders that are
never sent; ``CcxtExecutor.rehearse_order`` does that for one symbol, and the busy-polling loop
(``live.busy_poll``, which spends an idle CPU anyway) runs one rehearsal now and then
(``bot.core.busy_poll``, ``OrderRehearsals``).

How "never sent" is made sure, in three independent ways:
- ``install_rehearsal_guard`` wraps the ccxt instance's ``fetch`` (every REST request of ccxt goes
  through it) once, at build time: while ``REHEARSING`` is set it raises ``Rehearsed`` before
  anything is written, and the throttle neither waits nor charges the rate budget;
- ``rehearse`` drives ccxt's coroutine synchronously with one ``send``: it either ends at the
  guard, or it is closed at its first suspension (which is before any I/O: a request is written
  only by ``fetch``), so no rehearsal outlives the call or runs later on the loop;
- ``Rehearsed`` is a ``BaseException``: nothing in ccxt or in our adapters catches it as an error.
A rehearsal touches no ledger, limiter, order id memo of ours or venue state.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

REHEARSING: ContextVar[bool] = ContextVar("order_rehearsal", default=False)


class Rehearsed(BaseException):
    """Raised by the guarded ``fetch`` during a rehearsal: the request was built, not sent."""


def install_rehearsal_guard(exchange: Any) -> None:
    """Wrap ``exchange.fetch`` so that no request leaves while ``REHEARSING`` is set."""
    original = exchange.fetch
    if getattr(original, "_rehearsal_guard", False):
        return

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        if REHEARSING.get():
            raise Rehearsed()
        return await original(*args, **kwargs)

    fetch._rehearsal_guard = True  # type: ignore[attr-defined]
    exchange.fetch = fetch


def rehearse(make: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
    """Run ``make()``'s coroutine with ``REHEARSING`` set, synchronously, up to its request; True when
    it reached the guard (the whole path ran), False when it suspended first (closed there)."""
    token = REHEARSING.set(True)
    coro = None
    try:
        coro = make()
        coro.send(None)
        return False  # it suspended before any request: closed below, nothing ran past that point
    except Rehearsed:
        return True
    except StopIteration:
        return False
    finally:
        if coro is not None:
            coro.close()
        REHEARSING.reset(token)
