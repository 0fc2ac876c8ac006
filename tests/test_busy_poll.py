"""``live.busy_poll``: the event loop polls instead of sleeping, and everything else behaves as usual.

The selector never blocks (many zero-timeout polls while waiting) yet returns ready events at once
and honours the loop's timeout; a loop built on it runs timers, sockets and other threads' callbacks;
``--live`` with ``busy_poll = true`` trades against the emulator and a SIGTERM still flattens it."""

from __future__ import annotations

import asyncio
import selectors
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest

from bot.core.busy_poll import BusyPollSelector, busy_poll_loop, loop_options, quiet_loop
from tests.helpers_cli import bot_command, bot_env
from tests.test_e2e_live import SETTINGS, _keys, emulator  # noqa: F401  (the fixture)


@pytest.fixture
def watched():
    """A busy-polling selector watching one end of a socket pair for reading; the other end."""
    selector = BusyPollSelector()
    left, right = socket.socketpair()
    selector.register(left, selectors.EVENT_READ)
    yield selector, left, right
    selector.close()
    left.close()
    right.close()


def test_select_returns_what_is_ready_at_once_without_waiting_out_the_timeout(watched) -> None:
    selector, left, right = watched
    right.send(b"x")
    started = time.monotonic()
    ready = selector.select(30.0)
    assert time.monotonic() - started < 10.0  # not the 30 s timeout
    assert [key.fileobj for key, _events in ready] == [left]
    assert selector.polls == 1


def test_select_waits_by_polling_never_by_sleeping(watched) -> None:
    selector, _left, _right = watched
    started = time.monotonic()
    assert selector.select(0.05) == []
    assert time.monotonic() - started >= 0.05  # the loop's timeout is honoured...
    assert selector.polls > 10  # ...by asking the kernel again and again, not by one blocking wait
    polls = selector.polls
    assert selector.select(0) == [] and selector.polls == polls + 1  # zero: one poll
    assert selector.select(-1) == [] and selector.polls == polls + 2


def test_select_without_timeout_returns_when_another_thread_makes_a_socket_ready(watched) -> None:
    selector, left, right = watched
    timer = threading.Timer(0.05, lambda: right.send(b"x"))
    timer.start()
    ready = selector.select(None)
    timer.join()
    assert [key.fileobj for key, _events in ready] == [left]
    assert selector.polls > 1


def test_while_a_thread_sends_an_order_the_selector_waits_in_the_kernel(watched) -> None:
    selector, left, right = watched
    inside = threading.Event()
    leave = threading.Event()

    def sender() -> None:
        with quiet_loop():
            inside.set()
            leave.wait(10)
            right.send(b"x")  # the order's answer, say: the blocked wait returns with it

    thread = threading.Thread(target=sender)
    thread.start()
    assert inside.wait(10)
    assert selector.select(0.02) == [] and selector.quiet_waits == 1 and selector.polls == 1  # one blocking wait
    leave.set()
    ready = selector.select(None)
    thread.join()
    assert [key.fileobj for key, _events in ready] == [left]
    left.recv(1)
    assert selector.select(0.02) == [] and selector.polls > 10  # the stretch ended: polling again


def test_a_bybit_order_is_sent_inside_a_quiet_stretch() -> None:
    from adapters.bybit.http import OrderHandoff
    from bot.core import busy_poll

    async def main() -> int:
        return await OrderHandoff(workers=1).run(lambda: busy_poll._quiet_threads)

    assert anyio.run(main) == 1
    assert busy_poll._quiet_threads == 0


def test_the_busy_polling_loop_runs_timers_sockets_and_threadsafe_callbacks() -> None:
    assert loop_options(False) == {}
    assert loop_options(True) == {"loop_factory": busy_poll_loop}

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop._selector, BusyPollSelector)  # type: ignore[attr-defined]
        seen: list[str] = []
        await anyio.sleep(0.01)
        seen.append("timer")

        async def echo(stream) -> None:
            async with stream:
                await stream.send(await stream.receive())

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, echo)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"ping")
                seen.append((await client.receive()).decode())
            done = loop.create_future()
            threading.Thread(target=lambda: loop.call_soon_threadsafe(done.set_result, "thread")).start()
            with anyio.fail_after(10):
                seen.append(await done)
            tg.cancel_scope.cancel()
        assert loop._selector.polls > 0  # type: ignore[attr-defined]
        return seen

    assert anyio.run(main, backend_options=loop_options(True)) == ["timer", "ping", "thread"]


@pytest.mark.e2e
def test_live_with_busy_poll_trades_and_a_sigterm_flattens(tmp_path: Path, emulator) -> None:  # noqa: F811
    settings = tmp_path / "live.toml"
    text = SETTINGS.format(work=tmp_path.as_posix(), bybit=emulator.base_urls["bybit"],
                           hyperliquid=emulator.base_urls["hyperliquid"])
    settings.write_text(text.replace('symbols = ["BTC", "ETH"]\n', 'symbols = ["BTC", "ETH"]\nbusy_poll = true\n'))
    bot = subprocess.Popen(bot_command("--live", "--settings", settings), cwd=tmp_path,
                           env={**bot_env(), **_keys(emulator)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    db = tmp_path / "live.sqlite"
    opened = 0
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and bot.poll() is None and not opened:
            time.sleep(0.5)
            if db.exists():
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
                    try:
                        opened = conn.execute("SELECT COUNT(*) FROM positions WHERE state = 'monitoring'").fetchone()[0]
                    except sqlite3.OperationalError:  # tables not created yet
                        opened = 0
        bot.send_signal(signal.SIGTERM)
        _out, err = bot.communicate(timeout=120)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.communicate()
    assert opened >= 1, err[-3000:]
    assert bot.returncode == 0, err[-3000:]
    assert "event loop busy-polls (live.busy_poll)" in err
    assert "flat on every venue" in err
    held = emulator.call(lambda: [p for p in emulator.core.executor._positions.values() if p.size_base != 0])
    assert held == []
