"""The emulator's HTTP/WebSocket servers: one aiohttp site per venue on 127.0.0.1, plus a control site.

Per venue port: the venue's REST paths and its stream paths (same host:port, ``ws://``).
Control port: ``GET /_emulator/state``, ``POST /_emulator/faults`` (JSON ``{"kind": ..., "venue": ...,
"count": 1, "scope": ..., ...params}``), ``DELETE /_emulator/faults``, ``POST /_emulator/advance``
(``{"ms": N}``: the venue clock jumps forward, settling funding on the way). The fault middleware sits in front of every venue route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from paper.emulator.core import EmulatorCore
from paper.emulator.dialect import Dialect
from paper.emulator.faults import HTTP_FAULTS, FaultError, FaultSwitchboard
from paper.emulator.rate_limits import VenueRateLimits
from paper.emulator.wire import json_response

LOOPBACK = "127.0.0.1"
_HTML = "<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"


def dialect_class(venue: str) -> type[Dialect]:
    """The dialect of ``venue`` (imported on demand)."""
    if venue == "bybit":
        from paper.emulator.bybit import BybitDialect

        return BybitDialect
    if venue == "binanceusdm":
        from paper.emulator.binanceusdm import BinanceUsdmDialect

        return BinanceUsdmDialect
    if venue == "hyperliquid":
        from paper.emulator.hyperliquid import HyperliquidDialect

        return HyperliquidDialect
    if venue == "okx":
        from paper.emulator.okx import OkxDialect

        return OkxDialect
    raise ValueError(f"no dialect for venue {venue!r}")


def _drop(request: web.Request) -> None:
    """Close the client's connection without an answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _info_type(request: web.Request) -> str | None:
    """Hyperliquid ``/info`` request type (its rate-limit weight depends on it)."""
    if request.path != "/info":
        return None
    try:
        body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body.get("type") if isinstance(body, dict) else None


def fault_middleware(dialect: Dialect):
    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        if dialect.network_delay_s > 0:  # the request's travel to a venue that is not on this machine
            await asyncio.sleep(dialect.network_delay_s)
        scope = await dialect.scope_of(request)
        if dialect.rate_limits is not None and not dialect.rate_limits.admit(
                request.path, scope, await _info_type(request), dict(request.query)):
            return dialect.rate_limit_response()
        fault = dialect.board.take(dialect.name, HTTP_FAULTS, scope)
        if fault is None:
            return await handler(request)
        kind, params = fault.kind, fault.params
        await request.read()  # the whole request is in before any fault acts (a late execution needs it)
        if kind == "timeout":
            await asyncio.sleep(float(params.get("delay_s", 30)))
            if params.get("execute", False):  # accepted late: executed after the client gave up
                await handler(request)
            _drop(request)
            return web.Response(status=504)
        if kind == "http_5xx":
            status = int(params.get("status", 503))
            return web.Response(status=status, text=_HTML.format(title=f"{status} Service Temporarily Unavailable"),
                                content_type="text/html")
        if kind == "rate_limit":
            return dialect.rate_limit_response()
        if kind == "non_json_200":
            if params.get("execute", True):
                await handler(request)
            return web.Response(status=200, text=_HTML.format(title="OK"), content_type="text/html")
        if kind == "drop_after_execute":
            await handler(request)
            _drop(request)
            return web.Response(status=200)
        if kind == "duplicate_client_id":
            before = dialect.placed_count
            answer = await handler(request)
            if dialect.placed_count == before:  # refused or not an order: the venue's own answer stands
                return answer
            return await dialect.duplicate_response(request)
        return await handler(request)  # pragma: no cover - every HTTP fault kind is handled above

    return middleware


@dataclass
class RunningEmulator:
    """The live servers of one emulator run (inside its event loop)."""

    core: EmulatorCore
    board: FaultSwitchboard
    dialects: dict[str, Dialect]
    runners: list[web.AppRunner] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)  # venue -> port; "control" -> port
    ticker: asyncio.Task | None = None
    tick_s: float = 0.05

    async def stop(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        for dialect in self.dialects.values():
            await dialect.close_streams()
        for runner in self.runners:
            await runner.cleanup()
        self.core.close()

    def apply_immediate(self, kind: str, venue: str | None, params: dict[str, Any]) -> None:
        """Faults that act at once (called in the event loop)."""
        venues = [venue] if venue else list(self.dialects)
        if kind == "clock_skew":
            for v in venues:
                self.core.skew_ms[v] = int(params.get("offset_ms", 0))
        elif kind == "interval_change":
            for v in venues:
                self.core.set_interval(v, str(params["symbol"]), int(params["hours"]))
        elif kind == "absurd_book":
            factor = Decimal(str(params.get("factor", 1000)))
            symbols = [str(params["symbol"])] if params.get("symbol") is not None else list(self.core.symbols)
            for v in venues:
                for symbol in symbols:
                    if factor == 1:
                        self.core.absurd_books.pop((v, symbol), None)
                    else:
                        self.core.absurd_books[(v, symbol)] = factor
        elif kind == "ws_disconnect":
            for v in venues:
                asyncio.ensure_future(self.dialects[v].close_streams())

    async def _tick(self) -> None:
        log = logging.getLogger("paper.emulator")
        while True:
            try:
                if not self.core.manual_clock:
                    self.core.step()
            except Exception:  # keep serving; the failure is logged, never swallowed silently
                log.exception("emulator step failed")
            await asyncio.sleep(self.tick_s)


async def start_servers(core: EmulatorCore, board: FaultSwitchboard, credentials: dict[str, dict[str, str]],
                        port_base: int = 0, rate_limits: bool = False, network_delay_ms: float = 0.0) -> RunningEmulator:
    """Create the dialects, bind every site on 127.0.0.1 and start the market ticker.
    ``network_delay_ms``: each venue handles a REST request that long after it arrived (a model of
    a venue on another machine: its work on an order is then not done on the bot's CPUs while the
    bot still prepares the other leg)."""
    dialects = {v: dialect_class(v)(core, board, credentials.get(v, {})) for v in core.venues}
    for dialect in dialects.values():
        dialect.network_delay_s = network_delay_ms / 1000
    if rate_limits:
        for venue, dialect in dialects.items():
            dialect.rate_limits = VenueRateLimits(venue)
    running = RunningEmulator(core=core, board=board, dialects=dialects)
    loop = asyncio.get_running_loop()
    board.on_immediate = lambda kind, venue, params: loop.call_soon_threadsafe(
        running.apply_immediate, kind, venue, params)
    control = web.Application()
    _control_routes(control, running)
    apps: list[tuple[str, web.Application]] = [("control", control)]
    for venue, dialect in dialects.items():
        app = web.Application(middlewares=[fault_middleware(dialect)], client_max_size=4 * 1024 * 1024)
        dialect.add_routes(app)
        apps.append((venue, app))
    for i, (name, app) in enumerate(apps):
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, port_base + i if port_base else 0)
        await site.start()
        running.runners.append(runner)
        running.ports[name] = runner.addresses[0][1]
    running.ticker = asyncio.ensure_future(running._tick())
    return running


def _control_routes(app: web.Application, running: RunningEmulator) -> None:
    async def state(request: web.Request) -> web.Response:
        core = running.core
        return json_response({
            "now_ms": core.now_ms(), "wall_ms": core.server_time_ms(), "skew_ms": core.skew_ms,
            "venues": list(core.venues), "ports": running.ports, "armed_faults": running.board.armed(),
            "fired_faults": running.board.fired[-100:],
            "intervals": {f"{v}:{s}": h for (v, s), h in core.intervals.items()},
        })

    async def arm(request: web.Request) -> web.Response:
        try:
            spec = json.loads(await request.text())
            if not isinstance(spec, dict) or "kind" not in spec:
                raise FaultError("body: expected a JSON object with a 'kind'")
            spec = dict(spec)
            armed = running.board.arm(spec.pop("kind"), venue=spec.pop("venue", None), count=spec.pop("count", 1),
                                      scope=spec.pop("scope", None), **spec)
        except (FaultError, json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response({"armed": armed.as_dict() if armed else None})

    async def clear(request: web.Request) -> web.Response:
        running.board.clear(request.query.get("venue"))
        return json_response({"armed": running.board.armed()})

    async def advance(request: web.Request) -> web.Response:
        try:
            ms = int(json.loads(await request.text())["ms"])
            settled = running.core.advance_ms(ms)
        except (RuntimeError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response({"now_ms": running.core.now_ms(), "settlements": len(settled)})

    app.router.add_get("/_emulator/state", state)
    app.router.add_post("/_emulator/faults", arm)
    app.router.add_delete("/_emulator/faults", clear)
    app.router.add_post("/_emulator/advance", advance)
