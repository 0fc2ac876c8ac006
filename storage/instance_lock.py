"""One bot per database: an OS-level lock on a sidecar file, held for the whole run.

``<db>.lock`` is locked with ``fcntl.flock(LOCK_EX | LOCK_NB)`` and the holder's pid written
into it. The kernel releases a flock when the process dies in any way (SIGKILL included), so a
stale lock cannot outlive its holder; the pid in the file is only informative. Read-only
commands ask ``running_pid`` whether a bot holds the lock, without ever creating the file.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from storage.errors import StorageError


class AlreadyRunning(StorageError):
    """Another process holds the lock of this database."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"{path} is in use by a running bot ({holder}); one bot per database "
                         f"(stop that bot first, or pass another --db)")


def lock_path_for(db_path: str | Path) -> Path:
    """The sidecar lock file of a database: ``<db>.lock`` in the same directory."""
    p = Path(db_path)
    return p.with_name(p.name + ".lock")


class InstanceLock:
    """An exclusive, process-lifetime lock of one database file. Use ``acquire``."""

    def __init__(self, db_path: Path, fd: int) -> None:
        self.db_path = db_path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: str | Path) -> InstanceLock:
        """Take the lock of ``db_path`` or raise ``AlreadyRunning`` naming the holder's pid."""
        db = Path(db_path)
        path = lock_path_for(db)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(db, _read_pid(path)) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(db, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (the kernel also does it when the process ends)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def running_pid(db_path: str | Path) -> int | None:
    """The pid of the bot holding ``db_path``'s lock, 0 if held by an unknown pid, None if no bot runs.

    Never creates or writes the lock file (read-only commands use it).
    """
    path = lock_path_for(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                pid = _read_pid(path)
                return pid if pid is not None else 0
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
