"""Settings: ``settings.toml`` loaded into strict pydantic models.

Unknown keys, wrong types, out-of-range values, a missing file and malformed TOML all raise
``UserInputError`` with one line naming the key (and its line in the file where known) and what
is expected. Secrets never live here: API keys come only from the environment (see ``live``).
"""

from __future__ import annotations

import json
import re
import tomllib
import typing
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.errors import UserInputError

if TYPE_CHECKING:
    from bot.core.venue_costs import VenueCosts

DEFAULT_SETTINGS_PATH = Path("settings.toml")
# Simulated speed bounds (settings and --speed): beyond 1e6 a clock second is 11 simulated days;
# below 0.001 one simulated minute takes 17 wall hours. Above what this machine can step, the
# market lags and says so (bot/market_catch_up.py).
MIN_SPEED = Decimal("0.001")
MAX_SPEED = Decimal("1000000")

# No number in settings may exceed this (or, when not zero, be smaller than its inverse): beyond
# it, Decimal arithmetic over- or underflows somewhere downstream, long after the file was read.
MAX_MAGNITUDE = Decimal("1e12")
MAX_HOURS = Decimal("1000000")  # about 114 years: any longer is a typo
MAX_BPS = Decimal("500")  # 5 %: any slippage or price-widening bound beyond this is a typo

PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]
Hours = Annotated[Decimal, Field(gt=0, le=MAX_HOURS, allow_inf_nan=False)]
NonNegativeHours = Annotated[Decimal, Field(ge=0, le=MAX_HOURS, allow_inf_nan=False)]
Bps = Annotated[Decimal, Field(gt=0, le=MAX_BPS, allow_inf_nan=False)]
NonNegativeBps = Annotated[Decimal, Field(ge=0, le=MAX_BPS, allow_inf_nan=False)]


def _admits(annotation: Any, kind: type) -> bool:
    return annotation is kind or kind in typing.get_args(annotation)


class _Section(BaseModel):
    """Strict scalars everywhere: no true/false where a number belongs, only true/false where a
    switch belongs (no "yes" or 1), no binary float where money or a quantity (Decimal) belongs, no
    absurd magnitudes; ``~`` expanded in paths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if isinstance(value, bool) and not _admits(annotation, bool):
            raise ValueError("expected a number or text, not true/false")
        if annotation is bool and not isinstance(value, bool):
            # pydantic's lax mode reads "yes", "on", "1" and 1 as true: a switch is written true or false
            raise ValueError("expected true or false (unquoted)")
        if isinstance(value, float) and _admits(annotation, Decimal):
            raise ValueError('write money and quantities as quoted decimal text, e.g. "1000.5" '
                             "(a TOML float is binary and inexact)")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _sane_magnitude(cls, value: Any) -> Any:
        if isinstance(value, Path):
            if "\x00" in str(value):
                raise ValueError("a path cannot contain a NUL character")
            return value.expanduser()
        if isinstance(value, float) and value != value:
            raise ValueError("expected a number, got nan")
        if isinstance(value, (Decimal, float, int)) and not isinstance(value, bool):
            size = abs(Decimal(value)) if not isinstance(value, Decimal) else abs(value)
            if size > MAX_MAGNITUDE:
                raise ValueError(f"absurdly large: at most {MAX_MAGNITUDE:,.0f} in magnitude")
            if size != 0 and size < 1 / MAX_MAGNITUDE:
                raise ValueError(f"absurdly small: 0, or at least {1 / MAX_MAGNITUDE} in magnitude")
        return value


class BotSection(_Section):
    paper_db_path: Path = Path("data/paper.sqlite")
    live_db_path: Path = Path("data/live.sqlite")
    paper_live_db_path: Path = Path("data/paper-live.sqlite")
    backtest_db_path: Path = Path("data/backtest.sqlite")
    log_path: Path = Path("data/bot.log.jsonl")
    status_interval_seconds: float = Field(default=1.0, gt=0)


class MarketSection(_Section):
    max_quote_age_seconds: float = Field(default=180.0, gt=0)
    max_abs_rate_per_hour: PositiveDecimal = Decimal("0.01")


class SimSection(_Section):
    seed: int = 7
    venues: list[str] = Field(default_factory=lambda: ["sim-hourly", "sim-8h", "sim-mixed"], min_length=2)
    symbols: int = Field(default=12, ge=1, le=500)
    step_seconds: int = Field(default=60, ge=1, le=3600)

    @field_validator("step_seconds")
    @classmethod
    def _step_divides_an_hour(cls, value: int) -> int:
        if 3600 % value:
            raise ValueError("must divide 3600 (e.g. 10, 30, 60, 300) so settlements fall on step boundaries")
        return value
    start: str = "now"
    speed: float = Field(default=1.0, ge=float(MIN_SPEED), le=float(MAX_SPEED))
    # Venues (of ``venues``) that also run a spot market "<venue>:spot" (carry; see strategy.pair_kinds).
    spot_venues: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _spot_venues_are_simulated(self) -> "SimSection":
        stray = [v for v in self.spot_venues if v not in self.venues]
        if stray:
            raise ValueError(f"spot_venues {stray} must be among venues {self.venues}")
        if len(set(self.spot_venues)) != len(self.spot_venues):
            raise ValueError(f"spot_venues {self.spot_venues} lists a venue twice")
        return self

    @field_validator("start")
    @classmethod
    def _start_is_now_or_iso(cls, value: str) -> str:
        if value != "now" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z?", value):
            raise ValueError('expected "now" or an ISO-8601 UTC time like "2026-03-01T00:00:00Z"')
        if value != "now":
            from bot.core.clock import parse_iso_utc

            try:
                ts_ms = parse_iso_utc(value if value.endswith("Z") else value + "Z")
            except (ValueError, OverflowError):
                raise ValueError(f"not a real date and time: {value!r}") from None
            if not 0 <= ts_ms < 4_102_444_800_000:
                raise ValueError("expected a time between 1970 and 2100")
        return value


class StrategySection(_Section):
    notional_usd_per_position: Annotated[Decimal, Field(gt=0, le=10_000_000, allow_inf_nan=False)] = Decimal("1000")
    horizon_hours: Hours = Decimal("336")
    min_expected_net_usd: Decimal = Field(default=Decimal("0.50"), allow_inf_nan=False)
    max_positions: int = Field(default=6, ge=1, le=500)
    capital_usd_per_venue: PositiveDecimal = Decimal("10000")
    max_capital_share_per_position: Annotated[Decimal, Field(gt=0, le=1, allow_inf_nan=False)] = Decimal("0.1")
    execution: Literal["taker", "maker_taker"] = "taker"
    loop_interval_seconds: float = Field(default=60.0, gt=0)
    # Which pairs are ranked and traded: "perp_perp" (long perp / short perp) and/or "spot_perp"
    # (carry: long spot / short perp). Carry is opt-in.
    pair_kinds: list[Literal["perp_perp", "spot_perp"]] = Field(default_factory=lambda: ["perp_perp"], min_length=1)

    @field_validator("pair_kinds")
    @classmethod
    def _distinct_kinds(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value} lists a pair kind twice")
        return value


class ExitSection(_Section):
    take_profit_usd: NonNegativeDecimal = Decimal("0")
    min_hold_hours: NonNegativeHours = Decimal("0")
    max_hold_hours: NonNegativeHours = Decimal("0")
    spread_erosion_fraction: Fraction = Decimal("0")
    ev_horizon_hours: Hours = Decimal("336")
    hysteresis_usd: NonNegativeDecimal = Decimal("1")
    liquidation_buffer_pct: NonNegativeDecimal = Decimal("5")
    max_delta_drift_pct: NonNegativeDecimal = Decimal("2")
    rotation_min_gain_usd: PositiveDecimal = Decimal("5")
    rotation_cooldown_hours: NonNegativeHours = Decimal("4")

    @model_validator(mode="after")
    def _hold_window(self) -> "ExitSection":
        if self.max_hold_hours > 0 and self.min_hold_hours > self.max_hold_hours:  # max 0 = no limit
            raise ValueError(f"min_hold_hours ({self.min_hold_hours}) must not exceed max_hold_hours "
                             f"({self.max_hold_hours})")
        return self


class RiskSection(_Section):
    max_breakeven_hours: Hours = Decimal("336")
    max_notional_per_venue_usd: PositiveDecimal = Decimal("5000")
    max_notional_total_usd: PositiveDecimal = Decimal("10000")
    max_leverage: Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False)] = Decimal("3")
    min_free_margin_usd: NonNegativeDecimal = Decimal("100")
    max_slippage_bps: Bps = Decimal("10")
    allow_symbols: list[str] = Field(default_factory=list)
    deny_symbols: list[str] = Field(default_factory=list)
    pair_cooldown_minutes: Annotated[Decimal, Field(ge=0, le=MAX_HOURS * 60, allow_inf_nan=False)] = Decimal("60")
    max_drawdown_pct: Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False)] = Decimal("5")
    max_unhedged_ms: int = Field(default=2000, ge=1)
    venue_error_threshold: int = Field(default=5, ge=1)
    venue_error_rate: Fraction = Decimal("0.5")
    venue_error_window_seconds: float = Field(default=60.0, gt=0)
    venue_cooldown_seconds: float = Field(default=30.0, gt=0)
    stale_data_seconds: float = Field(default=300.0, gt=0)


class ExecutionSection(_Section):
    leg_timeout_seconds: float = Field(default=5.0, gt=0)
    repair_attempts: int = Field(default=3, ge=1, le=20)
    repair_widen_bps: Bps = Decimal("10")
    hedge_tolerance_lots: int = Field(default=0, ge=0)
    maker_timeout_seconds: float = Field(default=300.0, gt=0)
    maker_offset_ticks: int = Field(default=0, ge=0, le=1000)


class PaperFaultsSection(_Section):
    seed: int = 1
    reject_probability: Probability = 0.0
    timeout_probability: Probability = 0.0
    partial_fill_probability: Probability = 0.0
    latency_spike_probability: Probability = 0.0
    latency_spike_seconds: float = Field(default=0.5, ge=0)
    stale_quote_probability: Probability = 0.0
    absurd_quote_probability: Probability = 0.0
    venue_outage_probability: Probability = 0.0
    venue_outage_seconds: float = Field(default=300.0, gt=0)


class PaperSection(_Section):
    latency_ms: float = Field(default=50.0, ge=0, le=60_000)
    starting_balance_usd: PositiveDecimal = Decimal("10000")
    faults: PaperFaultsSection = PaperFaultsSection()


class ReconcileSection(_Section):
    interval_seconds: float = Field(default=30.0, gt=0)
    orphan_policy: Literal["alert", "flatten"] = "alert"


class ShutdownSection(_Section):
    deadline_seconds: float = Field(default=30.0, gt=0, le=600)
    on_signal: Literal["flatten", "keep"] = "flatten"


_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class WebSection(_Section):
    """``[web]``: the dashboard, JSON API and /metrics (token from FUNDING_ARB_WEB_TOKEN)."""

    enabled: bool = False
    allow_remote: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_events: int = Field(default=200, ge=1, le=10_000)

    @field_validator("host")
    @classmethod
    def _loopback_unless_allowed(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError('expected a host name or address such as "127.0.0.1"')
        if value not in _LOOPBACK_HOSTS and not info.data.get("allow_remote", False):
            raise ValueError(
                f"{value!r} is not loopback: keep 127.0.0.1 behind a TLS reverse proxy, "
                "or set web.allow_remote = true to listen on other interfaces")
        return value


class NotifySection(_Section):
    """``[notify]``: apprise notification URLs (secrets as ${ENV_VAR} placeholders) and limits."""

    urls: list[str] = Field(default_factory=list)
    max_per_minute: int = Field(default=20, ge=1, le=10_000)
    dedupe_seconds: float = Field(default=600.0, ge=0)
    queue_size: int = Field(default=100, ge=1, le=100_000)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    daily_summary: bool = True


class ScanSection(_Section):
    limit: int = Field(default=20, ge=1)
    estimated_slippage_bps: NonNegativeBps = Decimal("2")


class ForecastSection(_Section):
    """``[forecast]``: the spread forecast the scanner and the exits use (``bot.forecast``)."""

    mode: Literal["mean_reverting", "persistent"] = "mean_reverting"
    level_half_life_hours: Annotated[Decimal, Field(gt=0, le=100_000, allow_inf_nan=False)] = Decimal("504")
    level_weight: Annotated[Decimal, Field(ge=0, le=2, allow_inf_nan=False)] = Decimal("0.728")
    deviation_weight: Annotated[Decimal, Field(ge=0, le=2, allow_inf_nan=False)] = Decimal("0.028")
    warmup_hours: int = Field(default=672, ge=0, le=100_000)


class VenueSection(_Section):
    """``[venues.NAME]``: a venue's costs; an unset field takes the built-in figure for a known venue."""

    maker_fee_bps: Decimal | None = Field(default=None, ge=-10, le=100, allow_inf_nan=False)
    taker_fee_bps: Decimal | None = Field(default=None, ge=-10, le=100, allow_inf_nan=False)
    min_notional_usd: NonNegativeDecimal | None = None
    book_half_spread_bps: Annotated[Decimal, Field(gt=0, le=500, allow_inf_nan=False)] | None = None
    book_level_step_bps: Annotated[Decimal, Field(gt=0, le=500, allow_inf_nan=False)] | None = None
    book_depth_usd_per_level: PositiveDecimal | None = None
    book_levels: int | None = Field(default=None, ge=1, le=100)
    base_url: str | None = None  # live: REST endpoint override (the emulator); loopback only unless allowed
    ws_url: str | None = None  # live: stream endpoint override (default: base_url as ws://)
    testnet: bool = False  # live: the venue's testnet where it has one
    allow_remote_base_url: bool = False  # live: allow a base_url that is not 127.0.0.1/localhost

    @field_validator("testnet")
    @classmethod
    def _one_endpoint(cls, testnet: bool, info: ValidationInfo) -> bool:
        # Both set would silently mean base_url (the user believing they are on testnet, or not)
        if testnet and info.data.get("base_url"):
            raise ValueError("testnet = true and base_url are both set: keep one (base_url would be used "
                             "and testnet ignored)")
        return testnet


class BacktestSection(_Section):
    """``[backtest]``: replay of historical funding through the real application."""

    interchangeable_quotes: list[str] = Field(default_factory=lambda: ["USDT", "USDC"])
    max_price_age_hours: Hours = Decimal("9")
    reconcile_every_hours: Hours = Decimal("24")
    equity_sample_hours: Hours = Decimal("1")


class LiveSection(_Section):
    venues: list[str] = Field(default_factory=list)
    symbols: list[str] = Field(default_factory=lambda: ["BTC", "ETH"], min_length=1)
    leverage: Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False)] = Decimal("1")
    account_refresh_seconds: float = Field(default=10.0, gt=0, le=3600)
    account_max_age_seconds: float = Field(default=30.0, gt=0, le=3600)
    trigger_on_market_data: bool = True
    trigger_min_gap_seconds: float = Field(default=0.0, ge=0, le=3600)
    busy_poll: bool = False
    rehearse_orders: bool = True
    spare_connections: int = Field(default=2, ge=0, le=8)

    @field_validator("venues", "symbols")
    @classmethod
    def _listed_once(cls, value: list[str]) -> list[str]:
        twice = sorted({item for item in value if value.count(item) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice: list each once")
        return value


class Settings(_Section):
    """Every section of settings.toml; each key is documented in the shipped file and the README."""

    bot: BotSection = BotSection()
    market: MarketSection = MarketSection()
    sim: SimSection = SimSection()
    strategy: StrategySection = StrategySection()
    exit: ExitSection = ExitSection()
    risk: RiskSection = RiskSection()
    execution: ExecutionSection = ExecutionSection()
    paper: PaperSection = PaperSection()
    reconcile: ReconcileSection = ReconcileSection()
    shutdown: ShutdownSection = ShutdownSection()
    web: WebSection = WebSection()
    notify: NotifySection = NotifySection()
    scan: ScanSection = ScanSection()
    live: LiveSection = LiveSection()
    venues: dict[str, VenueSection] = Field(default_factory=dict)
    backtest: BacktestSection = BacktestSection()
    forecast: ForecastSection = ForecastSection()


def load_settings(path: Path | None = None) -> Settings:
    """Load and validate settings; ``None`` means ./settings.toml, or built-in defaults if absent."""
    explicit = path is not None
    path = Path(path).expanduser() if path is not None else DEFAULT_SETTINGS_PATH
    try:
        found = path.is_file()
        missing = not found and not path.exists()
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot use settings path {str(path)[:200]!r}: {exc}") from None
    if not found and not missing:
        raise UserInputError(f"settings path {path} is not a file (pass a settings.toml file to --settings)")
    if missing:
        if explicit:
            raise UserInputError(f"settings file not found: {path} (pass an existing file to --settings)")
        return Settings()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"settings file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise UserInputError(f"cannot read settings file {path}: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{path}: malformed TOML: {exc} (fix the syntax at that line)") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits, absurd nesting
        raise UserInputError(f"{path}: unreadable TOML value: {str(exc)[:200]} (fix the value)") from None
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise UserInputError(_one_line(exc, path, text)) from None


def _one_line(exc: ValidationError, path: Path, text: str) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    key = ".".join(loc) or "(top level)"
    line = _line_of(text, loc)
    where = f"{path}:{line}" if line else str(path)
    if error["type"] == "extra_forbidden":
        what = "unknown key (remove it or check its spelling against the shipped settings.toml)"
    else:
        what = f"{error['msg']}"
        if "input" in error and error["type"] != "missing" and not isinstance(error["input"], dict):
            shown = repr(error["input"])
            what += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    more = len(exc.errors()) - 1
    suffix = f"; {more} more problem(s) after this one" if more else ""
    return f"{where}: setting '{key}': {what}{suffix}"


def _line_of(text: str, loc: list[str]) -> int | None:
    """Best-effort line number of a dotted key in TOML text (sections, then the key)."""
    if not loc:
        return None
    *sections, key = loc
    header = "[" + ".".join(sections) + "]" if sections else None
    in_section = header is None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_section = header is not None and stripped.split("#")[0].strip() == header
            continue
        if in_section and re.match(rf"{re.escape(key)}\s*=", stripped):
            return number
    if header is not None:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip().split("#")[0].strip() == header:
                return number
    return None


def toml_key(name: str) -> str:
    """``name`` as a TOML key to quote in a message: bare when TOML allows it, else a quoted key
    with every control and non-ASCII character escaped (the message stays one printable line)."""
    if name and all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
        return name
    return json.dumps(name)  # \uXXXX escapes are TOML basic-string escapes too


def venue_costs_for(settings: Settings, venue: str) -> "VenueCosts":
    """The costs of ``venue``: built-in figures (known venues) overridden by ``[venues.NAME]``.

    Raises ``UserInputError`` naming the venue and the setting to add when its fees are unknown:
    a venue is never traded or ranked with made-up fees.
    """
    from bot.core.venue_costs import KNOWN_VENUE_COSTS, VenueCosts

    known = KNOWN_VENUE_COSTS.get(venue)
    own = settings.venues.get(venue)
    cost_fields = set(VenueCosts.__dataclass_fields__)
    overrides = {k: v for k, v in (own.model_dump() if own else {}).items() if v is not None and k in cost_fields}
    if known is None and ("maker_fee_bps" not in overrides or "taker_fee_bps" not in overrides):
        raise UserInputError(
            f"venue {venue!r} has no known fees: add [venues.{toml_key(venue)}] with maker_fee_bps and taker_fee_bps "
            "(your fee tier, in bps) to the settings file")
    if known is None:
        return VenueCosts(**overrides)
    from dataclasses import replace

    return replace(known, **overrides)
