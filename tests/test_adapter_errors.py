"""Error translation tables: every vendor outcome maps to the class that tells the caller what to do."""

from __future__ import annotations

import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from adapters.bybit import errors as bybit_errors
from adapters.errors import FatalVenueError, OrderRejected, TemporaryVenueError

cx = pytest.importorskip("ccxt.base.errors")
from adapters.ccxt_common import errors as ccxt_errors


@pytest.mark.parametrize(("exc", "expected"), [
    (cx.RequestTimeout("timeout"), TemporaryVenueError),
    (cx.ExchangeNotAvailable("502 Bad Gateway"), TemporaryVenueError),
    (cx.OnMaintenance("maintenance"), TemporaryVenueError),
    (cx.RateLimitExceeded("429"), TemporaryVenueError),
    (cx.DDoSProtection("ddos"), TemporaryVenueError),
    (cx.InvalidNonce("-1021 timestamp"), TemporaryVenueError),
    (cx.BadResponse("not json"), TemporaryVenueError),
    (cx.NullResponse("null"), TemporaryVenueError),
    (cx.OperationFailed("-1006 unexpected"), TemporaryVenueError),
    (cx.ExchangeError("bybit 10016 server error"), TemporaryVenueError),  # exact ExchangeError: unknown
    (cx.DuplicateOrderId("duplicate"), TemporaryVenueError),
    (cx.OrderNotFound("gone"), TemporaryVenueError),
    (cx.InvalidOrder("min notional"), OrderRejected),
    (cx.InsufficientFunds("margin"), OrderRejected),
    (cx.BadRequest("bad param"), OrderRejected),
    (cx.BadSymbol("no market"), OrderRejected),
    (cx.OperationRejected("reduce only would increase"), OrderRejected),
    (cx.AuthenticationError("bad key"), FatalVenueError),
    (cx.PermissionDenied("no trade permission"), FatalVenueError),
    (cx.AccountSuspended("suspended"), FatalVenueError),
    (cx.NotSupported("no such method"), FatalVenueError),
    (ConnectionResetError("reset"), TemporaryVenueError),
    (TimeoutError(), TemporaryVenueError),
])
def test_ccxt_table(exc: BaseException, expected: type) -> None:
    translated = ccxt_errors.translate("binanceusdm", exc)
    assert type(translated) is expected
    assert translated.venue == "binanceusdm"


@pytest.mark.parametrize(("venue", "exc"), [
    ("bybit", cx.InvalidOrder('bybit {"retCode":110072,"retMsg":"OrderLinkedID is duplicate"}')),
    ("okx", cx.InvalidOrder('okx {"code":"1","data":[{"sCode":"51016","sMsg":"Duplicated clOrdId"}]}')),
    ("binanceusdm", cx.ExchangeError('binanceusdm {"code":-4116,"msg":"ClientOrderId is duplicated."}')),
])
def test_ccxt_duplicate_client_id_answers_mean_look_it_up(venue: str, exc: BaseException) -> None:
    translated = ccxt_errors.translate(venue, exc)
    assert isinstance(translated, TemporaryVenueError) and "look it up" in str(translated)


def test_ccxt_code_match_is_exact_not_a_substring() -> None:
    # 1100721 is not 110072; -41160 is not -4116
    assert isinstance(ccxt_errors.translate("bybit", cx.InvalidOrder("retCode 1100721")), OrderRejected)
    assert type(ccxt_errors.translate("binanceusdm", cx.ExchangeError("code -41160"))) is TemporaryVenueError
    assert "look it up" not in str(ccxt_errors.translate("binanceusdm", cx.ExchangeError("code -41160")))


def test_ccxt_no_change_is_success_for_setup_calls() -> None:
    assert ccxt_errors.is_no_change("okx", cx.NoChange("already"))
    assert ccxt_errors.is_no_change("okx", cx.MarginModeAlreadySet("already"))
    assert ccxt_errors.is_no_change("bybit", cx.BadRequest('bybit {"retCode":110043,"retMsg":"leverage not modified"}'))
    assert not ccxt_errors.is_no_change("bybit", cx.BadRequest('bybit {"retCode":10001}'))


def _invalid(code: int, message: str = "msg") -> InvalidRequestError:
    return InvalidRequestError(request="POST /v5/order/create: {...}", message=message, status_code=code,
                               time="00:00:00", resp_headers={})


@pytest.mark.parametrize(("exc", "expected"), [
    (_invalid(110072, "OrderLinkedID is duplicate"), TemporaryVenueError),
    (_invalid(10016, "server error"), TemporaryVenueError),
    (_invalid(10006, "too many visits"), TemporaryVenueError),
    (_invalid(10002, "timestamp outside recv_window"), TemporaryVenueError),
    (_invalid(110007, "insufficient balance"), OrderRejected),
    (_invalid(110017, "reduce-only rule not satisfied"), OrderRejected),
    (_invalid(170131, "balance insufficient"), OrderRejected),
    (_invalid(10001, "params error"), OrderRejected),
    (_invalid(10003, "invalid api key"), FatalVenueError),
    (_invalid(10004, "sign error"), FatalVenueError),
    (_invalid(10005, "permission denied"), FatalVenueError),
    (_invalid(10010, "unmatched ip"), FatalVenueError),
    (_invalid(99999, "new code"), TemporaryVenueError),
    (FailedRequestError(request="x", message="HTTP status code is not 200.", status_code=502, time="t", resp_headers={}),
     TemporaryVenueError),
    (FailedRequestError(request="x", message="Conflicting results", status_code=400, time="t", resp_headers=None),
     TemporaryVenueError),
    (requests.exceptions.ReadTimeout("read timed out"), TemporaryVenueError),
    (requests.exceptions.ConnectionError("refused"), TemporaryVenueError),
    (PermissionError("Authenticated endpoints require keys."), FatalVenueError),
])
def test_pybit_table(exc: BaseException, expected: type) -> None:
    translated = bybit_errors.translate(exc)
    assert type(translated) is expected and translated.venue == "bybit"


def test_pybit_duplicate_link_id_is_look_up_and_request_params_never_forwarded() -> None:
    exc = _invalid(110072, "OrderLinkedID is duplicate")
    translated = bybit_errors.translate(exc)
    assert "look it up" in str(translated)
    assert "/v5/order/create" not in str(translated)  # pybit's text embeds the request; ours does not
    assert bybit_errors.ret_code_of(exc) == 110072
    assert bybit_errors.ret_code_of(ValueError()) is None
