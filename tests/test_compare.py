"""Tests of neuroplast.analysis: metrics, `compare_run` / `neuroplast compare`, `neuroplast plot`.

The run logs are synthetic but written in the layout of ``neuroplast run`` (neuroplast.training.runner)
without Brian2: trials are simulated with the NumPy reference and the logged estimator is NumPy e-prop
(``eprop_grads`` with B = W_outᵀ), updated with plain SGD.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from neuroplast.analysis import compare_run
from neuroplast.analysis.metrics import (
    all_metrics,
    cosine_similarity,
    norm_ratio,
    relative_error,
    sign_agreement,
)
from neuroplast.build import model_params
from neuroplast.cli import main
from neuroplast.config import parse_config, to_toml
from neuroplast.gradients.eprop import eprop_grads
from neuroplast.gradients.trial import TrialData
from neuroplast.io import RunFileError, RunWriter, open_run
from neuroplast.model.dynamics import simulate
from neuroplast.model.losses import get_loss
from neuroplast.model.params import Weights

N_REC, N_IN, T = 10, 6, 60


# --------------------------------------------------------------------------- metrics


def test_metrics_known_values() -> None:
    g = np.array([1.0, -2.0, 0.0, 2.0])
    assert cosine_similarity(g, g) == pytest.approx(1.0)
    assert cosine_similarity(-g, g) == pytest.approx(-1.0)
    assert relative_error(g, g) == 0.0
    assert relative_error(2 * g, g) == pytest.approx(1.0)
    assert norm_ratio(0.5 * g, g) == pytest.approx(0.5)
    est = np.array([3.0, 1.0, -5.0, 0.1])  # entry 2 has g = 0: no sign, not counted
    assert sign_agreement(est, g) == pytest.approx(2 / 3)
    orth = np.array([2.0, 1.0, 7.0, 0.0])
    assert cosine_similarity(orth, g) == pytest.approx(0.0, abs=1e-15)


def test_metrics_batched_and_nan() -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=(5, 3, 4))
    e = g + 0.1 * rng.normal(size=g.shape)
    e[2] = np.nan  # "not computed"
    g[4] = 0.0  # zero exact gradient
    m = all_metrics(e, g, batch_axes=1)
    for key, v in m.items():
        assert v.shape == (5,), key
        assert np.isnan(v[2]) and np.isnan(v[4]), key
        for k in (0, 1, 3):
            assert v[k] == pytest.approx(float(all_metrics(e[k], g[k])[key]), rel=1e-12), (
                key
            )  # row = whole-array metric of that row
    assert np.all(m["cosine"][[0, 1, 3]] > 0.9)
    assert cosine_similarity(e, g, batch_axes=2).shape == (5, 3)
    with pytest.raises(ValueError, match="shape"):
        cosine_similarity(np.ones(3), np.ones(4))
    sign = sign_agreement(np.array([1.0, -1.0]), np.array([1e-20, 1.0]))
    assert sign == 0.0  # the 1e-20 entry is below rtol · max|g| and is ignored


# --------------------------------------------------------------------------- synthetic runs


def _config(kind: str, reg: float) -> Any:
    sim = {"dt_ms": 1.0, "n_steps": T, "seed": 3}
    net = {"n_rec": N_REC, "n_out": 1, "v_th": 0.05, "tau_m_ms": 20.0, "tau_out_ms": 20.0}
    train = {
        "rule": "eprop",
        "optimizer": "sgd",
        "learning_rate": 1e-6,
        "reg_coeff": reg,
        "reg_rate_hz": 20.0,
    }
    if kind == "regression":
        task = {"name": "sine", "n_in": N_IN}
        train["loss"] = "mse"
    else:
        task = {"name": "evidence", "n_in": 8, "n_cues": 2, "cue_ms": 10.0, "gap_ms": 5.0, "recall_ms": 15.0}
        net["n_out"] = 2
        train["loss"] = "cross_entropy"
    return parse_config({"simulation": sim, "network": net, "task": task, "training": train})


def write_run(
    path: Path,
    *,
    kind: str = "regression",
    rec_scale: float = 0.05,
    n_iter: int = 3,
    w_in: tuple[float, float] = (0.03, 0.05),
    w_out: float = 0.1,
    batch: int = 2,
    reg: float = 0.5,
    partial_iteration: bool = False,
    seed: int = 0,
) -> Path:
    """Train a tiny network with NumPy e-prop and log it like ``neuroplast run``; return the file."""
    cfg = _config(kind, reg)
    params = model_params(cfg)
    loss = get_loss(cfg.training.loss)
    n_in, n_out = cfg.task.n_in, cfg.network.n_out
    rng = np.random.default_rng(seed)
    mask_in = rng.random((N_REC, n_in)) < 0.8
    mask_rec = (rng.random((N_REC, N_REC)) < 0.5) & ~np.eye(N_REC, dtype=bool)
    w = Weights(
        rng.normal(w_in[0], w_in[1], (N_REC, n_in)),
        rng.normal(0.0, rec_scale, (N_REC, N_REC)) if rec_scale else np.zeros((N_REC, N_REC)),
        rng.normal(0.0, w_out, (n_out, N_REC)),
        np.zeros(n_out),
        mask_in,
        mask_rec,
    )
    e = {"input": np.nonzero(mask_in), "recurrent": np.nonzero(mask_rec), "output": np.nonzero(w.mask_out)}
    edges = {name: (src, tgt) for name, (tgt, src) in e.items()}  # np.nonzero gives (post, pre)
    edges["feedback"] = (edges["output"][1], edges["output"][0])

    def vec(dense: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {n: np.asarray(m)[edges[n][1], edges[n][0]] for n, m in dense.items() if n != "bias"}
        out["bias"] = np.asarray(dense["bias"], float).copy()
        return out

    def wdict(w: Weights) -> dict[str, np.ndarray]:
        return {
            "input": w.w_in,
            "recurrent": w.w_rec,
            "output": w.w_out,
            "bias": w.b_out,
            "feedback": w.w_out.T,
        }

    f_target = cfg.training.reg_rate_hz * cfg.simulation.dt_ms * 1e-3
    with RunWriter(
        path,
        config_toml=to_toml(cfg),
        dt_ms=cfg.simulation.dt_ms,
        seed=cfg.simulation.seed,
        populations={"input": {}, "recurrent": {"alpha": np.full(N_REC, params.alpha)}, "readout": {}},
        projections_edges={**edges, "bias": None},
        n_in=n_in,
        n_out=n_out,
        task_kind=kind,
        n_steps=T,
        force=True,
        flush_every=2,
    ) as writer:
        for it in range(n_iter + int(partial_iteration)):
            grads = []
            for _ in range(batch):
                x = (rng.random((T, n_in)) < 0.15).astype(float)
                if kind == "regression":
                    target = np.sin(np.arange(T) / 7.0)[:, None]
                    mask, label = np.ones(T), None
                else:
                    label = int(rng.integers(0, n_out))
                    target = np.zeros((T, n_out))
                    target[:, label] = 1.0
                    mask = (np.arange(T) >= T - 15).astype(float)
                traj = simulate(params, w, x).squeeze()
                trial = TrialData.make(
                    params, w, x, target, mask, loss, traj=traj, c_reg=reg, f_target=f_target
                )
                g = eprop_grads(trial, w.w_out.T)
                grads.append(g)
                gv = vec(g)
                writer.add_trial(
                    it,
                    x,
                    target if kind == "regression" else label,
                    loss=loss.value(traj.y, target, mask),
                    mask=(mask > 0) if kind == "classification" else None,
                    spikes={"recurrent": np.nonzero(traj.z), "input": np.nonzero(x)},
                    grads={p: {"eprop": gv[p]} for p in ("input", "recurrent", "output", "bias")},
                )
            if partial_iteration and it == n_iter:
                break  # killed before this iteration's weights were logged
            mean = {k: np.mean([g[k] for g in grads], axis=0) for k in grads[0]}
            upd = {k: -cfg.training.learning_rate * v for k, v in mean.items()}
            if not rec_scale:
                upd["recurrent"] = np.zeros_like(upd["recurrent"])  # W_rec stays 0
            w_new = Weights(
                w.w_in + upd["input"],
                w.w_rec + upd["recurrent"],
                w.w_out + upd["output"],
                w.b_out + upd["bias"],
                mask_in,
                mask_rec,
            )
            before, after = wdict(w), wdict(w_new)
            writer.add_iteration(vec(before), vec({k: after[k] - before[k] for k in before}))
            w = w_new
        if not partial_iteration:
            writer.finish(vec(wdict(w)))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("runs")
    return {
        "rec": write_run(d / "rec.h5"),
        "norec": write_run(d / "norec.h5", rec_scale=0.0),
        "cls": write_run(d / "cls.h5", kind="classification"),
    }


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


# --------------------------------------------------------------------------- compare_run


def test_synthetic_run_is_active(runs) -> None:
    for path in runs.values():
        run = open_run(path)
        _, ids = run.spikes("recurrent")
        assert ids.size > 0.02 * run.n_trials * T * N_REC, "the synthetic network must spike"


def test_compare_without_recurrence_eprop_is_exact(runs, tmp_path) -> None:
    path = _copy(runs["norec"], tmp_path / "norec.h5")
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
    path = _copy(runs["rec"], tmp_path / "rec.h5")
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
    path = _copy(runs["rec"], tmp_path / "rec.h5")
    res = compare_run(path, keep_reset=True, progress=False)
    assert res["reference"] == "bptt_full"
    p = open_run(path).projection("recurrent")
    assert p.grad("bptt_full").shape == p.grad("bptt").shape
    assert not np.allclose(p.grad("bptt_full"), p.grad("bptt"))


def test_compare_classification(runs, tmp_path) -> None:
    path = _copy(runs["cls"], tmp_path / "cls.h5")
    res = compare_run(path, progress=False)
    assert res["task_kind"] == "classification"
    assert res["loss_check"]["max_rel_diff"] <= 1e-12
    m = res["projections"]["recurrent"]["eprop"]
    assert np.all(m["rel_error_vs_eprop_part"]["per_trial"] < 1e-9)


def test_compare_skips_trials_without_weights(tmp_path) -> None:
    path = write_run(tmp_path / "partial.h5", partial_iteration=True)
    run = open_run(path)
    assert run.n_trials == 8 and run.n_iterations == 3
    res = compare_run(path, progress=False)
    assert res["skipped"] == [6, 7]
    b = open_run(path).projection("input").grad("bptt")
    assert np.all(np.isnan(b[6:])) and np.all(np.isfinite(b[:6]))
    assert np.isnan(res["projections"]["input"]["eprop"]["cosine"]["per_trial"][7])


def test_compare_refuses_unreplayable(tmp_path) -> None:
    path = write_run(tmp_path / "none.h5", n_iter=0, partial_iteration=True)
    with pytest.raises(RunFileError, match="cannot be replayed"):
        compare_run(path, progress=False)


# --------------------------------------------------------------------------- CLI


def test_cli_compare_table_and_json(runs, tmp_path, capsys) -> None:
    path = _copy(runs["rec"], tmp_path / "rec.h5")
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
    path = _copy(runs["rec"], tmp_path / "tampered.h5")
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


# --------------------------------------------------------------------------- plots


def _is_png(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot(runs, tmp_path, capsys) -> None:
    cls = _copy(runs["cls"], tmp_path / "cls.h5")
    assert main(["plot", str(cls)]) == 0  # before compare: no alignment figure, a note says why
    out = capsys.readouterr().out
    assert "neuroplast compare" in out
    d = tmp_path / "cls_plots"
    assert all(_is_png(d / n) for n in ("loss.png", "factorization.png", "raster.png"))
    assert not (d / "alignment.png").exists()
    path = _copy(runs["rec"], tmp_path / "rec.h5")
    assert main(["compare", str(path), "--quiet"]) == 0
    out_dir = tmp_path / "figs"
    assert main(["plot", str(path), "--out", str(out_dir), "--trial", "-1"]) == 0
    for name in ("loss.png", "alignment.png", "factorization.png", "raster.png"):
        assert _is_png(out_dir / name), name
