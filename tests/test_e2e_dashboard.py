"""End to end: a paper run with the web server and notifications on, seen from outside.

One bot subprocess (``--speed 900``, entries easy, no early exits) with ``[web] enabled`` on a
free loopback port and a notification URL pointing at a local webhook receiver. In file order:
requests without the token get 401; ``/metrics`` parses with prometheus-client's parser while
positions are open; the page in a real headless Chromium shows the open positions and the PnL
chart (screenshot kept as a test artefact); its flatten button closes everything with reason
``manual_flatten``; ``/metrics`` moved; after SIGTERM the receiver holds notifications for an
entry, a breaker opening and the shutdown result.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.helpers_cli import bot_command, bot_env, query, stop_if_running, wait_for, write_settings
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

TOKEN = "e2e-dashboard-token-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SETTINGS = {
    "strategy": {"min_expected_net_usd": '"-100"'},
    "risk": {"max_breakeven_hours": '"100000"'},
    "exit": {"min_hold_hours": '"1000"', "max_hold_hours": '"2000"'},
    "web": {"enabled": "true", "port": "0"},
}


class Run:
    def __init__(self, proc: subprocess.Popen[str], cwd: Path, db: Path, receiver: WebhookReceiver) -> None:
        self.proc = proc
        self.cwd = cwd
        self.db = db
        self.receiver = receiver
        self.base_url = ""
        self.notes: dict[str, Any] = {}

    def stderr(self) -> str:
        return (self.cwd / "run.stderr").read_text()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("dashboard")
    with WebhookReceiver() as receiver:
        settings = write_settings(cwd, {**SETTINGS, "notify": {"urls": json.dumps([receiver.url])}})
        db = cwd / "paper.sqlite"
        env = bot_env()
        env["FUNDING_ARB_WEB_TOKEN"] = TOKEN
        with (cwd / "run.stdout").open("w") as out, (cwd / "run.stderr").open("w") as err:
            proc = subprocess.Popen(bot_command("--paper", "--speed", "900", "--db", db, "--settings", settings),
                                    cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        handle = Run(proc, cwd, db, receiver)
        try:
            assert wait_for(lambda: re.search(r"dashboard: (http://\S+/)", handle.stderr()), 30, proc=proc), \
                handle.stderr()
            handle.base_url = re.search(r"dashboard: (http://\S+/)", handle.stderr()).group(1)
            assert wait_for(lambda: _open_count(db) >= 2, 40, proc=proc), "no positions opened"
            yield handle
        finally:
            stop_if_running(proc)


def _open_count(db: Path) -> int:
    return query(db, "SELECT COUNT(*) FROM positions WHERE state = 'monitoring'")[0][0]


def _get(url: str, token: str | None = TOKEN, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=body, headers=dict(headers or {}))
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _metrics(run: Run) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    status, body = _get(run.base_url + "metrics")
    assert status == 200
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_requests_without_the_token_get_401(run: Run) -> None:
    for path in ("", "api/status", "api/positions", "api/events", "api/pnl", "api/scan", "metrics",
                 "static/app.js", "api/stream"):
        for token in (None, "wrong-token-wrong-token-wrong"):
            status, body = _get(run.base_url + path, token=token)
            assert status == 401, (path, token, status)
    status, _ = _get(run.base_url + "api/flatten", token=None, method="POST", body=b"{}")
    assert status == 401
    status, _ = _get(run.base_url + "?token=wrong", token=None)
    assert status == 401
    # A cookie alone cannot POST without the CSRF header (a cross-site form cannot send it).
    status, _ = _get(run.base_url + "api/halt", token=None, method="POST", body=b"{}",
                     headers={"Cookie": f"fa_token={TOKEN}"})
    assert status == 401
    assert query(run.db, "SELECT COUNT(*) FROM events WHERE kind LIKE 'control_%'")[0][0] == 0
    status, body = _get(run.base_url + "api/status")
    assert status == 200 and json.loads(body)["bot_state"] in ("scanning", "monitoring", "opening")


def test_api_answers_with_positions_ranking_and_postmortem(run: Run) -> None:
    def monitoring() -> list[dict]:
        status, body = _get(run.base_url + "api/positions?state=open")
        assert status == 200
        return [p for p in json.loads(body)["positions"] if p["state"] == "monitoring"]

    # "open" also lists a position still OPENING (no fill yet, so nothing to mark): take a hedged one.
    found: list[dict] = []
    assert wait_for(lambda: found.extend(monitoring()) or found, 20, proc=run.proc)
    first = found[0]
    assert {leg["side"] for leg in first["legs"]} == {"long", "short"}
    assert first["legs"][0]["size_base"] == first["legs"][1]["size_base"]
    assert first["pnl_is_marked_to_mid"] is True and first["pnl_usd"] is not None
    status, body = _get(run.base_url + f"api/positions/{first['id']}")
    doc = json.loads(body)
    assert status == 200 and doc["position_id"] == first["id"]
    assert any(e["kind"] == "fill" for e in doc["timeline"])
    assert _get(run.base_url + "api/positions/nope")[0] == 404
    status, body = _get(run.base_url + "api/scan?limit=3")
    assert status == 200 and 1 <= len(json.loads(body)["opportunities"]) <= 3
    status, body = _get(run.base_url + "api/pnl")
    assert status == 200 and json.loads(body)["points"]


def test_metrics_parse_while_positions_are_open(run: Run) -> None:
    def ready(v: dict) -> bool:  # one scrape is one instant: wait until a pass has filled every gauge
        return (v.get("funding_arb_open_positions{}", 0) >= 1
                and sum(x for k, x in v.items() if k.startswith("funding_arb_exposure_usd{")) > 0
                and v.get("funding_arb_loop_lag_seconds_count{}", 0) > 0 and v.get("funding_arb_fees_usd{}", 0) > 0)

    assert wait_for(lambda: ready(_metrics(run)), 20, proc=run.proc)
    values = _metrics(run)
    assert values["funding_arb_open_positions{}"] >= 1
    assert values["funding_arb_positions{state=monitoring}"] >= 1
    assert sum(v for k, v in values.items() if k.startswith("funding_arb_exposure_usd{")) > 0
    assert any(k.startswith("funding_arb_order_latency_seconds_count{") and v > 0 for k, v in values.items())
    assert any(k.startswith("funding_arb_data_age_seconds{") for k in values)
    assert values["funding_arb_breaker_state{breaker=manual}"] == 0
    assert values["funding_arb_loop_lag_seconds_count{}"] > 0
    assert values["funding_arb_fees_usd{}"] > 0
    run.notes["metrics_open"] = values


def _png_pixels_vary(png: bytes) -> int:
    """Distinct byte values in the decompressed image data: a blank image has very few."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind = png[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_page_in_headless_chromium_shows_positions_chart_and_flattens(run: Run, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip)")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
            viewport={"width": 1280, "height": 1100})
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(run.base_url + f"?token={TOKEN}")
            assert "token" not in page.url  # the token left the address bar (cookie instead)
            page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
            page.wait_for_selector("#open-positions tbody tr", timeout=15_000)
            rows = page.locator("#open-positions tbody tr").count()
            assert rows >= 1
            net_path = page.locator("#pnl-chart path[data-series=net]")
            assert net_path.count() == 1
            assert net_path.get_attribute("d").count("L") >= 2  # a line through several points
            page.wait_for_function("document.querySelector('#live').textContent === 'live'", timeout=10_000)
            page.wait_for_selector("#events li", timeout=10_000)
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            chart = page.locator("#chart-wrap").screenshot()
            shutil.copy(shot, ARTIFACTS / "dashboard.png")
            (ARTIFACTS / "dashboard-chart.png").write_bytes(chart)
            assert shot.stat().st_size > 20_000
            assert _png_pixels_vary(chart) > 40
            assert "open positions" in page.inner_text("body")

            # The flatten button asks for confirmation; cancel first: nothing is requested.
            page.click("#btn-flatten")
            page.click("#confirm-cancel")
            assert query(run.db, "SELECT COUNT(*) FROM events WHERE kind = 'control_flatten'")[0][0] == 0
            page.click("#btn-flatten")
            page.fill("#confirm-reason", "e2e: dashboard flatten")
            page.click("#confirm-ok")
            assert wait_for(lambda: query(run.db, "SELECT COUNT(*) FROM positions WHERE state != 'closed'")[0][0] == 0
                            and query(run.db, "SELECT COUNT(*) FROM positions")[0][0] >= 2, 30, proc=run.proc)
            page.wait_for_selector("#no-open:not([hidden])", timeout=15_000)
            # The request and the closes arrived through the live stream (history was loaded once).
            page.wait_for_function("[...document.querySelectorAll('#events li')]"
                                   ".some(li => li.textContent.includes('control_flatten: '))", timeout=10_000)
            page.wait_for_function("[...document.querySelectorAll('#events li')]"
                                   ".some(li => li.textContent.includes('→ closed'))", timeout=10_000)
            assert page.locator("#closed-positions tbody tr").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "dashboard-after-flatten.png"), full_page=True)
            assert not errors, errors
        finally:
            context.close()
    # Everything open when the bot picked the request up was closed by it (an emergency exit such
    # as a funding flip may have closed an earlier position on its own before that).
    picked_up = query(run.db, "SELECT ts_ms FROM events WHERE kind = 'manual_flatten'")
    assert len(picked_up) == 1
    reasons = [r[0] for r in query(run.db, "SELECT exit_reason FROM positions WHERE closed_at_ts_ms >= ?",
                                   (picked_up[0][0],))]
    assert reasons and set(reasons) == {"manual_flatten"}, reasons
    assert query(run.db, "SELECT COUNT(*) FROM positions WHERE state != 'closed'")[0][0] == 0
    event = query(run.db, "SELECT message, details FROM events WHERE kind = 'control_flatten'")
    assert len(event) == 1 and json.loads(event[0][1]) == {"source": "web", "reason": "e2e: dashboard flatten"}
    run.notes["flattened"] = True


def test_metrics_moved_when_positions_closed(run: Run) -> None:
    if not run.notes.get("flattened"):
        status, body = _get(run.base_url + "api/flatten", method="POST", body=b'{"reason": "e2e"}',
                            headers={"Content-Type": "application/json"})
        assert status == 202, body
        assert wait_for(lambda: query(run.db, "SELECT COUNT(*) FROM positions WHERE state != 'closed'")[0][0] == 0,
                        30, proc=run.proc)
    before = run.notes["metrics_open"]
    assert wait_for(lambda: _metrics(run)["funding_arb_open_positions{}"] == 0, 10)
    after = _metrics(run)
    assert after["funding_arb_positions{state=closed}"] >= before["funding_arb_open_positions{}"]
    assert sum(v for k, v in after.items() if k.startswith("funding_arb_exposure_usd{")) == 0
    assert after["funding_arb_breaker_state{breaker=manual}"] == 2  # the flatten halts until resume
    assert after["funding_arb_fees_usd{}"] > before["funding_arb_fees_usd{}"]  # closing fills paid fees


def test_notifications_reach_the_local_webhook(run: Run) -> None:
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0, run.stderr()
    assert "stopped:" in run.stderr()
    titles = [m.get("title", "") for m in run.receiver.messages()]
    assert any(t.startswith("funding-arb: Entered ") for t in titles), titles
    assert any(t.startswith("funding-arb: Breaker manual opened") for t in titles), titles
    assert any(t.startswith("funding-arb: Exited ") for t in titles), titles
    assert "funding-arb: Bot stopped" in titles, titles
    shutdown = [m for m in run.receiver.messages() if m.get("title") == "funding-arb: Bot stopped"][0]
    assert "flat" in shutdown["message"] and shutdown["type"] == "success"
    assert TOKEN not in (run.cwd / "bot.log.jsonl").read_text()
