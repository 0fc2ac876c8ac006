"""bot/core/history.py: the settlement CSV loader and the point-in-time snapshot."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from bot.core.domain import FeeSchedule
from bot.core.history import HistoryFormatError, default_steps, load_funding_history
from tests.shared_data import shared_data_dir

HEADER = "venue,symbol,quote,venue_symbol,settlement_ts,rate,interval_hours,mark_price\n"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * 1000


def write(path: Path, body: str, header: str = HEADER) -> Path:
    path.write_text(header + body, encoding="utf-8")
    return path


@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    # binance X switches 8h -> 4h after 08:00; bybit X has no marks; USDC is a second quote.
    write(
        tmp_path / "binance.csv",
        "binance,X,USDT,XUSDT,2026-01-01T00:00:00Z,0.0001,8,10.5\n"
        "binance,X,USDT,XUSDT,2026-01-01T08:00:00Z,-0.0002,8,11\n"
        "binance,X,USDT,XUSDT,2026-01-01T12:00:00Z,0.00005,4,12\n"
        "binance,X,USDC,XUSDC,2026-01-01T08:00:00Z,0.0009,8,11.2\n"
        "binance,X,USDT,XUSDT,2026-01-01T16:00:00Z,0.00003,4,13\n",
    )
    with gzip.open(tmp_path / "bybit.csv.gz", "wt", encoding="utf-8") as f:
        f.write(HEADER)
        f.write("bybit,X,USDT,XUSDT,2026-01-01T04:00:00Z,0.00004,4,\n")
        f.write("bybit,X,USDT,XUSDT,2025-12-31T20:00:00Z,-0.00001,4,\n")  # out of order on purpose
        f.write("bybit,Y,USDT,YUSDT,2026-01-01T04:00:00Z,0.0001,8,\n")  # no mark anywhere for Y
    (tmp_path / "notes.txt").write_text("not a funding file")
    return tmp_path


def test_snapshot_uses_last_settlement_at_or_before_the_instant(history_dir: Path) -> None:
    history = load_funding_history(history_dir)
    snap = history.snapshot_at(ms("2026-01-01T07:59:59"))
    q = snap.quotes[("binance", "X")]
    assert q.rate_per_interval == Decimal("0.0001")
    assert q.interval_hours == Decimal(8)
    assert q.next_funding_ts_ms == ms("2026-01-01T08:00:00")
    assert q.mark_price == Decimal("10.5")
    assert q.ts_ms == ms("2026-01-01T00:00:00")
    # exactly at a settlement instant, that settlement is known
    assert history.snapshot_at(ms("2026-01-01T08:00:00")).quotes[("binance", "X")].rate_per_interval == Decimal("-0.0002")


def test_interval_change_8h_to_4h_is_taken_from_the_row(history_dir: Path) -> None:
    snap = load_funding_history(history_dir).snapshot_at(ms("2026-01-01T13:00:00"))
    q = snap.quotes[("binance", "X")]
    assert (q.rate_per_interval, q.interval_hours) == (Decimal("0.00005"), Decimal(4))
    assert q.next_funding_ts_ms == ms("2026-01-01T16:00:00")
    assert q.hourly_rate == Decimal("0.0000125")
    assert snap.instruments[("binance", "X")].funding_interval_hours == Decimal(4)


def test_mark_falls_back_to_latest_known_mark_of_the_symbol_without_lookahead(history_dir: Path) -> None:
    history = load_funding_history(history_dir)
    # bybit X settled at 04:00 with no mark: the latest X mark at or before 05:00 is binance 00:00
    q = history.snapshot_at(ms("2026-01-01T05:00:00")).quotes[("bybit", "X")]
    assert q.rate_per_interval == Decimal("0.00004")
    assert q.mark_price == Decimal("10.5")
    # at 09:00 the USDT (preferred) mark of 08:00 is the latest
    assert history.snapshot_at(ms("2026-01-01T09:00:00")).quotes[("bybit", "X")].mark_price == Decimal("11")
    # before any mark of X is known, the bybit quote of 2025-12-31T20:00 is left out
    assert ("bybit", "X") not in history.snapshot_at(ms("2025-12-31T21:00:00")).quotes
    # Y never has a mark: always left out
    assert ("bybit", "Y") not in history.snapshot_at(ms("2026-01-02T00:00:00")).quotes


def test_preferred_quote_series_and_max_age(history_dir: Path) -> None:
    history = load_funding_history(history_dir)
    snap = history.snapshot_at(ms("2026-01-01T09:00:00"))
    assert snap.quotes[("binance", "X")].rate_per_interval == Decimal("-0.0002")  # USDT, not USDC 0.0009
    assert snap.instruments[("binance", "X")].venue_symbol == "XUSDT"
    usdc_first = load_funding_history(history_dir, quote_preference=("USDC", "USDT"))
    assert usdc_first.snapshot_at(ms("2026-01-01T09:00:00")).quotes[("binance", "X")].rate_per_interval == Decimal("0.0009")
    aged = history.snapshot_at(ms("2026-01-01T09:00:00"), max_age_ms=3_600_000)
    assert ("binance", "X") in aged.quotes  # 1h old: kept
    assert ("bybit", "X") not in aged.quotes  # 5h old: dropped
    assert history.snapshot_at(ms("2025-12-01T00:00:00")).quotes == {}


def test_snapshot_carries_fees_instruments_and_no_books(history_dir: Path) -> None:
    snap = load_funding_history(history_dir).snapshot_at(ms("2026-01-01T09:00:00"))
    assert snap.fees == {
        "binance": FeeSchedule(Decimal("2"), Decimal("5")),
        "bybit": FeeSchedule(Decimal("2"), Decimal("5.5")),
    }
    assert snap.books == {}
    inst = snap.instruments[("binance", "X")]
    assert (inst.tick_size, inst.lot_size_base) == (Decimal("0.0001"), Decimal("0.1"))  # price 11


def test_default_steps_scale_with_price() -> None:
    assert default_steps(Decimal("66952.9")) == (Decimal("0.1"), Decimal("0.0001"))
    assert default_steps(Decimal("3500")) == (Decimal("0.01"), Decimal("0.001"))
    assert default_steps(Decimal("0.2")) == (Decimal("0.000001"), Decimal("10"))


def test_settlements_between_is_half_open_and_time_ordered(history_dir: Path) -> None:
    history = load_funding_history(history_dir)
    got = history.settlements_between(ms("2026-01-01T00:00:00"), ms("2026-01-01T12:00:00"))
    assert [(s.venue, s.ts_ms, s.rate) for s in got] == [
        ("bybit", ms("2026-01-01T04:00:00"), Decimal("0.00004")),
        ("binance", ms("2026-01-01T08:00:00"), Decimal("-0.0002")),
        ("binance", ms("2026-01-01T12:00:00"), Decimal("0.00005")),
    ]
    assert got[0].mark_price == Decimal("10.5")
    assert got[2].interval_hours == Decimal(4)


def test_explicit_file_list_and_series_sorted(history_dir: Path) -> None:
    history = load_funding_history([history_dir / "bybit.csv.gz"])
    assert history.venues() == ["bybit"]
    x = next(s for s in history.series if s.symbol == "X")
    assert x.ts_ms == (ms("2025-12-31T20:00:00"), ms("2026-01-01T04:00:00"))
    assert x.mark_prices == (None, None)


@pytest.mark.parametrize(
    ("row", "column", "needle"),
    [
        ("binance,X,USDT,XUSDT,2026-01-01T16:00:00Z,abc,8,1\n", "rate", "not a number"),
        ("binance,X,USDT,XUSDT,2026-01-01T16:00:00Z,NaN,8,1\n", "rate", "not finite"),
        ("binance,X,USDT,XUSDT,2026-01-01T16:00:00Z,1.79E+9,8,1\n", "rate", "beyond"),
        ("binance,X,USDT,XUSDT,2026-01-01T16:00:00Z,0.0001,0,1\n", "interval_hours", "positive"),
        ("binance,X,USDT,XUSDT,2026-01-01T16:00:00Z,0.0001,-8,1\n", "interval_hours", "positive"),
        ("binance,X,USDT,XUSDT,2026-01-01T16:00:00,0.0001,8,1\n", "settlement_ts", "UTC offset"),
        ("binance,X,USDT,XUSDT,yesterday,0.0001,8,1\n", "settlement_ts", "ISO-8601"),
        ("binance,X,USDT,XUSDT,2026-01-01T00:00:00Z,0.0001,8,1\n", "settlement_ts", "duplicate"),
        ("binance,X,USDT,XUSDT,2026-01-01T16:00:00Z,0.0001,8,0\n", "mark_price", "positive"),
        ("binance,,USDT,XUSDT,2026-01-01T16:00:00Z,0.0001,8,1\n", "symbol", "empty"),
        ("binance,Z,USDT,XUSDT,2026-01-01T16:00:00Z,0.0001,8,1\n", "symbol", "was X/USDT"),
    ],
)
def test_bad_row_names_file_line_and_column(tmp_path: Path, row: str, column: str, needle: str) -> None:
    path = write(tmp_path / "f.csv", "binance,X,USDT,XUSDT,2026-01-01T00:00:00Z,0.0001,8,1\n" + row)
    with pytest.raises(HistoryFormatError) as err:
        load_funding_history(path)
    assert isinstance(err.value, ValueError)
    assert (err.value.path, err.value.line, err.value.column) == (str(path), 3, column)
    assert needle in str(err.value) and f"{path}:3" in str(err.value)


def test_bad_header_and_ragged_row(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "binance,X,USDT,2026-01-01T00:00:00Z,0.0001,8\n",
                 header="venue,symbol,quote,settlement_ts,rate,interval_hours\n")
    with pytest.raises(HistoryFormatError, match="venue_symbol") as err:
        load_funding_history(path)
    assert err.value.line == 1
    ragged = write(tmp_path / "r.csv", "binance,X,USDT,XUSDT,2026-01-01T00:00:00Z,0.0001\n")
    with pytest.raises(HistoryFormatError, match="expected 8 fields") as err:
        load_funding_history(ragged)
    assert err.value.line == 2


def test_mark_column_is_optional_and_epoch_ms_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", f"okx,X,USDT,X-USDT-SWAP,{ms('2026-01-01T00:00:00')},0.0001,8\n",
                 header="venue,symbol,quote,venue_symbol,settlement_ts,rate,interval_hours\n")
    history = load_funding_history(path)
    assert history.start_ts_ms == ms("2026-01-01T00:00:00")
    assert history.snapshot_at(ms("2026-01-02T00:00:00")).quotes == {}  # no mark known
    assert history.fee_schedules() == {}  # okx has no default schedule


def test_nothing_to_read(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_funding_history(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_funding_history([tmp_path / "missing.csv"])


# ----------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_history():
    return load_funding_history(shared_data_dir() / "funding")


def test_real_data_snapshot_2026_03_01(real_history) -> None:
    snap = real_history.snapshot_at(ms("2026-03-01T00:00:00"))
    # binance,BTC,USDT,BTCUSDT,2026-03-01T00:00:00Z,-6.88e-06,8,66952.93531159
    btc = snap.quotes[("binance", "BTC")]
    assert (btc.rate_per_interval, btc.interval_hours, btc.mark_price) == (
        Decimal("-6.88e-06"), Decimal(8), Decimal("66952.93531159"))
    assert btc.next_funding_ts_ms == ms("2026-03-01T08:00:00")
    # bybit,BTC,USDT,BTCUSDT,2026-03-01T00:00:00Z,2.72e-05,8,  (mark from binance BTCUSDT)
    bybit = snap.quotes[("bybit", "BTC")]
    assert (bybit.rate_per_interval, bybit.mark_price) == (Decimal("2.72e-05"), Decimal("66952.93531159"))
    # hyperliquid,BTC,USDC,BTC,2026-03-01T00:00:00Z,1.8723e-06,1,
    hl = snap.quotes[("hyperliquid", "BTC")]
    assert (hl.rate_per_interval, hl.interval_hours) == (Decimal("1.8723e-06"), Decimal(1))
    assert hl.next_funding_ts_ms == ms("2026-03-01T01:00:00")
    # binance,TIA,USDT,TIAUSDT,2026-03-01T00:00:00Z,3.309e-05,4,0.3264
    tia = snap.quotes[("binance", "TIA")]
    assert (tia.rate_per_interval, tia.interval_hours, tia.mark_price) == (Decimal("3.309e-05"), Decimal(4), Decimal("0.3264"))
    assert tia.next_funding_ts_ms == ms("2026-03-01T04:00:00")
    assert set(snap.fees) == {"binance", "bybit", "hyperliquid"}


def test_real_data_bybit_inj_was_on_a_1h_interval(real_history) -> None:
    # bybit,INJ,USDT,INJUSDT,2026-02-20T00:00:00Z,-0.00166229,1,  (8h before 2026-02-19T17:00)
    snap = real_history.snapshot_at(ms("2026-02-20T00:30:00"))
    q = snap.quotes[("bybit", "INJ")]
    assert (q.rate_per_interval, q.interval_hours) == (Decimal("-0.00166229"), Decimal(1))
    assert q.next_funding_ts_ms == ms("2026-02-20T01:00:00")
    assert q.mark_price == Decimal("3.27")  # binance INJUSDT at 2026-02-20T00:00
