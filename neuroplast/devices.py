"""The simulation devices by name, with what each can do (no Brian2 here).

A device is a :class:`DeviceInfo` in the :data:`DEVICES` registry: its name (the value of
``simulation.device``), its :class:`Capabilities` and what it needs on the machine.  Everything that
depends on the device asks for a capability (``info.capabilities.chunks``), never compares names.  A device
is simulated either by Brian2 — the one place that turns its name into Brian2 objects is
:mod:`neuroplast.network` (``network/devices.py``) — or by a simulator of its own, named by
:attr:`DeviceInfo.simulator` (``numpy``: the NumPy reference, :class:`neuroplast.plasticity.reference.
NumpySimulator`; ``nest-current``: NEST 3.10's current e-prop models,
:class:`neuroplast.plasticity.nest_simulator.NestCurrentSimulator`), which any
:class:`~neuroplast.model.simulator.Simulator` can be.
``auto`` (:data:`AUTO`) is not a device: it resolves to the available device of highest
``preference`` (:func:`neuroplast.network.devices.resolve_device`).

An unknown name, or a configuration that needs a capability the device lacks, is a one-line
:class:`~neuroplast.errors.ConfigError` naming the key (:func:`require`) — never a silent fall-back to
another device.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from neuroplast.errors import ConfigError
from neuroplast.registry import Registry

__all__ = [
    "AUTO",
    "Capabilities",
    "DEVICES",
    "DeviceInfo",
    "device_info",
    "device_names",
    "installed",
    "load_simulator",
    "register_device",
    "require",
    "require_installed",
]

#: The value of ``simulation.device`` that picks the best available device.
AUTO = "auto"


@dataclass(frozen=True)
class Capabilities:
    """What a device can do beyond simulating one trial per launch.

    Attributes
    ----------
    batch : bool
        A batch's trials side by side in one launch (copies of the network, docs/model.md §8).
    chunks : bool
        Several training iterations per launch, the optimizer step inside the simulation (§7).
    compiled_gradients : bool
        The factorized e-prop gradient computed inside the simulation after the run (§9).
    in_trial : bool
        Weight updates inside a trial (``training.update_every_steps``, §6).
    threads : bool
        More than one thread (``simulation.threads``).
    ahead_of_time : bool
        The network is compiled into a program before the first trial (the first iteration does not
        compile), and a launch runs outside Python (Python threads can work meanwhile).
    neuron_models : bool
        Any registered neuron model (``network.neuron``, :data:`neuroplast.model.neurons.NEURONS`), not
        only the LIF/ALIF mix (``alif``).
    nest_plasticity : bool
        NEST 3.10's current e-prop models (the ``[nest]`` table, docs/validation.md): the simulation
        changes the weights itself during each sequence (per spike or per step, NEST's ``eprop_synapse``
        and ``weight_optimizer``) and keeps its state from one sequence to the next; the trainer applies
        no update of its own.
    cpp_functions : bool
        A compiled program whose code calls neuroplast's C++ functions (``network/include``): each
        launch's inputs read from a byte table, the synapses from tables of the launch (another
        connectivity runs the same program), monitors of every synapse sized at launch, the launch's
        duration chosen when it starts.  Without it a compiled program takes its inputs as a Brian2
        ``TimedArray``, connects its synapses from arrays (compiled in: another connectivity is another
        program) and has Brian2's monitors only.
    """

    batch: bool = False
    chunks: bool = False
    compiled_gradients: bool = False
    in_trial: bool = False
    threads: bool = False
    ahead_of_time: bool = False
    neuron_models: bool = False
    nest_plasticity: bool = False
    cpp_functions: bool = False

    def names(self) -> list[str]:
        """The names of the capabilities this device has."""
        return [f.name for f in fields(self) if getattr(self, f.name)]


@dataclass(frozen=True)
class DeviceInfo:
    """A simulation device: its name, what it can do and what it needs.

    Attributes
    ----------
    name : str
        The value of ``simulation.device``.
    summary : str
        A few words for the user.
    capabilities : Capabilities
        What it can do.
    needs_compiler : bool
        Whether it needs a working C++ compiler and ``make``.
    needs_gpu : bool
        Whether it needs an NVIDIA GPU with its driver and the CUDA toolkit (``nvcc``) to compile and run
        (not to generate its code).
    package : str
        A Python package it needs beyond neuroplast's own dependencies (``""``: none), importable under
        this name.
    extra : str
        The optional extra of neuroplast that installs ``package`` (``pip install 'neuroplast[EXTRA]'``).
    preference : int
        ``auto`` picks the available device with the highest preference.
    simulator : str
        ``"module:attribute"`` of a factory ``(setup) -> Simulator`` (:class:`neuroplast.build.Setup`,
        :class:`neuroplast.model.simulator.Simulator`) for a device that Brian2 does not simulate;
        ``""``: the Brian2 network (:mod:`neuroplast.network`).
    """

    name: str
    summary: str
    capabilities: Capabilities
    needs_compiler: bool = False
    needs_gpu: bool = False
    package: str = ""
    extra: str = ""
    preference: int = 0
    simulator: str = ""


def _check(obj: object, name: str) -> None:
    if not isinstance(obj, DeviceInfo):
        raise TypeError(f"device {name!r} is not a neuroplast.devices.DeviceInfo")


#: Name → :class:`DeviceInfo` (third-party devices: ``register_device``; the ``neuroplast.devices``
#: entry-point group, whose implementation must also be known to :mod:`neuroplast.network`).
DEVICES: Registry[DeviceInfo] = Registry("device", group="neuroplast.devices", check=_check)


def register_device(info: DeviceInfo) -> DeviceInfo:
    """Add a device to :data:`DEVICES` (a duplicate name raises ``ValueError``)."""
    if info.name.strip().lower() == AUTO:
        raise ValueError(f"{AUTO!r} is not a device name (it picks one)")
    return DEVICES.register(info.name, info)


def device_names() -> tuple[str, ...]:
    """The values ``simulation.device`` accepts: ``auto`` and every registered device."""
    return (AUTO, *DEVICES.names())


def device_info(name: str) -> DeviceInfo:
    """The device registered as ``name``; an unknown name is a :class:`ConfigError` naming the key."""
    try:
        return DEVICES.get(name)
    except KeyError:
        raise ConfigError(
            f"simulation.device: unknown device {name!r} (known: {', '.join(device_names())})"
        ) from None


def load_simulator(info: DeviceInfo) -> Callable[[Any], Any]:
    """The factory ``(setup) -> Simulator`` of a device with a simulator of its own.

    A factory that cannot be imported is a one-line :class:`ConfigError` naming ``simulation.device``.
    """
    if not info.simulator:
        raise ValueError(f"device {info.name!r} is simulated by Brian2 (neuroplast.network), not a factory")
    module, _, attr = info.simulator.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"simulation.device: the simulator {info.simulator!r} of device {info.name!r} does not load "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if not callable(obj):
        raise ConfigError(
            f"simulation.device: the simulator {info.simulator!r} of {info.name!r} is not callable"
        )
    return obj


def require(info: DeviceInfo, capability: str, key: str, what: str) -> None:
    """Raise a one-line :class:`ConfigError` naming ``key`` if ``info`` lacks ``capability``.

    Parameters
    ----------
    info : DeviceInfo
        The device in use.
    capability : str
        A field of :class:`Capabilities`.
    key : str
        The config key (or argument) that asks for it, e.g. ``"simulation.threads"``.
    what : str
        What was asked for, in a few words (``"> 1 threads"``).
    """
    if not getattr(info.capabilities, capability):
        able = [d for d in DEVICES.names() if getattr(DEVICES.get(d).capabilities, capability)]
        raise ConfigError(
            f"{key}: {what} needs a device with {capability.replace('_', ' ')} "
            f"({', '.join(able) or 'none registered'}; got {info.name!r})"
        )


def installed(info: DeviceInfo) -> bool:
    """Whether the Python package that ``info`` needs (:attr:`DeviceInfo.package`) can be imported here
    (looked up, not imported)."""
    if not info.package:
        return True
    try:
        return importlib.util.find_spec(info.package) is not None
    except (ImportError, ValueError):
        return False


def require_installed(info: DeviceInfo) -> None:
    """Raise a one-line :class:`ConfigError` naming ``simulation.device`` and the extra to install if the
    package that ``info`` needs is not installed (:func:`installed`)."""
    if installed(info):
        return
    python = ".".join(map(str, sys.version_info[:3]))
    raise ConfigError(
        f"simulation.device: {info.name!r} needs the Python package {info.package}, which is not installed "
        f"in this Python ({python}); install neuroplast's {info.extra!r} extra: pip install "
        f"'neuroplast[{info.extra}]' (docs/configs.md, \"GPU (brian2cuda)\": the Pythons it installs on)"
    )


register_device(
    DeviceInfo(
        "runtime",
        "Brian2's runtime device (Cython code, compiled per code object at the first run)",
        Capabilities(batch=True, in_trial=True, neuron_models=True),
    )
)
register_device(
    DeviceInfo(
        "cpp_standalone",
        "a compiled C++ program (Brian2's standalone mode; neuroplast's device subclass)",
        Capabilities(
            batch=True,
            chunks=True,
            compiled_gradients=True,
            in_trial=True,
            threads=True,
            ahead_of_time=True,
            neuron_models=True,
            cpp_functions=True,
        ),
        needs_compiler=True,
        preference=10,
    )
)
register_device(
    DeviceInfo(
        "cuda_standalone",
        "a compiled CUDA program on an NVIDIA GPU (brian2cuda's standalone mode; neuroplast's device "
        "subclass): one trial or one batch side by side per launch, online gradients; its code generation "
        "is checked, it has not yet been run on a GPU",
        Capabilities(batch=True, ahead_of_time=True),
        needs_compiler=True,
        needs_gpu=True,
        package="brian2cuda",
        extra="cuda",
        preference=5,
    )
)
register_device(
    DeviceInfo(
        "numpy",
        "the NumPy reference of docs/model.md in this process, one trial at a time (exact; slow at size)",
        Capabilities(in_trial=True, neuron_models=True),
        preference=-10,
        simulator="neuroplast.plasticity.reference:NumpySimulator.of",
    )
)
register_device(
    DeviceInfo(
        "nest-current",
        "NEST 3.10's current e-prop models (eprop_iaf, eprop_readout, eprop_synapse, weight_optimizer) "
        "in NumPy, exactly: weights change during each sequence, state kept across sequences ([nest])",
        Capabilities(nest_plasticity=True),
        preference=-20,
        simulator="neuroplast.plasticity.nest_simulator:NestCurrentSimulator.of",
    )
)
