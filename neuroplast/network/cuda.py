"""neuroplast's CUDA device: brian2cuda's ``CUDAStandaloneDevice`` with neuroplast's engine (extra ``cuda``).

The device ``cuda_standalone`` of :mod:`neuroplast.devices` is simulated by :class:`NeuroplastCUDADevice`,
registered in Brian2's device table as :data:`DEVICE_NAME` when this module is imported (only when the
device is used: brian2cuda is an optional extra, ``pip install 'neuroplast[cuda]'``, which pins brian2 2.10.1
and so installs on Python ≥ 3.12).  It adds to brian2cuda's device what every device of neuroplast has
(:class:`~neuroplast.network.engine.NeuroplastDevice`: clocks iterated by name, ``make`` in a process group,
the launch with its arrays written to the results folder) and:

* **strict floating point on the GPU**: nvcc without ``-use_fast_math`` (brian2cuda's default), no fused
  multiply-adds, IEEE division, square root and denormals (:data:`STRICT_NVCC_FLAGS`); the host code keeps
  the strict C++ flags of :func:`~neuroplast.network.devices.configure_brian2`; both in C++17
  (:data:`CPP_STANDARD`: CUDA 13's Thrust needs it).  The GPU's ``exp`` and
  ``log`` are CUDA's, not glibc's: results can differ from the C++ devices' in the last bits;
* **code generation without a GPU** (:meth:`NeuroplastCUDADevice.configure` with ``compile=False``):
  brian2cuda asks ``nvidia-smi`` and ``nvcc`` for the GPU's compute capability and the CUDA version while it
  generates code; a project that is only generated assumes :data:`GENERATE_ONLY` instead, so that CI, which
  has no GPU, checks that the network's code is generated.  A project that compiles lets brian2cuda detect
  them (or takes the user's brian2cuda preferences).

The network it runs has no C++ function of neuroplast's (capability ``cpp_functions``): inputs are a
``TimedArray``, synapses are connected from arrays and monitors are Brian2's (docs/configs.md, "GPU
(brian2cuda)").
"""

from __future__ import annotations

import re
from typing import Any

import brian2cuda  # noqa: F401 - registers brian2cuda's preferences and its device in Brian2
from brian2 import prefs
from brian2.devices.device import all_devices
from brian2cuda.device import CUDAStandaloneDevice
from brian2cuda.utils import gputools

from neuroplast.network.engine import NeuroplastDevice

__all__ = [
    "CPP_STANDARD",
    "DEVICE_NAME",
    "GENERATE_ONLY",
    "STRICT_NVCC_FLAGS",
    "NeuroplastCUDADevice",
    "register",
]

#: The name of neuroplast's CUDA device in Brian2's device table.
DEVICE_NAME = "neuroplast_cuda_standalone"
#: The C++ standard of the program's device and host code.  CUDA 13's Thrust, which brian2cuda's code
#: includes, refuses anything older (``#error Thrust requires at least C++17``); brian2cuda's makefile asks
#: nvcc for C++11 first and nvcc takes the last value given.
CPP_STANDARD = "-std=c++17"
#: nvcc's flags: no fast math, no fused multiply-add contraction, IEEE division and square root, denormals
#: kept (brian2cuda's default is ``-w -use_fast_math``), and :data:`CPP_STANDARD`.
STRICT_NVCC_FLAGS = ["-w", "--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false", CPP_STANDARD]
#: brian2cuda's preferences (``devices.cuda_standalone.cuda_backend.*``) of a project whose code is only
#: generated: no GPU or CUDA is asked, a GPU of compute capability 8.0 and CUDA 12.0 are assumed.
GENERATE_ONLY: dict[str, Any] = {
    "detect_gpus": False,
    "gpu_id": 0,
    "compute_capability": 8.0,
    "detect_cuda": False,
    "cuda_runtime_version": 12.0,
}
#: Where a project that is only generated says nvcc is when no CUDA installation is found.
_DEFAULT_CUDA_PATH = "/usr/local/cuda"
_BACKEND = "devices.cuda_standalone.cuda_backend"
#: The preferences of brian2cuda's backend as the user had them, before the first :meth:`configure`.
_USER: dict[str, Any] = {}
#: A line that adds a clock's random-number buffer (or no code object) to the network, in set order.
_CLOCK_LINE = re.compile(r"^\S+\.add\(&(\w+), (?:_run_random_number_buffer|NULL)\);$")


def _clock_lines_by_name(lines: list[str]) -> list[str]:
    """``lines`` with each run of consecutive per-clock lines (:data:`_CLOCK_LINE`, written in the clocks'
    set order) sorted by clock name; every other line stays where it is."""
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, None]:
        if line is not None and _CLOCK_LINE.match(line):
            run.append(line)
            continue
        out += sorted(run, key=lambda text: _CLOCK_LINE.match(text).group(1))
        run = []
        if line is not None:
            out.append(line)
    return out


def _set(values: dict[str, Any]) -> None:
    """Set these preferences of brian2cuda's backend, and forget what brian2cuda detected with the old ones
    (it remembers the CUDA installation and the GPU once per process)."""
    for key, value in values.items():
        prefs[f"{_BACKEND}.{key}"] = value
    gputools.reset_cuda_installation()
    gputools.reset_gpu_selection()


class NeuroplastCUDADevice(NeuroplastDevice, CUDAStandaloneDevice):
    """brian2cuda's CUDA standalone device with neuroplast's clock order, compile, launches and strict
    floating point, able to generate its code without a GPU."""

    def configure(self, compile: bool) -> None:
        """Set brian2cuda's preferences for the next project: strict nvcc flags, C++17; with
        ``compile=False`` the GPU and CUDA of :data:`GENERATE_ONLY` (nothing detected), else the user's
        preferences (brian2cuda's defaults: detected)."""
        if not _USER:
            _USER.update({key: prefs[f"{_BACKEND}.{key}"] for key in (*GENERATE_ONLY, "cuda_path")})
        values = {**_USER, **(GENERATE_ONLY if not compile else {})}
        values["extra_compile_args_nvcc"] = list(STRICT_NVCC_FLAGS)
        _set(values)
        # the host code: the strict C++ flags of configure_brian2 (set again for every network), in C++17
        host = [flag for flag in prefs["codegen.cpp.extra_compile_args_gcc"] if not flag.startswith("-std=")]
        prefs["codegen.cpp.extra_compile_args_gcc"] = [*host, CPP_STANDARD]
        if compile:
            return
        try:  # the makefile names nvcc: where brian2cuda finds it (no command runs), else the usual place
            gputools.get_cuda_path()
        except RuntimeError:
            _set({"cuda_path": _DEFAULT_CUDA_PATH})

    def cache_parts(self) -> dict[str, Any]:
        """What, beyond Brian2's generated code, determines the compiled program: brian2cuda's version, the
        nvcc flags, the CUDA version and the compute capability compiled for (set by preference, else the
        selected GPU's: brian2cuda asks ``nvcc`` and ``nvidia-smi``, only for a program that compiles)."""
        capability = prefs[f"{_BACKEND}.compute_capability"] or gputools.select_gpu()[1]
        return {
            "cuda": [
                brian2cuda.__version__,
                list(prefs[f"{_BACKEND}.extra_compile_args_nvcc"]),
                gputools.get_cuda_runtime_version(),
                capability,
            ]
        }

    def network_run(self, net, duration, *args, level: int = 0, **kwds):  # noqa: D102 - Brian2's
        start = len(self.main_queue)
        super().network_run(net, duration, *args, level=level + 1, **kwds)
        for k in range(start, len(self.main_queue)):
            kind, item = self.main_queue[k]
            if kind == "run_network":
                network, lines = item
                self.main_queue[k] = (kind, (network, _clock_lines_by_name(list(lines))))


def register() -> None:
    """Put neuroplast's CUDA device into Brian2's device table (once; ``set_device(DEVICE_NAME)``)."""
    if not isinstance(all_devices.get(DEVICE_NAME), NeuroplastCUDADevice):
        all_devices[DEVICE_NAME] = NeuroplastCUDADevice()


register()
