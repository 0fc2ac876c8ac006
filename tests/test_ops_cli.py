"""Operator-surface settings and environment mistakes are one-line user errors (exit 2), and the
secret parts of a notification URL never appear in them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers_cli import assert_usage_error, bot_command, bot_env


def _run(tmp_path: Path, toml: str, env: dict[str, str] | None = None,
         duration_s: int = 1) -> subprocess.CompletedProcess[str]:
    settings = tmp_path / "s.toml"
    settings.write_text(toml)
    full_env = bot_env()
    full_env.pop("FUNDING_ARB_WEB_TOKEN", None)
    full_env.pop("FUNDING_ARB_NOTIFY_URLS", None)
    full_env.update(env or {})
    return subprocess.run(bot_command("--paper", "--duration", str(duration_s), "--settings", settings, "--db",
                                      tmp_path / "p.sqlite"),
                          cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("toml", "env", "mentions"), [
    ('[web]\nenabled = true\nhost = "0.0.0.0"\n', {}, ["web.host", "not loopback", "allow_remote"]),
    ("[web]\nenabled = true\n", {"FUNDING_ARB_WEB_TOKEN": "short"}, ["FUNDING_ARB_WEB_TOKEN", "16"]),
    ('[notify]\nurls = ["tgram://${NOPE_TOKEN}/1"]\n', {}, ["notify.urls[0]", "NOPE_TOKEN"]),
    ('[notify]\nurls = ["zzz://user:hunter2@h/1"]\n', {}, ["zzz://", "apprise"]),
    ('[shutdown]\non_signal = "maybe"\n', {}, ["shutdown.on_signal", "flatten", "keep"]),
])
def test_bad_operator_settings_exit_2_with_one_line(tmp_path: Path, toml: str, env: dict[str, str],
                                                     mentions: list[str]) -> None:
    line = assert_usage_error(_run(tmp_path, toml, env), *mentions)
    assert "hunter2" not in line


def test_a_generated_token_is_printed_once_and_never_logged(tmp_path: Path) -> None:
    # --duration counts from launch: 6 s leave the dashboard time to start on a loaded machine.
    proc = _run(tmp_path, '[web]\nenabled = true\nport = 0\n[bot]\nlog_path = "log.jsonl"\n', duration_s=6)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("dashboard: ")]
    assert len(lines) == 1 and "?token=" in lines[0]
    token = lines[0].split("?token=")[1].split()[0]
    assert len(token) >= 32
    assert token not in (tmp_path / "log.jsonl").read_text()
