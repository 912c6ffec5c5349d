"""The synapses of a compiled network read at launch (neuroplast/network/edges.py) and the monitors of every
synapse sized at launch (neuroplast/network/records.py): tables, generators, records, and a network of
other connectivity on the compiled program of another (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroplast.network import cache
from neuroplast.network.edges import COUNT, MOST, OTHER, edge_table
from neuroplast.network.records import SynapseRecord, read_record
from tests.helpers import T_GRAD, make_input, make_params, make_weights


def _expand(table) -> tuple[np.ndarray, np.ndarray]:
    """The synapses (i, j) the generator creates from the table, in order (the C++ loops in NumPy)."""
    rows, other = [], []
    for r in range(table.rows):
        for k in range(table.start[r + 1] - table.start[r]):
            rows.append(r)
            other.append(table.other[table.start[r] + k])
    rows, other = np.array(rows, dtype=np.int64), np.array(other, dtype=np.int64)
    return (rows, other) if table.outer == "pre" else (other, rows)


@pytest.mark.parametrize("outer", ["pre", "post"])
def test_a_table_gives_the_synapses_back_in_their_order(outer) -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((7, 5)) < 0.4  # post x pre
    tgt, src = np.nonzero(mask)
    order = np.lexsort((tgt, src)) if outer == "pre" else np.lexsort((src, tgt))
    i, j = src[order], tgt[order]
    if outer == "post":  # any order within a group is kept: reverse each target's sources
        for t in np.unique(j):
            sel = np.flatnonzero(j == t)
            i[sel] = i[sel][::-1]
    table = edge_table(2, "proj", i, j, (5, 7), outer)
    got_i, got_j = _expand(table)
    assert np.array_equal(got_i, i) and np.array_equal(got_j, j)
    data = table.data()
    assert data.dtype == np.int32 and list(data[:2]) == [table.rows, i.size]
    assert table.rows == (5 if outer == "pre" else 7) and table.n_other == (7 if outer == "pre" else 5)
    # the generator names the table and iterates over the outer neuron
    ((side, expr),) = table.generator().items()
    assert side == ("j" if outer == "pre" else "i")
    assert f"{OTHER}(2, " in expr and f"{COUNT}(2, " in expr and (MOST in expr) == (outer == "post")
    assert table.key() == [2, "proj", outer, table.rows, table.n_other]  # never the edges
    assert "neuroplast_edges_load(2, " in table.load_code("brian::results_dir")


def test_synapses_not_grouped_by_the_outer_neuron_are_refused() -> None:
    i, j = np.array([0, 1, 0]), np.array([0, 0, 1])
    with pytest.raises(ValueError, match="not grouped by their presynaptic"):
        edge_table(0, "proj", i, j, (2, 2), "pre")
    edge_table(0, "proj", i, j, (2, 2), "post")  # grouped by target
    with pytest.raises(ValueError, match="outer"):
        edge_table(0, "proj", i, j, (2, 2), "both")


def test_a_record_reads_as_a_state_monitor(tmp_path) -> None:
    values = np.arange(12, dtype=np.float64).reshape(3, 4)  # 3 ticks of 4 synapses
    head = np.array([3, 4], dtype=np.int64)
    (tmp_path / "record_m_w.f64").write_bytes(head.tobytes() + values.tobytes())
    record = SynapseRecord({"w": "record_m_w.f64"}, lambda: tmp_path)
    assert np.array_equal(record.w, values.T)  # (synapses, ticks), as StateMonitor.w
    assert np.array_equal(np.asarray(record.w[:]).T, values)
    with pytest.raises(AttributeError):
        record.g  # noqa: B018 - not recorded


def _write_record(path, values: np.ndarray) -> None:
    """A record file as ``neuroplast_record_write`` writes it: a new file renamed onto ``path``."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(np.array(values.shape, dtype=np.int64).tobytes() + values.tobytes())
    part.replace(path)


def test_a_record_read_earlier_keeps_its_values_when_the_next_launch_writes_its_own(tmp_path) -> None:
    """Records are mapped, not copied: what a launch's record gave stays its values (read-only) after the
    next launch's record replaced the file."""
    path = tmp_path / "record_m_w.f64"
    first = np.arange(12, dtype=np.float64).reshape(3, 4)
    _write_record(path, first)
    earlier = read_record(path)
    _write_record(path, -np.arange(20, dtype=np.float64).reshape(5, 4))  # more ticks, other values
    assert np.array_equal(earlier, first.T)
    assert np.array_equal(read_record(path), -np.arange(20, dtype=np.float64).reshape(5, 4).T)
    with pytest.raises(ValueError, match="read-only"):
        earlier[0, 0] = 1.0


@pytest.mark.parametrize("cut", [4, 8, 15])
def test_a_record_shorter_than_its_header_says_is_refused(tmp_path, cut) -> None:
    path = tmp_path / "record_m_w.f64"
    _write_record(path, np.ones((3, 4)))
    path.write_bytes(path.read_bytes()[:-cut] if cut != 15 else path.read_bytes()[:15])
    with pytest.raises(ValueError, match="record_m_w.f64"):
        read_record(path)


@pytest.mark.brian2
def test_another_connectivity_runs_the_same_compiled_network(eq_weights, tmp_path) -> None:
    """A network of other masks (a new seed of a sparse network; another number of synapses too) is the
    same cache entry, its binary untouched, and its trial is a fresh build's of those masks, bit for bit."""
    from neuroplast.network.builder import Brian2Network

    other = make_weights(seed=7)
    assert other.mask_rec.sum() != eq_weights.mask_rec.sum()
    kw = {"device": "cpp_standalone", "loss": "mse", "gradients": True, "record": True}
    first = Brian2Network(make_params("mix"), eq_weights, T_GRAD, **kw)  # grad_network's (session cache)
    stamp = cache._stamp(first.build_dir / cache.BINARY)  # noqa: SLF001 - as the cache judges it
    net = Brian2Network(make_params("mix"), other, T_GRAD, **kw)
    assert net.cache_hit is True and net.build_dir == first.build_dir
    assert stamp is not None and cache._stamp(net.build_dir / cache.BINARY) == stamp  # noqa: SLF001
    fresh = Brian2Network(make_params("mix"), other, T_GRAD, build_dir=tmp_path / "fresh", **kw)
    x, target = make_input(T=T_GRAD), np.sin(np.arange(T_GRAD) / 40.0)[:, None].repeat(2, axis=1)
    got = net.run_trial(other, x, target=target)  # net was retired by `fresh`: rebuilt, nothing compiled
    assert np.asarray(net.synapses["recurrent"].w[:]).size == other.mask_rec.sum()  # the launch's synapses
    want = fresh.run_trial(other, x, target=target)  # (which retires net again)
    for name in ("y", "v", "a", "z", "psi", "refractory", "L"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert all(np.array_equal(g, w) for g, w in zip(got.spikes, want.spikes, strict=True))
    for key in want.grads:
        assert np.array_equal(got.grads[key], want.grads[key]), key
    ran_first = first.run_trial(eq_weights, x, target=target)  # the connectivity matters: the check can fail
    assert not np.array_equal(ran_first.y, got.y)
