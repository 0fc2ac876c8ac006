"""ccxt.pro ``watch_orders`` used to learn order outcomes at once (the authoritative report is still
read by REST look-up). If the stream fails the executor polls as before; the loop reconnects with
backoff and jitter."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import anyio
from loguru import logger

from adapters.ccxt_common.errors import translate

TERMINAL = frozenset({"closed", "canceled", "rejected", "expired"})


class CcxtOrderStream:
    """Terminal order states by venue client id as ccxt.pro streams them."""

    def __init__(self, exchange: Any, *, venue: str) -> None:
        self.venue = venue
        self._ex = exchange
        self._terminal: dict[str, str] = {}
        self._events: dict[str, anyio.Event] = {}
        self.connected = False

    def terminal_status(self, wire_cid: str) -> str | None:
        return self._terminal.get(wire_cid)

    async def wait_terminal(self, wire_cid: str, timeout_s: float) -> bool:
        """Wait until ``wire_cid`` is reported terminal (True) or ``timeout_s`` passes (False)."""
        if wire_cid in self._terminal:
            return True
        if not self.connected:
            return False
        event = self._events.setdefault(wire_cid, anyio.Event())
        with anyio.move_on_after(timeout_s):
            await event.wait()
            return True
        return False

    def handle(self, orders: list[Mapping[str, Any]]) -> None:
        for order in orders:
            cid, status = order.get("clientOrderId"), order.get("status")
            if cid and status in TERMINAL:
                self._terminal[str(cid)] = str(status)
                event = self._events.pop(str(cid), None)
                if event is not None:
                    event.set()
        if len(self._terminal) > 10_000:
            for key in list(self._terminal)[:5_000]:
                del self._terminal[key]

    async def run(self, *, max_backoff_s: float = 30.0) -> None:
        backoff = 0.5
        while True:
            try:
                self.connected = True
                while True:
                    self.handle(await self._ex.watch_orders())
                    backoff = 0.5
            except Exception as exc:  # noqa: BLE001  (classified, logged; the loop reconnects)
                logger.bind(venue=self.venue).warning("order stream: {}", translate(self.venue, exc))
            finally:
                self.connected = False
            await anyio.sleep(backoff * (1 + random.random()))
            backoff = min(max_backoff_s, backoff * 2)
