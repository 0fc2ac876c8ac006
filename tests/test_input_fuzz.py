"""Fuzzing the input boundary: any settings value, any settings file bytes, any history file bytes.

Every run of the command line must end in exit 0, or in exit 2 with exactly ONE stderr line
starting ``error:``; never a traceback, never another exit code. Runs in-process through
``bot.cli.main`` (the same boundary ``python -m bot`` uses) so Hypothesis can try many inputs.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings, strategies as st

from bot.cli import main
from tests.helpers_cli import SHIPPED_SETTINGS, write_settings

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADER = "venue,symbol,quote,venue_symbol,settlement_ts,rate,interval_hours,mark_price\n"
GOOD_CSV = (HEADER
            + "binance,X,USDT,XUSDT,2026-01-01T00:00:00Z,0.0001,8,10.5\n"
            + "bybit,X,USDT,XUSDT,2026-01-01T00:00:00Z,0.0003,8,10.6\n"
            + "binance,X,USDT,XUSDT,2026-01-01T08:00:00Z,-0.0002,8,11\n"
            + "bybit,X,USDT,XUSDT,2026-01-01T08:00:00Z,0.0004,8,11.1\n").encode()


def _keys() -> list[tuple[str, str]]:
    """Every (section, key) of the shipped settings file."""
    keys, section = [], ""
    for line in SHIPPED_SETTINGS.read_text(encoding="utf-8").splitlines():
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1)
        assignment = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if assignment and section:
            keys.append((section, assignment.group(1)))
    return keys


KEYS = _keys()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value == float("inf") else
                                              "-inf" if value == float("-inf") else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-10**40, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1e999999", "-1e999999", "1e-999999", "NaN", "Infinity", "0", "-0", "1" * 400,
                     "2026-02-30T00:00:00Z", "9999-12-31T23:59:59Z", "0000-01-01T00:00Z", "now",
                     "~/x.sqlite", "/dev/null", "", " ", "0.000000000000000000001", "50000"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines


@FUZZ
@given(key=st.sampled_from(KEYS), value=values)
@example(key=("risk", "max_slippage_bps"), value="50000")
@example(key=("exit", "min_hold_hours"), value="100")
@example(key=("strategy", "max_positions"), value=True)
@example(key=("strategy", "notional_usd_per_position"), value=1000.5)
@example(key=("strategy", "notional_usd_per_position"), value="1e999999")
@example(key=("sim", "start"), value="2026-02-30T00:00:00Z")
@example(key=("sim", "speed"), value=float("inf"))
@example(key=("sim", "symbols"), value=10**40)
def test_any_settings_value_is_accepted_or_one_error_line(key: tuple[str, str], value: object) -> None:
    section, name = key
    with tempfile.TemporaryDirectory() as tmp:
        path = write_settings(Path(tmp), {section: {name: _toml(value)}})
        code, _out, err = run_cli(["scan", "--settings", str(path), "--limit", "1", "--json"])
        assert_clean(code, err)
        if code == 0:
            # Accepted settings must also survive everything derived from them at start-up.
            from bot.params import breaker_settings, strategy_params
            from bot.settings import load_settings

            loaded = load_settings(path)
            strategy_params(loaded)
            breaker_settings(loaded)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_any_settings_file_bytes_are_one_error_line_or_accepted(data) -> None:
    shipped = SHIPPED_SETTINGS.read_bytes()
    if data is None:
        raw = "speed = 1.0 # caf\xe9\n".encode("latin-1")  # not UTF-8
    else:
        raw = data.draw(st.one_of(
            st.binary(max_size=300),
            st.builds(lambda cut: shipped[:cut], st.integers(0, len(shipped))),
            st.builds(lambda at, junk: shipped[:at] + junk + shipped[at:], st.integers(0, len(shipped)),
                      st.binary(min_size=1, max_size=8)),
        ))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_bytes(raw)
        code, _out, err = run_cli(["report", "--settings", str(path), "--db", str(Path(tmp) / "none.sqlite")])
        assert_clean(code, err)
        assert code == 2  # either the settings are refused or, when valid, there is no database there


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw)


@FUZZ
@given(data=st.data())
@example(data="truncated-gz")
@example(data="huge-field")
@example(data="latin-1")
def test_any_history_file_bytes_are_one_error_line_or_accepted(data) -> None:
    name = "funding.csv"
    if data == "truncated-gz":
        raw, name = _gz(GOOD_CSV)[:-9], "funding.csv.gz"
    elif data == "huge-field":
        raw = GOOD_CSV + b"binance,X,USDT,XUSDT,2026-01-01T16:00:00Z," + b"1" * 200_000 + b",8,12\n"
    elif data == "latin-1":
        raw = GOOD_CSV + "binance,X\xe9,USDT,XUSDT,2026-01-01T16:00:00Z,0.1,8,12\n".encode("latin-1")
    else:
        raw = data.draw(st.one_of(
            st.binary(max_size=200),
            st.builds(lambda cut: GOOD_CSV[:cut], st.integers(0, len(GOOD_CSV))),
            st.builds(lambda at, junk: GOOD_CSV[:at] + junk + GOOD_CSV[at:], st.integers(0, len(GOOD_CSV)),
                      st.binary(min_size=1, max_size=8)),
        ))
        if data.draw(st.booleans()):
            compressed = _gz(raw)
            raw, name = compressed[:data.draw(st.integers(0, len(compressed)))], "funding.csv.gz"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(raw)
        code, _out, err = run_cli(["scan", "--replay", tmp, "--at", "2026-01-01T09:00:00Z", "--limit", "1",
                                   "--settings", str(write_settings(Path(tmp)))])
        assert_clean(code, err)
