"""Databases: read-only unless a command must write, only our own file, every bad file one line."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from storage import Storage
from tests.helpers_cli import assert_usage_error, run_bot, write_settings

pytestmark = pytest.mark.e2e


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('not yours')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("command", [["report"], ["report", "--json"], ["postmortem", "p1"], ["halt"],
                                     ["resume"], ["flatten"]])
def test_commands_on_a_foreign_sqlite_file_change_nothing_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    settings = write_settings(tmp_path)
    foreign = _foreign_db(tmp_path / "other.sqlite")
    before = _digest(foreign)
    proc = run_bot(*command, "--db", foreign, "--settings", settings, cwd=tmp_path)
    assert_usage_error(proc, str(foreign), "not this bot's database")
    assert _digest(foreign) == before
    conn = sqlite3.connect(foreign)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["notes"]
    finally:
        conn.close()


def test_paper_run_on_a_foreign_file_exits_2_before_touching_it(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    foreign = _foreign_db(tmp_path / "other.sqlite")
    before = _digest(foreign)
    proc = run_bot("--paper", "--duration", "1", "--db", foreign, "--settings", settings, cwd=tmp_path)
    assert_usage_error(proc, str(foreign))
    assert _digest(foreign) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("other")) == ["other.sqlite"]


def test_the_paper_venues_file_is_not_a_bot_database(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    db = tmp_path / "paper.sqlite"
    assert run_bot("--paper", "--duration", "2", "--speed", "3600", "--db", db, "--settings", settings,
                   cwd=tmp_path).returncode == 0
    venues = tmp_path / "paper.venues.sqlite"
    before = _digest(venues)
    for command in (["report"], ["halt"], ["--paper", "--duration", "1"]):
        proc = run_bot(*command, "--db", venues, "--settings", settings, cwd=tmp_path)
        assert_usage_error(proc, str(venues), "paper venues' file")
    assert _digest(venues) == before


@pytest.mark.parametrize("content", [b"", b"hello, not a database" * 50, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_broken_files_are_one_line_naming_the_file(tmp_path: Path, content: bytes) -> None:
    settings = write_settings(tmp_path)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(content)
    for command in (["report"], ["postmortem", "x"], ["flatten"]):
        proc = run_bot(*command, "--db", bad, "--settings", settings, cwd=tmp_path)
        if content == b"":
            # An empty file is a new SQLite database with no bot schema: refused, never written.
            assert_usage_error(proc)
        else:
            assert_usage_error(proc, str(bad))
        assert bad.read_bytes() == content


def test_a_damaged_bot_database_is_refused_at_start_up(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    db = tmp_path / "paper.sqlite"
    storage = Storage.open(db)
    for i in range(400):
        storage.set_kv(f"k{i}", "x" * 200, i)
    storage.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()
    raw = bytearray(db.read_bytes())
    page = 4096
    last = len(raw) // page - 2
    raw[last * page: last * page + 64] = b"\x07" * 64  # scribble over a b-tree page header
    db.write_bytes(bytes(raw))
    proc = run_bot("--paper", "--duration", "1", "--db", db, "--settings", settings, cwd=tmp_path)
    assert_usage_error(proc, str(db))


def test_report_is_read_only_and_says_no_bot_runs(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    db = tmp_path / "paper.sqlite"
    Storage.open(db).close()
    before = _digest(db)
    proc = run_bot("report", "--db", db, "--settings", settings, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "not running" in proc.stdout.splitlines()[0]
    as_json = json.loads(run_bot("report", "--json", "--db", db, "--settings", settings, cwd=tmp_path).stdout)
    assert as_json["bot_running"] is False and as_json["bot_pid"] is None
    assert _digest(db) == before


def test_a_request_without_a_running_bot_says_it_waits_and_the_next_start_says_it_applies(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    db = tmp_path / "paper.sqlite"
    Storage.open(db).close()
    proc = run_bot("halt", "--reason", "maintenance", "--db", db, "--settings", settings, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no bot is running" in proc.stdout and "next starts" in proc.stdout
    run = run_bot("--paper", "--duration", "1", "--speed", "60", "--db", db, "--settings", settings, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "pending control request(s) applied now: halt (manual: maintenance)" in run.stderr


def test_report_and_postmortem_name_an_entry_a_kill_left_in_the_journal(tmp_path: Path) -> None:
    # an entry's intent journalled (its orders may have left) and the bot killed before its rows
    # were written: the read-only commands must say so, not show nothing
    from storage import MachineKind, TransitionRecord
    from tests.test_storage import T0, make_position, open_intents

    settings = write_settings(tmp_path)
    db = tmp_path / "paper.sqlite"
    storage = Storage.open(db)
    storage.journal_entry_intent([TransitionRecord(T0, MachineKind.POSITION, "pos-1", "scanning", "opening", "begin_open")],
                                 make_position(), open_intents())
    storage.close()
    before = _digest(db)
    proc = run_bot("report", "--db", db, "--settings", settings, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "entry journalled" in proc.stdout and "pos-1" in proc.stdout and "start the bot once" in proc.stdout
    as_json = json.loads(run_bot("report", "--json", "--db", db, "--settings", settings, cwd=tmp_path).stdout)
    assert as_json["entries_journalled_not_written"] == ["pos-1"]
    proc = run_bot("postmortem", "pos-1", "--db", db, "--settings", settings, cwd=tmp_path)
    line = assert_usage_error(proc, "pos-1")
    assert "entry journalled" in line
    assert _digest(db) == before  # read-only: the next start writes it, not a report


def test_a_directory_given_as_a_database_is_named_as_such(tmp_path: Path) -> None:
    """sqlite says only "disk I/O error" for a directory: the line says what is wrong and the fix."""
    settings = write_settings(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    for command in (["report", "--db", folder], ["emulate", "--venues", "bybit", "--state", folder]):
        proc = run_bot(*command, "--settings", settings, cwd=tmp_path)
        assert_usage_error(proc, str(folder), "is a directory", "file path")
    assert list(folder.iterdir()) == []
