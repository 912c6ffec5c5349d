"""cuda_standalone (brian2cuda, the optional ``cuda`` extra): the default sine network's code is generated
without a GPU and without nvcc (``Brian2Network(..., compile=False)``, Brian2's ``build(compile=False)``).

Only code generation is checked (CI has no GPU): the project holds the network's objects — the recurrent
update, the eligibility code of both gradient paths, the synapses created from arrays, the learning signal —,
takes its weights and inputs as run arguments, calls none of neuroplast's C++ functions, and is compiled with
strict floating point.  brian2cuda pins brian2 2.10.1 (Python >= 3.12): elsewhere these tests are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("brian2cuda", reason="brian2cuda (neuroplast's 'cuda' extra) is not installed")

from neuroplast.build import build  # noqa: E402
from neuroplast.config import load_config  # noqa: E402
from tests.helpers import SINE  # noqa: E402

pytestmark = pytest.mark.brian2

#: The gradient path's code objects: (name of the file's code object, variables it must write).
ELIGIBILITY = {
    "event-driven": ("elig_recurrent_elig_codeobject", ("ebar", "esum", "g")),
    "sweep": ("elig_recurrent_codeobject", ("ebar", "esum", "g")),
}


def _generate(folder: Path, **options) -> tuple[object, dict[str, str]]:
    """The sine network of models/sine.toml on cuda_standalone, generated into ``folder``: the network and
    every source file of its project by path."""
    from neuroplast.network.builder import Brian2Network

    cfg = load_config(SINE)
    setup = build(cfg)
    net = Brian2Network(
        setup.params,
        setup.weights,
        cfg.simulation.n_steps,
        device="cuda_standalone",
        loss=cfg.training.loss,
        gradients=True,
        regularization=cfg.training.reg_coeff > 0,
        record=False,
        build_dir=folder,
        compile=False,
        **options,
    )
    sources = {
        str(p.relative_to(folder)): p.read_text()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".cu", ".h") or p.name == "makefile"
    }
    return net, sources


@pytest.fixture
def no_gpu_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any command brian2cuda would run to ask for the GPU or CUDA (nvidia-smi, nvcc, deviceQuery) fails."""
    from brian2cuda.utils import gputools

    def refuse(*command):
        raise AssertionError(f"code generation ran {command}")

    monkeypatch.setattr(gputools, "_run_command_with_output", refuse)


@pytest.mark.parametrize(
    ("path", "options"),
    [("event-driven", {}), ("sweep", {"event_driven": False}), ("event-driven", {"batch": 2})],
    ids=["event-driven", "sweep", "batch-2"],
)
def test_the_sine_network_generates_cuda_code_without_a_gpu(
    tmp_path: Path, no_gpu_tools: None, path: str, options: dict
) -> None:
    net, src = _generate(tmp_path / "project", **options)
    assert {"main.cu", "objects.cu", "network.cu", "makefile"} <= set(src)
    # code object -> its file; Brian2 numbers a code object whose name a live one of another network in this
    # process already holds ("recurrent_update_codeobject_1"), so the number is not part of what is checked
    files: dict[str, str] = {}
    for file in sorted(src):
        if file.startswith("code_objects/"):
            files.setdefault(re.sub(r"(_codeobject)_\d+$", r"\1", Path(file).stem), file)
    objects = set(files)
    # the network's objects: the recurrent update and threshold, the three projections created from arrays
    # (no synapse table), the readout, the loss error, the learning signal, the gradients' code
    expected = {
        "recurrent_update_codeobject",
        "recurrent_spike_thresholder_codeobject",
        "recurrent_spike_resetter_codeobject",
        "readout_update_codeobject",
        "loss_mse_codeobject",
        "proj_output_summed_variable_L_pre_codeobject",
        "grad_output_codeobject",
        "grad_bias_codeobject",
        ELIGIBILITY[path][0],
    } | {f"proj_{key}_synapses_create_array_codeobject" for key in ("input", "recurrent", "output")}
    assert expected <= objects, sorted(expected - objects)
    update = src[files["recurrent_update_codeobject"]]
    assert all(f"_ptr_array_recurrent_{v}" in update for v in ("v", "psi", "refr", "zbar"))
    name, written = ELIGIBILITY[path]
    elig = src[files[name]]
    assert all(
        f"_ptr_array_elig_recurrent_{v}" in elig or f"_ptr_array_proj_recurrent_{v}" in elig for v in written
    )
    # what a launch sets: the weights, per-neuron parameters and B by name, the inputs and targets as
    # TimedArrays (no input byte table); none of neuroplast's C++ functions is called
    objects_cu = src["objects.cu"]
    for arg in ("proj_recurrent.w", "proj_input.w", "proj_output.B", "recurrent.rho", "X_input.values"):
        assert f'name == "{arg}"' in objects_cu, arg
    assert not [name for name, text in src.items() if "neuroplast_" in text]
    assert net.X is not None and net.X.values.shape == (1000, net.batch * net.n_in)
    # one run of the trial's duration; strict floating point on the GPU and on the host
    assert re.search(r"\bnetwork(_\d+)?\.run\(1\.0, NULL, 10\.0\);", src["main.cu"])  # numbered as above
    makefile = src["makefile"]
    assert "--fmad=false" in makefile and "--prec-div=true" in makefile and "-use_fast_math" not in makefile
    assert "-fno-fast-math" in makefile and "-ffp-contract=off" in makefile
    nvcc_flags = next(line for line in makefile.splitlines() if line.startswith("NVCCFLAGS"))
    assert nvcc_flags.split('-Xcompiler "')[0].split()[-1] == "-std=c++17"  # the last one counts
    assert "-std=c++11" not in nvcc_flags.split("-Xcompiler")[1]


def test_a_network_whose_code_was_only_generated_cannot_be_launched(
    tmp_path: Path, no_gpu_tools: None
) -> None:
    net, _ = _generate(tmp_path / "project")
    weights = build(load_config(SINE)).weights
    with pytest.raises(RuntimeError, match="compile=False"):
        net.run_trial(weights, __import__("numpy").zeros((net.n_steps, net.n_in)))
