"""Bad input at the front door: every config key refuses wrong types and non-finite or oversized values
with one line naming the key; command-line argument errors are one line; output problems are found before
anything is built; ``python -m neuroplast`` works; a closed output pipe ends quietly."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

from neuroplast.config import (
    ConfigError,
    NetworkConfig,
    SimulationConfig,
    TrainingConfig,
    check_size,
    estimate_memory,
    load_config,
    parse_config,
)
from neuroplast.tasks import TASKS
from tests.helpers import ROOT  # noqa: E402

MODELS = {
    name: tomllib.loads((ROOT / "models" / f"{name}.toml").read_text())
    for name in ("sine", "evidence", "nest_sine", "nest_evidence")
}
TABLES = {"simulation": SimulationConfig, "network": NetworkConfig, "training": TrainingConfig}


def _bad_values(tp: typing.Any) -> list[typing.Any]:
    """Values of the wrong type, non-finite or beyond 64 bits for a field of type ``tp``."""
    if typing.get_origin(tp) in (tuple, list):
        (inner,) = typing.get_args(tp)[:1]
        return ["not a list"] + [[v] for v in _bad_values(inner)]
    return {
        float: [math.inf, -math.inf, math.nan, "1.0", True],
        int: [2**70, -(2**70), 1.5, "3", True],
        str: [5, 1.0, True],
        bool: ["yes", 1],
    }[tp]


def _cases() -> list[tuple[str, str, str, typing.Any]]:
    cases = []
    for model, data in MODELS.items():
        tables = dict(TABLES)
        tables["task"] = TASKS.get(data["task"]["name"]).Params
        for table, cls in tables.items():
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                for value in _bad_values(hints[f.name]):
                    cases.append((model, table, f.name, value))
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    ("model", "table", "key", "value"), CASES, ids=[f"{c[0]}-{c[1]}.{c[2]}={c[3]!r}" for c in CASES]
)
def test_every_key_refuses_bad_values(model: str, table: str, key: str, value: typing.Any) -> None:
    data = copy.deepcopy(MODELS[model])
    data.setdefault(table, {})[key] = value
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{table}.{key}"), msg


def test_table_covers_every_key() -> None:
    """The table holds every key of every table (it cannot silently miss one), floats with inf and nan."""
    keys = {(t, k) for _, t, k, _ in CASES}
    assert len(keys) >= 45 and len(CASES) >= 250
    nonfinite = {(t, k) for _, t, k, v in CASES if isinstance(v, float) and not math.isfinite(v)}
    for key in [("training", "learning_rate"), ("network", "w_in_scale"), ("simulation", "dt_ms")]:
        assert key in nonfinite


#: Values of the NEST-compatible keys (docs/validation.md) that are the right type but not allowed:
#: (model, {table: {key: value}}, the key the one-line message must start with).
NEST_ROWS = [
    ("sine", {"network": {"init": "no_such_init"}}, "network.init: unknown initializer 'no_such_init'"),
    ("nest_sine", {"network": {"p_in": 0.5}}, "network.p_in: the 'nest-sine' initializer connects all"),
    ("nest_sine", {"network": {"p_rec": 0.9}}, "network.p_rec: the 'nest-sine' initializer connects all"),
    (
        "sine",
        {"training": {"update_every_steps": 10}, "network": {"readout_bias": False}},
        "network.readout_bias:",
    ),
    ("nest_sine", {"task": {"spike_prob": 1.5}}, "task.spike_prob: must be in [0, 1] (got 1.5)"),
    ("nest_sine", {"task": {"spike_prob": -0.1}}, "task.spike_prob: must be in [0, 1]"),
    ("nest_sine", {"task": {"periods_steps": []}}, "task.periods_steps: must list at least one period"),
    ("nest_sine", {"task": {"periods_steps": [1000, 0]}}, "task.periods_steps: must be > 0 (got 0)"),
    ("nest_sine", {"task": {"n_in": 0}}, "task.n_in: must be > 0"),
    ("nest_sine", {"network": {"n_out": 2}}, "network.n_out: the nest-sine task has 1 output (got 2)"),
    (
        "nest_sine",
        {"training": {"loss": "cross_entropy"}},
        "training.loss: the nest-sine task is a regression",
    ),
]


@pytest.mark.parametrize(
    ("model", "changes", "start"), NEST_ROWS, ids=[r[2].split(":")[0] for r in NEST_ROWS]
)
def test_nest_keys_refuse_values_they_cannot_take(model: str, changes: dict, start: str) -> None:
    data = copy.deepcopy(MODELS[model])
    for table, values in changes.items():
        data.setdefault(table, {}).update(values)
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(start), msg


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [("network", "n_rec", 10**9), ("simulation", "n_steps", 10**9), ("task", "n_in", 10**9)],
)
def test_sizes_that_cannot_fit_are_refused_naming_the_key(table: str, key: str, value: int) -> None:
    data = copy.deepcopy(MODELS["sine"])
    data[table][key] = value
    with pytest.raises(
        ConfigError, match=rf"^{table}\.{key}: {value} makes the run need about .* of memory; "
    ):
        parse_config(data)


@pytest.mark.e2e
def test_iterations_whose_log_cannot_fit_are_refused_before_building(tmp_path: Path) -> None:
    cfg = tmp_path / "huge.toml"
    cfg.write_text(
        (ROOT / "models" / "sine.toml")
        .read_text()
        .replace("iterations = 40", "iterations = 1000000000000000")
    )
    proc = _cli("run", cfg, "--out", tmp_path / "run.h5", cwd=tmp_path)
    _assert_one_line(proc, "training.iterations: 1000000000000000 iterations make a run log of at least")
    assert not (tmp_path / "run.h5").exists()


def test_log_estimate_grows_with_iterations_and_fits_the_default_model(tmp_path: Path) -> None:
    from neuroplast.config import check_log_size, estimate_log_bytes

    cfg = load_config(ROOT / "models" / "sine.toml")
    one = estimate_log_bytes(cfg, 1)
    assert 1e4 < one < 1e7 and estimate_log_bytes(cfg, 10) == pytest.approx(10 * one, rel=1e-12)
    check_log_size(cfg, tmp_path)  # 40 iterations: megabytes, fits
    with pytest.raises(ConfigError, match=r"^training\.iterations: "):
        check_log_size(cfg, tmp_path, iterations=10**15)


def test_memory_estimate_scales_and_can_accept() -> None:
    cfg = load_config(ROOT / "models" / "sine.toml")
    small = estimate_memory(cfg)
    assert 1e6 < small < 1e9  # the default model needs megabytes
    big = cfg.replace("network", n_rec=1000)
    assert estimate_memory(big) > 10 * small  # synapses grow as n_rec²
    check_size(cfg, available=int(small) + 1)  # fits: no error
    with pytest.raises(ConfigError, match=r"^network\.n_rec: 100 makes the run need"):
        check_size(cfg, available=int(small) - 1)


def _cli(*args: str | Path, cwd: Path, module: str = "neuroplast") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("run", "CONFIG", "--iterations", "abc"), ("--iterations", "invalid int")),
        (("run",), ("required", "config")),
        (("frobnicate",), ("invalid choice", "frobnicate")),
        (("compare",), ("required",)),
        (("plot", "x.h5", "--trial", "one"), ("--trial",)),
    ],
)
def test_argument_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    args = tuple(str(ROOT / "models" / "sine.toml") if a == "CONFIG" else a for a in args)
    _assert_one_line(_cli(*args, cwd=tmp_path), *words)


@pytest.mark.e2e
def test_python_dash_m_neuroplast(tmp_path: Path) -> None:
    proc = _cli("--help", cwd=tmp_path)
    assert proc.returncode == 0 and "inspect" in proc.stdout


@pytest.mark.e2e
def test_unreadable_config(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    cfg = tmp_path / "secret.toml"
    cfg.write_text((ROOT / "models" / "sine.toml").read_text())
    cfg.chmod(0)
    _assert_one_line(_cli("run", cfg, cwd=tmp_path), "secret.toml", "cannot read")


def test_unreadable_config_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check without relying on file permissions (root reads everything)."""
    cfg = tmp_path / "secret.toml"
    cfg.write_text("")

    def deny(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(ConfigError, match=r"secret\.toml: cannot read the config file \(Permission denied\)"):
        load_config(cfg)


def test_directory_as_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_config(tmp_path)


@pytest.mark.e2e
def test_unwritable_output_folder_found_before_building(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    proc = _cli("run", ROOT / "models" / "sine.toml", "--out", folder / "run.h5", cwd=tmp_path)
    _assert_one_line(proc, str(folder), "not writable")


def test_unwritable_output_folder_in_process(tmp_path: Path, monkeypatch, capsys) -> None:
    """The same check without relying on permissions (root writes everywhere); nothing is built."""
    from neuroplast import cli

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    rc = cli.main(["run", str(ROOT / "models" / "sine.toml"), "--out", str(tmp_path / "run.h5")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "output folder is not writable" in err[0]
    assert "brian2" not in sys.modules or not (tmp_path / "run.h5").exists()


@pytest.mark.e2e
def test_output_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    proc = _cli("run", ROOT / "models" / "sine.toml", "--out", tmp_path / "file" / "run.h5", cwd=tmp_path)
    _assert_one_line(proc, "file")


_PIPE_CHILD = """
import sys
import neuroplast.cli as cli

def flood(args):
    for i in range(10**6):
        print("line", i)
    return 0

cli._cmd_cache = flood
sys.exit(cli.main(["cache"]))
"""


@pytest.mark.e2e
def test_a_closed_output_pipe_ends_quietly(tmp_path: Path) -> None:
    """``neuroplast … | head``: no BrokenPipeError traceback, exit status 141."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _PIPE_CHILD],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().startswith(b"line 0")
    proc.stdout.close()  # what `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err
