"""The Brian2 side of the devices of :mod:`neuroplast.devices`: which Brian2 device implements each, strict
floating point, and what ``auto`` picks.

Brian2's default C++ flags include ``-ffast-math`` and ``-march=native`` (which may
contract ``a*b + c`` into FMA); both change results at the 1e-16 level.  neuroplast
compiles with strict IEEE semantics so that the Brian2 network and the NumPy
reference agree to rounding of the *same* operations.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from neuroplast.devices import (
    AUTO,
    DEVICES,
    DeviceInfo,
    device_info,
    installed,
    require,
    require_installed,
)

__all__ = [
    "BRIAN2_DEVICES",
    "BRIAN2_MODULES",
    "brian2_device",
    "configure_brian2",
    "cache_dir",
    "resolve_device",
    "compiler_works",
    "gpu_works",
    "import_brian2",
    "simulated_by_brian2",
]

#: The Brian2 device (its name in Brian2's device table) that implements each device of
#: :data:`neuroplast.devices.DEVICES`; the only table that turns a device's name into Brian2.
BRIAN2_DEVICES = {
    "runtime": "runtime",
    "cpp_standalone": "neuroplast_standalone",
    "cuda_standalone": "neuroplast_cuda_standalone",
}
#: The module that puts each of neuroplast's Brian2 devices into Brian2's device table when imported
#: (``cuda``: brian2cuda's device, imported only when the device is used).
BRIAN2_MODULES = {
    "neuroplast_standalone": "neuroplast.network.engine",
    "neuroplast_cuda_standalone": "neuroplast.network.cuda",
}

#: The C++ flags of every compiled network: IEEE arithmetic as NumPy does it (no fast-math, no fused
#: multiply-add), and two that change no value but let loops over neurons be vectorized:
#: ``-fno-trapping-math`` (a select of two doubles in a loop may be computed for every element: no
#: floating-point trap is ever enabled) and more run-time checks that two of Brian2's arrays do not
#: overlap than GCC's default 10 (its code objects read and write one array per variable: the recurrent
#: update has 14).  Vector forms of +, −, ×, /, √, |x|, max and min round as the scalar ones do; sums are
#: never reordered (no ``-ffast-math``).
STRICT_FLAGS = [
    "-w",
    "-O3",
    "-fno-fast-math",
    "-ffp-contract=off",
    "-fno-trapping-math",
    "--param=vect-max-version-for-alias-checks=64",
    "-std=c++11",
]


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
    # Brian2's default ``make -j`` starts a compiler for every code object at once (≈ 40, 100–250 MB each):
    # as many jobs as cores compile faster (measured cold build of models/sine.toml under load: 151 → 121 s,
    # 126 → 105 s, alternating) and without the memory and load spike.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{cores}"]
    prefs.codegen.runtime.cython.cache_dir = str(cache_dir() / "cython")
    prefs.codegen.runtime.cython.multiprocess_safe = True
    # Ctrl-C is a KeyboardInterrupt at once, on both devices.  (Brian2's default turns it into a "stop at
    # the end of this step" request, which a cpp_standalone binary never sees: the run would go on.)
    prefs.core.stop_on_keyboard_interrupt = False
    logging.getLogger("brian2").setLevel(logging.ERROR)
    try:
        from brian2.utils.logger import BrianLogger

        BrianLogger.log_level_error()
    except Exception:  # pragma: no cover - logger API differs between versions
        pass
    # Importing Brian2 routes every Python warning into its logger (logging.captureWarnings), whose console
    # level is now ERROR: neuroplast's own warnings (a damaged cache entry rebuilt, a chunked run falling
    # back to one trial per launch) would never be seen.  Give warnings back to Python.
    logging.captureWarnings(False)


def import_brian2(*, pylab: bool = True) -> None:
    """Import brian2 now (nothing if it is imported already or not installed).

    Parameters
    ----------
    pylab : bool, optional
        ``False``: without the ``from pylab import *`` of brian2's ``__init__`` (matplotlib.pyplot and its
        names in brian2's namespace: ≈ 0.3–0.4 s of every command's start, for nothing neuroplast uses).
        brian2 itself falls back to NumPy's names then, as it does where matplotlib is not installed;
        ``import pylab`` works as usual afterwards, only ``from brian2 import *`` lacks pylab's plotting
        names for the rest of the process.  For processes that are neuroplast's own (the ``neuroplast``
        command), never for a library user's.
    """
    import sys

    if "brian2" in sys.modules or importlib.util.find_spec("brian2") is None:
        return
    if pylab:
        importlib.import_module("brian2")
        return
    missing = object()
    before = sys.modules.get("pylab", missing)
    sys.modules["pylab"] = None  # type: ignore[assignment] - "import pylab" raises ImportError meanwhile
    try:
        importlib.import_module("brian2")
    except ImportError:  # a brian2 that needs pylab: import it as it is meant to be (below)
        for name in [m for m in sys.modules if m == "brian2" or m.startswith("brian2.")]:
            del sys.modules[name]
    finally:
        if before is missing:
            del sys.modules["pylab"]
        else:
            sys.modules["pylab"] = before
    if "brian2" not in sys.modules:
        importlib.import_module("brian2")


def simulated_by_brian2(name: str) -> bool:
    """Whether ``simulation.device = name`` runs a Brian2 network (``auto`` always does: the runtime
    device is always there); an unknown name: false (its error comes where the device is resolved)."""
    if name.strip().lower() == AUTO:
        return True
    from neuroplast.errors import ConfigError

    try:
        info = device_info(name)
    except ConfigError:  # an unknown device: resolve_device raises it, naming the key
        return False
    return not info.simulator and info.name in BRIAN2_DEVICES


def compiler_works() -> bool:
    """Whether a C++ compiler and ``make`` are there and the compiler builds a trivial program.

    The answer is remembered in the cache folder per compiler (path and modification time), so that only
    the first call on a machine compiles anything.
    """
    import tempfile

    cxx = shutil.which(os.environ.get("CXX", "") or "c++") or shutil.which("g++")
    if cxx is None or shutil.which("make") is None:
        return False
    stamp = cache_dir() / "compiler_ok"
    mark = f"{cxx} {os.stat(cxx).st_mtime_ns}"
    if stamp.is_file() and stamp.read_text() == mark:
        return True
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.cpp"
        src.write_text("int main() { return 0; }\n")
        try:
            ok = subprocess.run([cxx, str(src), "-o", str(Path(tmp) / "t")], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
    if ok.returncode != 0:
        return False
    stamp.write_text(mark)
    return True


def gpu_works() -> bool:
    """Whether an NVIDIA GPU is there (``nvidia-smi -L`` lists one) and the CUDA compiler ``nvcc`` is found
    (on the ``PATH``, under ``$CUDA_PATH`` or ``/usr/local/cuda``).  Nothing is compiled."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if listed.returncode != 0 or "GPU" not in listed.stdout:
        return False
    roots = [os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"]
    return shutil.which("nvcc") is not None or any(r and Path(r, "bin", "nvcc").is_file() for r in roots)


def available(info: DeviceInfo) -> bool:
    """Whether this machine can run device ``info``: it has a simulator of its own, or Brian2 implements it
    here (with the Python package it needs); and what it needs works (a C++ compiler, a GPU)."""
    implemented = bool(info.simulator) or (info.name in BRIAN2_DEVICES and installed(info))
    return (
        implemented and (not info.needs_compiler or compiler_works()) and (not info.needs_gpu or gpu_works())
    )


def brian2_device(name: str) -> str:
    """The name in Brian2's device table of the Brian2 device that implements device ``name``, put into
    that table first (its module imported: :data:`BRIAN2_MODULES`).

    Raises
    ------
    ConfigError
        One line naming ``simulation.device``: the device needs a package that is not installed (the extra
        to install named, :func:`neuroplast.devices.require_installed`).
    """
    info = device_info(name)
    require_installed(info)
    brian2_name = BRIAN2_DEVICES[info.name]
    if brian2_name in BRIAN2_MODULES:
        importlib.import_module(BRIAN2_MODULES[brian2_name])
    return brian2_name


def resolve_device(name: str, needs: tuple[str, ...] = (), why: str = "") -> tuple[DeviceInfo, str]:
    """The device for ``simulation.device`` and why it was chosen.

    ``auto`` picks the available device of highest preference among those with every capability in
    ``needs``; a named device must be known (:class:`~neuroplast.errors.ConfigError` naming the key
    otherwise) and implemented: by Brian2 here, or by a simulator of its own
    (:attr:`DeviceInfo.simulator <neuroplast.devices.DeviceInfo.simulator>`).

    Parameters
    ----------
    name : str
        ``simulation.device``.
    needs : tuple of str
        Fields of :class:`~neuroplast.devices.Capabilities` the run needs (e.g. ``("neuron_models",)``).
    why : str
        What needs them, in a few words (for the reason and the error).

    Returns
    -------
    (device, reason) : (DeviceInfo, str)
        ``reason`` is a few words for the user.
    """
    from neuroplast.errors import ConfigError

    if name.strip().lower() != AUTO:
        info = device_info(name)
        if not info.simulator and info.name not in BRIAN2_DEVICES:
            raise ConfigError(
                f"simulation.device: {info.name!r} has neither a Brian2 implementation in neuroplast "
                "nor a simulator of its own"
            )
        require_installed(info)
        for capability in needs:
            require(info, capability, "simulation.device", why or capability.replace("_", " "))
        return info, "as configured"
    ranked = sorted((DEVICES.get(d) for d in DEVICES.names()), key=lambda d: -d.preference)
    able = [d for d in ranked if all(getattr(d.capabilities, c) for c in needs)]
    for k, info in enumerate(able):
        if not available(info):
            continue
        if needs and able[0] is not ranked[0]:
            lacking = ", ".join(d.name for d in ranked if d not in able)
            return info, f"auto: {why} needs {', '.join(needs)}, which {lacking} lack"
        if info.needs_compiler:
            return info, "auto: a C++ compiler works, compiled once and cached"
        skipped = ", ".join(
            d.name for d in able[:k] if (d.name in BRIAN2_DEVICES and installed(d)) or d.simulator
        )
        if skipped:
            return info, f"auto: no working C++ compiler and make found for {skipped}, using {info.name}"
        return info, "auto"
    if needs:
        raise ConfigError(
            f"simulation.device: no available device can run {why} (it needs {', '.join(needs)})"
        )
    raise RuntimeError("no simulation device is available")  # pragma: no cover - runtime always is
