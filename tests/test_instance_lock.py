"""One bot per database: the instance lock, and two real bots on one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from paper.venue_store import VenueStore
from storage.instance_lock import AlreadyRunning, InstanceLock, lock_path_for, running_pid
from tests.helpers_cli import assert_usage_error, run_bot, start_bot, stop_if_running, wait_for, write_settings


def test_second_acquire_names_the_holder_and_release_frees_it(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite"
    assert running_pid(db) is None and not lock_path_for(db).exists()  # asking never creates the file
    lock = InstanceLock.acquire(db)
    assert running_pid(db) == os.getpid()
    with pytest.raises(AlreadyRunning) as caught:
        InstanceLock.acquire(db)
    assert caught.value.pid == os.getpid() and f"pid {os.getpid()}" in str(caught.value)
    lock.release()
    assert running_pid(db) is None
    with InstanceLock.acquire(db) as again:
        assert again.held
    assert not again.held


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite"
    code = ("import sys, time; from storage.instance_lock import InstanceLock; "
            f"InstanceLock.acquire({str(db)!r}); print('locked', flush=True); time.sleep(60)")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        assert running_pid(db) == child.pid
        with pytest.raises(AlreadyRunning):
            InstanceLock.acquire(db)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert running_pid(db) is None  # the kernel released it: the pid left in the file means nothing
    InstanceLock.acquire(db).release()


def test_the_paper_venues_file_is_locked_too(tmp_path: Path) -> None:
    path = tmp_path / "bot.venues.sqlite"
    store = VenueStore.open(path, exclusive=True)
    try:
        with pytest.raises(AlreadyRunning):
            VenueStore.open(path, exclusive=True)
    finally:
        store.close()
    VenueStore.open(path, exclusive=True).close()  # released on close


@pytest.mark.e2e
def test_two_bots_on_one_database_the_second_exits_2_before_trading(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    db = tmp_path / "paper.sqlite"
    first = start_bot("--paper", "--speed", "3600", "--db", db, "--settings", settings, cwd=tmp_path)
    try:
        assert wait_for(lambda: running_pid(db) == first.pid, 30, proc=first), (tmp_path / "run.stderr").read_text()
        before = lock_path_for(db).read_text()
        second = run_bot("--paper", "--speed", "3600", "--db", db, "--settings", settings, cwd=tmp_path)
        line = assert_usage_error(second, str(db), f"pid {first.pid}")
        assert "one bot per database" in line
        assert first.poll() is None and lock_path_for(db).read_text() == before  # the holder is untouched
    finally:
        stop_if_running(first)
    assert first.returncode == 0, (tmp_path / "run.stderr").read_text()
