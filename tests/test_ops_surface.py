"""The operator surface in process, on the paper application and a manual clock: the journal
tail, the web API (errors answered, controls recorded like the CLI's), the SSE stream, metrics,
breaker notifications, and the supervisor's restart policy for operator tasks."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import CONTROL_FLATTEN_KEY, CONTROL_HALT_KEY, Application
from bot.core.clock import ManualClock
from bot.ops import views
from bot.ops.surface import OperatorSurface
from bot.ops.views import pnl_series
from bot.settings import Settings
from bot.supervisor import Supervisor
from bot.wiring import PaperOptions, paper_wiring
from machines.bot import BotState
from tests.test_app_integration import START_MS, easy_settings, run_minutes
from tests.webhook_receiver import WebhookReceiver

TOKEN = "surface-test-token-0123456789"


def _settings(receiver_url: str | None = None) -> Settings:
    base = easy_settings()
    update: dict[str, Any] = {"web": base.web.model_copy(update={"enabled": True, "port": 0})}
    if receiver_url:
        update["notify"] = base.notify.model_copy(update={"urls": [receiver_url]})
    return base.model_copy(update=update)


async def _make(tmp_path: Path, settings: Settings) -> tuple[Application, ManualClock, OperatorSurface]:
    clock = ManualClock(START_MS)
    surface = OperatorSurface(settings, env={"FUNDING_ARB_WEB_TOKEN": TOKEN}, announce_out=io.StringIO())
    wiring = paper_wiring(settings, PaperOptions(seed=3, speed=1.0, db_path=tmp_path / "paper.sqlite",
                                                 start_ts_ms=START_MS), clock=clock)
    app = Application(settings, surface.wrap(wiring))
    surface.attach(app)
    await app.start()
    return app, clock, surface


async def _wait(predicate, timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while not predicate():
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_web_api_answers_records_controls_and_survives_a_failing_request(tmp_path: Path, monkeypatch) -> None:
    app, clock, surface = await _make(tmp_path, _settings())
    try:
        await run_minutes(app, clock, 130)
        assert app.engine is not None and len(app.engine.active_positions()) >= 1
        async with anyio.create_task_group() as tg:
            for name, loop in surface.tasks():
                tg.start_soon(loop, name=name)
            await _wait(lambda: surface.web_url is not None)
            url = surface.web_url
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as http:
                async with http.get(url + "api/status", headers=auth) as r:
                    status = await r.json()
                assert status["bot_state"] in ("scanning", "monitoring")
                assert {b["name"] for b in status["breakers"]} >= {"manual", "drawdown", "unhedged"}
                assert all(v["data_age_ms"] is not None for v in status["venues"])

                def boom(_app: Application) -> dict:
                    raise RuntimeError("view failed")

                monkeypatch.setattr(views, "status_view", boom)
                async with http.get(url + "api/status", headers=auth) as r:
                    assert r.status == 500 and "RuntimeError" in (await r.json())["error"]
                monkeypatch.undo()
                async with http.get(url + "api/status", headers=auth) as r:
                    assert r.status == 200  # the server kept serving

                async with http.post(url + "api/halt", headers=auth, data="[1]") as r:
                    assert r.status == 400  # not a JSON object: answered, nothing recorded
                assert await app.store.get_kv(CONTROL_HALT_KEY) is None
                async with http.post(url + "api/halt", headers=auth, json={"reason": "maintenance"}) as r:
                    assert r.status == 202
                assert await app.store.get_kv(CONTROL_HALT_KEY) == "manual: maintenance"
                await app.poll_control()
                assert app.bot.state is BotState.HALTED
                events = await app.store.list_events(kind="control_halt")
                assert events[-1].details == {"source": "web", "reason": "maintenance"}
                async with http.post(url + "api/resume", headers=auth) as r:
                    assert r.status == 202
                await app.poll_control()
                assert app.bot.state is not BotState.HALTED

                # The live stream: a status first, then journal rows as they are recorded.
                async with http.get(url + "api/stream", headers=auth) as r:
                    assert r.headers["Content-Type"].startswith("text/event-stream")
                    first = await r.content.readuntil(b"\n\n")
                    assert first.startswith(b"event: status")
                    await app.event("test_marker", "info", "hello stream")
                    seen = b""
                    with anyio.fail_after(10):
                        while b"hello stream" not in seen:
                            seen += await r.content.readuntil(b"\n\n")
                    assert b"event: journal" in seen

                async with http.post(url + "api/flatten", headers=auth, json={"reason": "web test"}) as r:
                    assert r.status == 202
                assert await app.store.get_kv(CONTROL_FLATTEN_KEY)
                assert await app.poll_control() == "flatten"
                await app.flatten("manual_flatten")
                assert not app.engine.active_positions()

                async with http.get(url + "api/positions?state=closed&limit=1", headers=auth) as r:
                    closed = (await r.json())["positions"]
                async with http.get(url + "api/positions", headers=auth) as r:
                    every = (await r.json())["positions"]
                assert len(closed) == 1 and closed[0]["exit_reason"] == "manual_flatten"
                assert len(every) == len(app.engine.positions) >= 2
                assert closed[0]["id"] == every[0]["id"]  # newest first
                assert all(p["pnl_is_marked_to_mid"] is False and p["pnl_usd"] is not None for p in every)
                async with http.get(url + "metrics", headers=auth) as r:
                    text = await r.text()
            tg.cancel_scope.cancel()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["funding_arb_unhedged_window_seconds"].samples
        count = [s for s in families["funding_arb_unhedged_window_seconds"].samples if s.name.endswith("_count")]
        assert count[0].value >= 2  # each entry and exit measured its unhedged window
        assert [s.value for s in families["funding_arb_open_positions"].samples] == [0]
        assert any(s.labels == {"status": "500"} for s in families["funding_arb_web_requests"].samples)
    finally:
        await surface.drain()
        await app.close()


@pytest.mark.anyio
async def test_a_venue_breaker_opening_reaches_the_webhook(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        app, clock, surface = await _make(tmp_path, _settings(receiver.url))
        try:
            async with anyio.create_task_group() as tg:
                for name, loop in surface.tasks():
                    tg.start_soon(loop, name=name)
                for _ in range(app.settings.risk.venue_error_threshold):
                    app._on_venue_result("sim-8h", False)
                await run_minutes(app, clock, 1)  # the breaker events are recorded with the next pass
                await anyio.to_thread.run_sync(lambda: receiver.wait_for(
                    lambda msgs: any("venue_errors:sim-8h opened" in m.get("title", "") for m in msgs), 10))
                tg.cancel_scope.cancel()
        finally:
            await surface.drain()
            await app.close()
    titles = [m["title"] for m in receiver.messages()]
    assert "funding-arb: Breaker venue_errors:sim-8h opened" in titles, titles


def test_pnl_series_adds_up_exactly_and_is_thinned_to_the_limit() -> None:
    from decimal import Decimal as D

    flows = [(1000, 1, "fee", D("0.5")), (1000, 2, "fee", D("0.25")), (4600, 3, "funding", D("0.1")),
             (8200, 4, "funding", D("-0.05")), (9000, 1 << 62, "price_pnl", D("1.2"))]
    points = pnl_series(flows)
    assert [p["ts_ms"] for p in points] == [1000, 4600, 8200, 9000]
    assert points[-1] == {"ts_ms": 9000, "funding_usd": "0.05", "fees_usd": "0.75", "price_pnl_usd": "1.2",
                          "net_usd": "0.50"}
    many = [(i, i, "funding", D("0.01")) for i in range(1, 2001)]
    thinned = pnl_series(many, max_points=100)
    assert len(thinned) == 100 and thinned[-1]["funding_usd"] == "20.00"


class _FakeApp:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def event(self, kind: str, severity: str, message: str) -> None:
        self.events.append((kind, message))


@pytest.mark.anyio
async def test_a_crashing_operator_task_is_restarted_then_turned_off_without_stopping_trading() -> None:
    app = _FakeApp()
    supervisor = Supervisor(app=app, duration_wall_s=None, deadline_wall_s=1)  # type: ignore[arg-type]
    calls = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("address already in use")

    await supervisor._supervised("web", flaky, critical=False)
    assert len(calls) == 3 and [k for k, _ in app.events] == ["task_failed", "task_failed"]

    async def always() -> None:
        raise RuntimeError("broken")

    app.events.clear()
    await supervisor._supervised("web", always, critical=False)
    assert [k for k, _ in app.events][-1] == "task_off"
    assert supervisor._stop_request is None  # trading goes on


@pytest.mark.anyio
async def test_a_daily_summary_is_sent_when_the_clock_passes_midnight(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        app, clock, surface = await _make(tmp_path, _settings(receiver.url))
        try:
            await run_minutes(app, clock, 130)
            async with anyio.create_task_group() as tg:
                for name, loop in surface.tasks():
                    tg.start_soon(loop, name=name)
                await anyio.sleep(1.2)  # the loop has read today's date
                clock.advance(24 * 3600)
                await anyio.to_thread.run_sync(lambda: receiver.wait_for(
                    lambda msgs: any("Daily summary" in m.get("title", "") for m in msgs), 10))
                tg.cancel_scope.cancel()
        finally:
            await surface.drain()
            await app.close()
    summary = [m for m in receiver.messages() if "Daily summary" in m.get("title", "")]
    assert len(summary) == 1
    assert summary[0]["title"] == "funding-arb: Daily summary 2026-03-01"
    assert " open, " in summary[0]["message"] and "funding $" in summary[0]["message"]


def test_with_web_and_notifications_off_no_operator_task_runs() -> None:
    surface = OperatorSurface(Settings(), env={})
    surface.tail = object()  # type: ignore[assignment] - attached, as after attach()
    assert surface.tasks() == []
