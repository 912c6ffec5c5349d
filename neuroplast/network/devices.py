"""Brian2 devices: Cython runtime and cpp_standalone, with strict floating point.

Brian2's default C++ flags include ``-ffast-math`` and ``-march=native`` (which may
contract ``a*b + c`` into FMA); both change results at the 1e-16 level.  neuroplast
compiles with strict IEEE semantics so that the Brian2 network and the NumPy
reference agree to rounding of the *same* operations.
"""

from __future__ import annotations

import os
from pathlib import Path

from neuroplast.config import DEVICES  # the names of ``simulation.device``: the config schema owns them

__all__ = ["DEVICES", "configure_brian2", "cache_dir"]

STRICT_FLAGS = ["-w", "-O3", "-fno-fast-math", "-ffp-contract=off", "-std=c++11"]


def cache_dir() -> Path:
    """Where compiled Brian2 code lives (``$NEUROPLAST_CACHE`` or ~/.cache/neuroplast)."""
    root = os.environ.get("NEUROPLAST_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "neuroplast"
    path.mkdir(parents=True, exist_ok=True)
    return path


def configure_brian2() -> None:
    """Set Brian2 preferences shared by both devices (strict flags, float64, quiet)."""
    import logging

    from brian2 import prefs

    prefs.codegen.cpp.extra_compile_args_gcc = list(STRICT_FLAGS)
    prefs.codegen.cpp.extra_compile_args_msvc = ["/Ox", "/fp:strict"]
    prefs.core.default_float_dtype = __import__("numpy").float64
    prefs.codegen.runtime.cython.cache_dir = str(cache_dir() / "cython")
    prefs.codegen.runtime.cython.multiprocess_safe = True
    logging.getLogger("brian2").setLevel(logging.ERROR)
    try:
        from brian2.utils.logger import BrianLogger

        BrianLogger.log_level_error()
    except Exception:  # pragma: no cover - logger API differs between versions
        pass
