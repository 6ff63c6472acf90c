"""Numbers on the command line are ASCII digits: click's INT would read "\u0666\u0663\u0667\u0669"
(Arabic-Indic) as 6379 and "1_0" as 10. A refused number ends the command before it connects."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cachemigrate.cli.app import app


@pytest.mark.parametrize("number", ["\u0663", "\u00b2", "1_0", " 1", "+1", "-1"])
@pytest.mark.parametrize(
    "argv",
    [
        ["migrate", "redis://127.0.0.1:1", "redis://127.0.0.1:2", "--db"],
        ["import", "missing.rdb", "redis://127.0.0.1:1", "--db"],
        ["serve", "--database", "sqlite://", "--port"],
    ],
)
def test_a_number_in_other_digits_is_refused(argv: list[str], number: str) -> None:
    result = CliRunner().invoke(app, [*argv, number])
    assert result.exit_code == 2, result.output
    assert "ASCII digits" in result.output and "Invalid value for" in result.output


def test_ascii_digits_pass() -> None:
    from cachemigrate.cli.options import ascii_int

    assert [ascii_int(t) for t in ("0", "15", "6380")] == [0, 15, 6380]
