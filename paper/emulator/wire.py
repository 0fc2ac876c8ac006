"""Shared wire helpers of the dialects: number formatting, HMAC, venue errors, stream connections."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from bot.core.domain import BookLevel, OrderBook


def num(value: Decimal | int | None) -> str:
    """A venue-style decimal string (no exponent); "" for None."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def hmac_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def same_signature(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.lower(), given.lower())


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One account's credentials on an emulated venue (key+secret; hyperliquid uses ``address``;
    okx also signs in with a ``passphrase``)."""

    key: str
    secret: str
    passphrase: str = ""


class VenueRefusal(Exception):
    """Raised inside a handler: the dialect turns it into the venue's own error answer."""

    def __init__(self, code: int, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(payload, separators=(",", ":")), status=status,
                        content_type="application/json")


def book_levels(levels: tuple[BookLevel, ...], depth: int) -> list[list[str]]:
    return [[num(level.price), num(level.size_base)] for level in levels[:depth]]


def book_delta(old: OrderBook | None, new: OrderBook, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    """Changed levels (size "0" = removed) from ``old`` to ``new`` within ``depth`` levels per side."""
    def side(old_levels: tuple[BookLevel, ...], new_levels: tuple[BookLevel, ...]) -> list[list[str]]:
        before = {lv.price: lv.size_base for lv in old_levels[:depth]}
        after = {lv.price: lv.size_base for lv in new_levels[:depth]}
        out = [[num(p), "0"] for p in before if p not in after]
        out += [[num(p), num(s)] for p, s in after.items() if before.get(p) != s]
        return out

    if old is None:
        return book_levels(new.bids, depth), book_levels(new.asks, depth)
    return side(old.bids, new.bids), side(old.asks, new.asks)


@dataclass(eq=False)
class StreamConnection:
    """One WebSocket client: its subscriptions and an outgoing queue drained by one writer task."""

    ws: web.WebSocketResponse
    venue: str
    kind: str  # "public" or "private"
    topics: set[str] = field(default_factory=set)
    authed: bool = False
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    last_books: dict[str, OrderBook] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def send(self, payload: Any) -> None:
        self.queue.put_nowait(payload)

    async def writer(self) -> None:
        while True:
            payload = await self.queue.get()
            if payload is None:
                return
            text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


async def serve_stream(request: web.Request, conn_factory, on_text, hub: set) -> web.WebSocketResponse:
    """Run one WebSocket connection: ``on_text(conn, text)`` handles each client message."""
    ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    conn = conn_factory(ws)
    hub.add(conn)
    writer = asyncio.ensure_future(conn.writer())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await on_text(conn, msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        hub.discard(conn)
        conn.queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(writer, 1.0)
    return ws
