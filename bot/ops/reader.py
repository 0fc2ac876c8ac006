"""A second connection to the bot's database for the operator surface.

Reads (and the web API's control writes) run on their own thread with their own limiter, so a
slow page or a large query never waits in line with the trading engine's writes (WAL lets
readers and the writer proceed together).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from storage import Storage

T = TypeVar("T")


class ReadStore:
    """``Storage`` on a dedicated thread; opened on first use, closed by ``aclose``."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._storage: Storage | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def call(self, fn: Callable[[Storage], T]) -> T:
        """Run ``fn(storage)`` on the reader thread."""
        return await anyio.to_thread.run_sync(functools.partial(self._run, fn), limiter=self._limiter)

    def _run(self, fn: Callable[[Storage], Any]) -> Any:
        if self._storage is None:
            self._storage = Storage.open(self.db_path)
        return fn(self._storage)

    async def aclose(self) -> None:
        if self._storage is not None:
            storage, self._storage = self._storage, None
            await anyio.to_thread.run_sync(storage.close, limiter=self._limiter)
