"""Mutation check of the test suite: every realistic small change to the maths must fail a default test.

Each row of :data:`MUTANTS` names a file, a string in it, its replacement (a factor 0.999, a sign, an
off-by-one in a time index, a swapped argument, a dropped term) and the smallest selection of the default
test suite that must catch it.  The check copies the repository once into a scratch folder, then for each
row applies the mutant there, runs its selection with a timeout and restores the file::

    python scripts/check_mutants.py                 # every row (≈ 18 min on 2 busy cores, README)
    python scripts/check_mutants.py --only bptt     # the rows whose view or file contains "bptt"
    python scripts/check_mutants.py --check-only    # only that every string is found, once (seconds)

One line per mutant: ``caught``, ``MISSED`` (the selection passed: a test is missing) or ``ERROR: …``
(the string is not in the file, or found more than once; the mutant does not parse; the selection passed
nothing, timed out or could not run); then a summary.  Exit status 0 only when every mutant is caught.

Before any mutant, each distinct selection runs once on the unchanged copy and must pass (a line
``baseline passes: …`` each): a failing selection would report every mutant as caught.

Caches: the scratch copy writes no bytecode (a restored file of the mutant's size within the same second
would otherwise be read from a stale ``.pyc``).  Every mutant gets a fresh ``NEUROPLAST_CACHE`` for its
compiled cpp_standalone projects, whose key (network/cache.py ``_cache_parts``) does not hold the text of
the equations; only Brian2's Cython cache is shared between mutants, since Brian2 names each of its modules
by a hash of the module's full code (a mutated statement is a different module, never a stale one).
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What a scratch copy leaves out (besides what git ignores, when the root is a git checkout).
_SKIP = {".git", "__pycache__", ".pytest_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Mutant:
    """One mutant: in ``file`` (relative to the root), ``old`` (found exactly once) becomes ``new``; the
    pytest arguments ``tests`` (run from the root) must then fail."""

    view: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


class MutantError(Exception):
    """A mutant that cannot be applied (one line naming the file and the string)."""


# Test selections, each the smallest one of the default suite that must catch its mutants.
_NEURONS = ("tests/model/test_neurons.py",)
_BPTT_FD = ("tests/gradients/test_bptt.py::test_bptt_matches_finite_differences",)
_BPTT = ("tests/gradients/test_bptt.py",)
_EPROP = ("tests/gradients/test_eprop.py", "tests/gradients/test_bptt.py")
_DERIVED = ("tests/gradients/test_derived.py",)
_FACTORS = ("tests/gradients/test_model_truncated.py",)
_OPTIM = ("tests/plasticity/test_optim.py", "tests/plasticity/test_nest_adam.py")
_LOG = ("tests/io/test_run_log.py",)
_EQUALITY = ("tests/network/test_equality.py", "-k", "runtime and (alif-2 or mix-3)")
_ONLINE = ("tests/network/test_online_gradients.py", "-k", "runtime-mse and alif")
_IN_TRIAL_SGD = ("tests/network/test_in_trial.py", "-k", "runtime-mse-eprop-adaptive-sgd")
_IN_TRIAL_ADAM = ("tests/network/test_in_trial.py", "-k", "runtime-mse-eprop-adaptive-adam")
_MODEL_NET = ("tests/network/test_model_networks.py", "-k", "runtime and generated_network")
_CHUNKED = ("tests/training/test_chunked.py", "-k", "sine-adam and not threads")


def _CHUNKED_MODE(mode: str) -> tuple[str, ...]:  # noqa: N802 - reads as the selections above
    """The chunked engine's case of one mode (tests/training/test_chunked.py, ``test_chunked_modes_...``)."""
    return ("tests/training/test_chunked.py", "-k", f"modes and {mode}")


EQ, MC = "neuroplast/network/equations.py", "neuroplast/network/model_code.py"
DYN, STEP = "neuroplast/model/dynamics.py", "neuroplast/model/stepper.py"
ELIG, DER = "neuroplast/gradients/eligibility.py", "neuroplast/gradients/derived.py"
BPTT, OPT = "neuroplast/gradients/bptt.py", "neuroplast/plasticity/optim.py"
FAC = "neuroplast/gradients/model_truncated.py"
WRITER, BUF = "neuroplast/io/writer.py", "neuroplast/io/buffer.py"

#: The mutants, NumPy views first (seconds each), then the Brian2 ones (each compiles its changed code).
MUTANTS: tuple[Mutant, ...] = (
    # ---- the NumPy reference dynamics
    Mutant("dynamics", DYN, "a = rho * a + z", "a = rho * a + 0.999 * z", _NEURONS),
    Mutant("dynamics", DYN, "- v_th * z\n", "+ v_th * z\n", _NEURONS),
    Mutant(
        "dynamics",
        DYN,
        "params.n_ref, np.maximum(r - 1, 0)",
        "params.n_ref + 1, np.maximum(r - 1, 0)",
        _NEURONS,
    ),
    Mutant("dynamics", DYN, "(z @ weights.w_out.T) + weights.b_out", "(z @ weights.w_out.T)", _NEURONS),
    Mutant("stepper", STEP, "(z[None] @ weights.w_rec.T)[0])", "(z[None] @ weights.w_rec)[0])", _NEURONS),
    Mutant("stepper", STEP, "sur.psi(u, v_th, params.gamma)", "sur.psi(u, params.gamma, v_th)", _NEURONS),
    Mutant("stepper", STEP, "refr = r > 0\n", "refr = r > 1\n", _NEURONS),
    # ---- eligibility
    Mutant(
        "eligibility",
        ELIG,
        "(self.rho - self.beta * self.psi_prev)",
        "(self.rho + self.beta * self.psi_prev)",
        _EPROP,
    ),
    Mutant(
        "eligibility",
        ELIG,
        "self.ev = self.alpha * self.ev + pre_t",
        "self.ev = 0.999 * self.alpha * self.ev + pre_t",
        _EPROP,
    ),
    Mutant(
        "eligibility",
        ELIG,
        "psi_col * (self.ev[None, :] - self.beta * self.ea)",
        "psi_col * self.ev[None, :]",
        _EPROP,
    ),
    Mutant(
        "eligibility",
        DER,
        'J = jac["D"] + S[:, None, :] * psi_du_prev[None, :, :]',
        'J = jac["D"]',
        _DERIVED,
    ),
    Mutant(
        "eligibility",
        DER,
        'S = jac["S"] + jac["S_reset"] if keep_reset else jac["S"]',
        'S = jac["S"] if keep_reset else jac["S"]',
        _DERIVED,
    ),
    Mutant(
        "eligibility",
        DER,
        'out[k] = np.einsum("kj,kjp->jp", psi_du, eps[k])',
        'out[k] = np.einsum("kj,kjp->jp", psi_du_prev, eps[k])',
        _DERIVED,
    ),
    Mutant(
        "eligibility",
        DER,
        "ebar[k] = p.kappa * ebar[k] + e",
        "ebar[k] = 0.999 * p.kappa * ebar[k] + e",
        _DERIVED,
    ),
    # ---- BPTT
    Mutant(
        "bptt",
        BPTT,
        "da_next = -beta * psi_dz + rho * da_next",
        "da_next = beta * psi_dz + rho * da_next",
        _BPTT,
    ),
    Mutant("bptt", BPTT, "return dv @ w_rec", "return dv @ w_rec.T", _BPTT),
    # the batched backward pass (bptt_grads_batch): its own product, checked against each trial's bptt_grads
    Mutant(
        "bptt",
        BPTT,
        "np.matmul(dv[:, None, :], w_rec)",
        "np.matmul(dv[:, None, :], w_rec.T)",
        ("tests/gradients/test_eprop_batch.py::test_batched_bptt_is_bptt_of_each_trial_to_the_bit",),
    ),
    Mutant("bptt", BPTT, "dz = dz - v_th * dv_next", "dz = dz + v_th * dv_next", _BPTT_FD),
    Mutant(
        "bptt",
        BPTT,
        "dv_next = psi_dz + alpha * dv_next",
        "dv_next = psi_dz + 0.999 * alpha * dv_next",
        _BPTT,
    ),
    Mutant(
        "bptt",
        DER,
        "rec[t] = p.input_scale * (g_next @ w.w_rec)",
        "rec[t] = p.input_scale * (g_next @ w.w_rec.T)",
        _DERIVED,
    ),
    # ---- the analyses' factors of any neuron model
    Mutant("factors", FAC, "term = self.S[i] * prev[k]", "term = 0.999 * self.S[i] * prev[k]", _FACTORS),
    Mutant(
        "factors",
        FAC,
        "rec[1:] = p.input_scale * (g_next[:-1] @ w.w_rec)",
        "rec[1:] = p.input_scale * (g_next[:-1] @ w.w_rec.T)",
        _FACTORS,
    ),
    Mutant(
        "factors", FAC, "new[:, k] += Jik[t + 1] * lam[:, i]", "new[:, k] += Jik[t] * lam[:, i]", _FACTORS
    ),
    Mutant("factors", FAC, "s += both if k == l else 2.0 * both", "s += both", _FACTORS),
    # ---- the optimizer
    Mutant(
        "optimizer",
        OPT,
        "np.divide(v, 1 - self.b2**self.t, out=den)",
        "np.divide(v, 1 - self.b1**self.t, out=den)",
        _OPTIM,
    ),
    Mutant(
        "optimizer",
        OPT,
        "np.multiply(1 - self.b2, g, out=scratch)",
        "np.multiply(1 - self.b1, g, out=scratch)",
        _OPTIM,
    ),
    Mutant(
        "optimizer",
        OPT,
        "step = np.divide(m, 1 - self.b1**self.t)",
        "step = np.divide(m, 1 - self.b1 ** (self.t + 1))",
        _OPTIM,
    ),
    Mutant("optimizer", OPT, "np.sqrt(1 - self.b2**self.t)", "np.sqrt(1 - self.b2 ** (self.t + 1))", _OPTIM),
    Mutant(
        "optimizer",
        OPT,
        'np.add(weights.b_out, updates["bias"], dtype=float)',
        'np.add(weights.b_out, 0.0 * updates["bias"], dtype=float)',
        _OPTIM,
    ),
    # ---- the writer and what it writes
    Mutant("writer", BUF, "np.multiply(steps, spec.dt_ms", "np.multiply(steps + 1, spec.dt_ms", _LOG),
    Mutant("writer", WRITER, "self._next_step = start + T", "self._next_step = start + T - 1", _LOG),
    Mutant(
        "writer",
        BUF,
        "np.array([t.iteration for t in trials], dtype=np.int64)",
        "np.array([t.n_steps for t in trials], dtype=np.int64)",
        _LOG,
    ),
    Mutant("writer", WRITER, "np.int64(buf.n_trials_written)", "np.int64(buf.n_iterations_written)", _LOG),
    # ---- the Brian2 equations
    Mutant(
        "brian2",
        EQ,
        '"v = alpha * v + c_in * (I_in + I_rec) - v_th * z\\n"',
        '"v = alpha * v + c_in * (I_in + I_rec) - 0.999 * v_th * z\\n"',
        _EQUALITY,
    ),
    Mutant("brian2", EQ, '"a = rho * a + z\\n"', '"a = rho * a + 0.999 * z\\n"', _EQUALITY),
    Mutant(
        "brian2",
        EQ,
        'READOUT_UPDATE = "y = kappa * y + c_out * I_out + b',
        'READOUT_UPDATE = "y = kappa * y + c_out * I_out',
        _EQUALITY,
    ),
    Mutant("brian2", EQ, '"g += A_post * ebar\\n"', '"g += 0.999 * A_post * ebar\\n"', _ONLINE),
    Mutant(
        "brian2",
        EQ,
        "eps_a = (rho_post - beta_post * psi_post) * eps_a",
        "eps_a = (rho_post + beta_post * psi_post) * eps_a",
        _ONLINE,
    ),
    Mutant(
        "brian2", EQ, '"R = rho * R * (1 - ev) + ev\\n"', '"R = rho * R * (1 - ev) + 0.999 * ev\\n"', _ONLINE
    ),
    Mutant(
        "brian2",
        MC,
        'f"{DRIVE} = c_in * (I_in + I_rec)"',
        'f"{DRIVE} = c_in * (I_in + 0.999 * I_rec)"',
        _MODEL_NET,
    ),
    Mutant(
        "brian2",
        MC,
        'after.append(f"{PRE_DRIVE} = c_in * z")',
        'after.append(f"{PRE_DRIVE} = 0.999 * c_in * z")',
        _MODEL_NET,
    ),
    Mutant(
        "brian2",
        MC,
        'terms.append(f"bc_{i}_post * {PRE_DRIVE}_pre")',
        'terms.append(f"bc_{i}_post * {PRE_DRIVE}_post")',
        _MODEL_NET,
    ),
    # ---- the optimizer compiled into the network (in-trial learning; many trials per launch)
    Mutant(
        "brian2 optimizer",
        EQ,
        '"lam = in_trial_decay_post * active\\n"',
        '"lam = in_trial_decay_post\\n"',
        _IN_TRIAL_SGD,
    ),
    Mutant(
        "brian2 optimizer",
        EQ,
        "({b2} * {v} + (1 - {b2}) * {g} * {g})",
        "({b2} * {v} + (1 - {b1}) * {g} * {g})",
        _IN_TRIAL_ADAM,
    ),
    Mutant(
        "brian2 optimizer",
        EQ,
        "floor(t / t_update_period + 0.5) + (1 - active)\\n",
        "floor(t / t_update_period + 0.5) + (2 - active)\\n",
        _IN_TRIAL_ADAM,
    ),
    Mutant(
        "brian2 optimizer", EQ, "b1 * m + (1 - b1) * g : m;", "b1 * m + (1 - b1) * g * 0.999 : m;", _CHUNKED
    ),
    # the boundary step's averaged gradient (training.average_gradient) and Kolen-Pollack's B (eprop-adaptive)
    Mutant("brian2 optimizer", EQ, "? g / n : 0.0;", "? g : 0.0;", _CHUNKED_MODE("averaged")),
    Mutant(
        "brian2 optimizer",
        EQ,
        " { return (1.0 - lam) * B + (dw + lam * w); }",
        " { return (1.0 - lam) * B + dw + lam * w; }",
        _CHUNKED_MODE("eprop-adaptive"),
    ),
)


def apply(text: str, mutant: Mutant) -> str:
    """``text`` with the mutant applied; :class:`MutantError` unless ``old`` occurs exactly once, or when the
    mutated Python file does not parse."""
    n = text.count(mutant.old)
    if n != 1:
        what = "string not found" if n == 0 else f"string found {n} times"
        raise MutantError(f"{what} in {mutant.file}: {mutant.old!r}")
    if mutant.old == mutant.new:
        raise MutantError(f"{mutant.file}: the mutant changes nothing: {mutant.old!r}")
    out = text.replace(mutant.old, mutant.new)
    if mutant.file.endswith(".py"):
        try:
            ast.parse(out)
        except SyntaxError as exc:
            raise MutantError(
                f"{mutant.file}: the mutant does not parse ({exc.msg}): {mutant.new!r}"
            ) from None
    return out


def _files(root: Path) -> list[Path]:
    """The files of ``root`` a scratch copy needs: in a git checkout its tracked and unignored files."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
        names = [Path(n) for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [p.relative_to(root) for p in root.rglob("*") if p.is_file() or p.is_symlink()]
    return [n for n in names if not _SKIP.intersection(n.parts) and (root / n).is_file()]


def copy_tree(root: Path, dest: Path) -> None:
    """Copy the files of ``root`` (:func:`_files`) to ``dest``."""
    for rel in _files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)


def _run(tests: Sequence[str], repo: Path, cache: Path, python: str, timeout: float) -> tuple[str, str]:
    """Run one pytest selection in ``repo``: ``("passed" | "failed" | "ERROR: …", last line of output)``."""
    env = dict(os.environ, PYTHONPATH=str(repo), NEUROPLAST_CACHE=str(cache), PYTHONDONTWRITEBYTECODE="1")
    # -n 0: one small selection, in one process (no test workers to start; pytest-xdist is a test dependency)
    quiet = ["-q", "-x", "-n", "0", "-p", "no:cacheprovider", "-p", "no:warnings"]
    cmd = [python, "-m", "pytest", *quiet, *tests]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"ERROR: timed out after {timeout:.0f} s", ""
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    outcome = {0: "passed", 1: "failed", 5: "ERROR: the selection collected no test"}
    return outcome.get(proc.returncode, f"ERROR: pytest exit status {proc.returncode}"), last


def _fresh_cache(scratch: Path, name: str) -> Path:
    """A NEUROPLAST_CACHE of its own whose ``cython`` folder is the one every run shares."""
    cache = scratch / "caches" / name
    cache.mkdir(parents=True)
    shared = scratch / "cython"
    shared.mkdir(exist_ok=True)
    (cache / "cython").symlink_to(shared, target_is_directory=True)
    return cache


def _label(m: Mutant) -> str:
    return f"[{m.view}] {m.file}: {m.old!r} -> {m.new!r}"


def check(
    mutants: Sequence[Mutant],
    root: Path = ROOT,
    *,
    python: str = sys.executable,
    timeout: float = 900.0,
    check_only: bool = False,
    out=None,
) -> int:
    """Run the mutation check; print one line per mutant and a summary to ``out``; 0 iff every one is caught.

    Parameters
    ----------
    mutants : sequence of Mutant
    root : Path
        The repository whose files are copied and mutated (never changed itself).
    python : str
        The interpreter that runs pytest.
    timeout : float
        Seconds one selection may run (a timed-out mutant is an error, not caught).
    check_only : bool
        Only check that every mutant applies (its string is found once, the result parses).
    """
    out = out or sys.stdout
    start = time.monotonic()
    counts = {"caught": 0, "MISSED": 0, "ERROR": 0}

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    texts: dict[str, str] = {}
    runnable = []
    for m in mutants:
        try:
            if m.file not in texts:
                path = root / m.file
                if not path.is_file():
                    raise MutantError(f"no such file: {m.file}")
                texts[m.file] = path.read_text()
            apply(texts[m.file], m)
            runnable.append(m)
        except MutantError as exc:
            counts["ERROR"] += 1
            say(f"ERROR: {exc}")
    if not check_only and runnable:
        with tempfile.TemporaryDirectory(prefix="neuroplast-mutants-") as tmp:
            scratch = Path(tmp)
            repo = scratch / "repo"
            copy_tree(root, repo)
            selections = list(dict.fromkeys(m.tests for m in runnable))
            broken = set()
            for i, tests in enumerate(selections):  # each selection must pass before it judges a mutant
                t0 = time.monotonic()
                outcome, last = _run(tests, repo, _fresh_cache(scratch, f"baseline{i}"), python, timeout)
                if outcome != "passed":
                    broken.add(tests)
                    say(f"ERROR: unmutated code does not pass {' '.join(tests)}: {outcome} ({last})")
                else:
                    say(f"baseline passes: {' '.join(tests)} ({time.monotonic() - t0:.0f} s)")
            for i, m in enumerate(runnable):
                if m.tests in broken:
                    counts["ERROR"] += 1
                    say(f"ERROR: {_label(m)}: its selection fails on the unmutated code")
                    continue
                t0 = time.monotonic()
                path = repo / m.file
                path.write_text(apply(texts[m.file], m))
                try:
                    outcome, last = _run(m.tests, repo, _fresh_cache(scratch, f"mutant{i}"), python, timeout)
                finally:
                    path.write_text(texts[m.file])
                took = f"({time.monotonic() - t0:.0f} s)"
                if outcome == "failed":
                    counts["caught"] += 1
                    say(f"caught  {_label(m)} {took}")
                elif outcome == "passed":
                    counts["MISSED"] += 1
                    say(f"MISSED  {_label(m)}: {' '.join(m.tests)} passed {took}")
                else:
                    counts["ERROR"] += 1
                    say(f"{outcome}: {_label(m)}: {last} {took}")
    total = len(mutants)
    verb = "apply" if check_only else "caught"
    ok = counts["ERROR"] == 0 and counts["MISSED"] == 0 and (check_only or counts["caught"] == total)
    say(
        f"{total} mutants: {len(runnable) if check_only else counts['caught']} {verb}, "
        f"{counts['MISSED']} missed, {counts['ERROR']} errors in {time.monotonic() - start:.0f} s"
    )
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="the rows whose view or file contains this text")
    parser.add_argument("--check-only", action="store_true", help="only check that every mutant applies")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per selection (default 900)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs pytest")
    args = parser.parse_args(argv)
    rows = [m for m in MUTANTS if args.only is None or args.only in m.view or args.only in m.file]
    if not rows:
        print(f"--only {args.only!r}: no mutant's view or file contains it", file=sys.stderr)
        return 2
    return check(rows, python=args.python, timeout=args.timeout, check_only=args.check_only)


if __name__ == "__main__":
    sys.exit(main())
