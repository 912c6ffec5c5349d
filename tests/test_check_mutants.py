"""scripts/check_mutants.py: a missing string is an error, a caught or missed mutant is reported as such, and
every mutant of the real table still applies to the code (a moved string fails here, in the default suite).

The checker runs on a tiny fake repository (one module, two tests): each run starts a pytest of two tests
(≈ 1 s), NumPy-free.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("check_mutants", ROOT / "scripts" / "check_mutants.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cm():
    return _script()


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """A repository whose ``calc.area`` is tested strictly and ``calc.label`` only loosely."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "calc.py").write_text(
        "def area(w, h):\n    return w * h\n\n\ndef label(n):\n    return f'{n} items'\n"
    )
    (repo / "tests" / "test_calc.py").write_text(
        "from pkg.calc import area, label\n\n\n"
        "def test_area():\n    assert area(2.0, 3.0) == 6.0\n\n\n"
        "def test_label():\n    assert 'items' in label(3)\n"
    )
    return repo


def _check(cm, rows, root, **kw) -> tuple[int, list[str]]:
    """The checker's status and its lines but those of the passing baselines."""
    out = io.StringIO()
    status = cm.check(rows, root, out=out, timeout=120, **kw)
    lines = out.getvalue().splitlines()
    assert all(line.startswith("baseline passes: tests/test_calc.py") for line in lines if "baseline" in line)
    return status, [line for line in lines if not line.startswith("baseline passes")]


def test_a_caught_and_a_missed_mutant_are_reported_as_such(cm, fake: Path) -> None:
    caught = cm.Mutant("calc", "pkg/calc.py", "return w * h", "return w * h * 0.999", ("tests/test_calc.py",))
    missed = cm.Mutant("calc", "pkg/calc.py", "f'{n} items'", "f'{n + 1} items'", ("tests/test_calc.py",))
    status, lines = _check(cm, [caught, missed], fake)
    assert status == 1, lines
    assert lines[0].startswith("caught ") and "w * h * 0.999" in lines[0]
    assert lines[1].startswith("MISSED ") and "n + 1" in lines[1]
    assert lines[-1].startswith("2 mutants: 1 caught, 1 missed, 0 errors")
    assert "w * h\n" in (fake / "pkg" / "calc.py").read_text()  # the repository itself is never changed
    status, lines = _check(cm, [caught], fake)
    assert status == 0 and lines[-1].startswith("1 mutants: 1 caught, 0 missed, 0 errors"), lines


def test_a_missing_string_is_an_error_naming_the_file_and_the_string(cm, fake: Path) -> None:
    gone = cm.Mutant("calc", "pkg/calc.py", "return w + h", "return w - h", ("tests/test_calc.py",))
    status, lines = _check(cm, [gone], fake, check_only=True)
    assert status == 1
    assert lines[0] == "ERROR: string not found in pkg/calc.py: 'return w + h'"
    twice = cm.Mutant("calc", "pkg/calc.py", "return", "return -1 *", ("tests/test_calc.py",))
    broken = cm.Mutant("calc", "pkg/calc.py", "return w * h", "return w * * h", ("tests/test_calc.py",))
    status, lines = _check(cm, [twice, broken], fake)
    assert status == 1
    assert lines[0].startswith("ERROR: string found 2 times in pkg/calc.py")
    assert lines[1].startswith("ERROR: pkg/calc.py: the mutant does not parse")


def test_a_selection_that_fails_unmutated_judges_no_mutant(cm, fake: Path) -> None:
    (fake / "tests" / "test_calc.py").write_text(
        (fake / "tests" / "test_calc.py").read_text() + "\n\ndef test_broken():\n    assert False\n"
    )
    m = cm.Mutant("calc", "pkg/calc.py", "return w * h", "return w * h * 0.999", ("tests/test_calc.py",))
    status, lines = _check(cm, [m], fake)
    assert status == 1
    assert lines[0].startswith("ERROR: unmutated code does not pass tests/test_calc.py")
    assert lines[-1].startswith("1 mutants: 0 caught, 0 missed, 1 errors")


def test_every_mutant_of_the_table_applies_once(cm) -> None:
    views = {m.view for m in cm.MUTANTS}
    assert {"dynamics", "stepper", "eligibility", "bptt", "optimizer", "writer", "brian2"} <= views
    for m in cm.MUTANTS:
        text = (ROOT / m.file).read_text()
        assert text.count(m.old) == 1, f"{m.file}: {m.old!r} found {text.count(m.old)} times"
        cm.apply(text, m)  # and it parses
