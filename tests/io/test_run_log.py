"""Tests of the HDF5 run log (neuroplast.io): roundtrip, SONATA/libsonata, bad files, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import neuroplast.io.annotate as annotate
from neuroplast.io import FORMAT_VERSION, RunFileError, RunWriter, add_gradients, open_run, rename_gradient
from neuroplast.io.diff import diff_files

N_IN, N_REC, N_OUT, N_STEPS, DT = 3, 6, 2, 9, 0.1
CONFIG = '[network]\nn_rec = 6\n\n[train]\nlr = 0.01\nestimators = ["eprop", "bptt"]\n'


def _setup(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    pops = {
        "input": {"input_scale": rng.random(N_IN)},
        "recurrent": {"alpha": rng.random(N_REC), "rho": rng.random(N_REC), "v_th": 0.6, "n_ref": 2.0},
        "readout": {"kappa": rng.random(N_OUT)},
    }
    full = np.meshgrid(np.arange(N_IN), np.arange(N_REC), indexing="ij")
    rec_src, rec_tgt = np.nonzero(rng.random((N_REC, N_REC)) < 0.5)
    out = np.meshgrid(np.arange(N_REC), np.arange(N_OUT), indexing="ij")
    edges = {
        "input": (full[0].ravel(), full[1].ravel()),
        "recurrent": (rec_src, rec_tgt),
        "output": (out[0].ravel(), out[1].ravel()),
        "feedback": (out[1].ravel(), out[0].ravel()),
        "bias": None,
    }
    return pops, edges


def _writer_kw(pops: dict[str, Any], edges: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The RunWriter arguments of the synthetic layout (seed 0), but the path and ``task_kind``."""
    kw = dict(
        config_toml=CONFIG,
        dt_ms=DT,
        seed=0,
        populations=pops,
        projections_edges=edges,
        n_in=N_IN,
        n_out=N_OUT,
        n_steps=N_STEPS,
    )
    return kw | changes


def _n_edges(edges: dict[str, Any], name: str) -> int:
    return N_OUT if edges[name] is None else len(edges[name][0])


def _trial(rng: np.random.Generator, kind: str, k: int, edges: dict[str, Any]) -> dict[str, Any]:
    T = N_STEPS if k % 3 else N_STEPS - 2  # some shorter trials (padded on disk)
    x = (rng.random((T, N_IN)) < 0.3).astype(np.uint8)
    if kind == "regression":
        target = rng.normal(size=(T, N_OUT))
        mask = None
    else:
        target = int(rng.integers(0, N_OUT))
        mask = rng.random(T) < 0.5
    n_sp = int(rng.integers(0, 15))
    spikes = {
        "recurrent": (rng.integers(0, T, n_sp), rng.integers(0, N_REC, n_sp)),
        "input": np.nonzero(x),
    }
    grads = {p: {"eprop": rng.normal(size=_n_edges(edges, p))} for p in ("input", "recurrent", "output")}
    if k % 2 == 0 and k >= 4:  # estimator appears in a later flush, on some trials -> NaN rows elsewhere
        grads["recurrent"]["random"] = rng.normal(size=_n_edges(edges, "recurrent"))
    extras = {"accuracy": float(rng.random())} if k >= 4 else {}  # column appears in a later flush
    return dict(
        x=x, target=target, mask=mask, spikes=spikes, grads=grads, extras=extras, loss=float(rng.random())
    )


def _write_run(
    path: Path,
    kind: str = "regression",
    *,
    seed: int = 0,
    n_iter: int = 3,
    batch: int = 4,
    flush_every: int = 3,
    traces: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Write a synthetic run; return everything that was written (the expectation)."""
    rng = np.random.default_rng(seed)
    pops, edges = _setup(rng)
    exp: dict[str, Any] = {
        "pops": pops,
        "edges": edges,
        "trials": [],
        "weights": [],
        "updates": [],
        "starts": [],
        "trace_v": [],
        "trace_a": [],
    }
    w_cur = {p: rng.normal(size=_n_edges(edges, p)) for p in edges}
    kw = _writer_kw(pops, edges, seed=seed, force=force, flush_every=flush_every, brian2_version="test")
    with RunWriter(path, task_kind=kind, **kw) as w:
        k = 0
        for it in range(n_iter):
            for _ in range(batch):
                tr = _trial(rng, kind, k, edges)
                start = w.next_step + (1 if k == 5 else 0)  # one gap in the time axis
                idx = w.add_trial(
                    it,
                    tr["x"],
                    tr["target"],
                    loss=tr["loss"],
                    mask=tr["mask"],
                    spikes=tr["spikes"],
                    extras=tr["extras"],
                    grads=tr["grads"],
                    start_step=start,
                )
                assert idx == k
                exp["trials"].append(tr | {"iteration": it})
                exp["starts"].append(start)
                if traces and it == 0:  # contiguous trials 0..batch-1 (the gap is at trial 5)
                    T = tr["x"].shape[0]
                    v = rng.normal(size=(T, N_REC)).astype(np.float32)
                    a = rng.normal(size=(T, 3)).astype(np.float32)
                    w.add_trace("recurrent", "v", v, np.arange(N_REC), units="mV")
                    w.add_trace("recurrent", "a", a, [1, 3, 5], start_step=start)
                    exp["trace_v"].append(v)
                    exp["trace_a"].append(a)
                k += 1
            upd = {p: rng.normal(size=_n_edges(edges, p)) * 0.01 for p in ("input", "recurrent", "output")}
            w.add_iteration(w_cur, upd)
            exp["weights"].append(w_cur)
            exp["updates"].append({p: upd.get(p, np.zeros(_n_edges(edges, p))) for p in edges})
            w_cur = {p: w_cur[p] + exp["updates"][-1][p] for p in edges}
        w.finish(w_cur)
        exp["weights"].append(w_cur)
    return exp


def _steps_ids(exp: dict[str, Any], pop: str) -> tuple[np.ndarray, np.ndarray]:
    steps, ids = [], []
    for tr, start in zip(exp["trials"], exp["starts"], strict=True):
        s, i = (np.asarray(a) for a in tr["spikes"][pop])
        order = np.lexsort((i, s))
        steps.append(s[order] + start)
        ids.append(i[order])
    return np.concatenate(steps).astype(np.int64), np.concatenate(ids).astype(np.uint64)


# ---------------------------------------------------------------------- roundtrip
@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_roundtrip(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "run.h5"
    exp = _write_run(path, kind)
    run = open_run(path)
    n = len(exp["trials"])
    assert run.n_trials == n and run.n_iterations == 3 and run.finished
    assert run.config_toml == CONFIG and run.dt_ms == DT and run.seed == 0 and run.task_kind == kind
    assert run.attrs["format"] == "neuroplast-run" and run.attrs["format_version"] == FORMAT_VERSION
    assert run.attrs["brian2_version"] == "test" and run.attrs["n_trials_complete"] == n

    assert run.population_sizes == {"input": N_IN, "recurrent": N_REC, "readout": N_OUT}
    np.testing.assert_array_equal(run.populations["recurrent"]["alpha"], exp["pops"]["recurrent"]["alpha"])
    np.testing.assert_array_equal(run.populations["recurrent"]["v_th"], np.full(N_REC, 0.6))
    assert run.populations["recurrent"]["v_th"].dtype == np.float64

    tr = run.trials
    assert {len(v) for v in tr.values()} == {n}
    np.testing.assert_array_equal(tr["start_step"], exp["starts"])
    np.testing.assert_array_equal(tr["n_steps"], [t["x"].shape[0] for t in exp["trials"]])
    np.testing.assert_array_equal(tr["iteration"], [t["iteration"] for t in exp["trials"]])
    np.testing.assert_array_equal(tr["loss"], [t["loss"] for t in exp["trials"]])
    acc = [t["extras"].get("accuracy", np.nan) for t in exp["trials"]]
    np.testing.assert_array_equal(tr["accuracy"], acc)  # NaN before the column appeared

    assert run.projection_names == ["bias", "feedback", "input", "output", "recurrent"]
    for name, edges in exp["edges"].items():
        proj = run.projection(name)
        src, tgt = (np.arange(N_OUT), np.arange(N_OUT)) if edges is None else edges
        np.testing.assert_array_equal(proj.source_ids, src)
        np.testing.assert_array_equal(proj.target_ids, tgt)
        assert proj.source_ids.dtype == np.uint64
        np.testing.assert_array_equal(proj.weights, np.stack([w[name] for w in exp["weights"]]))
        np.testing.assert_array_equal(proj.updates, np.stack([u[name] for u in exp["updates"]]))
        assert proj.weights.shape == (4, proj.n_edges) and proj.updates.shape == (3, proj.n_edges)
    rec = run.projection("recurrent")
    assert rec.estimators == ["eprop", "random"]
    np.testing.assert_array_equal(
        rec.grad("eprop"), np.stack([t["grads"]["recurrent"]["eprop"] for t in exp["trials"]])
    )
    rnd = rec.grad("random")
    for k, t in enumerate(exp["trials"]):
        if "random" in t["grads"]["recurrent"]:
            np.testing.assert_array_equal(rnd[k], t["grads"]["recurrent"]["random"])
        else:
            assert np.isnan(rnd[k]).all()
    with pytest.raises(RunFileError, match="no gradient estimator 'bptt'"):
        rec.grad("bptt")

    for k, t in enumerate(exp["trials"]):
        rp = run.replay(k)
        assert rp.index == k and rp.iteration == t["iteration"] and rp.start_step == exp["starts"][k]
        assert rp.x.dtype == np.float64
        np.testing.assert_array_equal(rp.x, t["x"])
        assert rp.loss == t["loss"]
        if kind == "regression":
            np.testing.assert_array_equal(rp.target, t["target"])
            assert rp.mask is None
        else:
            assert rp.target == t["target"]
            np.testing.assert_array_equal(rp.mask, t["mask"])
        assert rp.weights_before is not None
        for name in exp["edges"]:
            np.testing.assert_array_equal(rp.weights_before[name], exp["weights"][t["iteration"]][name])
    assert run.replay(-1).index == n - 1
    with pytest.raises(IndexError):
        run.replay(n)

    for pop in ("recurrent", "input"):
        steps, ids = _steps_ids(exp, pop)
        ts, got_ids = run.spikes(pop)
        np.testing.assert_array_equal(ts, steps * DT)
        np.testing.assert_array_equal(got_ids, ids)
    ts5, ids5 = run.spikes("recurrent", trial=5)
    s5, i5 = exp["trials"][5]["spikes"]["recurrent"]
    assert sorted(
        zip(np.rint(ts5 / DT).astype(int) - exp["starts"][5], ids5.tolist(), strict=True)
    ) == sorted(zip(np.asarray(s5).tolist(), np.asarray(i5).tolist(), strict=True))

    assert run.traces == [("recurrent", "a"), ("recurrent", "v")]
    tv = run.trace("recurrent", "v")
    np.testing.assert_array_equal(tv.data, np.concatenate(exp["trace_v"]))
    assert tv.units == "mV" and tv.data.dtype == np.float32
    np.testing.assert_allclose(tv.times_ms, DT * np.arange(tv.data.shape[0]))

    text = run.summary()
    assert "recurrent (6)" in text and f"trials: {n}" in text and "MB" in text
    first = [t["loss"] for t in exp["trials"] if t["iteration"] == exp["trials"][0]["iteration"]]
    assert f"first {float(np.mean(first)):.6g}," in text  # the first iteration's mean loss


def test_add_gradients_later(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    exp = _write_run(path, traces=False)
    run = open_run(path)
    n, ne = run.n_trials, run.projection("recurrent").n_edges
    bptt = np.random.default_rng(1).normal(size=(n, ne))
    add_gradients(path, "bptt", {"recurrent": bptt})
    run2 = open_run(path)
    proj = run2.projection("recurrent")
    assert proj.estimators == ["bptt", "eprop", "random"]
    np.testing.assert_array_equal(proj.grad("bptt"), bptt)
    with pytest.raises(RunFileError, match="already has gradient 'bptt'"):
        add_gradients(path, "bptt", {"recurrent": bptt})
    add_gradients(path, "bptt", {"recurrent": 2 * bptt}, overwrite=True)
    np.testing.assert_array_equal(open_run(path).projection("recurrent").grad("bptt"), 2 * bptt)
    with pytest.raises(ValueError, match="shape"):
        add_gradients(path, "x", {"recurrent": bptt[:, :-1]})
    with pytest.raises(RunFileError, match="no projection 'nope'"):
        add_gradients(path, "bptt", {"nope": bptt})
    # the eprop gradients are untouched
    np.testing.assert_array_equal(proj.grad("eprop")[0], exp["trials"][0]["grads"]["recurrent"]["eprop"])
    assert proj.grad_attrs("eprop") == {"units": "1"}  # the model's dimensionless units


# ---------------------------------------------------------------------- gradients added later: all or nothing
GRAD_PROJS = ("input", "recurrent", "output")


def _grads(path: Path, scale: float) -> dict[str, np.ndarray]:
    run = open_run(path)
    rng = np.random.default_rng(int(scale))
    return {p: scale * rng.normal(size=(run.n_trials, run.projection(p).n_edges)) for p in GRAD_PROJS}


def _hidden_links(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visit(lambda name: names.append(name) if name.rsplit("/", 1)[-1].startswith(".") else None)
    return names


def test_add_gradients_on_a_full_disk_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for the gradients: one RunFileError saying so, the file byte for byte as before."""
    import errno

    import neuroplast.io.failure as failure

    path = tmp_path / "run.h5"
    _write_run(path, traces=False)
    before = path.read_bytes()

    def full(fd: int, where: Path, nbytes: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(failure, "make_room", full)
    full_disk = r"cannot write gradient 'bptt': the disk is full; nothing was added"
    with pytest.raises(RunFileError, match=full_disk):
        add_gradients(path, "bptt", _grads(path, 1.0))
    assert path.read_bytes() == before


def test_add_gradients_writes_within_its_reservation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file grows by at most the room reserved before the write: HDF5 never meets a full disk midway."""
    import neuroplast.io.failure as failure

    path = tmp_path / "run.h5"
    _write_run(path, traces=False)
    reserved: list[tuple[int, int]] = []
    real = failure.make_room

    def recorded(fd: int, where: Path, nbytes: int) -> None:
        reserved.append((os.fstat(fd).st_size, nbytes + failure.MARGIN))
        real(fd, where, nbytes)

    monkeypatch.setattr(failure, "make_room", recorded)
    grads = _grads(path, 3.0)
    add_gradients(path, "bptt", grads)
    ((size_before, room),) = reserved
    assert 0 < os.stat(path).st_size - size_before <= room
    assert room - failure.MARGIN >= sum(a.nbytes for a in grads.values())


@pytest.mark.parametrize("overwrite", [False, True])
def test_add_gradients_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    """A failure while writing the second projection's array leaves the file as it was; a rerun works."""
    path = tmp_path / "run.h5"
    _write_run(path, traces=False)
    before = _grads(path, 1.0)
    if overwrite:
        add_gradients(path, "bptt", before, attrs={"written_by": "first"})
    new = _grads(path, 2.0)
    orig = annotate._write_one
    calls: list[str] = []

    def fail_on_second(group: h5py.Group, name: str, arr: np.ndarray, attrs: Any) -> None:
        calls.append(group.parent.name)
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        orig(group, name, arr, attrs)

    monkeypatch.setattr(annotate, "_write_one", fail_on_second)
    with pytest.raises(RunFileError, match="cannot write gradient 'bptt'.*injected"):
        add_gradients(path, "bptt", new, overwrite=overwrite, attrs={"written_by": "second"})
    assert calls == ["/projections/input", "/projections/recurrent"]
    assert _hidden_links(path) == []
    run = open_run(path)
    for p in GRAD_PROJS:
        proj = run.projection(p)
        if overwrite:  # the old gradients, complete and unchanged
            np.testing.assert_array_equal(proj.grad("bptt"), before[p])
            assert proj.grad_attrs("bptt") == {"units": "1", "written_by": "first"}
        else:
            assert "bptt" not in proj.estimators
    monkeypatch.setattr(annotate, "_write_one", orig)
    add_gradients(path, "bptt", new, overwrite=overwrite, attrs={"written_by": "second"})
    run = open_run(path)
    for p in GRAD_PROJS:
        np.testing.assert_array_equal(run.projection(p).grad("bptt"), new[p])
        assert run.projection(p).grad_attrs("bptt") == {"units": "1", "written_by": "second"}
    assert _hidden_links(path) == []


def test_add_gradients_undoes_renames_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.h5"
    _write_run(path, traces=False)
    before, new = _grads(path, 1.0), _grads(path, 2.0)
    add_gradients(path, "bptt", before)
    orig_move = h5py.Group.move
    moves: list[tuple[str, str]] = []

    def fail_on_third(self: h5py.Group, source: str, dest: str) -> None:
        moves.append((source, dest))
        if len(moves) == 3:  # first projection done, second projection's old gradient about to go aside
            raise OSError("injected")
        orig_move(self, source, dest)

    monkeypatch.setattr(h5py.Group, "move", fail_on_third)
    with pytest.raises(RunFileError, match="injected"):
        add_gradients(path, "bptt", new, overwrite=True)
    monkeypatch.setattr(h5py.Group, "move", orig_move)
    assert _hidden_links(path) == []
    run = open_run(path)
    for p in GRAD_PROJS:
        np.testing.assert_array_equal(run.projection(p).grad("bptt"), before[p])


def _annotate_child(path: str, when: str) -> None:  # pragma: no cover - runs in a subprocess
    """Add gradients to ``path`` and SIGKILL this process in the middle (after a flush)."""
    write_one, move = annotate._write_one, h5py.Group.move
    count = [0]

    def write_then_die(group: h5py.Group, name: str, arr: np.ndarray, attrs: Any) -> None:
        write_one(group, name, arr, attrs)
        count[0] += 1
        if count[0] == 2:  # two of the three arrays are on disk
            group.file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def move_then_die(group: h5py.Group, source: str, dest: str) -> None:
        move(group, source, dest)
        group.file.flush()  # the first projection's gradient is in place
        os.kill(os.getpid(), signal.SIGKILL)

    if when == "writing":
        annotate._write_one = write_then_die
    else:
        h5py.Group.move = move_then_die
    add_gradients(path, "bptt", _grads(Path(path), 2.0))


@pytest.mark.parametrize("when", ["writing", "renaming"])
def test_killed_annotation_leaves_no_partial_gradient(tmp_path: Path, when: str) -> None:
    path = tmp_path / "run.h5"
    _write_run(path, traces=False)
    n_trials = open_run(path).n_trials
    estimators = {p: open_run(path).projection(p).estimators for p in GRAD_PROJS}
    repo = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path[:0] = [{repo!r}]; "
        f"from tests.io.test_run_log import _annotate_child; _annotate_child({str(path)!r}, {when!r})"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _hidden_links(path)  # the killed call left its hidden datasets behind ...
    run = open_run(path)  # ... which no reader takes for a gradient
    assert run.n_trials == n_trials
    new = _grads(path, 2.0)
    for p in GRAD_PROJS:
        proj = run.projection(p)
        assert [e for e in proj.estimators if e != "bptt"] == estimators[p]
        if "bptt" in proj.estimators:  # only a gradient moved in place, complete
            assert when == "renaming" and p == "input"
            np.testing.assert_array_equal(proj.grad("bptt"), new[p])
        else:
            assert not (when == "renaming" and p == "input")
    add_gradients(path, "bptt", new, overwrite=when == "renaming")
    assert _hidden_links(path) == []
    run = open_run(path)
    for p in GRAD_PROJS:
        np.testing.assert_array_equal(run.projection(p).grad("bptt"), new[p])


def test_rename_gradient(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    exp = _write_run(path, traces=False)
    rename_gradient(path, "eprop", "online", ["input", "recurrent"])
    run = open_run(path)
    assert run.projection("recurrent").estimators == ["online", "random"]
    assert run.projection("output").estimators == ["eprop"]
    want = np.stack([t["grads"]["recurrent"]["eprop"] for t in exp["trials"]])
    np.testing.assert_array_equal(run.projection("recurrent").grad("online"), want)
    with pytest.raises(RunFileError, match="no gradient estimator 'eprop'"):
        rename_gradient(path, "eprop", "online", ["recurrent"])
    with pytest.raises(RunFileError, match="already has gradient 'random'"):
        rename_gradient(path, "online", "random", ["recurrent"])
    rename_gradient(path, "online", "random", ["recurrent"], overwrite=True)
    np.testing.assert_array_equal(open_run(path).projection("recurrent").grad("random"), want)


# ---------------------------------------------------------------------- SONATA / libsonata
def test_spikes_readable_by_libsonata(tmp_path: Path) -> None:
    libsonata = pytest.importorskip("libsonata")
    path = tmp_path / "run.h5"
    exp = _write_run(path)
    reader = libsonata.SpikeReader(str(path))
    assert sorted(reader.get_population_names()) == ["input", "readout", "recurrent"]
    for pop in ("recurrent", "input"):
        steps, ids = _steps_ids(exp, pop)
        got = reader[pop].get()
        assert got == list(zip(ids.tolist(), (steps * DT).tolist(), strict=True))
        assert reader[pop].sorting == "by_time"
    assert reader["readout"].get() == []
    with h5py.File(path, "r") as f:
        # an HDF5 ENUM with uint8 base (a string or plain int attribute is unreadable by libsonata)
        tid = f["spikes/recurrent"].attrs.get_id("sorting").get_type()
        assert isinstance(tid, h5py.h5t.TypeEnumID) and tid.get_super().get_size() == 1
        assert h5py.check_enum_dtype(h5py.Datatype(tid).dtype) == {"none": 0, "by_id": 1, "by_time": 2}
        assert f["spikes/recurrent"].attrs["sorting"] == 2
        assert f["spikes/recurrent/timestamps"].attrs["units"] == "ms"
        assert f["spikes/recurrent/timestamps"].compression is None


@pytest.mark.parametrize("reader_name", ["SomaReportReader", "ElementReportReader"])
def test_report_readable_by_libsonata(tmp_path: Path, reader_name: str) -> None:
    libsonata = pytest.importorskip("libsonata")
    path = tmp_path / "run.h5"
    exp = _write_run(path)
    want = np.concatenate(exp["trace_v"])
    pop = getattr(libsonata, reader_name)(str(path))["recurrent"]
    start, stop, dt = pop.times
    assert (start, dt) == (0.0, DT) and pop.time_units == "ms" and pop.data_units == "mV"
    frame = pop.get()
    data = np.asarray(frame.data)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, want)
    assert len(frame.times) == want.shape[0]
    ids = np.asarray(frame.ids)
    node_ids = ids if ids.ndim == 1 else ids[:, 0]
    np.testing.assert_array_equal(node_ids, np.arange(N_REC))
    with h5py.File(path, "r") as f:
        m = f["report/recurrent/mapping"]
        assert m["index_pointer"] == m["index_pointers"]  # hard link for bmtk
        assert m["element_pos"].shape == (N_REC,)
        assert f["report/recurrent"] == f["report_v/recurrent"]  # first variable is hard-linked
        np.testing.assert_array_equal(f["report_a/recurrent/data"][()], np.concatenate(exp["trace_a"]))


def test_second_report_variable_readable_by_libsonata_after_relink(tmp_path: Path) -> None:
    """Every /report_<var> root is a complete SONATA report: linking it as /report makes libsonata read it."""
    libsonata = pytest.importorskip("libsonata")
    path = tmp_path / "run.h5"
    exp = _write_run(path)
    copy = tmp_path / "a.h5"
    with h5py.File(path, "r") as f, h5py.File(copy, "w") as g:
        f.copy("report_a", g, name="report")
    data = np.asarray(libsonata.ElementReportReader(str(copy))["recurrent"].get().data)
    np.testing.assert_array_equal(data, np.concatenate(exp["trace_a"]))


# ---------------------------------------------------------------------- bad files
def _bad_file(tmp_path: Path, case: str) -> tuple[Path, str]:
    path = tmp_path / f"{case}.h5"
    if case == "missing":
        return path, "no such file"
    if case == "directory":
        path.mkdir()
        return path, "directory"
    if case == "not_hdf5":
        path.write_text("time,loss\n0,1.0\n")
        return path, "not an HDF5 file"
    if case == "foreign_hdf5":
        with h5py.File(path, "w") as f:
            f["data"] = np.arange(3)
        return path, "no 'format' attribute"
    if case == "other_format":
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "something-else"
        return path, "not a neuroplast run log"
    good = tmp_path / "good.h5"
    _write_run(good, traces=False)
    if case == "truncated":
        raw = good.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
        return path, "truncated"
    if case == "newer":
        os.replace(good, path)
        with h5py.File(path, "r+") as f:
            f.attrs["format_version"] = np.int64(FORMAT_VERSION + 1)
        return path, f"format_version {FORMAT_VERSION + 1} is newer"
    if case == "no_trials_group":
        os.replace(good, path)
        with h5py.File(path, "r+") as f:
            del f["trials"]
        return path, "/trials is missing"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "directory",
        "not_hdf5",
        "foreign_hdf5",
        "other_format",
        "truncated",
        "newer",
        "no_trials_group",
    ],
)
def test_bad_files_raise_one_line_error(tmp_path: Path, case: str) -> None:
    path, words = _bad_file(tmp_path, case)
    with pytest.raises(RunFileError) as info:
        open_run(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and words in msg
    assert isinstance(info.value, Exception) and info.value.path == path


def test_missing_projection(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _write_run(path, traces=False)
    with h5py.File(path, "r+") as f:
        del f["projections/feedback"]
    run = open_run(path)
    with pytest.raises(RunFileError) as info:
        run.projection("feedback")
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "no projection 'feedback'" in msg and "recurrent" in msg
    with pytest.raises(RunFileError, match="no trace"):
        run.trace("recurrent", "v")
    with pytest.raises(RunFileError, match="no spikes for population 'hidden'"):
        run.spikes("hidden")


# ---------------------------------------------------------------------- writer behaviour
def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious")
    with pytest.raises(RunFileError) as info:
        _write_run(path)
    assert (
        str(path) in str(info.value) and "already exists" in str(info.value) and "\n" not in str(info.value)
    )
    assert path.read_bytes() == b"precious"
    _write_run(path, force=True)
    assert open_run(path).n_trials == 12
    with pytest.raises(RunFileError, match="does not exist"):
        _write_run(tmp_path / "no" / "run.h5")


def test_invalid_input_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pops, edges = _setup(rng)
    kw = _writer_kw(pops, edges)
    with pytest.raises(ValueError, match="task_kind"):
        RunWriter(tmp_path / "a.h5", task_kind="ranking", **kw)
    with pytest.raises(ValueError, match="TOML"):
        RunWriter(tmp_path / "a.h5", task_kind="regression", **(kw | {"config_toml": "a = = 1"}))
    with RunWriter(tmp_path / "b.h5", task_kind="classification", **kw) as w:
        x = np.zeros((N_STEPS, N_IN))
        with pytest.raises(ValueError, match="shape"):
            w.add_trial(0, np.zeros((N_STEPS + 1, N_IN)), 0, loss=1.0)
        with pytest.raises(ValueError, match="label"):
            w.add_trial(0, x, N_OUT, loss=1.0)
        with pytest.raises(ValueError, match="spike counts"):
            w.add_trial(0, x + 0.5, 0, loss=1.0)
        with pytest.raises(ValueError, match="outside the trial"):
            w.add_trial(0, x, 0, loss=1.0, spikes={"recurrent": ([N_STEPS], [0])})
        with pytest.raises(ValueError, match="population size"):
            w.add_trial(0, x, 0, loss=1.0, spikes={"recurrent": ([0], [N_REC])})
        with pytest.raises(ValueError, match="unknown projection"):
            w.add_trial(0, x, 0, loss=1.0, grads={"lateral": {"eprop": [0.0]}})
        w.add_trial(0, x, 1, loss=1.0, start_step=100)
        with pytest.raises(ValueError, match="before the end of the previous trial"):
            w.add_trial(0, x, 1, loss=1.0, start_step=100)
        with pytest.raises(ValueError, match="missing"):
            w.add_iteration({"input": np.zeros(N_IN * N_REC)}, {})
        w.finish({p: np.zeros(_n_edges(edges, p)) for p in edges})
        with pytest.raises(RunFileError, match="already finished"):
            w.add_trial(1, x, 1, loss=1.0)
    run = open_run(tmp_path / "b.h5")
    assert run.n_trials == 1 and run.trials["start_step"][0] == 100 and run.n_iterations == 0
    # no update: the final weights (row 0) are the weights the trial ran with
    np.testing.assert_array_equal(
        run.replay(0).weights_before["recurrent"], np.zeros(_n_edges(edges, "recurrent"))
    )


def test_exception_in_block_keeps_complete_trials(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pops, edges = _setup(rng)
    path = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with RunWriter(path, task_kind="regression", **_writer_kw(pops, edges, flush_every=100)) as w:
            for k in range(5):
                tr = _trial(rng, "regression", k, edges)
                w.add_trial(0, tr["x"], tr["target"], loss=tr["loss"], spikes=tr["spikes"])
            raise RuntimeError("boom")
    run = open_run(path)
    assert run.n_trials == 5 and not run.finished and run.n_iterations == 0


def test_deterministic(tmp_path: Path) -> None:
    """The same seed writes the same file: every group, dataset and attribute, bit for bit."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _write_run(a, "classification", seed=7)
    _write_run(b, "classification", seed=7)
    with h5py.File(a, "r") as f:
        names = ["/"]
        f.visit(names.append)
    assert len(names) > 40
    assert diff_files(a, b, ignore_attrs=()) == []


# ---------------------------------------------------------------------- crash safety
CRASH_FLUSH_EVERY = 4
CRASH_BATCH = 6


def _crash_trial(k: int) -> dict[str, Any]:
    rng = np.random.default_rng(1000 + k)
    T = N_STEPS
    return dict(
        x=(rng.random((T, N_IN)) < 0.4).astype(np.uint8),
        target=rng.normal(size=(T, N_OUT)),
        loss=float(rng.random()),
        spikes=(rng.integers(0, T, 20), rng.integers(0, N_REC, 20)),
        grad=rng.normal(size=N_REC * N_OUT),
    )


def _crash_weights(it: int) -> np.ndarray:
    return np.random.default_rng(5000 + it).normal(size=N_REC * N_OUT)


def _crash_child(path: str) -> None:  # pragma: no cover - runs in a subprocess
    rng = np.random.default_rng(0)
    pops, _ = _setup(rng)
    out = np.meshgrid(np.arange(N_REC), np.arange(N_OUT), indexing="ij")
    edges = {"output": (out[0].ravel(), out[1].ravel())}
    w = RunWriter(path, task_kind="regression", **_writer_kw(pops, edges, flush_every=CRASH_FLUSH_EVERY))
    k = 0
    flushed = 0
    while True:
        tr = _crash_trial(k)
        w.add_trial(
            k // CRASH_BATCH,
            tr["x"],
            tr["target"],
            loss=tr["loss"],
            spikes={"recurrent": tr["spikes"]},
            grads={"output": {"eprop": tr["grad"]}},
        )
        k += 1
        if k % CRASH_BATCH == 0:
            it = k // CRASH_BATCH - 1
            w.add_iteration(
                {"output": _crash_weights(it)}, {"output": _crash_weights(it + 1) - _crash_weights(it)}
            )
        if w.n_trials_flushed != flushed:
            flushed = w.n_trials_flushed
            print(f"flushed {flushed}", flush=True)


def test_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.h5"
    repo = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path[:0] = [{repo!r}]; "
        f"from tests.io.test_run_log import _crash_child; _crash_child({str(path)!r})"
    )
    errlog = tmp_path / "child.err"
    notices: list[str] = []
    with open(errlog, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        while len(notices) < 3:  # the child prints one line per flush
            line = proc.stdout.readline()
            if not line:
                break
            notices.append(line.strip())
        assert len(notices) == 3, (notices, errlog.read_text())
        proc.send_signal(signal.SIGKILL)  # mid-run, probably inside the next add_trial/flush
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    run = open_run(path)
    flushed = int(notices[-1].split()[1])
    assert run.n_trials >= flushed and not run.finished
    assert {len(v) for v in run.trials.values()} == {run.n_trials}
    proj = run.projection("output")
    grads = proj.grad("eprop")
    assert grads.shape == (run.n_trials, N_REC * N_OUT)
    ts, ids = run.spikes("recurrent")
    assert ts.size == 20 * run.n_trials
    for k in range(run.n_trials):
        tr = _crash_trial(k)
        rp = run.replay(k)
        np.testing.assert_array_equal(rp.x, tr["x"])
        np.testing.assert_array_equal(rp.target, tr["target"])
        np.testing.assert_array_equal(grads[k], tr["grad"])
        assert rp.loss == tr["loss"] and rp.start_step == k * N_STEPS
        if rp.weights_before is not None:
            np.testing.assert_array_equal(rp.weights_before["output"], _crash_weights(rp.iteration))
    assert run.n_iterations >= run.n_trials // CRASH_BATCH - 1
    np.testing.assert_array_equal(
        proj.weights, np.stack([_crash_weights(i) for i in range(run.n_iterations)])
    )
