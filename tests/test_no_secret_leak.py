"""Logging never dumps variables: a planted key is in no log, database row or stderr after an exception."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from bot.logging_setup import configure_logging
from bot.supervisor import Supervisor
from storage import EventRecord, Severity, Storage

PLANTED = "sk-PLANTED-0123456789abcdef"


@dataclass(frozen=True)
class SettingsLike:
    """Stands in for a settings object holding credentials (live venues will have one)."""

    venue: str
    api_secret: str


class RecordingApp:
    """The part of the application the supervisor's restart policy uses: events into a database."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def event(self, kind: str, severity: str, message: str, entity_id: str | None = None,
                    details: dict | None = None) -> None:
        self.storage.record_event(EventRecord(0, kind, Severity(severity), message, entity_id, details))


def _failing_loop(settings: SettingsLike):
    async def loop() -> None:
        secret = settings.api_secret  # noqa: F841 - a local holding the key, as a signing helper would
        request = {"key": settings.api_secret, "symbol": "BTC"}
        raise ZeroDivisionError(f"venue {settings.venue} failed to price {request['symbol']}")

    return loop


def test_a_failing_loop_logs_its_traceback_but_never_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BOT_TEST_API_SECRET", PLANTED)
    settings = SettingsLike(venue="sim-8h", api_secret=PLANTED)
    log_path = tmp_path / "bot.log.jsonl"
    configure_logging(log_path)
    storage = Storage.open(tmp_path / "bot.sqlite")
    supervisor = Supervisor(app=RecordingApp(storage), duration_wall_s=None, deadline_wall_s=1)

    anyio.run(supervisor._supervised, "feed", _failing_loop(settings))
    storage.close()

    stderr = capsys.readouterr().err
    log_text = log_path.read_text(encoding="utf-8")
    records = [json.loads(line) for line in log_text.splitlines()]
    failures = [r for r in records if r["record"]["message"].startswith("feed loop failed")]
    # The tracebacks are there (with the exception and the frame that raised) ...
    assert len(failures) == 5 and all(r["record"]["exception"] for r in failures)
    assert "ZeroDivisionError" in failures[0]["text"] and "in loop" in failures[0]["text"]
    assert "ZeroDivisionError" in stderr
    # ... and the key is nowhere: not in the log, not on stderr, not in the database.
    assert PLANTED not in log_text
    assert PLANTED not in stderr
    with sqlite3.connect(tmp_path / "bot.sqlite") as conn:
        rows = conn.execute("SELECT kind, message, COALESCE(details, '') FROM events").fetchall()
    assert any(kind == "task_failed" for kind, _, _ in rows)
    assert all(PLANTED not in message and PLANTED not in details for _, message, details in rows)
    for db_file in tmp_path.glob("bot.sqlite*"):
        assert PLANTED.encode() not in db_file.read_bytes()
