"""The command line as a user meets it: ``python -m bot`` in a subprocess.

User errors (bad flags, bad settings, missing files) must exit 2 with exactly one ``error:`` line on
stderr and no traceback; the read and control commands must work on a real database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_cli import assert_usage_error, bot_env, query, run_bot, write_settings

FIXED_START = '"2026-03-01T00:00:00Z"'
SCAN_KEYS = ("symbol", "long_venue", "short_venue", "long_rate", "long_interval_hours", "short_rate",
             "short_interval_hours", "spread_hourly", "apr", "costs", "expected_net", "breakeven_hours")
NUMBER_KEYS = SCAN_KEYS[3:]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def settings(workdir: Path) -> Path:
    return write_settings(workdir, {"sim": {"start": FIXED_START}})


@pytest.fixture(scope="module")
def paper_db(workdir: Path, settings: Path) -> Path:
    """A real bot database, made by a short paper run."""
    db = workdir / "paper.sqlite"
    proc = run_bot("--paper", "--speed", "3600", "--duration", "1", "--db", db, "--settings", settings, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert db.exists()
    return db


# ----------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--paper", "--no-such-flag"], ["--no-such-flag"]),
        (["--paper", "--speed", "0"], ["--speed"]),
        (["--paper", "--speed", "abc"], ["--speed", "abc"]),
        (["--paper", "--duration", "-1"], ["--duration"]),
        (["scan", "--limit", "0"], ["--limit"]),
        (["scan", "--replay", "{work}"], ["--at"]),
        (["scan", "--replay", "{work}", "--at", "garbage"], ["--at", "garbage"]),
        (["scan", "--replay", "{work}/no-such-dir", "--at", "2026-03-01T00:00:00Z"], ["no-such-dir"]),
        (["scan", "--at", "2026-03-01T00:00:00Z"], ["--replay"]),
        (["--live"], ["live.venues", "empty"]),
        ([], ["--paper"]),
    ],
    ids=["unknown-flag", "speed-0", "speed-abc", "duration-negative", "scan-limit-0", "replay-without-at",
         "at-garbage", "replay-missing-dir", "at-without-replay", "live", "no-mode"],
)
def test_bad_arguments_exit_2_with_one_error_line(workdir: Path, settings: Path, args: list[str],
                                                   mentions: list[str]) -> None:
    argv = [a.replace("{work}", str(workdir)) for a in args]
    proc = run_bot(*argv, "--settings", settings, cwd=workdir)
    assert_usage_error(proc, *mentions)


def test_bad_arguments_write_nothing(workdir: Path, settings: Path, tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite"
    proc = run_bot("--paper", "--speed", "0", "--db", db, "--settings", settings, cwd=tmp_path)
    assert_usage_error(proc, "--speed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "mentions"),
    [
        ('[bot]\nstatus_interval_seconds = 1.0\nno_such_key = 1\n', ["bot.no_such_key", "unknown"]),
        ('[no_such_section]\nx = 1\n', ["no_such_section"]),
        ('[strategy]\nnotional_usd_per_position = "abc"\n', ["strategy.notional_usd_per_position"]),
        ('[strategy]\nmax_positions = 0\n', ["strategy.max_positions"]),
        ('[bot\nlog_path = \n', ["toml"]),
    ],
    ids=["unknown-key", "unknown-section", "bad-decimal", "out-of-range", "malformed-toml"],
)
def test_bad_settings_exit_2_with_one_error_line(tmp_path: Path, content: str, mentions: list[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(content, encoding="utf-8")
    db = tmp_path / "never.sqlite"
    proc = run_bot("--paper", "--duration", "1", "--db", db, "--settings", bad, cwd=tmp_path)
    line = assert_usage_error(proc, *mentions)
    assert str(bad) in line
    assert not db.exists()


def test_missing_settings_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    proc = run_bot("--paper", "--duration", "1", "--db", tmp_path / "x.sqlite", "--settings", missing, cwd=tmp_path)
    assert_usage_error(proc, str(missing))


def test_report_on_missing_db_exits_2(tmp_path: Path, settings: Path) -> None:
    db = tmp_path / "missing.sqlite"
    proc = run_bot("report", "--db", db, "--settings", settings, cwd=tmp_path)
    assert_usage_error(proc, str(db))
    assert not db.exists()  # a read command must not create the file


def test_postmortem_of_unknown_position_exits_2(paper_db: Path, settings: Path, workdir: Path) -> None:
    proc = run_bot("postmortem", "nosuchid", "--db", paper_db, "--settings", settings, cwd=workdir)
    assert_usage_error(proc, "nosuchid")


# ----------------------------------------------------------------------------- help
def test_help_lists_modes_and_commands(tmp_path: Path) -> None:
    proc = run_bot("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for word in ("--paper", "--live", "scan", "report", "postmortem", "halt", "--duration", "--speed"):
        assert word in proc.stdout, word


# ----------------------------------------------------------------------------- scan on the sim market
def _scan(workdir: Path, settings: Path, *extra: str) -> list[dict]:
    proc = run_bot("scan", "--json", "--settings", settings, *extra, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list)
    return rows


@pytest.fixture(scope="module")
def full_scan(workdir: Path, settings: Path) -> list[dict]:
    return _scan(workdir, settings, "--limit", "50")


def test_scan_json_on_sim_market(full_scan: list[dict]) -> None:
    rows = full_scan
    assert 1 <= len(rows) <= 50
    nets = []
    for row in rows:
        assert set(SCAN_KEYS) <= set(row), sorted(set(SCAN_KEYS) - set(row))
        assert row["long_venue"] != row["short_venue"]
        values = {}
        for key in NUMBER_KEYS:
            if key == "breakeven_hours" and row[key] is None:  # only a non-positive spread never breaks even
                assert Decimal(row["spread_hourly"]) <= 0
                continue
            assert isinstance(row[key], str), (key, row[key])
            values[key] = Decimal(row[key])
            assert values[key].is_finite(), (key, row[key])
        spread = (values["short_rate"] / values["short_interval_hours"]
                  - values["long_rate"] / values["long_interval_hours"])
        # today's spread from the rates; the ranking uses the forecast average over the horizon
        assert abs(Decimal(row["current_spread_hourly"]) - spread) <= Decimal("1e-24")
        assert values["apr"] == values["spread_hourly"] * 8760
        assert values["costs"] > 0
        # expected net = forecast spread x horizon (strategy.horizon_hours = 336 h) x notional - costs
        notional = Decimal(row["notional_usd"])
        assert 0 < notional <= Decimal(1000)
        assert abs(values["expected_net"] - (values["spread_hourly"] * 336 * notional - values["costs"])) \
            <= Decimal("1e-18")
        nets.append(values["expected_net"])
    assert nets == sorted(nets, reverse=True)


def test_scan_limit_is_a_prefix_of_the_full_ranking(full_scan: list[dict], workdir: Path, settings: Path) -> None:
    full = full_scan
    top3 = _scan(workdir, settings, "--limit", "3")
    assert len(full) > 3
    assert top3 == full[:3]


def test_scan_table_output(workdir: Path, settings: Path) -> None:
    proc = run_bot("scan", "--limit", "5", "--settings", settings, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "simulated market" in proc.stdout
    assert "breakeven" in proc.stdout


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=bot_env(), capture_output=True, text=True,
                          timeout=120, check=False)


def test_scan_starts_without_the_database_layer_or_loguru(workdir: Path, settings: Path) -> None:
    # start-up: `scan` needs neither sqlite-utils (storage) nor loguru/asyncio (bot.cli defers
    # quieting loguru until something imports it)
    proc = _python("import sys\nfrom bot.cli import main\n"
                   f"code = main(['scan', '--limit', '1', '--settings', {str(settings)!r}])\n"
                   "print(code, sorted(m for m in ('sqlite_utils', 'loguru', 'asyncio') if m in sys.modules))",
                   workdir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 []"


def test_loguru_imported_later_is_still_quieted(tmp_path: Path) -> None:
    # loguru's default sink would print frame variables (diagnose); the CLI's replacement does not,
    # and still drops INFO while printing WARNING, also when loguru is first imported after main()
    code = """
import sys
from bot.cli import main, _quiet_loguru_once_imported
_quiet_loguru_once_imported()
from loguru import logger
logger.info("info-line-not-shown")
logger.warning("warning-line-shown")
def fail(secret_value):
    raise ValueError("boom" if secret_value else "")
try:
    fail("SECRET-" + str(6 * 7))  # the value only a variable dump would show
except ValueError:
    logger.exception("failed")
"""
    script = tmp_path / "late_loguru.py"  # a file: loguru's diagnose needs the source to show values
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=bot_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "warning-line-shown" in proc.stderr and "info-line-not-shown" not in proc.stderr
    assert "ValueError: boom" in proc.stderr and "SECRET-42" not in proc.stderr


# ----------------------------------------------------------------------------- report / control on a real DB
def test_report_json_on_real_db(paper_db: Path, settings: Path, workdir: Path) -> None:
    proc = run_bot("report", "--db", paper_db, "--settings", settings, "--json", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["bot_state"] == "stopped"
    assert report["open_exposure"] == {}
    assert report["totals"]["open_positions"] == 0


def _kv(db: Path, key: str) -> str | None:
    rows = query(db, "SELECT value FROM kv WHERE key = ?", (key,))
    return rows[0]["value"] if rows else None


def _events(db: Path, kind: str) -> list[str]:
    return [r["message"] for r in query(db, "SELECT message FROM events WHERE kind = ? ORDER BY id", (kind,))]


def test_halt_resume_flatten_write_kv_rows(paper_db: Path, settings: Path, workdir: Path) -> None:
    common = ("--db", paper_db, "--settings", settings)

    proc = run_bot("halt", "--reason", "maintenance window", *common, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert _kv(paper_db, "control.halt") == "manual: maintenance window"
    assert len(_events(paper_db, "control_halt")) == 1

    proc = run_bot("flatten", *common, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    flatten = _kv(paper_db, "control.flatten")
    assert flatten and flatten.endswith("Z")
    assert len(_events(paper_db, "control_flatten")) == 1

    proc = run_bot("resume", *common, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert _kv(paper_db, "control.halt") == ""
    assert len(_events(paper_db, "control_resume")) == 1


def test_control_on_missing_db_exits_2(tmp_path: Path, settings: Path) -> None:
    db = tmp_path / "missing.sqlite"
    proc = run_bot("halt", "--db", db, "--settings", settings, cwd=tmp_path)
    assert_usage_error(proc, str(db))
    assert not db.exists()
