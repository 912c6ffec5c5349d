"""``compare_run`` / ``neuroplast compare``: the logged estimator against BPTT replayed from the file.

The run logs are synthetic: a tiny network trained by ``neuroplast run``'s code (``run_training``) on the
numpy device, without Brian2 — symmetric e-prop, plain SGD; ``norec`` has W_rec = 0 at every iteration
(``training.train_recurrent = false``), where e-prop is BPTT (tests/helpers.py, ``write_synthetic_run``;
fixture ``runs`` in tests/analysis/conftest.py).  Metrics: test_metrics.py; plots: test_plots.py.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from neuroplast.analysis import compare_run
from neuroplast.cli import main
from neuroplast.io import RunFileError, open_run
from tests.helpers import SYNTH_N_REC, SYNTH_T, copy_file, write_synthetic_run


def test_synthetic_run_is_active(runs) -> None:
    for path in runs.values():
        run = open_run(path)
        _, ids = run.spikes("recurrent")
        assert ids.size > 0.02 * run.n_trials * SYNTH_T * SYNTH_N_REC, "the synthetic network must spike"


def test_compare_without_recurrence_eprop_is_exact(runs, tmp_path) -> None:
    path = copy_file(runs["norec"], tmp_path / "norec.h5")
    res = compare_run(path, progress=False)
    run = open_run(path)
    for name in ("input", "recurrent", "output", "bias"):
        p = run.projection(name)
        bptt = p.grad("bptt")
        assert bptt.shape == (run.n_trials, p.n_edges)
        assert np.all(np.isfinite(bptt)) and np.any(bptt != 0)
        m = res["projections"][name]["eprop"]
        assert np.all(m["cosine"]["per_trial"] > 1 - 1e-10), name
        assert np.all(m["rel_error"]["per_trial"] < 1e-9), name
    assert res["loss_check"]["max_rel_diff"] <= 1e-12
    rec_part = run.projection("recurrent").grad("bptt_recurrent_part")
    assert np.all(rec_part == 0.0)  # nothing flows back through W_rec = 0


def test_compare_with_recurrence_differs_and_parts_sum(runs, tmp_path) -> None:
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    res = compare_run(path, progress=False)
    run = open_run(path)
    assert res["replayed"] == list(range(run.n_trials)) and res["skipped"] == []
    assert set(res["written"]) == {"bptt", "bptt_eprop_part", "bptt_recurrent_part"}
    for name in ("input", "recurrent"):
        m = res["projections"][name]["eprop"]
        assert np.all(m["rel_error"]["per_trial"] > 1e-3), name  # a comparator must be able to disagree
        assert np.all(m["rel_error_vs_eprop_part"]["per_trial"] < 1e-9), name  # e-prop = the kept part
        p = run.projection(name)
        b, k, r = p.grad("bptt"), p.grad("bptt_eprop_part"), p.grad("bptt_recurrent_part")
        assert np.all(np.linalg.norm(r, axis=1) > 1e-3 * np.linalg.norm(b, axis=1))
        np.testing.assert_allclose(k + r, b, rtol=0, atol=1e-12 * np.abs(b).max())
    for name in ("output", "bias"):  # readout gradients are local: exact for e-prop
        assert np.all(res["projections"][name]["eprop"]["rel_error"]["per_trial"] < 1e-12)
    summary = res["projections"]["recurrent"]["eprop"]["cosine"]
    assert summary["mean"] == pytest.approx(np.mean(summary["per_trial"]))
    assert summary["first"] == summary["per_trial"][0] and summary["last"] == summary["per_trial"][-1]
    # rerunning replaces the datasets and gives the same numbers
    res2 = compare_run(path, progress=False)
    np.testing.assert_array_equal(
        res2["projections"]["recurrent"]["eprop"]["cosine"]["per_trial"], summary["per_trial"]
    )
    assert res2["projections"]["recurrent"]["eprop"]["cosine"]["mean"] == summary["mean"]
    with h5py.File(path, "r") as f:
        assert f["projections/recurrent/grad/bptt"].attrs["written_by"] == "neuroplast compare"


def test_compare_keep_reset(runs, tmp_path) -> None:
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    res = compare_run(path, keep_reset=True, progress=False)
    assert res["reference"] == "bptt_full"
    p = open_run(path).projection("recurrent")
    assert p.grad("bptt_full").shape == p.grad("bptt").shape
    assert not np.allclose(p.grad("bptt_full"), p.grad("bptt"))


def test_compare_classification(runs, tmp_path) -> None:
    path = copy_file(runs["cls"], tmp_path / "cls.h5")
    res = compare_run(path, progress=False)
    assert res["task_kind"] == "classification"
    assert res["loss_check"]["max_rel_diff"] <= 1e-12
    m = res["projections"]["recurrent"]["eprop"]
    assert np.all(m["rel_error_vs_eprop_part"]["per_trial"] < 1e-9)


def test_compare_skips_trials_without_weights(tmp_path) -> None:
    path = write_synthetic_run(tmp_path / "partial.h5", partial_iteration=True)
    run = open_run(path)
    assert run.n_trials == 8 and run.n_iterations == 3
    res = compare_run(path, progress=False)
    assert res["skipped"] == [6, 7]
    b = open_run(path).projection("input").grad("bptt")
    assert np.all(np.isnan(b[6:])) and np.all(np.isfinite(b[:6]))
    assert np.isnan(res["projections"]["input"]["eprop"]["cosine"]["per_trial"][7])


def test_compare_refuses_unreplayable(tmp_path) -> None:
    path = write_synthetic_run(tmp_path / "none.h5", n_iter=0, partial_iteration=True)
    with pytest.raises(RunFileError, match="cannot be replayed"):
        compare_run(path, progress=False)


# --------------------------------------------------------------------------- CLI


def test_cli_compare_table_and_json(runs, tmp_path, capsys) -> None:
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    assert main(["compare", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    for word in ("recurrent: vs bptt", "cosine", "rel. error", "sign agreement", "norm ratio", "eprop"):
        assert word in out
    assert main(["compare", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cos = data["projections"]["input"]["eprop"]["cosine"]
    assert set(cos) == {"mean", "first", "last", "per_trial"} and len(cos["per_trial"]) == data["n_trials"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("neuroplast compare: error:"), err
    return err


def test_cli_compare_refuses_tampered_loss(runs, tmp_path, capsys) -> None:
    path = copy_file(runs["rec"], tmp_path / "tampered.h5")
    with h5py.File(path, "r+") as f:
        f["trials/loss"][3] = f["trials/loss"][3] * (1 + 1e-6)
    assert main(["compare", str(path), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert "trial 3" in err and "replayed loss" in err and str(path) in err
    assert "bptt" not in open_run(path).projection("input").estimators  # nothing written


def test_cli_compare_refuses_foreign_files(tmp_path, capsys) -> None:
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    for path in (foreign, text, tmp_path / "missing.h5"):
        assert main(["compare", str(path), "--quiet"]) == 2
        assert str(path) in _one_line_error(capsys)


@pytest.mark.parametrize(("kind", "keep_reset"), [("rec", False), ("cls", True)])
def test_compare_rtrl_is_the_reference_forward_in_time(runs, tmp_path, kind: str, keep_reset: bool) -> None:
    """``--rtrl``: exact RTRL (the forward factorization) equals the reference it is computed for (≤ 1e-12;
    measured ≤ 2e-15) and is written as grad/rtrl; e-prop, in the same table, does not."""
    path = copy_file(runs[kind], tmp_path / f"{kind}.h5")
    res = compare_run(path, progress=False, keep_reset=keep_reset, rtrl=True)
    assert "rtrl" in res["written"]
    for name in ("input", "recurrent", "output", "bias"):
        m = res["projections"][name]["rtrl"]
        assert np.all(m["rel_error"]["per_trial"] < 1e-12), name
    assert np.all(res["projections"]["recurrent"]["eprop"]["rel_error"]["per_trial"] > 1e-3)
    with h5py.File(path, "r") as f:
        assert f["projections/recurrent/grad/rtrl"].attrs["detach_reset"] == int(not keep_reset)


def test_cli_compare_rtrl_refuses_a_large_network(tmp_path, capsys, monkeypatch) -> None:
    """Beyond its cost limit --rtrl is one line naming the option, and the file is left as it was."""
    import neuroplast.gradients.derived as derived

    path = write_synthetic_run(tmp_path / "big.h5")
    before = open_run(path).projection("recurrent").estimators
    monkeypatch.setattr(derived, "RTRL_MAX_OPS", 1.0)
    assert main(["compare", str(path), "--rtrl", "--quiet"]) == 2
    msg = _one_line_error(capsys)
    assert "--rtrl" in msg and "small networks" in msg
    assert open_run(path).projection("recurrent").estimators == before


def test_compare_and_analyze_progress_is_plain_lines_on_a_pipe(runs, tmp_path, capsys) -> None:
    """Not on a terminal, compare and analyze say what `neuroplast run` says: lines, no tqdm ``\\r`` bar."""
    path = copy_file(runs["rec"], tmp_path / "rec.h5")
    n = open_run(path).n_trials
    assert main(["compare", str(path)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and f"compare: trial {n}/{n}, {n} trials in " in err, err
    assert main(["analyze", str(path), "--trials", "0:3", "--out", str(tmp_path / "figs")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "analyze: trial 3/3, 3 trials in " in err, err
