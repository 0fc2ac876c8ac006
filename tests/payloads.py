"""Load recorded real venue payloads from ../shared/data/payloads (skip when absent)."""

from __future__ import annotations

import json
from typing import Any

from shared_data import shared_data_dir


def payload(relative: str) -> Any:
    """Parsed JSON of ``../shared/data/payloads/<relative>`` (the test skips if ../shared is missing)."""
    path = shared_data_dir() / "payloads" / relative
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def ccxt_static(exchange: str, method: str, index: int = 0) -> Any:
    """The recorded raw ``httpResponse`` of ccxt's static test ``method`` entry ``index``."""
    return payload(f"ccxt-static/response/{exchange}.json")["methods"][method][index]["httpResponse"]
