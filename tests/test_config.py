"""TOML configs → validated frozen dataclasses: shipped models load, every bad value is a one-line
:class:`ConfigError` naming the key (or the file), and ``to_toml`` round-trips.

Fast: nothing here imports Brian2.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

from neuroplast.config import (
    EXECUTION_KEYS,
    Config,
    ConfigError,
    NestConfig,
    NetworkConfig,
    SimulationConfig,
    TrainingConfig,
    load_config,
    parse_config,
    to_toml,
)
from neuroplast.tasks import TASKS
from neuroplast.tasks.evidence import EvidenceTask
from neuroplast.tasks.nest import NestCurrentSineTask, NestEvidenceTask, NestSineTask
from neuroplast.tasks.sine import SineTask
from tests.helpers import EVIDENCE, MODELS, ROOT, SINE


def _raw(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _error(data: dict) -> str:
    """The message of the ConfigError that ``parse_config(data)`` raises (checked to be one line)."""
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    msg = str(info.value)
    assert msg and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    return msg


def _modified(base: Path, table: str, **changes) -> dict:
    data = copy.deepcopy(_raw(base))
    data.setdefault(table, {}).update(changes)
    return data


def _assert_names_key(msg: str, key: str) -> None:
    assert msg.startswith((f"{key}:", f"{key}[")), f"message does not start with {key!r}: {msg!r}"


# ------------------------------------------------------------------ shipped models
def test_sine_model_loads() -> None:
    cfg = load_config(SINE)
    assert isinstance(cfg, Config)
    assert isinstance(cfg.task, SineTask.Params)
    assert cfg.network.n_out == 1 and cfg.training.loss == "mse"
    assert cfg.task.periods_ms == (1000.0, 500.0, 333.0, 200.0)
    assert cfg.source == str(SINE)


def test_evidence_model_loads() -> None:
    cfg = load_config(EVIDENCE)
    assert isinstance(cfg.task, EvidenceTask.Params)
    n, t, tr, sim = cfg.network, cfg.task, cfg.training, cfg.simulation
    assert TASKS.get("evidence").kind == "classification"
    assert tr.loss == "cross_entropy" and tr.optimizer == "adam"
    assert n.n_out == 2 and n.n_rec == 100 and n.n_alif == 50
    assert t.n_in % 4 == 0
    need = (t.n_cues * (t.cue_ms + t.gap_ms) + t.recall_ms) / sim.dt_ms
    assert need <= sim.n_steps <= 1000  # scaled for a quick run
    assert n.beta > 0 and n.tau_a_ms == 2000.0
    assert tr.reg_coeff > 0 and tr.reg_rate_hz == 10.0


@pytest.mark.parametrize(
    "path", sorted(p for p in MODELS.glob("*.toml") if not p.name.startswith("sweep")), ids=lambda p: p.name
)
def test_every_shipped_model_is_within_the_bounds(path: Path) -> None:
    assert load_config(path).source == str(path)


@pytest.mark.parametrize("name", ["TINY_TOML", "LONG_TOML", "SMALL_EVIDENCE_TOML", "IN_TRIAL_TOML", "cpp"])
def test_every_test_config_is_within_the_bounds(name: str) -> None:
    import tests.helpers as h

    text = h.long_cpp_toml(4) if name == "cpp" else getattr(h, name)
    parse_config(tomllib.loads(text), check_resources=False)


def test_empty_config_uses_defaults() -> None:
    cfg = parse_config({})
    assert cfg.simulation == SimulationConfig()
    assert cfg.network == NetworkConfig()
    assert cfg.training == TrainingConfig()
    assert cfg.task == SineTask.Params()


def test_configs_are_frozen() -> None:
    cfg = load_config(SINE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.network.n_rec = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.task.n_in = 3  # type: ignore[misc]


def test_loading_does_not_import_brian2() -> None:
    code = f"import sys; from neuroplast.config import load_config; load_config({str(EVIDENCE)!r}); "
    code += "print('brian2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ unknown keys and tables
@pytest.mark.parametrize(
    ("base", "table"),
    [
        (SINE, "simulation"),
        (SINE, "network"),
        (SINE, "task"),
        (SINE, "training"),
        (EVIDENCE, "task"),
    ],
)
def test_unknown_key_in_each_table(base: Path, table: str) -> None:
    msg = _error(_modified(base, table, bogus_key=1))
    _assert_names_key(msg, f"{table}.bogus_key")
    assert "unknown key" in msg


def test_unknown_table() -> None:
    data = _raw(SINE)
    data["netwrok"] = {"n_rec": 3}
    msg = _error(data)
    _assert_names_key(msg, "netwrok")
    assert "unknown table" in msg


def test_top_level_scalar_is_unknown_table() -> None:
    data = _raw(SINE)
    data["seed"] = 3
    _assert_names_key(_error(data), "seed")


def test_table_that_is_not_a_table() -> None:
    data = _raw(SINE)
    data["network"] = 3
    msg = _error(data)
    _assert_names_key(msg, "network")
    assert "table" in msg


# ------------------------------------------------------------------ types
@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("network", "tau_m_ms", "30"),  # string for a float
        ("simulation", "dt_ms", "1.0"),
        ("network", "n_rec", 100.0),  # float for an int
        ("simulation", "n_steps", 1000.5),
        ("simulation", "seed", 1.0),
        ("network", "v_th", True),  # bool for a number
        ("network", "n_ref", False),
        ("training", "learning_rate", True),
        ("training", "train_output", 1),  # number for a bool
        ("training", "optimizer", 3),  # number for a string
        ("network", "surrogate", ["piecewise_linear"]),
        ("task", "periods_ms", 1000.0),  # scalar for a list
        ("task", "periods_ms", [1000.0, "500"]),  # bad element
    ],
)
def test_wrong_type(table: str, key: str, value) -> None:
    msg = _error(_modified(SINE, table, **{key: value}))
    _assert_names_key(msg, f"{table}.{key}")
    assert "must be" in msg


def test_int_accepted_for_float() -> None:
    cfg = parse_config(_modified(SINE, "network", tau_m_ms=25))
    assert cfg.network.tau_m_ms == 25.0 and isinstance(cfg.network.tau_m_ms, float)


# ------------------------------------------------------------------ ranges
@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("network", "tau_m_ms", -3.0),
        ("network", "tau_m_ms", 0.0),
        ("network", "tau_a_ms", -1.0),
        ("network", "tau_out_ms", 0),
        ("network", "v_th", 0.0),
        ("network", "n_ref", -1),
        ("network", "n_rec", 0),
        ("network", "n_alif", -1),
        ("network", "beta", -0.1),
        ("network", "gamma", 0.0),
        ("network", "p_rec", 0.0),
        ("network", "p_rec", 1.5),
        ("network", "p_in", -0.5),
        ("network", "w_in_scale", -1.0),
        ("simulation", "dt_ms", 0.0),
        ("simulation", "n_steps", 0),
        ("simulation", "seed", -1),
        ("training", "learning_rate", 0.0),
        ("training", "iterations", 0),
        ("training", "batch_size", -2),
        ("training", "reg_coeff", -1.0),
        ("training", "adam_beta1", 1.0),
        ("training", "adam_beta2", 1.5),
        ("training", "adam_eps", 0.0),
        ("task", "n_in", 0),
        ("task", "rate_hz", -50.0),
        ("task", "periods_ms", [1000.0, -5.0]),
        ("task", "periods_ms", []),
        ("network", "tau_m_ms", float("nan")),
    ],
)
def test_out_of_range(table: str, key: str, value) -> None:
    msg = _error(_modified(SINE, table, **{key: value}))
    _assert_names_key(msg, f"{table}.{key}")
    assert "must" in msg


def test_negative_tau_message() -> None:
    msg = _error(_modified(SINE, "network", tau_m_ms=-3))
    assert msg == "network.tau_m_ms: must be > 0 (got -3.0)"


# ------------------------------------------------------------------ physical bounds (docs/configs.md)
@pytest.mark.parametrize(
    ("base", "table", "changes", "key", "words"),
    [
        (SINE, "simulation", {"dt_ms": 1e-300}, "simulation.dt_ms", "must be in [0.001, 1000]"),
        (SINE, "simulation", {"dt_ms": 1e306}, "simulation.dt_ms", "must be in [0.001, 1000]"),
        (SINE, "simulation", {"dt_ms": 1e300}, "simulation.dt_ms", "must be in"),
        (SINE, "simulation", {"dt_ms": 9e-4}, "simulation.dt_ms", "must be in"),
        (SINE, "simulation", {"dt_ms": 1000.5}, "simulation.dt_ms", "must be in"),
        (SINE, "network", {"tau_m_ms": 1e-300}, "network.tau_m_ms", "must be in [0.001, 1e+09]"),
        (SINE, "network", {"tau_m_ms": 1e300}, "network.tau_m_ms", "must be in"),
        (SINE, "network", {"tau_a_ms": 1.1e9}, "network.tau_a_ms", "must be in"),
        (SINE, "network", {"tau_out_ms": 1e-4}, "network.tau_out_ms", "must be in"),
        (SINE, "task", {"rate_hz": 1e9}, "task.rate_hz", "more than one spike per time step"),
        (SINE, "task", {"rate_hz": 1000.5}, "task.rate_hz", "must be <= 1000 Hz"),
        (EVIDENCE, "task", {"cue_rate_hz": 2e3}, "task.cue_rate_hz", "more than one spike per time step"),
        (EVIDENCE, "task", {"noise_rate_hz": 1e12}, "task.noise_rate_hz", "more than one spike"),
        (SINE, "training", {"reg_rate_hz": 1e4}, "training.reg_rate_hz", "more than one spike"),
        (SINE, "network", {"n_ref": 10**9}, "network.n_ref", "longer than a trial"),
        (SINE, "network", {"n_ref": 1001}, "network.n_ref", "simulation.n_steps (1000)"),
    ],
)
def test_physical_bounds(base: Path, table: str, changes: dict, key: str, words: str) -> None:
    msg = _error(_modified(base, table, **changes))
    _assert_names_key(msg, key)
    assert words in msg, msg


def test_rate_bound_follows_the_time_step() -> None:
    """500 Hz is one spike per step at dt = 2 ms (accepted), 1000 Hz is not; at dt = 1 ms both are."""
    data = _modified(SINE, "simulation", dt_ms=2.0)
    data["task"]["rate_hz"] = 500.0
    assert parse_config(data).task.rate_hz == 500.0
    data["task"]["rate_hz"] = 1000.0
    _assert_names_key(_error(data), "task.rate_hz")
    assert parse_config(_modified(SINE, "task", rate_hz=1000.0)).task.rate_hz == 1000.0


@pytest.mark.parametrize(
    ("table", "changes"),
    [
        ("simulation", {"dt_ms": 1e-3}),  # the edges of each bound are accepted
        ("simulation", {"dt_ms": 1e3}),
        ("network", {"tau_m_ms": 1e-3, "tau_a_ms": 1e9, "tau_out_ms": 1e9}),
        ("network", {"n_ref": 1000}),  # = simulation.n_steps
    ],
)
def test_physical_bounds_accept_their_edges(table: str, changes: dict) -> None:
    data = _modified(SINE, table, **changes)
    if changes.get("dt_ms") == 1e3:  # one step per second: at most 1 Hz
        data["task"]["rate_hz"] = 1.0
        data["training"]["reg_rate_hz"] = 1.0
    cfg = parse_config(data)
    assert all(getattr(getattr(cfg, table), k) == v for k, v in changes.items())


@pytest.mark.parametrize(
    ("section", "changes", "key"),
    [
        ("simulation", {"dt_ms": 2.0}, "task.rate_hz"),  # 600 Hz is more than one spike per 2 ms step
        ("network", {"n_ref": 5000}, "network.n_ref"),
        ("simulation", {"n_steps": 2}, "network.n_ref"),  # a trial of 2 steps, 3 refractory steps
    ],
)
def test_replace_checks_physical_bounds(section: str, changes: dict, key: str) -> None:
    data = _modified(SINE, "task", rate_hz=600.0)  # both fine at dt = 1 ms and 1000 steps
    data["network"]["n_ref"] = 3
    cfg = parse_config(data)
    with pytest.raises(ConfigError) as info:
        cfg.replace(section, **changes)
    _assert_names_key(str(info.value), key)


def test_n_alif_larger_than_n_rec() -> None:
    msg = _error(_modified(SINE, "network", n_rec=10, n_alif=11))
    _assert_names_key(msg, "network.n_alif")
    assert "n_rec" in msg


# ------------------------------------------------------------------ registry names
@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("network", "surrogate", "no_such_surrogate"),
        ("training", "loss", "no_such_loss"),
        ("training", "optimizer", "no_such_optimizer"),
        ("training", "rule", "no_such_rule"),
        ("training", "path", "no_such_path"),
        ("simulation", "device", "no_such_device"),
        ("task", "name", "no_such_task"),
        ("network", "init", "no_such_init"),
    ],
)
def test_unknown_name(table: str, key: str, value: str) -> None:
    msg = _error(_modified(SINE, table, **{key: value}))
    _assert_names_key(msg, f"{table}.{key}")
    assert repr(value) in msg


def test_unknown_name_lists_known_names() -> None:
    msg = _error(_modified(SINE, "training", optimizer="adamw"))
    assert "adam" in msg and "sgd" in msg


# ------------------------------------------------------------------ task cross-checks
def test_evidence_n_in_multiple_of_4() -> None:
    msg = _error(_modified(EVIDENCE, "task", n_in=42))
    _assert_names_key(msg, "task.n_in")
    assert "multiple of 4" in msg


@pytest.mark.parametrize(("base", "n_out"), [(EVIDENCE, 1), (EVIDENCE, 3), (SINE, 2)])
def test_wrong_n_out_for_task(base: Path, n_out: int) -> None:
    msg = _error(_modified(base, "network", n_out=n_out))
    _assert_names_key(msg, "network.n_out")


@pytest.mark.parametrize(("base", "loss"), [(EVIDENCE, "mse"), (SINE, "cross_entropy")])
def test_wrong_loss_for_task(base: Path, loss: str) -> None:
    _assert_names_key(_error(_modified(base, "training", loss=loss)), "training.loss")


def test_evidence_trial_longer_than_n_steps() -> None:
    msg = _error(_modified(EVIDENCE, "simulation", n_steps=100))
    _assert_names_key(msg, "simulation.n_steps")


@pytest.mark.parametrize(
    ("base", "name", "need"),
    # steps: evidence.toml 3 cues × (100 + 50) ms + 150 ms recall, dt 1 ms; nest_evidence.toml 7 × 150 + 150
    [(EVIDENCE, "evidence", 600), (MODELS / "nest_evidence.toml", "nest-evidence", 1200)],
)
def test_both_evidence_tasks_share_their_checks(base: Path, name: str, need: int) -> None:
    """Both evidence tasks run one set of checks (tasks.evidence.check_evidence_config) naming their task."""
    assert f"the {name} task has 2 outputs" in _error(_modified(base, "network", n_out=3))
    assert f"the {name} task needs 'cross_entropy'" in _error(_modified(base, "training", loss="mse"))
    _assert_names_key(_error(_modified(base, "task", n_in=42)), "task.n_in")
    assert f"cues and recall need {need} steps" in _error(_modified(base, "simulation", n_steps=100))


def test_evidence_keys_do_not_apply_to_sine() -> None:
    msg = _error(_modified(SINE, "task", n_cues=3))
    _assert_names_key(msg, "task.n_cues")


# ------------------------------------------------------------------ files
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "no_such.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg


def _socket(path: Path) -> Path:
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the socket file stays
    return path


def _dangling(path: Path) -> Path:
    path.symlink_to(path.with_name("gone.toml"))
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: Path("/dev/zero"), "/dev/zero: is a character device, not a config file"),
        (lambda tmp: _socket(tmp / "s.toml"), "is a socket, not a config file"),
        (lambda tmp: _dangling(tmp / "dangling.toml"), "dangling.toml: is a symbolic link to a missing file"),
    ],
    ids=["char-device", "socket", "dangling-link"],
)
def test_config_that_is_not_a_file_says_what_it_is(tmp_path: Path, make, words: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert words in msg and "\n" not in msg and "not found" not in msg, msg


def test_config_from_a_pipe_is_read(tmp_path: Path) -> None:
    """A FIFO (what ``neuroplast run <(sed ... models/sine.toml)`` passes) is read to its end."""
    import os
    import threading

    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(SINE.read_bytes(),), daemon=True)
    writer.start()
    cfg = load_config(fifo)
    writer.join(timeout=10)
    assert cfg.simulation == load_config(SINE).simulation and cfg.task == load_config(SINE).task


def test_folder_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "[network\nn_rec = 3\n",
        "[network]\nn_rec = \n",
        "[network]\nn_rec = 3\nn_rec = 4\n",
        '[network]\nsurrogate = "unterminated\n',
    ],
)
def test_invalid_toml_names_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:") and "TOML" in msg


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n[network]\nn_rec = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:")


def test_bad_value_in_file_names_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SINE.read_text(encoding="utf-8").replace("tau_m_ms = 30.0", "tau_m_ms = -3.0"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "network.tau_m_ms: must be > 0 (got -3.0)"


# ------------------------------------------------------------------ round trip
# models/sweep_*.toml are sweep files (tests/sweep), not configs
@pytest.mark.parametrize(
    "path", sorted(p for p in MODELS.glob("*.toml") if not p.name.startswith("sweep_")), ids=lambda p: p.name
)
def test_to_toml_round_trip(path: Path) -> None:
    cfg = load_config(path)
    text = to_toml(cfg)
    again = parse_config(tomllib.loads(text), cfg.source)
    assert again == cfg
    assert to_toml(again) == text


def test_to_toml_round_trip_awkward_values() -> None:
    cfg = parse_config(
        {
            "training": {"learning_rate": 1e-8, "rule": "eprop-random", "train_output": False},
            "network": {"beta": 0.1 + 0.2, "n_rec": 7, "n_alif": 3, "v_th": 123456789.123},
            "task": {"name": "sine", "periods_ms": [7.0]},
        }
    )
    again = parse_config(tomllib.loads(to_toml(cfg)))
    assert again == cfg
    assert again.network.beta == 0.1 + 0.2  # exact floats


#: Keys added after run logs existed: written only when not at their default (the config text of a run
#: log of a config that does not use them stays what it was, and --resume of an older log still matches).
NEW_KEYS = {
    ("network", "readout_bias"),
    ("network", "init"),
    ("training", "average_gradient"),
    ("network", "neuron"),
    ("network", "tau_syn_ms"),
    ("network", "tau_w_ms"),
    ("network", "adapt_a"),
    ("network", "adapt_b"),
    ("training", "train_recurrent"),
    ("training", "stop_error"),
    ("training", "stop_window"),
}


def test_to_toml_writes_every_key() -> None:
    """Every key, except the execution keys at their default (so that run logs keep their content)."""
    cfg = load_config(SINE)
    data = tomllib.loads(to_toml(cfg))
    for section in ("simulation", "network", "training"):
        names = {f.name for f in dataclasses.fields(getattr(cfg, section)) if not f.metadata.get("derived")}
        omitted = {k for t, k in NEW_KEYS if t == section} | {
            k.split(".")[1] for k in EXECUTION_KEYS if k.startswith(section)
        }
        assert set(data[section]) == names - omitted
    assert cfg.simulation.chunk_iterations == 0
    given = tomllib.loads(to_toml(cfg.replace("simulation", chunk_iterations=7)))
    assert given["simulation"]["chunk_iterations"] == 7
    assert parse_config(given).simulation.chunk_iterations == 7
    assert set(data["task"]) == {"name"} | {f.name for f in dataclasses.fields(cfg.task)}
    assert data["task"]["name"] == "sine"


def test_new_keys_are_written_when_set_and_round_trip() -> None:
    cfg = load_config(SINE)
    # Every key written only when set is a new key or an execution key (listed once each).
    assert {k for t, k in NEW_KEYS} | {k.split(".")[1] for k in EXECUTION_KEYS} == {
        f.name
        for cls in (SimulationConfig, NetworkConfig, TrainingConfig)
        for f in dataclasses.fields(cls)
        if f.metadata.get("omit_default")
    }
    changed = cfg.replace("network", readout_bias=False, init="nest-sine")
    text = to_toml(changed)
    assert "readout_bias = false" in text and 'init = "nest-sine"' in text
    assert parse_config(tomllib.loads(text)) == dataclasses.replace(changed, source="<dict>")
    assert "readout_bias" not in to_toml(cfg) and "\ninit" not in to_toml(cfg)


# ------------------------------------------------------------------ Config.replace
def test_replace_changes_one_table() -> None:
    cfg = load_config(SINE)
    new = cfg.replace("training", iterations=3, rule="eprop-random")
    assert new.training.iterations == 3 and new.training.rule == "eprop-random"
    assert cfg.training.iterations == 40  # original unchanged
    assert new.network == cfg.network and new.task == cfg.task
    assert new.replace("simulation", seed=9).simulation.seed == 9


def test_replace_coerces_int_to_float() -> None:
    new = load_config(SINE).replace("network", tau_m_ms=20)
    assert isinstance(new.network.tau_m_ms, float)


@pytest.mark.parametrize(
    ("section", "changes", "key"),
    [
        ("network", {"tau_m_ms": -3.0}, "network.tau_m_ms"),
        ("network", {"n_rec": 10.0}, "network.n_rec"),
        ("network", {"nope": 1}, "network.nope"),
        ("training", {"iterations": 0}, "training.iterations"),
        ("training", {"rule": "no_such_rule"}, "training.rule"),
        ("simulation", {"seed": -1}, "simulation.seed"),
        ("task", {"n_in": 0}, "task.n_in"),
        ("network", {"n_out": 2}, "network.n_out"),  # cross-table check with the task
        ("training", {"loss": "cross_entropy"}, "training.loss"),
    ],
)
def test_replace_validates(section: str, changes: dict, key: str) -> None:
    cfg = load_config(SINE)
    with pytest.raises(ConfigError) as info:
        cfg.replace(section, **changes)
    msg = str(info.value)
    assert "\n" not in msg
    _assert_names_key(msg, key)


def test_replace_validates_evidence_cross_checks() -> None:
    cfg = load_config(EVIDENCE)
    with pytest.raises(ConfigError, match=r"^task\.n_in:"):
        cfg.replace("task", n_in=42)
    with pytest.raises(ConfigError, match=r"^simulation\.n_steps:"):
        cfg.replace("simulation", n_steps=50)


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# ------------------------------------------------------------------ docs/configs.md stays accurate
DOCS = ROOT / "docs" / "configs.md"


def _doc_row_start(name: str, tp, default) -> str:
    if typing.get_origin(tp) in (tuple, list):
        type_text = f"list of {typing.get_args(tp)[0].__name__}"
    else:
        type_text = tp.__name__
    if isinstance(default, bool):
        default_text = "true" if default else "false"
    elif isinstance(default, str):
        default_text = f'"{default}"'
    elif isinstance(default, tuple):
        default_text = "[" + ", ".join(repr(x) for x in default) + "]"
    else:
        default_text = repr(default)
    return f"| `{name}` | {type_text} | `{default_text}` |"


@pytest.mark.parametrize(
    "cls",
    [
        SimulationConfig,
        NetworkConfig,
        TrainingConfig,
        SineTask.Params,
        EvidenceTask.Params,
        NestSineTask.Params,
        NestEvidenceTask.Params,
        NestCurrentSineTask.Params,
        NestConfig,
    ],
    ids=lambda c: c.__qualname__,
)
def test_docs_list_every_key_with_type_and_default(cls) -> None:
    text = DOCS.read_text(encoding="utf-8")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("derived"):  # not a key (a plugin model's keys: docs/plugins.md)
            continue
        row = _doc_row_start(f.name, hints[f.name], f.default)
        assert row in text, f"docs/configs.md lacks the row {row!r}"


def test_docs_example_config_is_valid() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    cfg = parse_config(tomllib.loads(block.group(1)))
    assert cfg.network.n_alif == 50 and cfg.training.rule == "eprop-random"


# ------------------------------------------------------------------ in-trial updates
@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"update_every_steps": 100, "optimizer": "sgd", "batch_size": 2}, "training.batch_size", "one"),
        ({"update_every_steps": 100, "optimizer": "sgd", "path": "factorized"}, "training.path", "online"),
        ({"update_every_steps": 100, "optimizer": "sgd", "rule": "bptt"}, "training.rule", "inside a trial"),
        ({"update_every_steps": 1000, "optimizer": "sgd"}, "training.update_every_steps", "n_steps"),
        ({"update_every_steps": -1}, "training.update_every_steps", ">= 0"),
        ({"update_every_steps": 2.5, "optimizer": "sgd"}, "training.update_every_steps", ""),
        ({"update_every_steps": 100, "train_recurrent": False}, "training.train_recurrent", "per-trial"),
    ],
)
def test_in_trial_update_errors(changes: dict, key: str, words: str) -> None:
    msg = _error(_modified(SINE, "training", **changes))
    _assert_names_key(msg, key)
    assert words in msg


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_in_trial_updates_accepted(optimizer: str) -> None:
    from neuroplast.config import parse_config

    data = tomllib.loads(SINE.read_text())
    data["training"].update(update_every_steps=100, optimizer=optimizer, rule="eprop-adaptive")
    cfg = parse_config(data)
    assert cfg.training.update_every_steps == 100


def test_in_trial_needs_an_optimizer_the_network_implements(monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroplast.plasticity.optim import OPTIMIZERS, SGD

    monkeypatch.setitem(OPTIMIZERS._items, "momentum", SGD)  # a registered optimizer without Brian2 code
    msg = _error(_modified(SINE, "training", update_every_steps=100, optimizer="momentum"))
    _assert_names_key(msg, "training.optimizer")
    assert "'sgd' and 'adam'" in msg


# ------------------------------------------------------------------ logs are data: no resource checks
def test_stored_config_of_a_log_is_read_without_the_memory_check(tmp_path: Path, monkeypatch) -> None:
    """A log made on a machine with more memory than this one stays readable: ``compare``/``analyze``/``plot``
    parse its stored config with ``check_resources=False``; ``neuroplast run`` keeps the check."""
    import neuroplast.config as config_module
    from neuroplast.analysis.compare import replay_context
    from neuroplast.cli import main
    from neuroplast.io import open_run
    from tests.helpers import write_synthetic_run

    log = write_synthetic_run(tmp_path / "run.h5")
    run = open_run(log)
    monkeypatch.setattr(config_module, "memory_bytes", lambda: 1000)  # "this machine": 1 kB
    with pytest.raises(ConfigError, match="this machine has 1 kB"):
        parse_config(tomllib.loads(run.config_toml))  # the check is live here ...
    cfg = parse_config(tomllib.loads(run.config_toml), check_resources=False)  # ... and skipped here
    assert replay_context(run).config == dataclasses.replace(cfg, source=str(log))
    assert main(["inspect", str(log)]) == 0
    assert main(["compare", "--self-test", "--json", str(log)]) in (0, 1)  # replayed: no ConfigError (2)
    assert main(["analyze", str(log), "--json", "--quiet", "--trials", "0"]) == 0


# ------------------------------------------------------------------ neuron models (docs/model.md §10)
@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"network": {"neuron": "hodgkin_huxley"}}, "network.neuron", "lif_syn"),  # lists the known
        ({"network": {"neuron": "lif_syn", "n_alif": 3}}, "network.n_alif", "lif_syn"),
        ({"network": {"neuron": "adlif", "beta": 1.0}}, "network.beta", "adlif"),
        ({"network": {"neuron": "lif_syn"}, "training": {"rule": "bptt"}}, "training.rule", "lif_syn"),
        ({"network": {"neuron": "adlif"}, "training": {"path": "factorized"}}, "training.path", "adlif"),
        (
            {"network": {"neuron": "adlif"}, "training": {"update_every_steps": 100}},
            "training.update_every_steps",
            "adlif",
        ),
        ({"network": {"neuron": "lif_syn", "tau_syn_ms": -1.0}}, "network.tau_syn_ms", "> 0"),
    ],
)
def test_neuron_model_keys_are_checked(changes: dict, key: str, words: str) -> None:
    data = copy.deepcopy(_raw(SINE))
    for table, values in changes.items():
        data.setdefault(table, {}).update(values)
    msg = _error(data)
    _assert_names_key(msg, key)
    assert words in msg


def test_a_neuron_model_config_records_the_keys_its_model_reads() -> None:
    """to_toml writes the keys the model reads even at their default (a run log says what it simulated);
    an alif config's text is unchanged by the keys added for the other models."""
    cfg = load_config(MODELS / "lif_syn.toml").replace("network", tau_syn_ms=5.0)
    data = tomllib.loads(to_toml(cfg))["network"]
    assert data["neuron"] == "lif_syn" and data["tau_syn_ms"] == 5.0 and "tau_w_ms" not in data
    adlif = tomllib.loads(to_toml(cfg.replace("network", neuron="adlif")))["network"]
    assert {"tau_w_ms", "adapt_a", "adapt_b"} <= set(adlif) and "tau_syn_ms" not in adlif
    sine = tomllib.loads(to_toml(load_config(SINE)))["network"]
    assert not {"neuron", "tau_syn_ms", "tau_w_ms", "adapt_a", "adapt_b"} & set(sine)
