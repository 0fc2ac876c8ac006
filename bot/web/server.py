"""aiohttp application: routes, the auth and error middlewares, and the serve loop.

Routes (all need the token, see ``bot.web.auth``; the README has the table):
``GET /`` page, ``GET /static/*``, ``GET /api/status``, ``GET /api/positions``,
``GET /api/positions/{id}`` (post-mortem), ``GET /api/events``, ``GET /api/pnl``, ``GET /api/scan``,
``GET /api/stream`` (SSE), ``POST /api/halt|resume|flatten``, ``GET /metrics``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web
from loguru import logger

from bot.control import write_control
from bot.core.clock import utc_now_ms
from bot.ops import views
from bot.ops.bus import Bus
from bot.ops.journal import JournalTail
from bot.ops.metrics import Metrics
from bot.ops.reader import ReadStore
from bot.report import postmortem_doc
from bot.web.auth import check_request, login_redirect, unauthorized

if TYPE_CHECKING:
    from bot.app import Application

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
STREAM_STATUS_INTERVAL_S = 1.0
MAX_REASON_CHARS = 200
_CONTEXT = web.AppKey("context", object)


@dataclass(slots=True)
class WebContext:
    """Everything the handlers read: the running application and the surface's parts."""

    app: "Application"
    reader: ReadStore
    tail: JournalTail
    bus: Bus
    metrics: Metrics
    token: str
    stopping: anyio.Event = field(default_factory=anyio.Event)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=_default), status=status, content_type="application/json")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _ctx(request: web.Request) -> WebContext:
    return request.app[_CONTEXT]  # type: ignore[return-value]


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Token check first; then any failure is logged and answered (never raised into the server)."""
    ctx = _ctx(request)
    how = check_request(request, ctx.token)
    if how is None:
        ctx.metrics.web_requests.labels("401").inc()
        return unauthorized()
    if how == "query":
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
        return login_redirect(ctx.token, secure)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        ctx.metrics.web_requests.labels(str(exc.status)).inc()
        raise
    except Exception as exc:  # a failing request is logged and answered; the server keeps serving
        logger.opt(exception=exc).bind(kind="web_request_failed", path=request.path).error(
            f"web request {request.method} {request.path} failed: {exc!r}")
        ctx.metrics.web_requests.labels("500").inc()
        return _json({"error": f"internal error: {type(exc).__name__} (see the bot's log)"}, status=500)
    ctx.metrics.web_requests.labels(str(response.status)).inc()
    return response


async def index(request: web.Request) -> web.Response:
    return await static(request, "index.html")


async def static(request: web.Request, name: str | None = None) -> web.Response:
    name = name or request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    body = resources.files("bot.web").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC_FILES[name], headers={"Cache-Control": "no-store"})


async def status(request: web.Request) -> web.Response:
    return _json(views.status_view(_ctx(request).app))


async def positions(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    which = request.query.get("state", "all")
    if which not in ("all", "open", "closed"):
        return _json({"error": "state must be all, open or closed"}, status=400)
    limit = _int_query(request, "limit", 100, 10_000)
    items = await ctx.reader.call(lambda s: views.load_positions(s, which=which, closed_limit=limit))
    return _json({"positions": views.positions_view(ctx.app, items)})


async def postmortem(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    position_id = request.match_info["position_id"]
    doc = await ctx.reader.call(lambda s: postmortem_doc(s, position_id))
    if doc is None:
        return _json({"error": f"no position {position_id!r}"}, status=404)
    return _json(doc)


def _int_query(request: web.Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be a whole number"}),
                                 content_type="application/json") from None
    return max(1, min(value, high))


async def events(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    limit = _int_query(request, "limit", 100, 10_000)
    kind = request.query.get("kind")
    rows = [r for r in ctx.tail.recent if kind is None or r.get("kind") == kind or r.get("type") == kind]
    return _json({"events": rows[-limit:]})


async def pnl(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    flows = await ctx.reader.call(views.load_money_flows)
    return _json({"points": views.pnl_series(flows)})


async def scan(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    limit = _int_query(request, "limit", ctx.app.settings.scan.limit, 500)
    return _json({"opportunities": [views.opportunity_view(o) for o in views.ranking(ctx.app, limit)]})


async def control(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    command = request.match_info["command"]
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return _json({"error": "body must be a JSON object, e.g. {\"reason\": \"maintenance\"}"}, status=400)
    reason = str(body.get("reason") or f"manual {command} (web)").strip()[:MAX_REASON_CHARS]
    message = await ctx.reader.call(lambda s: write_control(s, command, reason, utc_now_ms(), source="web"))
    return _json({"accepted": True, "command": command, "reason": reason, "message": message}, status=202)


async def metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    body = _ctx(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``journal`` (each new event/transition) and ``status`` (every second)."""
    ctx = _ctx(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)

    async def send(kind: str, data: Any) -> None:
        await response.write(f"event: {kind}\ndata: {json.dumps(data, default=_default)}\n\n".encode())

    with ctx.bus.subscribe(256) as sub:
        next_status = 0.0
        try:
            while not ctx.stopping.is_set():
                if anyio.current_time() >= next_status:
                    await send("status", views.status_view(ctx.app))
                    next_status = anyio.current_time() + STREAM_STATUS_INTERVAL_S
                with anyio.move_on_after(max(0.0, next_status - anyio.current_time())):
                    await send("journal", await sub.receive.receive())
        except ConnectionError:  # the browser went away: nothing to answer
            logger.bind(kind="web_stream_closed").debug("live stream closed by the client")
    return response


def build_web_app(ctx: WebContext) -> web.Application:
    app = web.Application(middlewares=[_guard])
    app[_CONTEXT] = ctx
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/positions", positions)
    app.router.add_get("/api/positions/{position_id}", postmortem)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/pnl", pnl)
    app.router.add_get("/api/scan", scan)
    app.router.add_get("/api/stream", stream)
    app.router.add_post("/api/{command:halt|resume|flatten}", control)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(ctx: WebContext, host: str, port: int, *, announce: Any = None) -> None:
    """Listen until cancelled; ``announce(url)`` is called once the socket is bound."""
    runner = web.AppRunner(build_web_app(ctx), access_log=None, shutdown_timeout=1.0, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        url = f"http://{'[' + bound[0] + ']' if ':' in bound[0] else bound[0]}:{bound[1]}/"
        if announce is not None:
            announce(url)
        await anyio.sleep_forever()
    finally:
        ctx.stopping.set()
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
