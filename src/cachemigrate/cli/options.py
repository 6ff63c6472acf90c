"""Option parsers shared by the commands."""

from __future__ import annotations

import re

import typer

_DIGITS = re.compile(r"[0-9]+")


def ascii_int(text: str) -> int:
    """A non-negative integer in ASCII digits. click's INT calls int(), which reads "٦٣٧٩" as
    6379 (and "1_0" as 10): a port or db typed in another script would go somewhere else."""
    if not _DIGITS.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not a number in ASCII digits (0-9)")
    return int(text)
