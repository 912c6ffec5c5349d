"""The sweep file: axis expansion (product, zip, seeds), point names, and one-line errors for bad files.

Fast: no Brian2, no cluster (``load_sweep`` validates every point with neuroplast.config alone).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroplast.cli import main
from neuroplast.config import ConfigError, load_config, to_toml
from neuroplast.sweep.manifest import new_manifest, read_manifest, write_manifest
from neuroplast.sweep.spec import SEED_KEY, expand_axes, load_sweep, point_name, short_names
from tests.helpers import MODELS, SINE


def _sweep(tmp_path: Path, body: str, name: str = "s.toml") -> Path:
    (tmp_path / "sine.toml").write_text(SINE.read_text())
    path = tmp_path / name
    path.write_text('base = "sine.toml"\n' + body)
    return path


def test_product_order_first_axis_slowest_seeds_fastest() -> None:
    combos = expand_axes({"a.x": [1, 2], "b.y": ["u", "v", "w"]}, seeds=[0, 1])
    assert len(combos) == 2 * 3 * 2
    assert combos[0] == {"a.x": 1, "b.y": "u", SEED_KEY: 0}
    assert combos[1] == {"a.x": 1, "b.y": "u", SEED_KEY: 1}
    assert combos[2] == {"a.x": 1, "b.y": "v", SEED_KEY: 0}
    assert combos[-1] == {"a.x": 2, "b.y": "w", SEED_KEY: 1}
    assert len({tuple(c.values()) for c in combos}) == len(combos)


def test_zip_groups_vary_together_and_cross_the_product() -> None:
    combos = expand_axes({"a.x": [1, 2]}, [{"b.y": [10, 20, 30], "b.z": ["p", "q", "r"]}])
    assert len(combos) == 2 * 3
    assert [(c["b.y"], c["b.z"]) for c in combos[:3]] == [(10, "p"), (20, "q"), (30, "r")]
    assert expand_axes({}, [{"b.y": [1, 2], "b.z": [3, 4]}]) == [{"b.y": 1, "b.z": 3}, {"b.y": 2, "b.z": 4}]


def test_zip_of_unequal_lengths_and_repeated_keys_are_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"^zip\[0\]: zipped axes must have equal lengths \(b.y has 2, b.z has 3\)"
    ):
        expand_axes({}, [{"b.y": [1, 2], "b.z": [1, 2, 3]}])
    with pytest.raises(ConfigError, match=r"^simulation.seed: on more than one axis"):
        expand_axes({SEED_KEY: [1, 2]}, seeds=[0])


def test_names_from_parameters() -> None:
    assert point_name({"training.rule": "eprop-random", "training.learning_rate": 0.0003, SEED_KEY: 2}) == (
        "rule-eprop-random_lr-0.0003_seed-2"
    )
    assert point_name({"task.periods_ms": [100.0, 50.0], "training.train_output": False}) == (
        "periods_ms-100.0+50.0_train_output-false"
    )
    assert point_name({}) == "point"
    # two axes with the same last part keep their whole key
    assert short_names(["network.n_rec", "task.n_rec"]) == {
        "network.n_rec": "network.n_rec",
        "task.n_rec": "task.n_rec",
    }
    assert point_name({"network.gamma": 0.3}) != point_name({"network.gamma": 0.31})


def test_load_resolves_every_point(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        'seeds = [3, 4]\n[axes]\ntraining.rule = ["eprop", "bptt"]\n'
        '[[zip]]\n"training.learning_rate" = [1e-4, 3e-4]\n"training.optimizer" = ["sgd", "adam"]\n'
        '[set]\n"training.iterations" = 7\n',
    )
    sw = load_sweep(path)
    assert sw.axes == ("training.rule", "training.learning_rate", "training.optimizer", SEED_KEY)
    assert len(sw.points) == 8
    p = sw.points[3]
    assert p.name == "rule-eprop_lr-0.0003_optimizer-adam_seed-4"
    assert (p.config.training.rule, p.config.training.optimizer, p.config.simulation.seed) == (
        "eprop",
        "adam",
        4,
    )
    assert p.config.training.learning_rate == pytest.approx(
        3e-4, rel=0, abs=0
    )  # parsed from the same literal
    assert p.config.training.iterations == 7
    # everything not on an axis is the base config's
    base = load_config(SINE)
    assert p.config.network == base.network and p.config.task == base.task
    assert to_toml(p.config) == to_toml(
        base.replace("training", rule="eprop", learning_rate=3e-4, optimizer="adam", iterations=7).replace(
            "simulation", seed=4
        )
    )
    assert load_sweep(path, iterations=2).points[0].config.training.iterations == 2


def test_shipped_sweep_file() -> None:
    sw = load_sweep(MODELS / "sweep_rules.toml")
    rules = {p.config.training.rule for p in sw.points}
    assert rules == {"eprop", "eprop-random", "eprop-adaptive", "bptt"}
    assert {p.config.simulation.seed for p in sw.points} == {0, 1, 2, 3, 4}
    assert len(sw.points) == 20 and len({p.name for p in sw.points}) == 20


BAD = [
    ("[axes]\nnetwork.bogus = [1, 2]\n", r"network\.bogus: unknown key \(known: "),
    ('[axes]\n"training.rule" = []\n', r"axes\.training\.rule: empty axis"),
    ('[axes]\n"training.rule" = "eprop"\n', r"axes\.training\.rule: must be a list of values"),
    (
        '[axes]\n"network.n_rec" = [100, 50.5]\n',
        r"point n_rec-50\.5: network\.n_rec: must be int \(got float 50\.5\)",
    ),
    ('[axes]\n"training.learning_rate" = [1e-4, "fast"]\n', r"training\.learning_rate: must be float"),
    ('[axes]\n"training.rule" = ["eprop", "nope"]\n', r"training\.rule: unknown rule 'nope'"),
    ('[axes]\n"network.tau_m_ms" = [-3.0]\n', r"network\.tau_m_ms: must be > 0"),
    ('[axes]\nrule = ["eprop"]\n', r"axes\.rule: an axis names one config key as table\.key"),
    (
        '[[zip]]\n"training.rule" = ["eprop", "bptt"]\n"network.n_rec" = [10]\n',
        r"zip\[0\]: zipped axes must have equal",
    ),
    ("seeds = []\n", r"seeds: must be a non-empty list"),
    ("seeds = [1, -2]\n", r"seeds\[1\]: must be an integer >= 0"),
    ("seeds = [1, 1]\n", r"would both write seed-1\.h5"),
    ('[axes]\n"training.rule" = ["eprop random", "eprop-random"]\n', r"training\.rule: unknown rule"),
    ('[axes]\n"task.name" = ["sine", "sine "]\n', r"'sine '} would both write name-sine\.h5"),
    ("bogus = 1\n", r"bogus: unknown key \(known: base, seeds, axes, zip, set\)"),
    ('[set]\n"training.iterations" = 0\n', r"training\.iterations: must be > 0"),
]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[m.split(":")[0].strip("\\^") for _, m in BAD])
def test_bad_sweep_files_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = _sweep(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_sweep(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_repeated_values_are_refused(tmp_path: Path) -> None:
    path = _sweep(tmp_path, '[axes]\n"network.surrogate" = ["arctan", "arctan"]\n')
    with pytest.raises(ConfigError, match=r"would both write surrogate-arctan\.h5"):
        load_sweep(path)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: sweep file not found$"):
        load_sweep(tmp_path / "nope.toml")
    (tmp_path / "broken.toml").write_text("base = [\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_sweep(tmp_path / "broken.toml")
    (tmp_path / "nobase.toml").write_text('base = "missing.toml"\n')
    with pytest.raises(ConfigError, match=r"nobase\.toml: .*missing\.toml: config file not found"):
        load_sweep(tmp_path / "nobase.toml")
    (tmp_path / "nobase2.toml").write_text("seeds = [1]\n")
    with pytest.raises(ConfigError, match=r"nobase2\.toml: base: the model config"):
        load_sweep(tmp_path / "nobase2.toml")


def test_cli_bad_sweep_is_exit_2_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = _sweep(tmp_path, "[axes]\nnetwork.bogus = [1, 2]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neuroplast sweep: error: {path}: point bogus-1: network.bogus: unknown key")
    assert err.count("\n") == 1
    assert not out.exists()
    assert main(["sweep", str(path), "--workers", "0"]) == 2
    assert "--workers: must be >= 1" in capsys.readouterr().err
    assert main(["sweep-report", str(tmp_path)]) == 2
    assert "no sweep manifest here" in capsys.readouterr().err


def test_cli_without_dask_says_how_to_install(tmp_path: Path, capsys, monkeypatch) -> None:
    import sys

    path = _sweep(tmp_path, "seeds = [0]\n")
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "neuroplast sweep: error: dask.distributed is not installed; "
        "install it with: pip install 'neuroplast[sweep]'\n"
    )


def test_manifest_round_trip_and_atomic_write(tmp_path: Path) -> None:
    sw = load_sweep(_sweep(tmp_path, "seeds = [0, 1]\n"))
    m = new_manifest(sw)
    assert [p["state"] for p in m["points"]] == ["pending", "pending"]
    write_manifest(tmp_path, m)
    m["points"][0]["state"] = "done"
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".sweep.")) == []  # no temp left
    (tmp_path / "sweep.json").write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match=r"sweep\.json: not a neuroplast sweep manifest"):
        read_manifest(tmp_path)
    (tmp_path / "sweep.json").write_text("{")
    with pytest.raises(ConfigError, match=r"sweep\.json: damaged sweep manifest"):
        read_manifest(tmp_path)


def test_scheduler_address_goes_to_distributed_client(tmp_path: Path, monkeypatch, capsys) -> None:
    """Config only: ``--scheduler`` connects ``distributed.Client(address)``; no local cluster is made."""
    import distributed

    from neuroplast.sweep import driver

    seen: list[str] = []

    class FakeClient:
        def __init__(self, address, **kw):
            seen.append(address)
            raise OSError("Timed out trying to connect")

    def no_cluster(*a, **kw):
        raise AssertionError("a LocalCluster was started although --scheduler was given")

    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    path = _sweep(tmp_path, "seeds = [0]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--scheduler", "tcp://10.0.0.7:8786"]) == 2
    assert seen == ["tcp://10.0.0.7:8786"]
    err = capsys.readouterr().err
    assert err == (
        "neuroplast sweep: error: --scheduler tcp://10.0.0.7:8786: cannot connect "
        "(Timed out trying to connect)\n"
    )
    assert not (out / "seed-0.h5").exists()  # nothing ran
    # a scheduler that answers: its client is used as it is
    monkeypatch.setattr(distributed, "Client", lambda address, **kw: ("client of", address))
    assert driver.connect("tcp://10.0.0.7:8786", 2) == (("client of", "tcp://10.0.0.7:8786"), None)
