#!/usr/bin/env bash
# The whole check, as CI runs it: bootstrap, lint, then the test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/integration -x`).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/bootstrap.sh

echo "[test] ruff check" >&2
.venv/bin/ruff check .

mkdir -p test-output
echo "[test] pytest" >&2
status=0
.venv/bin/python -m pytest -p no:phoenix -q -ra --junitxml=test-output/junit.xml \
    "${@:-tests}" || status=$?
if [[ $status -eq 5 ]]; then
    echo "[test] error: pytest collected no tests; the suite exists, so this is a failure" >&2
fi
exit "$status"
