"""Read several venues at once: one request per venue in flight, answers taken in venue order.

Reconciliation asks every venue the same question (its positions, its funding since a time). Asked
one after another, a pass waits for the sum of the venues' round trips, and in a busy process each
round trip may also wait behind the other loops' work (every await is a turn for them). Asked
concurrently it waits for the slowest venue only. Each venue still sees one request at a time
from here, so per-venue rate limits are unchanged.

The outcome of every venue (its answer or the exception it raised) is returned in sorted venue
order, so callers handle them exactly as a sequential loop would (same order of breaker updates,
same first unexpected exception re-raised).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import anyio

T = TypeVar("T")


async def outcome(awaitable: Awaitable[T]) -> T | Exception:
    """The awaitable's answer, or the ``Exception`` it raised (returned, never raised: the caller
    decides; cancellation still propagates)."""
    try:
        return await awaitable
    except Exception as exc:  # noqa: BLE001 - returned to the caller, who decides (see the module docstring)
        return exc


async def read_venues(venues: Iterable[str], read: Callable[[str], Awaitable[T]]) -> list[tuple[str, T | Exception]]:
    """``read(venue)`` for every venue concurrently; ``(venue, answer or exception)`` in sorted
    venue order. An ``Exception`` is returned, never raised (cancellation still propagates)."""
    ordered = sorted(set(venues))
    outcomes: dict[str, T | Exception] = {}

    async def one(venue: str) -> None:
        outcomes[venue] = await outcome(read(venue))

    if len(ordered) == 1:
        await one(ordered[0])  # no task group for a single read
    else:
        async with anyio.create_task_group() as tg:
            for venue in ordered:
                tg.start_soon(one, venue)
    return [(venue, outcomes[venue]) for venue in ordered]
