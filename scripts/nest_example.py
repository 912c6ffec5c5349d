"""Run NEST's e-prop example scripts (shipped in the nest-simulator wheel) with a few variables changed.

Shared by scripts/bench_vs_nest.py (timing), scripts/make_nest_reference.py (reference data) and
scripts/plot_nest_validation.py (the validation figure):

* :func:`example_path` finds an example in the installed wheel (``None`` without NEST);
* :func:`patched_source` sets top-level variables (``name = value`` lines) and can route
  ``nest.Simulate(`` through a wrapper;
* :func:`stub_ipython` stands in for ``IPython.display.Image``, which the examples import for notebooks;
* :func:`run_example` executes a patched example in this process and returns its namespace;
* :func:`write_json` writes a script's figures where its ``--json FILE`` option says.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["example_path", "patched_source", "stub_ipython", "run_example", "nest_version", "write_json"]


def _nest_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("nest")
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def example_path(name: str) -> Path | None:
    """``nest/doc/examples/pynest/eprop_plasticity/NAME`` of the installed wheel, or None."""
    base = _nest_dir()
    if base is None:
        return None
    path = base / "doc" / "examples" / "pynest" / "eprop_plasticity" / name
    return path if path.exists() else None


def nest_version() -> str:
    """The installed NEST's version string (imports nest)."""
    import nest

    return str(nest.__version__)


def patched_source(
    path: Path, values: dict[str, Any], simulate: str | None = None, lines: dict[str, str] | None = None
) -> str:
    """The example's source with each top-level ``NAME = ...`` line of ``values`` set to its repr.

    ``simulate``, if given, replaces every ``nest.Simulate(`` call by a call of that name; ``lines``
    replaces each whole line (stripped text → new text, same indentation) found exactly once.
    Raises AssertionError when a variable, line or the call is not found (the example changed).
    """
    src = Path(path).read_text()
    for old, new in (lines or {}).items():
        src, n = re.subn(rf"^{re.escape(old)}$", lambda _m, new=new: new, src, flags=re.M)
        assert n == 1, f"{path.name}: the line {old!r} occurs {n} times"
    for var, val in values.items():
        src, n = re.subn(rf"^{var} = .*$", f"{var} = {val!r}", src, count=1, flags=re.M)
        assert n == 1, f"{path.name}: no top-level line '{var} = ...'"
    if simulate is not None:
        src, n = re.subn(r"\bnest\.Simulate\(", f"{simulate}(", src)
        assert n >= 1, f"{path.name}: no nest.Simulate call"
    return src


def stub_ipython() -> None:
    """Make ``from IPython.display import Image`` work without IPython (the examples only display it)."""
    if "IPython" in sys.modules:
        return
    ipy, disp = types.ModuleType("IPython"), types.ModuleType("IPython.display")
    disp.Image = lambda *a, **k: None
    ipy.display = disp
    sys.modules.update({"IPython": ipy, "IPython.display": disp})


def run_example(
    path: Path,
    values: dict[str, Any],
    namespace: dict[str, Any] | None = None,
    lines: dict[str, str] | None = None,
) -> dict:
    """Execute the patched example here (``exit()`` at its plotting switch is caught); its namespace.

    ``namespace`` (filled in place, so that functions given in it can read the example's variables)
    holds names the patched ``lines`` may use.
    """
    stub_ipython()
    ns = {} if namespace is None else namespace
    ns.setdefault("__name__", "__main__")
    try:
        exec(compile(patched_source(path, values, lines=lines), str(path), "exec"), ns)
    except SystemExit:  # the examples exit() when do_plotting is False
        pass
    return ns


def write_json(path: str | None, data: dict[str, Any]) -> int:
    """A script's ``--json FILE``: ``data`` as indented JSON to FILE (nothing when ``path`` is None).

    Returns the script's exit status, 0.
    """
    if path:
        Path(path).write_text(json.dumps(data, indent=1))
    return 0
