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


def test_file_kind_names_what_a_path_is(tmp_path) -> None:
    import os
    import stat

    from neuroplast.errors import file_kind

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("x")
    cases = {
        os.devnull: "a character device",
        str(tmp_path / "fifo"): "a FIFO (named pipe)",
        str(tmp_path / "file"): "a regular file",
        str(tmp_path): "a directory",
    }
    for path, words in cases.items():
        assert file_kind(os.stat(path).st_mode) == words, path
    assert file_kind(stat.S_IFSOCK) == "a socket" and file_kind(stat.S_IFBLK) == "a block device"
