"""The device registry (neuroplast.devices): names, capabilities, ``auto``, and one-line refusals."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from neuroplast import devices
from neuroplast.devices import AUTO, DEVICES, Capabilities, DeviceInfo, device_info, device_names, require
from neuroplast.errors import ConfigError
from tests.helpers import ROOT


@pytest.fixture
def extra_device() -> Iterator[DeviceInfo]:
    """A registered device without Brian2 implementation and without most capabilities (removed after)."""
    info = DeviceInfo("test_gpu", "a device of this test", Capabilities(batch=True), preference=100)
    devices.register_device(info)
    yield info
    DEVICES._items.pop("test_gpu")


def test_builtin_devices_and_their_capabilities() -> None:
    assert {"runtime", "cpp_standalone"} <= set(device_names()) and device_names()[0] == AUTO
    cpp, runtime = device_info("cpp_standalone").capabilities, device_info("runtime").capabilities
    every = {"batch", "chunks", "compiled_gradients", "in_trial", "threads", "ahead_of_time", "neuron_models"}
    assert set(cpp.names()) == every | {"cpp_functions"}
    assert set(runtime.names()) == {"batch", "in_trial", "neuron_models"}
    numpy = device_info("numpy")
    assert numpy.capabilities.names() == ["in_trial", "neuron_models"]
    assert numpy.simulator and not numpy.needs_compiler


def test_auto_picks_a_device_with_what_the_run_needs(extra_device: DeviceInfo) -> None:
    """auto skips devices without a needed capability (the extra device, preferred but lacking
    neuron_models and unimplemented); a named device without it is one line naming simulation.device."""
    from neuroplast.network.devices import resolve_device

    info, _ = resolve_device("auto", ("neuron_models",), "neuron model 'lif_syn'")
    assert info.capabilities.neuron_models and info.name != extra_device.name
    assert resolve_device("auto")[0].name != "numpy"  # never the slow reference without a reason
    for capability in ("chunks", "threads"):
        with pytest.raises(ConfigError) as err:
            resolve_device("numpy", (capability,), "this test's run")
        msg = str(err.value)
        assert msg.startswith("simulation.device:") and "this test's run" in msg and "\n" not in msg


def test_unknown_device_is_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        device_info("opencl_standalone")
    msg = str(err.value)
    assert msg.startswith("simulation.device:") and "'opencl_standalone'" in msg and "\n" not in msg
    assert "cpp_standalone" in msg and "runtime" in msg  # the known names


def test_require_names_the_key_and_the_devices_that_can(extra_device: DeviceInfo) -> None:
    require(device_info("cpp_standalone"), "threads", "simulation.threads", "> 1 threads")  # has it
    with pytest.raises(ConfigError) as err:
        require(extra_device, "chunks", "simulation.chunk_iterations", "several iterations per launch")
    msg = str(err.value)
    assert msg.startswith("simulation.chunk_iterations:") and "'test_gpu'" in msg and "cpp_standalone" in msg


def test_auto_is_not_a_device_name() -> None:
    with pytest.raises(ValueError, match="not a device"):
        devices.register_device(DeviceInfo("Auto", "", Capabilities()))
    with pytest.raises(ValueError, match="already registered"):
        devices.register_device(DeviceInfo("runtime", "", Capabilities()))


def test_config_checks_the_device_and_its_capabilities() -> None:
    from neuroplast.config import SimulationConfig

    SimulationConfig(device="cpp_standalone", threads=2)
    SimulationConfig(device="auto", threads=2)  # auto: threads where the picked device has them
    with pytest.raises(ConfigError, match=r"^simulation\.threads: .*'runtime'"):
        SimulationConfig(device="runtime", threads=2)
    with pytest.raises(ConfigError, match=r"^simulation\.device: unknown device 'gpu'"):
        SimulationConfig(device="gpu")


def test_auto_picks_the_best_available_and_never_a_device_without_implementation(
    extra_device: DeviceInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    netdev = pytest.importorskip("neuroplast.network.devices")
    monkeypatch.setattr(netdev, "compiler_works", lambda: True)
    info, why = netdev.resolve_device("auto")  # test_gpu ranks higher but Brian2 has no implementation of it
    assert info.name == "cpp_standalone" and "compiler works" in why
    monkeypatch.setattr(netdev, "compiler_works", lambda: False)
    info, why = netdev.resolve_device("auto")
    assert info.name == "runtime" and "cpp_standalone" in why and "no working C++ compiler" in why
    with pytest.raises(ConfigError, match=r"^simulation\.device: 'test_gpu' has neither a Brian2 implem"):
        netdev.resolve_device("test_gpu")  # named: refused, not run on another device


def _device_literals() -> set[str]:
    return set(device_names()) | {"numpy"}


def _string_comparisons(path: Path, names: set[str]) -> Iterator[tuple[int, str]]:
    """(line, text) of every ``==``/``!=``/``in`` comparison in ``path`` with a device name as a literal."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            for part in parts:
                elts = part.elts if isinstance(part, ast.Tuple | ast.List | ast.Set) else [part]
                for e in elts:
                    if isinstance(e, ast.Constant) and e.value in names:
                        yield node.lineno, ast.unparse(node)


def test_no_device_name_comparisons_outside_the_registry() -> None:
    """Device-dependent code asks for capabilities; only the registry (neuroplast/devices.py) and the table
    that maps names to Brian2 (network/devices.py) may name devices."""
    names = _device_literals() - {AUTO}
    allowed = {ROOT / "neuroplast" / "devices.py", ROOT / "neuroplast" / "network" / "devices.py"}
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in sorted((ROOT / "neuroplast").rglob("*.py"))
        if path not in allowed
        for line, text in _string_comparisons(path, names)
    ]
    assert not found, "device names compared outside the registry:\n" + "\n".join(found)


def test_the_comparison_scan_finds_a_comparison(tmp_path: Path) -> None:
    """The scan above can fail: it finds the kind of comparison it forbids."""
    src = tmp_path / "x.py"
    src.write_text("def f(d):\n    return d == 'cpp_standalone' or d in ('runtime', 'x')\n")
    assert [line for line, _ in _string_comparisons(src, _device_literals())] == [2, 2]


# ------------------------------------------------------------------ a device with a simulator of its own


def test_the_numpy_device_is_named_never_picked_by_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """``numpy`` (the NumPy reference) runs where named; ``auto`` prefers any Brian2 device to it."""
    netdev = pytest.importorskip("neuroplast.network.devices")
    monkeypatch.setattr(netdev, "compiler_works", lambda: False)
    assert netdev.resolve_device("auto")[0].name == "runtime"
    assert netdev.resolve_device("numpy") == (device_info("numpy"), "as configured")
    from neuroplast.plasticity.reference import NumpySimulator

    assert devices.load_simulator(device_info("numpy")) == NumpySimulator.of


def test_the_numpy_device_refuses_what_it_cannot_do() -> None:
    """Threads need a capability the NumPy reference lacks: one line naming the key.  In-trial updates it
    has (the NumPy oracle, tests/training/test_numpy_device.py): that config is accepted."""
    from neuroplast.config import SimulationConfig, parse_config

    with pytest.raises(ConfigError, match=r"^simulation\.threads: .*'numpy'"):
        SimulationConfig(device="numpy", threads=2)
    cfg = parse_config(
        {
            "simulation": {"device": "numpy", "n_steps": 100},
            "network": {"n_rec": 5},
            "task": {"name": "sine", "n_in": 4},
            "training": {"update_every_steps": 10},
        }
    )
    assert cfg.training.update_every_steps == 10 and cfg.simulation.device == "numpy"


def test_a_simulator_that_does_not_load_is_one_line(extra_device: DeviceInfo) -> None:
    broken = DeviceInfo("test_broken", "", Capabilities(), simulator="neuroplast.no_such_module:Sim.of")
    with pytest.raises(
        ConfigError, match=r"^simulation\.device: the simulator .*'test_broken'.*ModuleNotFound"
    ):
        devices.load_simulator(broken)
    with pytest.raises(ValueError, match="simulated by Brian2"):
        devices.load_simulator(device_info("runtime"))


def test_a_run_on_the_numpy_device_trains_with_the_numpy_reference() -> None:
    """``simulation.device = "numpy"``: the trainer simulates with :class:`NumpySimulator` (nothing of Brian2
    built or compiled), one trial per launch, and says why."""
    from neuroplast.config import parse_config
    from neuroplast.plasticity.reference import NumpySimulator
    from neuroplast.training.trainer import Trainer

    cfg = parse_config(
        {
            "simulation": {"device": "numpy", "n_steps": 60, "seed": 2},
            "network": {"n_rec": 8, "w_in_scale": 0.05, "w_rec_scale": 0.02, "w_out_scale": 0.1},
            "task": {"name": "sine", "n_in": 6},
            "training": {"iterations": 2, "batch_size": 2, "learning_rate": 0.01},
        }
    )
    tr = Trainer.from_config(cfg)
    assert isinstance(tr.net, NumpySimulator) and tr.device == "numpy" and tr.chunk == 0
    assert "device numpy runs one iteration per launch" in tr.chunk_reason and not tr.compiles_first
    w0 = tr.weights.w_rec.copy()
    records = [tr.run_iteration() for _ in range(2)]
    assert [len(r.trials) for r in records] == [2, 2]
    assert not (tr.weights.w_rec == w0).all()  # it learned


def test_a_neuron_model_needs_a_device_that_runs_it(extra_device: DeviceInfo) -> None:
    """A device without ``neuron_models`` (this test's) refuses network.neuron = "lif_syn" in one line
    that names the key and the devices that can."""
    from neuroplast.config import parse_config

    data = {"simulation": {"device": extra_device.name}, "network": {"neuron": "lif_syn"}}
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    msg = str(err.value)
    assert msg.startswith("network.neuron:") and "lif_syn" in msg and "runtime" in msg and "\n" not in msg
    data["network"]["neuron"] = "alif"
    assert parse_config(data).network.neuron == "alif"


# ------------------------------------------------------------------ cuda_standalone (brian2cuda, optional)


def _without_brian2cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make brian2cuda look not installed (it is where the ``cuda`` extra is, on Python >= 3.12)."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "brian2cuda" else find_spec(name, *a)
    )


def test_cuda_standalone_is_registered_with_what_it_can_do() -> None:
    """One trial or one batch per launch, compiled ahead of time; no C++ functions of neuroplast's (no
    input table, synapse tables or records: TimedArray, arrays and Brian2's monitors), no chunks, compiled
    gradients, in-trial updates or threads; it needs brian2cuda (the ``cuda`` extra), a compiler and a GPU,
    and ranks below cpp_standalone."""
    cuda = device_info("cuda_standalone")
    assert set(cuda.capabilities.names()) == {"batch", "ahead_of_time"}
    assert (cuda.package, cuda.extra, cuda.needs_compiler, cuda.needs_gpu) == (
        "brian2cuda",
        "cuda",
        True,
        True,
    )
    assert device_info("runtime").preference < cuda.preference < device_info("cpp_standalone").preference


def test_auto_never_picks_cuda_standalone_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    netdev = pytest.importorskip("neuroplast.network.devices")
    monkeypatch.setattr(netdev, "gpu_works", lambda: False)
    for works in (True, False):
        monkeypatch.setattr(netdev, "compiler_works", lambda works=works: works)
        assert not netdev.available(device_info("cuda_standalone"))
        assert netdev.resolve_device("auto")[0].name == ("cpp_standalone" if works else "runtime")


def test_cuda_standalone_without_brian2cuda_is_one_line_naming_the_key_and_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """Named without brian2cuda installed: one line naming simulation.device and the extra to install —
    from the device's resolution, from a network built on it, and from ``neuroplast run`` (exit 2, no log)."""
    netdev = pytest.importorskip("neuroplast.network.devices")
    _without_brian2cuda(monkeypatch)
    assert not devices.installed(device_info("cuda_standalone"))
    with pytest.raises(ConfigError) as err:
        netdev.resolve_device("cuda_standalone")
    msg = str(err.value)
    assert msg.startswith("simulation.device: 'cuda_standalone' needs the Python package brian2cuda")
    assert "pip install 'neuroplast[cuda]'" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match=r"^simulation\.device: 'cuda_standalone' needs .*brian2cuda"):
        netdev.brian2_device("cuda_standalone")
    from neuroplast import cli

    text = (
        (ROOT / "models" / "sine.toml").read_text().replace('device = "auto"', 'device = "cuda_standalone"')
    )
    (tmp_path / "cuda.toml").write_text(text)
    out = tmp_path / "run.h5"
    rc = cli.main(["run", str(tmp_path / "cuda.toml"), "--out", str(out), "--iterations", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists() and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]  # after the line that says the network is being built
    assert "simulation.device: 'cuda_standalone'" in last and "neuroplast[cuda]" in last
