"""Brian2 preferences set by neuroplast.network.devices."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_warnings_reach_the_user_after_brian2_is_configured() -> None:
    """Importing Brian2 routes Python warnings into its logger, which neuroplast turns down to errors: the
    configuration gives warnings back, so that e.g. "cache entry ... rebuilding it" is seen (in a fresh
    process: pytest records warnings itself)."""
    code = (
        "import warnings, brian2\n"
        "from neuroplast.network.devices import configure_brian2\n"
        "configure_brian2()\n"
        "warnings.warn('neuroplast: a warning for the user', RuntimeWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "neuroplast: a warning for the user" in proc.stderr
