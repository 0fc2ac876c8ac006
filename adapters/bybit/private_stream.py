"""Bybit private stream (``/v5/private``: ``order`` topic) used to learn order outcomes at once.

The executor still reads the authoritative report by REST look-up (fills by trade id); the stream
only wakes it the moment an order reaches a terminal state, so an IOC order costs one look-up
instead of a polling loop. If the stream is down the executor polls as before. Uses the
``websockets`` library directly (pybit's WebSocket callbacks run in threads and a raising callback
closes the socket for good). Auth: ``HMAC_SHA256(secret, "GET/realtime" + expires)``; the secret
never leaves this object and is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from loguru import logger

from adapters.bybit import config
from adapters.credentials import Credentials

TERMINAL = frozenset({"Filled", "Cancelled", "PartiallyFilledCanceled", "Deactivated", "Rejected"})
AUTH_EXPIRY_MS = 10_000


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def auth_message(credentials: Credentials, now_ms: int) -> dict[str, Any]:
    """The ``auth`` op for ``credentials`` valid for ``AUTH_EXPIRY_MS``."""
    expires = now_ms + AUTH_EXPIRY_MS
    signature = hmac.new(credentials.get("secret").encode(), f"GET/realtime{expires}".encode(),
                         hashlib.sha256).hexdigest()
    return {"op": "auth", "args": [credentials.get("api_key"), expires, signature]}


class BybitPrivateStream:
    """Terminal order states by ``orderLinkId`` as the venue pushes them."""

    def __init__(self, credentials: Credentials, *, ws_url: str, now_ms: Callable[[], int] = _wall_ms,
                 venue: str = config.VENUE) -> None:
        self.venue = venue
        self._credentials = credentials
        self._url = ws_url.rstrip("/") + config.PRIVATE_WS_PATH
        self._now_ms = now_ms
        self._terminal: dict[str, str] = {}
        self._events: dict[str, anyio.Event] = {}
        self.connected = False
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"BybitPrivateStream(venue={self.venue!r}, connected={self.connected})"

    def terminal_status(self, link_id: str) -> str | None:
        return self._terminal.get(link_id)

    async def wait_terminal(self, link_id: str, timeout_s: float) -> bool:
        """Wait until the stream reports ``link_id`` terminal (True) or ``timeout_s`` passes (False)."""
        if link_id in self._terminal:
            return True
        if not self.connected:
            return False
        event = self._events.setdefault(link_id, anyio.Event())
        with anyio.move_on_after(timeout_s):
            await event.wait()
            return True
        return False

    def handle(self, message: Mapping[str, Any]) -> None:
        """Apply one private-stream message (``order`` topic; others ignored)."""
        if message.get("topic") != "order":
            return
        for row in message.get("data") or []:
            if not isinstance(row, Mapping):
                continue
            link, status = row.get("orderLinkId"), row.get("orderStatus")
            if link and status in TERMINAL:
                self._terminal[str(link)] = str(status)
                event = self._events.pop(str(link), None)
                if event is not None:
                    event.set()
        if len(self._terminal) > 10_000:  # keep memory bounded on long runs
            for key in list(self._terminal)[:5_000]:
                del self._terminal[key]

    async def run(self, *, max_backoff_s: float = 30.0) -> None:
        """Stay connected and subscribed until cancelled (backoff with jitter on failures)."""
        import websockets

        backoff = 0.5
        while True:
            try:
                async with websockets.connect(self._url, ping_interval=None) as ws:
                    await ws.send(json.dumps(auth_message(self._credentials, self._now_ms())))
                    answer = json.loads(await ws.recv())
                    if not answer.get("success"):
                        logger.bind(venue=self.venue).error("private stream auth refused: {}", answer.get("ret_msg"))
                        raise OSError("auth refused")
                    await ws.send(json.dumps({"op": "subscribe", "args": ["order"]}))
                    self.connected = True
                    backoff = 0.5
                    await self._pump(ws)
            except (OSError, ValueError, websockets.WebSocketException, TimeoutError) as exc:
                logger.bind(venue=self.venue).warning("private stream dropped: {}", type(exc).__name__)
            finally:
                self.connected = False
            self.reconnects += 1
            await anyio.sleep(backoff * (1 + random.random()))
            backoff = min(max_backoff_s, backoff * 2)

    async def _pump(self, ws: Any) -> None:
        last_ping = time.monotonic()
        while True:
            with anyio.move_on_after(5.0):
                raw = await ws.recv()
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, Mapping):
                    self.handle(message)
            if time.monotonic() - last_ping > 20.0:
                await ws.send(json.dumps({"op": "ping"}))
                last_ping = time.monotonic()
