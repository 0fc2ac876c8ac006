"""Logging: JSON lines to a file for post-mortems, only errors on the terminal.

The terminal belongs to the status line; everything (transitions, orders, events) goes to the
JSON-lines file. Secrets never reach a log: nothing here formats settings or the environment.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from loguru import logger


def configure_logging(log_path: Path, *, terminal_level: str = "ERROR") -> None:
    """Route loguru to ``log_path`` (JSON, serialize=True) and errors to stderr.

    ``diagnose=False`` on every sink: tracebacks are still logged, but never the values of the
    variables in their frames (settings objects, arguments, and one day live credentials).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger.remove()
    logger.add(log_path, serialize=True, level="INFO", enqueue=False, diagnose=False, backtrace=False)
    logger.add(sys.stderr, level=terminal_level, format="{time:YYYY-MM-DDTHH:mm:ss.SSS!UTC}Z {level} {message}",
               diagnose=False, backtrace=False)
    # transitions logs every callback at INFO on stdlib logging; keep that out of the terminal.
    logging.getLogger("transitions").setLevel(logging.WARNING)


_LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR", "critical": "CRITICAL"}


def log_event(kind: str, severity: str, message: str, entity_id: str | None = None) -> None:
    """Log a recorded event as a JSON line at the level matching its stored severity."""
    logger.bind(kind="event", event=kind, entity_id=entity_id).log(_LEVELS.get(severity, "INFO"), message)
