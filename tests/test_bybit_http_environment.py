"""pybit's requests session reads the environment only when something in it is for requests
(adapters/bybit/http.py ``environment_settings_in_use``)."""

from __future__ import annotations

import pytest

pytest.importorskip("pybit")
from adapters.bybit.http import BybitHttp, environment_settings_in_use  # noqa: E402


@pytest.mark.parametrize(("environ", "in_use"), [
    ({"PATH": "/usr/bin", "HOME": "/nowhere"}, False),
    ({"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca.pem", "CURL_CA_BUNDLE": "/x"}, False),  # not read on pybit's path
    ({"HTTPS_PROXY": "http://proxy:3128"}, True),
    ({"https_proxy": "http://proxy:3128"}, True),
    ({"ALL_PROXY": "socks5://proxy:1080"}, True),
    ({"no_proxy": "localhost"}, True),
    ({"NETRC": "/home/me/.netrc"}, True),
])
def test_what_requests_would_read(environ, in_use, tmp_path):
    assert environment_settings_in_use(environ, home=tmp_path) is in_use


def test_a_netrc_file_counts(tmp_path):
    (tmp_path / ".netrc").write_text("machine example.com login a password b\n")
    assert environment_settings_in_use({"PATH": "/usr/bin"}, home=tmp_path) is True


def test_the_client_skips_the_scan_only_when_nothing_is_there(monkeypatch, tmp_path):
    for name in [n for n in __import__("os").environ if n.lower().endswith("_proxy") or n.upper() == "NETRC"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert BybitHttp(credentials=None)._session.client.trust_env is False
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert BybitHttp(credentials=None)._session.client.trust_env is True  # requests honours the proxy
