"""Run ``python -m bot`` as a user would (a subprocess) and read what it left behind.

Every run uses a settings file copied from the shipped ``settings.toml`` with ``log_path`` moved
into a temporary directory, an explicit ``--db`` in that directory, and the temporary directory as
working directory, so nothing is ever written into the repository.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHIPPED_SETTINGS = REPO / "settings.toml"


def write_settings(directory: Path, overrides: Mapping[str, Mapping[str, str]] | None = None,
                   name: str = "settings.toml") -> Path:
    """Copy the shipped settings into ``directory`` with ``bot.log_path`` inside it.

    ``overrides`` maps a section (``"strategy"``, ``"paper.faults"``) to ``{key: TOML value text}``;
    each key must already exist in that section of the shipped file (so a typo fails loudly).
    """
    wanted: dict[str, dict[str, str]] = {"bot": {"log_path": json.dumps(str(directory / "bot.log.jsonl"))}}
    for section, values in (overrides or {}).items():
        wanted.setdefault(section, {}).update(values)
    lines = SHIPPED_SETTINGS.read_text(encoding="utf-8").splitlines()
    section = ""
    done: set[tuple[str, str]] = set()
    out = []
    for line in lines:
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1)
        assignment = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if assignment and assignment.group(1) in wanted.get(section, {}):
            key = assignment.group(1)
            line = f"{key} = {wanted[section][key]}"
            done.add((section, key))
        out.append(line)
    missing = {(s, k) for s, values in wanted.items() for k in values} - done
    if missing:
        raise KeyError(f"not in the shipped settings.toml: {sorted(missing)}")
    path = directory / name
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def bot_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "bot", *(str(a) for a in args)]


def bot_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONWARNINGS", None)
    return env


def run_bot(*args: str | Path, cwd: Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot ARGS`` to completion in ``cwd``; output captured as text."""
    return subprocess.run(bot_command(*args), cwd=cwd, env=bot_env(), capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def start_bot(*args: str | Path, cwd: Path, log_name: str = "run") -> subprocess.Popen[str]:
    """Start ``python -m bot ARGS`` in the background; stdout/stderr go to files in ``cwd``."""
    out = (cwd / f"{log_name}.stdout").open("w")
    err = (cwd / f"{log_name}.stderr").open("w")
    try:
        return subprocess.Popen(bot_command(*args), cwd=cwd, env=bot_env(), stdout=out, stderr=err, text=True)
    finally:
        out.close()
        err.close()


def stop_if_running(proc: subprocess.Popen[str], timeout_s: float = 40) -> None:
    """Cleanup for a test that failed early: SIGTERM our own child (it flattens), then kill it."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def report_json(db: Path, settings: Path, cwd: Path) -> dict[str, Any]:
    proc = run_bot("report", "--db", db, "--settings", settings, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@contextmanager
def read_only(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a database another process may be writing."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with read_only(db) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for(predicate, timeout_s: float, interval_s: float = 0.1, proc: subprocess.Popen[str] | None = None) -> bool:
    """Poll ``predicate`` until true (True) or timeout / the process ended (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except sqlite3.OperationalError:  # the file or table is not created yet, or briefly locked
            pass
        if proc is not None and proc.poll() is not None:
            return bool(_safe(predicate))
        time.sleep(interval_s)
    return False


def _safe(predicate) -> bool:
    try:
        return bool(predicate())
    except sqlite3.OperationalError:
        return False


def assert_usage_error(proc: subprocess.CompletedProcess[str], *must_mention: str) -> str:
    """Exit 2, exactly one stderr line starting with ``error:``, no traceback; returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: "), line
    for text in must_mention:
        assert text.lower() in line.lower(), (text, line)
    return line
