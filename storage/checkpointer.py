"""WAL checkpoints on a thread of their own, never inside one of the bot's commits.

SQLite copies the write-ahead log back into the database file (a checkpoint) when a commit finds
the log past ``wal_autocheckpoint`` pages (1000 by default); that commit then also pays for the
copy and its fsyncs (milliseconds, up to ~10 ms on the bench machine). The bot's latency-critical
commit (an entry's intent, written before its orders leave) must not be that commit. So, in the
running bot (``AsyncStorage.open``), the writer connection auto-checkpoints only as a safety net
(``SAFETY_NET_PAGES``) and this thread runs a PASSIVE checkpoint on a connection of its own every
``interval_s``. A PASSIVE checkpoint never takes the write lock, never waits for readers and never
blocks the writer (WAL lets a checkpoint run beside a write transaction); it only copies frames
that are committed already, so what is durable, and when, is exactly as before.

The first write after a checkpoint that copied the whole log starts the log over, and with
``synchronous = NORMAL`` SQLite syncs the new log header then (an ``fdatasync``: ~0.3-1 ms on the
bench machine, more on a cloud disk). An entry is usually the first write after a quiet second,
so its intent commit, on the event loop, paid that sync before its orders could leave (seen in
``bench/live.py`` with ``perf``). So, when the owner gives ``restart_wal``, this thread asks the
owner's writer to start the log over right after such a checkpoint (a one-row write on the
writer's worker thread, off the event loop), and then leaves the log alone until another commit
arrives (``PRAGMA data_version``): checkpointing the restart's own row would make the next commit
start the log over again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

SAFETY_NET_PAGES = 20_000  # ~80 MB of log: only reached if this thread cannot keep up or stopped
DEFAULT_INTERVAL_S = 1.0


class WalCheckpointer:
    """A daemon thread checkpointing ``path``'s WAL every ``interval_s`` seconds until ``stop``."""

    def __init__(self, path: Path, interval_s: float = DEFAULT_INTERVAL_S,
                 restart_wal: Callable[[threading.Event], None] | None = None) -> None:
        """``restart_wal(done)``: called on this thread after a checkpoint copied the whole log;
        it must not block, and must have the writer start the log over (any small write) and
        then set ``done`` (also when that failed: report it with ``note_failure``)."""
        self.path = Path(path)
        self.interval_s = interval_s
        self.restart_wal = restart_wal
        self.checkpoints = 0  # completed PASSIVE checkpoints (each may have copied nothing)
        self.frames_copied = 0
        self.restarts_requested = 0
        self.failures = 0
        self.last_error: str | None = None
        self._restart_done: threading.Event | None = None
        self._quiet_version: int | None = None  # data_version right after the last restart
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread (an in-flight checkpoint finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def note_failure(self, exc: BaseException) -> None:
        """Count a failed checkpoint or log restart (the writer's safety net still checkpoints)."""
        self.failures += 1
        self.last_error = str(exc)

    def checkpoint_once(self, conn: sqlite3.Connection) -> int:
        """One PASSIVE checkpoint on ``conn``; the number of frames copied into the database file.
        After a checkpoint that left nothing behind, the writer is asked to start the log over."""
        busy, log_frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        self.frames_copied += max(0, int(copied))
        if self.restart_wal is not None and int(log_frames) > 0 and int(copied) == int(log_frames):
            done = threading.Event()
            self._restart_done = done
            self.restarts_requested += 1
            self.restart_wal(done)
        return int(copied)

    def step(self, conn: sqlite3.Connection) -> None:
        """One turn of the thread: checkpoint, unless nothing was committed since the log restart
        (or that restart is still on its way)."""
        if self.restart_wal is not None:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if self._restart_done is not None:
                if not self._restart_done.is_set():
                    return
                self._restart_done = None
                self._quiet_version = version
            if version == self._quiet_version:
                return
        self.checkpoint_once(conn)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    if conn is None:  # mode=rw: a database file deleted under the bot is never re-created here
                        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True)
                    self.step(conn)
                except sqlite3.Error as exc:  # counted; the writer's safety net still checkpoints
                    self.note_failure(exc)
        finally:
            if conn is not None:
                conn.close()
