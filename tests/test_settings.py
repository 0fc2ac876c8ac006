"""Settings: the shipped file equals the defaults, and every kind of bad input is one clear line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.errors import UserInputError
from bot.settings import VenueSection, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_shipped_settings_file_equals_the_built_in_defaults() -> None:
    assert load_settings(REPO / "settings.toml") == Settings()


def test_every_model_key_is_documented_in_the_shipped_file() -> None:
    text = (REPO / "settings.toml").read_text()

    def walk(model: type, prefix: str) -> None:
        assert f"[{prefix}]" in text, prefix
        for key, field in model.model_fields.items():
            nested = field.annotation
            if isinstance(nested, type) and hasattr(nested, "model_fields"):
                walk(nested, f"{prefix}.{key}")
            else:
                assert f"\n{key} = " in text, f"{prefix}.{key} missing from settings.toml"

    for section_name, section in Settings.model_fields.items():
        if section_name == "venues":  # a table per venue: documented as a commented example
            for key in VenueSection.model_fields:
                assert f"\n# {key} = " in text, f"venues.NAME.{key} missing from the example in settings.toml"
            continue
        walk(section.annotation, section_name)


def test_money_values_are_exact_decimals() -> None:
    settings = load_settings(REPO / "settings.toml")
    assert settings.strategy.notional_usd_per_position == Decimal("1000")
    assert isinstance(settings.market.max_abs_rate_per_hour, Decimal)


@pytest.mark.parametrize(
    ("text", "expected_fragments"),
    [
        ("[strategy]\nmax_positions = 0\n", ["s.toml:2", "strategy.max_positions", "greater than or equal to 1"]),
        ("[strategy]\nmax_postions = 3\n", ["strategy.max_postions", "unknown key"]),
        ("[nonsense]\nx = 1\n", ["'nonsense'", "unknown key"]),
        ("[strategy\n", ["malformed TOML", "line 1"]),
        ("[paper.faults]\nreject_probability = 1.5\n", ["paper.faults.reject_probability", "less than or equal to 1"]),
        ('[strategy]\nnotional_usd_per_position = "abc"\n', ["strategy.notional_usd_per_position"]),
        ('[strategy]\nnotional_usd_per_position = "NaN"\n', ["strategy.notional_usd_per_position"]),
        ('[sim]\nstart = "yesterday"\n', ["sim.start", "ISO-8601"]),
        ('[reconcile]\norphan_policy = "ignore"\n', ["reconcile.orphan_policy", "alert", "flatten"]),
    ],
)
def test_bad_settings_give_one_line_naming_the_key(tmp_path: Path, text: str, expected_fragments: list[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(UserInputError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in expected_fragments:
        assert fragment in message, (fragment, message)


def test_missing_explicit_file_is_an_error_but_missing_default_file_is_defaults(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(UserInputError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.chdir(tmp_path)
    assert load_settings(None) == Settings()


def test_readme_documents_every_settings_key() -> None:
    readme = (REPO / "README.md").read_text()
    text = (REPO / "settings.toml").read_text()
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]")
        elif section and "=" in stripped and not stripped.startswith("#"):
            key, rest = (part.strip() for part in stripped.split("=", 1))
            value = rest.split("#", 1)[0].strip()
            assert f"| `{section}.{key}` | `{value}` |" in readme, f"README row for {section}.{key} is missing or stale"


def test_cross_field_and_strictness_rules_name_the_key(tmp_path: Path) -> None:
    from tests.helpers_cli import write_settings

    cases = {
        ("risk", "max_slippage_bps", '"50000"'): "risk.max_slippage_bps",
        ("risk", "max_leverage", '"1000"'): "risk.max_leverage",
        ("strategy", "notional_usd_per_position", '"1e999999"'): "strategy.notional_usd_per_position",
        ("strategy", "notional_usd_per_position", "1000.5"): "quoted decimal text",
        ("strategy", "max_positions", "true"): "not true/false",
        ("live", "busy_poll", '"yes"'): "expected true or false",  # pydantic alone reads "yes" as true
        ("sim", "start", '"2026-02-30T00:00:00Z"'): "not a real date",
        ("sim", "speed", "1e9"): "sim.speed",
        ("risk", "min_free_margin_usd", '"1e20"'): "absurdly large",
        ("risk", "venue_error_window_seconds", "nan"): "risk.venue_error_window_seconds",
    }
    venue_cases = {
        'allow_remote_base_url = "yes"': "venues.bybit.allow_remote_base_url",
        "testnet = 1": "expected true or false",
        # both would silently mean base_url: the user could believe they are on testnet
        'base_url = "http://127.0.0.1:8801"\ntestnet = true': "'venues.bybit.testnet': Value error, testnet = "
                                                             "true and base_url are both set: keep one",
    }
    for lines, expected in venue_cases.items():
        path = tmp_path / "venue.toml"
        path.write_text(f"[venues.bybit]\n{lines}\n")
        with pytest.raises(UserInputError) as caught:
            load_settings(path)
        assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
    path.write_text('[venues.bybit]\nbase_url = "http://127.0.0.1:8801"\ntestnet = false\n')
    assert load_settings(path).venues["bybit"].base_url == "http://127.0.0.1:8801"
    path = write_settings(tmp_path, {"exit": {"min_hold_hours": '"100"', "max_hold_hours": '"72"'}})
    with pytest.raises(UserInputError) as caught:
        load_settings(path)
    assert "min_hold_hours (100) must not exceed max_hold_hours (72)" in str(caught.value)
    load_settings(write_settings(tmp_path, {"exit": {"min_hold_hours": '"100"', "max_hold_hours": '"0"'}}))  # 0 = none
    for (section, key, value), expected in cases.items():
        path = write_settings(tmp_path, {section: {key: value}})
        with pytest.raises(UserInputError) as caught:
            load_settings(path)
        assert expected in str(caught.value), (key, str(caught.value))
        assert "\n" not in str(caught.value)


def test_paths_expand_the_home_directory(tmp_path: Path) -> None:
    from tests.helpers_cli import write_settings

    path = write_settings(tmp_path, {"bot": {"paper_db_path": '"~/bot-data/paper.sqlite"'}})
    loaded = load_settings(path)
    assert loaded.bot.paper_db_path == Path.home() / "bot-data" / "paper.sqlite"


def test_a_settings_file_that_is_not_utf8_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_bytes("[sim]\nseed = 7 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserInputError) as caught:
        load_settings(path)
    assert "not UTF-8" in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("venue", ["newdex", "\x80\x0bbinance", "a b", "v\u00e9nue", "a.b", "line\nbreak"])
def test_an_unknown_venues_fee_error_is_one_printable_line_with_a_key_toml_reads_back(venue: str) -> None:
    import tomllib

    from bot.settings import venue_costs_for

    with pytest.raises(UserInputError) as caught:
        venue_costs_for(Settings(), venue)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.isprintable(), message
    table = message.split("add [", 1)[1].split("] with", 1)[0]  # the table header the message asks for
    assert list(tomllib.loads(f"[{table}]\nmaker_fee_bps = 1\n")["venues"]) == [venue]
