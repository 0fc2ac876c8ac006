"""What every venue dialect shares: the core, the fault switchboard, credentials, the stream hub."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.errors import OrderRejected
from bot.core.domain import OrderRequest
from paper.emulator.core import EmulatorCore
from paper.emulator.faults import FaultSwitchboard
from paper.emulator.wire import StreamConnection, VenueRefusal
from paper.venue_store import StoredOrder


class Dialect:
    """Base of the venue dialects. Subclasses add routes and translate payloads."""

    name = ""

    def __init__(self, core: EmulatorCore, board: FaultSwitchboard, credentials: dict[str, str]) -> None:
        self.core = core
        self.board = board
        self.credentials = dict(credentials)  # api key (or address) -> secret ("" when none)
        self.hub: set[StreamConnection] = set()
        self.rate_limits = None  # a rate_limits.VenueRateLimits when the documented limits are enforced
        self.network_delay_s = 0.0  # each REST request is handled this long after it arrived (its travel)
        self.placed_count = 0  # orders this dialect has put on the paper engine (the duplicate fault needs one)
        core.listeners.append(self._on_core_event)

    # -- hooks the server uses ------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def scope_of(self, request: web.Request) -> str:
        """"order" (order placement), "private" or "public"."""
        raise NotImplementedError

    def rate_limit_response(self) -> web.Response:
        raise NotImplementedError

    async def duplicate_response(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    def publish_books(self) -> None:
        """New books: push stream updates."""

    def publish_orders(self, client_order_ids: list[str]) -> None:
        """Orders changed: push private stream updates."""

    def publish_spot_orders(self, client_order_ids: list[str]) -> None:
        """Spot orders changed: push private stream updates (venues with a spot market)."""

    def publish_funding(self, settlements: list[Any]) -> None:
        """Funding settled: push private stream updates."""

    async def close_streams(self) -> None:
        for conn in list(self.hub):
            await conn.ws.close()

    # -- shared -----------------------------------------------------------------------------------
    def _on_core_event(self, kind: str, payload: Any) -> None:
        if self.board.is_silent(self.name):  # silent but alive: pings are still answered, nothing else is sent
            return
        if kind == "books":
            self.publish_books()
        elif kind == "orders":
            venue, cids = payload
            if venue == self.name:
                self.publish_orders(cids)
        elif kind == "spot_orders":
            venue, cids = payload
            if venue == self.name:
                self.publish_spot_orders(cids)
        elif kind == "funding":
            mine = [s for s in payload if s.venue == self.name]
            if mine:
                self.publish_funding(mine)

    async def place(self, request: OrderRequest, refuse) -> StoredOrder:
        """Execute ``request`` on the paper engine; ``refuse(reason)`` maps a rejection to a VenueRefusal."""
        try:
            await self.core.executor.place_order(request)
        except OrderRejected as exc:
            raise refuse(str(exc)) from None
        self.placed_count += 1
        self.core.notify_orders(self.name, [request.client_order_id])
        order = self.core.executor.stored_order(self.name, request.client_order_id)
        if order is None:  # pragma: no cover - place_order either stores the order or raises
            raise VenueRefusal(-1, "internal: order not stored")
        return order
