"""Locate the read-only real data in ../shared/data (never copied into the project)."""

from __future__ import annotations

from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """Return ``<repo>/../shared/data``; skip the calling test when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real data not available at {path} (a plain clone has no ../shared/data; the test needs the real funding files)")
    return path
