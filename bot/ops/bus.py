"""Fan-out of journal entries (events, transitions) to subscribers that must never slow the sender.

Each subscriber owns a bounded queue; a full queue drops the entry for that subscriber only and
counts it, so a stuck browser tab or a hung notifier can never hold up the journal tail (and
nothing here is ever awaited by the trading loops).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


@dataclass(slots=True)
class Subscription:
    """One subscriber's queue: read ``receive``; ``dropped`` counts entries lost to a full queue."""

    send: MemoryObjectSendStream[dict[str, Any]]
    receive: MemoryObjectReceiveStream[dict[str, Any]]
    dropped: int = 0


@dataclass(slots=True)
class Bus:
    """Publish entries to every current subscriber without ever waiting."""

    _subscribers: list[Subscription] = field(default_factory=list)

    def publish(self, entry: dict[str, Any]) -> None:
        for sub in list(self._subscribers):
            try:
                sub.send.send_nowait(entry)
            except anyio.WouldBlock:
                sub.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(sub)

    @contextmanager
    def subscribe(self, max_queued: int) -> Iterator[Subscription]:
        """A subscription for the ``with`` block; its queue holds at most ``max_queued`` entries."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](max_queued)
        sub = Subscription(send, receive)
        self._subscribers.append(sub)
        try:
            yield sub
        finally:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
            send.close()
            receive.close()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
