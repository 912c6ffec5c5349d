"""Fixtures of the end-to-end tests: runs that several modules compare against are made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import TINY_ITERATIONS, TINY_TOML, run_cli, write_text


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory) -> Path:
    """An uninterrupted ``neuroplast run`` of TINY_TOML for TINY_ITERATIONS iterations (runtime device), the
    run that the resume tests (test_resume.py) and the extended run (test_run_safety.py) must equal."""
    work = write_text(tmp_path_factory.mktemp("tiny_reference"), "tiny.toml", TINY_TOML)
    out = work / "ref.h5"
    proc = run_cli("run", "tiny.toml", "--iterations", TINY_ITERATIONS, "--out", out, "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return out
