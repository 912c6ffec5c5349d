"""The package's import contracts (pyproject.toml ``[tool.importlinter]``) hold, and can be broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    cmd = [exe, "--no-cache"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept() -> None:
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and proc.stdout.count("KEPT") >= 4


def test_a_forbidden_import_breaks_a_contract(tmp_path: Path) -> None:
    """The checker can disagree: a copy of the package whose maths imports Brian2 fails."""
    shutil.copytree(
        ROOT / "neuroplast", tmp_path / "neuroplast", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "neuroplast" / "model" / "signals.py"
    bad.write_text(bad.read_text() + "\n\ndef _bad():\n    import brian2  # noqa: F401\n")
    proc = _lint_imports(tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "neuroplast.model.signals -> brian2" in proc.stdout
