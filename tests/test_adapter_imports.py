"""Importing the live adapters' entry points loads neither ccxt nor pybit (``--paper`` stays light)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_registry_and_composition_do_not_import_ccxt_or_pybit() -> None:
    code = ("import sys, adapters.registry, adapters.live, adapters.client_ids, adapters.credentials; "
            "print(sorted(m for m in ('ccxt', 'pybit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
