"""Notifications through apprise: entries and exits, repairs, breakers, halts, loop failures,
the shutdown result and a daily summary.

``notice_for`` (pure) turns a journal row into a ``Notice`` or None. ``Notifier.offer`` never
waits: duplicates within ``dedupe_seconds`` and notices over ``max_per_minute`` are dropped
(urgent ones, such as the shutdown result or a loop failure, skip the rate limit but not the
de-duplication), and a full queue drops the newcomer. One sender task delivers the queue on a
worker thread with a deadline per send; a slow or dead service only delays other notices.
Failures are logged and counted, never raised.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from loguru import logger

from bot.errors import UserInputError

NOTIFY_URLS_ENV = "FUNDING_ARB_NOTIFY_URLS"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_ABANDONED_SENDS = 8
DROP_LOG_INTERVAL_S = 10.0  # sends still hanging on worker threads before the notifier stops trying

URGENT_KINDS = frozenset({"shutdown", "loop_failure", "not_flat", "flatten_failed", "halt"})
_GLOBAL_BREAKERS = frozenset({"manual", "drawdown", "unhedged"})
_ALERT_EVENTS = {
    "not_flat": "not_flat",
    "flatten_incomplete": "flatten_failed",
    "flatten_failed": "flatten_failed",
    "repair_incomplete": "repair_failed",
    "orphan_position": "orphan",
    "shutdown_deadline": "flatten_failed",
}
_CONTROL_EVENTS = ("control_halt", "control_resume", "control_flatten", "manual_flatten")


@dataclass(frozen=True, slots=True)
class Notice:
    """One message for people: ``kind`` groups it, ``key`` de-duplicates it."""

    kind: str
    title: str
    body: str
    key: str
    severity: str = "info"  # info | success | warning | failure (apprise's notify types)
    urgent: bool = False  # skips the rate limit (never the de-duplication)


Describe = Callable[[str], str]


def notice_for(entry: Mapping[str, Any], describe: Describe = lambda pid: pid) -> Notice | None:
    """The notice a journal row deserves, or None. ``describe`` names a position (symbol, venues)."""
    if entry.get("type") == "transition":
        return _transition_notice(entry, describe)
    if entry.get("type") == "event":
        return _event_notice(entry)
    return None


def _transition_notice(t: Mapping[str, Any], describe: Describe) -> Notice | None:
    source, dest, reason, entity = t["source"], t["dest"], t.get("reason") or "", t["entity_id"]
    if t["machine"] == "bot":
        if dest == "stopped":
            ok = reason.startswith("flat") or reason.startswith("kept")
            return Notice("shutdown", "Bot stopped" if ok else "Bot stopped NOT FLAT", f"shutdown result: {reason}",
                          f"shutdown:{t['id']}", "success" if ok else "failure")
        if dest == "halted":
            return Notice("halt", "Trading halted", f"halted: {reason}", f"halt:{reason}", "warning")
        if source == "halted" and dest not in ("stopping", "stopped"):
            return Notice("halt", "Trading resumed", f"resumed: {reason}", f"resume:{t['id']}", "info")
        return None
    what = describe(entity)
    if dest == "monitoring" and source == "opening":
        return Notice("entry", f"Entered {what}", f"position {entity} hedged: {what}. {reason}", f"entry:{entity}")
    if dest == "recovering":
        return Notice("repair", f"Repairing {what}", f"one-sided fill on {what}: {reason}",
                      f"repair:{entity}:{t['id']}", "warning")
    if source == "recovering" and dest == "monitoring":
        return Notice("repair", f"Repaired {what}", f"hedge completed on {what}: {reason}", f"repaired:{entity}",
                      "success")
    if dest == "closed":
        return Notice("exit", f"Exited {what}", f"position {entity} closed: {what}; reason: {reason}",
                      f"exit:{entity}")
    if dest == "error":
        return Notice("repair", f"Position error {what}", f"position {entity} needs attention: {reason}",
                      f"error:{entity}:{t['id']}", "failure")
    return None


def _event_notice(e: Mapping[str, Any]) -> Notice | None:
    kind, message = e["kind"], e["message"]
    details = e.get("details") or {}
    if kind in ("breaker_opened", "breaker_closed"):
        name = details.get("breaker", "?")
        opened = kind == "breaker_opened"
        return Notice("breaker", f"Breaker {name} {'opened' if opened else 'closed'}", message,
                      f"{kind}:{name}", "warning" if opened else "info", urgent=name in _GLOBAL_BREAKERS)
    if kind == "task_failed":
        return Notice("loop_failure", "Loop failure", message, f"task_failed:{message.split(' loop')[0]}", "failure")
    if kind in _ALERT_EVENTS:
        return Notice(_ALERT_EVENTS[kind], kind.replace("_", " ").capitalize(), message,
                      f"{kind}:{e.get('entity_id')}:{e['id']}", "failure")
    if kind in _CONTROL_EVENTS:
        return Notice("halt", kind.replace("_", " ").capitalize(), message, f"{kind}:{e['id']}", "warning")
    return None


def expand_urls(urls: list[str], env: Mapping[str, str]) -> list[str]:
    """``${NAME}`` placeholders replaced from the environment, plus URLs from FUNDING_ARB_NOTIFY_URLS.

    A missing variable is a user error naming the setting and the variable (never a value).
    """
    out = []
    for index, url in enumerate(urls):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise UserInputError(f"setting 'notify.urls[{index}]' uses ${{{name}}} but the environment variable "
                                     f"{name} is not set (export it, or remove the URL)")
            return env[name]
        out.append(_PLACEHOLDER.sub(sub, url))
    out.extend(env.get(NOTIFY_URLS_ENV, "").split())
    return out


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] + "://" if "://" in url else "(no scheme)"


class SendPolicy:
    """De-duplication and rate limit (wall clock, injectable for tests)."""

    def __init__(self, max_per_minute: int, dedupe_seconds: float, now: Callable[[], float] = time.monotonic) -> None:
        self.max_per_minute = max_per_minute
        self.dedupe_seconds = dedupe_seconds
        self.now = now
        self._last_by_key: dict[str, float] = {}
        self._recent: deque[float] = deque()

    def admit(self, notice: Notice) -> str | None:
        """None to send, else why not ("duplicate" / "rate_limited"); admitted notices are counted."""
        now = self.now()
        last = self._last_by_key.get(notice.key)
        if last is not None and now - last < self.dedupe_seconds:
            return "duplicate"
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        urgent = notice.urgent or notice.kind in URGENT_KINDS
        if not urgent and len(self._recent) >= self.max_per_minute:
            return "rate_limited"
        self._recent.append(now)
        self._last_by_key[notice.key] = now
        if len(self._last_by_key) > 10_000:  # forget the oldest keys; the window is minutes, not days
            for key in sorted(self._last_by_key, key=self._last_by_key.__getitem__)[:5_000]:
                del self._last_by_key[key]
        return None


Send = Callable[[Notice], bool]


def apprise_sender(urls: list[str]) -> Send:
    """A blocking send function over apprise; raises ``UserInputError`` for a URL apprise rejects."""
    import apprise

    logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its messages may quote URLs (secrets)
    client = apprise.Apprise()
    for index, url in enumerate(urls):
        if not client.add(url):
            raise UserInputError(f"notification URL #{index + 1} ({_scheme(url)}) is not a valid apprise URL "
                                 "(see https://github.com/caronc/apprise/wiki for the formats)")
    types = {t.value: t for t in apprise.NotifyType}

    def send(notice: Notice) -> bool:
        return bool(client.notify(body=notice.body, title=f"funding-arb: {notice.title}",
                                  notify_type=types.get(notice.severity, apprise.NotifyType.INFO)))

    return send


class Notifier:
    """Bounded queue + one sender task. ``offer`` is synchronous and never blocks."""

    def __init__(self, send: Send, policy: SendPolicy, *, queue_size: int, timeout_s: float,
                 count: Callable[[str], None] = lambda outcome: None) -> None:
        self._send = send
        self.policy = policy
        self.timeout_s = timeout_s
        self._count = count
        self._tx, self._rx = anyio.create_memory_object_stream[Notice](queue_size)
        self._limiter = anyio.CapacityLimiter(1)
        self._abandoned = 0
        self._drops_unlogged = 0
        self._last_drop_log_s = float("-inf")
        self._lock = threading.Lock()
        self._idle = anyio.Event()
        self._idle.set()
        self.outcomes: dict[str, int] = {}

    def _note(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self._count(outcome)

    def offer(self, notice: Notice) -> bool:
        """Queue ``notice`` unless it is a duplicate, over the rate, or the queue is full."""
        why = self.policy.admit(notice)
        if why is None:
            try:
                self._tx.send_nowait(notice)
                if self._idle.is_set():
                    self._idle = anyio.Event()
                return True
            except anyio.WouldBlock:
                why = "queue_full"
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                why = "closed"
        self._note(f"dropped_{why}")
        self._log_drop(notice, why)
        return False

    def _log_drop(self, notice: Notice, why: str) -> None:
        """At most one log line per DROP_LOG_INTERVAL_S (a flood of drops must stay cheap)."""
        self._drops_unlogged += 1
        now = time.monotonic()
        if now - self._last_drop_log_s >= DROP_LOG_INTERVAL_S:
            logger.bind(kind="notify_dropped").info(
                f"{self._drops_unlogged} notification(s) dropped since the last report "
                f"(latest: {notice.kind}, {why}); totals {self.outcomes}")
            self._drops_unlogged = 0
            self._last_drop_log_s = now

    async def run(self) -> None:
        """Deliver queued notices one at a time until ``drain`` closes the queue."""
        async with self._rx:
            while True:
                try:
                    notice = self._rx.receive_nowait()
                except anyio.WouldBlock:
                    self._idle.set()
                    try:
                        notice = await self._rx.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    self._idle.set()
                    return
                await self._deliver(notice)

    async def _deliver(self, notice: Notice) -> None:
        if self._abandoned >= MAX_ABANDONED_SENDS:
            self._note("failed")
            logger.bind(kind="notify_failed").error(
                f"notification {notice.kind} not sent: {self._abandoned} earlier sends are still hanging")
            return
        ok = False
        state = {"abandoned": False, "done": False}
        with anyio.move_on_after(self.timeout_s) as scope:
            try:
                ok = await anyio.to_thread.run_sync(functools.partial(self._guarded, notice, state),
                                                    abandon_on_cancel=True, limiter=self._limiter)
            except Exception as exc:  # never raised to the bot: logged and counted
                logger.bind(kind="notify_failed").error(f"notification {notice.kind} failed: {type(exc).__name__}")
        if scope.cancelled_caught:
            with self._lock:
                if not state["done"]:
                    state["abandoned"] = True
                    self._abandoned += 1
            logger.bind(kind="notify_failed").error(
                f"notification {notice.kind} abandoned after {self.timeout_s:g}s (service slow or down)")
        elif not ok:
            logger.bind(kind="notify_failed").error(f"notification {notice.kind} was not accepted by the service")
        self._note("sent" if ok else "failed")

    def _guarded(self, notice: Notice, state: dict[str, bool]) -> bool:
        """Runs on a worker thread; an abandoned send that finally returns frees its slot."""
        try:
            return self._send(notice)
        finally:
            with self._lock:
                state["done"] = True
                if state["abandoned"]:
                    self._abandoned -= 1

    async def drain(self, deadline_s: float) -> bool:
        """Close the queue and wait (at most ``deadline_s``) for what is queued to be sent."""
        self._tx.close()
        with anyio.move_on_after(deadline_s):
            await self._idle.wait()
            return True
        return False

