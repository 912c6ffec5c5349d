#!/usr/bin/env bash
# Mutation check of the Brian2 tests: change one term of the Brian2 network's code at a time in a
# scratch copy and run the runtime test that must notice it (the equality test for the dynamics, the
# gradient tests for the event-driven eligibility and the in-trial updates); every mutant must FAIL.
#   bash scripts/check_mutants.sh            (≈ 1 min per mutant: each compiles its own Cython code)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
mutant() {  # mutant OLD NEW [PYTEST-K-EXPRESSION TEST-FILE], default: the runtime equality test
  local kexpr=${3:-"runtime and mix-3"} file=${4:-tests/network/test_equality.py}
  rm -rf "$scratch/repo"; mkdir -p "$scratch/repo"
  cp -r "$root/neuroplast" "$root/tests" "$root/pyproject.toml" "$scratch/repo/"
  "$py" - "$scratch/repo/neuroplast/network/builder.py" "$1" "$2" <<'PY'
import sys
path, old, new = sys.argv[1:]
s = open(path).read()
assert old in s, f"term not found: {old}"
open(path, "w").write(s.replace(old, new, 1))
PY
  out=$(cd "$scratch/repo" && PYTHONPATH="$scratch/repo" NEUROPLAST_CACHE="$scratch/cache" \
        "$py" -m pytest -q -p no:warnings -x -k "$kexpr" "$file" 2>&1 | tail -1)
  case "$out" in
    *failed*) echo "caught   [$1 -> $2]: $out" ;;
    *) echo "MISSED   [$1 -> $2]: $out"; status=1 ;;
  esac
}
mutant "- v_th * z" "- 0.999 * v_th * z"
mutant "a = rho * a + z" "a = rho * a + 0.999 * z"
mutant "v = alpha * v +" "v = 0.999 * alpha * v +"
mutant "c_in * (I_in + I_rec)" "c_in * (I_in + 0.999 * I_rec)"
mutant "r = clip(r - 1.0, 0.0, n_ref)" "r = clip(r - 2.0, 0.0, n_ref)"
mutant "y = kappa * y + c_out * I_out + b" "y = kappa * y + c_out * I_out + 0.999 * b"
grads=("runtime-mse and eprop-random-alif" tests/network/test_online_gradients.py)
mutant "g += A_post * ebar" "g += 0.999 * A_post * ebar" "${grads[@]}"
mutant "R = rho * R * (1 - ev) + ev" "R = rho * R * (1 - ev) + 0.999 * ev" "${grads[@]}"
mutant "A = (A + L * Dk) * (1 - ev)" "A = (A + L * Dk * 0.999) * (1 - ev)" "${grads[@]}"
mutant "lam = in_trial_decay_post * active" "lam = in_trial_decay_post" \
  "runtime-mse-eprop-adaptive" tests/network/test_in_trial.py
exit $status
