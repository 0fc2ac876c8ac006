"""Start-up mistakes a new user makes with ``--live`` get one line naming the cause (found by a
new-user try): a malformed Hyperliquid address or key is refused before any request, without
showing the value; a venue that refuses a start-up request is not reported as unreachable."""

from __future__ import annotations

import pytest

from adapters.credentials import CredentialsError, load_credentials
from adapters.errors import OrderRejected, TemporaryVenueError, VenueError
from bot.runner import _unreachable_at_start

ADDRESS = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def test_well_formed_hyperliquid_credentials_load_with_or_without_0x_and_spaces() -> None:
    for key in (KEY, KEY[2:], f"  {KEY}\n"):
        creds = load_credentials("hyperliquid", {"HYPERLIQUID_WALLET_ADDRESS": ADDRESS.upper().replace("0X", "0x"),
                                                 "HYPERLIQUID_PRIVATE_KEY": key})
        assert creds.get("private_key") == key.strip()


@pytest.mark.parametrize(("variable", "value"), [
    ("HYPERLIQUID_WALLET_ADDRESS", "0xnotanaddress"),
    ("HYPERLIQUID_WALLET_ADDRESS", ADDRESS[2:]),  # without 0x
    ("HYPERLIQUID_WALLET_ADDRESS", ADDRESS + "00"),
    ("HYPERLIQUID_PRIVATE_KEY", KEY[:-2]),  # 62 hex digits
    ("HYPERLIQUID_PRIVATE_KEY", "0x" + "g" * 64),
])
def test_a_malformed_hyperliquid_variable_is_named_and_its_value_never_shown(variable: str, value: str) -> None:
    env = {"HYPERLIQUID_WALLET_ADDRESS": ADDRESS, "HYPERLIQUID_PRIVATE_KEY": KEY, variable: value}
    with pytest.raises(CredentialsError) as caught:
        load_credentials("hyperliquid", env)
    message = str(caught.value)
    assert variable in message and "\n" not in message
    assert value not in message and KEY not in message and KEY[2:] not in message


def test_other_venues_keys_have_no_fixed_shape() -> None:
    creds = load_credentials("bybit", {"BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s"})
    assert creds.get("api_key") == "k"


def test_a_refusal_at_start_up_is_not_reported_as_an_unreachable_venue() -> None:
    unreachable = _unreachable_at_start(TemporaryVenueError("bybit", "transport error, outcome unknown: ConnectionError"))
    assert "did not answer" in unreachable and "base_url" in unreachable
    for refusal in (OrderRejected("binanceusdm", "Leverage 1.5 is not valid"),
                    VenueError("hyperliquid", "User or API Wallet 0xc909 does not exist.")):
        line = _unreachable_at_start(refusal)
        assert "refused" in line and "did not answer" not in line
        assert "live.leverage" in line and "keys" in line and str(refusal) in line


@pytest.mark.parametrize(("key", "listed"), [("venues", '["bybit", "hyperliquid", "bybit"]'),
                                             ("symbols", '["BTC", "ETH", "BTC"]')])
def test_a_venue_or_symbol_listed_twice_is_one_line(tmp_path, key: str, listed: str) -> None:
    """``venues = ["bybit", "bybit"]`` ran with one venue (and passed the two-venue check)."""
    import subprocess

    from tests.helpers_cli import REPO, assert_usage_error, bot_command

    text = (REPO / "settings.toml").read_text()
    start = text.index("\n[live]\n")
    line_start = text.index(f"\n{key} = ", start) + 1
    line_end = text.index("#", line_start)
    settings = tmp_path / "settings.toml"
    settings.write_text(text[:line_start] + f"{key} = {listed}  " + text[line_end:])
    proc = subprocess.run(bot_command("--live", "--settings", str(settings)), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert_usage_error(proc, f"live.{key}", "listed twice")


OTHER_KEY = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # another well-known test key


def test_the_key_address_is_derived_from_the_key() -> None:
    from adapters.hyperliquid.signer import key_address

    assert key_address(KEY) == ADDRESS and key_address(KEY[2:]) == ADDRESS
    assert key_address(OTHER_KEY) != ADDRESS


@pytest.mark.anyio
async def test_a_key_that_would_trade_another_account_stops_the_start_up() -> None:
    """The bot reads HYPERLIQUID_WALLET_ADDRESS; orders trade the signer's account (or, for an API
    wallet, its master's). A key of any other account would trade where the bot never looks."""
    from adapters.errors import FatalVenueError
    from adapters.hyperliquid.signer import check_signer, key_address

    asked: list[str] = []

    def venue_says(answer):
        async def user_role(address: str):
            asked.append(address)
            return answer
        return user_role

    own = await check_signer(ADDRESS, KEY, venue_says({"role": "missing"}))
    assert own == "signing key (the account's own): unchanged"
    assert asked == []  # its own key: nothing to ask
    agent = key_address(OTHER_KEY)
    line = await check_signer(ADDRESS.upper().replace("0X", "0x"), OTHER_KEY,
                              venue_says({"role": "agent", "data": {"user": ADDRESS}}))
    assert line == "signing key (an API wallet approved for the account): unchanged" and asked == [agent]
    for answer, seen in (({"role": "agent", "data": {"user": "0x" + "1" * 40}}, "an API wallet of another account"),
                         ({"role": "user"}, "the key of another account"),
                         ({"role": "missing"}, "a key the venue does not know"),
                         ("not json", "did not tell")):
        with pytest.raises(FatalVenueError) as caught:
            await check_signer(ADDRESS, OTHER_KEY, venue_says(answer))
        message = str(caught.value)
        assert seen in message and "HYPERLIQUID_WALLET_ADDRESS" in message and "\n" not in message
        assert OTHER_KEY not in message and ADDRESS not in message and agent not in message
