"""The one line a user is shown of an error (neuroplast.errors.first_line) and a sweep point's ``error``."""

from __future__ import annotations

import pytest

from neuroplast.errors import ConfigError, first_line
from neuroplast.sweep.worker import failure_line


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ConfigError("task.n_in: must be > 0"), "task.n_in: must be > 0"),
        (ValueError("first\nsecond"), "first"),
        (ValueError("\n  \n  indented first  \nsecond"), "indented first"),
        (KeyError(), "KeyError"),
        (RuntimeError("   "), "RuntimeError"),
    ],
)
def test_first_line(exc: BaseException, line: str) -> None:
    assert first_line(exc) == line


def test_failure_line_names_the_type() -> None:
    assert failure_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert failure_line(KeyError()) == "KeyError"  # a blank message: the type alone, not "KeyError: KeyError"
