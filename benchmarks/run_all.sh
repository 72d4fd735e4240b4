#!/usr/bin/env bash
# Run every benchmark in this folder, one after the other, with the project's virtualenv:
# every benchmarks/bench_*.py (the core, export, and the others' LLM and web benchmarks when
# present), then the side-by-side with peers (benchmarks/peers/run_peers.py), which creates the
# peers' virtualenvs under benchmarks/peers/.venvs on first use (several minutes).
#
#   bash benchmarks/run_all.sh            # full runs (about 20 minutes on 2 cores)
#   bash benchmarks/run_all.sh --quick    # smoke runs (passed to the scripts that take it)
#
# PYTHON=/path/to/python overrides the interpreter (default: .venv/bin/python at the repo root).
# Exit status: the number of scripts that failed (0 when all ran).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
ARGS=("$@")

failed=0
run() {
    local script="$1" args=("${ARGS[@]}")
    # Pass --quick only to scripts that take it.
    if [[ " ${args[*]} " == *" --quick "* ]] && ! "$PYTHON" "$script" --help 2>/dev/null | grep -q -- '--quick'; then
        args=()
        for arg in "${ARGS[@]}"; do [[ "$arg" != --quick ]] && args+=("$arg"); done
    fi
    printf '\n===== %s %s =====\n' "${script#"$ROOT"/}" "${args[*]}"
    if ! "$PYTHON" "$script" "${args[@]}"; then
        printf '!!!!! %s failed\n' "${script#"$ROOT"/}" >&2
        failed=$((failed + 1))
    fi
}

for script in "$HERE"/bench_*.py; do
    [[ -f "$script" ]] && run "$script"
done
run "$HERE/peers/run_peers.py"
exit "$failed"
