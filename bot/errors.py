"""Errors the user can fix: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_NOT_FLAT = 3


class UserInputError(Exception):
    """Bad settings, CLI arguments or input files. The message names the field and the fix."""
