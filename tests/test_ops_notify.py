"""Notifications: which journal rows become notices, de-duplication and the rate limit, URL
placeholders from the environment, delivery to a local webhook, and a dead service."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from bot.errors import UserInputError
from bot.ops.notify import NOTIFY_URLS_ENV, Notice, Notifier, SendPolicy, apprise_sender, expand_urls, notice_for
from tests.webhook_receiver import WebhookReceiver


def _t(machine: str, source: str, dest: str, reason: str = "", entity: str = "p1", id_: int = 1) -> dict[str, Any]:
    return {"type": "transition", "id": id_, "machine": machine, "entity_id": entity, "source": source,
            "dest": dest, "trigger": "x", "reason": reason}


def _e(kind: str, message: str = "m", details: dict | None = None, id_: int = 1) -> dict[str, Any]:
    return {"type": "event", "id": id_, "kind": kind, "message": message, "details": details, "entity_id": None,
            "severity": "warning"}


@pytest.mark.parametrize(("entry", "kind", "title", "urgent"), [
    (_t("position", "opening", "monitoring", "long 1 / short 1"), "entry", "Entered BTC long a / short b", False),
    (_t("position", "opening", "recovering", "long 0 / short 1"), "repair", "Repairing BTC long a / short b", False),
    (_t("position", "recovering", "monitoring", "hedged"), "repair", "Repaired BTC long a / short b", False),
    (_t("position", "closing", "closed", "take_profit"), "exit", "Exited BTC long a / short b", False),
    (_t("bot", "stopping", "stopped", "flat (signal SIGTERM)", entity="bot"), "shutdown", "Bot stopped", True),
    (_t("bot", "stopping", "stopped", "NOT flat (signal SIGTERM)", entity="bot"), "shutdown",
     "Bot stopped NOT FLAT", True),
    (_t("bot", "scanning", "halted", "manual: x", entity="bot"), "halt", "Trading halted", True),
    (_e("breaker_opened", "manual: closed -> open", {"breaker": "manual"}), "breaker", "Breaker manual opened", True),
    (_e("breaker_opened", "stale", {"breaker": "stale_data:v"}), "breaker", "Breaker stale_data:v opened", False),
    (_e("breaker_closed", "ok", {"breaker": "venue_errors:v"}), "breaker", "Breaker venue_errors:v closed", False),
    (_e("task_failed", "strategy loop failed (1x): boom"), "loop_failure", "Loop failure", True),
    (_e("not_flat", "NOT FLAT"), "not_flat", "Not flat", True),
])
def test_journal_rows_that_become_notices(entry: dict, kind: str, title: str, urgent: bool) -> None:
    notice = notice_for(entry, lambda pid: "BTC long a / short b")
    assert notice is not None
    assert (notice.kind, notice.title) == (kind, title)
    policy = SendPolicy(max_per_minute=1, dedupe_seconds=0, now=lambda: 0.0)
    assert policy.admit(Notice("other", "t", "b", "k0")) is None  # use up the rate
    assert (policy.admit(notice) is None) is urgent


@pytest.mark.parametrize("entry", [
    _t("position", "scanning", "opening"), _t("position", "monitoring", "closing"), _t("bot", "scanning", "opening"),
    _e("unhedged_window"), _e("breaker_half_opened", details={"breaker": "x"}), _e("startup"),
])
def test_routine_rows_are_not_notified(entry: dict) -> None:
    assert notice_for(entry) is None


def test_duplicates_are_dropped_within_the_window_and_the_rate_is_limited() -> None:
    now = [0.0]
    policy = SendPolicy(max_per_minute=3, dedupe_seconds=600, now=lambda: now[0])
    a = Notice("exit", "t", "b", "exit:p1")
    assert policy.admit(a) is None
    assert policy.admit(a) == "duplicate"
    now[0] = 601
    assert policy.admit(a) is None
    assert policy.admit(Notice("exit", "t", "b", "exit:p2")) is None
    assert policy.admit(Notice("exit", "t", "b", "exit:p3")) is None
    assert policy.admit(Notice("exit", "t", "b", "exit:p4")) == "rate_limited"
    assert policy.admit(Notice("shutdown", "t", "b", "shutdown:1")) is None  # urgent: not rate-limited
    now[0] = 662
    assert policy.admit(Notice("exit", "t", "b", "exit:p4")) is None  # the minute has passed


def test_url_placeholders_come_from_the_environment_and_missing_ones_are_named() -> None:
    env = {"TG_TOKEN": "123:secret", NOTIFY_URLS_ENV: "json://127.0.0.1:1/a json://127.0.0.1:1/b"}
    urls = expand_urls(["tgram://${TG_TOKEN}/42"], env)
    assert urls == ["tgram://123:secret/42", "json://127.0.0.1:1/a", "json://127.0.0.1:1/b"]
    with pytest.raises(UserInputError) as err:
        expand_urls(["tgram://${MISSING_TOKEN}/42"], {})
    assert "MISSING_TOKEN" in str(err.value) and "notify.urls[0]" in str(err.value)


def test_an_invalid_url_is_a_user_error_that_does_not_repeat_the_url() -> None:
    with pytest.raises(UserInputError) as err:
        apprise_sender(["nosuchscheme://user:hunter2@host/x"])
    assert "hunter2" not in str(err.value) and "nosuchscheme://" in str(err.value)


@pytest.mark.anyio
async def test_notices_reach_a_local_webhook() -> None:
    with WebhookReceiver() as receiver:
        notifier = Notifier(apprise_sender([receiver.url]), SendPolicy(20, 600), queue_size=10, timeout_s=10)
        async with anyio.create_task_group() as tg:
            tg.start_soon(notifier.run)
            assert notifier.offer(Notice("entry", "Entered BTC", "position p1 hedged", "entry:p1"))
            assert not notifier.offer(Notice("entry", "Entered BTC", "position p1 hedged", "entry:p1"))  # duplicate
            assert notifier.offer(Notice("shutdown", "Bot stopped", "shutdown result: flat", "s:1", "success"))
            assert await notifier.drain(10)
        await anyio.to_thread.run_sync(lambda: receiver.wait_for(lambda m: len(m) >= 2, 5))
    titles = [m["title"] for m in receiver.messages()]
    assert titles == ["funding-arb: Entered BTC", "funding-arb: Bot stopped"]
    assert receiver.messages()[1]["type"] == "success"
    assert notifier.outcomes == {"sent": 2, "dropped_duplicate": 1}


@pytest.mark.anyio
async def test_a_full_queue_drops_and_a_hanging_service_is_abandoned_without_raising() -> None:
    with WebhookReceiver(hang=True) as receiver:
        notifier = Notifier(apprise_sender([receiver.url + "?rto=30&cto=30"]), SendPolicy(100, 0),
                            queue_size=2, timeout_s=0.3)
        # Nobody is sending yet: the third offer finds the queue full and is dropped at once.
        assert notifier.offer(Notice("exit", "a", "b", "k1"))
        assert notifier.offer(Notice("exit", "a", "b", "k2"))
        assert not notifier.offer(Notice("exit", "a", "b", "k3"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(notifier.run)
            assert await notifier.drain(5)
    assert notifier.outcomes == {"dropped_queue_full": 1, "failed": 2}
