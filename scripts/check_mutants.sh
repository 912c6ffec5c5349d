#!/usr/bin/env bash
# Mutation check of the Brian2 equality test (issue 2): change one term of the Brian2 network's
# equations at a time in a scratch copy and run the runtime equality test; every mutant must FAIL.
#   bash scripts/check_mutants.sh            (≈ 1 min per mutant: each compiles its own Cython code)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
mutant() {
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
        "$py" -m pytest -q -p no:warnings -x -k "runtime and mix-3" tests/test_equality.py 2>&1 | tail -1)
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
exit $status
